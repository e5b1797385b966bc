/*
 * test_wal.c - the WAL on the in-memory file system (and once on the real
 * one): group commit, completion only after the flush, replay after a
 * restart, torn tails, stale frames in recycled files, recycling without
 * growth, backpressure, fatal I/O errors, short writes, delete, and the
 * on-disk format checks. test_wal_crash.c cuts the power at every step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/sh_crc32c.h"
#include "common/sh_log.h"
#include "test_wal_util.h"
#include "wal/sh_wal_format.h"
#include "wal/sh_wal_int.h"

#define DIR_ "/d/wal"

static sh_wal_memio_t *fs_new(void)
{
    sh_wal_memio_t *mi = sh_wal_memio_new();
    assert_non_null(mi);
    assert_int_equal(sh_wal_memio_mkdir_p(mi, "/d"), SH_OK);
    return mi;
}

static sh_wal_opts_t opts_mem(sh_wal_memio_t *mi, uint64_t seg)
{
    sh_wal_opts_t o = {0};
    o.segment_bytes = seg;
    o.max_unreleased_bytes = 4u << 20;
    o.io = sh_wal_memio_io(mi);
    return o;
}

static sh_wal_mgr_t *mgr_open(const sh_wal_opts_t *o)
{
    sh_wal_mgr_t *m = NULL;
    assert_int_equal(sh_wal_mgr_new(DIR_, o, &m), SH_OK);
    assert_non_null(m);
    return m;
}

static sh_wal_t *part_open(sh_wal_mgr_t *m, const char *key, tw_replay_t *r)
{
    sh_wal_t *w = NULL;
    assert_int_equal(sh_wal_open(m, key, r ? tw_replay_cb : NULL, r, &w), SH_OK);
    assert_non_null(w);
    return w;
}

/* Poll the stats (draining completions) until pred holds; fails after 10 s. */
static void wait_stats(sh_wal_mgr_t *m, int (*pred)(const sh_wal_stats_t *, uint64_t),
                       uint64_t arg)
{
    for (int i = 0; i < 10000; i++) {
        sh_wal_stats_t st;
        sh_wal_mgr_drain(m);
        sh_wal_mgr_stats(m, &st);
        if (pred(&st, arg))
            return;
        usleep(1000);
    }
    fail_msg("WAL stats never reached the expected state");
}

static int ready_at_least(const sh_wal_stats_t *st, uint64_t n)
{
    return st->ready_segments >= n;
}

static int recycled_at_least(const sh_wal_stats_t *st, uint64_t n)
{
    return st->segments_recycled >= n;
}

/* One workload frame kept for comparison. */
typedef struct {
    int k;
    int64_t first, last;
    uint8_t *buf;
    size_t len;
} fr_t;

static void append_frame(sh_wal_t *w, fr_t *f, tw_slot_t *slot, int parts)
{
    struct iovec iov[4];
    size_t cut1 = f->len / 3, cut2 = 2 * f->len / 3;
    int n = 0;
    if (parts <= 1) {
        iov[n++] = (struct iovec){f->buf, f->len};
    } else {
        iov[n++] = (struct iovec){f->buf, cut1};
        iov[n++] = (struct iovec){f->buf + cut1, cut2 - cut1};
        iov[n++] = (struct iovec){f->buf + cut2, f->len - cut2};
    }
    assert_int_equal(sh_wal_append_start(w, f->first, f->last, iov, n, tw_done_cb, slot), SH_OK);
}

static void expect_replay(const tw_replay_t *r, fr_t *frames, int nframes, int k,
                          int64_t released)
{
    int j = 0;
    for (int i = 0; i < nframes; i++) {
        if (frames[i].k != k || frames[i].last <= released)
            continue;
        assert_true(j < r->n);
        assert_int_equal(r->f[j].first, frames[i].first);
        assert_int_equal(r->f[j].last, frames[i].last);
        assert_int_equal(r->f[j].len, frames[i].len);
        assert_memory_equal(r->f[j].data, frames[i].buf, frames[i].len);
        j++;
    }
    assert_int_equal(j, r->n);
}

/* ---- format ---- */

static void test_format(void **state)
{
    (void)state;
    uint8_t seg[SH_WAL_SEG_HDR_SIZE];
    sh_wal_seghdr_t h = {.seq = 42, .segment_bytes = 1 << 20, .created_ms = 7}, g;
    sh_wal_seghdr_encode(seg, &h);
    assert_int_equal(sh_wal_seghdr_decode(seg, sizeof(seg), &g), SH_OK);
    assert_int_equal(g.seq, 42);
    assert_int_equal(g.segment_bytes, 1 << 20);
    seg[20] ^= 1;
    assert_int_equal(sh_wal_seghdr_decode(seg, sizeof(seg), &g), SH_E_CORRUPT);

    uint8_t fr[SH_WAL_FRAME_HDR_SIZE + 3 + 5];
    sh_wal_frame_hdr_encode(fr, SH_WAL_FRAME_DATA, 9, 3, sizeof(fr), 10, 14);
    memcpy(fr + SH_WAL_FRAME_HDR_SIZE, "k-1", 3);
    memcpy(fr + SH_WAL_FRAME_HDR_SIZE + 3, "hello", 5);
    sh_wal_frame_hdr_set_crc(fr, sh_crc32c(sh_wal_frame_hdr_crc(fr), fr + SH_WAL_FRAME_HDR_SIZE, 8));
    sh_wal_frame_t f;
    assert_int_equal(sh_wal_frame_decode(fr, sizeof(fr), 9, &f), SH_OK);
    assert_int_equal(f.first_offset, 10);
    assert_int_equal(f.last_offset, 14);
    assert_true(sh_slice_eq_str(f.key, "k-1"));
    assert_int_equal(f.payload.len, 5);
    assert_memory_equal(f.payload.ptr, "hello", 5);
    /* stale: same bytes under another segment's seq */
    assert_int_equal(sh_wal_frame_decode(fr, sizeof(fr), 10, &f), SH_E_CORRUPT);
    /* truncated */
    assert_int_equal(sh_wal_frame_decode(fr, sizeof(fr) - 1, 9, &f), SH_E_CORRUPT);
    /* any flipped bit */
    for (size_t i = 0; i < sizeof(fr) * 8; i++) {
        fr[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_not_equal(sh_wal_frame_decode(fr, sizeof(fr), 9, &f), SH_OK);
        fr[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    assert_int_equal(sh_wal_frame_decode(fr, sizeof(fr), 9, &f), SH_OK);
}

/* ---- group commit ---- */

static void test_group_commit(void **state)
{
    (void)state;
    enum { N = 101 };
    sh_wal_memio_t *mi = fs_new();
    sh_wal_opts_t o = opts_mem(mi, 64 << 10);
    sh_wal_mgr_t *m = mgr_open(&o);
    sh_wal_t *w[3];
    char key[16];
    for (int k = 0; k < 3; k++) {
        snprintf(key, sizeof(key), "t-%d", k);
        w[k] = part_open(m, key, NULL);
    }
    tw_done_t *d = tw_done_new(N);
    tw_slot_t slot[N];
    fr_t fr[N];
    uint8_t buf[N][64];
    int64_t next[3] = {0, 0, 0};
    for (int i = 0; i < N; i++) {
        int k = i == 0 ? 0 : i % 3;
        tw_fill(buf[i], sizeof(buf[i]), k, i);
        fr[i] = (fr_t){k, next[k], next[k] + 2, buf[i], sizeof(buf[i])};
        next[k] += 3;
        slot[i] = (tw_slot_t){d, i};
    }

    /* warm up: the worker takes its first segment, the preparer refills */
    append_frame(w[0], &fr[0], &slot[0], 1);
    assert_int_equal(tw_wait(m, &d->total, 1), 0);
    wait_stats(m, ready_at_least, 2);
    sh_wal_stats_t st0, st1;
    sh_wal_mgr_stats(m, &st0);

    sh_wal_memio_gate(mi, true);
    append_frame(w[fr[1].k], &fr[1], &slot[1], 1);
    assert_true(sh_wal_memio_wait_blocked(mi, 1, 10000));
    for (int i = 2; i < N; i++)
        append_frame(w[fr[i].k], &fr[i], &slot[i], 2);
    /* the flush is held: nothing may complete, however often we drain */
    for (int i = 0; i < 3; i++)
        sh_wal_mgr_drain(m);
    assert_int_equal(d->total, 1);
    assert_int_equal(sh_wal_durable_offset(w[1]), -1);

    sh_wal_memio_gate(mi, false);
    assert_int_equal(tw_wait(m, &d->total, N), 0);
    sh_wal_mgr_stats(m, &st1);
    /* one flush for the held append, one for the 99 queued behind it */
    assert_int_equal(st1.fsyncs - st0.fsyncs, 2);
    assert_int_equal(st1.cycles - st0.cycles, 2);
    assert_int_equal(st1.appends, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(d->done[i], 1);
        assert_int_equal(d->err[i], SH_OK);
        assert_int_equal(d->order[i], i); /* append order */
    }
    for (int k = 0; k < 3; k++)
        assert_int_equal(sh_wal_durable_offset(w[k]), next[k] - 1);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);
    tw_done_free(d);
    sh_wal_memio_free(mi);
}

/* ---- replay ---- */

typedef struct {
    char keys[8][16];
    int n;
} keys_t;

static int collect_key(void *arg, const char *key)
{
    keys_t *k = arg;
    snprintf(k->keys[k->n++], 16, "%s", key);
    return 0;
}

static bool has_key(const keys_t *k, const char *key)
{
    for (int i = 0; i < k->n; i++)
        if (strcmp(k->keys[i], key) == 0)
            return true;
    return false;
}

static void test_replay_restart(void **state)
{
    (void)state;
    enum { N = 90, M = 10 };
    sh_wal_memio_t *mi = fs_new();
    sh_wal_opts_t o = opts_mem(mi, 16 << 10); /* several segments */
    sh_wal_mgr_t *m = mgr_open(&o);
    sh_wal_t *w[3];
    const char *keys[3] = {"topic-0", "topic-1", "topic-2"};
    for (int k = 0; k < 3; k++)
        w[k] = part_open(m, keys[k], NULL);
    fr_t fr[N + M];
    tw_done_t *d = tw_done_new(N + M);
    tw_slot_t slot[N + M];
    int64_t next[3] = {0, 100, 5000};
    for (int i = 0; i < N + M; i++) {
        int k = i < N ? i % 3 : 1;
        size_t len = (size_t)(1 + (i * 37) % 900);
        fr[i].buf = malloc(len);
        tw_fill(fr[i].buf, len, k, i);
        fr[i].len = len;
        fr[i].k = k;
        fr[i].first = next[k];
        fr[i].last = next[k] + (i % 5);
        next[k] = fr[i].last + 1;
        slot[i] = (tw_slot_t){d, i};
    }
    for (int i = 0; i < N; i++)
        append_frame(w[fr[i].k], &fr[i], &slot[i], i % 2 ? 3 : 1);
    assert_int_equal(tw_wait(m, &d->total, N), 0);
    int64_t rel0 = fr[3 * 7].last; /* key 0's 8th frame */
    assert_int_equal(sh_wal_release(w[0], rel0), SH_OK);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);

    /* restart: every key listed, each replays exactly what is unreleased */
    m = mgr_open(&o);
    keys_t ks = {0};
    sh_wal_mgr_keys(m, collect_key, &ks);
    assert_int_equal(ks.n, 3);
    for (int k = 0; k < 3; k++)
        assert_true(has_key(&ks, keys[k]));
    for (int k = 0; k < 3; k++) {
        tw_replay_t r = {0};
        w[k] = part_open(m, keys[k], &r);
        expect_replay(&r, fr, N, k, k == 0 ? rel0 : -1);
        tw_replay_reset(&r);
        assert_int_equal(sh_wal_last_offset(w[k]), fr[N - 3 + k].last);
        assert_int_equal(sh_wal_durable_offset(w[k]), fr[N - 3 + k].last);
    }
    /* offsets must keep increasing across the restart */
    struct iovec iov = {fr[0].buf, 1};
    assert_int_equal(sh_wal_append_start(w[1], fr[N - 2].last, fr[N - 2].last + 1, &iov, 1,
                                         tw_done_cb, &slot[0]),
                     SH_E_INVAL);
    for (int i = N; i < N + M; i++)
        append_frame(w[1], &fr[i], &slot[i], 3);
    assert_int_equal(tw_wait(m, &d->total, N + M), 0);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);

    m = mgr_open(&o);
    tw_replay_t r = {0};
    part_open(m, keys[1], &r);
    expect_replay(&r, fr, N + M, 1, -1);
    tw_replay_reset(&r);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);

    for (int i = 0; i < N + M; i++)
        free(fr[i].buf);
    tw_done_free(d);
    sh_wal_memio_free(mi);
}

/* Copy every file of DIR_ into a fresh file system. */
typedef struct {
    sh_wal_memio_t *from, *to;
} copy_t;

static int copy_one(void *arg, const char *name)
{
    copy_t *c = arg;
    char path[256];
    uint8_t *data;
    size_t len;
    snprintf(path, sizeof(path), "%s/%s", DIR_, name);
    assert_int_equal(sh_wal_memio_get(c->from, path, &data, &len), SH_OK);
    assert_int_equal(sh_wal_memio_put(c->to, path, data, len), SH_OK);
    free(data);
    return 0;
}

static sh_wal_memio_t *fs_copy(sh_wal_memio_t *from)
{
    copy_t c = {from, fs_new()};
    assert_int_equal(sh_wal_memio_mkdir_p(c.to, DIR_), SH_OK);
    const sh_wal_io_t *io = sh_wal_memio_io(from);
    assert_int_equal(io->list(io->ctx, DIR_, copy_one, &c), 0);
    return c.to;
}

/* Find the segment whose first frame is current; its frame ends go to ends[]. */
typedef struct {
    sh_wal_memio_t *mi;
    char path[256];
    uint64_t ends[256];
    int nends;
} segfind_t;

static int find_frames(void *arg, const char *name)
{
    segfind_t *s = arg;
    char path[256];
    uint8_t *data;
    size_t len;
    sh_wal_seghdr_t h;
    sh_wal_frame_t f;
    if (strstr(name, ".seg") == NULL)
        return 0;
    snprintf(path, sizeof(path), "%s/%s", DIR_, name);
    assert_int_equal(sh_wal_memio_get(s->mi, path, &data, &len), SH_OK);
    if (sh_wal_seghdr_decode(data, len, &h) == SH_OK) {
        size_t pos = SH_WAL_SEG_HDR_SIZE;
        int n = 0;
        while (pos < len && sh_wal_frame_decode(data + pos, len - pos, h.seq, &f) == SH_OK) {
            pos += f.len;
            if (f.type == SH_WAL_FRAME_DATA)
                s->ends[n++] = pos;
        }
        if (n > 0) {
            snprintf(s->path, sizeof(s->path), "%s", path);
            s->nends = n;
        }
    }
    free(data);
    return 0;
}

static void test_torn_tail(void **state)
{
    (void)state;
    enum { N = 12 };
    sh_wal_memio_t *mi = fs_new();
    sh_wal_opts_t o = opts_mem(mi, 64 << 10);
    sh_wal_mgr_t *m = mgr_open(&o);
    sh_wal_t *w = part_open(m, "a", NULL);
    fr_t fr[N + 3];
    tw_done_t *d = tw_done_new(N + 3);
    tw_slot_t slot[N + 3];
    for (int i = 0; i < N + 3; i++) {
        size_t len = (size_t)(200 + (i * 613) % 1800);
        fr[i] = (fr_t){0, i * 10, i * 10 + 9, malloc(len), len};
        tw_fill(fr[i].buf, len, 0, i);
        slot[i] = (tw_slot_t){d, i};
    }
    for (int i = 0; i < N; i++)
        append_frame(w, &fr[i], &slot[i], 1);
    assert_int_equal(tw_wait(m, &d->total, N), 0);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);

    segfind_t sf = {.mi = mi};
    const sh_wal_io_t *io = sh_wal_memio_io(mi);
    io->list(io->ctx, DIR_, find_frames, &sf);
    assert_int_equal(sf.nends, N);

    uint32_t rs = 12345;
    for (int j = 0; j < N; j++) {
        uint64_t start = j ? sf.ends[j - 1] : SH_WAL_SEG_HDR_SIZE;
        uint64_t cuts[3] = {start, start + 1 + (sf.ends[j] - start) / 2, sf.ends[j] - 1};
        for (int c = 0; c < 3; c++) {
            sh_wal_memio_t *m2 = fs_copy(mi);
            uint8_t *data;
            size_t len;
            assert_int_equal(sh_wal_memio_get(m2, sf.path, &data, &len), SH_OK);
            /* the torn write: garbage from the cut on */
            size_t g = 1 + (size_t)(rs % 3000);
            for (size_t i = cuts[c]; i < len && i < cuts[c] + g; i++) {
                rs = rs * 1103515245u + 12345u;
                data[i] = (uint8_t)(rs >> 16);
            }
            assert_int_equal(sh_wal_memio_put(m2, sf.path, data, len), SH_OK);
            free(data);

            sh_wal_opts_t o2 = opts_mem(m2, 64 << 10);
            sh_wal_mgr_t *mm = mgr_open(&o2);
            tw_replay_t r = {0};
            sh_wal_t *ww = part_open(mm, "a", &r);
            expect_replay(&r, fr, j, 0, -1); /* frames before the cut, all of them */
            tw_replay_reset(&r);
            /* later appends land after the cut and survive the next start */
            fr_t more[3];
            tw_done_t *d2 = tw_done_new(3);
            tw_slot_t s2[3];
            for (int i = 0; i < 3; i++) {
                more[i] = fr[N + i];
                more[i].first = (j + i) * 10;
                more[i].last = more[i].first + 9;
                s2[i] = (tw_slot_t){d2, i};
                append_frame(ww, &more[i], &s2[i], 1);
            }
            assert_int_equal(tw_wait(mm, &d2->total, 3), 0);
            assert_int_equal(sh_wal_mgr_check(mm), SH_OK);
            sh_wal_mgr_free(mm);
            mm = mgr_open(&o2);
            part_open(mm, "a", &r);
            assert_int_equal(r.n, j + 3);
            for (int i = 0; i < j; i++)
                assert_memory_equal(r.f[i].data, fr[i].buf, fr[i].len);
            for (int i = 0; i < 3; i++) {
                assert_int_equal(r.f[j + i].first, more[i].first);
                assert_memory_equal(r.f[j + i].data, more[i].buf, more[i].len);
            }
            tw_replay_reset(&r);
            assert_int_equal(sh_wal_mgr_check(mm), SH_OK);
            sh_wal_mgr_free(mm);
            tw_done_free(d2);
            sh_wal_memio_free(m2);
        }
    }
    for (int i = 0; i < N + 3; i++)
        free(fr[i].buf);
    tw_done_free(d);
    sh_wal_memio_free(mi);
}

/* ---- recycling ---- */

static bool contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t k)
{
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0)
            return true;
    return false;
}

typedef struct {
    sh_wal_memio_t *mi;
    const uint8_t *b_last;  /* B's last payload */
    fr_t *a;
    int na;
    bool stale_after_b;
} stale_t;

static int look_stale(void *arg, const char *name)
{
    stale_t *s = arg;
    char path[256];
    uint8_t *data;
    size_t len;
    snprintf(path, sizeof(path), "%s/%s", DIR_, name);
    assert_int_equal(sh_wal_memio_get(s->mi, path, &data, &len), SH_OK);
    for (size_t i = 0; i + 1000 <= len; i++) {
        if (memcmp(data + i, s->b_last, 1000) != 0)
            continue;
        for (int j = 0; j < s->na; j++)
            if (contains(data + i + 1000, len - i - 1000, s->a[j].buf, 64))
                s->stale_after_b = true;
        break;
    }
    free(data);
    return 0;
}

static void test_recycled_stale_frames(void **state)
{
    (void)state;
    enum { NA = 60, NB = 20 };
    sh_wal_memio_t *mi = fs_new();
    sh_wal_opts_t o = opts_mem(mi, 16 << 10);
    o.pool_segments = 1;
    sh_wal_mgr_t *m = mgr_open(&o);
    sh_wal_t *a = part_open(m, "A", NULL), *b = part_open(m, "B", NULL);
    fr_t fa[NA], fb[NB];
    tw_done_t *d = tw_done_new(NA + NB);
    tw_slot_t slot[NA + NB];
    for (int i = 0; i < NA; i++) {
        fa[i] = (fr_t){0, i, i, malloc(1000), 1000};
        tw_fill(fa[i].buf, 1000, 0, i);
        slot[i] = (tw_slot_t){d, i};
        append_frame(a, &fa[i], &slot[i], 1);
    }
    assert_int_equal(tw_wait(m, &d->total, NA), 0);
    assert_int_equal(sh_wal_release(a, NA - 1), SH_OK);
    wait_stats(m, recycled_at_least, 1);
    for (int i = 0; i < NB; i++) {
        fb[i] = (fr_t){1, i, i, malloc(1000), 1000};
        tw_fill(fb[i].buf, 1000, 1, i);
        slot[NA + i] = (tw_slot_t){d, NA + i};
        append_frame(b, &fb[i], &slot[NA + i], 1);
    }
    assert_int_equal(tw_wait(m, &d->total, NA + NB), 0);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);

    /* the premise: B's newest frame sits in a recycled file, A's old
     * frames still lie after it */
    stale_t st = {mi, fb[NB - 1].buf, fa, NA, false};
    const sh_wal_io_t *io = sh_wal_memio_io(mi);
    io->list(io->ctx, DIR_, look_stale, &st);
    assert_true(st.stale_after_b);

    m = mgr_open(&o);
    keys_t ks = {0};
    sh_wal_mgr_keys(m, collect_key, &ks);
    assert_int_equal(ks.n, 1);
    assert_string_equal(ks.keys[0], "B");
    tw_replay_t r = {0};
    part_open(m, "A", &r);
    assert_int_equal(r.n, 0);
    part_open(m, "B", &r);
    expect_replay(&r, fb, NB, 1, -1);
    tw_replay_reset(&r);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);
    for (int i = 0; i < NA; i++)
        free(fa[i].buf);
    for (int i = 0; i < NB; i++)
        free(fb[i].buf);
    tw_done_free(d);
    sh_wal_memio_free(mi);
}

static void test_recycle_no_growth(void **state)
{
    (void)state;
    enum { ROUNDS = 300, PER = 8 };
    sh_wal_memio_t *mi = fs_new();
    sh_wal_opts_t o = opts_mem(mi, 16 << 10);
    o.pool_segments = 2;
    sh_wal_mgr_t *m = mgr_open(&o);
    sh_wal_t *w[4];
    char key[8];
    for (int k = 0; k < 4; k++) {
        snprintf(key, sizeof(key), "p%d", k);
        w[k] = part_open(m, key, NULL);
    }
    static uint8_t payload[700];
    tw_fill(payload, sizeof(payload), 9, 9);
    tw_done_t *d = tw_done_new(ROUNDS * PER);
    tw_slot_t *slot = calloc(ROUNDS * PER, sizeof(*slot));
    int64_t off[4] = {0};
    size_t max_files = 0;
    for (int rd = 0; rd < ROUNDS; rd++) {
        for (int i = 0; i < PER; i++) {
            int s = rd * PER + i, k = s % 4;
            slot[s] = (tw_slot_t){d, s};
            struct iovec iov = {payload, sizeof(payload)};
            assert_int_equal(sh_wal_append_start(w[k], off[k], off[k], &iov, 1, tw_done_cb,
                                                 &slot[s]),
                             SH_OK);
            off[k]++;
        }
        assert_int_equal(tw_wait(m, &d->total, (rd + 1) * PER), 0);
        for (int k = 0; k < 4; k++)
            assert_int_equal(sh_wal_release(w[k], off[k] - 1), SH_OK);
        size_t nf = sh_wal_memio_nfiles(mi, DIR_);
        if (nf > max_files)
            max_files = nf;
    }
    sh_wal_stats_t st;
    sh_wal_mgr_stats(m, &st);
    /* ~115 segments' worth of frames went through at most a handful of files */
    assert_true(st.frame_bytes > 100ull * (16 << 10));
    assert_true(max_files <= 2 * o.pool_segments + 3);
    assert_true(st.segments_created <= 2 * o.pool_segments + 3);
    assert_true(st.segments_recycled >= 100);
    assert_true(st.live_segments <= 2);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);
    free(slot);
    tw_done_free(d);
    sh_wal_memio_free(mi);
}

/* ---- backpressure ---- */

static void test_backpressure(void **state)
{
    (void)state;
    sh_wal_memio_t *mi = fs_new();
    sh_wal_opts_t o = opts_mem(mi, 16 << 10);
    o.max_unreleased_bytes = 3 * (16 << 10);
    o.pool_segments = 1;
    sh_wal_mgr_t *m = mgr_open(&o);
    sh_wal_t *p = part_open(m, "p", NULL);
    static uint8_t payload[1000];
    tw_done_t *d = tw_done_new(200);
    tw_slot_t slot[200];
    struct iovec iov = {payload, sizeof(payload)};
    int n = 0;
    sh_err_t rc;
    for (;;) {
        slot[n] = (tw_slot_t){d, n};
        rc = sh_wal_append_start(p, n, n, &iov, 1, tw_done_cb, &slot[n]);
        if (rc != SH_OK)
            break;
        n++;
        assert_true(n < 200);
    }
    assert_int_equal(rc, SH_E_AGAIN);
    /* 1041-byte frames under a 48 KiB cap */
    assert_true(n >= 40 && n <= 48);
    assert_int_equal(tw_wait(m, &d->total, n), 0);
    assert_int_equal(sh_wal_append_start(p, n, n, &iov, 1, tw_done_cb, &slot[n]), SH_E_AGAIN);
    assert_non_null(sh_wal_mgr_oldest_key(m));
    assert_string_equal(sh_wal_mgr_oldest_key(m), "p");
    /* upload done: release frees whole segments, appends flow again */
    assert_int_equal(sh_wal_release(p, n - 1), SH_OK);
    assert_int_equal(sh_wal_append_start(p, n, n, &iov, 1, tw_done_cb, &slot[n]), SH_OK);
    assert_int_equal(tw_wait(m, &d->total, n + 1), 0);
    assert_int_equal(d->err[n], SH_OK);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);
    tw_done_free(d);

    /* per-partition cap */
    o.max_partition_unreleased_bytes = 5000;
    m = mgr_open(&o);
    sh_wal_t *q = part_open(m, "q", NULL), *r = part_open(m, "r", NULL);
    d = tw_done_new(16);
    int k = 0;
    for (int i = 0; i < 4; i++, k++) {
        slot[k] = (tw_slot_t){d, k};
        assert_int_equal(sh_wal_append_start(q, i, i, &iov, 1, tw_done_cb, &slot[k]), SH_OK);
    }
    slot[k] = (tw_slot_t){d, k};
    assert_int_equal(sh_wal_append_start(q, 4, 4, &iov, 1, tw_done_cb, &slot[k]), SH_E_AGAIN);
    assert_int_equal(sh_wal_append_start(r, 0, 0, &iov, 1, tw_done_cb, &slot[k]), SH_OK);
    k++;
    assert_int_equal(tw_wait(m, &d->total, k), 0);
    assert_int_equal(sh_wal_release(q, 3), SH_OK);
    slot[k] = (tw_slot_t){d, k};
    assert_int_equal(sh_wal_append_start(q, 4, 4, &iov, 1, tw_done_cb, &slot[k]), SH_OK);
    k++;
    assert_int_equal(tw_wait(m, &d->total, k), 0);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);
    tw_done_free(d);
    sh_wal_memio_free(mi);
}

/* ---- fatal errors ---- */

static void fatal_case(sh_wal_memio_op_t op, const char *what)
{
    sh_wal_memio_t *mi = fs_new();
    sh_wal_opts_t o = opts_mem(mi, 64 << 10);
    tw_fatal_t fat = {0};
    o.fatal = tw_fatal_cb;
    o.fatal_arg = &fat;
    sh_wal_mgr_t *m = mgr_open(&o);
    sh_wal_t *w = part_open(m, "x", NULL);
    static uint8_t payload[100];
    struct iovec iov = {payload, sizeof(payload)};
    tw_done_t *d = tw_done_new(8);
    tw_slot_t slot[8];
    for (int i = 0; i < 8; i++)
        slot[i] = (tw_slot_t){d, i};
    assert_int_equal(sh_wal_append_start(w, 0, 0, &iov, 1, tw_done_cb, &slot[0]), SH_OK);
    assert_int_equal(tw_wait(m, &d->total, 1), 0);
    wait_stats(m, ready_at_least, 2); /* the preparer is idle from here on */

    sh_wal_memio_fail(mi, op, 1, EIO);
    /* the first append cannot see the failure yet; later ones either are
     * refused at once or complete with the error, never as durable */
    int accepted = 1;
    assert_int_equal(sh_wal_append_start(w, 1, 1, &iov, 1, tw_done_cb, &slot[1]), SH_OK);
    for (int i = 2; i < 4; i++) {
        sh_err_t rc = sh_wal_append_start(w, i, i, &iov, 1, tw_done_cb, &slot[i]);
        assert_true(rc == SH_OK || rc == SH_E_IO);
        if (rc == SH_OK)
            accepted++;
        else
            break;
    }
    assert_int_equal(tw_wait(m, &d->total, 1 + accepted), 0);
    assert_int_equal(fat.calls, 1);
    assert_string_equal(fat.what, what);
    assert_int_equal(fat.err, EIO);
    assert_int_equal(d->err[0], SH_OK);
    for (int i = 1; i <= accepted; i++) {
        assert_int_equal(d->done[i], 1);
        assert_int_equal(d->err[i], SH_E_IO);
    }
    assert_int_equal(sh_wal_durable_offset(w), 0);
    assert_int_equal(sh_wal_append_start(w, 9, 9, &iov, 1, tw_done_cb, &slot[4]), SH_E_IO);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);
    assert_int_equal(fat.calls, 1); /* no retry, not even at shutdown */
    tw_done_free(d);
    sh_wal_memio_free(mi);
}

static void test_fatal_fsync(void **state)
{
    (void)state;
    fatal_case(SH_WAL_MEMIO_FDATASYNC, "fsync");
}

static void test_fatal_write(void **state)
{
    (void)state;
    fatal_case(SH_WAL_MEMIO_PWRITEV, "write to");
}

static void test_short_writes(void **state)
{
    (void)state;
    enum { N = 30 };
    sh_wal_memio_t *mi = fs_new();
    sh_wal_memio_short_writes(mi, 7);
    sh_wal_opts_t o = opts_mem(mi, 16 << 10);
    sh_wal_mgr_t *m = mgr_open(&o);
    sh_wal_t *w = part_open(m, "short", NULL);
    fr_t fr[N];
    tw_done_t *d = tw_done_new(N);
    tw_slot_t slot[N];
    for (int i = 0; i < N; i++) {
        size_t len = (size_t)(1 + (i * 331) % 2000);
        fr[i] = (fr_t){0, i * 3, i * 3 + 2, malloc(len), len};
        tw_fill(fr[i].buf, len, 0, i);
        slot[i] = (tw_slot_t){d, i};
        append_frame(w, &fr[i], &slot[i], 3);
    }
    assert_int_equal(tw_wait(m, &d->total, N), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(d->err[i], SH_OK);
    sh_wal_stats_t st;
    sh_wal_mgr_stats(m, &st);
    assert_true(sh_wal_memio_calls(mi, SH_WAL_MEMIO_PWRITEV) > st.frame_bytes / 7);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);
    m = mgr_open(&o);
    tw_replay_t r = {0};
    part_open(m, "short", &r);
    expect_replay(&r, fr, N, 0, -1);
    tw_replay_reset(&r);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);
    for (int i = 0; i < N; i++)
        free(fr[i].buf);
    tw_done_free(d);
    sh_wal_memio_free(mi);
}

/* ---- handles ---- */

static void test_block_append(void **state)
{
    (void)state;
    sh_wal_memio_t *mi = fs_new();
    sh_wal_opts_t o = opts_mem(mi, 16 << 10);
    sh_wal_mgr_t *m = mgr_open(&o);
    sh_wal_t *w = part_open(m, "blk", NULL);
    sh_block_t *b = sh_block_new(3000);
    tw_fill(b->data, 3000, 5, 5);
    tw_done_t *d = tw_done_new(1);
    tw_slot_t s = {d, 0};
    assert_int_equal(sh_wal_append_block_start(w, 0, 9, b, 3000, 1, tw_done_cb, &s), SH_E_INVAL);
    assert_int_equal(sh_wal_append_block_start(w, 0, 9, b, 100, 2000, tw_done_cb, &s), SH_OK);
    assert_int_equal(atomic_load(&b->refs), 2);
    assert_int_equal(tw_wait(m, &d->total, 1), 0);
    assert_int_equal(atomic_load(&b->refs), 1);
    sh_wal_close(w);
    tw_replay_t r = {0};
    w = part_open(m, "blk", &r); /* reopened at run time: replay scans its segments */
    assert_int_equal(r.n, 1);
    assert_int_equal(r.f[0].len, 2000);
    assert_memory_equal(r.f[0].data, b->data + 100, 2000);
    tw_replay_reset(&r);
    sh_block_unref(b);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);
    tw_done_free(d);
    sh_wal_memio_free(mi);
}

static void test_delete(void **state)
{
    (void)state;
    sh_wal_memio_t *mi = fs_new();
    sh_wal_opts_t o = opts_mem(mi, 16 << 10);
    sh_wal_mgr_t *m = mgr_open(&o);
    sh_wal_t *w = part_open(m, "gone", NULL), *keep = part_open(m, "keep", NULL);
    static uint8_t payload[500];
    struct iovec iov = {payload, sizeof(payload)};
    tw_done_t *d = tw_done_new(64);
    tw_slot_t slot[64];
    int k = 0;
    for (int i = 0; i < 40; i++, k++) {
        slot[k] = (tw_slot_t){d, k};
        assert_int_equal(sh_wal_append_start(i % 2 ? keep : w, 100 + i, 100 + i, &iov, 1,
                                             tw_done_cb, &slot[k]),
                         SH_OK);
    }
    /* delete with appends in flight: they still complete */
    assert_int_equal(sh_wal_delete(w), SH_OK);
    assert_int_equal(tw_wait(m, &d->total, k), 0);
    for (int i = 0; i < k; i++)
        assert_int_equal(d->done[i], 1);
    /* the key starts afresh, lower offsets allowed */
    w = part_open(m, "gone", NULL);
    assert_int_equal(sh_wal_last_offset(w), -1);
    slot[k] = (tw_slot_t){d, k};
    assert_int_equal(sh_wal_append_start(w, 0, 0, &iov, 1, tw_done_cb, &slot[k]), SH_OK);
    k++;
    assert_int_equal(tw_wait(m, &d->total, k), 0);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);

    m = mgr_open(&o);
    tw_replay_t r = {0};
    part_open(m, "gone", &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.f[0].first, 0);
    tw_replay_reset(&r);
    part_open(m, "keep", &r);
    assert_int_equal(r.n, 20);
    tw_replay_reset(&r);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);
    tw_done_free(d);
    sh_wal_memio_free(mi);
}

static void test_bad_args(void **state)
{
    (void)state;
    sh_wal_memio_t *mi = fs_new();
    sh_wal_opts_t o = opts_mem(mi, 16 << 10);
    sh_wal_mgr_t *m = NULL;
    sh_wal_opts_t bad = o;
    bad.segment_bytes = 5000;
    assert_int_equal(sh_wal_mgr_new(DIR_, &bad, &m), SH_E_INVAL);
    bad = o;
    bad.max_unreleased_bytes = o.segment_bytes;
    assert_int_equal(sh_wal_mgr_new(DIR_, &bad, &m), SH_E_INVAL);
    assert_null(m);

    m = mgr_open(&o);
    sh_wal_t *w = part_open(m, "k", NULL), *w2 = NULL;
    assert_int_equal(sh_wal_open(m, "k", NULL, NULL, &w2), SH_E_EXISTS);
    assert_int_equal(sh_wal_open(m, "", NULL, NULL, &w2), SH_E_INVAL);
    static uint8_t big[16 << 10];
    struct iovec iov = {big, sizeof(big)};
    tw_done_t *d = tw_done_new(2);
    tw_slot_t s = {d, 0};
    assert_int_equal(sh_wal_append_start(w, 0, 0, &iov, 1, tw_done_cb, &s),
                     SH_KERR_MESSAGE_TOO_LARGE);
    iov.iov_len = 10;
    assert_int_equal(sh_wal_append_start(w, 5, 4, &iov, 1, tw_done_cb, &s), SH_E_INVAL);
    assert_int_equal(sh_wal_append_start(w, -1, 4, &iov, 1, tw_done_cb, &s), SH_E_INVAL);
    assert_int_equal(sh_wal_append_start(w, 0, 4, &iov, -1, tw_done_cb, &s), SH_E_INVAL);
    assert_int_equal(sh_wal_append_start(w, 0, 4, &iov, 1, tw_done_cb, &s), SH_OK);
    assert_int_equal(sh_wal_append_start(w, 4, 5, &iov, 1, tw_done_cb, &s), SH_E_INVAL);
    /* an empty payload is a frame too */
    tw_slot_t s1 = {d, 1};
    assert_int_equal(sh_wal_append_start(w, 5, 5, NULL, 0, tw_done_cb, &s1), SH_OK);
    assert_int_equal(tw_wait(m, &d->total, 2), 0);
    assert_int_equal(sh_wal_durable_offset(w), 5);
    assert_int_equal(d->total, 2);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);
    tw_done_free(d);
    sh_wal_memio_free(mi);
}

static void test_corrupt_header_moved_aside(void **state)
{
    (void)state;
    sh_wal_memio_t *mi = fs_new();
    assert_int_equal(sh_wal_memio_mkdir_p(mi, DIR_), SH_OK);
    uint8_t junk[20000];
    tw_fill(junk, sizeof(junk), 1, 2);
    assert_int_equal(sh_wal_memio_put(mi, DIR_ "/wal-00000099.seg", junk, sizeof(junk)), SH_OK);
    assert_int_equal(sh_wal_memio_put(mi, DIR_ "/wal-00000098.tmp", junk, 10), SH_OK);
    sh_wal_opts_t o = opts_mem(mi, 16 << 10);
    sh_wal_mgr_t *m = mgr_open(&o);
    uint8_t *data;
    size_t len;
    assert_int_equal(sh_wal_memio_get(mi, DIR_ "/wal-00000099.seg.corrupt", &data, &len), SH_OK);
    assert_int_equal(len, sizeof(junk));
    free(data);
    assert_int_equal(sh_wal_memio_get(mi, DIR_ "/wal-00000099.seg", &data, &len), SH_E_NOTFOUND);
    assert_int_equal(sh_wal_memio_get(mi, DIR_ "/wal-00000098.tmp", &data, &len), SH_E_NOTFOUND);
    /* new files do not reuse the set-aside name */
    assert_int_equal(sh_wal_memio_get(mi, DIR_ "/wal-0000009a.seg", &data, &len), SH_OK);
    free(data);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);
    sh_wal_memio_free(mi);
}

/* ---- the real file system ---- */

static void test_posix(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/sh_wal_test_XXXXXX";
    char *root = mkdtemp(tmpl);
    assert_non_null(root);
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/wal", root);
    sh_wal_opts_t o = {0};
    o.segment_bytes = 64 << 10;
    o.max_unreleased_bytes = 1 << 20;
    sh_wal_mgr_t *m = NULL;
    assert_int_equal(sh_wal_mgr_new(dir, &o, &m), SH_OK);
    sh_wal_t *w = part_open(m, "0123abcd-0", NULL);
    enum { N = 200 };
    fr_t fr[N];
    tw_done_t *d = tw_done_new(N);
    tw_slot_t slot[N];
    for (int i = 0; i < N; i++) {
        size_t len = (size_t)(100 + (i * 97) % 3000);
        fr[i] = (fr_t){0, i, i, malloc(len), len};
        tw_fill(fr[i].buf, len, 0, i);
        slot[i] = (tw_slot_t){d, i};
        append_frame(w, &fr[i], &slot[i], 3);
    }
    assert_int_equal(tw_wait(m, &d->total, N), 0);
    assert_int_equal(sh_wal_release(w, 49), SH_OK);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);
    assert_int_equal(sh_wal_mgr_new(dir, &o, &m), SH_OK);
    tw_replay_t r = {0};
    w = part_open(m, "0123abcd-0", &r);
    expect_replay(&r, fr, N, 0, 49);
    tw_replay_reset(&r);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);
    for (int i = 0; i < N; i++)
        free(fr[i].buf);
    tw_done_free(d);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

/* ---- memory of idle partitions ---- */

#if defined(__SANITIZE_ADDRESS__)
#define HEAP_MEASURABLE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HEAP_MEASURABLE 0
#endif
#endif
#ifndef HEAP_MEASURABLE
#define HEAP_MEASURABLE 1
#endif

static void test_idle_partition_memory(void **state)
{
    (void)state;
    enum { P = 2000 };
    sh_wal_memio_t *mi = fs_new();
    sh_wal_opts_t o = opts_mem(mi, 1 << 20);
    o.max_unreleased_bytes = 64u << 20;
    sh_wal_mgr_t *m = mgr_open(&o);
    static sh_wal_t *w[P];
    static uint8_t payload[200];
    tw_done_t *d = tw_done_new(P + 2);
    tw_slot_t *slot = calloc(P, sizeof(*slot));
    struct iovec iov = {payload, sizeof(payload)};
    /* warm up the allocator and the file system with one partition */
    sh_wal_t *warm = part_open(m, "warm", NULL);
    tw_slot_t ws = {d, 0};
    assert_int_equal(sh_wal_append_start(warm, 0, 0, &iov, 1, tw_done_cb, &ws), SH_OK);
    assert_int_equal(tw_wait(m, &d->total, 1), 0);
    d->total = 0;
    d->norder = 0;
    size_t before = mallinfo2().uordblks;
    for (int k = 0; k < P; k++) {
        char key[48];
        snprintf(key, sizeof(key), "00112233445566778899aabbccddeeff-%d", k);
        w[k] = part_open(m, key, NULL);
        slot[k] = (tw_slot_t){d, k};
        assert_int_equal(sh_wal_append_start(w[k], 0, 9, &iov, 1, tw_done_cb, &slot[k]), SH_OK);
    }
    assert_int_equal(tw_wait(m, &d->total, P), 0);
    /* every partition holds unreleased data: still small */
    size_t pinned = mallinfo2().uordblks;
    for (int k = 0; k < P; k++)
        assert_int_equal(sh_wal_release(w[k], 9), SH_OK);
    /* completions come in log order: once this one is back, so are the
     * release markers queued before it */
    tw_slot_t ws2 = {d, 0};
    assert_int_equal(sh_wal_append_start(warm, 1, 1, &iov, 1, tw_done_cb, &ws2), SH_OK);
    assert_int_equal(tw_wait(m, &d->total, P + 1), 0);
    size_t idle = mallinfo2().uordblks;
    if (getenv("SH_WAL_TEST_LOG"))
        fprintf(stderr, "heap per partition: %zu pinned, %zu idle\n", (pinned - before) / P,
                (idle - before) / P);
    if (HEAP_MEASURABLE) {
        assert_true(pinned > before);
        assert_true((pinned - before) / P < 1024);
        /* other threads' allocations move the heap a little either way, so
         * only the per-partition bound is asserted after release */
        assert_true(idle < before || (idle - before) / P < 512); /* target: under 4 KiB */
    }
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);
    free(slot);
    tw_done_free(d);
    sh_wal_memio_free(mi);
}

/* Everything released before a clean stop: the restart recycles all the
 * old segments and the byte accounting must come back to zero, not wrap. */
static void test_restart_all_released(void **state)
{
    (void)state;
    sh_wal_memio_t *mi = fs_new();
    sh_wal_opts_t o = opts_mem(mi, 16 << 10);
    static uint8_t payload[3000];
    struct iovec iov = {payload, sizeof(payload)};
    tw_done_t *d = tw_done_new(64);
    tw_slot_t slot[64];
    int k = 0;
    for (int round = 0; round < 3; round++) {
        sh_wal_mgr_t *m = mgr_open(&o);
        sh_wal_stats_t st;
        sh_wal_mgr_stats(m, &st);
        assert_true(st.live_bytes < 2 * o.segment_bytes);
        sh_wal_t *w = part_open(m, "r", NULL);
        int64_t base = sh_wal_last_offset(w) + 1;
        for (int i = 0; i < 12; i++, k++) {
            slot[k] = (tw_slot_t){d, k};
            assert_int_equal(sh_wal_append_start(w, base + i, base + i, &iov, 1, tw_done_cb,
                                                 &slot[k]),
                             SH_OK);
        }
        assert_int_equal(tw_wait(m, &d->total, k), 0);
        assert_int_equal(sh_wal_release(w, base + 11), SH_OK);
        assert_int_equal(sh_wal_mgr_check(m), SH_OK);
        sh_wal_mgr_free(m);
    }
    tw_done_free(d);
    sh_wal_memio_free(mi);
}

int main(void)
{
    sh_log_level = SH_LOG_ERROR + (getenv("SH_WAL_TEST_LOG") ? 3 : 0);
    if (!getenv("SH_WAL_TEST_LOG"))
        sh_log_set_fd(open("/dev/null", O_WRONLY));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_replay_restart),
        cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_recycled_stale_frames),
        cmocka_unit_test(test_recycle_no_growth),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_fatal_fsync),
        cmocka_unit_test(test_fatal_write),
        cmocka_unit_test(test_short_writes),
        cmocka_unit_test(test_block_append),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_corrupt_header_moved_aside),
        cmocka_unit_test(test_posix),
        cmocka_unit_test(test_idle_partition_memory),
        cmocka_unit_test(test_restart_all_released),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
