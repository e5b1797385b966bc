/*
 * test_protocol_codec.c - hand-checked bytes for the parts of the codec
 * that the generic round trip cannot judge on its own: header version
 * choice, exact encodings of ApiVersions and Metadata, tagged fields
 * (order, skipping unknown tags, size mismatches), nullable structs,
 * zero-copy records, hostile array counts, unsupported versions and the
 * DEBUG line a decode failure leaves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/sh_arena.h"
#include "common/sh_log.h"
#include "protocol/sh_proto.h"

#define S(lit) ((sh_slice_t){(const uint8_t *)(lit), sizeof(lit) - 1})

typedef struct out {
    uint8_t *b;
    size_t n;
} out_t;

static out_t take(sh_writer_t *w)
{
    out_t o;
    assert_int_equal(w->err, 0);
    o.n = sh_writer_size(w);
    o.b = malloc(o.n ? o.n : 1);
    assert_non_null(o.b);
    sh_writer_flatten(w, o.b);
    sh_writer_fini(w);
    return o;
}

static void assert_bytes(out_t o, const uint8_t *want, size_t n)
{
    if (o.n != n || memcmp(o.b, want, n) != 0) {
        for (size_t i = 0; i < o.n; i++)
            fprintf(stderr, "%02x%s", o.b[i], i + 1 == o.n ? "\n" : " ");
        fail_msg("encoding differs: %zu bytes, want %zu", o.n, n);
    }
    free(o.b);
}

static void test_request_header_version(void **state)
{
    (void)state;
    static const struct {
        int16_t key, version, want;
    } cases[] = {
        {SH_API_API_VERSIONS, 0, 1},  {SH_API_API_VERSIONS, 2, 1},
        {SH_API_API_VERSIONS, 3, 2},  {SH_API_API_VERSIONS, 4, 2},
        {SH_API_API_VERSIONS, 5, 2},  /* too new, but >= first flexible */
        {SH_API_API_VERSIONS, 300, 2}, {SH_API_METADATA, 8, 1},
        {SH_API_METADATA, 9, 2},      {SH_API_METADATA, 12, 2},
        {SH_API_METADATA, 13, 1},     /* above the range: v1 */
        {SH_API_PRODUCE, 8, 1},       {SH_API_PRODUCE, 9, 2},
        {SH_API_CONTROLLED_SHUTDOWN, 0, 0}, {SH_API_CONTROLLED_SHUTDOWN, 1, 1},
        {SH_API_CONTROLLED_SHUTDOWN, 3, 2}, {SH_API_SASL_HANDSHAKE, 1, 1},
        {1000, 0, 1},                 {-1, 0, 1},
        {SH_API_FETCH, -1, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int16_t got = sh_request_header_version(cases[i].key, cases[i].version);
        if (got != cases[i].want)
            fail_msg("key %d v%d: header v%d, want v%d", cases[i].key, cases[i].version, got,
                     cases[i].want);
    }
    assert_int_equal(sh_response_header_version(SH_API_API_VERSIONS, 3), 0);
    assert_int_equal(sh_response_header_version(SH_API_API_VERSIONS, 0), 0);
    assert_int_equal(sh_response_header_version(SH_API_METADATA, 9), 1);
    assert_int_equal(sh_response_header_version(SH_API_METADATA, 8), 0);
    assert_int_equal(sh_response_header_version(1000, 3), 0);
}

static void test_api_table(void **state)
{
    (void)state;
    assert_null(sh_api_info(-1));
    assert_null(sh_api_info(SH_API_KEY_LIMIT));
    assert_null(sh_api_info(1000));
    assert_null(sh_api_at(sh_api_count()));
    const sh_api_info_t *av = sh_api_info(SH_API_API_VERSIONS);
    assert_non_null(av);
    assert_string_equal(av->name, "ApiVersions");
    assert_int_equal(av->min_version, 0);
    assert_int_equal(av->max_version, 4);
    assert_int_equal(av->flexible_from, 3);
    assert_false(av->top_unstable);
    assert_true(av->listeners & SH_API_LISTENER_BROKER);
    assert_int_equal(av->request_size, sizeof(sh_api_versions_request_t));
    const sh_api_info_t *sh = sh_api_info(SH_API_SASL_HANDSHAKE);
    assert_int_equal(sh->flexible_from, -1);
    assert_true(sh_api_info(SH_API_CONSUMER_GROUP_HEARTBEAT)->top_unstable);
    assert_false(sh_api_info(SH_API_VOTE)->listeners & SH_API_LISTENER_BROKER);
    /* keys increase and every key maps back to its entry */
    for (size_t i = 1; i < sh_api_count(); i++)
        assert_true(sh_api_at(i - 1)->api_key < sh_api_at(i)->api_key);
    assert_true(sh_api_version_known(av, 4));
    assert_false(sh_api_version_known(av, 5));
    assert_false(sh_api_version_known(NULL, 0));
}

/* librdkafka's first frame: ApiVersions v3, header v2 (client_id stays
 * an int16 string), then the compact body. */
static const uint8_t apiv3_frame[] = {
    0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x07,             /* key 18 v3 corr 7 */
    0x00, 0x07, 'r', 'd', 'k', 'a', 'f', 'k', 'a', 0x00,         /* client_id, tags */
    0x0b, 'l', 'i', 'b', 'r', 'd', 'k', 'a', 'f', 'k', 'a',      /* software name */
    0x06, '2', '.', '0', '.', '2', 0x00,                        /* version, tags */
};

static void test_request_header_decode(void **state)
{
    (void)state;
    sh_reader_t r;
    sh_request_header_t h;
    int16_t hv = -1;
    sh_reader_init(&r, apiv3_frame, sizeof(apiv3_frame));
    assert_int_equal(sh_request_header_decode(&r, &hv, &h), SH_OK);
    assert_int_equal(hv, 2);
    assert_int_equal(h.request_api_key, 18);
    assert_int_equal(h.request_api_version, 3);
    assert_int_equal(h.correlation_id, 7);
    assert_true(sh_slice_eq_str(h.client_id, "rdkafka"));
    assert_ptr_equal(h.client_id.ptr, apiv3_frame + 10); /* borrowed, not copied */

    sh_api_versions_request_t req;
    assert_int_equal(sh_api_versions_request_decode(&r, NULL, 3, &req), SH_OK);
    assert_true(sh_slice_eq_str(req.client_software_name, "librdkafka"));
    assert_true(sh_slice_eq_str(req.client_software_version, "2.0.2"));
    assert_int_equal(sh_reader_remaining(&r), 0);

    /* re-encoding the header gives the same bytes */
    sh_writer_t w;
    sh_writer_init(&w);
    sh_request_header_encode(&w, 2, &h);
    assert_bytes(take(&w), apiv3_frame, 18);

    /* a too-new ApiVersions (v9) still has its header read as v2 */
    uint8_t v9[sizeof(apiv3_frame)];
    memcpy(v9, apiv3_frame, sizeof(v9));
    v9[3] = 9;
    sh_reader_init(&r, v9, sizeof(v9));
    assert_int_equal(sh_request_header_decode(&r, &hv, &h), SH_OK);
    assert_int_equal(hv, 2);
    assert_true(sh_slice_eq_str(h.client_id, "rdkafka"));
    assert_int_equal(sh_reader_offset(&r), 18);

    /* header v1 with a null client_id (kafka-python can send it) */
    static const uint8_t v1null[] = {0, 3, 0, 1, 0, 0, 1, 0, 0xff, 0xff};
    sh_reader_init(&r, v1null, sizeof(v1null));
    assert_int_equal(sh_request_header_decode(&r, &hv, &h), SH_OK);
    assert_int_equal(hv, 1);
    assert_int_equal(h.correlation_id, 256);
    assert_null(h.client_id.ptr);

    /* ControlledShutdown v0: header v0 has no client_id at all */
    static const uint8_t cs0[] = {0, 7, 0, 0, 0, 0, 0, 9, 0, 0, 0, 5};
    sh_reader_init(&r, cs0, sizeof(cs0));
    assert_int_equal(sh_request_header_decode(&r, &hv, &h), SH_OK);
    assert_int_equal(hv, 0);
    assert_int_equal(h.correlation_id, 9);
    assert_true(sh_slice_eq_str(h.client_id, "")); /* absent: the schema default */
    assert_int_equal(sh_reader_offset(&r), 8);

    /* an unknown tag in a v2 header is skipped */
    static const uint8_t tagged[] = {0, 3, 0, 9, 0, 0, 0, 1, 0, 1, 'x',
                                     1, 5, 2, 0xaa, 0xbb, /* 1 tag: #5, 2 bytes */
                                     0x42};
    sh_reader_init(&r, tagged, sizeof(tagged));
    assert_int_equal(sh_request_header_decode(&r, &hv, &h), SH_OK);
    assert_int_equal(hv, 2);
    assert_int_equal(sh_reader_offset(&r), sizeof(tagged) - 1);

    /* too short for api key and version, and truncated client_id */
    sh_reader_init(&r, apiv3_frame, 3);
    assert_int_equal(sh_request_header_decode(&r, &hv, &h), SH_E_DECODE);
    sh_reader_init(&r, apiv3_frame, 12);
    assert_int_equal(sh_request_header_decode(&r, &hv, &h), SH_E_DECODE);
}

static void test_response_header_encode(void **state)
{
    (void)state;
    sh_writer_t w;
    sh_writer_init(&w);
    sh_response_header_encode(&w, 0, 0x01020304);
    static const uint8_t v0[] = {1, 2, 3, 4};
    assert_bytes(take(&w), v0, sizeof(v0));
    sh_writer_init(&w);
    sh_response_header_encode(&w, 1, -1);
    static const uint8_t v1[] = {0xff, 0xff, 0xff, 0xff, 0};
    assert_bytes(take(&w), v1, sizeof(v1));
}

static void fill_api_versions(sh_api_versions_response_t *m, sh_api_versions_response_api_version_t *k)
{
    sh_api_versions_response_init(m);
    k[0] = (sh_api_versions_response_api_version_t){18, 0, 4};
    k[1] = (sh_api_versions_response_api_version_t){3, 0, 12};
    m->api_keys = k;
    m->api_keys_count = 2;
    m->throttle_time_ms = 5;
}

static void test_api_versions_response_bytes(void **state)
{
    (void)state;
    sh_api_versions_response_t m;
    sh_api_versions_response_api_version_t k[2];
    fill_api_versions(&m, k);

    /* the default finalized_features_epoch is -1 */
    assert_int_equal(m.finalized_features_epoch, -1);

    sh_writer_t w;
    sh_writer_init(&w);
    sh_api_versions_response_encode(&w, 0, &m);
    static const uint8_t v0[] = {0, 0, 0, 0, 0, 2, 0, 18, 0, 0, 0, 4, 0, 3, 0, 0, 0, 12};
    assert_bytes(take(&w), v0, sizeof(v0));

    sh_writer_init(&w);
    sh_api_versions_response_encode(&w, 1, &m);
    static const uint8_t v1[] = {0, 0, 0, 0, 0, 2, 0, 18, 0, 0, 0, 4, 0, 3, 0, 0, 0, 12,
                                 0, 0, 0, 5};
    assert_bytes(take(&w), v1, sizeof(v1));

    /* v3: compact array, per-element tag blocks, no tags at the end
     * because every tagged field holds its default */
    sh_writer_init(&w);
    sh_api_versions_response_encode(&w, 3, &m);
    static const uint8_t v3[] = {0, 0, 3, 0, 18, 0, 0, 0, 4, 0, 0, 3, 0, 0, 0, 12, 0,
                                 0, 0, 0, 5, 0};
    assert_bytes(take(&w), v3, sizeof(v3));

    /* tagged fields: written in tag order whatever the member order */
    sh_api_versions_response_supported_feature_key_t feat = {S("kraft.version"), 0, 1};
    m.supported_features = &feat;
    m.supported_features_count = 1;
    m.finalized_features_epoch = 0x0102;
    m.zk_migration_ready = true;
    sh_writer_init(&w);
    sh_api_versions_response_encode(&w, 3, &m);
    static const uint8_t v3t[] = {
        0, 0, 3, 0, 18, 0, 0, 0, 4, 0, 0, 3, 0, 0, 0, 12, 0, 0, 0, 0, 5,
        3,                                                       /* three tags */
        0, 20, 2, 14, 'k', 'r', 'a', 'f', 't', '.', 'v', 'e', 'r', 's', 'i', 'o', 'n',
        0, 0, 0, 1, 0,                                           /* tag 0, 20 bytes */
        1, 8, 0, 0, 0, 0, 0, 0, 1, 2,                            /* tag 1 */
        3, 1, 1,                                                 /* tag 3 */
    };
    out_t o = take(&w);
    uint8_t *copy = malloc(o.n);
    memcpy(copy, o.b, o.n);
    assert_bytes(o, v3t, sizeof(v3t));

    sh_arena_t a;
    sh_arena_init(&a, 1024);
    sh_api_versions_response_t d;
    sh_reader_t r;
    sh_reader_init(&r, copy, sizeof(v3t));
    assert_int_equal(sh_api_versions_response_decode(&r, &a, 3, &d), SH_OK);
    assert_int_equal(d.finalized_features_epoch, 0x0102);
    assert_true(d.zk_migration_ready);
    assert_int_equal(d.supported_features_count, 1);
    assert_true(sh_slice_eq_str(d.supported_features[0].name, "kraft.version"));
    assert_int_equal(d.finalized_features_count, 0);
    assert_int_equal(d.api_keys[1].max_version, 12);
    assert_true(sh_msg_equal(&sh_api_versions_response_desc, &m, &d));
    free(copy);
    sh_arena_fini(&a);
}

static void test_tagged_fields_decode(void **state)
{
    (void)state;
    sh_arena_t a;
    sh_arena_init(&a, 1024);
    sh_api_versions_response_t d;
    sh_reader_t r;

    /* an unknown tag (9) is skipped by size; the known tag 1 is read */
    static const uint8_t ok[] = {0, 0, 1, 0, 0, 0, 0,
                                 2, 1, 8, 0, 0, 0, 0, 0, 0, 0, 7,
                                 9, 3, 0xde, 0xad, 0xbe};
    sh_reader_init(&r, ok, sizeof(ok));
    assert_int_equal(sh_api_versions_response_decode(&r, &a, 3, &d), SH_OK);
    assert_int_equal(d.finalized_features_epoch, 7);
    assert_int_equal(sh_reader_remaining(&r), 0);

    /* a known tag whose size does not match its data */
    static const uint8_t longer[] = {0, 0, 1, 0, 0, 0, 0,
                                     1, 1, 9, 0, 0, 0, 0, 0, 0, 0, 7, 0};
    sh_reader_init(&r, longer, sizeof(longer));
    assert_int_equal(sh_api_versions_response_decode(&r, &a, 3, &d), SH_E_DECODE);
    static const uint8_t shorter[] = {0, 0, 1, 0, 0, 0, 0, 1, 1, 3, 0, 0, 0};
    sh_reader_init(&r, shorter, sizeof(shorter));
    assert_int_equal(sh_api_versions_response_decode(&r, &a, 3, &d), SH_E_DECODE);

    /* a tag size beyond the frame */
    static const uint8_t beyond[] = {0, 0, 1, 0, 0, 0, 0, 1, 9, 100, 0};
    sh_reader_init(&r, beyond, sizeof(beyond));
    assert_int_equal(sh_api_versions_response_decode(&r, &a, 3, &d), SH_E_DECODE);

    /* tags are not read in versions that are not flexible: v2 stops
     * after throttle_time_ms and leaves the rest to the caller */
    static const uint8_t v2[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9};
    sh_reader_init(&r, v2, sizeof(v2));
    assert_int_equal(sh_api_versions_response_decode(&r, &a, 2, &d), SH_OK);
    assert_int_equal(d.throttle_time_ms, 0);
    assert_int_equal(sh_reader_remaining(&r), 1); /* trailing bytes are left */
    sh_arena_fini(&a);
}

static void test_metadata_request_null_topics(void **state)
{
    (void)state;
    sh_arena_t a;
    sh_arena_init(&a, 1024);
    sh_metadata_request_t m;
    sh_reader_t r;
    static const uint8_t null4[] = {0xff, 0xff, 0xff, 0xff};

    /* v0 cannot say "all topics" with null: it uses an empty array */
    sh_reader_init(&r, null4, sizeof(null4));
    assert_int_equal(sh_metadata_request_decode(&r, &a, 0, &m), SH_E_DECODE);
    /* v1+ can */
    sh_reader_init(&r, null4, sizeof(null4));
    assert_int_equal(sh_metadata_request_decode(&r, &a, 1, &m), SH_OK);
    assert_int_equal(m.topics_count, -1);
    assert_true(m.allow_auto_topic_creation); /* absent before v4: default */

    /* v9 (flexible): compact null array, then bools, then tags */
    static const uint8_t v9[] = {0, 1, 0, 1, 0};
    sh_reader_init(&r, v9, sizeof(v9));
    assert_int_equal(sh_metadata_request_decode(&r, &a, 9, &m), SH_OK);
    assert_int_equal(m.topics_count, -1);
    assert_false(m.include_cluster_authorized_operations);
    assert_true(m.include_topic_authorized_operations);

    /* v4 with two topics */
    static const uint8_t v4[] = {0, 0, 0, 2, 0, 1, 'a', 0, 2, 'b', 'c', 0};
    sh_reader_init(&r, v4, sizeof(v4));
    assert_int_equal(sh_metadata_request_decode(&r, &a, 4, &m), SH_OK);
    assert_int_equal(m.topics_count, 2);
    assert_true(sh_slice_eq_str(m.topics[0].name, "a"));
    assert_true(sh_slice_eq_str(m.topics[1].name, "bc"));
    assert_false(m.allow_auto_topic_creation);
    sh_writer_t w;
    sh_writer_init(&w);
    sh_metadata_request_encode(&w, 4, &m);
    assert_bytes(take(&w), v4, sizeof(v4));
    sh_arena_fini(&a);
}

static void test_metadata_response_bytes(void **state)
{
    (void)state;
    sh_metadata_response_t m;
    sh_metadata_response_init(&m);
    sh_metadata_response_metadata_response_broker_t b = {1, S("h"), 9092, SH_SLICE_NULL};
    int32_t replicas[] = {1};
    sh_metadata_response_metadata_response_partition_t p;
    memset(&p, 0, sizeof(p));
    p.leader_id = 1;
    p.leader_epoch = 3;
    p.replica_nodes = replicas;
    p.replica_nodes_count = 1;
    p.isr_nodes = replicas;
    p.isr_nodes_count = 1;
    sh_metadata_response_metadata_response_topic_t t;
    memset(&t, 0, sizeof(t));
    t.name = S("t");
    t.partitions = &p;
    t.partitions_count = 1;
    m.brokers = &b;
    m.brokers_count = 1;
    m.controller_id = 1;
    m.topics = &t;
    m.topics_count = 1;

    sh_writer_t w;
    sh_writer_init(&w);
    sh_metadata_response_encode(&w, 0, &m);
    static const uint8_t v0[] = {
        0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 'h', 0, 0, 0x23, 0x84,      /* brokers */
        0, 0, 0, 1, 0, 0, 0, 1, 't',                               /* topic */
        0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,                  /* partition */
        0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1,            /* replicas, isr */
    };
    assert_bytes(take(&w), v0, sizeof(v0));

    /* v9: compact everything, rack null = 0, cluster_id null = 0 */
    sh_writer_init(&w);
    sh_metadata_response_encode(&w, 9, &m);
    static const uint8_t v9[] = {
        0, 0, 0, 0,                                  /* throttle */
        2, 0, 0, 0, 1, 2, 'h', 0, 0, 0x23, 0x84, 0, 0, /* brokers: rack null, tags */
        0,                                           /* cluster_id null */
        0, 0, 0, 1,                                  /* controller */
        2, 0, 0, 2, 't', 0,                          /* topic: error, name, internal */
        2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3, /* partition: err, idx, leader, epoch */
        2, 0, 0, 0, 1, 2, 0, 0, 0, 1, 1, 0,          /* replicas, isr, offline, tags */
        0, 0, 0, 0, 0,                               /* topic authorized ops, tags */
        0x80, 0, 0, 0,                               /* cluster authorized ops */
        0,                                           /* body tags */
    };
    /* topic_authorized_operations defaults to INT32_MIN in init() but the
     * topic above was memset to 0, which is what gets written */
    assert_bytes(take(&w), v9, sizeof(v9));
}

static void test_huge_array_count(void **state)
{
    (void)state;
    sh_arena_t a;
    sh_arena_init(&a, 1024);
    sh_metadata_response_t m;
    sh_reader_t r;
    /* brokers count 2^31-1 with 10 bytes left: refused before allocating */
    static const uint8_t v0[] = {0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    sh_reader_init(&r, v0, sizeof(v0));
    assert_int_equal(sh_metadata_response_decode(&r, &a, 0, &m), SH_E_DECODE);
    assert_int_equal(a.total, 0);
    /* int32 replica count that would fit one-byte elements but not four */
    static const uint8_t v0b[] = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 't',
                                  0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
                                  0, 0, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8};
    sh_reader_init(&r, v0b, sizeof(v0b));
    assert_int_equal(sh_metadata_response_decode(&r, &a, 0, &m), SH_E_DECODE);
    /* compact count of 2^32 - 1 */
    static const uint8_t v9[] = {0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0};
    sh_reader_init(&r, v9, sizeof(v9));
    assert_int_equal(sh_metadata_response_decode(&r, &a, 9, &m), SH_E_DECODE);
    sh_arena_fini(&a);
}

static void test_records_zero_copy(void **state)
{
    (void)state;
    static const uint8_t batch[300] = {1, 2, 3};
    sh_produce_request_partition_produce_data_t pd = {4, {batch, sizeof(batch)}};
    sh_produce_request_topic_produce_data_t td = {S("events"), &pd, 1};
    sh_produce_request_t m;
    sh_produce_request_init(&m);
    m.acks = -1;
    m.timeout_ms = 1000;
    m.topic_data = &td;
    m.topic_data_count = 1;
    for (int16_t v = 3; v <= 11; v += 8) {
        sh_writer_t w;
        sh_writer_init(&w);
        sh_produce_request_encode(&w, v, &m);
        assert_int_equal(w.err, 0);
        assert_int_equal(w.nrefs, 1); /* the batch is referenced, not copied */
        assert_ptr_equal(w.refs[0].slice.ptr, batch);
        assert_int_equal(w.ref_bytes, sizeof(batch));
        struct iovec iov[4];
        assert_int_equal(sh_writer_iov_count(&w), 3);
        size_t n = sh_writer_iov(&w, iov, 4);
        assert_true(n >= 2);
        assert_ptr_equal(iov[1].iov_base, batch);
        out_t o = take(&w);
        sh_arena_t a;
        sh_arena_init(&a, 1024);
        sh_produce_request_t d;
        sh_reader_t r;
        sh_reader_init(&r, o.b, o.n);
        assert_int_equal(sh_produce_request_decode(&r, &a, v, &d), SH_OK);
        assert_int_equal(d.acks, -1);
        assert_null(d.transactional_id.ptr);
        sh_slice_t rec = d.topic_data[0].partition_data[0].records;
        assert_int_equal(rec.len, sizeof(batch));
        /* decoded records borrow the frame */
        assert_true(rec.ptr > o.b && rec.ptr + rec.len <= o.b + o.n);
        assert_memory_equal(rec.ptr, batch, sizeof(batch));
        free(o.b);
        sh_arena_fini(&a);
    }
}

static void test_writer_insert_size(void **state)
{
    (void)state;
    static const uint8_t big[200] = {7};
    sh_writer_t w;
    sh_writer_init(&w);
    sh_wire_put_i8(&w, 0x11);
    sh_writer_mark_t mk = sh_writer_mark(&w);
    sh_wire_put_i8(&w, 0x22);
    sh_wire_put_ref(&w, (sh_slice_t){big, sizeof(big)});
    sh_wire_put_i8(&w, 0x33);
    sh_writer_insert_size(&w, mk);
    out_t o = take(&w);
    assert_int_equal(o.n, 1 + 2 + 1 + 200 + 1);
    assert_int_equal(o.b[0], 0x11);
    assert_int_equal(o.b[1], 0x80 | (202 & 0x7f)); /* 202 = 0xca 0x01 */
    assert_int_equal(o.b[2], 0x01);
    assert_int_equal(o.b[3], 0x22);
    assert_int_equal(o.b[4], 7);
    assert_int_equal(o.b[o.n - 1], 0x33);
    free(o.b);
}

static void test_nullable_struct(void **state)
{
    (void)state;
    sh_consumer_group_heartbeat_response_t m;
    sh_consumer_group_heartbeat_response_init(&m);
    assert_null(m.assignment);
    m.heartbeat_interval_ms = 3000;
    sh_writer_t w;
    sh_writer_init(&w);
    sh_consumer_group_heartbeat_response_encode(&w, 0, &m);
    static const uint8_t none[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                   0, 0, 0x0b, 0xb8, 0xff, 0};
    assert_bytes(take(&w), none, sizeof(none));

    int32_t parts[] = {0, 2};
    sh_consumer_group_heartbeat_response_topic_partitions_t tp = {{{1}}, parts, 2};
    sh_consumer_group_heartbeat_response_assignment_t as = {&tp, 1};
    m.assignment = &as;
    sh_writer_init(&w);
    sh_consumer_group_heartbeat_response_encode(&w, 0, &m);
    out_t o = take(&w);
    assert_int_equal(o.b[16], 1); /* present marker */
    sh_arena_t a;
    sh_arena_init(&a, 1024);
    sh_consumer_group_heartbeat_response_t d;
    sh_reader_t r;
    sh_reader_init(&r, o.b, o.n);
    assert_int_equal(sh_consumer_group_heartbeat_response_decode(&r, &a, 0, &d), SH_OK);
    assert_non_null(d.assignment);
    assert_int_equal(d.assignment->topic_partitions_count, 1);
    assert_int_equal(d.assignment->topic_partitions[0].partitions[1], 2);
    assert_int_equal(d.assignment->topic_partitions[0].topic_id.b[0], 1);
    free(o.b);

    /* null marker decodes to NULL */
    sh_reader_init(&r, none, sizeof(none));
    assert_int_equal(sh_consumer_group_heartbeat_response_decode(&r, &a, 0, &d), SH_OK);
    assert_null(d.assignment);
    sh_arena_fini(&a);
}

static void test_versions_outside_range(void **state)
{
    (void)state;
    sh_metadata_request_t m;
    sh_metadata_request_init(&m);
    static const uint8_t b[] = {0, 0, 0, 0};
    sh_reader_t r;
    sh_reader_init(&r, b, sizeof(b));
    sh_arena_t a;
    sh_arena_init(&a, 1024);
    assert_int_equal(sh_metadata_request_decode(&r, &a, 13, &m), SH_E_UNSUPPORTED);
    assert_int_equal(sh_metadata_request_decode(&r, &a, -1, &m), SH_E_UNSUPPORTED);
    assert_int_equal(sh_reader_offset(&r), 0);
    sh_writer_t w;
    sh_writer_init(&w);
    sh_metadata_request_encode(&w, 13, &m);
    assert_int_equal(w.err, SH_E_INVAL);
    sh_writer_fini(&w);
    sh_arena_fini(&a);
}

static void test_encode_bad_input(void **state)
{
    (void)state;
    /* a null string where the version forbids null goes out as "" */
    sh_metadata_response_t m;
    sh_metadata_response_init(&m);
    sh_metadata_response_metadata_response_broker_t b = {1, SH_SLICE_NULL, 1, SH_SLICE_NULL};
    m.brokers = &b;
    m.brokers_count = 1;
    sh_writer_t w;
    sh_writer_init(&w);
    sh_metadata_response_encode(&w, 0, &m);
    static const uint8_t v0[] = {0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    assert_bytes(take(&w), v0, sizeof(v0));

    /* a positive count without elements is a caller bug: SH_E_INVAL */
    m.brokers = NULL;
    sh_writer_init(&w);
    sh_metadata_response_encode(&w, 0, &m);
    assert_int_equal(w.err, SH_E_INVAL);
    sh_writer_fini(&w);

    /* a classic string longer than int16 allows */
    static uint8_t longname[40000];
    b.host = (sh_slice_t){longname, sizeof(longname)};
    m.brokers = &b;
    sh_writer_init(&w);
    sh_metadata_response_encode(&w, 0, &m);
    assert_int_equal(w.err, SH_E_INVAL);
    sh_writer_fini(&w);
    /* compact strings can carry it */
    sh_writer_init(&w);
    sh_metadata_response_encode(&w, 9, &m);
    assert_int_equal(w.err, 0);
    sh_writer_fini(&w);
}

static void test_decode_failure_is_logged(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    sh_log_level_t saved = sh_log_level;
    sh_log_level = SH_LOG_DEBUG;
    sh_log_set_fd(fileno(f));

    /* MetadataRequest v4 whose second topic name is cut short */
    static const uint8_t v4[] = {0, 0, 0, 2, 0, 1, 'a', 0, 5, 'b'};
    sh_arena_t a;
    sh_arena_init(&a, 1024);
    sh_metadata_request_t m;
    sh_reader_t r;
    sh_reader_init(&r, v4, sizeof(v4));
    assert_int_equal(sh_metadata_request_decode(&r, &a, 4, &m), SH_E_DECODE);
    assert_int_equal(r.fail_at, 9);

    sh_log_set_fd(2);
    sh_log_level = saved;
    char line[512] = {0};
    rewind(f);
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    assert_true(n > 0);
    assert_non_null(strstr(line, "MetadataRequest"));
    assert_non_null(strstr(line, "API key 3"));
    assert_non_null(strstr(line, "v4"));
    assert_non_null(strstr(line, "byte 9"));
    assert_non_null(strstr(line, "MetadataRequestTopic.name"));
    sh_arena_fini(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_header_version),
        cmocka_unit_test(test_api_table),
        cmocka_unit_test(test_request_header_decode),
        cmocka_unit_test(test_response_header_encode),
        cmocka_unit_test(test_api_versions_response_bytes),
        cmocka_unit_test(test_tagged_fields_decode),
        cmocka_unit_test(test_metadata_request_null_topics),
        cmocka_unit_test(test_metadata_response_bytes),
        cmocka_unit_test(test_huge_array_count),
        cmocka_unit_test(test_records_zero_copy),
        cmocka_unit_test(test_writer_insert_size),
        cmocka_unit_test(test_nullable_struct),
        cmocka_unit_test(test_versions_outside_range),
        cmocka_unit_test(test_encode_bad_input),
        cmocka_unit_test(test_decode_failure_is_logged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
