/*
 * sh_objstore_impl.h - what a backend implements; callers use sh_objstore.h.
 *
 * A backend embeds sh_objstore_t as its first member and fills in the
 * vtable. The generic layer (sh_objstore.c) has already checked keys and
 * arguments when an op is called, and counts in-flight operations: a
 * backend reports every accepted operation through sh_objstore_complete()
 * exactly once, on the driving thread, and never for an op it refused.
 */
#ifndef SH_OBJSTORE_IMPL_H
#define SH_OBJSTORE_IMPL_H

#include "storage/sh_objstore.h"

typedef struct sh_objstore_ops {
    const char *name;
    sh_err_t (*put_start)(sh_objstore_t *s, const char *key, const struct iovec *iov,
                          int iovcnt, sh_objstore_cb cb, void *arg);
    /* length is >= 1 or SH_OBJSTORE_TO_END */
    sh_err_t (*get_start)(sh_objstore_t *s, const char *key, uint64_t offset,
                          uint64_t length, sh_objstore_cb cb, void *arg);
    sh_err_t (*head_start)(sh_objstore_t *s, const char *key, sh_objstore_cb cb, void *arg);
    sh_err_t (*delete_start)(sh_objstore_t *s, const char *key, sh_objstore_cb cb,
                             void *arg);
    sh_err_t (*delete_many_start)(sh_objstore_t *s, const char *const *keys, size_t nkeys,
                                  sh_objstore_cb cb, void *arg);
    /* max_keys already clamped to 1..SH_OBJSTORE_LIST_MAX; token may be NULL */
    sh_err_t (*list_start)(sh_objstore_t *s, const char *prefix, const char *token,
                           size_t max_keys, sh_objstore_cb cb, void *arg);
    int (*fd)(const sh_objstore_t *s);
    void (*drive)(sh_objstore_t *s);
    int64_t (*next_deadline_ms)(const sh_objstore_t *s);
    /* finish outstanding operations (completing them), then free */
    void (*free)(sh_objstore_t *s);
} sh_objstore_ops_t;

struct sh_objstore {
    const sh_objstore_ops_t *ops;
    char *url;            /* owned */
    size_t inflight;      /* loop thread only */
};

/* Set up the base; takes a copy of url. SH_E_NOMEM on failure. */
sh_err_t sh_objstore_base_init(sh_objstore_t *s, const sh_objstore_ops_t *ops,
                               const char *url);
void sh_objstore_base_fini(sh_objstore_t *s);

/* Deliver a result to its callback and count the op finished. */
void sh_objstore_complete(sh_objstore_t *s, sh_objstore_cb cb, void *arg,
                          const sh_objstore_result_t *res);

/* Backend constructors, chosen by sh_objstore_open(). */
sh_err_t sh_objstore_local_open(const char *url, const char *dir, sh_objstore_t **out);

#endif
