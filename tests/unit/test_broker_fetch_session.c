/*
 * test_broker_fetch_session.c - the fetch session rules (KIP-227, Kafka's
 * FetchSession.scala) driven directly, with explicit clocks: epochs and
 * their wrap, creation and the request-side checks (unknown id, wrong
 * epoch, topic ids on one side only), incremental add/update/forget and
 * the session order, the response inclusion rules, rotation, closing an
 * emptied session, eviction of idle and of smaller sessions, the slot
 * and byte bounds, references that outlive the cache, and a randomised
 * run against a simple model (hash tables growing and shrinking).
 * Memory: every session is released; the ASan run checks for leaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/sh_fetch_session.h"

static const sh_fetch_session_config_t CFG = {1000, 120000, 64 << 20, 42};

static sh_fetch_session_key_t key_name(const char *topic, int32_t part)
{
    sh_fetch_session_key_t k;
    memset(&k, 0, sizeof(k));
    k.topic = sh_slice_str(topic);
    k.partition = part;
    return k;
}

static sh_fetch_session_key_t key_id(uint8_t id, int32_t part)
{
    sh_fetch_session_key_t k;
    memset(&k, 0, sizeof(k));
    memset(k.topic_id.b, id, sizeof(k.topic_id.b));
    k.partition = part;
    return k;
}

static sh_fetch_session_params_t params_at(int64_t offset)
{
    return (sh_fetch_session_params_t){offset, -1, 1 << 20, -1, -1};
}

static sh_fetch_session_part_t *add(sh_fetch_session_cache_t *c, sh_fetch_session_t *s,
                                    const char *topic, int32_t part, int64_t offset)
{
    sh_fetch_session_key_t k = key_name(topic, part);
    sh_fetch_session_params_t p = params_at(offset);
    bool added;
    sh_fetch_session_part_t *r = sh_fetch_session_upsert(c, s, &k, &p, &added);
    assert_non_null(r);
    return r;
}

/* A session of n partitions of topic "t", inserted at `now`. */
static int32_t insert_n(sh_fetch_session_cache_t *c, int n, int64_t now)
{
    sh_fetch_session_t *s = sh_fetch_session_new(false);
    assert_non_null(s);
    for (int i = 0; i < n; i++)
        add(NULL, s, "t", i, 0);
    int32_t id = sh_fetch_session_cache_insert(c, s, now);
    sh_fetch_session_unref(s);
    return id;
}

/* The session's order as "topic-partition" words. */
static void order_of(const sh_fetch_session_t *s, char *buf, size_t n)
{
    buf[0] = 0;
    for (const sh_fetch_session_part_t *p = sh_fetch_session_first(s); p;
         p = sh_fetch_session_next(p)) {
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, "%s%.*s-%d", l ? " " : "", (int)p->topic->name.len,
                 (const char *)p->topic->name.ptr, p->partition);
    }
}

/* ------------------------------------------------------------- tests */

static void test_next_epoch(void **state)
{
    (void)state;
    assert_int_equal(sh_fetch_session_next_epoch(-1), -1);
    assert_int_equal(sh_fetch_session_next_epoch(-7), -1);
    assert_int_equal(sh_fetch_session_next_epoch(0), 1);
    assert_int_equal(sh_fetch_session_next_epoch(1), 2);
    assert_int_equal(sh_fetch_session_next_epoch(INT32_MAX - 1), INT32_MAX);
    assert_int_equal(sh_fetch_session_next_epoch(INT32_MAX), 1);
}

static void test_create_and_lookup(void **state)
{
    (void)state;
    sh_fetch_session_cache_t *c = sh_fetch_session_cache_new(&CFG);
    assert_non_null(c);
    sh_fetch_session_t *s = sh_fetch_session_new(false);
    add(NULL, s, "a", 0, 5);
    add(NULL, s, "a", 1, 6);
    add(NULL, s, "b", 0, 7);
    int32_t id = sh_fetch_session_cache_insert(c, s, 1000);
    assert_true(id > 0);
    assert_int_equal(s->id, id);
    assert_int_equal(s->epoch, 1);
    assert_int_equal(sh_fetch_session_cache_insert(c, s, 1000), 0); /* already cached */
    sh_fetch_session_unref(s);
    assert_int_equal(sh_fetch_session_cache_count(c), 1);
    assert_int_equal(sh_fetch_session_cache_partitions(c), 3);
    assert_true(sh_fetch_session_cache_bytes(c) > 0);

    sh_fetch_session_t *got;
    assert_int_equal(sh_fetch_session_cache_lookup(c, id, 1, false, &got), SH_OK);
    assert_ptr_equal(got, s);
    assert_int_equal(sh_fetch_session_cache_lookup(c, id == 1 ? 2 : id - 1, 1, false, &got),
                     SH_KERR_FETCH_SESSION_ID_NOT_FOUND);
    assert_null(got);
    /* session id 0 with an incremental epoch: Kafka finds no session */
    assert_int_equal(sh_fetch_session_cache_lookup(c, 0, 1, false, &got),
                     SH_KERR_FETCH_SESSION_ID_NOT_FOUND);
    assert_int_equal(sh_fetch_session_cache_lookup(c, id, 2, false, &got),
                     SH_KERR_INVALID_FETCH_SESSION_EPOCH);
    /* the epoch is checked before topic ids */
    assert_int_equal(sh_fetch_session_cache_lookup(c, id, 2, true, &got),
                     SH_KERR_INVALID_FETCH_SESSION_EPOCH);
    assert_int_equal(sh_fetch_session_cache_lookup(c, id, 1, true, &got),
                     SH_KERR_FETCH_SESSION_TOPIC_ID_ERROR);

    /* what it remembers */
    sh_fetch_session_key_t k = key_name("a", 1);
    sh_fetch_session_part_t *p = sh_fetch_session_find(s, &k);
    assert_non_null(p);
    assert_int_equal(p->params.fetch_offset, 6);
    assert_int_equal(p->high_watermark, -1);
    k = key_name("a", 2);
    assert_null(sh_fetch_session_find(s, &k));
    k = key_name("c", 0);
    assert_null(sh_fetch_session_find(s, &k));

    /* a full request naming it closes it */
    assert_true(sh_fetch_session_cache_remove(c, id));
    assert_false(sh_fetch_session_cache_remove(c, id));
    assert_int_equal(sh_fetch_session_cache_lookup(c, id, 1, false, &got),
                     SH_KERR_FETCH_SESSION_ID_NOT_FOUND);
    assert_int_equal(sh_fetch_session_cache_count(c), 0);
    assert_int_equal(sh_fetch_session_cache_partitions(c), 0);
    assert_int_equal(sh_fetch_session_cache_bytes(c), 0);
    sh_fetch_session_cache_free(c);
}

static void test_incremental_updates(void **state)
{
    (void)state;
    sh_fetch_session_cache_t *c = sh_fetch_session_cache_new(&CFG);
    sh_fetch_session_t *s = sh_fetch_session_new(false);
    add(NULL, s, "a", 0, 0);
    add(NULL, s, "b", 0, 0);
    add(NULL, s, "a", 1, 0);
    int32_t id = sh_fetch_session_cache_insert(c, s, 0);
    sh_fetch_session_unref(s);
    int64_t bytes0 = sh_fetch_session_cache_bytes(c);
    char order[256];

    /* epoch 1: update a-1, add c-0 and b-1 */
    sh_fetch_session_t *got;
    assert_int_equal(sh_fetch_session_cache_lookup(c, id, 1, false, &got), SH_OK);
    sh_fetch_session_key_t k = key_name("a", 1);
    sh_fetch_session_params_t prm = {42, 3, 777, 5, 4};
    bool added;
    sh_fetch_session_part_t *p = sh_fetch_session_upsert(c, s, &k, &prm, &added);
    assert_false(added);
    assert_int_equal(p->params.fetch_offset, 42);
    assert_int_equal(p->params.log_start_offset, 3);
    assert_int_equal(p->params.partition_max_bytes, 777);
    assert_int_equal(p->params.current_leader_epoch, 5);
    assert_int_equal(p->params.last_fetched_epoch, 4);
    k = key_name("c", 0);
    assert_non_null(sh_fetch_session_upsert(c, s, &k, &prm, &added));
    assert_true(added);
    add(c, s, "b", 1, 9);
    order_of(s, order, sizeof(order));
    assert_string_equal(order, "a-0 b-0 a-1 c-0 b-1"); /* updates stay, adds go last */
    assert_true(sh_fetch_session_cache_bytes(c) > bytes0);
    assert_true(sh_fetch_session_cache_advance(c, s, 10));
    assert_int_equal(s->epoch, 2);
    assert_int_equal(sh_fetch_session_cache_partitions(c), 5);

    /* epoch 2: forget b-0, an unknown partition, c-0 (its topic goes) */
    assert_int_equal(sh_fetch_session_cache_lookup(c, id, 1, false, &got),
                     SH_KERR_INVALID_FETCH_SESSION_EPOCH);
    assert_int_equal(sh_fetch_session_cache_lookup(c, id, 2, false, &got), SH_OK);
    size_t topics = s->ntopics;
    k = key_name("b", 0);
    assert_true(sh_fetch_session_forget(c, s, &k));
    assert_false(sh_fetch_session_forget(c, s, &k));
    k = key_name("zz", 3);
    assert_false(sh_fetch_session_forget(c, s, &k));
    k = key_name("c", 0);
    assert_true(sh_fetch_session_forget(c, s, &k));
    assert_int_equal(s->ntopics, topics - 1);
    order_of(s, order, sizeof(order));
    assert_string_equal(order, "a-0 a-1 b-1");
    assert_true(sh_fetch_session_cache_advance(c, s, 20));
    assert_int_equal(sh_fetch_session_cache_partitions(c), 3);

    /* epoch 3: a partition both listed and forgotten ends up forgotten
     * (fetch.c applies updates, then forgets) and the rest is forgotten
     * too: the session is closed */
    assert_int_equal(sh_fetch_session_cache_lookup(c, id, 3, false, &got), SH_OK);
    add(c, s, "d", 0, 0);
    const char *all[][2] = {{"a", "0"}, {"a", "1"}, {"b", "1"}, {"d", "0"}};
    for (int i = 0; i < 4; i++) {
        k = key_name(all[i][0], atoi(all[i][1]));
        assert_true(sh_fetch_session_forget(c, s, &k));
    }
    assert_int_equal(sh_fetch_session_size(s), 0);
    assert_int_equal(s->ntopics, 0);
    assert_false(sh_fetch_session_cache_advance(c, s, 30));
    /* s was freed with the cache's reference */
    assert_null(sh_fetch_session_cache_find(c, id));
    assert_int_equal(sh_fetch_session_cache_count(c), 0);
    assert_int_equal(sh_fetch_session_cache_bytes(c), 0);
    assert_int_equal(sh_fetch_session_cache_partitions(c), 0);
    sh_fetch_session_cache_free(c);
}

static void test_topic_ids(void **state)
{
    (void)state;
    sh_fetch_session_t *s = sh_fetch_session_new(true);
    sh_fetch_session_params_t prm = params_at(1);
    bool added;
    sh_fetch_session_key_t k1 = key_id(1, 0), k2 = key_id(2, 0);
    /* by id, the name is not looked at */
    k1.topic = sh_slice_str("ignored");
    assert_non_null(sh_fetch_session_upsert(NULL, s, &k1, &prm, &added));
    assert_true(added);
    assert_non_null(sh_fetch_session_upsert(NULL, s, &k2, &prm, &added));
    assert_true(added);
    k1.topic = sh_slice_str("other");
    assert_non_null(sh_fetch_session_upsert(NULL, s, &k1, &prm, &added));
    assert_false(added);
    assert_int_equal(sh_fetch_session_size(s), 2);
    sh_fetch_session_part_t *p = sh_fetch_session_find(s, &k2);
    assert_non_null(p);
    assert_int_equal(p->topic->id.b[0], 2);
    assert_int_equal(p->topic->name.len, 0);
    assert_true(sh_fetch_session_forget(NULL, s, &k2));
    assert_null(sh_fetch_session_find(s, &k2));
    assert_non_null(sh_fetch_session_find(s, &k1));
    sh_fetch_session_unref(s);
}

static void test_inclusion_rules(void **state)
{
    (void)state;
    sh_fetch_session_t *s = sh_fetch_session_new(false);
    sh_fetch_session_part_t *p = add(NULL, s, "t", 0, 0);
    p->high_watermark = 10;
    p->log_start_offset = 0;
    sh_fetch_session_answer_t same = {0, 10, 0, 0};

    assert_false(sh_fetch_session_part_must_respond(p, &same, true));
    sh_fetch_session_answer_t a = same;
    a.records_bytes = 100; /* records are always sent */
    assert_true(sh_fetch_session_part_must_respond(p, &a, true));
    assert_false(sh_fetch_session_part_must_respond(p, &same, true));

    a = same;
    a.high_watermark = 12; /* a new high watermark, without records */
    assert_true(sh_fetch_session_part_must_respond(p, &a, false));
    assert_int_equal(p->high_watermark, 10); /* not remembered without update */
    assert_true(sh_fetch_session_part_must_respond(p, &a, true));
    assert_int_equal(p->high_watermark, 12);
    assert_false(sh_fetch_session_part_must_respond(p, &a, true));

    a.log_start_offset = 4; /* a moved log start */
    assert_true(sh_fetch_session_part_must_respond(p, &a, true));
    assert_int_equal(p->log_start_offset, 4);
    assert_false(sh_fetch_session_part_must_respond(p, &a, true));

    /* errors always go out, and the partition goes out again once the
     * error is gone, with the same high watermark as before */
    sh_fetch_session_answer_t e = {SH_KERR_NOT_LEADER_OR_FOLLOWER, -1, -1, 0};
    assert_true(sh_fetch_session_part_must_respond(p, &e, true));
    assert_int_equal(p->high_watermark, -1);
    assert_true(sh_fetch_session_part_must_respond(p, &e, true));
    assert_true(sh_fetch_session_part_must_respond(p, &a, true));
    assert_int_equal(p->high_watermark, 12);
    assert_int_equal(p->log_start_offset, 4);
    assert_false(sh_fetch_session_part_must_respond(p, &a, true));

    /* a partition added by an incremental request: never sent yet */
    sh_fetch_session_part_t *q = add(NULL, s, "t", 1, 0);
    sh_fetch_session_answer_t z = {0, 0, 0, 0};
    assert_true(sh_fetch_session_part_must_respond(q, &z, true));
    assert_false(sh_fetch_session_part_must_respond(q, &z, true));
    sh_fetch_session_unref(s);
}

static void test_rotate(void **state)
{
    (void)state;
    sh_fetch_session_t *s = sh_fetch_session_new(false);
    sh_fetch_session_part_t *a = add(NULL, s, "t", 0, 0);
    add(NULL, s, "t", 1, 0);
    sh_fetch_session_part_t *c = add(NULL, s, "u", 2, 0);
    char order[128];
    sh_fetch_session_part_rotate(s, a);
    order_of(s, order, sizeof(order));
    assert_string_equal(order, "t-1 u-2 t-0");
    sh_fetch_session_part_rotate(s, a); /* already last */
    sh_fetch_session_part_rotate(s, c);
    order_of(s, order, sizeof(order));
    assert_string_equal(order, "t-1 t-0 u-2");
    /* still found by key after moving */
    sh_fetch_session_key_t k = key_name("u", 2);
    assert_ptr_equal(sh_fetch_session_find(s, &k), c);
    sh_fetch_session_unref(s);
}

static void test_epoch_wrap(void **state)
{
    (void)state;
    sh_fetch_session_cache_t *c = sh_fetch_session_cache_new(&CFG);
    int32_t id = insert_n(c, 1, 0);
    sh_fetch_session_t *s = sh_fetch_session_cache_find(c, id);
    s->epoch = INT32_MAX; /* as after 2^31 - 2 requests */
    sh_fetch_session_t *got;
    assert_int_equal(sh_fetch_session_cache_lookup(c, id, INT32_MAX, false, &got), SH_OK);
    assert_true(sh_fetch_session_cache_advance(c, s, 1));
    assert_int_equal(s->epoch, 1);
    assert_int_equal(sh_fetch_session_cache_lookup(c, id, INT32_MAX, false, &got),
                     SH_KERR_INVALID_FETCH_SESSION_EPOCH);
    assert_int_equal(sh_fetch_session_cache_lookup(c, id, 1, false, &got), SH_OK);
    sh_fetch_session_cache_free(c);
}

static void test_evict_idle(void **state)
{
    (void)state;
    sh_fetch_session_config_t cfg = {2, 100, 64 << 20, 7};
    sh_fetch_session_cache_t *c = sh_fetch_session_cache_new(&cfg);
    int32_t s1 = insert_n(c, 3, 0);
    int32_t s2 = insert_n(c, 3, 10);
    assert_true(s1 > 0 && s2 > 0 && s1 != s2);
    /* full, nothing idle for more than 100 ms, nothing old enough */
    assert_int_equal(insert_n(c, 50, 100), 0);
    assert_int_equal(sh_fetch_session_cache_evictions(c), 0);
    /* s1 was used at 0: idle for 101 ms at 101 */
    int32_t s3 = insert_n(c, 1, 101);
    assert_true(s3 > 0);
    assert_null(sh_fetch_session_cache_find(c, s1));
    assert_non_null(sh_fetch_session_cache_find(c, s2));
    assert_int_equal(sh_fetch_session_cache_evictions(c), 1);
    assert_int_equal(sh_fetch_session_cache_count(c), 2);
    assert_int_equal(sh_fetch_session_cache_partitions(c), 4);

    /* using a session keeps it: s2 used at 150, s3 at 160 */
    sh_fetch_session_t *got;
    assert_int_equal(sh_fetch_session_cache_lookup(c, s2, 1, false, &got), SH_OK);
    assert_true(sh_fetch_session_cache_advance(c, got, 150));
    assert_int_equal(sh_fetch_session_cache_lookup(c, s3, 1, false, &got), SH_OK);
    assert_true(sh_fetch_session_cache_advance(c, got, 160));
    assert_int_equal(insert_n(c, 1, 200), 0);
    /* at 251 s2 (used at 150) is the idle one */
    int32_t s4 = insert_n(c, 1, 251);
    assert_true(s4 > 0);
    assert_null(sh_fetch_session_cache_find(c, s2));
    assert_non_null(sh_fetch_session_cache_find(c, s3));
    sh_fetch_session_cache_free(c);
}

static void test_evict_smaller(void **state)
{
    (void)state;
    sh_fetch_session_config_t cfg = {2, 100, 64 << 20, 9};
    sh_fetch_session_cache_t *c = sh_fetch_session_cache_new(&cfg);
    int32_t small = insert_n(c, 2, 0);
    int32_t big = insert_n(c, 5, 0);
    /* young sessions are not evicted for bigger ones */
    assert_int_equal(insert_n(c, 10, 50), 0);
    /* used at 150 (older than 100 ms then): evictable by size */
    sh_fetch_session_t *got;
    assert_int_equal(sh_fetch_session_cache_lookup(c, small, 1, false, &got), SH_OK);
    assert_true(sh_fetch_session_cache_advance(c, got, 150));
    assert_int_equal(sh_fetch_session_cache_lookup(c, big, 1, false, &got), SH_OK);
    assert_true(sh_fetch_session_cache_advance(c, got, 150));
    /* the same size does not win, nor a smaller one */
    assert_int_equal(insert_n(c, 2, 160), 0);
    assert_int_equal(insert_n(c, 1, 160), 0);
    /* a bigger one evicts the smallest */
    int32_t s3 = insert_n(c, 3, 160);
    assert_true(s3 > 0);
    assert_null(sh_fetch_session_cache_find(c, small));
    assert_non_null(sh_fetch_session_cache_find(c, big));
    /* s3 is young: 4 partitions cannot evict it, nor big (5) */
    assert_int_equal(insert_n(c, 4, 170), 0);
    /* 6 can evict big (old, used at 150), the only evictable one */
    int32_t s4 = insert_n(c, 6, 170);
    assert_true(s4 > 0);
    assert_null(sh_fetch_session_cache_find(c, big));
    assert_non_null(sh_fetch_session_cache_find(c, s3));
    assert_int_equal(sh_fetch_session_cache_evictions(c), 2);
    sh_fetch_session_cache_free(c);
}

static void test_no_slots(void **state)
{
    (void)state;
    sh_fetch_session_config_t cfg = {0, 100, 64 << 20, 1};
    sh_fetch_session_cache_t *c = sh_fetch_session_cache_new(&cfg);
    assert_int_equal(insert_n(c, 1, 0), 0);
    assert_int_equal(insert_n(c, 1, 1000000), 0);
    assert_int_equal(sh_fetch_session_cache_count(c), 0);
    sh_fetch_session_cache_free(c);
}

static void test_byte_bound(void **state)
{
    (void)state;
    /* measure a session of 4 partitions of one topic */
    sh_fetch_session_t *probe = sh_fetch_session_new(false);
    for (int i = 0; i < 4; i++)
        add(NULL, probe, "t", i, 0);
    int64_t four = (int64_t)probe->bytes;
    sh_fetch_session_unref(probe);
    probe = sh_fetch_session_new(false);
    add(NULL, probe, "t", 0, 0);
    int64_t one = (int64_t)probe->bytes;
    sh_fetch_session_unref(probe);
    assert_true(one > 256 && one < four);

    sh_fetch_session_config_t cfg = {10, 100, four + 256, 3};
    sh_fetch_session_cache_t *c = sh_fetch_session_cache_new(&cfg);
    int32_t id = insert_n(c, 4, 0);
    assert_true(id > 0);
    assert_int_equal(sh_fetch_session_cache_bytes(c), four);
    /* no room for a second session while the first is not idle */
    assert_int_equal(insert_n(c, 1, 50), 0);

    /* an incremental add past the bound is refused and changes nothing */
    sh_fetch_session_t *s = sh_fetch_session_cache_find(c, id);
    char longname[300];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    sh_fetch_session_key_t k = key_name(longname, 0);
    sh_fetch_session_params_t prm = params_at(0);
    bool added = true;
    assert_null(sh_fetch_session_upsert(c, s, &k, &prm, &added));
    assert_false(added);
    assert_int_equal(sh_fetch_session_size(s), 4);
    assert_int_equal(s->ntopics, 1);
    assert_int_equal(sh_fetch_session_cache_bytes(c), four);
    assert_int_equal((int64_t)s->bytes, four);
    /* a small one fits (new partition of a known topic) */
    k = key_name("t", 9);
    assert_non_null(sh_fetch_session_upsert(c, s, &k, &prm, &added));
    assert_true(sh_fetch_session_cache_bytes(c) > four);
    assert_true(sh_fetch_session_cache_bytes(c) <= cfg.max_bytes);
    assert_true(sh_fetch_session_forget(c, s, &k));
    assert_int_equal(sh_fetch_session_cache_bytes(c), four);

    /* a session bigger than the bound evicts nothing, even idle ones */
    sh_fetch_session_t *huge = sh_fetch_session_new(false);
    for (int i = 0; i < 64; i++)
        add(NULL, huge, "t", i, 0);
    assert_int_equal(sh_fetch_session_cache_insert(c, huge, 1000), 0);
    sh_fetch_session_unref(huge);
    assert_non_null(sh_fetch_session_cache_find(c, id));
    assert_int_equal(sh_fetch_session_cache_evictions(c), 0);

    /* once idle past eviction_ms, it gives way */
    int32_t id2 = insert_n(c, 1, 101);
    assert_true(id2 > 0);
    assert_null(sh_fetch_session_cache_find(c, id));
    assert_int_equal(sh_fetch_session_cache_bytes(c), one);
    sh_fetch_session_cache_free(c);
}

/* Idle sessions are evicted for bytes only if together they make room. */
static void test_byte_bound_useless_eviction(void **state)
{
    (void)state;
    sh_fetch_session_t *probe = sh_fetch_session_new(false);
    add(NULL, probe, "t", 0, 0);
    int64_t one = (int64_t)probe->bytes;
    add(NULL, probe, "t", 1, 0);
    int64_t two = (int64_t)probe->bytes;
    sh_fetch_session_unref(probe);
    assert_true(two - one > 50);
    sh_fetch_session_config_t cfg = {10, 100, 2 * one + 50, 3};
    sh_fetch_session_cache_t *c = sh_fetch_session_cache_new(&cfg);
    int32_t s1 = insert_n(c, 1, 0), s2 = insert_n(c, 1, 0);
    assert_true(s1 > 0 && s2 > 0);
    sh_fetch_session_t *got;
    assert_int_equal(sh_fetch_session_cache_lookup(c, s2, 1, false, &got), SH_OK);
    assert_true(sh_fetch_session_cache_advance(c, got, 150));
    /* only s1 is idle, and its bytes are not enough for two partitions */
    assert_int_equal(insert_n(c, 2, 160), 0);
    assert_non_null(sh_fetch_session_cache_find(c, s1));
    assert_int_equal(sh_fetch_session_cache_evictions(c), 0);
    /* enough for one */
    assert_true(insert_n(c, 1, 160) > 0);
    assert_null(sh_fetch_session_cache_find(c, s1));
    assert_non_null(sh_fetch_session_cache_find(c, s2));
    assert_int_equal(sh_fetch_session_cache_evictions(c), 1);
    sh_fetch_session_cache_free(c);
}

static void test_refs_outlive_cache(void **state)
{
    (void)state;
    sh_fetch_session_cache_t *c = sh_fetch_session_cache_new(&CFG);
    int32_t id = insert_n(c, 3, 0);
    sh_fetch_session_t *s = sh_fetch_session_ref(sh_fetch_session_cache_find(c, id));
    /* a parked fetch holds it while the session is closed ... */
    assert_true(sh_fetch_session_cache_remove(c, id));
    sh_fetch_session_key_t k = key_name("t", 2);
    sh_fetch_session_part_t *p = sh_fetch_session_find(s, &k);
    assert_non_null(p);
    sh_fetch_session_answer_t a = {0, 5, 0, 10};
    assert_true(sh_fetch_session_part_must_respond(p, &a, true));
    sh_fetch_session_part_rotate(s, p);
    /* ... or the cache goes away */
    int32_t id2 = insert_n(c, 2, 0);
    sh_fetch_session_t *s2 = sh_fetch_session_ref(sh_fetch_session_cache_find(c, id2));
    sh_fetch_session_cache_free(c);
    assert_int_equal(s2->id, id2);
    assert_int_equal(sh_fetch_session_size(s2), 2);
    sh_fetch_session_unref(s2);
    assert_int_equal(s->id, id);
    sh_fetch_session_unref(s);
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static void test_ids_unique(void **state)
{
    (void)state;
    sh_fetch_session_config_t cfg = {3000, 120000, 1 << 30, 5};
    sh_fetch_session_cache_t *c = sh_fetch_session_cache_new(&cfg);
    int32_t *ids = calloc(3000, sizeof(*ids));
    for (int i = 0; i < 3000; i++) {
        ids[i] = insert_n(c, 1, i);
        assert_true(ids[i] > 0 && ids[i] < INT32_MAX);
        assert_int_equal(sh_fetch_session_cache_find(c, ids[i])->id, ids[i]);
    }
    qsort(ids, 3000, sizeof(*ids), cmp_i32);
    for (int i = 1; i < 3000; i++)
        assert_int_not_equal(ids[i - 1], ids[i]);
    assert_int_equal(insert_n(c, 1, 5000), 0); /* full, nothing stale */
    assert_int_equal(sh_fetch_session_cache_count(c), 3000);
    free(ids);
    sh_fetch_session_cache_free(c);
}

/* Random adds, updates and forgets against a plain array model: what
 * find sees, the order and the byte accounting agree throughout. */
static void test_random_model(void **state)
{
    (void)state;
    enum { TOPICS = 12, PARTS = 40, STEPS = 20000 };
    int64_t model[TOPICS][PARTS];   /* fetch offset, -1 = absent */
    for (int t = 0; t < TOPICS; t++)
        for (int p = 0; p < PARTS; p++)
            model[t][p] = -1;
    sh_fetch_session_cache_t *c = sh_fetch_session_cache_new(&CFG);
    int32_t id = insert_n(c, 0, 0); /* empty sessions are admitted */
    assert_true(id > 0);
    sh_fetch_session_t *s = sh_fetch_session_cache_find(c, id);
    unsigned seed = 12345;
    size_t n = 0;
    for (int step = 0; step < STEPS; step++) {
        seed = seed * 1103515245u + 12345u;
        int t = (int)((seed >> 8) % TOPICS), p = (int)((seed >> 16) % PARTS);
        char name[16];
        snprintf(name, sizeof(name), "topic-%d", t);
        sh_fetch_session_key_t k = key_name(name, p);
        if ((seed >> 28) % 3 != 0) {
            sh_fetch_session_params_t prm = params_at(step);
            bool added;
            assert_non_null(sh_fetch_session_upsert(c, s, &k, &prm, &added));
            assert_int_equal(added, model[t][p] < 0);
            n += added;
            model[t][p] = step;
        } else {
            assert_int_equal(sh_fetch_session_forget(c, s, &k), model[t][p] >= 0);
            n -= model[t][p] >= 0;
            model[t][p] = -1;
        }
        assert_int_equal(sh_fetch_session_size(s), n);
    }
    size_t seen = 0;
    for (const sh_fetch_session_part_t *q = sh_fetch_session_first(s); q;
         q = sh_fetch_session_next(q), seen++) {
        int t = atoi((const char *)q->topic->name.ptr + 6);
        assert_int_equal(q->params.fetch_offset, model[t][q->partition]);
    }
    assert_int_equal(seen, n);
    for (int t = 0; t < TOPICS; t++)
        for (int p = 0; p < PARTS; p++) {
            char name[16];
            snprintf(name, sizeof(name), "topic-%d", t);
            sh_fetch_session_key_t k = key_name(name, p);
            const sh_fetch_session_part_t *q = sh_fetch_session_find(s, &k);
            assert_int_equal(q != NULL, model[t][p] >= 0);
            if (q)
                assert_true(sh_fetch_session_forget(c, s, &k));
        }
    /* tables stay as they grew; everything else is given back */
    assert_int_equal(sh_fetch_session_cache_bytes(c),
                     (int64_t)(sizeof(*s) + (s->npbuckets + s->ntbuckets) * sizeof(void *)));
    sh_fetch_session_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_epoch),
        cmocka_unit_test(test_create_and_lookup),
        cmocka_unit_test(test_incremental_updates),
        cmocka_unit_test(test_topic_ids),
        cmocka_unit_test(test_inclusion_rules),
        cmocka_unit_test(test_rotate),
        cmocka_unit_test(test_epoch_wrap),
        cmocka_unit_test(test_evict_idle),
        cmocka_unit_test(test_evict_smaller),
        cmocka_unit_test(test_no_slots),
        cmocka_unit_test(test_byte_bound),
        cmocka_unit_test(test_byte_bound_useless_eviction),
        cmocka_unit_test(test_refs_outlive_cache),
        cmocka_unit_test(test_ids_unique),
        cmocka_unit_test(test_random_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
