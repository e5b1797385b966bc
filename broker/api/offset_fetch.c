/*
 * offset_fetch.c - OffsetFetch (key 9), versions 1-9.
 *
 * Behaviour (as Kafka):
 *  - answered from the metadata store (one read transaction per request,
 *    queued behind earlier commits, so a commit that was acknowledged is
 *    always seen); the group's membership state does not matter;
 *  - partitions without a committed offset answer offset -1, leader
 *    epoch -1, metadata "" and no error; unknown topics likewise;
 *  - v2+ null topics means every committed offset of the group;
 *  - v8+ asks for several groups at once, each with its own error;
 *  - store failures: COORDINATOR_NOT_AVAILABLE (v1 per partition, v2-7 at
 *    the top, v8+ per group);
 *  - require_stable (v7+) needs nothing: there are no transactional
 *    offset commits pending here; the v9 member id and epoch (for KIP-848
 *    groups) are not checked for classic groups, as in Kafka.
 *
 * Versions: 1-9 (librdkafka's group feature probe needs 1). v0 read
 * offsets kept in ZooKeeper in Kafka and is not served.
 *
 * Thread: loop thread; the read runs on the metadata worker. Memory: the
 * reply's arrays in the request arena.
 */
#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_group.h"
#include "broker/sh_request.h"

void sh_api_offset_fetch_handle(sh_broker_t *b, sh_request_t *req)
{
    if (!b->groups) {
        sh_request_fail(req, "no group coordinator");
        return;
    }
    sh_group_offsets_fetch(b->groups, req->api_version, req->msg, &req->arena,
                           sh_group_reply_request, req);
}
