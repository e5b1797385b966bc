/*
 * test_storage_s3_policy.c - retry backoff, token buckets and the circuit
 * breaker of the S3 backend, driven with a fake clock and fixed "random"
 * numbers, so every expectation is exact and nothing depends on timing.
 * (test_storage_s3.c checks the same behaviour end to end against a
 * stopped and restarted s3rver.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "storage/sh_s3_policy.h"

static void test_backoff(void **state)
{
    (void)state;
    /* the ceiling doubles per attempt from the base up to the cap */
    int64_t ceil[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
    for (int a = 1; a <= 9; a++) {
        /* rnd = ceiling gives the ceiling itself, rnd = ceiling+1 wraps to 0 */
        assert_int_equal(sh_s3_backoff_ms(a, 100, 5000, (uint64_t)ceil[a - 1]), ceil[a - 1]);
        assert_int_equal(sh_s3_backoff_ms(a, 100, 5000, (uint64_t)ceil[a - 1] + 1), 0);
        assert_int_equal(sh_s3_backoff_ms(a, 100, 5000, 0), 0);
    }
    /* full jitter: over many draws every value stays in [0, ceiling] and
     * the draws spread over the whole range */
    uint64_t rs = 42;
    int64_t lo = INT64_MAX, hi = -1;
    for (int i = 0; i < 10000; i++) {
        int64_t d = sh_s3_backoff_ms(4, 100, 5000, sh_s3_rand_next(&rs));
        assert_true(d >= 0 && d <= 800);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true(lo < 50);
    assert_true(hi > 750);
    /* huge attempt numbers do not overflow */
    assert_true(sh_s3_backoff_ms(1000, 100, 10000, UINT64_MAX) <= 10000);
    assert_int_equal(sh_s3_backoff_ms(0, 100, 5000, 7), 0);
}

static void test_bucket(void **state)
{
    (void)state;
    sh_s3_bucket_t b;
    int64_t t = 1000;
    sh_s3_bucket_init(&b, 10, 3, t); /* 10/s, burst 3 */
    assert_int_equal(sh_s3_bucket_take(&b, t), 0);
    assert_int_equal(sh_s3_bucket_take(&b, t), 0);
    assert_int_equal(sh_s3_bucket_take(&b, t), 0);
    int64_t wait = sh_s3_bucket_take(&b, t);
    assert_true(wait > 0 && wait <= 101);  /* one token per 100 ms */
    assert_true(sh_s3_bucket_take(&b, t + 50) > 0);
    assert_int_equal(sh_s3_bucket_take(&b, t + 100), 0);
    assert_true(sh_s3_bucket_take(&b, t + 100) > 0);
    /* idle time refills only up to the burst */
    t += 100000;
    for (int i = 0; i < 3; i++)
        assert_int_equal(sh_s3_bucket_take(&b, t), 0);
    assert_true(sh_s3_bucket_take(&b, t) > 0);
    /* over a long run the rate holds: 10/s for 10 s gives ~100 tokens */
    int got = 0;
    for (int64_t now = t; now < t + 10000; now += 7)
        while (sh_s3_bucket_take(&b, now) == 0)
            got++;
    assert_true(got >= 99 && got <= 101);
    /* clock going backwards never grants tokens */
    assert_true(sh_s3_bucket_take(&b, t) > 0);
    /* unlimited */
    sh_s3_bucket_init(&b, -1, 0, 0);
    for (int i = 0; i < 100000; i++)
        assert_int_equal(sh_s3_bucket_take(&b, 0), 0);
}

static void test_breaker(void **state)
{
    (void)state;
    sh_s3_breaker_t b;
    sh_s3_breaker_init(&b, 3, 1000, 8000);
    int64_t t = 0;
    /* successes in between reset the count */
    assert_false(sh_s3_breaker_failure(&b, t));
    assert_false(sh_s3_breaker_failure(&b, t));
    assert_false(sh_s3_breaker_success(&b));
    assert_false(sh_s3_breaker_failure(&b, t));
    assert_false(sh_s3_breaker_failure(&b, t));
    assert_true(sh_s3_breaker_allow(&b, t));
    /* the third in a row opens it */
    assert_true(sh_s3_breaker_failure(&b, t));
    assert_int_equal(b.state, SH_S3_BREAKER_OPEN);
    assert_false(sh_s3_breaker_allow(&b, t));
    assert_false(sh_s3_breaker_allow(&b, t + 999));
    /* a request in flight before it opened fails: nothing changes */
    assert_false(sh_s3_breaker_failure(&b, t + 10));
    assert_int_equal(b.open_until_ms, 1000);
    /* after the cooldown exactly one probe goes */
    assert_true(sh_s3_breaker_allow(&b, t + 1000));
    assert_int_equal(b.state, SH_S3_BREAKER_HALF_OPEN);
    assert_false(sh_s3_breaker_allow(&b, t + 1001));
    /* the probe fails: open again, for twice as long */
    assert_true(sh_s3_breaker_failure(&b, 1100));
    assert_int_equal(b.state, SH_S3_BREAKER_OPEN);
    assert_int_equal(b.open_until_ms, 1100 + 2000);
    assert_false(sh_s3_breaker_allow(&b, 3099));
    assert_true(sh_s3_breaker_allow(&b, 3100));
    /* a probe that ends without a verdict lets another one probe */
    sh_s3_breaker_cancel(&b);
    assert_true(sh_s3_breaker_allow(&b, 3100));
    assert_false(sh_s3_breaker_allow(&b, 3100));
    /* failed probes double the pause up to the cap */
    int64_t now = 3100;
    int64_t want[] = {4000, 8000, 8000};
    for (int i = 0; i < 3; i++) {
        assert_true(sh_s3_breaker_failure(&b, now));
        assert_int_equal(b.open_until_ms - now, want[i]);
        now = b.open_until_ms;
        assert_true(sh_s3_breaker_allow(&b, now));
    }
    /* the probe succeeds: closed, and the next opening starts short again */
    assert_true(sh_s3_breaker_success(&b));
    assert_int_equal(b.state, SH_S3_BREAKER_CLOSED);
    assert_true(sh_s3_breaker_allow(&b, now));
    assert_true(sh_s3_breaker_allow(&b, now));
    for (int i = 0; i < 2; i++)
        assert_false(sh_s3_breaker_failure(&b, now));
    assert_true(sh_s3_breaker_failure(&b, now));
    assert_int_equal(b.open_until_ms - now, 1000);

    /* threshold 0: never opens */
    sh_s3_breaker_init(&b, 0, 1000, 1000);
    for (int i = 0; i < 1000; i++)
        assert_false(sh_s3_breaker_failure(&b, 0));
    assert_true(sh_s3_breaker_allow(&b, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_breaker),
    };
    return cmocka_run_group_tests_name("storage_s3_policy", tests, NULL, NULL);
}
