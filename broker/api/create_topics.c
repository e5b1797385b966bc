/*
 * create_topics.c - CreateTopics (key 19), versions 0-7.
 *
 * Versions: Kafka 4 serves 2-7; 0 and 1 differ only in missing fields
 * (v0 has no validate_only, v0 no error_message), which the codec
 * handles, so they are served too. Clients send: librdkafka v4, kafkajs
 * and kafka-python v3, Java v7.
 *
 * Behaviour, per topic, in request order:
 *  - a name given more than once in the request: INVALID_REQUEST for each;
 *  - an illegal name (Kafka's rule: 1-249 of [a-zA-Z0-9._-], not "." or
 *    ".."): INVALID_TOPIC_EXCEPTION;
 *  - an existing topic (or one still being deleted): TOPIC_ALREADY_EXISTS;
 *  - num_partitions -1 takes num.partitions; 0 or below: INVALID_PARTITIONS;
 *    above 100000 (a safety bound per request): INVALID_PARTITIONS;
 *  - replication_factor -1 or any positive value is accepted and reported
 *    as 1: data has one durable copy (WAL, then object storage) and Metadata
 *    lists one replica. 0 or below: INVALID_REPLICATION_FACTOR;
 *  - manual assignments: refused with INVALID_REQUEST when num_partitions or
 *    replication_factor is also set (as Kafka); accepted when partitions
 *    0..n-1 are each assigned to this broker only, else
 *    INVALID_REPLICA_ASSIGNMENT;
 *  - configs: a null value is INVALID_REQUEST; every key and value is
 *    checked by sh_topic_config (unknown keys, bad values and
 *    cleanup.policy=compact get INVALID_CONFIG with a message);
 *  - validate_only: all of the above, nothing created.
 * Otherwise the topic, its partitions and configs are created in one
 * metadata transaction, this broker takes leadership of every partition
 * and the data path opens them; the response is sent when every topic of
 * the request is done. v1+ carry error_message; v5+ return num_partitions,
 * replication_factor and every topic config (value, source, read-only,
 * sensitive) like DescribeConfigs; v7 returns the topic id (zero for
 * validate_only).
 *
 * Kafka differences: timeout_ms is not used (creation completes or fails
 * within the request); replication factors above the number of brokers are
 * accepted (see above); no CreateTopicPolicy; no throttling
 * (throttle_time_ms 0, topic_config_error_code 0).
 *
 * Thread: loop thread; creations complete through the registry's metadata
 * ops. Memory: the response and the context live in the request arena,
 * which lives until the response is written.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "broker/api/sh_api.h"
#include "broker/api/sh_api_admin.h"
#include "broker/sh_broker.h"
#include "broker/sh_registry.h"
#include "broker/sh_request.h"
#include "broker/sh_topic_config.h"
#include "common/sh_log.h"
#include "protocol/sh_proto.h"

typedef sh_create_topics_request_creatable_topic_t req_topic_t;
typedef sh_create_topics_response_creatable_topic_result_t result_t;
typedef sh_create_topics_response_creatable_topic_configs_t result_cfg_t;

typedef struct {
    sh_broker_t *b;
    sh_request_t *req;
    sh_create_topics_response_t resp;
    int pending;             /* creations not yet completed */
    bool started;            /* every topic has been looked at */
    bool nomem;
} ctx_t;

typedef struct {
    ctx_t *ctx;
    result_t *res;
} slot_t;

static void fail_topic(result_t *res, sh_err_t err, sh_slice_t msg)
{
    res->error_code = sh_err_wire(err);
    res->error_message = msg;
}

/* v5+: what the topic was created with, every key as DescribeConfigs
 * would show it. */
static bool fill_configs(ctx_t *c, result_t *res, const sh_meta_config_t *ovr, size_t n)
{
    sh_arena_t *a = &c->req->arena;
    result_cfg_t *out = sh_arena_calloc(a, sh_topic_cfg_nkeys, sizeof(*out));
    if (!out)
        return false;
    for (size_t i = 0; i < sh_topic_cfg_nkeys; i++) {
        sh_topic_cfg_entry_t e;
        sh_topic_cfg_describe(c->b->cfg, ovr, n, &sh_topic_cfg_keys[i], &e);
        char *v = sh_arena_strndup(a, e.value, strlen(e.value));
        if (!v)
            return false;
        out[i].name = sh_slice_str(e.key->name);
        out[i].value = sh_slice_str(v);
        out[i].read_only = false;
        out[i].config_source = e.source;
        out[i].is_sensitive = false;
    }
    res->configs = out;
    res->configs_count = (int32_t)sh_topic_cfg_nkeys;
    return true;
}

static void maybe_respond(ctx_t *c)
{
    if (!c->started || c->pending > 0)
        return;
    if (c->nomem)
        sh_request_fail(c->req, "out of memory");
    else
        sh_request_respond(c->req, &c->resp);
}

static void created(void *arg, sh_err_t err, sh_rtopic_t *t)
{
    slot_t *s = arg;
    ctx_t *c = s->ctx;
    result_t *res = s->res;
    if (err == SH_OK && t) {
        res->topic_id = t->id;
        res->num_partitions = t->partition_count;
        res->replication_factor = 1;
        if (c->req->api_version >= 5 && !fill_configs(c, res, t->overrides, t->noverrides))
            c->nomem = true;
    } else if (err == SH_KERR_TOPIC_ALREADY_EXISTS) {
        fail_topic(res, err, sh_api_msgf(c->req, "Topic '%s' already exists.",
                                     sh_request_printable(c->req, res->name, 255)));
    } else {
        if (err == SH_OK)
            err = SH_E_IO;
        fail_topic(res, err, sh_api_msgf(c->req, "could not create topic: %s", sh_err_str(err)));
    }
    c->pending--;
    maybe_respond(c);
}

/* Kafka's messages for an illegal name. */
static sh_slice_t illegal_name_msg(sh_request_t *req, sh_slice_t name)
{
    if (!name.ptr || name.len == 0)
        return sh_api_msgf(req, "Topic name is illegal, it can't be empty");
    if (name.len > 249)
        return sh_api_msgf(req, "Topic name is illegal, it can't be longer than 249 characters");
    if ((name.len == 1 && name.ptr[0] == '.') ||
        (name.len == 2 && name.ptr[0] == '.' && name.ptr[1] == '.'))
        return sh_api_msgf(req, "Topic name cannot be \".\" or \"..\"");
    return sh_api_msgf(req,
                       "Topic name \"%s\" is illegal, it contains a character other than ASCII "
                       "alphanumerics, '.', '_' and '-'",
                       sh_request_printable(req, name, 249));
}

/* Manual assignments: partitions 0..n-1, each on this broker only.
 * Returns 0 and the count, or a Kafka error with a message. */
static sh_err_t check_assignments(ctx_t *c, const req_topic_t *rt, int32_t *count,
                                  sh_slice_t *msg)
{
    int32_t n = rt->assignments_count;
    for (int32_t i = 0; i < n; i++) {
        const sh_create_topics_request_creatable_replica_assignment_t *as = &rt->assignments[i];
        if (as->partition_index < 0 || as->partition_index >= n) {
            *msg = sh_api_msgf(c->req, "Partitions should be consecutive and start at 0; got "
                                "partition %d among %d assignments",
                               as->partition_index, n);
            return SH_KERR_INVALID_REPLICA_ASSIGNMENT;
        }
        for (int32_t j = 0; j < i; j++)
            if (rt->assignments[j].partition_index == as->partition_index) {
                *msg = sh_api_msgf(c->req, "Partition %d is assigned more than once",
                                   as->partition_index);
                return SH_KERR_INVALID_REPLICA_ASSIGNMENT;
            }
        if (as->broker_ids_count <= 0) {
            *msg = sh_api_msgf(c->req, "Partition %d has an empty replica assignment",
                               as->partition_index);
            return SH_KERR_INVALID_REPLICA_ASSIGNMENT;
        }
        for (int32_t k = 0; k < as->broker_ids_count; k++) {
            if (as->broker_ids[k] != c->b->node_id) {
                *msg = sh_api_msgf(c->req, "Broker %d is not a live broker: this cluster has one "
                                    "broker, %d, which holds every partition",
                                   as->broker_ids[k], c->b->node_id);
                return SH_KERR_INVALID_REPLICA_ASSIGNMENT;
            }
            if (k > 0) {
                *msg = sh_api_msgf(c->req, "Partition %d lists broker %d more than once",
                                   as->partition_index, as->broker_ids[k]);
                return SH_KERR_INVALID_REPLICA_ASSIGNMENT;
            }
        }
    }
    *count = n;
    return SH_OK;
}

/* Look at one topic; submit its creation unless it fails or only
 * validates. Returns false on arena exhaustion. */
static bool topic_start(ctx_t *c, const sh_create_topics_request_t *m, int32_t i, bool dup)
{
    sh_request_t *req = c->req;
    const sh_config_t *cfg = c->b->cfg;
    const req_topic_t *rt = &m->topics[i];
    result_t *res = &c->resp.topics[i];
    sh_arena_t *a = &req->arena;
    sh_slice_t msg = SH_SLICE_NULL;
    char why[256];

    res->name = rt->name;
    res->num_partitions = -1;
    res->replication_factor = -1;
    res->configs = NULL;
    res->configs_count = -1;

    if (dup) {
        fail_topic(res, SH_KERR_INVALID_REQUEST,
                   sh_api_msgf(req, "Create topics request contains multiple entries for the topic "
                             "'%s'", sh_request_printable(req, rt->name, 249)));
        return true;
    }
    if (!sh_topics_name_is_legal(rt->name)) {
        fail_topic(res, SH_KERR_INVALID_TOPIC_EXCEPTION, illegal_name_msg(req, rt->name));
        return true;
    }
    if (sh_registry_find(c->b->registry, rt->name)) {
        fail_topic(res, SH_KERR_TOPIC_ALREADY_EXISTS,
                   sh_api_msgf(req, "Topic '%s' already exists.",
                               sh_request_printable(req, rt->name, 249)));
        return true;
    }

    int32_t partitions;
    if (rt->assignments_count > 0) {
        if (rt->num_partitions != -1 || rt->replication_factor != -1) {
            fail_topic(res, SH_KERR_INVALID_REQUEST,
                       sh_api_msgf(req, "Both numPartitions or replicationFactor and "
                                 "replicasAssignments were set. Both cannot be used at the "
                                 "same time."));
            return true;
        }
        sh_err_t err = check_assignments(c, rt, &partitions, &msg);
        if (err != SH_OK) {
            fail_topic(res, err, msg);
            return true;
        }
    } else {
        partitions = rt->num_partitions == -1 ? cfg->num_partitions : rt->num_partitions;
        if (partitions <= 0) {
            fail_topic(res, SH_KERR_INVALID_PARTITIONS,
                       sh_api_msgf(req, "Number of partitions was set to an invalid non-positive "
                                 "value."));
            return true;
        }
        if (partitions > SH_META_PARTITIONS_MAX) {
            fail_topic(res, SH_KERR_INVALID_PARTITIONS,
                       sh_api_msgf(req, "Number of partitions %d is above this broker's limit of "
                                 "%d per topic creation", partitions, SH_META_PARTITIONS_MAX));
            return true;
        }
        if (rt->replication_factor != -1 && rt->replication_factor <= 0) {
            fail_topic(res, SH_KERR_INVALID_REPLICATION_FACTOR,
                       sh_api_msgf(req, "Replication factor must be larger than 0, or -1 to use "
                                        "the default value."));
            return true;
        }
    }

    sh_meta_config_t *cfgs = NULL;
    size_t ncfgs = rt->configs_count > 0 ? (size_t)rt->configs_count : 0;
    if (ncfgs) {
        cfgs = sh_arena_calloc(a, ncfgs, sizeof(*cfgs));
        if (!cfgs)
            return false;
        for (size_t k = 0; k < ncfgs; k++) {
            const sh_create_topics_request_creatable_topic_config_t *rc = &rt->configs[k];
            cfgs[k].key = sh_arena_strndup(a, (const char *)rc->name.ptr, rc->name.len);
            if (!cfgs[k].key)
                return false;
            if (!rc->value.ptr) {
                fail_topic(res, SH_KERR_INVALID_REQUEST,
                           sh_api_msgf(req, "Null value not supported for topic configs: %s",
                                       sh_request_printable(req, rc->name, 128)));
                return true;
            }
            cfgs[k].value = sh_arena_strndup(a, (const char *)rc->value.ptr, rc->value.len);
            if (!cfgs[k].value)
                return false;
            /* a NUL inside a key or value would be cut short in the store */
            if (strlen(cfgs[k].key) != rc->name.len || strlen(cfgs[k].value) != rc->value.len) {
                fail_topic(res, SH_KERR_INVALID_CONFIG,
                           sh_api_msgf(req, "configuration names and values may not contain NUL "
                                     "characters"));
                return true;
            }
        }
    }
    sh_err_t err = sh_topic_cfg_validate(cfg, cfgs, ncfgs, NULL, why, sizeof(why));
    if (err != SH_OK) {
        fail_topic(res, err, sh_api_msgf(req, "%s", why));
        return true;
    }

    if (m->validate_only) {
        res->num_partitions = partitions;
        res->replication_factor = 1;
        if (req->api_version >= 5 && !fill_configs(c, res, cfgs, ncfgs))
            return false;
        return true;
    }

    slot_t *s = sh_arena_alloc(a, sizeof(*s));
    if (!s)
        return false;
    s->ctx = c;
    s->res = res;
    err = sh_registry_topic_create(c->b->registry, rt->name, partitions, cfgs, ncfgs, created, s);
    if (err != SH_OK)
        fail_topic(res, err, sh_api_msgf(req, "could not create topic: %s", sh_err_str(err)));
    else
        c->pending++;
    return true;
}

void sh_api_create_topics_handle(sh_broker_t *b, sh_request_t *req)
{
    const sh_create_topics_request_t *m = req->msg;
    ctx_t *c = sh_arena_calloc(&req->arena, 1, sizeof(*c));
    if (!c)
        goto nomem;
    c->b = b;
    c->req = req;
    sh_create_topics_response_init(&c->resp);
    c->resp.throttle_time_ms = 0;
    int32_t n = m->topics_count > 0 ? m->topics_count : 0;
    if (n) {
        c->resp.topics = sh_arena_calloc(&req->arena, (size_t)n, sizeof(result_t));
        if (!c->resp.topics)
            goto nomem;
    }
    c->resp.topics_count = n;
    sh_slice_t *names = n ? sh_arena_calloc(&req->arena, (size_t)n, sizeof(*names)) : NULL;
    bool *dup = n ? sh_arena_calloc(&req->arena, (size_t)n, sizeof(*dup)) : NULL;
    if (n && (!names || !dup))
        goto nomem;
    for (int32_t i = 0; i < n; i++)
        names[i] = m->topics[i].name;
    if (sh_registry_names_dups(&req->arena, names, (size_t)n, dup) != SH_OK)
        goto nomem;
    for (int32_t i = 0; i < n; i++)
        if (!topic_start(c, m, i, dup[i]))
            c->nomem = true;
    c->started = true;
    maybe_respond(c);
    return;
nomem:
    sh_request_fail(req, "out of memory");
}
