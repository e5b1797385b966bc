/*
 * leave_group.c - LeaveGroup (key 13), versions 0-5.
 *
 * Behaviour (as Kafka): the member is removed at once and the group
 * rebalances (or, in PreparingRebalance, may complete its join phase
 * without it). v0-2 name one member and report in the top-level error;
 * v3+ name a batch of members, each by member id and/or group.instance.id
 * (an admin may remove a static member by instance id alone), each with
 * its own error: UNKNOWN_MEMBER_ID, or FENCED_INSTANCE_ID when the
 * instance id belongs to another member id. A member id handed out with
 * MEMBER_ID_REQUIRED and not used yet is simply forgotten. Top-level
 * errors: INVALID_GROUP_ID, COORDINATOR_NOT_AVAILABLE; an unknown group
 * answers UNKNOWN_MEMBER_ID for every member (v0-2: at the top).
 * The v5 reason is logged (debug).
 *
 * Kafka differences: none known.
 *
 * Thread: loop thread. Memory: the request arena.
 */
#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_group.h"
#include "broker/sh_request.h"

void sh_api_leave_group_handle(sh_broker_t *b, sh_request_t *req)
{
    sh_leave_group_response_t resp;
    sh_leave_group_response_init(&resp);
    if (!b->groups) {
        resp.error_code = SH_KERR_COORDINATOR_NOT_AVAILABLE;
    } else if (sh_group_leave(b->groups, req->api_version, req->msg, &req->arena, &resp) !=
               SH_OK) {
        sh_request_fail(req, "out of memory");
        return;
    }
    resp.throttle_time_ms = 0;
    sh_request_respond(req, &resp);
}
