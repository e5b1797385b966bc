/*
 * sh_cache.h - read cache of object byte ranges (LRU, limited by bytes).
 *
 * Fetches that miss the WAL and the in-memory tail read chunk ranges from
 * the object store; consumers reading the same partition, or catching up
 * together, then hit this cache instead of issuing the same GET again.
 * Entries are (object key, offset, bytes) where the bytes are a refcounted
 * sh_block_t (normally the block a ranged GET returned), so a lookup hands
 * out a reference instead of a copy, and evicting an entry that an in-flight
 * Fetch still references only drops the cache's reference: the bytes live
 * until the Fetch's response is written.
 *
 * A lookup is served by any cached range of the same object that covers the
 * asked range (a sub-range hit). The byte limit counts the cached payload
 * bytes; evicted-but-referenced blocks are no longer counted.
 *
 * Single-threaded: the loop thread owns the cache. Lookup cost is a hash
 * probe plus a walk over that object's cached ranges (kept sorted by offset).
 */
#ifndef SH_CACHE_H
#define SH_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "common/sh_err.h"
#include "common/sh_slice.h"

typedef struct sh_cache sh_cache_t;

typedef struct sh_cache_stats {
    uint64_t hits;
    uint64_t misses;
    uint64_t inserts;        /* ranges stored */
    uint64_t evictions;      /* ranges dropped to stay under the limit */
    uint64_t rejected;       /* puts not stored: larger than the limit */
    size_t bytes;            /* payload bytes held now */
    size_t entries;          /* ranges held now */
    size_t objects;          /* distinct keys held now */
    size_t limit;
} sh_cache_stats_t;

/* A cache hit: the caller owns one reference to `block` and must
 * sh_block_unref it; `ptr` points at the asked range inside it. */
typedef struct sh_cache_ref {
    sh_block_t *block;
    const uint8_t *ptr;
    size_t len;
} sh_cache_ref_t;

/* A cache holding at most limit_bytes of payload. NULL on allocation failure. */
sh_cache_t *sh_cache_new(size_t limit_bytes);
/* Drop every entry (blocks still referenced elsewhere survive) and free. */
void sh_cache_free(sh_cache_t *c);

/*
 * Remember that bytes [offset, offset + block->size) of object `key` are
 * block->data. The cache takes its own reference (the caller keeps its
 * one). A range already covered by a cached one is not stored twice;
 * cached ranges the new one covers are replaced. May evict older ranges.
 * SH_OK (also when not stored because larger than the limit; see stats),
 * SH_E_INVAL for an empty block or a range past 2^64, SH_E_NOMEM.
 */
sh_err_t sh_cache_put(sh_cache_t *c, const char *key, uint64_t offset, sh_block_t *block);

/* Bytes [offset, offset + len) of `key` if a cached range covers them:
 * SH_OK with *out filled (a new reference), else SH_E_NOTFOUND. A hit makes
 * the covering range most recently used. len 0 is SH_E_INVAL. */
sh_err_t sh_cache_get(sh_cache_t *c, const char *key, uint64_t offset, uint64_t len,
                      sh_cache_ref_t *out);

/* Forget every range of `key` (the object was deleted or replaced). */
void sh_cache_invalidate(sh_cache_t *c, const char *key);

/* Change the limit; evicts at once if the cache is now over it. */
void sh_cache_set_limit(sh_cache_t *c, size_t limit_bytes);

void sh_cache_stats(const sh_cache_t *c, sh_cache_stats_t *out);

#endif
