/*
 * sh_retention.h - moving partitions' log start offsets forward and
 * deleting the segment objects nothing references any more: time and size
 * retention (retention.ms, retention.bytes), DeleteRecords, and garbage
 * collection of unreferenced objects. docs/retention.md tells the story.
 *
 * The truth is the metadata store: a partition's log start offset and
 * its chunks, and per segment object the number of live chunks in it.
 * Every move goes the same way:
 *
 *   1. on the metadata worker, sh_meta_partition_log_start_advance()
 *      moves the log start (never backwards), deletes the chunks wholly
 *      below it and decrements their objects' live chunk counts, in one
 *      transaction; it is durable when the op completes;
 *   2. on the loop, the partition log takes the new log start and drops
 *      the same chunks from its in-memory index (sh_plog_log_start_advance);
 *   3. a sweep lists the objects whose live count reached zero
 *      (sh_meta_objects_unreferenced), deletes them from the object store,
 *      drops them from the read cache and forgets them in the metadata
 *      store (sh_meta_objects_forget). An object shared by chunks of
 *      several partitions goes only when the last of them went. A crash
 *      between the delete and the forget leaves the object listed, so the
 *      next sweep (every pass, and the first one right after start) deletes
 *      it again, which the store accepts.
 *
 * Retention passes: initial_delay_ms after start (the first one also
 * sweeps what a crash left behind), then every check_interval_ms. Each
 * partition the caller lists (partitions callback) is looked at in memory
 * first (its chunk index, sh_plog_chunk_stats); only a partition with
 * something to do costs a metadata op, which asks
 * sh_meta_retention_by_time / _by_size for the new log start (Kafka's
 * rules: whole chunks, oldest first; a chunk goes by time when its max
 * timestamp is older than now - retention.ms, and by size while what
 * remains is at least retention.bytes) and advances to it.
 * Retention only ever looks at committed chunks: batches still in the WAL
 * and the in-memory tail are never deleted by it (Kafka never deletes the
 * active segment either). Partitions go one op at a time, so a pass never
 * floods the metadata worker that uploads and group commits share.
 *
 * DeleteRecords (sh_retention_advance_start): steps 1 and 2 for one
 * partition at an offset the caller checked, then the callback with the
 * log start the store holds; freed objects are swept right after.
 *
 * Loop integration (nothing here knows the loop): call
 * sh_retention_drive() before the loop sleeps and when
 * sh_retention_next_deadline_ms() passes; completions arrive through the
 * metadata store's and the object store's descriptors, which the caller
 * drives.
 *
 * Thread: loop thread. Ownership: the engine holds a reference to every
 * partition log it has work in flight for; meta, store and cache are
 * borrowed and must outlive it, or see sh_retention_free.
 */
#ifndef SH_RETENTION_H
#define SH_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sh_err.h"
#include "meta/sh_meta.h"
#include "storage/sh_cache.h"
#include "storage/sh_objstore.h"
#include "storage/sh_plog.h"

typedef struct sh_retention sh_retention_t;

/* Hand one partition log to a pass with its topic's resolved retention.ms
 * and retention.bytes (-1: no limit). The pass takes its own reference. */
typedef void (*sh_retention_visit_fn)(void *vctx, sh_plog_t *p, int64_t retention_ms,
                                      int64_t retention_bytes);

typedef struct sh_retention_opts {
    sh_meta_t *meta;
    sh_objstore_t *store;
    sh_cache_t *cache;               /* may be NULL */
    int64_t check_interval_ms;       /* log.retention.check.interval.ms; <= 0: 300000 */
    int64_t initial_delay_ms;        /* first pass this long after new (0: at the first
                                        drive); the broker uses Kafka's 30 s */
    size_t sweep_batch;              /* objects per listing and delete; 0: 1000 */
    /* Call visit, synchronously, for every partition log this broker
     * serves (a pass starts by asking). */
    void (*partitions)(void *arg, sh_retention_visit_fn visit, void *vctx);
    void *partitions_arg;
    /* Wall clock (ms) for the retention.ms cutoff; NULL: sh_clock_wall_ms. */
    int64_t (*wall_ms)(void *arg);
    void *clock_arg;
} sh_retention_opts_t;

typedef struct sh_retention_stats {
    uint64_t passes;                 /* passes finished */
    uint64_t advances;               /* log start moves committed (retention and DeleteRecords) */
    uint64_t chunks_dropped;         /* in-memory index entries dropped */
    uint64_t objects_deleted;        /* objects deleted from the store and forgotten */
    uint64_t failures;               /* metadata or object-store steps that failed (retried
                                        by a later pass) */
    bool busy;                       /* a pass is in flight */
} sh_retention_stats_t;

sh_retention_t *sh_retention_new(const sh_retention_opts_t *o);

/* Stop. Work in flight is orphaned: its completions (which the caller's
 * metadata store and object store still deliver) only release what it
 * holds; DeleteRecords callbacks still run, with SH_E_CLOSED when the
 * answer is not known. NULL is a no-op. */
void sh_retention_free(sh_retention_t *rt);

/* Start a pass when one is due (the interval passed, or a DeleteRecords
 * freed objects) and none is in flight. now_ms is monotonic. */
void sh_retention_drive(sh_retention_t *rt, int64_t now_ms);

/* Monotonic ms at which drive must run again, or -1 while a pass is in
 * flight (its completions drive it on). */
int64_t sh_retention_next_deadline_ms(const sh_retention_t *rt);

/* Start a pass now, whatever the interval (tests). SH_E_AGAIN if one is
 * in flight. */
sh_err_t sh_retention_pass_start(sh_retention_t *rt, int64_t now_ms);

bool sh_retention_busy(const sh_retention_t *rt);
void sh_retention_stats(const sh_retention_t *rt, sh_retention_stats_t *out);

/*
 * DeleteRecords: make `offset` the log start of p (never backwards),
 * durably in the metadata store, then in p. The caller has checked the
 * offset against p's high watermark (Kafka answers OFFSET_OUT_OF_RANGE
 * above it). cb(arg, err, log_start) runs later on the loop, exactly once:
 * err SH_OK with the log start the store holds now (>= offset), or the
 * store's error (UNKNOWN_TOPIC_OR_PARTITION when the partition is gone,
 * SH_E_IO / SH_E_AGAIN when the database failed, SH_E_CLOSED at shutdown)
 * with log_start -1. Any return other than SH_OK: cb will not run.
 */
typedef void (*sh_retention_done_fn)(void *arg, sh_err_t err, int64_t log_start);
sh_err_t sh_retention_advance_start(sh_retention_t *rt, sh_plog_t *p, int64_t offset,
                                    sh_retention_done_fn cb, void *arg);

#endif
