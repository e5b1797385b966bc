/*
 * sh_uploader.c - segment uploads across partitions (see sh_uploader.h).
 *
 * One upload goes through:
 *   take   every registered plog gives its durable, un-uploaded entries
 *          (sh_plog_upload_take); each becomes one chunk of the builder
 *   put    sh_objstore_put_start of the sealed object
 *   commit a metadata op (run on the metadata worker) writes each
 *          partition's producer snapshot as of its chunk's end (before
 *          the commit, so a crash in between leaves the previous one at
 *          the committed offset), then calls
 *          sh_meta_chunks_commit; if it is fenced or meets a deleted
 *          topic, the same op finds the partitions at fault and commits
 *          the object without them
 *   done   on the loop: offer chunk bytes to the cache, tell each plog
 *          (upload_done, or fence), retry appends parked for WAL space
 *
 * The upload struct is heap-owned and outlives the uploader if freed
 * mid-flight (`orphan`): completions then only release references.
 *
 * Thread: loop thread, except upload_run on the metadata worker, which
 * reads only the upload's own chunk array and writes its results.
 */
#include "storage/sh_uploader.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/sh_clock.h"
#include "common/sh_log.h"
#include "storage/sh_segment.h"

#define PARKED_RETRY_MS 20

typedef struct upload upload_t;

struct sh_uploader {
    sh_uploader_opts_t o;
    sh_plog_observer_t obs;
    sh_plog_t **plogs;
    size_t nplogs, cap;
    size_t rr;                    /* where the next take starts (fairness) */

    uint64_t pending_bytes;
    int64_t oldest_ms;            /* -1: nothing waits */
    bool parked;                  /* some append waits for WAL space */
    int64_t parked_retry_ms;

    upload_t *inflight;
    int64_t backoff_until;        /* no new upload / commit retry before */
    int64_t backoff_ms;
    bool commit_retry;            /* inflight waits to resubmit its commit */
    uint64_t seq;
    sh_uploader_stats_t st;
};

struct upload {
    sh_meta_op_t op;              /* first: the metadata op */
    sh_uploader_t *u;             /* NULL once orphaned */
    char key[SH_SEGMENT_KEY_SIZE];
    sh_segment_builder_t *builder;
    uint64_t size;
    size_t n;
    sh_plog_upload_t *parts;
    sh_segment_chunk_t *descs;    /* per part, copied from the builder */
    sh_meta_chunk_t *chunks;      /* per part, as committed */
    sh_err_t *part_err;           /* per part, set by upload_run */
    sh_meta_chunk_t *scratch;     /* upload_run's retry list */
    sh_meta_producer_snapshot_t *snaps; /* per part; data and touched
                                         * borrow the part's */
};

static void upload_free(upload_t *up)
{
    for (size_t i = 0; i < up->n; i++)
        sh_plog_upload_release(&up->parts[i]);
    sh_segment_builder_free(up->builder);
    free(up->parts);
    free(up->descs);
    free(up->chunks);
    free(up->part_err);
    free(up->scratch);
    free(up->snaps);
    free(up);
}

/* ----------------------------------------------------------- observer */

static void obs_durable(void *arg, sh_plog_t *p, size_t bytes, int64_t appended_ms)
{
    sh_uploader_t *u = arg;
    (void)p;
    u->pending_bytes += bytes;
    if (u->oldest_ms < 0 || appended_ms < u->oldest_ms)
        u->oldest_ms = appended_ms;
}

static void obs_parked(void *arg, sh_plog_t *p)
{
    sh_uploader_t *u = arg;
    (void)p;
    if (!u->parked) {
        u->parked = true;
        u->parked_retry_ms = sh_clock_mono_ms() + PARKED_RETRY_MS;
    }
}

/* Exact totals, after an upload changed what waits. */
static void recount(sh_uploader_t *u)
{
    u->pending_bytes = 0;
    u->oldest_ms = -1;
    for (size_t i = 0; i < u->nplogs; i++) {
        int64_t oldest;
        size_t b = sh_plog_upload_ready(u->plogs[i], &oldest);
        u->pending_bytes += b;
        if (b && oldest >= 0 && (u->oldest_ms < 0 || oldest < u->oldest_ms))
            u->oldest_ms = oldest;
    }
}

/* ---------------------------------------------------------- lifecycle */

sh_uploader_t *sh_uploader_new(const sh_uploader_opts_t *o)
{
    sh_uploader_t *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->o = *o;
    if (!u->o.upload_bytes)
        u->o.upload_bytes = 8u << 20;
    if (u->o.interval_ms <= 0)
        u->o.interval_ms = 1000;
    if (!u->o.max_object_bytes) {
        u->o.max_object_bytes = u->o.upload_bytes * 4;
        if (u->o.max_object_bytes < (4u << 20))
            u->o.max_object_bytes = 4u << 20;
    }
    if (u->o.backoff_min_ms <= 0)
        u->o.backoff_min_ms = 100;
    /* Capped at 1 s: acknowledgements of durability=object topics wait for
     * the next retry, so a long cap turns a 5 s metadata outage into 10 s
     * of stalled producers; the object store paces itself (retries, rate
     * limits, circuit breaker) below us. */
    if (u->o.backoff_max_ms < u->o.backoff_min_ms)
        u->o.backoff_max_ms = u->o.backoff_min_ms > 1000 ? u->o.backoff_min_ms : 1000;
    u->obs.durable = obs_durable;
    u->obs.parked = obs_parked;
    u->obs.arg = u;
    u->oldest_ms = -1;
    return u;
}

void sh_uploader_free(sh_uploader_t *u)
{
    if (!u)
        return;
    if (u->inflight) {
        if (u->commit_retry)
            upload_free(u->inflight); /* not submitted anywhere */
        else
            u->inflight->u = NULL;    /* its completion cleans up */
    }
    for (size_t i = 0; i < u->nplogs; i++)
        sh_plog_unref(u->plogs[i]);
    free(u->plogs);
    free(u);
}

const sh_plog_observer_t *sh_uploader_observer(sh_uploader_t *u)
{
    return &u->obs;
}

sh_err_t sh_uploader_add(sh_uploader_t *u, sh_plog_t *p)
{
    if (u->nplogs == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 16;
        sh_plog_t **n = realloc(u->plogs, cap * sizeof(*n));
        if (!n)
            return SH_E_NOMEM;
        u->plogs = n;
        u->cap = cap;
    }
    sh_plog_ref(p);
    u->plogs[u->nplogs++] = p;
    /* replayed batches wait for an upload too */
    int64_t oldest;
    size_t b = sh_plog_upload_ready(p, &oldest);
    u->pending_bytes += b;
    if (b && oldest >= 0 && (u->oldest_ms < 0 || oldest < u->oldest_ms))
        u->oldest_ms = oldest;
    return SH_OK;
}

void sh_uploader_remove(sh_uploader_t *u, sh_plog_t *p)
{
    for (size_t i = 0; i < u->nplogs; i++) {
        if (u->plogs[i] != p)
            continue;
        u->plogs[i] = u->plogs[--u->nplogs];
        if (u->rr >= u->nplogs)
            u->rr = 0;
        sh_plog_unref(p);
        return;
    }
}

void sh_uploader_set_writer(sh_uploader_t *u, int32_t writer_id, int64_t writer_epoch)
{
    /* a new (id, epoch) pair starts its own sequence; keys stay unique */
    if (u->o.writer_id != writer_id || u->o.writer_epoch != writer_epoch)
        u->seq = 0;
    u->o.writer_id = writer_id;
    u->o.writer_epoch = writer_epoch;
}

bool sh_uploader_busy(const sh_uploader_t *u)
{
    return u->inflight != NULL;
}

void sh_uploader_stats(const sh_uploader_t *u, sh_uploader_stats_t *out)
{
    *out = u->st;
    out->pending_bytes = u->pending_bytes;
    out->busy = u->inflight != NULL;
}

/* -------------------------------------------------------------- steps */

static void backoff(sh_uploader_t *u)
{
    int64_t now = sh_clock_mono_ms();
    u->backoff_ms = u->backoff_ms ? u->backoff_ms * 2 : u->o.backoff_min_ms;
    if (u->backoff_ms > u->o.backoff_max_ms)
        u->backoff_ms = u->o.backoff_max_ms;
    u->backoff_until = now + u->backoff_ms;
}

static void retry_parked(sh_uploader_t *u)
{
    size_t still = 0;
    for (size_t i = 0; i < u->nplogs; i++)
        if (sh_plog_parked(u->plogs[i]))
            still += sh_plog_retry_parked(u->plogs[i]);
    u->parked = still > 0;
    if (u->parked)
        u->parked_retry_ms = sh_clock_mono_ms() + PARKED_RETRY_MS;
}

/* Put the parts back into their plogs for the next attempt and drop up. */
static void upload_abort(sh_uploader_t *u, upload_t *up)
{
    for (size_t i = 0; i < up->n; i++)
        sh_plog_upload_abort(&up->parts[i]);
    up->n = 0;
    upload_free(up);
    if (u) {
        u->inflight = NULL;
        u->commit_retry = false;
        recount(u);
    }
}

/* Metadata worker: commit; on fencing or a deleted topic, find the
 * partitions at fault and commit the rest. Touches only up's arrays. */
static sh_err_t upload_run(sh_meta_t *m, sh_meta_op_t *op)
{
    upload_t *up = (upload_t *)op;
    int64_t now = sh_clock_wall_ms();
    for (size_t i = 0; i < up->n; i++)
        up->part_err[i] = SH_OK;
    /* A partition whose snapshot is refused (another leader, deleted) is
     * refused by the commit below for the same reason. */
    sh_err_t err = sh_meta_producer_snapshots_put(m, up->snaps, up->n, now);
    if (err != SH_OK)
        return err;
    err = sh_meta_chunks_commit(m, up->key, (int64_t)up->size, up->chunks, up->n, now);
    if (err != SH_E_FENCED && err != SH_KERR_UNKNOWN_TOPIC_OR_PARTITION)
        return err;

    size_t keep = 0;
    for (size_t i = 0; i < up->n; i++) {
        const sh_meta_chunk_t *c = &up->chunks[i];
        sh_meta_tp_t tp = {c->topic_id, c->partition};
        sh_meta_partition_t row;
        sh_err_t perr = sh_meta_partition_get(m, tp, &row);
        if (perr == SH_KERR_UNKNOWN_TOPIC_OR_PARTITION) {
            up->part_err[i] = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
            continue;
        }
        if (perr != SH_OK)
            return perr; /* database trouble: retry the whole commit later */
        if (row.leader_epoch != c->leader_epoch) {
            up->part_err[i] = SH_E_FENCED;
            continue;
        }
        sh_arena_t a;
        sh_arena_init(&a, 1024);
        sh_meta_topic_t t;
        perr = sh_meta_topic_get_by_id(m, c->topic_id, &a, &t);
        bool deleting = perr == SH_OK && t.state == SH_META_TOPIC_DELETING;
        sh_arena_fini(&a);
        if (perr == SH_KERR_UNKNOWN_TOPIC_ID || deleting) {
            up->part_err[i] = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
            continue;
        }
        if (perr != SH_OK)
            return perr;
        up->scratch[keep++] = *c;
    }
    if (keep == up->n)
        return err; /* nobody at fault: a race; retry the whole commit */
    if (keep == 0)
        return SH_OK;
    return sh_meta_chunks_commit(m, up->key, (int64_t)up->size, up->scratch, keep, now);
}

/* A copy of chunk i's bytes, for the read cache. */
static sh_block_t *chunk_copy(const upload_t *up, size_t i)
{
    const sh_plog_upload_t *part = &up->parts[i];
    sh_block_t *b = sh_block_new(part->bytes);
    if (!b)
        return NULL;
    size_t at = 0;
    for (int k = 0; k < part->iovcnt; k++) {
        memcpy(b->data + at, part->iov[k].iov_base, part->iov[k].iov_len);
        at += part->iov[k].iov_len;
    }
    return b;
}

static void upload_committed(sh_uploader_t *u, upload_t *up)
{
    size_t ok = 0, ok_bytes = 0;
    for (size_t i = 0; i < up->n; i++) {
        sh_plog_upload_t *part = &up->parts[i];
        sh_err_t perr = up->part_err[i];
        if (perr == SH_E_FENCED || perr == SH_KERR_UNKNOWN_TOPIC_OR_PARTITION) {
            if (perr == SH_E_FENCED)
                u->st.fenced++;
            sh_plog_fence(part->plog,
                          perr == SH_E_FENCED ? SH_KERR_NOT_LEADER_OR_FOLLOWER
                                              : SH_KERR_UNKNOWN_TOPIC_OR_PARTITION,
                          perr == SH_E_FENCED
                              ? "the metadata store refused a chunk commit under its leader "
                                "epoch (another broker leads it now)"
                              : "its topic was deleted");
            sh_plog_upload_release(part);
            continue;
        }
        if (u->o.cache) {
            sh_block_t *b = chunk_copy(up, i);
            if (b) {
                sh_cache_put(u->o.cache, up->key, up->descs[i].byte_offset, b);
                sh_block_unref(b);
            }
        }
        ok++;
        ok_bytes += part->bytes;
        sh_plog_upload_done(part, up->key, up->descs[i].byte_offset, up->descs[i].byte_length,
                            up->descs[i].max_timestamp);
    }
    u->st.objects++;
    u->st.chunks += ok;
    u->st.bytes += ok_bytes;
    sh_log(SH_LOG_DEBUG, "upload", "committed object \"%s\": %zu chunks, %zu bytes", up->key,
           ok, ok_bytes);
}

static void upload_done(sh_meta_op_t *op)
{
    upload_t *up = (upload_t *)op;
    sh_uploader_t *u = up->u;
    if (!u) {
        upload_free(up);
        return;
    }
    sh_err_t err = op->err;
    if (err == SH_E_AGAIN || err == SH_E_IO || err == SH_E_NOMEM || err == SH_E_FENCED ||
        err == SH_E_CLOSED) {
        /* Keep the object: the same commit succeeds later (idempotent). */
        u->st.commit_failures++;
        sh_log(SH_LOG_WARN, "upload",
               "could not commit segment object \"%s\" (%zu chunks): %s; retrying",
               up->key, up->n, sh_err_str(err));
        backoff(u);
        u->commit_retry = true;
        return;
    }
    if (err != SH_OK) {
        /* SH_E_INVAL / SH_E_EXISTS: our offsets disagree with the store's
         * (a bug, or a commit we forgot we made). Build anew after a pause
         * rather than loop on the same refusal. */
        u->st.commit_failures++;
        sh_log(SH_LOG_ERROR, "upload",
               "the metadata store refused the chunks of segment object \"%s\": %s; "
               "uploading them again later", up->key, sh_err_str(err));
        backoff(u);
        upload_abort(u, up);
        return;
    }
    u->inflight = NULL;
    u->commit_retry = false;
    u->backoff_ms = 0;
    u->backoff_until = 0;
    upload_committed(u, up);
    upload_free(up);
    recount(u);
    retry_parked(u);
}

static void commit_submit(sh_uploader_t *u, upload_t *up)
{
    up->op.run = upload_run;
    up->op.done = upload_done;
    u->commit_retry = false;
    sh_err_t err = sh_meta_submit(u->o.meta, &up->op);
    if (err != SH_OK) {
        sh_log(SH_LOG_WARN, "upload", "could not queue the commit of \"%s\": %s", up->key,
               sh_err_str(err));
        backoff(u);
        u->commit_retry = true;
    }
}

static void put_done(void *arg, const sh_objstore_result_t *res)
{
    upload_t *up = arg;
    sh_uploader_t *u = up->u;
    if (!u) {
        upload_free(up);
        return;
    }
    if (res->err != SH_OK) {
        u->st.put_failures++;
        sh_log(SH_LOG_WARN, "upload", "could not store segment object \"%s\" (%" PRIu64
               " bytes): %s%s; retrying", up->key, up->size, sh_err_str(res->err),
               res->retriable ? "" : " (not retriable)");
        backoff(u);
        upload_abort(u, up);
        return;
    }
    commit_submit(u, up);
}

static sh_err_t upload_start(sh_uploader_t *u)
{
    size_t np = u->nplogs;
    if (np == 0)
        return SH_E_NOTFOUND;
    upload_t *up = calloc(1, sizeof(*up));
    if (!up)
        goto nomem;
    up->u = u;
    up->builder = sh_segment_builder_new();
    up->parts = calloc(np, sizeof(*up->parts));
    up->descs = calloc(np, sizeof(*up->descs));
    up->chunks = calloc(np, sizeof(*up->chunks));
    up->part_err = calloc(np, sizeof(*up->part_err));
    up->scratch = calloc(np, sizeof(*up->scratch));
    up->snaps = calloc(np, sizeof(*up->snaps));
    if (!up->builder || !up->parts || !up->descs || !up->chunks || !up->part_err ||
        !up->scratch || !up->snaps)
        goto nomem;

    uint64_t budget = u->o.max_object_bytes;
    for (size_t k = 0; k < np && budget > 0; k++) {
        sh_plog_t *p = u->plogs[(u->rr + k) % np];
        sh_plog_upload_t *part = &up->parts[up->n];
        if (sh_plog_upload_take(p, (size_t)budget, part) != SH_OK)
            continue;
        const sh_segment_chunk_t *c = NULL;
        sh_err_t err = sh_segment_builder_add(up->builder, sh_plog_topic_id(p),
                                              sh_plog_partition(p), part->leader_epoch,
                                              part->iov, part->iovcnt, &c);
        if (err != SH_OK) {
            /* our own stored batches refused: never upload them silently */
            sh_log(SH_LOG_ERROR, "upload",
                   "partition %s: offsets %" PRId64 "..%" PRId64 " are not valid batches "
                   "for a segment chunk (%s); not uploading them", sh_plog_name(p),
                   part->base_offset, part->last_offset, sh_err_str(err));
            sh_plog_upload_abort(part);
            continue;
        }
        up->descs[up->n] = *c;
        budget = part->bytes >= budget ? 0 : budget - part->bytes;
        up->n++;
    }
    u->rr = np ? (u->rr + 1) % np : 0;
    if (up->n == 0) {
        upload_free(up);
        recount(u);
        return SH_E_NOTFOUND;
    }

    u->seq++;
    if (sh_segment_key_format(up->key, sizeof(up->key), u->o.writer_id, u->o.writer_epoch,
                              u->seq) < 0)
        goto nomem;
    const struct iovec *iov;
    int iovcnt;
    if (sh_segment_builder_finish(up->builder, sh_clock_wall_ms(), &iov, &iovcnt, &up->size) !=
        SH_OK)
        goto nomem;
    /* descriptors are final once added; read them again after finish */
    size_t nd = 0;
    const sh_segment_chunk_t *all = sh_segment_builder_chunks(up->builder, &nd);
    for (size_t i = 0; i < up->n && i < nd; i++) {
        up->descs[i] = all[i];
        sh_meta_chunk_t *mc = &up->chunks[i];
        mc->topic_id = all[i].topic_id;
        mc->partition = all[i].partition;
        /* the chunk continues the committed offset even across a gap the
         * WAL left (the metadata store requires contiguity) */
        mc->base_offset = up->parts[i].base_offset;
        mc->last_offset = all[i].last_offset;
        mc->max_timestamp = all[i].max_timestamp;
        mc->object_key = up->key;
        mc->byte_offset = (int64_t)all[i].byte_offset;
        mc->byte_length = (int64_t)all[i].byte_length;
        mc->leader_epoch = up->parts[i].leader_epoch;
        sh_meta_producer_snapshot_t *ps = &up->snaps[i];
        ps->tp = (sh_meta_tp_t){mc->topic_id, mc->partition};
        ps->leader_epoch = mc->leader_epoch;
        ps->as_of_offset = up->parts[i].last_offset + 1; /* the state's cut */
        ps->data = up->parts[i].producer_state;
        ps->touched = up->parts[i].touched;
        ps->ntouched = up->parts[i].ntouched;
    }
    u->inflight = up;
    recount(u);
    sh_err_t err = sh_objstore_put_start(u->o.store, up->key, iov, iovcnt, put_done, up);
    if (err != SH_OK) {
        u->st.put_failures++;
        sh_log(SH_LOG_WARN, "upload", "could not start storing segment object \"%s\": %s",
               up->key, sh_err_str(err));
        backoff(u);
        upload_abort(u, up);
        return err;
    }
    return SH_OK;
nomem:
    sh_log(SH_LOG_ERROR, "upload", "out of memory building a segment object");
    if (up)
        upload_abort(u, up);
    backoff(u);
    return SH_E_NOMEM;
}

/* ---------------------------------------------------------------- drive */

sh_err_t sh_uploader_flush(sh_uploader_t *u, int64_t now_ms)
{
    (void)now_ms;
    if (u->inflight)
        return SH_E_AGAIN;
    return upload_start(u);
}

void sh_uploader_drive(sh_uploader_t *u, int64_t now_ms)
{
    if (u->parked && now_ms >= u->parked_retry_ms)
        retry_parked(u);
    if (u->inflight) {
        if (u->commit_retry && now_ms >= u->backoff_until)
            commit_submit(u, u->inflight);
        return;
    }
    if (now_ms < u->backoff_until)
        return;
    bool due = u->pending_bytes >= u->o.upload_bytes ||
               (u->oldest_ms >= 0 && now_ms - u->oldest_ms >= u->o.interval_ms) ||
               (u->parked && u->pending_bytes > 0);
    if (due)
        upload_start(u);
}

int64_t sh_uploader_next_deadline_ms(const sh_uploader_t *u)
{
    int64_t d = -1;
#define CONSIDER(t)                                                            \
    do {                                                                       \
        int64_t t_ = (t);                                                      \
        if (d < 0 || t_ < d)                                                   \
            d = t_;                                                            \
    } while (0)
    if (u->parked)
        CONSIDER(u->parked_retry_ms);
    if (u->inflight) {
        if (u->commit_retry)
            CONSIDER(u->backoff_until);
        return d;
    }
    if (u->oldest_ms >= 0 || u->pending_bytes > 0) {
        int64_t t = u->oldest_ms >= 0 ? u->oldest_ms + u->o.interval_ms : 0;
        if (t < u->backoff_until)
            t = u->backoff_until;
        CONSIDER(t);
    }
#undef CONSIDER
    return d;
}
