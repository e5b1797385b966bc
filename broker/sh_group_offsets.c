/*
 * sh_group_offsets.c - committed offsets and group deletion: OffsetCommit,
 * OffsetFetch, OffsetDelete, DeleteGroups, the offsets retention sweep
 * and loading the groups that hold offsets at startup.
 *
 * Every store access is an sh_meta_op_t run on the metadata worker; the
 * reply is given from its done callback on the loop, so an OffsetCommit is
 * answered only once its transaction is durable. Ops carry copies of what
 * they need (group ids, topic names) in their own arena and look groups up
 * again by name when they complete: a group may have been freed or
 * recreated meanwhile, and holding no pointer makes that harmless. Ops run
 * and complete in submission order, so a fetch submitted after a commit
 * sees it, and the retention sweep's view of which groups hold offsets is
 * exact at the moment its done callback runs.
 *
 * Membership checks happen on the loop before submitting, against the
 * in-memory group (sh_group.c), exactly as Kafka validates a commit
 * against its coordinator cache before appending it.
 *
 * Thread: the loop thread, except the `run` callbacks (metadata worker),
 * which touch only their own op. Ownership: an op is malloc'd here and
 * freed by its done callback; reply arrays live in the caller's arena.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/sh_group_int.h"
#include "common/sh_log.h"

#define EMPTY_SLICE ((sh_slice_t){(const uint8_t *)"", 0})

static const char *arena_cstr(sh_arena_t *a, sh_slice_t s)
{
    return sh_arena_strndup(a, s.ptr ? (const char *)s.ptr : "", s.ptr ? s.len : 0);
}

/* What a failed store operation tells the client: retriable, and it makes
 * clients look the coordinator up again (Kafka maps its log append
 * failures the same way). */
static int16_t store_error(sh_err_t err)
{
    return err == SH_OK ? 0 : SH_KERR_COORDINATOR_NOT_AVAILABLE;
}

/* The partition count of a topic, or -1 when it does not exist. */
static int32_t topic_partitions(sh_group_coord_t *c, sh_arena_t *a, sh_slice_t name)
{
    if (!c->topics || !c->topics->ops || !name.ptr)
        return -1;
    sh_topic_view_t v;
    if (c->topics->ops->find(c->topics->ctx, a, name, &v) != SH_OK)
        return -1;
    return v.partition_count;
}

/* ========================================================= OffsetCommit */

typedef struct commit_op {
    sh_meta_op_t op;
    sh_group_coord_t *c;
    sh_arena_t arena;            /* strings the worker reads */
    const char *group_id;
    size_t group_id_len;
    sh_meta_offset_t *offsets;
    size_t n;
    int16_t **slots;             /* the response error codes of those offsets */
    sh_offset_commit_response_t *resp;
    sh_group_reply_fn fn;
    void *arg;
} commit_op_t;

static sh_err_t commit_run(sh_meta_t *m, sh_meta_op_t *op)
{
    commit_op_t *o = (commit_op_t *)op;
    return sh_meta_offsets_commit(m, o->group_id, o->offsets, o->n);
}

static void commit_done(sh_meta_op_t *op)
{
    commit_op_t *o = (commit_op_t *)op;
    int16_t code = store_error(op->err);
    if (op->err != SH_OK)
        sh_log(SH_LOG_WARN, "group", "could not commit %zu offsets of group \"%s\" (%s)", o->n,
               sh_group_printable(o->group_id, o->group_id_len), sh_err_str(op->err));
    for (size_t i = 0; i < o->n; i++)
        *o->slots[i] = code;
    if (op->err == SH_OK) {
        /* a group exists for as long as it holds offsets: simple
         * consumers' groups are created here */
        sh_group_t *g = sh_group_get_or_create(
            o->c, (sh_slice_t){(const uint8_t *)o->group_id, o->group_id_len});
        if (g)
            g->has_offsets = true;
    }
    o->fn(o->arg, o->resp);
    sh_arena_fini(&o->arena);
    free(o);
}

/* Kafka's validateOffsetCommit: 0 to go ahead, else the error for every
 * partition. *member gets the committing member, if any. */
static int16_t commit_check(sh_group_t *g, const sh_offset_commit_request_t *req,
                            sh_group_member_t **member)
{
    int32_t gen = req->generation_id_or_member_epoch;
    *member = NULL;
    if (!g)
        /* no group: only commits outside group management go through */
        return gen < 0 ? 0 : SH_KERR_ILLEGAL_GENERATION;
    if (g->state == SH_GROUP_DEAD)
        return SH_KERR_COORDINATOR_NOT_AVAILABLE;
    if (gen < 0 && g->state == SH_GROUP_EMPTY)
        return 0; /* admin clients and consumers that assign themselves */
    if (gen >= 0 || req->member_id.len > 0 || req->group_instance_id.ptr) {
        int16_t err = sh_group_member_validate(g, req->member_id, req->group_instance_id);
        if (err)
            return err;
        if (gen != g->generation)
            return SH_KERR_ILLEGAL_GENERATION;
    } else {
        /* no member id and no generation: only into an empty group */
        return SH_KERR_UNKNOWN_MEMBER_ID;
    }
    if (g->state == SH_GROUP_COMPLETING_REBALANCE)
        return SH_KERR_REBALANCE_IN_PROGRESS;
    *member = sh_group_member_find(g, req->member_id);
    return 0;
}

void sh_group_offsets_commit(sh_group_coord_t *c, int16_t version,
                             const sh_offset_commit_request_t *req, sh_arena_t *a,
                             sh_group_reply_fn fn, void *arg)
{
    (void)version;
    commit_op_t *o = NULL;
    sh_offset_commit_response_t *resp = sh_arena_alloc(a, sizeof(*resp));
    if (!resp)
        goto nomem;
    sh_offset_commit_response_init(resp);
    int32_t nt = req->topics_count > 0 ? req->topics_count : 0;
    resp->topics = nt ? sh_arena_calloc(a, (size_t)nt, sizeof(*resp->topics)) : NULL;
    if (nt && !resp->topics)
        goto nomem;
    resp->topics_count = nt;
    size_t total = 0;
    for (int32_t t = 0; t < nt; t++) {
        const sh_offset_commit_request_offset_commit_request_topic_t *rt = &req->topics[t];
        int32_t np = rt->partitions_count > 0 ? rt->partitions_count : 0;
        resp->topics[t].name = rt->name;
        resp->topics[t].partitions =
            np ? sh_arena_calloc(a, (size_t)np, sizeof(*resp->topics[t].partitions)) : NULL;
        if (np && !resp->topics[t].partitions)
            goto nomem;
        resp->topics[t].partitions_count = np;
        for (int32_t p = 0; p < np; p++)
            resp->topics[t].partitions[p].partition_index = rt->partitions[p].partition_index;
        total += (size_t)np;
    }

    int16_t group_err = 0;
    sh_group_member_t *member = NULL;
    if (c->stopped || !c->meta)
        group_err = SH_KERR_COORDINATOR_NOT_AVAILABLE;
    else if (!req->group_id.ptr)
        group_err = SH_KERR_INVALID_GROUP_ID;
    else
        group_err = commit_check(sh_group_find(c, req->group_id), req, &member);
    if (member)
        sh_group_member_touch(member);

    o = calloc(1, sizeof(*o));
    if (!o)
        goto nomem;
    sh_arena_init(&o->arena, 4096);
    o->c = c;
    o->resp = resp;
    o->fn = fn;
    o->arg = arg;
    o->offsets = total ? sh_arena_calloc(&o->arena, total, sizeof(*o->offsets)) : NULL;
    o->slots = total ? sh_arena_calloc(&o->arena, total, sizeof(*o->slots)) : NULL;
    o->group_id = arena_cstr(&o->arena, req->group_id);
    o->group_id_len = req->group_id.ptr ? req->group_id.len : 0;
    if ((total && (!o->offsets || !o->slots)) || !o->group_id)
        goto nomem;
    int64_t now = sh_group_wall(c);
    for (int32_t t = 0; t < nt; t++) {
        const sh_offset_commit_request_offset_commit_request_topic_t *rt = &req->topics[t];
        /* the same order as Kafka: unknown partitions first, then the
         * group's verdict, then the metadata size */
        int32_t nparts = topic_partitions(c, a, rt->name);
        const char *topic = NULL;
        for (int32_t p = 0; p < resp->topics[t].partitions_count; p++) {
            const sh_offset_commit_request_offset_commit_request_partition_t *rp =
                &rt->partitions[p];
            int16_t *slot = &resp->topics[t].partitions[p].error_code;
            if (rp->partition_index < 0 || rp->partition_index >= nparts) {
                *slot = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (group_err) {
                *slot = group_err;
                continue;
            }
            if (rp->committed_metadata.len > (size_t)c->cfg.offset_metadata_max_bytes) {
                *slot = SH_KERR_OFFSET_METADATA_TOO_LARGE;
                continue;
            }
            if (!topic && !(topic = arena_cstr(&o->arena, rt->name)))
                goto nomem;
            sh_meta_offset_t *mo = &o->offsets[o->n];
            mo->topic = topic;
            mo->partition = rp->partition_index;
            mo->offset = rp->committed_offset;
            mo->leader_epoch = version >= 6 ? rp->committed_leader_epoch : -1;
            /* Kafka stores a null metadata string as "" */
            mo->metadata = arena_cstr(&o->arena, rp->committed_metadata);
            mo->commit_ms = now;
            if (!mo->metadata)
                goto nomem;
            o->slots[o->n++] = slot;
        }
    }
    if (o->n == 0) {
        fn(arg, resp);
        sh_arena_fini(&o->arena);
        free(o);
        return;
    }
    o->op.run = commit_run;
    o->op.done = commit_done;
    if (sh_meta_submit(c->meta, &o->op) != SH_OK) {
        for (size_t i = 0; i < o->n; i++)
            *o->slots[i] = SH_KERR_COORDINATOR_NOT_AVAILABLE;
        fn(arg, resp);
        sh_arena_fini(&o->arena);
        free(o);
    }
    return;
nomem:
    sh_log(SH_LOG_ERROR, "group", "out of memory handling OffsetCommit");
    if (o) {
        sh_arena_fini(&o->arena);
        free(o);
    }
    if (resp && resp->topics_count == (req->topics_count > 0 ? req->topics_count : 0)) {
        for (int32_t t = 0; t < resp->topics_count; t++)
            for (int32_t p = 0; p < resp->topics[t].partitions_count && resp->topics[t].partitions; p++)
                resp->topics[t].partitions[p].error_code = SH_KERR_COORDINATOR_NOT_AVAILABLE;
        fn(arg, resp);
    } else {
        sh_offset_commit_response_t empty;
        sh_offset_commit_response_init(&empty);
        fn(arg, &empty);
    }
}

/* ========================================================== OffsetFetch */

/* One group of an OffsetFetch (v8+ may ask for several). */
typedef struct fetch_group {
    sh_slice_t group_id;
    const char *group_cstr;
    bool all;                    /* topics null: every offset of the group */
    sh_meta_offset_key_t *keys;  /* one per requested topic */
    size_t nkeys;
    sh_meta_offset_t *rows;      /* worker results, in the op's arena */
    size_t nrows;
    sh_err_t err;
} fetch_group_t;

typedef struct fetch_op {
    sh_meta_op_t op;
    sh_group_coord_t *c;
    sh_arena_t arena;
    int16_t version;
    const sh_offset_fetch_request_t *req;
    sh_arena_t *out;             /* the caller's arena, for the response */
    fetch_group_t *groups;
    int32_t ngroups;
    sh_group_reply_fn fn;
    void *arg;
} fetch_op_t;

/* A partition's answer: the committed offset, or -1 and "" when none
 * (Kafka's answer for partitions without a commit). */
typedef struct {
    int32_t partition_index;
    int64_t committed_offset;
    int32_t committed_leader_epoch;
    sh_slice_t metadata;
    int16_t error_code;
} part_answer_t;

static void answer_from_row(part_answer_t *pa, const sh_meta_offset_t *row)
{
    pa->partition_index = row->partition;
    pa->committed_offset = row->offset;
    pa->committed_leader_epoch = row->leader_epoch;
    pa->metadata = row->metadata ? sh_slice_str(row->metadata) : EMPTY_SLICE;
    pa->error_code = 0;
}

static void answer_none(part_answer_t *pa, int32_t partition, int16_t err)
{
    pa->partition_index = partition;
    pa->committed_offset = -1;
    pa->committed_leader_epoch = -1;
    pa->metadata = EMPTY_SLICE;
    pa->error_code = err;
}

/* Rows of one topic are contiguous and ordered by partition: binary
 * search, so a request naming many partitions stays n log n. */
static const sh_meta_offset_t *rows_find(const sh_meta_offset_t *rows, size_t n, int32_t part)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rows[mid].partition == part)
            return &rows[mid];
        if (rows[mid].partition < part)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The topics of one group's answer, as (name, answers) lists; version
 * independent, converted to the wire structs by the caller. */
typedef struct {
    sh_slice_t name;
    part_answer_t *parts;
    int32_t nparts;
} topic_answer_t;

/* names of an empty topic list (not NULL, which means "all topics") */
static const sh_slice_t no_topics[1];

typedef struct {
    const sh_slice_t *names;   /* requested topics, or NULL = all */
    const int32_t *const *partitions;
    const int32_t *npartitions;
    int32_t ntopics;
} fetch_ask_t;

static sh_err_t fetch_answer(sh_arena_t *a, const fetch_group_t *fg, const fetch_ask_t *ask,
                             topic_answer_t **out, int32_t *nout)
{
    *out = NULL;
    *nout = 0;
    int16_t err = store_error(fg->err);
    if (!ask->names) {
        /* every committed offset of the group, grouped by topic */
        if (fg->err != SH_OK || fg->nrows == 0)
            return SH_OK;
        int32_t nt = 0;
        for (size_t i = 0; i < fg->nrows; i++)
            if (i == 0 || strcmp(fg->rows[i].topic, fg->rows[i - 1].topic) != 0)
                nt++;
        topic_answer_t *ta = sh_arena_calloc(a, (size_t)nt, sizeof(*ta));
        part_answer_t *pa = sh_arena_calloc(a, fg->nrows, sizeof(*pa));
        if (!ta || !pa)
            return SH_E_NOMEM;
        int32_t t = -1;
        for (size_t i = 0; i < fg->nrows; i++) {
            if (i == 0 || strcmp(fg->rows[i].topic, fg->rows[i - 1].topic) != 0) {
                t++;
                ta[t].name = sh_slice_str(fg->rows[i].topic);
                ta[t].parts = &pa[i];
            }
            answer_from_row(&pa[i], &fg->rows[i]);
            ta[t].nparts++;
        }
        *out = ta;
        *nout = nt;
        return SH_OK;
    }
    if (ask->ntopics <= 0)
        return SH_OK;
    topic_answer_t *ta = sh_arena_calloc(a, (size_t)ask->ntopics, sizeof(*ta));
    if (!ta)
        return SH_E_NOMEM;
    size_t row = 0;
    for (int32_t t = 0; t < ask->ntopics; t++) {
        /* key t's rows follow those of key t-1 */
        size_t first = row;
        while (row < fg->nrows && fg->err == SH_OK &&
               ask->names[t].len == strlen(fg->rows[row].topic) &&
               (ask->names[t].len == 0 ||
                memcmp(fg->rows[row].topic, ask->names[t].ptr, ask->names[t].len) == 0) &&
               (row == first || fg->rows[row].partition > fg->rows[row - 1].partition))
            row++;
        int32_t np = ask->npartitions[t] > 0 ? ask->npartitions[t] : 0;
        ta[t].name = ask->names[t];
        ta[t].nparts = np;
        ta[t].parts = np ? sh_arena_calloc(a, (size_t)np, sizeof(*ta[t].parts)) : NULL;
        if (np && !ta[t].parts)
            return SH_E_NOMEM;
        for (int32_t p = 0; p < np; p++) {
            int32_t idx = ask->partitions[t][p];
            const sh_meta_offset_t *r = fg->err == SH_OK && row > first
                                            ? rows_find(fg->rows + first, row - first, idx)
                                            : NULL;
            if (r)
                answer_from_row(&ta[t].parts[p], r);
            else
                answer_none(&ta[t].parts[p], idx, err);
        }
    }
    *out = ta;
    *nout = ask->ntopics;
    return SH_OK;
}

static sh_err_t fetch_build(fetch_op_t *o, sh_offset_fetch_response_t *resp)
{
    sh_arena_t *a = o->out;
    const sh_offset_fetch_request_t *req = o->req;
    if (o->version < 8) {
        int32_t nt = req->topics_count;
        fetch_ask_t ask = {0};
        if (nt >= 0) {
            sh_slice_t *n = nt ? sh_arena_calloc(a, (size_t)nt, sizeof(*n)) : NULL;
            const int32_t **pp = nt ? sh_arena_calloc(a, (size_t)nt, sizeof(*pp)) : NULL;
            int32_t *pn = nt ? sh_arena_calloc(a, (size_t)nt, sizeof(*pn)) : NULL;
            if (nt && (!n || !pp || !pn))
                return SH_E_NOMEM;
            for (int32_t t = 0; t < nt; t++) {
                n[t] = req->topics[t].name;
                pp[t] = req->topics[t].partition_indexes;
                pn[t] = req->topics[t].partition_indexes_count;
            }
            ask.names = nt ? n : no_topics;
            ask.partitions = (const int32_t *const *)pp;
            ask.npartitions = pn;
            ask.ntopics = nt;
        }
        topic_answer_t *ta;
        int32_t nta;
        sh_err_t err = fetch_answer(a, &o->groups[0], &ask, &ta, &nta);
        if (err != SH_OK)
            return err;
        resp->error_code = o->version >= 2 ? store_error(o->groups[0].err) : 0;
        resp->topics = nta ? sh_arena_calloc(a, (size_t)nta, sizeof(*resp->topics)) : NULL;
        if (nta && !resp->topics)
            return SH_E_NOMEM;
        resp->topics_count = nta;
        for (int32_t t = 0; t < nta; t++) {
            sh_offset_fetch_response_offset_fetch_response_topic_t *rt = &resp->topics[t];
            rt->name = ta[t].name;
            rt->partitions_count = ta[t].nparts;
            rt->partitions = ta[t].nparts ? sh_arena_calloc(a, (size_t)ta[t].nparts,
                                                            sizeof(*rt->partitions))
                                          : NULL;
            if (ta[t].nparts && !rt->partitions)
                return SH_E_NOMEM;
            for (int32_t p = 0; p < ta[t].nparts; p++) {
                rt->partitions[p].partition_index = ta[t].parts[p].partition_index;
                rt->partitions[p].committed_offset = ta[t].parts[p].committed_offset;
                rt->partitions[p].committed_leader_epoch = ta[t].parts[p].committed_leader_epoch;
                rt->partitions[p].metadata = ta[t].parts[p].metadata;
                /* v2+ reports a store failure once, at the top */
                rt->partitions[p].error_code = o->version >= 2 ? 0 : ta[t].parts[p].error_code;
            }
        }
        return SH_OK;
    }
    resp->groups = sh_arena_calloc(a, (size_t)o->ngroups, sizeof(*resp->groups));
    if (!resp->groups)
        return SH_E_NOMEM;
    resp->groups_count = o->ngroups;
    for (int32_t gi = 0; gi < o->ngroups; gi++) {
        const sh_offset_fetch_request_offset_fetch_request_group_t *rg = &req->groups[gi];
        sh_offset_fetch_response_offset_fetch_response_group_t *og = &resp->groups[gi];
        int32_t nt = rg->topics_count;
        fetch_ask_t ask = {0};
        if (nt >= 0) {
            sh_slice_t *n = nt ? sh_arena_calloc(a, (size_t)nt, sizeof(*n)) : NULL;
            const int32_t **pp = nt ? sh_arena_calloc(a, (size_t)nt, sizeof(*pp)) : NULL;
            int32_t *pn = nt ? sh_arena_calloc(a, (size_t)nt, sizeof(*pn)) : NULL;
            if (nt && (!n || !pp || !pn))
                return SH_E_NOMEM;
            for (int32_t t = 0; t < nt; t++) {
                n[t] = rg->topics[t].name;
                pp[t] = rg->topics[t].partition_indexes;
                pn[t] = rg->topics[t].partition_indexes_count;
            }
            ask.names = nt ? n : no_topics;
            ask.partitions = (const int32_t *const *)pp;
            ask.npartitions = pn;
            ask.ntopics = nt;
        }
        topic_answer_t *ta;
        int32_t nta;
        sh_err_t err = fetch_answer(a, &o->groups[gi], &ask, &ta, &nta);
        if (err != SH_OK)
            return err;
        og->group_id = rg->group_id;
        og->error_code = store_error(o->groups[gi].err);
        og->topics = nta ? sh_arena_calloc(a, (size_t)nta, sizeof(*og->topics)) : NULL;
        if (nta && !og->topics)
            return SH_E_NOMEM;
        og->topics_count = nta;
        for (int32_t t = 0; t < nta; t++) {
            sh_offset_fetch_response_offset_fetch_response_topics_t *rt = &og->topics[t];
            rt->name = ta[t].name;
            rt->partitions_count = ta[t].nparts;
            rt->partitions = ta[t].nparts ? sh_arena_calloc(a, (size_t)ta[t].nparts,
                                                            sizeof(*rt->partitions))
                                          : NULL;
            if (ta[t].nparts && !rt->partitions)
                return SH_E_NOMEM;
            for (int32_t p = 0; p < ta[t].nparts; p++) {
                rt->partitions[p].partition_index = ta[t].parts[p].partition_index;
                rt->partitions[p].committed_offset = ta[t].parts[p].committed_offset;
                rt->partitions[p].committed_leader_epoch = ta[t].parts[p].committed_leader_epoch;
                rt->partitions[p].metadata = ta[t].parts[p].metadata;
                rt->partitions[p].error_code = 0;
            }
        }
    }
    return SH_OK;
}

static void fetch_done(sh_meta_op_t *op)
{
    fetch_op_t *o = (fetch_op_t *)op;
    sh_offset_fetch_response_t resp;
    sh_offset_fetch_response_init(&resp);
    for (int32_t i = 0; i < o->ngroups; i++)
        if (o->groups[i].err != SH_OK)
            sh_log(SH_LOG_WARN, "group", "could not fetch the offsets of group \"%s\" (%s)",
                   sh_group_printable(o->groups[i].group_cstr, strlen(o->groups[i].group_cstr)),
                   sh_err_str(o->groups[i].err));
    if (fetch_build(o, &resp) != SH_OK) {
        sh_log(SH_LOG_ERROR, "group", "out of memory answering OffsetFetch");
        sh_offset_fetch_response_init(&resp);
        resp.error_code = SH_KERR_COORDINATOR_NOT_AVAILABLE;
    }
    o->fn(o->arg, &resp);
    sh_arena_fini(&o->arena);
    free(o);
}

/* Keys: one (topic, all partitions) per requested topic; filtering by
 * partition happens when answering. */
static sh_err_t fetch_group_init(fetch_op_t *o, fetch_group_t *fg, sh_slice_t group_id,
                                 const sh_slice_t *topics, size_t topic_stride, int32_t ntopics)
{
    fg->group_id = group_id;
    fg->group_cstr = arena_cstr(&o->arena, group_id);
    if (!fg->group_cstr)
        return SH_E_NOMEM;
    fg->all = ntopics < 0;
    if (ntopics <= 0)
        return SH_OK;
    fg->keys = sh_arena_calloc(&o->arena, (size_t)ntopics, sizeof(*fg->keys));
    if (!fg->keys)
        return SH_E_NOMEM;
    for (int32_t t = 0; t < ntopics; t++) {
        const sh_slice_t *name = (const sh_slice_t *)((const char *)topics + (size_t)t * topic_stride);
        fg->keys[t].topic = arena_cstr(&o->arena, *name);
        fg->keys[t].partition = SH_META_ALL_PARTITIONS;
        if (!fg->keys[t].topic)
            return SH_E_NOMEM;
    }
    fg->nkeys = (size_t)ntopics;
    return SH_OK;
}

/* An empty topic name cannot have offsets; keeping it out of the store's
 * key list spares an argument error there. */
static sh_err_t fetch_run_checked(sh_meta_t *m, sh_meta_op_t *op)
{
    fetch_op_t *o = (fetch_op_t *)op;
    for (int32_t i = 0; i < o->ngroups; i++) {
        fetch_group_t *fg = &o->groups[i];
        size_t k = 0;
        for (size_t j = 0; j < fg->nkeys; j++)
            if (fg->keys[j].topic[0])
                fg->keys[k++] = fg->keys[j];
        fg->nkeys = k;
        if (!fg->all && k == 0) {
            fg->rows = NULL;
            fg->nrows = 0;
            fg->err = SH_OK;
            continue;
        }
        fg->err = sh_meta_offsets_fetch(m, fg->group_cstr, fg->all ? NULL : fg->keys,
                                        fg->all ? 0 : fg->nkeys, &o->arena, &fg->rows,
                                        &fg->nrows);
    }
    return SH_OK;
}

void sh_group_offsets_fetch(sh_group_coord_t *c, int16_t version,
                            const sh_offset_fetch_request_t *req, sh_arena_t *a,
                            sh_group_reply_fn fn, void *arg)
{
    fetch_op_t *o = calloc(1, sizeof(*o));
    if (!o)
        goto fail;
    sh_arena_init(&o->arena, 4096);
    o->c = c;
    o->version = version;
    o->req = req;
    o->out = a;
    o->fn = fn;
    o->arg = arg;
    o->ngroups = version >= 8 ? (req->groups_count > 0 ? req->groups_count : 0) : 1;
    o->groups = o->ngroups ? sh_arena_calloc(&o->arena, (size_t)o->ngroups, sizeof(*o->groups))
                           : NULL;
    if (o->ngroups && !o->groups)
        goto fail;
    if (version < 8) {
        /* v0-1 cannot say "all topics": an empty list is just empty */
        int32_t nt = version < 2 && req->topics_count < 0 ? 0 : req->topics_count;
        if (fetch_group_init(o, &o->groups[0], req->group_id, req->topics ? &req->topics[0].name : NULL,
                             sizeof(req->topics[0]), nt) != SH_OK)
            goto fail;
    } else {
        for (int32_t i = 0; i < o->ngroups; i++) {
            const sh_offset_fetch_request_offset_fetch_request_group_t *rg = &req->groups[i];
            if (fetch_group_init(o, &o->groups[i], rg->group_id,
                                 rg->topics ? &rg->topics[0].name : NULL,
                                 sizeof(rg->topics[0]), rg->topics_count) != SH_OK)
                goto fail;
        }
    }
    if (c->stopped || !c->meta) {
        for (int32_t i = 0; i < o->ngroups; i++)
            o->groups[i].err = SH_E_CLOSED;
        o->op.err = SH_E_CLOSED;
        fetch_done(&o->op);
        return;
    }
    o->op.run = fetch_run_checked;
    o->op.done = fetch_done;
    if (sh_meta_submit(c->meta, &o->op) != SH_OK) {
        for (int32_t i = 0; i < o->ngroups; i++)
            o->groups[i].err = SH_E_CLOSED;
        fetch_done(&o->op);
    }
    return;
fail:
    sh_log(SH_LOG_ERROR, "group", "out of memory handling OffsetFetch");
    if (o) {
        sh_arena_fini(&o->arena);
        free(o);
    }
    sh_offset_fetch_response_t resp;
    sh_offset_fetch_response_init(&resp);
    resp.error_code = SH_KERR_COORDINATOR_NOT_AVAILABLE;
    fn(arg, &resp);
}

/* ========================================================= OffsetDelete */

typedef struct delete_op {
    sh_meta_op_t op;
    sh_group_coord_t *c;
    sh_arena_t arena;
    const char *group_id;
    size_t group_id_len;
    sh_meta_offset_key_t *keys;
    size_t nkeys;
    int16_t **slots;
    int64_t remaining;
    sh_offset_delete_response_t *resp;
    sh_group_reply_fn fn;
    void *arg;
} delete_op_t;

static sh_err_t offsets_delete_run(sh_meta_t *m, sh_meta_op_t *op)
{
    delete_op_t *o = (delete_op_t *)op;
    return sh_meta_offsets_delete(m, o->group_id, o->keys, o->nkeys, &o->remaining);
}

static void offsets_delete_done(sh_meta_op_t *op)
{
    delete_op_t *o = (delete_op_t *)op;
    if (op->err != SH_OK) {
        sh_log(SH_LOG_WARN, "group", "could not delete offsets of group \"%s\" (%s)",
               sh_group_printable(o->group_id, o->group_id_len), sh_err_str(op->err));
        o->resp->error_code = store_error(op->err);
    } else {
        sh_group_t *g = sh_group_find(o->c, (sh_slice_t){(const uint8_t *)o->group_id,
                                                         o->group_id_len});
        if (g && !g->deleting) {
            g->has_offsets = o->remaining > 0;
            sh_group_release(g);
        }
    }
    o->fn(o->arg, o->resp);
    sh_arena_fini(&o->arena);
    free(o);
}

void sh_group_offsets_delete(sh_group_coord_t *c, const sh_offset_delete_request_t *req,
                             sh_arena_t *a, sh_group_reply_fn fn, void *arg)
{
    delete_op_t *o = NULL;
    sh_offset_delete_response_t *resp = sh_arena_alloc(a, sizeof(*resp));
    if (!resp)
        goto nomem;
    sh_offset_delete_response_init(resp);
    sh_group_t *g = c->stopped ? NULL : sh_group_find(c, req->group_id);
    if (c->stopped || !c->meta) {
        resp->error_code = SH_KERR_COORDINATOR_NOT_AVAILABLE;
        fn(arg, resp);
        return;
    }
    if (!g || g->state == SH_GROUP_DEAD) {
        resp->error_code = SH_KERR_GROUP_ID_NOT_FOUND;
        fn(arg, resp);
        return;
    }
    /* A group in use may lose only offsets of topics it does not consume
     * (its members would otherwise restart from the reset policy); a
     * non-consumer group in use may lose none. */
    bool in_use = g->state != SH_GROUP_EMPTY;
    bool consumer = g->protocol_type.p && strcmp(g->protocol_type.p, "consumer") == 0;
    if (in_use && !consumer) {
        resp->error_code = SH_KERR_NON_EMPTY_GROUP;
        fn(arg, resp);
        return;
    }
    int32_t nt = req->topics_count > 0 ? req->topics_count : 0;
    size_t total = 0;
    resp->topics = nt ? sh_arena_calloc(a, (size_t)nt, sizeof(*resp->topics)) : NULL;
    if (nt && !resp->topics)
        goto nomem;
    resp->topics_count = nt;
    for (int32_t t = 0; t < nt; t++)
        total += req->topics[t].partitions_count > 0 ? (size_t)req->topics[t].partitions_count : 0;
    o = calloc(1, sizeof(*o));
    if (!o)
        goto nomem;
    sh_arena_init(&o->arena, 4096);
    o->c = c;
    o->resp = resp;
    o->fn = fn;
    o->arg = arg;
    o->group_id = arena_cstr(&o->arena, req->group_id);
    o->group_id_len = req->group_id.ptr ? req->group_id.len : 0;
    o->keys = total ? sh_arena_calloc(&o->arena, total, sizeof(*o->keys)) : NULL;
    o->slots = total ? sh_arena_calloc(&o->arena, total, sizeof(*o->slots)) : NULL;
    if (!o->group_id || (total && (!o->keys || !o->slots)))
        goto nomem;
    for (int32_t t = 0; t < nt; t++) {
        const sh_offset_delete_request_offset_delete_request_topic_t *rt = &req->topics[t];
        int32_t np = rt->partitions_count > 0 ? rt->partitions_count : 0;
        sh_offset_delete_response_offset_delete_response_topic_t *ot = &resp->topics[t];
        ot->name = rt->name;
        ot->partitions = np ? sh_arena_calloc(a, (size_t)np, sizeof(*ot->partitions)) : NULL;
        if (np && !ot->partitions)
            goto nomem;
        ot->partitions_count = np;
        int32_t nparts = topic_partitions(c, a, rt->name);
        bool subscribed = in_use && sh_group_subscribes(g, rt->name);
        const char *topic = NULL;
        for (int32_t p = 0; p < np; p++) {
            int32_t idx = rt->partitions[p].partition_index;
            ot->partitions[p].partition_index = idx;
            if (idx < 0 || idx >= nparts) {
                ot->partitions[p].error_code = SH_KERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (subscribed) {
                ot->partitions[p].error_code = SH_KERR_GROUP_SUBSCRIBED_TO_TOPIC;
                continue;
            }
            if (!topic && !(topic = arena_cstr(&o->arena, rt->name)))
                goto nomem;
            o->keys[o->nkeys].topic = topic;
            o->keys[o->nkeys].partition = idx;
            o->slots[o->nkeys++] = &ot->partitions[p].error_code;
        }
    }
    if (o->nkeys == 0) {
        fn(arg, resp);
        sh_arena_fini(&o->arena);
        free(o);
        return;
    }
    o->op.run = offsets_delete_run;
    o->op.done = offsets_delete_done;
    if (sh_meta_submit(c->meta, &o->op) != SH_OK) {
        resp->error_code = SH_KERR_COORDINATOR_NOT_AVAILABLE;
        fn(arg, resp);
        sh_arena_fini(&o->arena);
        free(o);
    }
    return;
nomem:
    sh_log(SH_LOG_ERROR, "group", "out of memory handling OffsetDelete");
    if (o) {
        sh_arena_fini(&o->arena);
        free(o);
    }
    sh_offset_delete_response_t err;
    sh_offset_delete_response_init(&err);
    err.error_code = SH_KERR_COORDINATOR_NOT_AVAILABLE;
    fn(arg, &err);
}

/* ========================================================= DeleteGroups */

typedef struct delgroup {
    const char *group_id;
    size_t len;
    int16_t *slot;
    sh_err_t err;
    int64_t deleted;
} delgroup_t;

typedef struct delgroups_op {
    sh_meta_op_t op;
    sh_group_coord_t *c;
    sh_arena_t arena;
    delgroup_t *groups;
    int32_t n;
    sh_delete_groups_response_t *resp;
    sh_group_reply_fn fn;
    void *arg;
} delgroups_op_t;

static sh_err_t delgroups_run(sh_meta_t *m, sh_meta_op_t *op)
{
    delgroups_op_t *o = (delgroups_op_t *)op;
    for (int32_t i = 0; i < o->n; i++)
        o->groups[i].err = sh_meta_group_delete(m, o->groups[i].group_id, &o->groups[i].deleted);
    return SH_OK;
}

static void delgroups_done(sh_meta_op_t *op)
{
    delgroups_op_t *o = (delgroups_op_t *)op;
    for (int32_t i = 0; i < o->n; i++) {
        delgroup_t *d = &o->groups[i];
        sh_group_t *g = sh_group_find(o->c, (sh_slice_t){(const uint8_t *)d->group_id, d->len});
        *d->slot = store_error(d->err);
        if (d->err != SH_OK) {
            sh_log(SH_LOG_WARN, "group", "could not delete group \"%s\" (%s)",
                   sh_group_printable(d->group_id, d->len), sh_err_str(d->err));
            if (g && g->deleting)
                sh_group_unmark_dead(g);
            continue;
        }
        sh_log(SH_LOG_INFO, "group", "deleted group \"%s\" and its %lld committed offsets",
               sh_group_printable(d->group_id, d->len), (long long)d->deleted);
        if (g && g->deleting)
            sh_group_destroy(g);
    }
    o->fn(o->arg, o->resp);
    sh_arena_fini(&o->arena);
    free(o);
}

void sh_group_delete(sh_group_coord_t *c, const sh_delete_groups_request_t *req,
                     sh_arena_t *a, sh_group_reply_fn fn, void *arg)
{
    delgroups_op_t *o = NULL;
    int32_t n = req->groups_names_count > 0 ? req->groups_names_count : 0;
    sh_delete_groups_response_t *resp = sh_arena_alloc(a, sizeof(*resp));
    if (!resp)
        goto nomem;
    sh_delete_groups_response_init(resp);
    resp->results = n ? sh_arena_calloc(a, (size_t)n, sizeof(*resp->results)) : NULL;
    if (n && !resp->results)
        goto nomem;
    o = calloc(1, sizeof(*o));
    if (!o)
        goto nomem;
    sh_arena_init(&o->arena, 1024);
    o->c = c;
    o->resp = resp;
    o->fn = fn;
    o->arg = arg;
    o->groups = n ? sh_arena_calloc(&o->arena, (size_t)n, sizeof(*o->groups)) : NULL;
    if (n && !o->groups)
        goto nomem;
    int32_t nr = 0;
    for (int32_t i = 0; i < n; i++) {
        sh_slice_t id = req->groups_names[i];
        /* one answer per group, as Kafka treats the list as a set */
        bool dup = false;
        for (int32_t j = 0; j < nr && !dup; j++)
            dup = sh_slice_eq(resp->results[j].group_id, id);
        if (dup)
            continue;
        sh_delete_groups_response_deletable_group_result_t *r = &resp->results[nr++];
        r->group_id = id;
        sh_group_t *g = c->stopped ? NULL : sh_group_find(c, id);
        if (c->stopped || !c->meta)
            r->error_code = SH_KERR_COORDINATOR_NOT_AVAILABLE;
        else if (!id.ptr)
            r->error_code = SH_KERR_INVALID_GROUP_ID;
        else if (!g || g->state == SH_GROUP_DEAD)
            r->error_code = SH_KERR_GROUP_ID_NOT_FOUND;
        else if (g->state != SH_GROUP_EMPTY)
            r->error_code = SH_KERR_NON_EMPTY_GROUP;
        else {
            delgroup_t *d = &o->groups[o->n++];
            d->group_id = arena_cstr(&o->arena, id);
            d->len = id.len;
            d->slot = &r->error_code;
            if (!d->group_id)
                goto nomem;
            /* Dead until the store has forgotten it: joins and commits
             * meanwhile are told to retry */
            sh_group_mark_dead(g);
        }
    }
    resp->results_count = nr;
    if (o->n == 0) {
        fn(arg, resp);
        sh_arena_fini(&o->arena);
        free(o);
        return;
    }
    o->op.run = delgroups_run;
    o->op.done = delgroups_done;
    if (sh_meta_submit(c->meta, &o->op) != SH_OK) {
        for (int32_t i = 0; i < o->n; i++)
            o->groups[i].err = SH_E_CLOSED;
        delgroups_done(&o->op);
    }
    return;
nomem:
    sh_log(SH_LOG_ERROR, "group", "out of memory handling DeleteGroups");
    if (o) {
        /* groups already marked stay deletable: put them back */
        for (int32_t i = 0; i < o->n; i++) {
            sh_group_t *g = o->groups[i].group_id
                                ? sh_group_find(c, (sh_slice_t){(const uint8_t *)o->groups[i].group_id,
                                                                o->groups[i].len})
                                : NULL;
            if (g && g->deleting)
                sh_group_unmark_dead(g);
        }
        sh_arena_fini(&o->arena);
        free(o);
    }
    sh_delete_groups_response_t empty;
    sh_delete_groups_response_init(&empty);
    fn(arg, &empty);
}

/* ====================================================== offsets retention */

typedef struct sweep_op {
    sh_meta_op_t op;
    sh_group_coord_t *c;
    sh_arena_t arena;
    const char **groups;         /* empty groups old enough to expire */
    size_t ngroups;
    int64_t cutoff_ms;
    int64_t removed;
    sh_meta_group_summary_t *left;   /* every group still holding offsets */
    size_t nleft;
} sweep_op_t;

static sh_err_t sweep_run(sh_meta_t *m, sh_meta_op_t *op)
{
    sweep_op_t *o = (sweep_op_t *)op;
    sh_err_t err = sh_meta_offsets_expire(m, o->groups, o->ngroups, o->cutoff_ms, &o->removed);
    if (err != SH_OK)
        return err;
    return sh_meta_groups_list(m, &o->arena, &o->left, &o->nleft);
}

static int summary_cmp(const void *k, const void *e)
{
    const sh_slice_t *key = k;
    const sh_meta_group_summary_t *s = e;
    size_t sl = strlen(s->group_id);
    size_t n = key->len < sl ? key->len : sl;
    int r = n ? memcmp(key->ptr, s->group_id, n) : 0;
    if (r)
        return r;
    return key->len < sl ? -1 : key->len > sl;
}

static void sweep_done(sh_meta_op_t *op)
{
    sweep_op_t *o = (sweep_op_t *)op;
    sh_group_coord_t *c = o->c;
    c->retention_running = false;
    if (op->err != SH_OK) {
        sh_log(SH_LOG_WARN, "group", "offsets retention sweep failed (%s); will retry",
               sh_err_str(op->err));
    } else {
        if (o->removed)
            sh_log(SH_LOG_INFO, "group", "removed %lld expired offsets of %zu empty groups",
                   (long long)o->removed, o->ngroups);
        /* The store's list is exact as of now (completions run in
         * submission order); topic deletion may also have emptied groups
         * behind the coordinator's back. Collect first: releasing frees
         * groups, which the iteration must not see. */
        size_t b = 0, nfree = 0;
        sh_group_map_ent_t *it = NULL, *e;
        sh_group_t **gone = c->groups.count ? calloc(c->groups.count, sizeof(*gone)) : NULL;
        while ((e = sh_group_map_next(&c->groups, &b, &it))) {
            sh_group_t *g = e->val;
            if (g->deleting)
                continue;
            sh_slice_t id = {(const uint8_t *)g->id.p, g->id.len};
            g->has_offsets = bsearch(&id, o->left, o->nleft, sizeof(*o->left), summary_cmp) != NULL;
            if (!g->has_offsets && gone)
                gone[nfree++] = g;
        }
        for (size_t i = 0; i < nfree; i++)
            sh_group_release(gone[i]);
        free(gone);
    }
    sh_arena_fini(&o->arena);
    free(o);
    sh_group_retention_schedule(c);
}

void sh_group_retention_schedule(sh_group_coord_t *c)
{
    if (c->stopped || c->cfg.retention_check_interval_ms <= 0)
        return;
    sh_group_timer_arm(c, &c->retention_timer,
                       sh_group_now(c) + c->cfg.retention_check_interval_ms);
}

void sh_group_retention_sweep(sh_group_coord_t *c)
{
    if (c->stopped || !c->meta || c->retention_running)
        return;
    sweep_op_t *o = calloc(1, sizeof(*o));
    if (!o)
        goto retry;
    sh_arena_init(&o->arena, 4096);
    o->c = c;
    int64_t now = sh_group_wall(c);
    o->cutoff_ms = now - c->cfg.offsets_retention_ms;
    o->groups = c->groups.count ? sh_arena_calloc(&o->arena, c->groups.count, sizeof(*o->groups))
                                : NULL;
    size_t b = 0;
    sh_group_map_ent_t *it = NULL, *e;
    while (o->groups && (e = sh_group_map_next(&c->groups, &b, &it))) {
        sh_group_t *g = e->val;
        /* offsets expire only in groups without members, and not before
         * the group has been empty for the whole retention period */
        if (g->state != SH_GROUP_EMPTY || g->deleting || !g->has_offsets ||
            g->empty_since_ms > o->cutoff_ms)
            continue;
        o->groups[o->ngroups] = sh_arena_strndup(&o->arena, g->id.p, g->id.len);
        if (!o->groups[o->ngroups])
            break;
        o->ngroups++;
    }
    o->op.run = sweep_run;
    o->op.done = sweep_done;
    c->retention_running = true;
    if (sh_meta_submit(c->meta, &o->op) != SH_OK) {
        c->retention_running = false;
        sh_arena_fini(&o->arena);
        free(o);
        goto retry;
    }
    return;
retry:
    sh_group_retention_schedule(c);
}

void sh_group_testing_expire_offsets(sh_group_coord_t *c)
{
    sh_group_retention_sweep(c);
}

/* ================================================================ load */

sh_err_t sh_group_coord_load(sh_group_coord_t *c)
{
    if (!c->meta)
        return SH_OK;
    sh_arena_t a;
    sh_arena_init(&a, 4096);
    sh_meta_group_summary_t *gs;
    size_t n;
    sh_err_t err = sh_meta_groups_list(c->meta, &a, &gs, &n);
    if (err != SH_OK) {
        sh_log(SH_LOG_ERROR, "group", "could not list the groups holding committed offsets (%s)",
               sh_err_str(err));
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        sh_group_t *g = sh_group_get_or_create(c, sh_slice_str(gs[i].group_id));
        if (!g) {
            err = SH_E_NOMEM;
            goto out;
        }
        g->has_offsets = true;
        g->empty_since_ms = 0; /* unknown: the commit times alone decide expiry */
    }
    sh_log(SH_LOG_INFO, "group", "loaded %zu consumer groups holding committed offsets", n);
    sh_group_retention_schedule(c);
out:
    sh_arena_fini(&a);
    return err;
}
