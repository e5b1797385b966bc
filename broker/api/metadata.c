/*
 * metadata.c - Metadata (key 3), versions 0-12.
 *
 * Behaviour:
 *  - brokers: this broker (node.id, the advertised host and port of the
 *    listener the request arrived on, rack null). A multi-broker cluster
 *    will list the live brokers from the metadata store.
 *  - cluster_id (v2+): from meta.properties; controller_id (v1+): this
 *    node (clients only use it to route admin requests, which any broker
 *    here can serve).
 *  - topics: which ones follows Kafka: v0 with an empty array and v1+
 *    with a null array mean all topics; v1+ with an empty array means
 *    none. Topics come from the broker's topic source (sh_topics.h), which
 *    knows none until the topic registry lands. A requested topic that
 *    does not exist gets UNKNOWN_TOPIC_OR_PARTITION (3), or
 *    INVALID_TOPIC_EXCEPTION (17) if its name is not a legal topic name
 *    and auto-creation would have applied. Duplicate names are answered
 *    once. v12 lookups by topic id get UNKNOWN_TOPIC_ID (100) with a null
 *    name when the id is unknown; ids or null names in v10/v11 requests get
 *    INVALID_REQUEST per topic, as Kafka does.
 *  - partitions: leader, leader epoch (v7+), replicas and ISR = [leader]
 *    (one copy as far as clients are concerned: durability comes from
 *    the WAL and object storage), no offline replicas.
 *  - authorized operations (v8+): -2147483648 unless asked for; when
 *    asked, every operation Kafka supports on the resource type (we have
 *    no authorizer yet, which is what Kafka reports without one).
 *
 *  - auto-creation: when auto.create.topics.enable is true and the request
 *    allows it (v4+ allow_auto_topic_creation; v0-3 always), each unknown
 *    topic with a legal name is created with num.partitions partitions
 *    (and the broker's default configuration) through the topic registry,
 *    and the response waits for the creations, then lists those topics
 *    like any other. A creation that fails (the name still belongs to a
 *    topic being deleted, a metadata error) is answered with
 *    LEADER_NOT_AVAILABLE, which every client retries.
 *
 * Kafka differences: Kafka answers LEADER_NOT_AVAILABLE for a topic it
 * has just started to create and lets the client ask again; waiting for
 * the creation instead saves librdkafka, kafkajs and kafka-python a retry
 * round (each of them accepts either answer). Topic ids come from the
 * topic source (the registry: real ids).
 *
 * Thread: loop thread. Memory: everything in the request arena.
 */
#include <limits.h>
#include <string.h>

#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_conn.h"
#include "broker/sh_request.h"
#include "broker/sh_topics.h"
#include "common/sh_log.h"
#include "protocol/sh_proto.h"

typedef sh_metadata_response_metadata_response_topic_t topic_t;
typedef sh_metadata_response_metadata_response_partition_t part_t;

/* AclOperation codes (Kafka's AclOperation.java) */
enum {
    ACL_READ = 3,
    ACL_WRITE = 4,
    ACL_CREATE = 5,
    ACL_DELETE = 6,
    ACL_ALTER = 7,
    ACL_DESCRIBE = 8,
    ACL_CLUSTER_ACTION = 9,
    ACL_DESCRIBE_CONFIGS = 10,
    ACL_ALTER_CONFIGS = 11,
    ACL_IDEMPOTENT_WRITE = 12,
};

#define BIT(op) (1 << (op))
#define TOPIC_OPS                                                              \
    (BIT(ACL_READ) | BIT(ACL_WRITE) | BIT(ACL_CREATE) | BIT(ACL_DELETE) |     \
     BIT(ACL_ALTER) | BIT(ACL_DESCRIBE) | BIT(ACL_DESCRIBE_CONFIGS) |         \
     BIT(ACL_ALTER_CONFIGS))
#define CLUSTER_OPS                                                            \
    (BIT(ACL_CREATE) | BIT(ACL_ALTER) | BIT(ACL_DESCRIBE) |                   \
     BIT(ACL_CLUSTER_ACTION) | BIT(ACL_DESCRIBE_CONFIGS) |                    \
     BIT(ACL_ALTER_CONFIGS) | BIT(ACL_IDEMPOTENT_WRITE))
#define OPS_NOT_REQUESTED INT32_MIN

static bool uuid_is_zero(sh_uuid_t u)
{
    static const uint8_t zero[16];
    return memcmp(u.b, zero, 16) == 0;
}

static void topic_error(topic_t *t, int16_t code, sh_slice_t name, sh_uuid_t id)
{
    t->error_code = code;
    t->name = name;
    t->topic_id = id;
    t->is_internal = false;
    t->partitions = NULL;
    t->partitions_count = 0;
    t->topic_authorized_operations = OPS_NOT_REQUESTED;
}

/* Fill t from a topic view; false on arena exhaustion. */
static bool topic_fill(sh_request_t *req, topic_t *t, const sh_topic_view_t *v,
                       bool want_ops)
{
    t->error_code = 0;
    t->name = v->name;
    t->topic_id = v->topic_id;
    t->is_internal = v->is_internal;
    t->topic_authorized_operations = want_ops ? TOPIC_OPS : OPS_NOT_REQUESTED;
    t->partitions_count = v->partition_count;
    t->partitions = NULL;
    if (v->partition_count <= 0) {
        t->partitions_count = 0;
        return true;
    }
    t->partitions = sh_arena_calloc(&req->arena, (size_t)v->partition_count, sizeof(part_t));
    /* one leader id per partition, shared by its replica and ISR lists */
    int32_t *nodes = sh_arena_calloc(&req->arena, (size_t)v->partition_count, sizeof(int32_t));
    if (!t->partitions || !nodes)
        return false;
    for (int32_t i = 0; i < v->partition_count; i++) {
        const sh_partition_view_t *pv = &v->partitions[i];
        part_t *p = &t->partitions[i];
        p->error_code = pv->error_code;
        p->partition_index = pv->partition_index;
        p->leader_id = pv->leader_id;
        p->leader_epoch = pv->leader_epoch;
        nodes[i] = pv->leader_id;
        int32_t n = pv->leader_id >= 0 ? 1 : 0;
        p->replica_nodes = n ? &nodes[i] : NULL;
        p->replica_nodes_count = n;
        p->isr_nodes = n ? &nodes[i] : NULL;
        p->isr_nodes_count = n;
        p->offline_replicas = NULL;
        p->offline_replicas_count = 0;
    }
    return true;
}

/* Auto-creation in flight for one request. */
typedef struct {
    sh_broker_t *b;
    sh_request_t *req;
    int pending;
    bool started;
} autocreate_t;

static void metadata_answer(sh_broker_t *b, sh_request_t *req, bool created);

static void autocreate_done(void *arg, sh_err_t err, sh_rtopic_t *t)
{
    autocreate_t *ac = arg;
    (void)t;
    if (err != SH_OK && err != SH_KERR_TOPIC_ALREADY_EXISTS)
        sh_log(SH_LOG_WARN, "metadata", "could not auto-create a topic: %s", sh_err_str(err));
    if (--ac->pending == 0 && ac->started)
        metadata_answer(ac->b, ac->req, true);
}

/* Start creating every unknown, legal, named topic of the request;
 * returns how many creations are under way (0: answer now). */
static int metadata_autocreate(sh_broker_t *b, sh_request_t *req, autocreate_t **out)
{
    const sh_metadata_request_t *m = req->msg;
    autocreate_t *ac = NULL;
    if (!b->registry || !b->cfg->auto_create_topics_enable || !m->allow_auto_topic_creation ||
        m->topics_count <= 0)
        return 0;
    sh_slice_t *names = sh_arena_calloc(&req->arena, (size_t)m->topics_count, sizeof(*names));
    bool *dup = sh_arena_calloc(&req->arena, (size_t)m->topics_count, sizeof(*dup));
    if (!names || !dup)
        return 0;
    for (int32_t i = 0; i < m->topics_count; i++)
        names[i] = m->topics[i].name;
    if (sh_registry_names_repeats(&req->arena, names, (size_t)m->topics_count, dup) != SH_OK)
        return 0;
    for (int32_t i = 0; i < m->topics_count; i++) {
        sh_slice_t name = m->topics[i].name;
        if (!name.ptr || !uuid_is_zero(m->topics[i].topic_id) ||
            !sh_topics_name_is_legal(name) || sh_registry_find(b->registry, name))
            continue;
        /* a name listed twice is created once (at its first mention): a
         * second creation would only fail with TOPIC_ALREADY_EXISTS */
        if (dup[i])
            continue;
        if (!ac) {
            ac = sh_arena_calloc(&req->arena, 1, sizeof(*ac));
            if (!ac)
                return 0;
            ac->b = b;
            ac->req = req;
        }
        if (sh_registry_topic_create(b->registry, name, b->cfg->num_partitions, NULL, 0,
                                     autocreate_done, ac) == SH_OK) {
            ac->pending++;
            sh_log(SH_LOG_INFO, "metadata", "auto-creating topic \"%s\" for client \"%s\"",
                   sh_request_printable(req, name, 249), sh_request_client_id(req));
        }
    }
    *out = ac;
    return ac ? ac->pending : 0;
}

static bool already_listed(const topic_t *topics, int32_t n, sh_slice_t name)
{
    for (int32_t i = 0; i < n; i++)
        if (topics[i].name.ptr && sh_slice_eq(topics[i].name, name))
            return true;
    return false;
}

void sh_api_metadata_handle(sh_broker_t *b, sh_request_t *req)
{
    autocreate_t *ac = NULL;
    if (metadata_autocreate(b, req, &ac) > 0) {
        ac->started = true; /* answered by the last autocreate_done */
        return;
    }
    metadata_answer(b, req, false);
}

/* created: auto-creation was attempted for this request; a topic still
 * unknown now failed to be created. */
static void metadata_answer(sh_broker_t *b, sh_request_t *req, bool created)
{
    const sh_metadata_request_t *m = req->msg;
    const sh_topics_t *src = &b->topics;
    int16_t v = req->api_version;
    sh_metadata_response_t resp;
    sh_metadata_response_init(&resp);
    resp.throttle_time_ms = 0;

    /* brokers: this one, as reachable through the listener in use */
    sh_metadata_response_metadata_response_broker_t *self =
        sh_arena_alloc(&req->arena, sizeof(*self));
    if (!self)
        goto nomem;
    int li = req->conn ? req->conn->listener : 0;
    self->node_id = b->node_id;
    self->host = sh_slice_str(b->advertised[li].host);
    self->port = b->advertised[li].port;
    self->rack = SH_SLICE_NULL;
    resp.brokers = self;
    resp.brokers_count = 1;
    resp.cluster_id = sh_slice_str(b->cluster_id);
    resp.controller_id = b->node_id;
    resp.cluster_authorized_operations =
        m->include_cluster_authorized_operations ? CLUSTER_OPS : OPS_NOT_REQUESTED;
    bool want_ops = m->include_topic_authorized_operations;

    bool all = (v == 0 && m->topics_count == 0) || (v >= 1 && m->topics_count < 0);
    if (all) {
        sh_topic_view_t *views = NULL;
        int32_t n = 0;
        sh_err_t err = src->ops->list(src->ctx, &req->arena, &views, &n);
        if (err == SH_E_NOMEM)
            goto nomem;
        if (err != SH_OK)
            n = 0; /* the source logs its own trouble; answer with brokers */
        resp.topics = n ? sh_arena_calloc(&req->arena, (size_t)n, sizeof(topic_t)) : NULL;
        if (n && !resp.topics)
            goto nomem;
        for (int32_t i = 0; i < n; i++)
            if (!topic_fill(req, &resp.topics[i], &views[i], want_ops))
                goto nomem;
        resp.topics_count = n;
        sh_request_respond(req, &resp);
        return;
    }

    int32_t want = m->topics_count > 0 ? m->topics_count : 0;
    resp.topics = want ? sh_arena_calloc(&req->arena, (size_t)want, sizeof(topic_t)) : NULL;
    if (want && !resp.topics)
        goto nomem;
    int32_t n = 0;
    bool auto_create = b->cfg->auto_create_topics_enable && m->allow_auto_topic_creation;
    for (int32_t i = 0; i < want; i++) {
        const sh_metadata_request_metadata_request_topic_t *rt = &m->topics[i];
        topic_t *t = &resp.topics[n];
        sh_topic_view_t view;
        bool by_id = !rt->name.ptr || !uuid_is_zero(rt->topic_id);

        if (by_id && v < 12) {
            /* Kafka: ids and null names are only valid from v12 */
            topic_error(t, SH_KERR_INVALID_REQUEST, rt->name, rt->topic_id);
            n++;
            continue;
        }
        if (by_id) {
            sh_err_t err = src->ops->find_id(src->ctx, &req->arena, rt->topic_id, &view);
            if (err == SH_E_NOMEM)
                goto nomem;
            if (err == SH_OK) {
                if (!topic_fill(req, t, &view, want_ops))
                    goto nomem;
            } else {
                topic_error(t, SH_KERR_UNKNOWN_TOPIC_ID, SH_SLICE_NULL, rt->topic_id);
            }
            n++;
            continue;
        }
        if (already_listed(resp.topics, n, rt->name))
            continue;
        sh_err_t err = src->ops->find(src->ctx, &req->arena, rt->name, &view);
        if (err == SH_E_NOMEM)
            goto nomem;
        if (err == SH_OK) {
            if (!topic_fill(req, t, &view, want_ops))
                goto nomem;
        } else {
            bool legal = sh_topics_name_is_legal(rt->name);
            int16_t code = auto_create && !legal ? SH_KERR_INVALID_TOPIC_EXCEPTION
                           : auto_create && created ? SH_KERR_LEADER_NOT_AVAILABLE
                                                    : SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
            topic_error(t, code, rt->name, (sh_uuid_t){{0}});
        }
        n++;
    }
    resp.topics_count = n;
    sh_request_respond(req, &resp);
    return;
nomem:
    sh_request_fail(req, "out of memory");
}
