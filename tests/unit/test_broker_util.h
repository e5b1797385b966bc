/*
 * test_broker_util.h - helpers shared by the broker unit tests that drive
 * an in-process broker through real sockets: start a broker on the first
 * free loopback port of the test's own range and run it on a thread,
 * temporary data directories, a blocking client (connect with a receive
 * timeout, send, read whole frames) and request/response framing with the
 * generated codecs. Header-only, static functions; include after cmocka.h.
 *
 * Each test keeps its own port range (passed to tbu_listen) so tests
 * running side by side never collide. Broker state belongs to the loop
 * thread while it runs; inspect it only after tbu_join.
 */
#ifndef TEST_BROKER_UTIL_H
#define TEST_BROKER_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/sh_broker.h"
#include "common/sh_clock.h"
#include "common/sh_endian.h"
#include "meta/sh_meta.h"
#include "protocol/sh_proto.h"

/* ------------------------------------------------------------ broker */

typedef struct tbu_broker {
    sh_config_t cfg;
    sh_broker_t *b;
    pthread_t th;
    int port;
    char dir[64];
    int fd;             /* a client connection, for tests that keep one */
    sh_err_t run_err;   /* what sh_broker_run returned, after tbu_join */
} tbu_broker_t;

static void *tbu_thread(void *arg)
{
    tbu_broker_t *t = arg;
    t->run_err = sh_broker_run(t->b);
    return NULL;
}

/* Configure a broker over dir and bind it to the next free port of
 * [lo, hi] (round robin across calls, so a restart gets a fresh port).
 * defaults are the test's own settings, applied before overrides; both
 * NULL-terminated and optional. Does not start the loop: see tbu_run. */
static inline void tbu_listen(tbu_broker_t *t, const char *dir, int lo, int hi,
                       const char *const *defaults, const char *const *overrides)
{
    static int next_port;
    char err[512], kv[160];
    if (next_port < lo || next_port > hi)
        next_port = lo;
    memset(t, 0, sizeof(*t));
    t->fd = -1;
    snprintf(t->dir, sizeof(t->dir), "%s", dir);
    for (int attempt = 0; attempt <= hi - lo; attempt++) {
        int port = next_port;
        next_port = next_port == hi ? lo : next_port + 1;
        assert_int_equal(sh_config_init(&t->cfg), SH_OK);
        snprintf(kv, sizeof(kv), "log.dirs=%s", dir);
        assert_int_equal(sh_config_set_override(&t->cfg, kv, err, sizeof(err)), SH_OK);
        snprintf(kv, sizeof(kv), "listeners=PLAINTEXT://127.0.0.1:%d", port);
        assert_int_equal(sh_config_set_override(&t->cfg, kv, err, sizeof(err)), SH_OK);
        for (int i = 0; defaults && defaults[i]; i++)
            assert_int_equal(sh_config_set_override(&t->cfg, defaults[i], err, sizeof(err)),
                             SH_OK);
        for (int i = 0; overrides && overrides[i]; i++)
            assert_int_equal(sh_config_set_override(&t->cfg, overrides[i], err, sizeof(err)),
                             SH_OK);
        assert_int_equal(sh_config_finalize(&t->cfg, err, sizeof(err)), SH_OK);
        t->b = sh_broker_new(&t->cfg);
        assert_non_null(t->b);
        if (sh_broker_listen(t->b) == SH_OK) {
            t->port = sh_broker_port(t->b, 0);
            assert_int_equal(t->port, port);
            break;
        }
        /* port taken by someone else: try the next one */
        sh_broker_free(t->b);
        t->b = NULL;
        sh_config_fini(&t->cfg);
    }
    assert_non_null(t->b);
}

/* Run the broker's loop on its own thread. */
static inline void tbu_run(tbu_broker_t *t)
{
    assert_int_equal(pthread_create(&t->th, NULL, tbu_thread, t), 0);
}

static inline void tbu_join(tbu_broker_t *t)
{
    pthread_join(t->th, NULL);
}

/* Stop the loop, join it and free the broker; the directory stays. */
static inline void tbu_stop(tbu_broker_t *t)
{
    sh_broker_stop(t->b);
    tbu_join(t);
    sh_broker_free(t->b);
    sh_config_fini(&t->cfg);
}

/* ------------------------------------------------------- directories */

static int tbu_rm_one(const char *p, const struct stat *sb, int type, struct FTW *f)
{
    (void)sb;
    (void)type;
    (void)f;
    return remove(p);
}

/* rm -rf; tests only ever pass directories they created with mkdtemp. */
static inline void tbu_rmrf(const char *dir)
{
    nftw(dir, tbu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* mkdtemp of /tmp/sh-test-<tag>-XXXXXX into buf (at least 64 bytes). */
static inline char *tbu_mkdtemp(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "/tmp/sh-test-%s-XXXXXX", tag);
    assert_non_null(mkdtemp(buf));
    return buf;
}

/* Create a topic in the metadata store the broker over dir will open. */
static inline void tbu_mk_topic(const char *dir, const char *name, int32_t partitions,
                         const sh_meta_config_t *cfg, size_t ncfg)
{
    char url[128];
    sh_meta_t *m;
    snprintf(url, sizeof(url), "sqlite://%s/meta.db", dir);
    assert_int_equal(sh_meta_open(url, &m), SH_OK);
    sh_uuid_t id;
    assert_int_equal(sh_meta_topic_create(m, name, partitions, cfg, ncfg, sh_clock_wall_ms(), &id),
                     SH_OK);
    sh_meta_close(m);
}

/* ------------------------------------------------------------ client */

/* Connect fd to the loopback port; a missing answer fails after
 * timeout_s instead of hanging the test. */
static inline void tbu_connect_fd(int fd, int port, int timeout_s)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {.tv_sec = timeout_s};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static inline int tbu_connect_timeout(int port, int timeout_s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    tbu_connect_fd(fd, port, timeout_s);
    return fd;
}

static inline int tbu_connect(int port)
{
    return tbu_connect_timeout(port, 10);
}

static inline void tbu_send(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        assert_true(w > 0);
        b += w;
        n -= (size_t)w;
    }
}

/* False on EOF, reset or the receive timeout. */
static inline bool tbu_read_full(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = recv(fd, b, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        b += r;
        n -= (size_t)r;
    }
    return true;
}

/* One response frame (malloc'd), or NULL on EOF / reset / timeout. */
static inline uint8_t *tbu_read_frame(int fd, size_t *len)
{
    uint8_t hdr[4];
    if (!tbu_read_full(fd, hdr, 4))
        return NULL;
    uint32_t n = sh_load_be32(hdr);
    assert_true(n >= 4 && n < (64u << 20));
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    if (!tbu_read_full(fd, buf, n)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* Send body as one (key, ver) request frame. The writer is flattened, so
 * bodies referencing record batches (Produce) go out whole. */
static inline void tbu_send_request(int fd, const char *client_id, int16_t key, int16_t ver,
                             int32_t corr, const void *body)
{
    sh_writer_t w;
    sh_writer_init(&w);
    sh_request_header_t h;
    sh_request_header_init(&h);
    h.request_api_key = key;
    h.request_api_version = ver;
    h.correlation_id = corr;
    h.client_id = sh_slice_str(client_id);
    sh_wire_put_i32(&w, 0);
    sh_request_header_encode(&w, sh_request_header_version(key, ver), &h);
    sh_api_info(key)->request_encode(&w, ver, body);
    assert_int_equal(w.err, 0);
    size_t n = sh_writer_size(&w);
    uint8_t *flat = malloc(n);
    assert_non_null(flat);
    sh_writer_flatten(&w, flat);
    sh_store_be32(flat, (uint32_t)(n - 4));
    tbu_send(fd, flat, n);
    free(flat);
    sh_writer_fini(&w);
}

/* A response frame and its body, decoded in an arena of its own. */
typedef struct tbu_resp {
    uint8_t *frame;
    sh_reader_t r;
    sh_arena_t arena;
    void *body;
} tbu_resp_t;

/* Read one response, check its correlation id and decode its whole body
 * with the generated decoder. Free with tbu_resp_free. */
static inline void *tbu_recv_response(int fd, int16_t key, int16_t ver, int32_t corr,
                                      tbu_resp_t *out)
{
    size_t n = 0;
    out->frame = tbu_read_frame(fd, &n);
    assert_non_null(out->frame);
    sh_reader_init(&out->r, out->frame, n);
    assert_int_equal(sh_wire_get_i32(&out->r), corr);
    if (sh_response_header_version(key, ver) >= 1)
        sh_wire_skip_tagged_fields(&out->r);
    sh_arena_init(&out->arena, 4096);
    const sh_api_info_t *ai = sh_api_info(key);
    out->body = sh_arena_calloc(&out->arena, 1, ai->response_size);
    assert_int_equal(ai->response_decode(&out->r, &out->arena, ver, out->body), SH_OK);
    assert_int_equal(sh_reader_remaining(&out->r), 0);
    return out->body;
}

static inline void tbu_resp_free(tbu_resp_t *r)
{
    free(r->frame);
    sh_arena_fini(&r->arena);
}

#endif
