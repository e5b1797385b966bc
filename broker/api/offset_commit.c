/*
 * offset_commit.c - OffsetCommit (key 8), versions 2-9.
 *
 * Behaviour (as Kafka's classic coordinator):
 *  - offsets are stored in the metadata store in one transaction per
 *    request (sh_meta_offsets_commit) and the answer is sent only after
 *    that transaction is durable; a store failure answers
 *    COORDINATOR_NOT_AVAILABLE (retriable) for every partition;
 *  - per partition: UNKNOWN_TOPIC_OR_PARTITION for a topic or partition
 *    that does not exist, then the group's verdict, then
 *    OFFSET_METADATA_TOO_LARGE when the metadata string is longer than
 *    offset.metadata.max.bytes; the other partitions are stored;
 *  - the group's verdict: generation -1 with no member id into an empty
 *    or unknown group is a commit outside group management (simple
 *    consumers, admin tools) and is accepted; otherwise the member must
 *    belong to the group (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID) with the
 *    current generation (ILLEGAL_GENERATION), and not during
 *    CompletingRebalance (REBALANCE_IN_PROGRESS); a member's valid commit
 *    also counts as a heartbeat;
 *  - committed leader epoch (v6+) and metadata (null stored as "") are
 *    kept with the commit time.
 *
 * Versions: 2-9 are served and advertised, as Kafka 4 does; librdkafka's
 * consumer-group feature probe needs 1-2 overlapping, which 2 satisfies.
 * Kafka differences: retention_time_ms (v2-4) is ignored (KIP-211
 * semantics: offsets expire by offsets.retention.minutes once the group is
 * empty); a metadata string is stored up to its first NUL byte.
 *
 * Thread: loop thread; the store work runs on the metadata worker.
 * Memory: the reply lives in the request arena.
 */
#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_group.h"
#include "broker/sh_request.h"

void sh_api_offset_commit_handle(sh_broker_t *b, sh_request_t *req)
{
    if (!b->groups) {
        sh_request_fail(req, "no group coordinator");
        return;
    }
    sh_group_offsets_commit(b->groups, req->api_version, req->msg, &req->arena,
                            sh_group_reply_request, req);
}
