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
 * duration of a request (or check `removed` on a held reference).
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

/* The sh_topics_t adapter Metadata uses (sh_broker_set_topics). */
extern const sh_topics_ops_t sh_registry_topics_ops;

sh_meta_t *sh_registry_meta(sh_registry_t *r);

#endif
