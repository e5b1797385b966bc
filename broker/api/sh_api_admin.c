/*
 * sh_api_admin.c - helpers shared by the topic and config admin handlers
 * (see sh_api_admin.h). Loop thread only; what they return lives in the
 * request's arena and is freed with it.
 */
#include <stdarg.h>
#include <stdio.h>

#include "broker/api/sh_api_admin.h"
#include "common/sh_arena.h"

sh_slice_t sh_api_msgf(sh_request_t *req, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return SH_SLICE_NULL;
    if ((size_t)n >= sizeof(buf))
        n = sizeof(buf) - 1;
    char *s = sh_arena_strndup(&req->arena, buf, (size_t)n);
    return s ? (sh_slice_t){(const uint8_t *)s, (size_t)n} : SH_SLICE_NULL;
}
