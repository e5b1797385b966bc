/*
 * alter_configs.c - AlterConfigs (key 33), versions 0-2: the legacy call
 * that replaces a resource's whole set of overrides.
 *
 * Clients send: librdkafka v0, kafkajs and kafka-python v1, Java v2 (the
 * Java admin's alterConfigs is deprecated in favour of
 * IncrementalAlterConfigs).
 *
 * Behaviour, per resource:
 *  - the same resource twice in a request: INVALID_REQUEST for each;
 *  - TOPIC (2): illegal name INVALID_TOPIC_EXCEPTION, unknown topic
 *    UNKNOWN_TOPIC_OR_PARTITION. The entries become the topic's complete
 *    set of overrides (keys not listed go back to the broker default): a
 *    null value or a key given twice is INVALID_REQUEST; every key and
 *    value is checked by sh_topic_config (INVALID_CONFIG with a message for
 *    unknown keys, bad values, cleanup.policy=compact). Stored in one
 *    metadata transaction, then the registry re-resolves the topic's
 *    configuration and tells the data path (config_changed).
 *  - BROKER (4), this broker or "" (cluster default): an empty set is
 *    accepted (there are no dynamic broker configs to remove); any entry
 *    is INVALID_REQUEST: broker settings come from server.properties and
 *    change with a restart. Another broker id: INVALID_REQUEST.
 *  - anything else (BROKER_LOGGER included, as in Kafka): INVALID_REQUEST.
 *  - validate_only: the checks only.
 *
 * Kafka differences: no dynamic broker configuration; no AlterConfigPolicy;
 * no throttling.
 *
 * Thread: loop thread; changes complete through the registry's metadata
 * ops. Memory: request arena.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api/sh_api.h"
#include "broker/api/sh_api_admin.h"
#include "broker/sh_broker.h"
#include "broker/sh_registry.h"
#include "broker/sh_request.h"
#include "broker/sh_topic_config.h"
#include "common/sh_log.h"
#include "protocol/sh_proto.h"

typedef sh_alter_configs_request_alter_configs_resource_t req_res_t;
typedef sh_alter_configs_response_alter_configs_resource_response_t result_t;

typedef struct {
    sh_broker_t *b;
    sh_request_t *req;
    sh_alter_configs_response_t resp;
    int pending;
    bool started;
} ctx_t;

typedef struct {
    ctx_t *ctx;
    result_t *res;
} slot_t;

static void fail_res(result_t *res, sh_err_t err, sh_slice_t msg)
{
    res->error_code = sh_err_wire(err);
    res->error_message = msg;
}

static void maybe_respond(ctx_t *c)
{
    if (c->started && c->pending == 0)
        sh_request_respond(c->req, &c->resp);
}

static void altered(void *arg, sh_err_t err, sh_rtopic_t *t)
{
    slot_t *s = arg;
    ctx_t *c = s->ctx;
    (void)t;
    if (err == SH_KERR_UNKNOWN_TOPIC_OR_PARTITION)
        fail_res(s->res, err, sh_api_msgf(c->req, "The topic was deleted meanwhile."));
    else if (err != SH_OK)
        fail_res(s->res, err, sh_api_msgf(c->req, "could not store the configuration: %s",
                                          sh_err_str(err)));
    c->pending--;
    maybe_respond(c);
}

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

static bool alter_topic(ctx_t *c, const sh_alter_configs_request_t *m, const req_res_t *rr,
                        result_t *res)
{
    sh_request_t *req = c->req;
    sh_arena_t *a = &req->arena;
    char why[256];
    if (!sh_topics_name_is_legal(rr->resource_name)) {
        fail_res(res, SH_KERR_INVALID_TOPIC_EXCEPTION,
                 sh_api_msgf(req, "Topic name \"%s\" is illegal",
                             sh_request_printable(req, rr->resource_name, 249)));
        return true;
    }
    sh_rtopic_t *t = sh_registry_find(c->b->registry, rr->resource_name);
    if (!t) {
        fail_res(res, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION,
                 sh_api_msgf(req, "The topic '%s' does not exist.",
                             sh_request_printable(req, rr->resource_name, 249)));
        return true;
    }
    size_t n = rr->configs_count > 0 ? (size_t)rr->configs_count : 0;
    sh_meta_config_t *cfgs = n ? sh_arena_calloc(a, n, sizeof(*cfgs)) : NULL;
    if (n && !cfgs)
        return false;
    for (size_t i = 0; i < n; i++) {
        const sh_alter_configs_request_alterable_config_t *ac = &rr->configs[i];
        if (!ac->value.ptr) {
            fail_res(res, SH_KERR_INVALID_REQUEST,
                     sh_api_msgf(req, "Null value not supported for : %s",
                                 sh_request_printable(req, ac->name, 128)));
            return true;
        }
        cfgs[i].key = sh_arena_strndup(a, (const char *)ac->name.ptr, ac->name.len);
        cfgs[i].value = sh_arena_strndup(a, (const char *)ac->value.ptr, ac->value.len);
        if (!cfgs[i].key || !cfgs[i].value)
            return false;
        if (strlen(cfgs[i].key) != ac->name.len || strlen(cfgs[i].value) != ac->value.len) {
            fail_res(res, SH_KERR_INVALID_CONFIG,
                     sh_api_msgf(req, "configuration names and values may not contain NUL "
                               "characters"));
            return true;
        }
    }
    if (n) {
        sh_slice_t *names = sh_arena_calloc(a, n, sizeof(*names));
        bool *dup = sh_arena_calloc(a, n, sizeof(*dup));
        if (!names || !dup)
            return false;
        for (size_t i = 0; i < n; i++)
            names[i] = rr->configs[i].name;
        if (sh_registry_names_dups(a, names, n, dup) != SH_OK)
            return false;
        for (size_t i = 0; i < n; i++)
            if (dup[i]) {
                fail_res(res, SH_KERR_INVALID_REQUEST,
                         sh_api_msgf(req, "Error due to duplicate config keys: %s", cfgs[i].key));
                return true;
            }
    }
    sh_err_t err = sh_topic_cfg_validate(c->b->cfg, cfgs, n, NULL, why, sizeof(why));
    if (err != SH_OK) {
        fail_res(res, err, sh_api_msgf(req, "%s", why));
        return true;
    }
    if (m->validate_only)
        return true;
    slot_t *s = sh_arena_alloc(a, sizeof(*s));
    if (!s)
        return false;
    s->ctx = c;
    s->res = res;
    err = sh_registry_configs_alter(c->b->registry, t, cfgs, n, true, altered, s);
    if (err != SH_OK)
        fail_res(res, err,
                 sh_api_msgf(req, "could not store the configuration: %s", sh_err_str(err)));
    else
        c->pending++;
    return true;
}

void sh_api_alter_configs_handle(sh_broker_t *b, sh_request_t *req)
{
    const sh_alter_configs_request_t *m = req->msg;
    ctx_t *c = sh_arena_calloc(&req->arena, 1, sizeof(*c));
    if (!c)
        goto nomem;
    c->b = b;
    c->req = req;
    sh_alter_configs_response_init(&c->resp);
    c->resp.throttle_time_ms = 0;
    int32_t n = m->resources_count > 0 ? m->resources_count : 0;
    sh_slice_t *keys = NULL;
    bool *dup = NULL;
    if (n) {
        c->resp.responses = sh_arena_calloc(&req->arena, (size_t)n, sizeof(result_t));
        keys = sh_arena_calloc(&req->arena, (size_t)n, sizeof(*keys));
        dup = sh_arena_calloc(&req->arena, (size_t)n, sizeof(*dup));
        if (!c->resp.responses || !keys || !dup)
            goto nomem;
    }
    c->resp.responses_count = n;
    /* a resource is its type and name: compare "<type byte><name>" */
    for (int32_t i = 0; i < n; i++) {
        const req_res_t *rr = &m->resources[i];
        uint8_t *k = sh_arena_alloc(&req->arena, rr->resource_name.len + 1);
        if (!k)
            goto nomem;
        k[0] = (uint8_t)rr->resource_type;
        if (rr->resource_name.len)
            memcpy(k + 1, rr->resource_name.ptr, rr->resource_name.len);
        keys[i] = (sh_slice_t){k, rr->resource_name.len + 1};
    }
    if (sh_registry_names_dups(&req->arena, keys, (size_t)n, dup) != SH_OK)
        goto nomem;

    for (int32_t i = 0; i < n; i++) {
        const req_res_t *rr = &m->resources[i];
        result_t *res = &c->resp.responses[i];
        res->resource_type = rr->resource_type;
        res->resource_name = rr->resource_name;
        if (dup[i]) {
            fail_res(res, SH_KERR_INVALID_REQUEST,
                     sh_api_msgf(req, "Duplicate resource in request."));
            continue;
        }
        switch (rr->resource_type) {
        case SH_CFG_RESOURCE_TOPIC:
            if (!alter_topic(c, m, rr, res))
                fail_res(res, SH_E_NOMEM, SH_SLICE_NULL);
            break;
        case SH_CFG_RESOURCE_BROKER:
            if (rr->resource_name.len && !is_our_id(rr->resource_name, b->node_id))
                fail_res(res, SH_KERR_INVALID_REQUEST,
                         sh_api_msgf(req, "Unexpected broker id, expected %d or empty string, but "
                                   "received %s", b->node_id,
                                     sh_request_printable(req, rr->resource_name, 64)));
            else if (rr->configs_count > 0)
                fail_res(res, SH_KERR_INVALID_REQUEST,
                         sh_api_msgf(req, "Dynamic broker configuration is not supported: set "
                                          "broker keys in server.properties (or --override) "
                                          "and restart"));
            break;
        default:
            fail_res(res, SH_KERR_INVALID_REQUEST,
                     sh_api_msgf(req, "AlterConfigs does not support resource type %d",
                                 rr->resource_type));
            break;
        }
    }
    c->started = true;
    maybe_respond(c);
    return;
nomem:
    sh_request_fail(req, "out of memory");
}
