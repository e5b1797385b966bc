/*
 * test_storage_cache.c - the read cache: exact and sub-range hits, LRU
 * order, the byte limit, pinned (still referenced) entries surviving
 * eviction, covered-range handling, invalidation, and a randomized run
 * whose every hit is checked byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/sh_cache.h"

/* The byte at absolute offset `off` of object number `obj`: any hit can be
 * checked against this without remembering what was cached. */
static uint8_t content(unsigned obj, uint64_t off)
{
    uint64_t x = (off + 1) * 0x9E3779B97F4A7C15ULL ^ (uint64_t)obj * 0xC2B2AE3D27D4EB4FULL;
    return (uint8_t)(x >> 56);
}

static sh_block_t *mk_range(unsigned obj, uint64_t off, size_t len)
{
    sh_block_t *b = sh_block_new(len);
    assert_non_null(b);
    for (size_t i = 0; i < len; i++)
        b->data[i] = content(obj, off + i);
    return b;
}

/* Put a fresh block and drop our reference: the cache holds the only one. */
static void put(sh_cache_t *c, const char *key, unsigned obj, uint64_t off, size_t len)
{
    sh_block_t *b = mk_range(obj, off, len);
    assert_int_equal(sh_cache_put(c, key, off, b), SH_OK);
    sh_block_unref(b);
}

static void check_ref(const sh_cache_ref_t *r, unsigned obj, uint64_t off, size_t len)
{
    assert_non_null(r->block);
    assert_int_equal(r->len, len);
    assert_true(r->ptr >= r->block->data && r->ptr + len <= r->block->data + r->block->size);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(r->ptr[i], content(obj, off + i));
}

static int hit(sh_cache_t *c, const char *key, unsigned obj, uint64_t off, size_t len)
{
    sh_cache_ref_t r;
    sh_err_t err = sh_cache_get(c, key, off, len, &r);
    if (err == SH_E_NOTFOUND) {
        assert_null(r.block);
        return 0;
    }
    assert_int_equal(err, SH_OK);
    check_ref(&r, obj, off, len);
    sh_block_unref(r.block);
    return 1;
}

static sh_cache_stats_t stats(sh_cache_t *c)
{
    sh_cache_stats_t s;
    sh_cache_stats(c, &s);
    return s;
}

static void test_hits_and_subranges(void **state)
{
    (void)state;
    sh_cache_t *c = sh_cache_new(1 << 20);
    assert_non_null(c);
    put(c, "a/obj", 1, 1000, 500);            /* [1000, 1500) */
    assert_true(hit(c, "a/obj", 1, 1000, 500));
    assert_true(hit(c, "a/obj", 1, 1000, 1));
    assert_true(hit(c, "a/obj", 1, 1200, 100));
    assert_true(hit(c, "a/obj", 1, 1499, 1));
    assert_false(hit(c, "a/obj", 1, 999, 2));  /* starts before */
    assert_false(hit(c, "a/obj", 1, 1400, 101)); /* runs past */
    assert_false(hit(c, "a/obj", 1, 1500, 1));
    assert_false(hit(c, "a/obj", 1, UINT64_MAX - 1, 1));
    assert_false(hit(c, "b/obj", 1, 1000, 10)); /* other key */
    assert_false(hit(c, "a/ob", 1, 1000, 10));  /* key prefix is another key */

    /* a second range of the same object; a hit needs one range covering it */
    put(c, "a/obj", 1, 1500, 500);            /* [1500, 2000) */
    assert_true(hit(c, "a/obj", 1, 1600, 100));
    assert_false(hit(c, "a/obj", 1, 1400, 200)); /* spans both: not served */

    sh_cache_stats_t s = stats(c);
    assert_int_equal(s.hits, 5);
    assert_int_equal(s.misses, 7);
    assert_int_equal(s.inserts, 2);
    assert_int_equal(s.entries, 2);
    assert_int_equal(s.objects, 1);
    assert_int_equal(s.bytes, 1000);

    sh_cache_ref_t r;
    assert_int_equal(sh_cache_get(c, "a/obj", 1000, 0, &r), SH_E_INVAL);
    sh_block_t *empty = sh_block_new(0);
    assert_int_equal(sh_cache_put(c, "a/obj", 0, empty), SH_E_INVAL);
    sh_block_unref(empty);
    sh_block_t *b = mk_range(1, 0, 10);
    assert_int_equal(sh_cache_put(c, "a/obj", UINT64_MAX - 5, b), SH_E_INVAL);
    sh_block_unref(b);
    sh_cache_free(c);
}

static void test_lru_eviction(void **state)
{
    (void)state;
    sh_cache_t *c = sh_cache_new(1000);
    put(c, "k/a", 1, 0, 300);
    put(c, "k/b", 2, 0, 300);
    put(c, "k/c", 3, 0, 300);
    assert_int_equal(stats(c).bytes, 900);
    put(c, "k/d", 4, 0, 300);                 /* evicts a, the oldest */
    assert_int_equal(stats(c).evictions, 1);
    assert_false(hit(c, "k/a", 1, 0, 300));
    assert_true(hit(c, "k/b", 2, 0, 10));     /* b becomes most recent */
    put(c, "k/e", 5, 0, 300);                 /* evicts c, not b */
    assert_true(hit(c, "k/b", 2, 0, 300));
    assert_false(hit(c, "k/c", 3, 0, 300));
    assert_true(hit(c, "k/d", 4, 0, 300));
    assert_true(hit(c, "k/e", 5, 0, 300));
    sh_cache_stats_t s = stats(c);
    assert_int_equal(s.evictions, 2);
    assert_int_equal(s.bytes, 900);
    assert_int_equal(s.objects, 3);

    /* one big range pushes out everything else */
    put(c, "k/big", 6, 0, 1000);
    s = stats(c);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.bytes, 1000);
    assert_int_equal(s.evictions, 5);
    /* too big to ever fit: not stored, nothing evicted for it */
    put(c, "k/huge", 7, 0, 1001);
    s = stats(c);
    assert_int_equal(s.rejected, 1);
    assert_int_equal(s.entries, 1);
    assert_true(hit(c, "k/big", 6, 0, 1000));
    assert_false(hit(c, "k/huge", 7, 0, 1));

    sh_cache_set_limit(c, 999);
    assert_int_equal(stats(c).entries, 0);
    assert_int_equal(stats(c).bytes, 0);
    assert_int_equal(stats(c).objects, 0);
    sh_cache_free(c);
}

static void test_pinned_entries(void **state)
{
    (void)state;
    sh_cache_t *c = sh_cache_new(1000);
    put(c, "p/a", 1, 4096, 600);
    sh_cache_ref_t pin;
    assert_int_equal(sh_cache_get(c, "p/a", 4096 + 100, 400, &pin), SH_OK);
    /* the cache's reference plus ours */
    assert_int_equal(atomic_load(&pin.block->refs), 2);

    /* an in-flight Fetch holds `pin`; the cache still evicts the range */
    put(c, "p/b", 2, 0, 600);
    assert_int_equal(stats(c).evictions, 1);
    assert_false(hit(c, "p/a", 1, 4096, 1));
    assert_int_equal(stats(c).bytes, 600);
    /* ... but the bytes the Fetch is sending are intact and now only ours */
    assert_int_equal(atomic_load(&pin.block->refs), 1);
    check_ref(&pin, 1, 4096 + 100, 400);

    /* a reference outlives the cache itself too */
    sh_cache_ref_t pin2;
    assert_int_equal(sh_cache_get(c, "p/b", 0, 600, &pin2), SH_OK);
    sh_cache_free(c);
    check_ref(&pin2, 2, 0, 600);
    sh_block_unref(pin2.block);
    sh_block_unref(pin.block);
}

static void test_covered_ranges(void **state)
{
    (void)state;
    sh_cache_t *c = sh_cache_new(1 << 20);
    put(c, "o", 1, 100, 50);                  /* [100,150) */
    put(c, "o", 1, 200, 50);                  /* [200,250) */
    put(c, "o", 1, 120, 10);                  /* covered: not stored again */
    sh_cache_stats_t s = stats(c);
    assert_int_equal(s.entries, 2);
    assert_int_equal(s.inserts, 2);
    assert_int_equal(s.bytes, 100);
    put(c, "o", 1, 0, 1000);                  /* covers both: replaces them */
    s = stats(c);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.bytes, 1000);
    assert_int_equal(s.evictions, 0);
    assert_true(hit(c, "o", 1, 120, 10));
    assert_true(hit(c, "o", 1, 0, 1000));
    put(c, "o", 1, 900, 200);                 /* partial overlap: both kept */
    s = stats(c);
    assert_int_equal(s.entries, 2);
    assert_true(hit(c, "o", 1, 1000, 100));
    assert_true(hit(c, "o", 1, 950, 50));
    assert_int_equal(s.objects, 1);

    sh_cache_invalidate(c, "o");
    s = stats(c);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.objects, 0);
    assert_int_equal(s.bytes, 0);
    assert_false(hit(c, "o", 1, 120, 10));
    sh_cache_invalidate(c, "o");              /* nothing left: harmless */
    sh_cache_free(c);
}

static void test_many_objects(void **state)
{
    (void)state;
    sh_cache_t *c = sh_cache_new(1 << 24);
    char key[32];
    for (unsigned i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "%02x/seg/%u", i & 0xff, i);
        put(c, key, i, i * 10, 16);
    }
    assert_int_equal(stats(c).objects, 5000);
    for (unsigned i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "%02x/seg/%u", i & 0xff, i);
        assert_true(hit(c, key, i, i * 10 + 3, 10));
    }
    for (unsigned i = 0; i < 5000; i += 2) {
        snprintf(key, sizeof(key), "%02x/seg/%u", i & 0xff, i);
        sh_cache_invalidate(c, key);
    }
    assert_int_equal(stats(c).objects, 2500);
    for (unsigned i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "%02x/seg/%u", i & 0xff, i);
        assert_int_equal(hit(c, key, i, i * 10, 16), (int)(i % 2));
    }
    sh_cache_free(c);
}

/* Random puts, gets, invalidations and limit changes (under ASan this also
 * shakes out list and hash-table corruption). Every hit is checked byte for
 * byte, the counters stay consistent, and the limit is never exceeded. */
static void test_randomized(void **state)
{
    (void)state;
    uint64_t seed = 12345;
    print_message("randomized cache run, seed %llu\n", (unsigned long long)seed);
#define RND() (seed = seed * 6364136223846793005ULL + 1442695040888963407ULL, (unsigned)(seed >> 33))
    size_t limit = 20000;
    sh_cache_t *c = sh_cache_new(limit);
    char key[16];
    uint64_t hits = 0;
    for (int step = 0; step < 20000; step++) {
        unsigned obj = RND() % 12;
        snprintf(key, sizeof(key), "obj%u", obj);
        uint64_t off = RND() % 5000;
        size_t len = 1 + RND() % 1500;
        unsigned op = RND() % 100;
        if (op < 45) {
            put(c, key, obj, off, len);
        } else if (op < 97) {
            hits += (uint64_t)hit(c, key, obj, off, len > 200 ? len / 4 : len);
        } else if (op < 99) {
            sh_cache_invalidate(c, key);
        } else {
            limit = 5000 + RND() % 30000;
            sh_cache_set_limit(c, limit);
        }
        sh_cache_stats_t s = stats(c);
        assert_true(s.bytes <= limit);
        assert_true(s.entries <= s.bytes);
        assert_true(s.objects <= s.entries);
        assert_true(s.objects <= 12);
    }
    sh_cache_stats_t s = stats(c);
    assert_int_equal(s.hits, hits);
    assert_true(s.hits > 100);      /* the run exercised hits ... */
    assert_true(s.evictions > 100); /* ... and eviction */
    sh_cache_free(c);
#undef RND
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hits_and_subranges),
        cmocka_unit_test(test_lru_eviction),
        cmocka_unit_test(test_pinned_entries),
        cmocka_unit_test(test_covered_ranges),
        cmocka_unit_test(test_many_objects),
        cmocka_unit_test(test_randomized),
    };
    return cmocka_run_group_tests_name("storage_cache", tests, NULL, NULL);
}
