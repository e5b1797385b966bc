/*
 * sh_request.h - the interface between the connection layer and API
 * handlers. Read this before adding an API.
 *
 * A request is created when a whole frame has been read and its header
 * decoded. The dispatcher has already checked that the (api_key,
 * api_version) pair is served (sh_dispatch.c), except for ApiVersions,
 * which is handed over at any version, and has decoded the body with the
 * generated decoder into req->msg (the API's request struct, e.g.
 * sh_metadata_request_t, in req->arena). A body that does not decode
 * closes the connection before the handler runs. The handler then:
 *
 *   1. reads req->msg; strings and bytes in it borrow req->frame and stay
 *      valid until the request is freed (take sh_block_ref(req->frame) to
 *      keep them longer),
 *   2. does its work, now or later (a WAL fsync, a database job, a fetch
 *      long-poll timer),
 *   3. finishes the request with exactly one of
 *          sh_request_respond(req, &response)   encode and queue the reply
 *          sh_request_respond_none(req)         no reply (acks=0 Produce)
 *          sh_request_fail(req, "why")          log and close the connection
 *      After that call the handler must not touch req again.
 *
 * Responses go out in request order on each connection, whatever order
 * handlers finish in: a finished request waits behind unfinished earlier
 * ones. If the connection closes while a handler is still working, the
 * request is orphaned (req->conn becomes NULL); the later finishing call
 * then just frees it. sh_request_is_orphan() lets a slow handler give up
 * early, but it must still finish the request.
 *
 * Thread: loop thread only. A worker that finishes work posts back to the
 * loop (sh_workq done callback) and finishes the request there.
 *
 * Memory: req->arena lives until the response bytes are written (or the
 * request is dropped), so the response struct and anything it points to
 * can live there. Bytes spliced into the response with sh_wire_put_ref
 * must stay valid as long; sh_request_hold() keeps a block referenced
 * until then.
 */
#ifndef SH_REQUEST_H
#define SH_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/sh_types.h"
#include "common/sh_arena.h"
#include "common/sh_slice.h"
#include "protocol/sh_proto.h"
#include "protocol/sh_wire.h"

typedef void (*sh_api_handler_fn)(sh_broker_t *b, sh_request_t *req);

typedef enum {
    SH_REQUEST_PENDING = 0,   /* handler working */
    SH_REQUEST_DONE,          /* response encoded (or none), waiting to go out */
} sh_request_state_t;

typedef struct sh_request_hold {
    sh_block_t *block;
    struct sh_request_hold *next;
} sh_request_hold_t;

struct sh_request {
    sh_broker_t *broker;
    sh_conn_t *conn;              /* NULL once the connection is gone */
    uint64_t conn_id;             /* for log lines, valid after orphaning */

    int16_t api_key;
    int16_t api_version;
    int32_t correlation_id;
    int16_t header_version;
    sh_request_header_t header;   /* client_id borrows frame */
    const sh_api_entry_t *api;    /* dispatch row */
    const sh_api_info_t *info;    /* codec entry: name, encoders */
    void *msg;                    /* decoded request body (in arena), or
                                   * NULL for ApiVersions above its range */

    sh_block_t *frame;            /* header + body bytes; one reference */
    sh_reader_t body;             /* positioned at the first body byte */
    sh_arena_t arena;             /* decoded body, response scaffolding */
    int64_t received_ms;          /* loop time when the frame completed */

    /* --- connection-layer state, not for handlers --- */
    sh_request_state_t state;
    sh_request_t *next;           /* in the connection's in-order queue */
    sh_writer_t out;              /* size + response header + body */
    size_t out_size;              /* total bytes of out */
    size_t out_sent;
    sh_request_hold_t *holds;
};

/* Encode response (a struct of the API's response type, e.g.
 * sh_metadata_response_t) with the request's version and queue it in
 * order. */
void sh_request_respond(sh_request_t *req, const void *response);

/* Same, but encode the body at `body_version` (the ApiVersions fallback
 * answers any too-high version with a v0 body). */
void sh_request_respond_as(sh_request_t *req, int16_t body_version,
                           const void *response);

/* Finish without a response (acks=0 Produce): the slot is released in
 * order and nothing is written. */
void sh_request_respond_none(sh_request_t *req);

/* Finish by closing the connection (client error), logging why with the
 * request's API, version, correlation id and connection. */
void sh_request_fail(sh_request_t *req, const char *why);

/* sh_request_fail for a body the decoder rejected; logs the byte offset. */
void sh_request_fail_decode(sh_request_t *req);

/* Keep block referenced until the response has been written (for bytes
 * spliced in with sh_wire_put_ref). Takes a new reference. */
sh_err_t sh_request_hold(sh_request_t *req, sh_block_t *block);

static inline bool sh_request_is_orphan(const sh_request_t *req)
{
    return req->conn == NULL;
}

/* Client id as a printable C string in the arena ("" if null). */
const char *sh_request_client_id(sh_request_t *req);
/* Any client string made safe for a log line (control bytes and quotes
 * replaced, at most max bytes), in the arena. */
const char *sh_request_printable(sh_request_t *req, sh_slice_t s, size_t max);

/* --- used by the connection layer --- */
sh_request_t *sh_request_new(sh_broker_t *b, sh_conn_t *c, sh_block_t *frame);
void sh_request_free(sh_request_t *req);

#endif
