/*
 * list_groups.c - ListGroups (key 16), versions 0-5.
 *
 * Behaviour: every group the coordinator knows, in group id order: groups
 * with members and groups that only hold committed offsets (Empty, also
 * after a restart); groups being deleted are left out. Each with its
 * protocol type ("" for groups that never had a member, e.g. only simple
 * consumers committed), state (v4+) and type "classic" (v5+). v4+
 * states_filter and v5+ types_filter keep only the groups whose state /
 * type is listed (case-insensitive); an empty filter keeps all.
 *
 * Kafka differences: after a restart an Empty group's protocol type is ""
 * (Kafka remembers "consumer"): membership is not persisted here. Admin
 * clients list such groups as consumer groups all the same.
 *
 * Thread: loop thread. Memory: request arena.
 */
#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_group.h"
#include "broker/sh_request.h"

void sh_api_list_groups_handle(sh_broker_t *b, sh_request_t *req)
{
    sh_list_groups_response_t resp;
    sh_list_groups_response_init(&resp);
    if (!b->groups) {
        resp.error_code = SH_KERR_COORDINATOR_NOT_AVAILABLE;
    } else if (sh_group_list(b->groups, req->api_version, req->msg, &req->arena, &resp) !=
               SH_OK) {
        sh_request_fail(req, "out of memory");
        return;
    }
    resp.throttle_time_ms = 0;
    sh_request_respond(req, &resp);
}
