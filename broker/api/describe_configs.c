/*
 * describe_configs.c - DescribeConfigs (key 32), versions 0-4.
 *
 * Versions: Kafka 4 serves 1-4; v0 differs only in reporting is_default
 * instead of config_source and having no synonyms, which is served too.
 * Clients send: librdkafka v1, kafkajs and kafka-python v2, Java v4.
 *
 * Behaviour, per resource:
 *  - TOPIC (2): every topic-level key the broker knows (sh_topic_cfg_keys:
 *    cleanup.policy, compression.type, max.message.bytes,
 *    message.timestamp.type, min.insync.replicas, retention.bytes,
 *    retention.ms, segment.bytes, segment.ms, streamhouse.durability,
 *    unclean.leader.election.enable), or only those named in
 *    configuration_keys (unknown names are left out, as Kafka does). A
 *    topic override has source DYNAMIC_TOPIC_CONFIG (1); otherwise the value
 *    is the broker's default, with source STATIC_BROKER_CONFIG (4) when the
 *    operator set the broker key it comes from, else DEFAULT_CONFIG (5).
 *    Synonyms (v1+, when asked): the override, the broker keys the operator
 *    set, then the built-in default. Topic keys are not read-only and never
 *    sensitive. An illegal name gets INVALID_TOPIC_EXCEPTION, an unknown
 *    topic UNKNOWN_TOPIC_OR_PARTITION.
 *  - BROKER (4) named by this broker's node id: every key of the broker's
 *    config table, read-only (no dynamic broker configuration), source 4
 *    when set in the file or by --override, else 5; a URL holding a
 *    password is sensitive and its value null. An empty name (the
 *    cluster-wide dynamic defaults) has no entries; another broker id is
 *    INVALID_REQUEST, as in Kafka.
 *  - BROKER_LOGGER (8) of this broker: no entries (log levels are not
 *    exposed); anything else: INVALID_REQUEST.
 * v3+: config_type (Kafka's ConfigType) and, when asked, documentation.
 *
 * Kafka differences: no dynamic broker configs, so source 2/3 never
 * appear; GROUP and CLIENT_METRICS resources are not served
 * (INVALID_REQUEST); no throttling.
 *
 * Thread: loop thread, synchronous (answers from the registry and the
 * config table). Memory: request arena.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_registry.h"
#include "broker/sh_request.h"
#include "broker/sh_topic_config.h"
#include "common/sh_log.h"
#include "protocol/sh_proto.h"

typedef sh_describe_configs_request_describe_configs_resource_t req_res_t;
typedef sh_describe_configs_response_describe_configs_result_t result_t;
typedef sh_describe_configs_response_describe_configs_resource_result_t entry_t;
typedef sh_describe_configs_response_describe_configs_synonym_t syn_t;

static sh_slice_t msgf(sh_request_t *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static sh_slice_t msgf(sh_request_t *req, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return SH_SLICE_NULL;
    if ((size_t)n >= sizeof(buf))
        n = sizeof(buf) - 1;
    char *s = sh_arena_strndup(&req->arena, buf, (size_t)n);
    return s ? (sh_slice_t){(const uint8_t *)s, (size_t)n} : SH_SLICE_NULL;
}

static sh_slice_t arena_str(sh_request_t *req, const char *s)
{
    if (!s)
        return SH_SLICE_NULL;
    char *d = sh_arena_strndup(&req->arena, s, strlen(s));
    return d ? sh_slice_str(d) : SH_SLICE_NULL;
}

/* Was `name` asked for? A null key list asks for everything. */
static bool wanted(const req_res_t *rr, const char *name)
{
    if (rr->configuration_keys_count < 0) /* null: everything */
        return true;
    for (int32_t i = 0; i < rr->configuration_keys_count; i++)
        if (sh_slice_eq_str(rr->configuration_keys[i], name))
            return true;
    return false;
}

static bool want_docs(const sh_request_t *req, const sh_describe_configs_request_t *m)
{
    return req->api_version >= 3 && m->include_documentation;
}

static bool want_synonyms(const sh_request_t *req, const sh_describe_configs_request_t *m)
{
    return req->api_version >= 1 && m->include_synonyms;
}

/* One topic's entries; false on arena exhaustion. */
static bool describe_topic(sh_broker_t *b, sh_request_t *req,
                           const sh_describe_configs_request_t *m, const req_res_t *rr,
                           result_t *res)
{
    if (!sh_topics_name_is_legal(rr->resource_name)) {
        res->error_code = SH_KERR_INVALID_TOPIC_EXCEPTION;
        res->error_message = msgf(req, "Topic name \"%s\" is illegal",
                                  sh_request_printable(req, rr->resource_name, 249));
        return true;
    }
    sh_rtopic_t *t = sh_registry_find(b->registry, rr->resource_name);
    if (!t) {
        res->error_code = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
        res->error_message = msgf(req, "The topic '%s' does not exist.",
                                  sh_request_printable(req, rr->resource_name, 249));
        return true;
    }
    entry_t *out = sh_arena_calloc(&req->arena, sh_topic_cfg_nkeys, sizeof(*out));
    if (!out)
        return false;
    int32_t n = 0;
    for (size_t i = 0; i < sh_topic_cfg_nkeys; i++) {
        const sh_topic_cfg_key_t *k = &sh_topic_cfg_keys[i];
        if (!wanted(rr, k->name))
            continue;
        sh_topic_cfg_entry_t e;
        sh_topic_cfg_describe(b->cfg, t->overrides, t->noverrides, k, &e);
        entry_t *o = &out[n++];
        o->name = sh_slice_str(k->name);
        o->value = arena_str(req, e.value);
        if (!o->value.ptr)
            return false;
        o->read_only = false;
        o->is_default = e.is_default;
        o->config_source = e.source;
        o->is_sensitive = false;
        o->config_type = k->type;
        o->documentation = want_docs(req, m) ? sh_slice_str(k->doc) : SH_SLICE_NULL;
        o->synonyms = NULL;
        o->synonyms_count = 0;
        if (want_synonyms(req, m) && e.nsynonyms) {
            syn_t *sy = sh_arena_calloc(&req->arena, e.nsynonyms, sizeof(*sy));
            if (!sy)
                return false;
            for (size_t s = 0; s < e.nsynonyms; s++) {
                sy[s].name = sh_slice_str(e.synonyms[s].name);
                sy[s].value = arena_str(req, e.synonyms[s].value);
                sy[s].source = e.synonyms[s].source;
                if (!sy[s].value.ptr)
                    return false;
            }
            o->synonyms = sy;
            o->synonyms_count = (int32_t)e.nsynonyms;
        }
    }
    res->configs = out;
    res->configs_count = n;
    return true;
}

static int8_t broker_key_type(sh_config_type_t t)
{
    switch (t) {
    case SH_CONFIG_INT:
        return SH_CFG_TYPE_INT;
    case SH_CONFIG_LONG:
        return SH_CFG_TYPE_LONG;
    case SH_CONFIG_BOOL:
        return SH_CFG_TYPE_BOOLEAN;
    default:
        return SH_CFG_TYPE_STRING;
    }
}

/* Is name this broker's id in decimal (Kafka compares the parsed int)? */
static bool is_our_id(sh_slice_t name, int32_t node_id)
{
    char buf[16], *end;
    if (!name.ptr || name.len == 0 || name.len >= sizeof(buf))
        return false;
    memcpy(buf, name.ptr, name.len);
    buf[name.len] = '\0';
    long v = strtol(buf, &end, 10);
    return *end == '\0' && v == node_id;
}

/* Every key of the broker's config table; false on arena exhaustion. */
static bool describe_broker(sh_broker_t *b, sh_request_t *req,
                            const sh_describe_configs_request_t *m, const req_res_t *rr,
                            result_t *res)
{
    const sh_config_t *cfg = b->cfg;
    entry_t *out = sh_arena_calloc(&req->arena, SH_CONFIG_NKEYS, sizeof(*out));
    if (!out)
        return false;
    int32_t n = 0;
    char buf[4096];
    for (int i = 0; i < SH_CONFIG_NKEYS; i++) {
        const sh_config_key_t *k = &sh_config_keys[i];
        if (!wanted(rr, k->name))
            continue;
        entry_t *o = &out[n++];
        bool set = cfg->source[i] != SH_CONFIG_SRC_DEFAULT;
        sh_config_value_str(cfg, i, buf, sizeof(buf));
        /* a database or bucket URL may carry a password */
        bool sensitive = sh_config_key_sensitive(i) || (strstr(k->name, ".url") && strchr(buf, '@'));
        o->name = sh_slice_str(k->name);
        o->value = sensitive ? SH_SLICE_NULL : arena_str(req, buf);
        if (!sensitive && !o->value.ptr)
            return false;
        o->read_only = true;
        o->is_default = !set;
        o->config_source = set ? SH_CFG_SOURCE_STATIC_BROKER : SH_CFG_SOURCE_DEFAULT;
        o->is_sensitive = sensitive;
        o->config_type = broker_key_type(k->type);
        o->documentation = want_docs(req, m) ? sh_slice_str(k->help) : SH_SLICE_NULL;
        if (want_synonyms(req, m)) {
            syn_t *sy = sh_arena_calloc(&req->arena, 2, sizeof(*sy));
            if (!sy)
                return false;
            int ns = 0;
            sy[ns].name = o->name;
            sy[ns].value = o->value;
            sy[ns++].source = o->config_source;
            if (set && !sensitive) {
                sy[ns].name = o->name;
                sy[ns].value = sh_slice_str(k->def);
                sy[ns++].source = SH_CFG_SOURCE_DEFAULT;
            }
            o->synonyms = sy;
            o->synonyms_count = ns;
        }
    }
    res->configs = out;
    res->configs_count = n;
    return true;
}

void sh_api_describe_configs_handle(sh_broker_t *b, sh_request_t *req)
{
    const sh_describe_configs_request_t *m = req->msg;
    sh_describe_configs_response_t resp;
    sh_describe_configs_response_init(&resp);
    resp.throttle_time_ms = 0;
    int32_t n = m->resources_count > 0 ? m->resources_count : 0;
    if (n) {
        resp.results = sh_arena_calloc(&req->arena, (size_t)n, sizeof(result_t));
        if (!resp.results)
            goto nomem;
    }
    resp.results_count = n;
    for (int32_t i = 0; i < n; i++) {
        const req_res_t *rr = &m->resources[i];
        result_t *res = &resp.results[i];
        res->resource_type = rr->resource_type;
        res->resource_name = rr->resource_name;
        res->error_code = 0;
        res->error_message = SH_SLICE_NULL;
        res->configs = NULL;
        res->configs_count = 0;
        bool ok = true;
        switch (rr->resource_type) {
        case SH_CFG_RESOURCE_TOPIC:
            ok = describe_topic(b, req, m, rr, res);
            break;
        case SH_CFG_RESOURCE_BROKER:
            if (rr->resource_name.len == 0)
                break; /* no cluster-wide dynamic defaults */
            if (!is_our_id(rr->resource_name, b->node_id)) {
                res->error_code = SH_KERR_INVALID_REQUEST;
                res->error_message =
                    msgf(req, "Unexpected broker id, expected %d or empty string, but "
                              "received %s", b->node_id,
                         sh_request_printable(req, rr->resource_name, 64));
                break;
            }
            ok = describe_broker(b, req, m, rr, res);
            break;
        case SH_CFG_RESOURCE_BROKER_LOGGER:
            if (!is_our_id(rr->resource_name, b->node_id)) {
                res->error_code = SH_KERR_INVALID_REQUEST;
                res->error_message = msgf(req, "Unexpected broker id, expected %d, but "
                                               "received %s", b->node_id,
                                          sh_request_printable(req, rr->resource_name, 64));
            }
            break;
        default:
            res->error_code = SH_KERR_INVALID_REQUEST;
            res->error_message = msgf(req, "Resource type %d is not supported",
                                      rr->resource_type);
            break;
        }
        if (!ok)
            goto nomem;
    }
    sh_request_respond(req, &resp);
    return;
nomem:
    sh_request_fail(req, "out of memory");
}
