/*
 * sh_meta_types.h - the plain structs the metadata layer hands out and
 * takes in. Types only (HAProxy habit), so headers that merely carry these
 * values around need not pull in the function declarations.
 *
 * Ownership: every struct returned by a sh_meta_* call, and every string
 * and array it points to, is allocated in the sh_arena_t the caller passed
 * to that call; nothing is freed individually, the caller finishes the
 * arena. Structs passed *in* are borrowed for the duration of the call.
 */
#ifndef SH_META_TYPES_H
#define SH_META_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include "common/sh_err.h"
#include "protocol/sh_wire.h" /* sh_uuid_t */

/* Kafka's cluster id: base64url (no padding) of 16 random bytes. */
#define SH_META_CLUSTER_ID_LEN 22

/* Kafka's own topic name rules (Topic.java): [a-zA-Z0-9._-], 1..249. */
#define SH_META_TOPIC_NAME_MAX 249

/* A safety bound, not a Kafka rule: one CreateTopics/CreatePartitions call
 * writes one row per partition inside one transaction, and a hostile
 * request must not be able to ask for two billion of them. */
#define SH_META_PARTITIONS_MAX 100000

typedef struct sh_meta sh_meta_t;

/* One partition of one topic. */
typedef struct sh_meta_tp {
    sh_uuid_t topic_id;
    int32_t partition;
} sh_meta_tp_t;

typedef enum sh_meta_topic_state {
    SH_META_TOPIC_LIVE = 0,
    /* DeleteTopics accepted: no new writes, objects being released; the
     * name stays taken until sh_meta_topic_drop(). */
    SH_META_TOPIC_DELETING = 1,
} sh_meta_topic_state_t;

typedef struct sh_meta_topic {
    sh_uuid_t topic_id;
    const char *name;
    int32_t partition_count;
    int64_t created_ms;     /* wall clock, as passed to sh_meta_topic_create */
    sh_meta_topic_state_t state;
} sh_meta_topic_t;

/* A topic config override. In sh_meta_topic_configs_alter() a NULL value
 * means "remove this override". */
typedef struct sh_meta_config {
    const char *key;
    const char *value;
} sh_meta_config_t;

/* One listener of a broker, what a Metadata response advertises. */
typedef struct sh_meta_endpoint {
    const char *listener;       /* e.g. "PLAINTEXT" */
    const char *host;
    int32_t port;
    int16_t security_protocol;  /* Kafka's SecurityProtocol id */
} sh_meta_endpoint_t;

typedef struct sh_meta_broker {
    int32_t broker_id;
    int64_t broker_epoch;       /* bumped by every registration */
    const char *rack;           /* NULL when none */
    int64_t registered_ms;
    int64_t heartbeat_ms;
    sh_meta_endpoint_t *endpoints;
    size_t nendpoints;
} sh_meta_broker_t;

typedef struct sh_meta_partition {
    sh_uuid_t topic_id;
    int32_t partition;
    int32_t leader_id;          /* -1: no leader */
    int32_t leader_epoch;       /* -1 until the first leader; +1 per acquire */
    int64_t lease_expiry_ms;    /* wall clock; 0 when released */
    int64_t log_start_offset;
    /* Next offset after the last committed chunk. Records above it may
     * exist in the leader's WAL; they are not the metadata's business. */
    int64_t high_watermark;
} sh_meta_partition_t;

/* A byte range of a segment object holding the batches of one partition
 * with offsets base_offset..last_offset (inclusive). */
typedef struct sh_meta_chunk {
    sh_uuid_t topic_id;
    int32_t partition;
    int64_t base_offset;
    int64_t last_offset;
    int64_t max_timestamp;
    /* On commit: NULL, or equal to the object key being committed. */
    const char *object_key;
    int64_t byte_offset;
    int64_t byte_length;
    int32_t leader_epoch;       /* the epoch the committing leader held */
} sh_meta_chunk_t;

/* A segment object in the bucket. live_chunks counts the chunks that still
 * reference it; at 0 the object may be deleted from the store, then
 * forgotten here with sh_meta_objects_forget(). */
typedef struct sh_meta_object {
    const char *object_key;
    int64_t size_bytes;
    int64_t live_chunks;
} sh_meta_object_t;

/* Consumer group offsets are keyed by topic NAME, as OffsetCommit and
 * OffsetFetch address topics (dropping a topic removes its rows).
 * SH_META_ALL_PARTITIONS in a key means every partition of the topic. */
#define SH_META_ALL_PARTITIONS (-1)

/* One committed offset of one partition for one consumer group. */
typedef struct sh_meta_offset {
    const char *topic;
    int32_t partition;
    int64_t offset;             /* the committed position (next record to read) */
    int32_t leader_epoch;       /* -1 when the client did not say */
    const char *metadata;       /* client's string; NULL is null */
    int64_t commit_ms;          /* wall clock, as passed in by the committer */
} sh_meta_offset_t;

/* Which committed offsets of a group a fetch or delete addresses. */
typedef struct sh_meta_offset_key {
    const char *topic;
    int32_t partition;          /* >= 0, or SH_META_ALL_PARTITIONS */
} sh_meta_offset_key_t;

/* A group that has committed offsets (the only trace a group leaves in the
 * store: membership lives in the coordinator's memory). */
typedef struct sh_meta_group_summary {
    const char *group_id;
    int64_t offsets;            /* committed offsets it holds, >= 1 */
    int64_t last_commit_ms;     /* newest commit_ms among them */
} sh_meta_group_summary_t;

/* Idempotent producers (docs/idempotence.md). Epochs are Kafka's int16;
 * InitProducerId hands out 0..SH_META_PRODUCER_EPOCH_MAX and moves to a
 * new producer id past it (Kafka's "epoch exhausted" rule). */
#define SH_META_PRODUCER_EPOCH_MAX 32766

/* The epoch record of one producer id, shared by every broker: the
 * current epoch, the one before the last bump (so a retried bump whose
 * answer was lost gets the same answer, KIP-360) and when the id was last
 * initialised, bumped or seen in a partition snapshot (expiry). */
typedef struct sh_meta_producer {
    int64_t producer_id;
    int16_t epoch;
    int16_t last_epoch;         /* -1 before the first bump */
    int64_t updated_ms;
} sh_meta_producer_t;

/* A producer a partition saw since its previous snapshot. The snapshot
 * write raises the id's record to this epoch (never lowers it), refreshes
 * its time, and reports the recorded epoch: one above `epoch` means the
 * producer was fenced elsewhere and the partition must refuse it. */
typedef struct sh_meta_producer_touch {
    int64_t producer_id;
    int16_t epoch;              /* in */
    int64_t seen_ms;            /* in: wall clock of its last append */
    int16_t recorded_epoch;     /* out */
} sh_meta_producer_touch_t;

/* One partition's producer state as of as_of_offset (exclusive), written
 * before the chunk commit that moves the high watermark to that offset.
 * data is opaque text (storage/sh_producer_state.c), NUL-terminated. */
typedef struct sh_meta_producer_snapshot {
    sh_meta_tp_t tp;
    int32_t leader_epoch;       /* written only while the partition has it */
    int64_t as_of_offset;
    const char *data;
    sh_meta_producer_touch_t *touched; /* in/out, may be NULL when ntouched is 0 */
    size_t ntouched;
    /* out: SH_OK, SH_E_FENCED (another leader epoch: nothing written),
     * SH_KERR_UNKNOWN_TOPIC_OR_PARTITION (gone or being deleted), or
     * SH_E_INVAL (as_of_offset below the committed offset) */
    sh_err_t result;
} sh_meta_producer_snapshot_t;

#endif
