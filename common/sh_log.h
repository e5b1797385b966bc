/*
 * sh_log.h - one line per event: time, level, subsystem, message.
 *
 * The level is checked before any formatting so a disabled debug line costs
 * one comparison. Messages follow PostgreSQL's style: lower case, no final
 * period, quoted names (`could not fsync "%s": %s`). Thread-safe: each line
 * is formatted into a local buffer and written with one write(2).
 */
#ifndef SH_LOG_H
#define SH_LOG_H

#include <stdarg.h>

typedef enum {
    SH_LOG_ERROR = 0,
    SH_LOG_WARN = 1,
    SH_LOG_INFO = 2,
    SH_LOG_DEBUG = 3,
} sh_log_level_t;

extern sh_log_level_t sh_log_level;

/* Parse "error", "warn", "info", "debug"; returns -1 if unknown. */
int sh_log_level_parse(const char *name);

/* Redirect output to fd (default 2, stderr). */
void sh_log_set_fd(int fd);

void sh_log_write(sh_log_level_t level, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define sh_log(level, subsys, ...)                                             \
    do {                                                                       \
        if ((level) <= sh_log_level)                                           \
            sh_log_write((level), (subsys), __VA_ARGS__);                      \
    } while (0)

#endif
