/*
 * sh_wal.c - the WAL manager and the partition handles: the loop-thread
 * side of the write-ahead log (sh_wal.h is the API, docs/wal.md the
 * format, docs/adr/002-wal-format.md the reasons).
 *
 * Bookkeeping that decides when a segment file can be recycled:
 *
 *   Every file that holds frames has a sh_wal_seg_t on the loop's segment
 *   list, in sequence order. A partition that has unreleased data in a
 *   segment holds one "pin" on it (its pin FIFO has one entry per such
 *   segment, with the highest offset it put there). Releasing up to an
 *   offset pops every pin whose highest offset is covered. Segments are
 *   recycled strictly from the head of the list, when the head is sealed
 *   (the worker moved past it) and unpinned. Recycling in order keeps the
 *   live files a contiguous run of sequence numbers, and guarantees that a
 *   RELEASE marker for data in a live segment sits in that segment or a
 *   later one, so the replay after a crash still sees it.
 *
 *   The price of in-order recycling on a shared log is that one partition
 *   that never uploads keeps every later segment alive; the byte cap turns
 *   that into SH_E_AGAIN and sh_wal_mgr_oldest_key() names the partition
 *   to upload first (RocksDB answers the same problem of a shared WAL the
 *   same way: flush whoever pins the oldest log file).
 *
 * Counting against max_unreleased_bytes: an append reserves its frame
 * bytes at once (so queued appends count), a recycled segment returns the
 * bytes of the frames it held. Markers are reserved too but never refused:
 * a release must always be possible, or a full WAL could never drain.
 *
 * Threads: everything here runs on the loop thread, except that the worker
 * stores partition->durable and reads the nodes we queue (each node and
 * its partition stay alive until the loop has completed the node).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/sh_log.h"
#include "wal/sh_wal_int.h"

void sh_wal_opts_default(sh_wal_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->segment_bytes = 64ull << 20;
    o->max_unreleased_bytes = 1ull << 30;
    o->max_partition_unreleased_bytes = 0;
    o->pool_segments = 2;
    o->max_cycle_bytes = 16ull << 20;
    o->io = sh_wal_io_posix();
}

static sh_err_t opts_resolve(const sh_wal_opts_t *in, sh_wal_opts_t *o)
{
    sh_wal_opts_default(o);
    if (in) {
        if (in->segment_bytes)
            o->segment_bytes = in->segment_bytes;
        if (in->max_unreleased_bytes)
            o->max_unreleased_bytes = in->max_unreleased_bytes;
        o->max_partition_unreleased_bytes = in->max_partition_unreleased_bytes;
        if (in->pool_segments)
            o->pool_segments = in->pool_segments;
        if (in->max_cycle_bytes)
            o->max_cycle_bytes = in->max_cycle_bytes;
        if (in->io)
            o->io = in->io;
        o->fatal = in->fatal;
        o->fatal_arg = in->fatal_arg;
    }
    if (o->segment_bytes < (16u << 10) || o->segment_bytes % 4096 != 0 ||
        o->segment_bytes > (1ull << 32)) {
        sh_log(SH_LOG_ERROR, "wal", "invalid WAL segment size %llu",
               (unsigned long long)o->segment_bytes);
        return SH_E_INVAL;
    }
    if (o->max_unreleased_bytes < 2 * o->segment_bytes) {
        sh_log(SH_LOG_ERROR, "wal",
               "WAL size limit %llu is smaller than two segments of %llu bytes",
               (unsigned long long)o->max_unreleased_bytes,
               (unsigned long long)o->segment_bytes);
        return SH_E_INVAL;
    }
    return SH_OK;
}

/* ---- files ---- */

sh_wal_file_t *sh_wal_file_new(sh_wal_mgr_t *m, uint32_t id, int fd, uint64_t size)
{
    size_t dl = strlen(m->dir);
    sh_wal_file_t *f = calloc(1, sizeof(*f) + dl + 20);
    if (!f)
        return NULL;
    f->fd = fd;
    f->id = id;
    f->size = size;
    snprintf(f->path, dl + 20, "%s/wal-%08x.seg", m->dir, id);
    pthread_mutex_lock(&m->mu);
    f->all_next = m->all;
    m->all = f;
    pthread_mutex_unlock(&m->mu);
    return f;
}

void sh_wal_file_forget_locked(sh_wal_mgr_t *m, sh_wal_file_t *f)
{
    for (sh_wal_file_t **pp = &m->all; *pp; pp = &(*pp)->all_next) {
        if (*pp == f) {
            *pp = f->all_next;
            break;
        }
    }
    if (f->fd >= 0)
        m->io->close(m->io->ctx, f->fd);
    free(f);
}

/* ---- partitions ---- */

static uint32_t key_hash(const char *k, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)k[i]) * 16777619u;
    return h;
}

static sh_err_t table_grow(sh_wal_mgr_t *m)
{
    uint32_t nsz = m->table_size * 2;
    sh_wal_t **nt = calloc(nsz, sizeof(*nt));
    if (!nt)
        return SH_E_NOMEM;
    for (uint32_t i = 0; i < m->table_size; i++) {
        sh_wal_t *w = m->table[i], *next;
        for (; w; w = next) {
            next = w->hnext;
            w->hnext = nt[w->hash & (nsz - 1)];
            nt[w->hash & (nsz - 1)] = w;
        }
    }
    free(m->table);
    m->table = nt;
    m->table_size = nsz;
    return SH_OK;
}

sh_wal_t *sh_wal_part_get(sh_wal_mgr_t *m, const char *key, size_t key_len, bool create)
{
    uint32_t h = key_hash(key, key_len);
    for (sh_wal_t *w = m->table[h & (m->table_size - 1)]; w; w = w->hnext)
        if (w->hash == h && w->key_len == key_len && memcmp(w->key, key, key_len) == 0)
            return w;
    if (!create)
        return NULL;
    if (m->nparts >= m->table_size && table_grow(m) != SH_OK)
        return NULL;
    sh_wal_t *w = calloc(1, sizeof(*w) + key_len + 1);
    if (!w)
        return NULL;
    w->m = m;
    w->hash = h;
    w->key_len = (uint16_t)key_len;
    memcpy(w->key, key, key_len);
    w->last_offset = -1;
    w->released = -1;
    atomic_init(&w->durable, -1);
    w->hnext = m->table[h & (m->table_size - 1)];
    m->table[h & (m->table_size - 1)] = w;
    w->in_hash = true;
    m->nparts++;
    return w;
}

static void part_unhash(sh_wal_t *w)
{
    sh_wal_mgr_t *m = w->m;
    if (!w->in_hash)
        return;
    for (sh_wal_t **pp = &m->table[w->hash & (m->table_size - 1)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == w) {
            *pp = w->hnext;
            break;
        }
    }
    w->in_hash = false;
    m->nparts--;
}

static void part_destroy(sh_wal_t *w)
{
    part_unhash(w);
    free(w->pins);
    free(w->locs);
    free(w);
}

/* Free the partition state once nothing refers to it: not open, nothing
 * queued, no unreleased data, nothing left to replay. */
void sh_wal_part_maybe_free(sh_wal_t *w)
{
    if (!w->open && w->inflight == 0 && w->pin_len == 0 && w->loc_len == 0)
        part_destroy(w);
}

sh_err_t sh_wal_pin_add(sh_wal_t *w, sh_wal_seg_t *seg, int64_t last, uint64_t bytes)
{
    if (w->pin_len) {
        sh_wal_pin_t *t = &w->pins[(w->pin_head + w->pin_len - 1) % w->pin_cap];
        if (t->seg == seg) {
            if (last > t->max_last)
                t->max_last = last;
            t->bytes += bytes;
            return SH_OK;
        }
    }
    if (w->pin_len == w->pin_cap) {
        uint32_t ncap = w->pin_cap ? w->pin_cap * 2 : 2;
        sh_wal_pin_t *np = malloc(ncap * sizeof(*np));
        if (!np)
            return SH_E_NOMEM;
        for (uint32_t i = 0; i < w->pin_len; i++)
            np[i] = w->pins[(w->pin_head + i) % w->pin_cap];
        free(w->pins);
        w->pins = np;
        w->pin_cap = ncap;
        w->pin_head = 0;
    }
    w->pins[(w->pin_head + w->pin_len) % w->pin_cap] =
        (sh_wal_pin_t){.seg = seg, .max_last = last, .bytes = bytes};
    w->pin_len++;
    seg->pins++;
    return SH_OK;
}

static void pins_shrink(sh_wal_t *w)
{
    /* an idle partition goes back to its bare struct */
    if (w->pin_len == 0 && w->pin_cap > 2) {
        free(w->pins);
        w->pins = NULL;
        w->pin_cap = 0;
        w->pin_head = 0;
    }
    if (w->loc_len == 0 && w->locs) {
        free(w->locs);
        w->locs = NULL;
        w->loc_cap = 0;
        w->loc_head = 0;
    }
}

void sh_wal_pins_release(sh_wal_t *w, int64_t upto)
{
    while (w->pin_len) {
        sh_wal_pin_t *p = &w->pins[w->pin_head];
        if (p->max_last > upto)
            break;
        p->seg->pins--;
        w->unreleased_bytes -= p->bytes;
        w->pin_head = (w->pin_head + 1) % w->pin_cap;
        w->pin_len--;
    }
    while (w->loc_len && w->locs[w->loc_head].last <= upto) {
        w->loc_head++;
        w->loc_len--;
    }
    pins_shrink(w);
}

void sh_wal_pins_drop_all(sh_wal_t *w)
{
    while (w->pin_len) {
        sh_wal_pin_t *p = &w->pins[w->pin_head];
        p->seg->pins--;
        w->unreleased_bytes -= p->bytes;
        w->pin_head = (w->pin_head + 1) % w->pin_cap;
        w->pin_len--;
    }
    w->loc_len = 0;
    pins_shrink(w);
}

/* ---- segments ---- */

void sh_wal_recycle_try(sh_wal_mgr_t *m)
{
    bool any = false;
    while (m->seg_head && m->seg_head->sealed && m->seg_head->pins == 0) {
        sh_wal_seg_t *s = m->seg_head;
        m->seg_head = s->next;
        if (!m->seg_head)
            m->seg_tail = NULL;
        m->nsegs--;
        m->live_bytes -= s->bytes;
        pthread_mutex_lock(&m->mu);
        s->file->next = NULL;
        if (m->recycle_tail)
            m->recycle_tail->next = s->file;
        else
            m->recycle_head = s->file;
        m->recycle_tail = s->file;
        pthread_mutex_unlock(&m->mu);
        free(s);
        any = true;
    }
    if (any) {
        pthread_mutex_lock(&m->mu);
        pthread_cond_signal(&m->prep_cv);
        pthread_mutex_unlock(&m->mu);
    }
}

/* The segment a completed node landed in; frames complete in log order, so
 * it is the tail or a new one. */
static sh_wal_seg_t *seg_for(sh_wal_mgr_t *m, sh_wal_node_t *n)
{
    if (m->seg_tail && m->seg_tail->seq == n->seq)
        return m->seg_tail;
    sh_wal_seg_t *s = calloc(1, sizeof(*s));
    if (!s) {
        /* cannot track it: the file leaks until restart, data stays safe */
        sh_log(SH_LOG_ERROR, "wal", "out of memory tracking WAL segment \"%s\"", n->file->path);
        return NULL;
    }
    s->file = n->file;
    s->seq = n->seq;
    if (m->seg_tail) {
        m->seg_tail->sealed = true;
        m->seg_tail->next = s;
    } else {
        m->seg_head = s;
    }
    m->seg_tail = s;
    m->nsegs++;
    return s;
}

/* ---- manager ---- */

static void mgr_destroy(sh_wal_mgr_t *m)
{
    if (m->table) {
        for (uint32_t i = 0; i < m->table_size; i++) {
            sh_wal_t *w = m->table[i], *next;
            for (; w; w = next) {
                next = w->hnext;
                free(w->pins);
                free(w->locs);
                free(w);
            }
        }
        free(m->table);
    }
    for (sh_wal_seg_t *s = m->seg_head, *next; s; s = next) {
        next = s->next;
        free(s);
    }
    for (sh_wal_file_t *f = m->all, *next; f; f = next) {
        next = f->all_next;
        if (f->fd >= 0)
            m->io->close(m->io->ctx, f->fd);
        free(f);
    }
    if (m->efd >= 0)
        close(m->efd);
    free(m->rbuf);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->work_cv);
    pthread_cond_destroy(&m->prep_cv);
    free(m->dir);
    free(m);
}

sh_err_t sh_wal_mgr_new(const char *dir, const sh_wal_opts_t *opts, sh_wal_mgr_t **out)
{
    sh_wal_mgr_t *m = NULL;
    sh_err_t rc;
    pthread_condattr_t ca;

    *out = NULL;
    if (!dir || !*dir)
        return SH_E_INVAL;
    m = calloc(1, sizeof(*m));
    if (!m)
        return SH_E_NOMEM;
    m->efd = -1;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->work_cv, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->prep_cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&m->failed, false);
    if ((rc = opts_resolve(opts, &m->opts)) != SH_OK)
        goto fail;
    m->io = m->opts.io;
    rc = SH_E_NOMEM;
    if (!(m->dir = strdup(dir)))
        goto fail;
    for (size_t l = strlen(m->dir); l > 1 && m->dir[l - 1] == '/'; l--)
        m->dir[l - 1] = '\0';
    m->table_size = 64;
    if (!(m->table = calloc(m->table_size, sizeof(*m->table))))
        goto fail;
    rc = SH_E_IO;
    if ((m->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
        goto fail;
    if (m->io->mkdir(m->io->ctx, m->dir, 0700) != 0 && errno != EEXIST) {
        sh_log(SH_LOG_ERROR, "wal", "could not create directory \"%s\": %s", m->dir,
               strerror(errno));
        goto fail;
    }
    m->next_seq = 1;
    m->next_file_id = 1;
    if ((rc = sh_wal_scan_startup(m)) != SH_OK)
        goto fail;
    sh_wal_recycle_try(m);
    if ((rc = sh_wal_prep_fill_sync(m)) != SH_OK) {
        sh_log(SH_LOG_ERROR, "wal", "could not prepare WAL segments in \"%s\"", m->dir);
        goto fail;
    }
    rc = SH_E_IO;
    if (pthread_create(&m->worker, NULL, sh_wal_worker_main, m) != 0)
        goto fail;
    m->worker_started = true;
    if (pthread_create(&m->prep, NULL, sh_wal_prep_main, m) != 0)
        goto fail;
    m->prep_started = true;
    *out = m;
    return SH_OK;

fail:
    if (m->worker_started) {
        pthread_mutex_lock(&m->mu);
        m->stop_worker = true;
        pthread_cond_broadcast(&m->work_cv);
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->worker, NULL);
    }
    mgr_destroy(m);
    return rc;
}

void sh_wal_mgr_free(sh_wal_mgr_t *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->stop_worker = true;
    pthread_cond_broadcast(&m->work_cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->worker, NULL);
    pthread_mutex_lock(&m->mu);
    m->stop_prep = true;
    pthread_cond_broadcast(&m->prep_cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->prep, NULL);
    sh_wal_mgr_drain(m);
    /* appends queued by done callbacks above find no worker any more */
    for (;;) {
        pthread_mutex_lock(&m->mu);
        sh_wal_node_t *n = m->q_head, *t = m->q_tail;
        m->q_head = m->q_tail = NULL;
        for (sh_wal_node_t *k = n; k; k = k->next)
            k->err = SH_E_CLOSED;
        if (n) {
            m->done_head = n;
            m->done_tail = t;
        }
        pthread_mutex_unlock(&m->mu);
        if (!n)
            break;
        sh_wal_mgr_drain(m);
    }
    mgr_destroy(m);
}

int sh_wal_mgr_fd(const sh_wal_mgr_t *m)
{
    return m->efd;
}

int sh_wal_mgr_drain(sh_wal_mgr_t *m)
{
    uint64_t v;
    ssize_t r = read(m->efd, &v, sizeof(v)); /* clear first: a later signal is not lost */
    (void)r;
    pthread_mutex_lock(&m->mu);
    sh_wal_node_t *n = m->done_head;
    m->done_head = m->done_tail = NULL;
    pthread_mutex_unlock(&m->mu);

    int count = 0;
    while (n) {
        sh_wal_node_t *next = n->next;
        sh_wal_t *w = n->w;
        sh_wal_seg_t *seg = NULL;
        m->inflight_bytes -= n->frame_len;
        if (n->err == SH_OK && (seg = seg_for(m, n)) != NULL) {
            seg->bytes += n->frame_len;
            seg->end = n->pos + n->frame_len;
        } else {
            m->live_bytes -= n->frame_len; /* never written, or not tracked */
        }
        if (n->type == SH_WAL_FRAME_DATA) {
            w->pending--;
            if (seg && n->last > w->released && sh_wal_pin_add(w, seg, n->last, n->frame_len) == SH_OK)
                ; /* stays counted until released */
            else
                w->unreleased_bytes -= n->frame_len;
            if (n->done)
                n->done(n->arg, n->err);
            count++;
        }
        if (n->block)
            sh_block_unref(n->block);
        w->inflight--;
        sh_wal_part_maybe_free(w);
        free(n);
        n = next;
    }
    sh_wal_recycle_try(m);
    return count;
}

void sh_wal_mgr_keys(sh_wal_mgr_t *m, int (*fn)(void *arg, const char *key), void *arg)
{
    for (uint32_t i = 0; i < m->table_size; i++) {
        sh_wal_t *w = m->table[i], *next;
        for (; w; w = next) {
            next = w->hnext; /* fn may open, release, delete or close this key */
            if (!w->open && (w->pin_len || w->loc_len) && fn(arg, w->key) != 0)
                return;
        }
    }
}

const char *sh_wal_mgr_oldest_key(sh_wal_mgr_t *m)
{
    sh_wal_seg_t *s = m->seg_head;
    if (!s || s->pins == 0)
        return NULL;
    for (uint32_t i = 0; i < m->table_size; i++)
        for (sh_wal_t *w = m->table[i]; w; w = w->hnext)
            if (w->pin_len && w->pins[w->pin_head].seg == s)
                return w->key;
    return NULL;
}

void sh_wal_mgr_stats(const sh_wal_mgr_t *m, sh_wal_stats_t *o)
{
    memset(o, 0, sizeof(*o));
    o->appends = atomic_load(&m->st.appends);
    o->payload_bytes = atomic_load(&m->st.payload_bytes);
    o->frame_bytes = atomic_load(&m->st.frame_bytes);
    o->cycles = atomic_load(&m->st.cycles);
    o->writes = atomic_load(&m->st.writes);
    o->fsyncs = atomic_load(&m->st.fsyncs);
    o->fsync_us_sum = atomic_load(&m->st.fsync_us_sum);
    o->fsync_us_max = atomic_load(&m->st.fsync_us_max);
    o->ready_waits = atomic_load(&m->st.ready_waits);
    o->segments_created = atomic_load(&m->st.created);
    o->segments_recycled = atomic_load(&m->st.recycled);
    o->segments_deleted = atomic_load(&m->st.deleted);
    pthread_mutex_lock((pthread_mutex_t *)&m->mu);
    o->ready_segments = m->ready_count;
    pthread_mutex_unlock((pthread_mutex_t *)&m->mu);
    o->live_bytes = m->live_bytes;
    o->live_segments = m->nsegs;
    o->partitions = m->nparts;
}

sh_err_t sh_wal_mgr_check(sh_wal_mgr_t *m)
{
    uint64_t seg_bytes = 0, seg_pins = 0, part_pins = 0;
    uint32_t nsegs = 0;
    for (sh_wal_seg_t *s = m->seg_head; s; s = s->next) {
        seg_bytes += s->bytes;
        seg_pins += s->pins;
        nsegs++;
        if (s->next && (s->next->seq <= s->seq || !s->sealed)) {
            sh_log(SH_LOG_ERROR, "wal", "check: segment %" PRIu64 " out of order or unsealed",
                   s->seq);
            return SH_E_CORRUPT;
        }
    }
    for (uint32_t i = 0; i < m->table_size; i++)
        for (sh_wal_t *w = m->table[i]; w; w = w->hnext) {
            uint64_t pb = 0;
            for (uint32_t j = 0; j < w->pin_len; j++)
                pb += w->pins[(w->pin_head + j) % w->pin_cap].bytes;
            part_pins += w->pin_len;
            if (w->pending == 0 && w->unreleased_bytes != pb) {
                sh_log(SH_LOG_ERROR, "wal", "check: \"%s\" counts %" PRIu64
                       " unreleased bytes, pins hold %" PRIu64, w->key, w->unreleased_bytes, pb);
                return SH_E_CORRUPT;
            }
        }
    if (nsegs != m->nsegs || seg_pins != part_pins ||
        m->live_bytes != seg_bytes + m->inflight_bytes) {
        sh_log(SH_LOG_ERROR, "wal",
               "check: %u/%u segments, %" PRIu64 "/%" PRIu64 " pins, live %" PRIu64
               " != %" PRIu64 " + %" PRIu64,
               nsegs, m->nsegs, seg_pins, part_pins, m->live_bytes, seg_bytes, m->inflight_bytes);
        return SH_E_CORRUPT;
    }
    return SH_OK;
}

/* ---- partition API ---- */

sh_err_t sh_wal_open(sh_wal_mgr_t *m, const char *key, sh_wal_replay_fn cb, void *arg,
                     sh_wal_t **out)
{
    *out = NULL;
    size_t kl = key ? strlen(key) : 0;
    if (kl == 0 || kl > SH_WAL_KEY_MAX)
        return SH_E_INVAL;
    sh_wal_t *w = sh_wal_part_get(m, key, kl, true);
    if (!w)
        return SH_E_NOMEM;
    if (w->open)
        return SH_E_EXISTS;
    if (cb && w->pending)
        return SH_E_AGAIN;
    if (cb) {
        sh_err_t rc = SH_OK;
        if (w->loc_len)
            rc = sh_wal_replay_locs(w, cb, arg);
        else if (w->pin_len)
            rc = sh_wal_replay_pins(w, cb, arg);
        if (rc != SH_OK) {
            sh_wal_part_maybe_free(w);
            return rc;
        }
    }
    w->loc_len = 0;
    pins_shrink(w);
    w->open = true;
    *out = w;
    return SH_OK;
}

static void enqueue(sh_wal_mgr_t *m, sh_wal_node_t *n)
{
    n->w->inflight++;
    m->live_bytes += n->frame_len;
    m->inflight_bytes += n->frame_len;
    pthread_mutex_lock(&m->mu);
    if (m->q_tail)
        m->q_tail->next = n;
    else
        m->q_head = n;
    m->q_tail = n;
    pthread_cond_signal(&m->work_cv);
    pthread_mutex_unlock(&m->mu);
}

static void enqueue_marker(sh_wal_t *w, uint8_t type, int64_t upto)
{
    sh_wal_mgr_t *m = w->m;
    if (atomic_load(&m->failed))
        return;
    sh_wal_node_t *n = calloc(1, sizeof(*n));
    if (!n) {
        /* only replay's precision suffers: the broker filters by its own offsets */
        sh_log(SH_LOG_WARN, "wal", "out of memory logging a release of \"%s\"", w->key);
        return;
    }
    n->w = w;
    n->type = type;
    n->first = -1;
    n->last = upto;
    n->frame_len = SH_WAL_FRAME_HDR_SIZE + w->key_len;
    enqueue(m, n);
}

static sh_err_t append_node(sh_wal_t *w, int64_t first, int64_t last, const struct iovec *iov,
                            int iovcnt, sh_block_t *block, sh_wal_done_fn done, void *arg)
{
    if (!w || !w->open || iovcnt < 0 || iovcnt > SH_WAL_MAX_IOV || (iovcnt && !iov) ||
        first < 0 || last < first || first <= w->last_offset)
        return SH_E_INVAL;
    sh_wal_mgr_t *m = w->m;
    if (atomic_load(&m->failed))
        return SH_E_IO;
    uint64_t payload = 0;
    for (int i = 0; i < iovcnt; i++) {
        payload += iov[i].iov_len;
        if (payload > m->opts.segment_bytes)
            return SH_KERR_MESSAGE_TOO_LARGE;
    }
    uint64_t flen = SH_WAL_FRAME_HDR_SIZE + w->key_len + payload;
    if (flen + SH_WAL_SEAL_BYTES > m->opts.segment_bytes - SH_WAL_SEG_HDR_SIZE)
        return SH_KERR_MESSAGE_TOO_LARGE;
    if (m->live_bytes + flen > m->opts.max_unreleased_bytes)
        return SH_E_AGAIN;
    if (m->opts.max_partition_unreleased_bytes &&
        w->unreleased_bytes + flen > m->opts.max_partition_unreleased_bytes)
        return SH_E_AGAIN;
    sh_wal_node_t *n = calloc(1, sizeof(*n) + (size_t)iovcnt * sizeof(struct iovec));
    if (!n)
        return SH_E_NOMEM;
    n->w = w;
    n->type = SH_WAL_FRAME_DATA;
    n->first = first;
    n->last = last;
    n->done = done;
    n->arg = arg;
    n->block = block ? sh_block_ref(block) : NULL;
    n->frame_len = (uint32_t)flen;
    n->iovcnt = iovcnt;
    if (iovcnt)
        memcpy(n->iov, iov, (size_t)iovcnt * sizeof(struct iovec));
    w->pending++;
    w->last_offset = last;
    w->unreleased_bytes += flen;
    enqueue(m, n);
    return SH_OK;
}

sh_err_t sh_wal_append_start(sh_wal_t *w, int64_t first_offset, int64_t last_offset,
                             const struct iovec *iov, int iovcnt, sh_wal_done_fn done,
                             void *arg)
{
    return append_node(w, first_offset, last_offset, iov, iovcnt, NULL, done, arg);
}

sh_err_t sh_wal_append_block_start(sh_wal_t *w, int64_t first_offset, int64_t last_offset,
                                   sh_block_t *block, size_t off, size_t len,
                                   sh_wal_done_fn done, void *arg)
{
    if (!block || off > block->size || len > block->size - off)
        return SH_E_INVAL;
    struct iovec iov = {block->data + off, len};
    return append_node(w, first_offset, last_offset, &iov, 1, block, done, arg);
}

sh_err_t sh_wal_release(sh_wal_t *w, int64_t upto)
{
    if (!w || !w->open)
        return SH_E_INVAL;
    /* releasing what was never appended would swallow future frames */
    if (upto > w->last_offset)
        upto = w->last_offset;
    if (upto <= w->released)
        return SH_OK;
    bool logged = w->pin_len || w->pending;
    w->released = upto;
    sh_wal_pins_release(w, upto);
    if (logged)
        enqueue_marker(w, SH_WAL_FRAME_RELEASE, upto);
    sh_wal_recycle_try(w->m);
    return SH_OK;
}

sh_err_t sh_wal_delete(sh_wal_t *w)
{
    if (!w || !w->open)
        return SH_E_INVAL;
    sh_wal_mgr_t *m = w->m;
    bool logged = w->last_offset >= 0;
    w->released = INT64_MAX;
    sh_wal_pins_drop_all(w);
    w->open = false;
    /* off the table now so the key can start afresh; the struct lives on
     * until its queued nodes complete */
    part_unhash(w);
    if (logged)
        enqueue_marker(w, SH_WAL_FRAME_DELETE, -1);
    sh_wal_part_maybe_free(w);
    sh_wal_recycle_try(m);
    return SH_OK;
}

void sh_wal_close(sh_wal_t *w)
{
    if (!w || !w->open)
        return;
    w->open = false;
    sh_wal_part_maybe_free(w);
}

int64_t sh_wal_durable_offset(const sh_wal_t *w)
{
    return atomic_load_explicit(&w->durable, memory_order_acquire);
}

int64_t sh_wal_last_offset(const sh_wal_t *w)
{
    return w->last_offset;
}

const char *sh_wal_key(const sh_wal_t *w)
{
    return w->key;
}
