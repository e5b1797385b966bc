/*
 * sh_request.c - request lifetime and the finishing calls handlers use
 * (see sh_request.h for the contract).
 *
 * Thread: loop thread only.
 * Ownership: a request owns one reference to its frame block, its arena,
 * its encoded output and its holds. While its connection is open the
 * connection's queue frees it after the response is written; once
 * orphaned, the handler's finishing call frees it here.
 */
#include "broker/sh_request.h"

#include <stdint.h>
#include <stdlib.h>

#include "broker/sh_broker.h"
#include "broker/sh_conn.h"
#include "broker/sh_dispatch.h"
#include "common/sh_log.h"

/* Big enough for a typical decoded request plus its response scaffolding
 * in one chunk. */
#define REQUEST_ARENA_CHUNK 4096

sh_request_t *sh_request_new(sh_broker_t *b, sh_conn_t *c, sh_block_t *frame)
{
    sh_request_t *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->broker = b;
    req->conn = c;
    req->conn_id = c ? c->id : 0;
    req->frame = frame;
    req->received_ms = sh_loop_now_ms(b->loop);
    req->state = SH_REQUEST_PENDING;
    b->requests_live++;
    sh_arena_init(&req->arena, REQUEST_ARENA_CHUNK);
    sh_writer_init(&req->out);
    return req;
}

void sh_request_free(sh_request_t *req)
{
    if (!req)
        return;
    for (sh_request_hold_t *h = req->holds; h; h = h->next)
        sh_block_unref(h->block);
    sh_writer_fini(&req->out);
    sh_arena_fini(&req->arena);   /* the holds lived here */
    if (req->frame)
        sh_broker_frame_release(req->broker, req->frame);
    req->broker->requests_live--;
    free(req);
}

const char *sh_request_printable(sh_request_t *req, sh_slice_t s, size_t max)
{
    if (!s.ptr)
        return "";
    size_t n = s.len > max ? max : s.len;
    char *out = sh_arena_strndup(&req->arena, (const char *)s.ptr, n);
    if (!out)
        return "";
    /* client-controlled bytes must not break or forge log lines */
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f || *p == '"')
            *p = '?';
    return out;
}

const char *sh_request_client_id(sh_request_t *req)
{
    return sh_request_printable(req, req->header.client_id, 128);
}

static const char *api_name(const sh_request_t *req)
{
    return req->info ? req->info->name : "unknown API";
}

/* Mark finished; hand to the connection, or free if it is gone. */
static void request_finish(sh_request_t *req)
{
    req->state = SH_REQUEST_DONE;
    if (!req->conn) {
        sh_request_free(req);
        return;
    }
    sh_conn_request_done(req->conn, req);
}

static bool request_check_pending(sh_request_t *req, const char *what)
{
    if (req->state == SH_REQUEST_PENDING)
        return true;
    /* a handler finishing twice is a bug; refuse rather than corrupt */
    sh_log(SH_LOG_ERROR, "request",
           "%s called twice for %s v%d correlation id %d on conn=%llu", what,
           api_name(req), req->api_version, req->correlation_id,
           (unsigned long long)req->conn_id);
    return false;
}

void sh_request_respond_as(sh_request_t *req, int16_t body_version,
                           const void *response)
{
    if (!request_check_pending(req, "sh_request_respond"))
        return;
    if (!req->conn || req->conn->want_close) {
        /* nobody to answer: drop the response, keep the ordering logic */
        req->out_size = 0;
        request_finish(req);
        return;
    }
    sh_writer_t *w = &req->out;
    sh_writer_reset(w);
    sh_wire_put_i32(w, 0); /* frame size, patched below */
    sh_response_header_encode(w, sh_response_header_version(req->api_key, req->api_version),
                              req->correlation_id);
    req->info->response_encode(w, body_version, response);
    size_t size = sh_writer_size(w);
    if (w->err || size - 4 > (size_t)INT32_MAX) {
        sh_log(SH_LOG_ERROR, "request",
               "could not encode %s v%d response (correlation id %d) on conn=%llu: %s",
               api_name(req), body_version, req->correlation_id,
               (unsigned long long)req->conn_id,
               w->err ? "out of memory" : "response too large");
        sh_conn_close_soon(req->conn, "could not encode response");
        req->out_size = 0;
        request_finish(req);
        return;
    }
    sh_writer_patch_i32(w, 0, (int32_t)(size - 4));
    req->out_size = size;
    req->out_sent = 0;
    request_finish(req);
}

void sh_request_respond(sh_request_t *req, const void *response)
{
    sh_request_respond_as(req, req->api_version, response);
}

void sh_request_respond_none(sh_request_t *req)
{
    if (!request_check_pending(req, "sh_request_respond_none"))
        return;
    req->out_size = 0;
    request_finish(req);
}

void sh_request_fail(sh_request_t *req, const char *why)
{
    if (!request_check_pending(req, "sh_request_fail"))
        return;
    if (req->conn) {
        sh_conn_log(SH_LOG_WARN, req->conn,
                    "%s in %s v%d request (correlation id %d, client id \"%s\"), "
                    "closing connection", why, api_name(req), req->api_version,
                    req->correlation_id, sh_request_client_id(req));
        sh_conn_close_soon(req->conn, why);
    }
    req->out_size = 0;
    request_finish(req);
}

void sh_request_fail_decode(sh_request_t *req)
{
    if (req->conn)
        sh_conn_log(SH_LOG_WARN, req->conn,
                    "malformed %s v%d request body at byte %zu of %zu", api_name(req),
                    req->api_version, req->body.fail_at, req->frame ? req->frame->size : 0);
    sh_request_fail(req, "malformed request body");
}

sh_err_t sh_request_hold(sh_request_t *req, sh_block_t *block)
{
    sh_request_hold_t *h = sh_arena_alloc(&req->arena, sizeof(*h));
    if (!h)
        return SH_E_NOMEM;
    h->block = sh_block_ref(block);
    h->next = req->holds;
    req->holds = h;
    return SH_OK;
}
