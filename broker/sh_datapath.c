/*
 * sh_datapath.c - wiring of the partition data path into the broker (see
 * sh_datapath.h): opens the WAL manager, object store, read cache and
 * uploader, puts their descriptors and timers on the loop, opens and
 * closes partition logs from the registry's hooks, purges the objects of
 * deleted topics, and reads chunks for Fetch and ListOffsets (cache first,
 * coalescing concurrent GETs of the same chunk).
 *
 * Thread: the loop thread; new/stop/free on the startup thread around
 * sh_broker_run (the loop is not running then).
 * Ownership: the data path owns the WAL manager, store, cache, uploader
 * and the reads in flight; each partition log is owned through the
 * registry partition's `log` (opened in partition_open, closed in
 * partition_close). The broker, loop, metadata store and registry are
 * borrowed.
 */
#include "broker/sh_datapath.h"

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/sh_broker.h"
#include "broker/sh_producer_ids.h"
#include "broker/sh_objstore_cfg.h"
#include "common/sh_clock.h"
#include "common/sh_log.h"

/* How long stop() lets an upload in flight finish before abandoning it
 * (its batches stay in the WAL and are uploaded after the restart). */
#define STOP_UPLOAD_WAIT_MS 5000

typedef struct read_cb {
    sh_dp_read_fn cb;
    void *arg;
} read_cb_t;

typedef struct sh_dp_read {
    struct sh_dp_read *next;
    sh_datapath_t *dp;
    char *key;
    uint64_t off;
    uint32_t len;
    read_cb_t *cbs;
    size_t ncbs, cap;
} dp_read_t;

/* ------------------------------------------------------------- loop glue */

static void arm_timers(sh_datapath_t *dp)
{
    if (!dp->store)
        return;
    int64_t d = sh_objstore_next_deadline_ms(dp->store);
    if (d >= 0)
        sh_loop_timer_arm_at(dp->loop, &dp->store_timer, d);
    else
        sh_loop_timer_cancel(dp->loop, &dp->store_timer);
    if (dp->retention) {
        d = sh_retention_next_deadline_ms(dp->retention);
        if (d >= 0)
            sh_loop_timer_arm_at(dp->loop, &dp->retention_timer, d);
        else
            sh_loop_timer_cancel(dp->loop, &dp->retention_timer);
    }
    if (!dp->uploader)
        return;
    d = sh_uploader_next_deadline_ms(dp->uploader);
    if (d >= 0)
        sh_loop_timer_arm_at(dp->loop, &dp->upload_timer, d);
    else
        sh_loop_timer_cancel(dp->loop, &dp->upload_timer);
}

static void on_wal(sh_loop_io_t *io, uint32_t events)
{
    sh_datapath_t *dp = io->arg;
    (void)events;
    sh_wal_mgr_drain(dp->wal);
}

static void on_store(sh_loop_io_t *io, uint32_t events)
{
    sh_datapath_t *dp = io->arg;
    (void)events;
    sh_objstore_drive(dp->store);
}

static void on_store_timer(sh_timer_t *t, void *arg)
{
    sh_datapath_t *dp = arg;
    (void)t;
    if (dp->store)
        sh_objstore_drive(dp->store);
}

static void on_upload_timer(sh_timer_t *t, void *arg)
{
    sh_datapath_t *dp = arg;
    (void)t;
    if (dp->uploader)
        sh_uploader_drive(dp->uploader, sh_loop_now_ms(dp->loop));
}

static void on_retention_timer(sh_timer_t *t, void *arg)
{
    sh_datapath_t *dp = arg;
    (void)t;
    if (dp->retention && !dp->stopping)
        sh_retention_drive(dp->retention, sh_loop_now_ms(dp->loop));
}

/* Before the loop sleeps: start an upload if a threshold was crossed
 * while serving this iteration's requests, and re-arm the timers. */
static void before_sleep(sh_loop_t *loop, void *arg)
{
    sh_datapath_t *dp = arg;
    if (dp->uploader && !dp->stopping)
        sh_uploader_drive(dp->uploader, sh_loop_now_ms(loop));
    if (dp->retention && !dp->stopping)
        sh_retention_drive(dp->retention, sh_loop_now_ms(loop));
    arm_timers(dp);
}

void sh_datapath_kick(sh_datapath_t *dp)
{
    before_sleep(dp->loop, dp);
}

/* The plogs' observer: the uploader's, plus a drive pass as soon as the
 * loop can. Appends run from any loop callback, including before-sleep
 * hooks that run after ours (the broker's service pass reads requests),
 * so the hook alone could miss a threshold until the next wake-up. */
static void obs_durable(void *arg, sh_plog_t *p, size_t bytes, int64_t appended_ms)
{
    sh_datapath_t *dp = arg;
    if (!dp->uploader)
        return;
    const sh_plog_observer_t *up = sh_uploader_observer(dp->uploader);
    up->durable(up->arg, p, bytes, appended_ms);
    sh_loop_timer_arm(dp->loop, &dp->upload_timer, 0);
}

static void obs_parked(void *arg, sh_plog_t *p)
{
    sh_datapath_t *dp = arg;
    if (!dp->uploader)
        return;
    const sh_plog_observer_t *up = sh_uploader_observer(dp->uploader);
    up->parked(up->arg, p);
    sh_loop_timer_arm(dp->loop, &dp->upload_timer, 0);
}

/* ----------------------------------------------------------- registry hooks */

static void plog_cfg_of(const sh_topic_cfg_t *tc, sh_plog_cfg_t *out)
{
    out->max_message_bytes = tc->max_message_bytes;
    out->log_append_time = tc->log_append_time;
    out->durability_object = tc->durability == SH_DURABILITY_OBJECT;
}

static sh_err_t hook_open(void *arg, sh_rpartition_t *p)
{
    sh_datapath_t *dp = arg;
    if (dp->stopping || !dp->uploader)
        return SH_E_CLOSED;
    sh_plog_opts_t o = {0};
    o.topic_id = p->topic->id;
    o.partition = p->index;
    o.leader_epoch = p->leader_epoch;
    o.topic_name = p->topic->name;
    o.wal = dp->wal;
    o.meta = dp->meta;
    plog_cfg_of(&p->topic->cfg, &o.cfg);
    o.observer = &dp->observer;
    o.producer_epoch_floor = sh_producer_ids_epoch_floor;
    o.producer_arg = dp->broker->producer_ids;
    sh_plog_t *log = NULL;
    sh_err_t err = sh_plog_open(&o, &log);
    if (err != SH_OK)
        return err;
    err = sh_uploader_add(dp->uploader, log);
    if (err != SH_OK) {
        sh_plog_close(log, false);
        return err;
    }
    p->log = log;
    return SH_OK;
}

static void hook_close(void *arg, sh_rpartition_t *p, bool deleted)
{
    sh_datapath_t *dp = arg;
    sh_plog_t *log = p->log;
    if (!log)
        return;
    /* handlers woken by the close must not find the log any more */
    p->log = NULL;
    if (dp->uploader)
        sh_uploader_remove(dp->uploader, log);
    sh_plog_close(log, deleted);
}

static void hook_config(void *arg, sh_rtopic_t *t)
{
    (void)arg;
    sh_plog_cfg_t c;
    plog_cfg_of(&t->cfg, &c);
    for (int32_t i = 0; i < t->partition_count; i++)
        if (t->partitions[i]->log)
            sh_plog_set_cfg(t->partitions[i]->log, &c);
}

/* Purging a deleted topic's objects: delete from the store, then forget
 * them in the metadata store. A failure leaves them listed as
 * unreferenced for a later sweep; nothing is lost either way. */
typedef struct purge {
    sh_meta_op_t op;
    sh_datapath_t *dp;
    char **keys;
    size_t n;
    const char **ok;
    size_t nok;
} purge_t;

static void purge_free(purge_t *pg)
{
    for (size_t i = 0; i < pg->n; i++)
        free(pg->keys[i]);
    free(pg->keys);
    free(pg->ok);
    free(pg);
}

static sh_err_t purge_run(sh_meta_t *m, sh_meta_op_t *op)
{
    purge_t *pg = (purge_t *)op;
    return sh_meta_objects_forget(m, pg->ok, pg->nok);
}

static void purge_done(sh_meta_op_t *op)
{
    purge_t *pg = (purge_t *)op;
    if (op->err != SH_OK)
        sh_log(SH_LOG_WARN, "datapath",
               "could not forget %zu purged segment objects in the metadata store: %s",
               pg->nok, sh_err_str(op->err));
    purge_free(pg);
}

static void purge_deleted(void *arg, const sh_objstore_result_t *res)
{
    purge_t *pg = arg;
    sh_datapath_t *dp = pg->dp;
    for (size_t i = 0; i < pg->n && i < res->nkeys; i++) {
        if (res->key_errs[i] == SH_OK)
            pg->ok[pg->nok++] = pg->keys[i];
        else
            sh_log(SH_LOG_WARN, "datapath", "could not delete segment object \"%s\": %s",
                   pg->keys[i], sh_err_str(res->key_errs[i]));
    }
    dp->purges += pg->nok;
    if (pg->nok == 0 || dp->stopping) {
        purge_free(pg);
        return;
    }
    pg->op.run = purge_run;
    pg->op.done = purge_done;
    if (sh_meta_submit(dp->meta, &pg->op) != SH_OK)
        purge_free(pg);
}

static void hook_purge(void *arg, const char *const *keys, size_t n)
{
    sh_datapath_t *dp = arg;
    if (n == 0 || dp->stopping || !dp->store)
        return;
    purge_t *pg = calloc(1, sizeof(*pg));
    if (!pg)
        return;
    pg->dp = dp;
    pg->keys = calloc(n, sizeof(*pg->keys));
    pg->ok = calloc(n, sizeof(*pg->ok));
    if (!pg->keys || !pg->ok) {
        purge_free(pg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (dp->cache)
            sh_cache_invalidate(dp->cache, keys[i]);
        pg->keys[i] = strdup(keys[i]);
        if (!pg->keys[i]) {
            purge_free(pg);
            return;
        }
        pg->n++;
    }
    if (sh_objstore_delete_many_start(dp->store, (const char *const *)pg->keys, pg->n,
                                      purge_deleted, pg) != SH_OK)
        purge_free(pg);
}

/* The partitions a retention pass looks at: every log this broker serves,
 * with its topic's resolved retention.ms / retention.bytes. */
static void retention_partitions(void *arg, sh_retention_visit_fn visit, void *vctx)
{
    sh_datapath_t *dp = arg;
    sh_rtopic_t **ts = NULL;
    size_t n = sh_registry_topics(dp->registry, &ts);
    for (size_t i = 0; i < n; i++) {
        for (int32_t k = 0; k < ts[i]->partition_count; k++) {
            sh_rpartition_t *p = ts[i]->partitions[k];
            if (p->log && p->leader_id == dp->node_id)
                visit(vctx, p->log, ts[i]->cfg.retention_ms, ts[i]->cfg.retention_bytes);
        }
    }
}

/* ------------------------------------------------------------- lifecycle */

sh_datapath_t *sh_datapath_new(sh_broker_t *b)
{
    const sh_config_t *cfg = b->cfg;
    sh_datapath_t *dp = calloc(1, sizeof(*dp));
    char path[4096];
    if (!dp)
        return NULL;
    dp->broker = b;
    dp->loop = b->loop;
    dp->cfg = cfg;
    dp->meta = b->meta;
    dp->registry = b->registry;
    dp->node_id = b->node_id;
    sh_timer_init(&dp->store_timer, on_store_timer, dp);
    sh_timer_init(&dp->upload_timer, on_upload_timer, dp);
    sh_timer_init(&dp->retention_timer, on_retention_timer, dp);

    sh_wal_opts_t wo;
    sh_wal_opts_default(&wo);
    wo.segment_bytes = (uint64_t)cfg->wal_segment_bytes & ~(uint64_t)4095;
    wo.max_unreleased_bytes = (uint64_t)cfg->wal_max_bytes;
    snprintf(path, sizeof(path), "%s/wal", cfg->data_dir);
    sh_err_t err = sh_wal_mgr_new(path, &wo, &dp->wal);
    if (err != SH_OK) {
        sh_log(SH_LOG_ERROR, "datapath",
               "could not open the write-ahead log in \"%s\": %s (streamhouse.wal.segment.bytes"
               " %" PRId64 ", streamhouse.wal.max.bytes %" PRId64 ")",
               path, sh_err_str(err), cfg->wal_segment_bytes, cfg->wal_max_bytes);
        goto fail;
    }
    /* s3:// takes the streamhouse.s3.* keys and is probed; logs why it failed */
    err = sh_objstore_cfg_open(cfg, &dp->store);
    if (err != SH_OK)
        goto fail;
    if (cfg->cache_bytes > 0 && !(dp->cache = sh_cache_new((size_t)cfg->cache_bytes)))
        goto fail;
    sh_uploader_opts_t uo = {0};
    uo.store = dp->store;
    uo.meta = dp->meta;
    uo.cache = dp->cache;
    uo.writer_id = b->node_id;
    uo.writer_epoch = sh_clock_wall_ms(); /* until the registration epoch is known */
    uo.upload_bytes = (uint64_t)cfg->upload_bytes;
    uo.interval_ms = cfg->upload_interval_ms;
    dp->uploader = sh_uploader_new(&uo);
    if (!dp->uploader)
        goto fail;
    sh_retention_opts_t ro = {0};
    ro.meta = dp->meta;
    ro.store = dp->store;
    ro.cache = dp->cache;
    ro.check_interval_ms = cfg->log_retention_check_interval_ms;
    /* Kafka's log.initial.task.delay.ms: a starting broker serves first */
    ro.initial_delay_ms = ro.check_interval_ms < 30000 ? ro.check_interval_ms : 30000;
    ro.partitions = retention_partitions;
    ro.partitions_arg = dp;
    dp->retention = sh_retention_new(&ro);
    if (!dp->retention)
        goto fail;
    dp->observer.durable = obs_durable;
    dp->observer.parked = obs_parked;
    dp->observer.arg = dp;

    sh_loop_io_init(&dp->wal_io, sh_wal_mgr_fd(dp->wal), on_wal, dp);
    if (sh_loop_io_add(dp->loop, &dp->wal_io, SH_LOOP_READ) != SH_OK)
        goto fail;
    sh_loop_io_init(&dp->store_io, sh_objstore_fd(dp->store), on_store, dp);
    if (sh_loop_io_add(dp->loop, &dp->store_io, SH_LOOP_READ) != SH_OK)
        goto fail;
    sh_loop_before_sleep_add(dp->loop, &dp->hook, before_sleep, dp);

    sh_registry_hooks_t hooks = {
        .partition_open = hook_open,
        .partition_close = hook_close,
        .config_changed = hook_config,
        .objects_purge = hook_purge,
        .arg = dp,
    };
    sh_registry_set_hooks(dp->registry, &hooks);
    sh_log(SH_LOG_INFO, "datapath",
           "data path ready: WAL \"%s\" (segments of %" PRId64 " bytes, at most %" PRId64
           "), objects \"%s\", cache %" PRId64 " bytes, upload at %" PRId64 " bytes or %" PRId64
           " ms", path, cfg->wal_segment_bytes, cfg->wal_max_bytes, cfg->storage_url,
           cfg->cache_bytes, cfg->upload_bytes, cfg->upload_interval_ms);
    return dp;
fail:
    sh_datapath_stop(dp);
    sh_datapath_free(dp);
    return NULL;
}

void sh_datapath_set_writer_epoch(sh_datapath_t *dp, int64_t epoch)
{
    /* Object keys must be unique per incarnation: the registration epoch
     * is, across restarts and clocks. Only before the first upload. */
    if (dp && dp->uploader && epoch > 0)
        sh_uploader_set_writer(dp->uploader, dp->node_id, epoch);
}

void sh_datapath_waiter_add(sh_datapath_t *dp, sh_dp_waiter_t *w)
{
    if (w->linked)
        return;
    w->prev = NULL;
    w->next = dp->waiters;
    if (dp->waiters)
        dp->waiters->prev = w;
    dp->waiters = w;
    w->linked = true;
}

void sh_datapath_waiter_remove(sh_datapath_t *dp, sh_dp_waiter_t *w)
{
    if (!w->linked)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        dp->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->linked = false;
}

void sh_datapath_stop(sh_datapath_t *dp)
{
    if (!dp || dp->stopping)
        return;
    dp->stopping = true;
    /* parked fetches answer now, with what they have */
    while (dp->waiters) {
        sh_dp_waiter_t *w = dp->waiters;
        sh_datapath_waiter_remove(dp, w);
        w->finish(w);
    }
    /* Let an upload in flight finish: the loop no longer runs, so drive
     * the store and the metadata completions here, bounded. */
    if (dp->uploader && dp->store && dp->meta && sh_uploader_busy(dp->uploader)) {
        int64_t until = sh_clock_mono_ms() + STOP_UPLOAD_WAIT_MS;
        while (sh_uploader_busy(dp->uploader) && sh_clock_mono_ms() < until) {
            struct pollfd pf[2] = {
                {.fd = sh_objstore_fd(dp->store), .events = POLLIN},
                {.fd = sh_meta_fd(dp->meta), .events = POLLIN},
            };
            poll(pf, 2, 50);
            sh_objstore_drive(dp->store);
            sh_meta_drain(dp->meta);
            sh_uploader_drive(dp->uploader, sh_clock_mono_ms());
        }
        if (sh_uploader_busy(dp->uploader))
            sh_log(SH_LOG_WARN, "datapath", "an upload was still in flight at shutdown; its "
                                            "batches stay in the WAL for the next start");
    }
    if (dp->loop) {
        sh_loop_before_sleep_remove(dp->loop, &dp->hook);
        sh_loop_timer_cancel(dp->loop, &dp->upload_timer);
        sh_loop_timer_cancel(dp->loop, &dp->retention_timer);
        sh_loop_timer_cancel(dp->loop, &dp->store_timer);
        if (dp->store_io.registered)
            sh_loop_io_del(dp->loop, &dp->store_io);
    }
    sh_uploader_free(dp->uploader);
    dp->uploader = NULL;
    /* orphans its work in flight: the store's and the metadata store's
     * last completions only release it (DeleteRecords still answer) */
    sh_retention_free(dp->retention);
    dp->retention = NULL;
    /* runs the callbacks of reads still in flight (they answer their
     * requests) and of an abandoned upload (which only lets go) */
    sh_objstore_free(dp->store);
    dp->store = NULL;
}

void sh_datapath_free(sh_datapath_t *dp)
{
    if (!dp)
        return;
    sh_datapath_stop(dp);
    if (dp->loop && dp->wal_io.registered)
        sh_loop_io_del(dp->loop, &dp->wal_io);
    /* completes appends still queued: their plogs are closed by now */
    sh_wal_mgr_free(dp->wal);
    sh_cache_free(dp->cache);
    free(dp);
}

/* ------------------------------------------------------------ partitions */

static sh_plog_t *partition_of(sh_datapath_t *dp, sh_rtopic_t *t, int32_t index,
                               sh_rpartition_t **rp, sh_err_t *err)
{
    if (rp)
        *rp = NULL;
    if (!t || t->deleting || index < 0 || index >= t->partition_count) {
        *err = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
        return NULL;
    }
    sh_rpartition_t *p = t->partitions[index];
    if (rp)
        *rp = p;
    if (p->leader_id != dp->node_id) {
        *err = p->leader_id < 0 ? SH_KERR_LEADER_NOT_AVAILABLE : SH_KERR_NOT_LEADER_OR_FOLLOWER;
        return NULL;
    }
    if (!p->log) {
        *err = p->error_code > 0 ? p->error_code : SH_KERR_LEADER_NOT_AVAILABLE;
        return NULL;
    }
    sh_err_t e = sh_plog_error(p->log);
    if (e) {
        *err = e;
        return NULL;
    }
    *err = SH_OK;
    return p->log;
}

sh_plog_t *sh_datapath_partition(sh_datapath_t *dp, sh_slice_t topic, int32_t index,
                                 sh_rpartition_t **rp, sh_err_t *err)
{
    return partition_of(dp, sh_registry_find(dp->registry, topic), index, rp, err);
}

sh_plog_t *sh_datapath_partition_id(sh_datapath_t *dp, sh_uuid_t topic_id, int32_t index,
                                    sh_rpartition_t **rp, sh_err_t *err)
{
    return partition_of(dp, sh_registry_find_id(dp->registry, topic_id), index, rp, err);
}

/* ----------------------------------------------------------------- reads */

static void read_free(dp_read_t *r)
{
    free(r->key);
    free(r->cbs);
    free(r);
}

static void read_unlink(sh_datapath_t *dp, dp_read_t *r)
{
    for (dp_read_t **pp = &dp->reads; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            return;
        }
    }
}

static void read_done(void *arg, const sh_objstore_result_t *res)
{
    dp_read_t *r = arg;
    sh_datapath_t *dp = r->dp;
    read_unlink(dp, r);
    sh_err_t err = res->err;
    if (err == SH_OK && (!res->block || res->block->size != r->len)) {
        sh_log(SH_LOG_ERROR, "datapath",
               "segment object \"%s\" returned %zu bytes for the chunk at %" PRIu64
               " (%" PRIu32 " bytes expected)", r->key, res->block ? res->block->size : 0,
               r->off, r->len);
        err = SH_E_CORRUPT;
    } else if (err != SH_OK) {
        sh_log(SH_LOG_WARN, "datapath", "could not read %" PRIu32 " bytes at %" PRIu64
               " of segment object \"%s\": %s", r->len, r->off, r->key, sh_err_str(err));
    }
    if (err == SH_OK && dp->cache)
        sh_cache_put(dp->cache, r->key, r->off, res->block);
    /* storage trouble is retriable for the client: KAFKA_STORAGE_ERROR
     * makes it refresh metadata and fetch again */
    for (size_t i = 0; i < r->ncbs; i++)
        r->cbs[i].cb(r->cbs[i].arg, err == SH_OK ? SH_OK : SH_KERR_KAFKA_STORAGE_ERROR,
                     err == SH_OK ? res->block : NULL);
    read_free(r);
}

static sh_err_t read_add_cb(dp_read_t *r, sh_dp_read_fn cb, void *arg)
{
    if (r->ncbs == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4;
        read_cb_t *n = realloc(r->cbs, cap * sizeof(*n));
        if (!n)
            return SH_E_NOMEM;
        r->cbs = n;
        r->cap = cap;
    }
    r->cbs[r->ncbs++] = (read_cb_t){cb, arg};
    return SH_OK;
}

sh_err_t sh_datapath_chunk_read(sh_datapath_t *dp, const sh_plog_chunk_loc_t *loc,
                                sh_cache_ref_t *hit, sh_dp_read_fn cb, void *arg)
{
    memset(hit, 0, sizeof(*hit));
    if (dp->stopping || !dp->store)
        return SH_KERR_KAFKA_STORAGE_ERROR;
    if (loc->byte_length == 0)
        return SH_KERR_KAFKA_STORAGE_ERROR;
    if (dp->cache &&
        sh_cache_get(dp->cache, loc->object_key, loc->byte_offset, loc->byte_length, hit) ==
            SH_OK)
        return SH_OK;
    for (dp_read_t *r = dp->reads; r; r = r->next) {
        if (r->off == loc->byte_offset && r->len == loc->byte_length &&
            strcmp(r->key, loc->object_key) == 0) {
            if (read_add_cb(r, cb, arg) != SH_OK)
                return SH_E_NOMEM;
            return SH_E_AGAIN;
        }
    }
    dp_read_t *r = calloc(1, sizeof(*r));
    if (!r)
        return SH_E_NOMEM;
    r->dp = dp;
    r->off = loc->byte_offset;
    r->len = loc->byte_length;
    r->key = strdup(loc->object_key);
    if (!r->key || read_add_cb(r, cb, arg) != SH_OK) {
        read_free(r);
        return SH_E_NOMEM;
    }
    sh_err_t err = sh_objstore_get_range_start(dp->store, r->key, r->off, r->len, read_done, r);
    if (err != SH_OK) {
        sh_log(SH_LOG_WARN, "datapath", "could not start reading segment object \"%s\": %s",
               r->key, sh_err_str(err));
        read_free(r);
        return SH_KERR_KAFKA_STORAGE_ERROR;
    }
    r->next = dp->reads;
    dp->reads = r;
    arm_timers(dp);
    return SH_E_AGAIN;
}
