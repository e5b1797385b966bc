/*
 * test_protocol_vectors.c - request frames captured from real clients
 * (librdkafka 2.0.2 via kcat and confluent-kafka-python, kafka-python
 * 2.0.2, kafkajs 2.2.4; tests/vectors/README.md) decode to what those
 * clients meant, and re-encode to the very same bytes.
 *
 * The vectors are read from tests/vectors/requests relative to the
 * working directory (make runs tests from the repository root), or from
 * $SH_VECTORS_DIR.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sh_arena.h"
#include "protocol/sh_proto.h"

static const char *vectors_dir(void)
{
    const char *d = getenv("SH_VECTORS_DIR");
    return d ? d : "tests/vectors/requests";
}

/* Read a .hex vector (hex digits, any whitespace) into a malloc'd buffer
 * of exactly its size, so ASan sees any read past the frame. */
static uint8_t *load(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", vectors_dir(), name);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open vector %s (run from the repository root)", path);
    size_t cap = 4096, n = 0;
    uint8_t *tmp = malloc(cap);
    int hi = -1, c;
    assert_non_null(tmp);
    while ((c = fgetc(f)) != EOF) {
        int v;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (n == cap) {
            cap *= 2;
            tmp = realloc(tmp, cap);
            assert_non_null(tmp);
        }
        tmp[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    fclose(f);
    assert_int_equal(hi, -1);
    uint8_t *b = malloc(n ? n : 1);
    assert_non_null(b);
    memcpy(b, tmp, n);
    free(tmp);
    *len = n;
    return b;
}

typedef struct decoded {
    uint8_t *frame;
    size_t len;
    sh_arena_t arena;
    int16_t header_version;
    sh_request_header_t hdr;
    void *body;
} decoded_t;

/* Decode header and body, insist on no trailing bytes, and check that
 * encoding them again reproduces the frame byte for byte. */
static void decode_vector(const char *name, decoded_t *d)
{
    d->frame = load(name, &d->len);
    sh_arena_init(&d->arena, 4096);
    sh_reader_t r;
    sh_reader_init(&r, d->frame, d->len);
    if (sh_request_header_decode(&r, &d->header_version, &d->hdr) != SH_OK)
        fail_msg("%s: header does not decode", name);
    const sh_api_info_t *ai = sh_api_info(d->hdr.request_api_key);
    assert_non_null(ai);
    /* the file name says which API and version the client sent */
    char want[64];
    snprintf(want, sizeof(want), "-%s-v%d.hex", ai->name, d->hdr.request_api_version);
    if (!strstr(name, want))
        fail_msg("%s: header says %s", name, want);
    d->body = sh_arena_alloc(&d->arena, ai->request_size);
    assert_non_null(d->body);
    sh_err_t err = ai->request_decode(&r, &d->arena, d->hdr.request_api_version, d->body);
    if (err != SH_OK)
        fail_msg("%s: body does not decode (%d at byte %zu)", name, err, r.fail_at);
    if (sh_reader_remaining(&r) != 0)
        fail_msg("%s: %zu bytes left after the body", name, sh_reader_remaining(&r));

    sh_writer_t w;
    sh_writer_init(&w);
    sh_request_header_encode(&w, d->header_version, &d->hdr);
    ai->request_encode(&w, d->hdr.request_api_version, d->body);
    assert_int_equal(w.err, 0);
    size_t n = sh_writer_size(&w);
    uint8_t *again = malloc(n ? n : 1);
    assert_non_null(again);
    sh_writer_flatten(&w, again);
    if (n != d->len || memcmp(again, d->frame, n) != 0)
        fail_msg("%s: re-encoding gives %zu bytes that differ from the %zu captured", name, n,
                 d->len);
    free(again);
    sh_writer_fini(&w);
}

static void release(decoded_t *d)
{
    sh_arena_fini(&d->arena);
    free(d->frame);
}

static void test_every_vector_roundtrips(void **state)
{
    (void)state;
    DIR *dir = opendir(vectors_dir());
    if (!dir)
        fail_msg("cannot open %s (run from the repository root)", vectors_dir());
    size_t files = 0;
    bool seen[4] = {false, false, false, false};
    static const char *const clients[] = {"kcat-", "confluent-", "kafka-python-", "kafkajs-"};
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".hex") != 0)
            continue;
        decoded_t d;
        decode_vector(e->d_name, &d);
        for (int i = 0; i < 4; i++)
            if (strncmp(e->d_name, clients[i], strlen(clients[i])) == 0)
                seen[i] = true;
        /* every strict prefix of a real frame is refused too */
        const sh_api_info_t *ai = sh_api_info(d.hdr.request_api_key);
        for (size_t n = 0; n < d.len; n++) {
            uint8_t *p = malloc(n ? n : 1);
            memcpy(p, d.frame, n);
            sh_reader_t r;
            sh_reader_init(&r, p, n);
            sh_request_header_t h;
            int16_t hv;
            sh_err_t err = sh_request_header_decode(&r, &hv, &h);
            if (err == SH_OK) {
                sh_arena_t a;
                sh_arena_init(&a, 1024);
                void *body = sh_arena_alloc(&a, ai->request_size);
                err = ai->request_decode(&r, &a, h.request_api_version, body);
                sh_arena_fini(&a);
            }
            if (err != SH_E_DECODE)
                fail_msg("%s: prefix of %zu bytes decoded (%d)", e->d_name, n, err);
            free(p);
        }
        release(&d);
        files++;
    }
    closedir(dir);
    print_message("vectors: %zu captured frames decode and re-encode exactly\n", files);
    assert_true(files >= 30);
    for (int i = 0; i < 4; i++)
        if (!seen[i])
            fail_msg("no vector from %s", clients[i]);
}

static void test_librdkafka(void **state)
{
    (void)state;
    decoded_t d;

    /* kcat -L: flexible ApiVersions v3 first */
    decode_vector("kcat-L-00-ApiVersions-v3.hex", &d);
    assert_int_equal(d.header_version, 2);
    assert_int_equal(d.hdr.correlation_id, 1);
    assert_true(sh_slice_eq_str(d.hdr.client_id, "rdkafka"));
    sh_api_versions_request_t *av = d.body;
    assert_true(sh_slice_eq_str(av->client_software_name, "librdkafka"));
    assert_true(sh_slice_eq_str(av->client_software_version, "2.0.2"));
    release(&d);

    /* then Metadata v4 for all topics: an empty array, no auto-create */
    decode_vector("kcat-L-01-Metadata-v4.hex", &d);
    assert_int_equal(d.header_version, 1);
    sh_metadata_request_t *md = d.body;
    assert_int_equal(md->topics_count, 0);
    assert_false(md->allow_auto_topic_creation);
    release(&d);

    /* kcat -P: Produce v7 with one batch of two records */
    decode_vector("kcat-P-02-Produce-v7.hex", &d);
    assert_true(sh_slice_eq_str(d.hdr.client_id, "kcat-vectors"));
    sh_produce_request_t *pr = d.body;
    assert_null(pr->transactional_id.ptr);
    assert_int_equal(pr->acks, -1);
    assert_int_equal(pr->timeout_ms, 30000);
    assert_int_equal(pr->topic_data_count, 1);
    assert_true(sh_slice_eq_str(pr->topic_data[0].name, "vectors"));
    assert_int_equal(pr->topic_data[0].partition_data_count, 1);
    assert_int_equal(pr->topic_data[0].partition_data[0].index, 0);
    sh_slice_t rec = pr->topic_data[0].partition_data[0].records;
    assert_int_equal(rec.len, 89);
    assert_int_equal(rec.ptr[16], 2); /* RecordBatch magic */
    /* records are a view into the frame, not a copy */
    assert_true(rec.ptr > d.frame && rec.ptr + rec.len == d.frame + d.len);
    release(&d);

    /* kcat -G: FindCoordinator v2 and JoinGroup v5 */
    decode_vector("kcat-G-02-FindCoordinator-v2.hex", &d);
    sh_find_coordinator_request_t *fc = d.body;
    assert_true(sh_slice_eq_str(fc->key, "vectors-group"));
    assert_int_equal(fc->key_type, 0);
    release(&d);

    decode_vector("kcat-G-07-JoinGroup-v5.hex", &d);
    sh_join_group_request_t *jg = d.body;
    assert_true(sh_slice_eq_str(jg->group_id, "vectors-group"));
    assert_int_equal(jg->session_timeout_ms, 45000);
    assert_int_equal(jg->rebalance_timeout_ms, 300000);
    assert_true(sh_slice_eq_str(jg->member_id, ""));
    assert_null(jg->group_instance_id.ptr);
    assert_true(sh_slice_eq_str(jg->protocol_type, "consumer"));
    assert_int_equal(jg->protocols_count, 2);
    assert_true(sh_slice_eq_str(jg->protocols[0].name, "range"));
    assert_true(sh_slice_eq_str(jg->protocols[1].name, "roundrobin"));
    /* the subscription metadata is opaque bytes naming the topic */
    sh_slice_t meta = jg->protocols[0].metadata;
    assert_int_equal(meta.len, 23);
    assert_memory_equal(meta.ptr + 8, "vectors", 7);
    release(&d);

    /* confluent-kafka-python reports itself in ApiVersions v3 */
    decode_vector("confluent-00-ApiVersions-v3.hex", &d);
    av = d.body;
    assert_true(sh_slice_eq_str(av->client_software_name, "confluent-kafka-python"));
    assert_true(sh_slice_eq_str(av->client_software_version, "1.7.0-rdkafka-2.0.2"));
    release(&d);
}

static void test_kafka_python(void **state)
{
    (void)state;
    decoded_t d;

    /* the version probe: ApiVersions v0 and Metadata v0, pipelined */
    decode_vector("kafka-python-producer-00-ApiVersions-v0.hex", &d);
    assert_int_equal(d.header_version, 1);
    assert_int_equal(d.hdr.correlation_id, 1);
    assert_true(sh_slice_eq_str(d.hdr.client_id, "kafka-python-vectors"));
    assert_int_equal(d.len, 30); /* v0 has no body at all */
    release(&d);

    decode_vector("kafka-python-producer-01-Metadata-v0.hex", &d);
    sh_metadata_request_t *md = d.body;
    assert_int_equal(d.hdr.correlation_id, 2);
    assert_int_equal(md->topics_count, 0);
    assert_true(md->allow_auto_topic_creation); /* absent in v0: default */
    release(&d);

    decode_vector("kafka-python-producer-02-Metadata-v1.hex", &d);
    md = d.body;
    assert_int_equal(md->topics_count, -1); /* v1 null = all topics */
    release(&d);

    decode_vector("kafka-python-producer-03-Produce-v7.hex", &d);
    sh_produce_request_t *pr = d.body;
    assert_int_equal(pr->acks, 1);
    assert_int_equal(pr->timeout_ms, 30000);
    assert_true(sh_slice_eq_str(pr->topic_data[0].name, "vectors"));
    assert_int_equal(pr->topic_data[0].partition_data[0].records.len, 75);
    release(&d);

    decode_vector("kafka-python-admin-05-Metadata-v5.hex", &d);
    md = d.body;
    assert_int_equal(md->topics_count, -1);
    assert_false(md->allow_auto_topic_creation);
    release(&d);

    decode_vector("kafka-python-admin-08-CreateTopics-v3.hex", &d);
    sh_create_topics_request_t *ct = d.body;
    assert_true(sh_slice_eq_str(d.hdr.client_id, "kafka-python-admin"));
    assert_int_equal(ct->topics_count, 1);
    assert_true(sh_slice_eq_str(ct->topics[0].name, "vectors-new"));
    assert_int_equal(ct->topics[0].num_partitions, 3);
    assert_int_equal(ct->topics[0].replication_factor, 1);
    assert_int_equal(ct->topics[0].assignments_count, 0);
    assert_int_equal(ct->topics[0].configs_count, 1);
    assert_true(sh_slice_eq_str(ct->topics[0].configs[0].name, "retention.ms"));
    assert_true(sh_slice_eq_str(ct->topics[0].configs[0].value, "60000"));
    assert_int_equal(ct->timeout_ms, 3000);
    assert_false(ct->validate_only);
    release(&d);
}

static void test_kafkajs(void **state)
{
    (void)state;
    decoded_t d;

    decode_vector("kafkajs-producer-00-ApiVersions-v2.hex", &d);
    assert_int_equal(d.hdr.correlation_id, 0);
    assert_true(sh_slice_eq_str(d.hdr.client_id, "kafkajs-vectors"));
    release(&d);

    decode_vector("kafkajs-producer-01-Metadata-v6.hex", &d);
    sh_metadata_request_t *md = d.body;
    assert_int_equal(md->topics_count, 1);
    assert_true(sh_slice_eq_str(md->topics[0].name, "vectors"));
    assert_true(md->allow_auto_topic_creation);
    release(&d);

    decode_vector("kafkajs-producer-02-Produce-v7.hex", &d);
    sh_produce_request_t *pr = d.body;
    assert_null(pr->transactional_id.ptr);
    assert_int_equal(pr->acks, -1);
    assert_int_equal(pr->timeout_ms, 30000);
    sh_slice_t rec = pr->topic_data[0].partition_data[0].records;
    assert_int_equal(rec.len, 89);
    assert_int_equal(rec.ptr[16], 2);
    release(&d);

    decode_vector("kafkajs-admin-02-CreateTopics-v3.hex", &d);
    sh_create_topics_request_t *ct = d.body;
    assert_true(sh_slice_eq_str(ct->topics[0].name, "vectors-new"));
    assert_int_equal(ct->topics[0].num_partitions, 3);
    assert_int_equal(ct->topics[0].configs_count, 1);
    assert_true(sh_slice_eq_str(ct->topics[0].configs[0].value, "60000"));
    assert_int_equal(ct->timeout_ms, 5000);
    release(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_vector_roundtrips),
        cmocka_unit_test(test_librdkafka),
        cmocka_unit_test(test_kafka_python),
        cmocka_unit_test(test_kafkajs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
