/*
 * shb_util.c - histogram, clock, /proc sampling and the ApiVersions probe
 * used by the benchmark programs (see shb_util.h).
 *
 * Threading: a histogram belongs to one thread at a time (each producer
 * and consumer thread keeps its own and they are merged after the threads
 * are joined). The /proc and probe helpers are called from the main thread.
 * Nothing here allocates memory that outlives a call.
 */
#include "bench/shb_util.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int64_t shb_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------------- histogram */

#define SUB_HALF (1u << (SHB_HIST_SUB_BITS - 1))

static unsigned hist_index(uint64_t v)
{
    if (v < (1u << SHB_HIST_SUB_BITS))
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned e = msb - (SHB_HIST_SUB_BITS - 1);
    return e * SUB_HALF + (unsigned)(v >> e);
}

/* Middle of the bucket: the error is at most half a bucket either way. */
static uint64_t hist_value(unsigned idx)
{
    if (idx < (1u << SHB_HIST_SUB_BITS))
        return idx;
    unsigned e = idx / SUB_HALF - 1;
    uint64_t sub = idx - (uint64_t)e * SUB_HALF;
    return (sub << e) + ((1ull << e) >> 1);
}

void shb_hist_init(shb_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

void shb_hist_add(shb_hist_t *h, uint64_t v)
{
    h->buckets[hist_index(v)]++;
    h->count++;
    if (v > h->max)
        h->max = v;
    if (v < h->min)
        h->min = v;
}

void shb_hist_merge(shb_hist_t *dst, const shb_hist_t *src)
{
    for (unsigned i = 0; i < SHB_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    if (src->max > dst->max)
        dst->max = src->max;
    if (src->min < dst->min)
        dst->min = src->min;
}

uint64_t shb_hist_pct(const shb_hist_t *h, double p)
{
    if (h->count == 0)
        return 0;
    if (p >= 100.0)
        return h->max;
    uint64_t rank = (uint64_t)((p / 100.0) * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < SHB_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i);
            /* never report beyond what was actually observed */
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

/* --------------------------------------------------------------------- /proc */

static int read_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

/* utime + stime of pid in seconds, -1 when unreadable. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (read_file(path, buf, sizeof(buf)) != 0)
        return -1;
    /* the command name may contain spaces and parentheses: skip past the
     * last ')' and count fields from there (field 3 is the state) */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    unsigned long long ut = 0, st = 0;
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 14)
            ut = strtoull(tok, NULL, 10);
        else if (field == 15) {
            st = strtoull(tok, NULL, 10);
            break;
        }
    }
    if (field != 15)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(ut + st) / (double)(hz > 0 ? hz : 100);
}

static long proc_status_kib(pid_t pid, const char *key)
{
    char path[64], buf[8192];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if (read_file(path, buf, sizeof(buf)) != 0)
        return -1;
    size_t klen = strlen(key);
    for (char *line = buf; line && *line; ) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':')
            return strtol(line + klen + 1, NULL, 10);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return -1;
}

void shb_proc_start(shb_proc_t *p, pid_t pid)
{
    memset(p, 0, sizeof(*p));
    p->pid = pid;
    p->rss_peak_kib = -1;
    p->cpu_s = -1;
    if (pid <= 0)
        return;
    p->cpu_start_s = proc_cpu_s(pid);
    p->ok = p->cpu_start_s >= 0;
    /* "5" resets VmHWM to the current RSS (Linux >= 4.0), so the peak we
     * read at the end belongs to this run only. Needs the same owner. */
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)pid);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        p->hwm_reset = write(fd, "5", 1) == 1;
        close(fd);
    }
}

void shb_proc_stop(shb_proc_t *p)
{
    if (!p->ok)
        return;
    double now = proc_cpu_s(p->pid);
    if (now >= 0)
        p->cpu_s = now - p->cpu_start_s;
    p->rss_peak_kib = proc_status_kib(p->pid, "VmHWM");
}

double shb_self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ------------------------------------------------------------------- probe */

static int io_wait(int fd, short ev, int64_t deadline_us)
{
    int64_t left = (deadline_us - shb_now_us()) / 1000;
    if (left <= 0)
        return -1;
    struct pollfd pfd = { .fd = fd, .events = ev };
    int r = poll(&pfd, 1, (int)left);
    return r == 1 ? 0 : -1;
}

static int connect_to(const char *bootstrap, int64_t deadline_us, char *err, size_t errlen)
{
    char host[256];
    const char *first_end = strchr(bootstrap, ',');
    size_t blen = first_end ? (size_t)(first_end - bootstrap) : strlen(bootstrap);
    const char *colon = memrchr(bootstrap, ':', blen);
    if (!colon || blen >= sizeof(host)) {
        snprintf(err, errlen, "bad bootstrap address \"%s\"", bootstrap);
        return -1;
    }
    size_t hlen = (size_t)(colon - bootstrap);
    memcpy(host, bootstrap, hlen);
    host[hlen] = '\0';
    char port[16];
    snprintf(port, sizeof(port), "%.*s", (int)(blen - hlen - 1), colon + 1);

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "could not resolve \"%s\": %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        freeaddrinfo(ai);
        return -1;
    }
    rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc != 0 && errno != EINPROGRESS)
        goto fail;
    if (rc != 0) {
        if (io_wait(fd, POLLOUT, deadline_us) != 0) {
            errno = ETIMEDOUT;
            goto fail;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr != 0) {
            errno = soerr;
            goto fail;
        }
    }
    return fd;
fail:
    snprintf(err, errlen, "could not connect to %s: %s", bootstrap, strerror(errno));
    close(fd);
    return -1;
}

static int read_full(int fd, uint8_t *buf, size_t len, int64_t deadline_us)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0)
            return -1;
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        if (io_wait(fd, POLLIN, deadline_us) != 0)
            return -1;
    }
    return 0;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

int shb_probe_apis(const char *bootstrap, int16_t *max_version, int nkeys,
                   int timeout_ms, char *err, size_t errlen)
{
    int64_t deadline = shb_now_us() + (int64_t)timeout_ms * 1000;
    uint8_t *resp = NULL;
    int fd = connect_to(bootstrap, deadline, err, errlen);
    if (fd < 0)
        return -1;

    /* ApiVersions v0: size, api_key 18, api_version 0, correlation id,
     * client id (int16 length + bytes). Every broker version serves v0. */
    static const char client_id[] = "shbench-probe";
    uint8_t req[4 + 2 + 2 + 4 + 2 + sizeof(client_id) - 1];
    uint32_t body = (uint32_t)sizeof(req) - 4;
    uint8_t *w = req;
    *w++ = (uint8_t)(body >> 24); *w++ = (uint8_t)(body >> 16);
    *w++ = (uint8_t)(body >> 8);  *w++ = (uint8_t)body;
    *w++ = 0; *w++ = 18;          /* ApiVersions */
    *w++ = 0; *w++ = 0;           /* version 0 */
    *w++ = 0; *w++ = 0; *w++ = 0x5b; *w++ = 0x17; /* correlation id */
    *w++ = 0; *w++ = (uint8_t)(sizeof(client_id) - 1);
    memcpy(w, client_id, sizeof(client_id) - 1);

    size_t off = 0;
    while (off < sizeof(req)) {
        ssize_t n = write(fd, req + off, sizeof(req) - off);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR) &&
            io_wait(fd, POLLOUT, deadline) == 0)
            continue;
        snprintf(err, errlen, "could not send ApiVersions to %s: %s", bootstrap,
                 n < 0 ? strerror(errno) : "short write");
        goto fail;
    }

    uint8_t hdr[4];
    if (read_full(fd, hdr, 4, deadline) != 0) {
        snprintf(err, errlen, "no ApiVersions response from %s (connection closed or timed out)",
                 bootstrap);
        goto fail;
    }
    uint32_t rlen = be32(hdr);
    if (rlen < 10 || rlen > (1u << 20)) {
        snprintf(err, errlen, "ApiVersions response from %s has implausible size %u",
                 bootstrap, rlen);
        goto fail;
    }
    resp = malloc(rlen);
    if (!resp || read_full(fd, resp, rlen, deadline) != 0) {
        snprintf(err, errlen, "truncated ApiVersions response from %s", bootstrap);
        goto fail;
    }
    if (be32(resp) != 0x5b17) {
        snprintf(err, errlen, "ApiVersions response from %s has wrong correlation id", bootstrap);
        goto fail;
    }
    int16_t ec = (int16_t)be16(resp + 4);
    if (ec != 0) {
        snprintf(err, errlen, "ApiVersions v0 to %s failed with error code %d", bootstrap, ec);
        goto fail;
    }
    uint32_t n = be32(resp + 6);
    if ((uint64_t)n * 6 > rlen - 10) {
        snprintf(err, errlen, "ApiVersions response from %s: %u entries do not fit in %u bytes",
                 bootstrap, n, rlen);
        goto fail;
    }
    for (int k = 0; k < nkeys; k++)
        max_version[k] = -1;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = resp + 10 + 6 * i;
        int16_t key = (int16_t)be16(e);
        if (key >= 0 && key < nkeys)
            max_version[key] = (int16_t)be16(e + 4);
    }
    free(resp);
    close(fd);
    return 0;
fail:
    free(resp);
    close(fd);
    return -1;
}
