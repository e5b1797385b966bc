/*
 * describe_groups.c - DescribeGroups (key 15), versions 0-5.
 *
 * Behaviour (as Kafka before v6): one entry per requested group, in
 * order. A group the coordinator does not know is reported with state
 * "Dead", no error and no members. Known groups report their state
 * (Empty, PreparingRebalance, CompletingRebalance, Stable, Dead), protocol
 * type, the selected protocol as protocol_data (only once a generation has
 * chosen one: CompletingRebalance and Stable), and every member with its
 * client id, client host ("/address"), group.instance.id (v4+) and, in
 * CompletingRebalance and Stable, its metadata for the selected protocol
 * and its assignment (empty otherwise). Groups that only hold committed
 * offsets (including after a restart) are Empty. authorized_operations
 * (v3+): READ, DELETE and DESCRIBE when asked (there is no authorizer);
 * INT32_MIN otherwise.
 *
 * Kafka differences: none known.
 *
 * Thread: loop thread. Memory: request arena (member bytes are copied
 * when the reply is encoded).
 */
#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_group.h"
#include "broker/sh_request.h"

void sh_api_describe_groups_handle(sh_broker_t *b, sh_request_t *req)
{
    sh_describe_groups_response_t resp;
    sh_describe_groups_response_init(&resp);
    if (!b->groups) {
        sh_request_fail(req, "no group coordinator");
        return;
    }
    if (sh_group_describe(b->groups, req->api_version, req->msg, &req->arena, &resp) != SH_OK) {
        sh_request_fail(req, "out of memory");
        return;
    }
    resp.throttle_time_ms = 0;
    sh_request_respond(req, &resp);
}
