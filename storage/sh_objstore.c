/*
 * sh_objstore.c - the backend-independent half of the object-store
 * interface: URL dispatch, key and argument checks, in-flight accounting,
 * and the poll helpers tests and tools use instead of an event loop.
 *
 * Thread: the loop thread (whoever drives the store). Ownership: the store
 * is owned by whoever opened it; results belong to the backend.
 */
#include "storage/sh_objstore.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sh_clock.h"
#include "common/sh_log.h"
#include "storage/sh_objstore_impl.h"
#include "storage/sh_objstore_s3.h"

sh_err_t sh_objstore_base_init(sh_objstore_t *s, const sh_objstore_ops_t *ops,
                               const char *url)
{
    s->ops = ops;
    s->inflight = 0;
    s->url = strdup(url);
    return s->url ? SH_OK : SH_E_NOMEM;
}

void sh_objstore_base_fini(sh_objstore_t *s)
{
    free(s->url);
    s->url = NULL;
}

void sh_objstore_complete(sh_objstore_t *s, sh_objstore_cb cb, void *arg,
                          const sh_objstore_result_t *res)
{
    /* count first: a callback that frees the store after its last op, or
     * that checks inflight, must see this op as finished */
    if (s->inflight > 0)
        s->inflight--;
    if (cb)
        cb(arg, res);
}

sh_err_t sh_objstore_open(const char *url, sh_objstore_t **out)
{
    *out = NULL;
    if (!url || !*url) {
        sh_log(SH_LOG_ERROR, "objstore", "object store URL is empty");
        return SH_E_INVAL;
    }
    if (strncmp(url, "s3://", 5) == 0) {
        sh_objstore_s3_options_t o;
        sh_objstore_s3_options_init(&o);
        sh_objstore_s3_options_env(&o);
        return sh_objstore_s3_open(url, &o, out);
    }
    const char *dir = NULL;
    if (strncmp(url, "file://", 7) == 0) {
        const char *rest = url + 7;
        if (strncmp(rest, "localhost/", 10) == 0)
            rest += 9;
        if (rest[0] != '/') {
            /* file://host/path names another machine; file://rel is a
             * common typo for file:rel, and guessing could write data to
             * the wrong place */
            sh_log(SH_LOG_ERROR, "objstore",
                   "invalid object store URL \"%s\": file:// must be followed by an absolute path (file:///dir) or use file:relative/dir",
                   url);
            return SH_E_INVAL;
        }
        dir = rest;
    } else if (strncmp(url, "file:", 5) == 0) {
        dir = url + 5;
    } else if (url[0] == '/' || url[0] == '.') {
        dir = url;
    } else {
        sh_log(SH_LOG_ERROR, "objstore",
               "invalid object store URL \"%s\": expected file:///dir, file:dir or s3://bucket",
               url);
        return SH_E_INVAL;
    }
    if (!*dir) {
        sh_log(SH_LOG_ERROR, "objstore", "invalid object store URL \"%s\": no directory", url);
        return SH_E_INVAL;
    }
    return sh_objstore_local_open(url, dir, out);
}

void sh_objstore_free(sh_objstore_t *s)
{
    if (s)
        s->ops->free(s);
}

const char *sh_objstore_url(const sh_objstore_t *s)
{
    return s->url;
}

static int sh_objstore_ctrl_char(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

sh_err_t sh_objstore_key_check(const char *key)
{
    if (!key)
        return SH_E_INVAL;
    size_t len = strlen(key);
    if (len == 0 || len > SH_OBJSTORE_KEY_MAX)
        return SH_E_INVAL;
    const char *comp = key;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && sh_objstore_ctrl_char((unsigned char)key[i]))
            return SH_E_INVAL;
        if (i == len || key[i] == '/') {
            size_t clen = (size_t)(key + i - comp);
            if (clen == 0)
                return SH_E_INVAL; /* leading '/', "//" or trailing '/' */
            if ((clen == 1 && comp[0] == '.') || (clen == 2 && comp[0] == '.' && comp[1] == '.'))
                return SH_E_INVAL;
            if (clen >= 4 && memcmp(comp, ".sh-", 4) == 0)
                return SH_E_INVAL;
            comp = key + i + 1;
        }
    }
    return SH_OK;
}

static sh_err_t sh_objstore_prefix_check(const char *s)
{
    size_t len = strlen(s);
    if (len > SH_OBJSTORE_KEY_MAX || (len > 0 && s[0] == '/'))
        return SH_E_INVAL;
    for (size_t i = 0; i < len; i++)
        if (sh_objstore_ctrl_char((unsigned char)s[i]))
            return SH_E_INVAL;
    return SH_OK;
}

static sh_err_t sh_objstore_refuse(const char *what, const char *key)
{
    sh_log(SH_LOG_DEBUG, "objstore", "refused %s of invalid key \"%.100s\"", what,
           key ? key : "(null)");
    return SH_E_INVAL;
}

/* Shared tail of every *_start: count the op only once the backend took it. */
static sh_err_t sh_objstore_accepted(sh_objstore_t *s, sh_err_t err)
{
    if (err == SH_OK)
        s->inflight++;
    return err;
}

sh_err_t sh_objstore_put_start(sh_objstore_t *s, const char *key, const struct iovec *iov,
                               int iovcnt, sh_objstore_cb cb, void *arg)
{
    if (sh_objstore_key_check(key) != SH_OK)
        return sh_objstore_refuse("put", key);
    if (iovcnt < 0 || (iovcnt > 0 && !iov))
        return SH_E_INVAL;
    return sh_objstore_accepted(s, s->ops->put_start(s, key, iov, iovcnt, cb, arg));
}

sh_err_t sh_objstore_get_start(sh_objstore_t *s, const char *key, sh_objstore_cb cb, void *arg)
{
    return sh_objstore_get_range_start(s, key, 0, SH_OBJSTORE_TO_END, cb, arg);
}

sh_err_t sh_objstore_get_range_start(sh_objstore_t *s, const char *key, uint64_t offset,
                                     uint64_t length, sh_objstore_cb cb, void *arg)
{
    if (sh_objstore_key_check(key) != SH_OK)
        return sh_objstore_refuse("get", key);
    if (length == 0)
        return SH_E_INVAL;
    return sh_objstore_accepted(s, s->ops->get_start(s, key, offset, length, cb, arg));
}

sh_err_t sh_objstore_head_start(sh_objstore_t *s, const char *key, sh_objstore_cb cb,
                                void *arg)
{
    if (sh_objstore_key_check(key) != SH_OK)
        return sh_objstore_refuse("head", key);
    return sh_objstore_accepted(s, s->ops->head_start(s, key, cb, arg));
}

sh_err_t sh_objstore_delete_start(sh_objstore_t *s, const char *key, sh_objstore_cb cb,
                                  void *arg)
{
    if (sh_objstore_key_check(key) != SH_OK)
        return sh_objstore_refuse("delete", key);
    return sh_objstore_accepted(s, s->ops->delete_start(s, key, cb, arg));
}

sh_err_t sh_objstore_delete_many_start(sh_objstore_t *s, const char *const *keys,
                                       size_t nkeys, sh_objstore_cb cb, void *arg)
{
    if (nkeys > 0 && !keys)
        return SH_E_INVAL;
    for (size_t i = 0; i < nkeys; i++)
        if (sh_objstore_key_check(keys[i]) != SH_OK)
            return sh_objstore_refuse("delete", keys[i]);
    return sh_objstore_accepted(s, s->ops->delete_many_start(s, keys, nkeys, cb, arg));
}

sh_err_t sh_objstore_list_start(sh_objstore_t *s, const char *prefix, const char *token,
                                size_t max_keys, sh_objstore_cb cb, void *arg)
{
    if (!prefix)
        prefix = "";
    if (sh_objstore_prefix_check(prefix) != SH_OK)
        return sh_objstore_refuse("list", prefix);
    if (token && sh_objstore_prefix_check(token) != SH_OK)
        return sh_objstore_refuse("list", token);
    if (max_keys == 0 || max_keys > SH_OBJSTORE_LIST_MAX)
        max_keys = SH_OBJSTORE_LIST_MAX;
    return sh_objstore_accepted(s, s->ops->list_start(s, prefix, token, max_keys, cb, arg));
}

int sh_objstore_fd(const sh_objstore_t *s)
{
    return s->ops->fd(s);
}

void sh_objstore_drive(sh_objstore_t *s)
{
    s->ops->drive(s);
}

int64_t sh_objstore_next_deadline_ms(const sh_objstore_t *s)
{
    return s->ops->next_deadline_ms(s);
}

size_t sh_objstore_inflight(const sh_objstore_t *s)
{
    return s->inflight;
}

void sh_objstore_poll(sh_objstore_t *s, int timeout_ms)
{
    int64_t deadline = sh_objstore_next_deadline_ms(s);
    if (deadline >= 0) {
        int64_t until = deadline - sh_clock_mono_ms();
        if (until < 0)
            until = 0;
        if (timeout_ms < 0 || until < timeout_ms)
            timeout_ms = (int)until;
    }
    struct pollfd p = {.fd = sh_objstore_fd(s), .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno != EINTR)
        sh_log(SH_LOG_WARN, "objstore", "could not poll object store descriptor: %s",
               strerror(errno));
    sh_objstore_drive(s);
}

sh_err_t sh_objstore_wait_idle(sh_objstore_t *s, int timeout_ms)
{
    int64_t end = sh_clock_mono_ms() + timeout_ms;
    while (s->inflight > 0) {
        int64_t left = end - sh_clock_mono_ms();
        if (left <= 0)
            return SH_E_AGAIN;
        sh_objstore_poll(s, left > 100 ? 100 : (int)left);
    }
    return SH_OK;
}

typedef struct sh_objstore_probe {
    bool done;
    bool abandoned;          /* the checker gave up; the callback frees */
    sh_err_t err;
    char detail[512];
} sh_objstore_probe_t;

static void sh_objstore_probe_cb(void *arg, const sh_objstore_result_t *res)
{
    sh_objstore_probe_t *p = arg;
    if (p->abandoned) {
        free(p);
        return;
    }
    p->done = true;
    p->err = res->err;
    snprintf(p->detail, sizeof(p->detail), "%s", res->detail ? res->detail : "");
}

sh_err_t sh_objstore_check(sh_objstore_t *s, int timeout_ms, char *why, size_t whylen)
{
    if (whylen)
        why[0] = '\0';
    sh_objstore_probe_t *p = calloc(1, sizeof(*p));
    if (!p)
        return SH_E_NOMEM;
    sh_err_t err = sh_objstore_list_start(s, "", NULL, 1, sh_objstore_probe_cb, p);
    if (err != SH_OK) {
        snprintf(why, whylen, "could not start a list request: %s", sh_err_str(err));
        free(p);
        return err;
    }
    int64_t end = sh_clock_mono_ms() + timeout_ms;
    while (!p->done) {
        int64_t left = end - sh_clock_mono_ms();
        if (left <= 0)
            break;
        sh_objstore_poll(s, left > 100 ? 100 : (int)left);
    }
    if (!p->done) {
        /* still in flight: its callback (at the latest inside
         * sh_objstore_free) frees the probe */
        p->abandoned = true;
        snprintf(why, whylen, "no answer within %d ms", timeout_ms);
        return SH_E_AGAIN;
    }
    err = p->err;
    if (err != SH_OK)
        snprintf(why, whylen, "%s", p->detail[0] ? p->detail : sh_err_str(err));
    free(p);
    return err;
}
