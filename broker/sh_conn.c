/*
 * sh_conn.c - client connections: frame reading, dispatch, in-order
 * response writing, backpressure, idle timeout and close (see sh_conn.h).
 *
 * Thread: loop thread only.
 * Ownership: a connection owns its fd, read-ahead buffer, partial frame
 * block, iovec scratch and its requests; on close, requests whose handler
 * has not finished are orphaned (conn = NULL) and freed by the handler's
 * finishing call (sh_request.c). The broker list owns the connection.
 *
 * Re-entrancy rule: code below the io callback never frees the
 * connection; it sets want_close and the broker's before-sleep hook calls
 * sh_conn_service(), which closes. So a handler that fails a request
 * while we are still walking the read buffer leaves nothing dangling.
 */
#include "broker/sh_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "broker/sh_broker.h"
#include "broker/sh_dispatch.h"
#include "broker/sh_request.h"
#include "common/sh_endian.h"
#include "common/sh_log.h"

#define API_VERSIONS_KEY 18
/* smallest frame: api_key, api_version, correlation_id (header v0) */
#define MIN_FRAME 8
#define READ_ROUNDS 16
#define WRITE_ROUNDS 8

static void conn_on_io(sh_loop_io_t *io, uint32_t events);
static void conn_on_idle(sh_timer_t *t, void *arg);
static void conn_process_input(sh_conn_t *c);
static bool conn_flush_rounds(sh_conn_t *c);

static void format_peer(const struct sockaddr *sa, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(out, n, "%s:%d", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(out, n, "[%s]:%d", host, port);
    } else {
        snprintf(out, n, "unknown");
    }
}

sh_conn_t *sh_conn_new(sh_broker_t *b, int fd, int listener,
                       const struct sockaddr *peer, socklen_t peerlen)
{
    sh_conn_t *c = calloc(1, sizeof(*c));
    int one = 1;
    (void)peerlen;
    if (!c)
        goto fail;
    c->rbuf = malloc(SH_CONN_READ_AHEAD);
    if (!c->rbuf)
        goto fail;
    c->broker = b;
    c->fd = fd;
    c->listener = listener;
    c->id = ++b->next_conn_id;
    format_peer(peer, c->peer, sizeof(c->peer));
    /* responses are whole frames written at once; Nagle only adds delay */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sh_loop_io_init(&c->io, fd, conn_on_io, c);
    if (sh_loop_io_add(b->loop, &c->io, SH_LOOP_READ) != SH_OK)
        goto fail;
    sh_timer_init(&c->idle_timer, conn_on_idle, c);
    c->last_active_ms = sh_loop_now_ms(b->loop);
    if (b->idle_ms > 0 &&
        sh_loop_timer_arm(b->loop, &c->idle_timer, b->idle_ms) != SH_OK) {
        sh_loop_io_del(b->loop, &c->io);
        goto fail;
    }
    c->next = b->conns;
    if (b->conns)
        b->conns->prev = c;
    b->conns = c;
    b->nconns++;
    sh_conn_log(SH_LOG_DEBUG, c, "connection accepted on listener %s",
                b->cfg->listener[listener].name);
    return c;
fail:
    sh_log(SH_LOG_WARN, "conn", "could not set up accepted connection: out of memory");
    if (c) {
        free(c->rbuf);
        free(c);
    }
    close(fd);
    return NULL;
}

/* ----------------------------------------------------------- interest */

static bool conn_over_limits(const sh_conn_t *c)
{
    const sh_broker_t *b = c->broker;
    return c->inflight >= b->conn_max_inflight || c->unsent_bytes >= b->conn_max_unsent ||
           c->mem_wait;
}

static bool conn_has_ready_output(const sh_conn_t *c)
{
    return c->head && c->head->state == SH_REQUEST_DONE;
}

static void conn_update_interest(sh_conn_t *c)
{
    uint32_t ev = 0;
    if (!c->read_paused && !c->peer_closed && !c->want_close)
        ev |= SH_LOOP_READ;
    if (c->write_blocked && !c->want_close)
        ev |= SH_LOOP_WRITE;
    if (sh_loop_io_set(c->broker->loop, &c->io, ev) != SH_OK)
        sh_conn_close_soon(c, "event registration failed");
}

/* --------------------------------------------------------------- close */

void sh_conn_close_soon(sh_conn_t *c, const char *reason)
{
    if (c->want_close)
        return;
    c->want_close = true;
    c->close_reason = reason;
    sh_broker_conn_pending(c->broker, c);
}

void sh_conn_close_now(sh_conn_t *c, const char *reason)
{
    sh_broker_t *b = c->broker;
    sh_conn_log(SH_LOG_DEBUG, c, "connection closed: %s (%llu requests)",
                reason ? reason : "closed", (unsigned long long)c->requests);
    sh_loop_io_del(b->loop, &c->io);
    sh_loop_timer_cancel(b->loop, &c->idle_timer);
    close(c->fd);
    if (c->frame)
        sh_broker_frame_release(b, c->frame);
    sh_request_t *r = c->head;
    while (r) {
        sh_request_t *next = r->next;
        r->next = NULL;
        if (r->state == SH_REQUEST_DONE) {
            sh_request_free(r);
        } else {
            /* the handler still holds it and will free it when it finishes */
            r->conn = NULL;
        }
        r = next;
    }
    sh_broker_conn_unlink(b, c);
    free(c->rbuf);
    free(c->iov);
    free(c);
}

/* --------------------------------------------------------------- idle */

static void conn_on_idle(sh_timer_t *t, void *arg)
{
    sh_conn_t *c = arg;
    sh_broker_t *b = c->broker;
    int64_t now = sh_loop_now_ms(b->loop);
    int64_t idle_for = now - c->last_active_ms;
    (void)t;
    /* a request still being handled (say a long poll) is activity */
    if (c->inflight == 0 && idle_for >= b->idle_ms) {
        sh_conn_log(SH_LOG_INFO, c, "closing connection idle for %lld ms",
                    (long long)idle_for);
        sh_conn_close_soon(c, "idle");
        return;
    }
    int64_t wait = c->inflight ? b->idle_ms : b->idle_ms - idle_for;
    if (sh_loop_timer_arm(b->loop, &c->idle_timer, wait) != SH_OK)
        sh_conn_close_soon(c, "out of memory");
}

/* ------------------------------------------------------------ dispatch */

static void conn_dispatch_frame(sh_conn_t *c, sh_block_t *frame)
{
    sh_broker_t *b = c->broker;
    const uint8_t *d = frame->data;
    int16_t key = (int16_t)sh_load_be16(d);
    int16_t ver = (int16_t)sh_load_be16(d + 2);
    int32_t corr = (int32_t)sh_load_be32(d + 4);
    const sh_api_entry_t *api = sh_dispatch_lookup(b->dispatch, b->dispatch_count, key);
    const sh_api_info_t *info = sh_api_info(key);

    c->last_active_ms = sh_loop_now_ms(b->loop);
    if (!api || !info) {
        sh_conn_log(SH_LOG_WARN, c,
                    "unsupported API key %d%s%s (version %d, correlation id %d), "
                    "closing connection", key, info ? " " : "", info ? info->name : "",
                    ver, corr);
        sh_broker_frame_release(b, frame);
        sh_conn_close_soon(c, "unsupported API key");
        return;
    }
    /* ApiVersions is answered at any version (KIP-511): its handler replies
     * UNSUPPORTED_VERSION with what we serve. */
    if (ver < api->min_version || (ver > api->max_version && key != API_VERSIONS_KEY)) {
        sh_conn_log(SH_LOG_WARN, c,
                    "unsupported version %d of %s (served %d-%d, correlation "
                    "id %d), closing connection", ver, info->name,
                    api->min_version, api->max_version, corr);
        sh_broker_frame_release(b, frame);
        sh_conn_close_soon(c, "unsupported API version");
        return;
    }

    sh_request_t *req = sh_request_new(b, c, frame);
    if (!req) {
        sh_broker_frame_release(b, frame);
        sh_conn_log(SH_LOG_ERROR, c, "out of memory for a %s request, closing connection",
                    info->name);
        sh_conn_close_soon(c, "out of memory");
        return;
    }
    req->api = api;
    req->info = info;
    req->api_key = key;
    req->api_version = ver;
    req->correlation_id = corr;
    sh_reader_init(&req->body, frame->data, frame->size);
    sh_err_t err = sh_request_header_decode(&req->body, &req->header_version,
                                            &req->header);
    if (err != SH_OK || req->body.err) {
        sh_conn_log(SH_LOG_WARN, c,
                    "malformed request header (%s v%d, correlation id %d, "
                    "%zu bytes, failed at byte %zu), closing connection",
                    info->name, ver, corr, frame->size, req->body.fail_at);
        sh_request_free(req);
        sh_conn_close_soon(c, "malformed request header");
        return;
    }
    if (sh_log_level >= SH_LOG_DEBUG)
        sh_conn_log(SH_LOG_DEBUG, c, "request %s v%d correlation id %d client id \"%s\"",
                    info->name, ver, corr, sh_request_client_id(req));

    /* Decode the body here so every handler gets a checked struct. Only
     * an ApiVersions version beyond the codec's is left undecoded: its
     * handler answers from the header alone. */
    if (sh_api_version_known(info, ver)) {
        req->msg = sh_arena_alloc(&req->arena, info->request_size);
        if (!req->msg) {
            sh_conn_log(SH_LOG_ERROR, c, "out of memory for a %s request, closing connection",
                        info->name);
            sh_request_free(req);
            sh_conn_close_soon(c, "out of memory");
            return;
        }
        info->request_init(req->msg);
        err = info->request_decode(&req->body, &req->arena, ver, req->msg);
        if (err != SH_OK) {
            sh_conn_log(SH_LOG_WARN, c,
                        "malformed %s v%d request body (correlation id %d, client "
                        "id \"%s\", %zu bytes, failed at byte %zu: %s), closing "
                        "connection", info->name, ver, corr, sh_request_client_id(req),
                        frame->size, req->body.fail_at, sh_err_str(err));
            sh_request_free(req);
            sh_conn_close_soon(c, "malformed request body");
            return;
        }
    }

    if (c->tail)
        c->tail->next = req;
    else
        c->head = req;
    c->tail = req;
    c->inflight++;
    c->requests++;
    b->requests_total++;
    api->handler(b, req);
}

/* Consume buffered bytes: complete frames are dispatched, a partial one
 * gets its block. Stops when paused or closing. */
static void conn_process_input(sh_conn_t *c)
{
    sh_broker_t *b = c->broker;
    while (!c->want_close) {
        if (c->frame) {
            size_t want = c->frame->size - c->frame_got;
            size_t have = c->rlen - c->rpos;
            size_t n = want < have ? want : have;
            memcpy(c->frame->data + c->frame_got, c->rbuf + c->rpos, n);
            c->frame_got += n;
            c->rpos += n;
            if (c->frame_got < c->frame->size)
                break;
            sh_block_t *f = c->frame;
            c->frame = NULL;
            c->frame_got = 0;
            conn_dispatch_frame(c, f);
            continue;
        }
        if (conn_over_limits(c)) {
            /* stop reading until responses drain (sh_conn_service) */
            c->read_paused = true;
            conn_update_interest(c);
            break;
        }
        if (c->rlen - c->rpos < 4)
            break;
        int32_t size = (int32_t)sh_load_be32(c->rbuf + c->rpos);
        if (size < MIN_FRAME) {
            sh_conn_log(SH_LOG_WARN, c,
                        "invalid request size %d (minimum %d), closing connection",
                        size, MIN_FRAME);
            sh_conn_close_soon(c, "invalid request size");
            break;
        }
        if (size > b->max_request_bytes) {
            sh_conn_log(SH_LOG_WARN, c,
                        "request size %d exceeds socket.request.max.bytes (%d), "
                        "closing connection", size, b->max_request_bytes);
            sh_conn_close_soon(c, "request too large");
            break;
        }
        if (!sh_broker_frame_admit(b, c, (size_t)size)) {
            /* too many request bytes held broker-wide: wait for some to
             * be released (sh_broker_frame_release wakes us) */
            c->read_paused = true;
            conn_update_interest(c);
            break;
        }
        c->frame = sh_block_new((size_t)size);
        if (!c->frame) {
            b->req_bytes -= size;
            sh_conn_log(SH_LOG_ERROR, c,
                        "out of memory for a %d-byte request, closing connection", size);
            sh_conn_close_soon(c, "out of memory");
            break;
        }
        c->frame_got = 0;
        c->rpos += 4;
    }
    if (c->rpos == c->rlen)
        c->rpos = c->rlen = 0;
}

/* --------------------------------------------------------------- read */

static void conn_on_eof(sh_conn_t *c)
{
    c->peer_closed = true;
    /* Finish what was fully received, then close (a half-closed client
     * such as `nc -N` still gets its answers). A partial frame is lost. */
    if (c->frame) {
        sh_broker_frame_release(c->broker, c->frame);
        c->frame = NULL;
        c->frame_got = 0;
    }
    sh_broker_conn_pending(c->broker, c);
}

static void conn_read(sh_conn_t *c)
{
    for (int round = 0; round < READ_ROUNDS; round++) {
        if (c->read_paused || c->want_close || c->peer_closed)
            return;
        ssize_t n;
        bool direct = c->frame && c->rpos == c->rlen &&
                      c->frame->size - c->frame_got >= SH_CONN_READ_AHEAD / 2;
        if (direct) {
            n = read(c->fd, c->frame->data + c->frame_got,
                     c->frame->size - c->frame_got);
        } else {
            if (c->rpos > 0) {
                memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
                c->rlen -= c->rpos;
                c->rpos = 0;
            }
            if (c->rlen == SH_CONN_READ_AHEAD)
                return; /* cannot happen unless paused; be safe */
            n = read(c->fd, c->rbuf + c->rlen, SH_CONN_READ_AHEAD - c->rlen);
        }
        if (n > 0) {
            c->last_active_ms = sh_loop_now_ms(c->broker->loop);
            if (direct) {
                c->frame_got += (size_t)n;
                if (c->frame_got == c->frame->size) {
                    sh_block_t *f = c->frame;
                    c->frame = NULL;
                    c->frame_got = 0;
                    conn_dispatch_frame(c, f);
                }
            } else {
                c->rlen += (size_t)n;
            }
            conn_process_input(c);
            continue;
        }
        if (n == 0) {
            conn_on_eof(c);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            sh_conn_log(SH_LOG_INFO, c, "could not receive data: %s", strerror(errno));
            sh_conn_close_soon(c, "read error");
        }
        return;
    }
}

/* --------------------------------------------------------------- write */

static bool conn_iov_reserve(sh_conn_t *c, size_t n)
{
    if (n <= c->iov_cap)
        return true;
    size_t cap = c->iov_cap ? c->iov_cap : 64;
    while (cap < n)
        cap *= 2;
    struct iovec *v = realloc(c->iov, cap * sizeof(*v));
    if (!v)
        return false;
    c->iov = v;
    c->iov_cap = cap;
    return true;
}

/* Pop finished requests off the head once their bytes are written. */
static void conn_advance(sh_conn_t *c, size_t written)
{
    while (c->head && c->head->state == SH_REQUEST_DONE) {
        sh_request_t *r = c->head;
        size_t left = r->out_size - r->out_sent;
        if (left > written) {
            r->out_sent += written;
            c->unsent_bytes -= written;
            return;
        }
        written -= left;
        c->unsent_bytes -= left;
        c->head = r->next;
        if (!c->head)
            c->tail = NULL;
        c->inflight--;
        sh_request_free(r);
    }
}

/* Write as much finished output as the socket takes; sets write_blocked
 * when the socket is full (wait for writability). */
static void conn_flush(sh_conn_t *c)
{
    c->write_blocked = conn_flush_rounds(c);
}

static bool conn_flush_rounds(sh_conn_t *c)
{
    for (int round = 0; round < WRITE_ROUNDS; round++) {
        conn_advance(c, 0); /* drop leading no-response requests */
        size_t niov = 0;
        for (sh_request_t *r = c->head; r && r->state == SH_REQUEST_DONE; r = r->next) {
            size_t cnt = sh_writer_iov_count(&r->out);
            if (!conn_iov_reserve(c, niov + cnt)) {
                if (niov > 0)
                    break;
                sh_conn_log(SH_LOG_ERROR, c, "out of memory writing a response");
                sh_conn_close_soon(c, "out of memory");
                return false;
            }
            struct iovec *v = c->iov + niov;
            size_t got = sh_writer_iov(&r->out, v, cnt);
            /* skip what a previous partial write already sent */
            size_t skip = r->out_sent, k = 0;
            while (k < got && skip >= v[k].iov_len) {
                skip -= v[k].iov_len;
                k++;
            }
            if (k < got) {
                v[k].iov_base = (uint8_t *)v[k].iov_base + skip;
                v[k].iov_len -= skip;
            }
            if (k > 0)
                memmove(v, v + k, (got - k) * sizeof(*v));
            niov += got - k;
            if (niov >= IOV_MAX)
                break;
        }
        if (niov == 0)
            return false;
        ssize_t n = writev(c->fd, c->iov, (int)(niov < IOV_MAX ? niov : IOV_MAX));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return true;
            sh_conn_log(SH_LOG_INFO, c, "could not send data: %s", strerror(errno));
            sh_conn_close_soon(c, "write error");
            return false;
        }
        c->last_active_ms = sh_loop_now_ms(c->broker->loop);
        conn_advance(c, (size_t)n);
    }
    /* still more after several rounds: let others run, come back on EPOLLOUT */
    return conn_has_ready_output(c);
}

void sh_conn_request_done(sh_conn_t *c, sh_request_t *req)
{
    c->unsent_bytes += req->out_size - req->out_sent;
    sh_broker_conn_pending(c->broker, c);
}

void sh_conn_service(sh_conn_t *c)
{
    if (c->want_close) {
        sh_conn_close_now(c, c->close_reason);
        return;
    }
    conn_flush(c);
    if (c->want_close) {
        sh_conn_close_now(c, c->close_reason);
        return;
    }
    if (c->read_paused && !conn_over_limits(c)) {
        c->read_paused = false;
        /* frames already buffered would not wake epoll: handle them now;
         * requests they finish put c back on the to-do list */
        conn_process_input(c);
        if (c->want_close) {
            sh_conn_close_now(c, c->close_reason);
            return;
        }
    }
    if (c->peer_closed && !c->head) {
        sh_conn_close_now(c, "closed by client");
        return;
    }
    conn_update_interest(c);
}

static void conn_on_io(sh_loop_io_t *io, uint32_t events)
{
    sh_conn_t *c = io->arg;
    if (c->want_close)
        return;
    if (events & SH_LOOP_WRITE) {
        conn_flush(c);
        if (!c->want_close) {
            conn_update_interest(c);
            if (c->read_paused || c->peer_closed)
                sh_broker_conn_pending(c->broker, c);
        }
    }
    if (c->want_close)
        return;
    if (events & SH_LOOP_READ) {
        conn_read(c);
    } else if (events & SH_LOOP_ERROR) {
        /* hang-up or error without readable data (reading paused) */
        sh_conn_log(SH_LOG_DEBUG, c, "connection reset by peer");
        sh_conn_close_soon(c, "connection reset");
    }
}
