/*
 * test_wal_bench.c - group commit on the real file system.
 *
 * As a unit test (no environment variable) it runs a small workload in a
 * temporary directory and checks the accounting: every append completes
 * once, the stats add up, group commit used fewer flushes than appends.
 *
 * As a measurement: SH_WAL_BENCH=N,X[,P[,W[,SEG_MIB]]] appends N records
 * of X bytes to P partitions (default 16), keeping W appends in flight
 * (default 256, like many producers waiting for acks), with SEG_MIB MiB
 * segments (default 64), and prints appends/s, MB/s, fsyncs/s, appends per
 * fsync and the fdatasync latency p50/p99/max. The directory is a mkdtemp
 * under SH_WAL_BENCH_DIR (default /tmp), removed afterwards. Startup (the
 * zero-fill of the spare segments) is not timed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "common/sh_clock.h"
#include "common/sh_log.h"
#include "test_wal_util.h"

/* fdatasync latencies, recorded by a vtable that wraps the real one */
static sh_wal_io_t timed_io;
static uint32_t *lat_us;
static size_t lat_n, lat_cap;
static pthread_mutex_t lat_mu = PTHREAD_MUTEX_INITIALIZER;

static int timed_fdatasync(void *ctx, int fd)
{
    int64_t t0 = sh_clock_mono_us();
    int rc = sh_wal_io_posix()->fdatasync(ctx, fd);
    uint32_t us = (uint32_t)(sh_clock_mono_us() - t0);
    pthread_mutex_lock(&lat_mu);
    if (lat_n < lat_cap)
        lat_us[lat_n++] = us;
    pthread_mutex_unlock(&lat_mu);
    return rc;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    int done;
    int errors;
} bctx_t;

static void bench_done(void *arg, sh_err_t err)
{
    bctx_t *b = arg;
    b->done++;
    if (err)
        b->errors++;
}

typedef struct {
    long n, x, parts, window, seg_mib;
} params_t;

static void run(const params_t *p, const char *root, bool print)
{
    char tmpl[512], dir[600];
    snprintf(tmpl, sizeof(tmpl), "%s/sh_wal_bench_XXXXXX", root);
    char *base = mkdtemp(tmpl);
    assert_non_null(base);
    snprintf(dir, sizeof(dir), "%s/wal", base);

    timed_io = *sh_wal_io_posix();
    timed_io.fdatasync = timed_fdatasync;
    lat_n = 0;
    lat_cap = (size_t)p->n + 1024;
    lat_us = calloc(lat_cap, sizeof(*lat_us));

    sh_wal_opts_t o = {0};
    o.segment_bytes = (uint64_t)p->seg_mib << 20;
    o.max_unreleased_bytes = 8 * o.segment_bytes;
    o.io = &timed_io;
    sh_wal_mgr_t *m = NULL;
    assert_int_equal(sh_wal_mgr_new(dir, &o, &m), SH_OK);
    sh_wal_t **w = calloc((size_t)p->parts, sizeof(*w));
    int64_t *next = calloc((size_t)p->parts, sizeof(*next));
    for (long k = 0; k < p->parts; k++) {
        char key[64];
        snprintf(key, sizeof(key), "00112233445566778899aabbccddeeff-%ld", k);
        assert_int_equal(sh_wal_open(m, key, NULL, NULL, &w[k]), SH_OK);
    }
    uint8_t *payload = malloc((size_t)p->x);
    tw_fill(payload, (size_t)p->x, 1, 1);
    sh_wal_stats_t st0, st1;
    sh_wal_mgr_stats(m, &st0);
    pthread_mutex_lock(&lat_mu);
    lat_n = 0; /* startup flushes do not count */
    pthread_mutex_unlock(&lat_mu);

    bctx_t b = {0};
    long issued = 0;
    int64_t t0 = sh_clock_mono_us();
    while (b.done < p->n) {
        while (issued < p->n && issued - b.done < p->window) {
            long k = issued % p->parts;
            struct iovec iov = {payload, (size_t)p->x};
            sh_err_t rc = sh_wal_append_start(w[k], next[k], next[k] + 9, &iov, 1, bench_done, &b);
            if (rc == SH_E_AGAIN) {
                /* "uploaded": release everything durable, as the storage layer would */
                for (long j = 0; j < p->parts; j++)
                    sh_wal_release(w[j], sh_wal_durable_offset(w[j]));
                if (issued == b.done)
                    fail_msg("append refused with nothing in flight");
                break;
            }
            assert_int_equal(rc, SH_OK);
            next[k] += 10;
            issued++;
        }
        struct pollfd pf = {.fd = sh_wal_mgr_fd(m), .events = POLLIN};
        assert_true(poll(&pf, 1, 10000) > 0);
        sh_wal_mgr_drain(m);
        if (b.done % 4096 == 0)
            for (long j = 0; j < p->parts; j++)
                sh_wal_release(w[j], sh_wal_durable_offset(w[j]) - 1000);
    }
    int64_t us = sh_clock_mono_us() - t0;
    sh_wal_mgr_stats(m, &st1);
    assert_int_equal(b.errors, 0);
    assert_int_equal(st1.appends - st0.appends, (uint64_t)p->n);
    assert_int_equal(st1.payload_bytes - st0.payload_bytes, (uint64_t)(p->n * p->x));
    uint64_t fs = st1.fsyncs - st0.fsyncs;
    /* one flush per cycle, plus one per segment sealed inside a cycle */
    assert_true(fs >= 1 &&
                fs <= st1.cycles - st0.cycles + (st1.frame_bytes - st0.frame_bytes) /
                                                     o.segment_bytes + 1);
    if (p->window > 1 && p->n >= 100)
        assert_true(fs < (uint64_t)p->n); /* group commit happened */

    if (print) {
        pthread_mutex_lock(&lat_mu);
        qsort(lat_us, lat_n, sizeof(*lat_us), cmp_u32);
        uint32_t p50 = lat_n ? lat_us[lat_n / 2] : 0;
        uint32_t p99 = lat_n ? lat_us[(lat_n * 99) / 100] : 0;
        uint32_t mx = lat_n ? lat_us[lat_n - 1] : 0;
        size_t nl = lat_n;
        pthread_mutex_unlock(&lat_mu);
        double s = (double)us / 1e6;
        printf("wal_bench n=%ld x=%ld parts=%ld window=%ld seg=%ldMiB: %.0f appends/s, "
               "%.1f MB/s, %.0f fsyncs/s, %.1f appends/fsync, fdatasync p50 %u us p99 %u us "
               "max %u us (%zu samples), cycles %llu, ready waits %llu\n",
               p->n, p->x, p->parts, p->window, p->seg_mib, (double)p->n / s,
               (double)p->n * (double)p->x / s / 1e6, (double)fs / s, (double)p->n / (double)fs,
               p50, p99, mx, nl, (unsigned long long)(st1.cycles - st0.cycles),
               (unsigned long long)(st1.ready_waits - st0.ready_waits));
    }
    sh_wal_mgr_free(m);
    free(payload);
    free(w);
    free(next);
    free(lat_us);
    lat_us = NULL;
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    assert_int_equal(system(cmd), 0);
}

static void test_bench(void **state)
{
    (void)state;
    const char *e = getenv("SH_WAL_BENCH");
    const char *root = getenv("SH_WAL_BENCH_DIR");
    params_t p = {500, 512, 4, 64, 1};
    if (e) {
        p = (params_t){50000, 1024, 16, 256, 64};
        sscanf(e, "%ld,%ld,%ld,%ld,%ld", &p.n, &p.x, &p.parts, &p.window, &p.seg_mib);
        if (p.n < 1 || p.x < 0 || p.parts < 1 || p.window < 1 || p.seg_mib < 1)
            fail_msg("bad SH_WAL_BENCH=%s", e);
    }
    run(&p, root ? root : "/tmp", e != NULL);
}

int main(void)
{
    sh_log_level = SH_LOG_ERROR;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bench),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
