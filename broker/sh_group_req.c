/*
 * sh_group_req.c - what the group API handlers share: answering a broker
 * request from a coordinator reply, and who the client is.
 *
 * Thread: loop thread. Ownership: strings go to the request's arena.
 */
#include <string.h>

#include "broker/sh_conn.h"
#include "broker/sh_group.h"
#include "broker/sh_request.h"

void sh_group_reply_request(void *req, const void *response)
{
    sh_request_respond(req, response);
}

/* "127.0.0.1:5000" -> "/127.0.0.1"; "[::1]:5000" -> "/::1"; an IPv4
 * client of a dual-stack listener ("[::ffff:127.0.0.1]:5000") shows as
 * its IPv4 address, which is what Kafka (Java) reports. */
static const char *client_host(sh_request_t *req)
{
    if (!req->conn)
        return "";
    const char *peer = req->conn->peer;
    const char *start = peer, *end = strrchr(peer, ':');
    if (peer[0] == '[') {
        start = peer + 1;
        end = strchr(start, ']');
    }
    if (!end || end < start)
        end = peer + strlen(peer);
    if ((size_t)(end - start) > 7 && strncmp(start, "::ffff:", 7) == 0 &&
        memchr(start + 7, '.', (size_t)(end - start - 7)))
        start += 7;
    size_t n = (size_t)(end - start);
    char *out = sh_arena_alloc(&req->arena, n + 2);
    if (!out)
        return "";
    out[0] = '/';
    memcpy(out + 1, start, n);
    out[n + 1] = '\0';
    return out;
}

void sh_group_client_of(sh_request_t *req, sh_group_client_t *out)
{
    sh_slice_t id = req->header.client_id;
    char *cid = id.ptr ? sh_arena_strndup(&req->arena, (const char *)id.ptr, id.len) : NULL;
    out->client_id = cid ? cid : "";
    out->client_host = client_host(req);
}
