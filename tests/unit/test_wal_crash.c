/*
 * test_wal_crash.c - power loss at every step of a small workload.
 *
 * A clean run of the workload (three partitions, bursts of appends of
 * random sizes over 16 KiB segments, so files are created, filled,
 * sealed, released and recycled) counts its mutating file-system
 * operations. Then, for every step N and for two write-back models (only
 * flushed data survives; a random subset of unflushed sectors and name
 * changes also survives), the workload runs again on the in-memory file
 * system with a power cut snapshotted just before step N, and the WAL is
 * reopened on what the cut left. For each partition the replay must be a
 * contiguous run of what was appended, byte for byte, and must contain
 * every frame acknowledged before the cut that had not been released
 * before it. Then a few more frames are appended and the WAL reopened
 * once more: the replay must be the old one plus the new frames, which
 * proves the torn tail was cut off for good.
 *
 * SH_WAL_CRASH_STRIDE=k tests every k-th step only (default 1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "common/sh_log.h"
#include "test_wal_util.h"
#include "wal/sh_wal_int.h"

#define DIR_ "/d/wal"
#define NKEYS 3
#define NFRAMES 96
#define BURST 6

typedef struct {
    int k;
    int64_t first, last;
    uint8_t *buf;
    size_t len;
    bool acked_before_cut;
} cframe_t;

typedef struct {
    sh_wal_memio_t *mi;
    cframe_t f[NFRAMES];
    int64_t released_before_cut[NKEYS];
    int done;
} run_t;

typedef struct {
    run_t *r;
    int i;
} cslot_t;

static const char *keys[NKEYS] = {"c0ffee-0", "c0ffee-1", "beef-7"};

static void crash_done(void *arg, sh_err_t err)
{
    cslot_t *s = arg;
    assert_int_equal(err, SH_OK);
    if (!sh_wal_memio_crash_taken(s->r->mi))
        s->r->f[s->i].acked_before_cut = true;
    s->r->done++;
}

static sh_wal_opts_t copts(sh_wal_memio_t *mi)
{
    sh_wal_opts_t o = {0};
    o.segment_bytes = 16 << 10;
    o.max_unreleased_bytes = 1 << 20;
    o.pool_segments = 1;
    o.io = sh_wal_memio_io(mi);
    return o;
}

static int wait_done(sh_wal_mgr_t *m, run_t *r, int target)
{
    while (r->done < target) {
        struct pollfd p = {.fd = sh_wal_mgr_fd(m), .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0)
            return -1;
        sh_wal_mgr_drain(m);
    }
    return 0;
}

/* The workload; the frames and their payloads are the same on every run. */
static void workload(run_t *r)
{
    sh_wal_opts_t o = copts(r->mi);
    sh_wal_mgr_t *m = NULL;
    assert_int_equal(sh_wal_mgr_new(DIR_, &o, &m), SH_OK);
    sh_wal_t *w[NKEYS];
    for (int k = 0; k < NKEYS; k++) {
        assert_int_equal(sh_wal_open(m, keys[k], NULL, NULL, &w[k]), SH_OK);
        r->released_before_cut[k] = -1;
    }
    cslot_t slot[NFRAMES];
    for (int i = 0; i < NFRAMES; i++) {
        cframe_t *f = &r->f[i];
        slot[i] = (cslot_t){r, i};
        struct iovec iov[2] = {{f->buf, f->len / 2}, {f->buf + f->len / 2, f->len - f->len / 2}};
        assert_int_equal(sh_wal_append_start(w[f->k], f->first, f->last, iov, 2, crash_done,
                                             &slot[i]),
                         SH_OK);
        if ((i + 1) % BURST == 0) {
            assert_int_equal(wait_done(m, r, i + 1), 0);
            if ((i + 1) % (2 * BURST) == 0) {
                /* "uploaded": release half of each partition's frames */
                for (int k = 0; k < NKEYS; k++) {
                    int64_t upto = -1;
                    for (int j = 0; j <= i / 2; j++)
                        if (r->f[j].k == k)
                            upto = r->f[j].last;
                    if (upto < 0)
                        continue;
                    bool before = !sh_wal_memio_crash_taken(r->mi);
                    assert_int_equal(sh_wal_release(w[k], upto), SH_OK);
                    if (before && upto > r->released_before_cut[k])
                        r->released_before_cut[k] = upto;
                }
            }
        }
    }
    assert_int_equal(wait_done(m, r, NFRAMES), 0);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);
}

static void frames_init(run_t *r)
{
    uint32_t x = 2024;
    int64_t next[NKEYS] = {0, 1000, 50};
    for (int i = 0; i < NFRAMES; i++) {
        x = x * 1103515245u + 12345u;
        int k = (int)((x >> 16) % NKEYS);
        size_t len = 50 + (size_t)((x >> 8) % 2500);
        cframe_t *f = &r->f[i];
        f->k = k;
        f->first = next[k];
        f->last = next[k] + (int64_t)(x % 4);
        next[k] = f->last + 1;
        f->len = len;
        f->buf = malloc(len);
        tw_fill(f->buf, len, k, i);
    }
}

static void frames_free(run_t *r)
{
    for (int i = 0; i < NFRAMES; i++)
        free(r->f[i].buf);
}

static void check_key(run_t *r, int k, const tw_replay_t *rep, uint64_t step, uint32_t seed)
{
    int idx[NFRAMES], n = 0;
    for (int i = 0; i < NFRAMES; i++)
        if (r->f[i].k == k)
            idx[n++] = i;
    /* where the replay starts in the appended sequence */
    int a = 0;
    if (rep->n > 0) {
        while (a < n && r->f[idx[a]].first != rep->f[0].first)
            a++;
        if (a == n)
            fail_msg("step %llu seed %u key %d: replayed offset %lld was never appended",
                     (unsigned long long)step, seed, k, (long long)rep->f[0].first);
    }
    if (a + rep->n > n)
        fail_msg("step %llu seed %u key %d: %d frames replayed from %d of %d",
                 (unsigned long long)step, seed, k, rep->n, a, n);
    for (int j = 0; j < rep->n; j++) {
        cframe_t *f = &r->f[idx[a + j]];
        if (rep->f[j].first != f->first || rep->f[j].last != f->last || rep->f[j].len != f->len ||
            memcmp(rep->f[j].data, f->buf, f->len) != 0)
            fail_msg("step %llu seed %u key %d: replayed frame %d differs",
                     (unsigned long long)step, seed, k, j);
    }
    for (int i = 0; i < n; i++) {
        cframe_t *f = &r->f[idx[i]];
        bool needed = f->acked_before_cut && f->last > r->released_before_cut[k];
        bool got = i >= a && i < a + rep->n;
        if (needed && !got)
            fail_msg("step %llu seed %u key %d: acknowledged frame at offset %lld lost",
                     (unsigned long long)step, seed, k, (long long)f->first);
    }
}

/* Reopen what the cut left, check, append more, reopen, check again. */
static void after_cut(run_t *r, sh_wal_memio_t *fs, uint64_t step, uint32_t seed)
{
    sh_wal_opts_t o = copts(fs);
    sh_wal_mgr_t *m = NULL;
    tw_replay_t rep[NKEYS];
    sh_wal_t *w[NKEYS];
    memset(rep, 0, sizeof(rep));
    if (sh_wal_mgr_new(DIR_, &o, &m) != SH_OK)
        fail_msg("step %llu seed %u: WAL does not open after the cut", (unsigned long long)step,
                 seed);
    for (int k = 0; k < NKEYS; k++) {
        assert_int_equal(sh_wal_open(m, keys[k], tw_replay_cb, &rep[k], &w[k]), SH_OK);
        check_key(r, k, &rep[k], step, seed);
    }
    uint8_t more[NKEYS][300];
    int64_t first[NKEYS];
    tw_done_t *d = tw_done_new(NKEYS);
    tw_slot_t s[NKEYS];
    for (int k = 0; k < NKEYS; k++) {
        tw_fill(more[k], sizeof(more[k]), k, 999);
        first[k] = sh_wal_last_offset(w[k]) + 1;
        s[k] = (tw_slot_t){d, k};
        struct iovec iov = {more[k], sizeof(more[k])};
        assert_int_equal(sh_wal_append_start(w[k], first[k], first[k], &iov, 1, tw_done_cb, &s[k]),
                         SH_OK);
    }
    assert_int_equal(tw_wait(m, &d->total, NKEYS), 0);
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);

    assert_int_equal(sh_wal_mgr_new(DIR_, &o, &m), SH_OK);
    for (int k = 0; k < NKEYS; k++) {
        tw_replay_t again = {0};
        assert_int_equal(sh_wal_open(m, keys[k], tw_replay_cb, &again, &w[k]), SH_OK);
        if (again.n != rep[k].n + 1)
            fail_msg("step %llu seed %u key %d: %d frames after reopen, expected %d",
                     (unsigned long long)step, seed, k, again.n, rep[k].n + 1);
        for (int j = 0; j < rep[k].n; j++)
            assert_memory_equal(again.f[j].data, rep[k].f[j].data, rep[k].f[j].len);
        assert_int_equal(again.f[rep[k].n].first, first[k]);
        assert_memory_equal(again.f[rep[k].n].data, more[k], sizeof(more[k]));
        tw_replay_reset(&again);
        tw_replay_reset(&rep[k]);
    }
    assert_int_equal(sh_wal_mgr_check(m), SH_OK);
    sh_wal_mgr_free(m);
    tw_done_free(d);
}

static void test_crash_every_step(void **state)
{
    (void)state;
    run_t r;
    memset(&r, 0, sizeof(r));
    frames_init(&r);

    const char *e = getenv("SH_WAL_CRASH_STRIDE");
    uint64_t stride = e && atoi(e) > 0 ? (uint64_t)atoi(e) : 1;
    int checked = 0, acked_checked = 0, misses = 0;
    /* how many steps a run takes depends on how the worker batches, so
     * cut at step 1, 2, 3, ... until the runs end before the cut */
    for (uint64_t step = 1; misses < 6; step += stride) {
        for (int model = 0; model < 2; model++) {
            uint32_t seed = model ? (uint32_t)(step * 2654435761u) | 1 : 0;
            memset(r.released_before_cut, 0, sizeof(r.released_before_cut));
            for (int i = 0; i < NFRAMES; i++)
                r.f[i].acked_before_cut = false;
            r.done = 0;
            r.mi = sh_wal_memio_new();
            assert_int_equal(sh_wal_memio_mkdir_p(r.mi, "/d"), SH_OK);
            sh_wal_memio_crash_at(r.mi, step, seed);
            workload(&r);
            sh_wal_memio_t *fs = sh_wal_memio_crashed(r.mi);
            if (fs) {
                for (int i = 0; i < NFRAMES; i++)
                    acked_checked += r.f[i].acked_before_cut;
                after_cut(&r, fs, step, seed);
                sh_wal_memio_free(fs);
                checked++;
                misses = 0;
            } else {
                misses++;
            }
            sh_wal_memio_free(r.mi);
        }
    }
    if (getenv("SH_WAL_TEST_LOG"))
        fprintf(stderr, "crash: %d cuts checked, %d acknowledged frames checked\n", checked,
                acked_checked);
    /* the loop really cut the power all along the run */
    assert_true(checked >= 100 / (int)stride);
    assert_true(acked_checked > 0);
    frames_free(&r);
}

int main(void)
{
    sh_log_level = getenv("SH_WAL_TEST_LOG") ? SH_LOG_DEBUG : SH_LOG_ERROR;
    if (!getenv("SH_WAL_TEST_LOG"))
        sh_log_set_fd(open("/dev/null", O_WRONLY));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_every_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
