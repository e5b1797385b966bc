/*
 * sh_group_map.c - chained hash map with SipHash-2-4 keyed per process
 * (see sh_group_map.h for why).
 *
 * Thread: the caller's (the loop thread); the random key is set once,
 * under pthread_once. Ownership: entries and the bucket array belong to
 * the map; keys and values to the caller.
 */
#include "broker/sh_group_map.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static uint64_t sh_group_map_k0, sh_group_map_k1;
static pthread_once_t sh_group_map_once = PTHREAD_ONCE_INIT;

static void sh_group_map_seed(void)
{
    uint64_t k[2] = {0, 0};
    if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
        /* no entropy yet (very early boot): still better than a constant */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull;
        k[1] ^= (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&ts;
    }
    sh_group_map_k0 = k[0];
    sh_group_map_k1 = k[1];
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                               \
    do {                                                                       \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);              \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                 \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                 \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);              \
    } while (0)

static uint64_t sh_group_map_hash(const void *key, size_t len)
{
    const uint8_t *p = key;
    uint64_t v0 = 0x736f6d6570736575ull ^ sh_group_map_k0;
    uint64_t v1 = 0x646f72616e646f6dull ^ sh_group_map_k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ sh_group_map_k0;
    uint64_t v3 = 0x7465646279746573ull ^ sh_group_map_k1;
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = 0;
        for (int j = 7; j >= 0; j--)
            m = (m << 8) | p[i + (size_t)j];
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t j = 0; j < (len & 7); j++)
        b |= (uint64_t)p[whole + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

void sh_group_map_init(sh_group_map_t *m)
{
    pthread_once(&sh_group_map_once, sh_group_map_seed);
    memset(m, 0, sizeof(*m));
}

void sh_group_map_fini(sh_group_map_t *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        sh_group_map_ent_t *e = m->buckets[i];
        while (e) {
            sh_group_map_ent_t *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    memset(m, 0, sizeof(*m));
}

static sh_group_map_ent_t **sh_group_map_slot(const sh_group_map_t *m, uint64_t h,
                                             const void *key, size_t len)
{
    sh_group_map_ent_t **pp = &m->buckets[h & (m->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && (*pp)->len == len &&
            (len == 0 || memcmp((*pp)->key, key, len) == 0))
            return pp;
    return pp;
}

void *sh_group_map_get(const sh_group_map_t *m, const void *key, size_t len)
{
    if (m->count == 0)
        return NULL;
    sh_group_map_ent_t **pp = sh_group_map_slot(m, sh_group_map_hash(key, len), key, len);
    return *pp ? (*pp)->val : NULL;
}

static sh_err_t sh_group_map_grow(sh_group_map_t *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
    sh_group_map_ent_t **b = calloc(n, sizeof(*b));
    if (!b)
        return SH_E_NOMEM;
    for (size_t i = 0; i < m->nbuckets; i++) {
        sh_group_map_ent_t *e = m->buckets[i];
        while (e) {
            sh_group_map_ent_t *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return SH_OK;
}

sh_err_t sh_group_map_put(sh_group_map_t *m, const void *key, size_t len, void *val)
{
    if (m->count >= m->nbuckets && sh_group_map_grow(m) != SH_OK && m->nbuckets == 0)
        return SH_E_NOMEM; /* a full table still works, only slower */
    uint64_t h = sh_group_map_hash(key, len);
    sh_group_map_ent_t **pp = sh_group_map_slot(m, h, key, len);
    if (*pp) {
        (*pp)->key = key;
        (*pp)->val = val;
        return SH_OK;
    }
    sh_group_map_ent_t *e = malloc(sizeof(*e));
    if (!e)
        return SH_E_NOMEM;
    e->next = NULL;
    e->hash = h;
    e->key = key;
    e->len = len;
    e->val = val;
    *pp = e;
    m->count++;
    return SH_OK;
}

void *sh_group_map_del(sh_group_map_t *m, const void *key, size_t len)
{
    if (m->count == 0)
        return NULL;
    sh_group_map_ent_t **pp = sh_group_map_slot(m, sh_group_map_hash(key, len), key, len);
    sh_group_map_ent_t *e = *pp;
    if (!e)
        return NULL;
    void *val = e->val;
    *pp = e->next;
    free(e);
    m->count--;
    return val;
}

sh_group_map_ent_t *sh_group_map_next(const sh_group_map_t *m, size_t *bucket,
                                      sh_group_map_ent_t **it)
{
    if (*it && (*it)->next) {
        *it = (*it)->next;
        return *it;
    }
    size_t b = *it ? *bucket + 1 : *bucket;
    for (; b < m->nbuckets; b++) {
        if (m->buckets[b]) {
            *bucket = b;
            *it = m->buckets[b];
            return *it;
        }
    }
    *bucket = m->nbuckets;
    *it = NULL;
    return NULL;
}
