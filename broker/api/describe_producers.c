/*
 * describe_producers.c - DescribeProducers (key 61), version 0 (the only
 * one; flexible), the admin view of idempotent producers
 * (kafka-transactions.sh describe-producers, Admin.describeProducers).
 *
 * Behaviour, per requested partition, in request order:
 *  - the partition must be led by this broker: UNKNOWN_TOPIC_OR_PARTITION
 *    for an unknown topic or partition index, NOT_LEADER_OR_FOLLOWER when
 *    another broker leads it, LEADER_NOT_AVAILABLE when its log is not
 *    open (what Produce answers too);
 *  - active_producers: every producer id the partition's state holds
 *    (those that wrote within producer.id.expiration.ms, including ones
 *    recovered from the snapshot and the WAL after a restart): its epoch,
 *    the last sequence of its newest batch (-1 when its current epoch has
 *    no batch yet, e.g. right after it was fenced here), the max timestamp
 *    of that batch (-1 if none); coordinator_epoch and
 *    current_txn_start_offset are -1 (no transactions).
 *  - error_message is null. throttle_time_ms is 0.
 *
 * Kafka differences: no ACL check (no authorizer yet); producers are
 * listed in no particular order (Kafka's is a map's too).
 *
 * Thread: loop thread, synchronous. Memory: request arena.
 */
#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_datapath.h"
#include "broker/sh_request.h"
#include "protocol/sh_proto.h"
#include "storage/sh_plog.h"
#include "storage/sh_producer_state.h"

typedef sh_describe_producers_response_topic_response_t topic_resp_t;
typedef sh_describe_producers_response_partition_response_t part_resp_t;
typedef sh_describe_producers_response_producer_state_t prod_t;

static sh_err_t fill_partition(sh_request_t *req, sh_plog_t *log, part_resp_t *pr)
{
    const sh_producer_state_t *s = sh_plog_producers(log);
    size_t n = sh_producer_state_count(s);
    pr->active_producers = n ? sh_arena_calloc(&req->arena, n, sizeof(prod_t)) : NULL;
    if (n && !pr->active_producers)
        return SH_E_NOMEM;
    size_t it = 0, k = 0;
    const sh_producer_entry_t *e;
    while (k < n && (e = sh_producer_state_next(s, &it))) {
        prod_t *p = &pr->active_producers[k++];
        p->producer_id = e->producer_id;
        p->producer_epoch = e->epoch;
        p->last_sequence = e->nbatches ? e->batches[e->nbatches - 1].last_seq : -1;
        p->last_timestamp = e->nbatches ? e->last_timestamp : -1;
        p->coordinator_epoch = -1;
        p->current_txn_start_offset = -1;
    }
    pr->active_producers_count = (int32_t)k;
    return SH_OK;
}

void sh_api_describe_producers_handle(sh_broker_t *b, sh_request_t *req)
{
    const sh_describe_producers_request_t *m = req->msg;
    sh_describe_producers_response_t resp;
    sh_describe_producers_response_init(&resp);
    resp.throttle_time_ms = 0;
    int32_t nt = m->topics_count > 0 ? m->topics_count : 0;
    resp.topics = nt ? sh_arena_calloc(&req->arena, (size_t)nt, sizeof(topic_resp_t)) : NULL;
    if (nt && !resp.topics)
        goto nomem;
    resp.topics_count = nt;
    for (int32_t i = 0; i < nt; i++) {
        const sh_describe_producers_request_topic_request_t *tq = &m->topics[i];
        topic_resp_t *tr = &resp.topics[i];
        int32_t np = tq->partition_indexes_count > 0 ? tq->partition_indexes_count : 0;
        tr->name = tq->name;
        tr->partitions = np ? sh_arena_calloc(&req->arena, (size_t)np, sizeof(part_resp_t))
                            : NULL;
        if (np && !tr->partitions)
            goto nomem;
        tr->partitions_count = np;
        for (int32_t j = 0; j < np; j++) {
            part_resp_t *pr = &tr->partitions[j];
            pr->partition_index = tq->partition_indexes[j];
            pr->error_message = SH_SLICE_NULL;
            sh_err_t err = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
            sh_plog_t *log = b->datapath ? sh_datapath_partition(b->datapath, tq->name,
                                                                 pr->partition_index, NULL,
                                                                 &err)
                                         : NULL;
            if (!log) {
                pr->error_code = (int16_t)sh_err_wire(err);
                continue;
            }
            if (fill_partition(req, log, pr) != SH_OK)
                goto nomem;
            pr->error_code = 0;
        }
    }
    sh_request_respond(req, &resp);
    return;
nomem:
    sh_request_fail(req, "out of memory");
}
