/*
 * sh_cache.c - byte-limited LRU of object byte ranges (see sh_cache.h).
 *
 * Thread: the loop thread only; no locks. Ownership: the cache owns one
 * block reference per entry, a copy of each object key, and its tables;
 * references handed out by sh_cache_get belong to the caller.
 *
 * Structure: a chained hash table of objects (one per key), each with a
 * list of its cached ranges sorted by offset; every range is also on one
 * global LRU list (head = most recently used) that eviction takes from the
 * tail of.
 */
#include "storage/sh_cache.h"

#include <stdlib.h>
#include <string.h>

typedef struct sh_cache_obj sh_cache_obj_t;

typedef struct sh_cache_entry {
    sh_cache_obj_t *obj;
    uint64_t offset;
    sh_block_t *block;                       /* bytes [offset, offset + block->size) */
    struct sh_cache_entry *lru_prev, *lru_next;
    struct sh_cache_entry *obj_prev, *obj_next;
} sh_cache_entry_t;

struct sh_cache_obj {
    sh_cache_obj_t *hnext;                   /* hash chain */
    uint64_t hash;
    sh_cache_entry_t *ranges;                /* sorted by offset */
    char key[];
};

struct sh_cache {
    sh_cache_obj_t **buckets;
    size_t nbuckets;                         /* power of two */
    sh_cache_entry_t *lru_head, *lru_tail;
    sh_cache_stats_t st;
};

static uint64_t sh_cache_hash(const char *key)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

sh_cache_t *sh_cache_new(size_t limit_bytes)
{
    sh_cache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->nbuckets = 64;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    c->st.limit = limit_bytes;
    return c;
}

static sh_cache_obj_t *sh_cache_obj_find(const sh_cache_t *c, const char *key, uint64_t h)
{
    for (sh_cache_obj_t *o = c->buckets[h & (c->nbuckets - 1)]; o; o = o->hnext)
        if (o->hash == h && strcmp(o->key, key) == 0)
            return o;
    return NULL;
}

static void sh_cache_grow(sh_cache_t *c)
{
    size_t n = c->nbuckets * 2;
    sh_cache_obj_t **nb = calloc(n, sizeof(*nb));
    if (!nb)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < c->nbuckets; i++) {
        sh_cache_obj_t *o = c->buckets[i];
        while (o) {
            sh_cache_obj_t *next = o->hnext;
            o->hnext = nb[o->hash & (n - 1)];
            nb[o->hash & (n - 1)] = o;
            o = next;
        }
    }
    free(c->buckets);
    c->buckets = nb;
    c->nbuckets = n;
}

static void sh_cache_obj_remove(sh_cache_t *c, sh_cache_obj_t *o)
{
    sh_cache_obj_t **pp = &c->buckets[o->hash & (c->nbuckets - 1)];
    while (*pp != o)
        pp = &(*pp)->hnext;
    *pp = o->hnext;
    c->st.objects--;
    free(o);
}

static void sh_cache_lru_unlink(sh_cache_t *c, sh_cache_entry_t *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        c->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void sh_cache_lru_push(sh_cache_t *c, sh_cache_entry_t *e)
{
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = e;
    else
        c->lru_tail = e;
    c->lru_head = e;
}

/* Drop one range; its object goes too when it was the last one. */
static void sh_cache_entry_drop(sh_cache_t *c, sh_cache_entry_t *e)
{
    sh_cache_obj_t *o = e->obj;
    sh_cache_lru_unlink(c, e);
    if (e->obj_prev)
        e->obj_prev->obj_next = e->obj_next;
    else
        o->ranges = e->obj_next;
    if (e->obj_next)
        e->obj_next->obj_prev = e->obj_prev;
    c->st.bytes -= e->block->size;
    c->st.entries--;
    /* a Fetch holding its own reference keeps the bytes alive */
    sh_block_unref(e->block);
    free(e);
    if (!o->ranges)
        sh_cache_obj_remove(c, o);
}

static void sh_cache_evict_to(sh_cache_t *c, size_t limit)
{
    while (c->st.bytes > limit && c->lru_tail) {
        sh_cache_entry_drop(c, c->lru_tail);
        c->st.evictions++;
    }
}

void sh_cache_free(sh_cache_t *c)
{
    if (!c)
        return;
    while (c->lru_tail)
        sh_cache_entry_drop(c, c->lru_tail);
    free(c->buckets);
    free(c);
}

static int sh_cache_covers(const sh_cache_entry_t *e, uint64_t off, uint64_t len)
{
    return off >= e->offset && off - e->offset <= e->block->size &&
           len <= e->block->size - (off - e->offset);
}

sh_err_t sh_cache_put(sh_cache_t *c, const char *key, uint64_t offset, sh_block_t *block)
{
    if (!key || !block || block->size == 0 || offset > UINT64_MAX - block->size)
        return SH_E_INVAL;
    if (block->size > c->st.limit) {
        c->st.rejected++;
        return SH_OK;
    }
    uint64_t len = block->size;
    uint64_t h = sh_cache_hash(key);
    sh_cache_obj_t *o = sh_cache_obj_find(c, key, h);
    if (o) {
        for (sh_cache_entry_t *e = o->ranges; e && e->offset <= offset; e = e->obj_next) {
            if (sh_cache_covers(e, offset, len)) {
                /* already cached; the put shows the range is wanted */
                sh_cache_lru_unlink(c, e);
                sh_cache_lru_push(c, e);
                return SH_OK;
            }
        }
    }
    sh_cache_entry_t *ne = calloc(1, sizeof(*ne));
    if (!ne)
        return SH_E_NOMEM;
    if (!o) {
        size_t klen = strlen(key);
        o = calloc(1, sizeof(*o) + klen + 1);
        if (!o) {
            free(ne);
            return SH_E_NOMEM;
        }
        memcpy(o->key, key, klen + 1);
        o->hash = h;
        if (c->st.objects >= c->nbuckets)
            sh_cache_grow(c);
        size_t b = h & (c->nbuckets - 1);
        o->hnext = c->buckets[b];
        c->buckets[b] = o;
        c->st.objects++;
    }
    ne->obj = o;
    ne->offset = offset;
    ne->block = sh_block_ref(block);
    sh_cache_entry_t *prev = NULL;
    for (sh_cache_entry_t *e = o->ranges; e && e->offset <= offset; e = e->obj_next)
        prev = e;
    ne->obj_prev = prev;
    ne->obj_next = prev ? prev->obj_next : o->ranges;
    if (ne->obj_next)
        ne->obj_next->obj_prev = ne;
    if (prev)
        prev->obj_next = ne;
    else
        o->ranges = ne;
    /* ranges the new one covers would never be looked up again; `ne`
     * stays, so the object survives these drops */
    for (sh_cache_entry_t *e = o->ranges; e;) {
        sh_cache_entry_t *next = e->obj_next;
        if (e != ne && e->offset >= offset && e->offset - offset + e->block->size <= len)
            sh_cache_entry_drop(c, e);
        e = next;
    }
    sh_cache_lru_push(c, ne);
    c->st.bytes += len;
    c->st.entries++;
    c->st.inserts++;
    sh_cache_evict_to(c, c->st.limit);
    return SH_OK;
}

sh_err_t sh_cache_get(sh_cache_t *c, const char *key, uint64_t offset, uint64_t len,
                      sh_cache_ref_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!key || len == 0)
        return SH_E_INVAL;
    sh_cache_obj_t *o = sh_cache_obj_find(c, key, sh_cache_hash(key));
    if (o) {
        for (sh_cache_entry_t *e = o->ranges; e && e->offset <= offset; e = e->obj_next) {
            if (!sh_cache_covers(e, offset, len))
                continue;
            sh_cache_lru_unlink(c, e);
            sh_cache_lru_push(c, e);
            out->block = sh_block_ref(e->block);
            out->ptr = e->block->data + (offset - e->offset);
            out->len = (size_t)len;
            c->st.hits++;
            return SH_OK;
        }
    }
    c->st.misses++;
    return SH_E_NOTFOUND;
}

void sh_cache_invalidate(sh_cache_t *c, const char *key)
{
    sh_cache_obj_t *o = sh_cache_obj_find(c, key, sh_cache_hash(key));
    while (o && o->ranges) {
        /* the last drop frees the object itself */
        int last = o->ranges->obj_next == NULL;
        sh_cache_entry_drop(c, o->ranges);
        if (last)
            break;
    }
}

void sh_cache_set_limit(sh_cache_t *c, size_t limit_bytes)
{
    c->st.limit = limit_bytes;
    sh_cache_evict_to(c, limit_bytes);
}

void sh_cache_stats(const sh_cache_t *c, sh_cache_stats_t *out)
{
    *out = c->st;
}
