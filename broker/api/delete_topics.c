/*
 * delete_topics.c - DeleteTopics (key 20), versions 0-6.
 *
 * Versions: Kafka 4 serves 1-6; v0 differs from v1 only by lacking
 * throttle_time_ms, so it is served too. Clients send: librdkafka and
 * kafkajs v1, kafka-python v3, Java v6. v0-5 name topics (topic_names);
 * v6 names them or gives their ids (topics[]).
 *
 * Behaviour, per topic:
 *  - a name (or id) given more than once: INVALID_REQUEST for each;
 *  - v6 with both a name and an id, or neither: INVALID_REQUEST;
 *  - unknown name: UNKNOWN_TOPIC_OR_PARTITION; unknown id (v6):
 *    UNKNOWN_TOPIC_ID;
 *  - otherwise the topic is marked deleting in the metadata store, leaves
 *    the registry (Metadata no longer lists it) and the data path drops
 *    its partitions (partition_close with deleted=true: WAL and memory),
 *    and the answer is sent. In the background the registry then drops the
 *    topic from the store (chunks, partitions, configs, committed offsets;
 *    the name is free again) and hands the segment objects no other topic
 *    uses to the data path's objects_purge hook. A crash in between
 *    resumes at the next start.
 * v5+ carry error_message; v6 results carry the topic id, and the name
 * also when the topic was given by id.
 *
 * Kafka differences: timeout_ms is not used; there is no
 * delete.topic.enable switch (TOPIC_DELETION_DISABLED is never returned);
 * no throttling.
 *
 * Thread: loop thread; deletions complete through the registry's metadata
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

typedef sh_delete_topics_response_deletable_topic_result_t result_t;

typedef struct {
    sh_broker_t *b;
    sh_request_t *req;
    sh_delete_topics_response_t resp;
    int pending;
    bool started;
} ctx_t;

typedef struct {
    ctx_t *ctx;
    result_t *res;
} slot_t;

static bool uuid_is_zero(sh_uuid_t u)
{
    static const uint8_t zero[16];
    return memcmp(u.b, zero, 16) == 0;
}

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

static void deleted(void *arg, sh_err_t err, sh_rtopic_t *t)
{
    slot_t *s = arg;
    ctx_t *c = s->ctx;
    (void)t;
    if (err == SH_KERR_UNKNOWN_TOPIC_OR_PARTITION)
        fail_topic(s->res, err, sh_api_msgf(c->req, "This server does not host this topic."));
    else if (err != SH_OK)
        fail_topic(s->res, err, sh_api_msgf(c->req, "could not delete topic: %s", sh_err_str(err)));
    c->pending--;
    maybe_respond(c);
}

/* One topic, found or not; submits the deletion when found. */
static bool topic_start(ctx_t *c, result_t *res, sh_rtopic_t *t)
{
    if (!t) {
        if (!uuid_is_zero(res->topic_id) && sh_slice_is_null(res->name))
            fail_topic(res, SH_KERR_UNKNOWN_TOPIC_ID,
                       sh_api_msgf(c->req, "This server does not host this topic ID."));
        else
            fail_topic(res, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION,
                       sh_api_msgf(c->req, "This server does not host this topic-partition."));
        return true;
    }
    /* Answer with both identities, as Kafka does. The name is copied: the
     * topic may be freed as soon as its deletion completes, before the
     * other topics of the request are done and the answer is encoded. */
    char *name = sh_arena_strndup(&c->req->arena, t->name, strlen(t->name));
    if (!name)
        return false;
    res->name = sh_slice_str(name);
    res->topic_id = t->id;
    slot_t *s = sh_arena_alloc(&c->req->arena, sizeof(*s));
    if (!s)
        return false;
    s->ctx = c;
    s->res = res;
    sh_err_t err = sh_registry_topic_delete(c->b->registry, t, deleted, s);
    if (err != SH_OK)
        fail_topic(res, err, sh_api_msgf(c->req, "could not delete topic: %s", sh_err_str(err)));
    else
        c->pending++;
    return true;
}

void sh_api_delete_topics_handle(sh_broker_t *b, sh_request_t *req)
{
    const sh_delete_topics_request_t *m = req->msg;
    sh_registry_t *r = b->registry;
    ctx_t *c = sh_arena_calloc(&req->arena, 1, sizeof(*c));
    if (!c)
        goto nomem;
    c->b = b;
    c->req = req;
    sh_delete_topics_response_init(&c->resp);
    c->resp.throttle_time_ms = 0;
    bool v6 = req->api_version >= 6;
    int32_t n = v6 ? m->topics_count : m->topic_names_count;
    if (n < 0)
        n = 0;
    if (n) {
        c->resp.responses = sh_arena_calloc(&req->arena, (size_t)n, sizeof(result_t));
        if (!c->resp.responses)
            goto nomem;
    }
    c->resp.responses_count = n;

    /* Look everything up before anything changes, so duplicates and
     * unknown topics are judged against one state. */
    sh_rtopic_t **found = n ? sh_arena_calloc(&req->arena, (size_t)n, sizeof(*found)) : NULL;
    bool *bad = n ? sh_arena_calloc(&req->arena, (size_t)n, sizeof(*bad)) : NULL;
    if (n && (!found || !bad))
        goto nomem;
    for (int32_t i = 0; i < n; i++) {
        result_t *res = &c->resp.responses[i];
        if (!v6) {
            res->name = m->topic_names[i];
            found[i] = sh_registry_find(r, res->name);
        } else {
            const sh_delete_topics_request_delete_topic_state_t *ts = &m->topics[i];
            res->name = ts->name;
            res->topic_id = ts->topic_id;
            bool has_name = ts->name.ptr != NULL, has_id = !uuid_is_zero(ts->topic_id);
            if (has_name == has_id) {
                fail_topic(res, SH_KERR_INVALID_REQUEST,
                           sh_api_msgf(req, has_name ? "Give a topic name or a topic id, not both."
                                              : "Neither a topic name nor a topic id given."));
                bad[i] = true;
                continue;
            }
            found[i] = has_name ? sh_registry_find(r, ts->name) : sh_registry_find_id(r, ts->topic_id);
        }
    }
    /* The same topic twice: by name, by id, or once by each. Found topics
     * compare by their name; unknown ones by what was given, an id as its
     * bytes behind a NUL prefix, which no legal name contains. */
    sh_slice_t *keys = n ? sh_arena_calloc(&req->arena, (size_t)n, sizeof(*keys)) : NULL;
    bool *dup = n ? sh_arena_calloc(&req->arena, (size_t)n, sizeof(*dup)) : NULL;
    if (n && (!keys || !dup))
        goto nomem;
    for (int32_t i = 0; i < n; i++) {
        const result_t *ri = &c->resp.responses[i];
        if (bad[i]) {
            keys[i] = SH_SLICE_NULL;
        } else if (found[i]) {
            keys[i] = sh_slice_str(found[i]->name);
        } else if (ri->name.ptr) {
            keys[i] = ri->name;
        } else {
            uint8_t *k = sh_arena_alloc(&req->arena, 18);
            if (!k)
                goto nomem;
            k[0] = 0;
            k[1] = 0xff;
            memcpy(k + 2, ri->topic_id.b, 16);
            keys[i] = (sh_slice_t){k, 18};
        }
    }
    if (sh_registry_names_dups(&req->arena, keys, (size_t)n, dup) != SH_OK)
        goto nomem;
    for (int32_t i = 0; i < n; i++) {
        if (bad[i])
            continue;
        if (dup[i]) {
            fail_topic(&c->resp.responses[i], SH_KERR_INVALID_REQUEST,
                       sh_api_msgf(req, "Duplicate topic in request."));
            continue;
        }
        /* An arena failure here would leave earlier deletions calling
         * back into c: answer that one topic with an error instead. */
        if (!topic_start(c, &c->resp.responses[i], found[i]))
            fail_topic(&c->resp.responses[i], SH_E_NOMEM, SH_SLICE_NULL);
    }
    c->started = true;
    maybe_respond(c);
    return;
nomem:
    sh_request_fail(req, "out of memory");
}
