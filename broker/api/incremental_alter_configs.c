/*
 * incremental_alter_configs.c - IncrementalAlterConfigs (key 44),
 * versions 0-1: change some keys of a resource, leave the rest.
 *
 * Clients: the Java admin's incrementalAlterConfigs (v1), librdkafka >= 2.2
 * and confluent-kafka's incremental_alter_configs (v1), kafka-cli tools.
 *
 * Behaviour, per resource:
 *  - the same resource twice in a request: INVALID_REQUEST for each;
 *  - TOPIC (2): illegal name INVALID_TOPIC_EXCEPTION, unknown topic
 *    UNKNOWN_TOPIC_OR_PARTITION. Each entry is an operation on one key:
 *    SET (0) stores the value (null: INVALID_REQUEST); DELETE (1) removes
 *    the override (back to the broker default); APPEND (2) and SUBTRACT (3)
 *    add or remove items of a list-typed key (only cleanup.policy is one;
 *    on any other key INVALID_CONFIG, as in Kafka), starting from the
 *    current value or the default. Unknown operation: INVALID_REQUEST; a
 *    key given twice: INVALID_REQUEST. The topic's resulting overrides are
 *    checked as a whole by sh_topic_config (INVALID_CONFIG with a message:
 *    unknown keys, bad values, cleanup.policy=compact), then only the
 *    touched keys are stored in one metadata transaction, the registry
 *    re-resolves the configuration and the data path hears of it
 *    (config_changed).
 *  - BROKER (4), this broker or "" (cluster default): an empty list is
 *    accepted; any operation is INVALID_REQUEST (broker settings come from
 *    server.properties and change with a restart). Another broker id:
 *    INVALID_REQUEST.
 *  - BROKER_LOGGER (8): INVALID_REQUEST (log levels do not change at run
 *    time; streamhouse.log.level is a broker setting). Anything else:
 *    INVALID_REQUEST.
 *  - validate_only: the checks only.
 *
 * Kafka differences: no dynamic broker or logger configuration; no
 * AlterConfigPolicy; no throttling.
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

typedef sh_incremental_alter_configs_request_alter_configs_resource_t req_res_t;
typedef sh_incremental_alter_configs_request_alterable_config_t req_cfg_t;
typedef sh_incremental_alter_configs_response_alter_configs_resource_response_t result_t;

/* AlterConfigOp.OpType */
enum { OP_SET = 0, OP_DELETE = 1, OP_APPEND = 2, OP_SUBTRACT = 3 };

typedef struct {
    sh_broker_t *b;
    sh_request_t *req;
    sh_incremental_alter_configs_response_t resp;
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

/* The current value of key for t: its override, else NULL (default). */
static const char *override_of(const sh_rtopic_t *t, const char *key)
{
    for (size_t i = 0; i < t->noverrides; i++)
        if (strcmp(t->overrides[i].key, key) == 0)
            return t->overrides[i].value;
    return NULL;
}

static bool alter_topic(ctx_t *c, const sh_incremental_alter_configs_request_t *m,
                        const req_res_t *rr, result_t *res)
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
                         sh_api_msgf(req, "Error due to duplicate config keys: %s",
                                     sh_request_printable(req, rr->configs[i].name, 128)));
                return true;
            }
    }

    /* changes[] = the touched keys with their final values (NULL: delete) */
    sh_meta_config_t *changes = n ? sh_arena_calloc(a, n, sizeof(*changes)) : NULL;
    if (n && !changes)
        return false;
    for (size_t i = 0; i < n; i++) {
        const req_cfg_t *rc = &rr->configs[i];
        char *key = sh_arena_strndup(a, (const char *)rc->name.ptr, rc->name.len);
        char *value = rc->value.ptr
                          ? sh_arena_strndup(a, (const char *)rc->value.ptr, rc->value.len)
                          : NULL;
        if (!key || (rc->value.ptr && !value))
            return false;
        if (strlen(key) != rc->name.len || (value && strlen(value) != rc->value.len)) {
            fail_res(res, SH_KERR_INVALID_CONFIG,
                     sh_api_msgf(req, "configuration names and values may not contain NUL "
                               "characters"));
            return true;
        }
        const sh_topic_cfg_key_t *k = sh_topic_cfg_key_find(key);
        if (!k) {
            fail_res(res, SH_KERR_INVALID_CONFIG,
                     sh_api_msgf(req, "unknown topic configuration \"%s\"",
                                 sh_request_printable(req, rc->name, 128)));
            return true;
        }
        changes[i].key = key;
        switch (rc->config_operation) {
        case OP_SET:
            if (!value) {
                fail_res(res, SH_KERR_INVALID_REQUEST,
                         sh_api_msgf(req, "Null value not supported for : %s", key));
                return true;
            }
            changes[i].value = value;
            break;
        case OP_DELETE:
            changes[i].value = NULL;
            break;
        case OP_APPEND:
        case OP_SUBTRACT: {
            if (k->type != SH_CFG_TYPE_LIST) {
                fail_res(res, SH_KERR_INVALID_CONFIG,
                         sh_api_msgf(req, "Config value %s is not allowed for config key: %s",
                                     rc->config_operation == OP_APPEND ? "append" : "subtract",
                                     key));
                return true;
            }
            char cur[SH_TOPIC_CFG_VALUE_MAX], out[SH_TOPIC_CFG_VALUE_MAX * 4];
            const char *base = override_of(t, key);
            if (!base) {
                sh_topic_cfg_default_str(c->b->cfg, k, cur, sizeof(cur));
                base = cur;
            }
            if (sh_topic_cfg_list_edit(base, value ? value : "",
                                       rc->config_operation == OP_APPEND, out,
                                       sizeof(out)) != SH_OK) {
                fail_res(res, SH_KERR_INVALID_CONFIG,
                         sh_api_msgf(req, "the new value of %s is too long", key));
                return true;
            }
            changes[i].value = sh_arena_strndup(a, out, strlen(out));
            if (!changes[i].value)
                return false;
            break;
        }
        default:
            fail_res(res, SH_KERR_INVALID_REQUEST,
                     sh_api_msgf(req, "Unknown config operation %d for %s", rc->config_operation,
                                 key));
            return true;
        }
    }

    /* The topic's overrides after the change, checked as a whole. Each key
     * appears at most once in changes (duplicates were refused above). */
    sh_meta_config_t *after = sh_arena_calloc(a, t->noverrides + n + 1, sizeof(*after));
    if (!after)
        return false;
    size_t na = 0;
    for (size_t i = 0; i < t->noverrides; i++) {
        bool touched = false;
        for (size_t j = 0; j < n && !touched; j++)
            touched = strcmp(changes[j].key, t->overrides[i].key) == 0;
        if (!touched)
            after[na++] = t->overrides[i];
    }
    for (size_t j = 0; j < n; j++)
        if (changes[j].value)
            after[na++] = changes[j];
    sh_err_t err = sh_topic_cfg_validate(c->b->cfg, after, na, NULL, why, sizeof(why));
    if (err != SH_OK) {
        fail_res(res, err, sh_api_msgf(req, "%s", why));
        return true;
    }
    if (m->validate_only || n == 0)
        return true;
    slot_t *s = sh_arena_alloc(a, sizeof(*s));
    if (!s)
        return false;
    s->ctx = c;
    s->res = res;
    err = sh_registry_configs_alter(c->b->registry, t, changes, n, false, altered, s);
    if (err != SH_OK)
        fail_res(res, err,
                 sh_api_msgf(req, "could not store the configuration: %s", sh_err_str(err)));
    else
        c->pending++;
    return true;
}

void sh_api_incremental_alter_configs_handle(sh_broker_t *b, sh_request_t *req)
{
    const sh_incremental_alter_configs_request_t *m = req->msg;
    ctx_t *c = sh_arena_calloc(&req->arena, 1, sizeof(*c));
    if (!c)
        goto nomem;
    c->b = b;
    c->req = req;
    sh_incremental_alter_configs_response_init(&c->resp);
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
        case SH_CFG_RESOURCE_BROKER_LOGGER:
            fail_res(res, SH_KERR_INVALID_REQUEST,
                     sh_api_msgf(req, "Log levels cannot be changed at run time: set "
                               "streamhouse.log.level and restart"));
            break;
        default:
            fail_res(res, SH_KERR_INVALID_REQUEST,
                     sh_api_msgf(req, "IncrementalAlterConfigs does not support resource type %d",
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
