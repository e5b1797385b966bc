/*
 * sh_uploader.h - broker-wide upload of partition tails into segment
 * objects (ADR 005).
 *
 * Every open partition log is registered here. When the durable, not yet
 * uploaded bytes of all partitions pass `upload_bytes`, or the oldest of
 * them has waited `interval_ms`, or an append waits for WAL space, one
 * segment object is built from every partition with such data (one chunk
 * each, up to `max_object_bytes` in all), PUT, and its chunks committed in
 * one metadata transaction conditional on each partition's leader epoch.
 * On success each partition extends its chunk index, releases its WAL and
 * drops the uploaded batches from memory; the chunk bytes are offered to
 * the read cache first, so consumers at the tail keep reading from memory.
 * One upload is in flight at a time.
 *
 * Failures: a failed PUT puts the batches back and the next attempt (after
 * a backoff doubling from backoff_min_ms to backoff_max_ms) builds a new
 * object; the old key, if the store kept anything, is an orphan nobody
 * references. A failed commit (database busy or down) is retried with the
 * same object and chunks, which the metadata store accepts idempotently.
 * SH_E_FENCED (another broker leads a partition now) or a deleted topic:
 * the partitions concerned are found, logged and fenced (they stop being
 * served here), and the rest of the object is committed without them.
 *
 * Loop integration (nothing here knows the loop): call sh_uploader_drive()
 * before the loop sleeps and when sh_uploader_next_deadline_ms() passes;
 * object-store callbacks and metadata completions arrive through the
 * store's and the metadata store's own descriptors, which the caller
 * drives.
 *
 * Thread: loop thread. Ownership: the uploader holds a reference to every
 * registered plog and to the parts of the upload in flight; store, meta
 * and cache are borrowed and must outlive it (or see sh_uploader_free).
 */
#ifndef SH_UPLOADER_H
#define SH_UPLOADER_H

#include <stdbool.h>
#include <stdint.h>

#include "meta/sh_meta.h"
#include "storage/sh_cache.h"
#include "storage/sh_objstore.h"
#include "storage/sh_plog.h"

typedef struct sh_uploader sh_uploader_t;

typedef struct sh_uploader_opts {
    sh_objstore_t *store;
    sh_meta_t *meta;
    sh_cache_t *cache;           /* may be NULL */
    int32_t writer_id;           /* the broker id, part of object keys */
    int64_t writer_epoch;        /* unique per broker incarnation (object keys) */
    uint64_t upload_bytes;       /* upload when this many bytes wait; 0: 8 MiB */
    int64_t interval_ms;         /* ... or the oldest waited this long; 0: 1000 */
    uint64_t max_object_bytes;   /* chunk bytes per object; 0: 4 x upload_bytes, >= 4 MiB */
    int64_t backoff_min_ms;      /* 0: 100 */
    int64_t backoff_max_ms;      /* 0: 10000 */
} sh_uploader_opts_t;

typedef struct sh_uploader_stats {
    uint64_t objects;            /* objects committed */
    uint64_t chunks;             /* chunks committed */
    uint64_t bytes;              /* chunk bytes committed */
    uint64_t put_failures;
    uint64_t commit_failures;
    uint64_t fenced;             /* partitions fenced by a commit */
    uint64_t pending_bytes;      /* waiting now (approximate while uploading) */
    bool busy;                   /* an upload is in flight */
} sh_uploader_stats_t;

sh_uploader_t *sh_uploader_new(const sh_uploader_opts_t *o);

/* Stop registering work and free. If an upload is still in flight its
 * completions (which the caller's store and metadata store still deliver)
 * only release what it holds. */
void sh_uploader_free(sh_uploader_t *u);

/* The observer to give every plog (sh_plog_opts_t.observer). */
const sh_plog_observer_t *sh_uploader_observer(sh_uploader_t *u);

/* Register / unregister a partition log (the uploader takes a reference). */
sh_err_t sh_uploader_add(sh_uploader_t *u, sh_plog_t *p);
void sh_uploader_remove(sh_uploader_t *u, sh_plog_t *p);

/* Start an upload if one is due and none is in flight; retry parked
 * appends; retry a failed commit whose backoff passed. now_ms is
 * monotonic (the loop's clock). */
void sh_uploader_drive(sh_uploader_t *u, int64_t now_ms);

/* Start an upload of everything waiting now, whatever the thresholds
 * (tests, shutdown). SH_E_AGAIN if one is in flight, SH_E_NOTFOUND if
 * nothing waits. */
sh_err_t sh_uploader_flush(sh_uploader_t *u, int64_t now_ms);

/* Monotonic ms at which drive must run again, or -1 (only new data or a
 * completion can make work). */
int64_t sh_uploader_next_deadline_ms(const sh_uploader_t *u);

/* Name later objects after this writer (the broker's registration epoch,
 * once known). */
void sh_uploader_set_writer(sh_uploader_t *u, int32_t writer_id, int64_t writer_epoch);

bool sh_uploader_busy(const sh_uploader_t *u);
void sh_uploader_stats(const sh_uploader_t *u, sh_uploader_stats_t *out);

#endif
