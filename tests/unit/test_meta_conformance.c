/*
 * test_meta_conformance.c - what every metadata backend must do, written
 * against sh_meta.h only.
 *
 * The store under test is named by SH_TEST_META_URL; without it each test
 * gets a fresh SQLite file in its own temp directory. The PostgreSQL
 * backend will run this same file against a real server, so the tests do
 * not assume an empty database: names and broker ids carry a random
 * per-test prefix, and lists are checked for what they must contain.
 * Times are synthetic milliseconds passed to the API, never the clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/sh_log.h"
#include "meta/sh_meta.h"

#define OK(x) assert_int_equal((x), SH_OK)

typedef struct {
    char dir[64]; /* temp dir when the URL is our own */
    char url[512];
    sh_meta_t *m;
    sh_arena_t a;
    char pfx[12];     /* random, so a shared database never collides */
    int32_t broker0;  /* random base for broker ids */
} fx_t;

static int fx_setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    const char *url = getenv("SH_TEST_META_URL");
    if (url && url[0]) {
        snprintf(f->url, sizeof(f->url), "%s", url);
    } else {
        snprintf(f->dir, sizeof(f->dir), "/tmp/sh-meta-test-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->url, sizeof(f->url), "sqlite://%s/meta.db", f->dir);
    }
    sh_uuid_t u;
    OK(sh_meta_uuid_random(&u));
    snprintf(f->pfx, sizeof(f->pfx), "%02x%02x%02x%02x", u.b[0], u.b[1], u.b[2], u.b[3]);
    f->broker0 = 1000 + (int32_t)(((uint32_t)u.b[4] << 16 | (uint32_t)u.b[5] << 8 | u.b[9]) %
                                  1000000u) * 10;
    sh_arena_init(&f->a, 4096);
    OK(sh_meta_open(f->url, &f->m));
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;
    sh_meta_close(f->m);
    sh_arena_fini(&f->a);
    if (f->dir[0]) {
        static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
        char p[128];
        for (size_t i = 0; i < 4; i++) {
            snprintf(p, sizeof(p), "%s/meta.db%s", f->dir, suffix[i]);
            unlink(p);
        }
        assert_int_equal(rmdir(f->dir), 0);
    }
    free(f);
    return 0;
}

static void fx_reopen(fx_t *f)
{
    sh_meta_close(f->m);
    f->m = NULL;
    OK(sh_meta_open(f->url, &f->m));
}

/* "<prefix>-<base>", in the fixture arena */
static const char *nm(fx_t *f, const char *base)
{
    size_t n = strlen(f->pfx) + strlen(base) + 2;
    char *s = sh_arena_alloc(&f->a, n);
    assert_non_null(s);
    snprintf(s, n, "%s-%s", f->pfx, base);
    return s;
}

static sh_uuid_t mk_topic(fx_t *f, const char *base, int32_t parts)
{
    sh_uuid_t id;
    OK(sh_meta_topic_create(f->m, nm(f, base), parts, NULL, 0, 1000, &id));
    return id;
}

/* Take leadership of tp as broker, whatever it was; returns the epoch. */
static int32_t lead(fx_t *f, sh_meta_tp_t tp, int32_t broker, int64_t now)
{
    sh_meta_partition_t p;
    int32_t e;
    OK(sh_meta_partition_get(f->m, tp, &p));
    OK(sh_meta_partition_acquire(f->m, tp, broker, p.leader_epoch, now, now + 10000, &e));
    assert_int_equal(e, p.leader_epoch + 1);
    return e;
}

static sh_meta_chunk_t chunk(sh_uuid_t t, int32_t part, int64_t base, int64_t last,
                             int64_t maxts, int64_t boff, int64_t blen, int32_t epoch)
{
    return (sh_meta_chunk_t){.topic_id = t, .partition = part, .base_offset = base,
                             .last_offset = last, .max_timestamp = maxts,
                             .byte_offset = boff, .byte_length = blen,
                             .leader_epoch = epoch};
}

static int64_t hwm(fx_t *f, sh_uuid_t t, int32_t part)
{
    sh_meta_partition_t p;
    OK(sh_meta_partition_get(f->m, (sh_meta_tp_t){t, part}, &p));
    return p.high_watermark;
}

static int has_object(const sh_meta_object_t *o, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(o[i].object_key, key) == 0)
            return 1;
    return 0;
}

/* ---------------------------------------------------------------------- */

static void test_migrations_idempotent(void **state)
{
    fx_t *f = *state;
    int dbv, codev;
    OK(sh_meta_schema_version(f->m, &dbv, &codev));
    assert_true(codev >= 2);
    assert_int_equal(dbv, codev);
    sh_uuid_t id = mk_topic(f, "survives", 2);

    for (int i = 0; i < 2; i++) {
        fx_reopen(f);
        OK(sh_meta_schema_version(f->m, &dbv, &codev));
        assert_int_equal(dbv, codev);
        sh_meta_topic_t t;
        OK(sh_meta_topic_get_by_name(f->m, nm(f, "survives"), &f->a, &t));
        assert_memory_equal(t.topic_id.b, id.b, 16);
        assert_int_equal(t.partition_count, 2);
    }
}

static void test_newer_schema_refused(void **state)
{
    fx_t *f = *state;
    int dbv, codev;
    OK(sh_meta_schema_version(f->m, &dbv, &codev));
    assert_int_equal(sh_meta_testing_schema_version_set(f->m, codev), SH_E_INVAL);
    OK(sh_meta_testing_schema_version_set(f->m, codev + 1));
    OK(sh_meta_schema_version(f->m, &dbv, &codev));
    assert_int_equal(dbv, codev + 1);

    sh_meta_t *m2 = (sh_meta_t *)0x1;
    assert_int_equal(sh_meta_open(f->url, &m2), SH_E_UNSUPPORTED);
    assert_null(m2);

    /* undo through the connection still open, so a shared database is
     * left as it was found */
    OK(sh_meta_testing_schema_version_unset(f->m, codev + 1));
    fx_reopen(f);
    OK(sh_meta_schema_version(f->m, &dbv, &codev));
    assert_int_equal(dbv, codev);
}

static void test_cluster_id_stable(void **state)
{
    fx_t *f = *state;
    char id1[SH_META_CLUSTER_ID_LEN + 1], id2[SH_META_CLUSTER_ID_LEN + 1];
    OK(sh_meta_cluster_id_get(f->m, id1));
    assert_int_equal(strlen(id1), SH_META_CLUSTER_ID_LEN);
    for (size_t i = 0; i < SH_META_CLUSTER_ID_LEN; i++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                               "0123456789-_",
                               id1[i]));
    OK(sh_meta_cluster_id_get(f->m, id2));
    assert_string_equal(id1, id2);
    fx_reopen(f);
    OK(sh_meta_cluster_id_get(f->m, id2));
    assert_string_equal(id1, id2);
}

static const sh_meta_broker_t *find_broker(const sh_meta_broker_t *bs, size_t n, int32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (bs[i].broker_id == id)
            return &bs[i];
    return NULL;
}

static void test_brokers(void **state)
{
    fx_t *f = *state;
    int32_t id = f->broker0, id2 = f->broker0 + 1;
    sh_meta_endpoint_t eps[] = {
        {"SSL", "b1.example", 9093, 1},
        {"PLAINTEXT", "b1.example", 9092, 0},
    };
    sh_meta_broker_t b = {.broker_id = id, .rack = "rack-a", .endpoints = eps,
                          .nendpoints = 2};
    int64_t e1, e2, e3;
    OK(sh_meta_broker_register(f->m, &b, 5000, &e1));
    OK(sh_meta_broker_heartbeat(f->m, id, e1, 6000));
    sh_meta_broker_t b2 = {.broker_id = id2, .endpoints = eps, .nendpoints = 1};
    OK(sh_meta_broker_register(f->m, &b2, 5000, &e3));

    /* a restart: the old incarnation's heartbeats are fenced */
    OK(sh_meta_broker_register(f->m, &b, 7000, &e2));
    assert_true(e2 > e1);
    assert_int_equal(sh_meta_broker_heartbeat(f->m, id, e1, 8000), SH_E_FENCED);
    OK(sh_meta_broker_heartbeat(f->m, id, e2, 9000));
    assert_int_equal(sh_meta_broker_heartbeat(f->m, f->broker0 + 7, 1, 9000),
                     SH_E_NOTFOUND);

    sh_meta_broker_t *bs;
    size_t n;
    OK(sh_meta_broker_list(f->m, 8500, &f->a, &bs, &n));
    const sh_meta_broker_t *got = find_broker(bs, n, id);
    assert_non_null(got);
    assert_null(find_broker(bs, n, id2)); /* last heartbeat 5000 < 8500 */
    assert_int_equal(got->broker_epoch, e2);
    assert_string_equal(got->rack, "rack-a");
    assert_int_equal(got->heartbeat_ms, 9000);
    assert_int_equal(got->nendpoints, 2);
    assert_string_equal(got->endpoints[0].listener, "PLAINTEXT"); /* by listener */
    assert_int_equal(got->endpoints[0].port, 9092);
    assert_string_equal(got->endpoints[1].listener, "SSL");
    assert_string_equal(got->endpoints[1].host, "b1.example");
    assert_int_equal(got->endpoints[1].security_protocol, 1);
    for (size_t i = 1; i < n; i++)
        assert_true(bs[i - 1].broker_id < bs[i].broker_id);

    OK(sh_meta_broker_list(f->m, 0, &f->a, &bs, &n));
    got = find_broker(bs, n, id2);
    assert_non_null(got);
    assert_null(got->rack);
    assert_int_equal(got->nendpoints, 1);

    /* re-registration replaces endpoints */
    b.nendpoints = 1;
    b.endpoints = &eps[1];
    OK(sh_meta_broker_register(f->m, &b, 10000, &e2));
    OK(sh_meta_broker_list(f->m, 0, &f->a, &bs, &n));
    got = find_broker(bs, n, id);
    assert_int_equal(got->nendpoints, 1);
    assert_string_equal(got->endpoints[0].listener, "PLAINTEXT");

    sh_meta_endpoint_t dup[] = {{"X", "h", 1, 0}, {"X", "h", 2, 0}};
    sh_meta_broker_t bad = {.broker_id = id, .endpoints = dup, .nendpoints = 2};
    assert_int_equal(sh_meta_broker_register(f->m, &bad, 1, &e3), SH_E_INVAL);

    assert_int_equal(sh_meta_broker_unregister(f->m, id, e1), SH_E_FENCED);
    OK(sh_meta_broker_unregister(f->m, id, e2));
    OK(sh_meta_broker_list(f->m, 0, &f->a, &bs, &n));
    assert_null(find_broker(bs, n, id));
    assert_int_equal(sh_meta_broker_unregister(f->m, id, e2), SH_E_NOTFOUND);
}

static void test_topic_lifecycle(void **state)
{
    fx_t *f = *state;
    const char *name = nm(f, "orders");
    sh_meta_config_t cfg[] = {{"retention.ms", "86400000"}, {"cleanup.policy", "delete"}};
    sh_uuid_t id, zero = {{0}};
    OK(sh_meta_topic_create(f->m, name, 3, cfg, 2, 424242, &id));
    assert_memory_not_equal(id.b, zero.b, 16);

    sh_meta_topic_t t1, t2;
    OK(sh_meta_topic_get_by_name(f->m, name, &f->a, &t1));
    OK(sh_meta_topic_get_by_id(f->m, id, &f->a, &t2));
    assert_memory_equal(t1.topic_id.b, id.b, 16);
    assert_string_equal(t1.name, name);
    assert_string_equal(t2.name, name);
    assert_int_equal(t1.partition_count, 3);
    assert_int_equal(t1.created_ms, 424242);
    assert_int_equal(t1.state, SH_META_TOPIC_LIVE);

    sh_meta_partition_t *ps;
    size_t n;
    OK(sh_meta_partition_list(f->m, id, &f->a, &ps, &n));
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ps[i].partition, (int32_t)i);
        assert_memory_equal(ps[i].topic_id.b, id.b, 16);
        assert_int_equal(ps[i].leader_id, -1);
        assert_int_equal(ps[i].leader_epoch, -1);
        assert_int_equal(ps[i].log_start_offset, 0);
        assert_int_equal(ps[i].high_watermark, 0);
    }

    sh_meta_topic_t *ts;
    OK(sh_meta_topic_list(f->m, &f->a, &ts, &n));
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (i)
            assert_true(strcmp(ts[i - 1].name, ts[i].name) < 0);
        seen += strcmp(ts[i].name, name) == 0;
    }
    assert_int_equal(seen, 1);

    /* a live topic cannot be dropped */
    sh_meta_object_t *freed;
    assert_int_equal(sh_meta_topic_drop(f->m, id, &f->a, &freed, &n), SH_E_INVAL);

    OK(sh_meta_topic_mark_deleting(f->m, id));
    OK(sh_meta_topic_mark_deleting(f->m, id)); /* idempotent */
    OK(sh_meta_topic_get_by_id(f->m, id, &f->a, &t2));
    assert_int_equal(t2.state, SH_META_TOPIC_DELETING);
    sh_uuid_t id2;
    assert_int_equal(sh_meta_topic_create(f->m, name, 1, NULL, 0, 1, &id2),
                     SH_KERR_TOPIC_ALREADY_EXISTS);
    assert_int_equal(sh_meta_topic_partitions_add(f->m, id, 5),
                     SH_KERR_INVALID_TOPIC_EXCEPTION);
    int32_t e;
    assert_int_equal(sh_meta_partition_acquire(f->m, (sh_meta_tp_t){id, 0}, 1, -1, 0, 10, &e),
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);

    OK(sh_meta_topic_drop(f->m, id, &f->a, &freed, &n));
    assert_int_equal(n, 0);
    assert_int_equal(sh_meta_topic_get_by_name(f->m, name, &f->a, &t1),
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(sh_meta_topic_get_by_id(f->m, id, &f->a, &t1), SH_KERR_UNKNOWN_TOPIC_ID);
    sh_meta_config_t *cs;
    assert_int_equal(sh_meta_topic_configs_get(f->m, id, &f->a, &cs, &n),
                     SH_KERR_UNKNOWN_TOPIC_ID);
    assert_int_equal(sh_meta_partition_list(f->m, id, &f->a, &ps, &n),
                     SH_KERR_UNKNOWN_TOPIC_ID);
    assert_int_equal(sh_meta_topic_mark_deleting(f->m, id), SH_KERR_UNKNOWN_TOPIC_ID);
    assert_int_equal(sh_meta_topic_drop(f->m, id, &f->a, &freed, &n),
                     SH_KERR_UNKNOWN_TOPIC_ID);

    /* the name is free again, under a new id, with no old configs */
    OK(sh_meta_topic_create(f->m, name, 1, NULL, 0, 1, &id2));
    assert_memory_not_equal(id.b, id2.b, 16);
    OK(sh_meta_topic_configs_get(f->m, id2, &f->a, &cs, &n));
    assert_int_equal(n, 0);
}

static void test_topic_create_invalid(void **state)
{
    fx_t *f = *state;
    sh_uuid_t id;
    static const char *const bad[] = {"", ".", "..", "a b", "a/b", "caf\xc3\xa9", "x\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(sh_meta_topic_create(f->m, bad[i], 1, NULL, 0, 1, &id),
                         SH_KERR_INVALID_TOPIC_EXCEPTION);
    assert_int_equal(sh_meta_topic_create(f->m, NULL, 1, NULL, 0, 1, &id),
                     SH_KERR_INVALID_TOPIC_EXCEPTION);
    char longname[SH_META_TOPIC_NAME_MAX + 2];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    memcpy(longname, f->pfx, strlen(f->pfx));
    assert_int_equal(sh_meta_topic_create(f->m, longname, 1, NULL, 0, 1, &id),
                     SH_KERR_INVALID_TOPIC_EXCEPTION);
    longname[SH_META_TOPIC_NAME_MAX] = '\0';
    OK(sh_meta_topic_create(f->m, longname, 1, NULL, 0, 1, &id));

    const char *name = nm(f, "t.x_y-Z9");
    assert_int_equal(sh_meta_topic_create(f->m, name, 0, NULL, 0, 1, &id),
                     SH_KERR_INVALID_PARTITIONS);
    assert_int_equal(sh_meta_topic_create(f->m, name, -3, NULL, 0, 1, &id),
                     SH_KERR_INVALID_PARTITIONS);
    assert_int_equal(sh_meta_topic_create(f->m, name, SH_META_PARTITIONS_MAX + 1, NULL, 0, 1,
                                          &id),
                     SH_KERR_INVALID_PARTITIONS);
    sh_meta_config_t dup[] = {{"a", "1"}, {"b", "2"}, {"a", "3"}};
    assert_int_equal(sh_meta_topic_create(f->m, name, 1, dup, 3, 1, &id),
                     SH_KERR_INVALID_CONFIG);
    sh_meta_config_t nullv[] = {{"a", NULL}};
    assert_int_equal(sh_meta_topic_create(f->m, name, 1, nullv, 1, 1, &id),
                     SH_KERR_INVALID_CONFIG);
    sh_meta_topic_t t;
    assert_int_equal(sh_meta_topic_get_by_name(f->m, name, &f->a, &t),
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);

    OK(sh_meta_topic_create(f->m, name, 2, NULL, 0, 1, &id));
    sh_uuid_t id2;
    assert_int_equal(sh_meta_topic_create(f->m, name, 7, NULL, 0, 1, &id2),
                     SH_KERR_TOPIC_ALREADY_EXISTS);
    OK(sh_meta_topic_get_by_name(f->m, name, &f->a, &t));
    assert_memory_equal(t.topic_id.b, id.b, 16);
    assert_int_equal(t.partition_count, 2);
}

static void test_configs(void **state)
{
    fx_t *f = *state;
    sh_meta_config_t cfg[] = {{"retention.ms", "1000"}, {"cleanup.policy", "delete"}};
    sh_uuid_t id;
    OK(sh_meta_topic_create(f->m, nm(f, "cfg"), 1, cfg, 2, 1, &id));
    sh_meta_config_t *cs;
    size_t n;
    OK(sh_meta_topic_configs_get(f->m, id, &f->a, &cs, &n));
    assert_int_equal(n, 2);
    assert_string_equal(cs[0].key, "cleanup.policy"); /* by key */
    assert_string_equal(cs[0].value, "delete");
    assert_string_equal(cs[1].key, "retention.ms");
    assert_string_equal(cs[1].value, "1000");

    sh_meta_config_t inc[] = {
        {"retention.ms", "2000"}, {"cleanup.policy", NULL}, {"segment.bytes", "1048576"}};
    OK(sh_meta_topic_configs_alter(f->m, id, inc, 3, 0));
    OK(sh_meta_topic_configs_get(f->m, id, &f->a, &cs, &n));
    assert_int_equal(n, 2);
    assert_string_equal(cs[0].key, "retention.ms");
    assert_string_equal(cs[0].value, "2000");
    assert_string_equal(cs[1].key, "segment.bytes");

    /* deleting an absent key is fine; a repeated key refuses the batch */
    sh_meta_config_t dup[] = {{"x", "1"}, {"never.set", NULL}, {"x", NULL}};
    assert_int_equal(sh_meta_topic_configs_alter(f->m, id, dup, 3, 0), SH_KERR_INVALID_CONFIG);
    sh_meta_config_t empty[] = {{"", "1"}};
    assert_int_equal(sh_meta_topic_configs_alter(f->m, id, empty, 1, 0),
                     SH_KERR_INVALID_CONFIG);
    OK(sh_meta_topic_configs_alter(f->m, id, &dup[1], 1, 0));
    OK(sh_meta_topic_configs_get(f->m, id, &f->a, &cs, &n));
    assert_int_equal(n, 2);

    sh_meta_config_t all[] = {{"max.message.bytes", "100"}};
    OK(sh_meta_topic_configs_alter(f->m, id, all, 1, 1));
    OK(sh_meta_topic_configs_get(f->m, id, &f->a, &cs, &n));
    assert_int_equal(n, 1);
    assert_string_equal(cs[0].key, "max.message.bytes");
    assert_string_equal(cs[0].value, "100");
    OK(sh_meta_topic_configs_alter(f->m, id, NULL, 0, 1));
    OK(sh_meta_topic_configs_get(f->m, id, &f->a, &cs, &n));
    assert_int_equal(n, 0);

    sh_uuid_t nope;
    OK(sh_meta_uuid_random(&nope));
    assert_int_equal(sh_meta_topic_configs_alter(f->m, nope, all, 1, 0),
                     SH_KERR_UNKNOWN_TOPIC_ID);
}

static void test_partitions_add(void **state)
{
    fx_t *f = *state;
    sh_uuid_t id = mk_topic(f, "grow", 2);
    int32_t e = lead(f, (sh_meta_tp_t){id, 1}, 1, 100);
    OK(sh_meta_topic_partitions_add(f->m, id, 5));
    assert_int_equal(sh_meta_topic_partitions_add(f->m, id, 5), SH_KERR_INVALID_PARTITIONS);
    assert_int_equal(sh_meta_topic_partitions_add(f->m, id, 3), SH_KERR_INVALID_PARTITIONS);
    assert_int_equal(sh_meta_topic_partitions_add(f->m, id, SH_META_PARTITIONS_MAX + 1),
                     SH_KERR_INVALID_PARTITIONS);
    sh_meta_partition_t *ps;
    size_t n;
    OK(sh_meta_partition_list(f->m, id, &f->a, &ps, &n));
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ps[i].partition, (int32_t)i);
    assert_int_equal(ps[1].leader_epoch, e); /* existing partitions untouched */
    assert_int_equal(ps[4].leader_epoch, -1);
    sh_meta_topic_t t;
    OK(sh_meta_topic_get_by_id(f->m, id, &f->a, &t));
    assert_int_equal(t.partition_count, 5);
    sh_meta_partition_t p;
    OK(sh_meta_partition_get(f->m, (sh_meta_tp_t){id, 4}, &p));
    assert_int_equal(sh_meta_partition_get(f->m, (sh_meta_tp_t){id, 5}, &p),
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(sh_meta_partition_get(f->m, (sh_meta_tp_t){id, -1}, &p),
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    sh_uuid_t nope;
    OK(sh_meta_uuid_random(&nope));
    assert_int_equal(sh_meta_topic_partitions_add(f->m, nope, 9), SH_KERR_UNKNOWN_TOPIC_ID);
}

static void test_leadership_epochs(void **state)
{
    fx_t *f = *state;
    sh_uuid_t id = mk_topic(f, "lead", 1);
    sh_meta_tp_t tp = {id, 0};
    sh_meta_partition_t p;
    int32_t e;

    OK(sh_meta_partition_acquire(f->m, tp, 1, -1, 1000, 5000, &e));
    assert_int_equal(e, 0);
    OK(sh_meta_partition_get(f->m, tp, &p));
    assert_int_equal(p.leader_id, 1);
    assert_int_equal(p.leader_epoch, 0);
    assert_int_equal(p.lease_expiry_ms, 5000);

    /* broker 2 while broker 1's lease runs: wait */
    assert_int_equal(sh_meta_partition_acquire(f->m, tp, 2, 0, 4999, 9000, &e), SH_E_AGAIN);
    /* with a stale view of the epoch: fenced, whatever the lease */
    assert_int_equal(sh_meta_partition_acquire(f->m, tp, 2, -1, 6000, 9000, &e), SH_E_FENCED);
    OK(sh_meta_partition_get(f->m, tp, &p));
    assert_int_equal(p.leader_id, 1);
    assert_int_equal(p.leader_epoch, 0);

    /* lease over: broker 2 takes it */
    OK(sh_meta_partition_acquire(f->m, tp, 2, 0, 5000, 9000, &e));
    assert_int_equal(e, 1);
    assert_int_equal(sh_meta_partition_renew(f->m, tp, 0, 99999), SH_E_FENCED);
    OK(sh_meta_partition_renew(f->m, tp, 1, 12000));
    OK(sh_meta_partition_get(f->m, tp, &p));
    assert_int_equal(p.leader_id, 2);
    assert_int_equal(p.lease_expiry_ms, 12000);

    /* the holder may re-acquire during its own lease (a restart) */
    OK(sh_meta_partition_acquire(f->m, tp, 2, 1, 6000, 13000, &e));
    assert_int_equal(e, 2);

    assert_int_equal(sh_meta_partition_release(f->m, tp, 1), SH_E_FENCED);
    OK(sh_meta_partition_release(f->m, tp, 2));
    OK(sh_meta_partition_get(f->m, tp, &p));
    assert_int_equal(p.leader_id, -1);
    assert_int_equal(p.leader_epoch, 2);
    assert_int_equal(sh_meta_partition_renew(f->m, tp, 2, 20000), SH_E_FENCED);

    /* released: anyone may take it at once */
    OK(sh_meta_partition_acquire(f->m, tp, 3, 2, 0, 20000, &e));
    assert_int_equal(e, 3);

    sh_meta_tp_t nope = {id, 7};
    assert_int_equal(sh_meta_partition_acquire(f->m, nope, 3, -1, 0, 1, &e),
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(sh_meta_partition_renew(f->m, nope, 0, 1),
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(sh_meta_partition_release(f->m, nope, 0),
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(sh_meta_partition_acquire(f->m, tp, -1, 3, 0, 1, &e), SH_E_INVAL);
}

static void chunk_eq(const sh_meta_chunk_t *got, const sh_meta_chunk_t *want, const char *key)
{
    assert_memory_equal(got->topic_id.b, want->topic_id.b, 16);
    assert_int_equal(got->partition, want->partition);
    assert_int_equal(got->base_offset, want->base_offset);
    assert_int_equal(got->last_offset, want->last_offset);
    assert_int_equal(got->max_timestamp, want->max_timestamp);
    assert_string_equal(got->object_key, key);
    assert_int_equal(got->byte_offset, want->byte_offset);
    assert_int_equal(got->byte_length, want->byte_length);
    assert_int_equal(got->leader_epoch, want->leader_epoch);
}

static void test_chunks_commit_and_lookup(void **state)
{
    fx_t *f = *state;
    sh_uuid_t id = mk_topic(f, "data", 2);
    int32_t e0 = lead(f, (sh_meta_tp_t){id, 0}, 1, 0);
    int32_t e1 = lead(f, (sh_meta_tp_t){id, 1}, 1, 0);
    const char *ka = nm(f, "obj-a"), *kb = nm(f, "obj-b");

    sh_meta_chunk_t a[] = {
        chunk(id, 0, 0, 9, 1000, 0, 100, e0),
        chunk(id, 1, 0, 4, 1500, 100, 50, e1),
        chunk(id, 0, 10, 19, 3000, 150, 100, e0), /* second chunk of p0 */
    };
    OK(sh_meta_chunks_commit(f->m, ka, 250, a, 3, 1));
    assert_int_equal(hwm(f, id, 0), 20);
    assert_int_equal(hwm(f, id, 1), 5);
    sh_meta_chunk_t b[] = {chunk(id, 0, 20, 29, 2000, 0, 80, e0)};
    b[0].object_key = kb; /* allowed when it matches */
    OK(sh_meta_chunks_commit(f->m, kb, 80, b, 1, 2));
    assert_int_equal(hwm(f, id, 0), 30);

    sh_meta_tp_t p0 = {id, 0};
    sh_meta_chunk_t *cs;
    size_t n;
    OK(sh_meta_chunks_find(f->m, p0, 0, 10, &f->a, &cs, &n));
    assert_int_equal(n, 3);
    chunk_eq(&cs[0], &a[0], ka);
    chunk_eq(&cs[1], &a[2], ka);
    chunk_eq(&cs[2], &b[0], kb);
    OK(sh_meta_chunks_find(f->m, p0, 15, 1, &f->a, &cs, &n));
    assert_int_equal(n, 1);
    chunk_eq(&cs[0], &a[2], ka);
    OK(sh_meta_chunks_find(f->m, p0, 19, 5, &f->a, &cs, &n));
    assert_int_equal(n, 2);
    assert_int_equal(cs[0].base_offset, 10);
    OK(sh_meta_chunks_find(f->m, p0, 30, 5, &f->a, &cs, &n));
    assert_int_equal(n, 0);
    OK(sh_meta_chunks_find(f->m, (sh_meta_tp_t){id, 1}, 0, 5, &f->a, &cs, &n));
    assert_int_equal(n, 1);
    chunk_eq(&cs[0], &a[1], ka);
    assert_int_equal(sh_meta_chunks_find(f->m, (sh_meta_tp_t){id, 2}, 0, 5, &f->a, &cs, &n),
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(sh_meta_chunks_find(f->m, p0, 0, 0, &f->a, &cs, &n), SH_E_INVAL);

    /* by timestamp: the lowest offset whose max timestamp reaches T */
    sh_meta_chunk_t c;
    OK(sh_meta_chunks_find_by_time(f->m, p0, 500, &f->a, &c));
    assert_int_equal(c.base_offset, 0);
    OK(sh_meta_chunks_find_by_time(f->m, p0, 1000, &f->a, &c));
    assert_int_equal(c.base_offset, 0);
    OK(sh_meta_chunks_find_by_time(f->m, p0, 1001, &f->a, &c));
    assert_int_equal(c.base_offset, 10);
    OK(sh_meta_chunks_find_by_time(f->m, p0, 2500, &f->a, &c));
    assert_int_equal(c.base_offset, 10);
    chunk_eq(&c, &a[2], ka);
    assert_int_equal(sh_meta_chunks_find_by_time(f->m, p0, 3001, &f->a, &c), SH_E_NOTFOUND);
    assert_int_equal(sh_meta_chunks_find_by_time(f->m, (sh_meta_tp_t){id, 9}, 0, &f->a, &c),
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);

    /* a gap is refused and writes nothing; the same key then works */
    const char *kc = nm(f, "obj-c");
    sh_meta_chunk_t gap[] = {chunk(id, 1, 5, 9, 1, 0, 10, e1), chunk(id, 0, 31, 40, 1, 10, 10, e0)};
    assert_int_equal(sh_meta_chunks_commit(f->m, kc, 20, gap, 2, 3), SH_E_INVAL);
    assert_int_equal(hwm(f, id, 1), 5);
    assert_int_equal(hwm(f, id, 0), 30);
    sh_meta_chunk_t overlap[] = {chunk(id, 0, 25, 40, 1, 0, 10, e0)};
    assert_int_equal(sh_meta_chunks_commit(f->m, kc, 20, overlap, 1, 3), SH_E_INVAL);
    gap[1].base_offset = 30;
    OK(sh_meta_chunks_commit(f->m, kc, 20, gap, 2, 3));
    assert_int_equal(hwm(f, id, 1), 10);
    assert_int_equal(hwm(f, id, 0), 41);

    /* a retried commit (reply lost) is success and changes nothing; the
     * same key with other contents is a collision */
    OK(sh_meta_chunks_commit(f->m, kb, 80, b, 1, 9));
    assert_int_equal(hwm(f, id, 0), 41);
    sh_meta_chunk_t other[] = {chunk(id, 0, 41, 50, 1, 0, 80, e0)};
    assert_int_equal(sh_meta_chunks_commit(f->m, kb, 80, other, 1, 9), SH_E_EXISTS);
    assert_int_equal(hwm(f, id, 0), 41);

    /* malformed chunk lists */
    sh_meta_chunk_t big[] = {chunk(id, 0, 41, 50, 1, 10, 80, e0)};
    assert_int_equal(sh_meta_chunks_commit(f->m, nm(f, "obj-d"), 80, big, 1, 9), SH_E_INVAL);
    sh_meta_chunk_t back[] = {chunk(id, 0, 41, 40, 1, 0, 1, e0)};
    assert_int_equal(sh_meta_chunks_commit(f->m, nm(f, "obj-d"), 80, back, 1, 9), SH_E_INVAL);
    sh_meta_chunk_t wrongkey[] = {chunk(id, 0, 41, 50, 1, 0, 1, e0)};
    wrongkey[0].object_key = ka;
    assert_int_equal(sh_meta_chunks_commit(f->m, nm(f, "obj-d"), 80, wrongkey, 1, 9),
                     SH_E_INVAL);
    assert_int_equal(sh_meta_chunks_commit(f->m, nm(f, "obj-d"), 80, wrongkey, 0, 9),
                     SH_E_INVAL);
    assert_int_equal(sh_meta_chunks_commit(f->m, "", 80, big, 1, 9), SH_E_INVAL);
    sh_meta_chunk_t nopart[] = {chunk(id, 5, 0, 1, 1, 0, 1, 0)};
    assert_int_equal(sh_meta_chunks_commit(f->m, nm(f, "obj-d"), 80, nopart, 1, 9),
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(hwm(f, id, 0), 41);
}

static void test_fencing(void **state)
{
    fx_t *f = *state;
    sh_uuid_t id = mk_topic(f, "fence", 2);
    sh_meta_tp_t p0 = {id, 0}, p1 = {id, 1};
    int32_t old0 = lead(f, p0, 1, 0);
    int32_t e1 = lead(f, p1, 1, 0);
    const char *k1 = nm(f, "first");
    sh_meta_chunk_t first[] = {chunk(id, 0, 0, 9, 1, 0, 10, old0)};
    OK(sh_meta_chunks_commit(f->m, k1, 10, first, 1, 1));

    /* broker 1 pauses; its lease runs out; broker 2 takes p0 */
    int32_t new0 = lead(f, p0, 2, 20000);
    assert_true(new0 > old0);

    /* broker 1 wakes up and commits p1 (still its own) and p0 (not any
     * more) in one object: all or nothing */
    const char *k2 = nm(f, "zombie");
    sh_meta_chunk_t zombie[] = {chunk(id, 1, 0, 4, 1, 0, 10, e1),
                                chunk(id, 0, 10, 19, 1, 10, 10, old0)};
    assert_int_equal(sh_meta_chunks_commit(f->m, k2, 20, zombie, 2, 2), SH_E_FENCED);
    assert_int_equal(hwm(f, id, 0), 10);
    assert_int_equal(hwm(f, id, 1), 0);
    sh_meta_chunk_t *cs;
    size_t n;
    OK(sh_meta_chunks_find(f->m, p1, 0, 10, &f->a, &cs, &n));
    assert_int_equal(n, 0);
    OK(sh_meta_chunks_find(f->m, p0, 0, 10, &f->a, &cs, &n));
    assert_int_equal(n, 1);
    sh_meta_object_t *objs;
    OK(sh_meta_topic_objects(f->m, id, &f->a, &objs, &n));
    assert_int_equal(n, 1);
    assert_string_equal(objs[0].object_key, k1);
    OK(sh_meta_objects_unreferenced(f->m, 1000, &f->a, &objs, &n));
    assert_false(has_object(objs, n, k2));

    /* the new leader commits the same range under its epoch */
    sh_meta_chunk_t fresh[] = {chunk(id, 0, 10, 19, 1, 0, 10, new0)};
    OK(sh_meta_chunks_commit(f->m, k2, 10, fresh, 1, 3));
    assert_int_equal(hwm(f, id, 0), 20);

    /* a future epoch is as wrong as a past one */
    sh_meta_chunk_t future[] = {chunk(id, 1, 0, 4, 1, 0, 10, e1 + 1)};
    assert_int_equal(sh_meta_chunks_commit(f->m, nm(f, "future"), 10, future, 1, 4),
                     SH_E_FENCED);

    /* a topic being deleted takes no more data */
    OK(sh_meta_topic_mark_deleting(f->m, id));
    sh_meta_chunk_t late[] = {chunk(id, 1, 0, 4, 1, 0, 10, e1)};
    assert_int_equal(sh_meta_chunks_commit(f->m, nm(f, "late"), 10, late, 1, 4),
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(hwm(f, id, 1), 0);
}

static void test_log_start_and_refcounts(void **state)
{
    fx_t *f = *state;
    sh_uuid_t id = mk_topic(f, "trim", 2);
    sh_meta_tp_t p0 = {id, 0}, p1 = {id, 1};
    int32_t e0 = lead(f, p0, 1, 0), e1 = lead(f, p1, 1, 0);
    const char *kx = nm(f, "x"), *ky = nm(f, "y"), *kz = nm(f, "z");
    sh_meta_chunk_t x[] = {chunk(id, 0, 0, 9, 1, 0, 10, e0), chunk(id, 1, 0, 9, 1, 10, 10, e1)};
    sh_meta_chunk_t y[] = {chunk(id, 0, 10, 19, 1, 0, 20, e0)};
    sh_meta_chunk_t z[] = {chunk(id, 0, 20, 29, 1, 0, 30, e0)};
    OK(sh_meta_chunks_commit(f->m, kx, 20, x, 2, 1));
    OK(sh_meta_chunks_commit(f->m, ky, 20, y, 1, 1));
    OK(sh_meta_chunks_commit(f->m, kz, 30, z, 1, 1));

    sh_meta_object_t *freed;
    size_t n;
    /* 15 falls inside y's chunk: only x's p0 chunk is wholly below */
    OK(sh_meta_partition_log_start_advance(f->m, p0, 15, &f->a, &freed, &n));
    assert_int_equal(n, 0); /* x still holds p1's chunk */
    sh_meta_partition_t p;
    OK(sh_meta_partition_get(f->m, p0, &p));
    assert_int_equal(p.log_start_offset, 15);
    sh_meta_chunk_t *cs;
    size_t nc;
    OK(sh_meta_chunks_find(f->m, p0, 0, 10, &f->a, &cs, &nc));
    assert_int_equal(nc, 2);
    assert_int_equal(cs[0].base_offset, 10);
    int64_t bytes, chunks;
    OK(sh_meta_partition_size(f->m, p0, &bytes, &chunks));
    assert_int_equal(bytes, 50);
    assert_int_equal(chunks, 2);

    sh_meta_object_t *objs;
    size_t no;
    OK(sh_meta_topic_objects(f->m, id, &f->a, &objs, &no));
    assert_int_equal(no, 3);
    for (size_t i = 0; i < no; i++)
        if (strcmp(objs[i].object_key, kx) == 0)
            assert_int_equal(objs[i].live_chunks, 1);

    OK(sh_meta_partition_log_start_advance(f->m, p0, 20, &f->a, &freed, &n));
    assert_int_equal(n, 1);
    assert_string_equal(freed[0].object_key, ky);
    assert_int_equal(freed[0].live_chunks, 0);
    assert_int_equal(freed[0].size_bytes, 20);
    OK(sh_meta_partition_log_start_advance(f->m, p1, 10, &f->a, &freed, &n));
    assert_int_equal(n, 1);
    assert_string_equal(freed[0].object_key, kx);

    /* going backwards is a no-op sweep */
    OK(sh_meta_partition_log_start_advance(f->m, p0, 5, &f->a, &freed, &n));
    assert_int_equal(n, 0);
    OK(sh_meta_partition_get(f->m, p0, &p));
    assert_int_equal(p.log_start_offset, 20);
    assert_int_equal(p.high_watermark, 30);

    OK(sh_meta_objects_unreferenced(f->m, 1000, &f->a, &objs, &no));
    assert_true(has_object(objs, no, kx));
    assert_true(has_object(objs, no, ky));
    assert_false(has_object(objs, no, kz));

    const char *live[] = {kx, kz};
    assert_int_equal(sh_meta_objects_forget(f->m, live, 2), SH_E_INVAL);
    OK(sh_meta_objects_unreferenced(f->m, 1000, &f->a, &objs, &no));
    assert_true(has_object(objs, no, kx)); /* refused as a whole */
    const char *dead[] = {kx, ky};
    OK(sh_meta_objects_forget(f->m, dead, 2));
    OK(sh_meta_objects_forget(f->m, dead, 2)); /* idempotent */
    OK(sh_meta_objects_unreferenced(f->m, 1000, &f->a, &objs, &no));
    assert_false(has_object(objs, no, kx));
    assert_false(has_object(objs, no, ky));

    assert_int_equal(sh_meta_partition_log_start_advance(f->m, (sh_meta_tp_t){id, 3}, 1,
                                                         &f->a, &freed, &n),
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(sh_meta_partition_log_start_advance(f->m, p0, -1, &f->a, &freed, &n),
                     SH_E_INVAL);
}

static void test_drop_shared_objects(void **state)
{
    fx_t *f = *state;
    sh_uuid_t t1 = mk_topic(f, "one", 1), t2 = mk_topic(f, "two", 1);
    sh_meta_tp_t a = {t1, 0}, b = {t2, 0};
    int32_t ea = lead(f, a, 1, 0), eb = lead(f, b, 1, 0);
    const char *shared = nm(f, "shared"), *own = nm(f, "own");
    sh_meta_chunk_t s[] = {chunk(t1, 0, 0, 9, 1, 0, 10, ea), chunk(t2, 0, 0, 9, 1, 10, 10, eb)};
    sh_meta_chunk_t o[] = {chunk(t1, 0, 10, 19, 1, 0, 10, ea)};
    OK(sh_meta_chunks_commit(f->m, shared, 20, s, 2, 1));
    OK(sh_meta_chunks_commit(f->m, own, 10, o, 1, 1));

    sh_meta_object_t *objs, *freed;
    size_t n, nf;
    OK(sh_meta_topic_objects(f->m, t1, &f->a, &objs, &n));
    assert_int_equal(n, 2);
    assert_true(has_object(objs, n, shared));
    assert_true(has_object(objs, n, own));

    OK(sh_meta_topic_mark_deleting(f->m, t1));
    OK(sh_meta_topic_drop(f->m, t1, &f->a, &freed, &nf));
    assert_int_equal(nf, 1); /* the shared object still serves t2 */
    assert_string_equal(freed[0].object_key, own);

    OK(sh_meta_topic_objects(f->m, t2, &f->a, &objs, &n));
    assert_int_equal(n, 1);
    assert_string_equal(objs[0].object_key, shared);
    assert_int_equal(objs[0].live_chunks, 1);
    sh_meta_chunk_t *cs;
    OK(sh_meta_chunks_find(f->m, b, 0, 10, &f->a, &cs, &n));
    assert_int_equal(n, 1);

    OK(sh_meta_topic_mark_deleting(f->m, t2));
    OK(sh_meta_topic_drop(f->m, t2, &f->a, &freed, &nf));
    assert_int_equal(nf, 1);
    assert_string_equal(freed[0].object_key, shared);
    const char *keys[] = {shared, own};
    OK(sh_meta_objects_forget(f->m, keys, 2));
}

static void test_retention_points(void **state)
{
    fx_t *f = *state;
    sh_uuid_t id = mk_topic(f, "ret", 1);
    sh_meta_tp_t tp = {id, 0};
    int32_t e = lead(f, tp, 1, 0);
    int64_t pt;
    OK(sh_meta_retention_by_time(f->m, tp, 99999, &pt));
    assert_int_equal(pt, 0); /* nothing committed */
    OK(sh_meta_retention_by_size(f->m, tp, 0, &pt));
    assert_int_equal(pt, 0);

    /* max timestamps 1000, 3000, 2000; sizes 100, 200, 300 */
    sh_meta_chunk_t c[] = {chunk(id, 0, 0, 9, 1000, 0, 100, e),
                           chunk(id, 0, 10, 19, 3000, 100, 200, e),
                           chunk(id, 0, 20, 29, 2000, 300, 300, e)};
    OK(sh_meta_chunks_commit(f->m, nm(f, "r"), 600, c, 3, 1));

    OK(sh_meta_retention_by_time(f->m, tp, 500, &pt));
    assert_int_equal(pt, 0);
    OK(sh_meta_retention_by_time(f->m, tp, 1001, &pt));
    assert_int_equal(pt, 10);
    /* chunk 3 is old, but chunk 2 is not: Kafka stops at the first young */
    OK(sh_meta_retention_by_time(f->m, tp, 2500, &pt));
    assert_int_equal(pt, 10);
    OK(sh_meta_retention_by_time(f->m, tp, 3001, &pt));
    assert_int_equal(pt, 30);

    OK(sh_meta_retention_by_size(f->m, tp, 1000, &pt));
    assert_int_equal(pt, 0);
    OK(sh_meta_retention_by_size(f->m, tp, 500, &pt));
    assert_int_equal(pt, 10); /* 600-100 = 500 still >= 500 */
    OK(sh_meta_retention_by_size(f->m, tp, 300, &pt));
    assert_int_equal(pt, 20);
    OK(sh_meta_retention_by_size(f->m, tp, 299, &pt));
    assert_int_equal(pt, 20);
    OK(sh_meta_retention_by_size(f->m, tp, 0, &pt));
    assert_int_equal(pt, 30);

    sh_meta_object_t *freed;
    size_t n;
    OK(sh_meta_partition_log_start_advance(f->m, tp, 20, &f->a, &freed, &n));
    OK(sh_meta_retention_by_time(f->m, tp, 0, &pt));
    assert_int_equal(pt, 20); /* never below the log start */
    OK(sh_meta_retention_by_size(f->m, tp, 300, &pt));
    assert_int_equal(pt, 20);
    int64_t bytes, chunks;
    OK(sh_meta_partition_size(f->m, tp, &bytes, &chunks));
    assert_int_equal(bytes, 300);
    assert_int_equal(chunks, 1);
    assert_int_equal(sh_meta_retention_by_size(f->m, tp, -1, &pt), SH_E_INVAL);
    assert_int_equal(sh_meta_retention_by_time(f->m, (sh_meta_tp_t){id, 1}, 0, &pt),
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
}

static void test_producer_ids(void **state)
{
    fx_t *f = *state;
    int64_t a, b;
    OK(sh_meta_producer_ids_allocate(f->m, 1, 1000, 1, &a));
    assert_true(a >= 0);
    OK(sh_meta_producer_ids_allocate(f->m, 2, 10, 1, &b));
    assert_true(b >= a + 1000);
    fx_reopen(f);
    OK(sh_meta_producer_ids_allocate(f->m, 1, 1, 1, &a));
    assert_true(a >= b + 10);
    assert_int_equal(sh_meta_producer_ids_allocate(f->m, 1, 0, 1, &a), SH_E_INVAL);
}

/* ---------------------------------------------------------------------- */
/* Producer epochs and snapshots                                           */

static void test_producer_epochs(void **state)
{
    fx_t *f = *state;
    int64_t pid;
    OK(sh_meta_producer_ids_allocate(f->m, f->broker0, 10, 1, &pid));
    OK(sh_meta_producer_init(f->m, pid, 100));
    assert_int_equal(sh_meta_producer_init(f->m, pid, 100), SH_E_EXISTS);
    OK(sh_meta_producer_init(f->m, pid + 1, 100));

    sh_meta_producer_t r;
    /* KIP-360: the current epoch is bumped ... */
    OK(sh_meta_producer_bump(f->m, pid, 0, 200, &r));
    assert_int_equal(r.producer_id, pid);
    assert_int_equal(r.epoch, 1);
    assert_int_equal(r.last_epoch, 0);
    assert_int_equal(r.updated_ms, 200);
    /* ... a retry with the epoch just left gets the same answer ... */
    OK(sh_meta_producer_bump(f->m, pid, 0, 210, &r));
    assert_int_equal(r.epoch, 1);
    OK(sh_meta_producer_bump(f->m, pid, 1, 220, &r));
    assert_int_equal(r.epoch, 2);
    assert_int_equal(r.last_epoch, 1);
    /* ... and anything older is fenced, nothing changes */
    assert_int_equal(sh_meta_producer_bump(f->m, pid, 0, 230, &r), SH_E_FENCED);
    assert_int_equal(r.epoch, 2);
    /* an epoch the record has not seen (a client bumped it locally) moves
     * it forward */
    OK(sh_meta_producer_bump(f->m, pid, 5, 240, &r));
    assert_int_equal(r.epoch, 6);
    assert_int_equal(r.last_epoch, 5);
    /* unknown ids and impossible epochs */
    assert_int_equal(sh_meta_producer_bump(f->m, pid + 5, 0, 1, &r), SH_E_NOTFOUND);
    assert_int_equal(sh_meta_producer_bump(f->m, pid, -1, 1, &r), SH_E_INVAL);
    assert_int_equal(sh_meta_producer_bump(f->m, pid, SH_META_PRODUCER_EPOCH_MAX + 1, 1, &r),
                     SH_E_INVAL);
    assert_int_equal(sh_meta_producer_bump(f->m, -1, 0, 1, &r), SH_E_INVAL);
    assert_int_equal(sh_meta_producer_init(f->m, -3, 1), SH_E_INVAL);
    /* the last usable epoch bumps to the exhausted one */
    OK(sh_meta_producer_bump(f->m, pid + 1, SH_META_PRODUCER_EPOCH_MAX, 250, &r));
    assert_int_equal(r.epoch, SH_META_PRODUCER_EPOCH_MAX + 1);

    fx_reopen(f);
    int64_t ids[3] = {pid, pid + 7, pid + 1};
    int16_t ep[3] = {9, 9, 9};
    OK(sh_meta_producer_epochs(f->m, ids, 3, ep));
    assert_int_equal(ep[0], 6);
    assert_int_equal(ep[1], -1);
    assert_int_equal(ep[2], SH_META_PRODUCER_EPOCH_MAX + 1);
    OK(sh_meta_producer_epochs(f->m, NULL, 0, NULL));
    assert_int_equal(sh_meta_producer_epochs(f->m, NULL, 2, ep), SH_E_INVAL);
}

static sh_meta_producer_snapshot_t snap(sh_uuid_t t, int32_t part, int32_t epoch,
                                        int64_t as_of, const char *data)
{
    return (sh_meta_producer_snapshot_t){.tp = {t, part}, .leader_epoch = epoch,
                                         .as_of_offset = as_of, .data = data};
}

static void expect_snap(fx_t *f, sh_uuid_t t, int32_t part, int64_t max, int64_t as_of,
                        const char *data)
{
    int64_t got = -2;
    const char *d = NULL;
    sh_err_t err = sh_meta_producer_snapshot_get(f->m, (sh_meta_tp_t){t, part}, max, &f->a,
                                                 &got, &d);
    if (!data) {
        assert_int_equal(err, SH_E_NOTFOUND);
        assert_int_equal(got, -1);
        assert_null(d);
        return;
    }
    OK(err);
    assert_int_equal(got, as_of);
    assert_string_equal(d, data);
}

static void test_producer_snapshots(void **state)
{
    fx_t *f = *state;
    sh_uuid_t id = mk_topic(f, "psnap", 2);
    sh_meta_tp_t tp = {id, 0};
    int32_t e = lead(f, tp, f->broker0, 10);
    lead(f, (sh_meta_tp_t){id, 1}, f->broker0, 10);
    int64_t pid;
    OK(sh_meta_producer_ids_allocate(f->m, f->broker0, 10, 1, &pid));
    OK(sh_meta_producer_init(f->m, pid, 100));
    sh_meta_producer_t r;
    OK(sh_meta_producer_bump(f->m, pid, 5, 100, &r)); /* record: epoch 6 */

    expect_snap(f, id, 0, INT64_MAX, 0, NULL);
    /* snapshot at 0 and 10 (10 is written before the commit that moves
     * the committed offset there), with touched producers */
    sh_meta_producer_touch_t t[3] = {
        {.producer_id = pid, .epoch = 4, .seen_ms = 500},      /* stale: fenced */
        {.producer_id = pid + 1, .epoch = 2, .seen_ms = 500},  /* unrecorded */
        {.producer_id = pid + 2, .epoch = 0, .seen_ms = 500},
    };
    sh_meta_producer_snapshot_t s[2] = {snap(id, 0, e, 0, "aa00"), snap(id, 0, e, 10, "bb10")};
    s[1].touched = t;
    s[1].ntouched = 3;
    OK(sh_meta_producer_snapshots_put(f->m, s, 2, 1000));
    OK(s[0].result);
    OK(s[1].result);
    assert_int_equal(t[0].recorded_epoch, 6); /* never lowered */
    assert_int_equal(t[1].recorded_epoch, 2); /* created */
    assert_int_equal(t[2].recorded_epoch, 0);
    expect_snap(f, id, 0, 0, 0, "aa00");
    expect_snap(f, id, 0, 9, 0, "aa00");
    expect_snap(f, id, 0, INT64_MAX, 10, "bb10");
    expect_snap(f, id, 1, INT64_MAX, 0, NULL);

    /* a newer epoch seen by a partition raises the record */
    t[0].epoch = 8;
    sh_meta_producer_snapshot_t s2 = snap(id, 0, e, 10, "cc10");
    s2.touched = t;
    s2.ntouched = 1;
    OK(sh_meta_producer_snapshots_put(f->m, &s2, 1, 1100));
    assert_int_equal(t[0].recorded_epoch, 8);
    int64_t ids[2] = {pid, pid + 1};
    int16_t ep[2];
    OK(sh_meta_producer_epochs(f->m, ids, 2, ep));
    assert_int_equal(ep[0], 8);
    assert_int_equal(ep[1], 2);
    expect_snap(f, id, 0, INT64_MAX, 10, "cc10"); /* same offset: replaced */

    /* one producer seen by two partitions in one write: recorded once, at
     * the higher epoch, and both touches report it */
    sh_meta_producer_touch_t ta = {.producer_id = pid + 3, .epoch = 1, .seen_ms = 600};
    sh_meta_producer_touch_t tb = {.producer_id = pid + 3, .epoch = 4, .seen_ms = 700};
    sh_meta_producer_snapshot_t two[2] = {snap(id, 0, e, 10, "cc10"), snap(id, 1, e, 0, "p1")};
    two[0].touched = &ta;
    two[0].ntouched = 1;
    two[1].touched = &tb;
    two[1].ntouched = 1;
    OK(sh_meta_producer_snapshots_put(f->m, two, 2, 1200));
    assert_int_equal(ta.recorded_epoch, 4);
    assert_int_equal(tb.recorded_epoch, 4);
    int64_t id3 = pid + 3;
    int16_t ep3;
    OK(sh_meta_producer_epochs(f->m, &id3, 1, &ep3));
    assert_int_equal(ep3, 4);

    /* the commit moves the committed offset to 10; the next write drops
     * the snapshot below it and keeps the one at 10 */
    sh_meta_chunk_t c = chunk(id, 0, 0, 9, 5, 0, 100, e);
    OK(sh_meta_chunks_commit(f->m, nm(f, "psnap-obj1"), 100, &c, 1, 2000));
    sh_meta_producer_snapshot_t s3 = snap(id, 0, e, 20, "dd20");
    OK(sh_meta_producer_snapshots_put(f->m, &s3, 1, 2100));
    OK(s3.result);
    expect_snap(f, id, 0, 9, 0, NULL);
    expect_snap(f, id, 0, 15, 10, "cc10");
    expect_snap(f, id, 0, 20, 20, "dd20");

    /* refused ones: below the committed offset, a stale leader epoch, an
     * unknown partition; the good one in the same call still goes in */
    sh_meta_producer_snapshot_t bad[4] = {
        snap(id, 0, e, 5, "x"), snap(id, 0, e - 1, 30, "x"),
        snap(id, 7, e, 30, "x"), snap(id, 1, e, 0, "ee00")};
    OK(sh_meta_producer_snapshots_put(f->m, bad, 4, 2200));
    assert_int_equal(bad[0].result, SH_E_INVAL);
    assert_int_equal(bad[1].result, SH_E_FENCED);
    assert_int_equal(bad[2].result, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    OK(bad[3].result);
    expect_snap(f, id, 0, INT64_MAX, 20, "dd20");
    expect_snap(f, id, 1, INT64_MAX, 0, "ee00");
    /* a newer leader fences the old one's snapshots */
    int32_t e2 = lead(f, tp, f->broker0 + 1, 20000); /* the lease ran out */
    sh_meta_producer_snapshot_t old = snap(id, 0, e, 40, "x");
    OK(sh_meta_producer_snapshots_put(f->m, &old, 1, 3100));
    assert_int_equal(old.result, SH_E_FENCED);
    sh_meta_producer_snapshot_t cur = snap(id, 0, e2, 40, "ff40");
    OK(sh_meta_producer_snapshots_put(f->m, &cur, 1, 3100));
    OK(cur.result);
    fx_reopen(f);
    expect_snap(f, id, 0, INT64_MAX, 40, "ff40");

    assert_int_equal(sh_meta_producer_snapshot_get(f->m, (sh_meta_tp_t){id, -1}, 0, &f->a,
                                                   &(int64_t){0}, &(const char *){NULL}),
                     SH_E_INVAL);
    sh_meta_producer_snapshot_t nodata = snap(id, 0, e2, 50, NULL);
    assert_int_equal(sh_meta_producer_snapshots_put(f->m, &nodata, 1, 1), SH_E_INVAL);

    /* dropping the topic drops its snapshots */
    sh_meta_object_t *freed;
    size_t nfreed;
    OK(sh_meta_topic_mark_deleting(f->m, id));
    sh_meta_producer_snapshot_t late = snap(id, 1, e, 10, "x");
    OK(sh_meta_producer_snapshots_put(f->m, &late, 1, 3200));
    assert_int_equal(late.result, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    OK(sh_meta_topic_drop(f->m, id, &f->a, &freed, &nfreed));
    expect_snap(f, id, 0, INT64_MAX, 0, NULL);
    expect_snap(f, id, 1, INT64_MAX, 0, NULL);
}

static void test_producers_expire(void **state)
{
    fx_t *f = *state;
    int64_t pid;
    OK(sh_meta_producer_ids_allocate(f->m, f->broker0, 10, 1, &pid));
    /* synthetic times far in the past, so other tests' rows in a shared
     * database are newer than our cutoffs except where noted */
    OK(sh_meta_producer_init(f->m, pid, 10));
    OK(sh_meta_producer_init(f->m, pid + 1, 20));
    OK(sh_meta_producer_init(f->m, pid + 2, 30));
    sh_meta_producer_t r;
    OK(sh_meta_producer_bump(f->m, pid, 0, 40, &r)); /* refreshed */
    int64_t removed = -1;
    OK(sh_meta_producers_expire(f->m, 25, &removed));
    assert_true(removed >= 1);
    int64_t ids[3] = {pid, pid + 1, pid + 2};
    int16_t ep[3];
    OK(sh_meta_producer_epochs(f->m, ids, 3, ep));
    assert_int_equal(ep[0], 1);
    assert_int_equal(ep[1], -1);
    assert_int_equal(ep[2], 0);
    /* an expired id bumps as unknown (the caller hands out a new one) */
    assert_int_equal(sh_meta_producer_bump(f->m, pid + 1, 0, 50, &r), SH_E_NOTFOUND);
    OK(sh_meta_producers_expire(f->m, 41, NULL));
    OK(sh_meta_producer_epochs(f->m, ids, 3, ep));
    assert_int_equal(ep[0], -1);
    assert_int_equal(ep[2], -1);
}

/* ---------------------------------------------------------------------- */
/* Consumer group offsets                                                  */

static sh_meta_offset_t off(const char *topic, int32_t part, int64_t offset, int32_t epoch,
                            const char *md, int64_t ms)
{
    return (sh_meta_offset_t){.topic = topic, .partition = part, .offset = offset,
                              .leader_epoch = epoch, .metadata = md, .commit_ms = ms};
}

/* The offset of (topic, part) in a fetch result, or NULL. */
static const sh_meta_offset_t *find_off(const sh_meta_offset_t *o, size_t n, const char *topic,
                                        int32_t part)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(o[i].topic, topic) == 0 && o[i].partition == part)
            return &o[i];
    return NULL;
}

static const sh_meta_group_summary_t *find_group(const sh_meta_group_summary_t *g, size_t n,
                                                 const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(g[i].group_id, id) == 0)
            return &g[i];
    return NULL;
}

static void test_offsets_commit_fetch(void **state)
{
    fx_t *f = *state;
    const char *g = nm(f, "grp"), *other = nm(f, "other");
    const char *ta = nm(f, "ta"), *tb = nm(f, "tb");
    sh_meta_offset_t *o;
    size_t n;

    /* unknown group: empty, not an error */
    OK(sh_meta_offsets_fetch(f->m, g, NULL, 0, &f->a, &o, &n));
    assert_int_equal(n, 0);

    sh_meta_offset_t c1[] = {
        off(tb, 0, 7, 3, "meta-b0", 1000),
        off(ta, 1, 11, -1, NULL, 1001),
        off(ta, 0, 10, 5, "", 1002),
    };
    OK(sh_meta_offsets_commit(f->m, g, c1, 3));
    OK(sh_meta_offsets_commit(f->m, other, c1, 1));

    OK(sh_meta_offsets_fetch(f->m, g, NULL, 0, &f->a, &o, &n));
    assert_int_equal(n, 3);
    /* by topic (byte order: the prefix is shared, "ta" < "tb"), then partition */
    assert_string_equal(o[0].topic, ta);
    assert_int_equal(o[0].partition, 0);
    assert_int_equal(o[0].offset, 10);
    assert_int_equal(o[0].leader_epoch, 5);
    assert_non_null(o[0].metadata);
    assert_string_equal(o[0].metadata, "");   /* "" is not null */
    assert_int_equal(o[0].commit_ms, 1002);
    assert_string_equal(o[1].topic, ta);
    assert_int_equal(o[1].partition, 1);
    assert_int_equal(o[1].leader_epoch, -1);
    assert_null(o[1].metadata);               /* null stays null */
    assert_string_equal(o[2].topic, tb);
    assert_string_equal(o[2].metadata, "meta-b0");

    /* by key: one partition, a whole topic, and absent ones */
    sh_meta_offset_key_t keys[] = {
        {tb, 0}, {ta, SH_META_ALL_PARTITIONS}, {ta, 9}, {nm(f, "nosuch"), SH_META_ALL_PARTITIONS},
    };
    OK(sh_meta_offsets_fetch(f->m, g, keys, 4, &f->a, &o, &n));
    assert_int_equal(n, 3);
    assert_string_equal(o[0].topic, tb);      /* key order */
    assert_int_equal(o[1].partition, 0);
    assert_int_equal(o[2].partition, 1);

    /* a new commit replaces; the later of two entries for one partition wins */
    sh_meta_offset_t c2[] = {
        off(ta, 0, 20, 6, "x", 2000),
        off(ta, 0, 21, 7, "y", 2001),
    };
    OK(sh_meta_offsets_commit(f->m, g, c2, 2));
    OK(sh_meta_offsets_fetch(f->m, g, keys + 1, 1, &f->a, &o, &n));
    assert_int_equal(n, 2);
    assert_int_equal(o[0].offset, 21);
    assert_int_equal(o[0].leader_epoch, 7);
    assert_string_equal(o[0].metadata, "y");
    assert_int_equal(o[0].commit_ms, 2001);
    assert_int_equal(o[1].offset, 11);        /* untouched */

    /* groups do not see each other's offsets */
    OK(sh_meta_offsets_fetch(f->m, other, NULL, 0, &f->a, &o, &n));
    assert_int_equal(n, 1);
    assert_int_equal(o[0].offset, 7);

    /* durable across a reopen */
    fx_reopen(f);
    OK(sh_meta_offsets_fetch(f->m, g, NULL, 0, &f->a, &o, &n));
    assert_int_equal(n, 3);
    assert_non_null(find_off(o, n, ta, 0));
    assert_int_equal(find_off(o, n, ta, 0)->offset, 21);
}

static void test_offsets_invalid(void **state)
{
    fx_t *f = *state;
    const char *g = nm(f, "bad"), *t = nm(f, "t");
    sh_meta_offset_t *o;
    size_t n;
    int64_t k;
    OK(sh_meta_offsets_commit(f->m, g, NULL, 0));
    /* one bad entry refuses the whole commit */
    sh_meta_offset_t c[] = {off(t, 0, 1, -1, NULL, 1), off(t, -1, 1, -1, NULL, 1)};
    assert_int_equal(sh_meta_offsets_commit(f->m, g, c, 2), SH_E_INVAL);
    sh_meta_offset_t c2[] = {off(t, 0, 1, -1, NULL, 1), off(NULL, 0, 1, -1, NULL, 1)};
    assert_int_equal(sh_meta_offsets_commit(f->m, g, c2, 2), SH_E_INVAL);
    sh_meta_offset_t c3[] = {off("", 0, 1, -1, NULL, 1)};
    assert_int_equal(sh_meta_offsets_commit(f->m, g, c3, 1), SH_E_INVAL);
    assert_int_equal(sh_meta_offsets_commit(f->m, NULL, c, 1), SH_E_INVAL);
    OK(sh_meta_offsets_fetch(f->m, g, NULL, 0, &f->a, &o, &n));
    assert_int_equal(n, 0);
    sh_meta_offset_key_t bad[] = {{t, -2}};
    assert_int_equal(sh_meta_offsets_fetch(f->m, g, bad, 1, &f->a, &o, &n), SH_E_INVAL);
    assert_int_equal(sh_meta_offsets_delete(f->m, g, bad, 1, &k), SH_E_INVAL);
    assert_int_equal(sh_meta_group_delete(f->m, NULL, &k), SH_E_INVAL);
    const char *gs[] = {NULL};
    assert_int_equal(sh_meta_offsets_expire(f->m, gs, 1, 0, &k), SH_E_INVAL);
}

static void test_offsets_delete(void **state)
{
    fx_t *f = *state;
    const char *g = nm(f, "del"), *ta = nm(f, "ta"), *tb = nm(f, "tb");
    sh_meta_offset_t c[] = {
        off(ta, 0, 1, -1, NULL, 1), off(ta, 1, 2, -1, NULL, 1), off(ta, 2, 3, -1, NULL, 1),
        off(tb, 0, 4, -1, NULL, 1), off(tb, 1, 5, -1, NULL, 1),
    };
    int64_t left;
    sh_meta_offset_t *o;
    size_t n;
    OK(sh_meta_offsets_commit(f->m, g, c, 5));
    OK(sh_meta_offsets_delete(f->m, g, NULL, 0, &left));
    assert_int_equal(left, 5);
    sh_meta_offset_key_t k1[] = {{ta, 1}, {ta, 7}, {nm(f, "none"), 0}};
    OK(sh_meta_offsets_delete(f->m, g, k1, 3, &left));
    assert_int_equal(left, 4);
    OK(sh_meta_offsets_fetch(f->m, g, NULL, 0, &f->a, &o, &n));
    assert_int_equal(n, 4);
    assert_null(find_off(o, n, ta, 1));
    sh_meta_offset_key_t k2[] = {{tb, SH_META_ALL_PARTITIONS}};
    OK(sh_meta_offsets_delete(f->m, g, k2, 1, &left));
    assert_int_equal(left, 2);
    OK(sh_meta_offsets_fetch(f->m, g, NULL, 0, &f->a, &o, &n));
    assert_int_equal(n, 2);
    assert_non_null(find_off(o, n, ta, 0));
    assert_non_null(find_off(o, n, ta, 2));
    sh_meta_offset_key_t k3[] = {{ta, SH_META_ALL_PARTITIONS}};
    OK(sh_meta_offsets_delete(f->m, g, k3, 1, &left));
    assert_int_equal(left, 0);
    OK(sh_meta_offsets_delete(f->m, nm(f, "never"), k3, 1, &left));
    assert_int_equal(left, 0);
}

static void test_groups_list_and_delete(void **state)
{
    fx_t *f = *state;
    const char *g1 = nm(f, "g1"), *g2 = nm(f, "g2"), *t = nm(f, "t");
    sh_meta_offset_t c[] = {
        off(t, 0, 1, -1, NULL, 500), off(t, 1, 2, -1, NULL, 900), off(t, 2, 3, -1, NULL, 700),
    };
    sh_meta_group_summary_t *gs;
    size_t n;
    int64_t del;
    OK(sh_meta_offsets_commit(f->m, g1, c, 3));
    OK(sh_meta_offsets_commit(f->m, g2, c, 1));
    OK(sh_meta_groups_list(f->m, &f->a, &gs, &n));
    const sh_meta_group_summary_t *s1 = find_group(gs, n, g1), *s2 = find_group(gs, n, g2);
    assert_non_null(s1);
    assert_non_null(s2);
    assert_int_equal(s1->offsets, 3);
    assert_int_equal(s1->last_commit_ms, 900);
    assert_int_equal(s2->offsets, 1);
    assert_int_equal(s2->last_commit_ms, 500);
    for (size_t i = 1; i < n; i++)
        assert_true(strcmp(gs[i - 1].group_id, gs[i].group_id) < 0);
    assert_null(find_group(gs, n, nm(f, "nosuch")));

    OK(sh_meta_group_delete(f->m, g1, &del));
    assert_int_equal(del, 3);
    OK(sh_meta_group_delete(f->m, g1, &del));
    assert_int_equal(del, 0);
    OK(sh_meta_groups_list(f->m, &f->a, &gs, &n));
    assert_null(find_group(gs, n, g1));
    assert_non_null(find_group(gs, n, g2));
    fx_reopen(f);
    OK(sh_meta_groups_list(f->m, &f->a, &gs, &n));
    assert_null(find_group(gs, n, g1));
    assert_non_null(find_group(gs, n, g2));
}

static void test_offsets_expire(void **state)
{
    fx_t *f = *state;
    const char *ga = nm(f, "ea"), *gb = nm(f, "eb"), *gc = nm(f, "ec"), *t = nm(f, "t");
    sh_meta_offset_t c[] = {
        off(t, 0, 1, -1, NULL, 1000), off(t, 1, 2, -1, NULL, 2000), off(t, 2, 3, -1, NULL, 3000),
    };
    sh_meta_offset_t *o;
    size_t n;
    int64_t removed;
    OK(sh_meta_offsets_commit(f->m, ga, c, 3));
    OK(sh_meta_offsets_commit(f->m, gb, c, 3));
    OK(sh_meta_offsets_commit(f->m, gc, c, 3));
    const char *which[] = {ga, gc, nm(f, "nosuch")};
    OK(sh_meta_offsets_expire(f->m, which, 3, 2500, &removed));
    assert_int_equal(removed, 4);
    OK(sh_meta_offsets_fetch(f->m, ga, NULL, 0, &f->a, &o, &n));
    assert_int_equal(n, 1);
    assert_int_equal(o[0].partition, 2);
    /* a group not named keeps everything, however old */
    OK(sh_meta_offsets_fetch(f->m, gb, NULL, 0, &f->a, &o, &n));
    assert_int_equal(n, 3);
    /* the cutoff is exclusive */
    OK(sh_meta_offsets_expire(f->m, which, 1, 3000, &removed));
    assert_int_equal(removed, 0);
    OK(sh_meta_offsets_expire(f->m, which, 1, 3001, &removed));
    assert_int_equal(removed, 1);
    sh_meta_group_summary_t *gs;
    OK(sh_meta_groups_list(f->m, &f->a, &gs, &n));
    assert_null(find_group(gs, n, ga));
    assert_non_null(find_group(gs, n, gc));
    OK(sh_meta_offsets_expire(f->m, NULL, 0, 1, NULL));
}

/* Dropping a topic removes every group's offsets of it, and only those. */
static void test_offsets_topic_drop(void **state)
{
    fx_t *f = *state;
    const char *g = nm(f, "dropg"), *tname = nm(f, "dropme"), *keep = nm(f, "keep");
    sh_uuid_t id = mk_topic(f, "dropme", 2);
    sh_meta_offset_t c[] = {off(tname, 0, 1, -1, NULL, 1), off(tname, 1, 2, -1, NULL, 1),
                            off(keep, 0, 3, -1, NULL, 1)};
    sh_meta_object_t *freed;
    size_t nfreed, n;
    sh_meta_offset_t *o;
    OK(sh_meta_offsets_commit(f->m, g, c, 3));
    OK(sh_meta_topic_mark_deleting(f->m, id));
    OK(sh_meta_topic_drop(f->m, id, &f->a, &freed, &nfreed));
    OK(sh_meta_offsets_fetch(f->m, g, NULL, 0, &f->a, &o, &n));
    assert_int_equal(n, 1);
    assert_string_equal(o[0].topic, keep);
}

typedef struct {
    sh_meta_op_t op;
    const char *group;
    sh_meta_offset_t o;
    int done;
} commit_op_t;

static sh_err_t commit_op_run(sh_meta_t *m, sh_meta_op_t *op)
{
    commit_op_t *c = (commit_op_t *)op;
    return sh_meta_offsets_commit(m, c->group, &c->o, 1);
}

static void commit_op_done(sh_meta_op_t *op)
{
    ((commit_op_t *)op)->done = 1;
}

/* The broker commits through the runner and answers from done: by then
 * the commit is in the database (a direct read sees it). */
static void test_offsets_commit_async(void **state)
{
    fx_t *f = *state;
    commit_op_t c = {.group = nm(f, "async"), .o = off(nm(f, "t"), 3, 42, 1, "m", 5)};
    c.op.run = commit_op_run;
    c.op.done = commit_op_done;
    OK(sh_meta_submit(f->m, &c.op));
    while (!c.done) {
        struct pollfd p = {.fd = sh_meta_fd(f->m), .events = POLLIN};
        assert_true(poll(&p, 1, 10000) > 0);
        sh_meta_drain(f->m);
    }
    OK(c.op.err);
    sh_meta_offset_t *o;
    size_t n;
    OK(sh_meta_offsets_fetch(f->m, c.group, NULL, 0, &f->a, &o, &n));
    assert_int_equal(n, 1);
    assert_int_equal(o[0].offset, 42);
}

/* ---------------------------------------------------------------------- */
/* Async runner                                                            */

typedef struct {
    sh_meta_op_t op;
    int index;
    const char *name;
    pthread_t ran_on;
    int ran_seq;
    sh_uuid_t id;
} aop_t;

static pthread_t main_thread;
static int run_seq, done_seq, done_order[64];

static sh_err_t aop_run(sh_meta_t *m, sh_meta_op_t *op)
{
    aop_t *a = (aop_t *)op;
    a->ran_on = pthread_self();
    a->ran_seq = __atomic_fetch_add(&run_seq, 1, __ATOMIC_SEQ_CST);
    return sh_meta_topic_create(m, a->name, 1, NULL, 0, 1, &a->id);
}

static void aop_done(sh_meta_op_t *op)
{
    aop_t *a = (aop_t *)op;
    assert_true(pthread_equal(pthread_self(), main_thread));
    done_order[done_seq++] = a->index;
}

static void test_async_runner(void **state)
{
    fx_t *f = *state;
    main_thread = pthread_self();
    run_seq = done_seq = 0;
    enum { N = 40 };
    aop_t ops[N];
    memset(ops, 0, sizeof(ops));
    for (int i = 0; i < N; i++) {
        char base[16];
        snprintf(base, sizeof(base), "async%d", i % 30); /* 10 duplicates */
        ops[i].index = i;
        ops[i].name = nm(f, base);
        ops[i].op.run = aop_run;
        ops[i].op.done = aop_done;
        OK(sh_meta_submit(f->m, &ops[i].op));
    }
    while (done_seq < N) {
        struct pollfd p = {.fd = sh_meta_fd(f->m), .events = POLLIN};
        assert_true(poll(&p, 1, 10000) > 0);
        sh_meta_drain(f->m);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(done_order[i], i);
        assert_int_equal(ops[i].ran_seq, i);
        assert_false(pthread_equal(ops[i].ran_on, main_thread));
        assert_ptr_equal(ops[i].op.meta, f->m);
        assert_int_equal(ops[i].op.err, i < 30 ? SH_OK : SH_KERR_TOPIC_ALREADY_EXISTS);
    }
    sh_meta_topic_t t;
    OK(sh_meta_topic_get_by_name(f->m, ops[29].name, &f->a, &t));
    assert_memory_equal(t.topic_id.b, ops[29].id.b, 16);

    aop_t bad = {0};
    assert_int_equal(sh_meta_submit(f->m, &bad.op), SH_E_INVAL);

    /* close runs what is queued and delivers every completion */
    done_seq = 0;
    for (int i = 0; i < 5; i++) {
        char base[16];
        snprintf(base, sizeof(base), "late%d", i);
        ops[i] = (aop_t){.index = i, .name = nm(f, base)};
        ops[i].op.run = aop_run;
        ops[i].op.done = aop_done;
        OK(sh_meta_submit(f->m, &ops[i].op));
    }
    sh_meta_close(f->m);
    f->m = NULL;
    assert_int_equal(done_seq, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ops[i].op.err, SH_OK);
    OK(sh_meta_open(f->url, &f->m));
    OK(sh_meta_topic_get_by_name(f->m, ops[4].name, &f->a, &t));
}

typedef struct {
    sh_meta_op_t op;
    sh_meta_tp_t tp;
    int64_t hwm;
} readop_t;

static int reads_done;

static sh_err_t readop_run(sh_meta_t *m, sh_meta_op_t *op)
{
    readop_t *r = (readop_t *)op;
    sh_meta_partition_t p;
    sh_err_t err = sh_meta_partition_get(m, r->tp, &p);
    r->hwm = p.high_watermark;
    return err;
}

static void readop_done(sh_meta_op_t *op)
{
    (void)op;
    reads_done++;
}

/* Startup code may call operations directly while the worker runs ops:
 * the store serialises them, nothing interleaves inside a transaction. */
static void test_direct_calls_during_async(void **state)
{
    fx_t *f = *state;
    sh_uuid_t id = mk_topic(f, "mixed", 1);
    sh_meta_tp_t tp = {id, 0};
    int32_t e = lead(f, tp, 1, 0);
    enum { N = 60 };
    readop_t ops[N];
    reads_done = 0;
    for (int i = 0; i < N; i++) {
        ops[i] = (readop_t){.tp = tp};
        ops[i].op.run = readop_run;
        ops[i].op.done = readop_done;
        OK(sh_meta_submit(f->m, &ops[i].op));
    }
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof(key), "mixed-%d", i);
        sh_meta_chunk_t c = chunk(id, 0, i * 10, i * 10 + 9, 1, 0, 10, e);
        OK(sh_meta_chunks_commit(f->m, nm(f, key), 10, &c, 1, 1));
    }
    while (reads_done < N) {
        struct pollfd p = {.fd = sh_meta_fd(f->m), .events = POLLIN};
        assert_true(poll(&p, 1, 10000) > 0);
        sh_meta_drain(f->m);
    }
    int64_t last = -1;
    for (int i = 0; i < N; i++) {
        OK(ops[i].op.err);
        assert_true(ops[i].hwm % 10 == 0); /* never a torn commit */
        assert_true(ops[i].hwm >= last);   /* in submission order */
        last = ops[i].hwm;
    }
    assert_int_equal(hwm(f, id, 0), N * 10);
}

/* ---------------------------------------------------------------------- */
/* Durability                                                              */

static int child_commit(const char *url, const char *name, const char *key)
{
    sh_meta_t *m;
    sh_uuid_t id;
    int32_t e;
    if (sh_meta_open(url, &m) != SH_OK)
        return 2;
    if (sh_meta_topic_create(m, name, 1, NULL, 0, 1, &id) != SH_OK)
        return 3;
    sh_meta_tp_t tp = {id, 0};
    if (sh_meta_partition_acquire(m, tp, 1, -1, 0, 1000, &e) != SH_OK)
        return 4;
    sh_meta_chunk_t c = chunk(id, 0, 0, 99, 5, 0, 4096, e);
    if (sh_meta_chunks_commit(m, key, 4096, &c, 1, 1) != SH_OK)
        return 5;
    return 0; /* no close: the commit alone must have made it durable */
}

static void test_durability_without_close(void **state)
{
    fx_t *f = *state;
    const char *name = nm(f, "durable"), *key = nm(f, "durable-obj");
    sh_meta_close(f->m);
    f->m = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(child_commit(f->url, name, key));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    OK(sh_meta_open(f->url, &f->m));
    sh_meta_topic_t t;
    OK(sh_meta_topic_get_by_name(f->m, name, &f->a, &t));
    sh_meta_chunk_t *cs;
    size_t n;
    OK(sh_meta_chunks_find(f->m, (sh_meta_tp_t){t.topic_id, 0}, 0, 10, &f->a, &cs, &n));
    assert_int_equal(n, 1);
    assert_string_equal(cs[0].object_key, key);
    assert_int_equal(cs[0].last_offset, 99);
    assert_int_equal(hwm(f, t.topic_id, 0), 100);
}

int main(void)
{
    /* the refused operations below log errors by design */
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (!getenv("SH_TEST_VERBOSE") && devnull >= 0)
        sh_log_set_fd(devnull);
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
        T(test_migrations_idempotent),
        T(test_newer_schema_refused),
        T(test_cluster_id_stable),
        T(test_brokers),
        T(test_topic_lifecycle),
        T(test_topic_create_invalid),
        T(test_configs),
        T(test_partitions_add),
        T(test_leadership_epochs),
        T(test_chunks_commit_and_lookup),
        T(test_fencing),
        T(test_log_start_and_refcounts),
        T(test_drop_shared_objects),
        T(test_retention_points),
        T(test_producer_ids),
        T(test_producer_epochs),
        T(test_producer_snapshots),
        T(test_producers_expire),
        T(test_async_runner),
        T(test_direct_calls_during_async),
        T(test_durability_without_close),
        T(test_offsets_commit_fetch),
        T(test_offsets_invalid),
        T(test_offsets_delete),
        T(test_groups_list_and_delete),
        T(test_offsets_expire),
        T(test_offsets_topic_drop),
        T(test_offsets_commit_async),
#undef T
    };
    return cmocka_run_group_tests_name("meta_conformance", tests, NULL, NULL);
}
