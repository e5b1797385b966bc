/*
 * test_broker_conn.c - the broker in-process on a loopback port: framing,
 * ordered pipelined responses (also when handlers finish out of order),
 * backpressure, oversize and malformed frames closing only their own
 * connection, unknown APIs, idle timeout, half-close, orphaned requests,
 * 1,000 connections, SIGTERM shutdown; and the ApiVersions and Metadata
 * handlers answered through real sockets.
 *
 * The broker runs sh_broker_run on its own thread; the test thread is a
 * blocking client. Broker state is inspected only after the loop thread
 * has been joined. Ports: 19092-19149.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_conn.h"
#include "broker/sh_dispatch.h"
#include "broker/sh_request.h"
#include "common/sh_clock.h"
#include "common/sh_log.h"
#include "protocol/sh_proto.h"
#include "test_broker_util.h"

#define PORT_LO 19092
#define PORT_HI 19149
#define CLIENT_TIMEOUT_S 5

/* ------------------------------------------------------ test broker */

typedef tbu_broker_t tb_t;

typedef void (*tb_tweak_fn)(sh_broker_t *b);

static void tb_start_with(tb_t *t, const char *const *overrides, const sh_api_entry_t *table,
                          size_t ntable, tb_tweak_fn tweak, bool signals)
{
    char dir[64];
    tbu_listen(t, tbu_mkdtemp(dir, sizeof(dir), "broker"), PORT_LO, PORT_HI, NULL, overrides);
    if (table)
        assert_int_equal(sh_broker_set_dispatch(t->b, table, ntable), SH_OK);
    if (tweak)
        tweak(t->b);
    if (signals)
        assert_int_equal(sh_broker_handle_signals(t->b), SH_OK);
    tbu_run(t);
}

static void tb_start(tb_t *t, const char *const *overrides)
{
    tb_start_with(t, overrides, NULL, 0, NULL, false);
}

static void tb_join(tb_t *t)
{
    tbu_join(t);
}

/* A test broker's data directory: meta.properties, the embedded metadata
 * store and the data path's wal/ (preallocated segment files) and objects/;
 * the whole tree, which the test created with mkdtemp. */
static void tb_rmdir(const char *dir)
{
    tbu_rmrf(dir);
}

static void tb_free(tb_t *t)
{
    assert_int_equal(t->b->nconns, 0);
    sh_broker_free(t->b);
    sh_config_fini(&t->cfg);
    tb_rmdir(t->dir);
}

static void tb_stop(tb_t *t)
{
    sh_broker_stop(t->b);
    tb_join(t);
    assert_int_equal(t->run_err, SH_OK);
    tb_free(t);
}

/* Silence the broker's expected error lines for a moment. */
static int quiet_fd = -1;

static void quiet_start(void)
{
    quiet_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    assert_true(quiet_fd >= 0);
    sh_log_set_fd(quiet_fd);
}

static void quiet_end(void)
{
    sh_log_set_fd(2);
    close(quiet_fd);
    quiet_fd = -1;
}

/* ----------------------------------------------------------- client */

static void cl_connect_fd(int fd, int port)
{
    tbu_connect_fd(fd, port, CLIENT_TIMEOUT_S);
}

static int cl_connect(int port)
{
    return tbu_connect_timeout(port, CLIENT_TIMEOUT_S);
}

/* Append one request frame to w. */
static void build_request(sh_writer_t *w, int16_t key, int16_t ver, int32_t corr,
                          const void *body)
{
    size_t at = w->len;
    sh_request_header_t h;
    sh_request_header_init(&h);
    h.request_api_key = key;
    h.request_api_version = ver;
    h.correlation_id = corr;
    h.client_id = sh_slice_str("test-client");
    sh_wire_put_i32(w, 0);
    sh_request_header_encode(w, sh_request_header_version(key, ver), &h);
    if (body)
        sh_api_info(key)->request_encode(w, ver, body);
    sh_writer_patch_i32(w, at, (int32_t)(w->len - at - 4));
}

static void cl_send_writer(int fd, sh_writer_t *w)
{
    assert_int_equal(w->err, 0);
    assert_int_equal(w->nrefs, 0);
    tbu_send(fd, w->buf, w->len);
}

static void send_request(int fd, int16_t key, int16_t ver, int32_t corr, const void *body)
{
    sh_writer_t w;
    sh_writer_init(&w);
    build_request(&w, key, ver, corr, body);
    cl_send_writer(fd, &w);
    sh_writer_fini(&w);
}

/* True when the broker closed the connection (EOF or reset) within the
 * client timeout; fails the test on a timeout or on unexpected data. */
static bool closed_by_broker(int fd)
{
    uint8_t b[256];
    for (;;) {
        ssize_t r = recv(fd, b, sizeof(b), 0);
        if (r == 0)
            return true;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno == ECONNRESET;
        fail_msg("unexpected %zd bytes from the broker", r);
    }
}

typedef struct {
    uint8_t *frame;
    sh_reader_t r;
    sh_arena_t arena;
    int32_t corr;
} resp_t;

/* Read a response and position a reader at its body. */
static bool read_response(int fd, int16_t key, int16_t ver, resp_t *out)
{
    size_t len;
    out->frame = tbu_read_frame(fd, &len);
    if (!out->frame)
        return false;
    sh_reader_init(&out->r, out->frame, len);
    out->corr = sh_wire_get_i32(&out->r);
    if (sh_response_header_version(key, ver) >= 1)
        sh_wire_skip_tagged_fields(&out->r);
    assert_int_equal(out->r.err, 0);
    sh_arena_init(&out->arena, 4096);
    return true;
}

static void resp_free(resp_t *r)
{
    free(r->frame);
    sh_arena_fini(&r->arena);
}

static sh_api_versions_response_t api_versions_roundtrip(int fd, int16_t ver, int32_t corr,
                                                         const sh_api_versions_request_t *body,
                                                         int16_t body_ver, resp_t *rs)
{
    sh_api_versions_response_t av;
    send_request(fd, 18, ver, corr, body);
    assert_true(read_response(fd, 18, ver, rs));
    assert_int_equal(rs->corr, corr);
    sh_api_versions_response_init(&av);
    assert_int_equal(sh_api_versions_response_decode(&rs->r, &rs->arena, body_ver, &av), SH_OK);
    assert_int_equal(sh_reader_remaining(&rs->r), 0);
    return av;
}

static const sh_api_versions_response_api_version_t *
find_key(const sh_api_versions_response_t *av, int16_t key)
{
    for (int32_t i = 0; i < av->api_keys_count; i++)
        if (av->api_keys[i].api_key == key)
            return &av->api_keys[i];
    return NULL;
}

/* ------------------------------------------------------- ApiVersions */

static void test_api_versions(void **state)
{
    (void)state;
    tb_t t;
    tb_start(&t, NULL);
    int fd = cl_connect(t.port);
    for (int16_t v = 0; v <= 4; v++) {
        sh_api_versions_request_t rq;
        sh_api_versions_request_init(&rq);
        rq.client_software_name = sh_slice_str("sh-test");
        rq.client_software_version = sh_slice_str("1.0.0-rc.1");
        resp_t rs;
        sh_api_versions_response_t av = api_versions_roundtrip(fd, v, 100 + v, &rq, v, &rs);
        assert_int_equal(av.error_code, 0);
        /* exactly the dispatch table: Metadata 0-12 and ApiVersions 0-4 */
        assert_int_equal(av.api_keys_count, (int32_t)sh_dispatch_count);
        const sh_api_versions_response_api_version_t *md = find_key(&av, 3);
        const sh_api_versions_response_api_version_t *ak = find_key(&av, 18);
        assert_non_null(md);
        assert_non_null(ak);
        assert_int_equal(md->min_version, 0);
        assert_int_equal(md->max_version, 12);
        assert_int_equal(ak->min_version, 0);
        assert_int_equal(ak->max_version, 4);
        assert_null(find_key(&av, 4)); /* LeaderAndIsr: ZooKeeper-era, never served */
        assert_int_equal(av.throttle_time_ms, 0);
        resp_free(&rs);
    }
    close(fd);
    tb_stop(&t);
}

static void test_api_versions_too_new(void **state)
{
    (void)state;
    tb_t t;
    tb_start(&t, NULL);
    int fd = cl_connect(t.port);
    const int16_t versions[] = {5, 127, INT16_MAX};
    for (size_t i = 0; i < 3; i++) {
        /* a body we do not understand: it must not be parsed */
        sh_writer_t w;
        sh_writer_init(&w);
        build_request(&w, 18, versions[i], 7, NULL);
        const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01, 0x02};
        sh_wire_put_raw(&w, junk, sizeof(junk));
        sh_writer_patch_i32(&w, 0, (int32_t)(w.len - 4));
        cl_send_writer(fd, &w);
        sh_writer_fini(&w);

        resp_t rs;
        /* header v0, body v0 whatever was asked */
        assert_true(read_response(fd, 18, 0, &rs));
        assert_int_equal(rs.corr, 7);
        sh_api_versions_response_t av;
        sh_api_versions_response_init(&av);
        assert_int_equal(sh_api_versions_response_decode(&rs.r, &rs.arena, 0, &av), SH_OK);
        assert_int_equal(sh_reader_remaining(&rs.r), 0);
        assert_int_equal(av.error_code, SH_KERR_UNSUPPORTED_VERSION);
        assert_int_equal(av.api_keys_count, 1);
        assert_int_equal(av.api_keys[0].api_key, 18);
        assert_int_equal(av.api_keys[0].min_version, 0);
        assert_int_equal(av.api_keys[0].max_version, 4);
        resp_free(&rs);
    }
    /* the connection stays usable, as for a real client's retry */
    resp_t rs;
    sh_api_versions_response_t av = api_versions_roundtrip(fd, 0, 8, NULL, 0, &rs);
    assert_int_equal(av.error_code, 0);
    resp_free(&rs);
    close(fd);
    tb_stop(&t);
}

static void test_api_versions_software_name(void **state)
{
    (void)state;
    static const struct {
        const char *name, *version;
        int16_t err;
    } cases[] = {
        {"librdkafka", "2.0.2", 0},
        {"a", "1", 0},
        {"apache-kafka-java", "3.9.0.x", 0},
        {"-bad", "1.0", SH_KERR_INVALID_REQUEST},
        {"bad-", "1.0", SH_KERR_INVALID_REQUEST},
        {"good", "1.0 beta", SH_KERR_INVALID_REQUEST},
        {"", "1.0", SH_KERR_INVALID_REQUEST},
        {"good", "", SH_KERR_INVALID_REQUEST},
        {"na_me", "1", SH_KERR_INVALID_REQUEST},
    };
    tb_t t;
    tb_start(&t, NULL);
    int fd = cl_connect(t.port);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int16_t v = 3; v <= 4; v++) {
            sh_api_versions_request_t rq;
            sh_api_versions_request_init(&rq);
            rq.client_software_name = sh_slice_str(cases[i].name);
            rq.client_software_version = sh_slice_str(cases[i].version);
            resp_t rs;
            sh_api_versions_response_t av =
                api_versions_roundtrip(fd, v, (int32_t)i, &rq, v, &rs);
            if (av.error_code != cases[i].err)
                fail_msg("\"%s\" \"%s\": error %d", cases[i].name, cases[i].version,
                         av.error_code);
            if (cases[i].err)
                assert_int_equal(av.api_keys_count, 0);
            else
                assert_int_equal(av.api_keys_count, (int32_t)sh_dispatch_count);
            resp_free(&rs);
        }
    }
    close(fd);
    tb_stop(&t);
}

/* ---------------------------------------------------------- Metadata */

static sh_metadata_response_t metadata_roundtrip(int fd, int16_t ver, int32_t corr,
                                                 const sh_metadata_request_t *rq, resp_t *rs)
{
    sh_metadata_response_t md;
    send_request(fd, 3, ver, corr, rq);
    assert_true(read_response(fd, 3, ver, rs));
    assert_int_equal(rs->corr, corr);
    sh_metadata_response_init(&md);
    assert_int_equal(sh_metadata_response_decode(&rs->r, &rs->arena, ver, &md), SH_OK);
    assert_int_equal(sh_reader_remaining(&rs->r), 0);
    return md;
}

static void check_brokers(const sh_metadata_response_t *md, int16_t v, int port)
{
    assert_int_equal(md->brokers_count, 1);
    assert_int_equal(md->brokers[0].node_id, 7);
    assert_true(sh_slice_eq_str(md->brokers[0].host, "127.0.0.1"));
    assert_int_equal(md->brokers[0].port, port);
    assert_true(sh_slice_is_null(md->brokers[0].rack));
    if (v >= 1)
        assert_int_equal(md->controller_id, 7);
    if (v >= 2) {
        assert_int_equal(md->cluster_id.len, 22);
    }
}

static void test_metadata(void **state)
{
    (void)state;
    /* Without auto-creation, so unknown topics stay unknown across
     * versions; auto-creation is covered in test_broker_registry_api.c. */
    const char *const ov[] = {"node.id=7", "auto.create.topics.enable=false", NULL};
    tb_t t;
    tb_start(&t, ov);
    int fd = cl_connect(t.port);
    char cluster_id[23] = "";

    for (int16_t v = 0; v <= 12; v++) {
        resp_t rs;
        sh_metadata_request_t rq;

        /* all topics: v0 empty array, v1+ null */
        sh_metadata_request_init(&rq);
        rq.topics = NULL;
        rq.topics_count = v == 0 ? 0 : -1;
        sh_metadata_response_t md = metadata_roundtrip(fd, v, 1000 + v, &rq, &rs);
        check_brokers(&md, v, t.port);
        assert_int_equal(md.topics_count, 0);
        if (v >= 2) {
            if (!cluster_id[0])
                memcpy(cluster_id, md.cluster_id.ptr, 22);
            assert_memory_equal(md.cluster_id.ptr, cluster_id, 22);
        }
        if (v >= 8 && v <= 10)
            assert_int_equal(md.cluster_authorized_operations, INT32_MIN);
        resp_free(&rs);

        /* named topics: unknown, duplicated, illegal */
        sh_metadata_request_metadata_request_topic_t topics[3];
        memset(topics, 0, sizeof(topics));
        topics[0].name = sh_slice_str("orders");
        topics[1].name = sh_slice_str("orders");
        topics[2].name = sh_slice_str("bad name!");
        sh_metadata_request_init(&rq);
        rq.topics = topics;
        rq.topics_count = 3;
        if (v >= 8 && v <= 10)
            rq.include_cluster_authorized_operations = true;
        md = metadata_roundtrip(fd, v, 2000 + v, &rq, &rs);
        check_brokers(&md, v, t.port);
        assert_int_equal(md.topics_count, 2);
        assert_true(sh_slice_eq_str(md.topics[0].name, "orders"));
        assert_int_equal(md.topics[0].error_code, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
        assert_int_equal(md.topics[0].partitions_count, 0);
        assert_true(sh_slice_eq_str(md.topics[1].name, "bad name!"));
        /* Kafka says INVALID_TOPIC_EXCEPTION only where it would create */
        assert_int_equal(md.topics[1].error_code, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
        if (v >= 8)
            assert_int_equal(md.topics[0].topic_authorized_operations, INT32_MIN);
        if (v >= 8 && v <= 10) {
            /* no authorizer: everything Kafka supports on a cluster */
            assert_int_not_equal(md.cluster_authorized_operations, INT32_MIN);
            assert_true(md.cluster_authorized_operations & (1 << 8)); /* DESCRIBE */
            assert_false(md.cluster_authorized_operations & (1 << 3)); /* not READ */
        }
        resp_free(&rs);

        /* v1+: empty array = no topics */
        if (v >= 1) {
            sh_metadata_request_init(&rq);
            rq.topics = topics;
            rq.topics_count = 0;
            md = metadata_roundtrip(fd, v, 3000 + v, &rq, &rs);
            assert_int_equal(md.topics_count, 0);
            resp_free(&rs);
        }

        /* v4+: no auto-creation asked -> illegal names are just unknown */
        if (v >= 4) {
            sh_metadata_request_init(&rq);
            rq.topics = &topics[2];
            rq.topics_count = 1;
            rq.allow_auto_topic_creation = false;
            md = metadata_roundtrip(fd, v, 4000 + v, &rq, &rs);
            assert_int_equal(md.topics_count, 1);
            assert_int_equal(md.topics[0].error_code, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
            resp_free(&rs);
        }

        /* topic ids: v12 looks them up, v10-11 refuse them */
        if (v >= 10) {
            sh_metadata_request_metadata_request_topic_t byid;
            memset(&byid, 0, sizeof(byid));
            byid.name = SH_SLICE_NULL;
            memset(byid.topic_id.b, 0xab, 16);
            sh_metadata_request_init(&rq);
            rq.topics = &byid;
            rq.topics_count = 1;
            md = metadata_roundtrip(fd, v, 5000 + v, &rq, &rs);
            assert_int_equal(md.topics_count, 1);
            if (v == 12) {
                assert_int_equal(md.topics[0].error_code, SH_KERR_UNKNOWN_TOPIC_ID);
                assert_true(sh_slice_is_null(md.topics[0].name));
                assert_memory_equal(md.topics[0].topic_id.b, byid.topic_id.b, 16);
            } else {
                assert_int_equal(md.topics[0].error_code, SH_KERR_INVALID_REQUEST);
            }
            resp_free(&rs);
        }
    }
    close(fd);

    /* the cluster id survives a restart of the same data directory */
    char dir[64];
    strcpy(dir, t.dir);
    sh_broker_stop(t.b);
    tb_join(&t);
    sh_broker_free(t.b);
    sh_config_fini(&t.cfg);
    sh_config_t cfg;
    char err[256], kv[128];
    assert_int_equal(sh_config_init(&cfg), SH_OK);
    snprintf(kv, sizeof(kv), "log.dirs=%s", dir);
    assert_int_equal(sh_config_set_override(&cfg, kv, err, sizeof(err)), SH_OK);
    assert_int_equal(sh_config_set_override(&cfg, "node.id=7", err, sizeof(err)), SH_OK);
    assert_int_equal(sh_config_finalize(&cfg, err, sizeof(err)), SH_OK);
    sh_broker_t *b2 = sh_broker_new(&cfg);
    assert_non_null(b2);
    assert_string_equal(b2->cluster_id, cluster_id);
    sh_broker_free(b2);
    /* ... and belongs to node 7: another node id is refused */
    assert_int_equal(sh_config_set_override(&cfg, "node.id=8", err, sizeof(err)), SH_OK);
    assert_int_equal(sh_config_finalize(&cfg, err, sizeof(err)), SH_OK);
    quiet_start();
    b2 = sh_broker_new(&cfg);
    quiet_end();
    assert_null(b2);
    sh_config_fini(&cfg);
    tb_rmdir(dir);
}

/* ------------------------------------------------------- pipelining */

static void test_pipelined_in_order(void **state)
{
    (void)state;
    enum { N = 60 };
    tb_t t;
    tb_start(&t, NULL);
    int fd = cl_connect(t.port);
    sh_writer_t w;
    sh_writer_init(&w);
    int16_t keys[N], vers[N];
    for (int i = 0; i < N; i++) {
        if (i % 2 == 0) {
            keys[i] = 18;
            vers[i] = (int16_t)(i / 2 % 5);
            sh_api_versions_request_t rq;
            sh_api_versions_request_init(&rq);
            rq.client_software_name = sh_slice_str("x");
            rq.client_software_version = sh_slice_str("1");
            build_request(&w, 18, vers[i], i, &rq);
        } else {
            keys[i] = 3;
            vers[i] = (int16_t)(i / 2 % 13);
            sh_metadata_request_t rq;
            sh_metadata_request_init(&rq);
            rq.topics_count = vers[i] == 0 ? 0 : -1;
            build_request(&w, 3, vers[i], i, &rq);
        }
    }
    /* all in one write: the broker sees many frames per read */
    cl_send_writer(fd, &w);
    sh_writer_fini(&w);
    for (int i = 0; i < N; i++) {
        resp_t rs;
        assert_true(read_response(fd, keys[i], vers[i], &rs));
        assert_int_equal(rs.corr, i);
        if (keys[i] == 18) {
            sh_api_versions_response_t av;
            sh_api_versions_response_init(&av);
            assert_int_equal(
                sh_api_versions_response_decode(&rs.r, &rs.arena, vers[i], &av), SH_OK);
            assert_int_equal(av.error_code, 0);
        } else {
            sh_metadata_response_t md;
            sh_metadata_response_init(&md);
            assert_int_equal(sh_metadata_response_decode(&rs.r, &rs.arena, vers[i], &md),
                             SH_OK);
            assert_int_equal(md.brokers_count, 1);
        }
        assert_int_equal(sh_reader_remaining(&rs.r), 0);
        resp_free(&rs);
    }
    close(fd);
    tb_stop(&t);
}

/* A frame split across many small writes is reassembled. */
static void test_split_frames(void **state)
{
    (void)state;
    tb_t t;
    tb_start(&t, NULL);
    int fd = cl_connect(t.port);
    sh_writer_t w;
    sh_writer_init(&w);
    for (int i = 0; i < 3; i++)
        build_request(&w, 18, 0, 50 + i, NULL);
    for (size_t off = 0; off < w.len; off++) {
        tbu_send(fd, w.buf + off, 1);
        if (off % 7 == 0)
            usleep(200);
    }
    sh_writer_fini(&w);
    for (int i = 0; i < 3; i++) {
        resp_t rs;
        assert_true(read_response(fd, 18, 0, &rs));
        assert_int_equal(rs.corr, 50 + i);
        resp_free(&rs);
    }
    close(fd);
    tb_stop(&t);
}

/* ---------------------------------------- asynchronous handler (tests) */

typedef struct {
    sh_timer_t timer;
    sh_request_t *req;
} delayed_t;

static atomic_int delayed_done;
static atomic_int max_inflight_seen;
static atomic_long max_req_bytes_seen;
static int delay_unit_ms = 15;

static void delayed_fire(sh_timer_t *t, void *arg)
{
    delayed_t *d = arg;
    sh_metadata_response_t md;
    (void)t;
    sh_metadata_response_init(&md);
    md.controller_id = d->req->correlation_id;   /* echo, to check pairing */
    sh_request_respond(d->req, &md);
    atomic_fetch_add(&delayed_done, 1);
}

/* Metadata stand-in that answers after a delay that shrinks with the
 * correlation id, so later requests finish first. */
static void delayed_handle(sh_broker_t *b, sh_request_t *req)
{
    if (req->conn) {
        int inflight = (int)req->conn->inflight;
        int seen = atomic_load(&max_inflight_seen);
        while (inflight > seen &&
               !atomic_compare_exchange_weak(&max_inflight_seen, &seen, inflight))
            ;
    }
    long rb = (long)b->req_bytes;
    long rseen = atomic_load(&max_req_bytes_seen);
    while (rb > rseen && !atomic_compare_exchange_weak(&max_req_bytes_seen, &rseen, rb))
        ;
    delayed_t *d = sh_arena_alloc(&req->arena, sizeof(*d));
    assert_non_null(d);
    d->req = req;
    sh_timer_init(&d->timer, delayed_fire, d);
    int32_t delay = (int32_t)((5 - req->correlation_id % 5) * delay_unit_ms);
    assert_int_equal(sh_loop_timer_arm(b->loop, &d->timer, delay), SH_OK);
}

static const sh_api_entry_t delayed_table[] = {
    {3, 0, 12, 0, delayed_handle},
    {18, 0, 4, 0, sh_api_versions_handle},
};

static void expect_delayed_in_order(int fd, int n, int first_corr)
{
    for (int i = 0; i < n; i++) {
        resp_t rs;
        int corr = first_corr + i;
        bool md = corr % 3 != 0;
        assert_true(read_response(fd, md ? 3 : 18, 1, &rs));
        assert_int_equal(rs.corr, corr);
        if (md) {
            sh_metadata_response_t m;
            sh_metadata_response_init(&m);
            assert_int_equal(sh_metadata_response_decode(&rs.r, &rs.arena, 1, &m), SH_OK);
            assert_int_equal(m.controller_id, corr);
        }
        resp_free(&rs);
    }
}

static void send_delayed_mix(int fd, int n, int first_corr)
{
    sh_writer_t w;
    sh_writer_init(&w);
    for (int i = 0; i < n; i++) {
        int corr = first_corr + i;
        if (corr % 3 != 0) {
            sh_metadata_request_t rq;
            sh_metadata_request_init(&rq);
            rq.topics_count = -1;
            build_request(&w, 3, 1, corr, &rq);
        } else {
            build_request(&w, 18, 1, corr, NULL);  /* answered at once */
        }
    }
    cl_send_writer(fd, &w);
    sh_writer_fini(&w);
}

static void test_async_out_of_order(void **state)
{
    (void)state;
    tb_t t;
    atomic_store(&delayed_done, 0);
    tb_start_with(&t, NULL, delayed_table, 2, NULL, false);
    int fd = cl_connect(t.port);
    send_delayed_mix(fd, 20, 1);
    expect_delayed_in_order(fd, 20, 1);
    close(fd);
    tb_stop(&t);
}

static void small_inflight(sh_broker_t *b)
{
    b->conn_max_inflight = 4;
}

static void test_backpressure_inflight(void **state)
{
    (void)state;
    tb_t t;
    atomic_store(&max_inflight_seen, 0);
    tb_start_with(&t, NULL, delayed_table, 2, small_inflight, false);
    int fd = cl_connect(t.port);
    send_delayed_mix(fd, 40, 1);
    expect_delayed_in_order(fd, 40, 1);
    close(fd);
    tb_stop(&t);
    /* reading stopped at the limit instead of queueing all 40 */
    assert_true(atomic_load(&max_inflight_seen) <= 4);
    assert_true(atomic_load(&max_inflight_seen) >= 2);
}

/* A handler with big answers (about 200 KB each). */
static atomic_long max_unsent_seen;
static char big_host[30000];

static void big_handle(sh_broker_t *b, sh_request_t *req)
{
    (void)b;
    long unsent = (long)req->conn->unsent_bytes;
    long seen = atomic_load(&max_unsent_seen);
    while (unsent > seen && !atomic_compare_exchange_weak(&max_unsent_seen, &seen, unsent))
        ;
    sh_metadata_response_t md;
    sh_metadata_response_init(&md);
    md.brokers_count = 7;
    md.brokers = sh_arena_calloc(&req->arena, 7, sizeof(*md.brokers));
    assert_non_null(md.brokers);
    for (int i = 0; i < 7; i++) {
        md.brokers[i].node_id = i;
        md.brokers[i].host = (sh_slice_t){(const uint8_t *)big_host, sizeof(big_host)};
        md.brokers[i].rack = SH_SLICE_NULL;
    }
    sh_request_respond(req, &md);
}

static const sh_api_entry_t big_table[] = {
    {3, 0, 12, 0, big_handle},
    {18, 0, 4, 0, sh_api_versions_handle},
};

static void small_unsent(sh_broker_t *b)
{
    b->conn_max_unsent = 64 * 1024;
}

/* A client that does not read: the broker stops reading its requests
 * once 64 KiB of answers are waiting, and resumes when they drain. */
static void test_backpressure_unsent_bytes(void **state)
{
    (void)state;
    enum { N = 60 };
    memset(big_host, 'h', sizeof(big_host));
    atomic_store(&max_unsent_seen, 0);
    tb_t t;
    tb_start_with(&t, NULL, big_table, 2, small_unsent, false);
    int fd = cl_connect(t.port);
    sh_writer_t w;
    sh_writer_init(&w);
    for (int i = 0; i < N; i++) {
        sh_metadata_request_t rq;
        sh_metadata_request_init(&rq);
        rq.topics_count = -1;
        build_request(&w, 3, 1, i, &rq);
    }
    cl_send_writer(fd, &w);
    sh_writer_fini(&w);
    usleep(100 * 1000); /* let socket buffers fill while we do not read */
    for (int i = 0; i < N; i++) {
        resp_t rs;
        assert_true(read_response(fd, 3, 1, &rs));
        assert_int_equal(rs.corr, i);
        sh_metadata_response_t md;
        sh_metadata_response_init(&md);
        assert_int_equal(sh_metadata_response_decode(&rs.r, &rs.arena, 1, &md), SH_OK);
        assert_int_equal(md.brokers_count, 7);
        assert_int_equal(md.brokers[6].host.len, sizeof(big_host));
        resp_free(&rs);
    }
    close(fd);
    tb_stop(&t);
    /* no request was taken in while 64 KiB or more were waiting */
    assert_true(atomic_load(&max_unsent_seen) < 64 * 1024);
}

/* queued.max.request.bytes: request frames held broker-wide stay within
 * the budget; connections over it wait, then all get their answers. */
static void test_request_memory_budget(void **state)
{
    (void)state;
    enum { CONNS = 3, PER = 4, FRAME = 2000 };
    const char *const ov[] = {"queued.max.request.bytes=4096", NULL};
    atomic_store(&max_req_bytes_seen, 0);
    tb_t t;
    tb_start_with(&t, ov, delayed_table, 2, NULL, false);
    int fds[CONNS];
    for (int k = 0; k < CONNS; k++) {
        fds[k] = cl_connect(t.port);
        sh_writer_t w;
        sh_writer_init(&w);
        for (int i = 0; i < PER; i++) {
            size_t at = w.len;
            sh_metadata_request_t rq;
            sh_metadata_request_init(&rq);
            rq.topics_count = -1;
            /* correlation ids 1,2,4,5: never a multiple of 3 (all delayed) */
            build_request(&w, 3, 1, i + 1 + i / 2, &rq);
            while (w.len - at < FRAME + 4)
                sh_wire_put_i8(&w, 0); /* trailing bytes are ignored */
            sh_writer_patch_i32(&w, at, FRAME);
        }
        cl_send_writer(fds[k], &w);
        sh_writer_fini(&w);
    }
    for (int k = 0; k < CONNS; k++) {
        for (int i = 0; i < PER; i++) {
            resp_t rs;
            assert_true(read_response(fds[k], 3, 1, &rs));
            assert_int_equal(rs.corr, i + 1 + i / 2);
            resp_free(&rs);
        }
        close(fds[k]);
    }
    tb_stop(&t);
    long seen = atomic_load(&max_req_bytes_seen);
    assert_true(seen <= 4096);
    assert_true(seen >= FRAME);
}

/* The client leaves while its requests are still being handled: the late
 * finishing calls free them and write nothing. */
static void test_orphaned_requests(void **state)
{
    (void)state;
    tb_t t;
    atomic_store(&delayed_done, 0);
    tb_start_with(&t, NULL, delayed_table, 2, NULL, false);
    int fd = cl_connect(t.port);
    sh_writer_t w;
    sh_writer_init(&w);
    for (int i = 1; i <= 5; i++) {
        sh_metadata_request_t rq;
        sh_metadata_request_init(&rq);
        rq.topics_count = -1;
        build_request(&w, 3, 1, i, &rq);
    }
    cl_send_writer(fd, &w);
    sh_writer_fini(&w);
    /* RST rather than FIN, so the broker sees the peer gone at once */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    usleep(5000);
    close(fd);
    int64_t deadline = sh_clock_mono_ms() + CLIENT_TIMEOUT_S * 1000;
    while (atomic_load(&delayed_done) < 5 && sh_clock_mono_ms() < deadline)
        usleep(2000);
    assert_int_equal(atomic_load(&delayed_done), 5);
    sh_broker_stop(t.b);
    tb_join(&t);
    assert_int_equal(t.b->requests_live, 0);
    tb_free(&t);
}

/* ------------------------------------------------- bad input / limits */

static void put_be32(uint8_t *p, uint32_t v)
{
    sh_store_be32(p, v);
}

static void assert_still_serves(int port)
{
    int fd = cl_connect(port);
    resp_t rs;
    sh_api_versions_response_t av = api_versions_roundtrip(fd, 2, 77, NULL, 2, &rs);
    assert_int_equal(av.error_code, 0);
    resp_free(&rs);
    close(fd);
}

static void test_oversize_refused_before_body(void **state)
{
    (void)state;
    const char *const ov[] = {"socket.request.max.bytes=1024", NULL};
    tb_t t;
    tb_start(&t, ov);
    int keep = cl_connect(t.port);   /* a bystander connection */

    /* just the size prefix: the broker must not wait for the body */
    const uint32_t sizes[] = {1025, 0x7fffffffu, 0x80000000u, 0xffffffffu, 7, 0};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        int fd = cl_connect(t.port);
        uint8_t hdr[4];
        put_be32(hdr, sizes[i]);
        tbu_send(fd, hdr, 4);
        if (!closed_by_broker(fd))
            fail_msg("size %u: connection not closed", sizes[i]);
        close(fd);
    }
    /* exactly the limit is fine: a 1024-byte ApiVersions v0 (trailing
     * bytes after the body are ignored, as Kafka does) */
    int fd = cl_connect(t.port);
    sh_writer_t w;
    sh_writer_init(&w);
    build_request(&w, 18, 0, 5, NULL);
    while (w.len < 1028)
        sh_wire_put_i8(&w, 0);
    sh_writer_patch_i32(&w, 0, 1024);
    cl_send_writer(fd, &w);
    sh_writer_fini(&w);
    resp_t rs;
    assert_true(read_response(fd, 18, 0, &rs));
    assert_int_equal(rs.corr, 5);
    resp_free(&rs);
    close(fd);

    /* the bystander never noticed */
    resp_t rs2;
    sh_api_versions_response_t av = api_versions_roundtrip(keep, 0, 9, NULL, 0, &rs2);
    assert_int_equal(av.error_code, 0);
    resp_free(&rs2);
    close(keep);
    tb_stop(&t);
}

static void test_malformed_header_isolated(void **state)
{
    (void)state;
    tb_t t;
    tb_start(&t, NULL);
    int keep = cl_connect(t.port);
    /* a request already in flight on the bystander */
    send_request(keep, 18, 1, 11, NULL);

    /* ApiVersions v1 header claiming a 50-byte client id in 2 bytes */
    uint8_t bad1[] = {0, 0, 0, 12, 0, 18, 0, 1, 0, 0, 0, 1, 0, 50, 'a', 'b'};
    /* Metadata v1 frame that ends before the client id length */
    uint8_t bad2[] = {0, 0, 0, 9, 0, 3, 0, 1, 0, 0, 0, 2, 0};
    /* flexible header (Metadata v9) with a broken tagged-field block */
    uint8_t bad3[] = {0, 0, 0, 13, 0, 3, 0, 9, 0, 0, 0, 3, 0xff, 0xff, 0x05, 0x01, 0x10};
    struct {
        const uint8_t *p;
        size_t n;
    } bad[] = {{bad1, sizeof(bad1)}, {bad2, sizeof(bad2)}, {bad3, sizeof(bad3)}};
    for (size_t i = 0; i < 3; i++) {
        int fd = cl_connect(t.port);
        tbu_send(fd, bad[i].p, bad[i].n);
        if (!closed_by_broker(fd))
            fail_msg("malformed header %zu: connection not closed", i);
        close(fd);
    }
    resp_t rs;
    assert_true(read_response(keep, 18, 1, &rs));
    assert_int_equal(rs.corr, 11);
    resp_free(&rs);
    close(keep);
    assert_still_serves(t.port);
    tb_stop(&t);
}

static void test_malformed_body_closes(void **state)
{
    (void)state;
    tb_t t;
    tb_start(&t, NULL);
    /* Metadata v1 with a topic count far beyond the bytes present */
    sh_writer_t w;
    sh_writer_init(&w);
    build_request(&w, 3, 1, 1, NULL);
    sh_wire_put_i32(&w, 1000000);
    sh_wire_put_i16(&w, 3);
    sh_writer_patch_i32(&w, 0, (int32_t)(w.len - 4));
    int fd = cl_connect(t.port);
    cl_send_writer(fd, &w);
    sh_writer_fini(&w);
    assert_true(closed_by_broker(fd));
    close(fd);
    assert_still_serves(t.port);
    tb_stop(&t);
}

static void test_unsupported_api_and_version(void **state)
{
    (void)state;
    tb_t t;
    tb_start(&t, NULL);
    const struct {
        int16_t key, ver;
    } cases[] = {
        {0, 9},      /* Produce: known to Kafka, not served here yet */
        {1, 4},      /* Fetch */
        {999, 0},    /* no such API */
        {-1, 0},
        {3, 13},     /* Metadata beyond what we serve */
        {3, -1},
        {18, -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int fd = cl_connect(t.port);
        uint8_t f[14] = {0, 0, 0, 10};
        sh_store_be16(f + 4, (uint16_t)cases[i].key);
        sh_store_be16(f + 6, (uint16_t)cases[i].ver);
        sh_store_be32(f + 8, 42);
        sh_store_be16(f + 12, 0xffff); /* null client id */
        tbu_send(fd, f, sizeof(f));
        if (!closed_by_broker(fd))
            fail_msg("key %d v%d: connection not closed", cases[i].key, cases[i].ver);
        close(fd);
    }
    assert_still_serves(t.port);
    tb_stop(&t);
}

static void test_half_close_gets_answers(void **state)
{
    (void)state;
    tb_t t;
    tb_start(&t, NULL);
    int fd = cl_connect(t.port);
    sh_writer_t w;
    sh_writer_init(&w);
    for (int i = 0; i < 3; i++)
        build_request(&w, 18, 0, 20 + i, NULL);
    cl_send_writer(fd, &w);
    sh_writer_fini(&w);
    shutdown(fd, SHUT_WR);
    for (int i = 0; i < 3; i++) {
        resp_t rs;
        assert_true(read_response(fd, 18, 0, &rs));
        assert_int_equal(rs.corr, 20 + i);
        resp_free(&rs);
    }
    assert_true(closed_by_broker(fd));
    close(fd);
    tb_stop(&t);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    const char *const ov[] = {"connections.max.idle.ms=100", NULL};
    tb_t t;
    tb_start(&t, ov);
    int fd = cl_connect(t.port);
    resp_t rs;
    sh_api_versions_response_t av = api_versions_roundtrip(fd, 0, 1, NULL, 0, &rs);
    assert_int_equal(av.error_code, 0);
    resp_free(&rs);
    /* then silence: the broker hangs up (well within the recv timeout) */
    assert_true(closed_by_broker(fd));
    close(fd);
    tb_stop(&t);
}

/* --------------------------------------------------- scale, shutdown */

static void test_thousand_connections(void **state)
{
    (void)state;
    enum { N = 1000 };
    sh_loop_raise_fd_limit();
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2 * N + 64) {
        fprintf(stderr, "skipping: open-file limit %llu too low\n",
                (unsigned long long)rl.rlim_cur);
        skip();
    }
    static int fds[N];
    tb_t t;
    tb_start(&t, NULL);
    sh_writer_t w;
    sh_writer_init(&w);
    build_request(&w, 18, 0, 1, NULL);
    build_request(&w, 3, 0, 2, &(sh_metadata_request_t){.topics_count = 0});
    for (int i = 0; i < N; i++) {
        fds[i] = cl_connect(t.port);
        cl_send_writer(fds[i], &w);
    }
    sh_writer_fini(&w);
    for (int i = 0; i < N; i++) {
        resp_t rs;
        assert_true(read_response(fds[i], 18, 0, &rs));
        assert_int_equal(rs.corr, 1);
        resp_free(&rs);
        assert_true(read_response(fds[i], 3, 0, &rs));
        assert_int_equal(rs.corr, 2);
        resp_free(&rs);
    }
    /* all still open at the same time; the broker closes them on stop */
    sh_broker_stop(t.b);
    tb_join(&t);
    for (int i = 0; i < N; i++) {
        assert_true(closed_by_broker(fds[i]));
        close(fds[i]);
    }
    tb_free(&t);
}

static int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* Out of descriptors: accept fails with EMFILE; the broker pauses the
 * listener instead of spinning, and accepts the waiting clients once
 * descriptors are available again. */
static void test_accept_survives_fd_exhaustion(void **state)
{
    (void)state;
    enum { N = 8 };
    tb_t t;
    tb_start(&t, NULL);
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    /* our sockets first, so the broker cannot take their descriptors */
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fds[i] >= 0);
    }
    low = old;
    low.rlim_cur = (rlim_t)(count_open_fds() + 3); /* the broker gets 3 */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    for (int i = 0; i < N; i++) {
        cl_connect_fd(fds[i], t.port);
        send_request(fds[i], 18, 0, 100 + i, NULL);
    }
    usleep(50 * 1000); /* the broker runs out meanwhile */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    for (int i = 0; i < N; i++) {
        resp_t rs;
        assert_true(read_response(fds[i], 18, 0, &rs));
        assert_int_equal(rs.corr, 100 + i);
        resp_free(&rs);
        close(fds[i]);
    }
    assert_still_serves(t.port);
    tb_stop(&t);
}

static void test_sigterm_shutdown(void **state)
{
    (void)state;
    tb_t t;
    tb_start_with(&t, NULL, NULL, 0, NULL, true);
    int fd = cl_connect(t.port);
    resp_t rs;
    sh_api_versions_response_t av = api_versions_roundtrip(fd, 0, 1, NULL, 0, &rs);
    assert_int_equal(av.error_code, 0);
    resp_free(&rs);
    /* process-directed, so the loop thread's signalfd takes it */
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    tb_join(&t);
    assert_int_equal(t.run_err, SH_OK);
    assert_true(closed_by_broker(fd));
    close(fd);
    /* nothing listens any more */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_not_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(s);
    tb_free(&t);
}

static void test_dispatch_table_checked(void **state)
{
    (void)state;
    assert_true(sh_dispatch_check(sh_dispatch_table, sh_dispatch_count));
    const sh_api_entry_t bad_range[] = {{3, 0, 99, 0, sh_api_metadata_handle}};
    const sh_api_entry_t bad_order[] = {{18, 0, 4, 0, sh_api_versions_handle},
                                        {3, 0, 12, 0, sh_api_metadata_handle}};
    const sh_api_entry_t bad_adv[] = {{3, 2, 12, 3, sh_api_metadata_handle}};
    quiet_start();
    bool r1 = sh_dispatch_check(bad_range, 1);
    bool r2 = sh_dispatch_check(bad_order, 2);
    bool r3 = sh_dispatch_check(bad_adv, 1);
    quiet_end();
    assert_false(r1);
    assert_false(r2);
    assert_false(r3);
    assert_non_null(sh_dispatch_find(18));
    assert_non_null(sh_dispatch_find(3));
    assert_null(sh_dispatch_find(4)); /* LeaderAndIsr: never served */
    assert_null(sh_dispatch_find(-5));
}

int main(void)
{
    /* before any thread exists, so SIGTERM reaches only the signalfd */
    sh_loop_block_signals();
    sh_log_level = getenv("SH_TEST_VERBOSE") ? SH_LOG_DEBUG : SH_LOG_ERROR;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch_table_checked),
        cmocka_unit_test(test_api_versions),
        cmocka_unit_test(test_api_versions_too_new),
        cmocka_unit_test(test_api_versions_software_name),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_pipelined_in_order),
        cmocka_unit_test(test_split_frames),
        cmocka_unit_test(test_async_out_of_order),
        cmocka_unit_test(test_backpressure_inflight),
        cmocka_unit_test(test_backpressure_unsent_bytes),
        cmocka_unit_test(test_request_memory_budget),
        cmocka_unit_test(test_orphaned_requests),
        cmocka_unit_test(test_oversize_refused_before_body),
        cmocka_unit_test(test_malformed_header_isolated),
        cmocka_unit_test(test_malformed_body_closes),
        cmocka_unit_test(test_unsupported_api_and_version),
        cmocka_unit_test(test_half_close_gets_answers),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_accept_survives_fd_exhaustion),
        cmocka_unit_test(test_thousand_connections),
        cmocka_unit_test(test_sigterm_shutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
