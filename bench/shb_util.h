/*
 * shb_util.h - helpers shared by the benchmark programs under bench/:
 * a latency histogram, the monotonic clock, /proc sampling of another
 * process, and a raw ApiVersions probe.
 *
 * Test/bench code only: nothing here is linked into the broker.
 */
#ifndef SHB_UTIL_H
#define SHB_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Microseconds on CLOCK_MONOTONIC. The clock is shared by every process on
 * the host, so a timestamp written by one process can be compared by
 * another (end-to-end latency across producer and consumer processes). */
int64_t shb_now_us(void);

/*
 * Log-linear histogram of non-negative integer values (microseconds here).
 * Values below 2^SHB_HIST_SUB_BITS are exact; above, each power-of-two
 * range is cut into 2^(SHB_HIST_SUB_BITS-1) equal buckets, so a reported
 * percentile is within 1/2^(SHB_HIST_SUB_BITS-1) (0.8%) of the true sample.
 * Fixed size, no allocation, merge by addition: one per thread, merged at
 * the end.
 */
#define SHB_HIST_SUB_BITS 8
#define SHB_HIST_BUCKETS  (64 << (SHB_HIST_SUB_BITS - 1))

typedef struct shb_hist_s {
    uint64_t count;
    uint64_t max;
    uint64_t min;
    uint64_t buckets[SHB_HIST_BUCKETS];
} shb_hist_t;

void     shb_hist_init(shb_hist_t *h);
void     shb_hist_add(shb_hist_t *h, uint64_t v);
void     shb_hist_merge(shb_hist_t *dst, const shb_hist_t *src);
/* Value at percentile p (0 < p <= 100): the smallest recorded bucket whose
 * cumulative count reaches ceil(p/100 * count). 0 when empty. */
uint64_t shb_hist_pct(const shb_hist_t *h, double p);

/* Resource usage of another process (the broker under test). */
typedef struct shb_proc_s {
    pid_t    pid;
    int      ok;           /* 1 when /proc/<pid> was readable at start */
    double   cpu_start_s;  /* utime+stime at shb_proc_start */
    double   cpu_s;        /* consumed between start and stop */
    long     rss_peak_kib; /* VmHWM at stop (reset at start when allowed) */
    int      hwm_reset;    /* 1 when clear_refs reset the peak at start */
} shb_proc_t;

void shb_proc_start(shb_proc_t *p, pid_t pid);
void shb_proc_stop(shb_proc_t *p);

/* Our own process, for the client's share of the CPU. */
double shb_self_cpu_s(void);

/*
 * Ask "host:port" which API keys it serves (ApiVersions v0 over a plain TCP
 * connection, the first request every Kafka client sends). On success
 * fills max_version[key] for key < nkeys (-1 = not served) and returns 0.
 * Returns -1 and writes a reason into err on failure.
 */
int shb_probe_apis(const char *bootstrap, int16_t *max_version, int nkeys,
                   int timeout_ms, char *err, size_t errlen);

#endif
