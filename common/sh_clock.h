/*
 * sh_clock.h - monotonic and wall clocks in the units the code uses.
 * Timers run on monotonic milliseconds; Kafka timestamps are wall-clock ms.
 */
#ifndef SH_CLOCK_H
#define SH_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t sh_clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t sh_clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t sh_clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
