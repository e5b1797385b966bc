/*
 * join_group.c - JoinGroup (key 11), versions 0-9: the classic rebalance
 * protocol's join phase. The work is in broker/sh_group.c; this file
 * hands the request over and answers when the coordinator does.
 *
 * Behaviour (as Kafka's classic coordinator):
 *  - the answer usually comes later: when every member has rejoined, the
 *    rebalance timeout has passed, or group.initial.rebalance.delay.ms
 *    has passed for a group that was empty; the request stays parked
 *    until then (a closed connection leaves it orphaned; it is still
 *    answered, which then just frees it);
 *  - v4+ joins without a member id (and without group.instance.id) get
 *    MEMBER_ID_REQUIRED with a generated id to rejoin with (KIP-394);
 *  - v5+ static members (group.instance.id) that restart take over their
 *    old member id without a rebalance of the others; the old id is
 *    fenced (FENCED_INSTANCE_ID) (KIP-345);
 *  - the leader's answer lists every member with its metadata for the
 *    selected protocol; protocol metadata and assignments are passed
 *    through untouched, so any assignor works (eager, cooperative-sticky);
 *  - v9: skip_assignment is set only for a static leader that restarts
 *    into a Stable group with unchanged protocols (KIP-814), as in Kafka;
 *  - v0 has no rebalance timeout: the session timeout is used;
 *  - errors: INVALID_GROUP_ID (empty group id), INVALID_SESSION_TIMEOUT
 *    (outside group.min/max.session.timeout.ms), INCONSISTENT_GROUP_PROTOCOL
 *    (empty protocol list or type, or nothing in common with the group),
 *    UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, GROUP_MAX_SIZE_REACHED,
 *    COORDINATOR_NOT_AVAILABLE (group being deleted, broker stopping).
 *
 * Kafka differences: a JoinGroup whose protocols exceed 64 entries or
 * SH_GROUP_MEMBER_METADATA_MAX (1 MiB) of names and metadata gets
 * INVALID_REQUEST: the coordinator keeps every member's metadata in
 * memory. Membership is not persisted: after a broker restart every
 * member rejoins (UNKNOWN_MEMBER_ID), where Kafka would reload the last
 * generation from __consumer_offsets.
 *
 * Thread: loop thread. Memory: the request arena; the coordinator copies
 * what it keeps.
 */
#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_group.h"
#include "broker/sh_request.h"

void sh_api_join_group_handle(sh_broker_t *b, sh_request_t *req)
{
    sh_group_client_t client;
    if (!b->groups) {
        sh_request_fail(req, "no group coordinator");
        return;
    }
    sh_group_client_of(req, &client);
    sh_group_join(b->groups, &client, req->api_version, req->msg, sh_group_reply_request, req);
}
