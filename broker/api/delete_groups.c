/*
 * delete_groups.c - DeleteGroups (key 42), versions 0-2.
 *
 * Behaviour (as Kafka): one result per distinct group id, in request
 * order. GROUP_ID_NOT_FOUND for groups the coordinator does not know,
 * NON_EMPTY_GROUP for groups with members, otherwise every committed
 * offset of the group is deleted (one transaction) and the group is
 * forgotten; the answer comes after the deletion is durable
 * (COORDINATOR_NOT_AVAILABLE if it failed, and the group stays). While
 * the deletion runs the group is Dead: joins and commits for it get
 * COORDINATOR_NOT_AVAILABLE and retry.
 *
 * Kafka differences: none known.
 *
 * Thread: loop thread; the deletion runs on the metadata worker. Memory:
 * request arena.
 */
#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_group.h"
#include "broker/sh_request.h"

void sh_api_delete_groups_handle(sh_broker_t *b, sh_request_t *req)
{
    if (!b->groups) {
        sh_request_fail(req, "no group coordinator");
        return;
    }
    sh_group_delete(b->groups, req->msg, &req->arena, sh_group_reply_request, req);
}
