/*
 * sh_topics.h - how request handlers see topics and partitions.
 *
 * Metadata (and later Produce, Fetch, ListOffsets ...) ask this interface
 * about topics; the topic registry (backed by the metadata store) will
 * implement it. Until then the broker uses sh_topics_empty, which knows
 * no topics. Calls are synchronous on the loop thread, so an
 * implementation answers from its in-memory view; views are allocated in
 * the caller's arena and live as long as the request.
 */
#ifndef SH_TOPICS_H
#define SH_TOPICS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/sh_arena.h"
#include "common/sh_err.h"
#include "common/sh_slice.h"
#include "protocol/sh_wire.h"

typedef struct sh_partition_view {
    int32_t partition_index;
    int32_t leader_id;          /* -1 if none */
    int32_t leader_epoch;
    int16_t error_code;         /* e.g. LEADER_NOT_AVAILABLE while moving */
} sh_partition_view_t;

typedef struct sh_topic_view {
    sh_slice_t name;
    sh_uuid_t topic_id;
    bool is_internal;
    int32_t partition_count;
    sh_partition_view_t *partitions;   /* partition_count entries */
} sh_topic_view_t;

typedef struct sh_topics_ops {
    /* Every topic. */
    sh_err_t (*list)(void *ctx, sh_arena_t *arena, sh_topic_view_t **out,
                     int32_t *count);
    /* One topic by name; SH_E_NOTFOUND if it does not exist. */
    sh_err_t (*find)(void *ctx, sh_arena_t *arena, sh_slice_t name,
                     sh_topic_view_t *out);
    /* One topic by id; SH_E_NOTFOUND if it does not exist. */
    sh_err_t (*find_id)(void *ctx, sh_arena_t *arena, sh_uuid_t id,
                        sh_topic_view_t *out);
} sh_topics_ops_t;

typedef struct sh_topics {
    const sh_topics_ops_t *ops;
    void *ctx;
} sh_topics_t;

/* Knows no topics (until the topic registry exists). */
extern const sh_topics_ops_t sh_topics_empty_ops;

/* Kafka's topic-name rule: 1-249 chars of [a-zA-Z0-9._-], not "." or "..". */
bool sh_topics_name_is_legal(sh_slice_t name);

#endif
