/*
 * test_broker_loop.c - the event loop: descriptor callbacks, removal of a
 * registration whose event is still pending in the same batch, timers
 * through the loop, before-sleep hooks, worker-pool completions on the
 * loop thread, and a stop from another thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "broker/sh_loop.h"
#include "common/sh_clock.h"
#include "common/sh_workq.h"

/* ------------------------------------------------------------ io */

typedef struct pipe_watch {
    sh_loop_io_t io;
    int rfd, wfd;
    int calls;
    struct pipe_watch *other;   /* removed and freed by our callback */
    sh_loop_t *loop;
} pipe_watch_t;

static int pw_total;
static pipe_watch_t *pw_last;   /* the watch whose callback ran last */

static void pw_cb(sh_loop_io_t *io, uint32_t events)
{
    pipe_watch_t *p = io->arg;
    char buf[16];
    assert_true(events & SH_LOOP_READ);
    assert_true(read(p->rfd, buf, sizeof(buf)) > 0);
    p->calls++;
    pw_total++;
    pw_last = p;
    if (p->other) {
        /* the other one is ready in this very batch: remove and free it */
        pipe_watch_t *o = p->other;
        o->other = NULL;
        sh_loop_io_del(p->loop, &o->io);
        close(o->rfd);
        close(o->wfd);
        free(o);
        p->other = NULL;
    }
}

static pipe_watch_t *pw_new(sh_loop_t *loop)
{
    int fds[2];
    pipe_watch_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    assert_int_equal(pipe(fds), 0);
    p->rfd = fds[0];
    p->wfd = fds[1];
    p->loop = loop;
    sh_loop_io_init(&p->io, p->rfd, pw_cb, p);
    assert_int_equal(sh_loop_io_add(loop, &p->io, SH_LOOP_READ), SH_OK);
    return p;
}

static void test_io_del_scrubs_pending(void **state)
{
    (void)state;
    sh_loop_t *loop = sh_loop_new();
    assert_non_null(loop);
    pipe_watch_t *a = pw_new(loop), *b = pw_new(loop);
    a->other = b;
    b->other = a;
    /* both readable before the loop looks: one batch holds both */
    assert_int_equal(write(a->wfd, "x", 1), 1);
    assert_int_equal(write(b->wfd, "y", 1), 1);
    pw_total = 0;
    assert_int_equal(sh_loop_run_once(loop, 1000), SH_OK);
    /* whichever ran first freed the other, whose event was skipped */
    assert_int_equal(pw_total, 1);
    pipe_watch_t *survivor = pw_last;   /* the other one is freed */
    assert_true(survivor == a || survivor == b);
    assert_int_equal(survivor->calls, 1);
    sh_loop_io_del(loop, &survivor->io);
    close(survivor->rfd);
    close(survivor->wfd);
    free(survivor);
    sh_loop_free(loop);
}

static void test_io_interest(void **state)
{
    (void)state;
    sh_loop_t *loop = sh_loop_new();
    pipe_watch_t *p = pw_new(loop);
    assert_int_equal(write(p->wfd, "abc", 3), 3);
    /* no read interest: nothing is reported */
    assert_int_equal(sh_loop_io_set(loop, &p->io, 0), SH_OK);
    assert_int_equal(sh_loop_run_once(loop, 20), SH_OK);
    assert_int_equal(p->calls, 0);
    assert_int_equal(sh_loop_io_set(loop, &p->io, SH_LOOP_READ), SH_OK);
    assert_int_equal(sh_loop_run_once(loop, 1000), SH_OK);
    assert_int_equal(p->calls, 1);
    sh_loop_io_del(loop, &p->io);
    close(p->rfd);
    close(p->wfd);
    free(p);
    sh_loop_free(loop);
}

/* ---------------------------------------------------- timers, hooks */

typedef struct {
    sh_timer_t t;
    int id;
    int *log;
    int *n;
} lt_t;

static void lt_fire(sh_timer_t *t, void *arg)
{
    lt_t *x = arg;
    (void)t;
    x->log[(*x->n)++] = x->id;
}

static int hook_calls;
static int hook_seen_timers;
static int *hook_n;

static void hook_fn(sh_loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
    hook_calls++;
    hook_seen_timers = *hook_n;
}

static void test_timers_and_hooks(void **state)
{
    (void)state;
    sh_loop_t *loop = sh_loop_new();
    int log[3], n = 0;
    lt_t t[3];
    for (int i = 0; i < 3; i++) {
        t[i].id = i;
        t[i].log = log;
        t[i].n = &n;
        sh_timer_init(&t[i].t, lt_fire, &t[i]);
    }
    sh_loop_hook_t hook;
    hook_calls = 0;
    hook_n = &n;
    sh_loop_before_sleep_add(loop, &hook, hook_fn, NULL);
    assert_int_equal(sh_loop_timer_arm(loop, &t[0].t, 30), SH_OK);
    assert_int_equal(sh_loop_timer_arm(loop, &t[1].t, 10), SH_OK);
    assert_int_equal(sh_loop_timer_arm(loop, &t[2].t, 20), SH_OK);
    sh_loop_timer_cancel(loop, &t[2].t);
    /* the loop sleeps until each deadline; no descriptor is involved */
    while (n < 2)
        assert_int_equal(sh_loop_run_once(loop, -1), SH_OK);
    assert_int_equal(log[0], 1);
    assert_int_equal(log[1], 0);
    assert_false(sh_timer_is_armed(&t[2].t));
    assert_true(hook_calls >= 2);
    /* the hook of the last iteration ran before the last timer fired */
    assert_int_equal(hook_seen_timers, 1);
    sh_loop_before_sleep_remove(loop, &hook);
    int before = hook_calls;
    assert_int_equal(sh_loop_run_once(loop, 0), SH_OK);
    assert_int_equal(hook_calls, before);
    sh_loop_free(loop);
}

/* ----------------------------------------------------- worker pool */

typedef struct {
    sh_workq_job_t job;
    pthread_t done_thread;
    int done;
} wjob_t;

static void wwork(sh_workq_job_t *j)
{
    (void)j;
    usleep(1000);
}

static void wdone(sh_workq_job_t *j)
{
    wjob_t *w = (wjob_t *)j;
    w->done_thread = pthread_self();
    w->done = 1;
}

static void test_workq_completions_on_loop(void **state)
{
    (void)state;
    sh_loop_t *loop = sh_loop_new();
    sh_workq_t *wq = sh_workq_new(2, "looptest");
    assert_non_null(wq);
    assert_int_equal(sh_loop_workq_add(loop, wq), SH_OK);
    wjob_t jobs[8] = {0};
    for (int i = 0; i < 8; i++) {
        jobs[i].job.work = wwork;
        jobs[i].job.done = wdone;
        assert_int_equal(sh_workq_submit(wq, &jobs[i].job), SH_OK);
    }
    int64_t deadline = sh_clock_mono_ms() + 5000;
    int finished = 0;
    while (finished < 8 && sh_clock_mono_ms() < deadline) {
        assert_int_equal(sh_loop_run_once(loop, 100), SH_OK);
        finished = 0;
        for (int i = 0; i < 8; i++)
            finished += jobs[i].done;
    }
    assert_int_equal(finished, 8);
    for (int i = 0; i < 8; i++)
        assert_true(pthread_equal(jobs[i].done_thread, pthread_self()));
    sh_loop_workq_remove(loop, wq);
    sh_workq_free(wq);
    sh_loop_free(loop);
}

/* ------------------------------------------------------------ stop */

static void *stopper(void *arg)
{
    usleep(20 * 1000);
    sh_loop_stop(arg);
    return NULL;
}

static void test_stop_from_other_thread(void **state)
{
    (void)state;
    sh_loop_t *loop = sh_loop_new();
    pthread_t th;
    assert_false(sh_loop_stopping(loop));
    assert_int_equal(pthread_create(&th, NULL, stopper, loop), 0);
    /* nothing else to wake it: only the stop's eventfd can */
    assert_int_equal(sh_loop_run(loop), SH_OK);
    assert_true(sh_loop_stopping(loop));
    pthread_join(th, NULL);
    sh_loop_free(loop);
}

int main(void)
{
    sh_loop_block_signals();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_io_del_scrubs_pending),
        cmocka_unit_test(test_io_interest),
        cmocka_unit_test(test_timers_and_hooks),
        cmocka_unit_test(test_workq_completions_on_loop),
        cmocka_unit_test(test_stop_from_other_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
