/*
 * fetch.c - Fetch (key 1): versions 4-17 (RecordBatch v2 only). v13+ name
 * topics by id (an unknown id: UNKNOWN_TOPIC_ID per partition); v15+ carry
 * replica_state and v17 a replica directory id, which consumers leave at
 * their defaults; the v16 node_endpoints hint is left out (it is tagged
 * and optional).
 *
 * Behaviour:
 *  - each partition is read from where its offset lives: the in-memory
 *    tail (whole batches, zero copy: the response splices the stored bytes
 *    in and holds their blocks until it is written), or an uploaded chunk
 *    read from the read cache or with one ranged GET of the object (the
 *    response starts at the batch holding the offset, again zero copy
 *    from the chunk's block). Stored bytes are returned unchanged.
 *  - limits: partition_max_bytes per partition and max_bytes in total, in
 *    whole batches, except that the first partition with data always gets
 *    at least one whole batch (KIP-74), so a batch larger than the limits
 *    never blocks a consumer. One chunk at most per partition per fetch.
 *  - long polling: when fewer than min_bytes are ready and no partition
 *    has an error, the request waits up to max_wait_ms; new durable data
 *    on any of its partitions (a watch on the partition log) re-reads, a
 *    loop timer ends the wait.
 *  - high_watermark is the durable offset (consumers never see what a
 *    crash could take back); last_stable_offset = high watermark (no
 *    transactions yet; isolation_level is accepted, and read_committed
 *    gets an empty aborted_transactions list instead of null);
 *    log_start_offset; preferred_read_replica -1.
 *  - errors per partition: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER,
 *    LEADER_NOT_AVAILABLE, OFFSET_OUT_OF_RANGE (below the log start or above
 *    the log end), FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH (v9+
 *    current_leader_epoch older / newer than ours), KAFKA_STORAGE_ERROR
 *    (an object read failed; clients retry). Errors carry hw, lso and log
 *    start -1 and empty records, as Kafka's do.
 *  - fetch sessions (KIP-227): declined, which Kafka allows. Sessionless
 *    requests (session_id 0, epoch -1) and requests for a new session
 *    (session_id 0, epoch 0) get a full response with session_id 0, so
 *    clients keep sending full requests; an unknown session_id gets
 *    FETCH_SESSION_ID_NOT_FOUND (70), session_id 0 with another epoch
 *    INVALID_FETCH_SESSION_EPOCH (71), both top-level with no topics.
 *  - replica_id (replica_state from v15) is ignored: there are no
 *    followers.
 *
 * Encoding: the generated codec holds one records slice per partition,
 * but a partition's answer is a chain of stored batches from different
 * frames. This handler therefore encodes its response itself (same
 * primitives, same field order as protocol/spec/fetch.spec; the unit test
 * decodes it with the generated decoder) and hands sh_request_respond a
 * copy of the API's codec entry whose encoder is fetch_encode.
 *
 * Thread: loop thread. Memory: the fetch context lives in the request
 * arena; chunk blocks are referenced by the context while it waits and by
 * the request (sh_request_hold) once the response is built.
 */
#include <inttypes.h>
#include <stddef.h>
#include <string.h>

#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_datapath.h"
#include "broker/sh_loop.h"
#include "broker/sh_request.h"
#include "common/sh_log.h"
#include "protocol/sh_proto.h"
#include "protocol/sh_record_batch.h"
#include "storage/sh_plog.h"
#include "storage/sh_segment.h"

#define FETCH_MAX_SLICES 1024  /* batches per partition per response */

typedef struct fetch_ctx fetch_ctx_t;

typedef struct fpart {
    fetch_ctx_t *ctx;
    int32_t topic;                 /* index into the request's topics */
    const sh_fetch_request_fetch_partition_t *rq;
    sh_plog_watch_t watch;

    /* the last evaluation */
    sh_err_t err;
    int64_t hw, lso, log_start;
    sh_slice_t *slices;            /* in the arena, `cap` entries */
    sh_block_t **blocks;           /* the block of each slice (borrowed or chunk) */
    int nslices, cap;
    size_t bytes;

    /* the chunk read for this partition, if any (one reference) */
    sh_block_t *chunk;
    char *chunk_key;
    uint64_t chunk_off;
    bool reading;
} fpart_t;

struct fetch_ctx {
    sh_request_t *req;
    sh_datapath_t *dp;
    const sh_fetch_request_t *m;
    fpart_t *parts;
    int nparts;
    int reads;                     /* chunk reads in flight */
    int64_t deadline;              /* monotonic ms */
    bool parked, done;
    sh_timer_t timer;
    sh_dp_waiter_t waiter;
};

/* ------------------------------------------------------------ response */

typedef struct fresp {
    int16_t error_code;
    int32_t session_id;
    fetch_ctx_t *ctx;              /* NULL: no topics (top-level error) */
} fresp_t;

static void put_records(sh_writer_t *w, bool compact, const fpart_t *fp)
{
    size_t len = fp->err ? 0 : fp->bytes;
    if (compact)
        sh_wire_put_uvarint(w, (uint64_t)len + 1);
    else
        sh_wire_put_i32(w, (int32_t)len);
    if (fp->err)
        return;
    for (int i = 0; i < fp->nslices; i++)
        sh_wire_put_ref(w, fp->slices[i]);
}

/* The codec entry's response_encode for Fetch: field order and presence
 * per version exactly as protocol/spec/fetch.spec. */
static void fetch_encode(sh_writer_t *w, int16_t v, const void *in)
{
    const fresp_t *r = in;
    bool compact = v >= 12;
    sh_wire_put_i32(w, 0); /* throttle_time_ms */
    if (v >= 7) {
        sh_wire_put_i16(w, r->error_code);
        sh_wire_put_i32(w, r->session_id);
    }
    const fetch_ctx_t *ctx = r->ctx;
    int32_t nt = ctx ? ctx->m->topics_count : 0;
    if (nt < 0)
        nt = 0;
    sh_wire_put_array_len(w, compact, nt);
    int k = 0;
    for (int32_t t = 0; t < nt; t++) {
        const sh_fetch_request_fetch_topic_t *rt = &ctx->m->topics[t];
        int32_t np = rt->partitions_count > 0 ? rt->partitions_count : 0;
        if (v <= 12)
            sh_wire_put_string(w, compact, rt->topic.ptr ? rt->topic : sh_slice_str(""));
        else
            sh_wire_put_uuid(w, rt->topic_id);
        sh_wire_put_array_len(w, compact, np);
        for (int32_t i = 0; i < np; i++, k++) {
            const fpart_t *fp = &ctx->parts[k];
            sh_wire_put_i32(w, fp->rq->partition);
            sh_wire_put_i16(w, sh_err_wire(fp->err));
            sh_wire_put_i64(w, fp->err ? -1 : fp->hw);
            sh_wire_put_i64(w, fp->err ? -1 : fp->lso);           /* v4+ */
            if (v >= 5)
                sh_wire_put_i64(w, fp->err ? -1 : fp->log_start);
            /* aborted_transactions: Kafka sends null under
             * read_uncommitted, a list under read_committed */
            sh_wire_put_array_len(w, compact, ctx->m->isolation_level == 1 ? 0 : -1);
            if (v >= 11)
                sh_wire_put_i32(w, -1); /* preferred_read_replica */
            put_records(w, compact, fp);
            if (compact)
                sh_wire_put_uvarint(w, 0); /* partition tags */
        }
        if (compact)
            sh_wire_put_uvarint(w, 0); /* topic tags */
    }
    if (compact)
        sh_wire_put_uvarint(w, 0); /* top-level tags */
}

static const sh_api_info_t *fetch_info(const sh_api_info_t *codec)
{
    static sh_api_info_t info;
    static bool ready;
    if (!ready) {
        info = *codec;
        info.response_encode = fetch_encode;
        ready = true;
    }
    return &info;
}

/* ---------------------------------------------------------------- reads */

static void fetch_eval(fetch_ctx_t *ctx);

static void part_reset(fpart_t *fp)
{
    fp->err = SH_OK;
    fp->hw = fp->lso = fp->log_start = -1;
    fp->nslices = 0;
    fp->bytes = 0;
}

static void chunk_drop(fpart_t *fp)
{
    if (fp->chunk)
        sh_block_unref(fp->chunk);
    fp->chunk = NULL;
    fp->chunk_key = NULL;
}

static void on_chunk(void *arg, sh_err_t err, sh_block_t *block)
{
    fpart_t *fp = arg;
    fetch_ctx_t *ctx = fp->ctx;
    fp->reading = false;
    if (err == SH_OK) {
        fp->chunk = sh_block_ref(block);
    } else {
        fp->err = err;
        fp->chunk_key = NULL;
    }
    if (--ctx->reads == 0 && !ctx->done)
        fetch_eval(ctx);
}

/* Batches of chunk bytes [pos, len) that fit `budget` (at least one when
 * min_one), as one slice. */
static size_t chunk_take(const uint8_t *data, size_t len, size_t pos, size_t budget, bool min_one)
{
    size_t end = pos;
    while (end + SH_RB_LOG_OVERHEAD <= len) {
        uint32_t bl = (uint32_t)data[end + 8] << 24 | (uint32_t)data[end + 9] << 16 |
                      (uint32_t)data[end + 10] << 8 | data[end + 11];
        size_t sz = (size_t)SH_RB_LOG_OVERHEAD + bl;
        if (bl > INT32_MAX || sz > len - end)
            break;
        if (end - pos + sz > budget && !(min_one && end == pos))
            break;
        end += sz;
    }
    return end - pos;
}

/* Read partition fp from an uploaded chunk. Returns bytes added. */
/* Room for n slices (arrays in the arena, grown only when a look needs
 * more: most partitions return a handful of batches, and a fetch may
 * name thousands of partitions). */
static bool part_room(fetch_ctx_t *ctx, fpart_t *fp, int n)
{
    if (n <= fp->cap)
        return true;
    sh_slice_t *s = sh_arena_alloc(&ctx->req->arena, (size_t)n * sizeof(*s));
    sh_block_t **b = sh_arena_alloc(&ctx->req->arena, (size_t)n * sizeof(*b));
    if (!s || !b)
        return false;
    fp->slices = s;
    fp->blocks = b;
    fp->cap = n;
    return true;
}

static size_t read_object(fetch_ctx_t *ctx, fpart_t *fp, const sh_plog_read_t *rd, size_t budget,
                          bool min_one)
{
    const sh_plog_chunk_loc_t *loc = &rd->chunk;
    if (fp->chunk && !(fp->chunk_key && strcmp(fp->chunk_key, loc->object_key) == 0 &&
                       fp->chunk_off == loc->byte_offset))
        chunk_drop(fp); /* the partition moved on to another chunk */
    if (!fp->chunk) {
        sh_cache_ref_t hit;
        fp->chunk_key = sh_arena_strndup(&ctx->req->arena, loc->object_key,
                                         strlen(loc->object_key));
        fp->chunk_off = loc->byte_offset;
        if (!fp->chunk_key) {
            fp->err = SH_E_NOMEM;
            return 0;
        }
        sh_err_t err = sh_datapath_chunk_read(ctx->dp, loc, &hit, on_chunk, fp);
        if (err == SH_E_AGAIN) {
            fp->reading = true;
            ctx->reads++;
            return 0;
        }
        if (err != SH_OK) {
            fp->err = err > 0 ? err : SH_KERR_KAFKA_STORAGE_ERROR;
            fp->chunk_key = NULL;
            return 0;
        }
        /* a hit may be a sub-range of a bigger cached block */
        fp->chunk = hit.block;
        if (hit.ptr != hit.block->data || hit.len != hit.block->size) {
            sh_block_t *b = sh_block_new(hit.len);
            if (!b) {
                chunk_drop(fp);
                fp->err = SH_E_NOMEM;
                return 0;
            }
            memcpy(b->data, hit.ptr, hit.len);
            chunk_drop(fp);
            fp->chunk = b;
            fp->chunk_key = sh_arena_strndup(&ctx->req->arena, loc->object_key,
                                             strlen(loc->object_key));
            fp->chunk_off = loc->byte_offset;
        }
    }
    const uint8_t *data = fp->chunk->data;
    size_t len = fp->chunk->size, pos = 0;
    sh_err_t err = sh_segment_chunk_find(data, len, fp->rq->fetch_offset, &pos);
    if (err == SH_E_NOTFOUND)
        return 0; /* cannot happen: the chunk holds the offset */
    if (err != SH_OK) {
        sh_log(SH_LOG_ERROR, "fetch", "chunk of \"%s\" at %" PRIu64 " is damaged at byte %zu",
               loc->object_key, loc->byte_offset, pos);
        fp->err = SH_KERR_KAFKA_STORAGE_ERROR;
        return 0;
    }
    size_t n = chunk_take(data, len, pos, budget, min_one);
    if (n == 0)
        return 0;
    if (!part_room(ctx, fp, 1)) {
        fp->err = SH_E_NOMEM;
        return 0;
    }
    fp->slices[0] = (sh_slice_t){data + pos, n};
    fp->blocks[0] = fp->chunk;
    fp->nslices = 1;
    fp->bytes = n;
    return n;
}

static sh_plog_t *part_log(fetch_ctx_t *ctx, fpart_t *fp, sh_err_t *err)
{
    const sh_fetch_request_fetch_topic_t *rt = &ctx->m->topics[fp->topic];
    sh_rpartition_t *rp = NULL;
    sh_plog_t *log;
    if (ctx->req->api_version >= 13) {
        if (!sh_registry_find_id(ctx->dp->registry, rt->topic_id)) {
            *err = SH_KERR_UNKNOWN_TOPIC_ID;
            return NULL;
        }
        log = sh_datapath_partition_id(ctx->dp, rt->topic_id, fp->rq->partition, &rp, err);
    } else
        log = sh_datapath_partition(ctx->dp, rt->topic, fp->rq->partition, &rp, err);
    if (!log)
        return NULL;
    /* KIP-320: a consumer with an older epoch must refresh metadata; a
     * newer one knows of a leader we are not yet */
    int32_t want = fp->rq->current_leader_epoch;
    int32_t have = sh_plog_leader_epoch(log);
    if (ctx->req->api_version >= 9 && want >= 0 && want != have) {
        *err = want < have ? SH_KERR_FENCED_LEADER_EPOCH : SH_KERR_UNKNOWN_LEADER_EPOCH;
        return NULL;
    }
    return log;
}

/* ------------------------------------------------------------ lifecycle */

static void fetch_unpark(fetch_ctx_t *ctx)
{
    for (int i = 0; i < ctx->nparts; i++)
        sh_plog_unwatch(&ctx->parts[i].watch);
    sh_loop_timer_cancel(ctx->req->broker->loop, &ctx->timer);
    if (ctx->dp)
        sh_datapath_waiter_remove(ctx->dp, &ctx->waiter);
    ctx->parked = false;
}

static void fetch_respond(fetch_ctx_t *ctx)
{
    sh_request_t *req = ctx->req;
    ctx->done = true;
    fetch_unpark(ctx);
    bool ok = true;
    for (int i = 0; i < ctx->nparts; i++) {
        fpart_t *fp = &ctx->parts[i];
        sh_block_t *last = NULL;
        for (int k = 0; k < fp->nslices && !fp->err; k++) {
            if (fp->blocks[k] == last)
                continue;
            last = fp->blocks[k];
            if (sh_request_hold(req, last) != SH_OK)
                ok = false;
        }
        chunk_drop(fp);
    }
    if (!ok) {
        sh_request_fail(req, "out of memory");
        return;
    }
    fresp_t r = {0, 0, ctx};
    req->info = fetch_info(req->info);
    sh_request_respond(req, &r);
}

static void on_wake(sh_plog_watch_t *w, void *arg)
{
    fetch_ctx_t *ctx = arg;
    (void)w;
    if (ctx->done || ctx->reads)
        return;
    fetch_unpark(ctx);
    fetch_eval(ctx);
}

static void on_timeout(sh_timer_t *t, void *arg)
{
    fetch_ctx_t *ctx = arg;
    (void)t;
    if (ctx->done)
        return;
    fetch_unpark(ctx);
    ctx->deadline = 0; /* answer with what the next look finds */
    if (!ctx->reads)
        fetch_eval(ctx);
}

static void on_stop(sh_dp_waiter_t *w)
{
    fetch_ctx_t *ctx = (fetch_ctx_t *)((char *)w - offsetof(fetch_ctx_t, waiter));
    if (ctx->done)
        return;
    fetch_unpark(ctx);
    ctx->deadline = 0;
    if (!ctx->reads)
        fetch_eval(ctx);
}

/* Look at every partition; answer, wait for chunk reads, or park. */
static void fetch_eval(fetch_ctx_t *ctx)
{
    const sh_fetch_request_t *m = ctx->m;
    size_t max_bytes = m->max_bytes > 0 ? (size_t)m->max_bytes : 0;
    size_t total = 0;
    bool any_error = false, have_data = false;

    for (int i = 0; i < ctx->nparts; i++) {
        fpart_t *fp = &ctx->parts[i];
        if (fp->reading)
            continue;
        sh_err_t keep = fp->err; /* a failed chunk read */
        part_reset(fp);
        if (keep == SH_KERR_KAFKA_STORAGE_ERROR) {
            fp->err = keep;
            any_error = true;
            continue;
        }
        sh_err_t err;
        sh_plog_t *log = part_log(ctx, fp, &err);
        if (!log) {
            fp->err = err;
            any_error = true;
            continue;
        }
        sh_plog_state_t st;
        sh_plog_state(log, &st);
        fp->hw = st.high_watermark;
        fp->lso = st.high_watermark;
        fp->log_start = st.log_start_offset;

        size_t pmax = fp->rq->partition_max_bytes > 0 ? (size_t)fp->rq->partition_max_bytes : 0;
        size_t left = max_bytes > total ? max_bytes - total : 0;
        size_t budget = pmax < left ? pmax : left;
        bool min_one = !have_data;
        sh_plog_slice_t sl[FETCH_MAX_SLICES];
        sh_plog_read_t rd;
        err = sh_plog_read(log, fp->rq->fetch_offset, budget, min_one, sl, FETCH_MAX_SLICES, &rd);
        if (err != SH_OK) {
            fp->err = err;
            any_error = true;
            continue;
        }
        size_t got = 0;
        if (rd.where == SH_PLOG_TAIL) {
            if (!part_room(ctx, fp, (int)rd.nslices)) {
                fp->err = SH_E_NOMEM;
                any_error = true;
                continue;
            }
            for (size_t k = 0; k < rd.nslices; k++) {
                fp->slices[k] = (sh_slice_t){sl[k].ptr, sl[k].len};
                fp->blocks[k] = sl[k].block;
            }
            fp->nslices = (int)rd.nslices;
            fp->bytes = got = rd.bytes;
        } else if (rd.where == SH_PLOG_OBJECT) {
            got = read_object(ctx, fp, &rd, budget, min_one);
            if (fp->err)
                any_error = true;
        }
        if (got) {
            have_data = true;
            total += got;
        }
    }
    if (ctx->reads > 0)
        return; /* on_chunk looks again when the last read lands */

    int64_t now = sh_loop_now_ms(ctx->req->broker->loop);
    if (any_error || total >= (size_t)(m->min_bytes > 0 ? m->min_bytes : 0) ||
        now >= ctx->deadline || !ctx->dp || ctx->dp->stopping ||
        sh_request_is_orphan(ctx->req)) {
        fetch_respond(ctx);
        return;
    }
    /* park until new data, the deadline or shutdown */
    for (int i = 0; i < ctx->nparts; i++) {
        fpart_t *fp = &ctx->parts[i];
        sh_err_t err;
        sh_plog_t *log = part_log(ctx, fp, &err);
        if (log)
            sh_plog_watch(log, &fp->watch, on_wake, ctx);
    }
    sh_loop_timer_arm_at(ctx->req->broker->loop, &ctx->timer, ctx->deadline);
    sh_datapath_waiter_add(ctx->dp, &ctx->waiter);
    ctx->parked = true;
}

/* ------------------------------------------------------------- handler */

void sh_api_fetch_handle(sh_broker_t *b, sh_request_t *req)
{
    const sh_fetch_request_t *m = req->msg;
    fetch_ctx_t *ctx = sh_arena_calloc(&req->arena, 1, sizeof(*ctx));
    if (!ctx)
        goto nomem;
    ctx->req = req;
    ctx->dp = b->datapath;
    ctx->m = m;
    sh_timer_init(&ctx->timer, on_timeout, ctx);
    ctx->waiter.finish = on_stop;

    /* Sessions are declined (see the top of the file). */
    if (req->api_version >= 7 && (m->session_id != 0 || (m->session_epoch != -1 &&
                                                          m->session_epoch != 0))) {
        fresp_t r = {m->session_id != 0 ? SH_KERR_FETCH_SESSION_ID_NOT_FOUND
                                        : SH_KERR_INVALID_FETCH_SESSION_EPOCH,
                     0, NULL};
        req->info = fetch_info(req->info);
        sh_request_respond(req, &r);
        return;
    }

    int32_t nt = m->topics_count > 0 ? m->topics_count : 0;
    for (int32_t t = 0; t < nt; t++)
        if (m->topics[t].partitions_count > 0)
            ctx->nparts += m->topics[t].partitions_count;
    if (ctx->nparts) {
        ctx->parts = sh_arena_calloc(&req->arena, (size_t)ctx->nparts, sizeof(*ctx->parts));
        if (!ctx->parts)
            goto nomem;
    }
    int k = 0;
    for (int32_t t = 0; t < nt; t++) {
        const sh_fetch_request_fetch_topic_t *rt = &m->topics[t];
        for (int32_t i = 0; i < rt->partitions_count; i++, k++) {
            fpart_t *fp = &ctx->parts[k];
            fp->ctx = ctx;
            fp->topic = t;
            fp->rq = &rt->partitions[i];
            part_reset(fp);
        }
    }
    int64_t wait = m->max_wait_ms > 0 ? m->max_wait_ms : 0;
    ctx->deadline = req->received_ms + wait;
    if (!ctx->dp) {
        for (int i = 0; i < ctx->nparts; i++)
            ctx->parts[i].err = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
        fetch_respond(ctx);
        return;
    }
    fetch_eval(ctx);
    return;
nomem:
    sh_request_fail(req, "out of memory");
}
