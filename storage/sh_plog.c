/*
 * sh_plog.c - the partition log (see sh_plog.h for the model).
 *
 * Data structures:
 *   - the tail: a ring of entries in offset order, one per stored batch,
 *     each holding a reference to the block its bytes live in (a request
 *     frame, or a copy made at WAL replay). Entries below `committed` are
 *     dropped as soon as their chunk commits, so the ring holds exactly the
 *     batches that are in the WAL and not yet in an object.
 *   - the chunk index: an array of committed chunks in offset order.
 *   - three FIFOs of appends: parked (waiting for WAL space), waiting for
 *     durability, waiting for the commit. Appends complete in offset order
 *     because the WAL completes in append order and commits advance in
 *     offset order.
 *
 * The WAL done callback carries only the plog: completions arrive in
 * append order, so each one makes the first not-yet-durable entry durable.
 *
 * Thread: loop thread only. Ownership: see sh_plog.h; refs counts the
 * opener, the uploader and uploads in flight, wal_inflight the WAL appends
 * whose callbacks are still to come. Both must reach zero before free.
 */
#include "storage/sh_plog.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sh_clock.h"
#include "common/sh_endian.h"
#include "common/sh_log.h"

enum { Q_NONE = 0, Q_PARKED, Q_DURABLE, Q_COMMIT };

typedef struct aqueue {
    sh_plog_append_t *head, *tail;
    size_t n;
} aqueue_t;

typedef struct plog_entry {
    int64_t base, last, max_ts;
    int64_t appended_ms;      /* monotonic, for the upload age trigger */
    sh_block_t *block;
    const uint8_t *ptr;
    uint32_t len;
} plog_entry_t;

typedef struct plog_chunk {
    int64_t base, last, max_ts;
    char *key;
    uint64_t byte_offset;
    uint32_t byte_length;
} plog_chunk_t;

struct sh_plog {
    int refs;
    int wal_inflight;
    sh_uuid_t topic_id;
    int32_t partition;
    int32_t leader_epoch;
    char *name;
    sh_wal_t *wal;
    sh_plog_cfg_t cfg;
    sh_plog_observer_t obs;

    int64_t log_start;
    int64_t committed;
    int64_t durable;
    int64_t next_offset;
    int64_t hw;
    int64_t upload_mark;      /* committed, or the end of the upload in flight */
    bool uploading;

    plog_entry_t *tail;       /* ring */
    size_t tail_cap, tail_head, tail_len;
    size_t tail_bytes;
    size_t ready_bytes;       /* durable, at or above upload_mark */

    plog_chunk_t *chunks;
    size_t nchunks, chunks_cap;

    aqueue_t parked, wait_durable, wait_commit;
    sh_plog_watch_t *watches;

    bool closed;
    sh_err_t err;             /* 0 while served */

    sh_producer_state_t *producers;   /* idempotent producers (docs/idempotence.md) */
    int16_t (*epoch_floor)(void *arg, int64_t producer_id);
    void *epoch_arg;
};

/* ------------------------------------------------------------- helpers */

void sh_plog_wal_key(sh_uuid_t id, int32_t partition, char out[SH_PLOG_WAL_KEY_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[id.b[i] >> 4];
        out[2 * i + 1] = hex[id.b[i] & 15];
    }
    snprintf(out + 32, SH_PLOG_WAL_KEY_SIZE - 32, "-%d", (int)partition);
}

static plog_entry_t *tail_at(const sh_plog_t *p, size_t i)
{
    return &p->tail[(p->tail_head + i) % p->tail_cap];
}

/* Index of the first entry whose last offset is >= offset (tail_len if none). */
static size_t tail_find(const sh_plog_t *p, int64_t offset)
{
    size_t lo = 0, hi = p->tail_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tail_at(p, mid)->last < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static sh_err_t tail_reserve(sh_plog_t *p)
{
    if (p->tail_len < p->tail_cap)
        return SH_OK;
    size_t cap = p->tail_cap ? p->tail_cap * 2 : 64;
    plog_entry_t *n = malloc(cap * sizeof(*n));
    if (!n)
        return SH_E_NOMEM;
    for (size_t i = 0; i < p->tail_len; i++)
        n[i] = *tail_at(p, i);
    free(p->tail);
    p->tail = n;
    p->tail_cap = cap;
    p->tail_head = 0;
    return SH_OK;
}

/* Caller reserved room. Takes a new reference on block. */
static void tail_push(sh_plog_t *p, int64_t base, int64_t last, int64_t max_ts,
                      sh_block_t *block, const uint8_t *ptr, size_t len)
{
    plog_entry_t *e = &p->tail[(p->tail_head + p->tail_len) % p->tail_cap];
    e->base = base;
    e->last = last;
    e->max_ts = max_ts;
    e->appended_ms = sh_clock_mono_ms();
    e->block = sh_block_ref(block);
    e->ptr = ptr;
    e->len = (uint32_t)len;
    p->tail_len++;
    p->tail_bytes += len;
}

static void tail_pop(sh_plog_t *p)
{
    plog_entry_t *e = tail_at(p, 0);
    p->tail_bytes -= e->len;
    sh_block_unref(e->block);
    p->tail_head = (p->tail_head + 1) % p->tail_cap;
    p->tail_len--;
}

static sh_err_t chunk_push(sh_plog_t *p, int64_t base, int64_t last, int64_t max_ts,
                           const char *key, uint64_t off, uint32_t len)
{
    if (p->nchunks == p->chunks_cap) {
        size_t cap = p->chunks_cap ? p->chunks_cap * 2 : 16;
        plog_chunk_t *n = realloc(p->chunks, cap * sizeof(*n));
        if (!n)
            return SH_E_NOMEM;
        p->chunks = n;
        p->chunks_cap = cap;
    }
    char *k = strdup(key);
    if (!k)
        return SH_E_NOMEM;
    p->chunks[p->nchunks++] = (plog_chunk_t){base, last, max_ts, k, off, len};
    return SH_OK;
}

/* Index of the first chunk whose last offset is >= offset. */
static size_t chunk_find(const sh_plog_t *p, int64_t offset)
{
    size_t lo = 0, hi = p->nchunks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->chunks[mid].last < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void chunk_loc(const plog_chunk_t *c, sh_plog_chunk_loc_t *out)
{
    out->object_key = c->key;
    out->byte_offset = c->byte_offset;
    out->byte_length = c->byte_length;
    out->base_offset = c->base;
    out->last_offset = c->last;
    out->max_timestamp = c->max_ts;
}

static void slice_of(const plog_entry_t *e, sh_plog_slice_t *s)
{
    s->block = e->block;
    s->ptr = e->ptr;
    s->len = e->len;
    s->base_offset = e->base;
    s->last_offset = e->last;
    s->max_timestamp = e->max_ts;
}

/* ------------------------------------------------------------- queues */

static void q_push(sh_plog_t *p, aqueue_t *q, int which, sh_plog_append_t *a)
{
    a->plog = p;
    a->queue = which;
    a->next = NULL;
    a->prev = q->tail;
    if (q->tail)
        q->tail->next = a;
    else
        q->head = a;
    q->tail = a;
    q->n++;
}

static aqueue_t *q_of(sh_plog_t *p, int which)
{
    switch (which) {
    case Q_PARKED:
        return &p->parked;
    case Q_DURABLE:
        return &p->wait_durable;
    case Q_COMMIT:
        return &p->wait_commit;
    default:
        return NULL;
    }
}

static void q_remove(sh_plog_append_t *a)
{
    aqueue_t *q = q_of(a->plog, a->queue);
    if (!q)
        return;
    if (a->prev)
        a->prev->next = a->next;
    else
        q->head = a->next;
    if (a->next)
        a->next->prev = a->prev;
    else
        q->tail = a->prev;
    a->prev = a->next = NULL;
    a->queue = Q_NONE;
    q->n--;
}

/* Complete a pending append: unlink it, then call back. The callback may
 * re-enter the plog (cancel other appends, append again). */
static void append_finish(sh_plog_append_t *a, sh_err_t err)
{
    q_remove(a);
    a->err = err;
    a->pending = false;
    if (a->plog)
        a->log_start_offset = a->plog->log_start;
    a->done(a);
}

static void q_fail_all(sh_plog_t *p, aqueue_t *q, sh_err_t err)
{
    (void)p;
    while (q->head)
        append_finish(q->head, err);
}

/* ------------------------------------------------------------- watches */

void sh_plog_watch(sh_plog_t *p, sh_plog_watch_t *w, void (*fn)(sh_plog_watch_t *, void *),
                   void *arg)
{
    sh_plog_unwatch(w);
    w->fn = fn;
    w->arg = arg;
    w->prev = NULL;
    w->next = p->watches;
    if (p->watches)
        p->watches->prev = w;
    p->watches = w;
    w->list = &p->watches;
}

void sh_plog_unwatch(sh_plog_watch_t *w)
{
    if (!w->list)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        *w->list = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->list = NULL;
}

/* Fire every watch once. The list is detached first so a callback may
 * watch again (it joins the plog's fresh list) or unwatch any other
 * entry (which lives on the local list meanwhile). */
static void watches_fire(sh_plog_t *p)
{
    sh_plog_watch_t *local = p->watches;
    p->watches = NULL;
    for (sh_plog_watch_t *w = local; w; w = w->next)
        w->list = &local;
    while (local) {
        sh_plog_watch_t *w = local;
        sh_plog_unwatch(w);
        w->fn(w, w->arg);
    }
}

/* ----------------------------------------------------------- offsets */

static void hw_update(sh_plog_t *p)
{
    int64_t hw = p->cfg.durability_object ? p->committed : p->durable;
    if (hw > p->hw) {
        p->hw = hw;
        watches_fire(p);
    }
}

/* ---------------------------------------------------------- lifecycle */

static void plog_free(sh_plog_t *p)
{
    while (p->tail_len)
        tail_pop(p);
    free(p->tail);
    for (size_t i = 0; i < p->nchunks; i++)
        free(p->chunks[i].key);
    free(p->chunks);
    sh_producer_state_free(p->producers);
    free(p->name);
    free(p);
}

static void plog_maybe_free(sh_plog_t *p)
{
    if (p->refs == 0 && p->wal_inflight == 0)
        plog_free(p);
}

void sh_plog_ref(sh_plog_t *p)
{
    p->refs++;
}

void sh_plog_unref(sh_plog_t *p)
{
    if (!p)
        return;
    p->refs--;
    plog_maybe_free(p);
}

typedef struct replay_ctx {
    sh_plog_t *p;
    sh_err_t err;
    int64_t skipped;
} replay_ctx_t;

/* One WAL frame: a batch we appended before the restart. Frames at or
 * below the committed offset are already in objects (a release can be
 * forgotten by a crash); the rest become tail entries again. */
static sh_err_t replay_frame(void *arg, int64_t first, int64_t last, sh_slice_t payload)
{
    replay_ctx_t *rc = arg;
    sh_plog_t *p = rc->p;
    if (last < p->committed) {
        rc->skipped++;
        return SH_OK;
    }
    sh_record_batch_t b;
    if (first < p->next_offset || sh_record_batch_parse(&b, payload) != SH_OK ||
        b.bytes.len != payload.len || b.base_offset != first ||
        sh_record_batch_last_offset(&b) != last) {
        /* Not what we wrote: keep what came before and stop here, so
         * nothing after a damaged frame is served out of order. */
        sh_log(SH_LOG_ERROR, "plog",
               "partition %s: WAL frame %" PRId64 "..%" PRId64 " (%zu bytes) is not the "
               "batch expected at offset %" PRId64 "; ignoring it and every later frame",
               p->name, first, last, payload.len, p->next_offset);
        return SH_E_CORRUPT;
    }
    if (tail_reserve(p) != SH_OK)
        return SH_E_NOMEM;
    sh_block_t *blk = sh_block_new(payload.len);
    if (!blk)
        return SH_E_NOMEM;
    memcpy(blk->data, payload.ptr, payload.len);
    tail_push(p, first, last, b.max_timestamp, blk, blk->data, payload.len);
    sh_block_unref(blk);
    p->next_offset = last + 1;
    p->durable = last + 1;
    /* the batch headers above the snapshot rebuild the producer state */
    if (b.producer_id >= 0 && !sh_record_batch_is_control(&b)) {
        sh_producer_batch_desc_t d = {b.producer_id, b.producer_epoch, b.base_sequence,
                                      b.last_offset_delta, b.max_timestamp};
        if (sh_producer_state_record(p->producers, &d, first, last, sh_clock_wall_ms()) !=
            SH_OK)
            return SH_E_NOMEM;
    }
    return SH_OK;
}

/* The producer state as of the committed offset: the snapshot written
 * right before the commit that reached it. An older one (a commit made
 * before producer snapshots existed) misses the batches in between: a
 * retry of one of those would not be recognised, so say so. */
static sh_err_t producers_load(sh_plog_t *p, sh_meta_t *meta, sh_meta_tp_t tp)
{
    sh_arena_t a;
    sh_arena_init(&a, 4096);
    int64_t as_of = -1;
    const char *data = NULL;
    sh_err_t err = sh_meta_producer_snapshot_get(meta, tp, p->committed, &a, &as_of, &data);
    if (err == SH_E_NOTFOUND) {
        if (p->committed > p->log_start)
            sh_log(SH_LOG_WARN, "plog",
                   "partition %s: no producer snapshot at or below committed offset %" PRId64
                   "; idempotent producers are known only from the WAL",
                   p->name, p->committed);
        err = SH_OK;
    } else if (err == SH_OK) {
        err = sh_producer_state_decode(p->producers, data, strlen(data));
        if (err == SH_E_CORRUPT) {
            sh_log(SH_LOG_ERROR, "plog",
                   "partition %s: the producer snapshot at offset %" PRId64 " is not "
                   "readable; idempotent producers are known only from the WAL",
                   p->name, as_of);
            err = SH_OK;
        } else if (err == SH_OK && as_of != p->committed) {
            sh_log(SH_LOG_WARN, "plog",
                   "partition %s: producer snapshot at offset %" PRId64 " is older than the "
                   "committed offset %" PRId64 "; retries of batches in between are not "
                   "recognised as duplicates",
                   p->name, as_of, p->committed);
        }
    }
    sh_arena_fini(&a);
    return err;
}

/* Producers whose epoch was bumped elsewhere while this partition was
 * closed (another broker's InitProducerId) must not be accepted at their
 * old epoch. One read for all of them; a failure only loses that check. */
static void producers_refence(sh_plog_t *p, sh_meta_t *meta)
{
    size_t n = sh_producer_state_count(p->producers);
    if (n == 0)
        return;
    int64_t *ids = malloc(n * sizeof(*ids));
    int16_t *epochs = malloc(n * sizeof(*epochs));
    if (!ids || !epochs)
        goto out;
    size_t it = 0, k = 0;
    const sh_producer_entry_t *e;
    while (k < n && (e = sh_producer_state_next(p->producers, &it)))
        ids[k++] = e->producer_id;
    sh_err_t err = sh_meta_producer_epochs(meta, ids, k, epochs);
    if (err != SH_OK) {
        sh_log(SH_LOG_WARN, "plog", "partition %s: could not read producer epochs: %s",
               p->name, sh_err_str(err));
        goto out;
    }
    for (size_t i = 0; i < k; i++)
        if (epochs[i] >= 0 && sh_producer_state_fence(p->producers, ids[i], epochs[i]))
            sh_log(SH_LOG_INFO, "plog",
                   "partition %s: producer id %" PRId64 " is at epoch %d now; older epochs "
                   "are fenced", p->name, ids[i], epochs[i]);
out:
    free(ids);
    free(epochs);
}

static sh_err_t load_chunks(sh_plog_t *p, sh_meta_t *meta, sh_meta_tp_t tp)
{
    int64_t from = p->log_start;
    for (;;) {
        sh_arena_t a;
        sh_arena_init(&a, 16384);
        sh_meta_chunk_t *c = NULL;
        size_t n = 0;
        sh_err_t err = sh_meta_chunks_find(meta, tp, from, 1000, &a, &c, &n);
        if (err != SH_OK) {
            sh_arena_fini(&a);
            return err;
        }
        for (size_t i = 0; i < n; i++) {
            if (c[i].last_offset >= p->committed) {
                n = 0; /* cannot happen: chunks end at the high watermark */
                break;
            }
            err = chunk_push(p, c[i].base_offset, c[i].last_offset, c[i].max_timestamp,
                             c[i].object_key, (uint64_t)c[i].byte_offset,
                             (uint32_t)c[i].byte_length);
            if (err) {
                sh_arena_fini(&a);
                return err;
            }
            from = c[i].last_offset + 1;
        }
        sh_arena_fini(&a);
        if (n < 1000)
            return SH_OK;
    }
}

sh_err_t sh_plog_open(const sh_plog_opts_t *o, sh_plog_t **out)
{
    *out = NULL;
    sh_err_t err = SH_E_NOMEM;
    sh_plog_t *p = calloc(1, sizeof(*p));
    if (!p)
        return SH_E_NOMEM;
    p->refs = 1;
    p->topic_id = o->topic_id;
    p->partition = o->partition;
    p->leader_epoch = o->leader_epoch;
    p->cfg = o->cfg;
    if (o->observer)
        p->obs = *o->observer;
    p->epoch_floor = o->producer_epoch_floor;
    p->epoch_arg = o->producer_arg;
    if (!(p->producers = sh_producer_state_new()))
        goto fail;
    size_t nl = strlen(o->topic_name ? o->topic_name : "?") + 16;
    p->name = malloc(nl);
    if (!p->name)
        goto fail;
    snprintf(p->name, nl, "%s-%d", o->topic_name ? o->topic_name : "?", (int)o->partition);

    sh_meta_tp_t tp = {o->topic_id, o->partition};
    sh_meta_partition_t row;
    err = sh_meta_partition_get(o->meta, tp, &row);
    if (err != SH_OK)
        goto fail;
    p->log_start = row.log_start_offset;
    p->committed = row.high_watermark;
    p->upload_mark = p->committed;
    p->durable = p->committed;
    p->next_offset = p->committed;
    err = load_chunks(p, o->meta, tp);
    if (err != SH_OK)
        goto fail;
    err = producers_load(p, o->meta, tp);
    if (err != SH_OK)
        goto fail;

    char key[SH_PLOG_WAL_KEY_SIZE];
    sh_plog_wal_key(o->topic_id, o->partition, key);
    replay_ctx_t rc = {p, SH_OK, 0};
    err = sh_wal_open(o->wal, key, replay_frame, &rc, &p->wal);
    if (err == SH_E_CORRUPT) /* kept what was good; open without replay */
        err = sh_wal_open(o->wal, key, NULL, NULL, &p->wal);
    if (err != SH_OK)
        goto fail;
    if (rc.skipped) /* their RELEASE was lost in a crash: unpin, or they hold the WAL forever */
        sh_wal_release(p->wal, p->committed - 1);
    /* The WAL refuses offsets at or below what it holds; a damaged frame
     * we skipped leaves a gap, which Kafka's offsets allow. */
    int64_t wal_last = sh_wal_last_offset(p->wal);
    if (wal_last + 1 > p->next_offset) {
        p->next_offset = wal_last + 1;
        p->durable = p->next_offset;
    }
    p->hw = p->cfg.durability_object ? p->committed : p->durable;
    for (size_t i = 0; i < p->tail_len; i++)
        p->ready_bytes += tail_at(p, i)->len;
    producers_refence(p, o->meta);
    sh_log(SH_LOG_INFO, "plog",
           "opened partition %s (leader epoch %d): log start %" PRId64 ", committed %" PRId64
           " in %zu chunks, %zu batches (%zu bytes) replayed from the WAL, log end %" PRId64,
           p->name, p->leader_epoch, p->log_start, p->committed, p->nchunks, p->tail_len,
           p->tail_bytes, p->next_offset);
    *out = p;
    return SH_OK;
fail:
    sh_log(SH_LOG_ERROR, "plog", "could not open partition %s: %s",
           p->name ? p->name : "?", sh_err_str(err));
    if (p->wal)
        sh_wal_close(p->wal);
    p->refs = 0;
    plog_free(p);
    return err;
}

static void stop_serving(sh_plog_t *p, sh_err_t err)
{
    if (!p->err)
        p->err = err;
    q_fail_all(p, &p->parked, p->err);
    q_fail_all(p, &p->wait_durable, p->err);
    q_fail_all(p, &p->wait_commit, p->err);
    watches_fire(p);
}

void sh_plog_close(sh_plog_t *p, bool deleted)
{
    if (!p || p->closed)
        return;
    p->closed = true;
    /* A deleted topic answers UNKNOWN_TOPIC_OR_PARTITION even if it was
     * fenced before. */
    if (deleted)
        p->err = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    stop_serving(p, SH_KERR_NOT_LEADER_OR_FOLLOWER);
    if (deleted)
        sh_wal_delete(p->wal);
    else
        sh_wal_close(p->wal);
    p->wal = NULL;
    sh_plog_unref(p);
}

void sh_plog_fence(sh_plog_t *p, sh_err_t err, const char *why)
{
    if (p->err)
        return;
    sh_log(SH_LOG_ERROR, "plog",
           "partition %s (leader epoch %d) is no longer served by this broker: %s; "
           "committed offset %" PRId64 ", durable %" PRId64 " not committed: %" PRId64
           " offsets stay in the WAL",
           p->name, p->leader_epoch, why, p->committed, p->durable,
           p->durable - p->committed);
    stop_serving(p, err);
}

void sh_plog_set_cfg(sh_plog_t *p, const sh_plog_cfg_t *cfg)
{
    p->cfg = *cfg;
    hw_update(p);
}

/* -------------------------------------------------------------- state */

void sh_plog_state(const sh_plog_t *p, sh_plog_state_t *o)
{
    o->log_start_offset = p->log_start;
    o->high_watermark = p->hw;
    o->log_end_offset = p->next_offset;
    o->durable_offset = p->durable;
    o->committed_offset = p->committed;
    o->leader_epoch = p->leader_epoch;
    o->err = p->err;
    o->tail_entries = p->tail_len;
    o->tail_bytes = p->tail_bytes;
    o->chunks = p->nchunks;
}

const char *sh_plog_name(const sh_plog_t *p)
{
    return p->name;
}

sh_uuid_t sh_plog_topic_id(const sh_plog_t *p)
{
    return p->topic_id;
}

int32_t sh_plog_partition(const sh_plog_t *p)
{
    return p->partition;
}

int32_t sh_plog_leader_epoch(const sh_plog_t *p)
{
    return p->leader_epoch;
}

int64_t sh_plog_high_watermark(const sh_plog_t *p)
{
    return p->hw;
}

int64_t sh_plog_log_start(const sh_plog_t *p)
{
    return p->log_start;
}

sh_err_t sh_plog_error(const sh_plog_t *p)
{
    return p->err;
}

/* ------------------------------------------------------------- append */

/* WAL completion: the oldest not-yet-durable entry is now on disk. */
static void wal_done(void *arg, sh_err_t err)
{
    sh_plog_t *p = arg;
    p->wal_inflight--;
    if (p->closed) {
        plog_maybe_free(p);
        return;
    }
    if (err != SH_OK) {
        /* The WAL aborts the process on a failed fsync unless a test hook
         * keeps it alive; then nothing here can become durable again. */
        if (!p->err)
            sh_log(SH_LOG_ERROR, "plog", "partition %s: WAL append failed: %s", p->name,
                   sh_err_str(err));
        stop_serving(p, SH_KERR_KAFKA_STORAGE_ERROR);
        return;
    }
    size_t i = tail_find(p, p->durable);
    if (i == p->tail_len)
        return; /* cannot happen: each completion has its entry */
    plog_entry_t *e = tail_at(p, i);
    p->durable = e->last + 1;
    p->ready_bytes += e->len;
    if (p->obs.durable)
        p->obs.durable(p->obs.arg, p, e->len, e->appended_ms);
    while (p->wait_durable.head && p->wait_durable.head->last_offset < p->durable)
        append_finish(p->wait_durable.head, SH_OK);
    hw_update(p);
}

static sh_err_t map_wal_err(sh_err_t err)
{
    switch (err) {
    case SH_KERR_MESSAGE_TOO_LARGE:
        return SH_KERR_MESSAGE_TOO_LARGE; /* larger than a WAL segment */
    case SH_E_NOMEM:
    case SH_E_IO:
    default:
        return SH_KERR_KAFKA_STORAGE_ERROR;
    }
}

/* Give a validated batch its offset and queue it on the WAL. SH_E_AGAIN
 * when the WAL is full (nothing changed); else 0 or a Kafka code. */
/* Is the batch a duplicate's original already as safe as a new append
 * would have to be before its answer? */
static bool dup_settled(const sh_plog_t *p, const sh_plog_append_t *a)
{
    return a->last_offset < (p->cfg.durability_object ? p->committed : p->durable);
}

/* The producer check, at the moment the batch would get its offset, so
 * batches are judged in log order whatever waited for WAL space. 0: append
 * it; a Kafka code (a->reason set); or 0 with a->duplicate and the
 * original's offsets. */
static sh_err_t producer_check(sh_plog_t *p, sh_plog_append_t *a)
{
    const sh_record_batch_info_t *info = &a->info;
    sh_producer_batch_desc_t d = {info->producer_id, info->producer_epoch,
                                  info->base_sequence, info->last_offset_delta,
                                  info->max_timestamp};
    int16_t floor = p->epoch_floor ? p->epoch_floor(p->epoch_arg, d.producer_id) : -1;
    bool dup = false;
    sh_producer_batch_t orig;
    sh_err_t err = sh_producer_state_check(p->producers, &d, floor, &dup, &orig, &a->reason);
    if (err != SH_OK || !dup)
        return err;
    a->duplicate = true;
    a->base_offset = orig.first_offset;
    a->last_offset = orig.last_offset;
    /* Kafka answers a duplicate with the batch's stored append time; ours
     * is its max timestamp on a LogAppendTime topic */
    a->log_append_time_ms = p->cfg.log_append_time ? orig.max_timestamp : -1;
    a->log_start_offset = p->log_start;
    return SH_OK;
}

static sh_err_t append_now(sh_plog_t *p, sh_plog_append_t *a)
{
    const sh_record_batch_info_t *info = &a->info;
    if (info->producer_id >= 0) {
        sh_err_t perr = producer_check(p, a);
        if (perr != SH_OK || a->duplicate)
            return perr;
    }
    if (tail_reserve(p) != SH_OK)
        return SH_KERR_KAFKA_STORAGE_ERROR;
    uint8_t *bytes = (uint8_t *)info->batch.ptr; /* the frame is ours to patch */
    size_t len = info->batch.len;
    size_t off = (size_t)(bytes - a->block->data);
    int64_t base = p->next_offset;
    int64_t last = base + info->last_offset_delta;

    sh_record_batch_policy_t pol;
    sh_record_batch_policy_init(&pol);
    pol.produce_version = a->produce_version;
    pol.log_append_time = p->cfg.log_append_time;
    pol.now_ms = sh_clock_wall_ms();
    if (sh_record_batch_assign(bytes, info, &pol, base, p->leader_epoch) != SH_OK)
        return SH_KERR_CORRUPT_MESSAGE;
    sh_err_t err = sh_wal_append_block_start(p->wal, base, last, a->block, off, len, wal_done,
                                             p);
    if (err == SH_E_AGAIN)
        return SH_E_AGAIN;
    if (err != SH_OK)
        return map_wal_err(err);
    p->wal_inflight++;
    int64_t max_ts = (int64_t)sh_load_be64(bytes + SH_RB_OFF_MAX_TIMESTAMP);
    tail_push(p, base, last, max_ts, a->block, bytes, len);
    p->next_offset = last + 1;
    a->base_offset = base;
    a->last_offset = last;
    a->log_append_time_ms = p->cfg.log_append_time ? max_ts : -1;
    a->log_start_offset = p->log_start;
    if (info->producer_id >= 0) {
        sh_producer_batch_desc_t d = {info->producer_id, info->producer_epoch,
                                      info->base_sequence, info->last_offset_delta, max_ts};
        /* Out of memory here would leave a written batch unknown to the
         * state, and a retry of it would be stored twice: stop serving the
         * partition instead (its batches stay in the WAL, and the next
         * open rebuilds the state from them). */
        if (sh_producer_state_record(p->producers, &d, base, last, sh_clock_wall_ms()) !=
            SH_OK) {
            sh_plog_fence(p, SH_KERR_KAFKA_STORAGE_ERROR,
                          "out of memory recording an idempotent producer's batch");
            return SH_KERR_KAFKA_STORAGE_ERROR;
        }
    }
    return SH_OK;
}

sh_err_t sh_plog_append_start(sh_plog_t *p, sh_plog_append_t *a)
{
    a->pending = false;
    a->err = SH_OK;
    a->base_offset = -1;
    a->last_offset = -1;
    a->log_append_time_ms = -1;
    a->log_start_offset = p->log_start;
    a->reason = NULL;
    a->error_index = -1;
    a->duplicate = false;
    a->plog = p;
    a->queue = Q_NONE;
    a->prev = a->next = NULL;
    if (p->err)
        return a->err = p->err;
    if (!a->block || !a->records.ptr || a->records.ptr < a->block->data ||
        a->records.ptr + a->records.len > a->block->data + a->block->size) {
        /* a null records field, or bytes outside the frame: nothing valid */
        a->reason = "no record batch";
        return a->err = SH_KERR_INVALID_RECORD;
    }

    sh_record_batch_policy_t pol;
    sh_record_batch_policy_init(&pol);
    pol.produce_version = a->produce_version;
    pol.max_message_bytes = p->cfg.max_message_bytes;
    pol.log_append_time = p->cfg.log_append_time;
    pol.now_ms = sh_clock_wall_ms();
    sh_err_t err = sh_record_batch_validate(a->records, &pol, &a->info);
    if (err != SH_OK) {
        a->reason = a->info.reason;
        a->error_index = a->info.error_index;
        return a->err = err > 0 ? err : SH_KERR_CORRUPT_MESSAGE;
    }
    if (a->info.is_transactional) {
        /* InitProducerId never hands out a transactional producer id, so
         * no correct client gets here (docs/idempotence.md) */
        a->reason = "transactions are not supported";
        return a->err = SH_KERR_INVALID_TXN_STATE;
    }

    if (p->parked.head) {
        /* keep order behind earlier appends that wait for WAL space */
        a->pending = true;
        q_push(p, &p->parked, Q_PARKED, a);
        return SH_OK;
    }
    err = append_now(p, a);
    if (err == SH_E_AGAIN) {
        a->pending = true;
        q_push(p, &p->parked, Q_PARKED, a);
        if (p->obs.parked)
            p->obs.parked(p->obs.arg, p);
        return SH_OK;
    }
    if (err != SH_OK)
        return a->err = err;
    if (a->wait_durable && !(a->duplicate && dup_settled(p, a))) {
        a->pending = true;
        if (p->cfg.durability_object)
            q_push(p, &p->wait_commit, Q_COMMIT, a);
        else
            q_push(p, &p->wait_durable, Q_DURABLE, a);
    }
    return SH_OK;
}

bool sh_plog_append_cancel(sh_plog_append_t *a)
{
    if (!a->pending || a->queue == Q_NONE)
        return false;
    sh_err_t err = a->queue == Q_PARKED ? SH_KERR_REQUEST_TIMED_OUT : SH_OK;
    q_remove(a);
    a->pending = false;
    a->err = err;
    return true;
}

size_t sh_plog_retry_parked(sh_plog_t *p)
{
    while (p->parked.head && !p->err) {
        sh_plog_append_t *a = p->parked.head;
        sh_err_t err = append_now(p, a);
        if (err == SH_E_AGAIN)
            break;
        q_remove(a);
        if (err != SH_OK) {
            a->pending = true; /* append_finish clears it */
            a->queue = Q_NONE;
            append_finish(a, err);
            continue;
        }
        if (!a->wait_durable || (a->duplicate && dup_settled(p, a))) {
            append_finish(a, SH_OK);
            continue;
        }
        if (p->cfg.durability_object)
            q_push(p, &p->wait_commit, Q_COMMIT, a);
        else
            q_push(p, &p->wait_durable, Q_DURABLE, a);
    }
    return p->parked.n;
}

size_t sh_plog_parked(const sh_plog_t *p)
{
    return p->parked.n;
}

/* --------------------------------------------------------------- read */

sh_err_t sh_plog_read(sh_plog_t *p, int64_t offset, size_t max_bytes, bool min_one,
                      sh_plog_slice_t *slices, size_t max_slices, sh_plog_read_t *out)
{
    memset(out, 0, sizeof(*out));
    if (p->err)
        return p->err;
    if (offset < p->log_start || offset > p->next_offset)
        return SH_KERR_OFFSET_OUT_OF_RANGE;
    if (offset >= p->hw)
        return SH_OK; /* nothing visible yet */
    if (offset < p->committed) {
        size_t i = chunk_find(p, offset);
        if (i == p->nchunks)
            return SH_KERR_OFFSET_OUT_OF_RANGE; /* cannot happen: chunks reach committed */
        out->where = SH_PLOG_OBJECT;
        chunk_loc(&p->chunks[i], &out->chunk);
        return SH_OK;
    }
    out->where = SH_PLOG_TAIL;
    for (size_t i = tail_find(p, offset); i < p->tail_len && out->nslices < max_slices; i++) {
        const plog_entry_t *e = tail_at(p, i);
        if (e->last >= p->hw)
            break;
        if (out->bytes + e->len > max_bytes && !(min_one && out->nslices == 0))
            break;
        slice_of(e, &slices[out->nslices++]);
        out->bytes += e->len;
    }
    if (out->nslices == 0)
        out->where = SH_PLOG_NONE;
    return SH_OK;
}

sh_err_t sh_plog_find_time(sh_plog_t *p, int64_t ts, sh_plog_slice_t *slice, sh_plog_read_t *out)
{
    memset(out, 0, sizeof(*out));
    if (p->err)
        return p->err;
    for (size_t i = 0; i < p->nchunks; i++) {
        if (p->chunks[i].last < p->log_start)
            continue;
        if (p->chunks[i].max_ts >= ts) {
            out->where = SH_PLOG_OBJECT;
            chunk_loc(&p->chunks[i], &out->chunk);
            return SH_OK;
        }
    }
    /* batches wholly below the log start (DeleteRecords into the tail) are gone */
    int64_t from = p->committed > p->log_start ? p->committed : p->log_start;
    for (size_t i = tail_find(p, from); i < p->tail_len; i++) {
        const plog_entry_t *e = tail_at(p, i);
        if (e->last >= p->hw)
            break;
        if (e->max_ts >= ts) {
            out->where = SH_PLOG_TAIL;
            out->nslices = 1;
            out->bytes = e->len;
            slice_of(e, slice);
            return SH_OK;
        }
    }
    return SH_E_NOTFOUND;
}

sh_err_t sh_plog_find_max_time(sh_plog_t *p, sh_plog_slice_t *slice, sh_plog_read_t *out)
{
    memset(out, 0, sizeof(*out));
    if (p->err)
        return p->err;
    const plog_chunk_t *bc = NULL;
    const plog_entry_t *be = NULL;
    int64_t best = INT64_MIN;
    for (size_t i = 0; i < p->nchunks; i++) {
        if (p->chunks[i].last < p->log_start)
            continue;
        if (!bc || p->chunks[i].max_ts > best) {
            bc = &p->chunks[i];
            best = bc->max_ts;
        }
    }
    int64_t from = p->committed > p->log_start ? p->committed : p->log_start;
    for (size_t i = tail_find(p, from); i < p->tail_len; i++) {
        const plog_entry_t *e = tail_at(p, i);
        if (e->last >= p->hw)
            break;
        if ((!bc && !be) || e->max_ts > best) {
            be = e;
            best = e->max_ts;
        }
    }
    if (be) {
        out->where = SH_PLOG_TAIL;
        out->nslices = 1;
        out->bytes = be->len;
        slice_of(be, slice);
        return SH_OK;
    }
    if (bc) {
        out->where = SH_PLOG_OBJECT;
        chunk_loc(bc, &out->chunk);
        return SH_OK;
    }
    return SH_E_NOTFOUND;
}

/* ---------------------------------------------------------- retention */

void sh_plog_chunk_stats(const sh_plog_t *p, sh_plog_chunk_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->first_max_ts = INT64_MAX;
    for (size_t i = 0; i < p->nchunks; i++) {
        const plog_chunk_t *c = &p->chunks[i];
        if (c->last < p->log_start) {
            out->dead++;
            continue;
        }
        if (out->live++ == 0) {
            out->first_bytes = c->byte_length;
            out->first_max_ts = c->max_ts;
        }
        out->live_bytes += c->byte_length;
    }
}

size_t sh_plog_log_start_advance(sh_plog_t *p, int64_t offset)
{
    if (offset > p->log_start)
        p->log_start = offset;
    /* chunks are in offset order: the dead ones are a prefix */
    size_t n = chunk_find(p, p->log_start);
    for (size_t i = 0; i < n; i++)
        free(p->chunks[i].key);
    if (n) {
        memmove(p->chunks, p->chunks + n, (p->nchunks - n) * sizeof(*p->chunks));
        p->nchunks -= n;
    }
    return n;
}

/* ------------------------------------------------------------- upload */

size_t sh_plog_upload_ready(const sh_plog_t *p, int64_t *oldest_ms)
{
    *oldest_ms = -1;
    if (p->err || p->uploading || p->ready_bytes == 0)
        return 0;
    size_t i = tail_find(p, p->upload_mark);
    if (i < p->tail_len)
        *oldest_ms = tail_at(p, i)->appended_ms;
    return p->ready_bytes;
}

void sh_plog_upload_release(sh_plog_upload_t *u)
{
    for (int i = 0; i < u->iovcnt; i++)
        sh_block_unref(u->blocks[i]);
    free(u->iov);
    free(u->blocks);
    free(u->producer_state);
    free(u->touched);
    if (u->plog)
        sh_plog_unref(u->plog);
    memset(u, 0, sizeof(*u));
}

sh_err_t sh_plog_upload_take(sh_plog_t *p, size_t max_bytes, sh_plog_upload_t *out)
{
    memset(out, 0, sizeof(*out));
    if (p->err || p->uploading || p->ready_bytes == 0)
        return SH_E_NOTFOUND;
    size_t first = tail_find(p, p->upload_mark), n = 0, bytes = 0;
    for (size_t i = first; i < p->tail_len; i++) {
        const plog_entry_t *e = tail_at(p, i);
        if (e->last >= p->durable || (n > 0 && bytes + e->len > max_bytes))
            break;
        bytes += e->len;
        n++;
    }
    if (n == 0)
        return SH_E_NOTFOUND;
    out->iov = malloc(n * sizeof(*out->iov));
    out->blocks = malloc(n * sizeof(*out->blocks));
    if (!out->iov || !out->blocks) {
        free(out->iov);
        free(out->blocks);
        memset(out, 0, sizeof(*out));
        return SH_E_NOMEM;
    }
    for (size_t k = 0; k < n; k++) {
        const plog_entry_t *e = tail_at(p, first + k);
        out->iov[k] = (struct iovec){(void *)e->ptr, e->len};
        out->blocks[k] = sh_block_ref(e->block);
        out->last_offset = e->last;
    }
    out->iovcnt = (int)n;
    out->bytes = bytes;
    size_t hexlen;
    if (sh_producer_state_encode(p->producers, out->last_offset + 1, &out->producer_state,
                                 &hexlen) != SH_OK ||
        sh_producer_state_take_touched(p->producers, &out->touched, &out->ntouched) != SH_OK) {
        for (size_t k = 0; k < n; k++)
            sh_block_unref(out->blocks[k]);
        free(out->iov);
        free(out->blocks);
        free(out->producer_state);
        memset(out, 0, sizeof(*out));
        return SH_E_NOMEM;
    }
    out->base_offset = p->upload_mark;
    out->leader_epoch = p->leader_epoch;
    out->plog = p;
    sh_plog_ref(p);
    p->uploading = true;
    p->upload_mark = out->last_offset + 1;
    p->ready_bytes -= bytes;
    return SH_OK;
}

void sh_plog_upload_abort(sh_plog_upload_t *u)
{
    sh_plog_t *p = u->plog;
    if (p && p->uploading && p->upload_mark == u->last_offset + 1) {
        p->uploading = false;
        p->upload_mark = u->base_offset;
        p->ready_bytes += u->bytes;
    }
    if (p)
        sh_producer_state_retouch(p->producers, u->touched, u->ntouched);
    sh_plog_upload_release(u);
}

void sh_plog_upload_done(sh_plog_upload_t *u, const char *object_key, uint64_t byte_offset,
                         uint32_t byte_length, int64_t max_timestamp)
{
    sh_plog_t *p = u->plog;
    if (!p || p->closed || p->upload_mark != u->last_offset + 1) {
        sh_plog_upload_release(u);
        return;
    }
    sh_plog_ref(p); /* u's reference goes with it below */
    p->uploading = false;
    if (chunk_push(p, u->base_offset, u->last_offset, max_timestamp, object_key, byte_offset,
                   byte_length) != SH_OK) {
        /* The commit stands in the metadata store; without the index entry
         * this broker cannot serve those offsets until it reopens the
         * partition, so stop serving it rather than answer wrongly. */
        sh_plog_upload_release(u);
        sh_plog_fence(p, SH_KERR_KAFKA_STORAGE_ERROR, "out of memory extending the chunk index");
        sh_plog_unref(p);
        return;
    }
    p->committed = u->last_offset + 1;
    if (!p->err)
        sh_wal_release(p->wal, u->last_offset);
    for (size_t i = 0; i < u->ntouched; i++)
        if (u->touched[i].recorded_epoch > u->touched[i].epoch)
            sh_plog_producer_fence(p, u->touched[i].producer_id, u->touched[i].recorded_epoch);
    while (p->tail_len && tail_at(p, 0)->last < p->committed)
        tail_pop(p);
    sh_plog_upload_release(u);
    while (p->wait_commit.head && p->wait_commit.head->last_offset < p->committed)
        append_finish(p->wait_commit.head, SH_OK);
    hw_update(p);
    sh_plog_unref(p);
}

/* ---------------------------------------------------------- producers */

const sh_producer_state_t *sh_plog_producers(const sh_plog_t *p)
{
    return p->producers;
}

size_t sh_plog_producers_expire(sh_plog_t *p, int64_t now_ms, int64_t expiration_ms)
{
    return sh_producer_state_expire(p->producers, now_ms, expiration_ms);
}

void sh_plog_producer_fence(sh_plog_t *p, int64_t producer_id, int16_t epoch)
{
    if (sh_producer_state_fence(p->producers, producer_id, epoch))
        sh_log(SH_LOG_INFO, "plog",
               "partition %s: producer id %" PRId64 " moved to epoch %d elsewhere; its older "
               "epochs are fenced here", p->name, producer_id, epoch);
}
