/*
 * test_storage_objstore.c - conformance suite for the object-store
 * interface. It uses only storage/sh_objstore.h, so every backend must pass
 * it unchanged: set SH_TEST_OBJSTORE_URL (e.g. s3://bucket/prefix) to run it
 * against another store; by default it runs against a fresh file:// temp
 * directory that is removed afterwards.
 *
 * Each test works under its own key prefix (run id + test name), so the
 * suite can share a bucket with other data and with earlier runs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include "common/sh_clock.h"
#include "test_storage_util.h"

static char g_url[600];
static char *g_tmpdir;     /* set when we made the default directory */
static char g_run[32];     /* unique per run, so shared buckets do not collide */

typedef struct tctx {
    sh_objstore_t *s;
    char pfx[96];          /* this test's key prefix, ends in '/' */
} tctx_t;

static int setup(void **state)
{
    tctx_t *t = calloc(1, sizeof(*t));
    if (!t || sh_objstore_open(g_url, &t->s) != SH_OK) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    tctx_t *t = *state;
    sh_objstore_free(t->s);
    free(t);
    return 0;
}

static void tkey(tctx_t *t, const char *test, char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s/%s", g_run, test, name);
    snprintf(t->pfx, sizeof(t->pfx), "%s/%s/", g_run, test);
}

static void check_bytes(const tsu_res_t *r, const uint8_t *want, size_t len)
{
    assert_int_equal(r->err, SH_OK);
    assert_non_null(r->block);
    assert_int_equal(r->block->size, len);
    assert_memory_equal(r->block->data, want, len);
}

/* ------------------------------------------------------------------- tests */

static void test_put_get_head(void **state)
{
    tctx_t *t = *state;
    char key[256];
    tkey(t, "pgh", key, sizeof(key), "obj");
    uint8_t a[1000], b[3000], whole[4000];
    tsu_fill(a, sizeof(a), 1);
    tsu_fill(b, sizeof(b), 2);
    memcpy(whole, a, sizeof(a));
    memcpy(whole + sizeof(a), b, sizeof(b));
    /* an empty iovec in the middle must not confuse the writer */
    struct iovec iov[3] = {{a, sizeof(a)}, {NULL, 0}, {b, sizeof(b)}};
    tsu_res_t r = {0};
    assert_int_equal(sh_objstore_put_start(t->s, key, iov, 3, tsu_cb, &r), SH_OK);
    assert_int_equal(sh_objstore_inflight(t->s), 1);
    tsu_finish(t->s, &r);
    assert_int_equal(r.op, SH_OBJSTORE_PUT);
    assert_int_equal(r.err, SH_OK);
    /* callbacks run on the driving thread, never on a backend thread */
    assert_true(pthread_equal(r.thread, pthread_self()));
    tsu_res_fini(&r);

    tsu_get(t->s, key, &r);
    assert_int_equal(r.op, SH_OBJSTORE_GET);
    check_bytes(&r, whole, sizeof(whole));
    assert_int_equal(r.object_size, sizeof(whole));
    assert_int_equal(r.offset, 0);
    tsu_res_fini(&r);

    tsu_head(t->s, key, &r);
    assert_int_equal(r.err, SH_OK);
    assert_int_equal(r.object_size, sizeof(whole));
    /* mtime is the store's clock; only check it is plausible (after 2020) */
    assert_true(r.mtime_ms > 1577836800000LL);
    tsu_res_fini(&r);
}

static void test_range_get(void **state)
{
    tctx_t *t = *state;
    char key[256];
    tkey(t, "range", key, sizeof(key), "obj");
    uint8_t d[10000];
    tsu_fill(d, sizeof(d), 3);
    tsu_put_ok(t->s, key, d, sizeof(d));
    tsu_res_t r;

    tsu_get_range(t->s, key, 0, 100, &r);
    check_bytes(&r, d, 100);
    assert_int_equal(r.object_size, sizeof(d));
    tsu_res_fini(&r);

    tsu_get_range(t->s, key, 4321, 1234, &r);
    check_bytes(&r, d + 4321, 1234);
    assert_int_equal(r.offset, 4321);
    tsu_res_fini(&r);

    tsu_get_range(t->s, key, 9999, 1, &r); /* last byte */
    check_bytes(&r, d + 9999, 1);
    tsu_res_fini(&r);

    tsu_get_range(t->s, key, 9000, 5000, &r); /* runs past the end: truncated */
    check_bytes(&r, d + 9000, 1000);
    tsu_res_fini(&r);

    tsu_get_range(t->s, key, 7000, SH_OBJSTORE_TO_END, &r);
    check_bytes(&r, d + 7000, 3000);
    tsu_res_fini(&r);

    tsu_get_range(t->s, key, 10000, 1, &r); /* at the end: not satisfiable */
    assert_int_equal(r.err, SH_E_INVAL);
    assert_null(r.block);
    tsu_res_fini(&r);

    tsu_get_range(t->s, key, UINT64_MAX - 5, 100, &r);
    assert_int_equal(r.err, SH_E_INVAL);
    tsu_res_fini(&r);

    /* zero-length reads are refused up front, without a callback */
    assert_int_equal(sh_objstore_get_range_start(t->s, key, 0, 0, tsu_cb, &r), SH_E_INVAL);
    assert_int_equal(r.calls, 0);
    assert_int_equal(sh_objstore_inflight(t->s), 0);
}

static void test_empty_object(void **state)
{
    tctx_t *t = *state;
    char key[256];
    tkey(t, "empty", key, sizeof(key), "obj");
    tsu_res_t r = {0};
    assert_int_equal(sh_objstore_put_start(t->s, key, NULL, 0, tsu_cb, &r), SH_OK);
    tsu_finish(t->s, &r);
    assert_int_equal(r.err, SH_OK);
    tsu_res_fini(&r);

    tsu_get(t->s, key, &r);
    assert_int_equal(r.err, SH_OK);
    assert_non_null(r.block);
    assert_int_equal(r.block->size, 0);
    tsu_res_fini(&r);

    tsu_head(t->s, key, &r);
    assert_int_equal(r.err, SH_OK);
    assert_int_equal(r.object_size, 0);
    tsu_res_fini(&r);

    tsu_get_range(t->s, key, 0, 1, &r);
    /* S3 answers a range on an empty object with the whole (empty) body */
    assert_true(r.err == SH_OK || r.err == SH_E_INVAL);
    if (r.err == SH_OK)
        assert_int_equal(r.block->size, 0);
    tsu_res_fini(&r);
}

static void test_missing_keys(void **state)
{
    tctx_t *t = *state;
    char key[256];
    tkey(t, "missing", key, sizeof(key), "nope");
    tsu_res_t r;
    tsu_get(t->s, key, &r);
    assert_int_equal(r.err, SH_E_NOTFOUND);
    assert_null(r.block);
    assert_false(r.retriable);
    tsu_res_fini(&r);

    tsu_get_range(t->s, key, 10, 10, &r);
    assert_int_equal(r.err, SH_E_NOTFOUND);
    tsu_res_fini(&r);

    tsu_head(t->s, key, &r);
    assert_int_equal(r.err, SH_E_NOTFOUND);
    tsu_res_fini(&r);

    /* a key whose "directory" does not exist either */
    tkey(t, "missing", key, sizeof(key), "no/such/dir/obj");
    tsu_get(t->s, key, &r);
    assert_int_equal(r.err, SH_E_NOTFOUND);
    tsu_res_fini(&r);

    /* a prefix of an existing key is not an object */
    tkey(t, "missing", key, sizeof(key), "dir/obj");
    tsu_put_ok(t->s, key, "x", 1);
    tkey(t, "missing", key, sizeof(key), "dir");
    tsu_get(t->s, key, &r);
    assert_int_equal(r.err, SH_E_NOTFOUND);
    tsu_res_fini(&r);
    tsu_head(t->s, key, &r);
    assert_int_equal(r.err, SH_E_NOTFOUND);
    tsu_res_fini(&r);

    /* deleting what is not there succeeds, as on S3 */
    tkey(t, "missing", key, sizeof(key), "nope");
    assert_int_equal(tsu_delete(t->s, key), SH_OK);
}

static void test_overwrite(void **state)
{
    tctx_t *t = *state;
    char key[256];
    tkey(t, "overwrite", key, sizeof(key), "obj");
    uint8_t big[50000], small[10];
    tsu_fill(big, sizeof(big), 4);
    tsu_fill(small, sizeof(small), 5);
    tsu_put_ok(t->s, key, big, sizeof(big));
    tsu_put_ok(t->s, key, small, sizeof(small));
    tsu_res_t r;
    tsu_get(t->s, key, &r);
    check_bytes(&r, small, sizeof(small)); /* no tail of the old object */
    tsu_res_fini(&r);
    tsu_put_ok(t->s, key, big, sizeof(big));
    tsu_get(t->s, key, &r);
    check_bytes(&r, big, sizeof(big));
    tsu_res_fini(&r);
}

static void test_delete(void **state)
{
    tctx_t *t = *state;
    char key[256], other[256];
    tkey(t, "delete", other, sizeof(other), "keep");
    tkey(t, "delete", key, sizeof(key), "gone");
    tsu_put_ok(t->s, key, "abc", 3);
    tsu_put_ok(t->s, other, "def", 3);
    assert_int_equal(tsu_delete(t->s, key), SH_OK);
    tsu_res_t r;
    tsu_get(t->s, key, &r);
    assert_int_equal(r.err, SH_E_NOTFOUND);
    tsu_res_fini(&r);
    tsu_head(t->s, key, &r);
    assert_int_equal(r.err, SH_E_NOTFOUND);
    tsu_res_fini(&r);
    tsu_get(t->s, other, &r);
    check_bytes(&r, (const uint8_t *)"def", 3);
    tsu_res_fini(&r);
    tsu_list(t->s, t->pfx, NULL, 0, &r);
    assert_int_equal(r.err, SH_OK);
    assert_int_equal(r.nentries, 1);
    assert_string_equal(r.keys[0], other);
    tsu_res_fini(&r);
}

static void test_delete_many(void **state)
{
    tctx_t *t = *state;
    char keys[12][256];
    const char *ptrs[12];
    for (int i = 0; i < 10; i++) {
        char name[32];
        snprintf(name, sizeof(name), "%s/k%02d", i % 2 ? "odd" : "even", i);
        tkey(t, "delmany", keys[i], sizeof(keys[i]), name);
        tsu_put_ok(t->s, keys[i], name, strlen(name));
    }
    tkey(t, "delmany", keys[10], sizeof(keys[10]), "never-existed");
    /* delete k00..k06 and a missing key; keep k07..k09 */
    size_t n = 0;
    for (int i = 0; i < 7; i++)
        ptrs[n++] = keys[i];
    ptrs[n++] = keys[10];
    tsu_res_t r = {0};
    assert_int_equal(sh_objstore_delete_many_start(t->s, ptrs, n, tsu_cb, &r), SH_OK);
    tsu_finish(t->s, &r);
    assert_int_equal(r.op, SH_OBJSTORE_DELETE_MANY);
    assert_int_equal(r.err, SH_OK);
    assert_int_equal(r.nkeys, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(r.key_errs[i], SH_OK);
    tsu_res_fini(&r);

    tsu_list(t->s, t->pfx, NULL, 0, &r);
    assert_int_equal(r.nentries, 3);
    assert_string_equal(r.keys[0], keys[8]); /* even/k08 < odd/k07 < odd/k09 */
    assert_string_equal(r.keys[1], keys[7]);
    assert_string_equal(r.keys[2], keys[9]);
    tsu_res_fini(&r);

    /* an empty batch completes trivially */
    assert_int_equal(sh_objstore_delete_many_start(t->s, NULL, 0, tsu_cb, &r), SH_OK);
    tsu_finish(t->s, &r);
    assert_int_equal(r.err, SH_OK);
    assert_int_equal(r.nkeys, 0);
    tsu_res_fini(&r);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_list_paging(void **state)
{
    tctx_t *t = *state;
    /* names chosen so a per-directory walk would get the order wrong:
     * '-' (0x2d) < '/' (0x2f) < '0' (0x30) */
    static const char *names[] = {
        "x-1", "x/1", "x/2/deep", "x0", "a", "b/c/d/e", "b/c-d", "b-c", "zz", "x/10",
        "m/01", "m/02", "m/03", "m/04", "m/05", "m/06", "m/07", "m/08", "m/09", "m/10",
        "y.z", "y/z", "yz", "Q", "_u",
    };
    size_t nn = sizeof(names) / sizeof(names[0]);
    char *want[64];
    uint8_t payload[64];
    tsu_fill(payload, sizeof(payload), 9);
    for (size_t i = 0; i < nn; i++) {
        char key[256];
        tkey(t, "list", key, sizeof(key), names[i]);
        /* sizes differ per key so the listing's sizes can be checked */
        tsu_put_ok(t->s, key, payload, strlen(names[i]) + i);
        want[i] = strdup(key);
    }
    qsort(want, nn, sizeof(char *), cmp_str);

    /* page through with a small page size */
    char *got[64];
    size_t ngot = 0;
    char *token = NULL;
    int pages = 0;
    for (;;) {
        tsu_res_t r;
        tsu_list(t->s, t->pfx, token, 4, &r);
        assert_int_equal(r.op, SH_OBJSTORE_LIST);
        assert_int_equal(r.err, SH_OK);
        assert_true(r.nentries <= 4);
        for (size_t i = 0; i < r.nentries; i++) {
            assert_true(ngot < 64);
            got[ngot++] = strdup(r.keys[i]);
            const char *name = r.keys[i] + strlen(t->pfx);
            size_t idx = 0;
            while (idx < nn && strcmp(names[idx], name) != 0)
                idx++;
            assert_true(idx < nn);
            assert_int_equal(r.sizes[i], strlen(names[idx]) + idx);
        }
        pages++;
        free(token);
        token = r.next_token ? strdup(r.next_token) : NULL;
        tsu_res_fini(&r);
        if (!token)
            break;
        assert_true(pages < 20);
    }
    assert_true(pages >= 7); /* 25 keys in pages of 4 */
    assert_int_equal(ngot, nn);
    for (size_t i = 0; i < nn; i++)
        assert_string_equal(got[i], want[i]);

    /* one big page gives the same */
    tsu_res_t r;
    tsu_list(t->s, t->pfx, NULL, 0, &r);
    assert_int_equal(r.nentries, nn);
    assert_null(r.next_token);
    for (size_t i = 0; i < nn; i++)
        assert_string_equal(r.keys[i], want[i]);
    tsu_res_fini(&r);

    /* a prefix that ends inside a path component */
    char pfx[256];
    snprintf(pfx, sizeof(pfx), "%sx", t->pfx);
    tsu_list(t->s, pfx, NULL, 0, &r);
    assert_int_equal(r.nentries, 5); /* x-1 x/1 x/10 x/2/deep x0 */
    size_t w = 0;
    for (size_t i = 0; i < nn; i++)
        if (strncmp(want[i], pfx, strlen(pfx)) == 0)
            assert_string_equal(r.keys[w++], want[i]);
    assert_int_equal(w, 5);
    tsu_res_fini(&r);

    /* exact page boundary: 10 keys under m/ in pages of 5, then nothing */
    snprintf(pfx, sizeof(pfx), "%sm/", t->pfx);
    tsu_list(t->s, pfx, NULL, 5, &r);
    assert_int_equal(r.nentries, 5);
    assert_non_null(r.next_token);
    char *tok = strdup(r.next_token);
    tsu_res_fini(&r);
    tsu_list(t->s, pfx, tok, 5, &r);
    free(tok);
    assert_int_equal(r.nentries, 5);
    assert_string_equal(r.keys[4] + strlen(pfx), "10");
    /* S3 may or may not know there is nothing more; a token, if any, must
     * lead to an empty final page */
    if (r.next_token) {
        tok = strdup(r.next_token);
        tsu_res_fini(&r);
        tsu_list(t->s, pfx, tok, 5, &r);
        free(tok);
        assert_int_equal(r.nentries, 0);
        assert_null(r.next_token);
    }
    tsu_res_fini(&r);

    /* a prefix with no keys */
    snprintf(pfx, sizeof(pfx), "%snothing-here", t->pfx);
    tsu_list(t->s, pfx, NULL, 0, &r);
    assert_int_equal(r.err, SH_OK);
    assert_int_equal(r.nentries, 0);
    assert_null(r.next_token);
    tsu_res_fini(&r);

    for (size_t i = 0; i < nn; i++) {
        free(want[i]);
        free(got[i]);
    }
}

static void test_invalid_keys(void **state)
{
    tctx_t *t = *state;
    char longkey[SH_OBJSTORE_KEY_MAX + 2];
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    const char *bad[] = {
        "", "/abs", "a//b", "a/", "..", "../x", "a/../b", "a/./b", ".", "x/..",
        "ctl\x01x", "tab\tkey", "a/.sh-tmp.1.2", ".sh-x", longkey, NULL,
    };
    tsu_res_t r = {0};
    uint8_t byte = 1;
    struct iovec iov = {&byte, 1};
    for (int i = 0; bad[i]; i++) {
        assert_int_equal(sh_objstore_key_check(bad[i]), SH_E_INVAL);
        assert_int_equal(sh_objstore_put_start(t->s, bad[i], &iov, 1, tsu_cb, &r), SH_E_INVAL);
        assert_int_equal(sh_objstore_get_start(t->s, bad[i], tsu_cb, &r), SH_E_INVAL);
        assert_int_equal(sh_objstore_get_range_start(t->s, bad[i], 0, 1, tsu_cb, &r),
                         SH_E_INVAL);
        assert_int_equal(sh_objstore_head_start(t->s, bad[i], tsu_cb, &r), SH_E_INVAL);
        assert_int_equal(sh_objstore_delete_start(t->s, bad[i], tsu_cb, &r), SH_E_INVAL);
    }
    assert_int_equal(sh_objstore_put_start(t->s, NULL, &iov, 1, tsu_cb, &r), SH_E_INVAL);
    assert_int_equal(sh_objstore_list_start(t->s, "/abs", NULL, 0, tsu_cb, &r), SH_E_INVAL);
    assert_int_equal(r.calls, 0);
    assert_int_equal(sh_objstore_inflight(t->s), 0);

    /* 1024 bytes is still legal; dots inside components are fine */
    longkey[SH_OBJSTORE_KEY_MAX] = '\0';
    assert_int_equal(sh_objstore_key_check(longkey), SH_OK);
    char key[256];
    tkey(t, "inval", key, sizeof(key), "a.b/..c/d..");
    assert_int_equal(sh_objstore_key_check(key), SH_OK);
    tsu_put_ok(t->s, key, "ok", 2);

    /* one bad key refuses the whole batch, deleting nothing */
    const char *batch[] = {key, "a//b"};
    assert_int_equal(sh_objstore_delete_many_start(t->s, batch, 2, tsu_cb, &r), SH_E_INVAL);
    assert_int_equal(r.calls, 0);
    tsu_get(t->s, key, &r);
    check_bytes(&r, (const uint8_t *)"ok", 2);
    tsu_res_fini(&r);
}

static void test_long_key(void **state)
{
    tctx_t *t = *state;
    /* 1024-byte key in components short enough for any file system */
    char key[SH_OBJSTORE_KEY_MAX + 1];
    tkey(t, "longkey", key, sizeof(key), "");
    size_t len = strlen(key);
    while (len < SH_OBJSTORE_KEY_MAX) {
        key[len] = (len % 100 == 99) ? '/' : 'a' + (char)(len % 26);
        len++;
    }
    key[len] = '\0';
    if (key[len - 1] == '/')
        key[len - 1] = 'z';
    assert_int_equal(sh_objstore_key_check(key), SH_OK);
    tsu_put_ok(t->s, key, "long", 4);
    tsu_res_t r;
    tsu_get(t->s, key, &r);
    check_bytes(&r, (const uint8_t *)"long", 4);
    tsu_res_fini(&r);
    tsu_list(t->s, t->pfx, NULL, 0, &r);
    assert_int_equal(r.nentries, 1);
    assert_string_equal(r.keys[0], key);
    tsu_res_fini(&r);
}

#define NFLIGHT 64

static void test_many_in_flight(void **state)
{
    tctx_t *t = *state;
    static uint8_t data[NFLIGHT][9000];
    static tsu_res_t res[NFLIGHT];
    char keys[NFLIGHT][256];
    for (int i = 0; i < NFLIGHT; i++) {
        char name[32];
        snprintf(name, sizeof(name), "d%d/obj%03d", i % 4, i);
        tkey(t, "inflight", keys[i], sizeof(keys[i]), name);
        tsu_fill(data[i], sizeof(data[i]), 100 + (uint32_t)i);
    }
    memset(res, 0, sizeof(res));
    for (int i = 0; i < NFLIGHT; i++) {
        struct iovec iov[2] = {{data[i], 100 + (size_t)i * 100}, {data[i] + 7000, 5}};
        assert_int_equal(sh_objstore_put_start(t->s, keys[i], iov, 2, tsu_cb, &res[i]), SH_OK);
    }
    /* nothing completes before the store is driven */
    assert_int_equal(sh_objstore_inflight(t->s), NFLIGHT);
    assert_int_equal(sh_objstore_wait_idle(t->s, TSU_WAIT_MS), SH_OK);
    for (int i = 0; i < NFLIGHT; i++) {
        assert_int_equal(res[i].calls, 1);
        assert_int_equal(res[i].err, SH_OK);
        tsu_res_fini(&res[i]);
    }
    /* gets and heads of every object at once, interleaved */
    static tsu_res_t heads[NFLIGHT];
    memset(heads, 0, sizeof(heads));
    for (int i = 0; i < NFLIGHT; i++) {
        assert_int_equal(sh_objstore_get_range_start(t->s, keys[i], 50, 50 + (uint64_t)i * 100,
                                                     tsu_cb, &res[i]),
                         SH_OK);
        assert_int_equal(sh_objstore_head_start(t->s, keys[i], tsu_cb, &heads[i]), SH_OK);
    }
    assert_int_equal(sh_objstore_inflight(t->s), 2 * NFLIGHT);
    assert_int_equal(sh_objstore_wait_idle(t->s, TSU_WAIT_MS), SH_OK);
    for (int i = 0; i < NFLIGHT; i++) {
        size_t size = 100 + (size_t)i * 100 + 5;
        assert_int_equal(res[i].calls, 1);
        check_bytes(&res[i], data[i] + 50, 50 + (size_t)i * 100);
        assert_int_equal(res[i].object_size, size);
        assert_int_equal(heads[i].calls, 1);
        assert_int_equal(heads[i].object_size, size);
        tsu_res_fini(&res[i]);
        tsu_res_fini(&heads[i]);
    }
}

/* Each operation's callback runs exactly once even when the store is
 * freed with work outstanding. */
static int g_free_calls;
static void count_cb(void *arg, const sh_objstore_result_t *res)
{
    (void)arg;
    (void)res;
    g_free_calls++;
}

static void test_free_with_inflight(void **state)
{
    tctx_t *t = *state;
    sh_objstore_t *s;
    assert_int_equal(sh_objstore_open(g_url, &s), SH_OK);
    static uint8_t d[8][20000];
    char key[256];
    g_free_calls = 0;
    for (int i = 0; i < 8; i++) {
        char name[16];
        snprintf(name, sizeof(name), "o%d", i);
        tkey(t, "freeinflight", key, sizeof(key), name);
        tsu_fill(d[i], sizeof(d[i]), (uint32_t)i);
        struct iovec iov = {d[i], sizeof(d[i])};
        assert_int_equal(sh_objstore_put_start(s, key, &iov, 1, count_cb, NULL), SH_OK);
    }
    sh_objstore_free(s);
    assert_int_equal(g_free_calls, 8);
}

/* --------------------------------------------------------- crash safety */

static void child_exit_cb(void *arg, const sh_objstore_result_t *res)
{
    (void)arg;
    /* die the moment the put is acknowledged: no cleanup, no flush */
    _exit(res->err == SH_OK ? 0 : 3);
}

static int child_loop(sh_objstore_t *s)
{
    int64_t end = sh_clock_mono_ms() + TSU_WAIT_MS;
    while (sh_clock_mono_ms() < end)
        sh_objstore_poll(s, 100);
    return 4;
}

static void test_crash_after_ack(void **state)
{
    tctx_t *t = *state;
    char key[256];
    tkey(t, "crash", key, sizeof(key), "acked");
    size_t len = 1 << 20;
    uint8_t *d = malloc(len);
    assert_non_null(d);
    tsu_fill(d, len, 77);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sh_objstore_t *s;
        if (sh_objstore_open(g_url, &s) != SH_OK)
            _exit(2);
        /* split so the writer has several buffers to gather */
        struct iovec iov[3] = {{d, 1000}, {d + 1000, len / 2}, {d + 1000 + len / 2, len / 2 - 1000}};
        if (sh_objstore_put_start(s, key, iov, 3, child_exit_cb, NULL) != SH_OK)
            _exit(2);
        _exit(child_loop(s));
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    tsu_res_t r;
    tsu_get(t->s, key, &r);
    check_bytes(&r, d, len);
    tsu_res_fini(&r);
    free(d);
}

#define NKILL 16
#define KILL_LEN (256 * 1024)

typedef struct {
    int fd;
    int idx;
    int *reported;
} kill_arg_t;

static void child_report_cb(void *arg, const sh_objstore_result_t *res)
{
    kill_arg_t *a = arg;
    if (res->err == SH_OK && !*a->reported) {
        uint8_t b = (uint8_t)a->idx;
        if (write(a->fd, &b, 1) == 1)
            *a->reported = 1;
    }
}

/* A child puts many objects; it is SIGKILLed right after the first
 * acknowledgement, while the others are mid-write. Every key visible
 * afterwards must be whole, and the acknowledged one must be there. */
static void test_kill_mid_put(void **state)
{
    tctx_t *t = *state;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    char keys[NKILL][256];
    for (int i = 0; i < NKILL; i++) {
        char name[16];
        snprintf(name, sizeof(name), "k%02d", i);
        tkey(t, "kill", keys[i], sizeof(keys[i]), name);
    }
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        sh_objstore_t *s;
        if (sh_objstore_open(g_url, &s) != SH_OK)
            _exit(2);
        static uint8_t d[NKILL][KILL_LEN];
        static kill_arg_t args[NKILL];
        int reported = 0;
        for (int i = 0; i < NKILL; i++) {
            tsu_fill(d[i], KILL_LEN, 500 + (uint32_t)i);
            args[i] = (kill_arg_t){pfd[1], i, &reported};
            struct iovec iov = {d[i], KILL_LEN};
            if (sh_objstore_put_start(s, keys[i], &iov, 1, child_report_cb, &args[i]) != SH_OK)
                _exit(2);
        }
        _exit(child_loop(s));
    }
    close(pfd[1]);
    uint8_t acked = 0xff;
    struct pollfd p = {.fd = pfd[0], .events = POLLIN};
    assert_true(poll(&p, 1, TSU_WAIT_MS) == 1);
    assert_int_equal(read(pfd[0], &acked, 1), 1);
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    close(pfd[0]);
    assert_true(acked < NKILL);

    tsu_res_t r;
    tsu_list(t->s, t->pfx, NULL, 0, &r);
    assert_int_equal(r.err, SH_OK);
    size_t n = r.nentries;
    char *listed[NKILL];
    bool acked_seen = false;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(r.sizes[i], KILL_LEN);
        listed[i] = strdup(r.keys[i]);
        if (strcmp(r.keys[i], keys[acked]) == 0)
            acked_seen = true;
    }
    tsu_res_fini(&r);
    assert_true(acked_seen);
    uint8_t *want = malloc(KILL_LEN);
    assert_non_null(want);
    for (size_t i = 0; i < n; i++) {
        int idx = atoi(listed[i] + strlen(t->pfx) + 1);
        tsu_fill(want, KILL_LEN, 500 + (uint32_t)idx);
        tsu_get(t->s, listed[i], &r);
        check_bytes(&r, want, KILL_LEN);
        tsu_res_fini(&r);
        free(listed[i]);
    }
    free(want);
}

int main(void)
{
    const char *url = getenv("SH_TEST_OBJSTORE_URL");
    if (url && *url) {
        snprintf(g_url, sizeof(g_url), "%s", url);
    } else {
        g_tmpdir = tsu_tempdir();
        if (!g_tmpdir) {
            fprintf(stderr, "could not create a temporary directory\n");
            return 1;
        }
        snprintf(g_url, sizeof(g_url), "file://%s", g_tmpdir);
    }
    snprintf(g_run, sizeof(g_run), "conf-%ld-%lld", (long)getpid(),
             (long long)sh_clock_wall_ms());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_inflight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_after_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_mid_put, setup, teardown),
    };
    int rc = cmocka_run_group_tests_name("storage_objstore", tests, NULL, NULL);
    if (g_tmpdir) {
        tsu_rmrf(g_tmpdir);
        free(g_tmpdir);
    }
    return rc;
}
