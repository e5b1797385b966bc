/*
 * test_broker_retention.c - DeleteRecords and retention through real
 * sockets against an in-process broker with its real data path (WAL,
 * SQLite metadata, file:// objects in a temporary directory):
 *  - DeleteRecords v0/v1/v2: low watermarks, -1 = high watermark, an
 *    offset below the current log start, OFFSET_OUT_OF_RANGE above the
 *    high watermark and below -1, unknown partitions and topics, request
 *    order; the responses decoded by the generated decoder;
 *  - what a moved log start means to the other APIs: ListOffsets EARLIEST
 *    and by timestamp, Fetch below it (OFFSET_OUT_OF_RANGE) and at it
 *    (the straddling batch whole, log_start_offset), Produce's
 *    log_start_offset; the log start survives a restart; every object of
 *    a partition deleted to its end goes;
 *  - the retention timer (log.retention.check.interval.ms): retention.ms
 *    and retention.bytes per topic move the log start and delete objects.
 *
 * Waiting is bounded polling for a condition, never asserted on time.
 * Ports: 19600-19649.
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

#define PORT_LO 19600
#define PORT_HI 19649

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
    return tbu_mkdtemp(buf, sizeof(buf), "retention");
}

/* ------------------------------------------------------------ client */

static void send_request(int fd, int16_t key, int16_t ver, int32_t corr, const void *body)
{
    tbu_send_request(fd, "test-retention", key, ver, corr, body);
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

/* ------------------------------------------------------------- helpers */

typedef sh_delete_records_response_delete_records_partition_result_t drp_t;

typedef struct dr_req {
    const char *topic;
    int32_t partition;
    int64_t offset;
} dr_req_t;

/* One DeleteRecords request, one topic entry per req (in order); out[i]
 * gets the answer to req[i]. */
static void delete_records(int fd, int16_t ver, const dr_req_t *rq, int n, drp_t *out)
{
    static int32_t corr = 7000;
    sh_delete_records_request_t req;
    sh_delete_records_request_init(&req);
    sh_delete_records_request_delete_records_topic_t t[8];
    sh_delete_records_request_delete_records_partition_t p[8];
    assert_true(n <= 8);
    memset(t, 0, sizeof(t));
    for (int i = 0; i < n; i++) {
        p[i].partition_index = rq[i].partition;
        p[i].offset = rq[i].offset;
        t[i].name = sh_slice_str(rq[i].topic);
        t[i].partitions = &p[i];
        t[i].partitions_count = 1;
    }
    req.topics = t;
    req.topics_count = n;
    req.timeout_ms = 5000;
    send_request(fd, 21, ver, ++corr, &req);
    tbu_resp_t rs;
    const sh_delete_records_response_t *r = tbu_recv_response(fd, 21, ver, corr, &rs);
    assert_int_equal(r->throttle_time_ms, 0);
    assert_int_equal(r->topics_count, n);
    for (int i = 0; i < n; i++) {
        assert_true(sh_slice_eq_str(r->topics[i].name, rq[i].topic));
        assert_int_equal(r->topics[i].partitions_count, 1);
        out[i] = r->topics[i].partitions[0];
        assert_int_equal(out[i].partition_index, rq[i].partition);
    }
    tbu_resp_free(&rs);
}

static int64_t earliest(int fd, const char *topic, int32_t part)
{
    lo_t r = list_offsets(fd, 1, topic, part, -2);
    assert_int_equal(r.error_code, 0);
    return r.offset;
}

/* Poll ListOffsets EARLIEST until it reaches `want` (bounded). */
static void wait_earliest(int fd, const char *topic, int32_t part, int64_t want)
{
    int64_t got = -1;
    for (int i = 0; i < 1000; i++) {
        if ((got = earliest(fd, topic, part)) == want)
            return;
        usleep(10000);
    }
    fail_msg("earliest offset of %s-%d stayed %lld, not %lld", topic, part, (long long)got,
             (long long)want);
}

static size_t nobjects;
static int count_one(const char *p, const struct stat *sb, int type, struct FTW *f)
{
    (void)sb;
    if (type == FTW_F && strncmp(p + f->base, ".sh-tmp.", 8) != 0)
        nobjects++;
    return 0;
}

static size_t objects_in(const char *dir)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/objects", dir);
    nobjects = 0;
    nftw(path, count_one, 16, FTW_PHYS);
    return nobjects;
}

static void wait_objects(const char *dir, size_t want)
{
    for (int i = 0; i < 1000; i++) {
        if (objects_in(dir) == want)
            return;
        usleep(10000);
    }
    fail_msg("%zu objects, not %zu", objects_in(dir), want);
}

/* Base offsets of the whole batches in a fetched records field. */
static int batch_bases(sh_slice_t recs, int64_t *out, int max)
{
    int n = 0;
    size_t pos = 0;
    while (n < max && pos + 12 <= recs.len) {
        uint32_t len = sh_load_be32(recs.ptr + pos + 8);
        if (pos + 12 + len > recs.len)
            break;
        out[n++] = (int64_t)sh_load_be64(recs.ptr + pos);
        pos += 12 + len;
    }
    return n;
}

static const char *const fast[] = {"streamhouse.upload.interval.ms=20",
                                   "log.retention.check.interval.ms=50", NULL};

/* -------------------------------------------------------------- tests */

static void test_delete_records_api(void **state)
{
    (void)state;
    char *dir = mkdir_tmp();
    tbu_mk_topic(dir, "dr", 2, NULL, 0);
    tb_t t;
    tb_start(&t, dir, fast);
    int fd = tbu_connect(t.port);
    int64_t T0 = sh_clock_wall_ms();
    for (int i = 0; i < 3; i++) {
        batch_t b = mk_batch(10, "p0", T0 + i * 10, -1, 0);
        assert_int_equal(produce_one(fd, 8, "dr", 0, &b), i * 10);
        free(b.bytes);
    }
    batch_t b1 = mk_batch(5, "p1", T0, -1, 0);
    assert_int_equal(produce_one(fd, 8, "dr", 1, &b1), 0);
    free(b1.bytes);
    wait_uploaded(fd, "dr", 0, 30);
    wait_uploaded(fd, "dr", 1, 5);

    drp_t r[8];
    const dr_req_t v0[] = {{"dr", 0, 15}, {"dr", 1, -1}, {"dr", 7, 0}, {"nosuch", 0, 0}};
    delete_records(fd, 0, v0, 4, r);
    assert_int_equal(r[0].error_code, 0);
    assert_int_equal(r[0].low_watermark, 15);
    assert_int_equal(r[1].error_code, 0);
    assert_int_equal(r[1].low_watermark, 5);
    assert_int_equal(r[2].error_code, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(r[2].low_watermark, -1);
    assert_int_equal(r[3].error_code, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(r[3].low_watermark, -1);

    const dr_req_t v1[] = {{"dr", 0, 31}, {"dr", 0, -2}, {"dr", 0, 12}};
    delete_records(fd, 1, v1, 3, r);
    assert_int_equal(r[0].error_code, SH_KERR_OFFSET_OUT_OF_RANGE);
    assert_int_equal(r[0].low_watermark, -1);
    assert_int_equal(r[1].error_code, SH_KERR_OFFSET_OUT_OF_RANGE);
    assert_int_equal(r[2].error_code, 0);
    assert_int_equal(r[2].low_watermark, 15); /* below the current start: unchanged */

    /* what the others see */
    assert_int_equal(earliest(fd, "dr", 0), 15);
    assert_int_equal(list_offsets(fd, 1, "dr", 0, -1).offset, 30);
    lo_t byts = list_offsets(fd, 1, "dr", 0, T0); /* a record below the start matches */
    assert_int_equal(byts.error_code, 0);
    assert_int_equal(byts.offset, 15);
    assert_int_equal(list_offsets(fd, 8, "dr", 0, -4).offset, 15); /* EARLIEST_LOCAL */
    tbu_resp_t rs;
    const sh_fetch_response_t *fr = fetch_one(fd, &FETCH_DEFAULT, "dr", 0, 14, &rs);
    assert_int_equal(fr->responses[0].partitions[0].error_code, SH_KERR_OFFSET_OUT_OF_RANGE);
    tbu_resp_free(&rs);
    fr = fetch_one(fd, &FETCH_DEFAULT, "dr", 0, 15, &rs);
    const fp_t *fp = &fr->responses[0].partitions[0];
    assert_int_equal(fp->error_code, 0);
    assert_int_equal(fp->log_start_offset, 15);
    int64_t bases[8];
    assert_true(batch_bases(fp->records, bases, 8) >= 1);
    assert_int_equal(bases[0], 10); /* the straddling batch, whole */
    tbu_resp_free(&rs);
    /* Produce answers the log start too */
    batch_t b2 = mk_batch(10, "more", T0, -1, 0);
    pspec_t ps = {"dr", 0, &b2};
    send_produce(fd, 8, 4242, -1, &ps, 1);
    const sh_produce_response_t *pr = tbu_recv_response(fd, 0, 8, 4242, &rs);
    assert_int_equal(find_pr(pr, "dr", 0)->base_offset, 30);
    assert_int_equal(find_pr(pr, "dr", 0)->log_start_offset, 15);
    tbu_resp_free(&rs);
    free(b2.bytes);

    /* up to the end: every object goes, also the one the last produce
     * lands in after the move (swept by a pass) */
    const dr_req_t v2[] = {{"dr", 0, -1}};
    delete_records(fd, 2, v2, 1, r);
    assert_int_equal(r[0].error_code, 0);
    assert_int_equal(r[0].low_watermark, 40);
    wait_objects(dir, 0);
    close(fd);
    tb_stop(&t);

    /* durable: a restarted broker keeps every log start */
    tb_start(&t, dir, fast);
    fd = tbu_connect(t.port);
    assert_int_equal(earliest(fd, "dr", 0), 40);
    assert_int_equal(earliest(fd, "dr", 1), 5);
    fr = fetch_one(fd, &FETCH_DEFAULT, "dr", 0, 39, &rs);
    assert_int_equal(fr->responses[0].partitions[0].error_code, SH_KERR_OFFSET_OUT_OF_RANGE);
    tbu_resp_free(&rs);
    close(fd);
    tb_stop(&t);
    tbu_rmrf(dir);
}

static void test_retention_timer(void **state)
{
    (void)state;
    char *dir = mkdir_tmp();
    const sh_meta_config_t by_time[] = {{"retention.ms", "3600000"}};
    const sh_meta_config_t by_size[] = {{"retention.bytes", "1"}};
    const sh_meta_config_t forever[] = {{"retention.ms", "-1"}};
    tbu_mk_topic(dir, "rt", 1, by_time, 1);
    tbu_mk_topic(dir, "rb", 1, by_size, 1);
    tbu_mk_topic(dir, "rf", 1, forever, 1);
    tb_t t;
    tb_start(&t, dir, fast);
    int fd = tbu_connect(t.port);
    int64_t now = sh_clock_wall_ms();

    /* old data kept forever, uploaded first */
    batch_t f = mk_batch(10, "forever", now - 2 * 3600000, -1, 0);
    produce_one(fd, 8, "rf", 0, &f);
    free(f.bytes);
    wait_uploaded(fd, "rf", 0, 10);

    /* retention.ms: the old chunk goes, the young one stays */
    batch_t old = mk_batch(10, "old", now - 2 * 3600000, -1, 0);
    assert_int_equal(produce_one(fd, 8, "rt", 0, &old), 0);
    free(old.bytes);
    wait_uploaded(fd, "rt", 0, 10);
    batch_t young = mk_batch(10, "young", now, -1, 0);
    assert_int_equal(produce_one(fd, 8, "rt", 0, &young), 10);
    free(young.bytes);
    wait_uploaded(fd, "rt", 0, 20);
    wait_earliest(fd, "rt", 0, 10);

    /* retention.bytes = 1: all chunks but the newest go */
    for (int i = 0; i < 3; i++) {
        batch_t b = mk_batch(10, "sized", now, -1, 0);
        assert_int_equal(produce_one(fd, 8, "rb", 0, &b), i * 10);
        free(b.bytes);
        wait_uploaded(fd, "rb", 0, (i + 1) * 10);
    }
    wait_earliest(fd, "rb", 0, 20);
    /* rf's, rt's young and rb's newest chunk: three objects are left */
    wait_objects(dir, 3);
    assert_int_equal(earliest(fd, "rf", 0), 0);
    assert_int_equal(earliest(fd, "rt", 0), 10);
    close(fd);
    tb_stop(&t);
    tbu_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delete_records_api),
        cmocka_unit_test(test_retention_timer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
