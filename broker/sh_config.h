/*
 * sh_config.h - broker configuration: one table declares every key.
 *
 * SH_CONFIG_KEYS below is the single source of truth. Each row gives the
 * key's name, the sh_config_t field that holds its value, its type, its
 * default (as text, parsed exactly like a file value), its bounds, an
 * optional checker and a help line. The same table generates the struct
 * fields, parses Java-properties files and --override flags, validates,
 * prints the effective configuration and feeds docs/configuration.md.
 *
 * Adding a key is one row: pick a type (STR, INT = int32_t, LONG =
 * int64_t, BOOL), a default, bounds (ignored for STR and BOOL), a checker
 * (or NULL) and help text; then read cfg->your_field. Document it in
 * docs/configuration.md.
 *
 * Lifecycle: sh_config_init (defaults) -> sh_config_load_file ->
 * sh_config_set for each override -> sh_config_finalize (cross-key checks,
 * derived values) -> use -> sh_config_fini. Not thread-safe; the broker
 * treats the finalized config as read-only.
 */
#ifndef SH_CONFIG_H
#define SH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sh_err.h"

/* Checker for STR values: return false and write a reason into why. */
typedef bool (*sh_config_check_fn)(const char *value, char *why, size_t whylen);

bool sh_config_check_listeners(const char *v, char *why, size_t n);
bool sh_config_check_listeners_or_empty(const char *v, char *why, size_t n);
bool sh_config_check_protocol_map(const char *v, char *why, size_t n);
bool sh_config_check_log_level(const char *v, char *why, size_t n);
bool sh_config_check_storage_url(const char *v, char *why, size_t n);
bool sh_config_check_metadata_url(const char *v, char *why, size_t n);
bool sh_config_check_nonempty(const char *v, char *why, size_t n);

/* An empty default for a STR key means "derived" (see sh_config_finalize).
 * X(name, field, type, default, min, max, check, help) */
#define SH_CONFIG_KEYS(X)                                                     \
    X("listeners", listeners, STR, "PLAINTEXT://127.0.0.1:9092", 0, 0,       \
      sh_config_check_listeners,                                              \
      "Comma-separated NAME://host:port addresses to listen on; an empty "  \
      "host or 0.0.0.0 listens on all interfaces, port 0 picks a free port") \
    X("advertised.listeners", advertised_listeners, STR, "", 0, 0,           \
      sh_config_check_listeners_or_empty,                                     \
      "Addresses given to clients in Metadata, per listener name; default: " \
      "the listeners, with a wildcard host replaced by this machine's name") \
    X("listener.security.protocol.map", listener_security_protocol_map, STR, \
      "PLAINTEXT:PLAINTEXT", 0, 0, sh_config_check_protocol_map,             \
      "Comma-separated NAME:PROTOCOL pairs; only PLAINTEXT is served yet")   \
    X("node.id", node_id, INT, "1", 0, INT32_MAX, NULL,                      \
      "This broker's id (alias: broker.id)")                                 \
    X("log.dirs", log_dirs, STR, "./data", 0, 0, sh_config_check_nonempty,   \
      "Local data directory (WAL, caches, meta.properties); created at "    \
      "start. Alias: log.dir")                                                \
    X("num.partitions", num_partitions, INT, "1", 1, INT32_MAX, NULL,        \
      "Partition count of automatically created topics")                     \
    X("default.replication.factor", default_replication_factor, INT, "1", 1, \
      INT16_MAX, NULL,                                                        \
      "Accepted for compatibility; durability comes from the WAL and "      \
      "object storage, not replicas")                                         \
    X("auto.create.topics.enable", auto_create_topics_enable, BOOL, "true",  \
      0, 0, NULL, "Create unknown topics when a client's Metadata asks for " \
      "them")                                                                 \
    X("socket.request.max.bytes", socket_request_max_bytes, INT,             \
      "104857600", 8, INT32_MAX, NULL,                                        \
      "Largest request frame accepted; larger frames close the connection " \
      "before any of the body is buffered")                                   \
    X("queued.max.request.bytes", queued_max_request_bytes, LONG,            \
      "268435456", -1, INT64_MAX, NULL,                                       \
      "Request bytes held in memory across all connections before the "     \
      "broker stops reading new requests (-1: no limit)")                    \
    X("connections.max.idle.ms", connections_max_idle_ms, LONG, "600000",    \
      -1, INT64_MAX, NULL,                                                    \
      "Close connections idle this long (-1: never)")                        \
    X("log.retention.ms", log_retention_ms, LONG, "604800000", -1,           \
      INT64_MAX, NULL,                                                        \
      "Default topic retention time (-1: unlimited); overrides "            \
      "log.retention.minutes and log.retention.hours")                       \
    X("log.retention.minutes", log_retention_minutes, INT, "10080", -1,      \
      INT32_MAX, NULL, "Retention time in minutes, used when "              \
      "log.retention.ms is not set")                                         \
    X("log.retention.hours", log_retention_hours, INT, "168", -1, INT32_MAX, \
      NULL, "Retention time in hours, used when neither log.retention.ms "  \
      "nor log.retention.minutes is set")                                    \
    X("log.retention.bytes", log_retention_bytes, LONG, "-1", -1, INT64_MAX, \
      NULL, "Default per-partition retention size (-1: unlimited)")          \
    X("log.retention.check.interval.ms", log_retention_check_interval_ms,     \
      LONG, "300000", 1, INT64_MAX, NULL,                                     \
      "How often partitions are checked for data past retention.ms or "     \
      "retention.bytes (docs/retention.md)")                                 \
    X("log.segment.bytes", log_segment_bytes, INT, "1073741824", 14,         \
      INT32_MAX, NULL, "Default segment size")                               \
    X("message.max.bytes", message_max_bytes, INT, "1048588", 0, INT32_MAX,  \
      NULL, "Largest record batch accepted by default")                      \
    X("group.min.session.timeout.ms", group_min_session_timeout_ms, INT,     \
      "6000", 0, INT32_MAX, NULL,                                             \
      "Smallest session.timeout.ms a group member may ask for")              \
    X("group.max.session.timeout.ms", group_max_session_timeout_ms, INT,     \
      "1800000", 0, INT32_MAX, NULL,                                          \
      "Largest session.timeout.ms a group member may ask for")               \
    X("group.initial.rebalance.delay.ms", group_initial_rebalance_delay_ms,  \
      INT, "3000", 0, INT32_MAX, NULL,                                        \
      "How long the first rebalance of an empty group waits for more "      \
      "members to join")                                                      \
    X("group.max.size", group_max_size, INT, "2147483647", 1, INT32_MAX,     \
      NULL, "Most members a consumer group may have")                        \
    X("offsets.retention.minutes", offsets_retention_minutes, INT, "10080",  \
      1, INT32_MAX, NULL,                                                     \
      "Committed offsets of a group that has had no members this long "     \
      "are deleted")                                                          \
    X("offsets.retention.check.interval.ms",                                  \
      offsets_retention_check_interval_ms, LONG, "600000", 1, INT64_MAX,     \
      NULL, "How often expired committed offsets are looked for")            \
    X("offset.metadata.max.bytes", offset_metadata_max_bytes, INT, "4096",   \
      0, INT32_MAX, NULL,                                                     \
      "Longest metadata string an offset commit may carry")                  \
    X("producer.id.expiration.ms", producer_id_expiration_ms, INT,           \
      "86400000", 1, INT32_MAX, NULL,                                         \
      "An idempotent producer id that has not written for this long is "    \
      "forgotten (docs/idempotence.md)")                                      \
    X("producer.id.expiration.check.interval.ms",                             \
      producer_id_expiration_check_interval_ms, INT, "600000", 1, INT32_MAX, \
      NULL, "How often expired producer ids are looked for")                 \
    X("max.incremental.fetch.session.cache.slots",                            \
      max_incremental_fetch_session_cache_slots, INT, "1000", 0, INT32_MAX,  \
      NULL, "Incremental fetch sessions (KIP-227) kept at most; 0: none "   \
      "(consumers then send full fetches)")                                   \
    X("streamhouse.storage.url", storage_url, STR, "", 0, 0,                 \
      sh_config_check_storage_url,                                            \
      "Object store for segments: file:///abs/dir or s3://bucket[/prefix];" \
      " default file://<log.dirs>/objects")                                   \
    X("streamhouse.s3.endpoint", s3_endpoint, STR, "", 0, 0, NULL,           \
      "S3-compatible endpoint, http(s)://host[:port]; empty: AWS "          \
      "(https://s3.<region>.amazonaws.com) or AWS_ENDPOINT_URL_S3/"         \
      "AWS_ENDPOINT_URL")                                                     \
    X("streamhouse.s3.region", s3_region, STR, "us-east-1", 0, 0, NULL,      \
      "Region requests are signed for; unset: AWS_REGION, "                 \
      "AWS_DEFAULT_REGION, then us-east-1")                                   \
    X("streamhouse.s3.path.style", s3_path_style, BOOL, "true", 0, 0, NULL,  \
      "Path-style URLs (host/bucket/key) instead of virtual-hosted "        \
      "(bucket.host/key); unset: true with an endpoint, false for AWS")     \
    X("streamhouse.s3.access.key.id", s3_access_key_id, STR, "", 0, 0, NULL, \
      "Access key id; empty: AWS_ACCESS_KEY_ID (and AWS_SESSION_TOKEN)")    \
    X("streamhouse.s3.secret.access.key", s3_secret_access_key, STR, "", 0,  \
      0, NULL, "Secret access key (never logged); empty: "                  \
      "AWS_SECRET_ACCESS_KEY")                                                \
    X("streamhouse.s3.max.inflight", s3_max_inflight, INT, "64", 1, 4096,    \
      NULL, "S3 requests in flight at once; more wait in a queue")           \
    X("streamhouse.s3.max.attempts", s3_max_attempts, INT, "6", 1, 100,      \
      NULL, "Tries per S3 request (first included) on 5xx, throttling, "    \
      "timeouts and connection errors")                                       \
    X("streamhouse.s3.connect.timeout.ms", s3_connect_timeout_ms, LONG,      \
      "5000", 100, 600000, NULL, "TCP and TLS connect timeout")              \
    X("streamhouse.s3.request.timeout.ms", s3_request_timeout_ms, LONG,      \
      "120000", 1000, 3600000, NULL,                                          \
      "Longest one S3 request may take (a stalled transfer fails sooner)")   \
    X("streamhouse.s3.read.rate", s3_read_rate, INT, "5500", 0, INT32_MAX,   \
      NULL, "GET/HEAD requests per second at most (0: no limit)")            \
    X("streamhouse.s3.write.rate", s3_write_rate, INT, "3500", 0, INT32_MAX, \
      NULL, "PUT/POST/DELETE requests per second at most (0: no limit)")     \
    X("streamhouse.s3.list.rate", s3_list_rate, INT, "100", 0, INT32_MAX,    \
      NULL, "LIST requests per second at most (0: no limit)")                \
    X("streamhouse.s3.breaker.failures", s3_breaker_failures, INT, "5", 0,   \
      INT32_MAX, NULL, "Consecutive failed S3 requests that pause all "     \
      "requests for a cooldown (0: never pause)")                             \
    X("streamhouse.s3.breaker.cooldown.ms", s3_breaker_cooldown_ms, LONG,    \
      "5000", 1, 3600000, NULL, "First pause after the endpoint failed; "   \
      "one request then probes it, and the pause doubles while it fails")    \
    X("streamhouse.s3.multipart.part.bytes", s3_multipart_part_bytes, LONG,  \
      "16777216", 5242880, 5368709120LL, NULL,                                \
      "Objects larger than this are uploaded in parts of this size")         \
    X("streamhouse.metadata.url", metadata_url, STR, "", 0, 0,               \
      sh_config_check_metadata_url,                                           \
      "Metadata database: sqlite:///abs/file.db or postgresql://...; "     \
      "default sqlite://<log.dirs>/meta.db")                                  \
    X("streamhouse.log.level", log_level, STR, "info", 0, 0,                 \
      sh_config_check_log_level, "Log verbosity: error, warn, info, debug")  \
    X("streamhouse.upload.bytes", upload_bytes, LONG, "8388608", 1,          \
      1073741824, NULL,                                                       \
      "Upload a segment object once this many durable bytes of all "        \
      "partitions wait in the WAL (docs/data-path.md)")                      \
    X("streamhouse.upload.interval.ms", upload_interval_ms, LONG, "1000", 1, \
      86400000, NULL,                                                         \
      "... or once the oldest of them has waited this long")                 \
    X("streamhouse.wal.segment.bytes", wal_segment_bytes, LONG, "16777216",  \
      65536, 1073741824, NULL,                                                \
      "WAL segment file size (a multiple of 4096); bounds the largest "     \
      "batch the WAL takes")                                                  \
    X("streamhouse.wal.max.bytes", wal_max_bytes, LONG, "268435456", 131072, \
      INT64_MAX, NULL,                                                        \
      "WAL bytes not yet uploaded (at least two segments); when full, "     \
      "produce waits for an upload to free space")                           \
    X("streamhouse.fetch.session.eviction.ms", fetch_session_eviction_ms,    \
      LONG, "120000", 0, INT64_MAX, NULL,                                     \
      "A fetch session idle this long gives way to a new one when the "     \
      "cache is full (Kafka's fixed 120000)")                                 \
    X("streamhouse.fetch.session.cache.bytes", fetch_session_cache_bytes,    \
      LONG, "67108864", 0, INT64_MAX, NULL,                                   \
      "Memory of all fetch sessions (partitions, topic names); a session "  \
      "that does not fit is not created, or closed")                          \
    X("streamhouse.cache.bytes", cache_bytes, LONG, "134217728", 0,          \
      INT64_MAX, NULL,                                                        \
      "Read cache of segment object bytes (0 disables it)")

/* C types of each config type. */
#define SH_CONFIG_CTYPE_STR char *
#define SH_CONFIG_CTYPE_INT int32_t
#define SH_CONFIG_CTYPE_LONG int64_t
#define SH_CONFIG_CTYPE_BOOL bool

typedef enum {
    SH_CONFIG_STR,
    SH_CONFIG_INT,
    SH_CONFIG_LONG,
    SH_CONFIG_BOOL,
} sh_config_type_t;

/* Key indexes, SH_CONFIG_K_<field>. */
typedef enum {
#define SH_CONFIG_X_ENUM(name, field, type, def, min, max, check, help)       \
    SH_CONFIG_K_##field,
    SH_CONFIG_KEYS(SH_CONFIG_X_ENUM)
#undef SH_CONFIG_X_ENUM
    SH_CONFIG_NKEYS
} sh_config_key_id_t;

typedef struct sh_config_key {
    const char *name;
    sh_config_type_t type;
    const char *def;
    int64_t min, max;
    sh_config_check_fn check;
    const char *help;
    size_t offset;          /* of the value in sh_config_t */
} sh_config_key_t;

/* The table (SH_CONFIG_NKEYS rows), for --help and docs. */
extern const sh_config_key_t sh_config_keys[];

/* Old or alternative names accepted for a key. */
typedef struct sh_config_alias {
    const char *alias;
    sh_config_key_id_t key;
} sh_config_alias_t;

#define SH_CONFIG_MAX_LISTENERS 16
#define SH_CONFIG_NAME_MAX 64
#define SH_CONFIG_HOST_MAX 256

/* One parsed NAME://host:port. host is "" for the wildcard. */
typedef struct sh_config_listener {
    char name[SH_CONFIG_NAME_MAX];
    char host[SH_CONFIG_HOST_MAX];
    int port;
} sh_config_listener_t;

typedef enum {
    SH_CONFIG_SRC_DEFAULT = 0,
    SH_CONFIG_SRC_FILE,
    SH_CONFIG_SRC_OVERRIDE,
} sh_config_source_t;

typedef struct sh_config {
#define SH_CONFIG_X_FIELD(name, field, type, def, min, max, check, help)      \
    SH_CONFIG_CTYPE_##type field;
    SH_CONFIG_KEYS(SH_CONFIG_X_FIELD)
#undef SH_CONFIG_X_FIELD

    /* where each key's value came from, and under which name */
    sh_config_source_t source[SH_CONFIG_NKEYS];
    const char *set_as[SH_CONFIG_NKEYS];

    /* derived by sh_config_finalize */
    sh_config_listener_t listener[SH_CONFIG_MAX_LISTENERS];
    int listener_count;
    sh_config_listener_t advertised[SH_CONFIG_MAX_LISTENERS]; /* same order */
    char *data_dir;              /* log.dirs made absolute */
    int64_t retention_ms;        /* effective, from the three retention keys */
    bool finalized;
} sh_config_t;

/* Defaults for every key. SH_E_NOMEM only. */
sh_err_t sh_config_init(sh_config_t *c);
void sh_config_fini(sh_config_t *c);

/* Set one key from text. Unknown keys log a warning and return SH_OK
 * (Kafka files carry many keys we do not use). An invalid value returns
 * SH_E_INVAL with a message naming the key in err. */
sh_err_t sh_config_set(sh_config_t *c, const char *key, const char *value,
                       sh_config_source_t src, char *err, size_t errlen);

/* Parse "key=value" (as given to --override) and set it. */
sh_err_t sh_config_set_override(sh_config_t *c, const char *kv, char *err,
                                size_t errlen);

/* Read a Java-properties file: '#' and '!' comments, key=value, key:value
 * or key value, backslash continuations and escapes, surrounding
 * whitespace trimmed. Errors name the file, line and key. */
sh_err_t sh_config_load_file(sh_config_t *c, const char *path, char *err,
                             size_t errlen);
/* Same, from a string (tests). `origin` names it in messages. */
sh_err_t sh_config_load_string(sh_config_t *c, const char *text,
                               const char *origin, char *err, size_t errlen);

/* Cross-key checks and derived values (listeners, advertised listeners,
 * absolute data directory, default URLs, effective retention). */
sh_err_t sh_config_finalize(sh_config_t *c, char *err, size_t errlen);

/* Log the effective configuration, one INFO line per key. */
void sh_config_log(const sh_config_t *c);

/* Keys whose values are secrets (names with "secret" or "password"):
 * never logged, never shown to clients. */
bool sh_config_key_sensitive(int key);

/* Key lookup by name or alias; -1 if unknown. */
int sh_config_key_find(const char *name);

/* Format a key's current value into buf. */
void sh_config_value_str(const sh_config_t *c, int key, char *buf, size_t n);

/* Parse a listener list ("NAME://host:port,..."). Returns the count or -1
 * with a reason in why. */
int sh_config_parse_listeners(const char *v, sh_config_listener_t *out, int max,
                              char *why, size_t whylen);

#endif
