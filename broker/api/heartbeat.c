/*
 * heartbeat.c - Heartbeat (key 12), versions 0-4.
 *
 * Behaviour (as Kafka): a valid heartbeat restarts the member's session
 * timer and is answered NONE in Stable and CompletingRebalance (members
 * may heartbeat while waiting to send SyncGroup), REBALANCE_IN_PROGRESS in
 * PreparingRebalance (the member must rejoin). Errors: UNKNOWN_MEMBER_ID
 * (unknown group or member, or the group is Empty), FENCED_INSTANCE_ID
 * (v3+ group.instance.id now held by another member id),
 * ILLEGAL_GENERATION, COORDINATOR_NOT_AVAILABLE, INVALID_GROUP_ID.
 *
 * Kafka differences: none known.
 *
 * Thread: loop thread. Memory: nothing kept.
 */
#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_group.h"
#include "broker/sh_request.h"

void sh_api_heartbeat_handle(sh_broker_t *b, sh_request_t *req)
{
    sh_heartbeat_response_t resp;
    sh_heartbeat_response_init(&resp);
    resp.throttle_time_ms = 0;
    resp.error_code = b->groups ? sh_group_heartbeat(b->groups, req->api_version, req->msg)
                                : SH_KERR_COORDINATOR_NOT_AVAILABLE;
    sh_request_respond(req, &resp);
}
