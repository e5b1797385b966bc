/*
 * create_partitions.c - CreatePartitions (key 37), versions 0-3.
 *
 * Clients send: librdkafka v0, kafkajs and kafka-python v1, Java v3.
 *
 * Behaviour, per topic:
 *  - a topic named more than once: INVALID_REQUEST for each;
 *  - unknown topic: UNKNOWN_TOPIC_OR_PARTITION;
 *  - count not above the current partition count: INVALID_PARTITIONS
 *    (partitions can only be added, as in Kafka); above 100000:
 *    INVALID_PARTITIONS;
 *  - assignments (optional): one per new partition, each naming only this
 *    broker, else INVALID_REPLICA_ASSIGNMENT;
 *  - validate_only: checks only.
 * Otherwise the new partitions are added in one metadata transaction, this
 * broker takes their leadership and the data path opens them; the answer
 * is sent when every topic of the request is done.
 *
 * Kafka differences: timeout_ms is not used; no throttling.
 *
 * Thread: loop thread; additions complete through the registry's metadata
 * ops. Memory: request arena.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "broker/api/sh_api.h"
#include "broker/api/sh_api_admin.h"
#include "broker/sh_broker.h"
#include "broker/sh_registry.h"
#include "broker/sh_request.h"
#include "common/sh_log.h"
#include "protocol/sh_proto.h"

typedef sh_create_partitions_request_create_partitions_topic_t req_topic_t;
typedef sh_create_partitions_response_create_partitions_topic_result_t result_t;

typedef struct {
    sh_broker_t *b;
    sh_request_t *req;
    sh_create_partitions_response_t resp;
    int pending;
    bool started;
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

static void maybe_respond(ctx_t *c)
{
    if (c->started && c->pending == 0)
        sh_request_respond(c->req, &c->resp);
}

static void added(void *arg, sh_err_t err, sh_rtopic_t *t)
{
    slot_t *s = arg;
    ctx_t *c = s->ctx;
    if (err == SH_KERR_INVALID_PARTITIONS && t)
        /* another request grew the topic meanwhile */
        fail_topic(s->res, err, sh_api_msgf(c->req, "Topic currently has %d partitions, which is "
                                             "higher than the requested count.",
                                            t->partition_count));
    else if (err == SH_KERR_UNKNOWN_TOPIC_OR_PARTITION)
        fail_topic(s->res, err, sh_api_msgf(c->req, "The topic was deleted meanwhile."));
    else if (err != SH_OK)
        fail_topic(s->res, err,
                   sh_api_msgf(c->req, "could not add partitions: %s", sh_err_str(err)));
    c->pending--;
    maybe_respond(c);
}

static bool topic_start(ctx_t *c, const sh_create_partitions_request_t *m, int32_t i, bool dup)
{
    sh_request_t *req = c->req;
    const req_topic_t *rt = &m->topics[i];
    result_t *res = &c->resp.results[i];
    res->name = rt->name;

    if (dup) {
        fail_topic(res, SH_KERR_INVALID_REQUEST, sh_api_msgf(req, "Duplicate topic name."));
        return true;
    }
    sh_rtopic_t *t = sh_registry_find(c->b->registry, rt->name);
    if (!t) {
        fail_topic(res, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION,
                   sh_api_msgf(req, "The topic '%s' does not exist.",
                               sh_request_printable(req, rt->name, 249)));
        return true;
    }
    if (rt->count == t->partition_count) {
        fail_topic(res, SH_KERR_INVALID_PARTITIONS,
                   sh_api_msgf(req, "Topic already has %d partitions.", t->partition_count));
        return true;
    }
    if (rt->count < t->partition_count) {
        fail_topic(res, SH_KERR_INVALID_PARTITIONS,
                   sh_api_msgf(req, "The topic %s currently has %d partition(s); %d would not be "
                                    "an increase.", t->name, t->partition_count, rt->count));
        return true;
    }
    if (rt->count > SH_META_PARTITIONS_MAX) {
        fail_topic(res, SH_KERR_INVALID_PARTITIONS,
                   sh_api_msgf(req, "Partition count %d is above this broker's limit of %d",
                               rt->count, SH_META_PARTITIONS_MAX));
        return true;
    }
    if (rt->assignments_count >= 0 && rt->assignments) {
        int32_t want = rt->count - t->partition_count;
        if (rt->assignments_count != want) {
            fail_topic(res, SH_KERR_INVALID_REPLICA_ASSIGNMENT,
                       sh_api_msgf(req, "Increasing the number of partitions by %d but %d "
                                 "assignments provided.", want, rt->assignments_count));
            return true;
        }
        for (int32_t k = 0; k < rt->assignments_count; k++) {
            const sh_create_partitions_request_create_partitions_assignment_t *as =
                &rt->assignments[k];
            if (as->broker_ids_count != 1 || as->broker_ids[0] != c->b->node_id) {
                fail_topic(res, SH_KERR_INVALID_REPLICA_ASSIGNMENT,
                           sh_api_msgf(req, "Assignment %d must name exactly this broker (%d): "
                                     "this cluster has one broker, which holds every "
                                     "partition", k, c->b->node_id));
                return true;
            }
        }
    }
    if (m->validate_only)
        return true;

    slot_t *s = sh_arena_alloc(&req->arena, sizeof(*s));
    if (!s)
        return false;
    s->ctx = c;
    s->res = res;
    sh_err_t err = sh_registry_partitions_add(c->b->registry, t, rt->count, added, s);
    if (err != SH_OK)
        fail_topic(res, err, sh_api_msgf(req, "could not add partitions: %s", sh_err_str(err)));
    else
        c->pending++;
    return true;
}

void sh_api_create_partitions_handle(sh_broker_t *b, sh_request_t *req)
{
    const sh_create_partitions_request_t *m = req->msg;
    ctx_t *c = sh_arena_calloc(&req->arena, 1, sizeof(*c));
    if (!c)
        goto nomem;
    c->b = b;
    c->req = req;
    sh_create_partitions_response_init(&c->resp);
    c->resp.throttle_time_ms = 0;
    int32_t n = m->topics_count > 0 ? m->topics_count : 0;
    if (n) {
        c->resp.results = sh_arena_calloc(&req->arena, (size_t)n, sizeof(result_t));
        if (!c->resp.results)
            goto nomem;
    }
    c->resp.results_count = n;
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
            fail_topic(&c->resp.results[i], SH_E_NOMEM, SH_SLICE_NULL);
    c->started = true;
    maybe_respond(c);
    return;
nomem:
    sh_request_fail(req, "out of memory");
}
