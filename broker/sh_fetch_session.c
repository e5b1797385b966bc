/*
 * sh_fetch_session.c - incremental fetch sessions (KIP-227): the sessions
 * with their partitions, and the bounded cache that holds them. The rules
 * are in sh_fetch_session.h; fetch.c applies them to requests.
 *
 * A session keeps its partitions three ways at once: a doubly linked list
 * in session order (what an incremental fetch reads, rotated for
 * fairness), a chained hash on (topic, partition) for the lookups of every
 * partition a request names, and a chained hash of its topics, each name
 * copied once however many partitions it has. The cache keeps sessions in
 * a hash by id and in a least-recently-used list (what is stale is found
 * at its head); the eviction of a smaller session scans the list, which
 * is bounded by the slot count and only happens when the cache is full.
 *
 * Memory: every allocation of a cached session is counted in
 * c->bytes, which max_bytes bounds; a session is freed when its last
 * reference goes (the cache's, or a parked fetch's).
 *
 * Thread: loop thread only.
 */
#include "broker/sh_fetch_session.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct sh_fetch_session_cache {
    sh_fetch_session_config_t cfg;
    sh_fetch_session_t **ids;      /* hash by id, chained */
    size_t nids;                   /* power of two */
    size_t count;
    sh_fetch_session_t *lru_head, *lru_tail;
    int64_t partitions;            /* sum of cached_size */
    int64_t bytes;                 /* sum of bytes */
    uint64_t evictions;
    uint64_t rng;
};

int32_t sh_fetch_session_next_epoch(int32_t epoch)
{
    if (epoch < 0)
        return SH_FETCH_SESSION_FINAL_EPOCH;
    if (epoch == INT32_MAX)
        return 1;
    return epoch + 1;
}

/* ------------------------------------------------------------ hashing */

static uint32_t hash_bytes(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t hash_part(uint32_t topic_hash, int32_t partition)
{
    uint32_t h = topic_hash ^ ((uint32_t)partition * 0x9E3779B1u);
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    return h;
}

static uint32_t key_topic_hash(const sh_fetch_session_t *s, const sh_fetch_session_key_t *k)
{
    if (s->uses_topic_ids)
        return hash_bytes(k->topic_id.b, sizeof(k->topic_id.b));
    return hash_bytes(k->topic.ptr, k->topic.ptr ? k->topic.len : 0);
}

static bool topic_matches(const sh_fetch_session_t *s, const sh_fetch_session_topic_t *t,
                          const sh_fetch_session_key_t *k)
{
    if (s->uses_topic_ids)
        return memcmp(t->id.b, k->topic_id.b, sizeof(t->id.b)) == 0;
    size_t n = k->topic.ptr ? k->topic.len : 0;
    return t->name.len == n && (n == 0 || memcmp(t->name.ptr, k->topic.ptr, n) == 0);
}

/* Next bucket count when n entries would not fit nb buckets, else nb. */
static size_t buckets_for(size_t nb, size_t n)
{
    if (n <= nb)
        return nb;
    return nb ? nb * 2 : 8;
}

/* ----------------------------------------------------------- accounting */

static void account(sh_fetch_session_cache_t *c, sh_fetch_session_t *s, int64_t delta)
{
    s->bytes = (size_t)((int64_t)s->bytes + delta);
    if (c && s->cached)
        c->bytes += delta;
}

/* ------------------------------------------------------------- session */

sh_fetch_session_t *sh_fetch_session_new(bool uses_topic_ids)
{
    sh_fetch_session_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->refs = 1;
    s->uses_topic_ids = uses_topic_ids;
    s->epoch = sh_fetch_session_next_epoch(SH_FETCH_SESSION_INITIAL_EPOCH);
    s->bytes = sizeof(*s);
    return s;
}

sh_fetch_session_t *sh_fetch_session_ref(sh_fetch_session_t *s)
{
    s->refs++;
    return s;
}

void sh_fetch_session_unref(sh_fetch_session_t *s)
{
    if (!s || --s->refs > 0)
        return;
    sh_fetch_session_part_t *p = s->head;
    while (p) {
        sh_fetch_session_part_t *next = p->next;
        free(p);
        p = next;
    }
    for (size_t i = 0; i < s->ntbuckets; i++) {
        sh_fetch_session_topic_t *t = s->tbuckets[i];
        while (t) {
            sh_fetch_session_topic_t *next = t->hnext;
            free(t);
            t = next;
        }
    }
    free(s->pbuckets);
    free(s->tbuckets);
    free(s);
}

static sh_fetch_session_topic_t *topic_find(const sh_fetch_session_t *s,
                                            const sh_fetch_session_key_t *k, uint32_t h)
{
    if (!s->ntbuckets)
        return NULL;
    for (sh_fetch_session_topic_t *t = s->tbuckets[h & (s->ntbuckets - 1)]; t; t = t->hnext)
        if (t->hash == h && topic_matches(s, t, k))
            return t;
    return NULL;
}

static sh_fetch_session_part_t *part_find(const sh_fetch_session_t *s,
                                          const sh_fetch_session_topic_t *t, int32_t partition)
{
    if (!s->npbuckets)
        return NULL;
    uint32_t h = hash_part(t->hash, partition);
    for (sh_fetch_session_part_t *p = s->pbuckets[h & (s->npbuckets - 1)]; p; p = p->hnext)
        if (p->topic == t && p->partition == partition)
            return p;
    return NULL;
}

sh_fetch_session_part_t *sh_fetch_session_find(const sh_fetch_session_t *s,
                                               const sh_fetch_session_key_t *key)
{
    sh_fetch_session_topic_t *t = topic_find(s, key, key_topic_hash(s, key));
    return t ? part_find(s, t, key->partition) : NULL;
}

/* Rehash into nb buckets (a power of two >= the current count). */
static bool grow_topics(sh_fetch_session_cache_t *c, sh_fetch_session_t *s, size_t nb)
{
    if (nb == s->ntbuckets)
        return true;
    sh_fetch_session_topic_t **b = calloc(nb, sizeof(*b));
    if (!b)
        return false;
    for (size_t i = 0; i < s->ntbuckets; i++) {
        sh_fetch_session_topic_t *t = s->tbuckets[i];
        while (t) {
            sh_fetch_session_topic_t *next = t->hnext;
            t->hnext = b[t->hash & (nb - 1)];
            b[t->hash & (nb - 1)] = t;
            t = next;
        }
    }
    account(c, s, (int64_t)((nb - s->ntbuckets) * sizeof(*b)));
    free(s->tbuckets);
    s->tbuckets = b;
    s->ntbuckets = nb;
    return true;
}

static bool grow_parts(sh_fetch_session_cache_t *c, sh_fetch_session_t *s, size_t nb)
{
    if (nb == s->npbuckets)
        return true;
    sh_fetch_session_part_t **b = calloc(nb, sizeof(*b));
    if (!b)
        return false;
    for (sh_fetch_session_part_t *p = s->head; p; p = p->next) {
        p->hnext = b[p->hash & (nb - 1)];
        b[p->hash & (nb - 1)] = p;
    }
    account(c, s, (int64_t)((nb - s->npbuckets) * sizeof(*b)));
    free(s->pbuckets);
    s->pbuckets = b;
    s->npbuckets = nb;
    return true;
}

static void list_append(sh_fetch_session_t *s, sh_fetch_session_part_t *p)
{
    p->next = NULL;
    p->prev = s->tail;
    if (s->tail)
        s->tail->next = p;
    else
        s->head = p;
    s->tail = p;
}

static void list_unlink(sh_fetch_session_t *s, sh_fetch_session_part_t *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        s->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        s->tail = p->prev;
    p->prev = p->next = NULL;
}

sh_fetch_session_part_t *sh_fetch_session_upsert(sh_fetch_session_cache_t *c,
                                                 sh_fetch_session_t *s,
                                                 const sh_fetch_session_key_t *key,
                                                 const sh_fetch_session_params_t *params,
                                                 bool *added)
{
    uint32_t th = key_topic_hash(s, key);
    sh_fetch_session_topic_t *t = topic_find(s, key, th);
    sh_fetch_session_part_t *p = t ? part_find(s, t, key->partition) : NULL;
    *added = false;
    if (p) {
        p->params = *params;
        return p;
    }
    /* What this addition will cost, checked before anything changes so a
     * refusal leaves the session as it was. */
    size_t name_len = s->uses_topic_ids || !key->topic.ptr ? 0 : key->topic.len;
    size_t tnb = t ? s->ntbuckets : buckets_for(s->ntbuckets, s->ntopics + 1);
    size_t pnb = buckets_for(s->npbuckets, s->nparts + 1);
    int64_t delta = (int64_t)sizeof(*p) + (int64_t)((pnb - s->npbuckets) * sizeof(void *));
    if (!t)
        delta += (int64_t)(sizeof(*t) + name_len + 1 + (tnb - s->ntbuckets) * sizeof(void *));
    if (c && s->cached && c->bytes + delta > c->cfg.max_bytes)
        return NULL;

    if (!grow_parts(c, s, pnb))
        return NULL;
    if (!t) {
        if (!grow_topics(c, s, tnb))
            return NULL;
        t = calloc(1, sizeof(*t) + name_len + 1);
        if (!t)
            return NULL;
        char *name = (char *)(t + 1);
        if (name_len)
            memcpy(name, key->topic.ptr, name_len);
        t->name = (sh_slice_t){(const uint8_t *)name, name_len};
        if (s->uses_topic_ids)
            t->id = key->topic_id;
        t->hash = th;
        t->hnext = s->tbuckets[th & (s->ntbuckets - 1)];
        s->tbuckets[th & (s->ntbuckets - 1)] = t;
        s->ntopics++;
        account(c, s, (int64_t)(sizeof(*t) + name_len + 1));
    }
    p = calloc(1, sizeof(*p));
    if (!p) {
        if (t->nparts == 0) { /* just made: take it back out */
            sh_fetch_session_topic_t **pp = &s->tbuckets[t->hash & (s->ntbuckets - 1)];
            while (*pp != t)
                pp = &(*pp)->hnext;
            *pp = t->hnext;
            s->ntopics--;
            account(c, s, -(int64_t)(sizeof(*t) + t->name.len + 1));
            free(t);
        }
        return NULL;
    }
    p->topic = t;
    p->partition = key->partition;
    p->params = *params;
    p->high_watermark = -1;
    p->log_start_offset = -1;
    p->hash = hash_part(t->hash, key->partition);
    p->hnext = s->pbuckets[p->hash & (s->npbuckets - 1)];
    s->pbuckets[p->hash & (s->npbuckets - 1)] = p;
    list_append(s, p);
    t->nparts++;
    s->nparts++;
    account(c, s, (int64_t)sizeof(*p));
    *added = true;
    return p;
}

bool sh_fetch_session_forget(sh_fetch_session_cache_t *c, sh_fetch_session_t *s,
                             const sh_fetch_session_key_t *key)
{
    sh_fetch_session_part_t *p = sh_fetch_session_find(s, key);
    if (!p)
        return false;
    sh_fetch_session_part_t **pp = &s->pbuckets[p->hash & (s->npbuckets - 1)];
    while (*pp != p)
        pp = &(*pp)->hnext;
    *pp = p->hnext;
    list_unlink(s, p);
    s->nparts--;
    account(c, s, -(int64_t)sizeof(*p));
    sh_fetch_session_topic_t *t = p->topic;
    free(p);
    if (--t->nparts == 0) {
        sh_fetch_session_topic_t **tp = &s->tbuckets[t->hash & (s->ntbuckets - 1)];
        while (*tp != t)
            tp = &(*tp)->hnext;
        *tp = t->hnext;
        s->ntopics--;
        account(c, s, -(int64_t)(sizeof(*t) + t->name.len + 1));
        free(t);
    }
    return true;
}

bool sh_fetch_session_part_must_respond(sh_fetch_session_part_t *p,
                                        const sh_fetch_session_answer_t *a, bool update)
{
    bool must = a->records_bytes > 0;
    if (p->high_watermark != a->high_watermark) {
        must = true;
        if (update)
            p->high_watermark = a->high_watermark;
    }
    if (p->log_start_offset != a->log_start_offset) {
        must = true;
        if (update)
            p->log_start_offset = a->log_start_offset;
    }
    if (a->error_code != 0) {
        /* -1 makes the partition go out again once the error is gone,
         * even if its high watermark is what it was before */
        if (update)
            p->high_watermark = -1;
        must = true;
    }
    return must;
}

void sh_fetch_session_part_rotate(sh_fetch_session_t *s, sh_fetch_session_part_t *p)
{
    if (s->tail == p)
        return;
    list_unlink(s, p);
    list_append(s, p);
}

/* --------------------------------------------------------------- cache */

static uint64_t rng_next(sh_fetch_session_cache_t *c)
{
    uint64_t x = c->rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

sh_fetch_session_cache_t *sh_fetch_session_cache_new(const sh_fetch_session_config_t *cfg)
{
    sh_fetch_session_cache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->cfg = *cfg;
    /* a table sized for the slots, so it never grows */
    size_t want = cfg->max_slots > 0 ? (size_t)cfg->max_slots : 1;
    if (want > 65536)
        want = 65536;
    c->nids = 16;
    while (c->nids < want)
        c->nids *= 2;
    c->ids = calloc(c->nids, sizeof(*c->ids));
    if (!c->ids) {
        free(c);
        return NULL;
    }
    c->rng = cfg->seed;
    if (!c->rng && getrandom(&c->rng, sizeof(c->rng), GRND_NONBLOCK) != (ssize_t)sizeof(c->rng))
        c->rng = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)c;
    if (!c->rng)
        c->rng = 0x9E3779B97F4A7C15ULL;
    return c;
}

static sh_fetch_session_t **id_slot(sh_fetch_session_cache_t *c, int32_t id)
{
    return &c->ids[(uint32_t)id * 0x9E3779B1u & (c->nids - 1)];
}

sh_fetch_session_t *sh_fetch_session_cache_find(sh_fetch_session_cache_t *c, int32_t id)
{
    if (id == SH_FETCH_SESSION_INVALID_ID)
        return NULL;
    for (sh_fetch_session_t *s = *id_slot(c, id); s; s = s->id_next)
        if (s->id == id)
            return s;
    return NULL;
}

static void lru_unlink(sh_fetch_session_cache_t *c, sh_fetch_session_t *s)
{
    if (!s->lru_prev && c->lru_head != s)
        return; /* not linked (a session being inserted) */
    if (s->lru_prev)
        s->lru_prev->lru_next = s->lru_next;
    else
        c->lru_head = s->lru_next;
    if (s->lru_next)
        s->lru_next->lru_prev = s->lru_prev;
    else
        c->lru_tail = s->lru_prev;
    s->lru_prev = s->lru_next = NULL;
}

static void lru_append(sh_fetch_session_cache_t *c, sh_fetch_session_t *s)
{
    s->lru_next = NULL;
    s->lru_prev = c->lru_tail;
    if (c->lru_tail)
        c->lru_tail->lru_next = s;
    else
        c->lru_head = s;
    c->lru_tail = s;
}

static void cache_remove(sh_fetch_session_cache_t *c, sh_fetch_session_t *s)
{
    sh_fetch_session_t **pp = id_slot(c, s->id);
    while (*pp && *pp != s)
        pp = &(*pp)->id_next;
    if (*pp)
        *pp = s->id_next;
    s->id_next = NULL;
    lru_unlink(c, s);
    c->count--;
    c->bytes -= (int64_t)s->bytes;
    c->partitions -= s->cached_size;
    s->cached = false;
    sh_fetch_session_unref(s);
}

/* Kafka's FetchSessionCache.touch: last use, the size eviction compares,
 * and whether the session is old enough to be evicted by a bigger one. */
static void cache_touch(sh_fetch_session_cache_t *c, sh_fetch_session_t *s, int64_t now)
{
    lru_unlink(c, s);
    s->last_used_ms = now;
    lru_append(c, s);
    c->partitions += (int64_t)s->nparts - s->cached_size;
    s->cached_size = (int32_t)s->nparts;
    s->evictable = now - s->creation_ms > c->cfg.eviction_ms;
}

void sh_fetch_session_cache_free(sh_fetch_session_cache_t *c)
{
    if (!c)
        return;
    while (c->lru_head)
        cache_remove(c, c->lru_head);
    free(c->ids);
    free(c);
}

size_t sh_fetch_session_cache_count(const sh_fetch_session_cache_t *c)
{
    return c->count;
}

int64_t sh_fetch_session_cache_partitions(const sh_fetch_session_cache_t *c)
{
    return c->partitions;
}

int64_t sh_fetch_session_cache_bytes(const sh_fetch_session_cache_t *c)
{
    return c->bytes;
}

uint64_t sh_fetch_session_cache_evictions(const sh_fetch_session_cache_t *c)
{
    return c->evictions;
}

bool sh_fetch_session_cache_remove(sh_fetch_session_cache_t *c, int32_t id)
{
    sh_fetch_session_t *s = sh_fetch_session_cache_find(c, id);
    if (!s)
        return false;
    cache_remove(c, s);
    return true;
}

sh_err_t sh_fetch_session_cache_lookup(sh_fetch_session_cache_t *c, int32_t id, int32_t epoch,
                                       bool uses_topic_ids, sh_fetch_session_t **out)
{
    sh_fetch_session_t *s = sh_fetch_session_cache_find(c, id);
    *out = NULL;
    if (!s)
        return SH_KERR_FETCH_SESSION_ID_NOT_FOUND;
    if (s->epoch != epoch)
        return SH_KERR_INVALID_FETCH_SESSION_EPOCH;
    if (s->uses_topic_ids != uses_topic_ids)
        return SH_KERR_FETCH_SESSION_TOPIC_ID_ERROR;
    *out = s;
    return SH_OK;
}

bool sh_fetch_session_cache_advance(sh_fetch_session_cache_t *c, sh_fetch_session_t *s,
                                    int64_t now)
{
    if (s->nparts == 0) {
        if (s->cached)
            cache_remove(c, s);
        return false;
    }
    if (s->cached)
        cache_touch(c, s, now);
    s->epoch = sh_fetch_session_next_epoch(s->epoch);
    return true;
}

/* Kafka's tryEvict for a consumer session of `size` partitions: the least
 * recently used session if it has been idle longer than eviction_ms;
 * otherwise the smallest session (then lowest id) among those that were
 * older than eviction_ms at their last use, if the new one is bigger. */
static bool cache_try_evict(sh_fetch_session_cache_t *c, size_t size, int64_t now)
{
    sh_fetch_session_t *first = c->lru_head;
    if (!first)
        return false;
    if (now - first->last_used_ms > c->cfg.eviction_ms) {
        cache_remove(c, first);
        c->evictions++;
        return true;
    }
    sh_fetch_session_t *best = NULL;
    for (sh_fetch_session_t *s = c->lru_head; s; s = s->lru_next)
        if (s->evictable && (!best || s->cached_size < best->cached_size ||
                             (s->cached_size == best->cached_size && s->id < best->id)))
            best = s;
    /* the new entry's key is (size, id 0) and ids are positive: only a
     * strictly bigger session wins */
    if (!best || (int64_t)size <= (int64_t)best->cached_size)
        return false;
    cache_remove(c, best);
    c->evictions++;
    return true;
}

static int32_t cache_new_id(sh_fetch_session_cache_t *c)
{
    for (;;) {
        int32_t id = (int32_t)(rng_next(c) % (uint64_t)(INT32_MAX - 1)) + 1;
        if (!sh_fetch_session_cache_find(c, id))
            return id;
    }
}

int32_t sh_fetch_session_cache_insert(sh_fetch_session_cache_t *c, sh_fetch_session_t *s,
                                      int64_t now)
{
    if (!s || s->cached || (int64_t)s->bytes > c->cfg.max_bytes)
        return SH_FETCH_SESSION_INVALID_ID;
    if (!((int64_t)c->count < c->cfg.max_slots || cache_try_evict(c, s->nparts, now)))
        return SH_FETCH_SESSION_INVALID_ID;
    /* The byte bound (not Kafka's): only sessions idle past eviction_ms
     * give way, and none does unless together they make room. They are
     * the head of the LRU list. */
    int64_t need = c->bytes + (int64_t)s->bytes - c->cfg.max_bytes;
    if (need > 0) {
        int64_t stale = 0;
        for (sh_fetch_session_t *o = c->lru_head;
             o && stale < need && now - o->last_used_ms > c->cfg.eviction_ms; o = o->lru_next)
            stale += (int64_t)o->bytes;
        if (stale < need)
            return SH_FETCH_SESSION_INVALID_ID;
        while (c->bytes + (int64_t)s->bytes > c->cfg.max_bytes) {
            cache_remove(c, c->lru_head);
            c->evictions++;
        }
    }
    s->id = cache_new_id(c);
    s->epoch = sh_fetch_session_next_epoch(SH_FETCH_SESSION_INITIAL_EPOCH);
    s->creation_ms = now;
    s->cached = true;
    s->cached_size = 0;
    sh_fetch_session_ref(s);
    sh_fetch_session_t **slot = id_slot(c, s->id);
    s->id_next = *slot;
    *slot = s;
    c->count++;
    c->bytes += (int64_t)s->bytes;
    cache_touch(c, s, now);
    return s->id;
}
