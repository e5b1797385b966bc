/*
 * list_offsets.c - ListOffsets (key 2): versions 1-10.
 *
 * Behaviour, per partition (timestamp field):
 *  - -2 EARLIEST: the log start offset;
 *  - -1 LATEST: the high watermark (= durable offset; also the last stable
 *    offset, so read_committed gets the same answer: no transactions yet);
 *  - -3 MAX_TIMESTAMP (v7+): the offset and timestamp of the record with
 *    the largest timestamp (the lowest such offset on ties);
 *  - -4 EARLIEST_LOCAL (v8+): the log start offset (every offset we keep
 *    is served by this broker, from the WAL tail or from objects);
 *  - -5 LATEST_TIERED (v9+): the last offset committed to object storage,
 *    or -1 when none is;
 *  - T >= 0: the first record (in offset order) whose timestamp is >= T,
 *    with that record's timestamp, as Kafka answers (record granularity:
 *    the batch is found from the batches' max timestamps, in the chunk
 *    index or the tail, then its records are walked, decompressing if
 *    needed; uploaded batches are read from the cache or the object
 *    store first, asynchronously). No such record: offset -1, timestamp -1
 *    and no error, as in Kafka.
 *  - leader_epoch (v4+): the partitionLeaderEpoch stored in the batch of
 *    the answer for timestamp lookups, the current leader epoch otherwise.
 *  - errors: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER,
 *    LEADER_NOT_AVAILABLE, FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH for
 *    a current_leader_epoch (v4+) older / newer than ours,
 *    KAFKA_STORAGE_ERROR when an object read failed.
 *
 * Kafka differences: timeout_ms (v10) is accepted; lookups never wait for
 * anything but our own object reads. v0 (several offsets per partition) is
 * not served (Kafka 4 removed it too).
 *
 * Thread: loop thread. Memory: the context and response live in the
 * request arena; chunk blocks are referenced while the lookup waits.
 */
#include <stddef.h>
#include <string.h>

#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_datapath.h"
#include "broker/sh_request.h"
#include "common/sh_endian.h"
#include "common/sh_log.h"
#include "protocol/sh_compress.h"
#include "protocol/sh_proto.h"
#include "protocol/sh_record_batch.h"
#include "storage/sh_plog.h"

#define TS_LATEST (-1)
#define TS_EARLIEST (-2)
#define TS_MAX (-3)
#define TS_EARLIEST_LOCAL (-4)
#define TS_LATEST_TIERED (-5)

typedef sh_list_offsets_response_list_offsets_partition_response_t lresp_t;
typedef struct lo_ctx lo_ctx_t;

typedef struct lo_part {
    lo_ctx_t *ctx;
    const sh_list_offsets_request_list_offsets_topic_t *rt;
    const sh_list_offsets_request_list_offsets_partition_t *rq;
    lresp_t *resp;
    bool done;
    sh_block_t *chunk;         /* the chunk read for this lookup (a reference) */
    sh_err_t read_err;
} lo_part_t;

struct lo_ctx {
    sh_request_t *req;
    sh_datapath_t *dp;
    lo_part_t *parts;
    int nparts;
    int reads;
    sh_list_offsets_response_t resp;
};

/* The record a lookup answers with, inside one stored batch: the first
 * at or above the log start (records below it are deleted, even when
 * their batch straddles it) whose timestamp is >= ts (max: ts is the
 * batch's max timestamp). When the records cannot be walked, the batch's
 * own offsets stand in. */
static void batch_answer(sh_slice_t batch, int64_t ts, int64_t log_start, lresp_t *r)
{
    sh_record_batch_t b;
    if (sh_record_batch_parse(&b, batch) != SH_OK) {
        r->error_code = SH_KERR_KAFKA_STORAGE_ERROR;
        return;
    }
    r->offset = b.base_offset > log_start ? b.base_offset : log_start;
    r->timestamp = b.max_timestamp;
    r->leader_epoch = b.partition_leader_epoch;
    sh_outbuf_t scratch;
    sh_outbuf_init_heap(&scratch);
    sh_record_batch_iter_t it;
    if (sh_record_batch_iter_init(&it, batch, &scratch, 0) == SH_OK) {
        sh_record_t rec;
        while (sh_record_batch_iter_next(&it, &rec)) {
            if (rec.offset >= log_start && rec.timestamp >= ts) {
                r->offset = rec.offset;
                r->timestamp = rec.timestamp;
                break;
            }
        }
    }
    sh_outbuf_fini(&scratch);
}

/* Among the batches of a chunk not wholly below the log start, the one
 * holding the answer: the first whose max timestamp is >= ts, or
 * (want_max) the first with the largest max timestamp. */
static bool chunk_pick(const uint8_t *data, size_t len, int64_t ts, bool want_max,
                       int64_t log_start, sh_slice_t *out)
{
    sh_slice_t rest = {data, len}, batch;
    bool found = false;
    int64_t best = INT64_MIN;
    while (sh_record_batch_next(&rest, &batch) == SH_OK) {
        if (batch.len < SH_RB_HEADER_SIZE)
            return found;
        int64_t last = (int64_t)sh_load_be64(batch.ptr + SH_RB_OFF_BASE_OFFSET) +
                       (int32_t)sh_load_be32(batch.ptr + SH_RB_OFF_LAST_OFFSET_DELTA);
        if (last < log_start)
            continue;
        int64_t mt = (int64_t)sh_load_be64(batch.ptr + SH_RB_OFF_MAX_TIMESTAMP);
        if (want_max) {
            if (!found || mt > best) {
                best = mt;
                *out = batch;
                found = true;
            }
        } else if (mt >= ts) {
            *out = batch;
            return true;
        }
    }
    return found;
}

static void lo_finish(lo_ctx_t *ctx)
{
    for (int i = 0; i < ctx->nparts; i++)
        if (ctx->parts[i].chunk)
            sh_block_unref(ctx->parts[i].chunk);
    sh_request_respond(ctx->req, &ctx->resp);
}

static void lo_eval(lo_ctx_t *ctx);

static void on_chunk(void *arg, sh_err_t err, sh_block_t *block)
{
    lo_part_t *lp = arg;
    if (err == SH_OK)
        lp->chunk = sh_block_ref(block);
    else
        lp->read_err = err;
    if (--lp->ctx->reads == 0)
        lo_eval(lp->ctx);
}

/* Answer one partition now, or start the chunk read it needs. */
static void lo_part(lo_ctx_t *ctx, lo_part_t *lp)
{
    lresp_t *r = lp->resp;
    int16_t v = ctx->req->api_version;
    sh_err_t err;
    sh_plog_t *log = sh_datapath_partition(ctx->dp, lp->rt->name, lp->rq->partition_index, NULL,
                                           &err);
    lp->done = true;
    r->offset = -1;
    r->timestamp = -1;
    r->leader_epoch = -1;
    if (!log) {
        r->error_code = sh_err_wire(err);
        return;
    }
    int32_t epoch = sh_plog_leader_epoch(log);
    int32_t want = lp->rq->current_leader_epoch;
    if (v >= 4 && want >= 0 && want != epoch) {
        r->error_code = want < epoch ? SH_KERR_FENCED_LEADER_EPOCH : SH_KERR_UNKNOWN_LEADER_EPOCH;
        return;
    }
    if (lp->read_err) {
        r->error_code = sh_err_wire(lp->read_err);
        return;
    }
    sh_plog_state_t st;
    sh_plog_state(log, &st);
    int64_t ts = lp->rq->timestamp;
    r->error_code = 0;
    switch (ts) {
    case TS_EARLIEST:
    case TS_EARLIEST_LOCAL:
        r->offset = st.log_start_offset;
        r->leader_epoch = epoch;
        return;
    case TS_LATEST:
        r->offset = st.high_watermark;
        r->leader_epoch = epoch;
        return;
    case TS_LATEST_TIERED:
        r->offset = st.committed_offset > st.log_start_offset ? st.committed_offset - 1 : -1;
        r->leader_epoch = r->offset >= 0 ? epoch : -1;
        return;
    default:
        break;
    }
    bool want_max = ts == TS_MAX;
    sh_plog_slice_t one;
    sh_plog_read_t rd;
    err = want_max ? sh_plog_find_max_time(log, &one, &rd) : sh_plog_find_time(log, ts, &one, &rd);
    if (err == SH_E_NOTFOUND)
        return; /* -1, -1: no record that late (or an empty log) */
    if (err != SH_OK) {
        r->error_code = sh_err_wire(err);
        return;
    }
    if (rd.where == SH_PLOG_TAIL) {
        int64_t target = want_max ? one.max_timestamp : ts;
        batch_answer((sh_slice_t){one.ptr, one.len}, target, st.log_start_offset, r);
        return;
    }
    if (!lp->chunk) {
        sh_cache_ref_t hit;
        err = sh_datapath_chunk_read(ctx->dp, &rd.chunk, &hit, on_chunk, lp);
        if (err == SH_E_AGAIN) {
            lp->done = false;
            ctx->reads++;
            return;
        }
        if (err != SH_OK) {
            r->error_code = sh_err_wire(err > 0 ? err : SH_KERR_KAFKA_STORAGE_ERROR);
            return;
        }
        /* keep only the asked range: copy a sub-range hit */
        if (hit.ptr == hit.block->data && hit.len == hit.block->size) {
            lp->chunk = hit.block;
        } else {
            lp->chunk = sh_block_new(hit.len);
            if (lp->chunk)
                memcpy(lp->chunk->data, hit.ptr, hit.len);
            sh_block_unref(hit.block);
            if (!lp->chunk) {
                r->error_code = sh_err_wire(SH_E_NOMEM);
                return;
            }
        }
    }
    sh_slice_t batch;
    if (!chunk_pick(lp->chunk->data, lp->chunk->size, ts, want_max, st.log_start_offset,
                    &batch)) {
        if (!want_max)
            return; /* only batches below the log start qualified: with
                     * timestamps out of order a later chunk might, which
                     * this lookup does not visit (docs/retention.md) */
        r->error_code = SH_KERR_KAFKA_STORAGE_ERROR;
        return;
    }
    int64_t target = want_max ? (int64_t)sh_load_be64(batch.ptr + SH_RB_OFF_MAX_TIMESTAMP) : ts;
    batch_answer(batch, target, st.log_start_offset, r);
}

/* (Re)look at every partition not yet answered; answer when none waits. */
static void lo_eval(lo_ctx_t *ctx)
{
    for (int i = 0; i < ctx->nparts; i++)
        if (!ctx->parts[i].done)
            lo_part(ctx, &ctx->parts[i]);
    if (ctx->reads == 0)
        lo_finish(ctx);
}

void sh_api_list_offsets_handle(sh_broker_t *b, sh_request_t *req)
{
    const sh_list_offsets_request_t *m = req->msg;
    lo_ctx_t *ctx = sh_arena_calloc(&req->arena, 1, sizeof(*ctx));
    if (!ctx)
        goto nomem;
    ctx->req = req;
    ctx->dp = b->datapath;
    sh_list_offsets_response_init(&ctx->resp);
    ctx->resp.throttle_time_ms = 0;
    int32_t nt = m->topics_count > 0 ? m->topics_count : 0;
    for (int32_t t = 0; t < nt; t++)
        if (m->topics[t].partitions_count > 0)
            ctx->nparts += m->topics[t].partitions_count;
    ctx->resp.topics = nt ? sh_arena_calloc(&req->arena, (size_t)nt, sizeof(*ctx->resp.topics))
                          : NULL;
    ctx->parts = ctx->nparts ? sh_arena_calloc(&req->arena, (size_t)ctx->nparts,
                                               sizeof(*ctx->parts))
                             : NULL;
    if ((nt && !ctx->resp.topics) || (ctx->nparts && !ctx->parts))
        goto nomem;
    ctx->resp.topics_count = nt;
    int k = 0;
    for (int32_t t = 0; t < nt; t++) {
        const sh_list_offsets_request_list_offsets_topic_t *rt = &m->topics[t];
        sh_list_offsets_response_list_offsets_topic_response_t *tr = &ctx->resp.topics[t];
        int32_t np = rt->partitions_count > 0 ? rt->partitions_count : 0;
        tr->name = rt->name;
        tr->partitions = np ? sh_arena_calloc(&req->arena, (size_t)np, sizeof(lresp_t)) : NULL;
        if (np && !tr->partitions)
            goto nomem;
        tr->partitions_count = np;
        for (int32_t i = 0; i < np; i++, k++) {
            lo_part_t *lp = &ctx->parts[k];
            lp->ctx = ctx;
            lp->rt = rt;
            lp->rq = &rt->partitions[i];
            lp->resp = &tr->partitions[i];
            lp->resp->partition_index = lp->rq->partition_index;
            if (!ctx->dp) {
                lp->resp->error_code = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
                lp->resp->offset = lp->resp->timestamp = -1;
                lp->resp->leader_epoch = -1;
                lp->done = true;
            }
        }
    }
    lo_eval(ctx);
    return;
nomem:
    sh_request_fail(req, "out of memory");
}
