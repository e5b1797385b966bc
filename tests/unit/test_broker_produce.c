/*
 * test_broker_produce.c - Produce, Fetch and ListOffsets through real
 * sockets against an in-process broker with its real data path (WAL,
 * SQLite metadata, file:// objects in a temporary directory):
 *  - produce v3/v7/v9/v11 and fetch v4/v11/v12 round trips, the fetch
 *    response (which fetch.c encodes by hand) decoded by the generated
 *    decoder and compared byte for byte with what was produced;
 *  - per-partition errors (unknown topic or partition, invalid acks,
 *    corrupt batch, too large, idempotent producer) next to successes;
 *  - acks=0: no response, and the connection closed on an error;
 *  - fetch: long poll woken by a produce, max_wait expiry, limits,
 *    OFFSET_OUT_OF_RANGE, leader epoch checks, a session created;
 *  - ListOffsets: earliest, latest, max timestamp, by timestamp, tiered;
 *  - uploads: reads from objects, a restart replaying the WAL and loading
 *    the chunk index, LogAppendTime and object durability topics.
 *
 * Topics are created in the metadata store before the broker starts (the
 * registry loads them). Waiting is bounded by socket timeouts and a
 * polling guard, never asserted on time. Ports: 19450-19499.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol/sh_record_batch.h"
#include "test_broker_util.h"

#define PORT_LO 19450
#define PORT_HI 19499

/* ------------------------------------------------------------ broker */

typedef tbu_broker_t tb_t;

/* Small WAL files: the directory is created per test. */
static const char *const tb_defaults[] = {"streamhouse.wal.segment.bytes=1048576", NULL};

static void tb_start(tb_t *t, const char *dir, const char *const *overrides)
{
    tbu_listen(t, dir, PORT_LO, PORT_HI, tb_defaults, overrides);
    tbu_run(t);
}

static void tb_stop(tb_t *t)
{
    tbu_stop(t);
}

static char *mkdir_tmp(void)
{
    static char buf[64];
    return tbu_mkdtemp(buf, sizeof(buf), "produce");
}

/* ------------------------------------------------------------ client */

static void send_request(int fd, int16_t key, int16_t ver, int32_t corr, const void *body)
{
    tbu_send_request(fd, "test-produce", key, ver, corr, body);
}

static bool closed_by_broker(int fd)
{
    uint8_t b[64];
    for (;;) {
        ssize_t r = recv(fd, b, sizeof(b), 0);
        if (r == 0)
            return true;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno == ECONNRESET;
        return false;
    }
}

/* ----------------------------------------------------------- batches */

typedef struct batch {
    uint8_t *bytes;
    size_t len;
} batch_t;

static batch_t mk_batch(int n, const char *tag, int64_t ts, int64_t producer_id, int codec)
{
    sh_record_spec_t recs[32];
    char keys[32][24], vals[32][48];
    sh_record_header_t hdr = {sh_slice_str("h"), sh_slice_str("hv")};
    assert_true(n <= 32);
    for (int i = 0; i < n; i++) {
        snprintf(keys[i], sizeof(keys[i]), "%s-k%d", tag, i);
        snprintf(vals[i], sizeof(vals[i]), "%s-value-%d", tag, i);
        memset(&recs[i], 0, sizeof(recs[i]));
        recs[i].timestamp = ts + i;
        recs[i].key = sh_slice_str(keys[i]);
        recs[i].value = sh_slice_str(vals[i]);
        recs[i].headers = &hdr;
        recs[i].header_count = 1;
    }
    sh_record_batch_spec_t spec;
    sh_record_batch_spec_init(&spec);
    spec.codec = (sh_codec_t)codec;
    if (producer_id >= 0) {
        spec.producer_id = producer_id;
        spec.producer_epoch = 0;
        spec.base_sequence = 0;
    }
    sh_outbuf_t ob;
    sh_outbuf_init_heap(&ob);
    assert_int_equal(sh_record_batch_build(&spec, recs, (size_t)n, &ob), SH_OK);
    sh_slice_t s = sh_outbuf_slice(&ob);
    batch_t b = {malloc(s.len), s.len};
    memcpy(b.bytes, s.ptr, s.len);
    sh_outbuf_fini(&ob);
    return b;
}

/* The batch as the broker stores it: base offset and leader epoch set. */
static void stored_form(batch_t *b, int64_t base, int32_t epoch)
{
    sh_store_be64(b->bytes, (uint64_t)base);
    sh_store_be32(b->bytes + SH_RB_OFF_LEADER_EPOCH, (uint32_t)epoch);
}

typedef struct pspec {
    const char *topic;
    int32_t partition;
    batch_t *batch;      /* NULL: null records */
} pspec_t;

typedef sh_produce_response_partition_produce_response_t pr_t;

/* One Produce with one partition entry per spec (topics grouped in order
 * of first appearance). */
static void send_produce(int fd, int16_t ver, int32_t corr, int16_t acks, const pspec_t *ps,
                         int n)
{
    sh_produce_request_t req;
    sh_produce_request_init(&req);
    req.acks = acks;
    req.timeout_ms = 10000;
    sh_produce_request_topic_produce_data_t td[8];
    sh_produce_request_partition_produce_data_t pd[8][8];
    int nt = 0;
    for (int i = 0; i < n; i++) {
        int t;
        for (t = 0; t < nt; t++)
            if (strcmp((const char *)td[t].name.ptr, ps[i].topic) == 0)
                break;
        if (t == nt) {
            td[nt].name = sh_slice_str(ps[i].topic);
            td[nt].partition_data = pd[nt];
            td[nt].partition_data_count = 0;
            nt++;
        }
        sh_produce_request_partition_produce_data_t *p = &pd[t][td[t].partition_data_count++];
        p->index = ps[i].partition;
        p->records = ps[i].batch ? (sh_slice_t){ps[i].batch->bytes, ps[i].batch->len}
                                 : SH_SLICE_NULL;
    }
    req.topic_data = td;
    req.topic_data_count = nt;
    send_request(fd, 0, ver, corr, &req);
}

static const pr_t *find_pr(const sh_produce_response_t *r, const char *topic, int32_t part)
{
    for (int32_t t = 0; t < r->responses_count; t++) {
        if (!sh_slice_eq_str(r->responses[t].name, topic))
            continue;
        for (int32_t i = 0; i < r->responses[t].partition_responses_count; i++)
            if (r->responses[t].partition_responses[i].index == part)
                return &r->responses[t].partition_responses[i];
    }
    fail_msg("no response for %s-%d", topic, part);
    return NULL;
}

/* Produce one batch with acks=-1 and return its base offset. */
static int64_t produce_one(int fd, int16_t ver, const char *topic, int32_t part, batch_t *b)
{
    static int32_t corr = 1000;
    pspec_t ps = {topic, part, b};
    tbu_resp_t rs;
    send_produce(fd, ver, ++corr, -1, &ps, 1);
    const sh_produce_response_t *r = tbu_recv_response(fd, 0, ver, corr, &rs);
    const pr_t *p = find_pr(r, topic, part);
    assert_int_equal(p->error_code, 0);
    int64_t base = p->base_offset;
    tbu_resp_free(&rs);
    return base;
}

typedef sh_fetch_response_partition_data_t fp_t;

typedef struct fetch_args {
    int16_t ver;
    int32_t max_wait, min_bytes, max_bytes, part_max;
    int32_t session_id, session_epoch, leader_epoch;
    int8_t isolation;
    sh_uuid_t topic_id;      /* v13+ */
} fetch_args_t;

static const fetch_args_t FETCH_DEFAULT = {11, 0, 1, 1 << 20, 1 << 20, 0, -1, -1, 0, {{0}}};

static void send_fetch(int fd, const fetch_args_t *a, int32_t corr, const char *topic,
                       const int32_t *parts, const int64_t *offsets, int n)
{
    sh_fetch_request_t req;
    sh_fetch_request_init(&req);
    req.max_wait_ms = a->max_wait;
    req.min_bytes = a->min_bytes;
    req.max_bytes = a->max_bytes;
    req.isolation_level = a->isolation;
    req.session_id = a->session_id;
    req.session_epoch = a->session_epoch;
    sh_fetch_request_fetch_topic_t t;
    sh_fetch_request_fetch_partition_t fp[8];
    memset(&t, 0, sizeof(t));
    memset(fp, 0, sizeof(fp));
    t.topic = sh_slice_str(topic);
    t.topic_id = a->topic_id;
    for (int i = 0; i < n; i++) {
        fp[i].partition = parts[i];
        fp[i].fetch_offset = offsets[i];
        fp[i].partition_max_bytes = a->part_max;
        fp[i].current_leader_epoch = a->leader_epoch;
        fp[i].last_fetched_epoch = -1;
        fp[i].log_start_offset = -1;
    }
    t.partitions = fp;
    t.partitions_count = n;
    req.topics = &t;
    req.topics_count = 1;
    send_request(fd, 1, a->ver, corr, &req);
}

static const sh_fetch_response_t *fetch_one(int fd, const fetch_args_t *a, const char *topic,
                                            int32_t part, int64_t off, tbu_resp_t *rs)
{
    static int32_t corr = 5000;
    send_fetch(fd, a, ++corr, topic, &part, &off, 1);
    return tbu_recv_response(fd, 1, a->ver, corr, rs);
}

/* The topic's id, from Metadata v12. */
static sh_uuid_t topic_id_of(int fd, const char *topic)
{
    sh_metadata_request_t req;
    sh_metadata_request_init(&req);
    sh_metadata_request_metadata_request_topic_t t;
    memset(&t, 0, sizeof(t));
    t.name = sh_slice_str(topic);
    req.topics = &t;
    req.topics_count = 1;
    send_request(fd, 3, 12, 4242, &req);
    tbu_resp_t rs;
    const sh_metadata_response_t *r = tbu_recv_response(fd, 3, 12, 4242, &rs);
    assert_int_equal(r->topics_count, 1);
    assert_int_equal(r->topics[0].error_code, 0);
    sh_uuid_t id = r->topics[0].topic_id;
    tbu_resp_free(&rs);
    return id;
}

typedef sh_list_offsets_response_list_offsets_partition_response_t lo_t;

static lo_t list_offsets(int fd, int16_t ver, const char *topic, int32_t part, int64_t ts)
{
    static int32_t corr = 9000;
    sh_list_offsets_request_t req;
    sh_list_offsets_request_init(&req);
    req.replica_id = -1;
    sh_list_offsets_request_list_offsets_topic_t t;
    sh_list_offsets_request_list_offsets_partition_t p;
    memset(&t, 0, sizeof(t));
    memset(&p, 0, sizeof(p));
    p.partition_index = part;
    p.current_leader_epoch = -1;
    p.timestamp = ts;
    t.name = sh_slice_str(topic);
    t.partitions = &p;
    t.partitions_count = 1;
    req.topics = &t;
    req.topics_count = 1;
    send_request(fd, 2, ver, ++corr, &req);
    tbu_resp_t rs;
    const sh_list_offsets_response_t *r = tbu_recv_response(fd, 2, ver, corr, &rs);
    assert_int_equal(r->topics_count, 1);
    assert_int_equal(r->topics[0].partitions_count, 1);
    lo_t out = r->topics[0].partitions[0];
    tbu_resp_free(&rs);
    return out;
}

/* Poll ListOffsets LATEST_TIERED until everything below `upto` is in
 * objects (bounded). */
static void wait_uploaded(int fd, const char *topic, int32_t part, int64_t upto)
{
    for (int i = 0; i < 1000; i++) {
        lo_t r = list_offsets(fd, 9, topic, part, -5);
        if (r.error_code == 0 && r.offset >= upto - 1)
            return;
        usleep(10000);
    }
    fail_msg("offsets below %lld of %s-%d were never uploaded", (long long)upto, topic, part);
}

/* ------------------------------------------------------------- tests */

static void test_produce_fetch_roundtrip(void **state)
{
    (void)state;
    char *dir = mkdir_tmp();
    tbu_mk_topic(dir, "orders", 2, NULL, 0);
    tb_t t;
    tb_start(&t, dir, NULL);
    int fd = tbu_connect(t.port);

    static const int16_t pv[] = {3, 7, 9, 11};
    batch_t b[4];
    int64_t expect = 0;
    for (int i = 0; i < 4; i++) {
        char tag[8];
        snprintf(tag, sizeof(tag), "b%d", i);
        b[i] = mk_batch(3 + i, tag, 1700000000000 + 1000 * i, -1, i == 2 ? 3 : 0);
        pspec_t ps = {"orders", 0, &b[i]};
        tbu_resp_t rs;
        send_produce(fd, pv[i], 100 + i, 1, &ps, 1);
        const sh_produce_response_t *r = tbu_recv_response(fd, 0, pv[i], 100 + i, &rs);
        const pr_t *p = find_pr(r, "orders", 0);
        assert_int_equal(p->error_code, 0);
        assert_int_equal(p->base_offset, expect);
        assert_int_equal(p->log_append_time_ms, -1);
        if (pv[i] >= 5)
            assert_int_equal(p->log_start_offset, 0);
        tbu_resp_free(&rs);
        stored_form(&b[i], expect, 0);
        expect += 3 + i;
    }
    size_t all_len = 0;
    for (int i = 0; i < 4; i++)
        all_len += b[i].len;
    uint8_t *all = malloc(all_len), *at = all;
    for (int i = 0; i < 4; i++) {
        memcpy(at, b[i].bytes, b[i].len);
        at += b[i].len;
    }

    static const int16_t fv[] = {4, 11, 12, 13, 15, 17};
    sh_uuid_t id = topic_id_of(fd, "orders");
    for (int i = 0; i < 6; i++) {
        fetch_args_t a = FETCH_DEFAULT;
        a.ver = fv[i];
        a.topic_id = id;
        tbu_resp_t rs;
        const sh_fetch_response_t *r = fetch_one(fd, &a, "orders", 0, 0, &rs);
        assert_int_equal(r->responses_count, 1);
        if (fv[i] >= 13)
            assert_memory_equal(r->responses[0].topic_id.b, id.b, 16);
        else
            assert_true(sh_slice_eq_str(r->responses[0].topic, "orders"));
        if (fv[i] >= 7) {
            assert_int_equal(r->error_code, 0);
            assert_int_equal(r->session_id, 0);
        }
        const fp_t *p = &r->responses[0].partitions[0];
        assert_int_equal(p->error_code, 0);
        assert_int_equal(p->high_watermark, expect);
        assert_int_equal(p->last_stable_offset, expect);
        if (fv[i] >= 5)
            assert_int_equal(p->log_start_offset, 0);
        assert_int_equal(p->aborted_transactions_count, -1);
        assert_int_equal(p->records.len, all_len);
        assert_memory_equal(p->records.ptr, all, all_len);
        tbu_resp_free(&rs);
    }
    /* from the middle of batch 2: starts with batch 2 */
    fetch_args_t a = FETCH_DEFAULT;
    tbu_resp_t rs;
    const sh_fetch_response_t *r = fetch_one(fd, &a, "orders", 0, 8, &rs);
    const fp_t *p = &r->responses[0].partitions[0];
    assert_int_equal(p->records.len, b[2].len + b[3].len);
    assert_memory_equal(p->records.ptr, b[2].bytes, b[2].len);
    tbu_resp_free(&rs);
    /* v13+: an id nobody knows */
    a.ver = 13;
    a.topic_id.b[0] ^= 0xff;
    r = fetch_one(fd, &a, "orders", 0, 0, &rs);
    assert_int_equal(r->responses[0].partitions[0].error_code, SH_KERR_UNKNOWN_TOPIC_ID);
    tbu_resp_free(&rs);
    a = FETCH_DEFAULT;
    /* read_committed: same data, an empty aborted list */
    a.isolation = 1;
    r = fetch_one(fd, &a, "orders", 0, 0, &rs);
    assert_int_equal(r->responses[0].partitions[0].aborted_transactions_count, 0);
    tbu_resp_free(&rs);

    free(all);
    for (int i = 0; i < 4; i++)
        free(b[i].bytes);
    close(fd);
    tb_stop(&t);
    tbu_rmrf(dir);
}

static void test_produce_errors(void **state)
{
    (void)state;
    char *dir = mkdir_tmp();
    sh_meta_config_t small = {"max.message.bytes", "200"};
    tbu_mk_topic(dir, "ok", 2, NULL, 0);
    tbu_mk_topic(dir, "small", 1, &small, 1);
    tb_t t;
    tb_start(&t, dir, NULL);
    int fd = tbu_connect(t.port);

    batch_t good = mk_batch(2, "g", 1700000000000, -1, 0);
    batch_t good2 = mk_batch(2, "g2", 1700000000000, -1, 0);
    batch_t big = mk_batch(10, "big", 1700000000000, -1, 0);
    batch_t bad = mk_batch(2, "bad", 1700000000000, -1, 0);
    bad.bytes[bad.len - 1] ^= 1;
    /* an idempotent producer the partition never saw must start at
     * sequence 0: this one claims 3 (the CRC covers the sequence) */
    batch_t idem = mk_batch(2, "idem", 1700000000000, 77, 0);
    sh_store_be32(idem.bytes + SH_RB_OFF_BASE_SEQUENCE, 3);
    sh_store_be32(idem.bytes + SH_RB_OFF_CRC, sh_record_batch_crc_compute(idem.bytes, idem.len));
    pspec_t ps[] = {
        {"ok", 0, &good},     {"nosuch", 0, &good2}, {"ok", 5, &good2}, {"small", 0, &big},
        {"ok", 1, &bad},      {"ok", 1, &idem},      {"ok", 1, NULL},   {"ok", 1, &good2},
    };
    tbu_resp_t rs;
    send_produce(fd, 9, 1, -1, ps, 8);
    const sh_produce_response_t *r = tbu_recv_response(fd, 0, 9, 1, &rs);
    assert_int_equal(r->responses_count, 3);
    const sh_produce_response_topic_produce_response_t *ok = &r->responses[0];
    assert_true(sh_slice_eq_str(ok->name, "ok"));
    assert_int_equal(ok->partition_responses_count, 6);
    assert_int_equal(ok->partition_responses[0].error_code, 0);
    assert_int_equal(ok->partition_responses[0].base_offset, 0);
    assert_int_equal(ok->partition_responses[1].error_code, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(ok->partition_responses[1].base_offset, -1);
    assert_int_equal(ok->partition_responses[2].error_code, SH_KERR_CORRUPT_MESSAGE);
    assert_int_equal(ok->partition_responses[3].error_code, SH_KERR_UNKNOWN_PRODUCER_ID);
    assert_non_null(ok->partition_responses[3].error_message.ptr);
    assert_int_equal(ok->partition_responses[4].error_code, SH_KERR_INVALID_RECORD);
    assert_int_equal(ok->partition_responses[5].error_code, 0);
    assert_int_equal(ok->partition_responses[5].base_offset, 0); /* nothing else took one */
    assert_int_equal(find_pr(r, "nosuch", 0)->error_code, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(find_pr(r, "small", 0)->error_code, SH_KERR_MESSAGE_TOO_LARGE);
    tbu_resp_free(&rs);

    /* acks other than 0, 1, -1 */
    pspec_t one = {"ok", 0, &good};
    send_produce(fd, 7, 2, 2, &one, 1);
    r = tbu_recv_response(fd, 0, 7, 2, &rs);
    assert_int_equal(find_pr(r, "ok", 0)->error_code, SH_KERR_INVALID_REQUIRED_ACKS);
    tbu_resp_free(&rs);

    /* acks=0: no response, the next request is answered next */
    send_produce(fd, 7, 3, 0, &one, 1);
    lo_t lo = list_offsets(fd, 1, "ok", 0, -1);
    for (int i = 0; i < 1000 && lo.offset != 4; i++) { /* durable soon */
        assert_true(lo.offset == 2);
        usleep(1000);
        lo = list_offsets(fd, 1, "ok", 0, -1);
    }
    assert_int_equal(lo.offset, 4);
    /* acks=0 with an error: the connection is closed */
    pspec_t unk = {"nosuch", 0, &good};
    send_produce(fd, 7, 4, 0, &unk, 1);
    assert_true(closed_by_broker(fd));
    close(fd);

    free(good.bytes);
    free(good2.bytes);
    free(big.bytes);
    free(bad.bytes);
    free(idem.bytes);
    tb_stop(&t);
    tbu_rmrf(dir);
}

typedef struct bg_fetch {
    int fd;
    fetch_args_t a;
    int64_t offset;
    tbu_resp_t rs;
    const sh_fetch_response_t *r;
} bg_fetch_t;

static void test_fetch_long_poll_and_limits(void **state)
{
    (void)state;
    char *dir = mkdir_tmp();
    tbu_mk_topic(dir, "lp", 2, NULL, 0);
    tb_t t;
    tb_start(&t, dir, NULL);
    int fd = tbu_connect(t.port);
    int fd2 = tbu_connect(t.port);

    /* nothing yet: a short wait ends empty */
    fetch_args_t a = FETCH_DEFAULT;
    a.max_wait = 50;
    tbu_resp_t rs;
    const sh_fetch_response_t *r = fetch_one(fd, &a, "lp", 0, 0, &rs);
    assert_int_equal(r->responses[0].partitions[0].error_code, 0);
    assert_int_equal(r->responses[0].partitions[0].records.len, 0);
    assert_int_equal(r->responses[0].partitions[0].high_watermark, 0);
    tbu_resp_free(&rs);

    /* a long wait is woken by a produce on another connection */
    a.max_wait = 30000;
    int32_t part = 0;
    int64_t off = 0;
    send_fetch(fd, &a, 77, "lp", &part, &off, 1);
    usleep(20000);
    batch_t b = mk_batch(5, "lp", 1700000000000, -1, 0);
    assert_int_equal(produce_one(fd2, 9, "lp", 0, &b), 0);
    r = tbu_recv_response(fd, 1, a.ver, 77, &rs);
    assert_int_equal(r->responses[0].partitions[0].records.len, b.len);
    tbu_resp_free(&rs);

    /* out of range, and the end itself */
    a.max_wait = 0;
    r = fetch_one(fd, &a, "lp", 0, 6, &rs);
    assert_int_equal(r->responses[0].partitions[0].error_code, SH_KERR_OFFSET_OUT_OF_RANGE);
    assert_int_equal(r->responses[0].partitions[0].high_watermark, -1);
    tbu_resp_free(&rs);
    r = fetch_one(fd, &a, "lp", 0, 5, &rs);
    assert_int_equal(r->responses[0].partitions[0].error_code, 0);
    assert_int_equal(r->responses[0].partitions[0].records.len, 0);
    tbu_resp_free(&rs);

    /* limits: a tiny partition_max_bytes still gets one whole batch */
    batch_t b2 = mk_batch(5, "lp2", 1700000000000, -1, 0);
    assert_int_equal(produce_one(fd2, 9, "lp", 0, &b2), 5);
    assert_int_equal(produce_one(fd2, 9, "lp", 1, &b2), 0);
    a.part_max = 10;
    int32_t parts[2] = {0, 1};
    int64_t offs[2] = {0, 0};
    send_fetch(fd, &a, 78, "lp", parts, offs, 2);
    r = tbu_recv_response(fd, 1, a.ver, 78, &rs);
    assert_int_equal(r->responses[0].partitions[0].records.len, b.len);
    /* ...but only the first partition with data does */
    assert_int_equal(r->responses[0].partitions[1].records.len, 0);
    tbu_resp_free(&rs);

    /* leader epochs (v9+): ours is 0 */
    a = FETCH_DEFAULT;
    a.leader_epoch = 5;
    r = fetch_one(fd, &a, "lp", 0, 0, &rs);
    assert_int_equal(r->responses[0].partitions[0].error_code, SH_KERR_UNKNOWN_LEADER_EPOCH);
    tbu_resp_free(&rs);
    /* sessions (test_broker_fetch_session*.c has the rest): epoch 0
     * creates one, unknown ids are refused */
    a = FETCH_DEFAULT;
    a.session_epoch = 0;
    r = fetch_one(fd, &a, "lp", 0, 0, &rs);
    assert_int_equal(r->error_code, 0);
    assert_int_not_equal(r->session_id, 0);
    assert_int_equal(r->responses_count, 1);
    tbu_resp_free(&rs);
    a.session_id = 1234;
    a.session_epoch = 3;
    r = fetch_one(fd, &a, "lp", 0, 0, &rs);
    assert_int_equal(r->error_code, SH_KERR_FETCH_SESSION_ID_NOT_FOUND);
    assert_int_equal(r->responses_count, 0);
    tbu_resp_free(&rs);
    /* unknown topic */
    a = FETCH_DEFAULT;
    r = fetch_one(fd, &a, "nope", 0, 0, &rs);
    assert_int_equal(r->responses[0].partitions[0].error_code,
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    tbu_resp_free(&rs);

    free(b.bytes);
    free(b2.bytes);
    close(fd);
    close(fd2);
    tb_stop(&t);
    tbu_rmrf(dir);
}

static void test_list_offsets(void **state)
{
    (void)state;
    char *dir = mkdir_tmp();
    tbu_mk_topic(dir, "lo", 1, NULL, 0);
    tb_t t;
    tb_start(&t, dir, NULL);
    int fd = tbu_connect(t.port);
    lo_t r = list_offsets(fd, 7, "lo", 0, -3);
    assert_int_equal(r.error_code, 0);
    assert_int_equal(r.offset, -1);  /* empty */
    /* batch timestamps: 1000..1004, 5000..5004 (gzip), 3000..3004 */
    batch_t b1 = mk_batch(5, "a", 1000, -1, 0);
    batch_t b2 = mk_batch(5, "b", 5000, -1, 1);
    batch_t b3 = mk_batch(5, "c", 3000, -1, 0);
    produce_one(fd, 9, "lo", 0, &b1);
    produce_one(fd, 9, "lo", 0, &b2);
    produce_one(fd, 9, "lo", 0, &b3);
    for (int pass = 0; pass < 2; pass++) {
        r = list_offsets(fd, 1, "lo", 0, -2);
        assert_int_equal(r.offset, 0);
        r = list_offsets(fd, 4, "lo", 0, -1);
        assert_int_equal(r.offset, 15);
        assert_int_equal(r.leader_epoch, 0);
        r = list_offsets(fd, 7, "lo", 0, -3);
        assert_int_equal(r.offset, 9);        /* the record at 5004 */
        assert_int_equal(r.timestamp, 5004);
        r = list_offsets(fd, 2, "lo", 0, 1003);
        assert_int_equal(r.offset, 3);
        assert_int_equal(r.timestamp, 1003);
        r = list_offsets(fd, 6, "lo", 0, 2000);
        assert_int_equal(r.offset, 5);        /* inside the compressed batch */
        assert_int_equal(r.timestamp, 5000);
        r = list_offsets(fd, 10, "lo", 0, 5003);
        assert_int_equal(r.offset, 8);
        r = list_offsets(fd, 3, "lo", 0, 9000);
        assert_int_equal(r.error_code, 0);
        assert_int_equal(r.offset, -1);
        assert_int_equal(r.timestamp, -1);
        r = list_offsets(fd, 8, "lo", 0, -4);
        assert_int_equal(r.offset, 0);
        r = list_offsets(fd, 1, "nope", 0, -1);
        assert_int_equal(r.error_code, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
        if (pass == 0) /* again, with everything read back from an object */
            wait_uploaded(fd, "lo", 0, 15);
    }
    free(b1.bytes);
    free(b2.bytes);
    free(b3.bytes);
    close(fd);
    tb_stop(&t);
    tbu_rmrf(dir);
}

static const char *const fast_upload[] = {"streamhouse.upload.interval.ms=20", NULL};
static const char *const fast_upload_nocache[] = {"streamhouse.upload.interval.ms=20",
                                                  "streamhouse.cache.bytes=0", NULL};

static void test_uploads_and_restart(void **state)
{
    (void)state;
    char *dir = mkdir_tmp();
    tbu_mk_topic(dir, "up", 2, NULL, 0);
    tb_t t;
    tb_start(&t, dir, fast_upload);
    int fd = tbu_connect(t.port);
    enum { N = 12 };
    batch_t b[N];
    int64_t base[N];
    for (int i = 0; i < N; i++) {
        char tag[8];
        snprintf(tag, sizeof(tag), "u%d", i);
        b[i] = mk_batch(4, tag, 1700000000000 + i, -1, i % 3 == 1 ? 4 : 0);
        base[i] = produce_one(fd, 9, "up", i % 2, &b[i]);
        stored_form(&b[i], base[i], 0);
        if (i == N / 2 - 1) {
            wait_uploaded(fd, "up", 0, base[i - 1] + 4);
            wait_uploaded(fd, "up", 1, base[i] + 4);
        }
    }
    /* half uploaded, half possibly still in the tail: read everything of
     * partition 0 batch by batch, from wherever it lives */
    fetch_args_t a = FETCH_DEFAULT;
    a.part_max = 1;
    for (int i = 0; i < N; i += 2) {
        tbu_resp_t rs;
        const sh_fetch_response_t *r = fetch_one(fd, &a, "up", 0, base[i] + 2, &rs);
        const fp_t *p = &r->responses[0].partitions[0];
        assert_int_equal(p->error_code, 0);
        assert_int_equal(p->records.len, b[i].len);
        assert_memory_equal(p->records.ptr, b[i].bytes, b[i].len);
        tbu_resp_free(&rs);
    }
    close(fd);
    tb_stop(&t);

    /* restart without a cache: objects are read back with ranged GETs,
     * the WAL tail is replayed, new offsets continue */
    tb_start(&t, dir, fast_upload_nocache);
    fd = tbu_connect(t.port);
    a = FETCH_DEFAULT;
    for (int part = 0; part < 2; part++) {
        int64_t off = 0;
        for (int i = part; i < N; i += 2) {
            tbu_resp_t rs;
            const sh_fetch_response_t *r = fetch_one(fd, &a, "up", part, off, &rs);
            const fp_t *p = &r->responses[0].partitions[0];
            assert_int_equal(p->error_code, 0);
            assert_true(p->records.len >= b[i].len);
            /* the first batch returned is the one at `off` */
            assert_memory_equal(p->records.ptr, b[i].bytes, b[i].len);
            off = base[i] + 4;
            tbu_resp_free(&rs);
        }
    }
    batch_t more = mk_batch(1, "more", 1700000001000, -1, 0);
    assert_int_equal(produce_one(fd, 11, "up", 0, &more), 24);
    free(more.bytes);
    for (int i = 0; i < N; i++)
        free(b[i].bytes);
    close(fd);
    tb_stop(&t);
    tbu_rmrf(dir);
}

static void test_topic_modes(void **state)
{
    (void)state;
    char *dir = mkdir_tmp();
    sh_meta_config_t lat = {"message.timestamp.type", "LogAppendTime"};
    sh_meta_config_t obj = {"streamhouse.durability", "object"};
    tbu_mk_topic(dir, "lat", 1, &lat, 1);
    tbu_mk_topic(dir, "obj", 1, &obj, 1);
    tb_t t;
    tb_start(&t, dir, fast_upload);
    int fd = tbu_connect(t.port);

    batch_t b = mk_batch(3, "lat", 1000, -1, 0);
    pspec_t ps = {"lat", 0, &b};
    tbu_resp_t rs;
    int64_t before = sh_clock_wall_ms();
    send_produce(fd, 9, 1, 1, &ps, 1);
    const sh_produce_response_t *r = tbu_recv_response(fd, 0, 9, 1, &rs);
    int64_t lat_ms = find_pr(r, "lat", 0)->log_append_time_ms;
    assert_true(lat_ms >= before);
    tbu_resp_free(&rs);
    fetch_args_t a = FETCH_DEFAULT;
    const sh_fetch_response_t *f = fetch_one(fd, &a, "lat", 0, 0, &rs);
    sh_record_batch_t rb;
    assert_int_equal(sh_record_batch_parse(&rb, f->responses[0].partitions[0].records), SH_OK);
    assert_int_equal(sh_record_batch_timestamp_type(&rb), SH_TS_LOG_APPEND_TIME);
    assert_int_equal(rb.max_timestamp, lat_ms);
    assert_true(sh_record_batch_crc_ok(&rb));
    tbu_resp_free(&rs);

    /* object durability: acknowledged only once committed to an object */
    batch_t o = mk_batch(3, "obj", 1000, -1, 0);
    assert_int_equal(produce_one(fd, 9, "obj", 0, &o), 0);
    lo_t lo = list_offsets(fd, 9, "obj", 0, -5);
    assert_int_equal(lo.offset, 2);
    free(b.bytes);
    free(o.bytes);
    close(fd);
    tb_stop(&t);
    tbu_rmrf(dir);
}

static void test_wal_full_backpressure(void **state)
{
    (void)state;
    char *dir = mkdir_tmp();
    tbu_mk_topic(dir, "bp", 1, NULL, 0);
    /* two 64 KiB WAL segments; uploads only on pressure (huge thresholds) */
    static const char *const small_wal[] = {
        "streamhouse.wal.segment.bytes=65536", "streamhouse.wal.max.bytes=131072",
        "streamhouse.upload.interval.ms=86400000", "streamhouse.upload.bytes=1073741824", NULL};
    tb_t t;
    tb_start(&t, dir, small_wal);
    int fd = tbu_connect(t.port);
    /* pipeline 200 produces of ~1.4 KiB: twice what the WAL holds */
    enum { N = 200 };
    batch_t b = mk_batch(30, "bp", 1000, -1, 0);
    pspec_t ps = {"bp", 0, &b};
    for (int i = 0; i < N; i++)
        send_produce(fd, 9, 100 + i, -1, &ps, 1);
    for (int i = 0; i < N; i++) {
        tbu_resp_t rs;
        const sh_produce_response_t *r = tbu_recv_response(fd, 0, 9, 100 + i, &rs);
        const pr_t *p = find_pr(r, "bp", 0);
        assert_int_equal(p->error_code, 0);
        assert_int_equal(p->base_offset, (int64_t)i * 30); /* in order */
        tbu_resp_free(&rs);
    }
    free(b.bytes);
    close(fd);
    tb_stop(&t);
    tbu_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_produce_fetch_roundtrip),
        cmocka_unit_test(test_produce_errors),
        cmocka_unit_test(test_fetch_long_poll_and_limits),
        cmocka_unit_test(test_list_offsets),
        cmocka_unit_test(test_uploads_and_restart),
        cmocka_unit_test(test_topic_modes),
        cmocka_unit_test(test_wal_full_backpressure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
