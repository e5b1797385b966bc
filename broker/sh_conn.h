/*
 * sh_conn.h - one client connection: framing, ordered responses,
 * backpressure, idle timeout.
 *
 * States of the read side: waiting for a 4-byte size -> reading a frame
 * body into a block sized from it -> dispatch -> again. A size below 8 or
 * above socket.request.max.bytes closes the connection before any memory
 * is sized from it. Frames are read through a small read-ahead buffer so
 * that many pipelined small requests cost one read(2); a large frame's
 * remainder is read straight into its block.
 *
 * Requests join an in-order queue when dispatched. Finished requests at
 * the head of the queue are written with writev straight from their
 * encoded iovec chains; one not yet finished holds back everything behind
 * it. Reading pauses while the connection has too many requests in flight
 * or too many response bytes unsent, and resumes as they drain.
 *
 * Closing is deferred to the end of the loop iteration (the broker's
 * before-sleep hook) so that no caller up the stack is left holding a
 * freed connection; sh_conn_close_now() is for shutdown only.
 *
 * Thread: loop thread only. Ownership: the broker's connection list owns
 * each sh_conn_t; a connection owns its fd, its read-ahead buffer, any
 * partial frame block and its finished requests. Unfinished requests are
 * orphaned on close and freed by their handlers' finishing call.
 */
#ifndef SH_CONN_H
#define SH_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "broker/sh_loop.h"
#include "broker/sh_types.h"
#include "common/sh_slice.h"
#include "common/sh_timer.h"

/* Backpressure thresholds (per connection). */
#define SH_CONN_MAX_INFLIGHT 64
#define SH_CONN_MAX_UNSENT_BYTES (1u << 20)
#define SH_CONN_READ_AHEAD 16384

struct sh_conn {
    uint64_t id;
    sh_broker_t *broker;
    int fd;
    int listener;                  /* index in cfg->listener[] */
    char peer[64];                 /* "addr:port" */
    sh_loop_io_t io;
    sh_timer_t idle_timer;
    int64_t last_active_ms;

    /* read side */
    uint8_t *rbuf;                 /* SH_CONN_READ_AHEAD bytes */
    size_t rpos, rlen;             /* unconsumed bytes are rbuf[rpos..rlen) */
    sh_block_t *frame;             /* body being filled, or NULL */
    size_t frame_got;

    /* ordered requests, oldest first */
    sh_request_t *head, *tail;
    uint32_t inflight;             /* queued, finished or not */
    size_t unsent_bytes;           /* encoded, not yet written */

    bool read_paused;
    bool write_blocked;            /* socket full: waiting for EPOLLOUT */
    bool want_close;
    const char *close_reason;      /* static string, for the log line */
    bool peer_closed;              /* EOF seen: close once flushed */

    /* scratch for writev */
    struct iovec *iov;
    size_t iov_cap;

    /* broker bookkeeping */
    sh_conn_t *prev, *next;        /* all connections */
    sh_conn_t *pend_prev, *pend_next;
    bool pending;                  /* on the broker's to-do list */
    sh_conn_t *mem_prev, *mem_next;
    bool mem_wait;                 /* waiting for request-memory budget */

    uint64_t requests;             /* served, for the close log line */
};

/* Logging with the connection's id and peer in every line. */
#define sh_conn_log(level, c, fmt, ...)                                        \
    sh_log((level), "conn", "conn=%llu peer=%s: " fmt,                        \
           (unsigned long long)(c)->id, (c)->peer, ##__VA_ARGS__)

/* Take ownership of an accepted, non-blocking socket. NULL on failure
 * (fd is then closed). */
sh_conn_t *sh_conn_new(sh_broker_t *b, int fd, int listener,
                       const struct sockaddr *peer, socklen_t peerlen);

/* Queue a close for the end of this iteration. reason: static string. */
void sh_conn_close_soon(sh_conn_t *c, const char *reason);
/* Close and free at once; not from inside the connection's own callbacks. */
void sh_conn_close_now(sh_conn_t *c, const char *reason);

/* A request of c finished: schedule writing. */
void sh_conn_request_done(sh_conn_t *c, sh_request_t *req);

/* Before-sleep work for a connection on the broker's to-do list: write
 * what is ready, resume reading, or close. Called by the broker. */
void sh_conn_service(sh_conn_t *c);

#endif
