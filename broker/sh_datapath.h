/*
 * sh_datapath.h - the broker's partition data path: the WAL manager
 * (<log.dirs>/wal), the object store (streamhouse.storage.url), the read
 * cache, the uploader, the retention engine (storage/sh_retention.h:
 * retention passes, DeleteRecords, deletion of unreferenced objects), and
 * one partition log (storage/sh_plog.h) per
 * partition this broker leads, attached to the topic registry through its
 * hooks. Produce, Fetch and ListOffsets reach partitions through here.
 * docs/data-path.md tells the whole story; ADR 005 the decisions.
 *
 * Loop integration: the WAL's and the object store's descriptors are
 * watched on the loop; a before-sleep hook drives the uploader (so a byte
 * threshold reached while serving requests starts an upload in the same
 * iteration) and re-arms its timer; the metadata store's descriptor is the
 * broker's.
 *
 * Lifecycle (sh_broker.c):
 *   sh_datapath_new     after sh_registry_new, before sh_registry_load
 *                       (sets the hooks, so the load opens every log)
 *   sh_datapath_set_writer_epoch   after the broker registered itself
 *   sh_datapath_stop    before the metadata store closes: finishes or
 *                       abandons the upload in flight, answers parked
 *                       fetches, closes the object store
 *   sh_datapath_free    after the registry closed every partition
 *
 * Thread: loop thread (new/stop/free on the startup thread).
 */
#ifndef SH_DATAPATH_H
#define SH_DATAPATH_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/sh_loop.h"
#include "broker/sh_registry.h"
#include "broker/sh_types.h"
#include "common/sh_err.h"
#include "storage/sh_cache.h"
#include "storage/sh_objstore.h"
#include "storage/sh_plog.h"
#include "storage/sh_retention.h"
#include "storage/sh_uploader.h"
#include "wal/sh_wal.h"

typedef struct sh_datapath sh_datapath_t;
typedef struct sh_dp_waiter sh_dp_waiter_t;

/* A request parked in the data path (a Fetch long poll): stop() calls
 * finish so nothing is left holding a request at shutdown. */
struct sh_dp_waiter {
    void (*finish)(sh_dp_waiter_t *w);
    sh_dp_waiter_t *prev, *next;
    bool linked;
};

struct sh_datapath {
    sh_broker_t *broker;
    sh_loop_t *loop;
    const sh_config_t *cfg;
    sh_meta_t *meta;
    sh_registry_t *registry;
    int32_t node_id;

    sh_wal_mgr_t *wal;
    sh_loop_io_t wal_io;
    sh_objstore_t *store;
    sh_loop_io_t store_io;
    sh_timer_t store_timer;
    sh_cache_t *cache;
    sh_uploader_t *uploader;
    sh_plog_observer_t observer;  /* given to every plog: the uploader's, plus a wake-up */
    sh_timer_t upload_timer;
    sh_retention_t *retention;    /* retention passes, DeleteRecords, object GC */
    sh_timer_t retention_timer;
    sh_loop_hook_t hook;

    sh_dp_waiter_t *waiters;
    struct sh_dp_read *reads;     /* object reads in flight (coalesced) */
    bool stopping;
    uint64_t purges;              /* deleted-topic objects purged */
};

sh_datapath_t *sh_datapath_new(sh_broker_t *b);
void sh_datapath_set_writer_epoch(sh_datapath_t *dp, int64_t epoch);
void sh_datapath_stop(sh_datapath_t *dp);
void sh_datapath_free(sh_datapath_t *dp);

/*
 * The log of partition `index` of topic `name`, when this broker serves
 * it; else NULL with *err the Kafka code to answer:
 * UNKNOWN_TOPIC_OR_PARTITION (no such topic or partition, or it is being
 * deleted), NOT_LEADER_OR_FOLLOWER (another broker leads it, or this one
 * was fenced), LEADER_NOT_AVAILABLE (its log failed to open). *rp (may be
 * NULL) gets the registry's partition.
 */
sh_plog_t *sh_datapath_partition(sh_datapath_t *dp, sh_slice_t topic, int32_t index,
                                 sh_rpartition_t **rp, sh_err_t *err);

/* The same for a topic looked up by id (Fetch v13+). */
sh_plog_t *sh_datapath_partition_id(sh_datapath_t *dp, sh_uuid_t topic_id, int32_t index,
                                    sh_rpartition_t **rp, sh_err_t *err);

void sh_datapath_waiter_add(sh_datapath_t *dp, sh_dp_waiter_t *w);
void sh_datapath_waiter_remove(sh_datapath_t *dp, sh_dp_waiter_t *w);

/*
 * Read a whole chunk of a segment object. A cache hit returns SH_OK with
 * *hit set (the caller owns one block reference). Otherwise a ranged GET
 * starts (or joins one in flight for the same chunk), SH_E_AGAIN is
 * returned, and cb(arg, err, block) runs later on the loop with err SH_OK
 * and the chunk bytes (block borrowed for the call; the cache has them
 * too), or KAFKA_STORAGE_ERROR. Any other return: the read could not
 * start (cb will not run).
 */
typedef void (*sh_dp_read_fn)(void *arg, sh_err_t err, sh_block_t *block);
sh_err_t sh_datapath_chunk_read(sh_datapath_t *dp, const sh_plog_chunk_loc_t *loc,
                                sh_cache_ref_t *hit, sh_dp_read_fn cb, void *arg);

/* Drive the uploader now (tests). */
void sh_datapath_kick(sh_datapath_t *dp);

#endif
