/*
 * produce.c - Produce (key 0): versions 3-11 served, advertised from 0.
 *
 * Versions: ApiVersions lists Produce 0-11 because librdkafka before
 * 2.11.1 turns gzip, snappy and lz4 on only when the range contains 0
 * (Kafka 4 does the same, KAFKA-18659). Requests for v0-v2 (the old
 * message formats) are refused the way Kafka 4 refuses them: the
 * dispatcher closes the connection (served range 3-11).
 *
 * Behaviour, per partition, in request order:
 *  - the partition must be led by this broker and its log open:
 *    UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER or
 *    LEADER_NOT_AVAILABLE otherwise (no auto-creation on Produce, as in
 *    Kafka: clients create through Metadata first);
 *  - the records field is validated with Kafka's checks and codes
 *    (exactly one RecordBatch v2, CRC, sizes, max.message.bytes, counts,
 *    record structure, timestamps; docs/record-batch.md), offsets are
 *    assigned by patching the batch in the request frame, and the same
 *    bytes go to the WAL and the partition's in-memory tail;
 *  - an error in one partition does not stop the others.
 * Acknowledgement:
 *  - acks=1 and acks=-1 (one copy: they mean the same here) answer once
 *    every partition's batch is durable: WAL fsync'd, or on a topic with
 *    streamhouse.durability=object, in a committed segment object;
 *  - acks=0 gets no response, but only after the batches reached the WAL
 *    queue; if any partition failed, the connection is closed instead, as
 *    Kafka does, so the producer notices and refreshes its metadata;
 *  - any other acks value: INVALID_REQUIRED_ACKS (21) for every partition.
 * When the WAL is full, appends wait (in order, per partition) for an
 * upload to free space, at most timeout_ms (30 s if the client sent 0 or
 * less); then REQUEST_TIMED_OUT (7), which every client retries. The
 * same timeout bounds the wait for an object commit.
 * Response: base_offset, log_append_time_ms (the broker's time on a
 * LogAppendTime topic, else -1), log_start_offset (v5+), and for errors
 * (v8+) error_message and, for a bad record, record_errors with its
 * index. throttle_time_ms is 0. v10+ leader hints stay at their defaults.
 *
 * Idempotent producers (producer id >= 0, docs/idempotence.md): the
 * partition log checks sequences and epochs with Kafka's codes
 * (OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH,
 * UNKNOWN_PRODUCER_ID); a retry of one of the producer's last five
 * batches is answered like the original, with its base offset, once that
 * is durable, and is not written again.
 *
 * Kafka differences: transactional batches get INVALID_TXN_STATE (48):
 * transactions are not served. Compressed batches are stored as sent,
 * never recompressed to the topic's compression.type.
 *
 * Thread: loop thread. Memory: the context, appends and response live in
 * the request arena; the WAL and the tail take their own references to
 * the request frame, whose batch bytes they share (zero copy).
 */
#include <string.h>

#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_datapath.h"
#include "broker/sh_loop.h"
#include "broker/sh_request.h"
#include "common/sh_log.h"
#include "protocol/sh_proto.h"
#include "storage/sh_plog.h"

#define PRODUCE_DEFAULT_TIMEOUT_MS 30000

typedef sh_produce_response_partition_produce_response_t presp_t;
typedef struct produce_ctx produce_ctx_t;

typedef struct produce_part {
    sh_plog_append_t a;
    produce_ctx_t *ctx;
    presp_t *resp;
} produce_part_t;

struct produce_ctx {
    sh_request_t *req;
    int16_t acks;
    int waiting;              /* appends whose done has not run */
    bool failed;              /* some partition got an error (acks=0) */
    produce_part_t **parts;   /* appended ones (for the timeout) */
    int nparts;
    sh_timer_t timer;
    sh_produce_response_t resp;
};

static void set_error(sh_request_t *req, presp_t *r, sh_err_t err, const char *why, int32_t idx)
{
    r->error_code = sh_err_wire(err);
    r->base_offset = -1;
    r->log_append_time_ms = -1;
    r->log_start_offset = -1;
    if (why && req->api_version >= 8) {
        r->error_message = sh_slice_str(why);
        if (idx >= 0) {
            sh_produce_response_batch_index_and_error_message_t *re =
                sh_arena_calloc(&req->arena, 1, sizeof(*re));
            if (re) {
                re->batch_index = idx;
                re->batch_index_error_message = sh_slice_str(why);
                r->record_errors = re;
                r->record_errors_count = 1;
            }
        }
    }
}

static void fill_ok(presp_t *r, const sh_plog_append_t *a)
{
    r->error_code = 0;
    r->base_offset = a->base_offset;
    r->log_append_time_ms = a->log_append_time_ms;
    r->log_start_offset = a->log_start_offset;
}

static void produce_finish(produce_ctx_t *ctx)
{
    sh_request_t *req = ctx->req;
    sh_loop_timer_cancel(req->broker->loop, &ctx->timer);
    if (ctx->acks == 0) {
        if (ctx->failed)
            sh_request_fail(req, "a partition refused an acks=0 produce");
        else
            sh_request_respond_none(req);
        return;
    }
    sh_request_respond(req, &ctx->resp);
}

static void part_done(sh_plog_append_t *a)
{
    produce_part_t *pp = a->arg;
    produce_ctx_t *ctx = pp->ctx;
    if (a->err) {
        set_error(ctx->req, pp->resp, a->err, NULL, -1);
        ctx->failed = true;
    } else {
        fill_ok(pp->resp, a);
    }
    if (--ctx->waiting == 0)
        produce_finish(ctx);
}

/* timeout_ms passed: whatever still waits gets REQUEST_TIMED_OUT. A batch
 * already in the WAL stays in the log (Kafka is equally unsure then). */
static void produce_timeout(sh_timer_t *t, void *arg)
{
    produce_ctx_t *ctx = arg;
    (void)t;
    for (int i = 0; i < ctx->nparts && ctx->waiting > 0; i++) {
        produce_part_t *pp = ctx->parts[i];
        if (!sh_plog_append_cancel(&pp->a))
            continue;
        set_error(ctx->req, pp->resp, SH_KERR_REQUEST_TIMED_OUT, NULL, -1);
        ctx->failed = true;
        ctx->waiting--;
    }
    if (ctx->waiting == 0)
        produce_finish(ctx);
}

void sh_api_produce_handle(sh_broker_t *b, sh_request_t *req)
{
    const sh_produce_request_t *m = req->msg;
    sh_datapath_t *dp = b->datapath;
    produce_ctx_t *ctx = sh_arena_calloc(&req->arena, 1, sizeof(*ctx));
    if (!ctx)
        goto nomem;
    ctx->req = req;
    ctx->acks = m->acks;
    sh_timer_init(&ctx->timer, produce_timeout, ctx);
    sh_produce_response_init(&ctx->resp);
    ctx->resp.throttle_time_ms = 0;
    bool acks_ok = m->acks == 0 || m->acks == 1 || m->acks == -1;

    int32_t nt = m->topic_data_count > 0 ? m->topic_data_count : 0;
    int total = 0;
    for (int32_t i = 0; i < nt; i++)
        if (m->topic_data[i].partition_data_count > 0)
            total += m->topic_data[i].partition_data_count;
    ctx->resp.responses =
        nt ? sh_arena_calloc(&req->arena, (size_t)nt, sizeof(*ctx->resp.responses)) : NULL;
    ctx->parts = total ? sh_arena_calloc(&req->arena, (size_t)total, sizeof(*ctx->parts)) : NULL;
    if ((nt && !ctx->resp.responses) || (total && !ctx->parts))
        goto nomem;
    ctx->resp.responses_count = nt;

    for (int32_t i = 0; i < nt; i++) {
        const sh_produce_request_topic_produce_data_t *td = &m->topic_data[i];
        sh_produce_response_topic_produce_response_t *tr = &ctx->resp.responses[i];
        int32_t np = td->partition_data_count > 0 ? td->partition_data_count : 0;
        tr->name = td->name;
        tr->partition_responses = np ? sh_arena_calloc(&req->arena, (size_t)np, sizeof(presp_t))
                                     : NULL;
        if (np && !tr->partition_responses)
            goto nomem;
        tr->partition_responses_count = np;
        for (int32_t j = 0; j < np; j++) {
            const sh_produce_request_partition_produce_data_t *pd = &td->partition_data[j];
            presp_t *r = &tr->partition_responses[j];
            sh_produce_response_leader_id_and_epoch_t none = {-1, -1};
            r->index = pd->index;
            r->current_leader = none;
            if (!acks_ok) {
                set_error(req, r, SH_KERR_INVALID_REQUIRED_ACKS, NULL, -1);
                ctx->failed = true;
                continue;
            }
            sh_err_t err = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
            sh_plog_t *log = dp ? sh_datapath_partition(dp, td->name, pd->index, NULL, &err)
                                : NULL;
            if (!log) {
                set_error(req, r, err, NULL, -1);
                ctx->failed = true;
                continue;
            }
            produce_part_t *pp = sh_arena_calloc(&req->arena, 1, sizeof(*pp));
            if (!pp) {
                /* appends already started hold this arena: answer this
                 * partition with an error rather than drop the request */
                set_error(req, r, SH_E_NOMEM, NULL, -1);
                ctx->failed = true;
                continue;
            }
            pp->ctx = ctx;
            pp->resp = r;
            pp->a.block = req->frame;
            pp->a.records = pd->records;
            pp->a.produce_version = req->api_version;
            pp->a.wait_durable = m->acks != 0;
            pp->a.done = part_done;
            pp->a.arg = pp;
            err = sh_plog_append_start(log, &pp->a);
            if (err != SH_OK) {
                set_error(req, r, err, pp->a.reason, pp->a.error_index);
                ctx->failed = true;
                sh_log(SH_LOG_DEBUG, "produce", "%s-%d: refused batch: %s (%s)",
                       sh_request_printable(req, td->name, 249), pd->index, sh_err_str(err),
                       pp->a.reason ? pp->a.reason : "");
                continue;
            }
            if (!pp->a.pending) {
                fill_ok(r, &pp->a);
                continue;
            }
            ctx->parts[ctx->nparts++] = pp;
            ctx->waiting++;
        }
    }
    if (ctx->waiting == 0) {
        produce_finish(ctx);
        return;
    }
    int64_t timeout = m->timeout_ms > 0 ? m->timeout_ms : PRODUCE_DEFAULT_TIMEOUT_MS;
    sh_loop_timer_arm(b->loop, &ctx->timer, timeout);
    return;
nomem:
    sh_request_fail(req, "out of memory");
}
