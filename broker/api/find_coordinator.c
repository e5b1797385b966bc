/*
 * find_coordinator.c - FindCoordinator (key 10), versions 0-6.
 *
 * Behaviour:
 *  - key_type 0 (group, and v0 which has no key type): the coordinator
 *    chosen by sh_group_coord_owner(), today always this broker, answered
 *    with the advertised host and port of the listener the request came
 *    in on (so the client reaches it the way it reached us).
 *  - key_type 1 (transaction): COORDINATOR_NOT_AVAILABLE, since this
 *    broker serves no transaction coordinator yet; clients treat it as
 *    retriable. Any other key type (2 = share groups): INVALID_REQUEST.
 *  - v0-3 ask for one key and answer in the top-level fields; v4+ ask for
 *    a batch (coordinator_keys) and get one entry per key, in order.
 *  - error_message is null on success.
 *
 * Kafka differences: Kafka hashes a group id to a partition of
 * __consumer_offsets and answers with that partition's leader; there is no
 * such topic here, the choice is one function.
 *
 * Thread: loop thread. Memory: request arena.
 */
#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_conn.h"
#include "broker/sh_group.h"
#include "broker/sh_request.h"
#include "protocol/sh_proto.h"

typedef struct {
    int32_t node_id;
    sh_slice_t host;
    int32_t port;
    int16_t error_code;
} coord_answer_t;

static coord_answer_t find_one(sh_broker_t *b, sh_request_t *req, int8_t key_type,
                               sh_slice_t key)
{
    coord_answer_t a = {.node_id = -1, .host = {(const uint8_t *)"", 0}, .port = -1};
    int16_t err = SH_KERR_COORDINATOR_NOT_AVAILABLE;
    int32_t node = b->groups ? sh_group_coord_owner(b->groups, key_type, key, &err) : -1;
    if (node < 0) {
        a.error_code = err;
        return a;
    }
    if (node != b->node_id) {
        /* another broker: a cluster will look its endpoint up here */
        a.error_code = SH_KERR_COORDINATOR_NOT_AVAILABLE;
        return a;
    }
    int li = req->conn ? req->conn->listener : 0;
    a.node_id = node;
    a.host = sh_slice_str(b->advertised[li].host);
    a.port = b->advertised[li].port;
    a.error_code = 0;
    return a;
}

void sh_api_find_coordinator_handle(sh_broker_t *b, sh_request_t *req)
{
    const sh_find_coordinator_request_t *m = req->msg;
    int16_t v = req->api_version;
    sh_find_coordinator_response_t resp;
    sh_find_coordinator_response_init(&resp);
    resp.throttle_time_ms = 0;
    int8_t key_type = v >= 1 ? m->key_type : 0;

    if (v < 4) {
        coord_answer_t a = find_one(b, req, key_type, m->key);
        resp.error_code = a.error_code;
        resp.error_message = a.error_code ? sh_slice_str(sh_err_str(a.error_code)) : SH_SLICE_NULL;
        resp.node_id = a.node_id;
        resp.host = a.host;
        resp.port = a.port;
        sh_request_respond(req, &resp);
        return;
    }
    int32_t n = m->coordinator_keys_count > 0 ? m->coordinator_keys_count : 0;
    resp.coordinators = n ? sh_arena_calloc(&req->arena, (size_t)n, sizeof(*resp.coordinators))
                          : NULL;
    if (n && !resp.coordinators) {
        sh_request_fail(req, "out of memory");
        return;
    }
    for (int32_t i = 0; i < n; i++) {
        sh_find_coordinator_response_coordinator_t *c = &resp.coordinators[i];
        coord_answer_t a = find_one(b, req, key_type, m->coordinator_keys[i]);
        c->key = m->coordinator_keys[i];
        c->node_id = a.node_id;
        c->host = a.host;
        c->port = a.port;
        c->error_code = a.error_code;
        c->error_message = a.error_code ? sh_slice_str(sh_err_str(a.error_code)) : SH_SLICE_NULL;
    }
    resp.coordinators_count = n;
    sh_request_respond(req, &resp);
}
