/*
 * sh_meta.c - the front end of the metadata store: URL parsing, argument
 * checks shared by every backend, the per-store mutex, and the async
 * runner that moves operations off the event loop.
 *
 * Threads: sh_meta_open/close and the runner's submit/drain run on the
 * loop thread (open also before the loop exists). The sh_meta_* operations
 * run on the metadata worker (an sh_workq with the backend's thread
 * count) or on any thread that may block; each takes m->lock for the whole
 * backend call, because one backend connection must not run two
 * transactions at once.
 *
 * Ownership: sh_meta_t owns the backend connection and the worker pool.
 * Ops are the caller's (see sh_meta.h). Results live in caller arenas.
 */
#include "meta/sh_meta.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "common/sh_log.h"
#include "meta/sh_meta_backend.h"

struct sh_meta {
    const sh_meta_backend_t *be;
    sh_meta_conn_t *conn;
    sh_workq_t *wq;
    pthread_mutex_t lock; /* one backend call at a time */
};

/* ---------------------------------------------------------------------- */
/* Pure helpers                                                            */

static const char sh_b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void sh_meta_uuid_str(sh_uuid_t id, char out[SH_META_CLUSTER_ID_LEN + 1])
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (int i = 0; i < 16; i++) {
        acc = (acc << 8) | id.b[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = sh_b64url[(acc >> bits) & 0x3f];
        }
    }
    /* 128 bits = 21 groups of 6 plus 2 bits, padded with zeros */
    out[o++] = sh_b64url[(acc << (6 - bits)) & 0x3f];
    out[o] = '\0';
}

sh_err_t sh_meta_uuid_random(sh_uuid_t *out)
{
    for (;;) {
        size_t got = 0;
        while (got < sizeof(out->b)) {
            ssize_t r = getrandom(out->b + got, sizeof(out->b) - got, 0);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                sh_log(SH_LOG_ERROR, "meta", "could not read random bytes: %s",
                       strerror(errno));
                return SH_E_IO;
            }
            got += (size_t)r;
        }
        /* RFC 4122 version 4, as java.util.UUID.randomUUID makes them */
        out->b[6] = (uint8_t)((out->b[6] & 0x0f) | 0x40);
        out->b[8] = (uint8_t)((out->b[8] & 0x3f) | 0x80);
        /* Kafka's Uuid.randomUuid also refuses ids whose text starts with
         * '-' (they read as command-line options); the version bits
         * already rule out Uuid.ZERO and the metadata topic id. */
        if ((out->b[0] >> 2) != 62)
            return SH_OK;
    }
}

sh_err_t sh_meta_topic_name_check(const char *name)
{
    if (!name)
        return SH_KERR_INVALID_TOPIC_EXCEPTION;
    size_t len = strlen(name);
    if (len == 0 || len > SH_META_TOPIC_NAME_MAX)
        return SH_KERR_INVALID_TOPIC_EXCEPTION;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return SH_KERR_INVALID_TOPIC_EXCEPTION;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok)
            return SH_KERR_INVALID_TOPIC_EXCEPTION;
    }
    return SH_OK;
}

static int sh_meta_strp_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Config keys must be non-empty and distinct (Kafka refuses duplicates in
 * one request); sorted so a hostile request with many keys costs
 * n log n, not n^2. need_value: CreateTopics has no "delete" entries.
 */
static sh_err_t sh_meta_configs_check(const sh_meta_config_t *cfg, size_t n, int need_value)
{
    if (n == 0)
        return SH_OK;
    if (!cfg)
        return SH_E_INVAL;
    const char **keys = malloc(n * sizeof(*keys));
    if (!keys)
        return SH_E_NOMEM;
    sh_err_t err = SH_OK;
    for (size_t i = 0; i < n; i++) {
        if (!cfg[i].key || !cfg[i].key[0] || (need_value && !cfg[i].value)) {
            err = SH_KERR_INVALID_CONFIG;
            goto out;
        }
        keys[i] = cfg[i].key;
    }
    qsort(keys, n, sizeof(*keys), sh_meta_strp_cmp);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(keys[i - 1], keys[i]) == 0) {
            err = SH_KERR_INVALID_CONFIG;
            goto out;
        }
    }
out:
    free(keys);
    return err;
}

/*
 * The value of every "password=" query parameter becomes "***" (libpq
 * URIs may carry the password there as well as before the '@'). Takes r
 * and returns its replacement; NULL (r freed) when out of memory.
 */
static char *sh_meta_url_redact_query(char *r)
{
    char *q = strchr(r, '?');
    while (q) {
        char *p = q + 1;
        char *end = p + strcspn(p, "&#");
        if (strncasecmp(p, "password=", 9) == 0) {
            char *v = p + 9;
            size_t tail = strlen(end);
            size_t off = (size_t)(v - r);
            char *nr = malloc(off + 3 + tail + 1);
            if (!nr) {
                free(r);
                return NULL;
            }
            memcpy(nr, r, off);
            memcpy(nr + off, "***", 3);
            memcpy(nr + off + 3, end, tail + 1);
            free(r);
            r = nr;
            end = r + off + 3;
        }
        q = *end == '&' ? end : NULL;
    }
    return r;
}

/*
 * Copy of url with any password replaced by "***", for log lines:
 * PostgreSQL URLs carry credentials and logs are shipped around.
 */
static char *sh_meta_url_redact(const char *url)
{
    char *r = strdup(url);
    if (!r || !(r = sh_meta_url_redact_query(r)))
        return NULL;
    char *auth = strstr(r, "://");
    if (!auth)
        return r;
    auth += 3;
    char *end = auth + strcspn(auth, "/?#");
    char *at = NULL;
    for (char *p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    if (!at)
        return r;
    char *colon = memchr(auth, ':', (size_t)(at - auth));
    if (!colon)
        return r;
    /* "***" is never longer than what it replaces plus ":" and "@" */
    size_t tail = strlen(at);
    if ((size_t)(at - colon - 1) >= 3) {
        memcpy(colon + 1, "***", 3);
        memmove(colon + 4, at, tail + 1);
    } else {
        char *nr = malloc((size_t)(colon + 1 - r) + 3 + tail + 1);
        if (!nr) {
            free(r);
            return NULL;
        }
        memcpy(nr, r, (size_t)(colon + 1 - r));
        memcpy(nr + (colon + 1 - r), "***", 3);
        memcpy(nr + (colon + 1 - r) + 3, at, tail + 1);
        free(r);
        r = nr;
    }
    return r;
}

/* ---------------------------------------------------------------------- */
/* Opening and closing                                                     */

sh_err_t sh_meta_open_backend(const sh_meta_backend_t *be, sh_meta_conn_t *c,
                              sh_meta_t **out)
{
    *out = NULL;
    sh_meta_t *m = calloc(1, sizeof(*m));
    if (!m)
        goto fail;
    m->be = be;
    m->conn = c;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        m = NULL;
        goto fail;
    }
    m->wq = sh_workq_new(be->nthreads > 0 ? be->nthreads : 1, "meta");
    if (!m->wq)
        goto fail;
    *out = m;
    return SH_OK;
fail:
    if (m) {
        pthread_mutex_destroy(&m->lock);
        free(m);
    }
    be->close(c);
    return SH_E_NOMEM;
}

sh_err_t sh_meta_open(const char *url, sh_meta_t **out)
{
    *out = NULL;
    if (!url || !url[0]) {
        sh_log(SH_LOG_ERROR, "meta", "metadata URL is empty");
        return SH_E_INVAL;
    }
    sh_err_t err;
    const sh_meta_backend_t *be = &sh_meta_sqlite_backend;
    sh_meta_conn_t *c = NULL;
    char *shown = sh_meta_url_redact(url);
    if (!shown)
        return SH_E_NOMEM;

    const char *path = url;
    const char *sep = strstr(url, "://");
    if (sep) {
        size_t slen = (size_t)(sep - url);
        if (slen == 6 && strncasecmp(url, "sqlite", 6) == 0) {
            path = sep + 3;
        } else if ((slen == 10 && strncasecmp(url, "postgresql", 10) == 0) ||
                   (slen == 8 && strncasecmp(url, "postgres", 8) == 0)) {
            /* libpq takes the URL as it is (its own query parameters,
             * PG* environment for what is missing) */
            be = &sh_meta_pg_backend;
            err = sh_meta_pg_connect(url, shown, &c);
            goto opened;
        } else {
            sh_log(SH_LOG_ERROR, "meta",
                   "metadata URL \"%s\" has an unknown scheme \"%.*s\"; expected "
                   "sqlite:// or postgresql://",
                   shown, (int)slen, url);
            err = SH_E_UNSUPPORTED;
            goto fail;
        }
    }
    if (!path[0]) {
        sh_log(SH_LOG_ERROR, "meta", "metadata URL \"%s\" names no database file", shown);
        err = SH_E_INVAL;
        goto fail;
    }
    if (strchr(path, '?')) {
        /* refuse rather than create a file literally named "x.db?mode=ro" */
        sh_log(SH_LOG_ERROR, "meta",
               "metadata URL \"%s\": query parameters are not supported for SQLite", shown);
        err = SH_E_INVAL;
        goto fail;
    }

    err = sh_meta_sqlite_connect(path, shown, &c);
opened:
    if (err != SH_OK)
        goto fail;
    err = sh_meta_open_backend(be, c, out);
    if (err != SH_OK)
        goto fail;
    int dbv = 0, codev = 0;
    sh_meta_schema_version(*out, &dbv, &codev);
    sh_log(SH_LOG_INFO, "meta", "opened metadata store \"%s\" (%s, schema version %d)",
           shown, be->name, dbv);
    free(shown);
    return SH_OK;
fail:
    free(shown);
    return err;
}

void sh_meta_close(sh_meta_t *m)
{
    if (!m)
        return;
    /* Finishes queued ops and runs their done callbacks before returning,
     * so no op outlives the store it points to. */
    sh_workq_free(m->wq);
    m->be->close(m->conn);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

const char *sh_meta_backend_name(const sh_meta_t *m)
{
    return m->be->name;
}

/* ---------------------------------------------------------------------- */
/* Async runner                                                            */

static void sh_meta_op_work(sh_workq_job_t *job)
{
    sh_meta_op_t *op = (sh_meta_op_t *)job;
    op->err = op->run(op->meta, op);
}

static void sh_meta_op_done(sh_workq_job_t *job)
{
    sh_meta_op_t *op = (sh_meta_op_t *)job;
    if (op->done)
        op->done(op);
}

sh_err_t sh_meta_submit(sh_meta_t *m, sh_meta_op_t *op)
{
    if (!op || !op->run)
        return SH_E_INVAL;
    op->meta = m;
    op->err = SH_OK;
    op->job.work = sh_meta_op_work;
    op->job.done = sh_meta_op_done;
    return sh_workq_submit(m->wq, &op->job);
}

int sh_meta_fd(const sh_meta_t *m)
{
    return sh_workq_fd(m->wq);
}

int sh_meta_drain(sh_meta_t *m)
{
    return sh_workq_drain(m->wq);
}

/* ---------------------------------------------------------------------- */
/* Operations: check, lock, call the backend                               */

#define SH_META_CALL(m, fn, ...)                                               \
    do {                                                                       \
        pthread_mutex_lock(&(m)->lock);                                        \
        sh_err_t err_ = (m)->be->fn((m)->conn, __VA_ARGS__);                   \
        pthread_mutex_unlock(&(m)->lock);                                      \
        return err_;                                                           \
    } while (0)

#define SH_META_LIST_RESET(out, n)                                             \
    do {                                                                       \
        if (out)                                                               \
            *(out) = NULL;                                                     \
        if (n)                                                                 \
            *(n) = 0;                                                          \
    } while (0)

sh_err_t sh_meta_schema_version(sh_meta_t *m, int *db_version, int *code_version)
{
    *db_version = 0;
    *code_version = 0;
    SH_META_CALL(m, schema_version, db_version, code_version);
}

sh_err_t sh_meta_testing_schema_version_set(sh_meta_t *m, int version)
{
    SH_META_CALL(m, testing_schema_version_set, version, 1);
}

sh_err_t sh_meta_testing_schema_version_unset(sh_meta_t *m, int version)
{
    SH_META_CALL(m, testing_schema_version_set, version, 0);
}

sh_err_t sh_meta_cluster_id_get(sh_meta_t *m, char out[SH_META_CLUSTER_ID_LEN + 1])
{
    out[0] = '\0';
    sh_uuid_t u;
    char candidate[SH_META_CLUSTER_ID_LEN + 1];
    sh_err_t err = sh_meta_uuid_random(&u);
    if (err != SH_OK)
        return err;
    sh_meta_uuid_str(u, candidate);
    SH_META_CALL(m, cluster_id_get, candidate, out);
}

static sh_err_t sh_meta_broker_check(const sh_meta_broker_t *b)
{
    if (!b || b->broker_id < 0 || (b->nendpoints && !b->endpoints))
        return SH_E_INVAL;
    for (size_t i = 0; i < b->nendpoints; i++) {
        const sh_meta_endpoint_t *e = &b->endpoints[i];
        if (!e->listener || !e->listener[0] || !e->host || !e->host[0] || e->port < 0 ||
            e->port > 65535)
            return SH_E_INVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(b->endpoints[j].listener, e->listener) == 0)
                return SH_E_INVAL;
    }
    return SH_OK;
}

sh_err_t sh_meta_broker_register(sh_meta_t *m, const sh_meta_broker_t *b, int64_t now_ms,
                                 int64_t *broker_epoch)
{
    *broker_epoch = -1;
    if (sh_meta_broker_check(b) != SH_OK)
        return SH_E_INVAL;
    SH_META_CALL(m, broker_register, b, now_ms, broker_epoch);
}

sh_err_t sh_meta_broker_heartbeat(sh_meta_t *m, int32_t broker_id, int64_t broker_epoch,
                                  int64_t now_ms)
{
    SH_META_CALL(m, broker_heartbeat, broker_id, broker_epoch, now_ms);
}

sh_err_t sh_meta_broker_unregister(sh_meta_t *m, int32_t broker_id, int64_t broker_epoch)
{
    SH_META_CALL(m, broker_unregister, broker_id, broker_epoch);
}

sh_err_t sh_meta_broker_list(sh_meta_t *m, int64_t alive_since_ms, sh_arena_t *a,
                             sh_meta_broker_t **out, size_t *n)
{
    SH_META_LIST_RESET(out, n);
    SH_META_CALL(m, broker_list, alive_since_ms, a, out, n);
}

sh_err_t sh_meta_topic_create(sh_meta_t *m, const char *name, int32_t partitions,
                              const sh_meta_config_t *configs, size_t nconfigs,
                              int64_t now_ms, sh_uuid_t *topic_id)
{
    sh_err_t err;
    memset(topic_id, 0, sizeof(*topic_id));
    if ((err = sh_meta_topic_name_check(name)) != SH_OK)
        return err;
    if (partitions < 1 || partitions > SH_META_PARTITIONS_MAX)
        return SH_KERR_INVALID_PARTITIONS;
    if ((err = sh_meta_configs_check(configs, nconfigs, 1)) != SH_OK)
        return err;
    sh_uuid_t id;
    if ((err = sh_meta_uuid_random(&id)) != SH_OK)
        return err;
    pthread_mutex_lock(&m->lock);
    err = m->be->topic_create(m->conn, id, name, partitions, configs, nconfigs, now_ms);
    pthread_mutex_unlock(&m->lock);
    if (err == SH_OK)
        *topic_id = id;
    return err;
}

sh_err_t sh_meta_topic_get_by_name(sh_meta_t *m, const char *name, sh_arena_t *a,
                                   sh_meta_topic_t *out)
{
    memset(out, 0, sizeof(*out));
    if (sh_meta_topic_name_check(name) != SH_OK)
        return SH_KERR_UNKNOWN_TOPIC_OR_PARTITION; /* cannot exist */
    SH_META_CALL(m, topic_get_by_name, name, a, out);
}

sh_err_t sh_meta_topic_get_by_id(sh_meta_t *m, sh_uuid_t topic_id, sh_arena_t *a,
                                 sh_meta_topic_t *out)
{
    memset(out, 0, sizeof(*out));
    SH_META_CALL(m, topic_get_by_id, topic_id, a, out);
}

sh_err_t sh_meta_topic_list(sh_meta_t *m, sh_arena_t *a, sh_meta_topic_t **out, size_t *n)
{
    SH_META_LIST_RESET(out, n);
    SH_META_CALL(m, topic_list, a, out, n);
}

sh_err_t sh_meta_topic_mark_deleting(sh_meta_t *m, sh_uuid_t topic_id)
{
    SH_META_CALL(m, topic_mark_deleting, topic_id);
}

sh_err_t sh_meta_topic_drop(sh_meta_t *m, sh_uuid_t topic_id, sh_arena_t *a,
                            sh_meta_object_t **freed, size_t *nfreed)
{
    SH_META_LIST_RESET(freed, nfreed);
    SH_META_CALL(m, topic_drop, topic_id, a, freed, nfreed);
}

sh_err_t sh_meta_topic_objects(sh_meta_t *m, sh_uuid_t topic_id, sh_arena_t *a,
                               sh_meta_object_t **out, size_t *n)
{
    SH_META_LIST_RESET(out, n);
    SH_META_CALL(m, topic_objects, topic_id, a, out, n);
}

sh_err_t sh_meta_topic_partitions_add(sh_meta_t *m, sh_uuid_t topic_id, int32_t new_count)
{
    if (new_count < 1 || new_count > SH_META_PARTITIONS_MAX)
        return SH_KERR_INVALID_PARTITIONS;
    SH_META_CALL(m, topic_partitions_add, topic_id, new_count);
}

sh_err_t sh_meta_topic_configs_get(sh_meta_t *m, sh_uuid_t topic_id, sh_arena_t *a,
                                   sh_meta_config_t **out, size_t *n)
{
    SH_META_LIST_RESET(out, n);
    SH_META_CALL(m, topic_configs_get, topic_id, a, out, n);
}

sh_err_t sh_meta_topic_configs_alter(sh_meta_t *m, sh_uuid_t topic_id,
                                     const sh_meta_config_t *changes, size_t n,
                                     int replace_all)
{
    sh_err_t err = sh_meta_configs_check(changes, n, 0);
    if (err != SH_OK)
        return err;
    SH_META_CALL(m, topic_configs_alter, topic_id, changes, n, replace_all);
}

sh_err_t sh_meta_partition_get(sh_meta_t *m, sh_meta_tp_t tp, sh_meta_partition_t *out)
{
    memset(out, 0, sizeof(*out));
    if (tp.partition < 0)
        return SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    SH_META_CALL(m, partition_get, tp, out);
}

sh_err_t sh_meta_partition_list(sh_meta_t *m, sh_uuid_t topic_id, sh_arena_t *a,
                                sh_meta_partition_t **out, size_t *n)
{
    SH_META_LIST_RESET(out, n);
    SH_META_CALL(m, partition_list, topic_id, a, out, n);
}

sh_err_t sh_meta_partition_acquire(sh_meta_t *m, sh_meta_tp_t tp, int32_t broker_id,
                                   int32_t expected_epoch, int64_t now_ms,
                                   int64_t lease_expiry_ms, int32_t *new_epoch)
{
    *new_epoch = -1;
    if (tp.partition < 0)
        return SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (broker_id < 0 || expected_epoch < -1 || expected_epoch == INT32_MAX)
        return SH_E_INVAL;
    SH_META_CALL(m, partition_acquire, tp, broker_id, expected_epoch, now_ms,
                 lease_expiry_ms, new_epoch);
}

sh_err_t sh_meta_partition_renew(sh_meta_t *m, sh_meta_tp_t tp, int32_t leader_epoch,
                                 int64_t lease_expiry_ms)
{
    if (tp.partition < 0)
        return SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (leader_epoch < 0)
        return SH_E_INVAL;
    SH_META_CALL(m, partition_renew, tp, leader_epoch, lease_expiry_ms);
}

sh_err_t sh_meta_partition_release(sh_meta_t *m, sh_meta_tp_t tp, int32_t leader_epoch)
{
    if (tp.partition < 0)
        return SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (leader_epoch < 0)
        return SH_E_INVAL;
    SH_META_CALL(m, partition_release, tp, leader_epoch);
}

sh_err_t sh_meta_partition_log_start_advance(sh_meta_t *m, sh_meta_tp_t tp,
                                             int64_t new_log_start, sh_arena_t *a,
                                             sh_meta_object_t **freed, size_t *nfreed)
{
    SH_META_LIST_RESET(freed, nfreed);
    if (tp.partition < 0)
        return SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (new_log_start < 0)
        return SH_E_INVAL;
    SH_META_CALL(m, partition_log_start_advance, tp, new_log_start, a, freed, nfreed);
}

static sh_err_t sh_meta_chunks_check(const char *key, int64_t object_size,
                                     const sh_meta_chunk_t *chunks, size_t n)
{
    if (!key || !key[0] || object_size < 0 || n == 0 || !chunks)
        return SH_E_INVAL;
    for (size_t i = 0; i < n; i++) {
        const sh_meta_chunk_t *c = &chunks[i];
        if (c->partition < 0 || c->base_offset < 0 || c->last_offset < c->base_offset ||
            c->last_offset == INT64_MAX || c->byte_offset < 0 || c->byte_length <= 0 ||
            c->byte_offset > object_size - c->byte_length || c->leader_epoch < 0)
            return SH_E_INVAL;
        if (c->object_key && strcmp(c->object_key, key) != 0)
            return SH_E_INVAL;
    }
    return SH_OK;
}

sh_err_t sh_meta_chunks_commit(sh_meta_t *m, const char *object_key, int64_t object_size,
                               const sh_meta_chunk_t *chunks, size_t n, int64_t now_ms)
{
    if (sh_meta_chunks_check(object_key, object_size, chunks, n) != SH_OK) {
        sh_log(SH_LOG_ERROR, "meta", "refusing to commit object \"%s\": invalid chunk list",
               object_key ? object_key : "(null)");
        return SH_E_INVAL;
    }
    SH_META_CALL(m, chunks_commit, object_key, object_size, chunks, n, now_ms);
}

sh_err_t sh_meta_chunks_find(sh_meta_t *m, sh_meta_tp_t tp, int64_t offset, size_t limit,
                             sh_arena_t *a, sh_meta_chunk_t **out, size_t *n)
{
    SH_META_LIST_RESET(out, n);
    if (tp.partition < 0)
        return SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (limit == 0 || limit > INT32_MAX)
        return SH_E_INVAL;
    SH_META_CALL(m, chunks_find, tp, offset, limit, a, out, n);
}

sh_err_t sh_meta_chunks_find_by_time(sh_meta_t *m, sh_meta_tp_t tp, int64_t timestamp,
                                     sh_arena_t *a, sh_meta_chunk_t *out)
{
    memset(out, 0, sizeof(*out));
    if (tp.partition < 0)
        return SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    SH_META_CALL(m, chunks_find_by_time, tp, timestamp, a, out);
}

sh_err_t sh_meta_partition_size(sh_meta_t *m, sh_meta_tp_t tp, int64_t *bytes,
                                int64_t *nchunks)
{
    *bytes = 0;
    *nchunks = 0;
    if (tp.partition < 0)
        return SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    SH_META_CALL(m, partition_size, tp, bytes, nchunks);
}

sh_err_t sh_meta_retention_by_time(sh_meta_t *m, sh_meta_tp_t tp, int64_t cutoff_ms,
                                   int64_t *new_log_start)
{
    *new_log_start = 0;
    if (tp.partition < 0)
        return SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    SH_META_CALL(m, retention_by_time, tp, cutoff_ms, new_log_start);
}

sh_err_t sh_meta_retention_by_size(sh_meta_t *m, sh_meta_tp_t tp, int64_t retain_bytes,
                                   int64_t *new_log_start)
{
    *new_log_start = 0;
    if (tp.partition < 0)
        return SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (retain_bytes < 0)
        return SH_E_INVAL;
    SH_META_CALL(m, retention_by_size, tp, retain_bytes, new_log_start);
}

sh_err_t sh_meta_objects_unreferenced(sh_meta_t *m, size_t limit, sh_arena_t *a,
                                      sh_meta_object_t **out, size_t *n)
{
    SH_META_LIST_RESET(out, n);
    if (limit == 0 || limit > INT32_MAX)
        return SH_E_INVAL;
    SH_META_CALL(m, objects_unreferenced, limit, a, out, n);
}

sh_err_t sh_meta_objects_forget(sh_meta_t *m, const char *const *keys, size_t n)
{
    if (n == 0)
        return SH_OK;
    if (!keys)
        return SH_E_INVAL;
    for (size_t i = 0; i < n; i++)
        if (!keys[i])
            return SH_E_INVAL;
    SH_META_CALL(m, objects_forget, keys, n);
}

sh_err_t sh_meta_producer_ids_allocate(sh_meta_t *m, int32_t broker_id, int32_t count,
                                       int64_t now_ms, int64_t *first_id)
{
    *first_id = -1;
    if (broker_id < 0 || count < 1 || count > 1000000)
        return SH_E_INVAL;
    SH_META_CALL(m, producer_ids_allocate, broker_id, count, now_ms, first_id);
}

sh_err_t sh_meta_producer_init(sh_meta_t *m, int64_t producer_id, int64_t now_ms)
{
    if (producer_id < 0)
        return SH_E_INVAL;
    SH_META_CALL(m, producer_init, producer_id, now_ms);
}

sh_err_t sh_meta_producer_bump(sh_meta_t *m, int64_t producer_id, int16_t epoch,
                               int64_t now_ms, sh_meta_producer_t *out)
{
    memset(out, 0, sizeof(*out));
    out->producer_id = producer_id;
    out->epoch = out->last_epoch = -1;
    if (producer_id < 0 || epoch < 0 || epoch > SH_META_PRODUCER_EPOCH_MAX)
        return SH_E_INVAL;
    SH_META_CALL(m, producer_bump, producer_id, epoch, now_ms, out);
}

sh_err_t sh_meta_producer_epochs(sh_meta_t *m, const int64_t *ids, size_t n, int16_t *epochs)
{
    for (size_t i = 0; epochs && i < n; i++)
        epochs[i] = -1;
    if (n == 0)
        return SH_OK;
    if (!ids || !epochs)
        return SH_E_INVAL;
    SH_META_CALL(m, producer_epochs, ids, n, epochs);
}

sh_err_t sh_meta_producer_snapshots_put(sh_meta_t *m, sh_meta_producer_snapshot_t *snaps,
                                        size_t n, int64_t now_ms)
{
    if (n == 0)
        return SH_OK;
    if (!snaps)
        return SH_E_INVAL;
    for (size_t i = 0; i < n; i++) {
        sh_meta_producer_snapshot_t *s = &snaps[i];
        if (!s->data || s->tp.partition < 0 || s->as_of_offset < 0 ||
            (s->ntouched && !s->touched))
            return SH_E_INVAL;
        s->result = SH_E_INVAL;
        for (size_t j = 0; j < s->ntouched; j++)
            if (s->touched[j].producer_id < 0)
                return SH_E_INVAL;
    }
    SH_META_CALL(m, producer_snapshots_put, snaps, n, now_ms);
}

static int touch_agg_cmp(const void *a, const void *b)
{
    int64_t x = ((const sh_meta_touch_agg_t *)a)->producer_id;
    int64_t y = ((const sh_meta_touch_agg_t *)b)->producer_id;
    return x < y ? -1 : x > y;
}

sh_err_t sh_meta_touches_collect(const sh_meta_producer_snapshot_t *snaps, size_t n,
                                 sh_meta_touch_agg_t **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (snaps[i].result == SH_OK)
            total += snaps[i].ntouched;
    if (total == 0)
        return SH_OK;
    sh_meta_touch_agg_t *a = malloc(total * sizeof(*a));
    if (!a)
        return SH_E_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (snaps[i].result != SH_OK)
            continue;
        for (size_t j = 0; j < snaps[i].ntouched; j++) {
            const sh_meta_producer_touch_t *t = &snaps[i].touched[j];
            a[k++] = (sh_meta_touch_agg_t){t->producer_id, t->epoch, t->seen_ms, -1};
        }
    }
    qsort(a, k, sizeof(*a), touch_agg_cmp);
    size_t u = 0;
    for (size_t i = 0; i < k; i++) {
        if (u && a[u - 1].producer_id == a[i].producer_id) {
            if (a[i].epoch > a[u - 1].epoch)
                a[u - 1].epoch = a[i].epoch;
            if (a[i].seen_ms > a[u - 1].seen_ms)
                a[u - 1].seen_ms = a[i].seen_ms;
            continue;
        }
        a[u++] = a[i];
    }
    *out = a;
    *nout = u;
    return SH_OK;
}

void sh_meta_touches_apply(sh_meta_producer_snapshot_t *snaps, size_t n,
                           const sh_meta_touch_agg_t *agg, size_t nagg)
{
    for (size_t i = 0; i < n; i++) {
        if (snaps[i].result != SH_OK)
            continue;
        for (size_t j = 0; j < snaps[i].ntouched; j++) {
            sh_meta_producer_touch_t *t = &snaps[i].touched[j];
            sh_meta_touch_agg_t key = {.producer_id = t->producer_id};
            const sh_meta_touch_agg_t *hit =
                nagg ? bsearch(&key, agg, nagg, sizeof(*agg), touch_agg_cmp) : NULL;
            t->recorded_epoch = hit ? hit->recorded : -1;
        }
    }
}

sh_err_t sh_meta_producer_snapshot_get(sh_meta_t *m, sh_meta_tp_t tp, int64_t max_offset,
                                       sh_arena_t *a, int64_t *as_of, const char **data)
{
    *as_of = -1;
    *data = NULL;
    if (tp.partition < 0 || !a)
        return SH_E_INVAL;
    SH_META_CALL(m, producer_snapshot_get, tp, max_offset, a, as_of, data);
}

sh_err_t sh_meta_producers_expire(sh_meta_t *m, int64_t cutoff_ms, int64_t *removed)
{
    int64_t dummy;
    if (!removed)
        removed = &dummy;
    *removed = 0;
    SH_META_CALL(m, producers_expire, cutoff_ms, removed);
}

/* ---------------------------------------------------------------------- */
/* Consumer group offsets                                                  */

static sh_err_t sh_meta_offset_keys_check(const sh_meta_offset_key_t *keys, size_t n)
{
    if (n && !keys)
        return SH_E_INVAL;
    for (size_t i = 0; i < n; i++)
        if (!keys[i].topic || !keys[i].topic[0] || keys[i].partition < SH_META_ALL_PARTITIONS)
            return SH_E_INVAL;
    return SH_OK;
}

sh_err_t sh_meta_offsets_commit(sh_meta_t *m, const char *group_id,
                                const sh_meta_offset_t *offsets, size_t n)
{
    if (!group_id || (n && !offsets))
        return SH_E_INVAL;
    if (n == 0)
        return SH_OK;
    for (size_t i = 0; i < n; i++)
        if (!offsets[i].topic || !offsets[i].topic[0] || offsets[i].partition < 0)
            return SH_E_INVAL;
    SH_META_CALL(m, offsets_commit, group_id, offsets, n);
}

sh_err_t sh_meta_offsets_fetch(sh_meta_t *m, const char *group_id,
                               const sh_meta_offset_key_t *keys, size_t nkeys,
                               sh_arena_t *a, sh_meta_offset_t **out, size_t *n)
{
    SH_META_LIST_RESET(out, n);
    if (!group_id || !out || !n)
        return SH_E_INVAL;
    if (!keys || nkeys == 0)
        SH_META_CALL(m, offsets_fetch_all, group_id, a, out, n);
    if (sh_meta_offset_keys_check(keys, nkeys) != SH_OK)
        return SH_E_INVAL;
    SH_META_CALL(m, offsets_fetch, group_id, keys, nkeys, a, out, n);
}

sh_err_t sh_meta_offsets_delete(sh_meta_t *m, const char *group_id,
                                const sh_meta_offset_key_t *keys, size_t nkeys,
                                int64_t *remaining)
{
    *remaining = 0;
    if (!group_id || sh_meta_offset_keys_check(keys, nkeys) != SH_OK)
        return SH_E_INVAL;
    SH_META_CALL(m, offsets_delete, group_id, keys, nkeys, remaining);
}

sh_err_t sh_meta_group_delete(sh_meta_t *m, const char *group_id, int64_t *deleted)
{
    *deleted = 0;
    if (!group_id)
        return SH_E_INVAL;
    SH_META_CALL(m, group_delete, group_id, deleted);
}

sh_err_t sh_meta_groups_list(sh_meta_t *m, sh_arena_t *a, sh_meta_group_summary_t **out,
                             size_t *n)
{
    SH_META_LIST_RESET(out, n);
    SH_META_CALL(m, groups_list, a, out, n);
}

sh_err_t sh_meta_offsets_expire(sh_meta_t *m, const char *const *groups, size_t ngroups,
                                int64_t cutoff_ms, int64_t *removed)
{
    int64_t dummy;
    if (!removed)
        removed = &dummy;
    *removed = 0;
    if (ngroups == 0)
        return SH_OK;
    if (!groups)
        return SH_E_INVAL;
    for (size_t i = 0; i < ngroups; i++)
        if (!groups[i])
            return SH_E_INVAL;
    SH_META_CALL(m, offsets_expire, groups, ngroups, cutoff_ms, removed);
}
