/*
 * sh_registry.h - the broker's in-memory view of topics and partitions.
 *
 * The metadata store is the truth; the registry is the loop thread's copy
 * of it, so request handlers (Metadata, Produce, Fetch, admin APIs) answer
 * without a database round trip. It is loaded at start (synchronously,
 * before the loop runs), and changed by the admin APIs only after their
 * metadata write has committed (CreateTopics, DeleteTopics,
 * CreatePartitions, AlterConfigs ...).
 *
 * Two owners share a partition: the registry owns topic and partition
 * records (names, ids, counts, leader epochs, resolved configuration); the
 * data path owns each partition's log (WAL, tail, offsets, chunk index),
 * hung off `log`. The registry calls the data path's hooks when a
 * partition appears (at load, topic creation, partition addition) and when
 * it goes away (topic deletion, shutdown), and when a topic's
 * configuration changes.
 *
 * Thread: loop thread only (and the startup thread before the loop runs).
 * Memory: topics and partitions are heap-owned by the registry and stay at
 * a stable address until removed; handlers may keep pointers only for the
 * duration of a request, or take a reference (sh_registry_topic_ref) and
 * check `deleting` when they come back to it.
 */
#ifndef SH_REGISTRY_H
#define SH_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/sh_topic_config.h"
#include "broker/sh_topics.h"
#include "common/sh_err.h"
#include "common/sh_slice.h"
#include "meta/sh_meta.h"
#include "protocol/sh_wire.h"

typedef struct sh_registry sh_registry_t;
typedef struct sh_rtopic sh_rtopic_t;
typedef struct sh_plog sh_plog_t;   /* the data path's partition log */

/* How long a leadership lease taken by this broker lasts. Nothing renews
 * leases yet (cluster membership is a later milestone): a single broker
 * re-acquires its partitions at every start, which bumps their epochs, and
 * the epoch, not the lease, fences a stale writer. */
#define SH_REGISTRY_LEASE_MS 30000

typedef struct sh_rpartition {
    sh_rtopic_t *topic;
    int32_t index;
    int32_t leader_id;         /* this broker's node id when we lead it, else -1 */
    int32_t leader_epoch;      /* granted by sh_meta_partition_acquire */
    sh_plog_t *log;            /* data path state; NULL until its hook attached one */
    /* 0 when served; else what Metadata reports for it:
     * LEADER_NOT_AVAILABLE when leadership could not be taken or
     * partition_open failed. */
    int16_t error_code;
    bool opened;               /* partition_open succeeded: partition_close is owed */
} sh_rpartition_t;

struct sh_rtopic {
    sh_uuid_t id;
    char *name;                    /* NUL-terminated, heap */
    int32_t partition_count;
    sh_rpartition_t **partitions;  /* partition_count stable pointers */
    sh_topic_cfg_t cfg;            /* broker defaults + overrides, resolved */
    sh_meta_config_t *overrides;   /* the topic's own settings (heap strings) */
    size_t noverrides;
    int64_t created_ms;            /* wall clock, from the metadata store */
    bool deleting;                 /* DeleteTopics accepted (or the registry is
                                    * gone): no longer in the registry's indexes,
                                    * partitions closed; kept alive by refs */
    int refs;                      /* registry's own + in-flight admin operations */
};

typedef struct sh_registry_hooks {
    /* A partition this broker leads became available: open its log (WAL
     * replay, chunk index) and set p->log. An error keeps the partition
     * listed but unavailable (LEADER_NOT_AVAILABLE / KAFKA_STORAGE_ERROR). */
    sh_err_t (*partition_open)(void *arg, sh_rpartition_t *p);
    /* The partition goes away: `deleted` when its topic was deleted (drop
     * its WAL and data), false at shutdown. Must clear p->log. */
    void (*partition_close)(void *arg, sh_rpartition_t *p, bool deleted);
    /* t->cfg changed (AlterConfigs and friends). May be NULL. */
    void (*config_changed)(void *arg, sh_rtopic_t *t);
    /* A deleted topic was dropped from the metadata store and these segment
     * objects no longer hold any live chunk: delete them from the object
     * store, then sh_meta_objects_forget() them. keys are borrowed for the
     * call (copy what you keep). May be NULL: the objects then stay listed
     * by sh_meta_objects_unreferenced() for a later sweep. Loop thread. */
    void (*objects_purge)(void *arg, const char *const *keys, size_t n);
    void *arg;
} sh_registry_hooks_t;

/* New, empty registry over an open metadata store. */
sh_registry_t *sh_registry_new(sh_meta_t *meta, const sh_config_t *cfg, int32_t node_id);
/* Close every partition (hooks, deleted=false) and free everything. */
void sh_registry_free(sh_registry_t *r);

void sh_registry_set_hooks(sh_registry_t *r, const sh_registry_hooks_t *hooks);

/* Startup, before the loop runs: read every live topic, its partitions and
 * configuration overrides, take leadership of each partition (bumping its
 * leader epoch), and call partition_open for each. Topics found in state
 * "deleting" are handed to the deletion path again. */
sh_err_t sh_registry_load(sh_registry_t *r);

sh_rtopic_t *sh_registry_find(sh_registry_t *r, sh_slice_t name);
sh_rtopic_t *sh_registry_find_id(sh_registry_t *r, sh_uuid_t id);
sh_rpartition_t *sh_registry_partition(sh_registry_t *r, sh_slice_t topic, int32_t index);

/* Iterate live (not deleting) topics in name order; returns count. The
 * array is the registry's own: valid until the next change. */
size_t sh_registry_topics(sh_registry_t *r, sh_rtopic_t ***out);

/* Keep t allocated across an asynchronous step (it may be deleted and
 * leave the registry meanwhile: check t->deleting afterwards). */
void sh_registry_topic_ref(sh_rtopic_t *t);
void sh_registry_topic_unref(sh_rtopic_t *t);

/* The node id partitions are led by, and the broker configuration. */
int32_t sh_registry_node_id(const sh_registry_t *r);
const sh_config_t *sh_registry_config(const sh_registry_t *r);

/* ------------------------------------------------------------------ */
/* Changes. Each validates nothing beyond what the store checks (handlers
 * validate names, counts and configs first), submits one metadata op and
 * returns SH_OK; cb then runs exactly once on the loop thread, after the
 * registry was updated and the hooks were called. Any other return (logged
 * by nobody: SH_E_NOMEM, SH_E_CLOSED at shutdown) means cb will not run.
 * err in cb is SH_OK, a Kafka code from the store (TOPIC_ALREADY_EXISTS,
 * INVALID_PARTITIONS, UNKNOWN_TOPIC_OR_PARTITION for a topic deleted
 * meanwhile, ...) or an internal error (SH_E_IO, SH_E_AGAIN); t is the
 * topic concerned, valid during cb, NULL when creation failed. */
typedef void (*sh_registry_done_fn)(void *arg, sh_err_t err, sh_rtopic_t *t);

/* CreateTopics / auto-creation: create the topic with `partitions`
 * partitions and these overrides (copied; values non-NULL), take
 * leadership of every partition, add it, partition_open each. */
sh_err_t sh_registry_topic_create(sh_registry_t *r, sh_slice_t name, int32_t partitions,
                                  const sh_meta_config_t *configs, size_t nconfigs,
                                  sh_registry_done_fn cb, void *arg);

/* DeleteTopics: mark the topic deleting in the store; then remove it from
 * the registry, partition_close(deleted=true) each partition, call cb, and
 * in the background drop it from the store and hand its freed segment
 * objects to objects_purge. */
sh_err_t sh_registry_topic_delete(sh_registry_t *r, sh_rtopic_t *t, sh_registry_done_fn cb,
                                  void *arg);

/* CreatePartitions: grow t to new_count partitions, take and open the new
 * ones. */
sh_err_t sh_registry_partitions_add(sh_registry_t *r, sh_rtopic_t *t, int32_t new_count,
                                    sh_registry_done_fn cb, void *arg);

/* AlterConfigs (replace_all) / IncrementalAlterConfigs: store the changes
 * (a NULL value removes an override), reload the topic's overrides,
 * re-resolve t->cfg and call config_changed. */
sh_err_t sh_registry_configs_alter(sh_registry_t *r, sh_rtopic_t *t,
                                   const sh_meta_config_t *changes, size_t n, bool replace_all,
                                   sh_registry_done_fn cb, void *arg);

/* Metadata operations submitted by the registry whose completion has not
 * run yet (tests, shutdown checks). */
int sh_registry_pending(const sh_registry_t *r);

/* For admin handlers: set dup[i] for every names[i] that occurs more than
 * once in names[0..n) (null names never match). O(n log n), so a request
 * listing a million topics costs no more than reading it. dup is zeroed
 * first. SH_E_NOMEM if the arena is exhausted. */
sh_err_t sh_registry_names_dups(sh_arena_t *a, const sh_slice_t *names, size_t n, bool *dup);
/* Same, but set later[i] only for repeats: names[i] equals an earlier
 * names[j], j < i (the first mention stays false). */
sh_err_t sh_registry_names_repeats(sh_arena_t *a, const sh_slice_t *names, size_t n,
                                   bool *later);

/* The sh_topics_t adapter Metadata uses (sh_broker_set_topics). */
extern const sh_topics_ops_t sh_registry_topics_ops;

sh_meta_t *sh_registry_meta(sh_registry_t *r);

#endif
