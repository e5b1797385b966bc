/*
 * sh_fetch_session.h - incremental fetch sessions (KIP-227) and the cache
 * that bounds them, with the rules of Kafka's broker (FetchSession.scala).
 *
 * A consumer that sends a full Fetch with session_id 0 and epoch 0 asks
 * for a session: the broker remembers every partition of the request
 * (fetch offset, partition_max_bytes, leader epochs) and what it answered
 * (high watermark, log start offset), and answers with a new session id.
 * The following requests carry that id and epochs 1, 2, ... and list only
 * the partitions that are new or changed (forgotten_topics_data removes
 * some); the broker fetches every partition of the session and answers
 * only those with records, a changed high watermark or log start offset,
 * or an error. fetch.c drives it; the rules live here so unit tests can
 * drive them without a broker.
 *
 * The request-side rules (Kafka's FetchManager.newContext):
 *   epoch -1 (final)   full, sessionless; a non-zero session_id is closed
 *   epoch 0 (initial)  full; a non-zero session_id is closed; the answer
 *                      creates a new session if the cache admits it
 *                      (sh_fetch_session_cache_insert), else session id 0
 *   epoch > 0          incremental: sh_fetch_session_cache_lookup (unknown
 *                      id: FETCH_SESSION_ID_NOT_FOUND, other epoch:
 *                      INVALID_FETCH_SESSION_EPOCH, topic ids used by one
 *                      side only: FETCH_SESSION_TOPIC_ID_ERROR), then
 *                      _upsert / _forget every partition of the request,
 *                      then sh_fetch_session_cache_advance (an emptied
 *                      session is closed and the request is served
 *                      sessionless; otherwise the epoch moves on).
 * The response-side rule: sh_fetch_session_part_must_respond.
 *
 * Bounds: at most max_slots sessions (max.incremental.fetch.session.cache.
 * slots); a new session evicts one idle longer than eviction_ms, or else
 * the smallest session older than eviction_ms if the new one has more
 * partitions (Kafka's rule for consumers); otherwise it is not created.
 * Kafka bounds nothing else; here the memory of all cached sessions
 * (partitions, topic names, hash tables) is also bounded by max_bytes: a
 * session that does not fit is not created, and an incremental request
 * that would grow past it closes its session (fetch.c then answers
 * FETCH_SESSION_ID_NOT_FOUND, and the client starts over with a full
 * fetch).
 *
 * Ownership: the cache holds one reference on each cached session; a
 * parked fetch holds another, so a session evicted or closed meanwhile
 * stays valid (and unchanged) until that fetch answers. Removing a
 * session from the cache never frees it under a holder. Topic names are
 * copied; keys passed in are borrowed for the call.
 *
 * Thread: the loop thread; nothing here blocks or logs above debug.
 */
#ifndef SH_FETCH_SESSION_H
#define SH_FETCH_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sh_err.h"
#include "common/sh_slice.h"
#include "protocol/sh_wire.h"

#define SH_FETCH_SESSION_INVALID_ID 0
#define SH_FETCH_SESSION_INITIAL_EPOCH 0
#define SH_FETCH_SESSION_FINAL_EPOCH (-1)
/* Kafka's KafkaServer.MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS */
#define SH_FETCH_SESSION_EVICTION_MS 120000

typedef struct sh_fetch_session_cache sh_fetch_session_cache_t;
typedef struct sh_fetch_session sh_fetch_session_t;
typedef struct sh_fetch_session_topic sh_fetch_session_topic_t;
typedef struct sh_fetch_session_part sh_fetch_session_part_t;

typedef struct sh_fetch_session_config {
    int32_t max_slots;     /* sessions at most; 0: never create one */
    int64_t eviction_ms;   /* idle (or age) that makes a session evictable */
    int64_t max_bytes;     /* memory of all cached sessions */
    uint64_t seed;         /* session id generator; 0: from getrandom */
} sh_fetch_session_config_t;

/* A partition as a request names it: by topic name (sessions without
 * topic ids, Fetch v7-v12) or by topic id (v13+). */
typedef struct sh_fetch_session_key {
    sh_slice_t topic;
    sh_uuid_t topic_id;
    int32_t partition;
} sh_fetch_session_key_t;

/* What the client asked for a partition, kept between requests. */
typedef struct sh_fetch_session_params {
    int64_t fetch_offset;
    int64_t log_start_offset;      /* the fetcher's (followers only) */
    int32_t partition_max_bytes;
    int32_t current_leader_epoch;
    int32_t last_fetched_epoch;
} sh_fetch_session_params_t;

/* What a response says about a partition. */
typedef struct sh_fetch_session_answer {
    int16_t error_code;
    int64_t high_watermark;        /* as sent: -1 with an error */
    int64_t log_start_offset;      /* as sent */
    size_t records_bytes;
} sh_fetch_session_answer_t;

struct sh_fetch_session_topic {
    sh_slice_t name;               /* own NUL-terminated copy; "" by id */
    sh_uuid_t id;                  /* zero for sessions by name */
    /* private */
    uint32_t hash;
    int32_t nparts;                /* partitions pointing here */
    sh_fetch_session_topic_t *hnext;
};

struct sh_fetch_session_part {
    sh_fetch_session_topic_t *topic;
    int32_t partition;
    sh_fetch_session_params_t params;
    int64_t high_watermark;        /* last sent; -1: unknown or error */
    int64_t log_start_offset;      /* last sent (this broker's) */
    /* private */
    uint32_t hash;
    sh_fetch_session_part_t *hnext;
    sh_fetch_session_part_t *prev, *next;   /* session order */
};

struct sh_fetch_session {
    int32_t id;
    int32_t epoch;                 /* the epoch the next request must carry */
    bool uses_topic_ids;
    int64_t creation_ms, last_used_ms;
    /* private */
    int refs;
    bool cached;                   /* in a cache (holding one reference) */
    bool evictable;                /* by size: older than eviction_ms at its last use */
    int32_t cached_size;           /* partitions at its last use (Kafka's cachedSize) */
    size_t nparts, ntopics;
    size_t bytes;                  /* memory accounted to the cache */
    sh_fetch_session_part_t *head, *tail;
    sh_fetch_session_part_t **pbuckets;
    sh_fetch_session_topic_t **tbuckets;
    size_t npbuckets, ntbuckets;
    sh_fetch_session_t *lru_prev, *lru_next, *id_next;
};

/* The epoch after `epoch`: -1 stays -1, INT32_MAX wraps to 1. */
int32_t sh_fetch_session_next_epoch(int32_t epoch);

/* ------------------------------------------------------------- cache */

sh_fetch_session_cache_t *sh_fetch_session_cache_new(const sh_fetch_session_config_t *cfg);
/* Drops the cache's references; sessions held elsewhere live on. */
void sh_fetch_session_cache_free(sh_fetch_session_cache_t *c);

size_t sh_fetch_session_cache_count(const sh_fetch_session_cache_t *c);
int64_t sh_fetch_session_cache_partitions(const sh_fetch_session_cache_t *c);
int64_t sh_fetch_session_cache_bytes(const sh_fetch_session_cache_t *c);
uint64_t sh_fetch_session_cache_evictions(const sh_fetch_session_cache_t *c);

/* The cached session with that id, borrowed; NULL if none. */
sh_fetch_session_t *sh_fetch_session_cache_find(sh_fetch_session_cache_t *c, int32_t id);

/* Close a session (a full request naming it); true if it was cached. */
bool sh_fetch_session_cache_remove(sh_fetch_session_cache_t *c, int32_t id);

/* The checks of an incremental request, in Kafka's order. SH_OK and the
 * session (borrowed), or FETCH_SESSION_ID_NOT_FOUND,
 * INVALID_FETCH_SESSION_EPOCH or FETCH_SESSION_TOPIC_ID_ERROR. */
sh_err_t sh_fetch_session_cache_lookup(sh_fetch_session_cache_t *c, int32_t id, int32_t epoch,
                                       bool uses_topic_ids, sh_fetch_session_t **out);

/* After an incremental request's updates: an empty session is closed
 * (false: serve the request sessionless); otherwise the session is marked
 * used at `now` and its epoch moves on (true). */
bool sh_fetch_session_cache_advance(sh_fetch_session_cache_t *c, sh_fetch_session_t *s,
                                    int64_t now);

/* Admit a session built with sh_fetch_session_new + _upsert (Kafka's
 * maybeCreateSession, plus the byte bound): on success the cache takes
 * its own reference, gives it a new random id in [1, INT32_MAX) and
 * epoch 1, and returns the id; otherwise 0 (the caller still drops its
 * reference either way). */
int32_t sh_fetch_session_cache_insert(sh_fetch_session_cache_t *c, sh_fetch_session_t *s,
                                      int64_t now);

/* ----------------------------------------------------------- session */

/* A new, empty, uncached session with one reference. */
sh_fetch_session_t *sh_fetch_session_new(bool uses_topic_ids);
sh_fetch_session_t *sh_fetch_session_ref(sh_fetch_session_t *s);
void sh_fetch_session_unref(sh_fetch_session_t *s);

/* Add a partition (at the end, with high watermark and log start -1) or
 * update the params of the one already there (in place). c is the cache
 * holding s, whose byte bound applies, or NULL while building a session
 * not yet cached. NULL with SH_E_NOMEM when out of memory or over the
 * bound (s is unchanged then). *added tells which happened. */
sh_fetch_session_part_t *sh_fetch_session_upsert(sh_fetch_session_cache_t *c,
                                                 sh_fetch_session_t *s,
                                                 const sh_fetch_session_key_t *key,
                                                 const sh_fetch_session_params_t *params,
                                                 bool *added);

/* Remove a partition; false if it was not there. */
bool sh_fetch_session_forget(sh_fetch_session_cache_t *c, sh_fetch_session_t *s,
                             const sh_fetch_session_key_t *key);

sh_fetch_session_part_t *sh_fetch_session_find(const sh_fetch_session_t *s,
                                               const sh_fetch_session_key_t *key);

static inline size_t sh_fetch_session_size(const sh_fetch_session_t *s)
{
    return s->nparts;
}

/* Session order: what an incremental fetch reads, in that order. */
static inline sh_fetch_session_part_t *sh_fetch_session_first(const sh_fetch_session_t *s)
{
    return s->head;
}

static inline sh_fetch_session_part_t *sh_fetch_session_next(const sh_fetch_session_part_t *p)
{
    return p->next;
}

/* Kafka's CachedPartition.maybeUpdateResponseData: must an incremental
 * response include this partition? Yes with records, an error, or a high
 * watermark or log start offset other than the last one sent. With
 * `update`, remember what is sent (an error leaves high watermark -1, so
 * the partition is sent again once the error is gone). */
bool sh_fetch_session_part_must_respond(sh_fetch_session_part_t *p,
                                        const sh_fetch_session_answer_t *a, bool update);

/* Move a partition that returned records to the end of the session, so
 * the next fetch reads the others first under max_bytes (fairness). */
void sh_fetch_session_part_rotate(sh_fetch_session_t *s, sh_fetch_session_part_t *p);

#endif
