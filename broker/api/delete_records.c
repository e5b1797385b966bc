/*
 * delete_records.c - DeleteRecords (key 21): versions 0-2 (v1 is v0; v2 is
 * flexible). librdkafka and kafkajs send v1, the Java admin client v2.
 *
 * Behaviour, per partition, in request order:
 *  - offset -1 means the high watermark; any other offset below 0, or one
 *    above the high watermark, is OFFSET_OUT_OF_RANGE (as Kafka);
 *  - otherwise the partition's log start offset becomes max(current,
 *    offset), durably in the metadata store, before the answer; the answer
 *    carries the log start the store holds then as low_watermark (an
 *    offset at or below the current log start changes nothing and answers
 *    the current one). Whole chunks below it leave the chunk index and
 *    the store, and segment objects left without any live chunk are
 *    deleted right after (storage/sh_retention.h, docs/retention.md).
 *    The new log start may lie inside a stored batch or in data not yet
 *    uploaded: records below it are invisible from then on (Fetch below it
 *    is OFFSET_OUT_OF_RANGE, ListOffsets EARLIEST answers it) even though
 *    their bytes stay until their whole chunk goes, and a fetch at the log
 *    start gets the straddling batch whole, as Kafka returns it;
 *  - errors carry low_watermark -1: UNKNOWN_TOPIC_OR_PARTITION,
 *    NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, OFFSET_OUT_OF_RANGE,
 *    KAFKA_STORAGE_ERROR / REQUEST_TIMED_OUT when the metadata store
 *    failed (retriable; nothing moved).
 *
 * Kafka differences: timeout_ms is not used (Kafka waits up to it for
 * followers to catch up; there are none, and the answer waits only for
 * the metadata commit). A partition named twice is answered twice (Kafka
 * collapses duplicates; the larger offset wins either way). There is no
 * POLICY_VIOLATION: every topic has cleanup.policy=delete. Only the
 * leader's lease guards the move: the metadata write is not conditional
 * on the leader epoch (one broker leads every partition today).
 *
 * Thread: loop thread; the metadata write runs on the metadata worker.
 * Memory: the context and the response live in the request arena.
 */
#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_datapath.h"
#include "broker/sh_request.h"
#include "common/sh_log.h"
#include "protocol/sh_proto.h"
#include "storage/sh_plog.h"
#include "storage/sh_retention.h"

#define HIGH_WATERMARK (-1)

typedef sh_delete_records_response_delete_records_partition_result_t dresp_t;

typedef struct dr_ctx {
    sh_request_t *req;
    int pending;               /* advances in flight, +1 while submitting */
    sh_delete_records_response_t resp;
} dr_ctx_t;

typedef struct dr_part {
    dr_ctx_t *ctx;
    dresp_t *resp;
} dr_part_t;

static void dr_release(dr_ctx_t *ctx)
{
    if (--ctx->pending == 0)
        sh_request_respond(ctx->req, &ctx->resp);
}

static void on_advanced(void *arg, sh_err_t err, int64_t log_start)
{
    dr_part_t *dp = arg;
    if (err == SH_OK) {
        dp->resp->error_code = 0;
        dp->resp->low_watermark = log_start;
    } else {
        /* shutting down: another broker (or this one restarted) serves it */
        dp->resp->error_code = err == SH_E_CLOSED ? SH_KERR_NOT_LEADER_OR_FOLLOWER
                                                  : sh_err_wire(err);
        dp->resp->low_watermark = -1;
    }
    dr_release(dp->ctx);
}

/* Check one partition and start its advance; on an immediate answer the
 * response entry is filled and nothing is pending. */
static void dr_part(sh_broker_t *b, dr_ctx_t *ctx, sh_slice_t topic,
                    const sh_delete_records_request_delete_records_partition_t *rq, dresp_t *r)
{
    r->partition_index = rq->partition_index;
    r->low_watermark = -1;
    sh_datapath_t *dpath = b->datapath;
    if (!dpath || !dpath->retention) {
        r->error_code = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
        return;
    }
    sh_err_t err;
    sh_plog_t *log = sh_datapath_partition(dpath, topic, rq->partition_index, NULL, &err);
    if (!log) {
        r->error_code = sh_err_wire(err);
        return;
    }
    int64_t hw = sh_plog_high_watermark(log);
    int64_t offset = rq->offset == HIGH_WATERMARK ? hw : rq->offset;
    if (offset < 0 || offset > hw) {
        r->error_code = SH_KERR_OFFSET_OUT_OF_RANGE;
        return;
    }
    dr_part_t *dp = sh_arena_calloc(&ctx->req->arena, 1, sizeof(*dp));
    if (!dp) {
        r->error_code = sh_err_wire(SH_E_NOMEM);
        return;
    }
    dp->ctx = ctx;
    dp->resp = r;
    ctx->pending++;
    err = sh_retention_advance_start(dpath->retention, log, offset, on_advanced, dp);
    if (err != SH_OK) {
        ctx->pending--;
        r->error_code = err == SH_E_CLOSED ? SH_KERR_NOT_LEADER_OR_FOLLOWER : sh_err_wire(err);
    }
}

void sh_api_delete_records_handle(sh_broker_t *b, sh_request_t *req)
{
    const sh_delete_records_request_t *m = req->msg;
    dr_ctx_t *ctx = sh_arena_calloc(&req->arena, 1, sizeof(*ctx));
    if (!ctx)
        goto nomem;
    ctx->req = req;
    sh_delete_records_response_init(&ctx->resp);
    ctx->resp.throttle_time_ms = 0;
    int32_t nt = m->topics_count > 0 ? m->topics_count : 0;
    ctx->resp.topics = nt ? sh_arena_calloc(&req->arena, (size_t)nt, sizeof(*ctx->resp.topics))
                          : NULL;
    if (nt && !ctx->resp.topics)
        goto nomem;
    ctx->resp.topics_count = nt;
    /* allocate every entry first: an answer may only go out complete */
    for (int32_t t = 0; t < nt; t++) {
        const sh_delete_records_request_delete_records_topic_t *rt = &m->topics[t];
        sh_delete_records_response_delete_records_topic_result_t *tr = &ctx->resp.topics[t];
        int32_t np = rt->partitions_count > 0 ? rt->partitions_count : 0;
        tr->name = rt->name;
        tr->partitions = np ? sh_arena_calloc(&req->arena, (size_t)np, sizeof(dresp_t)) : NULL;
        if (np && !tr->partitions)
            goto nomem;
        tr->partitions_count = np;
    }
    ctx->pending = 1; /* held while submitting: no answer before the last start */
    for (int32_t t = 0; t < nt; t++) {
        const sh_delete_records_request_delete_records_topic_t *rt = &m->topics[t];
        for (int32_t i = 0; i < ctx->resp.topics[t].partitions_count; i++)
            dr_part(b, ctx, rt->name, &rt->partitions[i], &ctx->resp.topics[t].partitions[i]);
    }
    dr_release(ctx);
    return;
nomem:
    sh_request_fail(req, "out of memory");
}
