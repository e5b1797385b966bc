/*
 * test_broker_registry_api.c - the topic and config admin APIs through
 * real sockets against an in-process broker: CreateTopics v0-7,
 * DeleteTopics v0-6 (v6 by id), CreatePartitions v0-3, DescribeConfigs
 * v0-4 (topic and broker resources, synonyms, documentation, key filter),
 * AlterConfigs v0-2, IncrementalAlterConfigs v0-1, Metadata
 * auto-creation, every error case the handlers document, and topics with
 * their configs surviving a restart over the same data directory.
 *
 * The broker runs sh_broker_run on its own thread; the test thread is a
 * blocking client with a receive timeout (a missing answer fails, it
 * never hangs). Ports: 19300-19349.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/sh_topic_config.h"
#include "common/sh_log.h"
#include "test_broker_util.h"

#define PORT_LO 19300
#define PORT_HI 19349
#define NODE 7

#define OK(x) assert_int_equal((x), SH_OK)

/* ------------------------------------------------------ test broker */

typedef tbu_broker_t tb_t;

static const char *const tb_defaults[] = {"node.id=7", "num.partitions=3", NULL};

/* Start a broker over dir (a fresh one when dir is NULL) and connect. */
static void tb_start(tb_t *t, const char *dir, const char *const *overrides)
{
    char fresh[64];
    if (!dir)
        dir = tbu_mkdtemp(fresh, sizeof(fresh), "regapi");
    tbu_listen(t, dir, PORT_LO, PORT_HI, tb_defaults, overrides);
    tbu_run(t);
    t->fd = tbu_connect(t->port);
}

/* Stop the broker; keep_dir for a restart over the same data. */
static void tb_stop(tb_t *t, bool keep_dir)
{
    close(t->fd);
    tbu_stop(t);
    if (!keep_dir)
        tbu_rmrf(t->dir);
}

/* ----------------------------------------------------------- client */

/* Responses decoded in one arena per test, freed at its end. */
static sh_arena_t g_arena;
static uint8_t *g_frames[512];
static int g_nframes;
static int32_t g_corr;

static void frames_free(void)
{
    for (int i = 0; i < g_nframes; i++)
        free(g_frames[i]);
    g_nframes = 0;
    sh_arena_fini(&g_arena);
    sh_arena_init(&g_arena, 16384);
}

/* Send body as (key, ver) and decode the answer into resp. */
static void roundtrip(int fd, int16_t key, int16_t ver, const void *body, void *resp)
{
    const sh_api_info_t *ai = sh_api_info(key);
    int32_t corr = ++g_corr;
    tbu_send_request(fd, "regapi-test", key, ver, corr, body);

    size_t n = 0;
    uint8_t *buf = tbu_read_frame(fd, &n);
    assert_non_null(buf);
    assert_true(n >= 4 && n < (16u << 20));
    assert_true(g_nframes < 512);
    g_frames[g_nframes++] = buf;
    sh_reader_t r;
    sh_reader_init(&r, buf, n);
    assert_int_equal(sh_wire_get_i32(&r), corr);
    if (sh_response_header_version(key, ver) >= 1)
        sh_wire_skip_tagged_fields(&r);
    ai->response_init(resp);
    OK(ai->response_decode(&r, &g_arena, ver, resp));
    assert_int_equal(sh_reader_remaining(&r), 0);
}

static bool uuid_zero(sh_uuid_t u)
{
    static const uint8_t z[16];
    return memcmp(u.b, z, 16) == 0;
}

/* ----------------------------------------------------- API helpers */

typedef sh_create_topics_request_creatable_topic_t ct_topic_t;
typedef sh_create_topics_request_creatable_topic_config_t ct_cfg_t;
typedef sh_create_topics_response_creatable_topic_result_t ct_res_t;

static ct_topic_t ct_topic(const char *name, int32_t parts, int16_t rf)
{
    ct_topic_t t;
    memset(&t, 0, sizeof(t));
    t.name = sh_slice_str(name);
    t.num_partitions = parts;
    t.replication_factor = rf;
    return t;
}

static sh_create_topics_response_t create_topics(tb_t *t, int16_t v, ct_topic_t *topics,
                                                 int32_t n, bool validate_only)
{
    sh_create_topics_request_t rq;
    sh_create_topics_response_t rs;
    sh_create_topics_request_init(&rq);
    rq.topics = topics;
    rq.topics_count = n;
    rq.timeout_ms = 10000;
    rq.validate_only = validate_only;
    roundtrip(t->fd, 19, v, &rq, &rs);
    assert_int_equal(rs.topics_count, n);
    return rs;
}

static int16_t create_one(tb_t *t, int16_t v, const char *name, int32_t parts)
{
    ct_topic_t tp = ct_topic(name, parts, -1);
    sh_create_topics_response_t rs = create_topics(t, v, &tp, 1, false);
    return rs.topics[0].error_code;
}

typedef sh_metadata_response_metadata_response_topic_t md_topic_t;

/* Metadata for one named topic. */
static md_topic_t metadata_one(tb_t *t, int16_t v, const char *name, bool allow_auto)
{
    sh_metadata_request_t rq;
    sh_metadata_response_t rs;
    sh_metadata_request_metadata_request_topic_t rt;
    memset(&rt, 0, sizeof(rt));
    rt.name = sh_slice_str(name);
    sh_metadata_request_init(&rq);
    rq.topics = &rt;
    rq.topics_count = 1;
    rq.allow_auto_topic_creation = allow_auto;
    roundtrip(t->fd, 3, v, &rq, &rs);
    assert_int_equal(rs.topics_count, 1);
    return rs.topics[0];
}

static sh_describe_configs_response_describe_configs_result_t
describe(tb_t *t, int16_t v, int8_t type, const char *name, bool synonyms, bool docs,
         sh_slice_t *keys, int32_t nkeys)
{
    sh_describe_configs_request_t rq;
    sh_describe_configs_response_t rs;
    sh_describe_configs_request_describe_configs_resource_t res;
    memset(&res, 0, sizeof(res));
    res.resource_type = type;
    res.resource_name = sh_slice_str(name);
    res.configuration_keys = keys;
    res.configuration_keys_count = keys ? nkeys : -1;
    sh_describe_configs_request_init(&rq);
    rq.resources = &res;
    rq.resources_count = 1;
    rq.include_synonyms = synonyms;
    rq.include_documentation = docs;
    roundtrip(t->fd, 32, v, &rq, &rs);
    assert_int_equal(rs.results_count, 1);
    return rs.results[0];
}

static const sh_describe_configs_response_describe_configs_resource_result_t *
entry(const sh_describe_configs_response_describe_configs_result_t *r, const char *name)
{
    for (int32_t i = 0; i < r->configs_count; i++)
        if (sh_slice_eq_str(r->configs[i].name, name))
            return &r->configs[i];
    return NULL;
}

static bool value_is(const sh_describe_configs_response_describe_configs_result_t *r,
                     const char *name, const char *value)
{
    const sh_describe_configs_response_describe_configs_resource_result_t *e = entry(r, name);
    return e && sh_slice_eq_str(e->value, value);
}

/* ------------------------------------------------------------ tests */

static void test_create_topics(void **state)
{
    (void)state;
    tb_t t;
    tb_start(&t, NULL, NULL);

    for (int16_t v = 0; v <= 7; v++) {
        char name[16];
        snprintf(name, sizeof(name), "created-v%d", v);
        ct_topic_t tp = ct_topic(name, 2, -1);
        ct_cfg_t cfg = {sh_slice_str("retention.ms"), sh_slice_str("60000")};
        tp.configs = &cfg;
        tp.configs_count = 1;
        sh_create_topics_response_t rs = create_topics(&t, v, &tp, 1, false);
        const ct_res_t *r = &rs.topics[0];
        assert_true(sh_slice_eq_str(r->name, name));
        assert_int_equal(r->error_code, 0);
        assert_int_equal(r->error_message.len, 0);
        if (v >= 5) {
            assert_int_equal(r->num_partitions, 2);
            assert_int_equal(r->replication_factor, 1);
            assert_int_equal(r->configs_count, (int32_t)sh_topic_cfg_nkeys);
            bool seen = false;
            for (int32_t i = 0; i < r->configs_count; i++)
                if (sh_slice_eq_str(r->configs[i].name, "retention.ms")) {
                    assert_true(sh_slice_eq_str(r->configs[i].value, "60000"));
                    assert_int_equal(r->configs[i].config_source, SH_CFG_SOURCE_TOPIC);
                    seen = true;
                }
            assert_true(seen);
        }
        md_topic_t md = metadata_one(&t, 10, name, false);
        assert_int_equal(md.error_code, 0);
        assert_int_equal(md.partitions_count, 2);
        assert_false(uuid_zero(md.topic_id));
        assert_int_equal(md.partitions[1].leader_id, NODE);
        if (v >= 7)
            assert_memory_equal(r->topic_id.b, md.topic_id.b, 16);
        else
            assert_true(uuid_zero(r->topic_id));
    }

    /* defaults: -1 partitions is num.partitions (3); any positive RF */
    ct_topic_t d = ct_topic("defaults", -1, 5);
    sh_create_topics_response_t rs = create_topics(&t, 7, &d, 1, false);
    assert_int_equal(rs.topics[0].error_code, 0);
    assert_int_equal(rs.topics[0].num_partitions, 3);
    assert_int_equal(rs.topics[0].replication_factor, 1);

    /* errors, one request with many topics, answered in order */
    char longname[251];
    memset(longname, 'x', 250);
    longname[250] = '\0';
    ct_topic_t bad[] = {
        ct_topic("dup", 1, 1),           ct_topic("dup", 1, 1),
        ct_topic("a b", 1, 1),           ct_topic("..", 1, 1),
        ct_topic("", 1, 1),              ct_topic(longname, 1, 1),
        ct_topic("defaults", 1, 1),      ct_topic("zero", 0, 1),
        ct_topic("neg", -2, 1),          ct_topic("rf0", 1, 0),
        ct_topic("badcfg", 1, 1),        ct_topic("compact", 1, 1),
        ct_topic("nullcfg", 1, 1),       ct_topic("toomany", 200000, 1),
    };
    ct_cfg_t unknown = {sh_slice_str("retention.hours"), sh_slice_str("1")};
    ct_cfg_t compact = {sh_slice_str("cleanup.policy"), sh_slice_str("compact")};
    ct_cfg_t nullv = {sh_slice_str("retention.ms"), SH_SLICE_NULL};
    bad[10].configs = &unknown;
    bad[10].configs_count = 1;
    bad[11].configs = &compact;
    bad[11].configs_count = 1;
    bad[12].configs = &nullv;
    bad[12].configs_count = 1;
    const int16_t want[] = {42, 42, 17, 17, 17, 17, 36, 37, 37, 38, 40, 40, 42, 37};
    rs = create_topics(&t, 4, bad, 14, false);
    for (int i = 0; i < 14; i++) {
        assert_int_equal(rs.topics[i].error_code, want[i]);
        assert_false(sh_slice_is_null(rs.topics[i].error_message));
    }
    assert_non_null(memchr(rs.topics[11].error_message.ptr, 'c',
                           rs.topics[11].error_message.len));
    /* v0 has no error_message on the wire */
    rs = create_topics(&t, 0, &bad[7], 1, false);
    assert_int_equal(rs.topics[0].error_code, 37);
    assert_int_equal(rs.topics[0].error_message.len, 0);

    /* manual assignments: trivial ones accepted, others refused */
    sh_create_topics_request_creatable_replica_assignment_t as[2];
    int32_t me = NODE, other = 8;
    as[0] = (sh_create_topics_request_creatable_replica_assignment_t){1, &me, 1};
    as[1] = (sh_create_topics_request_creatable_replica_assignment_t){0, &me, 1};
    ct_topic_t man = ct_topic("manual", -1, -1);
    man.assignments = as;
    man.assignments_count = 2;
    rs = create_topics(&t, 5, &man, 1, false);
    assert_int_equal(rs.topics[0].error_code, 0);
    assert_int_equal(rs.topics[0].num_partitions, 2);
    man.name = sh_slice_str("manual2");
    as[0].broker_ids = &other;
    rs = create_topics(&t, 5, &man, 1, false);
    assert_int_equal(rs.topics[0].error_code, SH_KERR_INVALID_REPLICA_ASSIGNMENT);
    as[0].broker_ids = &me;
    as[0].partition_index = 5;
    rs = create_topics(&t, 5, &man, 1, false);
    assert_int_equal(rs.topics[0].error_code, SH_KERR_INVALID_REPLICA_ASSIGNMENT);
    man.num_partitions = 2;
    rs = create_topics(&t, 5, &man, 1, false);
    assert_int_equal(rs.topics[0].error_code, SH_KERR_INVALID_REQUEST);

    /* validate_only checks but creates nothing */
    ct_topic_t vo = ct_topic("validated", 4, 1);
    rs = create_topics(&t, 5, &vo, 1, true);
    assert_int_equal(rs.topics[0].error_code, 0);
    assert_int_equal(rs.topics[0].num_partitions, 4);
    assert_int_equal(metadata_one(&t, 4, "validated", false).error_code, 3);
    rs = create_topics(&t, 5, &bad[11], 1, true);
    assert_int_equal(rs.topics[0].error_code, 40);

    frames_free();
    tb_stop(&t, false);
}

static void test_metadata_autocreate(void **state)
{
    (void)state;
    tb_t t;
    tb_start(&t, NULL, NULL);

    /* v1: always allowed; duplicates created once; illegal names refused */
    sh_metadata_request_metadata_request_topic_t rt[3];
    memset(rt, 0, sizeof(rt));
    rt[0].name = sh_slice_str("auto-1");
    rt[1].name = sh_slice_str("bad name");
    rt[2].name = sh_slice_str("auto-1");
    sh_metadata_request_t rq;
    sh_metadata_response_t rs;
    sh_metadata_request_init(&rq);
    rq.topics = rt;
    rq.topics_count = 3;
    roundtrip(t.fd, 3, 1, &rq, &rs);
    assert_int_equal(rs.topics_count, 2);
    assert_true(sh_slice_eq_str(rs.topics[0].name, "auto-1"));
    assert_int_equal(rs.topics[0].error_code, 0);
    assert_int_equal(rs.topics[0].partitions_count, 3);
    assert_int_equal(rs.topics[0].partitions[2].leader_id, NODE);
    assert_int_equal(rs.topics[1].error_code, SH_KERR_INVALID_TOPIC_EXCEPTION);

    /* v4+: only when allowed */
    assert_int_equal(metadata_one(&t, 4, "auto-2", false).error_code,
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    md_topic_t md = metadata_one(&t, 12, "auto-2", true);
    assert_int_equal(md.error_code, 0);
    assert_false(uuid_zero(md.topic_id));
    assert_int_equal(md.partitions[0].leader_epoch, 0);
    /* it is a real topic: CreateTopics sees it */
    assert_int_equal(create_one(&t, 4, "auto-2", 1), SH_KERR_TOPIC_ALREADY_EXISTS);
    frames_free();
    tb_stop(&t, false);

    /* auto.create.topics.enable=false */
    const char *const off[] = {"auto.create.topics.enable=false", NULL};
    tb_start(&t, NULL, off);
    assert_int_equal(metadata_one(&t, 1, "auto-3", true).error_code,
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(metadata_one(&t, 1, "bad name", true).error_code,
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    frames_free();
    tb_stop(&t, false);
}

static void test_delete_topics(void **state)
{
    (void)state;
    tb_t t;
    tb_start(&t, NULL, NULL);

    for (int16_t v = 0; v <= 6; v++) {
        char name[16];
        snprintf(name, sizeof(name), "del-v%d", v);
        assert_int_equal(create_one(&t, 4, name, 2), 0);
        md_topic_t md = metadata_one(&t, 10, name, false);
        sh_delete_topics_request_t rq;
        sh_delete_topics_response_t rs;
        sh_delete_topics_request_init(&rq);
        sh_slice_t names[2] = {sh_slice_str(name), sh_slice_str("never-was")};
        sh_delete_topics_request_delete_topic_state_t ts[2];
        memset(ts, 0, sizeof(ts));
        if (v < 6) {
            rq.topic_names = names;
            rq.topic_names_count = 2;
        } else {
            ts[0].name = SH_SLICE_NULL;
            ts[0].topic_id = md.topic_id; /* by id */
            memset(ts[1].topic_id.b, 0x5a, 16);
            rq.topics = ts;
            rq.topics_count = 2;
        }
        rq.timeout_ms = 5000;
        roundtrip(t.fd, 20, v, &rq, &rs);
        assert_int_equal(rs.responses_count, 2);
        assert_int_equal(rs.responses[0].error_code, 0);
        assert_true(sh_slice_eq_str(rs.responses[0].name, name));
        if (v >= 6) {
            assert_memory_equal(rs.responses[0].topic_id.b, md.topic_id.b, 16);
            assert_int_equal(rs.responses[1].error_code, SH_KERR_UNKNOWN_TOPIC_ID);
        } else {
            assert_int_equal(rs.responses[1].error_code, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
        }
        if (v >= 5)
            assert_false(sh_slice_is_null(rs.responses[1].error_message));
        assert_int_equal(metadata_one(&t, 4, name, false).error_code,
                         SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
        /* the name is free at once for the same client */
        assert_int_equal(create_one(&t, 4, name, 1), 0);
        assert_int_equal(metadata_one(&t, 4, name, false).partitions_count, 1);
    }

    /* duplicates and v6 entries with both or neither identity */
    assert_int_equal(create_one(&t, 4, "twice", 1), 0);
    md_topic_t md = metadata_one(&t, 10, "twice", false);
    sh_delete_topics_request_delete_topic_state_t ts[4];
    memset(ts, 0, sizeof(ts));
    ts[0].name = sh_slice_str("twice");
    ts[1].topic_id = md.topic_id;
    ts[2].name = sh_slice_str("x");
    ts[2].topic_id = md.topic_id;
    ts[3].name = SH_SLICE_NULL;
    sh_delete_topics_request_t rq;
    sh_delete_topics_response_t rs;
    sh_delete_topics_request_init(&rq);
    rq.topics = ts;
    rq.topics_count = 4;
    roundtrip(t.fd, 20, 6, &rq, &rs);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rs.responses[i].error_code, SH_KERR_INVALID_REQUEST);
    assert_int_equal(metadata_one(&t, 4, "twice", false).error_code, 0);
    frames_free();
    tb_stop(&t, false);
}

static void test_create_partitions(void **state)
{
    (void)state;
    tb_t t;
    tb_start(&t, NULL, NULL);
    assert_int_equal(create_one(&t, 4, "grow", 1), 0);

    for (int16_t v = 0; v <= 3; v++) {
        sh_create_partitions_request_create_partitions_topic_t tp[2];
        memset(tp, 0, sizeof(tp));
        tp[0].name = sh_slice_str("grow");
        tp[0].count = 2 + v;
        tp[0].assignments_count = -1;
        tp[1].name = sh_slice_str("nope");
        tp[1].count = 2;
        tp[1].assignments_count = -1;
        sh_create_partitions_request_t rq;
        sh_create_partitions_response_t rs;
        sh_create_partitions_request_init(&rq);
        rq.topics = tp;
        rq.topics_count = 2;
        rq.timeout_ms = 5000;
        roundtrip(t.fd, 37, v, &rq, &rs);
        assert_int_equal(rs.results_count, 2);
        assert_int_equal(rs.results[0].error_code, 0);
        assert_int_equal(rs.results[1].error_code, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
        md_topic_t md = metadata_one(&t, 7, "grow", false);
        assert_int_equal(md.partitions_count, 2 + v);
        assert_int_equal(md.partitions[1 + v].leader_id, NODE);
    }

    /* no change, a decrease, duplicates, bad assignments, validate_only */
    int32_t me = NODE, other = 9;
    sh_create_partitions_request_create_partitions_assignment_t as[2] = {{&me, 1}, {&other, 1}};
    sh_create_partitions_request_create_partitions_topic_t tp[6];
    memset(tp, 0, sizeof(tp));
    for (int i = 0; i < 6; i++) {
        tp[i].name = sh_slice_str("grow");
        tp[i].assignments_count = -1;
    }
    tp[0].count = 5;
    tp[1].count = 2;
    tp[2].name = sh_slice_str("d");
    tp[2].count = 2;
    tp[3].name = sh_slice_str("d");
    tp[3].count = 2;
    sh_create_partitions_request_t rq;
    sh_create_partitions_response_t rs;
    sh_create_partitions_request_init(&rq);
    rq.topics = tp;
    rq.topics_count = 1;
    roundtrip(t.fd, 37, 1, &rq, &rs);
    assert_int_equal(rs.results[0].error_code, SH_KERR_INVALID_PARTITIONS);
    rq.topics = &tp[1];
    roundtrip(t.fd, 37, 2, &rq, &rs);
    assert_int_equal(rs.results[0].error_code, SH_KERR_INVALID_PARTITIONS);
    assert_false(sh_slice_is_null(rs.results[0].error_message));
    rq.topics = &tp[2];
    rq.topics_count = 2;
    roundtrip(t.fd, 37, 1, &rq, &rs);
    assert_int_equal(rs.results[0].error_code, SH_KERR_INVALID_REQUEST);
    assert_int_equal(rs.results[1].error_code, SH_KERR_INVALID_REQUEST);

    tp[4].count = 7;
    tp[4].assignments = as;
    tp[4].assignments_count = 2;
    rq.topics = &tp[4];
    rq.topics_count = 1;
    roundtrip(t.fd, 37, 1, &rq, &rs);
    assert_int_equal(rs.results[0].error_code, SH_KERR_INVALID_REPLICA_ASSIGNMENT);
    tp[4].assignments_count = 1; /* two new partitions, one assignment */
    roundtrip(t.fd, 37, 1, &rq, &rs);
    assert_int_equal(rs.results[0].error_code, SH_KERR_INVALID_REPLICA_ASSIGNMENT);
    as[1].broker_ids = &me;
    tp[4].assignments_count = 2;
    rq.validate_only = true;
    roundtrip(t.fd, 37, 1, &rq, &rs);
    assert_int_equal(rs.results[0].error_code, 0);
    assert_int_equal(metadata_one(&t, 7, "grow", false).partitions_count, 5);
    rq.validate_only = false;
    roundtrip(t.fd, 37, 3, &rq, &rs);
    assert_int_equal(rs.results[0].error_code, 0);
    assert_int_equal(metadata_one(&t, 7, "grow", false).partitions_count, 7);
    frames_free();
    tb_stop(&t, false);
}

static void test_describe_configs(void **state)
{
    (void)state;
    const char *const ov[] = {"log.retention.hours=48", NULL};
    tb_t t;
    tb_start(&t, NULL, ov);
    ct_topic_t tp = ct_topic("described", 1, 1);
    ct_cfg_t cfg = {sh_slice_str("segment.ms"), sh_slice_str("3600000")};
    tp.configs = &cfg;
    tp.configs_count = 1;
    assert_int_equal(create_topics(&t, 4, &tp, 1, false).topics[0].error_code, 0);

    for (int16_t v = 0; v <= 4; v++) {
        sh_describe_configs_response_describe_configs_result_t r =
            describe(&t, v, SH_CFG_RESOURCE_TOPIC, "described", true, true, NULL, 0);
        assert_int_equal(r.error_code, 0);
        assert_int_equal(r.resource_type, SH_CFG_RESOURCE_TOPIC);
        assert_int_equal(r.configs_count, (int32_t)sh_topic_cfg_nkeys);
        assert_true(value_is(&r, "segment.ms", "3600000"));
        assert_true(value_is(&r, "retention.ms", "172800000"));
        assert_true(value_is(&r, "cleanup.policy", "delete"));
        assert_true(value_is(&r, "streamhouse.durability", "wal"));
        assert_true(value_is(&r, "min.insync.replicas", "1"));
        const sh_describe_configs_response_describe_configs_resource_result_t *seg =
            entry(&r, "segment.ms");
        const sh_describe_configs_response_describe_configs_resource_result_t *ret =
            entry(&r, "retention.ms");
        const sh_describe_configs_response_describe_configs_resource_result_t *pol =
            entry(&r, "cleanup.policy");
        assert_false(seg->read_only);
        assert_false(seg->is_sensitive);
        if (v == 0) {
            assert_false(seg->is_default);
            assert_false(ret->is_default);
            assert_true(pol->is_default);
            assert_int_equal(seg->synonyms_count, 0);
        } else {
            assert_int_equal(seg->config_source, SH_CFG_SOURCE_TOPIC);
            assert_int_equal(ret->config_source, SH_CFG_SOURCE_STATIC_BROKER);
            assert_int_equal(pol->config_source, SH_CFG_SOURCE_DEFAULT);
            assert_int_equal(seg->synonyms_count, 2);
            assert_true(sh_slice_eq_str(seg->synonyms[0].name, "segment.ms"));
            assert_int_equal(seg->synonyms[0].source, SH_CFG_SOURCE_TOPIC);
            assert_true(sh_slice_eq_str(seg->synonyms[1].name, "log.roll.ms"));
            assert_int_equal(ret->synonyms_count, 2);
            assert_true(sh_slice_eq_str(ret->synonyms[0].name, "log.retention.hours"));
            assert_true(sh_slice_eq_str(ret->synonyms[0].value, "48"));
        }
        if (v >= 3) {
            assert_int_equal(seg->config_type, SH_CFG_TYPE_LONG);
            assert_int_equal(pol->config_type, SH_CFG_TYPE_LIST);
            assert_false(sh_slice_is_null(seg->documentation));
        }
    }
    /* no synonyms or documentation unless asked */
    sh_describe_configs_response_describe_configs_result_t r =
        describe(&t, 4, SH_CFG_RESOURCE_TOPIC, "described", false, false, NULL, 0);
    assert_int_equal(entry(&r, "segment.ms")->synonyms_count, 0);
    assert_true(sh_slice_is_null(entry(&r, "segment.ms")->documentation));
    /* a key filter; unknown keys are left out */
    sh_slice_t keys[3] = {sh_slice_str("retention.bytes"), sh_slice_str("no.such.key"),
                          sh_slice_str("segment.ms")};
    r = describe(&t, 2, SH_CFG_RESOURCE_TOPIC, "described", false, false, keys, 3);
    assert_int_equal(r.configs_count, 2);
    assert_non_null(entry(&r, "retention.bytes"));
    r = describe(&t, 2, SH_CFG_RESOURCE_TOPIC, "described", false, false, keys, 0);
    assert_int_equal(r.configs_count, 0);

    /* errors */
    r = describe(&t, 1, SH_CFG_RESOURCE_TOPIC, "missing", false, false, NULL, 0);
    assert_int_equal(r.error_code, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    r = describe(&t, 1, SH_CFG_RESOURCE_TOPIC, "no/slash", false, false, NULL, 0);
    assert_int_equal(r.error_code, SH_KERR_INVALID_TOPIC_EXCEPTION);
    r = describe(&t, 1, 99, "x", false, false, NULL, 0);
    assert_int_equal(r.error_code, SH_KERR_INVALID_REQUEST);

    /* broker resources */
    r = describe(&t, 4, SH_CFG_RESOURCE_BROKER, "7", true, true, NULL, 0);
    assert_int_equal(r.error_code, 0);
    assert_int_equal(r.configs_count, SH_CONFIG_NKEYS);
    const sh_describe_configs_response_describe_configs_resource_result_t *nid =
        entry(&r, "node.id");
    assert_true(sh_slice_eq_str(nid->value, "7"));
    assert_true(nid->read_only);
    assert_int_equal(nid->config_source, SH_CFG_SOURCE_STATIC_BROKER);
    assert_int_equal(nid->config_type, SH_CFG_TYPE_INT);
    assert_int_equal(entry(&r, "message.max.bytes")->config_source, SH_CFG_SOURCE_DEFAULT);
    assert_false(sh_slice_is_null(nid->documentation));
    r = describe(&t, 4, SH_CFG_RESOURCE_BROKER, "", false, false, NULL, 0);
    assert_int_equal(r.error_code, 0);
    assert_int_equal(r.configs_count, 0);
    r = describe(&t, 4, SH_CFG_RESOURCE_BROKER, "8", false, false, NULL, 0);
    assert_int_equal(r.error_code, SH_KERR_INVALID_REQUEST);
    r = describe(&t, 4, SH_CFG_RESOURCE_BROKER_LOGGER, "7", false, false, NULL, 0);
    assert_int_equal(r.error_code, 0);
    frames_free();
    tb_stop(&t, false);
}

typedef sh_alter_configs_request_alter_configs_resource_t ac_res_t;
typedef sh_alter_configs_request_alterable_config_t ac_cfg_t;

static int16_t alter(tb_t *t, int16_t v, int8_t type, const char *name, ac_cfg_t *cfgs,
                     int32_t n, bool validate_only)
{
    ac_res_t res = {type, sh_slice_str(name), cfgs, n};
    sh_alter_configs_request_t rq;
    sh_alter_configs_response_t rs;
    sh_alter_configs_request_init(&rq);
    rq.resources = &res;
    rq.resources_count = 1;
    rq.validate_only = validate_only;
    roundtrip(t->fd, 33, v, &rq, &rs);
    assert_int_equal(rs.responses_count, 1);
    assert_true(sh_slice_eq_str(rs.responses[0].resource_name, name));
    if (rs.responses[0].error_code)
        assert_false(sh_slice_is_null(rs.responses[0].error_message));
    return rs.responses[0].error_code;
}

static void test_alter_configs(void **state)
{
    (void)state;
    tb_t t;
    tb_start(&t, NULL, NULL);
    assert_int_equal(create_one(&t, 4, "alt", 1), 0);

    for (int16_t v = 0; v <= 2; v++) {
        char val[16];
        snprintf(val, sizeof(val), "%d", 1000 + v);
        ac_cfg_t c[2] = {{sh_slice_str("retention.ms"), sh_slice_str(val)},
                         {sh_slice_str("streamhouse.durability"), sh_slice_str("object")}};
        assert_int_equal(alter(&t, v, SH_CFG_RESOURCE_TOPIC, "alt", c, 2, false), 0);
        sh_describe_configs_response_describe_configs_result_t r =
            describe(&t, 1, SH_CFG_RESOURCE_TOPIC, "alt", false, false, NULL, 0);
        assert_true(value_is(&r, "retention.ms", val));
        assert_true(value_is(&r, "streamhouse.durability", "object"));
    }
    /* replace: what is not listed goes back to the default */
    ac_cfg_t one = {sh_slice_str("segment.bytes"), sh_slice_str("1048576")};
    assert_int_equal(alter(&t, 1, SH_CFG_RESOURCE_TOPIC, "alt", &one, 1, false), 0);
    sh_describe_configs_response_describe_configs_result_t r =
        describe(&t, 1, SH_CFG_RESOURCE_TOPIC, "alt", false, false, NULL, 0);
    assert_true(value_is(&r, "segment.bytes", "1048576"));
    assert_true(value_is(&r, "streamhouse.durability", "wal"));
    assert_int_equal(entry(&r, "retention.ms")->config_source, SH_CFG_SOURCE_DEFAULT);

    /* validate_only changes nothing; errors change nothing */
    ac_cfg_t seg2 = {sh_slice_str("segment.bytes"), sh_slice_str("2097152")};
    assert_int_equal(alter(&t, 1, SH_CFG_RESOURCE_TOPIC, "alt", &seg2, 1, true), 0);
    ac_cfg_t bad[] = {{sh_slice_str("cleanup.policy"), sh_slice_str("compact")},
                      {sh_slice_str("retention.ms"), SH_SLICE_NULL},
                      {sh_slice_str("nope"), sh_slice_str("1")}};
    assert_int_equal(alter(&t, 1, SH_CFG_RESOURCE_TOPIC, "alt", &bad[0], 1, false), 40);
    assert_int_equal(alter(&t, 1, SH_CFG_RESOURCE_TOPIC, "alt", &bad[1], 1, false), 42);
    assert_int_equal(alter(&t, 1, SH_CFG_RESOURCE_TOPIC, "alt", &bad[2], 1, false), 40);
    ac_cfg_t twice[2] = {seg2, seg2};
    assert_int_equal(alter(&t, 1, SH_CFG_RESOURCE_TOPIC, "alt", twice, 2, false), 42);
    r = describe(&t, 1, SH_CFG_RESOURCE_TOPIC, "alt", false, false, NULL, 0);
    assert_true(value_is(&r, "segment.bytes", "1048576"));
    assert_int_equal(alter(&t, 1, SH_CFG_RESOURCE_TOPIC, "missing", &one, 1, false), 3);
    assert_int_equal(alter(&t, 1, SH_CFG_RESOURCE_TOPIC, "bad name", &one, 1, false), 17);

    /* broker: nothing to remove is fine; changes are refused */
    assert_int_equal(alter(&t, 1, SH_CFG_RESOURCE_BROKER, "7", NULL, 0, false), 0);
    ac_cfg_t bk = {sh_slice_str("num.partitions"), sh_slice_str("5")};
    assert_int_equal(alter(&t, 1, SH_CFG_RESOURCE_BROKER, "7", &bk, 1, false), 42);
    assert_int_equal(alter(&t, 1, SH_CFG_RESOURCE_BROKER, "", &bk, 1, false), 42);
    assert_int_equal(alter(&t, 1, SH_CFG_RESOURCE_BROKER, "3", NULL, 0, false), 42);
    assert_int_equal(alter(&t, 1, SH_CFG_RESOURCE_BROKER_LOGGER, "7", NULL, 0, false), 42);

    /* the same resource twice in one request */
    ac_res_t res[2] = {{SH_CFG_RESOURCE_TOPIC, sh_slice_str("alt"), &one, 1},
                       {SH_CFG_RESOURCE_TOPIC, sh_slice_str("alt"), &seg2, 1}};
    sh_alter_configs_request_t rq;
    sh_alter_configs_response_t rs;
    sh_alter_configs_request_init(&rq);
    rq.resources = res;
    rq.resources_count = 2;
    roundtrip(t.fd, 33, 1, &rq, &rs);
    assert_int_equal(rs.responses[0].error_code, 42);
    assert_int_equal(rs.responses[1].error_code, 42);
    frames_free();
    tb_stop(&t, false);
}

typedef sh_incremental_alter_configs_request_alterable_config_t iac_cfg_t;

static int16_t ialter(tb_t *t, int16_t v, int8_t type, const char *name, iac_cfg_t *cfgs,
                      int32_t n, bool validate_only)
{
    sh_incremental_alter_configs_request_alter_configs_resource_t res = {
        type, sh_slice_str(name), cfgs, n};
    sh_incremental_alter_configs_request_t rq;
    sh_incremental_alter_configs_response_t rs;
    sh_incremental_alter_configs_request_init(&rq);
    rq.resources = &res;
    rq.resources_count = 1;
    rq.validate_only = validate_only;
    roundtrip(t->fd, 44, v, &rq, &rs);
    assert_int_equal(rs.responses_count, 1);
    if (rs.responses[0].error_code)
        assert_false(sh_slice_is_null(rs.responses[0].error_message));
    return rs.responses[0].error_code;
}

static void test_incremental_alter_configs(void **state)
{
    (void)state;
    tb_t t;
    tb_start(&t, NULL, NULL);
    assert_int_equal(create_one(&t, 4, "inc", 1), 0);
    ac_cfg_t base[2] = {{sh_slice_str("retention.ms"), sh_slice_str("1000")},
                        {sh_slice_str("segment.ms"), sh_slice_str("2000")}};
    assert_int_equal(alter(&t, 1, SH_CFG_RESOURCE_TOPIC, "inc", base, 2, false), 0);

    for (int16_t v = 0; v <= 1; v++) {
        char val[16];
        snprintf(val, sizeof(val), "%d", 3000 + v);
        /* SET one, DELETE another, APPEND an item already there */
        iac_cfg_t c[3] = {{sh_slice_str("max.message.bytes"), 0, sh_slice_str(val)},
                          {sh_slice_str("segment.ms"), 1, SH_SLICE_NULL},
                          {sh_slice_str("cleanup.policy"), 2, sh_slice_str("delete")}};
        assert_int_equal(ialter(&t, v, SH_CFG_RESOURCE_TOPIC, "inc", c, 3, false), 0);
        sh_describe_configs_response_describe_configs_result_t r =
            describe(&t, 1, SH_CFG_RESOURCE_TOPIC, "inc", false, false, NULL, 0);
        assert_true(value_is(&r, "max.message.bytes", val));
        assert_true(value_is(&r, "retention.ms", "1000")); /* untouched */
        assert_int_equal(entry(&r, "segment.ms")->config_source, SH_CFG_SOURCE_DEFAULT);
        assert_true(value_is(&r, "cleanup.policy", "delete"));
    }
    /* errors */
    iac_cfg_t e[] = {
        {sh_slice_str("cleanup.policy"), 2, sh_slice_str("compact")}, /* 40 */
        {sh_slice_str("retention.ms"), 2, sh_slice_str("5")},         /* 40: not a list */
        {sh_slice_str("retention.ms"), 9, sh_slice_str("5")},         /* 42: bad op */
        {sh_slice_str("retention.ms"), 0, SH_SLICE_NULL},             /* 42: SET null */
        {sh_slice_str("retention.ms"), 0, sh_slice_str("x")},         /* 40 */
        {sh_slice_str("no.such"), 1, SH_SLICE_NULL},                  /* 40 */
        {sh_slice_str("cleanup.policy"), 3, sh_slice_str("delete")},  /* 40: empty */
    };
    const int16_t want[] = {40, 40, 42, 42, 40, 40, 40};
    for (int i = 0; i < 7; i++)
        assert_int_equal(ialter(&t, 1, SH_CFG_RESOURCE_TOPIC, "inc", &e[i], 1, false), want[i]);
    iac_cfg_t dup[2] = {{sh_slice_str("retention.ms"), 0, sh_slice_str("5")},
                        {sh_slice_str("retention.ms"), 1, SH_SLICE_NULL}};
    assert_int_equal(ialter(&t, 1, SH_CFG_RESOURCE_TOPIC, "inc", dup, 2, false), 42);
    /* validate_only */
    assert_int_equal(ialter(&t, 1, SH_CFG_RESOURCE_TOPIC, "inc", dup, 1, true), 0);
    sh_describe_configs_response_describe_configs_result_t r =
        describe(&t, 1, SH_CFG_RESOURCE_TOPIC, "inc", false, false, NULL, 0);
    assert_true(value_is(&r, "retention.ms", "1000"));
    assert_int_equal(ialter(&t, 1, SH_CFG_RESOURCE_TOPIC, "gone", dup, 1, false), 3);
    /* broker and logger resources */
    assert_int_equal(ialter(&t, 1, SH_CFG_RESOURCE_BROKER, "7", NULL, 0, false), 0);
    iac_cfg_t lv = {sh_slice_str("streamhouse.log.level"), 0, sh_slice_str("debug")};
    assert_int_equal(ialter(&t, 1, SH_CFG_RESOURCE_BROKER, "7", &lv, 1, false), 42);
    assert_int_equal(ialter(&t, 1, SH_CFG_RESOURCE_BROKER_LOGGER, "7", &lv, 1, false), 42);
    assert_int_equal(ialter(&t, 1, 16, "x", &lv, 1, false), 42);
    frames_free();
    tb_stop(&t, false);
}

static void test_restart_keeps_topics(void **state)
{
    (void)state;
    tb_t t;
    char dir[64];
    tb_start(&t, NULL, NULL);
    snprintf(dir, sizeof(dir), "%s", t.dir);
    ct_topic_t tp = ct_topic("kept", 2, 1);
    ct_cfg_t cfg = {sh_slice_str("retention.bytes"), sh_slice_str("123456")};
    tp.configs = &cfg;
    tp.configs_count = 1;
    assert_int_equal(create_topics(&t, 4, &tp, 1, false).topics[0].error_code, 0);
    assert_int_equal(create_one(&t, 4, "dropped", 1), 0);
    md_topic_t before = metadata_one(&t, 10, "kept", false);
    sh_uuid_t id = before.topic_id;
    int32_t epoch = before.partitions[0].leader_epoch;
    sh_slice_t del = sh_slice_str("dropped");
    sh_delete_topics_request_t dr;
    sh_delete_topics_response_t ds;
    sh_delete_topics_request_init(&dr);
    dr.topic_names = &del;
    dr.topic_names_count = 1;
    roundtrip(t.fd, 20, 4, &dr, &ds);
    assert_int_equal(ds.responses[0].error_code, 0);
    frames_free();
    tb_stop(&t, true);

    tb_start(&t, dir, NULL);
    md_topic_t after = metadata_one(&t, 10, "kept", false);
    assert_int_equal(after.error_code, 0);
    assert_memory_equal(after.topic_id.b, id.b, 16);
    assert_int_equal(after.partitions_count, 2);
    assert_int_equal(after.partitions[0].leader_epoch, epoch + 1);
    assert_int_equal(metadata_one(&t, 4, "dropped", false).error_code,
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    sh_describe_configs_response_describe_configs_result_t r =
        describe(&t, 1, SH_CFG_RESOURCE_TOPIC, "kept", false, false, NULL, 0);
    assert_true(value_is(&r, "retention.bytes", "123456"));
    assert_int_equal(entry(&r, "retention.bytes")->config_source, SH_CFG_SOURCE_TOPIC);
    frames_free();
    tb_stop(&t, false);
}

static int group_setup(void **state)
{
    (void)state;
    sh_arena_init(&g_arena, 16384);
    sh_log_level = SH_LOG_WARN;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    frames_free();
    sh_arena_fini(&g_arena);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_topics),
        cmocka_unit_test(test_metadata_autocreate),
        cmocka_unit_test(test_delete_topics),
        cmocka_unit_test(test_create_partitions),
        cmocka_unit_test(test_describe_configs),
        cmocka_unit_test(test_alter_configs),
        cmocka_unit_test(test_incremental_alter_configs),
        cmocka_unit_test(test_restart_keeps_topics),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
