/*
 * sh_topic_config.h - the per-topic configuration a partition obeys.
 *
 * A topic's effective configuration is the broker defaults (from
 * server.properties: log.retention.ms, message.max.bytes, ...) overlaid
 * with the topic's own overrides stored in the metadata store. Handlers
 * read the resolved struct; admin APIs (CreateTopics, AlterConfigs,
 * IncrementalAlterConfigs, DescribeConfigs) validate and describe keys
 * through this module so every path agrees on names, types and bounds.
 *
 * Loop thread only; pure functions over caller-owned structs.
 */
#ifndef SH_TOPIC_CONFIG_H
#define SH_TOPIC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/sh_config.h"
#include "common/sh_err.h"

typedef enum sh_durability {
    SH_DURABILITY_WAL = 0,     /* ack after the WAL fsync (default) */
    SH_DURABILITY_OBJECT = 1,  /* ack after the segment PUT and its metadata commit */
} sh_durability_t;

typedef struct sh_topic_cfg {
    int64_t retention_ms;          /* retention.ms; -1 = keep forever */
    int64_t retention_bytes;       /* retention.bytes; -1 = no size limit */
    int64_t segment_bytes;         /* segment.bytes */
    int64_t segment_ms;            /* segment.ms */
    int32_t max_message_bytes;     /* max.message.bytes: largest batch accepted */
    bool log_append_time;          /* message.timestamp.type=LogAppendTime */
    sh_durability_t durability;    /* streamhouse.durability */
} sh_topic_cfg_t;

/* The broker-wide defaults a topic without overrides gets. */
void sh_topic_cfg_defaults(sh_topic_cfg_t *out, const sh_config_t *broker);

/* Apply one topic-level key. Returns SH_OK, or SH_KERR_INVALID_CONFIG with
 * a message in why (unknown key, bad value, cleanup.policy=compact which is
 * not served yet). A NULL value restores the broker default. */
sh_err_t sh_topic_cfg_apply(sh_topic_cfg_t *cfg, const sh_config_t *broker,
                            const char *key, const char *value, char *why,
                            size_t whylen);

#endif
