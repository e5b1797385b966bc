/*
 * offset_delete.c - OffsetDelete (key 47), version 0.
 *
 * Behaviour (as Kafka): GROUP_ID_NOT_FOUND for a group the coordinator
 * does not know (or one being deleted); an Empty group may lose any of
 * its offsets; a group in use with the consumer protocol may lose only
 * offsets of topics none of its members subscribes to
 * (GROUP_SUBSCRIBED_TO_TOPIC for the others); any other group in use
 * answers NON_EMPTY_GROUP. Partitions of unknown topics get
 * UNKNOWN_TOPIC_OR_PARTITION. Deleting an offset that was never committed
 * is not an error. The deletion is one transaction in the metadata store,
 * answered after it is durable (COORDINATOR_NOT_AVAILABLE if it failed).
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

void sh_api_offset_delete_handle(sh_broker_t *b, sh_request_t *req)
{
    if (!b->groups) {
        sh_request_fail(req, "no group coordinator");
        return;
    }
    sh_group_offsets_delete(b->groups, req->msg, &req->arena, sh_group_reply_request, req);
}
