/*
 * sh_s3_policy.c - retry backoff, token buckets and the circuit breaker of
 * the S3 backend (see sh_s3_policy.h for the reasoning).
 *
 * Thread: the owner's (the loop). Ownership: nothing allocated.
 */
#include "storage/sh_s3_policy.h"

int64_t sh_s3_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t rnd)
{
    if (attempt < 1 || base_ms <= 0 || cap_ms <= 0)
        return 0;
    int64_t ceil = base_ms;
    for (int i = 1; i < attempt && ceil < cap_ms; i++)
        ceil *= 2;
    if (ceil > cap_ms)
        ceil = cap_ms;
    return (int64_t)(rnd % (uint64_t)(ceil + 1));
}

uint64_t sh_s3_rand_next(uint64_t *state)
{
    uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

void sh_s3_bucket_init(sh_s3_bucket_t *b, double rate_per_sec, double burst, int64_t now_ms)
{
    b->rate = rate_per_sec;
    b->burst = burst > 0 ? burst : (rate_per_sec > 1 ? rate_per_sec : 1);
    b->tokens = b->burst;
    b->last_ms = now_ms;
}

int64_t sh_s3_bucket_take(sh_s3_bucket_t *b, int64_t now_ms)
{
    if (b->rate <= 0)
        return 0;
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * b->rate / 1000.0;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->last_ms = now_ms;
    }
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    int64_t wait = (int64_t)((1.0 - b->tokens) * 1000.0 / b->rate) + 1;
    return wait > 0 ? wait : 1;
}

void sh_s3_breaker_init(sh_s3_breaker_t *b, int threshold, int64_t cooldown_ms,
                        int64_t max_cooldown_ms)
{
    b->state = SH_S3_BREAKER_CLOSED;
    b->threshold = threshold;
    b->cooldown_ms = cooldown_ms > 0 ? cooldown_ms : 1;
    b->max_cooldown_ms = max_cooldown_ms >= b->cooldown_ms ? max_cooldown_ms : b->cooldown_ms;
    b->cur_cooldown_ms = b->cooldown_ms;
    b->failures = 0;
    b->open_until_ms = 0;
    b->probe_out = false;
}

bool sh_s3_breaker_allow(sh_s3_breaker_t *b, int64_t now_ms)
{
    switch (b->state) {
    case SH_S3_BREAKER_CLOSED:
        return true;
    case SH_S3_BREAKER_OPEN:
        if (now_ms < b->open_until_ms)
            return false;
        b->state = SH_S3_BREAKER_HALF_OPEN;
        b->probe_out = true;
        return true;
    case SH_S3_BREAKER_HALF_OPEN:
        /* exactly one probe at a time; the rest wait for its verdict */
        if (b->probe_out)
            return false;
        b->probe_out = true;
        return true;
    }
    return true;
}

bool sh_s3_breaker_success(sh_s3_breaker_t *b)
{
    bool changed = b->state != SH_S3_BREAKER_CLOSED;
    b->state = SH_S3_BREAKER_CLOSED;
    b->failures = 0;
    b->probe_out = false;
    b->cur_cooldown_ms = b->cooldown_ms;
    return changed;
}

bool sh_s3_breaker_failure(sh_s3_breaker_t *b, int64_t now_ms)
{
    switch (b->state) {
    case SH_S3_BREAKER_CLOSED:
        if (b->threshold <= 0 || ++b->failures < b->threshold)
            return false;
        b->state = SH_S3_BREAKER_OPEN;
        b->open_until_ms = now_ms + b->cur_cooldown_ms;
        return true;
    case SH_S3_BREAKER_HALF_OPEN:
        /* the probe failed: stay away longer, up to the cap */
        b->cur_cooldown_ms *= 2;
        if (b->cur_cooldown_ms > b->max_cooldown_ms)
            b->cur_cooldown_ms = b->max_cooldown_ms;
        b->state = SH_S3_BREAKER_OPEN;
        b->probe_out = false;
        b->open_until_ms = now_ms + b->cur_cooldown_ms;
        return true;
    case SH_S3_BREAKER_OPEN:
        /* a request that was already in flight when it opened */
        return false;
    }
    return false;
}

void sh_s3_breaker_cancel(sh_s3_breaker_t *b)
{
    if (b->state == SH_S3_BREAKER_HALF_OPEN)
        b->probe_out = false;
}
