/*
 * sh_topic_config.c - resolve and validate topic-level configuration keys
 * (see sh_topic_config.h). Loop thread; no allocation.
 */
#include "broker/sh_topic_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SH_DEFAULT_SEGMENT_MS (7LL * 24 * 3600 * 1000) /* Kafka's log.roll.hours=168 */

void sh_topic_cfg_defaults(sh_topic_cfg_t *out, const sh_config_t *broker)
{
    out->retention_ms = broker->retention_ms;
    out->retention_bytes = broker->log_retention_bytes;
    out->segment_bytes = broker->log_segment_bytes;
    out->segment_ms = SH_DEFAULT_SEGMENT_MS;
    out->max_message_bytes = broker->message_max_bytes;
    out->log_append_time = false;
    out->durability = SH_DURABILITY_WAL;
}

static bool sh_topic_cfg_long(const char *v, int64_t min, int64_t *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end != '\0' || x < min)
        return false;
    *out = x;
    return true;
}

sh_err_t sh_topic_cfg_apply(sh_topic_cfg_t *cfg, const sh_config_t *broker,
                            const char *key, const char *value, char *why,
                            size_t whylen)
{
    sh_topic_cfg_t def;
    int64_t n;

    sh_topic_cfg_defaults(&def, broker);
    if (strcmp(key, "retention.ms") == 0) {
        if (!value)
            cfg->retention_ms = def.retention_ms;
        else if (!sh_topic_cfg_long(value, -1, &cfg->retention_ms))
            goto bad_number;
    } else if (strcmp(key, "retention.bytes") == 0) {
        if (!value)
            cfg->retention_bytes = def.retention_bytes;
        else if (!sh_topic_cfg_long(value, -1, &cfg->retention_bytes))
            goto bad_number;
    } else if (strcmp(key, "segment.bytes") == 0) {
        if (!value)
            cfg->segment_bytes = def.segment_bytes;
        else if (!sh_topic_cfg_long(value, 14, &cfg->segment_bytes) ||
                 cfg->segment_bytes > INT32_MAX)
            goto bad_number;
    } else if (strcmp(key, "segment.ms") == 0) {
        if (!value)
            cfg->segment_ms = def.segment_ms;
        else if (!sh_topic_cfg_long(value, 1, &cfg->segment_ms))
            goto bad_number;
    } else if (strcmp(key, "max.message.bytes") == 0) {
        if (!value)
            cfg->max_message_bytes = def.max_message_bytes;
        else if (!sh_topic_cfg_long(value, 0, &n) || n > INT32_MAX)
            goto bad_number;
        else
            cfg->max_message_bytes = (int32_t)n;
    } else if (strcmp(key, "message.timestamp.type") == 0) {
        if (!value || strcmp(value, "CreateTime") == 0)
            cfg->log_append_time = false;
        else if (strcmp(value, "LogAppendTime") == 0)
            cfg->log_append_time = true;
        else {
            snprintf(why, whylen,
                     "invalid value \"%s\" for \"%s\": expected CreateTime or LogAppendTime",
                     value, key);
            return SH_KERR_INVALID_CONFIG;
        }
    } else if (strcmp(key, "cleanup.policy") == 0) {
        if (value && strcmp(value, "delete") != 0) {
            snprintf(why, whylen,
                     "cleanup.policy \"%s\" is not supported: only \"delete\" is served "
                     "(log compaction is not implemented yet)",
                     value);
            return SH_KERR_INVALID_CONFIG;
        }
    } else if (strcmp(key, "streamhouse.durability") == 0) {
        if (!value || strcmp(value, "wal") == 0)
            cfg->durability = SH_DURABILITY_WAL;
        else if (strcmp(value, "object") == 0)
            cfg->durability = SH_DURABILITY_OBJECT;
        else {
            snprintf(why, whylen,
                     "invalid value \"%s\" for \"%s\": expected wal or object", value, key);
            return SH_KERR_INVALID_CONFIG;
        }
    } else {
        snprintf(why, whylen, "unknown topic configuration \"%s\"", key);
        return SH_KERR_INVALID_CONFIG;
    }
    return SH_OK;

bad_number:
    snprintf(why, whylen, "invalid value \"%s\" for \"%s\": not a valid number in range",
             value, key);
    return SH_KERR_INVALID_CONFIG;
}
