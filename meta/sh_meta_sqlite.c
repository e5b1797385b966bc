/*
 * sh_meta_sqlite.c - the SQLite metadata backend: one connection, used
 * synchronously.
 *
 * Threads: every entry runs on the metadata worker (or on a thread that
 * may block, before the loop starts) with the sh_meta_t mutex held, so the
 * connection is opened SQLITE_OPEN_NOMUTEX and never used concurrently.
 *
 * Durability: WAL journal mode with synchronous=FULL, so a COMMIT returns
 * only after the WAL file is fsync'd; a metadata commit that returned
 * SH_OK survives a crash of the process or the machine.
 *
 * Transactions: every entry that writes starts with BEGIN IMMEDIATE (take
 * the write lock first, so a read-then-write never has to upgrade and no
 * other process can slip in between the check and the update); entries
 * that read more than one statement use a deferred BEGIN for a consistent
 * snapshot. Every failure path rolls back through one `fail` label.
 *
 * Statements are prepared once, on first use, and cached for the life of
 * the connection (SQLITE_PREPARE_PERSISTENT).
 *
 * Ownership: the connection struct owns the sqlite3 handle and the cached
 * statements; results are copied into the caller's arena before the
 * statement is reset.
 */
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>

#include "common/sh_clock.h"
#include "common/sh_log.h"
#include "meta/sh_meta_backend.h"

#define SQ_BUSY_TIMEOUT_MS 5000

#define SQ_PARTITION_COLS                                                      \
    "topic_id, partition_index, leader_id, leader_epoch, lease_expiry_ms, "    \
    "log_start_offset, high_watermark"
#define SQ_CHUNK_COLS                                                          \
    "topic_id, partition_index, base_offset, last_offset, max_timestamp, "     \
    "object_key, byte_offset, byte_length, leader_epoch"
#define SQ_TOPIC_COLS "topic_id, name, partition_count, created_ms, state"
#define SQ_OFFSET_COLS                                                         \
    "topic_name, partition_index, committed_offset, leader_epoch, metadata, "  \
    "commit_ms"

/* Decrement live_chunks of every object holding chunks that the matching
 * DELETE is about to remove; the RETURNING rows tell which reached zero. */
#define SQ_RELEASE(cond)                                                       \
    "UPDATE segment_objects SET live_chunks = live_chunks - "                  \
    "(SELECT count(*) FROM segment_chunks c "                                  \
    " WHERE c.object_key = segment_objects.object_key AND " cond ") "          \
    "WHERE object_key IN (SELECT c.object_key FROM segment_chunks c WHERE "    \
    cond ") RETURNING object_key, size_bytes, live_chunks"

#define SQ_STATEMENTS(X)                                                       \
    X(BEGIN_READ, "BEGIN")                                                     \
    X(BEGIN_WRITE, "BEGIN IMMEDIATE")                                          \
    X(COMMIT, "COMMIT")                                                        \
    X(ROLLBACK, "ROLLBACK")                                                    \
    X(VERSION_GET, "SELECT coalesce(max(version), 0) FROM schema_version")     \
    X(VERSION_ADD, "INSERT INTO schema_version (version, applied_ms, "         \
                   "description) VALUES (?1, ?2, ?3)")                         \
    X(VERSION_DEL, "DELETE FROM schema_version WHERE version = ?1")            \
    X(CLUSTER_ID_PUT, "INSERT INTO cluster (ckey, cvalue) VALUES "             \
                      "('cluster_id', ?1) ON CONFLICT (ckey) DO NOTHING")      \
    X(CLUSTER_ID_GET, "SELECT cvalue FROM cluster WHERE ckey = 'cluster_id'")  \
    X(BROKER_UPSERT,                                                           \
      "INSERT INTO brokers (broker_id, broker_epoch, rack, registered_ms, "    \
      "heartbeat_ms) VALUES (?1, 1, ?2, ?3, ?3) ON CONFLICT (broker_id) DO "   \
      "UPDATE SET broker_epoch = brokers.broker_epoch + 1, rack = "            \
      "excluded.rack, registered_ms = excluded.registered_ms, heartbeat_ms = " \
      "excluded.heartbeat_ms RETURNING broker_epoch")                          \
    X(BROKER_EP_CLEAR, "DELETE FROM broker_endpoints WHERE broker_id = ?1")    \
    X(BROKER_EP_ADD, "INSERT INTO broker_endpoints (broker_id, listener, "     \
                     "host, port, security_protocol) VALUES (?1, ?2, ?3, ?4, " \
                     "?5)")                                                    \
    X(BROKER_HEARTBEAT, "UPDATE brokers SET heartbeat_ms = "                   \
                        "max(heartbeat_ms, ?3) WHERE broker_id = ?1 AND "      \
                        "broker_epoch = ?2")                                   \
    X(BROKER_EPOCH, "SELECT broker_epoch FROM brokers WHERE broker_id = ?1")   \
    X(BROKER_DELETE, "DELETE FROM brokers WHERE broker_id = ?1 AND "           \
                     "broker_epoch = ?2")                                      \
    X(BROKER_LIST, "SELECT broker_id, broker_epoch, rack, registered_ms, "     \
                   "heartbeat_ms FROM brokers WHERE heartbeat_ms >= ?1 "       \
                   "ORDER BY broker_id")                                       \
    X(BROKER_EP_LIST,                                                          \
      "SELECT e.broker_id, e.listener, e.host, e.port, e.security_protocol "   \
      "FROM broker_endpoints e JOIN brokers b ON b.broker_id = e.broker_id "   \
      "WHERE b.heartbeat_ms >= ?1 ORDER BY e.broker_id, e.listener")           \
    X(TOPIC_NAME_TAKEN, "SELECT 1 FROM topics WHERE name = ?1")                \
    X(TOPIC_INSERT, "INSERT INTO topics (topic_id, name, partition_count, "    \
                    "created_ms, state) VALUES (?1, ?2, ?3, ?4, 0)")           \
    X(TOPIC_BY_NAME, "SELECT " SQ_TOPIC_COLS " FROM topics WHERE name = ?1")   \
    X(TOPIC_BY_ID, "SELECT " SQ_TOPIC_COLS " FROM topics WHERE topic_id = ?1") \
    X(TOPIC_LIST, "SELECT " SQ_TOPIC_COLS " FROM topics ORDER BY name")        \
    X(TOPIC_MARK_DELETING, "UPDATE topics SET state = 1 WHERE topic_id = ?1")  \
    X(TOPIC_SET_COUNT, "UPDATE topics SET partition_count = ?2 WHERE "         \
                       "topic_id = ?1")                                        \
    X(TOPIC_DELETE, "DELETE FROM topics WHERE topic_id = ?1")                  \
    X(TOPIC_RELEASE, SQ_RELEASE("c.topic_id = ?1"))                            \
    X(TOPIC_CHUNKS_DELETE, "DELETE FROM segment_chunks WHERE topic_id = ?1")   \
    X(TOPIC_OFFSETS_DELETE, "DELETE FROM group_offsets WHERE topic_name = ?1") \
    X(TOPIC_OBJECTS, "SELECT object_key, size_bytes, live_chunks FROM "        \
                     "segment_objects WHERE object_key IN (SELECT object_key " \
                     "FROM segment_chunks WHERE topic_id = ?1) ORDER BY "      \
                     "object_key")                                             \
    X(PARTITION_INSERT, "INSERT INTO partitions (topic_id, partition_index) "  \
                        "VALUES (?1, ?2)")                                     \
    X(CONFIG_PUT, "INSERT INTO topic_configs (topic_id, config_key, "          \
                  "config_value) VALUES (?1, ?2, ?3) ON CONFLICT (topic_id, "  \
                  "config_key) DO UPDATE SET config_value = "                  \
                  "excluded.config_value")                                     \
    X(CONFIG_DEL, "DELETE FROM topic_configs WHERE topic_id = ?1 AND "         \
                  "config_key = ?2")                                           \
    X(CONFIG_CLEAR, "DELETE FROM topic_configs WHERE topic_id = ?1")           \
    X(CONFIG_LIST, "SELECT config_key, config_value FROM topic_configs "       \
                   "WHERE topic_id = ?1 ORDER BY config_key")                  \
    X(PARTITION_GET, "SELECT " SQ_PARTITION_COLS " FROM partitions WHERE "     \
                     "topic_id = ?1 AND partition_index = ?2")                 \
    X(PARTITION_LIST, "SELECT " SQ_PARTITION_COLS " FROM partitions WHERE "    \
                      "topic_id = ?1 ORDER BY partition_index")                \
    X(PARTITION_STATE,                                                         \
      "SELECT p.leader_id, p.leader_epoch, p.lease_expiry_ms, "                \
      "p.high_watermark, t.state, p.log_start_offset FROM partitions p JOIN "  \
      "topics t ON t.topic_id = p.topic_id WHERE p.topic_id = ?1 AND "         \
      "p.partition_index = ?2")                                                \
    X(PARTITION_ACQUIRE,                                                       \
      "UPDATE partitions SET leader_id = ?3, leader_epoch = leader_epoch + 1," \
      " lease_expiry_ms = ?6 WHERE topic_id = ?1 AND partition_index = ?2 "    \
      "AND leader_epoch = ?4 AND (leader_id < 0 OR leader_id = ?3 OR "         \
      "lease_expiry_ms <= ?5) AND EXISTS (SELECT 1 FROM topics t WHERE "       \
      "t.topic_id = ?1 AND t.state = 0) RETURNING leader_epoch")               \
    X(PARTITION_RENEW, "UPDATE partitions SET lease_expiry_ms = ?4 WHERE "     \
                       "topic_id = ?1 AND partition_index = ?2 AND "           \
                       "leader_epoch = ?3 AND leader_id >= 0")                 \
    X(PARTITION_RELEASE, "UPDATE partitions SET leader_id = -1, "              \
                         "lease_expiry_ms = 0 WHERE topic_id = ?1 AND "        \
                         "partition_index = ?2 AND leader_epoch = ?3")         \
    X(PARTITION_ADVANCE_HWM,                                                   \
      "UPDATE partitions SET high_watermark = ?5 WHERE topic_id = ?1 AND "     \
      "partition_index = ?2 AND leader_epoch = ?3 AND high_watermark = ?4 "    \
      "AND EXISTS (SELECT 1 FROM topics t WHERE t.topic_id = ?1 AND "          \
      "t.state = 0)")                                                          \
    X(PARTITION_LOG_START, "UPDATE partitions SET log_start_offset = "         \
                           "max(log_start_offset, ?3) WHERE topic_id = ?1 "    \
                           "AND partition_index = ?2 RETURNING "               \
                           "log_start_offset")                                 \
    X(PARTITION_RELEASE_BELOW,                                                 \
      SQ_RELEASE("c.topic_id = ?1 AND c.partition_index = ?2 AND "             \
                 "c.last_offset < ?3"))                                        \
    X(PARTITION_CHUNKS_DELETE, "DELETE FROM segment_chunks WHERE topic_id = "  \
                               "?1 AND partition_index = ?2 AND last_offset "  \
                               "< ?3")                                         \
    X(OBJECT_INSERT, "INSERT INTO segment_objects (object_key, size_bytes, "   \
                     "live_chunks, created_ms) VALUES (?1, ?2, ?3, ?4) ON "    \
                     "CONFLICT (object_key) DO NOTHING")                       \
    X(OBJECT_SIZE, "SELECT size_bytes FROM segment_objects WHERE "             \
                   "object_key = ?1")                                          \
    X(OBJECT_LIVE, "SELECT live_chunks FROM segment_objects WHERE "            \
                   "object_key = ?1")                                          \
    X(OBJECT_FORGET, "DELETE FROM segment_objects WHERE object_key = ?1 AND "  \
                     "live_chunks = 0")                                        \
    X(OBJECTS_UNREFERENCED,                                                    \
      "SELECT object_key, size_bytes, live_chunks FROM segment_objects WHERE " \
      "live_chunks = 0 ORDER BY created_ms, object_key LIMIT ?1")              \
    X(CHUNK_INSERT,                                                            \
      "INSERT INTO segment_chunks (topic_id, partition_index, base_offset, "   \
      "last_offset, max_timestamp, object_key, byte_offset, byte_length, "     \
      "leader_epoch, committed_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "   \
      "?9, ?10)")                                                              \
    X(CHUNK_SAME, "SELECT count(*) FROM segment_chunks WHERE topic_id = ?1 "   \
                  "AND partition_index = ?2 AND base_offset = ?3 AND "         \
                  "last_offset = ?4 AND object_key = ?5 AND byte_offset = ?6 " \
                  "AND byte_length = ?7")                                      \
    X(CHUNKS_FIND, "SELECT " SQ_CHUNK_COLS " FROM segment_chunks WHERE "       \
                   "topic_id = ?1 AND partition_index = ?2 AND last_offset "   \
                   ">= ?3 ORDER BY last_offset LIMIT ?4")                      \
    X(CHUNKS_BY_TIME, "SELECT " SQ_CHUNK_COLS " FROM segment_chunks WHERE "    \
                      "topic_id = ?1 AND partition_index = ?2 AND "            \
                      "max_timestamp >= ?3 ORDER BY base_offset LIMIT 1")      \
    X(CHUNKS_SIZES, "SELECT last_offset, byte_length FROM segment_chunks "     \
                    "WHERE topic_id = ?1 AND partition_index = ?2 AND "        \
                    "last_offset >= ?3 ORDER BY base_offset")                  \
    X(PARTITION_SIZE, "SELECT coalesce(sum(byte_length), 0), count(*) FROM "   \
                      "segment_chunks WHERE topic_id = ?1 AND "                \
                      "partition_index = ?2 AND last_offset >= ?3")            \
    X(RETENTION_TIME, "SELECT min(base_offset) FROM segment_chunks WHERE "     \
                      "topic_id = ?1 AND partition_index = ?2 AND "            \
                      "max_timestamp >= ?3")                                   \
    X(PARTITION_EXISTS, "SELECT 1 FROM partitions WHERE topic_id = ?1 AND "    \
                        "partition_index = ?2")                                \
    X(TOPIC_EXISTS, "SELECT state, partition_count, name FROM topics WHERE "   \
                    "topic_id = ?1")                                           \
    X(PID_NEXT, "SELECT coalesce(max(first_id + block_size), 0) FROM "         \
                "producer_id_blocks")                                          \
    X(PID_INSERT, "INSERT INTO producer_id_blocks (first_id, block_size, "     \
                  "broker_id, allocated_ms) VALUES (?1, ?2, ?3, ?4)")         \
    X(PRODUCER_INIT, "INSERT INTO producers (producer_id, epoch, last_epoch, " \
                     "updated_ms) VALUES (?1, 0, -1, ?2)")                     \
    X(PRODUCER_GET, "SELECT epoch, last_epoch, updated_ms FROM producers "     \
                    "WHERE producer_id = ?1")                                  \
    X(PRODUCER_SET, "UPDATE producers SET epoch = ?2, last_epoch = ?3, "       \
                    "updated_ms = max(updated_ms, ?4) WHERE producer_id = ?1") \
    X(PRODUCER_TOUCH,                                                          \
      "INSERT INTO producers (producer_id, epoch, last_epoch, updated_ms) "    \
      "VALUES (?1, ?2, -1, ?3) ON CONFLICT (producer_id) DO UPDATE SET epoch " \
      "= max(producers.epoch, excluded.epoch), updated_ms = "                  \
      "max(producers.updated_ms, excluded.updated_ms) RETURNING epoch")        \
    X(PRODUCERS_EXPIRE, "DELETE FROM producers WHERE updated_ms < ?1")         \
    X(PSNAP_PUT,                                                               \
      "INSERT INTO producer_snapshots (topic_id, partition_index, "            \
      "as_of_offset, leader_epoch, created_ms, data) VALUES (?1, ?2, ?3, ?4, " \
      "?5, ?6) ON CONFLICT (topic_id, partition_index, as_of_offset) DO "      \
      "UPDATE SET leader_epoch = excluded.leader_epoch, created_ms = "         \
      "excluded.created_ms, data = excluded.data")                             \
    X(PSNAP_TRIM, "DELETE FROM producer_snapshots WHERE topic_id = ?1 AND "    \
                  "partition_index = ?2 AND as_of_offset < ?3")                \
    X(PSNAP_GET, "SELECT as_of_offset, data FROM producer_snapshots WHERE "    \
                 "topic_id = ?1 AND partition_index = ?2 AND as_of_offset <= " \
                 "?3 ORDER BY as_of_offset DESC LIMIT 1")                      \
    X(OFFSET_PUT,                                                              \
      "INSERT INTO group_offsets (group_id, topic_name, partition_index, "     \
      "committed_offset, leader_epoch, metadata, commit_ms) VALUES (?1, ?2, "  \
      "?3, ?4, ?5, ?6, ?7) ON CONFLICT (group_id, topic_name, "                \
      "partition_index) DO UPDATE SET committed_offset = "                     \
      "excluded.committed_offset, leader_epoch = excluded.leader_epoch, "      \
      "metadata = excluded.metadata, commit_ms = excluded.commit_ms")          \
    X(OFFSETS_OF_GROUP, "SELECT " SQ_OFFSET_COLS " FROM group_offsets WHERE "  \
                        "group_id = ?1 ORDER BY topic_name, partition_index")  \
    X(OFFSETS_OF_TOPIC, "SELECT " SQ_OFFSET_COLS " FROM group_offsets WHERE "  \
                        "group_id = ?1 AND topic_name = ?2 ORDER BY "          \
                        "partition_index")                                     \
    X(OFFSET_GET, "SELECT " SQ_OFFSET_COLS " FROM group_offsets WHERE "        \
                  "group_id = ?1 AND topic_name = ?2 AND partition_index = ?3") \
    X(OFFSET_DEL, "DELETE FROM group_offsets WHERE group_id = ?1 AND "         \
                  "topic_name = ?2 AND partition_index = ?3")                  \
    X(OFFSETS_DEL_TOPIC, "DELETE FROM group_offsets WHERE group_id = ?1 AND "  \
                         "topic_name = ?2")                                    \
    X(GROUP_OFFSET_COUNT, "SELECT count(*) FROM group_offsets WHERE "          \
                          "group_id = ?1")                                     \
    X(GROUP_OFFSETS_DEL, "DELETE FROM group_offsets WHERE group_id = ?1")      \
    X(GROUPS_LIST, "SELECT group_id, count(*), max(commit_ms) FROM "           \
                   "group_offsets GROUP BY group_id ORDER BY group_id")        \
    X(OFFSETS_EXPIRE, "DELETE FROM group_offsets WHERE group_id = ?1 AND "     \
                      "commit_ms < ?2")

#define SQ_ENUM(name, sql) SQ_##name,
enum sq_id { SQ_STATEMENTS(SQ_ENUM) SQ__COUNT };
#define SQ_TEXT(name, sql) [SQ_##name] = sql,
static const char *const sq_sql[SQ__COUNT] = {SQ_STATEMENTS(SQ_TEXT)};

struct sh_meta_conn {
    sqlite3 *db;
    char *name; /* redacted URL or path, for log lines */
    sqlite3_stmt *st[SQ__COUNT];
};

/* ---------------------------------------------------------------------- */
/* Plumbing                                                                */

/*
 * Turn a failed SQLite call into an sh_err_t and one log line naming the
 * operation. Busy/locked after the busy timeout is retriable; a UNIQUE or
 * PRIMARY KEY violation is SH_E_EXISTS for the caller to translate into
 * the Kafka code that fits; anything else is SH_E_IO.
 */
static sh_err_t sq_fail(sh_meta_conn_t *c, int rc, const char *what)
{
    const char *msg = sqlite3_errmsg(c->db);
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        sh_log(SH_LOG_ERROR, "meta", "out of memory while trying to %s", what);
        return SH_E_NOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        sh_log(SH_LOG_WARN, "meta", "could not %s: metadata database \"%s\" is busy: %s",
               what, c->name, msg);
        return SH_E_AGAIN;
    case SQLITE_CONSTRAINT:
        if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
            sh_log(SH_LOG_DEBUG, "meta", "could not %s: %s", what, msg);
            return SH_E_EXISTS;
        }
        sh_log(SH_LOG_ERROR, "meta", "could not %s in \"%s\": %s", what, c->name, msg);
        return SH_E_INVAL;
    default:
        sh_log(SH_LOG_ERROR, "meta", "could not %s in \"%s\": %s", what, c->name, msg);
        return SH_E_IO;
    }
}

/*
 * Fetch the cached statement `id` and bind its parameters from fmt:
 *   'u' const sh_uuid_t *   'i' int (int32_t)   'I' int64_t
 *   's' const char * (NULL binds SQL NULL)
 * Parameters are numbered in fmt order (?1, ?2, ...).
 */
static sh_err_t sq_vprep(sh_meta_conn_t *c, enum sq_id id, const char *what,
                         sqlite3_stmt **out, const char *fmt, va_list ap)
{
    *out = NULL;
    if (!c->st[id]) {
        int rc = sqlite3_prepare_v3(c->db, sq_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &c->st[id], NULL);
        if (rc != SQLITE_OK)
            return sq_fail(c, rc, what);
    }
    sqlite3_stmt *st = c->st[id];
    sqlite3_reset(st);
    int rc = SQLITE_OK;
    for (int i = 1; *fmt && rc == SQLITE_OK; fmt++, i++) {
        switch (*fmt) {
        case 'u': {
            const sh_uuid_t *u = va_arg(ap, const sh_uuid_t *);
            rc = sqlite3_bind_blob(st, i, u->b, sizeof(u->b), SQLITE_TRANSIENT);
            break;
        }
        case 'i':
            rc = sqlite3_bind_int(st, i, va_arg(ap, int));
            break;
        case 'I':
            rc = sqlite3_bind_int64(st, i, (sqlite3_int64)va_arg(ap, int64_t));
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT)
                   : sqlite3_bind_null(st, i);
            break;
        }
        default:
            rc = SQLITE_MISUSE;
        }
    }
    if (rc != SQLITE_OK)
        return sq_fail(c, rc, what);
    *out = st;
    return SH_OK;
}

static sh_err_t sq_prep(sh_meta_conn_t *c, enum sq_id id, const char *what,
                        sqlite3_stmt **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sh_err_t err = sq_vprep(c, id, what, out, fmt, ap);
    va_end(ap);
    return err;
}

/* One step: 1 = a row is ready, 0 = done (statement reset), < 0 = error
 * (logged, statement reset). */
static int sq_step(sh_meta_conn_t *c, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return 0;
    }
    sh_err_t err = sq_fail(c, sqlite3_extended_errcode(c->db), what);
    sqlite3_reset(st);
    return err;
}

/* Bind, run to completion, reset; *changes (may be NULL) gets the number
 * of rows written. For statements whose rows nobody reads. */
static sh_err_t sq_exec(sh_meta_conn_t *c, enum sq_id id, const char *what, int *changes,
                        const char *fmt, ...)
{
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, fmt);
    sh_err_t err = sq_vprep(c, id, what, &st, fmt, ap);
    va_end(ap);
    if (err != SH_OK)
        return err;
    int r;
    while ((r = sq_step(c, st, what)) == 1)
        ;
    if (r < 0)
        return r;
    if (changes)
        *changes = sqlite3_changes(c->db);
    return SH_OK;
}

/* Bind, step once and read column 0 as an integer. SH_E_NOTFOUND when no
 * row (or a NULL value). */
static sh_err_t sq_int64(sh_meta_conn_t *c, enum sq_id id, const char *what,
                         int64_t *val, const char *fmt, ...)
{
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, fmt);
    sh_err_t err = sq_vprep(c, id, what, &st, fmt, ap);
    va_end(ap);
    if (err != SH_OK)
        return err;
    int r = sq_step(c, st, what);
    if (r < 0)
        return r;
    if (r == 0)
        return SH_E_NOTFOUND;
    err = sqlite3_column_type(st, 0) == SQLITE_NULL ? SH_E_NOTFOUND : SH_OK;
    *val = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return err;
}

static sh_err_t sq_begin(sh_meta_conn_t *c, int write, const char *what)
{
    return sq_exec(c, write ? SQ_BEGIN_WRITE : SQ_BEGIN_READ, what, NULL, "");
}

static sh_err_t sq_commit(sh_meta_conn_t *c, const char *what)
{
    return sq_exec(c, SQ_COMMIT, what, NULL, "");
}

/* Undo the open transaction, if any. Statements left mid-step by an error
 * path are reset first so nothing holds the transaction open. */
static void sq_rollback(sh_meta_conn_t *c)
{
    for (int i = 0; i < SQ__COUNT; i++)
        if (c->st[i])
            sqlite3_reset(c->st[i]);
    if (!sqlite3_get_autocommit(c->db))
        sq_exec(c, SQ_ROLLBACK, "roll back a metadata transaction", NULL, "");
}

/* Arena copies of column values. */
static sh_err_t sq_col_str(sqlite3_stmt *st, int col, sh_arena_t *a, const char **out)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        *out = NULL;
        return SH_OK;
    }
    const char *s = (const char *)sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    if (!s)
        return SH_E_NOMEM;
    *out = sh_arena_strndup(a, s, n);
    return *out ? SH_OK : SH_E_NOMEM;
}

static void sq_col_uuid(sqlite3_stmt *st, int col, sh_uuid_t *out)
{
    const void *p = sqlite3_column_blob(st, col);
    int n = sqlite3_column_bytes(st, col);
    memset(out->b, 0, sizeof(out->b));
    if (p && n > 0)
        memcpy(out->b, p, (size_t)n < sizeof(out->b) ? (size_t)n : sizeof(out->b));
}

/* A growable array in an arena: doubling wastes at most the final size,
 * which dies with the arena anyway. */
typedef struct {
    void *items;
    size_t n, cap, size;
} sq_vec_t;

static void *sq_vec_push(sh_arena_t *a, sq_vec_t *v)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        void *p = sh_arena_calloc(a, cap, v->size);
        if (!p)
            return NULL;
        if (v->n)
            memcpy(p, v->items, v->n * v->size);
        v->items = p;
        v->cap = cap;
    }
    void *slot = (char *)v->items + v->n * v->size;
    memset(slot, 0, v->size);
    v->n++;
    return slot;
}

/* ---------------------------------------------------------------------- */
/* Row readers                                                             */

static sh_err_t sq_read_topic(sqlite3_stmt *st, sh_arena_t *a, sh_meta_topic_t *t)
{
    sq_col_uuid(st, 0, &t->topic_id);
    t->partition_count = sqlite3_column_int(st, 2);
    t->created_ms = sqlite3_column_int64(st, 3);
    t->state = sqlite3_column_int(st, 4) ? SH_META_TOPIC_DELETING : SH_META_TOPIC_LIVE;
    return sq_col_str(st, 1, a, &t->name);
}

static void sq_read_partition(sqlite3_stmt *st, sh_meta_partition_t *p)
{
    sq_col_uuid(st, 0, &p->topic_id);
    p->partition = sqlite3_column_int(st, 1);
    p->leader_id = sqlite3_column_int(st, 2);
    p->leader_epoch = sqlite3_column_int(st, 3);
    p->lease_expiry_ms = sqlite3_column_int64(st, 4);
    p->log_start_offset = sqlite3_column_int64(st, 5);
    p->high_watermark = sqlite3_column_int64(st, 6);
}

static sh_err_t sq_read_chunk(sqlite3_stmt *st, sh_arena_t *a, sh_meta_chunk_t *k)
{
    sq_col_uuid(st, 0, &k->topic_id);
    k->partition = sqlite3_column_int(st, 1);
    k->base_offset = sqlite3_column_int64(st, 2);
    k->last_offset = sqlite3_column_int64(st, 3);
    k->max_timestamp = sqlite3_column_int64(st, 4);
    k->byte_offset = sqlite3_column_int64(st, 6);
    k->byte_length = sqlite3_column_int64(st, 7);
    k->leader_epoch = sqlite3_column_int(st, 8);
    return sq_col_str(st, 5, a, &k->object_key);
}

static sh_err_t sq_read_object(sqlite3_stmt *st, sh_arena_t *a, sh_meta_object_t *o)
{
    o->size_bytes = sqlite3_column_int64(st, 1);
    o->live_chunks = sqlite3_column_int64(st, 2);
    return sq_col_str(st, 0, a, &o->object_key);
}

/* Step a prepared statement through all its rows into an arena array of
 * `size`-byte items filled by `read`. */
typedef sh_err_t (*sq_reader_fn)(sqlite3_stmt *st, sh_arena_t *a, void *item);

static sh_err_t sq_collect(sh_meta_conn_t *c, sqlite3_stmt *st, const char *what,
                           sh_arena_t *a, size_t size, sq_reader_fn read, void **out,
                           size_t *n)
{
    sq_vec_t v = {.size = size};
    int r;
    while ((r = sq_step(c, st, what)) == 1) {
        void *item = sq_vec_push(a, &v);
        sh_err_t err = item ? read(st, a, item) : SH_E_NOMEM;
        if (err != SH_OK) {
            sqlite3_reset(st);
            return err;
        }
    }
    if (r < 0)
        return r;
    *out = v.items;
    *n = v.n;
    return SH_OK;
}

static sh_err_t sq_reader_topic(sqlite3_stmt *st, sh_arena_t *a, void *item)
{
    return sq_read_topic(st, a, item);
}

static sh_err_t sq_reader_partition(sqlite3_stmt *st, sh_arena_t *a, void *item)
{
    (void)a;
    sq_read_partition(st, item);
    return SH_OK;
}

static sh_err_t sq_reader_chunk(sqlite3_stmt *st, sh_arena_t *a, void *item)
{
    return sq_read_chunk(st, a, item);
}

static sh_err_t sq_reader_object(sqlite3_stmt *st, sh_arena_t *a, void *item)
{
    return sq_read_object(st, a, item);
}

/* Objects whose count reached zero, from a SQ_RELEASE statement. */
static sh_err_t sq_collect_freed(sh_meta_conn_t *c, sqlite3_stmt *st, const char *what,
                                 sh_arena_t *a, sh_meta_object_t **out, size_t *n)
{
    sh_meta_object_t *all;
    size_t nall, k = 0;
    sh_err_t err = sq_collect(c, st, what, a, sizeof(*all), sq_reader_object,
                              (void **)&all, &nall);
    if (err != SH_OK)
        return err;
    for (size_t i = 0; i < nall; i++)
        if (all[i].live_chunks == 0)
            all[k++] = all[i];
    *out = k ? all : NULL;
    *n = k;
    return SH_OK;
}

/* Topic state: SH_OK with *state, or SH_KERR_UNKNOWN_TOPIC_ID. */
static sh_err_t sq_topic_state(sh_meta_conn_t *c, sh_uuid_t id, const char *what,
                               int *state, int32_t *count, sh_arena_t *a, const char **name)
{
    sqlite3_stmt *st;
    sh_err_t err = sq_prep(c, SQ_TOPIC_EXISTS, what, &st, "u", &id);
    if (err != SH_OK)
        return err;
    int r = sq_step(c, st, what);
    if (r <= 0)
        return r < 0 ? r : SH_KERR_UNKNOWN_TOPIC_ID;
    if (state)
        *state = sqlite3_column_int(st, 0);
    if (count)
        *count = sqlite3_column_int(st, 1);
    err = name ? sq_col_str(st, 2, a, name) : SH_OK;
    sqlite3_reset(st);
    return err;
}

typedef struct {
    int32_t leader_id, leader_epoch;
    int64_t lease_expiry_ms, high_watermark, log_start_offset;
    int topic_state;
} sq_pstate_t;

/* A partition's leadership and offsets plus its topic's state;
 * SH_KERR_UNKNOWN_TOPIC_OR_PARTITION when absent. */
static sh_err_t sq_partition_state(sh_meta_conn_t *c, sh_meta_tp_t tp, const char *what,
                                   sq_pstate_t *ps)
{
    sqlite3_stmt *st;
    sh_err_t err = sq_prep(c, SQ_PARTITION_STATE, what, &st, "ui", &tp.topic_id,
                           tp.partition);
    if (err != SH_OK)
        return err;
    int r = sq_step(c, st, what);
    if (r <= 0)
        return r < 0 ? r : SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    ps->leader_id = sqlite3_column_int(st, 0);
    ps->leader_epoch = sqlite3_column_int(st, 1);
    ps->lease_expiry_ms = sqlite3_column_int64(st, 2);
    ps->high_watermark = sqlite3_column_int64(st, 3);
    ps->topic_state = sqlite3_column_int(st, 4);
    ps->log_start_offset = sqlite3_column_int64(st, 5);
    sqlite3_reset(st);
    return SH_OK;
}

/* ---------------------------------------------------------------------- */
/* Connection and schema                                                   */

static sh_err_t sq_exec_script(sh_meta_conn_t *c, const char *sql, const char *what)
{
    char *msg = NULL;
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        return SH_OK;
    sh_log(SH_LOG_ERROR, "meta", "could not %s in \"%s\": %s", what, c->name,
           msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return (rc & 0xff) == SQLITE_BUSY ? SH_E_AGAIN : SH_E_IO;
}

static int sq_code_version(void)
{
    return sh_meta_sqlite_migrations[sh_meta_sqlite_migrations_count - 1].version;
}

/*
 * Bring the schema up to date, one migration per transaction. The version
 * is re-read under the write lock, so two processes opening a fresh file at
 * once apply each migration exactly once.
 */
static sh_err_t sq_migrate(sh_meta_conn_t *c)
{
    sh_err_t err = sq_exec_script(c,
                                  "CREATE TABLE IF NOT EXISTS schema_version ("
                                  "  version     INTEGER PRIMARY KEY,"
                                  "  applied_ms  INTEGER NOT NULL,"
                                  "  description TEXT NOT NULL)",
                                  "create the schema_version table");
    if (err != SH_OK)
        return err;
    int code = sq_code_version();
    for (;;) {
        int64_t cur = 0;
        if ((err = sq_begin(c, 1, "start a schema migration")) != SH_OK)
            return err;
        err = sq_int64(c, SQ_VERSION_GET, "read the schema version", &cur, "");
        if (err != SH_OK)
            goto fail;
        if (cur > code) {
            sh_log(SH_LOG_ERROR, "meta",
                   "metadata database \"%s\" has schema version %lld, newer than the %d "
                   "this build supports; run a StreamHouse release that knows version "
                   "%lld, or restore a backup taken before the upgrade",
                   c->name, (long long)cur, code, (long long)cur);
            err = SH_E_UNSUPPORTED;
            goto fail;
        }
        if (cur == code) {
            if ((err = sq_commit(c, "finish the schema check")) != SH_OK)
                goto fail;
            return SH_OK;
        }
        const sh_meta_migration_t *mg = &sh_meta_sqlite_migrations[cur];
        char what[160];
        snprintf(what, sizeof(what), "apply schema migration %d (%s)", mg->version,
                 mg->description);
        if ((err = sq_exec_script(c, mg->sql, what)) != SH_OK)
            goto fail;
        err = sq_exec(c, SQ_VERSION_ADD, what, NULL, "IIs", (int64_t)mg->version,
                      sh_clock_wall_ms(), mg->description);
        if (err != SH_OK)
            goto fail;
        if ((err = sq_commit(c, what)) != SH_OK)
            goto fail;
        sh_log(SH_LOG_INFO, "meta", "applied metadata schema migration %d: %s",
               mg->version, mg->description);
    }
fail:
    sq_rollback(c);
    return err;
}

static void sq_close(sh_meta_conn_t *c)
{
    if (!c)
        return;
    for (int i = 0; i < SQ__COUNT; i++)
        sqlite3_finalize(c->st[i]);
    if (c->db && sqlite3_close(c->db) != SQLITE_OK)
        sh_log(SH_LOG_WARN, "meta", "could not close metadata database \"%s\": %s",
               c->name, sqlite3_errmsg(c->db));
    free(c->name);
    free(c);
}

/* A pragma whose single-row answer must equal `want` (case-insensitive);
 * SQLite ignores pragmas it cannot honour, so asking back is the only
 * way to know the setting took. */
static sh_err_t sq_pragma_check(sh_meta_conn_t *c, const char *sql, const char *want,
                                const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sq_fail(c, rc, what);
    rc = sqlite3_step(st);
    sh_err_t err = SH_OK;
    if (rc == SQLITE_ROW) {
        const char *got = (const char *)sqlite3_column_text(st, 0);
        if (want && (!got || strcasecmp(got, want) != 0)) {
            sh_log(SH_LOG_ERROR, "meta", "could not %s in \"%s\": got \"%s\", want \"%s\"",
                   what, c->name, got ? got : "", want);
            err = SH_E_IO;
        }
    } else if (rc != SQLITE_DONE) {
        err = sq_fail(c, sqlite3_extended_errcode(c->db), what);
    } else if (want) {
        sh_log(SH_LOG_ERROR, "meta", "could not %s in \"%s\": not supported by this SQLite",
               what, c->name);
        err = SH_E_IO;
    }
    sqlite3_finalize(st);
    return err;
}

sh_err_t sh_meta_sqlite_connect(const char *path, const char *url, sh_meta_conn_t **out)
{
    *out = NULL;
    sh_err_t err = SH_E_NOMEM;
    sh_meta_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        goto fail;
    c->name = strdup(url ? url : path);
    if (!c->name)
        goto fail;
    if (!sqlite3_threadsafe()) {
        /* the connection moves between the worker and startup threads */
        sh_log(SH_LOG_ERROR, "meta", "SQLite was built without thread support");
        err = SH_E_UNSUPPORTED;
        goto fail;
    }
    int memory = strcmp(path, ":memory:") == 0;
    int rc = sqlite3_open_v2(path, &c->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                 SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        sh_log(SH_LOG_ERROR, "meta", "could not open metadata database \"%s\": %s",
               c->name, c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        err = (rc & 0xff) == SQLITE_NOMEM ? SH_E_NOMEM : SH_E_IO;
        goto fail;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, SQ_BUSY_TIMEOUT_MS);

    /* Reading the file for the first time happens here: a file that is
     * not a database fails now, with SQLite's message. Two brokers opening
     * a fresh file at once can find the switch to WAL mode busy without
     * SQLite calling the busy handler (it refuses to wait where waiting
     * could deadlock), so a busy answer is retried for a bounded while. */
    for (int attempt = 0;; attempt++) {
        err = sq_pragma_check(c, "PRAGMA journal_mode = WAL", memory ? "memory" : "wal",
                              "set journal_mode=WAL");
        int code = sqlite3_errcode(c->db) & 0xff;
        if (err == SH_OK || attempt >= 50 || (code != SQLITE_BUSY && code != SQLITE_LOCKED))
            break;
        struct timespec pause = {0, 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    if (err != SH_OK)
        goto fail;
    if ((err = sq_exec_script(c, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
                                 "PRAGMA trusted_schema = OFF",
                              "configure the connection")) != SH_OK)
        goto fail;
    if ((err = sq_pragma_check(c, "PRAGMA synchronous", "2", "set synchronous=FULL")) !=
        SH_OK)
        goto fail;
    if ((err = sq_pragma_check(c, "PRAGMA foreign_keys", "1", "enable foreign keys")) !=
        SH_OK)
        goto fail;
    if ((err = sq_migrate(c)) != SH_OK)
        goto fail;
    *out = c;
    return SH_OK;
fail:
    sq_close(c);
    return err;
}

static sh_err_t sq_schema_version(sh_meta_conn_t *c, int *db_version, int *code_version)
{
    int64_t v = 0;
    sh_err_t err = sq_int64(c, SQ_VERSION_GET, "read the schema version", &v, "");
    *db_version = (int)v;
    *code_version = sq_code_version();
    return err;
}

static sh_err_t sq_testing_schema_version_set(sh_meta_conn_t *c, int version, int present)
{
    if (present && version <= sq_code_version())
        return SH_E_INVAL;
    if (present)
        return sq_exec(c, SQ_VERSION_ADD, "record a test schema version", NULL, "IIs",
                       (int64_t)version, sh_clock_wall_ms(), "testing");
    if (version <= sq_code_version())
        return SH_E_INVAL;
    return sq_exec(c, SQ_VERSION_DEL, "remove a test schema version", NULL, "I",
                   (int64_t)version);
}

/* ---------------------------------------------------------------------- */
/* Cluster and brokers                                                     */

static sh_err_t sq_cluster_id_get(sh_meta_conn_t *c, const char *candidate,
                                  char out[SH_META_CLUSTER_ID_LEN + 1])
{
    const char *what = "get or create the cluster id";
    sqlite3_stmt *st;
    sh_err_t err = sq_exec(c, SQ_CLUSTER_ID_PUT, what, NULL, "s", candidate);
    if (err != SH_OK)
        return err;
    if ((err = sq_prep(c, SQ_CLUSTER_ID_GET, what, &st, "")) != SH_OK)
        return err;
    int r = sq_step(c, st, what);
    if (r <= 0)
        return r < 0 ? r : SH_E_IO;
    const char *id = (const char *)sqlite3_column_text(st, 0);
    if (id && strlen(id) == SH_META_CLUSTER_ID_LEN) {
        memcpy(out, id, SH_META_CLUSTER_ID_LEN + 1);
    } else {
        sh_log(SH_LOG_ERROR, "meta", "metadata database \"%s\" holds a malformed cluster id",
               c->name);
        err = SH_E_CORRUPT;
    }
    sqlite3_reset(st);
    return err;
}

static sh_err_t sq_broker_register(sh_meta_conn_t *c, const sh_meta_broker_t *b,
                                   int64_t now_ms, int64_t *broker_epoch)
{
    const char *what = "register a broker";
    sqlite3_stmt *st;
    sh_err_t err;
    if ((err = sq_begin(c, 1, what)) != SH_OK)
        return err;
    if ((err = sq_prep(c, SQ_BROKER_UPSERT, what, &st, "isI", b->broker_id, b->rack,
                       now_ms)) != SH_OK)
        goto fail;
    int r = sq_step(c, st, what);
    if (r <= 0) {
        err = r < 0 ? r : SH_E_IO;
        goto fail;
    }
    int64_t epoch = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if ((err = sq_exec(c, SQ_BROKER_EP_CLEAR, what, NULL, "i", b->broker_id)) != SH_OK)
        goto fail;
    for (size_t i = 0; i < b->nendpoints; i++) {
        const sh_meta_endpoint_t *e = &b->endpoints[i];
        err = sq_exec(c, SQ_BROKER_EP_ADD, what, NULL, "issii", b->broker_id, e->listener,
                      e->host, (int)e->port, (int)e->security_protocol);
        if (err != SH_OK)
            goto fail;
    }
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    *broker_epoch = epoch;
    return SH_OK;
fail:
    sq_rollback(c);
    return err;
}

/* Why an epoch-conditional broker write matched nothing. */
static sh_err_t sq_broker_why(sh_meta_conn_t *c, int32_t broker_id, const char *what)
{
    int64_t epoch;
    sh_err_t err = sq_int64(c, SQ_BROKER_EPOCH, what, &epoch, "i", broker_id);
    return err == SH_OK ? SH_E_FENCED : err;
}

static sh_err_t sq_broker_heartbeat(sh_meta_conn_t *c, int32_t broker_id,
                                    int64_t broker_epoch, int64_t now_ms)
{
    const char *what = "record a broker heartbeat";
    int changes = 0;
    sh_err_t err = sq_exec(c, SQ_BROKER_HEARTBEAT, what, &changes, "iII", broker_id,
                           broker_epoch, now_ms);
    if (err != SH_OK || changes)
        return err;
    return sq_broker_why(c, broker_id, what);
}

static sh_err_t sq_broker_unregister(sh_meta_conn_t *c, int32_t broker_id,
                                     int64_t broker_epoch)
{
    const char *what = "unregister a broker";
    int changes = 0;
    sh_err_t err = sq_exec(c, SQ_BROKER_DELETE, what, &changes, "iI", broker_id,
                           broker_epoch);
    if (err != SH_OK || changes)
        return err;
    return sq_broker_why(c, broker_id, what);
}

static sh_err_t sq_reader_broker(sqlite3_stmt *st, sh_arena_t *a, void *item)
{
    sh_meta_broker_t *b = item;
    b->broker_id = sqlite3_column_int(st, 0);
    b->broker_epoch = sqlite3_column_int64(st, 1);
    b->registered_ms = sqlite3_column_int64(st, 3);
    b->heartbeat_ms = sqlite3_column_int64(st, 4);
    return sq_col_str(st, 2, a, &b->rack);
}

static sh_err_t sq_broker_list(sh_meta_conn_t *c, int64_t alive_since_ms, sh_arena_t *a,
                               sh_meta_broker_t **out, size_t *n)
{
    const char *what = "list brokers";
    sqlite3_stmt *st;
    sh_meta_broker_t *bs = NULL;
    size_t nb = 0;
    sh_err_t err;
    if ((err = sq_begin(c, 0, what)) != SH_OK)
        return err;
    if ((err = sq_prep(c, SQ_BROKER_LIST, what, &st, "I", alive_since_ms)) != SH_OK)
        goto fail;
    if ((err = sq_collect(c, st, what, a, sizeof(*bs), sq_reader_broker, (void **)&bs,
                          &nb)) != SH_OK)
        goto fail;
    if ((err = sq_prep(c, SQ_BROKER_EP_LIST, what, &st, "I", alive_since_ms)) != SH_OK)
        goto fail;
    /* Both queries are ordered by broker id: merge endpoints into place. */
    size_t bi = 0;
    sq_vec_t v = {.size = sizeof(sh_meta_endpoint_t)};
    int r;
    while ((r = sq_step(c, st, what)) == 1) {
        int32_t id = sqlite3_column_int(st, 0);
        while (bi < nb && bs[bi].broker_id < id) {
            bs[bi].endpoints = v.items;
            bs[bi].nendpoints = v.n;
            v = (sq_vec_t){.size = sizeof(sh_meta_endpoint_t)};
            bi++;
        }
        if (bi == nb || bs[bi].broker_id != id)
            continue; /* impossible inside one snapshot; tolerate */
        sh_meta_endpoint_t *e = sq_vec_push(a, &v);
        if (!e || sq_col_str(st, 1, a, &e->listener) != SH_OK ||
            sq_col_str(st, 2, a, &e->host) != SH_OK) {
            err = SH_E_NOMEM;
            goto fail;
        }
        e->port = sqlite3_column_int(st, 3);
        e->security_protocol = (int16_t)sqlite3_column_int(st, 4);
    }
    if (r < 0) {
        err = r;
        goto fail;
    }
    if (bi < nb) {
        bs[bi].endpoints = v.items;
        bs[bi].nendpoints = v.n;
    }
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    *out = bs;
    *n = nb;
    return SH_OK;
fail:
    sq_rollback(c);
    return err;
}

/* ---------------------------------------------------------------------- */
/* Topics                                                                  */

static sh_err_t sq_topic_create(sh_meta_conn_t *c, sh_uuid_t id, const char *name,
                                int32_t partitions, const sh_meta_config_t *configs,
                                size_t nconfigs, int64_t now_ms)
{
    const char *what = "create a topic";
    int64_t one;
    sh_err_t err;
    if ((err = sq_begin(c, 1, what)) != SH_OK)
        return err;
    /* Checked under the write lock rather than inferred from a UNIQUE
     * violation: the answer is the same in every SQL dialect. */
    err = sq_int64(c, SQ_TOPIC_NAME_TAKEN, what, &one, "s", name);
    if (err == SH_OK) {
        err = SH_KERR_TOPIC_ALREADY_EXISTS;
        goto fail;
    }
    if (err != SH_E_NOTFOUND)
        goto fail;
    err = sq_exec(c, SQ_TOPIC_INSERT, what, NULL, "usiI", &id, name, (int)partitions,
                  now_ms);
    if (err != SH_OK)
        goto fail;
    for (int32_t p = 0; p < partitions; p++)
        if ((err = sq_exec(c, SQ_PARTITION_INSERT, what, NULL, "ui", &id, (int)p)) != SH_OK)
            goto fail;
    for (size_t i = 0; i < nconfigs; i++)
        if ((err = sq_exec(c, SQ_CONFIG_PUT, what, NULL, "uss", &id, configs[i].key,
                           configs[i].value)) != SH_OK)
            goto fail;
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    return SH_OK;
fail:
    sq_rollback(c);
    return err;
}

/* One topic row from a prepared lookup; `absent` when there is none. */
static sh_err_t sq_topic_get(sh_meta_conn_t *c, sqlite3_stmt *st, const char *what,
                             sh_err_t absent, sh_arena_t *a, sh_meta_topic_t *out)
{
    int r = sq_step(c, st, what);
    if (r <= 0)
        return r < 0 ? r : absent;
    sh_err_t err = sq_read_topic(st, a, out);
    sqlite3_reset(st);
    return err;
}

static sh_err_t sq_topic_get_by_name(sh_meta_conn_t *c, const char *name, sh_arena_t *a,
                                     sh_meta_topic_t *out)
{
    const char *what = "look up a topic by name";
    sqlite3_stmt *st;
    sh_err_t err = sq_prep(c, SQ_TOPIC_BY_NAME, what, &st, "s", name);
    if (err != SH_OK)
        return err;
    return sq_topic_get(c, st, what, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION, a, out);
}

static sh_err_t sq_topic_get_by_id(sh_meta_conn_t *c, sh_uuid_t topic_id, sh_arena_t *a,
                                   sh_meta_topic_t *out)
{
    const char *what = "look up a topic by id";
    sqlite3_stmt *st;
    sh_err_t err = sq_prep(c, SQ_TOPIC_BY_ID, what, &st, "u", &topic_id);
    if (err != SH_OK)
        return err;
    return sq_topic_get(c, st, what, SH_KERR_UNKNOWN_TOPIC_ID, a, out);
}

static sh_err_t sq_topic_list(sh_meta_conn_t *c, sh_arena_t *a, sh_meta_topic_t **out,
                              size_t *n)
{
    const char *what = "list topics";
    sqlite3_stmt *st;
    sh_err_t err = sq_prep(c, SQ_TOPIC_LIST, what, &st, "");
    if (err != SH_OK)
        return err;
    return sq_collect(c, st, what, a, sizeof(**out), sq_reader_topic, (void **)out, n);
}

static sh_err_t sq_topic_mark_deleting(sh_meta_conn_t *c, sh_uuid_t topic_id)
{
    int changes = 0;
    sh_err_t err = sq_exec(c, SQ_TOPIC_MARK_DELETING, "mark a topic for deletion", &changes,
                           "u", &topic_id);
    if (err == SH_OK && changes == 0)
        err = SH_KERR_UNKNOWN_TOPIC_ID;
    return err;
}

static sh_err_t sq_topic_drop(sh_meta_conn_t *c, sh_uuid_t topic_id, sh_arena_t *a,
                              sh_meta_object_t **freed, size_t *nfreed)
{
    const char *what = "drop a topic";
    sqlite3_stmt *st;
    const char *name = NULL;
    int state = 0;
    sh_meta_object_t *objs = NULL;
    size_t nobjs = 0;
    sh_err_t err;
    if ((err = sq_begin(c, 1, what)) != SH_OK)
        return err;
    if ((err = sq_topic_state(c, topic_id, what, &state, NULL, a, &name)) != SH_OK)
        goto fail;
    if (state != SH_META_TOPIC_DELETING) {
        sh_log(SH_LOG_ERROR, "meta", "refusing to drop topic \"%s\": not marked for deletion",
               name);
        err = SH_E_INVAL;
        goto fail;
    }
    if ((err = sq_prep(c, SQ_TOPIC_RELEASE, what, &st, "u", &topic_id)) != SH_OK)
        goto fail;
    if ((err = sq_collect_freed(c, st, what, a, &objs, &nobjs)) != SH_OK)
        goto fail;
    if ((err = sq_exec(c, SQ_TOPIC_CHUNKS_DELETE, what, NULL, "u", &topic_id)) != SH_OK)
        goto fail;
    if ((err = sq_exec(c, SQ_TOPIC_OFFSETS_DELETE, what, NULL, "s", name)) != SH_OK)
        goto fail;
    /* partitions and configs go by ON DELETE CASCADE */
    if ((err = sq_exec(c, SQ_TOPIC_DELETE, what, NULL, "u", &topic_id)) != SH_OK)
        goto fail;
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    *freed = objs;
    *nfreed = nobjs;
    return SH_OK;
fail:
    sq_rollback(c);
    return err;
}

static sh_err_t sq_topic_objects(sh_meta_conn_t *c, sh_uuid_t topic_id, sh_arena_t *a,
                                 sh_meta_object_t **out, size_t *n)
{
    const char *what = "list the objects of a topic";
    sqlite3_stmt *st;
    sh_err_t err;
    if ((err = sq_begin(c, 0, what)) != SH_OK)
        return err;
    if ((err = sq_topic_state(c, topic_id, what, NULL, NULL, NULL, NULL)) != SH_OK)
        goto fail;
    if ((err = sq_prep(c, SQ_TOPIC_OBJECTS, what, &st, "u", &topic_id)) != SH_OK)
        goto fail;
    if ((err = sq_collect(c, st, what, a, sizeof(**out), sq_reader_object, (void **)out,
                          n)) != SH_OK)
        goto fail;
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    return SH_OK;
fail:
    *out = NULL;
    *n = 0;
    sq_rollback(c);
    return err;
}

static sh_err_t sq_topic_partitions_add(sh_meta_conn_t *c, sh_uuid_t topic_id,
                                        int32_t new_count)
{
    const char *what = "add partitions";
    int state = 0;
    int32_t count = 0;
    sh_err_t err;
    if ((err = sq_begin(c, 1, what)) != SH_OK)
        return err;
    if ((err = sq_topic_state(c, topic_id, what, &state, &count, NULL, NULL)) != SH_OK)
        goto fail;
    if (state != SH_META_TOPIC_LIVE) {
        err = SH_KERR_INVALID_TOPIC_EXCEPTION;
        goto fail;
    }
    if (new_count <= count) {
        err = SH_KERR_INVALID_PARTITIONS;
        goto fail;
    }
    for (int32_t p = count; p < new_count; p++)
        if ((err = sq_exec(c, SQ_PARTITION_INSERT, what, NULL, "ui", &topic_id, (int)p)) !=
            SH_OK)
            goto fail;
    if ((err = sq_exec(c, SQ_TOPIC_SET_COUNT, what, NULL, "ui", &topic_id,
                       (int)new_count)) != SH_OK)
        goto fail;
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    return SH_OK;
fail:
    sq_rollback(c);
    return err;
}

static sh_err_t sq_reader_config(sqlite3_stmt *st, sh_arena_t *a, void *item)
{
    sh_meta_config_t *cf = item;
    sh_err_t err = sq_col_str(st, 0, a, &cf->key);
    return err != SH_OK ? err : sq_col_str(st, 1, a, &cf->value);
}

static sh_err_t sq_topic_configs_get(sh_meta_conn_t *c, sh_uuid_t topic_id, sh_arena_t *a,
                                     sh_meta_config_t **out, size_t *n)
{
    const char *what = "read topic configs";
    sqlite3_stmt *st;
    sh_err_t err;
    if ((err = sq_begin(c, 0, what)) != SH_OK)
        return err;
    if ((err = sq_topic_state(c, topic_id, what, NULL, NULL, NULL, NULL)) != SH_OK)
        goto fail;
    if ((err = sq_prep(c, SQ_CONFIG_LIST, what, &st, "u", &topic_id)) != SH_OK)
        goto fail;
    if ((err = sq_collect(c, st, what, a, sizeof(**out), sq_reader_config, (void **)out,
                          n)) != SH_OK)
        goto fail;
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    return SH_OK;
fail:
    *out = NULL;
    *n = 0;
    sq_rollback(c);
    return err;
}

static sh_err_t sq_topic_configs_alter(sh_meta_conn_t *c, sh_uuid_t topic_id,
                                       const sh_meta_config_t *changes, size_t n,
                                       int replace_all)
{
    const char *what = "alter topic configs";
    sh_err_t err;
    if ((err = sq_begin(c, 1, what)) != SH_OK)
        return err;
    if ((err = sq_topic_state(c, topic_id, what, NULL, NULL, NULL, NULL)) != SH_OK)
        goto fail;
    if (replace_all &&
        (err = sq_exec(c, SQ_CONFIG_CLEAR, what, NULL, "u", &topic_id)) != SH_OK)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if (changes[i].value)
            err = sq_exec(c, SQ_CONFIG_PUT, what, NULL, "uss", &topic_id, changes[i].key,
                          changes[i].value);
        else
            err = sq_exec(c, SQ_CONFIG_DEL, what, NULL, "us", &topic_id, changes[i].key);
        if (err != SH_OK)
            goto fail;
    }
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    return SH_OK;
fail:
    sq_rollback(c);
    return err;
}

/* ---------------------------------------------------------------------- */
/* Partitions and leadership                                               */

static sh_err_t sq_partition_get(sh_meta_conn_t *c, sh_meta_tp_t tp, sh_meta_partition_t *out)
{
    const char *what = "look up a partition";
    sqlite3_stmt *st;
    sh_err_t err = sq_prep(c, SQ_PARTITION_GET, what, &st, "ui", &tp.topic_id, tp.partition);
    if (err != SH_OK)
        return err;
    int r = sq_step(c, st, what);
    if (r <= 0)
        return r < 0 ? r : SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    sq_read_partition(st, out);
    sqlite3_reset(st);
    return SH_OK;
}

static sh_err_t sq_partition_list(sh_meta_conn_t *c, sh_uuid_t topic_id, sh_arena_t *a,
                                  sh_meta_partition_t **out, size_t *n)
{
    const char *what = "list partitions";
    sqlite3_stmt *st;
    sh_err_t err = sq_prep(c, SQ_PARTITION_LIST, what, &st, "u", &topic_id);
    if (err != SH_OK)
        return err;
    err = sq_collect(c, st, what, a, sizeof(**out), sq_reader_partition, (void **)out, n);
    /* a topic always has partitions, so none means no topic */
    if (err == SH_OK && *n == 0)
        err = SH_KERR_UNKNOWN_TOPIC_ID;
    return err;
}

static sh_err_t sq_partition_acquire(sh_meta_conn_t *c, sh_meta_tp_t tp, int32_t broker_id,
                                     int32_t expected_epoch, int64_t now_ms,
                                     int64_t lease_expiry_ms, int32_t *new_epoch)
{
    const char *what = "acquire partition leadership";
    sqlite3_stmt *st;
    sq_pstate_t ps;
    sh_err_t err;
    if ((err = sq_begin(c, 1, what)) != SH_OK)
        return err;
    /* The conditional UPDATE is the guard; the read after a miss only
     * explains which condition failed. */
    if ((err = sq_prep(c, SQ_PARTITION_ACQUIRE, what, &st, "uiiiII", &tp.topic_id,
                       tp.partition, broker_id, expected_epoch, now_ms, lease_expiry_ms)) !=
        SH_OK)
        goto fail;
    int r = sq_step(c, st, what);
    if (r < 0) {
        err = r;
        goto fail;
    }
    if (r == 1) {
        int32_t epoch = sqlite3_column_int(st, 0);
        sqlite3_reset(st);
        if ((err = sq_commit(c, what)) != SH_OK)
            goto fail;
        *new_epoch = epoch;
        return SH_OK;
    }
    if ((err = sq_partition_state(c, tp, what, &ps)) != SH_OK)
        goto fail;
    if (ps.topic_state != SH_META_TOPIC_LIVE)
        err = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    else if (ps.leader_epoch != expected_epoch)
        err = SH_E_FENCED;
    else
        err = SH_E_AGAIN; /* another broker's lease is still running */
fail:
    sq_rollback(c);
    return err;
}

/* Why an epoch-conditional partition write matched nothing. */
static sh_err_t sq_partition_why(sh_meta_conn_t *c, sh_meta_tp_t tp, const char *what)
{
    sq_pstate_t ps;
    sh_err_t err = sq_partition_state(c, tp, what, &ps);
    return err == SH_OK ? SH_E_FENCED : err;
}

static sh_err_t sq_partition_renew(sh_meta_conn_t *c, sh_meta_tp_t tp, int32_t leader_epoch,
                                   int64_t lease_expiry_ms)
{
    const char *what = "renew a partition lease";
    int changes = 0;
    sh_err_t err = sq_exec(c, SQ_PARTITION_RENEW, what, &changes, "uiiI", &tp.topic_id,
                           tp.partition, leader_epoch, lease_expiry_ms);
    if (err != SH_OK || changes)
        return err;
    return sq_partition_why(c, tp, what);
}

static sh_err_t sq_partition_release(sh_meta_conn_t *c, sh_meta_tp_t tp, int32_t leader_epoch)
{
    const char *what = "release partition leadership";
    int changes = 0;
    sh_err_t err = sq_exec(c, SQ_PARTITION_RELEASE, what, &changes, "uii", &tp.topic_id,
                           tp.partition, leader_epoch);
    if (err != SH_OK || changes)
        return err;
    return sq_partition_why(c, tp, what);
}

static sh_err_t sq_partition_log_start_advance(sh_meta_conn_t *c, sh_meta_tp_t tp,
                                               int64_t new_log_start, sh_arena_t *a,
                                               sh_meta_object_t **freed, size_t *nfreed)
{
    const char *what = "advance the log start offset";
    int64_t start;
    sqlite3_stmt *st;
    sh_meta_object_t *objs = NULL;
    size_t nobjs = 0;
    sh_err_t err;
    if ((err = sq_begin(c, 1, what)) != SH_OK)
        return err;
    err = sq_int64(c, SQ_PARTITION_LOG_START, what, &start, "uiI", &tp.topic_id,
                   tp.partition, new_log_start);
    if (err == SH_E_NOTFOUND)
        err = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (err != SH_OK)
        goto fail;
    if ((err = sq_prep(c, SQ_PARTITION_RELEASE_BELOW, what, &st, "uiI", &tp.topic_id,
                       tp.partition, start)) != SH_OK)
        goto fail;
    if ((err = sq_collect_freed(c, st, what, a, &objs, &nobjs)) != SH_OK)
        goto fail;
    if ((err = sq_exec(c, SQ_PARTITION_CHUNKS_DELETE, what, NULL, "uiI", &tp.topic_id,
                       tp.partition, start)) != SH_OK)
        goto fail;
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    *freed = objs;
    *nfreed = nobjs;
    return SH_OK;
fail:
    sq_rollback(c);
    return err;
}

/* ---------------------------------------------------------------------- */
/* Chunks and objects                                                      */

/*
 * The object key is taken. If every chunk we were asked to commit is
 * already recorded exactly so, this is a retry of a commit whose reply was
 * lost: report success. Anything else is a key collision.
 */
static sh_err_t sq_commit_is_retry(sh_meta_conn_t *c, const char *key, int64_t size,
                                   const sh_meta_chunk_t *chunks, size_t n, const char *what)
{
    int64_t v;
    sh_err_t err = sq_int64(c, SQ_OBJECT_SIZE, what, &v, "s", key);
    if (err != SH_OK)
        return err;
    if (v != size)
        return SH_E_EXISTS;
    for (size_t i = 0; i < n; i++) {
        const sh_meta_chunk_t *k = &chunks[i];
        err = sq_int64(c, SQ_CHUNK_SAME, what, &v, "uiIIsII", &k->topic_id, k->partition,
                       k->base_offset, k->last_offset, key, k->byte_offset, k->byte_length);
        if (err != SH_OK)
            return err;
        if (v != 1)
            return SH_E_EXISTS;
    }
    return SH_OK;
}

static sh_err_t sq_chunks_commit(sh_meta_conn_t *c, const char *key, int64_t size,
                                 const sh_meta_chunk_t *chunks, size_t n, int64_t now_ms)
{
    const char *what = "commit segment chunks";
    int changes = 0;
    sh_err_t err;
    if ((err = sq_begin(c, 1, what)) != SH_OK)
        return err;
    if ((err = sq_exec(c, SQ_OBJECT_INSERT, what, &changes, "sIII", key, size, (int64_t)n,
                       now_ms)) != SH_OK)
        goto fail;
    if (changes == 0) {
        err = sq_commit_is_retry(c, key, size, chunks, n, what);
        if (err == SH_E_EXISTS)
            sh_log(SH_LOG_ERROR, "meta",
                   "could not commit object \"%s\": the key is already recorded with "
                   "other chunks",
                   key);
        goto fail; /* nothing written either way */
    }
    for (size_t i = 0; i < n; i++) {
        const sh_meta_chunk_t *k = &chunks[i];
        sh_meta_tp_t tp = {k->topic_id, k->partition};
        err = sq_exec(c, SQ_PARTITION_ADVANCE_HWM, what, &changes, "uiiII", &k->topic_id,
                      k->partition, k->leader_epoch, k->base_offset, k->last_offset + 1);
        if (err != SH_OK)
            goto fail;
        if (changes == 0) {
            sq_pstate_t ps;
            if ((err = sq_partition_state(c, tp, what, &ps)) != SH_OK)
                goto fail;
            if (ps.topic_state != SH_META_TOPIC_LIVE) {
                err = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
            } else if (ps.leader_epoch != k->leader_epoch) {
                /* the normal end of a deposed leader: not an error here */
                char tid[SH_META_CLUSTER_ID_LEN + 1];
                sh_meta_uuid_str(k->topic_id, tid);
                sh_log(SH_LOG_INFO, "meta",
                       "commit of object \"%s\" fenced: partition %s-%d committed under "
                       "leader epoch %d, current epoch is %d",
                       key, tid, k->partition, k->leader_epoch, ps.leader_epoch);
                err = SH_E_FENCED;
            } else {
                sh_log(SH_LOG_ERROR, "meta",
                       "could not commit object \"%s\": partition %d chunk starts at offset "
                       "%lld but the committed log ends at %lld",
                       key, k->partition, (long long)k->base_offset,
                       (long long)ps.high_watermark);
                err = SH_E_INVAL;
            }
            goto fail;
        }
        err = sq_exec(c, SQ_CHUNK_INSERT, what, NULL, "uiIIIsIIiI", &k->topic_id,
                      k->partition, k->base_offset, k->last_offset, k->max_timestamp, key,
                      k->byte_offset, k->byte_length, k->leader_epoch, now_ms);
        if (err != SH_OK)
            goto fail;
    }
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    return SH_OK;
fail:
    sq_rollback(c);
    return err;
}

/* Distinguish "partition has nothing there" from "no such partition". */
static sh_err_t sq_partition_exists(sh_meta_conn_t *c, sh_meta_tp_t tp, const char *what)
{
    int64_t one;
    sh_err_t err = sq_int64(c, SQ_PARTITION_EXISTS, what, &one, "ui", &tp.topic_id,
                            tp.partition);
    return err == SH_E_NOTFOUND ? SH_KERR_UNKNOWN_TOPIC_OR_PARTITION : err;
}

static sh_err_t sq_chunks_find(sh_meta_conn_t *c, sh_meta_tp_t tp, int64_t offset,
                               size_t limit, sh_arena_t *a, sh_meta_chunk_t **out, size_t *n)
{
    const char *what = "find segment chunks";
    sqlite3_stmt *st;
    sh_err_t err = sq_prep(c, SQ_CHUNKS_FIND, what, &st, "uiII", &tp.topic_id, tp.partition,
                           offset, (int64_t)limit);
    if (err != SH_OK)
        return err;
    err = sq_collect(c, st, what, a, sizeof(**out), sq_reader_chunk, (void **)out, n);
    if (err == SH_OK && *n == 0)
        err = sq_partition_exists(c, tp, what);
    return err;
}

static sh_err_t sq_chunks_find_by_time(sh_meta_conn_t *c, sh_meta_tp_t tp, int64_t ts,
                                       sh_arena_t *a, sh_meta_chunk_t *out)
{
    const char *what = "find a segment chunk by timestamp";
    sqlite3_stmt *st;
    sh_err_t err = sq_prep(c, SQ_CHUNKS_BY_TIME, what, &st, "uiI", &tp.topic_id,
                           tp.partition, ts);
    if (err != SH_OK)
        return err;
    int r = sq_step(c, st, what);
    if (r < 0)
        return r;
    if (r == 0) {
        err = sq_partition_exists(c, tp, what);
        return err == SH_OK ? SH_E_NOTFOUND : err;
    }
    err = sq_read_chunk(st, a, out);
    sqlite3_reset(st);
    return err;
}

static sh_err_t sq_partition_size(sh_meta_conn_t *c, sh_meta_tp_t tp, int64_t *bytes,
                                  int64_t *nchunks)
{
    const char *what = "measure a partition";
    sqlite3_stmt *st;
    sq_pstate_t ps;
    sh_err_t err;
    if ((err = sq_begin(c, 0, what)) != SH_OK)
        return err;
    if ((err = sq_partition_state(c, tp, what, &ps)) != SH_OK)
        goto fail;
    /* chunks below the log start are dead even if not swept yet */
    if ((err = sq_prep(c, SQ_PARTITION_SIZE, what, &st, "uiI", &tp.topic_id, tp.partition,
                       ps.log_start_offset)) != SH_OK)
        goto fail;
    int r = sq_step(c, st, what);
    if (r <= 0) {
        err = r < 0 ? r : SH_E_IO;
        goto fail;
    }
    *bytes = sqlite3_column_int64(st, 0);
    *nchunks = sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    return SH_OK;
fail:
    *bytes = *nchunks = 0;
    sq_rollback(c);
    return err;
}

static sh_err_t sq_retention_by_time(sh_meta_conn_t *c, sh_meta_tp_t tp, int64_t cutoff_ms,
                                     int64_t *new_log_start)
{
    const char *what = "compute time retention";
    sq_pstate_t ps;
    int64_t first_young;
    sh_err_t err;
    if ((err = sq_begin(c, 0, what)) != SH_OK)
        return err;
    if ((err = sq_partition_state(c, tp, what, &ps)) != SH_OK)
        goto fail;
    err = sq_int64(c, SQ_RETENTION_TIME, what, &first_young, "uiI", &tp.topic_id,
                   tp.partition, cutoff_ms);
    if (err == SH_E_NOTFOUND)
        first_young = ps.high_watermark; /* every committed chunk is old */
    else if (err != SH_OK)
        goto fail;
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    *new_log_start = first_young > ps.log_start_offset ? first_young : ps.log_start_offset;
    return SH_OK;
fail:
    sq_rollback(c);
    return err;
}

static sh_err_t sq_retention_by_size(sh_meta_conn_t *c, sh_meta_tp_t tp,
                                     int64_t retain_bytes, int64_t *new_log_start)
{
    const char *what = "compute size retention";
    sqlite3_stmt *st;
    sq_pstate_t ps;
    int64_t total = 0, nchunks = 0;
    sh_err_t err;
    if ((err = sq_begin(c, 0, what)) != SH_OK)
        return err;
    if ((err = sq_partition_state(c, tp, what, &ps)) != SH_OK)
        goto fail;
    if ((err = sq_prep(c, SQ_PARTITION_SIZE, what, &st, "uiI", &tp.topic_id, tp.partition,
                       ps.log_start_offset)) != SH_OK)
        goto fail;
    int r = sq_step(c, st, what);
    if (r <= 0) {
        err = r < 0 ? r : SH_E_IO;
        goto fail;
    }
    total = sqlite3_column_int64(st, 0);
    nchunks = sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    int64_t point = ps.log_start_offset;
    if (nchunks > 0 && total > retain_bytes) {
        /* Kafka's rule: drop the oldest while what remains is still at
         * least retention.bytes. */
        int64_t excess = total - retain_bytes;
        if ((err = sq_prep(c, SQ_CHUNKS_SIZES, what, &st, "uiI", &tp.topic_id,
                           tp.partition, ps.log_start_offset)) != SH_OK)
            goto fail;
        while ((r = sq_step(c, st, what)) == 1) {
            int64_t len = sqlite3_column_int64(st, 1);
            if (excess - len < 0)
                break;
            excess -= len;
            point = sqlite3_column_int64(st, 0) + 1;
        }
        sqlite3_reset(st);
        if (r < 0) {
            err = r;
            goto fail;
        }
    }
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    *new_log_start = point > ps.log_start_offset ? point : ps.log_start_offset;
    return SH_OK;
fail:
    sq_rollback(c);
    return err;
}

static sh_err_t sq_objects_unreferenced(sh_meta_conn_t *c, size_t limit, sh_arena_t *a,
                                        sh_meta_object_t **out, size_t *n)
{
    const char *what = "list unreferenced objects";
    sqlite3_stmt *st;
    sh_err_t err = sq_prep(c, SQ_OBJECTS_UNREFERENCED, what, &st, "I", (int64_t)limit);
    if (err != SH_OK)
        return err;
    return sq_collect(c, st, what, a, sizeof(**out), sq_reader_object, (void **)out, n);
}

static sh_err_t sq_objects_forget(sh_meta_conn_t *c, const char *const *keys, size_t n)
{
    const char *what = "forget deleted objects";
    int changes;
    int64_t live;
    sh_err_t err;
    if ((err = sq_begin(c, 1, what)) != SH_OK)
        return err;
    for (size_t i = 0; i < n; i++) {
        if ((err = sq_exec(c, SQ_OBJECT_FORGET, what, &changes, "s", keys[i])) != SH_OK)
            goto fail;
        if (changes)
            continue;
        err = sq_int64(c, SQ_OBJECT_LIVE, what, &live, "s", keys[i]);
        if (err == SH_E_NOTFOUND)
            continue; /* already forgotten */
        if (err == SH_OK) {
            sh_log(SH_LOG_ERROR, "meta",
                   "refusing to forget object \"%s\": %lld chunks still reference it",
                   keys[i], (long long)live);
            err = SH_E_INVAL;
        }
        goto fail;
    }
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    return SH_OK;
fail:
    sq_rollback(c);
    return err;
}

/* ---------------------------------------------------------------------- */
/* Producer ids                                                            */

static sh_err_t sq_producer_ids_allocate(sh_meta_conn_t *c, int32_t broker_id, int32_t count,
                                         int64_t now_ms, int64_t *first_id)
{
    const char *what = "allocate producer ids";
    int64_t next = 0;
    sh_err_t err;
    if ((err = sq_begin(c, 1, what)) != SH_OK)
        return err;
    if ((err = sq_int64(c, SQ_PID_NEXT, what, &next, "")) != SH_OK)
        goto fail;
    if (next > INT64_MAX - count) {
        sh_log(SH_LOG_ERROR, "meta", "producer id space is exhausted");
        err = SH_E_IO;
        goto fail;
    }
    if ((err = sq_exec(c, SQ_PID_INSERT, what, NULL, "IiiI", next, (int)count, broker_id,
                       now_ms)) != SH_OK)
        goto fail;
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    *first_id = next;
    return SH_OK;
fail:
    sq_rollback(c);
    return err;
}

/* ---------------------------------------------------------------------- */
/* Producer epochs and snapshots                                           */

static sh_err_t sq_producer_init(sh_meta_conn_t *c, int64_t producer_id, int64_t now_ms)
{
    return sq_exec(c, SQ_PRODUCER_INIT, "record a producer id", NULL, "II", producer_id,
                   now_ms);
}

/* The record of id: SH_E_NOTFOUND when there is none. */
static sh_err_t sq_producer_read(sh_meta_conn_t *c, int64_t id, const char *what,
                                 sh_meta_producer_t *out)
{
    sqlite3_stmt *st;
    sh_err_t err = sq_prep(c, SQ_PRODUCER_GET, what, &st, "I", id);
    if (err != SH_OK)
        return err;
    int r = sq_step(c, st, what);
    if (r <= 0)
        return r < 0 ? r : SH_E_NOTFOUND;
    out->producer_id = id;
    out->epoch = (int16_t)sqlite3_column_int(st, 0);
    out->last_epoch = (int16_t)sqlite3_column_int(st, 1);
    out->updated_ms = sqlite3_column_int64(st, 2);
    sqlite3_reset(st);
    return SH_OK;
}

static sh_err_t sq_producer_bump(sh_meta_conn_t *c, int64_t producer_id, int16_t epoch,
                                 int64_t now_ms, sh_meta_producer_t *out)
{
    const char *what = "bump a producer epoch";
    sh_meta_producer_t rec;
    sh_err_t err;
    if ((err = sq_begin(c, 1, what)) != SH_OK)
        return err;
    if ((err = sq_producer_read(c, producer_id, what, &rec)) != SH_OK)
        goto fail;
    if (epoch >= rec.epoch) {
        rec.last_epoch = epoch;
        rec.epoch = (int16_t)(epoch + 1);
        if (now_ms > rec.updated_ms)
            rec.updated_ms = now_ms;
        if ((err = sq_exec(c, SQ_PRODUCER_SET, what, NULL, "IiiI", producer_id, (int)rec.epoch,
                           (int)rec.last_epoch, now_ms)) != SH_OK)
            goto fail;
    } else if (epoch != rec.last_epoch) {
        *out = rec;
        err = SH_E_FENCED;
        goto fail;
    }
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    *out = rec;
    return SH_OK;
fail:
    sq_rollback(c);
    return err;
}

static sh_err_t sq_producer_epochs(sh_meta_conn_t *c, const int64_t *ids, size_t n,
                                   int16_t *epochs)
{
    const char *what = "read producer epochs";
    sh_err_t err;
    if ((err = sq_begin(c, 0, what)) != SH_OK)
        return err;
    for (size_t i = 0; i < n; i++) {
        sh_meta_producer_t rec;
        err = sq_producer_read(c, ids[i], what, &rec);
        if (err == SH_E_NOTFOUND) {
            epochs[i] = -1;
            continue;
        }
        if (err != SH_OK)
            goto fail;
        epochs[i] = rec.epoch;
    }
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    return SH_OK;
fail:
    for (size_t i = 0; i < n; i++)
        epochs[i] = -1;
    sq_rollback(c);
    return err;
}

static sh_err_t sq_producer_snapshots_put(sh_meta_conn_t *c, sh_meta_producer_snapshot_t *snaps,
                                          size_t n, int64_t now_ms)
{
    const char *what = "write producer snapshots";
    sh_meta_touch_agg_t *agg = NULL;
    size_t nagg = 0;
    sh_err_t err;
    if ((err = sq_begin(c, 1, what)) != SH_OK)
        return err;
    for (size_t i = 0; i < n; i++) {
        sh_meta_producer_snapshot_t *s = &snaps[i];
        sq_pstate_t ps;
        err = sq_partition_state(c, s->tp, what, &ps);
        if (err == SH_KERR_UNKNOWN_TOPIC_OR_PARTITION ||
            (err == SH_OK && ps.topic_state != SH_META_TOPIC_LIVE)) {
            s->result = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
            continue;
        }
        if (err != SH_OK)
            goto fail;
        if (ps.leader_epoch != s->leader_epoch) {
            s->result = SH_E_FENCED;
            continue;
        }
        if (s->as_of_offset < ps.high_watermark) {
            s->result = SH_E_INVAL;
            continue;
        }
        if ((err = sq_exec(c, SQ_PSNAP_PUT, what, NULL, "uiIiIs", &s->tp.topic_id,
                           s->tp.partition, s->as_of_offset, s->leader_epoch, now_ms,
                           s->data)) != SH_OK)
            goto fail;
        if ((err = sq_exec(c, SQ_PSNAP_TRIM, what, NULL, "uiI", &s->tp.topic_id,
                           s->tp.partition, ps.high_watermark)) != SH_OK)
            goto fail;
        s->result = SH_OK;
    }
    /* each producer once, however many partitions saw it */
    if ((err = sh_meta_touches_collect(snaps, n, &agg, &nagg)) != SH_OK)
        goto fail;
    for (size_t j = 0; j < nagg; j++) {
        int64_t rec = -1;
        if ((err = sq_int64(c, SQ_PRODUCER_TOUCH, what, &rec, "IiI", agg[j].producer_id,
                            (int)agg[j].epoch, agg[j].seen_ms)) != SH_OK)
            goto fail;
        agg[j].recorded = (int16_t)rec;
    }
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    sh_meta_touches_apply(snaps, n, agg, nagg);
    free(agg);
    return SH_OK;
fail:
    free(agg);
    for (size_t i = 0; i < n; i++)
        snaps[i].result = err;
    sq_rollback(c);
    return err;
}

static sh_err_t sq_producer_snapshot_get(sh_meta_conn_t *c, sh_meta_tp_t tp, int64_t max_offset,
                                         sh_arena_t *a, int64_t *as_of, const char **data)
{
    const char *what = "read a producer snapshot";
    sqlite3_stmt *st;
    sh_err_t err = sq_prep(c, SQ_PSNAP_GET, what, &st, "uiI", &tp.topic_id, tp.partition,
                           max_offset);
    if (err != SH_OK)
        return err;
    int r = sq_step(c, st, what);
    if (r <= 0)
        return r < 0 ? r : SH_E_NOTFOUND;
    *as_of = sqlite3_column_int64(st, 0);
    err = sq_col_str(st, 1, a, data);
    sqlite3_reset(st);
    if (err != SH_OK) {
        *as_of = -1;
        *data = NULL;
    }
    return err;
}

static sh_err_t sq_producers_expire(sh_meta_conn_t *c, int64_t cutoff_ms, int64_t *removed)
{
    int changes = 0;
    sh_err_t err = sq_exec(c, SQ_PRODUCERS_EXPIRE, "expire producer ids", &changes, "I",
                           cutoff_ms);
    if (err == SH_OK)
        *removed = changes;
    return err;
}

/* ---------------------------------------------------------------------- */
/* Consumer group offsets                                                  */

static sh_err_t sq_read_offset(sqlite3_stmt *st, sh_arena_t *a, sh_meta_offset_t *o)
{
    o->partition = sqlite3_column_int(st, 1);
    o->offset = sqlite3_column_int64(st, 2);
    o->leader_epoch = sqlite3_column_int(st, 3);
    o->commit_ms = sqlite3_column_int64(st, 5);
    sh_err_t err = sq_col_str(st, 0, a, &o->topic);
    return err != SH_OK ? err : sq_col_str(st, 4, a, &o->metadata);
}

static sh_err_t sq_reader_offset(sqlite3_stmt *st, sh_arena_t *a, void *item)
{
    return sq_read_offset(st, a, item);
}

/* One statement per entry inside one write transaction: a commit of many
 * partitions costs one fsync, and a failure leaves none of them. */
static sh_err_t sq_offsets_commit(sh_meta_conn_t *c, const char *group_id,
                                  const sh_meta_offset_t *offsets, size_t n)
{
    const char *what = "commit group offsets";
    sh_err_t err;
    if ((err = sq_begin(c, 1, what)) != SH_OK)
        return err;
    for (size_t i = 0; i < n; i++) {
        const sh_meta_offset_t *o = &offsets[i];
        if ((err = sq_exec(c, SQ_OFFSET_PUT, what, NULL, "ssiIisI", group_id, o->topic,
                           (int)o->partition, o->offset, (int)o->leader_epoch, o->metadata,
                           o->commit_ms)) != SH_OK)
            goto fail;
    }
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    return SH_OK;
fail:
    sq_rollback(c);
    return err;
}

static sh_err_t sq_offsets_fetch_all(sh_meta_conn_t *c, const char *group_id, sh_arena_t *a,
                                     sh_meta_offset_t **out, size_t *n)
{
    const char *what = "fetch group offsets";
    sqlite3_stmt *st;
    sh_err_t err = sq_prep(c, SQ_OFFSETS_OF_GROUP, what, &st, "s", group_id);
    if (err != SH_OK)
        return err;
    return sq_collect(c, st, what, a, sizeof(**out), sq_reader_offset, (void **)out, n);
}

static sh_err_t sq_offsets_fetch(sh_meta_conn_t *c, const char *group_id,
                                 const sh_meta_offset_key_t *keys, size_t nkeys,
                                 sh_arena_t *a, sh_meta_offset_t **out, size_t *n)
{
    const char *what = "fetch group offsets";
    sq_vec_t v = {.size = sizeof(sh_meta_offset_t)};
    sqlite3_stmt *st;
    sh_err_t err;
    int r;
    /* several statements: one snapshot, so a concurrent commit of many
     * partitions is seen whole or not at all */
    if ((err = sq_begin(c, 0, what)) != SH_OK)
        return err;
    for (size_t i = 0; i < nkeys; i++) {
        if (keys[i].partition == SH_META_ALL_PARTITIONS)
            err = sq_prep(c, SQ_OFFSETS_OF_TOPIC, what, &st, "ss", group_id, keys[i].topic);
        else
            err = sq_prep(c, SQ_OFFSET_GET, what, &st, "ssi", group_id, keys[i].topic,
                          (int)keys[i].partition);
        if (err != SH_OK)
            goto fail;
        while ((r = sq_step(c, st, what)) == 1) {
            sh_meta_offset_t *o = sq_vec_push(a, &v);
            err = o ? sq_read_offset(st, a, o) : SH_E_NOMEM;
            if (err != SH_OK)
                goto fail;
        }
        if (r < 0) {
            err = r;
            goto fail;
        }
    }
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    *out = v.items;
    *n = v.n;
    return SH_OK;
fail:
    sq_rollback(c);
    return err;
}

static sh_err_t sq_offsets_delete(sh_meta_conn_t *c, const char *group_id,
                                  const sh_meta_offset_key_t *keys, size_t nkeys,
                                  int64_t *remaining)
{
    const char *what = "delete group offsets";
    int64_t left = 0;
    sh_err_t err;
    if ((err = sq_begin(c, 1, what)) != SH_OK)
        return err;
    for (size_t i = 0; i < nkeys; i++) {
        if (keys[i].partition == SH_META_ALL_PARTITIONS)
            err = sq_exec(c, SQ_OFFSETS_DEL_TOPIC, what, NULL, "ss", group_id, keys[i].topic);
        else
            err = sq_exec(c, SQ_OFFSET_DEL, what, NULL, "ssi", group_id, keys[i].topic,
                          (int)keys[i].partition);
        if (err != SH_OK)
            goto fail;
    }
    if ((err = sq_int64(c, SQ_GROUP_OFFSET_COUNT, what, &left, "s", group_id)) != SH_OK)
        goto fail;
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    *remaining = left;
    return SH_OK;
fail:
    sq_rollback(c);
    return err;
}

static sh_err_t sq_group_delete(sh_meta_conn_t *c, const char *group_id, int64_t *deleted)
{
    const char *what = "delete a group's offsets";
    int changes = 0;
    sh_err_t err = sq_exec(c, SQ_GROUP_OFFSETS_DEL, what, &changes, "s", group_id);
    if (err == SH_OK)
        *deleted = changes;
    return err;
}

static sh_err_t sq_reader_group(sqlite3_stmt *st, sh_arena_t *a, void *item)
{
    sh_meta_group_summary_t *g = item;
    g->offsets = sqlite3_column_int64(st, 1);
    g->last_commit_ms = sqlite3_column_int64(st, 2);
    return sq_col_str(st, 0, a, &g->group_id);
}

static sh_err_t sq_groups_list(sh_meta_conn_t *c, sh_arena_t *a,
                               sh_meta_group_summary_t **out, size_t *n)
{
    const char *what = "list groups with offsets";
    sqlite3_stmt *st;
    sh_err_t err = sq_prep(c, SQ_GROUPS_LIST, what, &st, "");
    if (err != SH_OK)
        return err;
    return sq_collect(c, st, what, a, sizeof(**out), sq_reader_group, (void **)out, n);
}

static sh_err_t sq_offsets_expire(sh_meta_conn_t *c, const char *const *groups,
                                  size_t ngroups, int64_t cutoff_ms, int64_t *removed)
{
    const char *what = "expire group offsets";
    int64_t total = 0;
    int changes;
    sh_err_t err;
    if ((err = sq_begin(c, 1, what)) != SH_OK)
        return err;
    for (size_t i = 0; i < ngroups; i++) {
        if ((err = sq_exec(c, SQ_OFFSETS_EXPIRE, what, &changes, "sI", groups[i],
                           cutoff_ms)) != SH_OK)
            goto fail;
        total += changes;
    }
    if ((err = sq_commit(c, what)) != SH_OK)
        goto fail;
    *removed = total;
    return SH_OK;
fail:
    sq_rollback(c);
    return err;
}

const sh_meta_backend_t sh_meta_sqlite_backend = {
    .name = "sqlite",
    .nthreads = 1,
    .close = sq_close,
    .schema_version = sq_schema_version,
    .testing_schema_version_set = sq_testing_schema_version_set,
    .cluster_id_get = sq_cluster_id_get,
    .broker_register = sq_broker_register,
    .broker_heartbeat = sq_broker_heartbeat,
    .broker_unregister = sq_broker_unregister,
    .broker_list = sq_broker_list,
    .topic_create = sq_topic_create,
    .topic_get_by_name = sq_topic_get_by_name,
    .topic_get_by_id = sq_topic_get_by_id,
    .topic_list = sq_topic_list,
    .topic_mark_deleting = sq_topic_mark_deleting,
    .topic_drop = sq_topic_drop,
    .topic_objects = sq_topic_objects,
    .topic_partitions_add = sq_topic_partitions_add,
    .topic_configs_get = sq_topic_configs_get,
    .topic_configs_alter = sq_topic_configs_alter,
    .partition_get = sq_partition_get,
    .partition_list = sq_partition_list,
    .partition_acquire = sq_partition_acquire,
    .partition_renew = sq_partition_renew,
    .partition_release = sq_partition_release,
    .partition_log_start_advance = sq_partition_log_start_advance,
    .chunks_commit = sq_chunks_commit,
    .chunks_find = sq_chunks_find,
    .chunks_find_by_time = sq_chunks_find_by_time,
    .partition_size = sq_partition_size,
    .retention_by_time = sq_retention_by_time,
    .retention_by_size = sq_retention_by_size,
    .objects_unreferenced = sq_objects_unreferenced,
    .objects_forget = sq_objects_forget,
    .producer_ids_allocate = sq_producer_ids_allocate,
    .producer_init = sq_producer_init,
    .producer_bump = sq_producer_bump,
    .producer_epochs = sq_producer_epochs,
    .producer_snapshots_put = sq_producer_snapshots_put,
    .producer_snapshot_get = sq_producer_snapshot_get,
    .producers_expire = sq_producers_expire,
    .offsets_commit = sq_offsets_commit,
    .offsets_fetch = sq_offsets_fetch,
    .offsets_fetch_all = sq_offsets_fetch_all,
    .offsets_delete = sq_offsets_delete,
    .group_delete = sq_group_delete,
    .groups_list = sq_groups_list,
    .offsets_expire = sq_offsets_expire,
};
