/*
 * sh_meta_pg.c - the PostgreSQL metadata backend: one libpq connection,
 * used synchronously on the metadata worker (ADR 003).
 *
 * Threads: every entry runs with the sh_meta_t mutex held, on the metadata
 * worker or on a thread that may block before the loop starts, so the
 * connection is never used by two threads at once. Calls block, but never
 * without bound: statements are sent with libpq's asynchronous calls and
 * the answer is awaited with poll() against a deadline (SH_PG_IO_TIMEOUT_MS,
 * a little longer than the server-side statement_timeout we set), so a
 * hung server or a silent network costs one operation a bounded wait, then
 * the connection is dropped.
 *
 * Transactions. Concurrent brokers share this database, so the SQLite
 * backend's "one writer at a time" must be rebuilt here:
 *  - entries that write more than one statement run SERIALIZABLE; a
 *    serialization failure or deadlock (SQLSTATE 40001, 40P01) rolls back
 *    and reruns the whole entry, up to SH_PG_TX_ATTEMPTS times with a short
 *    jittered pause, then gives up with SH_E_AGAIN;
 *  - entries that read more than one statement run REPEATABLE READ READ
 *    ONLY (one snapshot, never a serialization failure);
 *  - single-statement entries run in autocommit: each is a conditional
 *    write of one row (the epoch compare-and-set) or a plain read, and a
 *    row-level write conflict re-checks its WHERE clause on the newest row
 *    version, so the fencing rules hold without a wider transaction.
 * Every ownership-dependent write carries `leader_epoch = $n` in its WHERE
 * clause exactly as in SQLite; zero rows is SH_E_FENCED and the entry's
 * transaction is rolled back through one `fail` label.
 *
 * The connection comes and goes. When it is lost (server restart,
 * failover, network), the entry fails with SH_E_AGAIN and the next entry
 * reconnects, at most once per backoff step (100 ms doubling to 1 s), so
 * while the server is down entries fail at once instead of queueing
 * behind connect attempts, and the store is back within about a second
 * of the server. A connection the server closed while we were idle is
 * noticed before it is used; a transaction whose connection died before
 * COMMIT was sent is rolled back by the server, so it is rerun once on a
 * fresh connection instead of failing. A lost COMMIT (or autocommit
 * write) has an unknown outcome and is reported as SH_E_AGAIN: the
 * callers' retries are designed for that (a chunk commit retried with the
 * same chunks is success).
 *
 * Statements are prepared on first use on each connection and forgotten
 * when it is replaced. Parameters and results use the text format.
 *
 * Ownership: the connection struct owns the PGconn, the parsed connection
 * parameters (which hold the password: never logged; log lines use the
 * redacted URL) and nothing else; results are copied into the caller's
 * arena before the PGresult is cleared.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/sh_clock.h"
#include "common/sh_log.h"
#include "meta/sh_meta_backend.h"

/* Server-side limits set on every session (overridable per URL through
 * "options"): a statement or a lock wait that takes this long is cancelled
 * by the server and reported as retriable, and a session that leaves a
 * transaction open (a hung broker holding row locks) is closed. */
#define SH_PG_SESSION_OPTIONS                                                   \
    "-c statement_timeout=10000 -c lock_timeout=5000 "                         \
    "-c idle_in_transaction_session_timeout=60000"
/* Client-side bound on one round trip: past the server's own
 * statement_timeout, so a healthy server answers first with its error. */
#define SH_PG_IO_TIMEOUT_MS 15000
/* Migrations may wait for another broker's migration and may rewrite
 * tables: far more than a normal statement. */
#define SH_PG_MIGRATE_TIMEOUT_MS 330000
#define SH_PG_TX_ATTEMPTS 8
#define SH_PG_BACKOFF_MIN_MS 100
#define SH_PG_BACKOFF_MAX_MS 1000
/* While the server stays away, repeat the warning this often. */
#define SH_PG_DOWN_LOG_EVERY_MS 30000
/* PostgreSQL 11: everything below works on 9.5+, but older releases are
 * out of support and untested. */
#define SH_PG_MIN_SERVER_VERSION 110000
/* pg_advisory_xact_lock key serialising migrations ("SHmigrat"). */
#define SH_PG_MIGRATE_LOCK "6001127032312717428"

/* Private results, never returned from an entry. */
#define PG_E_SERIAL (-1001) /* serialization failure: rerun the transaction */
#define PG_E_RESEND (-1002) /* connection lost, nothing applied: rerun once */

#define PG_PARTITION_COLS                                                      \
    "topic_id, partition_index, leader_id, leader_epoch, lease_expiry_ms, "    \
    "log_start_offset, high_watermark"
#define PG_CHUNK_COLS                                                          \
    "topic_id, partition_index, base_offset, last_offset, max_timestamp, "     \
    "object_key, byte_offset, byte_length, leader_epoch"
#define PG_TOPIC_COLS "topic_id, name, partition_count, created_ms, state"
#define PG_OFFSET_COLS                                                         \
    "topic_name, partition_index, committed_offset, leader_epoch, metadata, "  \
    "commit_ms"

/* Decrement live_chunks of every object holding chunks that the matching
 * DELETE is about to remove; the RETURNING rows tell which reached zero. */
#define PG_RELEASE(cond)                                                       \
    "UPDATE segment_objects SET live_chunks = live_chunks - "                  \
    "(SELECT count(*) FROM segment_chunks c "                                  \
    " WHERE c.object_key = segment_objects.object_key AND " cond ") "          \
    "WHERE object_key IN (SELECT c.object_key FROM segment_chunks c WHERE "    \
    cond ") RETURNING object_key, size_bytes, live_chunks"

/*
 * X(name, kind, sql). kind R: reads only, so it may be sent again after
 * the connection dropped under it; W: writes (an autocommit write whose
 * answer was lost may have happened). Same statements as SQLite's list,
 * in PostgreSQL's dialect.
 */
#define PG_STATEMENTS(X)                                                       \
    X(BEGIN_WRITE, 'R', "BEGIN ISOLATION LEVEL SERIALIZABLE")                  \
    X(BEGIN_READ, 'R', "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")     \
    X(COMMIT, 'W', "COMMIT")                                                   \
    X(ROLLBACK, 'R', "ROLLBACK")                                               \
    X(VERSION_GET, 'R', "SELECT coalesce(max(version), 0) FROM schema_version")\
    X(VERSION_ADD, 'W', "INSERT INTO schema_version (version, applied_ms, "    \
                        "description) VALUES ($1, $2, $3)")                    \
    X(VERSION_DEL, 'W', "DELETE FROM schema_version WHERE version = $1")       \
    X(CLUSTER_ID_PUT, 'W', "INSERT INTO cluster (ckey, cvalue) VALUES "        \
                           "('cluster_id', $1) ON CONFLICT (ckey) DO NOTHING") \
    X(CLUSTER_ID_GET, 'R', "SELECT cvalue FROM cluster WHERE ckey = "          \
                           "'cluster_id'")                                     \
    X(BROKER_UPSERT, 'W',                                                      \
      "INSERT INTO brokers (broker_id, broker_epoch, rack, registered_ms, "    \
      "heartbeat_ms) VALUES ($1, 1, $2, $3, $3) ON CONFLICT (broker_id) DO "   \
      "UPDATE SET broker_epoch = brokers.broker_epoch + 1, rack = "            \
      "excluded.rack, registered_ms = excluded.registered_ms, heartbeat_ms = " \
      "excluded.heartbeat_ms RETURNING broker_epoch")                          \
    X(BROKER_EP_CLEAR, 'W', "DELETE FROM broker_endpoints WHERE broker_id = "  \
                            "$1")                                              \
    X(BROKER_EP_ADD, 'W', "INSERT INTO broker_endpoints (broker_id, "          \
                          "listener, host, port, security_protocol) VALUES "   \
                          "($1, $2, $3, $4, $5)")                              \
    X(BROKER_HEARTBEAT, 'W', "UPDATE brokers SET heartbeat_ms = "              \
                             "greatest(heartbeat_ms, $3) WHERE broker_id = "   \
                             "$1 AND broker_epoch = $2")                       \
    X(BROKER_EPOCH, 'R', "SELECT broker_epoch FROM brokers WHERE broker_id = " \
                         "$1")                                                 \
    X(BROKER_DELETE, 'W', "DELETE FROM brokers WHERE broker_id = $1 AND "      \
                          "broker_epoch = $2")                                 \
    X(BROKER_LIST, 'R', "SELECT broker_id, broker_epoch, rack, registered_ms, "\
                        "heartbeat_ms FROM brokers WHERE heartbeat_ms >= $1 "  \
                        "ORDER BY broker_id")                                  \
    X(BROKER_EP_LIST, 'R',                                                     \
      "SELECT e.broker_id, e.listener, e.host, e.port, e.security_protocol "   \
      "FROM broker_endpoints e JOIN brokers b ON b.broker_id = e.broker_id "   \
      "WHERE b.heartbeat_ms >= $1 ORDER BY e.broker_id, e.listener")           \
    X(TOPIC_NAME_TAKEN, 'R', "SELECT 1 FROM topics WHERE name = $1")           \
    X(TOPIC_INSERT, 'W', "INSERT INTO topics (topic_id, name, "                \
                         "partition_count, created_ms, state) VALUES ($1, "    \
                         "$2, $3, $4, 0)")                                     \
    X(TOPIC_BY_NAME, 'R', "SELECT " PG_TOPIC_COLS " FROM topics WHERE name = " \
                          "$1")                                                \
    X(TOPIC_BY_ID, 'R', "SELECT " PG_TOPIC_COLS " FROM topics WHERE "          \
                        "topic_id = $1")                                       \
    X(TOPIC_LIST, 'R', "SELECT " PG_TOPIC_COLS " FROM topics ORDER BY name")   \
    X(TOPIC_MARK_DELETING, 'W', "UPDATE topics SET state = 1 WHERE topic_id "  \
                                "= $1")                                        \
    X(TOPIC_SET_COUNT, 'W', "UPDATE topics SET partition_count = $2 WHERE "    \
                            "topic_id = $1")                                   \
    X(TOPIC_DELETE, 'W', "DELETE FROM topics WHERE topic_id = $1")             \
    X(TOPIC_RELEASE, 'W', PG_RELEASE("c.topic_id = $1"))                       \
    X(TOPIC_CHUNKS_DELETE, 'W', "DELETE FROM segment_chunks WHERE topic_id = " \
                                "$1")                                          \
    X(TOPIC_OFFSETS_DELETE, 'W', "DELETE FROM group_offsets WHERE "            \
                                 "topic_name = $1")                            \
    X(TOPIC_OBJECTS, 'R', "SELECT object_key, size_bytes, live_chunks FROM "   \
                          "segment_objects WHERE object_key IN (SELECT "       \
                          "object_key FROM segment_chunks WHERE topic_id = "   \
                          "$1) ORDER BY object_key")                           \
    X(PARTITIONS_INSERT, 'W', "INSERT INTO partitions (topic_id, "             \
                              "partition_index) SELECT $1::uuid, g FROM "            \
                              "generate_series($2::integer, $3::integer) g")   \
    X(CONFIG_PUT, 'W', "INSERT INTO topic_configs (topic_id, config_key, "     \
                       "config_value) VALUES ($1, $2, $3) ON CONFLICT "        \
                       "(topic_id, config_key) DO UPDATE SET config_value = "  \
                       "excluded.config_value")                                \
    X(CONFIG_DEL, 'W', "DELETE FROM topic_configs WHERE topic_id = $1 AND "    \
                       "config_key = $2")                                      \
    X(CONFIG_CLEAR, 'W', "DELETE FROM topic_configs WHERE topic_id = $1")      \
    X(CONFIG_LIST, 'R', "SELECT config_key, config_value FROM topic_configs "  \
                        "WHERE topic_id = $1 ORDER BY config_key")             \
    X(PARTITION_GET, 'R', "SELECT " PG_PARTITION_COLS " FROM partitions "      \
                          "WHERE topic_id = $1 AND partition_index = $2")      \
    X(PARTITION_LIST, 'R', "SELECT " PG_PARTITION_COLS " FROM partitions "     \
                           "WHERE topic_id = $1 ORDER BY partition_index")     \
    X(PARTITION_STATE, 'R',                                                    \
      "SELECT p.leader_id, p.leader_epoch, p.lease_expiry_ms, "                \
      "p.high_watermark, t.state, p.log_start_offset FROM partitions p JOIN "  \
      "topics t ON t.topic_id = p.topic_id WHERE p.topic_id = $1 AND "         \
      "p.partition_index = $2")                                                \
    X(PARTITION_ACQUIRE, 'W',                                                  \
      "UPDATE partitions SET leader_id = $3, leader_epoch = leader_epoch + 1," \
      " lease_expiry_ms = $6 WHERE topic_id = $1 AND partition_index = $2 "    \
      "AND leader_epoch = $4 AND (leader_id < 0 OR leader_id = $3 OR "         \
      "lease_expiry_ms <= $5) AND EXISTS (SELECT 1 FROM topics t WHERE "       \
      "t.topic_id = $1 AND t.state = 0) RETURNING leader_epoch")               \
    X(PARTITION_RENEW, 'W', "UPDATE partitions SET lease_expiry_ms = $4 "      \
                            "WHERE topic_id = $1 AND partition_index = $2 "    \
                            "AND leader_epoch = $3 AND leader_id >= 0")        \
    X(PARTITION_RELEASE, 'W', "UPDATE partitions SET leader_id = -1, "         \
                              "lease_expiry_ms = 0 WHERE topic_id = $1 AND "   \
                              "partition_index = $2 AND leader_epoch = $3")    \
    X(PARTITION_ADVANCE_HWM, 'W',                                              \
      "UPDATE partitions SET high_watermark = $5 WHERE topic_id = $1 AND "     \
      "partition_index = $2 AND leader_epoch = $3 AND high_watermark = $4 "    \
      "AND EXISTS (SELECT 1 FROM topics t WHERE t.topic_id = $1 AND "          \
      "t.state = 0)")                                                          \
    X(PARTITION_LOG_START, 'W', "UPDATE partitions SET log_start_offset = "    \
                                "greatest(log_start_offset, $3) WHERE "        \
                                "topic_id = $1 AND partition_index = $2 "      \
                                "RETURNING log_start_offset")                  \
    X(PARTITION_RELEASE_BELOW, 'W',                                            \
      PG_RELEASE("c.topic_id = $1 AND c.partition_index = $2 AND "             \
                 "c.last_offset < $3"))                                        \
    X(PARTITION_CHUNKS_DELETE, 'W', "DELETE FROM segment_chunks WHERE "        \
                                    "topic_id = $1 AND partition_index = $2 "  \
                                    "AND last_offset < $3")                    \
    X(OBJECT_INSERT, 'W', "INSERT INTO segment_objects (object_key, "          \
                          "size_bytes, live_chunks, created_ms) VALUES ($1, "  \
                          "$2, $3, $4) ON CONFLICT (object_key) DO NOTHING")   \
    X(OBJECT_SIZE, 'R', "SELECT size_bytes FROM segment_objects WHERE "        \
                        "object_key = $1")                                     \
    X(OBJECT_LIVE, 'R', "SELECT live_chunks FROM segment_objects WHERE "       \
                        "object_key = $1")                                     \
    X(OBJECT_FORGET, 'W', "DELETE FROM segment_objects WHERE object_key = $1 " \
                          "AND live_chunks = 0")                               \
    X(OBJECTS_UNREFERENCED, 'R',                                               \
      "SELECT object_key, size_bytes, live_chunks FROM segment_objects WHERE " \
      "live_chunks = 0 ORDER BY created_ms, object_key LIMIT $1")              \
    X(CHUNK_INSERT, 'W',                                                       \
      "INSERT INTO segment_chunks (topic_id, partition_index, base_offset, "   \
      "last_offset, max_timestamp, object_key, byte_offset, byte_length, "     \
      "leader_epoch, committed_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "   \
      "$9, $10)")                                                              \
    X(CHUNK_SAME, 'R', "SELECT count(*) FROM segment_chunks WHERE topic_id = " \
                       "$1 AND partition_index = $2 AND base_offset = $3 AND " \
                       "last_offset = $4 AND object_key = $5 AND byte_offset " \
                       "= $6 AND byte_length = $7")                            \
    X(CHUNKS_FIND, 'R', "SELECT " PG_CHUNK_COLS " FROM segment_chunks WHERE "  \
                        "topic_id = $1 AND partition_index = $2 AND "          \
                        "last_offset >= $3 ORDER BY last_offset LIMIT $4")     \
    X(CHUNKS_BY_TIME, 'R', "SELECT " PG_CHUNK_COLS " FROM segment_chunks "     \
                           "WHERE topic_id = $1 AND partition_index = $2 AND " \
                           "max_timestamp >= $3 ORDER BY base_offset LIMIT 1") \
    X(CHUNKS_SIZES, 'R', "SELECT last_offset, byte_length FROM "               \
                         "segment_chunks WHERE topic_id = $1 AND "             \
                         "partition_index = $2 AND last_offset >= $3 ORDER "   \
                         "BY base_offset")                                     \
    X(PARTITION_SIZE, 'R', "SELECT coalesce(sum(byte_length), 0), count(*) "   \
                           "FROM segment_chunks WHERE topic_id = $1 AND "      \
                           "partition_index = $2 AND last_offset >= $3")       \
    X(RETENTION_TIME, 'R', "SELECT min(base_offset) FROM segment_chunks "      \
                           "WHERE topic_id = $1 AND partition_index = $2 AND " \
                           "max_timestamp >= $3")                              \
    X(PARTITION_EXISTS, 'R', "SELECT 1 FROM partitions WHERE topic_id = $1 "   \
                             "AND partition_index = $2")                       \
    X(TOPIC_EXISTS, 'R', "SELECT state, partition_count, name FROM topics "    \
                         "WHERE topic_id = $1")                                \
    X(PID_NEXT, 'R', "SELECT coalesce(max(first_id + block_size), 0) FROM "    \
                     "producer_id_blocks")                                     \
    X(PID_INSERT, 'W', "INSERT INTO producer_id_blocks (first_id, "            \
                       "block_size, broker_id, allocated_ms) VALUES ($1, $2, " \
                       "$3, $4)")                                              \
    X(PRODUCER_INIT, 'W', "INSERT INTO producers (producer_id, epoch, "        \
                          "last_epoch, updated_ms) VALUES ($1, 0, -1, $2)")    \
    X(PRODUCER_GET, 'R', "SELECT epoch, last_epoch, updated_ms FROM "          \
                         "producers WHERE producer_id = $1")                   \
    X(PRODUCER_SET, 'W', "UPDATE producers SET epoch = $2, last_epoch = $3, "  \
                         "updated_ms = GREATEST(updated_ms, $4) WHERE "        \
                         "producer_id = $1")                                   \
    X(PRODUCER_EPOCHS, 'R',                                                    \
      "SELECT p.epoch FROM unnest($1::bigint[]) WITH ORDINALITY AS k(id, ord) "\
      "LEFT JOIN producers p ON p.producer_id = k.id ORDER BY k.ord")          \
    X(PRODUCERS_TOUCH, 'W',                                                    \
      "INSERT INTO producers (producer_id, epoch, last_epoch, updated_ms) "    \
      "SELECT u.id, u.e, -1, u.ms FROM unnest($1::bigint[], $2::integer[], "   \
      "$3::bigint[]) AS u(id, e, ms) ON CONFLICT (producer_id) DO UPDATE SET " \
      "epoch = GREATEST(producers.epoch, excluded.epoch), updated_ms = "       \
      "GREATEST(producers.updated_ms, excluded.updated_ms) RETURNING "         \
      "producer_id, epoch")                                                    \
    X(PRODUCERS_EXPIRE, 'W', "DELETE FROM producers WHERE updated_ms < $1")    \
    X(PSNAP_PUT, 'W',                                                          \
      "INSERT INTO producer_snapshots (topic_id, partition_index, "            \
      "as_of_offset, leader_epoch, created_ms, data) VALUES ($1, $2, $3, $4, " \
      "$5, $6) ON CONFLICT (topic_id, partition_index, as_of_offset) DO "      \
      "UPDATE SET leader_epoch = excluded.leader_epoch, created_ms = "         \
      "excluded.created_ms, data = excluded.data")                             \
    X(PSNAP_TRIM, 'W', "DELETE FROM producer_snapshots WHERE topic_id = $1 "   \
                       "AND partition_index = $2 AND as_of_offset < $3")       \
    X(PSNAP_GET, 'R', "SELECT as_of_offset, data FROM producer_snapshots "     \
                      "WHERE topic_id = $1 AND partition_index = $2 AND "      \
                      "as_of_offset <= $3 ORDER BY as_of_offset DESC LIMIT 1") \
    X(OFFSETS_PUT, 'W',                                                        \
      "INSERT INTO group_offsets (group_id, topic_name, partition_index, "     \
      "committed_offset, leader_epoch, metadata, commit_ms) SELECT DISTINCT "  \
      "ON (u.t, u.p) $1::text, u.t, u.p, u.o, u.e, u.m, u.ms FROM "            \
      "unnest($2::text[], $3::integer[], $4::bigint[], $5::integer[], "        \
      "$6::text[], $7::bigint[]) WITH ORDINALITY AS u(t, p, o, e, m, ms, ord) "\
      "ORDER BY u.t, u.p, u.ord DESC ON CONFLICT (group_id, topic_name, "      \
      "partition_index) DO UPDATE SET committed_offset = "                     \
      "excluded.committed_offset, leader_epoch = excluded.leader_epoch, "      \
      "metadata = excluded.metadata, commit_ms = excluded.commit_ms")          \
    X(OFFSETS_OF_GROUP, 'R', "SELECT " PG_OFFSET_COLS " FROM group_offsets "   \
                             "WHERE group_id = $1 ORDER BY topic_name, "       \
                             "partition_index")                                \
    X(OFFSETS_BY_KEYS, 'R',                                                    \
      "SELECT g.topic_name, g.partition_index, g.committed_offset, "           \
      "g.leader_epoch, g.metadata, g.commit_ms FROM unnest($2::text[], "       \
      "$3::integer[]) WITH ORDINALITY AS k(t, p, ord) JOIN group_offsets g "   \
      "ON g.group_id = $1 AND g.topic_name = k.t AND (k.p = -1 OR "            \
      "g.partition_index = k.p) ORDER BY k.ord, g.partition_index")            \
    X(OFFSETS_DEL_KEYS, 'W',                                                   \
      "DELETE FROM group_offsets g USING unnest($2::text[], $3::integer[]) AS "\
      "k(t, p) WHERE g.group_id = $1 AND g.topic_name = k.t AND (k.p = -1 OR " \
      "g.partition_index = k.p)")                                              \
    X(GROUP_OFFSET_COUNT, 'R', "SELECT count(*) FROM group_offsets WHERE "     \
                               "group_id = $1")                                \
    X(GROUP_OFFSETS_DEL, 'W', "DELETE FROM group_offsets WHERE group_id = $1") \
    X(GROUPS_LIST, 'R', "SELECT group_id, count(*), max(commit_ms) FROM "      \
                        "group_offsets GROUP BY group_id ORDER BY group_id")   \
    X(OFFSETS_EXPIRE, 'W', "DELETE FROM group_offsets WHERE group_id = "       \
                           "ANY ($1::text[]) AND commit_ms < $2")

#define PG_ENUM(name, kind, sql) PG_##name,
enum pg_id { PG_STATEMENTS(PG_ENUM) PG__COUNT };
#define PG_TEXT(name, kind, sql) [PG_##name] = sql,
static const char *const pg_sql[PG__COUNT] = {PG_STATEMENTS(PG_TEXT)};
#define PG_KIND(name, kind, sql) [PG_##name] = kind,
static const char pg_kind[PG__COUNT] = {PG_STATEMENTS(PG_KIND)};

#define PG_MAX_PARAMS 12

struct sh_meta_conn {
    PGconn *pg;                 /* NULL while disconnected */
    char *name;                 /* redacted URL, for log lines */
    char *secrets[3];           /* the password as written and as decoded, to
                                 * scrub from messages; NULL when absent */
    PQconninfoOption *parsed;   /* the URL, parsed by libpq */
    const char **kw, **val;     /* what PQconnectdbParams gets */
    char *options;              /* our session options + the URL's */
    unsigned char prepared[PG__COUNT];
    int io_timeout_ms;
    int backoff_ms;
    int64_t retry_at_ms;        /* monotonic: no connect attempt before */
    int64_t down_since_ms;      /* monotonic; 0 while connected */
    int64_t down_logged_ms;
    unsigned rnd;               /* jitter for transaction retries */
};

/* ---------------------------------------------------------------------- */
/* Messages                                                                */

static int pg_isalnum(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* Does the password start at s? A password of a few characters would
 * match inside ordinary words, so it must stand alone to count. */
static int pg_secret_at(const char *start, const char *s, const char *secret, size_t slen)
{
    if (strncmp(s, secret, slen) != 0)
        return 0;
    if (slen >= 4)
        return 1;
    return (s == start || !pg_isalnum(s[-1])) && !pg_isalnum(s[slen]);
}

/*
 * libpq's messages span lines ("...failed: Connection refused\n\tIs the
 * server running...") and one of them ("invalid percent-encoded token")
 * can quote the URL, password included: fold the lines into one and
 * replace any occurrence of the password.
 */
static void pg_msg_clean(const sh_meta_conn_t *c, const char *in, char *out, size_t cap)
{
    size_t o = 0;
    const char *s = in ? in : "";
    while (*s && o + 1 < cap) {
        size_t slen = 0;
        for (int i = 0; c && i < 3 && !slen; i++)
            if (c->secrets[i] && c->secrets[i][0] &&
                pg_secret_at(in, s, c->secrets[i], strlen(c->secrets[i])))
                slen = strlen(c->secrets[i]);
        if (slen) {
            for (const char *r = "***"; *r && o + 1 < cap; r++)
                out[o++] = *r;
            s += slen;
            continue;
        }
        char ch = *s++;
        if (ch == '\n' || ch == '\r' || ch == '\t') {
            while (*s == '\n' || *s == '\r' || *s == '\t' || *s == ' ')
                s++;
            if (*s && o > 0 && out[o - 1] != ' ' && o + 2 < cap) {
                if (out[o - 1] != '.' && out[o - 1] != ':')
                    out[o++] = ';';
                out[o++] = ' ';
            }
            continue;
        }
        out[o++] = ch;
    }
    while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == ';'))
        o--;
    out[o] = '\0';
}

static void pg_notice(void *arg, const char *message)
{
    char msg[512];
    pg_msg_clean(arg, message, msg, sizeof(msg));
    sh_log(SH_LOG_DEBUG, "meta", "metadata database notice: %s", msg);
}

/* ---------------------------------------------------------------------- */
/* Connection                                                              */

static void pg_drop(sh_meta_conn_t *c)
{
    if (!c->pg)
        return;
    PQfinish(c->pg);
    c->pg = NULL;
    memset(c->prepared, 0, sizeof(c->prepared));
    if (!c->down_since_ms)
        c->down_since_ms = sh_clock_mono_ms();
    /* the first attempt after a loss is immediate: a restarted server is
     * often back already */
    c->retry_at_ms = 0;
}

static const char *pg_or(const char *s, const char *dflt)
{
    return s && s[0] ? s : dflt;
}

/* "host H, port P, database D, user U" of a (possibly failed) connection,
 * for the one line that says why the store cannot start. */
static void pg_target(PGconn *pg, char *out, size_t cap)
{
    const char *host = PQhost(pg), *port = PQport(pg), *db = PQdb(pg), *user = PQuser(pg);
    snprintf(out, cap, "host %s, port %s, database %s, user %s", pg_or(host, "(default)"),
             pg_or(port, "5432"), pg_or(db, "(default)"), pg_or(user, "(default)"));
}

/*
 * Connect. at_open: the broker is starting and will refuse to, so one
 * ERROR line says everything (what we tried to reach, libpq's reason) and
 * there is no backoff. Otherwise a failure schedules the next attempt and
 * logs a WARNING once per outage (then every SH_PG_DOWN_LOG_EVERY_MS).
 */
static sh_err_t pg_connect(sh_meta_conn_t *c, int at_open)
{
    char msg[768], target[384];
    int64_t now = sh_clock_mono_ms();
    PGconn *pg = PQconnectdbParams(c->kw, c->val, 0);
    if (!pg) {
        sh_log(SH_LOG_ERROR, "meta", "out of memory while connecting to \"%s\"", c->name);
        return SH_E_NOMEM;
    }
    if (PQstatus(pg) != CONNECTION_OK) {
        pg_msg_clean(c, PQerrorMessage(pg), msg, sizeof(msg));
        pg_target(pg, target, sizeof(target));
        PQfinish(pg);
        if (at_open) {
            sh_log(SH_LOG_ERROR, "meta", "could not connect to metadata database \"%s\" (%s): %s",
                   c->name, target, msg);
            return SH_E_IO;
        }
        c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : SH_PG_BACKOFF_MIN_MS;
        if (c->backoff_ms > SH_PG_BACKOFF_MAX_MS)
            c->backoff_ms = SH_PG_BACKOFF_MAX_MS;
        c->retry_at_ms = now + c->backoff_ms;
        if (!c->down_since_ms)
            c->down_since_ms = now;
        if (!c->down_logged_ms || now - c->down_logged_ms >= SH_PG_DOWN_LOG_EVERY_MS) {
            sh_log(SH_LOG_WARN, "meta",
                   "metadata database \"%s\" is unavailable (%s): %s; metadata operations "
                   "fail with retriable errors until it is back",
                   c->name, target, msg);
            c->down_logged_ms = now;
        }
        return SH_E_AGAIN;
    }
    int version = PQserverVersion(pg);
    if (version < SH_PG_MIN_SERVER_VERSION) {
        pg_target(pg, target, sizeof(target));
        sh_log(SH_LOG_ERROR, "meta",
               "metadata database \"%s\" (%s) runs PostgreSQL server version %d; "
               "StreamHouse needs %d or newer",
               c->name, target, version, SH_PG_MIN_SERVER_VERSION);
        PQfinish(pg);
        if (!at_open) {
            c->retry_at_ms = now + SH_PG_BACKOFF_MAX_MS;
            return SH_E_AGAIN;
        }
        return SH_E_UNSUPPORTED;
    }
    PQsetNoticeProcessor(pg, pg_notice, c);
    if (PQsetnonblocking(pg, 1) != 0) {
        pg_msg_clean(c, PQerrorMessage(pg), msg, sizeof(msg));
        sh_log(SH_LOG_ERROR, "meta", "could not configure the connection to \"%s\": %s",
               c->name, msg);
        PQfinish(pg);
        return at_open ? SH_E_IO : SH_E_AGAIN;
    }
    c->pg = pg;
    memset(c->prepared, 0, sizeof(c->prepared));
    c->backoff_ms = 0;
    c->retry_at_ms = 0;
    if (c->down_since_ms && !at_open)
        sh_log(SH_LOG_INFO, "meta", "reconnected to metadata database \"%s\" after %lld ms",
               c->name, (long long)(now - c->down_since_ms));
    c->down_since_ms = 0;
    c->down_logged_ms = 0;
    return SH_OK;
}

/*
 * Make sure there is a usable connection before an entry starts. A
 * connection the server closed while we were idle (restart, failover,
 * pg_terminate_backend) has already announced it: its socket is readable.
 * Noticing that here lets the entry run on a fresh connection instead of
 * failing on the dead one.
 */
static sh_err_t pg_ready(sh_meta_conn_t *c)
{
    if (c->pg) {
        struct pollfd p = {.fd = PQsocket(c->pg), .events = POLLIN};
        if (PQstatus(c->pg) != CONNECTION_OK || p.fd < 0) {
            pg_drop(c);
        } else if (poll(&p, 1, 0) > 0) {
            int alive = PQconsumeInput(c->pg);
            if (alive && PQstatus(c->pg) == CONNECTION_OK && !PQisBusy(c->pg)) {
                /* a notice or parameter status: consumed, still usable */
                PGnotify *n;
                while ((n = PQnotifies(c->pg)) != NULL)
                    PQfreemem(n);
            }
            if (!alive || PQstatus(c->pg) != CONNECTION_OK) {
                char msg[512];
                pg_msg_clean(c, PQerrorMessage(c->pg), msg, sizeof(msg));
                sh_log(SH_LOG_INFO, "meta",
                       "metadata database \"%s\" closed the connection: %s; reconnecting",
                       c->name, msg[0] ? msg : "end of file");
                pg_drop(c);
            }
        }
    }
    if (c->pg)
        return SH_OK;
    if (c->retry_at_ms && sh_clock_mono_ms() < c->retry_at_ms)
        return SH_E_AGAIN; /* fail fast during an outage */
    return pg_connect(c, 0);
}

/* ---------------------------------------------------------------------- */
/* Sending and waiting                                                     */

/* The connection died under a statement: log once, forget it. */
static sh_err_t pg_lost(sh_meta_conn_t *c, const char *what, int resend)
{
    char msg[512];
    pg_msg_clean(c, c->pg ? PQerrorMessage(c->pg) : "", msg, sizeof(msg));
    sh_log(resend ? SH_LOG_INFO : SH_LOG_WARN, "meta",
           "lost the connection to metadata database \"%s\" while trying to %s: %s",
           c->name, what, msg[0] ? msg : "connection closed");
    pg_drop(c);
    return resend ? PG_E_RESEND : SH_E_AGAIN;
}

/* Flush what was sent and wait until a whole result can be read, or the
 * deadline passes (then the connection is dropped: we cannot know when or
 * whether it would answer). */
static sh_err_t pg_wait(sh_meta_conn_t *c, const char *what, int64_t deadline, int resend)
{
    for (;;) {
        int flush = PQflush(c->pg);
        if (flush < 0)
            return pg_lost(c, what, resend);
        if (flush == 0 && !PQisBusy(c->pg))
            return SH_OK;
        int64_t left = deadline - sh_clock_mono_ms();
        if (left <= 0) {
            sh_log(SH_LOG_WARN, "meta",
                   "metadata database \"%s\" did not answer within %d ms while trying to "
                   "%s; dropping the connection",
                   c->name, c->io_timeout_ms, what);
            pg_drop(c);
            return SH_E_AGAIN;
        }
        struct pollfd p = {.fd = PQsocket(c->pg),
                           .events = (short)(POLLIN | (flush ? POLLOUT : 0))};
        int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (r < 0 && errno != EINTR)
            return pg_lost(c, what, resend);
        if (r > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP)) && !PQconsumeInput(c->pg))
            return pg_lost(c, what, resend);
    }
}

/* Collect the results of what was sent: the first error if any, else the
 * last result. NULL with *err set when the connection failed. */
static PGresult *pg_collect_result(sh_meta_conn_t *c, const char *what, int64_t deadline,
                                   int resend, sh_err_t *err)
{
    PGresult *keep = NULL, *r;
    for (;;) {
        if ((*err = pg_wait(c, what, deadline, resend)) != SH_OK) {
            PQclear(keep);
            return NULL;
        }
        if ((r = PQgetResult(c->pg)) == NULL)
            break;
        ExecStatusType st = PQresultStatus(r);
        int bad = st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY;
        if (!keep || (bad && PQresultStatus(keep) != PGRES_FATAL_ERROR)) {
            PQclear(keep);
            keep = r;
        } else {
            PQclear(r);
        }
    }
    if (!keep) {
        *err = pg_lost(c, what, resend);
        return NULL;
    }
    return keep;
}

/*
 * Map a failed result to an sh_err_t, with one log line naming the
 * operation (like sq_fail). Connection trouble and server states that
 * pass (shutdown, recovery, overload, timeouts) are retriable; a
 * serialization failure asks the caller to rerun its transaction; a
 * unique violation is SH_E_EXISTS for the caller to translate.
 */
static sh_err_t pg_fail(sh_meta_conn_t *c, PGresult *res, const char *what, int resend)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    char msg[512];
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    pg_msg_clean(c, primary ? primary : PQresultErrorMessage(res), msg, sizeof(msg));
    if (!state)
        state = "";
    if (PQstatus(c->pg) != CONNECTION_OK || strncmp(state, "08", 2) == 0 ||
        strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
        strcmp(state, "57P03") == 0 || strcmp(state, "25006") == 0) {
        /* connection lost, server shutting down or starting, or we ended
         * up on a read-only standby after a failover: a new connection
         * (target_session_attrs=read-write) is the cure */
        sh_log(resend ? SH_LOG_INFO : SH_LOG_WARN, "meta",
               "could not %s: metadata database \"%s\" is unavailable: %s (SQLSTATE %s)",
               what, c->name, msg, state[0] ? state : "none");
        pg_drop(c);
        return resend ? PG_E_RESEND : SH_E_AGAIN;
    }
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) {
        sh_log(SH_LOG_DEBUG, "meta", "could not %s: %s (SQLSTATE %s); retrying", what, msg,
               state);
        return PG_E_SERIAL;
    }
    if (strcmp(state, "23505") == 0) {
        sh_log(SH_LOG_DEBUG, "meta", "could not %s: %s", what, msg);
        return SH_E_EXISTS;
    }
    if (strcmp(state, "57014") == 0 || strcmp(state, "55P03") == 0 ||
        strncmp(state, "53", 2) == 0) {
        sh_log(SH_LOG_WARN, "meta", "could not %s: metadata database \"%s\" is busy: %s "
                                    "(SQLSTATE %s)",
               what, c->name, msg, state);
        return SH_E_AGAIN;
    }
    if (strncmp(state, "23", 2) == 0 || strncmp(state, "22", 2) == 0) {
        sh_log(SH_LOG_ERROR, "meta", "could not %s in \"%s\": %s (SQLSTATE %s)", what,
               c->name, msg, state);
        return SH_E_INVAL;
    }
    sh_log(SH_LOG_ERROR, "meta", "could not %s in \"%s\": %s (SQLSTATE %s)", what, c->name,
           msg, state[0] ? state : "none");
    return SH_E_IO;
}

/* Text parameters for one statement, from a format like sq_vprep's:
 *   'u' const sh_uuid_t *   'i' int   'I' int64_t   's' const char * (NULL: SQL NULL) */
typedef struct {
    const char *v[PG_MAX_PARAMS];
    char buf[PG_MAX_PARAMS][40];
    int n;
} pg_args_t;

static void pg_uuid_text(const sh_uuid_t *u, char out[37])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u->b[i] >> 4];
        out[o++] = hex[u->b[i] & 0xf];
    }
    out[o] = '\0';
}

static int pg_args_fill(pg_args_t *a, const char *fmt, va_list ap)
{
    a->n = 0;
    for (; *fmt; fmt++) {
        if (a->n == PG_MAX_PARAMS)
            return -1;
        char *b = a->buf[a->n];
        switch (*fmt) {
        case 'u':
            pg_uuid_text(va_arg(ap, const sh_uuid_t *), b);
            a->v[a->n] = b;
            break;
        case 'i':
            snprintf(b, sizeof(a->buf[0]), "%d", va_arg(ap, int));
            a->v[a->n] = b;
            break;
        case 'I':
            snprintf(b, sizeof(a->buf[0]), "%lld", (long long)va_arg(ap, int64_t));
            a->v[a->n] = b;
            break;
        case 's':
            a->v[a->n] = va_arg(ap, const char *);
            break;
        default:
            return -1;
        }
        a->n++;
    }
    return 0;
}

/*
 * Run statement `id` with parameters from fmt and return its result in
 * *out (the caller clears it). A statement lost with the connection may
 * be rerun when nothing it did can have stuck: a read, BEGIN, or any
 * statement inside a transaction other than COMMIT (the server rolls back
 * a transaction whose connection died).
 */
static sh_err_t pg_vquery(sh_meta_conn_t *c, enum pg_id id, const char *what, PGresult **out,
                          const char *fmt, va_list ap)
{
    *out = NULL;
    pg_args_t args;
    char name[16];
    if (pg_args_fill(&args, fmt, ap) != 0) {
        sh_log(SH_LOG_ERROR, "meta", "bad parameter list for statement %d", (int)id);
        return SH_E_INVAL;
    }
    if (!c->pg)
        return SH_E_AGAIN;
    int in_tx = PQtransactionStatus(c->pg) == PQTRANS_INTRANS;
    int resend = pg_kind[id] == 'R' || (in_tx && id != PG_COMMIT);
    int64_t deadline = sh_clock_mono_ms() + c->io_timeout_ms;
    sh_err_t err;
    PGresult *res;
    snprintf(name, sizeof(name), "sh_%d", (int)id);
    if (!c->prepared[id]) {
        if (!PQsendPrepare(c->pg, name, pg_sql[id], 0, NULL))
            return pg_lost(c, what, resend);
        if (!(res = pg_collect_result(c, what, deadline, resend, &err)))
            return err;
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            err = pg_fail(c, res, what, resend);
            PQclear(res);
            return err;
        }
        PQclear(res);
        c->prepared[id] = 1;
    }
    if (!PQsendQueryPrepared(c->pg, name, args.n, args.v, NULL, NULL, 0))
        return pg_lost(c, what, resend);
    if (!(res = pg_collect_result(c, what, deadline, resend, &err)))
        return err;
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        err = pg_fail(c, res, what, resend);
        PQclear(res);
        return err;
    }
    *out = res;
    return SH_OK;
}

static sh_err_t pg_query(sh_meta_conn_t *c, enum pg_id id, const char *what, PGresult **out,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sh_err_t err = pg_vquery(c, id, what, out, fmt, ap);
    va_end(ap);
    return err;
}

/* Run and discard; *changes (may be NULL) gets the rows written. */
static sh_err_t pg_exec(sh_meta_conn_t *c, enum pg_id id, const char *what, int *changes,
                        const char *fmt, ...)
{
    PGresult *res;
    va_list ap;
    va_start(ap, fmt);
    sh_err_t err = pg_vquery(c, id, what, &res, fmt, ap);
    va_end(ap);
    if (err != SH_OK)
        return err;
    if (changes)
        *changes = atoi(PQcmdTuples(res));
    PQclear(res);
    return SH_OK;
}

static int64_t pg_int(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* Run and read column 0 of the first row as an integer; SH_E_NOTFOUND
 * when there is no row or the value is NULL. */
static sh_err_t pg_scalar(sh_meta_conn_t *c, enum pg_id id, const char *what, int64_t *val,
                         const char *fmt, ...)
{
    PGresult *res;
    va_list ap;
    va_start(ap, fmt);
    sh_err_t err = pg_vquery(c, id, what, &res, fmt, ap);
    va_end(ap);
    if (err != SH_OK)
        return err;
    if (PQntuples(res) < 1 || PQgetisnull(res, 0, 0))
        err = SH_E_NOTFOUND;
    else
        *val = pg_int(res, 0, 0);
    PQclear(res);
    return err;
}

static sh_err_t pg_begin(sh_meta_conn_t *c, int write, const char *what)
{
    return pg_exec(c, write ? PG_BEGIN_WRITE : PG_BEGIN_READ, what, NULL, "");
}

static sh_err_t pg_commit(sh_meta_conn_t *c, const char *what)
{
    return pg_exec(c, PG_COMMIT, what, NULL, "");
}

/* Undo the open transaction, if any; a connection that cannot even roll
 * back is dropped (the server then rolls back for us). */
static void pg_rollback(sh_meta_conn_t *c)
{
    if (!c->pg)
        return;
    PGTransactionStatusType ts = PQtransactionStatus(c->pg);
    if (ts == PQTRANS_IDLE)
        return;
    if (ts != PQTRANS_INTRANS && ts != PQTRANS_INERROR) {
        pg_drop(c);
        return;
    }
    if (pg_exec(c, PG_ROLLBACK, "roll back a metadata transaction", NULL, "") != SH_OK)
        pg_drop(c);
}

/* Simple-protocol text (several statements allowed: migrations). */
static sh_err_t pg_script(sh_meta_conn_t *c, const char *sql, const char *what,
                          int timeout_ms)
{
    if (!c->pg)
        return SH_E_AGAIN;
    int in_tx = PQtransactionStatus(c->pg) == PQTRANS_INTRANS;
    sh_err_t err;
    if (!PQsendQuery(c->pg, sql))
        return pg_lost(c, what, in_tx);
    PGresult *res = pg_collect_result(c, what, sh_clock_mono_ms() + timeout_ms, in_tx, &err);
    if (!res)
        return err;
    ExecStatusType st = PQresultStatus(res);
    err = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY
              ? SH_OK
              : pg_fail(c, res, what, in_tx);
    PQclear(res);
    return err;
}

/*
 * Run one entry body, connecting first, rerunning it after a
 * serialization failure (bounded, with a short random pause so two
 * brokers do not collide again in lockstep) or once after a connection
 * lost before anything could stick. The private codes never escape.
 */
#define PG_RUN(c, err, call)                                                   \
    do {                                                                       \
        int resent_ = 0;                                                       \
        for (int att_ = 0;; att_++) {                                          \
            if (((err) = pg_ready(c)) != SH_OK)                                \
                break;                                                         \
            (err) = (call);                                                    \
            if ((err) == PG_E_RESEND && !resent_) {                            \
                resent_ = 1;                                                   \
                continue;                                                      \
            }                                                                  \
            if ((err) != PG_E_SERIAL || att_ + 1 >= SH_PG_TX_ATTEMPTS)         \
                break;                                                         \
            pg_pause(c, att_);                                                 \
        }                                                                      \
        if ((err) == PG_E_SERIAL) {                                            \
            sh_log(SH_LOG_WARN, "meta",                                        \
                   "metadata transaction kept conflicting with other brokers " \
                   "after %d attempts; giving up for now",                     \
                   SH_PG_TX_ATTEMPTS);                                         \
            (err) = SH_E_AGAIN;                                                \
        } else if ((err) == PG_E_RESEND) {                                     \
            (err) = SH_E_AGAIN;                                                \
        }                                                                      \
    } while (0)

static void pg_pause(sh_meta_conn_t *c, int attempt)
{
    c->rnd = c->rnd * 1103515245u + 12345u;
    long ms = (long)(1u << (attempt < 5 ? attempt : 5)) * 2 + (long)((c->rnd >> 16) % 8);
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---------------------------------------------------------------------- */
/* Reading results                                                         */

static sh_err_t pg_col_str(const PGresult *res, int row, int col, sh_arena_t *a,
                           const char **out)
{
    if (PQgetisnull(res, row, col)) {
        *out = NULL;
        return SH_OK;
    }
    *out = sh_arena_strndup(a, PQgetvalue(res, row, col),
                            (size_t)PQgetlength(res, row, col));
    return *out ? SH_OK : SH_E_NOMEM;
}

static int pg_hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static void pg_col_uuid(const PGresult *res, int row, int col, sh_uuid_t *out)
{
    const char *s = PQgetvalue(res, row, col);
    memset(out->b, 0, sizeof(out->b));
    for (int i = 0; i < 16 && *s;) {
        if (*s == '-') {
            s++;
            continue;
        }
        int hi = pg_hexval(s[0]), lo = s[1] ? pg_hexval(s[1]) : -1;
        if (hi < 0 || lo < 0)
            return;
        out->b[i++] = (uint8_t)(hi << 4 | lo);
        s += 2;
    }
}

typedef struct {
    void *items;
    size_t n, cap, size;
} pg_vec_t;

static void *pg_vec_push(sh_arena_t *a, pg_vec_t *v)
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

static sh_err_t pg_read_topic(const PGresult *r, int i, sh_arena_t *a, sh_meta_topic_t *t)
{
    pg_col_uuid(r, i, 0, &t->topic_id);
    t->partition_count = (int32_t)pg_int(r, i, 2);
    t->created_ms = pg_int(r, i, 3);
    t->state = pg_int(r, i, 4) ? SH_META_TOPIC_DELETING : SH_META_TOPIC_LIVE;
    return pg_col_str(r, i, 1, a, &t->name);
}

static void pg_read_partition(const PGresult *r, int i, sh_meta_partition_t *p)
{
    pg_col_uuid(r, i, 0, &p->topic_id);
    p->partition = (int32_t)pg_int(r, i, 1);
    p->leader_id = (int32_t)pg_int(r, i, 2);
    p->leader_epoch = (int32_t)pg_int(r, i, 3);
    p->lease_expiry_ms = pg_int(r, i, 4);
    p->log_start_offset = pg_int(r, i, 5);
    p->high_watermark = pg_int(r, i, 6);
}

static sh_err_t pg_read_chunk(const PGresult *r, int i, sh_arena_t *a, sh_meta_chunk_t *k)
{
    pg_col_uuid(r, i, 0, &k->topic_id);
    k->partition = (int32_t)pg_int(r, i, 1);
    k->base_offset = pg_int(r, i, 2);
    k->last_offset = pg_int(r, i, 3);
    k->max_timestamp = pg_int(r, i, 4);
    k->byte_offset = pg_int(r, i, 6);
    k->byte_length = pg_int(r, i, 7);
    k->leader_epoch = (int32_t)pg_int(r, i, 8);
    return pg_col_str(r, i, 5, a, &k->object_key);
}

static sh_err_t pg_read_object(const PGresult *r, int i, sh_arena_t *a, sh_meta_object_t *o)
{
    o->size_bytes = pg_int(r, i, 1);
    o->live_chunks = pg_int(r, i, 2);
    return pg_col_str(r, i, 0, a, &o->object_key);
}

typedef sh_err_t (*pg_reader_fn)(const PGresult *r, int row, sh_arena_t *a, void *item);

/* Every row of res into an arena array of `size`-byte items. Clears res. */
static sh_err_t pg_collect(PGresult *res, sh_arena_t *a, size_t size, pg_reader_fn read,
                           void **out, size_t *n)
{
    int rows = PQntuples(res);
    void *items = NULL;
    sh_err_t err = SH_OK;
    if (rows > 0 && !(items = sh_arena_calloc(a, (size_t)rows, size)))
        err = SH_E_NOMEM;
    for (int i = 0; err == SH_OK && i < rows; i++)
        err = read(res, i, a, (char *)items + (size_t)i * size);
    PQclear(res);
    if (err != SH_OK)
        return err;
    *out = items;
    *n = (size_t)rows;
    return SH_OK;
}

static sh_err_t pg_reader_topic(const PGresult *r, int i, sh_arena_t *a, void *item)
{
    return pg_read_topic(r, i, a, item);
}

static sh_err_t pg_reader_partition(const PGresult *r, int i, sh_arena_t *a, void *item)
{
    (void)a;
    pg_read_partition(r, i, item);
    return SH_OK;
}

static sh_err_t pg_reader_chunk(const PGresult *r, int i, sh_arena_t *a, void *item)
{
    return pg_read_chunk(r, i, a, item);
}

static sh_err_t pg_reader_object(const PGresult *r, int i, sh_arena_t *a, void *item)
{
    return pg_read_object(r, i, a, item);
}

/* Run a statement and collect its rows. */
static sh_err_t pg_rows(sh_meta_conn_t *c, enum pg_id id, const char *what, sh_arena_t *a,
                        size_t size, pg_reader_fn read, void **out, size_t *n,
                        const char *fmt, ...)
{
    PGresult *res;
    va_list ap;
    va_start(ap, fmt);
    sh_err_t err = pg_vquery(c, id, what, &res, fmt, ap);
    va_end(ap);
    if (err != SH_OK)
        return err;
    return pg_collect(res, a, size, read, out, n);
}

/* Objects whose count reached zero, from a PG_RELEASE statement. */
static sh_err_t pg_release_rows(sh_meta_conn_t *c, enum pg_id id, const char *what,
                                sh_arena_t *a, sh_meta_object_t **out, size_t *n,
                                const char *fmt, ...)
{
    PGresult *res;
    sh_meta_object_t *all = NULL;
    size_t nall = 0, k = 0;
    va_list ap;
    va_start(ap, fmt);
    sh_err_t err = pg_vquery(c, id, what, &res, fmt, ap);
    va_end(ap);
    if (err != SH_OK)
        return err;
    if ((err = pg_collect(res, a, sizeof(*all), pg_reader_object, (void **)&all, &nall)) !=
        SH_OK)
        return err;
    for (size_t i = 0; i < nall; i++)
        if (all[i].live_chunks == 0)
            all[k++] = all[i];
    *out = k ? all : NULL;
    *n = k;
    return SH_OK;
}

/* Topic state: SH_OK with the fields asked for, or SH_KERR_UNKNOWN_TOPIC_ID. */
static sh_err_t pg_topic_state(sh_meta_conn_t *c, sh_uuid_t id, const char *what, int *state,
                               int32_t *count, sh_arena_t *a, const char **name)
{
    PGresult *res;
    sh_err_t err = pg_query(c, PG_TOPIC_EXISTS, what, &res, "u", &id);
    if (err != SH_OK)
        return err;
    if (PQntuples(res) < 1) {
        PQclear(res);
        return SH_KERR_UNKNOWN_TOPIC_ID;
    }
    if (state)
        *state = (int)pg_int(res, 0, 0);
    if (count)
        *count = (int32_t)pg_int(res, 0, 1);
    err = name ? pg_col_str(res, 0, 2, a, name) : SH_OK;
    PQclear(res);
    return err;
}

typedef struct {
    int32_t leader_id, leader_epoch;
    int64_t lease_expiry_ms, high_watermark, log_start_offset;
    int topic_state;
} pg_pstate_t;

/* A partition's leadership and offsets plus its topic's state;
 * SH_KERR_UNKNOWN_TOPIC_OR_PARTITION when absent. */
static sh_err_t pg_partition_state(sh_meta_conn_t *c, sh_meta_tp_t tp, const char *what,
                                   pg_pstate_t *ps)
{
    PGresult *res;
    sh_err_t err = pg_query(c, PG_PARTITION_STATE, what, &res, "ui", &tp.topic_id,
                            tp.partition);
    if (err != SH_OK)
        return err;
    if (PQntuples(res) < 1) {
        PQclear(res);
        return SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
    ps->leader_id = (int32_t)pg_int(res, 0, 0);
    ps->leader_epoch = (int32_t)pg_int(res, 0, 1);
    ps->lease_expiry_ms = pg_int(res, 0, 2);
    ps->high_watermark = pg_int(res, 0, 3);
    ps->topic_state = (int)pg_int(res, 0, 4);
    ps->log_start_offset = pg_int(res, 0, 5);
    PQclear(res);
    return SH_OK;
}

/* ---------------------------------------------------------------------- */
/* Schema                                                                  */

static int pg_code_version(void)
{
    return sh_meta_pg_migrations[sh_meta_pg_migrations_count - 1].version;
}

/*
 * One step of bringing the schema up to date: in one transaction, take
 * the migration advisory lock (so two brokers starting on a fresh database
 * never both migrate: the second waits, then sees the new version), create
 * schema_version if it is missing, read the version, and apply the next
 * migration if there is one. *done is set when the schema is current.
 * schema_version is created only when absent (to_regclass), so a role
 * without CREATE on the schema can open an up-to-date database.
 */
static sh_err_t pg_migrate_step(sh_meta_conn_t *c, int *done)
{
    const char *what = "check the schema version";
    char step[160];
    sh_err_t err;
    int64_t cur = 0;
    *done = 0;
    /* the longer limits first, in their own message: before PostgreSQL 13
     * a timeout covered a whole multi-statement message as it began */
    if ((err = pg_script(c, "BEGIN ISOLATION LEVEL READ COMMITTED;"
                            "SET LOCAL statement_timeout = 300000;"
                            "SET LOCAL lock_timeout = 300000",
                         what, SH_PG_MIGRATE_TIMEOUT_MS)) != SH_OK)
        goto fail;
    if ((err = pg_script(c, "SELECT pg_advisory_xact_lock(" SH_PG_MIGRATE_LOCK ")",
                         "wait for other brokers' schema migrations",
                         SH_PG_MIGRATE_TIMEOUT_MS)) != SH_OK)
        goto fail;
    if ((err = pg_script(c, "DO $$ BEGIN IF to_regclass('schema_version') IS NULL THEN "
                            "CREATE TABLE schema_version ("
                            "  version     integer PRIMARY KEY,"
                            "  applied_ms  bigint NOT NULL,"
                            "  description text NOT NULL); END IF; END $$",
                         "create the schema_version table", SH_PG_MIGRATE_TIMEOUT_MS)) !=
        SH_OK)
        goto fail;
    if ((err = pg_scalar(c, PG_VERSION_GET, what, &cur, "")) != SH_OK)
        goto fail;
    int code = pg_code_version();
    if (cur > code) {
        sh_log(SH_LOG_ERROR, "meta",
               "metadata database \"%s\" has schema version %lld, newer than the %d "
               "this build supports; run a StreamHouse release that knows version %lld, "
               "or restore a backup taken before the upgrade",
               c->name, (long long)cur, code, (long long)cur);
        err = SH_E_UNSUPPORTED;
        goto fail;
    }
    if (cur == code) {
        if ((err = pg_commit(c, what)) != SH_OK)
            goto fail;
        *done = 1;
        return SH_OK;
    }
    const sh_meta_migration_t *mg = &sh_meta_pg_migrations[cur];
    snprintf(step, sizeof(step), "apply schema migration %d (%s)", mg->version,
             mg->description);
    if ((err = pg_script(c, mg->sql, step, SH_PG_MIGRATE_TIMEOUT_MS)) != SH_OK)
        goto fail;
    if ((err = pg_exec(c, PG_VERSION_ADD, step, NULL, "IIs", (int64_t)mg->version,
                       sh_clock_wall_ms(), mg->description)) != SH_OK)
        goto fail;
    if ((err = pg_commit(c, step)) != SH_OK)
        goto fail;
    sh_log(SH_LOG_INFO, "meta", "applied metadata schema migration %d: %s", mg->version,
           mg->description);
    return SH_OK;
fail:
    pg_rollback(c);
    return err;
}

static sh_err_t pg_migrate(sh_meta_conn_t *c)
{
    int done = 0;
    sh_err_t err;
    for (int steps = 0; !done; steps++) {
        if (steps > sh_meta_pg_migrations_count + 1)
            return SH_E_IO; /* cannot happen: each step applies one entry */
        if ((err = pg_migrate_step(c, &done)) != SH_OK)
            return err == PG_E_RESEND || err == PG_E_SERIAL ? SH_E_AGAIN : err;
    }
    return SH_OK;
}

static void pg_close(sh_meta_conn_t *c)
{
    if (!c)
        return;
    if (c->pg)
        PQfinish(c->pg);
    PQconninfoFree(c->parsed);
    free(c->kw);
    free(c->val);
    free(c->options);
    for (int i = 0; i < 3; i++)
        free(c->secrets[i]);
    free(c->name);
    free(c);
}

/*
 * Connection parameters: everything the URL says, plus our defaults for
 * what it leaves out. A default is skipped when its PG* environment
 * variable is set, so the usual libpq environment still works; the
 * server-side timeouts go first in "options", so the URL's own options
 * (and PGOPTIONS) come after them and win.
 */
/* strndup of the password as written in the URL, from the user info
 * (kind 0) or a password= query parameter (kind 1); NULL when absent. */
static char *pg_raw_password(const char *url, int kind)
{
    const char *auth = strstr(url, "://");
    if (!auth)
        return NULL;
    auth += 3;
    const char *end = auth + strcspn(auth, "/?#");
    if (kind == 0) {
        const char *at = NULL, *colon;
        for (const char *p = auth; p < end; p++)
            if (*p == '@')
                at = p;
        if (!at || !(colon = memchr(auth, ':', (size_t)(at - auth))))
            return NULL;
        return strndup(colon + 1, (size_t)(at - colon - 1));
    }
    for (const char *q = strchr(url, '?'); q; q = strchr(q + 1, '&')) {
        if (strncasecmp(q + 1, "password=", 9) == 0)
            return strndup(q + 10, strcspn(q + 10, "&#"));
    }
    return NULL;
}

static sh_err_t pg_params(sh_meta_conn_t *c, const char *url)
{
    /* before parsing: libpq's complaint about a malformed URL may quote
     * the password as written */
    c->secrets[0] = pg_raw_password(url, 0);
    c->secrets[1] = pg_raw_password(url, 1);
    static const struct {
        const char *kw, *env, *val;
    } dflt[] = {
        {"connect_timeout", "PGCONNECT_TIMEOUT", "5"},
        {"application_name", "PGAPPNAME", "streamhouse"},
        {"target_session_attrs", "PGTARGETSESSIONATTRS", "read-write"},
        {"client_encoding", "PGCLIENTENCODING", "UTF8"},
        {"keepalives", NULL, "1"},
        {"keepalives_idle", NULL, "10"},
        {"keepalives_interval", NULL, "5"},
        {"keepalives_count", NULL, "3"},
        {"tcp_user_timeout", NULL, "10000"},
    };
    char *errmsg = NULL;
    c->parsed = PQconninfoParse(url, &errmsg);
    if (!c->parsed) {
        char msg[512];
        pg_msg_clean(c, errmsg ? errmsg : "out of memory", msg, sizeof(msg));
        sh_log(SH_LOG_ERROR, "meta", "invalid metadata URL \"%s\": %s", c->name, msg);
        PQfreemem(errmsg);
        return errmsg ? SH_E_INVAL : SH_E_NOMEM;
    }
    size_t n = 0;
    for (PQconninfoOption *o = c->parsed; o->keyword; o++)
        n++;
    n += sizeof(dflt) / sizeof(dflt[0]) + 2;
    c->kw = calloc(n, sizeof(*c->kw));
    c->val = calloc(n, sizeof(*c->val));
    if (!c->kw || !c->val)
        return SH_E_NOMEM;
    size_t k = 0;
    const char *user_options = getenv("PGOPTIONS");
    for (PQconninfoOption *o = c->parsed; o->keyword; o++) {
        if (!o->val)
            continue;
        if (strcmp(o->keyword, "options") == 0) {
            user_options = o->val;
            continue;
        }
        if (strcmp(o->keyword, "password") == 0 && o->val[0] &&
            !(c->secrets[2] = strdup(o->val)))
            return SH_E_NOMEM;
        c->kw[k] = o->keyword;
        c->val[k++] = o->val;
    }
    for (size_t i = 0; i < sizeof(dflt) / sizeof(dflt[0]); i++) {
        int given = 0;
        for (size_t j = 0; j < k; j++)
            given |= strcmp(c->kw[j], dflt[i].kw) == 0;
        if (given || (dflt[i].env && getenv(dflt[i].env) && getenv(dflt[i].env)[0]))
            continue;
        c->kw[k] = dflt[i].kw;
        c->val[k++] = dflt[i].val;
    }
    size_t olen = strlen(SH_PG_SESSION_OPTIONS) + (user_options ? strlen(user_options) : 0) + 2;
    if (!(c->options = malloc(olen)))
        return SH_E_NOMEM;
    snprintf(c->options, olen, "%s%s%s", SH_PG_SESSION_OPTIONS, user_options ? " " : "",
             user_options ? user_options : "");
    c->kw[k] = "options";
    c->val[k++] = c->options;
    c->kw[k] = NULL;
    c->val[k] = NULL;
    return SH_OK;
}

sh_err_t sh_meta_pg_connect(const char *url, const char *shown, sh_meta_conn_t **out)
{
    *out = NULL;
    sh_err_t err = SH_E_NOMEM;
    sh_meta_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        goto fail;
    if (!(c->name = strdup(shown ? shown : "postgresql://")))
        goto fail;
    c->io_timeout_ms = SH_PG_IO_TIMEOUT_MS;
    c->rnd = (unsigned)sh_clock_mono_us() ^ (unsigned)(uintptr_t)c;
    const char *t = getenv("SH_META_PG_IO_TIMEOUT_MS");
    if (t && atoi(t) >= 100)
        c->io_timeout_ms = atoi(t);
    if ((err = pg_params(c, url)) != SH_OK)
        goto fail;
    if ((err = pg_connect(c, 1)) != SH_OK)
        goto fail;
    if ((err = pg_migrate(c)) != SH_OK)
        goto fail;
    *out = c;
    return SH_OK;
fail:
    pg_close(c);
    return err;
}

static sh_err_t pg_schema_version_once(sh_meta_conn_t *c, int *db_version)
{
    int64_t v = 0;
    sh_err_t err = pg_scalar(c, PG_VERSION_GET, "read the schema version", &v, "");
    *db_version = (int)v;
    return err;
}

static sh_err_t pg_schema_version(sh_meta_conn_t *c, int *db_version, int *code_version)
{
    sh_err_t err;
    *code_version = pg_code_version();
    PG_RUN(c, err, pg_schema_version_once(c, db_version));
    return err;
}

static sh_err_t pg_testing_schema_version_set(sh_meta_conn_t *c, int version, int present)
{
    sh_err_t err;
    if (version <= pg_code_version())
        return SH_E_INVAL;
    if (present)
        PG_RUN(c, err,
               pg_exec(c, PG_VERSION_ADD, "record a test schema version", NULL, "IIs",
                       (int64_t)version, sh_clock_wall_ms(), "testing"));
    else
        PG_RUN(c, err,
               pg_exec(c, PG_VERSION_DEL, "remove a test schema version", NULL, "I",
                       (int64_t)version));
    return err;
}

/* ---------------------------------------------------------------------- */
/* Cluster and brokers                                                     */

static sh_err_t pg_cluster_id_once(sh_meta_conn_t *c, const char *candidate,
                                   char out[SH_META_CLUSTER_ID_LEN + 1])
{
    const char *what = "get or create the cluster id";
    PGresult *res;
    sh_err_t err = pg_exec(c, PG_CLUSTER_ID_PUT, what, NULL, "s", candidate);
    if (err != SH_OK)
        return err;
    if ((err = pg_query(c, PG_CLUSTER_ID_GET, what, &res, "")) != SH_OK)
        return err;
    if (PQntuples(res) < 1) {
        PQclear(res);
        return SH_E_IO;
    }
    const char *id = PQgetvalue(res, 0, 0);
    if (strlen(id) == SH_META_CLUSTER_ID_LEN) {
        memcpy(out, id, SH_META_CLUSTER_ID_LEN + 1);
    } else {
        sh_log(SH_LOG_ERROR, "meta", "metadata database \"%s\" holds a malformed cluster id",
               c->name);
        err = SH_E_CORRUPT;
    }
    PQclear(res);
    return err;
}

static sh_err_t pg_cluster_id_get(sh_meta_conn_t *c, const char *candidate,
                                  char out[SH_META_CLUSTER_ID_LEN + 1])
{
    sh_err_t err;
    /* insert-if-absent then read: both idempotent, safe to rerun */
    PG_RUN(c, err, pg_cluster_id_once(c, candidate, out));
    return err;
}

static sh_err_t pg_broker_register_once(sh_meta_conn_t *c, const sh_meta_broker_t *b,
                                        int64_t now_ms, int64_t *broker_epoch)
{
    const char *what = "register a broker";
    int64_t epoch = 0;
    sh_err_t err;
    if ((err = pg_begin(c, 1, what)) != SH_OK)
        goto fail;
    if ((err = pg_scalar(c, PG_BROKER_UPSERT, what, &epoch, "isI", b->broker_id, b->rack,
                        now_ms)) != SH_OK) {
        if (err == SH_E_NOTFOUND)
            err = SH_E_IO;
        goto fail;
    }
    if ((err = pg_exec(c, PG_BROKER_EP_CLEAR, what, NULL, "i", b->broker_id)) != SH_OK)
        goto fail;
    for (size_t i = 0; i < b->nendpoints; i++) {
        const sh_meta_endpoint_t *e = &b->endpoints[i];
        err = pg_exec(c, PG_BROKER_EP_ADD, what, NULL, "issii", b->broker_id, e->listener,
                      e->host, (int)e->port, (int)e->security_protocol);
        if (err != SH_OK)
            goto fail;
    }
    if ((err = pg_commit(c, what)) != SH_OK)
        goto fail;
    *broker_epoch = epoch;
    return SH_OK;
fail:
    pg_rollback(c);
    return err;
}

static sh_err_t pg_broker_register(sh_meta_conn_t *c, const sh_meta_broker_t *b,
                                   int64_t now_ms, int64_t *broker_epoch)
{
    sh_err_t err;
    PG_RUN(c, err, pg_broker_register_once(c, b, now_ms, broker_epoch));
    return err;
}

/* Why an epoch-conditional broker write matched nothing. */
static sh_err_t pg_broker_why(sh_meta_conn_t *c, int32_t broker_id, const char *what)
{
    int64_t epoch;
    sh_err_t err = pg_scalar(c, PG_BROKER_EPOCH, what, &epoch, "i", broker_id);
    return err == SH_OK ? SH_E_FENCED : err;
}

static sh_err_t pg_broker_heartbeat_once(sh_meta_conn_t *c, int32_t broker_id,
                                         int64_t broker_epoch, int64_t now_ms)
{
    const char *what = "record a broker heartbeat";
    int changes = 0;
    sh_err_t err = pg_exec(c, PG_BROKER_HEARTBEAT, what, &changes, "iII", broker_id,
                           broker_epoch, now_ms);
    if (err != SH_OK || changes)
        return err;
    return pg_broker_why(c, broker_id, what);
}

static sh_err_t pg_broker_heartbeat(sh_meta_conn_t *c, int32_t broker_id,
                                    int64_t broker_epoch, int64_t now_ms)
{
    sh_err_t err;
    PG_RUN(c, err, pg_broker_heartbeat_once(c, broker_id, broker_epoch, now_ms));
    return err;
}

static sh_err_t pg_broker_unregister_once(sh_meta_conn_t *c, int32_t broker_id,
                                          int64_t broker_epoch)
{
    const char *what = "unregister a broker";
    int changes = 0;
    sh_err_t err = pg_exec(c, PG_BROKER_DELETE, what, &changes, "iI", broker_id,
                           broker_epoch);
    if (err != SH_OK || changes)
        return err;
    return pg_broker_why(c, broker_id, what);
}

static sh_err_t pg_broker_unregister(sh_meta_conn_t *c, int32_t broker_id,
                                     int64_t broker_epoch)
{
    sh_err_t err;
    PG_RUN(c, err, pg_broker_unregister_once(c, broker_id, broker_epoch));
    return err;
}

static sh_err_t pg_reader_broker(const PGresult *r, int i, sh_arena_t *a, void *item)
{
    sh_meta_broker_t *b = item;
    b->broker_id = (int32_t)pg_int(r, i, 0);
    b->broker_epoch = pg_int(r, i, 1);
    b->registered_ms = pg_int(r, i, 3);
    b->heartbeat_ms = pg_int(r, i, 4);
    return pg_col_str(r, i, 2, a, &b->rack);
}

static sh_err_t pg_broker_list_once(sh_meta_conn_t *c, int64_t alive_since_ms, sh_arena_t *a,
                                    sh_meta_broker_t **out, size_t *n)
{
    const char *what = "list brokers";
    PGresult *res = NULL;
    sh_meta_broker_t *bs = NULL;
    size_t nb = 0;
    sh_err_t err;
    if ((err = pg_begin(c, 0, what)) != SH_OK)
        goto fail;
    if ((err = pg_rows(c, PG_BROKER_LIST, what, a, sizeof(*bs), pg_reader_broker,
                       (void **)&bs, &nb, "I", alive_since_ms)) != SH_OK)
        goto fail;
    if ((err = pg_query(c, PG_BROKER_EP_LIST, what, &res, "I", alive_since_ms)) != SH_OK)
        goto fail;
    /* Both queries are ordered by broker id: merge endpoints into place. */
    size_t bi = 0;
    pg_vec_t v = {.size = sizeof(sh_meta_endpoint_t)};
    int rows = PQntuples(res);
    for (int i = 0; i < rows; i++) {
        int32_t id = (int32_t)pg_int(res, i, 0);
        while (bi < nb && bs[bi].broker_id < id) {
            bs[bi].endpoints = v.items;
            bs[bi].nendpoints = v.n;
            v = (pg_vec_t){.size = sizeof(sh_meta_endpoint_t)};
            bi++;
        }
        if (bi == nb || bs[bi].broker_id != id)
            continue; /* impossible inside one snapshot; tolerate */
        sh_meta_endpoint_t *e = pg_vec_push(a, &v);
        if (!e || pg_col_str(res, i, 1, a, &e->listener) != SH_OK ||
            pg_col_str(res, i, 2, a, &e->host) != SH_OK) {
            err = SH_E_NOMEM;
            goto fail;
        }
        e->port = (int32_t)pg_int(res, i, 3);
        e->security_protocol = (int16_t)pg_int(res, i, 4);
    }
    if (bi < nb) {
        bs[bi].endpoints = v.items;
        bs[bi].nendpoints = v.n;
    }
    PQclear(res);
    res = NULL;
    if ((err = pg_commit(c, what)) != SH_OK)
        goto fail;
    *out = bs;
    *n = nb;
    return SH_OK;
fail:
    PQclear(res);
    pg_rollback(c);
    return err;
}

static sh_err_t pg_broker_list(sh_meta_conn_t *c, int64_t alive_since_ms, sh_arena_t *a,
                               sh_meta_broker_t **out, size_t *n)
{
    sh_err_t err;
    PG_RUN(c, err, pg_broker_list_once(c, alive_since_ms, a, out, n));
    return err;
}

/* ---------------------------------------------------------------------- */
/* Topics                                                                  */

static sh_err_t pg_topic_create_once(sh_meta_conn_t *c, sh_uuid_t id, const char *name,
                                     int32_t partitions, const sh_meta_config_t *configs,
                                     size_t nconfigs, int64_t now_ms)
{
    const char *what = "create a topic";
    int64_t one;
    sh_err_t err;
    if ((err = pg_begin(c, 1, what)) != SH_OK)
        goto fail;
    err = pg_scalar(c, PG_TOPIC_NAME_TAKEN, what, &one, "s", name);
    if (err == SH_OK) {
        err = SH_KERR_TOPIC_ALREADY_EXISTS;
        goto fail;
    }
    if (err != SH_E_NOTFOUND)
        goto fail;
    err = pg_exec(c, PG_TOPIC_INSERT, what, NULL, "usiI", &id, name, (int)partitions, now_ms);
    if (err == SH_E_EXISTS) /* a concurrent create of the same name won */
        err = SH_KERR_TOPIC_ALREADY_EXISTS;
    if (err != SH_OK)
        goto fail;
    /* one statement for all partitions: up to SH_META_PARTITIONS_MAX rows
     * must not cost that many round trips */
    if ((err = pg_exec(c, PG_PARTITIONS_INSERT, what, NULL, "uii", &id, 0,
                       (int)partitions - 1)) != SH_OK)
        goto fail;
    for (size_t i = 0; i < nconfigs; i++)
        if ((err = pg_exec(c, PG_CONFIG_PUT, what, NULL, "uss", &id, configs[i].key,
                           configs[i].value)) != SH_OK)
            goto fail;
    if ((err = pg_commit(c, what)) != SH_OK) {
        if (err == SH_E_EXISTS)
            err = SH_KERR_TOPIC_ALREADY_EXISTS;
        goto fail;
    }
    return SH_OK;
fail:
    pg_rollback(c);
    return err;
}

static sh_err_t pg_topic_create(sh_meta_conn_t *c, sh_uuid_t id, const char *name,
                                int32_t partitions, const sh_meta_config_t *configs,
                                size_t nconfigs, int64_t now_ms)
{
    sh_err_t err;
    PG_RUN(c, err, pg_topic_create_once(c, id, name, partitions, configs, nconfigs, now_ms));
    return err;
}

/* One topic row from a lookup; `absent` when there is none. */
static sh_err_t pg_topic_get_once(sh_meta_conn_t *c, enum pg_id id, const void *key,
                                  const char *what, sh_err_t absent, sh_arena_t *a,
                                  sh_meta_topic_t *out)
{
    PGresult *res;
    sh_err_t err = id == PG_TOPIC_BY_NAME
                       ? pg_query(c, id, what, &res, "s", (const char *)key)
                       : pg_query(c, id, what, &res, "u", (const sh_uuid_t *)key);
    if (err != SH_OK)
        return err;
    err = PQntuples(res) < 1 ? absent : pg_read_topic(res, 0, a, out);
    PQclear(res);
    return err;
}

static sh_err_t pg_topic_get_by_name(sh_meta_conn_t *c, const char *name, sh_arena_t *a,
                                     sh_meta_topic_t *out)
{
    sh_err_t err;
    PG_RUN(c, err,
           pg_topic_get_once(c, PG_TOPIC_BY_NAME, name, "look up a topic by name",
                             SH_KERR_UNKNOWN_TOPIC_OR_PARTITION, a, out));
    return err;
}

static sh_err_t pg_topic_get_by_id(sh_meta_conn_t *c, sh_uuid_t topic_id, sh_arena_t *a,
                                   sh_meta_topic_t *out)
{
    sh_err_t err;
    PG_RUN(c, err,
           pg_topic_get_once(c, PG_TOPIC_BY_ID, &topic_id, "look up a topic by id",
                             SH_KERR_UNKNOWN_TOPIC_ID, a, out));
    return err;
}

static sh_err_t pg_topic_list(sh_meta_conn_t *c, sh_arena_t *a, sh_meta_topic_t **out,
                              size_t *n)
{
    sh_err_t err;
    PG_RUN(c, err,
           pg_rows(c, PG_TOPIC_LIST, "list topics", a, sizeof(**out), pg_reader_topic,
                   (void **)out, n, ""));
    return err;
}

static sh_err_t pg_topic_mark_deleting_once(sh_meta_conn_t *c, sh_uuid_t topic_id)
{
    int changes = 0;
    sh_err_t err = pg_exec(c, PG_TOPIC_MARK_DELETING, "mark a topic for deletion", &changes,
                           "u", &topic_id);
    if (err == SH_OK && changes == 0)
        err = SH_KERR_UNKNOWN_TOPIC_ID;
    return err;
}

static sh_err_t pg_topic_mark_deleting(sh_meta_conn_t *c, sh_uuid_t topic_id)
{
    sh_err_t err;
    PG_RUN(c, err, pg_topic_mark_deleting_once(c, topic_id));
    return err;
}

static sh_err_t pg_topic_drop_once(sh_meta_conn_t *c, sh_uuid_t topic_id, sh_arena_t *a,
                                   sh_meta_object_t **freed, size_t *nfreed)
{
    const char *what = "drop a topic";
    const char *name = NULL;
    int state = 0;
    sh_meta_object_t *objs = NULL;
    size_t nobjs = 0;
    sh_err_t err;
    if ((err = pg_begin(c, 1, what)) != SH_OK)
        goto fail;
    if ((err = pg_topic_state(c, topic_id, what, &state, NULL, a, &name)) != SH_OK)
        goto fail;
    if (state != SH_META_TOPIC_DELETING) {
        sh_log(SH_LOG_ERROR, "meta", "refusing to drop topic \"%s\": not marked for deletion",
               name);
        err = SH_E_INVAL;
        goto fail;
    }
    if ((err = pg_release_rows(c, PG_TOPIC_RELEASE, what, a, &objs, &nobjs, "u",
                               &topic_id)) != SH_OK)
        goto fail;
    if ((err = pg_exec(c, PG_TOPIC_CHUNKS_DELETE, what, NULL, "u", &topic_id)) != SH_OK)
        goto fail;
    if ((err = pg_exec(c, PG_TOPIC_OFFSETS_DELETE, what, NULL, "s", name)) != SH_OK)
        goto fail;
    /* partitions and configs go by ON DELETE CASCADE */
    if ((err = pg_exec(c, PG_TOPIC_DELETE, what, NULL, "u", &topic_id)) != SH_OK)
        goto fail;
    if ((err = pg_commit(c, what)) != SH_OK)
        goto fail;
    *freed = objs;
    *nfreed = nobjs;
    return SH_OK;
fail:
    pg_rollback(c);
    return err;
}

static sh_err_t pg_topic_drop(sh_meta_conn_t *c, sh_uuid_t topic_id, sh_arena_t *a,
                              sh_meta_object_t **freed, size_t *nfreed)
{
    sh_err_t err;
    PG_RUN(c, err, pg_topic_drop_once(c, topic_id, a, freed, nfreed));
    return err;
}

static sh_err_t pg_topic_objects_once(sh_meta_conn_t *c, sh_uuid_t topic_id, sh_arena_t *a,
                                      sh_meta_object_t **out, size_t *n)
{
    const char *what = "list the objects of a topic";
    sh_meta_object_t *objs = NULL;
    size_t nobjs = 0;
    sh_err_t err;
    if ((err = pg_begin(c, 0, what)) != SH_OK)
        goto fail;
    if ((err = pg_topic_state(c, topic_id, what, NULL, NULL, NULL, NULL)) != SH_OK)
        goto fail;
    if ((err = pg_rows(c, PG_TOPIC_OBJECTS, what, a, sizeof(*objs), pg_reader_object,
                       (void **)&objs, &nobjs, "u", &topic_id)) != SH_OK)
        goto fail;
    if ((err = pg_commit(c, what)) != SH_OK)
        goto fail;
    *out = objs;
    *n = nobjs;
    return SH_OK;
fail:
    pg_rollback(c);
    return err;
}

static sh_err_t pg_topic_objects(sh_meta_conn_t *c, sh_uuid_t topic_id, sh_arena_t *a,
                                 sh_meta_object_t **out, size_t *n)
{
    sh_err_t err;
    PG_RUN(c, err, pg_topic_objects_once(c, topic_id, a, out, n));
    return err;
}

static sh_err_t pg_topic_partitions_add_once(sh_meta_conn_t *c, sh_uuid_t topic_id,
                                             int32_t new_count)
{
    const char *what = "add partitions";
    int state = 0;
    int32_t count = 0;
    sh_err_t err;
    if ((err = pg_begin(c, 1, what)) != SH_OK)
        goto fail;
    if ((err = pg_topic_state(c, topic_id, what, &state, &count, NULL, NULL)) != SH_OK)
        goto fail;
    if (state != SH_META_TOPIC_LIVE) {
        err = SH_KERR_INVALID_TOPIC_EXCEPTION;
        goto fail;
    }
    if (new_count <= count) {
        err = SH_KERR_INVALID_PARTITIONS;
        goto fail;
    }
    if ((err = pg_exec(c, PG_PARTITIONS_INSERT, what, NULL, "uii", &topic_id, (int)count,
                       (int)new_count - 1)) != SH_OK)
        goto fail;
    if ((err = pg_exec(c, PG_TOPIC_SET_COUNT, what, NULL, "ui", &topic_id, (int)new_count)) !=
        SH_OK)
        goto fail;
    if ((err = pg_commit(c, what)) != SH_OK)
        goto fail;
    return SH_OK;
fail:
    pg_rollback(c);
    return err;
}

static sh_err_t pg_topic_partitions_add(sh_meta_conn_t *c, sh_uuid_t topic_id,
                                        int32_t new_count)
{
    sh_err_t err;
    PG_RUN(c, err, pg_topic_partitions_add_once(c, topic_id, new_count));
    return err;
}

static sh_err_t pg_reader_config(const PGresult *r, int i, sh_arena_t *a, void *item)
{
    sh_meta_config_t *cf = item;
    sh_err_t err = pg_col_str(r, i, 0, a, &cf->key);
    return err != SH_OK ? err : pg_col_str(r, i, 1, a, &cf->value);
}

static sh_err_t pg_topic_configs_get_once(sh_meta_conn_t *c, sh_uuid_t topic_id,
                                          sh_arena_t *a, sh_meta_config_t **out, size_t *n)
{
    const char *what = "read topic configs";
    sh_meta_config_t *cfg = NULL;
    size_t ncfg = 0;
    sh_err_t err;
    if ((err = pg_begin(c, 0, what)) != SH_OK)
        goto fail;
    if ((err = pg_topic_state(c, topic_id, what, NULL, NULL, NULL, NULL)) != SH_OK)
        goto fail;
    if ((err = pg_rows(c, PG_CONFIG_LIST, what, a, sizeof(*cfg), pg_reader_config,
                       (void **)&cfg, &ncfg, "u", &topic_id)) != SH_OK)
        goto fail;
    if ((err = pg_commit(c, what)) != SH_OK)
        goto fail;
    *out = cfg;
    *n = ncfg;
    return SH_OK;
fail:
    pg_rollback(c);
    return err;
}

static sh_err_t pg_topic_configs_get(sh_meta_conn_t *c, sh_uuid_t topic_id, sh_arena_t *a,
                                     sh_meta_config_t **out, size_t *n)
{
    sh_err_t err;
    PG_RUN(c, err, pg_topic_configs_get_once(c, topic_id, a, out, n));
    return err;
}

static sh_err_t pg_topic_configs_alter_once(sh_meta_conn_t *c, sh_uuid_t topic_id,
                                            const sh_meta_config_t *changes, size_t n,
                                            int replace_all)
{
    const char *what = "alter topic configs";
    sh_err_t err;
    if ((err = pg_begin(c, 1, what)) != SH_OK)
        goto fail;
    if ((err = pg_topic_state(c, topic_id, what, NULL, NULL, NULL, NULL)) != SH_OK)
        goto fail;
    if (replace_all &&
        (err = pg_exec(c, PG_CONFIG_CLEAR, what, NULL, "u", &topic_id)) != SH_OK)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if (changes[i].value)
            err = pg_exec(c, PG_CONFIG_PUT, what, NULL, "uss", &topic_id, changes[i].key,
                          changes[i].value);
        else
            err = pg_exec(c, PG_CONFIG_DEL, what, NULL, "us", &topic_id, changes[i].key);
        if (err != SH_OK)
            goto fail;
    }
    if ((err = pg_commit(c, what)) != SH_OK)
        goto fail;
    return SH_OK;
fail:
    pg_rollback(c);
    return err;
}

static sh_err_t pg_topic_configs_alter(sh_meta_conn_t *c, sh_uuid_t topic_id,
                                       const sh_meta_config_t *changes, size_t n,
                                       int replace_all)
{
    sh_err_t err;
    PG_RUN(c, err, pg_topic_configs_alter_once(c, topic_id, changes, n, replace_all));
    return err;
}

/* ---------------------------------------------------------------------- */
/* Partitions and leadership                                               */

static sh_err_t pg_partition_get_once(sh_meta_conn_t *c, sh_meta_tp_t tp,
                                      sh_meta_partition_t *out)
{
    PGresult *res;
    sh_err_t err = pg_query(c, PG_PARTITION_GET, "look up a partition", &res, "ui",
                            &tp.topic_id, tp.partition);
    if (err != SH_OK)
        return err;
    if (PQntuples(res) < 1)
        err = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    else
        pg_read_partition(res, 0, out);
    PQclear(res);
    return err;
}

static sh_err_t pg_partition_get(sh_meta_conn_t *c, sh_meta_tp_t tp, sh_meta_partition_t *out)
{
    sh_err_t err;
    PG_RUN(c, err, pg_partition_get_once(c, tp, out));
    return err;
}

static sh_err_t pg_partition_list_once(sh_meta_conn_t *c, sh_uuid_t topic_id, sh_arena_t *a,
                                       sh_meta_partition_t **out, size_t *n)
{
    sh_err_t err = pg_rows(c, PG_PARTITION_LIST, "list partitions", a, sizeof(**out),
                           pg_reader_partition, (void **)out, n, "u", &topic_id);
    /* a topic always has partitions, so none means no topic */
    if (err == SH_OK && *n == 0)
        err = SH_KERR_UNKNOWN_TOPIC_ID;
    return err;
}

static sh_err_t pg_partition_list(sh_meta_conn_t *c, sh_uuid_t topic_id, sh_arena_t *a,
                                  sh_meta_partition_t **out, size_t *n)
{
    sh_err_t err;
    PG_RUN(c, err, pg_partition_list_once(c, topic_id, a, out, n));
    return err;
}

static sh_err_t pg_partition_acquire_once(sh_meta_conn_t *c, sh_meta_tp_t tp,
                                          int32_t broker_id, int32_t expected_epoch,
                                          int64_t now_ms, int64_t lease_expiry_ms,
                                          int32_t *new_epoch)
{
    const char *what = "acquire partition leadership";
    pg_pstate_t ps;
    int64_t epoch = 0;
    sh_err_t err;
    if ((err = pg_begin(c, 1, what)) != SH_OK)
        goto fail;
    /* The conditional UPDATE is the guard; the read after a miss only
     * explains which condition failed. */
    err = pg_scalar(c, PG_PARTITION_ACQUIRE, what, &epoch, "uiiiII", &tp.topic_id,
                   tp.partition, broker_id, expected_epoch, now_ms, lease_expiry_ms);
    if (err == SH_OK) {
        if ((err = pg_commit(c, what)) != SH_OK)
            goto fail;
        *new_epoch = (int32_t)epoch;
        return SH_OK;
    }
    if (err != SH_E_NOTFOUND)
        goto fail;
    if ((err = pg_partition_state(c, tp, what, &ps)) != SH_OK)
        goto fail;
    if (ps.topic_state != SH_META_TOPIC_LIVE)
        err = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    else if (ps.leader_epoch != expected_epoch)
        err = SH_E_FENCED;
    else
        err = SH_E_AGAIN; /* another broker's lease is still running */
fail:
    pg_rollback(c);
    return err;
}

static sh_err_t pg_partition_acquire(sh_meta_conn_t *c, sh_meta_tp_t tp, int32_t broker_id,
                                     int32_t expected_epoch, int64_t now_ms,
                                     int64_t lease_expiry_ms, int32_t *new_epoch)
{
    sh_err_t err;
    PG_RUN(c, err,
           pg_partition_acquire_once(c, tp, broker_id, expected_epoch, now_ms,
                                     lease_expiry_ms, new_epoch));
    return err;
}

/* Why an epoch-conditional partition write matched nothing. */
static sh_err_t pg_partition_why(sh_meta_conn_t *c, sh_meta_tp_t tp, const char *what)
{
    pg_pstate_t ps;
    sh_err_t err = pg_partition_state(c, tp, what, &ps);
    return err == SH_OK ? SH_E_FENCED : err;
}

static sh_err_t pg_partition_renew_once(sh_meta_conn_t *c, sh_meta_tp_t tp,
                                        int32_t leader_epoch, int64_t lease_expiry_ms)
{
    const char *what = "renew a partition lease";
    int changes = 0;
    sh_err_t err = pg_exec(c, PG_PARTITION_RENEW, what, &changes, "uiiI", &tp.topic_id,
                           tp.partition, leader_epoch, lease_expiry_ms);
    if (err != SH_OK || changes)
        return err;
    return pg_partition_why(c, tp, what);
}

static sh_err_t pg_partition_renew(sh_meta_conn_t *c, sh_meta_tp_t tp, int32_t leader_epoch,
                                   int64_t lease_expiry_ms)
{
    sh_err_t err;
    PG_RUN(c, err, pg_partition_renew_once(c, tp, leader_epoch, lease_expiry_ms));
    return err;
}

static sh_err_t pg_partition_release_once(sh_meta_conn_t *c, sh_meta_tp_t tp,
                                          int32_t leader_epoch)
{
    const char *what = "release partition leadership";
    int changes = 0;
    sh_err_t err = pg_exec(c, PG_PARTITION_RELEASE, what, &changes, "uii", &tp.topic_id,
                           tp.partition, leader_epoch);
    if (err != SH_OK || changes)
        return err;
    return pg_partition_why(c, tp, what);
}

static sh_err_t pg_partition_release(sh_meta_conn_t *c, sh_meta_tp_t tp, int32_t leader_epoch)
{
    sh_err_t err;
    PG_RUN(c, err, pg_partition_release_once(c, tp, leader_epoch));
    return err;
}

static sh_err_t pg_partition_log_start_advance_once(sh_meta_conn_t *c, sh_meta_tp_t tp,
                                                    int64_t new_log_start, sh_arena_t *a,
                                                    sh_meta_object_t **freed,
                                                    size_t *nfreed)
{
    const char *what = "advance the log start offset";
    int64_t start = 0;
    sh_meta_object_t *objs = NULL;
    size_t nobjs = 0;
    sh_err_t err;
    if ((err = pg_begin(c, 1, what)) != SH_OK)
        goto fail;
    err = pg_scalar(c, PG_PARTITION_LOG_START, what, &start, "uiI", &tp.topic_id,
                   tp.partition, new_log_start);
    if (err == SH_E_NOTFOUND)
        err = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (err != SH_OK)
        goto fail;
    if ((err = pg_release_rows(c, PG_PARTITION_RELEASE_BELOW, what, a, &objs, &nobjs, "uiI",
                               &tp.topic_id, tp.partition, start)) != SH_OK)
        goto fail;
    if ((err = pg_exec(c, PG_PARTITION_CHUNKS_DELETE, what, NULL, "uiI", &tp.topic_id,
                       tp.partition, start)) != SH_OK)
        goto fail;
    if ((err = pg_commit(c, what)) != SH_OK)
        goto fail;
    *freed = objs;
    *nfreed = nobjs;
    return SH_OK;
fail:
    pg_rollback(c);
    return err;
}

static sh_err_t pg_partition_log_start_advance(sh_meta_conn_t *c, sh_meta_tp_t tp,
                                               int64_t new_log_start, sh_arena_t *a,
                                               sh_meta_object_t **freed, size_t *nfreed)
{
    sh_err_t err;
    PG_RUN(c, err,
           pg_partition_log_start_advance_once(c, tp, new_log_start, a, freed, nfreed));
    return err;
}

/* ---------------------------------------------------------------------- */
/* Chunks and objects                                                      */

/*
 * The object key is taken. If every chunk we were asked to commit is
 * already recorded exactly so, this is a retry of a commit whose reply was
 * lost: report success. Anything else is a key collision.
 */
static sh_err_t pg_commit_is_retry(sh_meta_conn_t *c, const char *key, int64_t size,
                                   const sh_meta_chunk_t *chunks, size_t n, const char *what)
{
    int64_t v = 0;
    sh_err_t err = pg_scalar(c, PG_OBJECT_SIZE, what, &v, "s", key);
    if (err != SH_OK)
        return err;
    if (v != size)
        return SH_E_EXISTS;
    for (size_t i = 0; i < n; i++) {
        const sh_meta_chunk_t *k = &chunks[i];
        err = pg_scalar(c, PG_CHUNK_SAME, what, &v, "uiIIsII", &k->topic_id, k->partition,
                       k->base_offset, k->last_offset, key, k->byte_offset, k->byte_length);
        if (err != SH_OK)
            return err;
        if (v != 1)
            return SH_E_EXISTS;
    }
    return SH_OK;
}

static sh_err_t pg_chunks_commit_once(sh_meta_conn_t *c, const char *key, int64_t size,
                                      const sh_meta_chunk_t *chunks, size_t n, int64_t now_ms)
{
    const char *what = "commit segment chunks";
    int changes = 0;
    sh_err_t err;
    if ((err = pg_begin(c, 1, what)) != SH_OK)
        goto fail;
    if ((err = pg_exec(c, PG_OBJECT_INSERT, what, &changes, "sIII", key, size, (int64_t)n,
                       now_ms)) != SH_OK)
        goto fail;
    if (changes == 0) {
        err = pg_commit_is_retry(c, key, size, chunks, n, what);
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
        err = pg_exec(c, PG_PARTITION_ADVANCE_HWM, what, &changes, "uiiII", &k->topic_id,
                      k->partition, k->leader_epoch, k->base_offset, k->last_offset + 1);
        if (err != SH_OK)
            goto fail;
        if (changes == 0) {
            pg_pstate_t ps;
            if ((err = pg_partition_state(c, tp, what, &ps)) != SH_OK)
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
        err = pg_exec(c, PG_CHUNK_INSERT, what, NULL, "uiIIIsIIiI", &k->topic_id,
                      k->partition, k->base_offset, k->last_offset, k->max_timestamp, key,
                      k->byte_offset, k->byte_length, k->leader_epoch, now_ms);
        if (err != SH_OK)
            goto fail;
    }
    if ((err = pg_commit(c, what)) != SH_OK)
        goto fail;
    return SH_OK;
fail:
    pg_rollback(c);
    return err;
}

static sh_err_t pg_chunks_commit(sh_meta_conn_t *c, const char *key, int64_t size,
                                 const sh_meta_chunk_t *chunks, size_t n, int64_t now_ms)
{
    sh_err_t err;
    PG_RUN(c, err, pg_chunks_commit_once(c, key, size, chunks, n, now_ms));
    return err;
}

/* Distinguish "partition has nothing there" from "no such partition". */
static sh_err_t pg_partition_exists(sh_meta_conn_t *c, sh_meta_tp_t tp, const char *what)
{
    int64_t one;
    sh_err_t err = pg_scalar(c, PG_PARTITION_EXISTS, what, &one, "ui", &tp.topic_id,
                            tp.partition);
    return err == SH_E_NOTFOUND ? SH_KERR_UNKNOWN_TOPIC_OR_PARTITION : err;
}

static sh_err_t pg_chunks_find_once(sh_meta_conn_t *c, sh_meta_tp_t tp, int64_t offset,
                                    size_t limit, sh_arena_t *a, sh_meta_chunk_t **out,
                                    size_t *n)
{
    const char *what = "find segment chunks";
    sh_err_t err = pg_rows(c, PG_CHUNKS_FIND, what, a, sizeof(**out), pg_reader_chunk,
                           (void **)out, n, "uiII", &tp.topic_id, tp.partition, offset,
                           (int64_t)limit);
    if (err == SH_OK && *n == 0)
        err = pg_partition_exists(c, tp, what);
    return err;
}

static sh_err_t pg_chunks_find(sh_meta_conn_t *c, sh_meta_tp_t tp, int64_t offset,
                               size_t limit, sh_arena_t *a, sh_meta_chunk_t **out, size_t *n)
{
    sh_err_t err;
    PG_RUN(c, err, pg_chunks_find_once(c, tp, offset, limit, a, out, n));
    return err;
}

static sh_err_t pg_chunks_find_by_time_once(sh_meta_conn_t *c, sh_meta_tp_t tp, int64_t ts,
                                            sh_arena_t *a, sh_meta_chunk_t *out)
{
    const char *what = "find a segment chunk by timestamp";
    PGresult *res;
    sh_err_t err = pg_query(c, PG_CHUNKS_BY_TIME, what, &res, "uiI", &tp.topic_id,
                            tp.partition, ts);
    if (err != SH_OK)
        return err;
    if (PQntuples(res) < 1) {
        PQclear(res);
        err = pg_partition_exists(c, tp, what);
        return err == SH_OK ? SH_E_NOTFOUND : err;
    }
    err = pg_read_chunk(res, 0, a, out);
    PQclear(res);
    return err;
}

static sh_err_t pg_chunks_find_by_time(sh_meta_conn_t *c, sh_meta_tp_t tp, int64_t ts,
                                       sh_arena_t *a, sh_meta_chunk_t *out)
{
    sh_err_t err;
    PG_RUN(c, err, pg_chunks_find_by_time_once(c, tp, ts, a, out));
    return err;
}

/* Committed bytes and chunk count at or above the log start, inside the
 * caller's transaction. */
static sh_err_t pg_size_above(sh_meta_conn_t *c, sh_meta_tp_t tp, int64_t log_start,
                              const char *what, int64_t *bytes, int64_t *nchunks)
{
    PGresult *res;
    sh_err_t err = pg_query(c, PG_PARTITION_SIZE, what, &res, "uiI", &tp.topic_id,
                            tp.partition, log_start);
    if (err != SH_OK)
        return err;
    if (PQntuples(res) < 1) {
        PQclear(res);
        return SH_E_IO;
    }
    *bytes = pg_int(res, 0, 0);
    *nchunks = pg_int(res, 0, 1);
    PQclear(res);
    return SH_OK;
}

static sh_err_t pg_partition_size_once(sh_meta_conn_t *c, sh_meta_tp_t tp, int64_t *bytes,
                                       int64_t *nchunks)
{
    const char *what = "measure a partition";
    pg_pstate_t ps;
    int64_t b = 0, k = 0;
    sh_err_t err;
    if ((err = pg_begin(c, 0, what)) != SH_OK)
        goto fail;
    if ((err = pg_partition_state(c, tp, what, &ps)) != SH_OK)
        goto fail;
    /* chunks below the log start are dead even if not swept yet */
    if ((err = pg_size_above(c, tp, ps.log_start_offset, what, &b, &k)) != SH_OK)
        goto fail;
    if ((err = pg_commit(c, what)) != SH_OK)
        goto fail;
    *bytes = b;
    *nchunks = k;
    return SH_OK;
fail:
    pg_rollback(c);
    return err;
}

static sh_err_t pg_partition_size(sh_meta_conn_t *c, sh_meta_tp_t tp, int64_t *bytes,
                                  int64_t *nchunks)
{
    sh_err_t err;
    PG_RUN(c, err, pg_partition_size_once(c, tp, bytes, nchunks));
    return err;
}

static sh_err_t pg_retention_by_time_once(sh_meta_conn_t *c, sh_meta_tp_t tp,
                                          int64_t cutoff_ms, int64_t *new_log_start)
{
    const char *what = "compute time retention";
    pg_pstate_t ps;
    int64_t first_young = 0;
    sh_err_t err;
    if ((err = pg_begin(c, 0, what)) != SH_OK)
        goto fail;
    if ((err = pg_partition_state(c, tp, what, &ps)) != SH_OK)
        goto fail;
    err = pg_scalar(c, PG_RETENTION_TIME, what, &first_young, "uiI", &tp.topic_id,
                   tp.partition, cutoff_ms);
    if (err == SH_E_NOTFOUND)
        first_young = ps.high_watermark; /* every committed chunk is old */
    else if (err != SH_OK)
        goto fail;
    if ((err = pg_commit(c, what)) != SH_OK)
        goto fail;
    *new_log_start = first_young > ps.log_start_offset ? first_young : ps.log_start_offset;
    return SH_OK;
fail:
    pg_rollback(c);
    return err;
}

static sh_err_t pg_retention_by_time(sh_meta_conn_t *c, sh_meta_tp_t tp, int64_t cutoff_ms,
                                     int64_t *new_log_start)
{
    sh_err_t err;
    PG_RUN(c, err, pg_retention_by_time_once(c, tp, cutoff_ms, new_log_start));
    return err;
}

static sh_err_t pg_retention_by_size_once(sh_meta_conn_t *c, sh_meta_tp_t tp,
                                          int64_t retain_bytes, int64_t *new_log_start)
{
    const char *what = "compute size retention";
    PGresult *res = NULL;
    pg_pstate_t ps;
    int64_t total = 0, nchunks = 0;
    sh_err_t err;
    if ((err = pg_begin(c, 0, what)) != SH_OK)
        goto fail;
    if ((err = pg_partition_state(c, tp, what, &ps)) != SH_OK)
        goto fail;
    if ((err = pg_size_above(c, tp, ps.log_start_offset, what, &total, &nchunks)) != SH_OK)
        goto fail;
    int64_t point = ps.log_start_offset;
    if (nchunks > 0 && total > retain_bytes) {
        /* Kafka's rule: drop the oldest while what remains is still at
         * least retention.bytes. */
        int64_t excess = total - retain_bytes;
        if ((err = pg_query(c, PG_CHUNKS_SIZES, what, &res, "uiI", &tp.topic_id,
                            tp.partition, ps.log_start_offset)) != SH_OK)
            goto fail;
        int rows = PQntuples(res);
        for (int i = 0; i < rows; i++) {
            int64_t len = pg_int(res, i, 1);
            if (excess - len < 0)
                break;
            excess -= len;
            point = pg_int(res, i, 0) + 1;
        }
        PQclear(res);
        res = NULL;
    }
    if ((err = pg_commit(c, what)) != SH_OK)
        goto fail;
    *new_log_start = point > ps.log_start_offset ? point : ps.log_start_offset;
    return SH_OK;
fail:
    PQclear(res);
    pg_rollback(c);
    return err;
}

static sh_err_t pg_retention_by_size(sh_meta_conn_t *c, sh_meta_tp_t tp,
                                     int64_t retain_bytes, int64_t *new_log_start)
{
    sh_err_t err;
    PG_RUN(c, err, pg_retention_by_size_once(c, tp, retain_bytes, new_log_start));
    return err;
}

static sh_err_t pg_objects_unreferenced(sh_meta_conn_t *c, size_t limit, sh_arena_t *a,
                                        sh_meta_object_t **out, size_t *n)
{
    sh_err_t err;
    PG_RUN(c, err,
           pg_rows(c, PG_OBJECTS_UNREFERENCED, "list unreferenced objects", a,
                   sizeof(**out), pg_reader_object, (void **)out, n, "I", (int64_t)limit));
    return err;
}

static sh_err_t pg_objects_forget_once(sh_meta_conn_t *c, const char *const *keys, size_t n)
{
    const char *what = "forget deleted objects";
    int changes;
    int64_t live;
    sh_err_t err;
    if ((err = pg_begin(c, 1, what)) != SH_OK)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if ((err = pg_exec(c, PG_OBJECT_FORGET, what, &changes, "s", keys[i])) != SH_OK)
            goto fail;
        if (changes)
            continue;
        err = pg_scalar(c, PG_OBJECT_LIVE, what, &live, "s", keys[i]);
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
    if ((err = pg_commit(c, what)) != SH_OK)
        goto fail;
    return SH_OK;
fail:
    pg_rollback(c);
    return err;
}

static sh_err_t pg_objects_forget(sh_meta_conn_t *c, const char *const *keys, size_t n)
{
    sh_err_t err;
    PG_RUN(c, err, pg_objects_forget_once(c, keys, n));
    return err;
}

/* ---------------------------------------------------------------------- */
/* Producer ids                                                            */

static sh_err_t pg_producer_ids_allocate_once(sh_meta_conn_t *c, int32_t broker_id,
                                              int32_t count, int64_t now_ms,
                                              int64_t *first_id)
{
    const char *what = "allocate producer ids";
    int64_t next = 0;
    sh_err_t err;
    /* SERIALIZABLE: two brokers reading the same maximum cannot both
     * insert after it; the loser reruns and starts after the winner */
    if ((err = pg_begin(c, 1, what)) != SH_OK)
        goto fail;
    if ((err = pg_scalar(c, PG_PID_NEXT, what, &next, "")) != SH_OK)
        goto fail;
    if (next > INT64_MAX - count) {
        sh_log(SH_LOG_ERROR, "meta", "producer id space is exhausted");
        err = SH_E_IO;
        goto fail;
    }
    err = pg_exec(c, PG_PID_INSERT, what, NULL, "IiiI", next, (int)count, broker_id, now_ms);
    if (err == SH_E_EXISTS)
        err = PG_E_SERIAL; /* same race, reported as a key collision */
    if (err != SH_OK)
        goto fail;
    if ((err = pg_commit(c, what)) != SH_OK)
        goto fail;
    *first_id = next;
    return SH_OK;
fail:
    pg_rollback(c);
    return err;
}

static sh_err_t pg_producer_ids_allocate(sh_meta_conn_t *c, int32_t broker_id, int32_t count,
                                         int64_t now_ms, int64_t *first_id)
{
    sh_err_t err;
    PG_RUN(c, err, pg_producer_ids_allocate_once(c, broker_id, count, now_ms, first_id));
    return err;
}

/* ---------------------------------------------------------------------- */
/* Consumer group offsets                                                  */

/*
 * Array parameters in PostgreSQL's text form, so a commit or fetch of many
 * partitions is one statement and one round trip instead of one per
 * partition. Strings are always quoted (backslash before '"' and '\\'),
 * NULL is the bare word NULL.
 */
typedef struct {
    char *p;
    size_t len, cap;
    int bad;
} pg_buf_t;

static void pg_buf_put(pg_buf_t *b, const char *s, size_t n)
{
    if (b->bad)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->bad = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void pg_buf_str(pg_buf_t *b, const char *s)
{
    pg_buf_put(b, s, strlen(s));
}

/* Append element i of an array literal: a quoted string or NULL. */
static void pg_array_str(pg_buf_t *b, size_t i, const char *v)
{
    pg_buf_str(b, i ? "," : "{");
    if (!v) {
        pg_buf_str(b, "NULL");
        return;
    }
    pg_buf_str(b, "\"");
    for (const char *s = v; *s;) {
        size_t run = strcspn(s, "\"\\");
        pg_buf_put(b, s, run);
        s += run;
        if (*s) {
            char esc[2] = {'\\', *s++};
            pg_buf_put(b, esc, 2);
        }
    }
    pg_buf_str(b, "\"");
}

static void pg_array_int(pg_buf_t *b, size_t i, int64_t v)
{
    char num[32];
    snprintf(num, sizeof(num), "%s%lld", i ? "," : "{", (long long)v);
    pg_buf_str(b, num);
}

static void pg_array_end(pg_buf_t *b, size_t n)
{
    pg_buf_str(b, n ? "}" : "{}");
}

static sh_err_t pg_reader_offset(const PGresult *r, int i, sh_arena_t *a, void *item)
{
    sh_meta_offset_t *o = item;
    o->partition = (int32_t)pg_int(r, i, 1);
    o->offset = pg_int(r, i, 2);
    o->leader_epoch = (int32_t)pg_int(r, i, 3);
    o->commit_ms = pg_int(r, i, 5);
    sh_err_t err = pg_col_str(r, i, 0, a, &o->topic);
    return err != SH_OK ? err : pg_col_str(r, i, 4, a, &o->metadata);
}

/* One upsert for every entry: one statement is one transaction, so the
 * commit is all or nothing; DISTINCT ON keeps the last entry for a
 * partition named twice (an upsert may not touch a row twice). */
static sh_err_t pg_offsets_commit(sh_meta_conn_t *c, const char *group_id,
                                  const sh_meta_offset_t *offsets, size_t n)
{
    pg_buf_t t = {0}, p = {0}, o = {0}, e = {0}, md = {0}, ms = {0};
    sh_err_t err = SH_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        pg_array_str(&t, i, offsets[i].topic);
        pg_array_int(&p, i, offsets[i].partition);
        pg_array_int(&o, i, offsets[i].offset);
        pg_array_int(&e, i, offsets[i].leader_epoch);
        pg_array_str(&md, i, offsets[i].metadata);
        pg_array_int(&ms, i, offsets[i].commit_ms);
    }
    pg_array_end(&t, n), pg_array_end(&p, n), pg_array_end(&o, n);
    pg_array_end(&e, n), pg_array_end(&md, n), pg_array_end(&ms, n);
    if (!t.bad && !p.bad && !o.bad && !e.bad && !md.bad && !ms.bad)
        PG_RUN(c, err,
               pg_exec(c, PG_OFFSETS_PUT, "commit group offsets", NULL, "sssssss", group_id,
                       t.p, p.p, o.p, e.p, md.p, ms.p));
    free(t.p), free(p.p), free(o.p), free(e.p), free(md.p), free(ms.p);
    return err;
}

static sh_err_t pg_offsets_fetch_all(sh_meta_conn_t *c, const char *group_id, sh_arena_t *a,
                                     sh_meta_offset_t **out, size_t *n)
{
    sh_err_t err;
    PG_RUN(c, err,
           pg_rows(c, PG_OFFSETS_OF_GROUP, "fetch group offsets", a, sizeof(**out),
                   pg_reader_offset, (void **)out, n, "s", group_id));
    return err;
}

/* The keys as two parallel arrays (topic, partition or -1). */
static int pg_keys_arrays(const sh_meta_offset_key_t *keys, size_t nkeys, pg_buf_t *t,
                          pg_buf_t *p)
{
    for (size_t i = 0; i < nkeys; i++) {
        pg_array_str(t, i, keys[i].topic);
        pg_array_int(p, i, keys[i].partition);
    }
    pg_array_end(t, nkeys);
    pg_array_end(p, nkeys);
    return t->bad || p->bad ? -1 : 0;
}

/* One statement over all keys: a single snapshot, as the API promises. */
static sh_err_t pg_offsets_fetch(sh_meta_conn_t *c, const char *group_id,
                                 const sh_meta_offset_key_t *keys, size_t nkeys,
                                 sh_arena_t *a, sh_meta_offset_t **out, size_t *n)
{
    pg_buf_t t = {0}, p = {0};
    sh_err_t err = SH_E_NOMEM;
    if (pg_keys_arrays(keys, nkeys, &t, &p) == 0)
        PG_RUN(c, err,
               pg_rows(c, PG_OFFSETS_BY_KEYS, "fetch group offsets", a, sizeof(**out),
                       pg_reader_offset, (void **)out, n, "sss", group_id, t.p, p.p));
    free(t.p), free(p.p);
    return err;
}

static sh_err_t pg_offsets_delete_once(sh_meta_conn_t *c, const char *group_id,
                                       const char *topics, const char *parts,
                                       int64_t *remaining)
{
    const char *what = "delete group offsets";
    int64_t left = 0;
    sh_err_t err;
    if ((err = pg_begin(c, 1, what)) != SH_OK)
        goto fail;
    if ((err = pg_exec(c, PG_OFFSETS_DEL_KEYS, what, NULL, "sss", group_id, topics, parts)) !=
        SH_OK)
        goto fail;
    if ((err = pg_scalar(c, PG_GROUP_OFFSET_COUNT, what, &left, "s", group_id)) != SH_OK)
        goto fail;
    if ((err = pg_commit(c, what)) != SH_OK)
        goto fail;
    *remaining = left;
    return SH_OK;
fail:
    pg_rollback(c);
    return err;
}

static sh_err_t pg_offsets_delete(sh_meta_conn_t *c, const char *group_id,
                                  const sh_meta_offset_key_t *keys, size_t nkeys,
                                  int64_t *remaining)
{
    pg_buf_t t = {0}, p = {0};
    sh_err_t err = SH_E_NOMEM;
    if (pg_keys_arrays(keys, nkeys, &t, &p) == 0)
        PG_RUN(c, err, pg_offsets_delete_once(c, group_id, t.p, p.p, remaining));
    free(t.p), free(p.p);
    return err;
}

static sh_err_t pg_group_delete_once(sh_meta_conn_t *c, const char *group_id,
                                     int64_t *deleted)
{
    int changes = 0;
    sh_err_t err = pg_exec(c, PG_GROUP_OFFSETS_DEL, "delete a group's offsets", &changes, "s",
                           group_id);
    if (err == SH_OK)
        *deleted = changes;
    return err;
}

static sh_err_t pg_group_delete(sh_meta_conn_t *c, const char *group_id, int64_t *deleted)
{
    sh_err_t err;
    PG_RUN(c, err, pg_group_delete_once(c, group_id, deleted));
    return err;
}

static sh_err_t pg_reader_group(const PGresult *r, int i, sh_arena_t *a, void *item)
{
    sh_meta_group_summary_t *g = item;
    g->offsets = pg_int(r, i, 1);
    g->last_commit_ms = pg_int(r, i, 2);
    return pg_col_str(r, i, 0, a, &g->group_id);
}

static sh_err_t pg_groups_list(sh_meta_conn_t *c, sh_arena_t *a,
                               sh_meta_group_summary_t **out, size_t *n)
{
    sh_err_t err;
    PG_RUN(c, err,
           pg_rows(c, PG_GROUPS_LIST, "list groups with offsets", a, sizeof(**out),
                   pg_reader_group, (void **)out, n, ""));
    return err;
}

static sh_err_t pg_offsets_expire_once(sh_meta_conn_t *c, const char *groups,
                                       int64_t cutoff_ms, int64_t *removed)
{
    int changes = 0;
    sh_err_t err = pg_exec(c, PG_OFFSETS_EXPIRE, "expire group offsets", &changes, "sI",
                           groups, cutoff_ms);
    if (err == SH_OK)
        *removed = changes;
    return err;
}

static sh_err_t pg_offsets_expire(sh_meta_conn_t *c, const char *const *groups,
                                  size_t ngroups, int64_t cutoff_ms, int64_t *removed)
{
    pg_buf_t g = {0};
    sh_err_t err = SH_E_NOMEM;
    for (size_t i = 0; i < ngroups; i++)
        pg_array_str(&g, i, groups[i]);
    pg_array_end(&g, ngroups);
    if (!g.bad)
        PG_RUN(c, err, pg_offsets_expire_once(c, g.p, cutoff_ms, removed));
    free(g.p);
    return err;
}

/* ---------------------------------------------------------------------- */
/* Producer epochs and snapshots                                           */

static sh_err_t pg_producer_init_once(sh_meta_conn_t *c, int64_t producer_id, int64_t now_ms)
{
    return pg_exec(c, PG_PRODUCER_INIT, "record a producer id", NULL, "II", producer_id,
                   now_ms);
}

static sh_err_t pg_producer_init(sh_meta_conn_t *c, int64_t producer_id, int64_t now_ms)
{
    sh_err_t err;
    PG_RUN(c, err, pg_producer_init_once(c, producer_id, now_ms));
    return err;
}

/* The record of id: SH_E_NOTFOUND when there is none. */
static sh_err_t pg_producer_read(sh_meta_conn_t *c, int64_t id, const char *what,
                                 sh_meta_producer_t *out)
{
    PGresult *res;
    sh_err_t err = pg_query(c, PG_PRODUCER_GET, what, &res, "I", id);
    if (err != SH_OK)
        return err;
    if (PQntuples(res) < 1) {
        PQclear(res);
        return SH_E_NOTFOUND;
    }
    out->producer_id = id;
    out->epoch = (int16_t)pg_int(res, 0, 0);
    out->last_epoch = (int16_t)pg_int(res, 0, 1);
    out->updated_ms = pg_int(res, 0, 2);
    PQclear(res);
    return SH_OK;
}

/* SERIALIZABLE: two brokers bumping the same id at once cannot both read
 * the old epoch and write; the loser reruns and sees the winner's. */
static sh_err_t pg_producer_bump_once(sh_meta_conn_t *c, int64_t producer_id, int16_t epoch,
                                      int64_t now_ms, sh_meta_producer_t *out)
{
    const char *what = "bump a producer epoch";
    sh_meta_producer_t rec;
    sh_err_t err;
    if ((err = pg_begin(c, 1, what)) != SH_OK)
        goto fail;
    if ((err = pg_producer_read(c, producer_id, what, &rec)) != SH_OK)
        goto fail;
    if (epoch >= rec.epoch) {
        rec.last_epoch = epoch;
        rec.epoch = (int16_t)(epoch + 1);
        if (now_ms > rec.updated_ms)
            rec.updated_ms = now_ms;
        if ((err = pg_exec(c, PG_PRODUCER_SET, what, NULL, "IiiI", producer_id, (int)rec.epoch,
                           (int)rec.last_epoch, now_ms)) != SH_OK)
            goto fail;
    } else if (epoch != rec.last_epoch) {
        *out = rec;
        err = SH_E_FENCED;
        goto fail;
    }
    if ((err = pg_commit(c, what)) != SH_OK)
        goto fail;
    *out = rec;
    return SH_OK;
fail:
    pg_rollback(c);
    return err;
}

static sh_err_t pg_producer_bump(sh_meta_conn_t *c, int64_t producer_id, int16_t epoch,
                                 int64_t now_ms, sh_meta_producer_t *out)
{
    sh_err_t err;
    PG_RUN(c, err, pg_producer_bump_once(c, producer_id, epoch, now_ms, out));
    return err;
}

static sh_err_t pg_producer_epochs_once(sh_meta_conn_t *c, const char *ids, size_t n,
                                        int16_t *epochs)
{
    PGresult *res;
    sh_err_t err = pg_query(c, PG_PRODUCER_EPOCHS, "read producer epochs", &res, "s", ids);
    if (err != SH_OK)
        return err;
    if ((size_t)PQntuples(res) != n) {
        PQclear(res);
        return SH_E_IO;
    }
    for (size_t i = 0; i < n; i++)
        epochs[i] = PQgetisnull(res, (int)i, 0) ? -1 : (int16_t)pg_int(res, (int)i, 0);
    PQclear(res);
    return SH_OK;
}

/* One statement over all ids (one round trip, one snapshot). */
static sh_err_t pg_producer_epochs(sh_meta_conn_t *c, const int64_t *ids, size_t n,
                                   int16_t *epochs)
{
    pg_buf_t b = {0};
    sh_err_t err = SH_E_NOMEM;
    for (size_t i = 0; i < n; i++)
        pg_array_int(&b, i, ids[i]);
    pg_array_end(&b, n);
    if (!b.bad)
        PG_RUN(c, err, pg_producer_epochs_once(c, b.p, n, epochs));
    free(b.p);
    if (err != SH_OK)
        for (size_t i = 0; i < n; i++)
            epochs[i] = -1;
    return err;
}

static int pg_agg_cmp(const void *a, const void *b)
{
    int64_t x = ((const sh_meta_touch_agg_t *)a)->producer_id;
    int64_t y = ((const sh_meta_touch_agg_t *)b)->producer_id;
    return x < y ? -1 : x > y;
}

/* Upsert the distinct touched producers (ids unique: one upsert may not
 * touch a row twice) and read back their recorded epochs. */
static sh_err_t pg_touch_all(sh_meta_conn_t *c, sh_meta_touch_agg_t *agg, size_t nagg,
                             const char *what)
{
    pg_buf_t ids = {0}, eps = {0}, ms = {0};
    for (size_t i = 0; i < nagg; i++) {
        pg_array_int(&ids, i, agg[i].producer_id);
        pg_array_int(&eps, i, agg[i].epoch);
        pg_array_int(&ms, i, agg[i].seen_ms);
    }
    pg_array_end(&ids, nagg), pg_array_end(&eps, nagg), pg_array_end(&ms, nagg);
    sh_err_t err = SH_E_NOMEM;
    PGresult *res = NULL;
    if (!ids.bad && !eps.bad && !ms.bad)
        err = pg_query(c, PG_PRODUCERS_TOUCH, what, &res, "sss", ids.p, eps.p, ms.p);
    free(ids.p), free(eps.p), free(ms.p);
    if (err != SH_OK)
        return err;
    for (int r = 0; r < PQntuples(res); r++) {
        sh_meta_touch_agg_t key = {.producer_id = pg_int(res, r, 0)};
        sh_meta_touch_agg_t *hit = bsearch(&key, agg, nagg, sizeof(*agg), pg_agg_cmp);
        if (hit)
            hit->recorded = (int16_t)pg_int(res, r, 1);
    }
    PQclear(res);
    return SH_OK;
}

static sh_err_t pg_producer_snapshots_put_once(sh_meta_conn_t *c,
                                               sh_meta_producer_snapshot_t *snaps, size_t n,
                                               int64_t now_ms)
{
    const char *what = "write producer snapshots";
    sh_meta_touch_agg_t *agg = NULL;
    size_t nagg = 0;
    sh_err_t err;
    if ((err = pg_begin(c, 1, what)) != SH_OK)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        sh_meta_producer_snapshot_t *s = &snaps[i];
        pg_pstate_t ps;
        err = pg_partition_state(c, s->tp, what, &ps);
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
        if ((err = pg_exec(c, PG_PSNAP_PUT, what, NULL, "uiIiIs", &s->tp.topic_id,
                           s->tp.partition, s->as_of_offset, s->leader_epoch, now_ms,
                           s->data)) != SH_OK)
            goto fail;
        if ((err = pg_exec(c, PG_PSNAP_TRIM, what, NULL, "uiI", &s->tp.topic_id,
                           s->tp.partition, ps.high_watermark)) != SH_OK)
            goto fail;
        s->result = SH_OK;
    }
    /* every producer the snapshots touched, once, in one statement */
    if ((err = sh_meta_touches_collect(snaps, n, &agg, &nagg)) != SH_OK)
        goto fail;
    if (nagg && (err = pg_touch_all(c, agg, nagg, what)) != SH_OK)
        goto fail;
    if ((err = pg_commit(c, what)) != SH_OK)
        goto fail;
    sh_meta_touches_apply(snaps, n, agg, nagg);
    free(agg);
    return SH_OK;
fail:
    free(agg);
    pg_rollback(c);
    return err;
}

static sh_err_t pg_producer_snapshots_put(sh_meta_conn_t *c, sh_meta_producer_snapshot_t *snaps,
                                          size_t n, int64_t now_ms)
{
    sh_err_t err;
    PG_RUN(c, err, pg_producer_snapshots_put_once(c, snaps, n, now_ms));
    if (err != SH_OK)
        for (size_t i = 0; i < n; i++)
            snaps[i].result = err;
    return err;
}

static sh_err_t pg_producer_snapshot_get_once(sh_meta_conn_t *c, sh_meta_tp_t tp,
                                              int64_t max_offset, sh_arena_t *a, int64_t *as_of,
                                              const char **data)
{
    PGresult *res;
    sh_err_t err = pg_query(c, PG_PSNAP_GET, "read a producer snapshot", &res, "uiI",
                            &tp.topic_id, tp.partition, max_offset);
    if (err != SH_OK)
        return err;
    if (PQntuples(res) < 1) {
        PQclear(res);
        return SH_E_NOTFOUND;
    }
    *as_of = pg_int(res, 0, 0);
    err = pg_col_str(res, 0, 1, a, data);
    PQclear(res);
    return err;
}

static sh_err_t pg_producer_snapshot_get(sh_meta_conn_t *c, sh_meta_tp_t tp, int64_t max_offset,
                                         sh_arena_t *a, int64_t *as_of, const char **data)
{
    sh_err_t err;
    PG_RUN(c, err, pg_producer_snapshot_get_once(c, tp, max_offset, a, as_of, data));
    if (err != SH_OK) {
        *as_of = -1;
        *data = NULL;
    }
    return err;
}

static sh_err_t pg_producers_expire_once(sh_meta_conn_t *c, int64_t cutoff_ms, int64_t *removed)
{
    int changes = 0;
    sh_err_t err = pg_exec(c, PG_PRODUCERS_EXPIRE, "expire producer ids", &changes, "I",
                           cutoff_ms);
    if (err == SH_OK)
        *removed = changes;
    return err;
}

static sh_err_t pg_producers_expire(sh_meta_conn_t *c, int64_t cutoff_ms, int64_t *removed)
{
    sh_err_t err;
    PG_RUN(c, err, pg_producers_expire_once(c, cutoff_ms, removed));
    return err;
}

const sh_meta_backend_t sh_meta_pg_backend = {
    .name = "postgresql",
    .nthreads = 1,
    .close = pg_close,
    .schema_version = pg_schema_version,
    .testing_schema_version_set = pg_testing_schema_version_set,
    .cluster_id_get = pg_cluster_id_get,
    .broker_register = pg_broker_register,
    .broker_heartbeat = pg_broker_heartbeat,
    .broker_unregister = pg_broker_unregister,
    .broker_list = pg_broker_list,
    .topic_create = pg_topic_create,
    .topic_get_by_name = pg_topic_get_by_name,
    .topic_get_by_id = pg_topic_get_by_id,
    .topic_list = pg_topic_list,
    .topic_mark_deleting = pg_topic_mark_deleting,
    .topic_drop = pg_topic_drop,
    .topic_objects = pg_topic_objects,
    .topic_partitions_add = pg_topic_partitions_add,
    .topic_configs_get = pg_topic_configs_get,
    .topic_configs_alter = pg_topic_configs_alter,
    .partition_get = pg_partition_get,
    .partition_list = pg_partition_list,
    .partition_acquire = pg_partition_acquire,
    .partition_renew = pg_partition_renew,
    .partition_release = pg_partition_release,
    .partition_log_start_advance = pg_partition_log_start_advance,
    .chunks_commit = pg_chunks_commit,
    .chunks_find = pg_chunks_find,
    .chunks_find_by_time = pg_chunks_find_by_time,
    .partition_size = pg_partition_size,
    .retention_by_time = pg_retention_by_time,
    .retention_by_size = pg_retention_by_size,
    .objects_unreferenced = pg_objects_unreferenced,
    .objects_forget = pg_objects_forget,
    .producer_ids_allocate = pg_producer_ids_allocate,
    .producer_init = pg_producer_init,
    .producer_bump = pg_producer_bump,
    .producer_epochs = pg_producer_epochs,
    .producer_snapshots_put = pg_producer_snapshots_put,
    .producer_snapshot_get = pg_producer_snapshot_get,
    .producers_expire = pg_producers_expire,
    .offsets_commit = pg_offsets_commit,
    .offsets_fetch = pg_offsets_fetch,
    .offsets_fetch_all = pg_offsets_fetch_all,
    .offsets_delete = pg_offsets_delete,
    .group_delete = pg_group_delete,
    .groups_list = pg_groups_list,
    .offsets_expire = pg_offsets_expire,
};
