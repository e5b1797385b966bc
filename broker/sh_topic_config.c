/*
 * sh_topic_config.c - the table of topic-level configuration keys, and how
 * they are resolved, validated and described (see sh_topic_config.h).
 *
 * Thread: loop thread (pure functions). Ownership: nothing is allocated;
 * descriptions point into caller-provided structs or borrowed overrides.
 */
#include "broker/sh_topic_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SH_DEFAULT_SEGMENT_MS (7LL * 24 * 3600 * 1000) /* Kafka's log.roll.hours=168 */

/* Every topic-level key, in name order (DescribeConfigs lists them so). */
const sh_topic_cfg_key_t sh_topic_cfg_keys[] = {
    {"cleanup.policy", SH_CFG_TYPE_LIST, {NULL}, "log.cleanup.policy", "delete", false,
     "What happens to old log segments: \"delete\" removes them once they pass "
     "retention.ms or retention.bytes. Log compaction (\"compact\") is not served yet and "
     "is refused."},
    {"compression.type", SH_CFG_TYPE_STRING, {NULL}, "compression.type", "producer", false,
     "Codec of stored batches. Only \"producer\" is served: batches are stored exactly "
     "as the producer compressed them, never recompressed."},
    {"max.message.bytes", SH_CFG_TYPE_INT, {"message.max.bytes", NULL}, NULL, NULL, false,
     "Largest record batch (after compression) a producer may append to this topic; "
     "larger batches get MESSAGE_TOO_LARGE."},
    {"message.timestamp.type", SH_CFG_TYPE_STRING, {NULL}, "log.message.timestamp.type",
     "CreateTime", false,
     "CreateTime keeps the producer's record timestamps; LogAppendTime replaces them with "
     "the broker's clock when the batch is appended."},
    {"min.insync.replicas", SH_CFG_TYPE_INT, {NULL}, "min.insync.replicas", "1", true,
     "Accepted for compatibility (any value >= 1) and has no effect: an acknowledged "
     "batch is durable in the write-ahead log or object storage, with no replicas to "
     "count."},
    {"retention.bytes", SH_CFG_TYPE_LONG, {"log.retention.bytes", NULL}, NULL, NULL, false,
     "Largest size a partition's committed data may reach before its oldest segments "
     "are deleted; -1 means no size limit."},
    {"retention.ms", SH_CFG_TYPE_LONG,
     {"log.retention.ms", "log.retention.minutes", "log.retention.hours", NULL}, NULL, NULL,
     false,
     "How long records are kept before their segments are deleted, in milliseconds; -1 "
     "keeps them forever."},
    {"segment.bytes", SH_CFG_TYPE_INT, {"log.segment.bytes", NULL}, NULL, NULL, false,
     "Target size of a partition's segment before a new one is started (retention "
     "deletes whole segments)."},
    {"segment.ms", SH_CFG_TYPE_LONG, {NULL}, "log.roll.ms", "604800000", false,
     "Longest time a partition's segment stays open before a new one is started, in "
     "milliseconds."},
    {"streamhouse.durability", SH_CFG_TYPE_STRING, {NULL}, NULL, "wal", false,
     "When acks=1/all produce requests are acknowledged: \"wal\" after the local "
     "write-ahead log fsync (Kafka-like latency), \"object\" after the segment object is "
     "stored and committed (no local state needed to recover)."},
    {"unclean.leader.election.enable", SH_CFG_TYPE_BOOLEAN, {NULL},
     "unclean.leader.election.enable", "false", true,
     "Accepted for compatibility (true or false) and has no effect: there are no "
     "out-of-sync replicas to elect."},
};

const size_t sh_topic_cfg_nkeys = sizeof(sh_topic_cfg_keys) / sizeof(sh_topic_cfg_keys[0]);

const sh_topic_cfg_key_t *sh_topic_cfg_key_find(const char *name)
{
    for (size_t i = 0; i < sh_topic_cfg_nkeys; i++)
        if (strcmp(sh_topic_cfg_keys[i].name, name) == 0)
            return &sh_topic_cfg_keys[i];
    return NULL;
}

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

/* Kafka accepts booleans case-insensitively. */
static bool sh_topic_cfg_bool(const char *v)
{
    return strcasecmp(v, "true") == 0 || strcasecmp(v, "false") == 0;
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
        else if (!sh_topic_cfg_long(value, 14, &n) || n > INT32_MAX)
            goto bad_number;
        else
            cfg->segment_bytes = n;
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
    } else if (strcmp(key, "compression.type") == 0) {
        if (value && strcmp(value, "producer") != 0) {
            snprintf(why, whylen,
                     "compression.type \"%s\" is not supported: only \"producer\" is served "
                     "(batches are stored as the producer compressed them)",
                     value);
            return SH_KERR_INVALID_CONFIG;
        }
    } else if (strcmp(key, "min.insync.replicas") == 0) {
        if (value && (!sh_topic_cfg_long(value, 1, &n) || n > INT32_MAX))
            goto bad_number;
    } else if (strcmp(key, "unclean.leader.election.enable") == 0) {
        if (value && !sh_topic_cfg_bool(value)) {
            snprintf(why, whylen, "invalid value \"%s\" for \"%s\": expected true or false",
                     value, key);
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

sh_err_t sh_topic_cfg_validate(const sh_config_t *broker, const sh_meta_config_t *cfgs,
                               size_t n, sh_topic_cfg_t *out, char *why, size_t whylen)
{
    sh_topic_cfg_t tmp;
    sh_topic_cfg_defaults(&tmp, broker);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfgs[i].key, cfgs[j].key) == 0) {
                snprintf(why, whylen, "configuration \"%s\" is given more than once",
                         cfgs[i].key);
                return SH_KERR_INVALID_CONFIG;
            }
        sh_err_t err = sh_topic_cfg_apply(&tmp, broker, cfgs[i].key, cfgs[i].value, why, whylen);
        if (err != SH_OK)
            return err;
    }
    if (out)
        *out = tmp;
    return SH_OK;
}

/* Is any of k's broker keys set by the operator? */
static bool broker_key_set(const sh_config_t *broker, const sh_topic_cfg_key_t *k)
{
    for (int i = 0; k->broker_keys[i]; i++) {
        int id = sh_config_key_find(k->broker_keys[i]);
        if (id >= 0 && broker->source[id] != SH_CONFIG_SRC_DEFAULT)
            return true;
    }
    return false;
}

int8_t sh_topic_cfg_default_str(const sh_config_t *broker, const sh_topic_cfg_key_t *k,
                                char *buf, size_t n)
{
    sh_topic_cfg_t def;
    sh_topic_cfg_defaults(&def, broker);
    if (strcmp(k->name, "retention.ms") == 0)
        snprintf(buf, n, "%lld", (long long)def.retention_ms);
    else if (strcmp(k->name, "retention.bytes") == 0)
        snprintf(buf, n, "%lld", (long long)def.retention_bytes);
    else if (strcmp(k->name, "segment.bytes") == 0)
        snprintf(buf, n, "%lld", (long long)def.segment_bytes);
    else if (strcmp(k->name, "max.message.bytes") == 0)
        snprintf(buf, n, "%d", def.max_message_bytes);
    else
        snprintf(buf, n, "%s", k->default_value ? k->default_value : "");
    return broker_key_set(broker, k) ? SH_CFG_SOURCE_STATIC_BROKER : SH_CFG_SOURCE_DEFAULT;
}

static const char *override_find(const sh_meta_config_t *ovr, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ovr[i].key, key) == 0)
            return ovr[i].value;
    return NULL;
}

void sh_topic_cfg_describe(const sh_config_t *broker, const sh_meta_config_t *ovr, size_t n,
                           const sh_topic_cfg_key_t *k, sh_topic_cfg_entry_t *out)
{
    memset(out, 0, sizeof(*out));
    out->key = k;
    const char *o = override_find(ovr, n, k->name);
    int8_t def_source = sh_topic_cfg_default_str(broker, k, out->buf, sizeof(out->buf));
    if (o) {
        out->value = o;
        out->source = SH_CFG_SOURCE_TOPIC;
        sh_topic_cfg_synonym_t *s = &out->synonyms[out->nsynonyms++];
        s->name = k->name;
        s->value = o;
        s->source = SH_CFG_SOURCE_TOPIC;
    } else {
        out->value = out->buf;
        out->source = def_source;
    }
    out->is_default = out->source == SH_CFG_SOURCE_DEFAULT;

    /* broker keys the operator set, most specific first */
    for (int i = 0; k->broker_keys[i]; i++) {
        int id = sh_config_key_find(k->broker_keys[i]);
        if (id < 0 || broker->source[id] == SH_CONFIG_SRC_DEFAULT)
            continue;
        sh_topic_cfg_synonym_t *s = &out->synonyms[out->nsynonyms++];
        s->name = sh_config_keys[id].name;
        sh_config_value_str(broker, id, s->buf, sizeof(s->buf));
        s->value = s->buf;
        s->source = SH_CFG_SOURCE_STATIC_BROKER;
    }
    /* then the built-in default, under the broker key Kafka names */
    const char *dname = k->broker_keys[0] ? k->broker_keys[0] : k->default_key;
    if (dname) {
        sh_topic_cfg_synonym_t *s = &out->synonyms[out->nsynonyms++];
        s->name = dname;
        int id = k->broker_keys[0] ? sh_config_key_find(dname) : -1;
        snprintf(s->buf, sizeof(s->buf), "%s",
                 id >= 0 ? sh_config_keys[id].def : k->default_value);
        s->value = s->buf;
        s->source = SH_CFG_SOURCE_DEFAULT;
    }
}

/* One item of a comma-separated list, trimmed: [*b, *e). */
static const char *list_next(const char *p, const char **b, const char **e)
{
    while (*p == ' ' || *p == ',')
        p++;
    if (!*p)
        return NULL;
    *b = p;
    while (*p && *p != ',')
        p++;
    *e = p;
    while (*e > *b && (*e)[-1] == ' ')
        (*e)--;
    return p;
}

static bool list_has(const char *list, const char *b, const char *e)
{
    const char *ib, *ie, *p = list;
    while (p && (p = list_next(p, &ib, &ie)))
        if (ie - ib == e - b && memcmp(ib, b, (size_t)(e - b)) == 0)
            return true;
    return false;
}

static bool list_add(char *out, size_t n, size_t *len, const char *b, const char *e)
{
    size_t il = (size_t)(e - b);
    size_t need = *len + (*len ? 1 : 0) + il + 1;
    if (need > n)
        return false;
    if (*len)
        out[(*len)++] = ',';
    memcpy(out + *len, b, il);
    *len += il;
    out[*len] = '\0';
    return true;
}

sh_err_t sh_topic_cfg_list_edit(const char *current, const char *items, bool append, char *out,
                                size_t n)
{
    const char *b, *e, *p;
    size_t len = 0;
    if (n == 0)
        return SH_E_INVAL;
    out[0] = '\0';
    for (p = current ? current : ""; (p = list_next(p, &b, &e));) {
        if (!append && list_has(items, b, e))
            continue;
        if (!list_has(out, b, e) && !list_add(out, n, &len, b, e))
            return SH_E_INVAL;
    }
    if (append)
        for (p = items ? items : ""; (p = list_next(p, &b, &e));)
            if (!list_has(out, b, e) && !list_add(out, n, &len, b, e))
                return SH_E_INVAL;
    return SH_OK;
}
