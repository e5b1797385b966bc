/*
 * sh_broker.h - the broker process state: configuration, loop,
 * listeners, connections, identity (node id, cluster id) and the
 * services handlers reach through it (topics, later storage and groups).
 *
 * Thread: the loop thread owns everything here once sh_broker_run() has
 * started; only sh_broker_stop() may be called from another thread.
 * Ownership: the broker owns the loop, listening sockets and connections;
 * the config is borrowed and must outlive the broker.
 */
#ifndef SH_BROKER_H
#define SH_BROKER_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/sh_config.h"
#include "broker/sh_loop.h"
#include "broker/sh_registry.h"
#include "broker/sh_topics.h"
#include "broker/sh_types.h"

#define SH_BROKER_VERSION "0.1.0"
#define SH_CLUSTER_ID_LEN 22

typedef struct sh_listener {
    sh_broker_t *broker;
    int index;                 /* in cfg->listener[] */
    int fd;
    int port;                  /* bound port (differs from cfg when 0) */
    sh_loop_io_t io;
    sh_timer_t retry_timer;    /* re-enable accept after EMFILE */
} sh_listener_t;

struct sh_broker {
    const sh_config_t *cfg;
    sh_loop_t *loop;
    int32_t node_id;
    char cluster_id[SH_CLUSTER_ID_LEN + 1];

    sh_listener_t listeners[SH_CONFIG_MAX_LISTENERS];
    int nlisteners;
    /* advertised endpoints with bound ports filled in, per listener */
    sh_config_listener_t advertised[SH_CONFIG_MAX_LISTENERS];

    sh_conn_t *conns;          /* every open connection */
    size_t nconns;
    uint64_t next_conn_id;
    sh_conn_t *pending;        /* connections with before-sleep work */
    sh_loop_hook_t service_hook;

    sh_topics_t topics;
    sh_meta_t *meta;           /* metadata store (streamhouse.metadata.url) */
    sh_loop_io_t meta_io;      /* its completion eventfd */
    int64_t broker_epoch;      /* from sh_meta_broker_register */
    sh_registry_t *registry;   /* topics and partitions; b->topics reads it */
    struct sh_datapath *datapath; /* WAL, objects, partition logs (sh_datapath.h) */
    struct sh_group_coord *groups; /* consumer group coordinator (sh_group.h) */
    struct sh_producer_ids *producer_ids; /* idempotent producers (sh_producer_ids.h) */
    struct sh_fetch_session_cache *fetch_sessions; /* KIP-227 sessions (sh_fetch_session.h) */
    const sh_api_entry_t *dispatch;   /* served APIs, in api_key order */
    size_t dispatch_count;

    /* limits, from config (tests may lower them) */
    int32_t max_request_bytes;
    int64_t req_bytes_max;     /* queued.max.request.bytes; <= 0: none */
    int64_t req_bytes;         /* frame bytes of live requests and partial frames */
    sh_conn_t *mem_waiters;    /* connections waiting for req_bytes to drop */
    int64_t idle_ms;
    uint32_t conn_max_inflight;
    size_t conn_max_unsent;

    bool shutting_down;
    uint64_t requests_total;
    uint64_t requests_live;    /* allocated, not yet freed (incl. orphans) */
};

/* Create a broker: event loop, data directory, metadata store (cluster id,
 * cached in meta.properties) and the topic registry loaded from it.
 * Nothing listens yet. NULL on failure (logged). */
sh_broker_t *sh_broker_new(const sh_config_t *cfg);

/* Bind and listen on every listener; log "listening on"; then register
 * this broker and its advertised endpoints in the metadata store. */
sh_err_t sh_broker_listen(sh_broker_t *b);

/* Also watch SIGTERM/SIGINT (SIGHUP is logged and ignored). */
sh_err_t sh_broker_handle_signals(sh_broker_t *b);

/* Run until stopped, then close listeners and connections. */
sh_err_t sh_broker_run(sh_broker_t *b);

/* Ask the loop to stop; any thread. */
void sh_broker_stop(sh_broker_t *b);

/* Requests still held by handlers (orphans) point at the broker: finish
 * or drain the lower layers that hold them before freeing it. */
void sh_broker_free(sh_broker_t *b);

/* Bound port of listener i (useful with port 0). */
int sh_broker_port(const sh_broker_t *b, int i);

/* Replace the topic source (the default knows no topics). */
void sh_broker_set_topics(sh_broker_t *b, const sh_topics_ops_t *ops, void *ctx);

/* Serve a different API table (tests, embedding); it must stay valid.
 * SH_E_INVAL if it fails sh_dispatch_check. Call before sh_broker_run. */
sh_err_t sh_broker_set_dispatch(sh_broker_t *b, const sh_api_entry_t *table,
                                size_t count);

/* --- connection-layer helpers --- */
void sh_broker_conn_pending(sh_broker_t *b, sh_conn_t *c);
void sh_broker_conn_unlink(sh_broker_t *b, sh_conn_t *c);
/* Request-memory budget: may a frame of `size` bytes be allocated now?
 * If not, c waits (reading paused) until frames are released. */
bool sh_broker_frame_admit(sh_broker_t *b, sh_conn_t *c, size_t size);
/* Give back a frame's budget and drop the caller's reference. */
void sh_broker_frame_release(sh_broker_t *b, sh_block_t *frame);

#endif
