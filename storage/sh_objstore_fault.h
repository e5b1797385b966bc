/*
 * sh_objstore_fault.h - a test double that wraps any object store and makes
 * chosen operations fail, so callers (upload pipeline, Fetch, garbage
 * collection) can test their error paths against the real interface.
 *
 * Two kinds of failure, because callers must handle both:
 *  - before: the operation never reaches the store (a refused request);
 *  - after:  the operation runs, then its result is replaced by the error
 *            (a response lost after S3 applied the request: the put object
 *            exists although the caller was told it failed).
 * Failures are delivered asynchronously like real ones: never from inside
 * the *_start call, always from sh_objstore_drive() on the loop thread
 * (pending injected results make sh_objstore_next_deadline_ms() "now").
 *
 * Single-threaded (loop). The wrapper owns the inner store.
 */
#ifndef SH_OBJSTORE_FAULT_H
#define SH_OBJSTORE_FAULT_H

#include "storage/sh_objstore.h"

typedef struct sh_objstore_fault_rule {
    uint64_t skip;           /* let this many operations of the kind through first */
    uint64_t count;          /* then fail this many; 0 = every later one */
    sh_err_t err;            /* e.g. SH_E_IO, SH_E_NOTFOUND */
    bool retriable;
    bool after;              /* run the operation, then report err */
} sh_objstore_fault_rule_t;

/* Wrap `inner` (taken, also on failure). */
sh_err_t sh_objstore_fault_new(sh_objstore_t *inner, sh_objstore_t **out);

/* Set the rule for one kind of operation (replacing any previous one and
 * restarting its count); NULL removes it. SH_E_INVAL if `s` is not a
 * fault wrapper. */
sh_err_t sh_objstore_fault_set(sh_objstore_t *s, sh_objstore_op_t op,
                               const sh_objstore_fault_rule_t *rule);

/* How many operations of a kind were started / failed on purpose. */
uint64_t sh_objstore_fault_seen(const sh_objstore_t *s, sh_objstore_op_t op);
uint64_t sh_objstore_fault_injected(const sh_objstore_t *s, sh_objstore_op_t op);

#endif
