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
 * The key table (sh_topic_cfg_keys) lists every topic-level key the broker
 * accepts, with what DescribeConfigs shows about it: Kafka's config type,
 * documentation, and the broker keys it defaults from (its synonyms).
 * Keys outside the table are refused with INVALID_CONFIG.
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
#include "meta/sh_meta_types.h"

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

/* Kafka's config types (DescribeConfigs config_type, v3+). */
enum {
    SH_CFG_TYPE_UNKNOWN = 0,
    SH_CFG_TYPE_BOOLEAN = 1,
    SH_CFG_TYPE_STRING = 2,
    SH_CFG_TYPE_INT = 3,
    SH_CFG_TYPE_SHORT = 4,
    SH_CFG_TYPE_LONG = 5,
    SH_CFG_TYPE_DOUBLE = 6,
    SH_CFG_TYPE_LIST = 7,
    SH_CFG_TYPE_CLASS = 8,
    SH_CFG_TYPE_PASSWORD = 9,
};

/* Kafka's config sources (DescribeConfigs config_source, v1+). */
enum {
    SH_CFG_SOURCE_UNKNOWN = 0,
    SH_CFG_SOURCE_TOPIC = 1,                  /* DYNAMIC_TOPIC_CONFIG: a topic override */
    SH_CFG_SOURCE_DYNAMIC_BROKER = 2,         /* never: no dynamic broker configs */
    SH_CFG_SOURCE_DYNAMIC_DEFAULT_BROKER = 3, /* never */
    SH_CFG_SOURCE_STATIC_BROKER = 4,          /* set in server.properties or --override */
    SH_CFG_SOURCE_DEFAULT = 5,                /* the built-in default */
};

/* Kafka's resource types (ConfigResource.Type). */
enum {
    SH_CFG_RESOURCE_UNKNOWN = 0,
    SH_CFG_RESOURCE_TOPIC = 2,
    SH_CFG_RESOURCE_BROKER = 4,
    SH_CFG_RESOURCE_BROKER_LOGGER = 8,
    SH_CFG_RESOURCE_CLIENT_METRICS = 16,
    SH_CFG_RESOURCE_GROUP = 32,
};

#define SH_TOPIC_CFG_MAX_BROKER_KEYS 3

typedef struct sh_topic_cfg_key {
    const char *name;
    int8_t type;                   /* SH_CFG_TYPE_* */
    /* Keys of the broker's config table (sh_config.h) this key defaults
     * from, most specific first; NULL-terminated. */
    const char *broker_keys[SH_TOPIC_CFG_MAX_BROKER_KEYS + 1];
    /* Keys with no broker_keys: Kafka's broker-level name shown as the
     * default's synonym (NULL: none), and the default value. */
    const char *default_key;
    const char *default_value;
    /* Accepted and stored for compatibility, but without effect here
     * (documented per key). */
    bool no_effect;
    const char *doc;
} sh_topic_cfg_key_t;

extern const sh_topic_cfg_key_t sh_topic_cfg_keys[];
extern const size_t sh_topic_cfg_nkeys;

/* The table row of a key, NULL if unknown. */
const sh_topic_cfg_key_t *sh_topic_cfg_key_find(const char *name);

/* The broker-wide defaults a topic without overrides gets. */
void sh_topic_cfg_defaults(sh_topic_cfg_t *out, const sh_config_t *broker);

/* Apply one topic-level key. Returns SH_OK, or SH_KERR_INVALID_CONFIG with
 * a message in why (unknown key, bad value, cleanup.policy=compact which is
 * not served yet). A NULL value restores the broker default. */
sh_err_t sh_topic_cfg_apply(sh_topic_cfg_t *cfg, const sh_config_t *broker,
                            const char *key, const char *value, char *why,
                            size_t whylen);

/* A whole set of overrides on top of the broker defaults (CreateTopics,
 * AlterConfigs): every key known, every value valid, no key twice
 * (SH_KERR_INVALID_CONFIG and why otherwise). out may be NULL. */
sh_err_t sh_topic_cfg_validate(const sh_config_t *broker, const sh_meta_config_t *cfgs,
                               size_t n, sh_topic_cfg_t *out, char *why, size_t whylen);

/* The default of k on this broker as text (what DescribeConfigs shows for a
 * key without override) and its source: STATIC_BROKER when the operator
 * set one of its broker keys, else DEFAULT. */
int8_t sh_topic_cfg_default_str(const sh_config_t *broker, const sh_topic_cfg_key_t *k,
                                char *buf, size_t n);

#define SH_TOPIC_CFG_VALUE_MAX 64
#define SH_TOPIC_CFG_MAX_SYNONYMS (SH_TOPIC_CFG_MAX_BROKER_KEYS + 2)

typedef struct sh_topic_cfg_synonym {
    const char *name;
    const char *value;               /* points into buf or a borrowed override */
    int8_t source;
    char buf[SH_TOPIC_CFG_VALUE_MAX];
} sh_topic_cfg_synonym_t;

/* How one key of one topic is described. Values may point into the
 * struct's own buffers: use it in place, do not copy the struct. */
typedef struct sh_topic_cfg_entry {
    const sh_topic_cfg_key_t *key;
    const char *value;               /* the override (borrowed) or buf */
    int8_t source;                   /* TOPIC, STATIC_BROKER or DEFAULT */
    bool is_default;                 /* source == DEFAULT (v0's is_default) */
    char buf[SH_TOPIC_CFG_VALUE_MAX];
    /* Kafka's order: the override, then each broker key the operator set,
     * then the built-in default. */
    size_t nsynonyms;
    sh_topic_cfg_synonym_t synonyms[SH_TOPIC_CFG_MAX_SYNONYMS];
} sh_topic_cfg_entry_t;

/* Describe key k of a topic whose overrides are ovr[0..n). */
void sh_topic_cfg_describe(const sh_config_t *broker, const sh_meta_config_t *ovr, size_t n,
                           const sh_topic_cfg_key_t *k, sh_topic_cfg_entry_t *out);

/* IncrementalAlterConfigs APPEND (append=true) or SUBTRACT on a LIST key:
 * the new comma-separated value from the current one (NULL: the default).
 * Appending an item already present or subtracting one that is absent
 * changes nothing (Kafka's rule). SH_E_INVAL if out is too small. */
sh_err_t sh_topic_cfg_list_edit(const char *current, const char *items, bool append, char *out,
                                size_t n);

#endif
