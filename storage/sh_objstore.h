/*
 * sh_objstore.h - the object-store interface: where segment objects live.
 *
 * One vtable, several backends chosen by URL scheme (file://, s3://), so
 * callers never know which one they talk to. Every operation is
 * asynchronous: a *_start call either refuses the request at once (returns
 * non-zero, the callback never runs) or accepts it (returns SH_OK) and then
 * completes it exactly once through its callback, which runs on the thread
 * that calls sh_objstore_drive() - the loop thread.
 *
 * Loop integration follows libcurl/libpq: watch sh_objstore_fd() for
 * readability, call sh_objstore_drive() when it fires or when the monotonic
 * clock passes sh_objstore_next_deadline_ms(). A backend that needs several
 * sockets (S3 over curl multi) hides them behind one epoll descriptor, which
 * is itself pollable, so the loop always watches exactly one fd per store.
 *
 * Semantics every backend provides (checked by tests/unit/test_storage_objstore.c):
 *  - put is atomic: readers see the previous object or the whole new one,
 *    never a prefix; a put reported successful survives a crash.
 *  - get of a missing key, head of a missing key: SH_E_NOTFOUND.
 *  - ranged get returns bytes [offset, min(offset+length, size)); an offset
 *    at or past the end (of a non-empty object) fails with SH_E_INVAL, like
 *    S3's 416. Callers needing an exact range check block->size.
 *  - delete of a missing key succeeds (S3 cannot tell the difference).
 *  - list returns keys in byte order, at most max_keys per page, with an
 *    opaque continuation token for the next page (NULL on the last page).
 *  - failures are SH_E_IO (logged with the key and cause) with `retriable`
 *    saying whether trying again later may succeed.
 *
 * Keys (sh_objstore_key_check): 1..1024 bytes, no control characters, no
 * leading '/', no empty, "." or ".." components, and no component starting
 * with ".sh-" (reserved for a backend's own files). The same rule holds for
 * every backend so a key valid on one is valid on all.
 *
 * Ownership: key, prefix and token strings are copied by *_start. A put's
 * payload bytes (the iovecs' memory) are borrowed until its callback runs;
 * the iovec array itself is copied. Everything in a result is valid only
 * during the callback; keep a get's block with sh_block_ref().
 */
#ifndef SH_OBJSTORE_H
#define SH_OBJSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/sh_err.h"
#include "common/sh_slice.h"

typedef struct sh_objstore sh_objstore_t;

#define SH_OBJSTORE_KEY_MAX 1024          /* bytes, as S3 */
#define SH_OBJSTORE_LIST_MAX 1000         /* keys per list page, as S3 */
#define SH_OBJSTORE_TO_END UINT64_MAX     /* ranged-get length: to the end */

typedef enum sh_objstore_op {
    SH_OBJSTORE_PUT,
    SH_OBJSTORE_GET,
    SH_OBJSTORE_HEAD,
    SH_OBJSTORE_DELETE,
    SH_OBJSTORE_DELETE_MANY,
    SH_OBJSTORE_LIST,
} sh_objstore_op_t;

typedef struct sh_objstore_entry {
    const char *key;
    uint64_t size;
    int64_t mtime_ms;            /* wall clock, as S3's LastModified */
} sh_objstore_entry_t;

/* What a callback receives; every pointer inside is valid for the call only. */
typedef struct sh_objstore_result {
    sh_objstore_op_t op;
    sh_err_t err;                /* SH_OK, SH_E_NOTFOUND, SH_E_INVAL, SH_E_IO, ... */
    bool retriable;              /* a later retry may succeed (throttling, timeouts) */
    const char *key;             /* the operation's key; list: the prefix */
    const char *detail;          /* failure cause for logs (e.g. S3's code and
                                    message), or NULL */

    /* get */
    sh_block_t *block;           /* the bytes read; borrowed, sh_block_ref to keep */
    uint64_t offset;             /* where the bytes start in the object */

    /* get and head */
    uint64_t object_size;        /* whole object size */
    int64_t mtime_ms;            /* head: last modification, wall clock ms */

    /* delete_many: per-key outcome, in request order; err is the first failure */
    const char *const *keys;
    const sh_err_t *key_errs;
    size_t nkeys;

    /* list */
    const sh_objstore_entry_t *entries;
    size_t nentries;
    const char *next_token;      /* pass to the next list call; NULL when done */
} sh_objstore_result_t;

typedef void (*sh_objstore_cb)(void *arg, const sh_objstore_result_t *res);

/*
 * Open a store by URL:
 *   file:///abs/dir, file:/abs/dir  local directory (absolute)
 *   file:rel/dir, file:./rel/dir    local directory relative to the cwd
 *   /abs/dir, ./rel/dir             bare paths, same as file:
 *   s3://bucket/prefix              S3 or compatible; endpoint, region and
 *                                   credentials from the AWS_* environment
 *                                   (storage/sh_objstore_s3.h has the open
 *                                   function that takes them as options)
 * The local directory is created if missing. SH_E_INVAL for a malformed URL.
 */
sh_err_t sh_objstore_open(const char *url, sh_objstore_t **out);

/* Startup probe: list at most one key, waiting up to timeout_ms (driving
 * the store itself, so call it before the store joins a loop). SH_OK when
 * the store answers; otherwise the error, with a one-line cause in why
 * (wrong credentials, missing bucket, unreachable endpoint, ...). */
sh_err_t sh_objstore_check(sh_objstore_t *s, int timeout_ms, char *why, size_t whylen);

/* Finish in-flight operations (their callbacks run from inside this call,
 * on the calling thread) and release the store. NULL is a no-op. */
void sh_objstore_free(sh_objstore_t *s);

/* The URL the store was opened with (for logs). */
const char *sh_objstore_url(const sh_objstore_t *s);

/* SH_OK if `key` is acceptable to every backend, else SH_E_INVAL. */
sh_err_t sh_objstore_key_check(const char *key);

/* Store iov[0..iovcnt) as the whole object `key`, replacing any old one.
 * The iovecs' bytes are borrowed until the callback runs. */
sh_err_t sh_objstore_put_start(sh_objstore_t *s, const char *key, const struct iovec *iov,
                               int iovcnt, sh_objstore_cb cb, void *arg);

/* Read the whole object. */
sh_err_t sh_objstore_get_start(sh_objstore_t *s, const char *key, sh_objstore_cb cb,
                               void *arg);

/* Read `length` bytes (SH_OBJSTORE_TO_END for the rest) from `offset`.
 * length 0 is refused with SH_E_INVAL. */
sh_err_t sh_objstore_get_range_start(sh_objstore_t *s, const char *key, uint64_t offset,
                                     uint64_t length, sh_objstore_cb cb, void *arg);

/* Size and modification time without reading the bytes. */
sh_err_t sh_objstore_head_start(sh_objstore_t *s, const char *key, sh_objstore_cb cb,
                                void *arg);

sh_err_t sh_objstore_delete_start(sh_objstore_t *s, const char *key, sh_objstore_cb cb,
                                  void *arg);

/* Delete several keys in one request (S3 DeleteObjects; the S3 backend
 * splits at 1000). All keys are checked first: one bad key refuses all. */
sh_err_t sh_objstore_delete_many_start(sh_objstore_t *s, const char *const *keys,
                                       size_t nkeys, sh_objstore_cb cb, void *arg);

/* One page of keys starting with `prefix` ("" for all), in byte order.
 * `token` is NULL for the first page, else the previous page's next_token.
 * max_keys 0 means SH_OBJSTORE_LIST_MAX; larger values are capped to it. */
sh_err_t sh_objstore_list_start(sh_objstore_t *s, const char *prefix, const char *token,
                                size_t max_keys, sh_objstore_cb cb, void *arg);

/* Loop integration. */
int sh_objstore_fd(const sh_objstore_t *s);
void sh_objstore_drive(sh_objstore_t *s);
/* Absolute sh_clock_mono_ms() time at which drive must run even without
 * fd activity, or -1 when no timer is pending. */
int64_t sh_objstore_next_deadline_ms(const sh_objstore_t *s);

/* Operations accepted and not yet completed. */
size_t sh_objstore_inflight(const sh_objstore_t *s);

/* For tests and tools without an event loop: wait up to timeout_ms for the
 * fd or the next deadline, then drive once. */
void sh_objstore_poll(sh_objstore_t *s, int timeout_ms);

/* Poll until no operation is in flight; SH_E_AGAIN if timeout_ms passes
 * first (a safety bound, not a performance expectation). */
sh_err_t sh_objstore_wait_idle(sh_objstore_t *s, int timeout_ms);

#endif
