/*
 * test_broker_fetch_session_wire.c - fetch sessions (KIP-227) through real
 * sockets against an in-process broker with its real data path:
 *  - a session walked at Fetch v7 (classic) and v12 (flexible), by topic
 *    name: creation, incremental requests answering only partitions with
 *    new data (records checked by base offset), a long poll on a session
 *    woken by a produce to a partition the request did not list,
 *    forgetting and re-adding, errors always answered, a wrong epoch, an
 *    unknown id, session id 0 with epoch > 0, the topic-id mismatch,
 *    closing by a full request (epoch 0 and -1), closing by forgetting all;
 *  - sessions by topic id (v13, v17), forgotten by id;
 *  - rotation: a partition that returned records goes behind the others;
 *  - a duplicate request while another waits: the waiting one is answered
 *    INVALID_FETCH_SESSION_EPOCH with the session id;
 *  - the cache bound: slots taken, an idle session evicted, no slots;
 *  - a shutdown with a parked incremental fetch (ASan checks leaks).
 * Responses are decoded with the generated decoder. Waiting is bounded by
 * socket timeouts, never asserted on time. Ports: 19700-19749.
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

#define PORT_LO 19700
#define PORT_HI 19749

/* ------------------------------------------------------------ broker */

typedef tbu_broker_t tb_t;

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
    return tbu_mkdtemp(buf, sizeof(buf), "fsess");
}

/* ------------------------------------------------------------ client */

static void send_request(int fd, int16_t key, int16_t ver, int32_t corr, const void *body)
{
    tbu_send_request(fd, "test-fetch-session", key, ver, corr, body);
}

/* Produce one batch of n records (acks=-1, v9); returns its base offset. */
static int64_t produce(int fd, const char *topic, int32_t part, int n)
{
    static int32_t corr = 100;
    sh_record_spec_t recs[16];
    char vals[16][32];
    assert_true(n <= 16);
    for (int i = 0; i < n; i++) {
        snprintf(vals[i], sizeof(vals[i]), "%s-%d-v%d", topic, part, i);
        memset(&recs[i], 0, sizeof(recs[i]));
        recs[i].timestamp = 1700000000000 + i;
        recs[i].value = sh_slice_str(vals[i]);
    }
    sh_record_batch_spec_t spec;
    sh_record_batch_spec_init(&spec);
    sh_outbuf_t ob;
    sh_outbuf_init_heap(&ob);
    assert_int_equal(sh_record_batch_build(&spec, recs, (size_t)n, &ob), SH_OK);

    sh_produce_request_t req;
    sh_produce_request_init(&req);
    req.acks = -1;
    req.timeout_ms = 10000;
    sh_produce_request_topic_produce_data_t td;
    sh_produce_request_partition_produce_data_t pd;
    memset(&td, 0, sizeof(td));
    memset(&pd, 0, sizeof(pd));
    td.name = sh_slice_str(topic);
    pd.index = part;
    pd.records = sh_outbuf_slice(&ob);
    td.partition_data = &pd;
    td.partition_data_count = 1;
    req.topic_data = &td;
    req.topic_data_count = 1;
    send_request(fd, 0, 9, ++corr, &req);
    tbu_resp_t rs;
    const sh_produce_response_t *r = tbu_recv_response(fd, 0, 9, corr, &rs);
    assert_int_equal(r->responses_count, 1);
    const sh_produce_response_partition_produce_response_t *p =
        &r->responses[0].partition_responses[0];
    assert_int_equal(p->error_code, 0);
    int64_t base = p->base_offset;
    tbu_resp_free(&rs);
    sh_outbuf_fini(&ob);
    return base;
}

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

/* ------------------------------------------------------------- fetch */

typedef struct fq_part {
    int32_t part;
    int64_t offset;
} fq_part_t;

/* One Fetch: partitions of one topic (by name, or by id from v13), and
 * partitions of it to forget. */
typedef struct fq {
    int16_t ver;
    int32_t session_id, epoch;
    int32_t max_wait, min_bytes, max_bytes;
    const char *topic;
    sh_uuid_t topic_id;
    fq_part_t p[8];
    int n;
    int32_t forget[8];
    int nforget;
} fq_t;

static fq_t fq_new(int16_t ver, const char *topic, sh_uuid_t id, int32_t sid, int32_t epoch)
{
    fq_t q;
    memset(&q, 0, sizeof(q));
    q.ver = ver;
    q.topic = topic;
    q.topic_id = id;
    q.session_id = sid;
    q.epoch = epoch;
    q.min_bytes = 1;
    q.max_bytes = 1 << 20;
    return q;
}

static void fq_add(fq_t *q, int32_t part, int64_t offset)
{
    q->p[q->n++] = (fq_part_t){part, offset};
}

static void fq_send(int fd, const fq_t *q, int32_t corr)
{
    sh_fetch_request_t req;
    sh_fetch_request_init(&req);
    req.max_wait_ms = q->max_wait;
    req.min_bytes = q->min_bytes;
    req.max_bytes = q->max_bytes;
    req.session_id = q->session_id;
    req.session_epoch = q->epoch;
    sh_fetch_request_fetch_topic_t t;
    sh_fetch_request_fetch_partition_t fp[8];
    sh_fetch_request_forgotten_topic_t ft;
    memset(&t, 0, sizeof(t));
    memset(&ft, 0, sizeof(ft));
    memset(fp, 0, sizeof(fp));
    t.topic = ft.topic = sh_slice_str(q->topic);
    t.topic_id = ft.topic_id = q->topic_id;
    for (int i = 0; i < q->n; i++) {
        fp[i].partition = q->p[i].part;
        fp[i].fetch_offset = q->p[i].offset;
        fp[i].partition_max_bytes = 1 << 20;
        fp[i].current_leader_epoch = -1;
        fp[i].last_fetched_epoch = -1;
        fp[i].log_start_offset = -1;
    }
    t.partitions = fp;
    t.partitions_count = q->n;
    req.topics = &t;
    req.topics_count = q->n ? 1 : 0;
    int32_t forget[8];
    memcpy(forget, q->forget, sizeof(forget));
    ft.partitions = forget;
    ft.partitions_count = q->nforget;
    req.forgotten_topics_data = &ft;
    req.forgotten_topics_data_count = q->nforget ? 1 : 0;
    send_request(fd, 1, q->ver, corr, &req);
}

/* What a response says, in one line: "err=E sid=S | topic-p hw=H rec@B,
 * ..." where rec@B means records whose first batch starts at offset B and
 * !C an error code. The session id is given as "new" when non-zero and
 * different from `known`, so expectations need not know random ids. */
typedef struct fres {
    char text[512];
    int32_t session_id;
} fres_t;

static fres_t describe(const sh_fetch_response_t *r, int16_t ver, int32_t known)
{
    fres_t out;
    out.session_id = r->session_id;
    char sid[16];
    if (r->session_id == 0)
        snprintf(sid, sizeof(sid), "0");
    else if (r->session_id == known)
        snprintf(sid, sizeof(sid), "same");
    else
        snprintf(sid, sizeof(sid), "new");
    int n = snprintf(out.text, sizeof(out.text), "err=%d sid=%s |", r->error_code, sid);
    int k = 0;
    for (int32_t t = 0; t < r->responses_count; t++) {
        const sh_fetch_response_fetchable_topic_response_t *tr = &r->responses[t];
        char name[64];
        if (ver >= 13)
            snprintf(name, sizeof(name), "id%02x", tr->topic_id.b[0]);
        else
            snprintf(name, sizeof(name), "%.*s", (int)tr->topic.len, (const char *)tr->topic.ptr);
        for (int32_t i = 0; i < tr->partitions_count; i++, k++) {
            const sh_fetch_response_partition_data_t *p = &tr->partitions[i];
            n += snprintf(out.text + n, sizeof(out.text) - (size_t)n, "%s%s-%d",
                          k ? ", " : " ", name, p->partition_index);
            if (p->error_code)
                n += snprintf(out.text + n, sizeof(out.text) - (size_t)n, " !%d", p->error_code);
            else
                n += snprintf(out.text + n, sizeof(out.text) - (size_t)n, " hw=%lld",
                              (long long)p->high_watermark);
            if (p->records.len >= 8)
                n += snprintf(out.text + n, sizeof(out.text) - (size_t)n, " rec@%lld",
                              (long long)sh_load_be64(p->records.ptr));
        }
    }
    return out;
}

static fres_t fetch(int fd, const fq_t *q, int32_t known)
{
    static int32_t corr = 5000;
    fq_send(fd, q, ++corr);
    tbu_resp_t rs;
    const sh_fetch_response_t *r = tbu_recv_response(fd, 1, q->ver, corr, &rs);
    fres_t out = describe(r, q->ver, known);
    tbu_resp_free(&rs);
    return out;
}

static const sh_uuid_t NO_ID = {{0}};

/* ------------------------------------------------------------- tests */

/* The whole life of a session by topic name at one version. */
static void walk(int port, int16_t ver, const char *topic)
{
    int fd = tbu_connect(port), fd2 = tbu_connect(port);
    for (int p = 0; p < 3; p++)
        assert_int_equal(produce(fd2, topic, p, 3), 0);
    char want[512];

    /* full fetch asking for a session: everything, and a new id */
    fq_t q = fq_new(ver, topic, NO_ID, 0, 0);
    for (int p = 0; p < 3; p++)
        fq_add(&q, p, 0);
    fres_t r = fetch(fd, &q, 0);
    snprintf(want, sizeof(want), "err=0 sid=new | %s-0 hw=3 rec@0, %s-1 hw=3 rec@0, "
             "%s-2 hw=3 rec@0", topic, topic, topic);
    assert_string_equal(r.text, want);
    int32_t sid = r.session_id;
    assert_true(sid > 0);

    /* epoch 1: the consumer moved on; nothing changed: nothing listed */
    q = fq_new(ver, topic, NO_ID, sid, 1);
    for (int p = 0; p < 3; p++)
        fq_add(&q, p, 3);
    assert_string_equal(fetch(fd, &q, sid).text, "err=0 sid=same |");

    /* epoch 2, nothing listed: only the partition with new data */
    assert_int_equal(produce(fd2, topic, 1, 2), 3);
    q = fq_new(ver, topic, NO_ID, sid, 2);
    snprintf(want, sizeof(want), "err=0 sid=same | %s-1 hw=5 rec@3", topic);
    assert_string_equal(fetch(fd, &q, sid).text, want);

    /* epoch 3 waits; a produce to a partition it does not list wakes it */
    q = fq_new(ver, topic, NO_ID, sid, 3);
    q.max_wait = 30000;
    fq_add(&q, 1, 5);
    fq_send(fd, &q, 77);
    usleep(20000);
    assert_int_equal(produce(fd2, topic, 2, 1), 3);
    tbu_resp_t rs;
    const sh_fetch_response_t *fr = tbu_recv_response(fd, 1, ver, 77, &rs);
    r = describe(fr, ver, sid);
    tbu_resp_free(&rs);
    snprintf(want, sizeof(want), "err=0 sid=same | %s-2 hw=4 rec@3", topic);
    assert_string_equal(r.text, want);

    /* epoch 4 forgets partition 2 (it still has data at its offset 3) */
    assert_int_equal(produce(fd2, topic, 0, 1), 3);
    q = fq_new(ver, topic, NO_ID, sid, 4);
    q.forget[q.nforget++] = 2;
    snprintf(want, sizeof(want), "err=0 sid=same | %s-0 hw=4 rec@3", topic);
    assert_string_equal(fetch(fd, &q, sid).text, want);

    /* epoch 5 adds it back at its end (sent once, without records) and
     * moves partition 0 on */
    q = fq_new(ver, topic, NO_ID, sid, 5);
    fq_add(&q, 2, 4);
    fq_add(&q, 0, 4);
    snprintf(want, sizeof(want), "err=0 sid=same | %s-2 hw=4", topic);
    assert_string_equal(fetch(fd, &q, sid).text, want);

    /* the same epoch again: refused, and the session is as it was */
    assert_string_equal(fetch(fd, &q, sid).text, "err=71 sid=0 |");
    q = fq_new(ver, topic, NO_ID, sid, 6);
    assert_string_equal(fetch(fd, &q, sid).text, "err=0 sid=same |");

    /* errors are always answered (and at once, whatever max_wait) */
    q = fq_new(ver, topic, NO_ID, sid, 7);
    q.max_wait = 30000;
    fq_add(&q, 9, 0);
    snprintf(want, sizeof(want), "err=0 sid=same | %s-9 !3", topic);
    assert_string_equal(fetch(fd, &q, sid).text, want);
    q = fq_new(ver, topic, NO_ID, sid, 8);
    assert_string_equal(fetch(fd, &q, sid).text, want);
    q = fq_new(ver, topic, NO_ID, sid, 9);
    q.forget[q.nforget++] = 9;
    assert_string_equal(fetch(fd, &q, sid).text, "err=0 sid=same |");

    /* unknown ids, session id 0 with epoch > 0 */
    q = fq_new(ver, topic, NO_ID, sid == 1 ? 2 : sid - 1, 10);
    assert_string_equal(fetch(fd, &q, sid).text, "err=70 sid=0 |");
    q = fq_new(ver, topic, NO_ID, 0, 10);
    fq_add(&q, 0, 0);
    assert_string_equal(fetch(fd, &q, sid).text, "err=70 sid=0 |");
    if (ver == 12) { /* the session is by name: v13 cannot continue it */
        q = fq_new(13, topic, topic_id_of(fd, topic), sid, 10);
        assert_string_equal(fetch(fd, &q, sid).text, "err=106 sid=0 |");
    }
    /* sessions belong to no connection */
    q = fq_new(ver, topic, NO_ID, sid, 10);
    assert_string_equal(fetch(fd2, &q, sid).text, "err=0 sid=same |");

    /* a full request naming the session closes it and makes another */
    q = fq_new(ver, topic, NO_ID, sid, 0);
    fq_add(&q, 0, 4);
    snprintf(want, sizeof(want), "err=0 sid=new | %s-0 hw=4", topic);
    r = fetch(fd, &q, sid);
    assert_string_equal(r.text, want);
    int32_t sid2 = r.session_id;
    q = fq_new(ver, topic, NO_ID, sid, 11);
    assert_string_equal(fetch(fd, &q, sid).text, "err=70 sid=0 |");

    /* forgetting its last partition closes it: served sessionless */
    q = fq_new(ver, topic, NO_ID, sid2, 1);
    q.forget[q.nforget++] = 0;
    assert_string_equal(fetch(fd, &q, sid2).text, "err=0 sid=0 |");
    q = fq_new(ver, topic, NO_ID, sid2, 2);
    assert_string_equal(fetch(fd, &q, sid2).text, "err=70 sid=0 |");

    /* epoch -1 closes the session it names and makes none */
    q = fq_new(ver, topic, NO_ID, 0, 0);
    fq_add(&q, 1, 5);
    r = fetch(fd, &q, 0);
    int32_t sid3 = r.session_id;
    assert_true(sid3 > 0);
    q = fq_new(ver, topic, NO_ID, sid3, -1);
    fq_add(&q, 1, 5);
    snprintf(want, sizeof(want), "err=0 sid=0 | %s-1 hw=5", topic);
    assert_string_equal(fetch(fd, &q, sid3).text, want);
    q = fq_new(ver, topic, NO_ID, sid3, 1);
    assert_string_equal(fetch(fd, &q, sid3).text, "err=70 sid=0 |");
    close(fd);
    close(fd2);
}

static void test_session_walk(void **state)
{
    (void)state;
    char *dir = mkdir_tmp();
    tbu_mk_topic(dir, "walk7", 3, NULL, 0);
    tbu_mk_topic(dir, "walk12", 3, NULL, 0);
    tb_t t;
    tb_start(&t, dir, NULL);
    walk(t.port, 7, "walk7");
    walk(t.port, 12, "walk12");
    tb_stop(&t);
    tbu_rmrf(dir);
}

static void test_session_topic_ids(void **state)
{
    (void)state;
    char *dir = mkdir_tmp();
    tbu_mk_topic(dir, "ids", 2, NULL, 0);
    tb_t t;
    tb_start(&t, dir, NULL);
    int fd = tbu_connect(t.port);
    sh_uuid_t id = topic_id_of(fd, "ids");
    char name[8], want[256];
    snprintf(name, sizeof(name), "id%02x", id.b[0]);
    assert_int_equal(produce(fd, "ids", 0, 2), 0);
    assert_int_equal(produce(fd, "ids", 1, 2), 0);
    int64_t hw1 = 2;
    for (int16_t ver = 13; ver <= 17; ver += 4) {
        fq_t q = fq_new(ver, "", id, 0, 0);
        fq_add(&q, 0, 0);
        fq_add(&q, 1, hw1);
        fres_t r = fetch(fd, &q, 0);
        snprintf(want, sizeof(want), "err=0 sid=new | %s-0 hw=2 rec@0, %s-1 hw=%lld", name,
                 name, (long long)hw1);
        assert_string_equal(r.text, want);
        int32_t sid = r.session_id;
        /* forgotten by id; the other partition's new data comes */
        int64_t at = produce(fd, "ids", 1, 1);
        hw1 = at + 1;
        q = fq_new(ver, "", id, sid, 1);
        fq_add(&q, 0, 2);
        q.forget[q.nforget++] = 1;
        assert_string_equal(fetch(fd, &q, sid).text, "err=0 sid=same |");
        q = fq_new(ver, "", id, sid, 2);
        fq_add(&q, 1, at);
        snprintf(want, sizeof(want), "err=0 sid=same | %s-1 hw=%lld rec@%lld", name,
                 (long long)at + 1, (long long)at);
        assert_string_equal(fetch(fd, &q, sid).text, want);
        /* an id nobody knows is kept and answered every time */
        sh_uuid_t bad = id;
        bad.b[15] ^= 0xff;
        q = fq_new(ver, "", bad, sid, 3);
        fq_add(&q, 0, 0);
        r = fetch(fd, &q, sid);
        assert_non_null(strstr(r.text, "-0 !100"));
        q = fq_new(ver, "", bad, sid, 4);
        r = fetch(fd, &q, sid);
        assert_non_null(strstr(r.text, "-0 !100"));
        /* v12 cannot continue a session made with ids */
        q = fq_new(12, "ids", NO_ID, sid, 5);
        assert_string_equal(fetch(fd, &q, sid).text, "err=106 sid=0 |");
        q = fq_new(ver, "", id, sid, -1); /* close it */
        fetch(fd, &q, sid);
    }
    close(fd);
    tb_stop(&t);
    tbu_rmrf(dir);
}

static void test_session_rotation(void **state)
{
    (void)state;
    char *dir = mkdir_tmp();
    tbu_mk_topic(dir, "rot", 2, NULL, 0);
    tb_t t;
    tb_start(&t, dir, NULL);
    int fd = tbu_connect(t.port);
    fq_t q = fq_new(12, "rot", NO_ID, 0, 0);
    q.min_bytes = 0;
    fq_add(&q, 0, 0);
    fq_add(&q, 1, 0);
    fres_t r = fetch(fd, &q, 0);
    assert_string_equal(r.text, "err=0 sid=new | rot-0 hw=0, rot-1 hw=0");
    int32_t sid = r.session_id;
    assert_int_equal(produce(fd, "rot", 0, 1), 0);
    assert_int_equal(produce(fd, "rot", 1, 1), 0);
    /* max_bytes 1: only the first partition with data gets a batch */
    q = fq_new(12, "rot", NO_ID, sid, 1);
    q.max_bytes = 1;
    assert_string_equal(fetch(fd, &q, sid).text,
                        "err=0 sid=same | rot-0 hw=1 rec@0, rot-1 hw=1");
    /* partition 0 went behind: now partition 1 is read first */
    assert_int_equal(produce(fd, "rot", 0, 1), 1);
    q = fq_new(12, "rot", NO_ID, sid, 2);
    q.max_bytes = 1;
    fq_add(&q, 0, 1);
    assert_string_equal(fetch(fd, &q, sid).text,
                        "err=0 sid=same | rot-1 hw=1 rec@0, rot-0 hw=2");
    close(fd);
    tb_stop(&t);
    tbu_rmrf(dir);
}

/* A request for epoch N waits; another for N+1 comes on another
 * connection: the first is answered INVALID_FETCH_SESSION_EPOCH with the
 * session id (Kafka: "possible duplicate request"). */
static void test_session_duplicate_while_waiting(void **state)
{
    (void)state;
    char *dir = mkdir_tmp();
    tbu_mk_topic(dir, "dup", 1, NULL, 0);
    tb_t t;
    tb_start(&t, dir, NULL);
    int fd = tbu_connect(t.port), fd2 = tbu_connect(t.port);
    fq_t q = fq_new(11, "dup", NO_ID, 0, 0);
    fq_add(&q, 0, 0);
    fres_t r = fetch(fd, &q, 0);
    int32_t sid = r.session_id;
    assert_true(sid > 0);
    q = fq_new(11, "dup", NO_ID, sid, 1);
    q.max_wait = 30000;
    fq_send(fd, &q, 91);
    usleep(20000);
    q = fq_new(11, "dup", NO_ID, sid, 2);
    q.min_bytes = 0;
    assert_string_equal(fetch(fd2, &q, sid).text, "err=0 sid=same |");
    assert_int_equal(produce(fd2, "dup", 0, 1), 0);
    tbu_resp_t rs;
    const sh_fetch_response_t *fr = tbu_recv_response(fd, 1, 11, 91, &rs);
    assert_string_equal(describe(fr, 11, sid).text, "err=71 sid=same |");
    tbu_resp_free(&rs);
    /* the session went on with the second request */
    q = fq_new(11, "dup", NO_ID, sid, 3);
    assert_string_equal(fetch(fd, &q, sid).text, "err=0 sid=same | dup-0 hw=1 rec@0");
    close(fd);
    close(fd2);
    tb_stop(&t);
    tbu_rmrf(dir);
}

static void test_session_cache_bounds(void **state)
{
    (void)state;
    char *dir = mkdir_tmp();
    tbu_mk_topic(dir, "cb", 2, NULL, 0);
    static const char *const one_slot[] = {"max.incremental.fetch.session.cache.slots=1",
                                           "streamhouse.fetch.session.eviction.ms=0", NULL};
    tb_t t;
    tb_start(&t, dir, one_slot);
    int fd = tbu_connect(t.port);
    fq_t q = fq_new(12, "cb", NO_ID, 0, 0);
    q.min_bytes = 0;
    fq_add(&q, 0, 0);
    fres_t r = fetch(fd, &q, 0);
    int32_t s1 = r.session_id;
    assert_true(s1 > 0);
    /* the slot is taken, and s1 was used in this very millisecond or
     * the one before: no session, or (if a millisecond passed) s1 gives
     * way; either way exactly one session exists afterwards */
    r = fetch(fd, &q, s1);
    int32_t s2 = r.session_id;
    usleep(5000); /* idle for more than 0 ms: the next one evicts */
    r = fetch(fd, &q, s1);
    int32_t s3 = r.session_id;
    assert_true(s3 > 0 && s3 != s1 && s3 != s2);
    q = fq_new(12, "cb", NO_ID, s1, 1);
    q.min_bytes = 0;
    assert_string_equal(fetch(fd, &q, s3).text, "err=70 sid=0 |");
    q = fq_new(12, "cb", NO_ID, s3, 1);
    q.min_bytes = 0;
    assert_string_equal(fetch(fd, &q, s3).text, "err=0 sid=same |");
    close(fd);
    tb_stop(&t);

    /* no slots: every full fetch stays sessionless */
    static const char *const no_slots[] = {"max.incremental.fetch.session.cache.slots=0", NULL};
    tb_start(&t, dir, no_slots);
    fd = tbu_connect(t.port);
    q = fq_new(12, "cb", NO_ID, 0, 0);
    q.min_bytes = 0;
    fq_add(&q, 1, 0);
    assert_string_equal(fetch(fd, &q, 0).text, "err=0 sid=0 | cb-1 hw=0");
    close(fd);
    tb_stop(&t);
    tbu_rmrf(dir);
}

/* Stopping the broker answers a parked incremental fetch; its session
 * and the cache are freed (the ASan run reports leaks). */
static void test_session_shutdown(void **state)
{
    (void)state;
    char *dir = mkdir_tmp();
    tbu_mk_topic(dir, "sd", 1, NULL, 0);
    tb_t t;
    tb_start(&t, dir, NULL);
    int fd = tbu_connect(t.port);
    fq_t q = fq_new(12, "sd", NO_ID, 0, 0);
    fq_add(&q, 0, 0);
    q.min_bytes = 0;
    int32_t sid = fetch(fd, &q, 0).session_id;
    assert_true(sid > 0);
    q = fq_new(12, "sd", NO_ID, sid, 1);
    q.max_wait = 60000;
    fq_send(fd, &q, 99);
    usleep(20000);
    tb_stop(&t);
    close(fd);
    tbu_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_walk),
        cmocka_unit_test(test_session_topic_ids),
        cmocka_unit_test(test_session_rotation),
        cmocka_unit_test(test_session_duplicate_while_waiting),
        cmocka_unit_test(test_session_cache_bounds),
        cmocka_unit_test(test_session_shutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
