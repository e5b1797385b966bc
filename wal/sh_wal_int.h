/*
 * sh_wal_int.h - structures shared by the WAL's source files (manager and
 * loop side in sh_wal.c, commit worker and preparer in sh_wal_worker.c,
 * startup scan and replay in sh_wal_replay.c). Not for other modules.
 *
 * Who touches what:
 *   sh_wal_file_t   one per segment file. Handed between threads through
 *                   the mutex-protected queues below, so at any time one
 *                   thread owns it: the preparer (creating/recycling), the
 *                   ready queue, the worker (active), the loop (seg list),
 *                   the recycle queue. The `all` list (under mu) owns the
 *                   memory; fd and path never change after creation.
 *   sh_wal_seg_t    the loop's record of a file holding frames (live).
 *   sh_wal_t        one per partition key; loop only, except `durable`,
 *                   which the worker stores atomically after an fsync.
 *   sh_wal_node_t   one queued frame; the loop allocates it, the worker
 *                   places and writes it, the loop completes and frees it.
 */
#ifndef SH_WAL_INT_H
#define SH_WAL_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "wal/sh_wal.h"
#include "wal/sh_wal_format.h"

#define SH_WAL_MAX_IOV 1000
#define SH_WAL_SEAL_BYTES SH_WAL_FRAME_HDR_SIZE

typedef struct sh_wal_file {
    struct sh_wal_file *next;  /* link in ready or recycle queue */
    struct sh_wal_file *all_next;
    int fd;
    uint32_t id;               /* wal-<id>.seg */
    uint64_t size;             /* bytes in the file */
    uint64_t seq;              /* current header seq (0 = none yet) */
    uint64_t wpos;             /* worker: next write position while active */
    char path[];
} sh_wal_file_t;

typedef struct sh_wal_seg {
    struct sh_wal_seg *next;
    sh_wal_file_t *file;
    uint64_t seq;
    uint64_t bytes;            /* frame bytes in it (what live_bytes counts) */
    uint64_t end;              /* end of the last completed frame */
    uint32_t pins;             /* partitions with unreleased data here */
    bool sealed;               /* no more frames will land here */
} sh_wal_seg_t;

/* A partition's unreleased data in one segment. */
typedef struct sh_wal_pin {
    sh_wal_seg_t *seg;
    int64_t max_last;
    uint64_t bytes;
} sh_wal_pin_t;

/* Where a frame found by the startup scan lives (freed once replayed). */
typedef struct sh_wal_loc {
    sh_wal_file_t *file;
    uint64_t seq;
    uint64_t pos;
    uint32_t len;
    int64_t last;
} sh_wal_loc_t;

struct sh_wal {
    sh_wal_mgr_t *m;
    struct sh_wal *hnext;      /* hash chain */
    uint32_t hash;
    uint16_t key_len;
    bool open;
    bool in_hash;
    uint32_t pending;          /* data appends not completed */
    uint32_t inflight;         /* all queued nodes (data + markers): keeps us alive */
    int64_t last_offset;       /* last appended or replayed */
    int64_t released;          /* released up to (inclusive), -1 none */
    _Atomic int64_t durable;
    uint64_t unreleased_bytes; /* pending + pinned frame bytes (per-partition cap) */
    sh_wal_pin_t *pins;        /* FIFO in segment order */
    uint32_t pin_head, pin_len, pin_cap;
    sh_wal_loc_t *locs;        /* startup index, in log order */
    size_t loc_head, loc_len, loc_cap;
    char key[];
};

typedef struct sh_wal_node {
    struct sh_wal_node *next;
    sh_wal_t *w;
    uint8_t type;
    int64_t first, last;
    sh_wal_done_fn done;
    void *arg;
    sh_block_t *block;
    uint32_t frame_len;
    int iovcnt;
    sh_err_t err;
    /* placement, written by the worker */
    sh_wal_file_t *file;
    uint64_t seq;
    uint64_t pos;
    uint8_t hdr[SH_WAL_FRAME_HDR_SIZE];
    struct iovec iov[];
} sh_wal_node_t;

struct sh_wal_mgr {
    char *dir;
    sh_wal_opts_t opts;
    const sh_wal_io_t *io;
    int efd;
    pthread_t worker, prep;
    bool worker_started, prep_started;

    pthread_mutex_t mu;
    pthread_cond_t work_cv;    /* worker: queue or ready segment */
    pthread_cond_t prep_cv;    /* preparer: something to prepare */
    /* under mu */
    sh_wal_node_t *q_head, *q_tail;
    sh_wal_node_t *done_head, *done_tail;
    sh_wal_file_t *ready_head, *ready_tail;
    uint32_t ready_count;
    sh_wal_file_t *recycle_head, *recycle_tail;
    sh_wal_file_t *all;
    bool stop_worker, stop_prep;
    bool prep_stuck;           /* preparer cannot create files while stopping */
    uint64_t next_seq;
    uint32_t next_file_id;

    _Atomic bool failed;

    /* worker only */
    sh_wal_file_t *active;

    /* loop only */
    sh_wal_t **table;
    uint32_t table_size, nparts;
    sh_wal_seg_t *seg_head, *seg_tail;
    uint32_t nsegs;
    uint64_t live_bytes;
    uint64_t inflight_bytes;   /* frame bytes queued and not yet drained */
    uint8_t *rbuf;             /* replay buffer */
    size_t rbuf_cap;

    struct {
        _Atomic uint64_t appends, payload_bytes, frame_bytes, cycles, writes, fsyncs;
        _Atomic uint64_t fsync_us_sum, fsync_us_max, ready_waits;
        _Atomic uint64_t created, recycled, deleted;
    } st;
};

/* sh_wal_worker.c */
void *sh_wal_worker_main(void *arg);
void *sh_wal_prep_main(void *arg);
/* Prepare spares on the calling thread until the pool is full (startup). */
sh_err_t sh_wal_prep_fill_sync(sh_wal_mgr_t *m);
/* Report a fatal I/O error: log, run the hook, mark the manager failed. */
void sh_wal_fatal(sh_wal_mgr_t *m, const char *what, const char *path, int err);
sh_err_t sh_wal_fsync_dir(sh_wal_mgr_t *m);
/* Read exactly len bytes (or fewer at end of file). -1 on error. */
ssize_t sh_wal_pread_full(sh_wal_mgr_t *m, int fd, void *buf, size_t len, uint64_t off);
/* Write all of iov (retrying short writes). 0 or errno. */
int sh_wal_pwritev_full(sh_wal_mgr_t *m, int fd, struct iovec *iov, int iovcnt, uint64_t off);

/* sh_wal_replay.c */
sh_err_t sh_wal_scan_startup(sh_wal_mgr_t *m);
sh_err_t sh_wal_replay_locs(sh_wal_t *w, sh_wal_replay_fn cb, void *arg);
sh_err_t sh_wal_replay_pins(sh_wal_t *w, sh_wal_replay_fn cb, void *arg);

/* sh_wal.c, loop-side helpers the scan reuses */
sh_wal_t *sh_wal_part_get(sh_wal_mgr_t *m, const char *key, size_t key_len, bool create);
sh_err_t sh_wal_pin_add(sh_wal_t *w, sh_wal_seg_t *seg, int64_t last, uint64_t bytes);
void sh_wal_pins_release(sh_wal_t *w, int64_t upto);
void sh_wal_pins_drop_all(sh_wal_t *w);
void sh_wal_part_maybe_free(sh_wal_t *w);
void sh_wal_recycle_try(sh_wal_mgr_t *m);
/* Cross-check the loop-side bookkeeping (byte accounting, pin counts);
 * SH_E_CORRUPT with a log line on the first mismatch. For tests. */
sh_err_t sh_wal_mgr_check(sh_wal_mgr_t *m);
sh_wal_file_t *sh_wal_file_new(sh_wal_mgr_t *m, uint32_t id, int fd, uint64_t size);
void sh_wal_file_forget_locked(sh_wal_mgr_t *m, sh_wal_file_t *f);
int sh_wal_errstr_buf(int err, char *buf, size_t len);

#endif
