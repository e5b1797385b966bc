/*
 * fuzz_broker_frames.c - libFuzzer target for the broker's frame reader,
 * header decode and dispatch: arbitrary byte streams go into a connection
 * of a real in-process broker (SQLite metadata store and file:// object
 * store in a temporary directory, on /dev/shm when it exists), through a
 * socketpair, and the broker's event loop is driven by hand for a bounded
 * number of iterations per input.
 *
 * Input: two control bytes, then the stream the client sends.
 *   byte 0  how the stream is cut into writes: 0 = all at once, else
 *           writes of 1 .. 2^(b % 16) bytes from a PRNG seeded with it,
 *           one loop iteration after each (frames and size prefixes split
 *           at arbitrary points, the read-ahead and direct-read paths)
 *   byte 1  knobs: bits 0-1 per-connection in-flight limit {64,1,2,8};
 *           bits 2-3 unsent-bytes limit {1 MiB,1,256,8192}; bits 4-5
 *           broker-wide request-bytes budget {config,1,64,4096} (these
 *           three drive the backpressure pause/resume paths); bit 6 the
 *           client half-closes after its last byte (EOF path) instead of
 *           the broker closing an idle connection; bit 7 DEBUG logging
 *           (formats every client string into a log line)
 * Every frame the broker will dispatch gets correlation id = its index in
 * the stream (the harness rewrites those four bytes), so responses can be
 * matched to requests whatever the fuzzer wrote there.
 *
 * Checks, beyond no crash, leak, hang or sanitizer report:
 *   - responses come in request order; the only request allowed to get
 *     no response is a Produce with acks=0;
 *   - every response decodes as the response type of its request, in the
 *     version the broker answers (ApiVersions above the served range: a
 *     v0 body), with the header version the protocol gives, consuming the
 *     whole frame, and re-encodes to exactly the bytes sent (so the
 *     hand-written Fetch encoder must match the generated one).
 * A response cut short at the end is accepted (the broker may close the
 * connection in the middle of a write after a later bad frame).
 *
 * State carries over between inputs (topics, groups, offsets), which
 * gives handlers something to find; the broker is recreated with an empty
 * directory every FZ_RECYCLE inputs so it stays small. A crash found late
 * in a run may therefore need the earlier inputs; most do not.
 *
 * After the last byte the loop runs until the broker closes the
 * connection or has nothing left to do, at most FZ_SETTLE_ITERS
 * iterations of up to FZ_SETTLE_WAIT_MS; a request still parked then (a
 * long-poll Fetch, a JoinGroup waiting for members) is orphaned when the
 * harness closes the connection, as when a client goes away.
 * SH_FUZZ_VERBOSE=1 sends the broker's DEBUG log and one line per input
 * (frames, response bytes, responses checked) to stderr.
 *
 * Seeds: tests/fuzz/corpus/fuzz_broker_frames/: stream-data-* (create a
 * topic, produce plain, zstd and idempotent batches, fetch, list offsets,
 * delete records, acks=0), stream-admin-* (create, describe, alter,
 * partitions, delete), stream-group-* (coordinator, join, sync, commit,
 * fetch offsets, leave, delete), client-* (each client's captured frames
 * from tests/vectors/requests/ in order), a 12 KB frame read directly into
 * its block, bad size prefixes, unknown keys and versions; plus sample
 * requests and fuzzer finds chosen to cover what the named seeds miss.
 *
 * Thread: libFuzzer's thread is the broker's loop thread; the broker's
 * own workers (WAL, metadata store, object store) run as in production.
 * Everything an input allocates is freed or owned by the broker.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker/sh_broker.h"
#include "broker/sh_conn.h"
#include "broker/sh_dispatch.h"
#include "common/sh_arena.h"
#include "common/sh_endian.h"
#include "common/sh_log.h"
#include "protocol/sh_proto.h"

#define FZ_MAX_REQUEST (1 << 20)  /* socket.request.max.bytes */
#define FZ_MAX_STREAM (1 << 20)
#define FZ_MAX_OUTPUT (16u << 20) /* response bytes kept for checking */
#define FZ_SETTLE_ITERS 60        /* loop iterations after the last byte */
#define FZ_SETTLE_WAIT_MS 2
#define FZ_RECYCLE 2000

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
    sh_config_t cfg;
    sh_broker_t *b;
    char dir[128];
    unsigned inputs; /* since the broker was created */
    int nullfd;
    bool verbose;    /* SH_FUZZ_VERBOSE set: broker log (DEBUG) and a
                      * line per input on stderr */
} fz = {.nullfd = -1};

static void fz_fail(const char *what, int frame, int16_t key, int16_t ver)
{
    fprintf(stderr, "fuzz_broker_frames: %s (frame %d, API key %d v%d)\n", what, frame, key, ver);
    abort();
}

#define FZ_CHECK(c, what, i, k, v)          \
    do {                                    \
        if (!(c))                           \
            fz_fail((what), (i), (k), (v)); \
    } while (0)

/* ---------------------------------------------------------- the broker */

static int fz_rm_one(const char *p, const struct stat *sb, int type, struct FTW *f)
{
    (void)sb;
    (void)type;
    (void)f;
    return remove(p);
}

static void fz_set(const char *kv)
{
    char err[512];
    if (sh_config_set_override(&fz.cfg, kv, err, sizeof(err)) != SH_OK) {
        fprintf(stderr, "fuzz_broker_frames: %s: %s\n", kv, err);
        abort();
    }
}

static void fz_broker_start(void)
{
    char err[512], kv[256];
    struct stat st;
    /* tmpfs when there is one: the WAL and SQLite fsync a lot */
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
                               access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fz.dir, sizeof(fz.dir), "%s/sh-fuzz-broker-XXXXXX", base);
    if (!mkdtemp(fz.dir)) {
        perror("fuzz_broker_frames: mkdtemp");
        abort();
    }
    if (sh_config_init(&fz.cfg) != SH_OK)
        abort();
    snprintf(kv, sizeof(kv), "log.dirs=%s", fz.dir);
    fz_set(kv);
    fz_set("listeners=PLAINTEXT://127.0.0.1:0");
    snprintf(kv, sizeof(kv), "socket.request.max.bytes=%d", FZ_MAX_REQUEST);
    fz_set(kv);
    /* small files, frequent uploads and retention: the data path's
     * background work runs during fuzzing too, and the directory stays
     * small */
    fz_set("streamhouse.wal.segment.bytes=65536");
    fz_set("streamhouse.wal.max.bytes=262144");
    fz_set("streamhouse.upload.bytes=65536");
    fz_set("streamhouse.upload.interval.ms=20");
    fz_set("streamhouse.cache.bytes=1048576");
    fz_set("log.retention.bytes=262144");
    fz_set("log.retention.check.interval.ms=500");
    /* joins complete without waiting for more members */
    fz_set("group.initial.rebalance.delay.ms=0");
    fz_set("group.min.session.timeout.ms=1");
    fz_set("message.max.bytes=1000000");
    if (sh_config_finalize(&fz.cfg, err, sizeof(err)) != SH_OK) {
        fprintf(stderr, "fuzz_broker_frames: %s\n", err);
        abort();
    }
    fz.b = sh_broker_new(&fz.cfg);
    if (!fz.b || sh_broker_listen(fz.b) != SH_OK) {
        fprintf(stderr, "fuzz_broker_frames: could not start the broker in %s\n", fz.dir);
        abort();
    }
    fz.inputs = 0;
}

static void fz_broker_stop(void)
{
    if (!fz.b)
        return;
    sh_broker_free(fz.b);
    fz.b = NULL;
    sh_config_fini(&fz.cfg);
    nftw(fz.dir, fz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void fz_atexit(void)
{
    fz_broker_stop();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* the broker writes to sockets the client may have closed */
    signal(SIGPIPE, SIG_IGN);
    fz.nullfd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    sh_log_set_fd(fz.nullfd);
    sh_log_level = SH_LOG_WARN;
    fz.verbose = getenv("SH_FUZZ_VERBOSE") != NULL;
    if (fz.verbose)
        sh_log_set_fd(2);
    fz_broker_start();
    atexit(fz_atexit);
    return 0;
}

/* ------------------------------------------------------------ the input */

typedef struct {
    size_t off; /* of the size prefix in the stream */
    int32_t size;
    int16_t key, ver;
} fz_frame_t;

typedef struct {
    uint8_t *p;
    size_t len, cap;
    bool overflow;
} fz_out_t;

static uint32_t fz_rand(uint32_t *s)
{
    /* xorshift32; never seeded with 0 */
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Split the stream into frames the way sh_conn.c does, and give each a
 * correlation id equal to its index. Returns the number of frames that
 * are complete in the stream. */
static int fz_frames(uint8_t *s, size_t n, fz_frame_t *fr)
{
    size_t pos = 0;
    int nf = 0;
    while (n - pos >= 4) {
        int32_t size = (int32_t)sh_load_be32(s + pos);
        if (size < 8 || size > FZ_MAX_REQUEST || (size_t)size > n - pos - 4)
            break;
        uint8_t *f = s + pos + 4;
        sh_store_be32(f + 4, (uint32_t)nf);
        fr[nf] = (fz_frame_t){pos, size, (int16_t)sh_load_be16(f), (int16_t)sh_load_be16(f + 2)};
        nf++;
        pos += 4 + (size_t)size;
    }
    return nf;
}

static void fz_drain(int fd, fz_out_t *o)
{
    for (;;) {
        if (o->len == o->cap) {
            size_t cap = o->cap ? o->cap * 2 : 65536;
            if (cap > FZ_MAX_OUTPUT) {
                /* keep reading so the broker is never blocked; stop
                 * keeping (and checking) */
                uint8_t junk[65536];
                ssize_t r = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
                if (r <= 0)
                    return;
                o->overflow = true;
                continue;
            }
            uint8_t *p = realloc(o->p, cap);
            if (!p)
                abort();
            o->p = p;
            o->cap = cap;
        }
        ssize_t r = recv(fd, o->p + o->len, o->cap - o->len, MSG_DONTWAIT);
        if (r <= 0)
            return;
        o->len += (size_t)r;
    }
}

/* The broker's connection has nothing left to do: no request queued, not
 * paused, nothing unread in the socket. A partial frame or size prefix may
 * be buffered: no more bytes are coming for it. */
static bool fz_conn_idle(int fd)
{
    sh_conn_t *c = fz.b->conns;
    int unread = 0;
    if (!c)
        return true;
    if (c->head || c->read_paused || c->want_close)
        return false;
    return ioctl(fd, FIONREAD, &unread) == 0 && unread == 0;
}

/* Is frame i a Produce with acks=0 (the one request without a reply)? */
static bool fz_is_acks0(const uint8_t *s, const fz_frame_t *f)
{
    if (f->key != SH_API_PRODUCE)
        return false;
    const sh_api_info_t *ai = sh_api_info(f->key);
    if (!sh_api_version_known(ai, f->ver))
        return false;
    sh_reader_t r;
    sh_reader_init(&r, s + f->off + 4, (size_t)f->size);
    sh_request_header_t h;
    int16_t hv;
    if (sh_request_header_decode(&r, &hv, &h) != SH_OK)
        return false;
    sh_arena_t a;
    sh_arena_init(&a, 4096);
    sh_produce_request_t m;
    bool acks0 = sh_produce_request_decode(&r, &a, f->ver, &m) == SH_OK && m.acks == 0;
    sh_arena_fini(&a);
    return acks0;
}

/* One response frame (after its size) for request frame i. */
static void fz_check_response(const uint8_t *p, size_t n, int i, const fz_frame_t *f)
{
    const sh_api_info_t *ai = sh_api_info(f->key);
    FZ_CHECK(ai != NULL, "a response to an unknown API", i, f->key, f->ver);
    int16_t bv = f->ver;
    const sh_api_entry_t *e = sh_dispatch_find(f->key);
    FZ_CHECK(e != NULL, "a response to an API that is not served", i, f->key, f->ver);
    if (f->key == SH_API_API_VERSIONS && f->ver > e->max_version)
        bv = 0; /* KIP-511: UNSUPPORTED_VERSION in a v0 body */
    FZ_CHECK(sh_api_version_known(ai, bv), "a response in a version the codec lacks", i,
             f->key, f->ver);
    int16_t hv = sh_response_header_version(f->key, f->ver);

    sh_reader_t r;
    sh_reader_init(&r, p, n);
    sh_response_header_t h;
    FZ_CHECK(sh_response_header_decode_version(&r, hv, &h) == SH_OK,
             "response header does not decode", i, f->key, f->ver);
    FZ_CHECK(h.correlation_id == i, "correlation id changed", i, f->key, f->ver);
    sh_arena_t a;
    sh_arena_init(&a, 4096);
    void *m = sh_arena_alloc(&a, ai->response_size);
    if (!m)
        abort();
    ai->response_init(m);
    FZ_CHECK(ai->response_decode(&r, &a, bv, m) == SH_OK, "response body does not decode", i,
             f->key, f->ver);
    FZ_CHECK(sh_reader_remaining(&r) == 0, "bytes left after the response body", i, f->key,
             f->ver);

    sh_writer_t w;
    sh_writer_init(&w);
    sh_response_header_encode_version(&w, hv, &h);
    ai->response_encode(&w, bv, m);
    FZ_CHECK(!w.err, "a decoded response does not encode", i, f->key, f->ver);
    size_t en = sh_writer_size(&w);
    uint8_t *eb = malloc(en ? en : 1);
    if (!eb)
        abort();
    sh_writer_flatten(&w, eb);
    if (en != n || memcmp(eb, p, n) != 0)
        fz_fail("response bytes differ from the codec's encoding of them", i, f->key, f->ver);
    free(eb);
    sh_writer_fini(&w);
    sh_arena_fini(&a);
}

/* Returns the number of responses checked. */
static int fz_check_output(const uint8_t *s, const fz_frame_t *fr, int nf, const fz_out_t *o)
{
    size_t pos = 0;
    int next = 0, checked = 0;
    while (o->len - pos >= 4) {
        int32_t size = (int32_t)sh_load_be32(o->p + pos);
        FZ_CHECK(size >= 4, "response frame shorter than its header", next, -1, -1);
        if ((size_t)size > o->len - pos - 4)
            break; /* cut short by a close */
        const uint8_t *body = o->p + pos + 4;
        int32_t corr = (int32_t)sh_load_be32(body);
        FZ_CHECK(corr >= next && corr < nf, "response out of order or for no request", next,
                 -1, -1);
        for (; next < corr; next++)
            FZ_CHECK(fz_is_acks0(s, &fr[next]), "request without a response", next,
                     fr[next].key, fr[next].ver);
        fz_check_response(body, (size_t)size, next, &fr[next]);
        checked++;
        next++;
        pos += 4 + (size_t)size;
    }
    return checked;
}

static const uint32_t fz_inflight[4] = {SH_CONN_MAX_INFLIGHT, 1, 2, 8};
static const size_t fz_unsent[4] = {SH_CONN_MAX_UNSENT_BYTES, 1, 256, 8192};
static const int64_t fz_budget[4] = {-2, 1, 64, 4096}; /* -2: the config's */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size - 2 > FZ_MAX_STREAM)
        return 0;
    if (fz.inputs++ >= FZ_RECYCLE) {
        fz_broker_stop();
        fz_broker_start();
    }
    sh_broker_t *b = fz.b;
    uint8_t cut = data[0], knobs = data[1];
    size_t n = size - 2;
    uint8_t *s = malloc(n ? n : 1);
    /* a frame takes at least 12 bytes */
    fz_frame_t *fr = malloc((n / 12 + 1) * sizeof(*fr));
    if (!s || !fr)
        abort();
    if (n)
        memcpy(s, data + 2, n);
    int nf = fz_frames(s, n, fr);

    b->conn_max_inflight = fz_inflight[knobs & 3];
    b->conn_max_unsent = fz_unsent[(knobs >> 2) & 3];
    b->req_bytes_max = fz_budget[(knobs >> 4) & 3] == -2 ? fz.cfg.queued_max_request_bytes
                                                         : fz_budget[(knobs >> 4) & 3];
    bool half_close = knobs & 0x40;
    sh_log_level = (knobs & 0x80) || fz.verbose ? SH_LOG_DEBUG : SH_LOG_WARN;

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    struct sockaddr_un peer = {.sun_family = AF_UNIX};
    if (!sh_conn_new(b, sv[0], 0, (struct sockaddr *)&peer, sizeof(peer))) {
        close(sv[1]);
        goto out_free;
    }

    fz_out_t o = {0};
    uint32_t rng = 0x9e3779b9u ^ cut;
    size_t maxw = cut ? (size_t)1 << (cut % 16) : n;
    size_t pos = 0;
    /* write, one loop iteration per write; stop early once the broker has
     * closed the connection */
    while (pos < n && b->nconns > 0) {
        size_t want = n - pos;
        if (maxw < want)
            want = 1 + fz_rand(&rng) % maxw;
        ssize_t w = send(sv[1], s + pos, want, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0)
            pos += (size_t)w;
        else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            break;
        sh_loop_run_once(b->loop, 0);
        fz_drain(sv[1], &o);
    }
    if (half_close)
        shutdown(sv[1], SHUT_WR);
    /* let the broker answer what it got: until it closes the connection,
     * or it is idle, or the iteration budget runs out (a parked Fetch or
     * JoinGroup is then orphaned, as when a client goes away) */
    for (int i = 0; i < FZ_SETTLE_ITERS && b->nconns > 0; i++) {
        if (!half_close && fz_conn_idle(sv[0]))
            break;
        sh_loop_run_once(b->loop, FZ_SETTLE_WAIT_MS);
        fz_drain(sv[1], &o);
    }
    if (b->nconns > 0)
        sh_conn_close_now(b->conns, "fuzz input done");
    fz_drain(sv[1], &o);
    close(sv[1]);

    int checked = o.overflow ? -1 : fz_check_output(s, fr, nf, &o);
    if (fz.verbose)
        fprintf(stderr, "fuzz_broker_frames: %zu bytes, %d frames, %zu response bytes, %d "
                        "responses checked\n", n, nf, o.len, checked);
    free(o.p);
out_free:
    b->conn_max_inflight = SH_CONN_MAX_INFLIGHT;
    b->conn_max_unsent = SH_CONN_MAX_UNSENT_BYTES;
    b->req_bytes_max = fz.cfg.queued_max_request_bytes;
    free(s);
    free(fr);
    return 0;
}
