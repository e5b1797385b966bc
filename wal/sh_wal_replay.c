/*
 * sh_wal_replay.c - reading the WAL back: the startup scan that rebuilds
 * the loop's state from the segment files, and the per-partition replay
 * that hands frames to sh_wal_open's callback.
 *
 * Startup (sh_wal_mgr_new, loop thread, before the threads start):
 *   1. list the directory; remove *.tmp (interrupted creations); open
 *      every wal-*.seg and read its header. A file whose header does not
 *      check out is renamed *.corrupt and left for a human.
 *   2. scan the files in sequence order, each front to back with large
 *      sequential reads, stopping at the first frame that is not current
 *      (bad CRC, other seq, zeros: a torn write or the previous life of a
 *      recycled file) or at a SEAL. DATA frames are indexed per key
 *      (location and last offset, 40 bytes each, no payload kept) and pin
 *      their segment; RELEASE and DELETE frames apply to the key's frames
 *      seen so far, exactly as they did when they were logged.
 *   3. the newest segment that holds frames is the one the crash (or the
 *      shutdown) interrupted: a SEAL frame is written at its end of valid
 *      frames and flushed, so no later start can ever read past that
 *      point, whatever bytes a torn write left there. New frames go to a
 *      fresh segment with a higher seq. Any other segment without a SEAL
 *      was damaged after it was written (the worker flushes a segment
 *      before it writes the next): that is logged.
 *   4. files with a valid header and no frames go to the recycle queue
 *      (new seq before reuse), because frames of their current seq may be
 *      lying beyond a torn first frame.
 *
 * Replay (sh_wal_open, loop thread, blocking reads): a key indexed at
 * startup reads exactly its frames by location, through a read window so
 * neighbouring frames cost one pread; a key closed and reopened at run
 * time scans the segments it pins, filtering by key. Every frame is
 * checked again (CRC) when read.
 *
 * Ownership: m->rbuf is the loop's read buffer, reused across calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sh_log.h"
#include "wal/sh_wal_int.h"

#define READ_CHUNK (1u << 20)
#define REPLAY_WINDOW (256u << 10)

typedef struct {
    sh_wal_mgr_t *m;
    sh_wal_file_t *f;
    uint64_t seq;
    uint64_t limit;   /* stop reading frames here */
    uint64_t pos;     /* next frame */
    uint64_t boff;    /* rbuf holds file bytes [boff, boff + blen) */
    size_t blen;
} rd_t;

static void rd_init(rd_t *r, sh_wal_mgr_t *m, sh_wal_file_t *f, uint64_t seq, uint64_t limit)
{
    r->m = m;
    r->f = f;
    r->seq = seq;
    r->limit = limit;
    r->pos = SH_WAL_SEG_HDR_SIZE;
    r->boff = 0;
    r->blen = 0;
}

/* Make rbuf hold [at, at + want) of r->f, reading at least `chunk` bytes
 * when it reads. 1 ok, 0 the file ends first, -1 I/O error. */
static int rd_ensure(rd_t *r, uint64_t at, size_t want, size_t chunk)
{
    sh_wal_mgr_t *m = r->m;
    if (at >= r->boff && at + want <= r->boff + r->blen)
        return 1;
    size_t n = want > chunk ? want : chunk;
    if (n > r->f->size - at)
        n = (size_t)(r->f->size - at);
    if (n < want)
        return 0;
    if (m->rbuf_cap < n) {
        uint8_t *nb = realloc(m->rbuf, n);
        if (!nb)
            return -1;
        m->rbuf = nb;
        m->rbuf_cap = n;
    }
    r->blen = 0;
    ssize_t got = sh_wal_pread_full(m, r->f->fd, m->rbuf, n, at);
    if (got < 0) {
        sh_log(SH_LOG_ERROR, "wal", "could not read file \"%s\": %s", r->f->path,
               strerror(errno));
        return -1;
    }
    r->boff = at;
    r->blen = (size_t)got;
    return (size_t)got >= want ? 1 : 0;
}

/* Next current frame: 1 with *fr and *at filled, 0 at the end of the
 * segment's valid frames, -1 on an I/O error. */
static int rd_next(rd_t *r, sh_wal_frame_t *fr, uint64_t *at)
{
    if (r->pos >= r->limit || r->limit - r->pos < SH_WAL_FRAME_HDR_SIZE)
        return 0;
    int k = rd_ensure(r, r->pos, SH_WAL_FRAME_HDR_SIZE, READ_CHUNK);
    if (k <= 0)
        return k;
    const uint8_t *p = r->m->rbuf + (r->pos - r->boff);
    uint32_t len = sh_wal_frame_peek(p, SH_WAL_FRAME_HDR_SIZE, r->seq, r->limit - r->pos);
    if (len == 0)
        return 0;
    if ((k = rd_ensure(r, r->pos, len, READ_CHUNK)) <= 0)
        return k;
    p = r->m->rbuf + (r->pos - r->boff);
    if (sh_wal_frame_decode(p, len, r->seq, fr) != SH_OK)
        return 0;
    *at = r->pos;
    r->pos += len;
    return 1;
}

/* ---- startup ---- */

typedef struct {
    sh_wal_file_t *f;
    uint64_t seq;
} cand_t;

typedef struct {
    sh_wal_mgr_t *m;
    cand_t *c;
    size_t n, cap;
    char **names;
    size_t nn, ncap;
} listing_t;

static int list_cb(void *arg, const char *name)
{
    listing_t *l = arg;
    if (l->nn == l->ncap) {
        size_t nc = l->ncap ? l->ncap * 2 : 16;
        char **nn = realloc(l->names, nc * sizeof(*nn));
        if (!nn)
            return -1;
        l->names = nn;
        l->ncap = nc;
    }
    if (!(l->names[l->nn] = strdup(name)))
        return -1;
    l->nn++;
    return 0;
}

static int cand_cmp(const void *a, const void *b)
{
    const cand_t *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void move_aside(sh_wal_mgr_t *m, const char *path, const char *why)
{
    size_t l = strlen(path);
    char *to = malloc(l + 16);
    if (!to)
        return;
    snprintf(to, l + 16, "%s.corrupt", path);
    sh_log(SH_LOG_WARN, "wal", "WAL segment \"%s\" %s; renamed to \"%s\"", path, why, to);
    m->io->rename(m->io->ctx, path, to);
    free(to);
}

/* Open and check one wal-<id>.seg; adds a candidate or moves it aside. */
static sh_err_t open_candidate(listing_t *l, uint32_t id, const char *path)
{
    sh_wal_mgr_t *m = l->m;
    const sh_wal_io_t *io = m->io;
    uint8_t hdr[SH_WAL_SEG_HDR_SIZE];
    sh_wal_seghdr_t h;
    uint64_t size = 0;
    int fd = io->open(io->ctx, path, O_RDWR, 0);
    if (fd < 0 || io->file_size(io->ctx, fd, &size) != 0) {
        sh_log(SH_LOG_ERROR, "wal", "could not open file \"%s\": %s", path, strerror(errno));
        if (fd >= 0)
            io->close(io->ctx, fd);
        return SH_E_IO;
    }
    ssize_t got = size >= SH_WAL_SEG_HDR_SIZE
                      ? sh_wal_pread_full(m, fd, hdr, SH_WAL_SEG_HDR_SIZE, 0)
                      : 0;
    if (got < 0) {
        sh_log(SH_LOG_ERROR, "wal", "could not read file \"%s\": %s", path, strerror(errno));
        io->close(io->ctx, fd);
        return SH_E_IO;
    }
    if (got < (ssize_t)SH_WAL_SEG_HDR_SIZE || sh_wal_seghdr_decode(hdr, (size_t)got, &h) != SH_OK) {
        io->close(io->ctx, fd);
        move_aside(m, path, "has no valid header");
        return SH_OK;
    }
    if (h.seq >= m->next_seq)
        m->next_seq = h.seq + 1;
    /* a file shorter than its header says was cut: read what is there */
    sh_wal_file_t *f = sh_wal_file_new(m, id, fd, size < h.segment_bytes ? size : h.segment_bytes);
    if (!f) {
        io->close(io->ctx, fd);
        return SH_E_NOMEM;
    }
    f->seq = h.seq;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        cand_t *nc_ = realloc(l->c, nc * sizeof(*nc_));
        if (!nc_)
            return SH_E_NOMEM;
        l->c = nc_;
        l->cap = nc;
    }
    l->c[l->n++] = (cand_t){f, h.seq};
    return SH_OK;
}

static sh_err_t loc_push(sh_wal_t *w, sh_wal_file_t *f, uint64_t seq, uint64_t pos, uint32_t len,
                         int64_t last)
{
    if (w->loc_head + w->loc_len == w->loc_cap) {
        if (w->loc_head > w->loc_cap / 2) {
            memmove(w->locs, w->locs + w->loc_head, w->loc_len * sizeof(*w->locs));
            w->loc_head = 0;
        } else {
            size_t nc = w->loc_cap ? w->loc_cap * 2 : 8;
            sh_wal_loc_t *nl = realloc(w->locs, nc * sizeof(*nl));
            if (!nl)
                return SH_E_NOMEM;
            w->locs = nl;
            w->loc_cap = nc;
        }
    }
    w->locs[w->loc_head + w->loc_len++] = (sh_wal_loc_t){f, seq, pos, len, last};
    return SH_OK;
}

/* Apply one scanned frame to the partition state, as the loop did when it
 * was logged. */
static sh_err_t scan_apply(sh_wal_mgr_t *m, sh_wal_seg_t *seg, const sh_wal_frame_t *fr,
                           uint64_t at)
{
    const char *key = (const char *)fr->key.ptr;
    sh_wal_t *w = sh_wal_part_get(m, key, fr->key.len, fr->type == SH_WAL_FRAME_DATA);
    if (!w)
        return fr->type == SH_WAL_FRAME_DATA ? SH_E_NOMEM : SH_OK;
    switch (fr->type) {
    case SH_WAL_FRAME_DATA:
        if (fr->first_offset <= w->last_offset)
            sh_log(SH_LOG_WARN, "wal",
                   "frame at %" PRIu64 " of \"%s\" for \"%s\" starts at offset %" PRId64
                   " after offset %" PRId64,
                   at, seg->file->path, w->key, fr->first_offset, w->last_offset);
        if (loc_push(w, seg->file, seg->seq, at, fr->len, fr->last_offset) != SH_OK ||
            sh_wal_pin_add(w, seg, fr->last_offset, fr->len) != SH_OK)
            return SH_E_NOMEM;
        w->unreleased_bytes += fr->len;
        w->last_offset = fr->last_offset;
        atomic_store(&w->durable, fr->last_offset);
        break;
    case SH_WAL_FRAME_RELEASE:
        if (fr->last_offset > w->released) {
            w->released = fr->last_offset;
            sh_wal_pins_release(w, fr->last_offset);
        }
        break;
    case SH_WAL_FRAME_DELETE:
        sh_wal_pins_drop_all(w);
        w->last_offset = -1;
        w->released = -1;
        atomic_store(&w->durable, -1);
        sh_wal_part_maybe_free(w);
        break;
    }
    return SH_OK;
}

static sh_err_t seal_tail(sh_wal_mgr_t *m, sh_wal_seg_t *s)
{
    uint8_t seal[SH_WAL_SEAL_BYTES];
    sh_wal_frame_hdr_encode(seal, SH_WAL_FRAME_SEAL, s->seq, 0, SH_WAL_SEAL_BYTES, -1, -1);
    sh_wal_frame_hdr_set_crc(seal, sh_wal_frame_hdr_crc(seal));
    if (s->end + SH_WAL_SEAL_BYTES > s->file->size) {
        /* no room: the torn bytes after end are shorter than a frame
         * header, so no frame can ever be read there anyway */
        return SH_OK;
    }
    struct iovec iov = {seal, sizeof(seal)};
    int err = sh_wal_pwritev_full(m, s->file->fd, &iov, 1, s->end);
    if (err == 0 && m->io->fdatasync(m->io->ctx, s->file->fd) != 0)
        err = errno ? errno : EIO;
    if (err) {
        char eb[128];
        sh_wal_errstr_buf(err, eb, sizeof(eb));
        sh_log(SH_LOG_ERROR, "wal", "could not seal WAL segment \"%s\": %s", s->file->path, eb);
        return SH_E_IO;
    }
    sh_log(SH_LOG_INFO, "wal", "WAL segment \"%s\" ends at byte %" PRIu64 "; later bytes ignored",
           s->file->path, s->end);
    s->end += SH_WAL_SEAL_BYTES;
    s->bytes += SH_WAL_SEAL_BYTES;
    m->live_bytes += SH_WAL_SEAL_BYTES; /* given back when the segment is recycled */
    return SH_OK;
}

sh_err_t sh_wal_scan_startup(sh_wal_mgr_t *m)
{
    listing_t l = {.m = m};
    sh_err_t rc = SH_OK;
    size_t dl = strlen(m->dir);
    char *path = malloc(dl + 300);
    bool *sealed = NULL;

    if (!path)
        return SH_E_NOMEM;
    if (m->io->list(m->io->ctx, m->dir, list_cb, &l) != 0) {
        sh_log(SH_LOG_ERROR, "wal", "could not read directory \"%s\": %s", m->dir,
               strerror(errno));
        rc = SH_E_IO;
        goto out;
    }
    for (size_t i = 0; i < l.nn; i++) {
        const char *nm = l.names[i];
        unsigned id;
        int used = 0;
        if (strlen(nm) > 256)
            continue;
        snprintf(path, dl + 300, "%s/%s", m->dir, nm);
        if (sscanf(nm, "wal-%8x.tmp%n", &id, &used) == 1 && nm[used] == '\0') {
            m->io->unlink(m->io->ctx, path);
            continue;
        }
        if (sscanf(nm, "wal-%8x.seg%n", &id, &used) != 1)
            continue;
        if (id >= m->next_file_id)
            m->next_file_id = id + 1;
        if (nm[used] != '\0' || strlen(nm) != 16)
            continue; /* wal-<id>.seg.corrupt and the like */
        if ((rc = open_candidate(&l, id, path)) != SH_OK)
            goto out;
    }
    if (l.n)
        qsort(l.c, l.n, sizeof(*l.c), cand_cmp);
    if (!(sealed = calloc(l.n ? l.n : 1, sizeof(*sealed)))) {
        rc = SH_E_NOMEM;
        goto out;
    }

    sh_wal_seg_t *last_seg = NULL;
    size_t last_idx = 0;
    for (size_t i = 0; i < l.n; i++) {
        sh_wal_file_t *f = l.c[i].f;
        if (i > 0 && l.c[i - 1].seq == l.c[i].seq) {
            /* two files claim one life: neither can be trusted to order */
            sh_log(SH_LOG_WARN, "wal", "WAL segments \"%s\" and \"%s\" share sequence %" PRIu64,
                   l.c[i - 1].f->path, f->path, f->seq);
        }
        rd_t r;
        rd_init(&r, m, f, f->seq, f->size);
        sh_wal_seg_t *seg = NULL;
        sh_wal_frame_t fr;
        uint64_t at;
        int k;
        while ((k = rd_next(&r, &fr, &at)) == 1) {
            if (!seg) {
                if (!(seg = calloc(1, sizeof(*seg)))) {
                    rc = SH_E_NOMEM;
                    goto out;
                }
                seg->file = f;
                seg->seq = f->seq;
                seg->sealed = true;
                if (m->seg_tail)
                    m->seg_tail->next = seg;
                else
                    m->seg_head = seg;
                m->seg_tail = seg;
                m->nsegs++;
            }
            seg->bytes += fr.len;
            seg->end = at + fr.len;
            if (fr.type == SH_WAL_FRAME_SEAL) {
                sealed[i] = true;
                break;
            }
            if ((rc = scan_apply(m, seg, &fr, at)) != SH_OK)
                goto out;
        }
        if (k < 0) {
            rc = SH_E_IO;
            goto out;
        }
        if (seg) {
            m->live_bytes += seg->bytes;
            if (last_seg && !sealed[last_idx])
                sh_log(SH_LOG_WARN, "wal",
                       "WAL segment \"%s\" ends at byte %" PRIu64
                       " without a seal frame although a later segment exists",
                       last_seg->file->path, last_seg->end);
            last_seg = seg;
            last_idx = i;
        }
        l.c[i].f = seg ? NULL : f; /* files left here have no frames */
    }
    if (last_seg && !sealed[last_idx] && (rc = seal_tail(m, last_seg)) != SH_OK)
        goto out;
    for (size_t i = 0; i < l.n; i++) {
        sh_wal_file_t *f = l.c[i].f;
        if (!f)
            continue;
        f->next = NULL;
        if (m->recycle_tail)
            m->recycle_tail->next = f;
        else
            m->recycle_head = f;
        m->recycle_tail = f;
    }

out:
    for (size_t i = 0; i < l.nn; i++)
        free(l.names[i]);
    free(l.names);
    free(l.c);
    free(sealed);
    free(path);
    return rc;
}

/* ---- replay ---- */

static bool key_is(const sh_wal_frame_t *fr, const sh_wal_t *w)
{
    return fr->key.len == w->key_len && memcmp(fr->key.ptr, w->key, w->key_len) == 0;
}

sh_err_t sh_wal_replay_locs(sh_wal_t *w, sh_wal_replay_fn cb, void *arg)
{
    sh_wal_mgr_t *m = w->m;
    rd_t r = {.m = m};
    for (size_t i = 0; i < w->loc_len; i++) {
        const sh_wal_loc_t *loc = &w->locs[w->loc_head + i];
        if (loc->last <= w->released)
            continue;
        if (r.f != loc->file) {
            rd_init(&r, m, loc->file, loc->seq, loc->file->size);
        }
        sh_wal_frame_t fr;
        int k = rd_ensure(&r, loc->pos, loc->len, REPLAY_WINDOW);
        if (k < 0)
            return SH_E_IO;
        if (k == 0 ||
            sh_wal_frame_decode(m->rbuf + (loc->pos - r.boff), loc->len, loc->seq, &fr) != SH_OK ||
            fr.type != SH_WAL_FRAME_DATA || !key_is(&fr, w)) {
            sh_log(SH_LOG_ERROR, "wal", "frame at %" PRIu64 " of \"%s\" changed since startup",
                   loc->pos, loc->file->path);
            return SH_E_CORRUPT;
        }
        sh_err_t rc = cb(arg, fr.first_offset, fr.last_offset, fr.payload);
        if (rc != SH_OK)
            return rc;
    }
    return SH_OK;
}

sh_err_t sh_wal_replay_pins(sh_wal_t *w, sh_wal_replay_fn cb, void *arg)
{
    sh_wal_mgr_t *m = w->m;
    for (uint32_t i = 0; i < w->pin_len; i++) {
        sh_wal_seg_t *s = w->pins[(w->pin_head + i) % w->pin_cap].seg;
        rd_t r;
        rd_init(&r, m, s->file, s->seq, s->end);
        sh_wal_frame_t fr;
        uint64_t at;
        int k;
        while ((k = rd_next(&r, &fr, &at)) == 1) {
            if (fr.type != SH_WAL_FRAME_DATA || !key_is(&fr, w) || fr.last_offset <= w->released)
                continue;
            sh_err_t rc = cb(arg, fr.first_offset, fr.last_offset, fr.payload);
            if (rc != SH_OK)
                return rc;
        }
        if (k < 0)
            return SH_E_IO;
        if (r.pos < s->end) {
            sh_log(SH_LOG_ERROR, "wal", "WAL segment \"%s\" unreadable at byte %" PRIu64,
                   s->file->path, r.pos);
            return SH_E_CORRUPT;
        }
    }
    return SH_OK;
}
