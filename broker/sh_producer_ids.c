/*
 * sh_producer_ids.c - producer id blocks, epoch bumps and floors, and
 * producer expiry for the broker (see sh_producer_ids.h).
 *
 * InitProducerId is one metadata op: run() (metadata worker) bumps the
 * given id in the store or records a fresh one, reserving a new block
 * when the loop had no id left to give; done() (loop) keeps the rest of
 * that block, raises the epoch floor of a bumped or fenced id, and calls
 * back. While one op reserves a block, requests for fresh ids wait in a
 * FIFO and go out with ids from that block when it arrives, so a storm of
 * producers starting at once costs one block, not one each. (A bump that
 * ends in a fresh id reserves its own block: rare, and the surplus is
 * dropped; ids are 63 bits.)
 *
 * Floors: producer id -> lowest accepted epoch, only for ids this broker
 * bumped or saw fenced. Looked up on every idempotent append, so an
 * open-addressing table; entries age out with producer expiry (rebuilt
 * without them, so no tombstones).
 *
 * Thread: loop thread, except the ops' run functions, which touch only
 * their own op struct. Ownership: the struct owns its ops until their
 * done runs (the metadata store runs every queued done before closing,
 * which is why the broker frees this after the store).
 */
#include "broker/sh_producer_ids.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "broker/sh_broker.h"
#include "broker/sh_registry.h"
#include "common/sh_clock.h"
#include "common/sh_log.h"
#include "meta/sh_meta.h"
#include "storage/sh_plog.h"

typedef struct floor_slot {
    int64_t producer_id;     /* -1: free */
    int16_t epoch;
    int64_t updated_ms;      /* wall clock of the bump that set it */
} floor_slot_t;

struct sh_producer_ids {
    sh_loop_t *loop;
    sh_meta_t *meta;
    sh_registry_t *registry;
    int32_t broker_id;
    int64_t expiration_ms;
    int64_t check_ms;

    int64_t pool_next, pool_end;     /* ids of our block not yet handed out */
    bool refilling;                  /* an op is reserving a block */
    struct init_op *wait_head, *wait_tail; /* fresh-id requests waiting for it */

    floor_slot_t *floors;
    size_t floors_cap, nfloors;      /* cap: power of two or 0 */

    sh_timer_t timer;
    bool expire_inflight;
    bool closing;
};

/* ---------------------------------------------------------------- floors */

static size_t floor_hash(int64_t id, size_t cap)
{
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    return (size_t)(x ^ (x >> 31)) & (cap - 1);
}

static floor_slot_t *floor_find(const sh_producer_ids_t *ps, int64_t id)
{
    if (!ps->floors_cap)
        return NULL;
    for (size_t i = floor_hash(id, ps->floors_cap);; i = (i + 1) & (ps->floors_cap - 1)) {
        floor_slot_t *s = &ps->floors[i];
        if (s->producer_id == id)
            return s;
        if (s->producer_id < 0)
            return NULL;
    }
}

/* Rebuild into cap slots, keeping entries updated at or after keep_since. */
static sh_err_t floor_rebuild(sh_producer_ids_t *ps, size_t cap, int64_t keep_since)
{
    floor_slot_t *n = malloc(cap * sizeof(*n));
    if (!n)
        return SH_E_NOMEM;
    for (size_t i = 0; i < cap; i++)
        n[i].producer_id = -1;
    size_t kept = 0;
    for (size_t i = 0; i < ps->floors_cap; i++) {
        const floor_slot_t *s = &ps->floors[i];
        if (s->producer_id < 0 || s->updated_ms < keep_since)
            continue;
        size_t j = floor_hash(s->producer_id, cap);
        while (n[j].producer_id >= 0)
            j = (j + 1) & (cap - 1);
        n[j] = *s;
        kept++;
    }
    free(ps->floors);
    ps->floors = n;
    ps->floors_cap = cap;
    ps->nfloors = kept;
    return SH_OK;
}

static void floor_raise(sh_producer_ids_t *ps, int64_t id, int16_t epoch, int64_t now_ms)
{
    floor_slot_t *s = floor_find(ps, id);
    if (!s) {
        if ((ps->nfloors + 1) * 2 > ps->floors_cap &&
            floor_rebuild(ps, ps->floors_cap ? ps->floors_cap * 2 : 64, INT64_MIN) != SH_OK) {
            /* Only this broker's early fencing is lost; the store still
             * refuses the old epoch at the next snapshot. */
            sh_log(SH_LOG_WARN, "producer", "out of memory noting the epoch of producer id %"
                   PRId64, id);
            return;
        }
        size_t i = floor_hash(id, ps->floors_cap);
        while (ps->floors[i].producer_id >= 0)
            i = (i + 1) & (ps->floors_cap - 1);
        s = &ps->floors[i];
        s->producer_id = id;
        s->epoch = -1;
        ps->nfloors++;
    }
    if (epoch > s->epoch)
        s->epoch = epoch;
    s->updated_ms = now_ms;
}

int16_t sh_producer_ids_epoch_floor(void *arg, int64_t producer_id)
{
    const sh_producer_ids_t *ps = arg;
    if (!ps)
        return -1;
    const floor_slot_t *s = floor_find(ps, producer_id);
    return s ? s->epoch : -1;
}

/* ------------------------------------------------------- InitProducerId */

typedef struct init_op {
    sh_meta_op_t op;                 /* first */
    sh_producer_ids_t *ps;
    int32_t broker_id;
    int64_t req_pid;
    int16_t req_epoch;
    int64_t new_pid;                 /* in: from the pool, or -1 */
    /* out (run) */
    int64_t block_next, block_end;   /* the rest of a block run reserved */
    int64_t out_pid;
    int16_t out_epoch;
    int16_t seen_epoch;              /* the store's epoch of req_pid, or -1 */
    sh_err_t result;
    bool refill;                     /* this op reserves the loop's next block */
    sh_producer_ids_init_fn cb;
    void *arg;
    struct init_op *next;            /* in the wait FIFO */
} init_op_t;

static void init_submit(sh_producer_ids_t *ps, init_op_t *o);

static sh_err_t init_run(sh_meta_t *m, sh_meta_op_t *op)
{
    init_op_t *o = (init_op_t *)op;
    int64_t now = sh_clock_wall_ms();
    sh_err_t err;
    o->block_next = o->block_end = -1;
    o->seen_epoch = -1;
    o->result = SH_OK;
    if (o->req_pid >= 0 && o->req_epoch <= SH_META_PRODUCER_EPOCH_MAX) {
        sh_meta_producer_t rec;
        err = sh_meta_producer_bump(m, o->req_pid, o->req_epoch, now, &rec);
        if (err == SH_E_FENCED) {
            o->seen_epoch = rec.epoch;
            o->result = SH_E_FENCED;
            return SH_OK;
        }
        if (err == SH_OK) {
            o->seen_epoch = rec.epoch;
            if (rec.epoch <= SH_META_PRODUCER_EPOCH_MAX) {
                o->out_pid = o->req_pid;
                o->out_epoch = rec.epoch;
                return SH_OK;
            }
            /* epoch exhausted: the old id stays fenced at its last epoch
             * and the producer continues under a fresh one (Kafka's rule) */
        } else if (err != SH_E_NOTFOUND) {
            return err; /* NOTFOUND: expired, a fresh id as KIP-360 says */
        }
    }
    if (o->new_pid < 0) {
        int64_t first;
        err = sh_meta_producer_ids_allocate(m, o->broker_id, SH_PRODUCER_IDS_BLOCK, now, &first);
        if (err != SH_OK)
            return err;
        o->new_pid = first;
        o->block_next = first + 1;
        o->block_end = first + SH_PRODUCER_IDS_BLOCK;
    }
    if ((err = sh_meta_producer_init(m, o->new_pid, now)) != SH_OK)
        return err;
    o->out_pid = o->new_pid;
    o->out_epoch = 0;
    return SH_OK;
}

/* Give waiting fresh-id requests ids from the pool; when it runs dry the
 * next waiter becomes the one that reserves a block. */
static void wait_release(sh_producer_ids_t *ps)
{
    while (ps->wait_head && !ps->refilling) {
        init_op_t *w = ps->wait_head;
        ps->wait_head = w->next;
        if (!ps->wait_head)
            ps->wait_tail = NULL;
        w->next = NULL;
        init_submit(ps, w);
    }
}

static void init_done(sh_meta_op_t *op)
{
    init_op_t *o = (init_op_t *)op;
    sh_producer_ids_t *ps = o->ps;
    sh_err_t err = op->err != SH_OK ? op->err : o->result;
    if (o->refill)
        ps->refilling = false;
    if (op->err == SH_OK) {
        if (o->block_next >= 0 && ps->pool_next >= ps->pool_end) {
            ps->pool_next = o->block_next;
            ps->pool_end = o->block_end;
        }
        if (o->seen_epoch >= 0)
            floor_raise(ps, o->req_pid, o->seen_epoch, sh_clock_wall_ms());
    } else {
        sh_log(SH_LOG_WARN, "producer", "could not hand out a producer id: %s",
               sh_err_str(op->err));
    }
    if (err == SH_OK && o->out_pid != o->req_pid)
        sh_log(SH_LOG_DEBUG, "producer", "producer id %" PRId64 " epoch 0 handed out",
               o->out_pid);
    else if (err == SH_OK)
        sh_log(SH_LOG_DEBUG, "producer", "producer id %" PRId64 " bumped to epoch %d",
               o->out_pid, o->out_epoch);
    o->cb(o->arg, err, err == SH_OK ? o->out_pid : -1, err == SH_OK ? o->out_epoch : -1);
    free(o);
    wait_release(ps);
}

/* Decide where a request's id comes from: false when it has to wait for
 * the block another op is reserving (it is queued), true when it can go:
 * with an id from the pool, as the op that reserves the next block, or as
 * a bump (which usually keeps its id and takes none). */
static bool init_place(sh_producer_ids_t *ps, init_op_t *o)
{
    if (o->req_pid >= 0)
        return true;
    if (ps->pool_next < ps->pool_end) {
        o->new_pid = ps->pool_next++;
        return true;
    }
    if (ps->refilling) {
        if (ps->wait_tail)
            ps->wait_tail->next = o;
        else
            ps->wait_head = o;
        ps->wait_tail = o;
        return false;
    }
    ps->refilling = true;
    o->refill = true;
    return true;
}

static sh_err_t init_send(sh_producer_ids_t *ps, init_op_t *o)
{
    o->op.run = init_run;
    o->op.done = init_done;
    sh_err_t err = sh_meta_submit(ps->meta, &o->op);
    if (err != SH_OK && o->refill)
        ps->refilling = false;
    return err;
}

/* A waiter's turn (from a done callback): its callback runs in every
 * case, here at once only when the store is closing. */
static void init_submit(sh_producer_ids_t *ps, init_op_t *o)
{
    if (!init_place(ps, o) || init_send(ps, o) == SH_OK)
        return;
    o->cb(o->arg, SH_E_CLOSED, -1, -1);
    free(o);
}

sh_err_t sh_producer_ids_init_start(sh_producer_ids_t *ps, int64_t producer_id, int16_t epoch,
                                    sh_producer_ids_init_fn cb, void *arg)
{
    if (ps->closing)
        return SH_E_CLOSED;
    init_op_t *o = calloc(1, sizeof(*o));
    if (!o)
        return SH_E_NOMEM;
    o->ps = ps;
    o->broker_id = ps->broker_id;
    o->req_pid = producer_id;
    o->req_epoch = epoch;
    o->new_pid = -1;
    o->cb = cb;
    o->arg = arg;
    if (!init_place(ps, o))
        return SH_OK;
    sh_err_t err = init_send(ps, o);
    if (err != SH_OK)
        free(o); /* refused at once: the callback will not run */
    return err;
}

/* ---------------------------------------------------------------- expiry */

typedef struct expire_op {
    sh_meta_op_t op;
    sh_producer_ids_t *ps;
    int64_t cutoff_ms;
    int64_t removed;
} expire_op_t;

static sh_err_t expire_run(sh_meta_t *m, sh_meta_op_t *op)
{
    expire_op_t *e = (expire_op_t *)op;
    return sh_meta_producers_expire(m, e->cutoff_ms, &e->removed);
}

static void expire_done(sh_meta_op_t *op)
{
    expire_op_t *e = (expire_op_t *)op;
    e->ps->expire_inflight = false;
    if (op->err != SH_OK)
        sh_log(SH_LOG_WARN, "producer", "could not expire producer ids in the metadata "
               "store: %s", sh_err_str(op->err));
    else if (e->removed > 0)
        sh_log(SH_LOG_INFO, "producer", "forgot %" PRId64 " producer ids idle for %" PRId64
               " ms", e->removed, e->ps->expiration_ms);
    free(e);
}

void sh_producer_ids_expire_now(sh_producer_ids_t *ps, int64_t wall_ms)
{
    int64_t cutoff = wall_ms - ps->expiration_ms;
    size_t gone = 0;
    sh_rtopic_t **ts = NULL;
    size_t nt = ps->registry ? sh_registry_topics(ps->registry, &ts) : 0;
    for (size_t i = 0; i < nt; i++)
        for (int32_t j = 0; j < ts[i]->partition_count; j++)
            if (ts[i]->partitions[j]->log)
                gone += sh_plog_producers_expire(ts[i]->partitions[j]->log, wall_ms,
                                                 ps->expiration_ms);
    if (gone)
        sh_log(SH_LOG_INFO, "producer", "%zu idle producers expired from partitions "
               "(producer.id.expiration.ms %" PRId64 ")", gone, ps->expiration_ms);
    if (ps->nfloors)
        floor_rebuild(ps, ps->floors_cap, cutoff); /* out of memory: kept as they are */
    if (ps->expire_inflight || ps->closing || !ps->meta)
        return;
    expire_op_t *e = calloc(1, sizeof(*e));
    if (!e)
        return;
    e->ps = ps;
    e->cutoff_ms = cutoff;
    e->op.run = expire_run;
    e->op.done = expire_done;
    if (sh_meta_submit(ps->meta, &e->op) != SH_OK) {
        free(e);
        return;
    }
    ps->expire_inflight = true;
}

static void expire_tick(sh_timer_t *t, void *arg)
{
    sh_producer_ids_t *ps = arg;
    (void)t;
    sh_producer_ids_expire_now(ps, sh_clock_wall_ms());
    sh_loop_timer_arm(ps->loop, &ps->timer, ps->check_ms);
}

/* ------------------------------------------------------------- lifecycle */

sh_producer_ids_t *sh_producer_ids_new(sh_broker_t *b)
{
    sh_producer_ids_t *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return NULL;
    ps->loop = b->loop;
    ps->meta = b->meta;
    ps->registry = b->registry;
    ps->broker_id = b->node_id;
    ps->expiration_ms = b->cfg->producer_id_expiration_ms;
    ps->check_ms = b->cfg->producer_id_expiration_check_interval_ms;
    sh_timer_init(&ps->timer, expire_tick, ps);
    if (ps->loop && sh_loop_timer_arm(ps->loop, &ps->timer, ps->check_ms) != SH_OK) {
        free(ps);
        return NULL;
    }
    return ps;
}

void sh_producer_ids_free(sh_producer_ids_t *ps)
{
    if (!ps)
        return;
    ps->closing = true;
    if (ps->loop)
        sh_loop_timer_cancel(ps->loop, &ps->timer);
    /* cannot happen after the store closed (it ran every done, which
     * released the waiters), but never leave a request unanswered */
    while (ps->wait_head) {
        init_op_t *w = ps->wait_head;
        ps->wait_head = w->next;
        w->cb(w->arg, SH_E_CLOSED, -1, -1);
        free(w);
    }
    free(ps->floors);
    free(ps);
}
