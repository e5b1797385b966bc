/*
 * sync_group.c - SyncGroup (key 14), versions 0-5: the classic rebalance
 * protocol's assignment phase (broker/sh_group.c does the work).
 *
 * Behaviour (as Kafka):
 *  - in CompletingRebalance a member's SyncGroup waits for the leader's;
 *    the leader's assignment (bytes passed through untouched; members it
 *    does not name get an empty one) answers every waiting member and the
 *    group becomes Stable;
 *  - in Stable the member gets its current assignment at once;
 *  - UNKNOWN_MEMBER_ID (unknown group or member, or the group is Empty),
 *    FENCED_INSTANCE_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS
 *    (PreparingRebalance), INCONSISTENT_GROUP_PROTOCOL (v5: protocol type
 *    or name differ from the group's), COORDINATOR_NOT_AVAILABLE, and
 *    INVALID_GROUP_ID for an empty group id;
 *  - members of a new generation that send no SyncGroup within the
 *    rebalance timeout are removed and the group rebalances again.
 *
 * Kafka differences: none known; the assignment is not written anywhere
 * (membership is in memory), so the answers come without a storage round
 * trip.
 *
 * Thread: loop thread. Memory: the request arena; the coordinator copies
 * the assignments.
 */
#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_group.h"
#include "broker/sh_request.h"

void sh_api_sync_group_handle(sh_broker_t *b, sh_request_t *req)
{
    if (!b->groups) {
        sh_request_fail(req, "no group coordinator");
        return;
    }
    sh_group_sync(b->groups, req->api_version, req->msg, sh_group_reply_request, req);
}
