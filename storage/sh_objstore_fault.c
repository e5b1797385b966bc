/*
 * sh_objstore_fault.c - fault-injecting wrapper around another object store
 * (see sh_objstore_fault.h). Tests only; nothing in production opens one.
 *
 * Thread: the loop thread, like any store. Ownership: the wrapper owns the
 * inner store; each operation has one heap sh_fault_op_t holding the
 * caller's callback, freed after the caller's callback returns. Injected
 * "before" failures wait on a FIFO until the next drive.
 */
#include "storage/sh_objstore_fault.h"

#include <stdlib.h>
#include <string.h>

#include "common/sh_clock.h"
#include "storage/sh_objstore_impl.h"

#define SH_FAULT_NOPS (SH_OBJSTORE_LIST + 1)

typedef struct sh_fault_op sh_fault_op_t;

typedef struct sh_objstore_faulty {
    sh_objstore_t base;
    sh_objstore_t *inner;
    bool has_rule[SH_FAULT_NOPS];
    sh_objstore_fault_rule_t rule[SH_FAULT_NOPS];
    uint64_t seen[SH_FAULT_NOPS];       /* since the rule was set */
    uint64_t seen_total[SH_FAULT_NOPS];
    uint64_t injected[SH_FAULT_NOPS];
    sh_fault_op_t *pending_head, *pending_tail;
} sh_objstore_faulty_t;

struct sh_fault_op {
    sh_objstore_faulty_t *fs;
    sh_objstore_op_t kind;
    sh_objstore_cb cb;
    void *arg;
    bool inject;                        /* report err below instead of the result */
    sh_err_t err;
    bool retriable;
    char *key;
    char **keys;                        /* delete_many, for the injected result */
    size_t nkeys;
    /* the other arguments, borrowed only while *_start runs */
    const struct iovec *iov;
    int iovcnt;
    uint64_t off, len;
    const char *token;
    size_t max_keys;
    sh_fault_op_t *next;
};

static const sh_objstore_ops_t sh_fault_ops;

static void sh_fault_op_free(sh_fault_op_t *op)
{
    for (size_t i = 0; i < op->nkeys; i++)
        free(op->keys[i]);
    free(op->keys);
    free(op->key);
    free(op);
}

/* The result a caller sees for an injected failure: no payload at all. */
static void sh_fault_deliver_injected(sh_fault_op_t *op)
{
    sh_err_t *errs = NULL;
    sh_objstore_result_t res = {
        .op = op->kind, .err = op->err, .retriable = op->retriable, .key = op->key};
    if (op->kind == SH_OBJSTORE_DELETE_MANY) {
        errs = calloc(op->nkeys ? op->nkeys : 1, sizeof(*errs));
        if (errs) {
            for (size_t i = 0; i < op->nkeys; i++)
                errs[i] = op->err;
            res.keys = (const char *const *)op->keys;
            res.key_errs = errs;
            res.nkeys = op->nkeys;
        }
    }
    op->fs->injected[op->kind]++;
    sh_objstore_complete(&op->fs->base, op->cb, op->arg, &res);
    free(errs);
}

static void sh_fault_inner_done(void *arg, const sh_objstore_result_t *res)
{
    sh_fault_op_t *op = arg;
    if (op->inject)
        sh_fault_deliver_injected(op);
    else
        sh_objstore_complete(&op->fs->base, op->cb, op->arg, res);
    sh_fault_op_free(op);
}

/* Decide this operation's fate and set up its record. NULL on no memory. */
static sh_fault_op_t *sh_fault_op_new(sh_objstore_t *s, sh_objstore_op_t kind, const char *key,
                                      sh_objstore_cb cb, void *arg)
{
    sh_objstore_faulty_t *fs = (sh_objstore_faulty_t *)s;
    sh_fault_op_t *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->key = strdup(key ? key : "");
    if (!op->key) {
        free(op);
        return NULL;
    }
    op->fs = fs;
    op->kind = kind;
    op->cb = cb;
    op->arg = arg;
    fs->seen_total[kind]++;
    if (fs->has_rule[kind]) {
        const sh_objstore_fault_rule_t *r = &fs->rule[kind];
        uint64_t n = fs->seen[kind]++;
        if (n >= r->skip && (r->count == 0 || n - r->skip < r->count)) {
            op->inject = true;
            op->err = r->err;
            op->retriable = r->retriable;
        }
    }
    return op;
}

/* Either queue the injected failure for the next drive, or pass the
 * operation on (its result possibly replaced afterwards). */
static sh_err_t sh_fault_dispatch(sh_fault_op_t *op, sh_err_t (*pass)(sh_fault_op_t *op))
{
    sh_objstore_faulty_t *fs = op->fs;
    if (op->inject && !fs->rule[op->kind].after) {
        op->next = NULL;
        if (fs->pending_tail)
            fs->pending_tail->next = op;
        else
            fs->pending_head = op;
        fs->pending_tail = op;
        return SH_OK;
    }
    sh_err_t err = pass(op);
    if (err != SH_OK) {
        /* the inner store refused it: so does the wrapper, without a count */
        fs->seen_total[op->kind]--;
        sh_fault_op_free(op);
    }
    return err;
}

static sh_err_t sh_fault_pass_put(sh_fault_op_t *op)
{
    return sh_objstore_put_start(op->fs->inner, op->key, op->iov,
                                 op->iovcnt, sh_fault_inner_done, op);
}

static sh_err_t sh_fault_pass_get(sh_fault_op_t *op)
{
    return sh_objstore_get_range_start(op->fs->inner, op->key, op->off,
                                       op->len, sh_fault_inner_done, op);
}

static sh_err_t sh_fault_pass_head(sh_fault_op_t *op)
{
    return sh_objstore_head_start(op->fs->inner, op->key, sh_fault_inner_done, op);
}

static sh_err_t sh_fault_pass_delete(sh_fault_op_t *op)
{
    return sh_objstore_delete_start(op->fs->inner, op->key, sh_fault_inner_done, op);
}

static sh_err_t sh_fault_pass_delete_many(sh_fault_op_t *op)
{
    return sh_objstore_delete_many_start(op->fs->inner, (const char *const *)op->keys,
                                         op->nkeys, sh_fault_inner_done, op);
}

static sh_err_t sh_fault_pass_list(sh_fault_op_t *op)
{
    return sh_objstore_list_start(op->fs->inner, op->key, op->token,
                                  op->max_keys, sh_fault_inner_done, op);
}

static sh_err_t sh_fault_put_start(sh_objstore_t *s, const char *key, const struct iovec *iov,
                                   int iovcnt, sh_objstore_cb cb, void *arg)
{
    sh_fault_op_t *op = sh_fault_op_new(s, SH_OBJSTORE_PUT, key, cb, arg);
    if (!op)
        return SH_E_NOMEM;
    op->iov = iov;
    op->iovcnt = iovcnt;
    return sh_fault_dispatch(op, sh_fault_pass_put);
}

static sh_err_t sh_fault_get_start(sh_objstore_t *s, const char *key, uint64_t offset,
                                   uint64_t length, sh_objstore_cb cb, void *arg)
{
    sh_fault_op_t *op = sh_fault_op_new(s, SH_OBJSTORE_GET, key, cb, arg);
    if (!op)
        return SH_E_NOMEM;
    op->off = offset;
    op->len = length;
    return sh_fault_dispatch(op, sh_fault_pass_get);
}

static sh_err_t sh_fault_head_start(sh_objstore_t *s, const char *key, sh_objstore_cb cb,
                                    void *arg)
{
    sh_fault_op_t *op = sh_fault_op_new(s, SH_OBJSTORE_HEAD, key, cb, arg);
    return op ? sh_fault_dispatch(op, sh_fault_pass_head) : SH_E_NOMEM;
}

static sh_err_t sh_fault_delete_start(sh_objstore_t *s, const char *key, sh_objstore_cb cb,
                                      void *arg)
{
    sh_fault_op_t *op = sh_fault_op_new(s, SH_OBJSTORE_DELETE, key, cb, arg);
    return op ? sh_fault_dispatch(op, sh_fault_pass_delete) : SH_E_NOMEM;
}

static sh_err_t sh_fault_delete_many_start(sh_objstore_t *s, const char *const *keys,
                                           size_t nkeys, sh_objstore_cb cb, void *arg)
{
    sh_fault_op_t *op = sh_fault_op_new(s, SH_OBJSTORE_DELETE_MANY, NULL, cb, arg);
    if (!op)
        return SH_E_NOMEM;
    op->keys = calloc(nkeys ? nkeys : 1, sizeof(char *));
    if (!op->keys)
        goto fail;
    for (size_t i = 0; i < nkeys; i++) {
        op->nkeys = i + 1;
        if (!(op->keys[i] = strdup(keys[i])))
            goto fail;
    }
    op->nkeys = nkeys;
    return sh_fault_dispatch(op, sh_fault_pass_delete_many);
fail:
    op->fs->seen_total[SH_OBJSTORE_DELETE_MANY]--;
    sh_fault_op_free(op);
    return SH_E_NOMEM;
}

static sh_err_t sh_fault_list_start(sh_objstore_t *s, const char *prefix, const char *token,
                                    size_t max_keys, sh_objstore_cb cb, void *arg)
{
    sh_fault_op_t *op = sh_fault_op_new(s, SH_OBJSTORE_LIST, prefix, cb, arg);
    if (!op)
        return SH_E_NOMEM;
    op->token = token;
    op->max_keys = max_keys;
    return sh_fault_dispatch(op, sh_fault_pass_list);
}

static int sh_fault_fd(const sh_objstore_t *s)
{
    return sh_objstore_fd(((const sh_objstore_faulty_t *)s)->inner);
}

static void sh_fault_drain_pending(sh_objstore_faulty_t *fs)
{
    /* detach first: callbacks may start operations that queue new ones,
     * which then wait for the next drive like any other completion */
    sh_fault_op_t *op = fs->pending_head;
    fs->pending_head = fs->pending_tail = NULL;
    while (op) {
        sh_fault_op_t *next = op->next;
        sh_fault_deliver_injected(op);
        sh_fault_op_free(op);
        op = next;
    }
}

static void sh_fault_drive(sh_objstore_t *s)
{
    sh_objstore_faulty_t *fs = (sh_objstore_faulty_t *)s;
    sh_objstore_drive(fs->inner);
    sh_fault_drain_pending(fs);
}

static int64_t sh_fault_next_deadline_ms(const sh_objstore_t *s)
{
    const sh_objstore_faulty_t *fs = (const sh_objstore_faulty_t *)s;
    if (fs->pending_head)
        return sh_clock_mono_ms(); /* due now */
    return sh_objstore_next_deadline_ms(fs->inner);
}

static void sh_fault_free(sh_objstore_t *s)
{
    sh_objstore_faulty_t *fs = (sh_objstore_faulty_t *)s;
    sh_objstore_free(fs->inner); /* completes its operations through us */
    while (fs->pending_head)
        sh_fault_drain_pending(fs);
    sh_objstore_base_fini(&fs->base);
    free(fs);
}

static const sh_objstore_ops_t sh_fault_ops = {
    .name = "fault",
    .put_start = sh_fault_put_start,
    .get_start = sh_fault_get_start,
    .head_start = sh_fault_head_start,
    .delete_start = sh_fault_delete_start,
    .delete_many_start = sh_fault_delete_many_start,
    .list_start = sh_fault_list_start,
    .fd = sh_fault_fd,
    .drive = sh_fault_drive,
    .next_deadline_ms = sh_fault_next_deadline_ms,
    .free = sh_fault_free,
};

sh_err_t sh_objstore_fault_new(sh_objstore_t *inner, sh_objstore_t **out)
{
    *out = NULL;
    if (!inner)
        return SH_E_INVAL;
    sh_objstore_faulty_t *fs = calloc(1, sizeof(*fs));
    if (!fs || sh_objstore_base_init(&fs->base, &sh_fault_ops, sh_objstore_url(inner)) != SH_OK) {
        free(fs);
        sh_objstore_free(inner);
        return SH_E_NOMEM;
    }
    fs->inner = inner;
    *out = &fs->base;
    return SH_OK;
}

sh_err_t sh_objstore_fault_set(sh_objstore_t *s, sh_objstore_op_t op,
                               const sh_objstore_fault_rule_t *rule)
{
    if (!s || s->ops != &sh_fault_ops || (unsigned)op >= SH_FAULT_NOPS)
        return SH_E_INVAL;
    sh_objstore_faulty_t *fs = (sh_objstore_faulty_t *)s;
    fs->has_rule[op] = rule != NULL;
    if (rule)
        fs->rule[op] = *rule;
    fs->seen[op] = 0;
    return SH_OK;
}

uint64_t sh_objstore_fault_seen(const sh_objstore_t *s, sh_objstore_op_t op)
{
    if (!s || s->ops != &sh_fault_ops || (unsigned)op >= SH_FAULT_NOPS)
        return 0;
    return ((const sh_objstore_faulty_t *)s)->seen_total[op];
}

uint64_t sh_objstore_fault_injected(const sh_objstore_t *s, sh_objstore_op_t op)
{
    if (!s || s->ops != &sh_fault_ops || (unsigned)op >= SH_FAULT_NOPS)
        return 0;
    return ((const sh_objstore_faulty_t *)s)->injected[op];
}
