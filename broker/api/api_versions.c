/*
 * api_versions.c - ApiVersions (key 18), versions 0-4.
 *
 * Behaviour: answers with every row of the dispatch table (api key,
 * advertised min, max), so the broker advertises exactly what it serves,
 * and throttle_time_ms 0 (v1+). The response header is always v0, also
 * for the flexible v3/v4 bodies (KIP-511; the codec's
 * sh_response_header_version knows this).
 *
 * A version above 4 is not an error on the connection: clients open
 * with the newest version they know. Its body is not parsed; the reply
 * is a v0 body with error_code UNSUPPORTED_VERSION (35) and only our
 * ApiVersions entry, from which clients pick a version and retry.
 *
 * v3+: client_software_name and client_software_version must match
 * [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?; otherwise INVALID_REQUEST
 * (42) with no api keys (librdkafka then retries with v0).
 *
 * Kafka differences: no SupportedFeatures / FinalizedFeatures tags (we
 * have no feature flags such as metadata.version yet); no quota
 * throttling. Served before any authentication, as in Kafka.
 *
 * Thread: loop thread. Memory: the response lives in the request arena.
 */
#include <stdbool.h>

#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_conn.h"
#include "broker/sh_dispatch.h"
#include "broker/sh_request.h"
#include "common/sh_log.h"
#include "protocol/sh_proto.h"

static bool is_alnum(uint8_t ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* Kafka's client software name/version rule (see the header comment). */
static bool software_field_valid(sh_slice_t s)
{
    if (!s.ptr || s.len == 0)
        return false;
    if (!is_alnum(s.ptr[0]) || !is_alnum(s.ptr[s.len - 1]))
        return false;
    for (size_t i = 1; i + 1 < s.len; i++)
        if (!is_alnum(s.ptr[i]) && s.ptr[i] != '-' && s.ptr[i] != '.')
            return false;
    return true;
}

void sh_api_versions_handle(sh_broker_t *b, sh_request_t *req)
{
    sh_api_versions_response_t resp;
    sh_api_versions_response_init(&resp);
    resp.throttle_time_ms = 0;

    if (req->api_version > req->api->max_version) {
        sh_api_versions_response_api_version_t *self =
            sh_arena_alloc(&req->arena, sizeof(*self));
        if (!self) {
            sh_request_fail(req, "out of memory");
            return;
        }
        self->api_key = req->api->api_key;
        self->min_version = req->api->advertised_min;
        self->max_version = req->api->max_version;
        resp.error_code = SH_KERR_UNSUPPORTED_VERSION;
        resp.api_keys = self;
        resp.api_keys_count = 1;
        if (req->conn)
            sh_conn_log(SH_LOG_DEBUG, req->conn,
                        "ApiVersions v%d is newer than v%d, answering "
                        "UNSUPPORTED_VERSION", req->api_version, req->api->max_version);
        sh_request_respond_as(req, 0, &resp);
        return;
    }

    const sh_api_versions_request_t *m = req->msg;
    if (req->api_version >= 3 && (!software_field_valid(m->client_software_name) ||
                                  !software_field_valid(m->client_software_version))) {
        if (req->conn)
            sh_conn_log(SH_LOG_INFO, req->conn,
                        "invalid client software name \"%s\" or version \"%s\" "
                        "in ApiVersions v%d, answering INVALID_REQUEST",
                        sh_request_printable(req, m->client_software_name, 64),
                        sh_request_printable(req, m->client_software_version, 64),
                        req->api_version);
        resp.error_code = SH_KERR_INVALID_REQUEST;
        sh_request_respond(req, &resp);
        return;
    }

    sh_api_versions_response_api_version_t *keys =
        sh_arena_calloc(&req->arena, b->dispatch_count, sizeof(*keys));
    if (!keys) {
        sh_request_fail(req, "out of memory");
        return;
    }
    for (size_t i = 0; i < b->dispatch_count; i++) {
        keys[i].api_key = b->dispatch[i].api_key;
        keys[i].min_version = b->dispatch[i].advertised_min;
        keys[i].max_version = b->dispatch[i].max_version;
    }
    resp.error_code = 0;
    resp.api_keys = keys;
    resp.api_keys_count = (int32_t)b->dispatch_count;
    sh_request_respond(req, &resp);
}
