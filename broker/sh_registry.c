/*
 * sh_registry.c - the loop thread's copy of the topics and partitions in
 * the metadata store (see sh_registry.h), and the steps that change it.
 *
 * Layout: topics live in two sorted arrays of stable pointers, one by name
 * (binary search for Metadata, Produce, admin APIs; also the iteration
 * order) and one by topic id (Fetch v13+, DeleteTopics v6, Metadata v12).
 * Both hold only live topics: a deleted topic leaves them at once, and
 * stays allocated while an in-flight operation holds a reference.
 *
 * Changes follow one pattern: the caller (an admin handler, or Metadata
 * auto-creation) submits an op whose run executes the metadata writes on
 * the metadata worker, then reads back what it needs (partitions, granted
 * leader epochs, the stored overrides); its done, on the loop, applies the
 * result to the registry, calls the data path's hooks, and then the
 * caller's callback. Because ops run and complete in submission order,
 * the registry always reflects a prefix of the store's history.
 *
 * Thread: loop thread only; sh_registry_load also runs on the startup
 * thread before the loop, and the *_run functions on the metadata worker
 * touch nothing but their op and the store.
 * Ownership: the registry owns topics (one reference each) and their
 * partitions; ops own copies of their arguments and an arena for results.
 */
#include "broker/sh_registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sh_arena.h"
#include "common/sh_clock.h"
#include "common/sh_log.h"

#define ACQUIRE_ATTEMPTS 5

struct sh_registry {
    sh_meta_t *meta;
    const sh_config_t *cfg;
    int32_t node_id;
    sh_registry_hooks_t hooks;
    sh_rtopic_t **by_name;   /* sorted by name (strcmp) */
    sh_rtopic_t **by_id;     /* sorted by id (memcmp) */
    size_t ntopics, cap;
    int ops_inflight;        /* submitted, done not yet run */
};

/* ------------------------------------------------------------- helpers */

static int slice_cmp_str(sh_slice_t a, const char *b)
{
    size_t bl = strlen(b);
    size_t n = a.len < bl ? a.len : bl;
    int c = n ? memcmp(a.ptr, b, n) : 0;
    if (c)
        return c;
    return a.len < bl ? -1 : a.len > bl ? 1 : 0;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

static void overrides_free(sh_meta_config_t *o, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)o[i].key);
        free((char *)o[i].value);
    }
    free(o);
}

/* Heap copy of a list of overrides (values never NULL here). */
static sh_err_t overrides_copy(const sh_meta_config_t *src, size_t n, sh_meta_config_t **out)
{
    *out = NULL;
    if (n == 0)
        return SH_OK;
    sh_meta_config_t *o = calloc(n, sizeof(*o));
    if (!o)
        return SH_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        o[i].key = dup_str(src[i].key);
        o[i].value = dup_str(src[i].value ? src[i].value : "");
        if (!o[i].key || !o[i].value) {
            overrides_free(o, n);
            return SH_E_NOMEM;
        }
    }
    *out = o;
    return SH_OK;
}

/* The effective configuration of a topic: broker defaults, then each
 * stored override. An override the store holds but this build refuses
 * (written by a newer build, or a key since dropped) is logged and left
 * at the default rather than making the topic unloadable. */
static void topic_cfg_resolve(const sh_registry_t *r, sh_rtopic_t *t)
{
    char why[256];
    sh_topic_cfg_defaults(&t->cfg, r->cfg);
    for (size_t i = 0; i < t->noverrides; i++) {
        if (sh_topic_cfg_apply(&t->cfg, r->cfg, t->overrides[i].key, t->overrides[i].value,
                               why, sizeof(why)) != SH_OK)
            sh_log(SH_LOG_WARN, "registry",
                   "topic \"%s\": ignoring stored configuration %s=%s: %s", t->name,
                   t->overrides[i].key, t->overrides[i].value, why);
    }
}

static void topic_free(sh_rtopic_t *t)
{
    for (int32_t i = 0; i < t->partition_count; i++)
        free(t->partitions[i]);
    free(t->partitions);
    overrides_free(t->overrides, t->noverrides);
    free(t->name);
    free(t);
}

void sh_registry_topic_ref(sh_rtopic_t *t)
{
    t->refs++;
}

void sh_registry_topic_unref(sh_rtopic_t *t)
{
    if (t && --t->refs == 0)
        topic_free(t);
}

/* Grow t to `count` partitions (new ones unled until opened). */
static sh_err_t topic_partitions_grow(sh_rtopic_t *t, int32_t count)
{
    if (count <= t->partition_count)
        return SH_OK;
    sh_rpartition_t **np = realloc(t->partitions, (size_t)count * sizeof(*np));
    if (!np)
        return SH_E_NOMEM;
    t->partitions = np;
    for (int32_t i = t->partition_count; i < count; i++) {
        sh_rpartition_t *p = calloc(1, sizeof(*p));
        if (!p) {
            /* keep what was built; the caller frees the topic or retries */
            return SH_E_NOMEM;
        }
        p->topic = t;
        p->index = i;
        p->leader_id = -1;
        p->leader_epoch = -1;
        p->error_code = SH_KERR_LEADER_NOT_AVAILABLE;
        np[i] = p;
        t->partition_count = i + 1;
    }
    return SH_OK;
}

static sh_rtopic_t *topic_new(const char *name, sh_uuid_t id, int64_t created_ms)
{
    sh_rtopic_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->name = dup_str(name);
    if (!t->name) {
        free(t);
        return NULL;
    }
    t->id = id;
    t->created_ms = created_ms;
    t->refs = 1;
    return t;
}

/* ------------------------------------------------------------- indexes */

static size_t index_name_pos(const sh_registry_t *r, sh_slice_t name, bool *found)
{
    size_t lo = 0, hi = r->ntopics;
    *found = false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = slice_cmp_str(name, r->by_name[mid]->name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static size_t index_id_pos(const sh_registry_t *r, sh_uuid_t id, bool *found)
{
    size_t lo = 0, hi = r->ntopics;
    *found = false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(id.b, r->by_id[mid]->id.b, 16);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static sh_err_t index_insert(sh_registry_t *r, sh_rtopic_t *t)
{
    bool found_name, found_id;
    size_t pn = index_name_pos(r, sh_slice_str(t->name), &found_name);
    size_t pi = index_id_pos(r, t->id, &found_id);
    if (found_name || found_id)
        return SH_E_EXISTS;
    if (r->ntopics == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        sh_rtopic_t **a = realloc(r->by_name, cap * sizeof(*a));
        if (!a)
            return SH_E_NOMEM;
        r->by_name = a;
        a = realloc(r->by_id, cap * sizeof(*a));
        if (!a)
            return SH_E_NOMEM;
        r->by_id = a;
        r->cap = cap;
    }
    memmove(&r->by_name[pn + 1], &r->by_name[pn], (r->ntopics - pn) * sizeof(*r->by_name));
    r->by_name[pn] = t;
    memmove(&r->by_id[pi + 1], &r->by_id[pi], (r->ntopics - pi) * sizeof(*r->by_id));
    r->by_id[pi] = t;
    r->ntopics++;
    return SH_OK;
}

static void index_remove(sh_registry_t *r, sh_rtopic_t *t)
{
    bool found;
    size_t pn = index_name_pos(r, sh_slice_str(t->name), &found);
    if (!found || r->by_name[pn] != t)
        return;
    size_t pi = index_id_pos(r, t->id, &found);
    if (!found || r->by_id[pi] != t)
        return;
    memmove(&r->by_name[pn], &r->by_name[pn + 1], (r->ntopics - pn - 1) * sizeof(*r->by_name));
    memmove(&r->by_id[pi], &r->by_id[pi + 1], (r->ntopics - pi - 1) * sizeof(*r->by_id));
    r->ntopics--;
}

/* --------------------------------------------------------------- hooks */

/* Hand partitions [from, t->partition_count) to the data path. A failure
 * leaves that partition listed but unavailable. */
static void partitions_open(sh_registry_t *r, sh_rtopic_t *t, int32_t from)
{
    for (int32_t i = from; i < t->partition_count; i++) {
        sh_rpartition_t *p = t->partitions[i];
        if (p->leader_id != r->node_id)
            continue; /* no leadership: nothing to open */
        if (!r->hooks.partition_open) {
            p->error_code = 0;
            continue;
        }
        sh_err_t err = r->hooks.partition_open(r->hooks.arg, p);
        if (err == SH_OK) {
            p->opened = true;
            p->error_code = 0;
        } else {
            sh_log(SH_LOG_ERROR, "registry",
                   "could not open partition %s-%d (epoch %d): error %d; it stays "
                   "unavailable", t->name, p->index, p->leader_epoch, err);
            p->error_code = SH_KERR_LEADER_NOT_AVAILABLE;
        }
    }
}

static void partitions_close(sh_registry_t *r, sh_rtopic_t *t, bool deleted)
{
    for (int32_t i = 0; i < t->partition_count; i++) {
        sh_rpartition_t *p = t->partitions[i];
        if (p->opened && r->hooks.partition_close)
            r->hooks.partition_close(r->hooks.arg, p, deleted);
        p->opened = false;
        p->log = NULL;
        p->leader_id = -1;
        p->error_code = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
}

/* ------------------------------------------------------------ lifetime */

sh_registry_t *sh_registry_new(sh_meta_t *meta, const sh_config_t *cfg, int32_t node_id)
{
    sh_registry_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->meta = meta;
    r->cfg = cfg;
    r->node_id = node_id;
    return r;
}

void sh_registry_free(sh_registry_t *r)
{
    if (!r)
        return;
    if (r->ops_inflight)
        sh_log(SH_LOG_WARN, "registry",
               "%d metadata operations still pending at shutdown (close the "
               "metadata store first)", r->ops_inflight);
    for (size_t i = 0; i < r->ntopics; i++) {
        sh_rtopic_t *t = r->by_name[i];
        partitions_close(r, t, false);
        t->deleting = true;
        sh_registry_topic_unref(t);
    }
    free(r->by_name);
    free(r->by_id);
    free(r);
}

void sh_registry_set_hooks(sh_registry_t *r, const sh_registry_hooks_t *hooks)
{
    if (hooks)
        r->hooks = *hooks;
    else
        memset(&r->hooks, 0, sizeof(r->hooks));
}

sh_meta_t *sh_registry_meta(sh_registry_t *r)
{
    return r->meta;
}

int32_t sh_registry_node_id(const sh_registry_t *r)
{
    return r->node_id;
}

const sh_config_t *sh_registry_config(const sh_registry_t *r)
{
    return r->cfg;
}

/* ------------------------------------------------------------- lookups */

sh_rtopic_t *sh_registry_find(sh_registry_t *r, sh_slice_t name)
{
    bool found;
    if (!name.ptr)
        return NULL;
    size_t i = index_name_pos(r, name, &found);
    return found ? r->by_name[i] : NULL;
}

sh_rtopic_t *sh_registry_find_id(sh_registry_t *r, sh_uuid_t id)
{
    bool found;
    size_t i = index_id_pos(r, id, &found);
    return found ? r->by_id[i] : NULL;
}

sh_rpartition_t *sh_registry_partition(sh_registry_t *r, sh_slice_t topic, int32_t index)
{
    sh_rtopic_t *t = sh_registry_find(r, topic);
    if (!t || index < 0 || index >= t->partition_count)
        return NULL;
    return t->partitions[index];
}

size_t sh_registry_topics(sh_registry_t *r, sh_rtopic_t ***out)
{
    *out = r->by_name;
    return r->ntopics;
}

/* ------------------------------------------------- leadership (worker) */

/*
 * Take leadership of tp for node: a compare-and-set on the epoch last
 * read. SH_E_FENCED means someone moved between our read and our write:
 * read again and retry, a few times. Runs wherever blocking is allowed
 * (startup, the metadata worker); touches only the store.
 */
static sh_err_t partition_take(sh_meta_t *m, sh_meta_tp_t tp, int32_t node, int32_t epoch_seen,
                               int32_t *new_epoch)
{
    sh_err_t err = SH_E_FENCED;
    for (int attempt = 0; attempt < ACQUIRE_ATTEMPTS && err == SH_E_FENCED; attempt++) {
        if (attempt > 0) {
            sh_meta_partition_t p;
            err = sh_meta_partition_get(m, tp, &p);
            if (err != SH_OK)
                return err;
            epoch_seen = p.leader_epoch;
        }
        int64_t now = sh_clock_wall_ms();
        err = sh_meta_partition_acquire(m, tp, node, epoch_seen, now, now + SH_REGISTRY_LEASE_MS,
                                        new_epoch);
    }
    return err;
}

/* Leadership results for a range of partitions, filled on the worker. */
typedef struct {
    int32_t epoch;
    sh_err_t err;
} take_result_t;

static void take_range(sh_meta_t *m, sh_uuid_t id, const sh_meta_partition_t *parts,
                       size_t nparts, int32_t from, int32_t to, int32_t node,
                       take_result_t *out)
{
    for (int32_t i = from; i < to; i++) {
        take_result_t *tr = &out[i - from];
        int32_t seen = -1;
        /* partition_list is ordered by index, but do not rely on it */
        for (size_t k = 0; k < nparts; k++)
            if (parts[k].partition == i)
                seen = parts[k].leader_epoch;
        sh_meta_tp_t tp = {.topic_id = id, .partition = i};
        tr->err = partition_take(m, tp, node, seen, &tr->epoch);
    }
}

static void apply_takes(sh_registry_t *r, sh_rtopic_t *t, int32_t from,
                        const take_result_t *res)
{
    for (int32_t i = from; i < t->partition_count; i++) {
        sh_rpartition_t *p = t->partitions[i];
        const take_result_t *tr = &res[i - from];
        if (tr->err == SH_OK) {
            p->leader_id = r->node_id;
            p->leader_epoch = tr->epoch;
            p->error_code = 0;
        } else {
            sh_log(SH_LOG_WARN, "registry",
                   "could not take leadership of %s-%d: %s (error %d); it stays "
                   "unavailable", t->name, i,
                   tr->err == SH_E_AGAIN ? "another broker holds its lease" : "metadata error",
                   tr->err);
            p->leader_id = -1;
            p->error_code = SH_KERR_LEADER_NOT_AVAILABLE;
        }
    }
}

/* ---------------------------------------------------- async op plumbing */

typedef struct reg_op reg_op_t;
struct reg_op {
    sh_meta_op_t op;                 /* first member */
    sh_registry_t *r;
    void (*apply)(reg_op_t *o);      /* loop: update registry, call back */
    sh_arena_t arena;                /* arguments and results read back on the worker */
    sh_rtopic_t *topic;              /* one reference, when the op concerns a topic */
    int32_t node_id;                 /* copied: the worker reads only the op */
    sh_registry_done_fn cb;
    void *cb_arg;
};

static void reg_op_done(sh_meta_op_t *op)
{
    reg_op_t *o = (reg_op_t *)op;
    o->r->ops_inflight--;
    o->apply(o);
}

int sh_registry_pending(const sh_registry_t *r)
{
    return r->ops_inflight;
}

/* The end of every change op: the caller's callback, then the op's own
 * reference and memory go. */
static void reg_op_finish(reg_op_t *o, sh_err_t err, sh_rtopic_t *t)
{
    if (o->cb)
        o->cb(o->cb_arg, err, t);
    sh_registry_topic_unref(o->topic);
    sh_arena_fini(&o->arena);
    free(o);
}

/* A change op of `size` bytes (a struct starting with reg_op_t). */
static reg_op_t *reg_op_new(size_t size, sh_rtopic_t *t, sh_registry_done_fn cb, void *arg)
{
    reg_op_t *o = calloc(1, size);
    if (!o)
        return NULL;
    sh_arena_init(&o->arena, 4096);
    o->cb = cb;
    o->cb_arg = arg;
    if (t) {
        o->topic = t;
        sh_registry_topic_ref(t);
    }
    return o;
}

/* Undo reg_op_new when the submit failed: no callback. */
static void reg_op_discard(reg_op_t *o)
{
    sh_registry_topic_unref(o->topic);
    sh_arena_fini(&o->arena);
    free(o);
}

static sh_err_t reg_op_submit(sh_registry_t *r, reg_op_t *o,
                              sh_err_t (*run)(sh_meta_t *, sh_meta_op_t *),
                              void (*apply)(reg_op_t *))
{
    o->r = r;
    o->node_id = r->node_id;
    o->op.run = run;
    o->op.done = reg_op_done;
    o->apply = apply;
    sh_err_t err = sh_meta_submit(r->meta, &o->op);
    if (err == SH_OK)
        r->ops_inflight++;
    return err;
}

/* -------------------------------------------------- drop (deletion, 2) */

/*
 * Second half of a deletion, after the topic was marked deleting and left
 * the registry: remove it from the store (chunks, partitions, configs,
 * group offsets, the topic row) and hand the segment objects that no
 * longer hold a live chunk to the data path for deletion. If the drop
 * fails the topic stays "deleting" in the store and the next start
 * resumes it; if nobody purges the objects they stay listed by
 * sh_meta_objects_unreferenced().
 */
typedef struct {
    reg_op_t base;
    sh_uuid_t id;
    char name[SH_META_TOPIC_NAME_MAX + 1];
    sh_meta_object_t *freed;
    size_t nfreed;
} drop_op_t;

static sh_err_t drop_run(sh_meta_t *m, sh_meta_op_t *op)
{
    drop_op_t *d = (drop_op_t *)op;
    return sh_meta_topic_drop(m, d->id, &d->base.arena, &d->freed, &d->nfreed);
}

static void drop_apply(reg_op_t *o)
{
    drop_op_t *d = (drop_op_t *)o;
    sh_registry_t *r = o->r;
    sh_err_t err = o->op.err;
    if (err != SH_OK && err != SH_KERR_UNKNOWN_TOPIC_ID) {
        sh_log(SH_LOG_WARN, "registry",
               "could not drop deleted topic \"%s\" from the metadata store (error %d); "
               "it stays marked for deletion until the next start", d->name, err);
    } else if (d->nfreed == 0) {
        sh_log(SH_LOG_INFO, "registry", "topic \"%s\" deleted", d->name);
    } else if (r->hooks.objects_purge) {
        const char **keys = sh_arena_calloc(&o->arena, d->nfreed, sizeof(*keys));
        if (keys) {
            for (size_t i = 0; i < d->nfreed; i++)
                keys[i] = d->freed[i].object_key;
            r->hooks.objects_purge(r->hooks.arg, keys, d->nfreed);
        }
        sh_log(SH_LOG_INFO, "registry", "topic \"%s\" deleted; %zu segment objects to purge",
               d->name, d->nfreed);
    } else {
        sh_log(SH_LOG_INFO, "registry",
               "topic \"%s\" deleted; %zu segment objects left for a later sweep "
               "(no purge hook)", d->name, d->nfreed);
    }
    reg_op_finish(o, err, NULL);
}

static sh_err_t drop_submit(sh_registry_t *r, sh_uuid_t id, const char *name)
{
    drop_op_t *d = (drop_op_t *)reg_op_new(sizeof(*d), NULL, NULL, NULL);
    if (!d)
        return SH_E_NOMEM;
    d->id = id;
    snprintf(d->name, sizeof(d->name), "%s", name);
    sh_err_t err = reg_op_submit(r, &d->base, drop_run, drop_apply);
    if (err != SH_OK)
        reg_op_discard(&d->base);
    return err;
}

/* --------------------------------------------------------------- create */

typedef struct {
    reg_op_t base;
    char *name;                      /* in base.arena */
    int32_t partitions;
    sh_meta_config_t *configs;       /* in base.arena */
    size_t nconfigs;
    /* results */
    sh_uuid_t id;
    int64_t created_ms;
    take_result_t *takes;            /* partitions entries */
    sh_meta_config_t *stored;
    size_t nstored;
} create_op_t;

static sh_err_t create_run(sh_meta_t *m, sh_meta_op_t *op)
{
    create_op_t *c = (create_op_t *)op;
    sh_meta_partition_t *parts = NULL;
    size_t nparts = 0;
    c->created_ms = sh_clock_wall_ms();
    sh_err_t err = sh_meta_topic_create(m, c->name, c->partitions, c->configs, c->nconfigs,
                                        c->created_ms, &c->id);
    if (err != SH_OK)
        return err;
    /* The topic exists from here on, whatever happens next: a failure to
     * read back or take leadership leaves partitions unavailable, never
     * the creation unreported. */
    c->takes = sh_arena_calloc(&c->base.arena, (size_t)c->partitions, sizeof(*c->takes));
    if (!c->takes)
        return SH_OK;
    if (sh_meta_partition_list(m, c->id, &c->base.arena, &parts, &nparts) != SH_OK)
        nparts = 0;
    take_range(m, c->id, parts, nparts, 0, c->partitions, c->base.node_id, c->takes);
    if (sh_meta_topic_configs_get(m, c->id, &c->base.arena, &c->stored, &c->nstored) != SH_OK) {
        /* what we asked for is what was stored */
        c->stored = c->configs;
        c->nstored = c->nconfigs;
    }
    return SH_OK;
}

static void create_apply(reg_op_t *o)
{
    create_op_t *c = (create_op_t *)o;
    sh_registry_t *r = o->r;
    sh_err_t err = o->op.err;
    sh_rtopic_t *t = NULL;
    if (err != SH_OK)
        goto out;
    err = SH_E_NOMEM;
    t = topic_new(c->name, c->id, c->created_ms);
    if (!t || overrides_copy(c->stored, c->nstored, &t->overrides) != SH_OK)
        goto fail;
    t->noverrides = c->nstored;
    topic_cfg_resolve(r, t);
    if (topic_partitions_grow(t, c->partitions) != SH_OK)
        goto fail;
    if (c->takes)
        apply_takes(r, t, 0, c->takes);
    if ((err = index_insert(r, t)) != SH_OK)
        goto fail;
    partitions_open(r, t, 0);
    sh_log(SH_LOG_INFO, "registry", "created topic \"%s\" with %d partitions", t->name,
           t->partition_count);
    err = SH_OK;
    goto out;
fail:
    /* Stored but not served until the next start reloads it. */
    sh_log(SH_LOG_ERROR, "registry",
           "topic \"%s\" was created in the metadata store but could not be added to the "
           "registry (error %d); it is served after a restart", c->name, err);
    if (t)
        topic_free(t);
    t = NULL;
out:
    reg_op_finish(o, err, t);
}

sh_err_t sh_registry_topic_create(sh_registry_t *r, sh_slice_t name, int32_t partitions,
                                  const sh_meta_config_t *configs, size_t nconfigs,
                                  sh_registry_done_fn cb, void *arg)
{
    if (!name.ptr || name.len > SH_META_TOPIC_NAME_MAX || partitions <= 0)
        return SH_E_INVAL;
    create_op_t *c = (create_op_t *)reg_op_new(sizeof(*c), NULL, cb, arg);
    if (!c)
        return SH_E_NOMEM;
    sh_arena_t *a = &c->base.arena;
    c->name = sh_arena_strndup(a, (const char *)name.ptr, name.len);
    c->partitions = partitions;
    if (nconfigs) {
        c->configs = sh_arena_calloc(a, nconfigs, sizeof(*c->configs));
        if (!c->configs)
            goto nomem;
        for (size_t i = 0; i < nconfigs; i++) {
            c->configs[i].key = sh_arena_strndup(a, configs[i].key, strlen(configs[i].key));
            c->configs[i].value =
                sh_arena_strndup(a, configs[i].value, strlen(configs[i].value));
            if (!c->configs[i].key || !c->configs[i].value)
                goto nomem;
        }
        c->nconfigs = nconfigs;
    }
    if (!c->name)
        goto nomem;
    sh_err_t err = reg_op_submit(r, &c->base, create_run, create_apply);
    if (err != SH_OK)
        reg_op_discard(&c->base);
    return err;
nomem:
    reg_op_discard(&c->base);
    return SH_E_NOMEM;
}

/* --------------------------------------------------- delete (step one) */

static sh_err_t delete_run(sh_meta_t *m, sh_meta_op_t *op)
{
    reg_op_t *o = (reg_op_t *)op;
    return sh_meta_topic_mark_deleting(m, o->topic->id);
}

static void delete_apply(reg_op_t *o)
{
    sh_registry_t *r = o->r;
    sh_rtopic_t *t = o->topic;
    sh_err_t err = o->op.err;
    if (err == SH_KERR_UNKNOWN_TOPIC_ID || (err == SH_OK && t->deleting)) {
        /* another request deleted it first */
        err = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    } else if (err == SH_OK) {
        index_remove(r, t);
        t->deleting = true;
        partitions_close(r, t, true);
        sh_log(SH_LOG_INFO, "registry", "topic \"%s\" marked for deletion", t->name);
        /* Submitted before the caller answers, so anything the client
         * sends after the answer (re-creating the name) runs after the
         * drop. */
        if (drop_submit(r, t->id, t->name) != SH_OK)
            sh_log(SH_LOG_WARN, "registry",
                   "could not queue the drop of topic \"%s\"; the next start resumes it",
                   t->name);
        sh_registry_topic_unref(t); /* the registry's own reference */
    }
    reg_op_finish(o, err, t);
}

sh_err_t sh_registry_topic_delete(sh_registry_t *r, sh_rtopic_t *t, sh_registry_done_fn cb,
                                  void *arg)
{
    if (!t || t->deleting)
        return SH_E_INVAL;
    reg_op_t *o = reg_op_new(sizeof(*o), t, cb, arg);
    if (!o)
        return SH_E_NOMEM;
    sh_err_t err = reg_op_submit(r, o, delete_run, delete_apply);
    if (err != SH_OK)
        reg_op_discard(o);
    return err;
}

/* ------------------------------------------------------- add partitions */

typedef struct {
    reg_op_t base;
    sh_uuid_t id;
    int32_t new_count;
    int32_t from;                    /* the count before, read on the worker */
    take_result_t *takes;            /* new_count - from entries */
} parts_op_t;

static sh_err_t parts_run(sh_meta_t *m, sh_meta_op_t *op)
{
    parts_op_t *p = (parts_op_t *)op;
    sh_meta_topic_t mt;
    sh_meta_partition_t *parts = NULL;
    size_t nparts = 0;
    /* The count now, not when the request was decoded: an earlier add of
     * the same topic may have run since, and its partitions are taken. */
    sh_err_t err = sh_meta_topic_get_by_id(m, p->id, &p->base.arena, &mt);
    if (err != SH_OK)
        return err;
    if (mt.state == SH_META_TOPIC_DELETING)
        return SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    p->from = mt.partition_count;
    err = sh_meta_topic_partitions_add(m, p->id, p->new_count);
    if (err != SH_OK)
        return err;
    p->takes = sh_arena_calloc(&p->base.arena, (size_t)(p->new_count - p->from),
                               sizeof(*p->takes));
    if (!p->takes)
        return SH_OK;
    if (sh_meta_partition_list(m, p->id, &p->base.arena, &parts, &nparts) != SH_OK)
        nparts = 0;
    take_range(m, p->id, parts, nparts, p->from, p->new_count, p->base.node_id, p->takes);
    return SH_OK;
}

static void parts_apply(reg_op_t *o)
{
    parts_op_t *p = (parts_op_t *)o;
    sh_registry_t *r = o->r;
    sh_rtopic_t *t = o->topic;
    sh_err_t err = o->op.err;
    if (err == SH_KERR_UNKNOWN_TOPIC_ID || (err == SH_OK && t->deleting)) {
        err = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
        goto out;
    }
    if (err != SH_OK)
        goto out;
    if (t->partition_count != p->from)
        sh_log(SH_LOG_WARN, "registry", "topic \"%s\" had %d partitions in the registry and %d "
                                        "in the metadata store", t->name, t->partition_count,
               p->from);
    int32_t from = t->partition_count;
    if (topic_partitions_grow(t, p->new_count) != SH_OK) {
        sh_log(SH_LOG_ERROR, "registry", "out of memory adding partitions to \"%s\"; served "
                                         "after a restart", t->name);
        err = SH_E_NOMEM;
        goto out;
    }
    for (int32_t i = from; i < t->partition_count; i++) {
        int32_t k = i - p->from;
        take_result_t tr = {.err = SH_E_NOMEM};
        if (p->takes && k >= 0 && k < p->new_count - p->from)
            tr = p->takes[k];
        sh_rpartition_t *rp = t->partitions[i];
        if (tr.err == SH_OK) {
            rp->leader_id = r->node_id;
            rp->leader_epoch = tr.epoch;
            rp->error_code = 0;
        } else {
            sh_log(SH_LOG_WARN, "registry", "could not take leadership of %s-%d (error %d)",
                   t->name, i, tr.err);
        }
    }
    partitions_open(r, t, from);
    sh_log(SH_LOG_INFO, "registry", "topic \"%s\" now has %d partitions", t->name,
           t->partition_count);
out:
    reg_op_finish(o, err, t);
}

sh_err_t sh_registry_partitions_add(sh_registry_t *r, sh_rtopic_t *t, int32_t new_count,
                                    sh_registry_done_fn cb, void *arg)
{
    if (!t || t->deleting || new_count <= 0)
        return SH_E_INVAL;
    parts_op_t *p = (parts_op_t *)reg_op_new(sizeof(*p), t, cb, arg);
    if (!p)
        return SH_E_NOMEM;
    p->id = t->id;
    p->new_count = new_count;
    sh_err_t err = reg_op_submit(r, &p->base, parts_run, parts_apply);
    if (err != SH_OK)
        reg_op_discard(&p->base);
    return err;
}

/* -------------------------------------------------------- alter configs */

typedef struct {
    reg_op_t base;
    sh_uuid_t id;
    sh_meta_config_t *changes;       /* in base.arena */
    size_t n;
    int replace_all;
    sh_meta_config_t *stored;        /* read back after the change */
    size_t nstored;
} alter_op_t;

static sh_err_t alter_run(sh_meta_t *m, sh_meta_op_t *op)
{
    alter_op_t *a = (alter_op_t *)op;
    sh_err_t err = sh_meta_topic_configs_alter(m, a->id, a->changes, a->n, a->replace_all);
    if (err != SH_OK)
        return err;
    return sh_meta_topic_configs_get(m, a->id, &a->base.arena, &a->stored, &a->nstored);
}

static void alter_apply(reg_op_t *o)
{
    alter_op_t *a = (alter_op_t *)o;
    sh_registry_t *r = o->r;
    sh_rtopic_t *t = o->topic;
    sh_err_t err = o->op.err;
    if (err == SH_KERR_UNKNOWN_TOPIC_ID || (err == SH_OK && t->deleting)) {
        err = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
        goto out;
    }
    if (err != SH_OK)
        goto out;
    sh_meta_config_t *copy = NULL;
    if (overrides_copy(a->stored, a->nstored, &copy) != SH_OK) {
        sh_log(SH_LOG_ERROR, "registry", "out of memory applying new configuration of \"%s\"; "
                                         "it takes effect after a restart", t->name);
        err = SH_E_NOMEM;
        goto out;
    }
    overrides_free(t->overrides, t->noverrides);
    t->overrides = copy;
    t->noverrides = a->nstored;
    topic_cfg_resolve(r, t);
    if (r->hooks.config_changed)
        r->hooks.config_changed(r->hooks.arg, t);
    sh_log(SH_LOG_INFO, "registry", "topic \"%s\" configuration changed (%zu overrides)",
           t->name, t->noverrides);
out:
    reg_op_finish(o, err, t);
}

sh_err_t sh_registry_configs_alter(sh_registry_t *r, sh_rtopic_t *t,
                                   const sh_meta_config_t *changes, size_t n, bool replace_all,
                                   sh_registry_done_fn cb, void *arg)
{
    if (!t || t->deleting)
        return SH_E_INVAL;
    alter_op_t *a = (alter_op_t *)reg_op_new(sizeof(*a), t, cb, arg);
    if (!a)
        return SH_E_NOMEM;
    sh_arena_t *ar = &a->base.arena;
    a->id = t->id;
    a->replace_all = replace_all ? 1 : 0;
    if (n) {
        a->changes = sh_arena_calloc(ar, n, sizeof(*a->changes));
        if (!a->changes)
            goto nomem;
        for (size_t i = 0; i < n; i++) {
            a->changes[i].key = sh_arena_strndup(ar, changes[i].key, strlen(changes[i].key));
            if (!a->changes[i].key)
                goto nomem;
            if (changes[i].value) {
                a->changes[i].value =
                    sh_arena_strndup(ar, changes[i].value, strlen(changes[i].value));
                if (!a->changes[i].value)
                    goto nomem;
            }
        }
        a->n = n;
    }
    sh_err_t err = reg_op_submit(r, &a->base, alter_run, alter_apply);
    if (err != SH_OK)
        reg_op_discard(&a->base);
    return err;
nomem:
    reg_op_discard(&a->base);
    return SH_E_NOMEM;
}

/* ----------------------------------------------------------------- load */

/* Build one live topic from the store and take its partitions (startup). */
static sh_err_t load_topic(sh_registry_t *r, const sh_meta_topic_t *mt)
{
    sh_arena_t arena, *a = &arena;
    sh_meta_config_t *cfgs = NULL;
    sh_meta_partition_t *parts = NULL;
    size_t ncfgs = 0, nparts = 0;
    take_result_t *takes = NULL;
    sh_rtopic_t *t = NULL;

    sh_arena_init(a, 4096);
    sh_err_t err = sh_meta_topic_configs_get(r->meta, mt->topic_id, a, &cfgs, &ncfgs);
    if (err != SH_OK)
        goto fail;
    err = sh_meta_partition_list(r->meta, mt->topic_id, a, &parts, &nparts);
    if (err != SH_OK)
        goto fail;
    err = SH_E_NOMEM;
    t = topic_new(mt->name, mt->topic_id, mt->created_ms);
    if (!t)
        goto fail;
    if (overrides_copy(cfgs, ncfgs, &t->overrides) != SH_OK)
        goto fail;
    t->noverrides = ncfgs;
    topic_cfg_resolve(r, t);
    if (topic_partitions_grow(t, mt->partition_count) != SH_OK)
        goto fail;
    if (mt->partition_count > 0) {
        takes = calloc((size_t)mt->partition_count, sizeof(*takes));
        if (!takes)
            goto fail;
        take_range(r->meta, t->id, parts, nparts, 0, mt->partition_count, r->node_id, takes);
        apply_takes(r, t, 0, takes);
    }
    err = index_insert(r, t);
    if (err != SH_OK)
        goto fail;
    partitions_open(r, t, 0);
    free(takes);
    sh_arena_fini(a);
    return SH_OK;
fail:
    free(takes);
    if (t)
        topic_free(t);
    sh_arena_fini(a);
    return err;
}

sh_err_t sh_registry_load(sh_registry_t *r)
{
    sh_arena_t a;
    sh_meta_topic_t *topics = NULL;
    size_t n = 0, live = 0, parts = 0;
    sh_arena_init(&a, 16384);

    sh_err_t err = sh_meta_topic_list(r->meta, &a, &topics, &n);
    if (err != SH_OK) {
        sh_log(SH_LOG_ERROR, "registry", "could not list topics from the metadata store "
                                         "(error %d)", err);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const sh_meta_topic_t *mt = &topics[i];
        if (mt->state == SH_META_TOPIC_DELETING) {
            sh_log(SH_LOG_INFO, "registry", "resuming deletion of topic \"%s\"", mt->name);
            err = drop_submit(r, mt->topic_id, mt->name);
            if (err != SH_OK)
                goto out;
            continue;
        }
        err = load_topic(r, mt);
        if (err != SH_OK) {
            sh_log(SH_LOG_ERROR, "registry", "could not load topic \"%s\" (error %d)",
                   mt->name, err);
            goto out;
        }
        live++;
        parts += (size_t)mt->partition_count;
    }
    sh_log(SH_LOG_INFO, "registry", "loaded %zu topics with %zu partitions led by node %d",
           live, parts, r->node_id);
    err = SH_OK;
out:
    sh_arena_fini(&a);
    return err;
}

/* ------------------------------------------------------ admin helpers */

typedef struct {
    sh_slice_t name;
    size_t index;
} name_ref_t;

static int name_ref_cmp_name(const name_ref_t *x, const name_ref_t *y)
{
    size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    int c = n ? memcmp(x->name.ptr, y->name.ptr, n) : 0;
    if (c)
        return c;
    return x->name.len < y->name.len ? -1 : x->name.len > y->name.len ? 1 : 0;
}

/* By name, then position, so each run of equal names starts with the
 * first mention. */
static int name_ref_cmp(const void *a, const void *b)
{
    const name_ref_t *x = a, *y = b;
    int c = name_ref_cmp_name(x, y);
    if (c)
        return c;
    return x->index < y->index ? -1 : x->index > y->index ? 1 : 0;
}

static sh_err_t names_mark(sh_arena_t *a, const sh_slice_t *names, size_t n, bool *mark,
                           bool first_too)
{
    if (n == 0)
        return SH_OK;
    memset(mark, 0, n * sizeof(*mark));
    name_ref_t *refs = sh_arena_calloc(a, n, sizeof(*refs));
    if (!refs)
        return SH_E_NOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (names[i].ptr)
            refs[m++] = (name_ref_t){names[i], i};
    qsort(refs, m, sizeof(*refs), name_ref_cmp);
    for (size_t i = 1; i < m; i++)
        if (name_ref_cmp_name(&refs[i - 1], &refs[i]) == 0) {
            mark[refs[i].index] = true;
            if (first_too)
                mark[refs[i - 1].index] = true;
        }
    return SH_OK;
}

sh_err_t sh_registry_names_dups(sh_arena_t *a, const sh_slice_t *names, size_t n, bool *dup)
{
    return names_mark(a, names, n, dup, true);
}

sh_err_t sh_registry_names_repeats(sh_arena_t *a, const sh_slice_t *names, size_t n,
                                   bool *later)
{
    return names_mark(a, names, n, later, false);
}

/* ------------------------------------------------- sh_topics_t adapter */

static void view_fill(const sh_registry_t *r, sh_rtopic_t *t, sh_partition_view_t *pv,
                      sh_topic_view_t *out)
{
    (void)r;
    out->name = sh_slice_str(t->name);
    out->topic_id = t->id;
    out->is_internal = false;
    out->partition_count = t->partition_count;
    out->partitions = pv;
    for (int32_t i = 0; i < t->partition_count; i++) {
        const sh_rpartition_t *p = t->partitions[i];
        pv[i].partition_index = p->index;
        pv[i].leader_id = p->error_code ? -1 : p->leader_id;
        pv[i].leader_epoch = p->leader_epoch;
        pv[i].error_code = p->error_code;
    }
}

static sh_err_t view_one(sh_registry_t *r, sh_rtopic_t *t, sh_arena_t *arena,
                         sh_topic_view_t *out)
{
    sh_partition_view_t *pv = NULL;
    if (t->partition_count > 0) {
        pv = sh_arena_calloc(arena, (size_t)t->partition_count, sizeof(*pv));
        if (!pv)
            return SH_E_NOMEM;
    }
    view_fill(r, t, pv, out);
    return SH_OK;
}

static sh_err_t reg_topics_list(void *ctx, sh_arena_t *arena, sh_topic_view_t **out,
                                int32_t *count)
{
    sh_registry_t *r = ctx;
    *out = NULL;
    *count = 0;
    if (r->ntopics == 0)
        return SH_OK;
    sh_topic_view_t *v = sh_arena_calloc(arena, r->ntopics, sizeof(*v));
    if (!v)
        return SH_E_NOMEM;
    for (size_t i = 0; i < r->ntopics; i++)
        if (view_one(r, r->by_name[i], arena, &v[i]) != SH_OK)
            return SH_E_NOMEM;
    *out = v;
    *count = (int32_t)r->ntopics;
    return SH_OK;
}

static sh_err_t reg_topics_find(void *ctx, sh_arena_t *arena, sh_slice_t name,
                                sh_topic_view_t *out)
{
    sh_registry_t *r = ctx;
    sh_rtopic_t *t = sh_registry_find(r, name);
    if (!t)
        return SH_E_NOTFOUND;
    return view_one(r, t, arena, out);
}

static sh_err_t reg_topics_find_id(void *ctx, sh_arena_t *arena, sh_uuid_t id,
                                   sh_topic_view_t *out)
{
    sh_registry_t *r = ctx;
    sh_rtopic_t *t = sh_registry_find_id(r, id);
    if (!t)
        return SH_E_NOTFOUND;
    return view_one(r, t, arena, out);
}

const sh_topics_ops_t sh_registry_topics_ops = {
    .list = reg_topics_list,
    .find = reg_topics_find,
    .find_id = reg_topics_find_id,
};
