/*
 * sh_s3_policy.h - how the S3 backend treats a struggling endpoint:
 * retry delays (exponential backoff with full jitter), request rates
 * (token buckets per operation class) and a circuit breaker.
 *
 * All three are plain state machines over a caller-supplied monotonic
 * time in milliseconds and, for jitter, a caller-supplied random number,
 * so tests drive them with a fake clock and fixed "randomness".
 *
 * Thread: whoever owns the structure (the loop). Ownership: embedded by
 * value; nothing to free.
 */
#ifndef SH_S3_POLICY_H
#define SH_S3_POLICY_H

#include <stdbool.h>
#include <stdint.h>

/* --------------------------------------------------------------- backoff */

/* Delay before retry number `attempt` (1 = first retry): a uniformly
 * random value in [0, min(cap_ms, base_ms * 2^(attempt-1))], drawn from
 * `rnd` (any 64-bit random value). Full jitter spreads the retries of
 * many clients that failed together, so they do not return together. */
int64_t sh_s3_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t rnd);

/* xorshift64* step: cheap, good enough for jitter; never use for keys. */
uint64_t sh_s3_rand_next(uint64_t *state);

/* ---------------------------------------------------------- token bucket */

typedef struct sh_s3_bucket {
    double rate;        /* tokens per second; <= 0 means unlimited */
    double burst;       /* capacity */
    double tokens;
    int64_t last_ms;
} sh_s3_bucket_t;

/* A full bucket of `burst` tokens (burst <= 0: one second's worth). */
void sh_s3_bucket_init(sh_s3_bucket_t *b, double rate_per_sec, double burst, int64_t now_ms);

/* Take one token: 0 if taken, else the milliseconds until one will be
 * there (nothing is taken). */
int64_t sh_s3_bucket_take(sh_s3_bucket_t *b, int64_t now_ms);

/* ------------------------------------------------------- circuit breaker */

typedef enum sh_s3_breaker_state {
    SH_S3_BREAKER_CLOSED,     /* requests flow */
    SH_S3_BREAKER_OPEN,       /* failing: refuse until open_until_ms */
    SH_S3_BREAKER_HALF_OPEN,  /* one probe request in flight decides */
} sh_s3_breaker_state_t;

typedef struct sh_s3_breaker {
    sh_s3_breaker_state_t state;
    int threshold;            /* consecutive failures that open it; <= 0: never */
    int64_t cooldown_ms;      /* first open period */
    int64_t max_cooldown_ms;  /* cap for the doubling after failed probes */
    int64_t cur_cooldown_ms;
    int failures;             /* consecutive, while closed */
    int64_t open_until_ms;
    bool probe_out;           /* half-open: the probe has been let through */
} sh_s3_breaker_t;

void sh_s3_breaker_init(sh_s3_breaker_t *b, int threshold, int64_t cooldown_ms,
                        int64_t max_cooldown_ms);

/* May a request go now? true lets it through (in half-open state that
 * request becomes the probe); false means fail it fast. */
bool sh_s3_breaker_allow(sh_s3_breaker_t *b, int64_t now_ms);

/* Report a request's outcome. A failure is a transport error, a timeout,
 * a 5xx or throttling: the endpoint's health, not the request's validity.
 * Each returns true when the state changed (worth a log line). */
bool sh_s3_breaker_success(sh_s3_breaker_t *b);
bool sh_s3_breaker_failure(sh_s3_breaker_t *b, int64_t now_ms);
/* A request that was let through ended without telling anything about the
 * endpoint (failed locally, cancelled): in half-open state the next
 * request may probe instead. */
void sh_s3_breaker_cancel(sh_s3_breaker_t *b);

#endif
