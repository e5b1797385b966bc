/*
 * sh_log.c - structured one-line logging (see sh_log.h).
 * Any thread: lines are built in a stack buffer and emitted with one write.
 */
#include "common/sh_log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

sh_log_level_t sh_log_level = SH_LOG_INFO;
static int sh_log_fd = 2;

static const char *const sh_log_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

int sh_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, sh_log_names[i]) == 0)
            return i;
    if (strcasecmp(name, "warning") == 0)
        return SH_LOG_WARN;
    return -1;
}

void sh_log_set_fd(int fd)
{
    sh_log_fd = fd;
}

void sh_log_write(sh_log_level_t level, const char *subsys, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    va_list ap;
    int k;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    k = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s [%s] ",
                 ts.tv_nsec / 1000000, sh_log_names[level], subsys);
    if (k > 0)
        n += (size_t)k;
    va_start(ap, fmt);
    k = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (k > 0)
        n += (size_t)k < sizeof(line) - n - 1 ? (size_t)k : sizeof(line) - n - 2;
    line[n++] = '\n';
    ssize_t w = write(sh_log_fd, line, n);
    (void)w;
}
