/*
 * sh_wal.h - the write-ahead log that makes produced batches durable
 * before they reach object storage.
 *
 * Shape (docs/adr/002-wal-format.md says why): one manager per disk owns
 * one shared, append-only stream of fixed-size, preallocated segment files
 * under a directory; every partition is a logical log inside it, named by
 * an opaque key ("<topic-id-hex>-<partition>"). An idle partition costs a
 * small struct in memory and nothing on disk. One fdatasync per group-
 * commit cycle covers every partition's appends.
 *
 * Threads: every function here is called from one thread at a time, the
 * broker's loop thread ("the loop"). The manager runs two threads of its
 * own: the commit worker (pwritev + fdatasync, then signals the eventfd)
 * and the segment preparer (zero-fills new files, recycles released ones).
 * Completion callbacks run on the loop, inside sh_wal_mgr_drain().
 * Only sh_wal_mgr_new (startup scan), sh_wal_open (replay reads) and
 * sh_wal_mgr_free (joins) touch the disk from the loop; append, release,
 * delete and close never block on I/O.
 *
 * Durability: a done callback with err == 0 means the frame is on stable
 * storage. A failed write or fdatasync is fatal: it is logged and the
 * fatal hook runs (default: abort()); the WAL never retries, because the
 * kernel may already have dropped the dirty pages. If a test's hook
 * returns, the manager is failed: every pending and later append
 * completes with SH_E_IO.
 *
 * Replay: after a crash, a partition gets back every acknowledged frame
 * that was not released, in order, possibly followed by frames that were
 * written but not yet acknowledged (their fsync had not returned). A
 * release that happened within one commit cycle of a crash can be
 * forgotten, so replay may also return frames at or below offsets already
 * released: callers skip frames at or below the offset they know is safe
 * in object storage.
 */
#ifndef SH_WAL_H
#define SH_WAL_H

#include <stdint.h>
#include <sys/uio.h>

#include "common/sh_err.h"
#include "common/sh_slice.h"
#include "wal/sh_wal_io.h"

typedef struct sh_wal_mgr sh_wal_mgr_t;
typedef struct sh_wal sh_wal_t;

/* Called on the commit worker or the preparer when a write or flush failed.
 * `what` is "write" or "fsync" (etc.), `err` the errno. Default: abort(). */
typedef void (*sh_wal_fatal_fn)(void *arg, const char *what, const char *path, int err);

typedef struct sh_wal_opts {
    /* Each field left 0 takes its default. */
    uint64_t segment_bytes;      /* file size; multiple of 4096, >= 16 KiB; default 64 MiB */
    uint64_t max_unreleased_bytes; /* cap on bytes held by segments not yet recycled plus
                                    * queued appends; >= 2 segments; default 1 GiB */
    uint64_t max_partition_unreleased_bytes; /* per partition (segment granular); 0 = none */
    uint32_t pool_segments;      /* spare files prepared ahead (new ones are zero-filled
                                  * below this); released files are kept for reuse up to
                                  * twice this, unlinked beyond; default 2 */
    uint64_t max_cycle_bytes;    /* frame bytes taken into one commit cycle; default 16 MiB */
    const sh_wal_io_t *io;       /* NULL = sh_wal_io_posix() */
    sh_wal_fatal_fn fatal;       /* NULL = log and abort() */
    void *fatal_arg;
} sh_wal_opts_t;

/* done(arg, err) runs on the loop after the fdatasync covering the append
 * (err 0), or with SH_E_IO if the manager failed. */
typedef void (*sh_wal_done_fn)(void *arg, sh_err_t err);

/* One replayed frame; payload is borrowed for the call only. A nonzero
 * return stops the replay and sh_wal_open returns it. */
typedef sh_err_t (*sh_wal_replay_fn)(void *arg, int64_t first_offset, int64_t last_offset,
                                     sh_slice_t payload);

typedef struct sh_wal_stats {
    uint64_t appends;            /* data frames made durable */
    uint64_t payload_bytes;      /* their payload bytes */
    uint64_t frame_bytes;        /* every byte written as frames (headers, keys, markers) */
    uint64_t cycles;             /* group-commit cycles */
    uint64_t writes;             /* pwritev calls by the commit worker */
    uint64_t fsyncs;             /* fdatasync calls by the commit worker */
    uint64_t fsync_us_sum;       /* time in those fdatasync calls */
    uint64_t fsync_us_max;
    uint64_t ready_waits;        /* times the worker waited for a prepared segment */
    uint64_t segments_created;   /* new files zero-filled */
    uint64_t segments_recycled;  /* released files made ready again */
    uint64_t segments_deleted;   /* surplus released files unlinked */
    uint64_t live_bytes;         /* what counts against max_unreleased_bytes now */
    uint32_t live_segments;      /* segments holding data not yet recycled */
    uint32_t ready_segments;     /* prepared spares waiting */
    uint32_t partitions;         /* partitions the manager tracks (open or with data) */
} sh_wal_stats_t;

/* Fill opts with the defaults. */
void sh_wal_opts_default(sh_wal_opts_t *opts);

/* Open (creating if needed) the WAL directory `dir`, scan the segments it
 * holds and index their frames per key (sequential reads), repair the
 * torn tail, prepare the spare pool and start the threads. opts may be
 * NULL. Errors: SH_E_INVAL (options), SH_E_IO, SH_E_NOMEM. */
sh_err_t sh_wal_mgr_new(const char *dir, const sh_wal_opts_t *opts, sh_wal_mgr_t **out);

/* Finish every queued append (their callbacks run here), join the threads,
 * free every handle and the manager. Handles are invalid afterwards. */
void sh_wal_mgr_free(sh_wal_mgr_t *m);

/* Eventfd that turns readable when completions are waiting (EPOLLIN). */
int sh_wal_mgr_fd(const sh_wal_mgr_t *m);

/* Run the done callbacks of every append the finished cycles covered, in
 * append order. Returns how many appends completed. */
int sh_wal_mgr_drain(sh_wal_mgr_t *m);

/* Call fn(arg, key) for every partition that has unreleased frames and is
 * not open: at startup, the partitions the broker must open (and replay)
 * or delete. fn may open (without creating other keys), release, close or
 * delete the key it is given. A nonzero return from fn stops the walk. */
void sh_wal_mgr_keys(sh_wal_mgr_t *m, int (*fn)(void *arg, const char *key), void *arg);

/* The key of a partition holding the oldest unrecycled segment, or NULL:
 * when appends get SH_E_AGAIN, uploading (then releasing) this partition
 * is what frees space. Borrowed until the next call into the WAL. */
const char *sh_wal_mgr_oldest_key(sh_wal_mgr_t *m);

void sh_wal_mgr_stats(const sh_wal_mgr_t *m, sh_wal_stats_t *out);

/* Open the partition `key` (NUL-terminated, 1..1024 bytes) and hand every
 * unreleased frame it has in the WAL to cb, in offset order, before
 * returning (cb NULL: skip replay). Blocking reads: meant for startup.
 * SH_E_EXISTS if already open; SH_E_AGAIN if a previous handle of the key
 * still has appends in flight and cb is given. */
sh_err_t sh_wal_open(sh_wal_mgr_t *m, const char *key, sh_wal_replay_fn cb, void *arg,
                     sh_wal_t **out);

/* Queue one frame covering offsets first..last (first > every offset
 * appended before, first <= last). The payload is iov[0..iovcnt) (at most
 * 1000 entries); the bytes are not copied: they must stay valid and
 * unchanged until done runs. The iovec array itself is copied.
 * Returns 0 (done will run exactly once), or, with done never run:
 * SH_E_AGAIN (unreleased-bytes cap reached: throttle and retry after
 * releases), SH_KERR_MESSAGE_TOO_LARGE (frame larger than a segment),
 * SH_E_INVAL (offsets or arguments), SH_E_IO (manager failed), SH_E_NOMEM. */
sh_err_t sh_wal_append_start(sh_wal_t *w, int64_t first_offset, int64_t last_offset,
                             const struct iovec *iov, int iovcnt, sh_wal_done_fn done,
                             void *arg);

/* Same with the payload block->data[off .. off+len): the WAL takes a
 * reference on block and drops it after done ran (or at once on error). */
sh_err_t sh_wal_append_block_start(sh_wal_t *w, int64_t first_offset, int64_t last_offset,
                                   sh_block_t *block, size_t off, size_t len,
                                   sh_wal_done_fn done, void *arg);

/* Everything up to and including upto_offset is safe in object storage.
 * Segments no partition needs any more are recycled; a RELEASE marker is
 * logged so replay skips those frames. Never blocks, never SH_E_AGAIN. */
sh_err_t sh_wal_release(sh_wal_t *w, int64_t upto_offset);

/* The partition is gone: forget all its frames (a DELETE marker is
 * logged), recycle what only it held, and close the handle (w is invalid
 * afterwards). Appends in flight still complete. The key may be opened
 * again at once and starts empty. */
sh_err_t sh_wal_delete(sh_wal_t *w);

/* Close the handle. Its unreleased frames stay in the WAL (and keep their
 * segments) until the key is opened again and released, or deleted.
 * Appends in flight still complete. */
void sh_wal_close(sh_wal_t *w);

/* Last offset known fsync'd (published by the worker, readable any time on
 * the loop), or -1. */
int64_t sh_wal_durable_offset(const sh_wal_t *w);

/* Last offset accepted by append_start (or replayed), or -1. */
int64_t sh_wal_last_offset(const sh_wal_t *w);

const char *sh_wal_key(const sh_wal_t *w);

#endif
