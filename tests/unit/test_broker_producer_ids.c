/*
 * test_broker_producer_ids.c - the broker's producer id manager against a
 * real SQLite metadata store (no loop, no sockets: completions are drained
 * by hand): fresh ids are distinct across block refills and recorded at
 * epoch 0, and a burst of requests shares blocks instead of reserving one
 * each; KIP-360 bumps, their retry and fencing, and the epoch floor the
 * partition logs see; an exhausted epoch and an expired id both move to a
 * fresh id; the expiry pass drops floors and store records. Waiting is
 * bounded by a no-progress guard, never a timing assertion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/sh_broker.h"
#include "broker/sh_producer_ids.h"
#include "common/sh_clock.h"
#include "meta/sh_meta.h"

typedef struct fx {
    char dir[64];
    sh_config_t cfg;
    sh_broker_t b;
    sh_producer_ids_t *ps;
} fx_t;

typedef struct answer {
    int calls;
    sh_err_t err;
    int64_t pid;
    int16_t epoch;
} answer_t;

static void on_answer(void *arg, sh_err_t err, int64_t pid, int16_t epoch)
{
    answer_t *a = arg;
    a->calls++;
    a->err = err;
    a->pid = pid;
    a->epoch = epoch;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/sh-pids-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char url[128];
    snprintf(url, sizeof(url), "sqlite://%s/meta.db", f->dir);
    assert_int_equal(sh_config_init(&f->cfg), SH_OK);
    f->b.cfg = &f->cfg;
    f->b.node_id = 3;
    assert_int_equal(sh_meta_open(url, &f->b.meta), SH_OK);
    f->ps = sh_producer_ids_new(&f->b);
    assert_non_null(f->ps);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    sh_meta_close(f->b.meta); /* runs what is still queued: ps must live */
    sh_producer_ids_free(f->ps);
    sh_config_fini(&f->cfg);
    char p[128];
    static const char *const sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/meta.db%s", f->dir, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void drain_until(fx_t *f, const int *calls, int want)
{
    int64_t until = sh_clock_mono_ms() + 20000;
    while (*calls < want) {
        assert_true(sh_clock_mono_ms() < until);
        struct pollfd p = {.fd = sh_meta_fd(f->b.meta), .events = POLLIN};
        poll(&p, 1, 50);
        sh_meta_drain(f->b.meta);
    }
}

static answer_t init_sync(fx_t *f, int64_t pid, int16_t epoch)
{
    answer_t a = {0};
    assert_int_equal(sh_producer_ids_init_start(f->ps, pid, epoch, on_answer, &a), SH_OK);
    assert_int_equal(a.calls, 0); /* never from inside the start call */
    drain_until(f, &a.calls, 1);
    return a;
}

static int16_t recorded_epoch(fx_t *f, int64_t pid)
{
    int16_t e = -2;
    assert_int_equal(sh_meta_producer_epochs(f->b.meta, &pid, 1, &e), SH_OK);
    return e;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_fresh_ids(void **state)
{
    fx_t *f = *state;
    enum { N = SH_PRODUCER_IDS_BLOCK + 50 };
    static answer_t a[N];
    int calls = 0;
    /* many at once: the first ones find no block and each reserve one */
    for (int i = 0; i < N; i++) {
        memset(&a[i], 0, sizeof(a[i]));
        assert_int_equal(sh_producer_ids_init_start(f->ps, -1, -1, on_answer, &a[i]), SH_OK);
    }
    for (int i = 0; i < N; i++) {
        drain_until(f, &a[i].calls, 1);
        calls += a[i].calls;
    }
    assert_int_equal(calls, N);
    static int64_t ids[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(a[i].err, SH_OK);
        assert_int_equal(a[i].epoch, 0);
        ids[i] = a[i].pid;
    }
    qsort(ids, N, sizeof(ids[0]), cmp64);
    for (int i = 1; i < N; i++)
        assert_true(ids[i] > ids[i - 1]);
    assert_int_equal(recorded_epoch(f, ids[0]), 0);
    assert_int_equal(recorded_epoch(f, ids[N - 1]), 0);
    /* requests that found no id waited for the one block being reserved,
     * then the next: two blocks for all of them, not one each */
    assert_true(ids[N - 1] - ids[0] < 2 * SH_PRODUCER_IDS_BLOCK);
    answer_t x = init_sync(f, -1, -1);
    answer_t y = init_sync(f, -1, -1);
    assert_int_equal(y.pid, x.pid + 1);
}

static void test_bump_retry_fence_floor(void **state)
{
    fx_t *f = *state;
    answer_t a = init_sync(f, -1, -1);
    int64_t pid = a.pid;
    assert_int_equal(sh_producer_ids_epoch_floor(f->ps, pid), -1);
    answer_t b = init_sync(f, pid, 0);
    assert_int_equal(b.err, SH_OK);
    assert_int_equal(b.pid, pid);
    assert_int_equal(b.epoch, 1);
    assert_int_equal(sh_producer_ids_epoch_floor(f->ps, pid), 1);
    b = init_sync(f, pid, 0); /* the same request again: same answer */
    assert_int_equal(b.err, SH_OK);
    assert_int_equal(b.epoch, 1);
    b = init_sync(f, pid, 1);
    assert_int_equal(b.epoch, 2);
    b = init_sync(f, pid, 0);
    assert_int_equal(b.err, SH_E_FENCED);
    assert_int_equal(b.pid, -1);
    assert_int_equal(sh_producer_ids_epoch_floor(f->ps, pid), 2);
    assert_int_equal(recorded_epoch(f, pid), 2);
    assert_int_equal(sh_producer_ids_epoch_floor(NULL, pid), -1);
}

static void test_exhausted_and_expired(void **state)
{
    fx_t *f = *state;
    answer_t a = init_sync(f, -1, -1);
    sh_meta_producer_t rec;
    assert_int_equal(sh_meta_producer_bump(f->b.meta, a.pid, SH_META_PRODUCER_EPOCH_MAX - 1,
                                           1, &rec),
                     SH_OK);
    assert_int_equal(rec.epoch, SH_META_PRODUCER_EPOCH_MAX);
    /* the last usable epoch: a fresh id, and the old one fenced for good */
    answer_t b = init_sync(f, a.pid, SH_META_PRODUCER_EPOCH_MAX);
    assert_int_equal(b.err, SH_OK);
    assert_true(b.pid != a.pid);
    assert_int_equal(b.epoch, 0);
    assert_int_equal(recorded_epoch(f, a.pid), SH_META_PRODUCER_EPOCH_MAX + 1);
    assert_int_equal(sh_producer_ids_epoch_floor(f->ps, a.pid), SH_META_PRODUCER_EPOCH_MAX + 1);
    /* an id the store does not know (expired): a fresh one */
    answer_t c = init_sync(f, 123456789, 3);
    assert_int_equal(c.err, SH_OK);
    assert_true(c.pid != 123456789);
    assert_int_equal(c.epoch, 0);
    assert_int_equal(recorded_epoch(f, 123456789), -1);
}

static void test_expiry_pass(void **state)
{
    fx_t *f = *state;
    answer_t a = init_sync(f, -1, -1);
    init_sync(f, a.pid, 0);
    assert_int_equal(sh_producer_ids_epoch_floor(f->ps, a.pid), 1);
    int64_t now = sh_clock_wall_ms();
    /* not idle long enough: nothing goes. (Metadata ops run in order, so
     * once the bump below is answered the store's expiry has run too.) */
    sh_producer_ids_expire_now(f->ps, now);
    answer_t b = init_sync(f, a.pid, 1);
    assert_int_equal(b.epoch, 2);
    assert_int_equal(sh_producer_ids_epoch_floor(f->ps, a.pid), 2);
    assert_int_equal(recorded_epoch(f, a.pid), 2);
    /* a day and a bit later: the floor and the record go */
    sh_producer_ids_expire_now(f->ps, now + f->cfg.producer_id_expiration_ms + 60000);
    assert_int_equal(sh_producer_ids_epoch_floor(f->ps, a.pid), -1);
    int64_t until = sh_clock_mono_ms() + 20000;
    while (recorded_epoch(f, a.pid) != -1) {
        assert_true(sh_clock_mono_ms() < until);
        struct pollfd p = {.fd = sh_meta_fd(f->b.meta), .events = POLLIN};
        poll(&p, 1, 50);
        sh_meta_drain(f->b.meta);
    }
    /* and the id is then replaced like any expired one */
    answer_t c = init_sync(f, a.pid, 2);
    assert_true(c.pid != a.pid);
    assert_int_equal(c.epoch, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bump_retry_fence_floor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exhausted_and_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_pass, setup, teardown),
    };
    return cmocka_run_group_tests_name("broker_producer_ids", tests, NULL, NULL);
}
