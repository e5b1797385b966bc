/*
 * sh_retention.c - retention passes, DeleteRecords advances and the sweep
 * of unreferenced segment objects (see sh_retention.h for the model and
 * docs/retention.md for the behaviour).
 *
 * A pass is a chain of single steps, never two at once:
 *
 *   items (partitions with work, picked in memory)
 *     -> one TRIM metadata op per item: compute the new log start from
 *        the store's chunks, advance it, read it back; on the loop the
 *        partition log follows
 *     -> sweep: LIST unreferenced objects -> delete them from the store
 *        -> FORGET them -> LIST again while full batches went
 *     -> done; the next full pass is due check_interval_ms after this one
 *        started.
 *
 * DeleteRecords ADVANCE ops run beside passes (the metadata worker orders
 * them); when one frees objects it asks for a sweep-only pass.
 *
 * Every metadata op and object-store call carries a job_t linked in the
 * engine's in-flight list. sh_retention_free() orphans them (job->rt =
 * NULL): their completions, which the caller's stores still deliver, then
 * release what the job holds, and an ADVANCE still answers its caller.
 *
 * Thread: loop thread (the TRIM/ADVANCE/LIST/FORGET run functions on the
 * metadata worker touch only their job). Ownership: items and jobs hold
 * one reference to their partition log; keys are heap copies owned by
 * their job.
 */
#include "storage/sh_retention.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/sh_clock.h"
#include "common/sh_log.h"

#define DEFAULT_INTERVAL_MS 300000
#define DEFAULT_SWEEP_BATCH 1000

typedef struct item {
    sh_plog_t *plog;             /* referenced */
    int64_t retention_ms, retention_bytes;
    int64_t cutoff_ms;           /* wall clock: chunks with max timestamp below go */
    int64_t floor;               /* the in-memory log start when listed */
} item_t;

typedef struct job job_t;
struct job {
    sh_meta_op_t op;             /* first: the metadata worker hands it back */
    sh_retention_t *rt;          /* NULL once orphaned */
    job_t *prev, *next;          /* rt->jobs */

    /* TRIM and ADVANCE */
    sh_plog_t *plog;             /* referenced */
    sh_meta_tp_t tp;
    int64_t offset;              /* ADVANCE: asked for; TRIM: floor */
    int64_t retention_ms, retention_bytes, cutoff_ms;
    int64_t log_start;           /* out: what the store holds afterwards */
    int64_t by_time, by_size;    /* out (TRIM): what each rule asked for, -1 if off */
    size_t nfreed;               /* out: objects whose last live chunk went */
    sh_retention_done_fn cb;
    void *cb_arg;

    /* LIST, the delete, FORGET */
    size_t limit;
    char **keys;
    size_t nkeys;
    const char **ok;             /* the keys the store deleted */
    size_t nok;
};

struct sh_retention {
    sh_retention_opts_t o;
    job_t *jobs;                 /* in flight */

    bool running;                /* a pass is in flight */
    bool full;                   /* ... and it looks at partitions (not sweep-only) */
    bool first_done;             /* the first full pass since start has run */
    bool sweep_due;              /* a DeleteRecords freed objects */
    int64_t next_pass_ms;        /* monotonic */
    item_t *items;
    size_t nitems, cap, next_item;

    sh_retention_stats_t st;
};

static void pass_step(sh_retention_t *rt);

/* ----------------------------------------------------------------- jobs */

static job_t *job_new(sh_retention_t *rt)
{
    job_t *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->rt = rt;
    j->next = rt->jobs;
    if (rt->jobs)
        rt->jobs->prev = j;
    rt->jobs = j;
    return j;
}

static void job_keys_free(job_t *j)
{
    for (size_t i = 0; i < j->nkeys; i++)
        free(j->keys[i]);
    free(j->keys);
    free(j->ok);
    j->keys = NULL;
    j->ok = NULL;
    j->nkeys = j->nok = 0;
}

static void job_free(job_t *j)
{
    sh_retention_t *rt = j->rt;
    if (rt) {
        if (j->prev)
            j->prev->next = j->next;
        else
            rt->jobs = j->next;
        if (j->next)
            j->next->prev = j->prev;
    }
    if (j->plog)
        sh_plog_unref(j->plog);
    job_keys_free(j);
    free(j);
}

static int64_t wall_now(const sh_retention_t *rt)
{
    return rt->o.wall_ms ? rt->o.wall_ms(rt->o.clock_arg) : sh_clock_wall_ms();
}

/* ------------------------------------------------------------ metadata */

/* TRIM, on the metadata worker: Kafka's rules on the store's chunks, then
 * one advance. Each call is its own transaction; nothing here can move a
 * log start backwards, so interleaving with DeleteRecords is harmless. */
static sh_err_t trim_run(sh_meta_t *m, sh_meta_op_t *op)
{
    job_t *j = (job_t *)op;
    int64_t target = j->offset;
    sh_err_t err;
    j->by_time = j->by_size = -1;
    if (j->retention_ms >= 0) {
        err = sh_meta_retention_by_time(m, j->tp, j->cutoff_ms, &j->by_time);
        if (err != SH_OK)
            return err;
        if (j->by_time > target)
            target = j->by_time;
    }
    if (j->retention_bytes >= 0) {
        err = sh_meta_retention_by_size(m, j->tp, j->retention_bytes, &j->by_size);
        if (err != SH_OK)
            return err;
        if (j->by_size > target)
            target = j->by_size;
    }
    sh_arena_t a;
    sh_arena_init(&a, 4096);
    sh_meta_object_t *freed = NULL;
    err = sh_meta_partition_log_start_advance(m, j->tp, target, &a, &freed, &j->nfreed);
    sh_arena_fini(&a);
    if (err != SH_OK)
        return err;
    sh_meta_partition_t row;
    if ((err = sh_meta_partition_get(m, j->tp, &row)) != SH_OK)
        return err;
    j->log_start = row.log_start_offset;
    return SH_OK;
}

/* ADVANCE (DeleteRecords), on the metadata worker. */
static sh_err_t advance_run(sh_meta_t *m, sh_meta_op_t *op)
{
    job_t *j = (job_t *)op;
    sh_arena_t a;
    sh_arena_init(&a, 4096);
    sh_meta_object_t *freed = NULL;
    sh_err_t err = sh_meta_partition_log_start_advance(m, j->tp, j->offset, &a, &freed,
                                                       &j->nfreed);
    sh_arena_fini(&a);
    if (err != SH_OK)
        return err;
    sh_meta_partition_t row;
    if ((err = sh_meta_partition_get(m, j->tp, &row)) != SH_OK)
        return err;
    j->log_start = row.log_start_offset;
    return SH_OK;
}

/* The store committed a log start: the partition log follows. */
static void plog_follow(sh_retention_t *rt, job_t *j, const char *why)
{
    int64_t before = sh_plog_log_start(j->plog);
    size_t dropped = sh_plog_log_start_advance(j->plog, j->log_start);
    if (rt) {
        rt->st.chunks_dropped += dropped;
        if (j->log_start > before)
            rt->st.advances++;
    }
    if (j->log_start > before)
        sh_log(SH_LOG_INFO, "retention",
               "partition %s: log start offset %" PRId64 " -> %" PRId64 " (%s); %zu chunks "
               "dropped, %zu segment objects unreferenced",
               sh_plog_name(j->plog), before, j->log_start, why, dropped, j->nfreed);
}

static void trim_done(sh_meta_op_t *op)
{
    job_t *j = (job_t *)op;
    sh_retention_t *rt = j->rt;
    if (op->err == SH_OK) {
        /* name the rule that went furthest */
        const char *why = j->by_size > j->offset && j->by_size >= j->by_time ? "retention.bytes"
                          : j->by_time > j->offset                             ? "retention.ms"
                                                                               : "sweep";
        plog_follow(rt, j, why);
    } else if (op->err != SH_KERR_UNKNOWN_TOPIC_OR_PARTITION) {
        /* a deleted partition needs nothing more; anything else is retried
         * by the next pass */
        sh_log(SH_LOG_WARN, "retention", "could not apply retention to partition %s: %s",
               sh_plog_name(j->plog), sh_err_str(op->err));
        if (rt)
            rt->st.failures++;
    }
    job_free(j);
    if (rt)
        pass_step(rt);
}

static void advance_done(sh_meta_op_t *op)
{
    job_t *j = (job_t *)op;
    sh_retention_t *rt = j->rt;
    sh_err_t err = op->err;
    int64_t log_start = -1;
    if (err == SH_OK) {
        plog_follow(rt, j, "DeleteRecords");
        log_start = j->log_start;
        if (rt && j->nfreed > 0)
            rt->sweep_due = true; /* drive starts it when no pass runs */
    } else {
        sh_log(SH_LOG_WARN, "retention",
               "could not move the log start offset of partition %s to %" PRId64 ": %s",
               sh_plog_name(j->plog), j->offset, sh_err_str(err));
        if (rt && err != SH_KERR_UNKNOWN_TOPIC_OR_PARTITION)
            rt->st.failures++;
    }
    sh_retention_done_fn cb = j->cb;
    void *arg = j->cb_arg;
    job_free(j);
    cb(arg, err, log_start);
}

/* ----------------------------------------------------------------- sweep */

static sh_err_t list_run(sh_meta_t *m, sh_meta_op_t *op)
{
    job_t *j = (job_t *)op;
    sh_arena_t a;
    sh_arena_init(&a, 16384);
    sh_meta_object_t *objs = NULL;
    size_t n = 0;
    sh_err_t err = sh_meta_objects_unreferenced(m, j->limit, &a, &objs, &n);
    if (err == SH_OK && n > 0) {
        j->keys = calloc(n, sizeof(*j->keys));
        j->ok = calloc(n, sizeof(*j->ok));
        if (!j->keys || !j->ok)
            err = SH_E_NOMEM;
        for (size_t i = 0; err == SH_OK && i < n; i++) {
            if (!(j->keys[i] = strdup(objs[i].object_key)))
                err = SH_E_NOMEM;
            else
                j->nkeys++;
        }
    }
    sh_arena_fini(&a);
    return err;
}

static sh_err_t forget_run(sh_meta_t *m, sh_meta_op_t *op)
{
    job_t *j = (job_t *)op;
    return sh_meta_objects_forget(m, j->ok, j->nok);
}

static void pass_end(sh_retention_t *rt);
static void sweep_list(sh_retention_t *rt, job_t *j);
static void list_done(sh_meta_op_t *op);

static void forget_done(sh_meta_op_t *op)
{
    job_t *j = (job_t *)op;
    sh_retention_t *rt = j->rt;
    if (!rt) {
        job_free(j);
        return;
    }
    if (op->err != SH_OK) {
        sh_log(SH_LOG_WARN, "retention",
               "could not forget %zu deleted segment objects in the metadata store: %s "
               "(they are deleted again by the next sweep)", j->nok, sh_err_str(op->err));
        rt->st.failures++;
        job_free(j);
        pass_end(rt);
        return;
    }
    rt->st.objects_deleted += j->nok;
    sh_log(SH_LOG_INFO, "retention", "deleted %zu unreferenced segment objects", j->nok);
    /* a full listing may have more behind it; a partial delete would list
     * the same failures again, so that waits for the next pass */
    bool more = j->nkeys == j->limit && j->nok == j->nkeys;
    job_keys_free(j);
    if (more) {
        sweep_list(rt, j);
        return;
    }
    job_free(j);
    pass_end(rt);
}

static void deleted(void *arg, const sh_objstore_result_t *res)
{
    job_t *j = arg;
    sh_retention_t *rt = j->rt;
    if (!rt) {
        job_free(j);
        return;
    }
    for (size_t i = 0; i < j->nkeys; i++) {
        /* no per-key answer: only a whole-request error tells anything */
        sh_err_t e = i < res->nkeys && res->key_errs ? res->key_errs[i]
                     : res->err                      ? res->err
                                                     : SH_E_IO;
        if (e == SH_OK || e == SH_E_NOTFOUND) {
            j->ok[j->nok++] = j->keys[i];
        } else {
            sh_log(SH_LOG_WARN, "retention", "could not delete segment object \"%s\": %s%s%s",
                   j->keys[i], sh_err_str(e), res->detail ? ": " : "",
                   res->detail ? res->detail : "");
        }
    }
    if (j->nok < j->nkeys)
        rt->st.failures++;
    if (j->nok == 0) {
        job_free(j);
        pass_end(rt);
        return;
    }
    j->op.run = forget_run;
    j->op.done = forget_done;
    if (sh_meta_submit(rt->o.meta, &j->op) != SH_OK) {
        job_free(j);
        pass_end(rt);
    }
}

static void list_done(sh_meta_op_t *op)
{
    job_t *j = (job_t *)op;
    sh_retention_t *rt = j->rt;
    if (!rt) {
        job_free(j);
        return;
    }
    if (op->err != SH_OK) {
        sh_log(SH_LOG_WARN, "retention", "could not list unreferenced segment objects: %s",
               sh_err_str(op->err));
        rt->st.failures++;
    }
    if (op->err != SH_OK || j->nkeys == 0) {
        job_free(j);
        pass_end(rt);
        return;
    }
    /* nobody reads these any more: no chunk in any index points at them */
    if (rt->o.cache)
        for (size_t i = 0; i < j->nkeys; i++)
            sh_cache_invalidate(rt->o.cache, j->keys[i]);
    if (sh_objstore_delete_many_start(rt->o.store, (const char *const *)j->keys, j->nkeys,
                                      deleted, j) != SH_OK) {
        sh_log(SH_LOG_WARN, "retention", "could not start deleting %zu segment objects",
               j->nkeys);
        rt->st.failures++;
        job_free(j);
        pass_end(rt);
    }
}

/* (Re)use j to list the next batch of unreferenced objects. */
static void sweep_list(sh_retention_t *rt, job_t *j)
{
    memset(&j->op, 0, sizeof(j->op));
    j->limit = rt->o.sweep_batch;
    j->op.run = list_run;
    j->op.done = list_done;
    if (sh_meta_submit(rt->o.meta, &j->op) != SH_OK) {
        job_free(j);
        pass_end(rt);
    }
}

/* ------------------------------------------------------------------ pass */

static void items_release(sh_retention_t *rt)
{
    for (size_t i = 0; i < rt->nitems; i++)
        sh_plog_unref(rt->items[i].plog);
    rt->nitems = rt->next_item = 0;
}

static void pass_end(sh_retention_t *rt)
{
    items_release(rt);
    if (rt->full) {
        rt->st.passes++;
        rt->first_done = true;
    }
    rt->running = false;
    rt->full = false;
}

/* Next item, or the sweep once every item had its turn. */
static void pass_step(sh_retention_t *rt)
{
    while (rt->next_item < rt->nitems) {
        item_t *it = &rt->items[rt->next_item++];
        if (sh_plog_error(it->plog))
            continue; /* closed or fenced meanwhile */
        job_t *j = job_new(rt);
        if (!j) {
            rt->st.failures++;
            continue;
        }
        sh_plog_ref(it->plog);
        j->plog = it->plog;
        j->tp = (sh_meta_tp_t){sh_plog_topic_id(it->plog), sh_plog_partition(it->plog)};
        j->offset = it->floor;
        j->retention_ms = it->retention_ms;
        j->retention_bytes = it->retention_bytes;
        j->cutoff_ms = it->cutoff_ms;
        j->op.run = trim_run;
        j->op.done = trim_done;
        if (sh_meta_submit(rt->o.meta, &j->op) == SH_OK)
            return; /* trim_done calls us again */
        job_free(j);
        rt->st.failures++;
    }
    items_release(rt);
    rt->sweep_due = false;
    job_t *j = job_new(rt);
    if (!j) {
        rt->st.failures++;
        pass_end(rt);
        return;
    }
    sweep_list(rt, j);
}

/* A partition with something to do, judged from its chunk index alone. */
static void visit(void *vctx, sh_plog_t *p, int64_t retention_ms, int64_t retention_bytes)
{
    sh_retention_t *rt = vctx;
    if (sh_plog_error(p))
        return;
    sh_plog_chunk_stats_t cs;
    sh_plog_chunk_stats(p, &cs);
    int64_t log_start = sh_plog_log_start(p);
    /* dead chunks: committed below a log start DeleteRecords moved into
     * the tail. After a restart they are no longer indexed but may still
     * be in the store: the first pass sweeps every moved partition. */
    bool want = cs.dead > 0 || (!rt->first_done && log_start > 0);
    int64_t cutoff = INT64_MIN;
    if (retention_ms >= 0) {
        cutoff = wall_now(rt) - retention_ms;
        if (cs.live > 0 && cs.first_max_ts < cutoff)
            want = true;
    }
    if (retention_bytes >= 0 && cs.live > 0 && cs.live_bytes - cs.first_bytes >= retention_bytes)
        want = true;
    if (!want)
        return;
    if (rt->nitems == rt->cap) {
        size_t cap = rt->cap ? rt->cap * 2 : 64;
        item_t *n = realloc(rt->items, cap * sizeof(*n));
        if (!n) {
            rt->st.failures++;
            return; /* the next pass sees it again */
        }
        rt->items = n;
        rt->cap = cap;
    }
    sh_plog_ref(p);
    rt->items[rt->nitems++] = (item_t){p, retention_ms, retention_bytes, cutoff, log_start};
}

sh_err_t sh_retention_pass_start(sh_retention_t *rt, int64_t now_ms)
{
    if (rt->running)
        return SH_E_AGAIN;
    rt->running = true;
    rt->full = true;
    rt->next_pass_ms = now_ms + rt->o.check_interval_ms;
    if (rt->o.partitions)
        rt->o.partitions(rt->o.partitions_arg, visit, rt);
    pass_step(rt);
    return SH_OK;
}

void sh_retention_drive(sh_retention_t *rt, int64_t now_ms)
{
    if (rt->running)
        return;
    if (now_ms >= rt->next_pass_ms) {
        sh_retention_pass_start(rt, now_ms);
    } else if (rt->sweep_due) {
        rt->running = true;
        rt->full = false;
        pass_step(rt); /* no items: straight to the sweep */
    }
}

int64_t sh_retention_next_deadline_ms(const sh_retention_t *rt)
{
    if (rt->running)
        return -1;
    if (rt->sweep_due)
        return 0;
    return rt->next_pass_ms;
}

bool sh_retention_busy(const sh_retention_t *rt)
{
    return rt->running;
}

void sh_retention_stats(const sh_retention_t *rt, sh_retention_stats_t *out)
{
    *out = rt->st;
    out->busy = rt->running;
}

/* ------------------------------------------------------------ lifecycle */

sh_retention_t *sh_retention_new(const sh_retention_opts_t *o)
{
    if (!o->meta || !o->store)
        return NULL;
    sh_retention_t *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return NULL;
    rt->o = *o;
    if (rt->o.check_interval_ms <= 0)
        rt->o.check_interval_ms = DEFAULT_INTERVAL_MS;
    if (rt->o.sweep_batch == 0)
        rt->o.sweep_batch = DEFAULT_SWEEP_BATCH;
    /* the first pass also sweeps the leftovers of a crash */
    rt->next_pass_ms = rt->o.initial_delay_ms > 0 ? sh_clock_mono_ms() + rt->o.initial_delay_ms
                                                  : 0;
    return rt;
}

void sh_retention_free(sh_retention_t *rt)
{
    if (!rt)
        return;
    for (job_t *j = rt->jobs, *next; j; j = next) {
        next = j->next;
        j->rt = NULL;
        j->prev = j->next = NULL;
    }
    items_release(rt);
    free(rt->items);
    free(rt);
}

sh_err_t sh_retention_advance_start(sh_retention_t *rt, sh_plog_t *p, int64_t offset,
                                    sh_retention_done_fn cb, void *arg)
{
    if (!cb || offset < 0)
        return SH_E_INVAL;
    sh_err_t err = sh_plog_error(p);
    if (err)
        return err;
    job_t *j = job_new(rt);
    if (!j)
        return SH_E_NOMEM;
    sh_plog_ref(p);
    j->plog = p;
    j->tp = (sh_meta_tp_t){sh_plog_topic_id(p), sh_plog_partition(p)};
    j->offset = offset;
    j->cb = cb;
    j->cb_arg = arg;
    j->op.run = advance_run;
    j->op.done = advance_done;
    if ((err = sh_meta_submit(rt->o.meta, &j->op)) != SH_OK) {
        job_free(j);
        return err;
    }
    return SH_OK;
}
