/*
 * sh_meta.h - the metadata store: one interface, several backends.
 *
 * Every sh_meta_* operation below is SYNCHRONOUS: it blocks on the
 * database (SQLite file I/O and fsync now, a libpq round trip later). So
 * the event loop never calls them directly. It wraps the call in an
 * sh_meta_op_t, submits it, and gets the op back on the loop thread:
 *
 *     typedef struct {
 *         sh_meta_op_t op;            // first member
 *         char name[250];             // arguments ...
 *         sh_uuid_t topic_id;         // ... and results
 *         struct conn *conn;          // whatever the completion needs
 *     } create_req_t;
 *
 *     static sh_err_t create_run(sh_meta_t *m, sh_meta_op_t *op)   // worker
 *     {
 *         create_req_t *r = (create_req_t *)op;
 *         return sh_meta_topic_create(m, r->name, 3, NULL, 0,
 *                                     sh_clock_wall_ms(), &r->topic_id);
 *     }
 *     static void create_done(sh_meta_op_t *op)                   // loop
 *     {
 *         create_req_t *r = (create_req_t *)op;
 *         respond(r->conn, op->err, r->topic_id);
 *         free(r);
 *     }
 *     r->op.run = create_run; r->op.done = create_done;
 *     if (sh_meta_submit(meta, &r->op) != SH_OK) ... (done will not run)
 *
 * and the loop watches sh_meta_fd() for EPOLLIN and calls sh_meta_drain().
 * A run may call several operations in a row; each is its own transaction.
 * Startup code and tests may call the operations directly.
 *
 * Threads: operations may be called from any thread; a mutex inside
 * sh_meta_t serialises them on the one connection, so a direct call from
 * startup code while ops are queued is safe (it waits its turn).
 * sh_meta_submit/sh_meta_drain/sh_meta_close belong to the loop thread.
 *
 * Results: anything returned by pointer (strings, arrays, structs
 * reachable from them) is allocated in the sh_arena_t the caller passes;
 * the caller frees the arena. On error, outputs are zeroed / empty and
 * the arena may hold garbage that dies with it.
 *
 * Errors: SH_OK; a Kafka code when the condition is the client's (unknown
 * topic, topic exists, invalid partitions, ...), so a handler can send it
 * as is; SH_E_FENCED when an epoch-conditional write lost (see
 * docs/metadata.md, "Fencing"); SH_E_AGAIN when the database was busy or a
 * lease is held by someone else; SH_E_IO for any other database failure
 * (logged with the operation and the database's message); SH_E_INVAL for
 * arguments no correct caller passes; SH_E_NOMEM.
 *
 * Timestamps are wall-clock milliseconds passed in by the caller, so tests
 * control time and every broker in a cluster judges leases by its own
 * clock plus a margin it chooses.
 */
#ifndef SH_META_H
#define SH_META_H

#include <stddef.h>
#include <stdint.h>

#include "common/sh_arena.h"
#include "common/sh_err.h"
#include "common/sh_workq.h"
#include "meta/sh_meta_types.h"

/* ---------------------------------------------------------------------- */
/* Opening and closing                                                     */

/*
 * Open the store named by url and bring its schema up to date.
 *
 *   sqlite:///abs/path.db   absolute path /abs/path.db
 *   sqlite://rel/path.db    path relative to the working directory
 *   sqlite://:memory:       private in-memory database (tests only)
 *   /abs/path.db, rel.db    a plain path (no "://") means SQLite
 *   postgresql://user:pw@host:port/db?param=value, postgres://...
 *                           PostgreSQL: handed to libpq as a connection
 *                           URI; PG* environment variables fill what it
 *                           leaves out (docs/operations-postgresql.md)
 *   any other scheme        SH_E_UNSUPPORTED
 *
 * The file is created if missing (its directory must exist). Migrations
 * run one transaction each; a database whose schema is newer than this
 * build refuses to open (SH_E_UNSUPPORTED, logged). Starts the metadata
 * worker thread. Call before the loop runs, or on a thread that may block.
 */
sh_err_t sh_meta_open(const char *url, sh_meta_t **out);

/* Run every submitted op (their done callbacks run here, on the calling
 * thread), stop the worker, close the database, free m. NULL is a no-op. */
void sh_meta_close(sh_meta_t *m);

/* "sqlite" or "postgresql", for logs. */
const char *sh_meta_backend_name(const sh_meta_t *m);

/* The schema version stored in the database and the newest this build
 * knows; equal after a successful open. */
sh_err_t sh_meta_schema_version(sh_meta_t *m, int *db_version, int *code_version);

/* TESTS ONLY: record `version` as applied, to simulate a database written
 * by a newer build; a version at or below the current one is SH_E_INVAL.
 * sh_meta_testing_schema_version_unset() removes that record again. */
sh_err_t sh_meta_testing_schema_version_set(sh_meta_t *m, int version);
sh_err_t sh_meta_testing_schema_version_unset(sh_meta_t *m, int version);

/* ---------------------------------------------------------------------- */
/* Running operations off the loop                                         */

typedef struct sh_meta_op sh_meta_op_t;

struct sh_meta_op {
    sh_workq_job_t job;  /* private */
    sh_meta_t *meta;     /* set by sh_meta_submit */
    /* On the metadata worker: call sh_meta_* operations, store results in
     * the enclosing struct. Must not touch loop-owned state. */
    sh_err_t (*run)(sh_meta_t *m, sh_meta_op_t *op);
    /* On the thread that calls sh_meta_drain (the loop); may free the op.
     * May be NULL when nobody needs the completion, but the op must still
     * stay valid until sh_meta_drain or sh_meta_close has passed it (the
     * queue links through it after run returns). */
    void (*done)(sh_meta_op_t *op);
    sh_err_t err;        /* what run returned */
};

/* Queue op; ops run one at a time in submission order and their done
 * callbacks run in the same order. The op must stay valid until done.
 * SH_E_CLOSED once sh_meta_close has begun, SH_E_INVAL without run; in
 * both cases done will not be called. Loop thread. */
sh_err_t sh_meta_submit(sh_meta_t *m, sh_meta_op_t *op);

/* Descriptor that turns readable when completions wait; watch EPOLLIN. */
int sh_meta_fd(const sh_meta_t *m);

/* Run the done callbacks of finished ops; returns how many ran. */
int sh_meta_drain(sh_meta_t *m);

/* ---------------------------------------------------------------------- */
/* Cluster and brokers                                                     */

/* The cluster id, created on first call (Kafka style: 22 characters of
 * base64url of a random UUID) and the same forever after. out gets
 * SH_META_CLUSTER_ID_LEN characters and a NUL. */
sh_err_t sh_meta_cluster_id_get(sh_meta_t *m, char out[SH_META_CLUSTER_ID_LEN + 1]);

/* Register (or re-register after a restart) broker b->broker_id with its
 * endpoints and rack; its endpoints replace the previous ones. The broker
 * epoch increases on every registration, so the previous incarnation's
 * heartbeats are fenced. */
sh_err_t sh_meta_broker_register(sh_meta_t *m, const sh_meta_broker_t *b,
                                 int64_t now_ms, int64_t *broker_epoch);

/* SH_E_NOTFOUND if not registered, SH_E_FENCED if epoch is stale. */
sh_err_t sh_meta_broker_heartbeat(sh_meta_t *m, int32_t broker_id,
                                  int64_t broker_epoch, int64_t now_ms);

/* Controlled shutdown: forget the broker (same errors as heartbeat). */
sh_err_t sh_meta_broker_unregister(sh_meta_t *m, int32_t broker_id,
                                   int64_t broker_epoch);

/* Brokers whose last heartbeat is >= alive_since_ms (0: all), by id. */
sh_err_t sh_meta_broker_list(sh_meta_t *m, int64_t alive_since_ms, sh_arena_t *a,
                             sh_meta_broker_t **out, size_t *n);

/* ---------------------------------------------------------------------- */
/* Topics                                                                  */

/* Create a topic, its partitions 0..partitions-1 (no leader, epoch -1,
 * offsets 0) and its config overrides in one transaction; a fresh random
 * topic id goes to *topic_id. SH_KERR_INVALID_TOPIC_EXCEPTION for an
 * illegal name, SH_KERR_INVALID_PARTITIONS outside
 * 1..SH_META_PARTITIONS_MAX, SH_KERR_INVALID_CONFIG for an empty or
 * repeated key or a NULL value, SH_KERR_TOPIC_ALREADY_EXISTS if the name is
 * taken (also by a topic still being deleted). */
sh_err_t sh_meta_topic_create(sh_meta_t *m, const char *name, int32_t partitions,
                              const sh_meta_config_t *configs, size_t nconfigs,
                              int64_t now_ms, sh_uuid_t *topic_id);

/* SH_KERR_UNKNOWN_TOPIC_OR_PARTITION if absent. Deleting topics are
 * returned too: check state. */
sh_err_t sh_meta_topic_get_by_name(sh_meta_t *m, const char *name, sh_arena_t *a,
                                   sh_meta_topic_t *out);
/* SH_KERR_UNKNOWN_TOPIC_ID if absent. */
sh_err_t sh_meta_topic_get_by_id(sh_meta_t *m, sh_uuid_t topic_id, sh_arena_t *a,
                                 sh_meta_topic_t *out);
/* Every topic, live or deleting, by name. */
sh_err_t sh_meta_topic_list(sh_meta_t *m, sh_arena_t *a, sh_meta_topic_t **out,
                            size_t *n);

/* DeleteTopics, step 1: stop all writes to the topic (commits and
 * leadership changes now fail with UNKNOWN_TOPIC_OR_PARTITION). Idempotent.
 * SH_KERR_UNKNOWN_TOPIC_ID if absent. */
sh_err_t sh_meta_topic_mark_deleting(sh_meta_t *m, sh_uuid_t topic_id);

/* DeleteTopics, step 2 (topic must be DELETING, else SH_E_INVAL): in one
 * transaction remove its chunks, partitions, configs, committed group
 * offsets and the topic itself, and return the segment objects that no
 * longer hold any live chunk. Step 3 is the caller's: delete those objects
 * from the store, then sh_meta_objects_forget() them. A crash between the
 * steps leaves them listed by sh_meta_objects_unreferenced(). */
sh_err_t sh_meta_topic_drop(sh_meta_t *m, sh_uuid_t topic_id, sh_arena_t *a,
                            sh_meta_object_t **freed, size_t *nfreed);

/* Every segment object holding at least one chunk of the topic. Objects
 * may be shared with other topics (live_chunks tells): never delete these
 * directly, use the list sh_meta_topic_drop() returns. */
sh_err_t sh_meta_topic_objects(sh_meta_t *m, sh_uuid_t topic_id, sh_arena_t *a,
                               sh_meta_object_t **out, size_t *n);

/* CreatePartitions: grow to new_count partitions. SH_KERR_INVALID_PARTITIONS
 * unless current < new_count <= SH_META_PARTITIONS_MAX;
 * SH_KERR_INVALID_TOPIC_EXCEPTION if the topic is being deleted;
 * SH_KERR_UNKNOWN_TOPIC_ID if absent. */
sh_err_t sh_meta_topic_partitions_add(sh_meta_t *m, sh_uuid_t topic_id,
                                      int32_t new_count);

/* The topic's config overrides, by key. SH_KERR_UNKNOWN_TOPIC_ID. */
sh_err_t sh_meta_topic_configs_get(sh_meta_t *m, sh_uuid_t topic_id, sh_arena_t *a,
                                   sh_meta_config_t **out, size_t *n);

/* Apply changes in one transaction: a non-NULL value sets the key, NULL
 * removes it. replace_all first removes every override (AlterConfigs);
 * without it the change is incremental (IncrementalAlterConfigs).
 * SH_KERR_INVALID_CONFIG for an empty or repeated key. */
sh_err_t sh_meta_topic_configs_alter(sh_meta_t *m, sh_uuid_t topic_id,
                                     const sh_meta_config_t *changes, size_t n,
                                     int replace_all);

/* ---------------------------------------------------------------------- */
/* Partitions and leadership                                               */

/* SH_KERR_UNKNOWN_TOPIC_OR_PARTITION if absent. */
sh_err_t sh_meta_partition_get(sh_meta_t *m, sh_meta_tp_t tp, sh_meta_partition_t *out);
/* All partitions of a topic by index; SH_KERR_UNKNOWN_TOPIC_ID. */
sh_err_t sh_meta_partition_list(sh_meta_t *m, sh_uuid_t topic_id, sh_arena_t *a,
                                sh_meta_partition_t **out, size_t *n);

/*
 * Become leader of tp: leader := broker_id, leader_epoch += 1,
 * lease_expiry := lease_expiry_ms; the new epoch goes to *new_epoch.
 * A compare-and-set: expected_epoch must be the epoch the caller last
 * read, else SH_E_FENCED (someone moved first; re-read and decide again).
 * While another broker holds an unexpired lease (lease_expiry_ms > now_ms)
 * the answer is SH_E_AGAIN. SH_KERR_UNKNOWN_TOPIC_OR_PARTITION if absent or
 * the topic is being deleted.
 */
sh_err_t sh_meta_partition_acquire(sh_meta_t *m, sh_meta_tp_t tp, int32_t broker_id,
                                   int32_t expected_epoch, int64_t now_ms,
                                   int64_t lease_expiry_ms, int32_t *new_epoch);

/* Extend the lease held under leader_epoch; SH_E_FENCED if it moved on or
 * was released. */
sh_err_t sh_meta_partition_renew(sh_meta_t *m, sh_meta_tp_t tp, int32_t leader_epoch,
                                 int64_t lease_expiry_ms);

/* Give up leadership held under leader_epoch (leader -1, lease 0); the
 * epoch is not bumped, the next acquire does that. SH_E_FENCED if stale. */
sh_err_t sh_meta_partition_release(sh_meta_t *m, sh_meta_tp_t tp, int32_t leader_epoch);

/*
 * DeleteRecords and retention: log_start_offset := max(current,
 * new_log_start), then delete every chunk of tp wholly below the (new)
 * log start, decrement the live chunk counts of their objects and return
 * the objects that reached zero (delete them from the store, then
 * sh_meta_objects_forget). Calling it with an offset at or below the
 * current log start only sweeps. One transaction.
 */
sh_err_t sh_meta_partition_log_start_advance(sh_meta_t *m, sh_meta_tp_t tp,
                                             int64_t new_log_start, sh_arena_t *a,
                                             sh_meta_object_t **freed, size_t *nfreed);

/* ---------------------------------------------------------------------- */
/* Segment chunks and objects                                              */

/*
 * After the PUT of segment object `object_key` (object_size bytes)
 * succeeded, record its chunks and advance each partition's high
 * watermark to last_offset + 1, all in ONE transaction. Each partition
 * update is conditional on the chunk's leader_epoch being the partition's
 * current epoch; if any is stale, nothing is written and the result is
 * SH_E_FENCED. Chunks of one partition must continue exactly at its high
 * watermark (base_offset == high_watermark; in array order when one
 * partition has several chunks), else SH_E_INVAL. A repeated commit of the
 * same object with the same chunks (a retry after a lost reply) is SH_OK
 * and changes nothing; the same key with other chunks is SH_E_EXISTS.
 * SH_KERR_UNKNOWN_TOPIC_OR_PARTITION if a partition is absent or its topic
 * is being deleted.
 */
sh_err_t sh_meta_chunks_commit(sh_meta_t *m, const char *object_key, int64_t object_size,
                               const sh_meta_chunk_t *chunks, size_t n, int64_t now_ms);

/* Up to limit (>= 1) chunks of tp whose last_offset >= offset, in offset
 * order: the first one covers `offset` unless it lies below the log start
 * or at/after the high watermark. An empty result is SH_OK. */
sh_err_t sh_meta_chunks_find(sh_meta_t *m, sh_meta_tp_t tp, int64_t offset, size_t limit,
                             sh_arena_t *a, sh_meta_chunk_t **out, size_t *n);

/* ListOffsets by timestamp: the lowest-offset chunk whose max_timestamp
 * >= timestamp; SH_E_NOTFOUND if none (the answer then lies in the WAL or
 * nowhere). Scans the partition's chunks in offset order. */
sh_err_t sh_meta_chunks_find_by_time(sh_meta_t *m, sh_meta_tp_t tp, int64_t timestamp,
                                     sh_arena_t *a, sh_meta_chunk_t *out);

/* Committed bytes and chunk count of tp (retention.bytes input). */
sh_err_t sh_meta_partition_size(sh_meta_t *m, sh_meta_tp_t tp, int64_t *bytes,
                                int64_t *nchunks);

/* retention.ms: the offset to advance the log start to so that every
 * chunk whose max_timestamp < cutoff_ms goes, stopping at the first chunk
 * that is not that old (Kafka's rule). Never below the current log start;
 * the high watermark when every committed chunk is old. */
sh_err_t sh_meta_retention_by_time(sh_meta_t *m, sh_meta_tp_t tp, int64_t cutoff_ms,
                                   int64_t *new_log_start);

/* retention.bytes: the offset to advance the log start to so that the
 * oldest chunks go as long as at least retain_bytes committed bytes
 * remain (Kafka's rule). Never below the current log start. */
sh_err_t sh_meta_retention_by_size(sh_meta_t *m, sh_meta_tp_t tp, int64_t retain_bytes,
                                   int64_t *new_log_start);

/* Objects with no live chunk left (oldest first, up to limit >= 1): what a
 * crash between "release" and "delete from the store" left behind. */
sh_err_t sh_meta_objects_unreferenced(sh_meta_t *m, size_t limit, sh_arena_t *a,
                                      sh_meta_object_t **out, size_t *n);

/* Forget objects already deleted from the store. Unknown keys are fine
 * (idempotent); a key that still has live chunks is SH_E_INVAL and
 * nothing is forgotten. */
sh_err_t sh_meta_objects_forget(sh_meta_t *m, const char *const *keys, size_t n);

/* ---------------------------------------------------------------------- */
/* Producer ids                                                            */

/* Reserve `count` (1..1000000) consecutive producer ids for broker_id
 * (Kafka's AllocateProducerIds block); the first goes to *first_id. Blocks
 * never overlap and never go backwards. */
sh_err_t sh_meta_producer_ids_allocate(sh_meta_t *m, int32_t broker_id, int32_t count,
                                       int64_t now_ms, int64_t *first_id);

/*
 * Producer epochs (docs/idempotence.md). Every producer id InitProducerId
 * hands out has a record here, shared by all brokers, so an epoch bump on
 * one broker fences the old epoch on every other.
 */

/* Record a producer id just taken from a block, at epoch 0.
 * SH_E_EXISTS if it is recorded already; SH_E_INVAL for a negative id. */
sh_err_t sh_meta_producer_init(sh_meta_t *m, int64_t producer_id, int64_t now_ms);

/*
 * InitProducerId with a producer id and epoch (KIP-360), one transaction:
 *   epoch >= the recorded epoch   the record becomes epoch + 1 (its
 *                                 last_epoch := epoch)
 *   epoch == the record's last_epoch   a retry of a bump whose answer was
 *                                 lost: unchanged, SH_OK
 *   otherwise (older)             SH_E_FENCED
 *   no record (expired)           SH_E_NOTFOUND
 * *out gets the record as it stands afterwards (SH_OK and SH_E_FENCED).
 * epoch outside 0..SH_META_PRODUCER_EPOCH_MAX or a negative id: SH_E_INVAL.
 */
sh_err_t sh_meta_producer_bump(sh_meta_t *m, int64_t producer_id, int16_t epoch,
                               int64_t now_ms, sh_meta_producer_t *out);

/* The records of n producer ids in one read: epochs[i] is the recorded
 * epoch of ids[i], -1 when it has none. */
sh_err_t sh_meta_producer_epochs(sh_meta_t *m, const int64_t *ids, size_t n,
                                 int16_t *epochs);

/*
 * Write partition producer snapshots, all in ONE transaction. Each is
 * written only while its leader_epoch is the partition's (else its result
 * is SH_E_FENCED and nothing of it is written), replaces any snapshot of
 * the partition at the same offset, and drops the partition's snapshots
 * below its committed offset (the one at the committed offset stays until
 * a commit moves past it, so a crash between this write and the chunk
 * commit leaves a usable snapshot). Each touched producer's record is
 * raised to the touched epoch if that is newer and its time refreshed (a
 * missing record is created); recorded_epoch reports the result, so a
 * caller sees a producer that was fenced elsewhere. Per-snapshot results
 * are in snaps[i].result; the return value is SH_OK unless the database
 * failed (then nothing was written).
 */
sh_err_t sh_meta_producer_snapshots_put(sh_meta_t *m, sh_meta_producer_snapshot_t *snaps,
                                        size_t n, int64_t now_ms);

/* The newest snapshot of tp at or below max_offset: *as_of and *data (in
 * the arena). SH_E_NOTFOUND when there is none. */
sh_err_t sh_meta_producer_snapshot_get(sh_meta_t *m, sh_meta_tp_t tp, int64_t max_offset,
                                       sh_arena_t *a, int64_t *as_of, const char **data);

/* producer.id.expiration.ms: forget the records not initialised, bumped
 * or touched since cutoff_ms; *removed (may be NULL) gets how many. */
sh_err_t sh_meta_producers_expire(sh_meta_t *m, int64_t cutoff_ms, int64_t *removed);

/* ---------------------------------------------------------------------- */
/* Consumer group offsets                                                  */
/*
 * Only committed offsets are stored; group membership is the coordinator's
 * in-memory state (as in Kafka's coordinator cache). A group id may be ""
 * (Kafka accepts offset commits for the empty group id). Group ids and
 * topic names compare as exact byte strings.
 */

/* OffsetCommit: store n offsets of group_id in ONE transaction (all or
 * none), replacing what each partition had. When the array names a
 * partition twice, the later entry wins. Each entry's commit_ms is stored
 * as given. n == 0 is SH_OK. SH_E_INVAL for a NULL or empty topic or a
 * negative partition. Nothing checks that the topic exists: the caller
 * validated the request against its topic view. */
sh_err_t sh_meta_offsets_commit(sh_meta_t *m, const char *group_id,
                                const sh_meta_offset_t *offsets, size_t n);

/* OffsetFetch: the committed offsets of group_id that match keys, in key
 * order and, within a key, by partition; keys == NULL (or nkeys == 0)
 * means every offset of the group, ordered by topic (byte order) then
 * partition. Partitions without a committed offset are simply absent; an
 * unknown group is an empty result. A key given twice yields its rows
 * twice. One read transaction, so the answer is a consistent snapshot. */
sh_err_t sh_meta_offsets_fetch(sh_meta_t *m, const char *group_id,
                               const sh_meta_offset_key_t *keys, size_t nkeys,
                               sh_arena_t *a, sh_meta_offset_t **out, size_t *n);

/* OffsetDelete: remove the offsets of group_id that match keys (absent
 * ones are fine) in one transaction; *remaining gets how many offsets the
 * group still holds afterwards. nkeys == 0 only counts. */
sh_err_t sh_meta_offsets_delete(sh_meta_t *m, const char *group_id,
                                const sh_meta_offset_key_t *keys, size_t nkeys,
                                int64_t *remaining);

/* DeleteGroups: remove every offset of group_id; *deleted gets how many
 * there were (0 for a group the store never heard of: still SH_OK). */
sh_err_t sh_meta_group_delete(sh_meta_t *m, const char *group_id, int64_t *deleted);

/* Every group holding at least one committed offset, by group id (byte
 * order): what a restarted coordinator must still list as Empty groups. */
sh_err_t sh_meta_groups_list(sh_meta_t *m, sh_arena_t *a, sh_meta_group_summary_t **out,
                             size_t *n);

/* offsets.retention.minutes: in one transaction, remove the offsets of
 * each of the ngroups groups whose commit_ms < cutoff_ms; *removed (may be
 * NULL) gets the total removed. The caller names the groups because only
 * it knows which groups are empty (have no members) and for how long;
 * offsets of other groups are never touched. */
sh_err_t sh_meta_offsets_expire(sh_meta_t *m, const char *const *groups, size_t ngroups,
                                int64_t cutoff_ms, int64_t *removed);

/* ---------------------------------------------------------------------- */
/* Helpers, pure                                                           */

/* A random version-4 UUID that Kafka would accept as a topic id (not zero,
 * not the metadata topic id, base64 form not starting with '-'). */
sh_err_t sh_meta_uuid_random(sh_uuid_t *out);
/* Kafka's text form of a UUID: 22 characters base64url, and a NUL. */
void sh_meta_uuid_str(sh_uuid_t id, char out[SH_META_CLUSTER_ID_LEN + 1]);
/* SH_OK or SH_KERR_INVALID_TOPIC_EXCEPTION, by Kafka's rules. */
sh_err_t sh_meta_topic_name_check(const char *name);

#endif
