/*
 * sh_wal_worker.c - the two threads a WAL manager runs.
 *
 * The commit worker is group commit: it sleeps until the loop queues
 * frames, takes everything queued (up to max_cycle_bytes), places the
 * frames one after another in the active segment, writes them with as few
 * pwritev calls as the iovec limit allows (payload bytes straight from the
 * caller's memory), issues one fdatasync, publishes each partition's
 * durable offset and hands the whole batch back to the loop through the
 * done list and the eventfd. Frames queued while it is in fdatasync form
 * the next cycle, so under load one flush covers many appends of many
 * partitions. When a frame does not fit the active segment, the worker
 * writes a SEAL frame, flushes that segment before writing into the next
 * one (so at most one segment ever holds unflushed frames, and replay
 * never sees a later segment survive an earlier one's torn tail), and
 * takes the next prepared file from the ready queue.
 *
 * A failed write or flush is fatal (sh_wal_fatal): PostgreSQL learned that
 * retrying fsync after an error can report success for pages the kernel
 * already threw away. If the fatal hook returns (tests), the manager is
 * marked failed and every frame completes with SH_E_IO.
 *
 * The preparer keeps pool_segments files ready so the worker never waits
 * for a file to be created: it recycles released files (rewrites the
 * header with a new sequence number and flushes it, one sector) or, when
 * none is released, creates a file (fallocate, zero-fill every block so
 * later writes overwrite instead of allocating, header, fdatasync, rename
 * from .tmp, fsync the directory). Surplus released files are unlinked.
 * Failures here are not fatal: no acknowledged data depends on a spare, so
 * the file is dropped and the preparer retries later.
 *
 * Ownership: nodes travel loop -> queue -> worker -> done list -> loop;
 * files travel preparer -> ready -> worker (active) -> loop (segment list)
 * -> recycle queue -> preparer. Queues are under m->mu.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/sh_clock.h"
#include "common/sh_crc32c.h"
#include "common/sh_log.h"
#include "wal/sh_wal_int.h"

#define ZERO_CHUNK (64u * 1024u)
static const uint8_t sh_wal_zeros[ZERO_CHUNK];

int sh_wal_errstr_buf(int err, char *buf, size_t len)
{
    /* GNU strerror_r may return a static string instead of filling buf */
    const char *s = strerror_r(err, buf, len);
    if (s != buf)
        snprintf(buf, len, "%s", s);
    return 0;
}

void sh_wal_fatal(sh_wal_mgr_t *m, const char *what, const char *path, int err)
{
    char eb[128];
    sh_wal_errstr_buf(err, eb, sizeof(eb));
    sh_log(SH_LOG_ERROR, "wal", "could not %s file \"%s\": %s", what, path, eb);
    if (m->opts.fatal)
        m->opts.fatal(m->opts.fatal_arg, what, path, err);
    else
        abort();
    atomic_store(&m->failed, true);
    pthread_mutex_lock(&m->mu);
    pthread_cond_broadcast(&m->work_cv);
    pthread_cond_broadcast(&m->prep_cv);
    pthread_mutex_unlock(&m->mu);
}

ssize_t sh_wal_pread_full(sh_wal_mgr_t *m, int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = m->io->pread(m->io->ctx, fd, (uint8_t *)buf + got, len - got,
                                 (off_t)(off + got));
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

int sh_wal_pwritev_full(sh_wal_mgr_t *m, int fd, struct iovec *iov, int iovcnt, uint64_t off)
{
    int i = 0;
    while (i < iovcnt && iov[i].iov_len == 0)
        i++;
    while (i < iovcnt) {
        ssize_t n = m->io->pwritev(m->io->ctx, fd, iov + i, iovcnt - i, (off_t)off);
        if (n < 0)
            return errno ? errno : EIO;
        if (n == 0)
            return ENOSPC; /* PostgreSQL's reading of a write that makes no progress */
        off += (uint64_t)n;
        size_t left = (size_t)n;
        while (i < iovcnt && left >= iov[i].iov_len) {
            left -= iov[i].iov_len;
            i++;
        }
        if (left) {
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + left;
            iov[i].iov_len -= left;
        }
        while (i < iovcnt && iov[i].iov_len == 0)
            i++;
    }
    return 0;
}

sh_err_t sh_wal_fsync_dir(sh_wal_mgr_t *m)
{
    int fd = m->io->open(m->io->ctx, m->dir, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return SH_E_IO;
    int rc = m->io->fsync(m->io->ctx, fd);
    int e = errno;
    m->io->close(m->io->ctx, fd);
    errno = e;
    return rc == 0 ? SH_OK : SH_E_IO;
}

/* ---- commit worker ---- */

typedef struct {
    sh_wal_mgr_t *m;
    struct iovec iov[IOV_MAX];
    int n;
    uint64_t start;            /* file offset of iov[0] */
    bool ok;
} wbatch_t;

static bool wb_flush(wbatch_t *b)
{
    sh_wal_mgr_t *m = b->m;
    if (b->n == 0 || !b->ok)
        return b->ok;
    int err = sh_wal_pwritev_full(m, m->active->fd, b->iov, b->n, b->start);
    atomic_fetch_add_explicit(&m->st.writes, 1, memory_order_relaxed);
    b->n = 0;
    if (err) {
        sh_wal_fatal(m, "write to", m->active->path, err);
        b->ok = false;
    }
    return b->ok;
}

static bool w_fsync(sh_wal_mgr_t *m, sh_wal_file_t *f)
{
    int64_t t0 = sh_clock_mono_us();
    int rc = m->io->fdatasync(m->io->ctx, f->fd);
    int err = errno;
    uint64_t us = (uint64_t)(sh_clock_mono_us() - t0);
    atomic_fetch_add_explicit(&m->st.fsyncs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->st.fsync_us_sum, us, memory_order_relaxed);
    uint64_t mx = atomic_load_explicit(&m->st.fsync_us_max, memory_order_relaxed);
    while (us > mx && !atomic_compare_exchange_weak(&m->st.fsync_us_max, &mx, us))
        ;
    if (rc != 0) {
        sh_wal_fatal(m, "fsync", f->path, err ? err : EIO);
        return false;
    }
    return true;
}

/* Next prepared file, waiting for the preparer if needed; NULL if the
 * manager failed or no file can be had during shutdown. */
static sh_wal_file_t *w_take_ready(sh_wal_mgr_t *m)
{
    pthread_mutex_lock(&m->mu);
    if (!m->ready_head) {
        atomic_fetch_add_explicit(&m->st.ready_waits, 1, memory_order_relaxed);
        pthread_cond_signal(&m->prep_cv);
    }
    while (!m->ready_head && !m->prep_stuck && !atomic_load(&m->failed))
        pthread_cond_wait(&m->work_cv, &m->mu);
    sh_wal_file_t *f = m->ready_head;
    if (f && !atomic_load(&m->failed)) {
        m->ready_head = f->next;
        if (!m->ready_head)
            m->ready_tail = NULL;
        f->next = NULL;
        m->ready_count--;
        pthread_cond_signal(&m->prep_cv); /* refill */
    } else {
        f = NULL;
    }
    pthread_mutex_unlock(&m->mu);
    return f;
}

static void w_cycle(sh_wal_mgr_t *m, sh_wal_node_t *batch)
{
    static _Thread_local wbatch_t b; /* 16 KiB of iovecs: keep it off the stack */
    uint8_t seal[SH_WAL_SEAL_BYTES];
    sh_wal_file_t *dirty = NULL;
    sh_wal_node_t *n;

    b.m = m;
    b.n = 0;
    b.ok = !atomic_load(&m->failed);
    for (n = batch; n && b.ok; n = n->next) {
        sh_wal_file_t *a = m->active;
        if (!a || a->wpos + n->frame_len + SH_WAL_SEAL_BYTES > a->size) {
            if (a) {
                /* seal and flush this segment before touching the next one */
                sh_wal_frame_hdr_encode(seal, SH_WAL_FRAME_SEAL, a->seq, 0, SH_WAL_SEAL_BYTES,
                                        -1, -1);
                sh_wal_frame_hdr_set_crc(seal, sh_wal_frame_hdr_crc(seal));
                if (b.n + 1 > IOV_MAX && !wb_flush(&b))
                    break;
                if (b.n == 0)
                    b.start = a->wpos;
                b.iov[b.n++] = (struct iovec){seal, sizeof(seal)};
                a->wpos += SH_WAL_SEAL_BYTES;
                if (!wb_flush(&b) || !w_fsync(m, a)) {
                    b.ok = false;
                    break;
                }
                dirty = NULL;
            }
            a = m->active = w_take_ready(m);
            if (!a) {
                b.ok = false;
                break;
            }
            a->wpos = SH_WAL_SEG_HDR_SIZE;
        }
        uint16_t klen = n->w->key_len;
        sh_wal_frame_hdr_encode(n->hdr, n->type, a->seq, klen, n->frame_len, n->first,
                                n->last);
        uint32_t crc = sh_wal_frame_hdr_crc(n->hdr);
        crc = sh_crc32c(crc, n->w->key, klen);
        for (int i = 0; i < n->iovcnt; i++)
            crc = sh_crc32c(crc, n->iov[i].iov_base, n->iov[i].iov_len);
        sh_wal_frame_hdr_set_crc(n->hdr, crc);
        n->file = a;
        n->seq = a->seq;
        n->pos = a->wpos;
        if (b.n + 2 + n->iovcnt > IOV_MAX && !wb_flush(&b))
            break;
        if (b.n == 0)
            b.start = a->wpos;
        b.iov[b.n++] = (struct iovec){n->hdr, SH_WAL_FRAME_HDR_SIZE};
        b.iov[b.n++] = (struct iovec){n->w->key, klen};
        for (int i = 0; i < n->iovcnt; i++)
            b.iov[b.n++] = n->iov[i];
        a->wpos += n->frame_len;
        dirty = a;
    }
    if (b.ok && wb_flush(&b) && dirty && !w_fsync(m, dirty))
        b.ok = false;

    atomic_fetch_add_explicit(&m->st.cycles, 1, memory_order_relaxed);
    for (n = batch; n; n = n->next) {
        if (!b.ok) {
            n->err = SH_E_IO;
            continue;
        }
        n->err = SH_OK;
        atomic_fetch_add_explicit(&m->st.frame_bytes, n->frame_len, memory_order_relaxed);
        if (n->type == SH_WAL_FRAME_DATA) {
            /* frames of one partition are in offset order, so a plain store
             * keeps the published offset monotonic */
            atomic_store_explicit(&n->w->durable, n->last, memory_order_release);
            atomic_fetch_add_explicit(&m->st.appends, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&m->st.payload_bytes,
                                      n->frame_len - SH_WAL_FRAME_HDR_SIZE - n->w->key_len,
                                      memory_order_relaxed);
        }
    }
}

void *sh_wal_worker_main(void *arg)
{
    sh_wal_mgr_t *m = arg;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (!m->q_head && !m->stop_worker)
            pthread_cond_wait(&m->work_cv, &m->mu);
        if (!m->q_head)
            break;
        /* take a prefix of the queue worth at most max_cycle_bytes */
        sh_wal_node_t *head = m->q_head, *tail = head;
        uint64_t bytes = head->frame_len;
        while (tail->next && bytes + tail->next->frame_len <= m->opts.max_cycle_bytes) {
            tail = tail->next;
            bytes += tail->frame_len;
        }
        m->q_head = tail->next;
        if (!m->q_head)
            m->q_tail = NULL;
        tail->next = NULL;
        pthread_mutex_unlock(&m->mu);

        w_cycle(m, head);

        pthread_mutex_lock(&m->mu);
        if (m->done_tail)
            m->done_tail->next = head;
        else
            m->done_head = head;
        m->done_tail = tail;
        pthread_mutex_unlock(&m->mu);
        uint64_t one = 1;
        ssize_t wr = write(m->efd, &one, sizeof(one));
        (void)wr; /* EAGAIN only when the counter is about to overflow: still readable */
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ---- segment preparer ---- */

static int write_header(sh_wal_mgr_t *m, sh_wal_file_t *f, uint64_t seq)
{
    uint8_t hdr[SH_WAL_SEG_HDR_SIZE];
    sh_wal_seghdr_t h = {.seq = seq, .segment_bytes = f->size, .created_ms = sh_clock_wall_ms()};
    sh_wal_seghdr_encode(hdr, &h);
    struct iovec iov = {hdr, sizeof(hdr)};
    return sh_wal_pwritev_full(m, f->fd, &iov, 1, 0);
}

/* Create wal-<id>.seg of segment_bytes, every block written once. */
static sh_wal_file_t *create_file(sh_wal_mgr_t *m, uint32_t id, uint64_t seq)
{
    const sh_wal_io_t *io = m->io;
    size_t dl = strlen(m->dir);
    char *tmp = malloc(dl + 32);
    sh_wal_file_t *f = NULL;
    int fd = -1, err = 0;
    const char *what = "create";

    if (!tmp)
        return NULL;
    snprintf(tmp, dl + 32, "%s/wal-%08x.tmp", m->dir, id);
    io->unlink(io->ctx, tmp); /* a leftover of an interrupted creation */
    fd = io->open(io->ctx, tmp, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        goto fail;
    f = sh_wal_file_new(m, id, fd, m->opts.segment_bytes);
    if (!f) {
        errno = ENOMEM;
        goto fail;
    }
    what = "allocate";
    if (io->fallocate(io->ctx, fd, (off_t)f->size) != 0)
        goto fail;
    what = "zero-fill";
    struct iovec iov[16];
    for (uint64_t off = SH_WAL_SEG_HDR_SIZE; off < f->size;) {
        int n = 0;
        uint64_t at = off;
        while (n < 16 && off < f->size) {
            uint64_t c = f->size - off < ZERO_CHUNK ? f->size - off : ZERO_CHUNK;
            iov[n++] = (struct iovec){(void *)sh_wal_zeros, c};
            off += c;
        }
        if ((err = sh_wal_pwritev_full(m, fd, iov, n, at)) != 0) {
            errno = err;
            goto fail;
        }
    }
    what = "write header of";
    if ((err = write_header(m, f, seq)) != 0) {
        errno = err;
        goto fail;
    }
    what = "fsync";
    if (io->fdatasync(io->ctx, fd) != 0)
        goto fail;
    what = "rename";
    if (io->rename(io->ctx, tmp, f->path) != 0)
        goto fail;
    if (sh_wal_fsync_dir(m) != SH_OK) {
        what = "fsync directory of";
        io->unlink(io->ctx, f->path);
        goto fail_named;
    }
    f->seq = seq;
    free(tmp);
    return f;

fail:
    err = errno;
    io->unlink(io->ctx, tmp);
fail_named: {
    char eb[128];
    sh_wal_errstr_buf(err ? err : errno, eb, sizeof(eb));
    sh_log(SH_LOG_WARN, "wal", "could not %s WAL segment \"%s\": %s", what, tmp, eb);
}
    if (f) {
        pthread_mutex_lock(&m->mu);
        sh_wal_file_forget_locked(m, f);
        pthread_mutex_unlock(&m->mu);
    } else if (fd >= 0) {
        io->close(io->ctx, fd);
    }
    free(tmp);
    return NULL;
}

/* Give a released file a new life: new seq in the header, flushed, so that
 * every frame of its previous life is stale. false: the file was dropped. */
static bool recycle_file(sh_wal_mgr_t *m, sh_wal_file_t *f, uint64_t seq)
{
    const sh_wal_io_t *io = m->io;
    int err = write_header(m, f, seq);
    if (err == 0 && io->fdatasync(io->ctx, f->fd) != 0)
        err = errno ? errno : EIO;
    if (err == 0) {
        f->seq = seq;
        return true;
    }
    char eb[128];
    sh_wal_errstr_buf(err, eb, sizeof(eb));
    sh_log(SH_LOG_WARN, "wal", "could not recycle WAL segment \"%s\": %s", f->path, eb);
    /* the old header may or may not be on disk: the file must go */
    io->unlink(io->ctx, f->path);
    sh_wal_fsync_dir(m);
    pthread_mutex_lock(&m->mu);
    sh_wal_file_forget_locked(m, f);
    pthread_mutex_unlock(&m->mu);
    return false;
}

static void push_ready_locked(sh_wal_mgr_t *m, sh_wal_file_t *f)
{
    f->next = NULL;
    if (m->ready_tail)
        m->ready_tail->next = f;
    else
        m->ready_head = f;
    m->ready_tail = f;
    m->ready_count++;
    pthread_cond_broadcast(&m->work_cv);
}

/* One step of preparation with m->mu held (dropped around the I/O).
 * Returns false when there was nothing to do. */
static bool prep_step_locked(sh_wal_mgr_t *m, bool *failed_create)
{
    *failed_create = false;
    if (m->recycle_head) {
        sh_wal_file_t *f = m->recycle_head;
        m->recycle_head = f->next;
        if (!m->recycle_head)
            m->recycle_tail = NULL;
        f->next = NULL;
        /* keep up to twice the pool: a file recycled while the pool is
         * full is the one that saves a zero-fill when a burst comes */
        if (m->ready_count >= 2 * m->opts.pool_segments || f->size != m->opts.segment_bytes) {
            pthread_mutex_unlock(&m->mu);
            m->io->unlink(m->io->ctx, f->path);
            /* an unlink that a crash forgets would bring released frames back */
            sh_wal_fsync_dir(m);
            pthread_mutex_lock(&m->mu);
            sh_wal_file_forget_locked(m, f);
            atomic_fetch_add_explicit(&m->st.deleted, 1, memory_order_relaxed);
            return true;
        }
        uint64_t seq = m->next_seq++;
        pthread_mutex_unlock(&m->mu);
        bool ok = recycle_file(m, f, seq);
        pthread_mutex_lock(&m->mu);
        if (ok) {
            push_ready_locked(m, f);
            atomic_fetch_add_explicit(&m->st.recycled, 1, memory_order_relaxed);
        }
        return true;
    }
    if (m->ready_count < m->opts.pool_segments) {
        uint32_t id = m->next_file_id++;
        uint64_t seq = m->next_seq++;
        pthread_mutex_unlock(&m->mu);
        sh_wal_file_t *f = create_file(m, id, seq);
        pthread_mutex_lock(&m->mu);
        if (f) {
            push_ready_locked(m, f);
            atomic_fetch_add_explicit(&m->st.created, 1, memory_order_relaxed);
        } else {
            *failed_create = true;
        }
        return true;
    }
    return false;
}

sh_err_t sh_wal_prep_fill_sync(sh_wal_mgr_t *m)
{
    sh_err_t rc = SH_OK;
    bool failed;
    pthread_mutex_lock(&m->mu);
    while (prep_step_locked(m, &failed)) {
        if (failed) {
            rc = SH_E_IO;
            break;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

void *sh_wal_prep_main(void *arg)
{
    sh_wal_mgr_t *m = arg;
    pthread_mutex_lock(&m->mu);
    while (!m->stop_prep) {
        bool failed;
        if (atomic_load(&m->failed) || !prep_step_locked(m, &failed)) {
            pthread_cond_wait(&m->prep_cv, &m->mu);
            continue;
        }
        if (failed) {
            if (m->stop_worker) {
                /* shutting down and out of files: let the worker give up */
                m->prep_stuck = true;
                pthread_cond_broadcast(&m->work_cv);
            }
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += 200 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&m->prep_cv, &m->mu, &ts);
        }
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}
