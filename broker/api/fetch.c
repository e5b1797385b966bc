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
 *  - fetch sessions (KIP-227), as Kafka serves them (the rules are in
 *    broker/sh_fetch_session.h): epoch -1 is a sessionless full fetch
 *    (session_id 0 in the answer); epoch 0 is a full fetch that creates a
 *    session (a non-zero random id in the answer, or 0 when the cache
 *    admits none); either closes the session a non-zero session_id names.
 *    Epochs 1, 2, ... (wrapping from INT32_MAX to 1) are incremental: the
 *    listed partitions are added or updated, forgotten_topics_data removes
 *    (by topic id from v13), every partition of the session is fetched
 *    (and watched while the fetch waits), and the answer holds only those
 *    with records, an error, or a high watermark or log start offset other
 *    than the one last sent; partitions that returned records move to the
 *    end of the session. Top-level errors, with no topics and session_id
 *    0: FETCH_SESSION_ID_NOT_FOUND (unknown id, or session_id 0 with an
 *    epoch above 0), INVALID_FETCH_SESSION_EPOCH, FETCH_SESSION_TOPIC_ID_ERROR
 *    (a session made with topic ids continued below v13 or the reverse);
 *    a session whose epoch moved while a fetch waited answers that fetch
 *    INVALID_FETCH_SESSION_EPOCH with its id. A session emptied by
 *    forgotten_topics_data is closed and the request served sessionless.
 *    Kafka differences: one cache instead of Kafka 3.8+'s eight shards
 *    (max.incremental.fetch.session.cache.slots is the whole cache's);
 *    there are no privileged (follower) sessions; the memory of all
 *    sessions is bounded (streamhouse.fetch.session.cache.bytes): an
 *    incremental request that would pass it closes its session and gets
 *    FETCH_SESSION_ID_NOT_FOUND; a fetch whose connection closed while it
 *    waited creates no session.
 *  - order: partitions are answered in request order, each request topic
 *    entry as one response topic entry (Kafka merges adjacent entries of
 *    one topic and moves partitions of unknown topics to the end; clients
 *    match by name or id, not by position); incremental answers follow
 *    session order, adjacent partitions of a topic in one entry, as Kafka.
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
 * the request (sh_request_hold) once the response is built. An
 * incremental fetch reads a copy of its session's partitions (in the
 * arena) and holds a reference on the session until it answers.
 */
#include <inttypes.h>
#include <stddef.h>
#include <string.h>

#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_datapath.h"
#include "broker/sh_fetch_session.h"
#include "broker/sh_loop.h"
#include "broker/sh_request.h"
#include "common/sh_log.h"
#include "protocol/sh_proto.h"
#include "protocol/sh_record_batch.h"
#include "storage/sh_plog.h"
#include "storage/sh_segment.h"

#define FETCH_MAX_SLICES 1024  /* batches per partition per response */

typedef struct fetch_ctx fetch_ctx_t;

/* What kind of answer the request gets (Kafka's fetch contexts). */
typedef enum {
    FETCH_SESSIONLESS = 0,  /* every partition of the request, session id 0 */
    FETCH_FULL,             /* the same, and a new session is made from it */
    FETCH_INCREMENTAL,      /* the session's partitions, changed ones sent */
} fetch_kind_t;

typedef struct fpart {
    fetch_ctx_t *ctx;
    /* Partitions in a row with the same tag share a topic entry in the
     * response: the request's topic index for full fetches, the session's
     * topic for incremental ones (only compared, never dereferenced). */
    uintptr_t tag;
    sh_slice_t topic;              /* name (v0-12): borrows the frame or the arena */
    sh_uuid_t topic_id;            /* v13+ */
    int32_t partition;
    sh_fetch_session_params_t rq;  /* what is fetched */
    sh_plog_watch_t watch;

    /* the last evaluation */
    sh_err_t err;
    int64_t hw, lso, log_start;
    sh_slice_t *slices;            /* in the arena, `cap` entries */
    sh_block_t **blocks;           /* the block of each slice (borrowed or chunk) */
    int nslices, cap;
    size_t bytes;
    bool included;                 /* in the response */

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
    fpart_t **out;                 /* included parts, in order (response) */
    int nout;
    int reads;                     /* chunk reads in flight */
    int64_t deadline;              /* monotonic ms */
    bool parked, done;
    sh_timer_t timer;
    sh_dp_waiter_t waiter;

    fetch_kind_t kind;
    sh_fetch_session_t *session;   /* incremental: one reference until answered */
    int32_t session_epoch;         /* the request's */
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
 * per version exactly as protocol/spec/fetch.spec. Topics are runs of
 * included partitions with the same tag (Kafka groups its response map
 * the same way). */
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
    int n = ctx ? ctx->nout : 0;
    int32_t nt = 0;
    for (int i = 0; i < n; i++)
        if (i == 0 || ctx->out[i]->tag != ctx->out[i - 1]->tag)
            nt++;
    sh_wire_put_array_len(w, compact, nt);
    for (int i = 0; i < n;) {
        const fpart_t *first = ctx->out[i];
        int end = i + 1;
        while (end < n && ctx->out[end]->tag == first->tag)
            end++;
        if (v <= 12)
            sh_wire_put_string(w, compact, first->topic.ptr ? first->topic : sh_slice_str(""));
        else
            sh_wire_put_uuid(w, first->topic_id);
        sh_wire_put_array_len(w, compact, end - i);
        for (; i < end; i++) {
            const fpart_t *fp = ctx->out[i];
            sh_wire_put_i32(w, fp->partition);
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

/* A top-level error: no topics. */
static void respond_error(sh_request_t *req, sh_err_t err, int32_t session_id)
{
    fresp_t r = {(int16_t)err, session_id, NULL};
    req->info = fetch_info(req->info);
    sh_request_respond(req, &r);
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

/* Read partition fp from an uploaded chunk. Returns bytes added. */
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
    sh_err_t err = sh_segment_chunk_find(data, len, fp->rq.fetch_offset, &pos);
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
    sh_rpartition_t *rp = NULL;
    sh_plog_t *log;
    if (ctx->req->api_version >= 13) {
        if (!sh_registry_find_id(ctx->dp->registry, fp->topic_id)) {
            *err = SH_KERR_UNKNOWN_TOPIC_ID;
            return NULL;
        }
        log = sh_datapath_partition_id(ctx->dp, fp->topic_id, fp->partition, &rp, err);
    } else
        log = sh_datapath_partition(ctx->dp, fp->topic, fp->partition, &rp, err);
    if (!log)
        return NULL;
    /* KIP-320: a consumer with an older epoch must refresh metadata; a
     * newer one knows of a leader we are not yet */
    int32_t want = fp->rq.current_leader_epoch;
    int32_t have = sh_plog_leader_epoch(log);
    if (ctx->req->api_version >= 9 && want >= 0 && want != have) {
        *err = want < have ? SH_KERR_FENCED_LEADER_EPOCH : SH_KERR_UNKNOWN_LEADER_EPOCH;
        return NULL;
    }
    return log;
}

/* ------------------------------------------------------------ sessions */

static sh_fetch_session_key_t part_key(const fpart_t *fp)
{
    return (sh_fetch_session_key_t){fp->topic, fp->topic_id, fp->partition};
}

/* What the response says of fp, as the session rules see it. */
static sh_fetch_session_answer_t part_answer(const fpart_t *fp)
{
    sh_fetch_session_answer_t a = {sh_err_wire(fp->err), -1, -1, 0};
    if (!fp->err) {
        a.high_watermark = fp->hw;
        a.log_start_offset = fp->log_start;
        a.records_bytes = fp->bytes;
    }
    return a;
}

/* A full fetch with epoch 0 answered: make its session from every
 * partition and what it was told. 0 when the cache admits none. */
static int32_t session_create(fetch_ctx_t *ctx)
{
    sh_broker_t *b = ctx->req->broker;
    if (!b->fetch_sessions || sh_request_is_orphan(ctx->req))
        return SH_FETCH_SESSION_INVALID_ID; /* nobody would learn its id */
    sh_fetch_session_t *s = sh_fetch_session_new(ctx->req->api_version >= 13);
    if (!s)
        return SH_FETCH_SESSION_INVALID_ID;
    int32_t id = SH_FETCH_SESSION_INVALID_ID;
    for (int i = 0; i < ctx->nparts; i++) {
        fpart_t *fp = &ctx->parts[i];
        sh_fetch_session_key_t key = part_key(fp);
        bool added;
        sh_fetch_session_part_t *p = sh_fetch_session_upsert(NULL, s, &key, &fp->rq, &added);
        if (!p)
            goto done;
        sh_fetch_session_answer_t a = part_answer(fp);
        p->high_watermark = a.high_watermark;
        p->log_start_offset = a.log_start_offset;
    }
    id = sh_fetch_session_cache_insert(b->fetch_sessions, s,
                                       sh_loop_now_ms(b->loop));
    if (id)
        sh_log(SH_LOG_DEBUG, "fetch", "conn=%llu created fetch session %d with %zu partitions",
               (unsigned long long)ctx->req->conn_id, id, sh_fetch_session_size(s));
    else
        sh_log(SH_LOG_DEBUG, "fetch", "conn=%llu no fetch session for %zu partitions: the "
               "session cache is full", (unsigned long long)ctx->req->conn_id,
               sh_fetch_session_size(s));
done:
    sh_fetch_session_unref(s);
    return id;
}

/* An incremental fetch answered: keep the partitions that must go out
 * (updating what the session remembers), or answer
 * INVALID_FETCH_SESSION_EPOCH if another request moved the session on
 * while this one waited. Returns the top-level error. */
static sh_err_t session_filter(fetch_ctx_t *ctx)
{
    sh_fetch_session_t *s = ctx->session;
    if (s->epoch != sh_fetch_session_next_epoch(ctx->session_epoch)) {
        sh_log(SH_LOG_INFO, "fetch", "conn=%llu incremental fetch session %d expected epoch %d, "
               "but got %d: a duplicate request?", (unsigned long long)ctx->req->conn_id, s->id,
               sh_fetch_session_next_epoch(ctx->session_epoch), s->epoch);
        for (int i = 0; i < ctx->nparts; i++)
            ctx->parts[i].included = false;
        return SH_KERR_INVALID_FETCH_SESSION_EPOCH;
    }
    for (int i = 0; i < ctx->nparts; i++) {
        fpart_t *fp = &ctx->parts[i];
        sh_fetch_session_key_t key = part_key(fp);
        sh_fetch_session_part_t *p = sh_fetch_session_find(s, &key);
        sh_fetch_session_answer_t a = part_answer(fp);
        if (!p) { /* emptied by a later request: say what we have */
            fp->included = true;
            continue;
        }
        fp->included = sh_fetch_session_part_must_respond(p, &a, true);
        if (fp->included && a.records_bytes > 0)
            sh_fetch_session_part_rotate(s, p);
    }
    return SH_OK;
}

/* Apply an incremental request to its session: add or update the listed
 * partitions, then remove the forgotten ones (Kafka's order: a partition
 * both listed and forgotten ends up forgotten). SH_E_NOMEM when the
 * session cache's byte bound (or malloc) refused a partition. */
static sh_err_t session_update(sh_fetch_session_cache_t *c, sh_fetch_session_t *s,
                               const sh_fetch_request_t *m, int counts[3])
{
    counts[0] = counts[1] = counts[2] = 0; /* added, updated, removed */
    for (int32_t t = 0; t < m->topics_count; t++) {
        const sh_fetch_request_fetch_topic_t *rt = &m->topics[t];
        for (int32_t i = 0; i < rt->partitions_count; i++) {
            const sh_fetch_request_fetch_partition_t *rq = &rt->partitions[i];
            sh_fetch_session_key_t key = {rt->topic, rt->topic_id, rq->partition};
            sh_fetch_session_params_t params = {rq->fetch_offset, rq->log_start_offset,
                                                rq->partition_max_bytes,
                                                rq->current_leader_epoch,
                                                rq->last_fetched_epoch};
            bool added;
            if (!sh_fetch_session_upsert(c, s, &key, &params, &added))
                return SH_E_NOMEM;
            counts[added ? 0 : 1]++;
        }
    }
    for (int32_t t = 0; t < m->forgotten_topics_data_count; t++) {
        const sh_fetch_request_forgotten_topic_t *ft = &m->forgotten_topics_data[t];
        for (int32_t i = 0; i < ft->partitions_count; i++) {
            sh_fetch_session_key_t key = {ft->topic, ft->topic_id, ft->partitions[i]};
            counts[2] += sh_fetch_session_forget(c, s, &key);
        }
    }
    return SH_OK;
}

/* The parts of a full (or sessionless) fetch: the request's partitions. */
static bool parts_from_request(fetch_ctx_t *ctx)
{
    const sh_fetch_request_t *m = ctx->m;
    int32_t nt = m->topics_count > 0 ? m->topics_count : 0;
    for (int32_t t = 0; t < nt; t++)
        if (m->topics[t].partitions_count > 0)
            ctx->nparts += m->topics[t].partitions_count;
    if (ctx->nparts) {
        ctx->parts = sh_arena_calloc(&ctx->req->arena, (size_t)ctx->nparts, sizeof(*ctx->parts));
        if (!ctx->parts)
            return false;
    }
    int k = 0;
    for (int32_t t = 0; t < nt; t++) {
        const sh_fetch_request_fetch_topic_t *rt = &m->topics[t];
        for (int32_t i = 0; i < rt->partitions_count; i++, k++) {
            const sh_fetch_request_fetch_partition_t *rq = &rt->partitions[i];
            fpart_t *fp = &ctx->parts[k];
            fp->ctx = ctx;
            fp->tag = (uintptr_t)t + 1;
            fp->topic = rt->topic;
            fp->topic_id = rt->topic_id;
            fp->partition = rq->partition;
            fp->rq = (sh_fetch_session_params_t){rq->fetch_offset, rq->log_start_offset,
                                                 rq->partition_max_bytes,
                                                 rq->current_leader_epoch,
                                                 rq->last_fetched_epoch};
            part_reset(fp);
        }
    }
    return true;
}

/* The parts of an incremental fetch: a copy of the session's partitions
 * in session order, so later requests may change the session while this
 * one waits. */
static bool parts_from_session(fetch_ctx_t *ctx, const sh_fetch_session_t *s)
{
    ctx->nparts = (int)sh_fetch_session_size(s);
    ctx->parts = sh_arena_calloc(&ctx->req->arena, (size_t)ctx->nparts, sizeof(*ctx->parts));
    if (!ctx->parts)
        return false;
    int k = 0;
    const sh_fetch_session_topic_t *prev = NULL;
    sh_slice_t name = SH_SLICE_NULL;
    for (const sh_fetch_session_part_t *p = sh_fetch_session_first(s); p;
         p = sh_fetch_session_next(p), k++) {
        fpart_t *fp = &ctx->parts[k];
        if (p->topic != prev) {
            prev = p->topic;
            char *copy = sh_arena_strndup(&ctx->req->arena, (const char *)p->topic->name.ptr,
                                          p->topic->name.len);
            if (!copy)
                return false;
            name = (sh_slice_t){(const uint8_t *)copy, p->topic->name.len};
        }
        fp->ctx = ctx;
        fp->tag = (uintptr_t)p->topic;
        fp->topic = name;
        fp->topic_id = p->topic->id;
        fp->partition = p->partition;
        fp->rq = p->params;
        part_reset(fp);
    }
    return true;
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

    fresp_t r = {0, SH_FETCH_SESSION_INVALID_ID, ctx};
    if (ctx->kind == FETCH_INCREMENTAL) {
        r.error_code = (int16_t)session_filter(ctx);
        r.session_id = ctx->session->id;
        sh_fetch_session_unref(ctx->session);
        ctx->session = NULL;
    } else {
        for (int i = 0; i < ctx->nparts; i++)
            ctx->parts[i].included = true;
        if (ctx->kind == FETCH_FULL)
            r.session_id = session_create(ctx);
    }

    bool ok = true;
    if (ctx->nparts) {
        ctx->out = sh_arena_alloc(&req->arena, (size_t)ctx->nparts * sizeof(*ctx->out));
        ok = ctx->out != NULL;
    }
    for (int i = 0; i < ctx->nparts; i++) {
        fpart_t *fp = &ctx->parts[i];
        if (fp->included && ok) {
            ctx->out[ctx->nout++] = fp;
            sh_block_t *last = NULL;
            for (int k = 0; k < fp->nslices && !fp->err; k++) {
                if (fp->blocks[k] == last)
                    continue;
                last = fp->blocks[k];
                if (sh_request_hold(req, last) != SH_OK)
                    ok = false;
            }
        }
        chunk_drop(fp);
    }
    if (!ok) {
        sh_request_fail(req, "out of memory");
        return;
    }
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

        size_t pmax = fp->rq.partition_max_bytes > 0 ? (size_t)fp->rq.partition_max_bytes : 0;
        size_t left = max_bytes > total ? max_bytes - total : 0;
        size_t budget = pmax < left ? pmax : left;
        bool min_one = !have_data;
        sh_plog_slice_t sl[FETCH_MAX_SLICES];
        sh_plog_read_t rd;
        err = sh_plog_read(log, fp->rq.fetch_offset, budget, min_one, sl, FETCH_MAX_SLICES, &rd);
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
    /* park until new data on any partition (of the session, for an
     * incremental fetch), the deadline or shutdown */
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

/* Which context the request gets (Kafka's FetchManager.newContext).
 * SH_OK, or a top-level error to answer with. */
static sh_err_t fetch_context(sh_broker_t *b, fetch_ctx_t *ctx)
{
    const sh_fetch_request_t *m = ctx->m;
    sh_request_t *req = ctx->req;
    sh_fetch_session_cache_t *c = b->fetch_sessions;
    ctx->kind = FETCH_SESSIONLESS;
    if (req->api_version < 7)
        return SH_OK;
    if (m->session_epoch == SH_FETCH_SESSION_INITIAL_EPOCH ||
        m->session_epoch == SH_FETCH_SESSION_FINAL_EPOCH) {
        /* a full request closes the session it names */
        if (m->session_id != SH_FETCH_SESSION_INVALID_ID && c &&
            sh_fetch_session_cache_remove(c, m->session_id))
            sh_log(SH_LOG_DEBUG, "fetch", "conn=%llu closed fetch session %d",
                   (unsigned long long)req->conn_id, m->session_id);
        if (m->session_epoch == SH_FETCH_SESSION_INITIAL_EPOCH && c)
            ctx->kind = FETCH_FULL;
        return SH_OK;
    }
    sh_fetch_session_t *s = NULL;
    sh_err_t err = c ? sh_fetch_session_cache_lookup(c, m->session_id, m->session_epoch,
                                                     req->api_version >= 13, &s)
                     : SH_KERR_FETCH_SESSION_ID_NOT_FOUND;
    if (err) {
        sh_log(SH_LOG_DEBUG, "fetch", "conn=%llu fetch session %d epoch %d: %s",
               (unsigned long long)req->conn_id, m->session_id, m->session_epoch,
               sh_err_str(err));
        return err;
    }
    int counts[3];
    if (session_update(c, s, m, counts) != SH_OK) {
        sh_log(SH_LOG_WARN, "fetch", "conn=%llu closed fetch session %d: the session cache is "
               "out of memory (streamhouse.fetch.session.cache.bytes)",
               (unsigned long long)req->conn_id, s->id);
        sh_fetch_session_cache_remove(c, s->id);
        return SH_KERR_FETCH_SESSION_ID_NOT_FOUND;
    }
    int32_t id = s->id;
    if (!sh_fetch_session_cache_advance(c, s, sh_loop_now_ms(b->loop))) {
        sh_log(SH_LOG_DEBUG, "fetch", "conn=%llu closed fetch session %d: its last partition "
               "was forgotten", (unsigned long long)req->conn_id, id);
        return SH_OK; /* emptied and closed: served sessionless */
    }
    sh_log(SH_LOG_DEBUG, "fetch", "conn=%llu incremental fetch session %d epoch %d: %d added, "
           "%d updated, %d removed, %zu partitions", (unsigned long long)req->conn_id, id,
           m->session_epoch, counts[0], counts[1], counts[2], sh_fetch_session_size(s));
    ctx->kind = FETCH_INCREMENTAL;
    ctx->session = sh_fetch_session_ref(s);
    ctx->session_epoch = m->session_epoch;
    return SH_OK;
}

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

    sh_err_t err = fetch_context(b, ctx);
    if (err) {
        respond_error(req, err, SH_FETCH_SESSION_INVALID_ID);
        return;
    }
    bool ok = ctx->kind == FETCH_INCREMENTAL ? parts_from_session(ctx, ctx->session)
                                             : parts_from_request(ctx);
    if (!ok)
        goto nomem;
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
    if (ctx && ctx->session) {
        sh_fetch_session_unref(ctx->session);
        ctx->session = NULL;
    }
    sh_request_fail(req, "out of memory");
}
