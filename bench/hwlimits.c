/*
 * hwlimits.c - the machine's raw limits, measured the same way every time,
 * so each broker figure can be read as a fraction of the hardware.
 *
 *   shbench-hw tcp      [--port P] [--seconds S]
 *       loopback TCP throughput: one sender thread writes 256 KiB buffers
 *       to one receiver thread over 127.0.0.1 for S seconds (default 2);
 *       listens on the first free port of P .. P+9.
 *   shbench-hw fsync    --dir D [--count N] [--size B] [--seconds S]
 *       latency of appending B bytes (default 1024) to a growing file and
 *       fdatasync'ing it, as a write-ahead log does; N appends (default
 *       1000) or S seconds (default 5), whichever ends first.
 *   shbench-hw seqwrite --dir D [--mib M]
 *       sequential write bandwidth with fdatasync after every 1 MiB,
 *       M MiB in total (default 256).
 *
 * Each prints one line "SHBENCH-HW {json}" on stdout. Files are created in
 * D and removed before exit.
 *
 * Threads: tcp uses a receiver thread plus main as the sender; the other
 * modes are single-threaded.
 */
#include "bench/shb_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int         o_port = 59990;
static double      o_seconds = -1;
static const char *o_dir;
static long        o_count = 1000;
static long        o_size = 1024;
static long        o_mib = 256;

static void fail(const char *what)
{
    fprintf(stderr, "shbench-hw: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ---------------------------------------------------------------- tcp */

typedef struct {
    int      lfd;
    uint64_t bytes;
} tcp_rx_t;

static void *tcp_receiver(void *arg)
{
    tcp_rx_t *rx = arg;
    int fd = accept(rx->lfd, NULL, NULL);
    if (fd < 0)
        fail("accept");
    size_t len = 256 << 10;
    char *buf = malloc(len);
    if (!buf)
        fail("malloc");
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n <= 0)
            break;
        rx->bytes += (uint64_t)n;
    }
    free(buf);
    close(fd);
    return NULL;
}

static int run_tcp(void)
{
    double secs = o_seconds > 0 ? o_seconds : 2;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o_port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    /* the port range lies inside the ephemeral range: step over ports
     * that other programs' connections happen to hold */
    int bound = -1;
    for (int i = 0; i < 10 && bound != 0; i++) {
        sin.sin_port = htons((uint16_t)(o_port + i));
        bound = bind(lfd, (struct sockaddr *)&sin, sizeof(sin));
        if (bound != 0 && errno != EADDRINUSE)
            break;
    }
    if (bound != 0)
        fail("bind");
    if (listen(lfd, 1) != 0)
        fail("listen");
    tcp_rx_t rx = { .lfd = lfd };
    pthread_t thr;
    if (pthread_create(&thr, NULL, tcp_receiver, &rx) != 0)
        fail("pthread_create");

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
        fail("connect");
    size_t len = 256 << 10;
    char *buf = malloc(len);
    if (!buf)
        fail("malloc");
    memset(buf, 0x5a, len);
    int64_t t0 = shb_now_us(), end = t0 + (int64_t)(secs * 1e6), now = t0;
    uint64_t sent = 0;
    while ((now = shb_now_us()) < end) {
        ssize_t n = write(fd, buf, len);
        if (n < 0)
            fail("write");
        sent += (uint64_t)n;
    }
    close(fd); /* the receiver sees EOF after draining */
    pthread_join(thr, NULL);
    int64_t t1 = shb_now_us();
    close(lfd);
    free(buf);
    double s = (t1 - t0) / 1e6;
    printf("SHBENCH-HW {\"test\":\"tcp\",\"bytes\":%" PRIu64 ",\"seconds\":%.3f,"
           "\"mib_per_sec\":%.1f,\"gbit_per_sec\":%.2f}\n",
           rx.bytes, s, rx.bytes / s / 1048576.0, rx.bytes * 8 / s / 1e9);
    return rx.bytes == sent ? 0 : 1;
}

/* -------------------------------------------------------------- fsync */

static char *tmp_path(const char *what)
{
    static char path[4096];
    snprintf(path, sizeof(path), "%s/shbench-hw-%s-%d.tmp", o_dir, what, (int)getpid());
    return path;
}

static int run_fsync(void)
{
    double secs = o_seconds > 0 ? o_seconds : 5;
    char *path = tmp_path("fsync");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        fail(path);
    char *buf = malloc((size_t)o_size);
    if (!buf)
        fail("malloc");
    memset(buf, 0xa5, (size_t)o_size);
    shb_hist_t h;
    shb_hist_init(&h);
    int64_t t0 = shb_now_us(), end = t0 + (int64_t)(secs * 1e6);
    for (long i = 0; i < o_count && shb_now_us() < end; i++) {
        int64_t a = shb_now_us();
        if (write(fd, buf, (size_t)o_size) != (ssize_t)o_size)
            fail("write");
        if (fdatasync(fd) != 0)
            fail("fdatasync");
        shb_hist_add(&h, (uint64_t)(shb_now_us() - a));
    }
    close(fd);
    unlink(path);
    free(buf);
    printf("SHBENCH-HW {\"test\":\"fsync\",\"append_bytes\":%ld,\"count\":%" PRIu64 ","
           "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"per_sec\":%.1f}\n",
           o_size, h.count, shb_hist_pct(&h, 50) / 1000.0, shb_hist_pct(&h, 99) / 1000.0,
           h.max / 1000.0, h.count / ((shb_now_us() - t0) / 1e6));
    return 0;
}

/* ----------------------------------------------------------- seqwrite */

static int run_seqwrite(void)
{
    char *path = tmp_path("seq");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        fail(path);
    size_t len = 1 << 20;
    char *buf = malloc(len);
    if (!buf)
        fail("malloc");
    /* not all zeroes, in case the storage compresses or dedups */
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)(i * 2654435761u >> 13);
    int64_t t0 = shb_now_us();
    for (long i = 0; i < o_mib; i++) {
        if (write(fd, buf, len) != (ssize_t)len)
            fail("write");
        if (fdatasync(fd) != 0)
            fail("fdatasync");
    }
    double s = (shb_now_us() - t0) / 1e6;
    close(fd);
    unlink(path);
    free(buf);
    printf("SHBENCH-HW {\"test\":\"seqwrite\",\"mib\":%ld,\"seconds\":%.3f,"
           "\"mib_per_sec\":%.1f}\n", o_mib, s, o_mib / s);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: shbench-hw tcp [--port P] [--seconds S]\n"
"       shbench-hw fsync --dir D [--count N] [--size BYTES] [--seconds S]\n"
"       shbench-hw seqwrite --dir D [--mib M]\n"
"Machine limits for reading benchmark figures (bench/README.md).\n");
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "port", required_argument, 0, 'p' },
        { "seconds", required_argument, 0, 's' },
        { "dir", required_argument, 0, 'd' },
        { "count", required_argument, 0, 'n' },
        { "size", required_argument, 0, 'b' },
        { "mib", required_argument, 0, 'm' },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *test = argv[1];
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "p:s:d:n:b:m:h", lo, NULL)) != -1) {
        switch (c) {
        case 'p': o_port = atoi(optarg); break;
        case 's': o_seconds = atof(optarg); break;
        case 'd': o_dir = optarg; break;
        case 'n': o_count = atol(optarg); break;
        case 'b': o_size = atol(optarg); break;
        case 'm': o_mib = atol(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (o_size < 1 || o_count < 1 || o_mib < 1) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(test, "tcp"))
        return run_tcp();
    if (!o_dir) {
        fprintf(stderr, "shbench-hw: %s needs --dir\n", test);
        return 2;
    }
    if (!strcmp(test, "fsync"))
        return run_fsync();
    if (!strcmp(test, "seqwrite"))
        return run_seqwrite();
    usage(stderr);
    return 2;
}
