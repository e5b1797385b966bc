/*
 * sh_broker.c - broker lifecycle: data directory and identity, listening
 * sockets and accept, the before-sleep service pass over connections,
 * signals and orderly shutdown.
 *
 * Thread: sh_broker_new/listen/free on the main thread, everything else
 * on the loop thread (sh_broker_run's caller); sh_broker_stop from any.
 * Ownership: the broker owns its loop, listener sockets and every
 * connection (closed by sh_broker_run on the way out); the config is
 * borrowed.
 */
#include "broker/sh_broker.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/sh_conn.h"
#include "broker/sh_datapath.h"
#include "broker/sh_dispatch.h"
#include "broker/sh_fetch_session.h"
#include "broker/sh_group.h"
#include "broker/sh_meta_properties.h"
#include "broker/sh_producer_ids.h"
#include "common/sh_clock.h"
#include "common/sh_log.h"
#include "meta/sh_meta.h"

#define LISTEN_BACKLOG 1024
#define ACCEPTS_PER_EVENT 64
#define ACCEPT_RETRY_MS 100

static void broker_service(sh_loop_t *loop, void *arg);

/* ------------------------------------------------------ metadata store */

static void broker_on_meta(sh_loop_io_t *io, uint32_t events)
{
    sh_broker_t *b = io->arg;
    (void)events;
    sh_meta_drain(b->meta);
}

/* Open the metadata store, take the cluster id from it (meta.properties
 * caches it and must agree), then load the topic registry. Startup
 * thread, before the loop runs: the direct (blocking) calls are fine. */
static sh_err_t broker_meta_start(sh_broker_t *b)
{
    const sh_config_t *cfg = b->cfg;
    char id[SH_META_CLUSTER_ID_LEN + 1];
    sh_err_t err = sh_meta_properties_mkdirs(cfg->data_dir);
    if (err) {
        sh_log(SH_LOG_ERROR, "broker", "could not create data directory \"%s\"",
               cfg->data_dir);
        return err;
    }
    err = sh_meta_open(cfg->metadata_url, &b->meta);
    if (err) {
        sh_log(SH_LOG_ERROR, "broker", "could not open the metadata store (error %d)", err);
        return err;
    }
    sh_loop_io_init(&b->meta_io, sh_meta_fd(b->meta), broker_on_meta, b);
    if ((err = sh_loop_io_add(b->loop, &b->meta_io, SH_LOOP_READ)) != SH_OK)
        return err;
    if ((err = sh_meta_cluster_id_get(b->meta, id)) != SH_OK) {
        sh_log(SH_LOG_ERROR, "broker", "could not read the cluster id from the metadata "
                                       "store (error %d)", err);
        return err;
    }
    if ((err = sh_meta_properties_check(cfg->data_dir, cfg->node_id, id)) != SH_OK)
        return err;
    memcpy(b->cluster_id, id, sizeof(b->cluster_id));

    b->registry = sh_registry_new(b->meta, cfg, b->node_id);
    if (!b->registry)
        return SH_E_NOMEM;
    /* Partition logs ask it for producer epoch floors from their open on. */
    b->producer_ids = sh_producer_ids_new(b);
    if (!b->producer_ids)
        return SH_E_NOMEM;
    /* The data path sets its registry hooks here, before the load opens
     * the partitions. */
    b->datapath = sh_datapath_new(b);
    if (!b->datapath)
        return SH_E_IO;
    if ((err = sh_registry_load(b->registry)) != SH_OK)
        return err;
    sh_broker_set_topics(b, &sh_registry_topics_ops, b->registry);
    /* groups holding committed offsets are listed again after a restart */
    sh_group_config_t gc;
    sh_group_config_from(&gc, cfg);
    sh_group_clock_t gclock = sh_group_clock_loop(b->loop);
    b->groups = sh_group_coord_new(&gc, &gclock, b->meta, &b->topics);
    if (!b->groups)
        return SH_E_INVAL;
    return sh_group_coord_load(b->groups);
}

/* After the listeners are bound, so advertised ports are known. */
static sh_err_t broker_meta_register(sh_broker_t *b)
{
    sh_meta_endpoint_t eps[SH_CONFIG_MAX_LISTENERS];
    sh_meta_broker_t reg = {.broker_id = b->node_id, .rack = NULL};
    if (!b->meta)
        return SH_OK;
    for (int i = 0; i < b->nlisteners; i++) {
        eps[i].listener = b->cfg->listener[i].name;
        eps[i].host = b->advertised[i].host;
        eps[i].port = b->advertised[i].port;
        eps[i].security_protocol = 0; /* PLAINTEXT, the only one served */
    }
    reg.endpoints = eps;
    reg.nendpoints = (size_t)b->nlisteners;
    sh_err_t err = sh_meta_broker_register(b->meta, &reg, sh_clock_wall_ms(), &b->broker_epoch);
    if (err)
        sh_log(SH_LOG_ERROR, "broker", "could not register broker %d in the metadata store "
                                       "(error %d)", b->node_id, err);
    else
        sh_log(SH_LOG_INFO, "broker", "registered as broker %d (epoch %lld)", b->node_id,
               (long long)b->broker_epoch);
    if (!err)
        sh_datapath_set_writer_epoch(b->datapath, b->broker_epoch);
    return err;
}

/* Close the store first: it runs the done callbacks of queued ops, which
 * update the registry and finish (orphaned) requests; then the registry
 * closes every partition. */
static void broker_meta_stop(sh_broker_t *b)
{
    if (b->meta) {
        if (b->loop)
            sh_loop_io_del(b->loop, &b->meta_io);
        sh_meta_close(b->meta);
        b->meta = NULL;
    }
    sh_broker_set_topics(b, NULL, NULL);
    sh_registry_free(b->registry);
    b->registry = NULL;
}

sh_broker_t *sh_broker_new(const sh_config_t *cfg)
{
    sh_broker_t *b = calloc(1, sizeof(*b));
    if (!b) {
        sh_log(SH_LOG_ERROR, "broker", "out of memory");
        return NULL;
    }
    b->cfg = cfg;
    b->node_id = cfg->node_id;
    b->max_request_bytes = cfg->socket_request_max_bytes;
    b->idle_ms = cfg->connections_max_idle_ms;
    b->req_bytes_max = cfg->queued_max_request_bytes;
    b->conn_max_inflight = SH_CONN_MAX_INFLIGHT;
    b->conn_max_unsent = SH_CONN_MAX_UNSENT_BYTES;
    b->topics.ops = &sh_topics_empty_ops;
    b->dispatch = sh_dispatch_table;
    b->dispatch_count = sh_dispatch_count;
    for (int i = 0; i < SH_CONFIG_MAX_LISTENERS; i++)
        b->listeners[i].fd = -1;

    if (!sh_dispatch_check(b->dispatch, b->dispatch_count))
        goto fail;
    b->loop = sh_loop_new();
    if (!b->loop)
        goto fail;
    sh_fetch_session_config_t fsc = {
        .max_slots = cfg->max_incremental_fetch_session_cache_slots,
        .eviction_ms = cfg->fetch_session_eviction_ms,
        .max_bytes = cfg->fetch_session_cache_bytes,
    };
    b->fetch_sessions = sh_fetch_session_cache_new(&fsc);
    if (!b->fetch_sessions)
        goto fail;
    if (broker_meta_start(b) != SH_OK)
        goto fail;
    sh_loop_before_sleep_add(b->loop, &b->service_hook, broker_service, b);
    return b;
fail:
    sh_broker_free(b);
    return NULL;
}

/* ---------------------------------------------------------- listeners */

static void listener_resume(sh_timer_t *t, void *arg)
{
    sh_listener_t *l = arg;
    (void)t;
    if (l->fd >= 0 && !l->broker->shutting_down)
        sh_loop_io_set(l->broker->loop, &l->io, SH_LOOP_READ);
}

static void listener_on_io(sh_loop_io_t *io, uint32_t events)
{
    sh_listener_t *l = io->arg;
    sh_broker_t *b = l->broker;
    (void)events;
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            /* Out of descriptors or memory: the pending connection stays
             * queued and level-triggered epoll would spin, so stop
             * watching the listener for a moment. */
            sh_log(SH_LOG_WARN, "broker",
                   "could not accept connection on %s: %s; pausing accepts "
                   "for %d ms (%zu connections open)",
                   b->cfg->listener[l->index].name, strerror(errno),
                   ACCEPT_RETRY_MS, b->nconns);
            sh_loop_io_set(b->loop, &l->io, 0);
            sh_loop_timer_arm(b->loop, &l->retry_timer, ACCEPT_RETRY_MS);
            return;
        }
        sh_conn_new(b, fd, l->index, (struct sockaddr *)&ss, sl);
    }
}

/* Bind one listener; empty host (or "::") means every address. */
static int listener_bind(const sh_config_listener_t *cl, int *bound_port)
{
    struct addrinfo hints = {0}, *res = NULL, *ai;
    char port[16];
    const char *host = cl->host[0] ? cl->host : NULL;
    int fd = -1, one = 1, gai;

    snprintf(port, sizeof(port), "%d", cl->port);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    hints.ai_family = host ? AF_UNSPEC : AF_INET6;
    gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0 && !host) {
        hints.ai_family = AF_INET; /* no IPv6 on this machine */
        gai = getaddrinfo(NULL, port, &hints, &res);
    }
    if (gai != 0) {
        sh_log(SH_LOG_ERROR, "broker", "could not resolve listener address \"%s:%d\": %s",
               cl->host, cl->port, gai_strerror(gai));
        return -1;
    }
    int last_errno = 0;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6 && !host) {
            int zero = 0; /* dual stack: IPv4 too */
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, LISTEN_BACKLOG) == 0)
            break;
        last_errno = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        sh_log(SH_LOG_ERROR, "broker", "could not listen on \"%s:%d\": %s",
               cl->host[0] ? cl->host : "*", cl->port, strerror(last_errno));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    *bound_port = cl->port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            *bound_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            *bound_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return fd;
}

sh_err_t sh_broker_listen(sh_broker_t *b)
{
    const sh_config_t *cfg = b->cfg;
    for (int i = 0; i < cfg->listener_count; i++) {
        sh_listener_t *l = &b->listeners[i];
        int port = 0;
        int fd = listener_bind(&cfg->listener[i], &port);
        if (fd < 0)
            return SH_E_IO;
        l->broker = b;
        l->index = i;
        l->fd = fd;
        l->port = port;
        b->nlisteners = i + 1;
        sh_loop_io_init(&l->io, fd, listener_on_io, l);
        sh_timer_init(&l->retry_timer, listener_resume, l);
        if (sh_loop_io_add(b->loop, &l->io, SH_LOOP_READ) != SH_OK)
            return SH_E_IO;
        b->advertised[i] = cfg->advertised[i];
        if (b->advertised[i].port == 0)
            b->advertised[i].port = port;
        sh_log(SH_LOG_INFO, "broker", "listening on %s:%d (listener %s, advertised as %s:%d)",
               cfg->listener[i].host[0] ? cfg->listener[i].host : "*", port,
               cfg->listener[i].name, b->advertised[i].host, b->advertised[i].port);
    }
    return broker_meta_register(b);
}

int sh_broker_port(const sh_broker_t *b, int i)
{
    return i >= 0 && i < b->nlisteners ? b->listeners[i].port : -1;
}

sh_err_t sh_broker_set_dispatch(sh_broker_t *b, const sh_api_entry_t *table,
                                size_t count)
{
    if (!sh_dispatch_check(table, count))
        return SH_E_INVAL;
    b->dispatch = table;
    b->dispatch_count = count;
    return SH_OK;
}

void sh_broker_set_topics(sh_broker_t *b, const sh_topics_ops_t *ops, void *ctx)
{
    b->topics.ops = ops ? ops : &sh_topics_empty_ops;
    b->topics.ctx = ctx;
}

/* ------------------------------------------------- connection service */

void sh_broker_conn_pending(sh_broker_t *b, sh_conn_t *c)
{
    if (c->pending)
        return;
    c->pending = true;
    c->pend_prev = NULL;
    c->pend_next = b->pending;
    if (b->pending)
        b->pending->pend_prev = c;
    b->pending = c;
}

static void pending_remove(sh_broker_t *b, sh_conn_t *c)
{
    if (!c->pending)
        return;
    if (c->pend_prev)
        c->pend_prev->pend_next = c->pend_next;
    else
        b->pending = c->pend_next;
    if (c->pend_next)
        c->pend_next->pend_prev = c->pend_prev;
    c->pend_prev = c->pend_next = NULL;
    c->pending = false;
}

static void mem_wait_remove(sh_broker_t *b, sh_conn_t *c)
{
    if (!c->mem_wait)
        return;
    if (c->mem_prev)
        c->mem_prev->mem_next = c->mem_next;
    else
        b->mem_waiters = c->mem_next;
    if (c->mem_next)
        c->mem_next->mem_prev = c->mem_prev;
    c->mem_prev = c->mem_next = NULL;
    c->mem_wait = false;
}

bool sh_broker_frame_admit(sh_broker_t *b, sh_conn_t *c, size_t size)
{
    /* Always admit into an empty budget, so a frame larger than the whole
     * budget (but within socket.request.max.bytes) still gets through. */
    if (b->req_bytes_max <= 0 || b->req_bytes == 0 ||
        b->req_bytes + (int64_t)size <= b->req_bytes_max) {
        b->req_bytes += (int64_t)size;
        return true;
    }
    if (!c->mem_wait) {
        c->mem_wait = true;
        c->mem_prev = NULL;
        c->mem_next = b->mem_waiters;
        if (b->mem_waiters)
            b->mem_waiters->mem_prev = c;
        b->mem_waiters = c;
    }
    return false;
}

void sh_broker_frame_release(sh_broker_t *b, sh_block_t *frame)
{
    b->req_bytes -= (int64_t)frame->size;
    sh_block_unref(frame);
    /* Let every waiter try again; those that still do not fit wait anew. */
    while (b->mem_waiters) {
        sh_conn_t *c = b->mem_waiters;
        mem_wait_remove(b, c);
        sh_broker_conn_pending(b, c);
    }
}

void sh_broker_conn_unlink(sh_broker_t *b, sh_conn_t *c)
{
    pending_remove(b, c);
    mem_wait_remove(b, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        b->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    b->nconns--;
}

/* Before sleeping: write responses, resume paused readers, close what
 * asked to be closed. Servicing may queue more work (a resumed reader's
 * requests finish at once), which this same pass picks up. */
static void broker_service(sh_loop_t *loop, void *arg)
{
    sh_broker_t *b = arg;
    (void)loop;
    while (b->pending) {
        sh_conn_t *c = b->pending;
        pending_remove(b, c);
        sh_conn_service(c);
    }
}

/* ------------------------------------------------------------- signals */

static void broker_on_signal(sh_loop_t *loop, int signo, void *arg)
{
    sh_broker_t *b = arg;
    if (signo == SIGHUP) {
        sh_log(SH_LOG_INFO, "broker", "received SIGHUP; configuration reload is not "
                                      "supported, ignored");
        return;
    }
    if (!b->shutting_down)
        sh_log(SH_LOG_INFO, "broker", "received %s, shutting down",
               signo == SIGTERM ? "SIGTERM" : "SIGINT");
    sh_loop_stop(loop);
}

sh_err_t sh_broker_handle_signals(sh_broker_t *b)
{
    return sh_loop_signals_start(b->loop, broker_on_signal, b);
}

/* ----------------------------------------------------------- lifecycle */

static void broker_close_listeners(sh_broker_t *b)
{
    for (int i = 0; i < b->nlisteners; i++) {
        sh_listener_t *l = &b->listeners[i];
        if (l->fd < 0)
            continue;
        sh_loop_io_del(b->loop, &l->io);
        sh_loop_timer_cancel(b->loop, &l->retry_timer);
        close(l->fd);
        l->fd = -1;
    }
}

static void broker_close_all(sh_broker_t *b)
{
    b->shutting_down = true;
    broker_close_listeners(b);
    size_t n = b->nconns;
    while (b->conns)
        sh_conn_close_now(b->conns, "broker shutting down");
    if (n)
        sh_log(SH_LOG_INFO, "broker", "closed %zu client connections", n);
}

sh_err_t sh_broker_run(sh_broker_t *b)
{
    sh_log(SH_LOG_INFO, "broker", "broker %d ready (cluster id %s)", b->node_id,
           b->cluster_id);
    sh_err_t err = sh_loop_run(b->loop);
    if (err)
        sh_log(SH_LOG_ERROR, "broker", "event loop failed, shutting down");
    else
        sh_log(SH_LOG_INFO, "broker", "shutting down");
    broker_close_all(b);
    return err;
}

void sh_broker_stop(sh_broker_t *b)
{
    sh_loop_stop(b->loop);
}

void sh_broker_free(sh_broker_t *b)
{
    if (!b)
        return;
    if (b->loop)
        broker_close_all(b);
    /* The data path lets its upload finish while the metadata store is
     * open, and outlives the registry, whose free closes the partitions
     * through its hooks. */
    /* Parked JoinGroup/SyncGroup get their answers (their connections are
     * gone, so this frees them); the coordinator itself outlives the
     * metadata store, whose last completions still report to it. */
    sh_group_coord_stop(b->groups);
    sh_datapath_stop(b->datapath);
    broker_meta_stop(b);
    sh_group_coord_free(b->groups);
    b->groups = NULL;
    sh_datapath_free(b->datapath);
    b->datapath = NULL;
    /* the data path has answered every parked fetch; a fetch holds its
     * session by reference anyway, so this frees only the cache's */
    sh_fetch_session_cache_free(b->fetch_sessions);
    b->fetch_sessions = NULL;
    /* after the store: its last completions answer InitProducerId */
    sh_producer_ids_free(b->producer_ids);
    b->producer_ids = NULL;
    if (b->loop) {
        if (b->requests_live)
            sh_log(SH_LOG_WARN, "broker",
                   "%llu requests still held by handlers at shutdown",
                   (unsigned long long)b->requests_live);
        sh_loop_before_sleep_remove(b->loop, &b->service_hook);
        sh_loop_free(b->loop);
    }
    free(b);
}
