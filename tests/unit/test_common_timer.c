/*
 * test_common_timer.c - the timer heap fires in deadline order (ties in arm
 * order), cancel and re-arm keep the heap valid, and a callback may re-arm
 * or cancel timers while the heap is running.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "common/sh_timer.h"

#define MAXFIRED 2048

typedef struct {
    int order[MAXFIRED];
    int n;
} fired_t;

typedef struct {
    sh_timer_t t;
    int id;
    fired_t *log;
    sh_timer_heap_t *heap;
    sh_timer_t *victim;      /* cancelled by this timer's callback */
    int64_t rearm_to;        /* >= 0: re-arm itself once to this deadline */
} ttimer_t;

static void on_fire(sh_timer_t *t, void *arg)
{
    ttimer_t *tt = arg;
    assert_ptr_equal(&tt->t, t);
    assert_false(sh_timer_is_armed(t));
    assert_true(tt->log->n < MAXFIRED);
    tt->log->order[tt->log->n++] = tt->id;
    if (tt->victim)
        sh_timer_cancel(tt->heap, tt->victim);
    if (tt->rearm_to >= 0) {
        int64_t d = tt->rearm_to;
        tt->rearm_to = -1;
        assert_int_equal(sh_timer_arm(tt->heap, t, d), 0);
    }
}

static void tinit(ttimer_t *tt, int id, fired_t *log, sh_timer_heap_t *h)
{
    tt->id = id;
    tt->log = log;
    tt->heap = h;
    tt->victim = NULL;
    tt->rearm_to = -1;
    sh_timer_init(&tt->t, on_fire, tt);
}

static void test_order_and_ties(void **state)
{
    (void)state;
    sh_timer_heap_t h;
    fired_t log = {0};
    ttimer_t t[6];
    /* deadlines 50, 10, 30, 10, 20, 10 -> ties at 10 fire in arm order */
    const int64_t when[6] = {50, 10, 30, 10, 20, 10};
    sh_timer_heap_init(&h);
    assert_int_equal(sh_timer_heap_next_deadline(&h), -1);
    assert_int_equal(sh_timer_heap_timeout(&h, 0, 1000), 1000);
    for (int i = 0; i < 6; i++) {
        tinit(&t[i], i, &log, &h);
        assert_int_equal(sh_timer_arm(&h, &t[i].t, when[i]), 0);
    }
    assert_int_equal(sh_timer_heap_next_deadline(&h), 10);
    assert_int_equal(sh_timer_heap_timeout(&h, 4, 1000), 6);
    assert_int_equal(sh_timer_heap_timeout(&h, 4, 3), 3);
    assert_int_equal(sh_timer_heap_timeout(&h, 11, 1000), 0);

    assert_int_equal(sh_timer_heap_run(&h, 9), 0);
    assert_int_equal(sh_timer_heap_run(&h, 10), 3);
    assert_int_equal(log.n, 3);
    assert_int_equal(log.order[0], 1);
    assert_int_equal(log.order[1], 3);
    assert_int_equal(log.order[2], 5);
    assert_int_equal(sh_timer_heap_run(&h, 1000), 3);
    assert_int_equal(log.order[3], 4);
    assert_int_equal(log.order[4], 2);
    assert_int_equal(log.order[5], 0);
    assert_int_equal(sh_timer_heap_next_deadline(&h), -1);
    sh_timer_heap_fini(&h);
}

static void test_cancel_and_rearm(void **state)
{
    (void)state;
    sh_timer_heap_t h;
    fired_t log = {0};
    ttimer_t t[4];
    sh_timer_heap_init(&h);
    for (int i = 0; i < 4; i++) {
        tinit(&t[i], i, &log, &h);
        assert_int_equal(sh_timer_arm(&h, &t[i].t, 100 + i), 0);
    }
    sh_timer_cancel(&h, &t[0].t);          /* the root */
    assert_false(sh_timer_is_armed(&t[0].t));
    sh_timer_cancel(&h, &t[0].t);          /* twice is harmless */
    assert_int_equal(sh_timer_arm(&h, &t[3].t, 50), 0);  /* move earlier */
    assert_int_equal(sh_timer_arm(&h, &t[1].t, 500), 0); /* move later */
    assert_int_equal(sh_timer_heap_next_deadline(&h), 50);
    assert_int_equal(sh_timer_heap_run(&h, 1000), 3);
    assert_int_equal(log.n, 3);
    assert_int_equal(log.order[0], 3);
    assert_int_equal(log.order[1], 2);
    assert_int_equal(log.order[2], 1);
    sh_timer_heap_fini(&h);
}

static void test_callback_cancels_and_rearms(void **state)
{
    (void)state;
    sh_timer_heap_t h;
    fired_t log = {0};
    ttimer_t a, b, c;
    sh_timer_heap_init(&h);
    tinit(&a, 1, &log, &h);
    tinit(&b, 2, &log, &h);
    tinit(&c, 3, &log, &h);
    a.victim = &b.t;     /* a fires first and cancels b, which is also due */
    a.rearm_to = 5;      /* re-arms itself already due: must wait a run */
    assert_int_equal(sh_timer_arm(&h, &a.t, 10), 0);
    assert_int_equal(sh_timer_arm(&h, &b.t, 10), 0);
    assert_int_equal(sh_timer_arm(&h, &c.t, 20), 0);
    assert_int_equal(sh_timer_heap_run(&h, 10), 1);
    assert_int_equal(log.n, 1);
    assert_false(sh_timer_is_armed(&b.t));
    assert_true(sh_timer_is_armed(&a.t));
    assert_int_equal(sh_timer_heap_run(&h, 10), 1);
    assert_int_equal(log.order[1], 1);
    assert_int_equal(sh_timer_heap_run(&h, 30), 1);
    assert_int_equal(log.order[2], 3);
    assert_int_equal(log.n, 3);
    sh_timer_heap_fini(&h);
}

/* Random arm/cancel/re-arm against a brute-force model. */
static void test_random_against_model(void **state)
{
    (void)state;
    enum { N = 500 };
    static ttimer_t t[N];
    static int64_t model[N];   /* deadline or -1 */
    sh_timer_heap_t h;
    fired_t log = {0};
    sh_timer_heap_init(&h);
    srand(12345);
    for (int i = 0; i < N; i++) {
        tinit(&t[i], i, &log, &h);
        model[i] = -1;
    }
    for (int step = 0; step < 20000; step++) {
        int i = rand() % N;
        if (rand() % 3 == 0) {
            sh_timer_cancel(&h, &t[i].t);
            model[i] = -1;
        } else {
            int64_t d = rand() % 100000;
            assert_int_equal(sh_timer_arm(&h, &t[i].t, d), 0);
            model[i] = d;
        }
    }
    int64_t last = -1;
    int armed = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(sh_timer_is_armed(&t[i].t), model[i] >= 0);
        armed += model[i] >= 0;
    }
    assert_int_equal(sh_timer_heap_run(&h, 100000), armed);
    assert_int_equal(log.n, armed);
    for (int k = 0; k < log.n; k++) {
        int64_t d = model[log.order[k]];
        assert_true(d >= last);
        last = d;
    }
    sh_timer_heap_fini(&h);
}

static void test_fini_disarms(void **state)
{
    (void)state;
    sh_timer_heap_t h;
    fired_t log = {0};
    ttimer_t a;
    sh_timer_heap_init(&h);
    tinit(&a, 1, &log, &h);
    assert_int_equal(sh_timer_arm(&h, &a.t, 1), 0);
    sh_timer_heap_fini(&h);
    assert_false(sh_timer_is_armed(&a.t));
    assert_int_equal(log.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_ties),
        cmocka_unit_test(test_cancel_and_rearm),
        cmocka_unit_test(test_callback_cancels_and_rearms),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_fini_disarms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
