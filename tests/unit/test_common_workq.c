/*
 * test_common_workq.c - the worker pool runs work off-thread and done on
 * the draining thread, signals through its eventfd, and shuts down clean.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>

#include "common/sh_workq.h"

typedef struct {
    sh_workq_job_t job;
    pthread_t worker;
    int worked;
    int done;
} tjob_t;

static pthread_t main_thread;

static void twork(sh_workq_job_t *j)
{
    tjob_t *t = (tjob_t *)j;
    t->worker = pthread_self();
    t->worked = 1;
}

static void tdone(sh_workq_job_t *j)
{
    tjob_t *t = (tjob_t *)j;
    assert_true(pthread_equal(pthread_self(), main_thread));
    assert_int_equal(t->worked, 1);
    t->done++;
}

static void test_workq_basic(void **state)
{
    (void)state;
    main_thread = pthread_self();
    sh_workq_t *wq = sh_workq_new(2, "test");
    assert_non_null(wq);
    tjob_t jobs[100] = {0};
    for (int i = 0; i < 100; i++) {
        jobs[i].job.work = twork;
        jobs[i].job.done = tdone;
        assert_int_equal(sh_workq_submit(wq, &jobs[i].job), 0);
    }
    int seen = 0;
    while (seen < 100) {
        struct pollfd p = {.fd = sh_workq_fd(wq), .events = POLLIN};
        assert_true(poll(&p, 1, 5000) > 0);
        seen += sh_workq_drain(wq);
    }
    for (int i = 0; i < 100; i++) {
        assert_int_equal(jobs[i].done, 1);
        assert_false(pthread_equal(jobs[i].worker, main_thread));
    }
    tjob_t last = {.job = {.work = twork, .done = tdone}};
    sh_workq_run_sync(wq, &last.job);
    assert_int_equal(last.done, 1);
    sh_workq_free(wq);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workq_basic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
