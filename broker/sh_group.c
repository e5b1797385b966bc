/*
 * sh_group.c - the consumer group coordinator: groups, members and the
 * classic rebalance protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup),
 * plus the in-memory admin views (DescribeGroups, ListGroups).
 *
 * The state machine follows Kafka's classic group coordinator:
 *
 *   Empty --first member--> PreparingRebalance --all joined / timeout-->
 *   CompletingRebalance --leader's SyncGroup--> Stable
 *
 * and back to PreparingRebalance whenever membership or a member's
 * protocols change (join, leave, session expiry, a missed SyncGroup). A
 * generation with no members left ends in Empty; Dead is a group being
 * deleted. Parked JoinGroup/SyncGroup requests are kept on their member
 * (join_fn / sync_fn) and answered exactly once: by the completion of the
 * join phase, the leader's assignment, a timer, another member's request,
 * the member's removal or the coordinator's shutdown.
 *
 * Timers (all through c->clock, so tests drive a fake clock):
 *  - member session_timer: session.timeout.ms after the member's last
 *    valid request; firing removes the member, unless it is parked in a
 *    rebalance (then it is kept, as in Kafka). A member that joined
 *    without an id gets SH_GROUP_NEW_MEMBER_JOIN_TIMEOUT_MS instead while
 *    it waits for its first generation.
 *  - pending id timer: a member id handed out with MEMBER_ID_REQUIRED is
 *    forgotten after the session timeout.
 *  - group join_timer: the end of the join phase (rebalance timeout, the
 *    largest of the members'), or group.initial.rebalance.delay.ms steps
 *    for the first rebalance of an empty group.
 *  - group sync_timer: members of a new generation that have not sent
 *    SyncGroup within the rebalance timeout are removed.
 *
 * A group is freed as soon as nothing refers to it (Empty, no members or
 * pending ids, no committed offsets, not being deleted): sh_group_release
 * is called at the end of every entry point and timer callback, never in
 * the middle, so no caller is left holding a freed group.
 *
 * Thread: loop thread only. Ownership: see sh_group_int.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/sh_group_int.h"
#include "common/sh_clock.h"
#include "common/sh_log.h"

/* At most this many protocols per JoinGroup (real consumers send 1 to 3):
 * the coordinator compares protocol lists member by member. */
#define SH_GROUP_MEMBER_PROTOCOLS_MAX 64

/* ACL operation bits a group has (READ, DELETE, DESCRIBE), for
 * DescribeGroups v3+ when asked; there is no authorizer yet. */
#define SH_GROUP_AUTHORIZED_OPS ((1 << 3) | (1 << 6) | (1 << 8))
#define SH_GROUP_OPS_NOT_REQUESTED INT32_MIN

/* ============================================================ helpers */

static const char *const sh_group_state_names[] = {
    [SH_GROUP_EMPTY] = "Empty",
    [SH_GROUP_PREPARING_REBALANCE] = "PreparingRebalance",
    [SH_GROUP_COMPLETING_REBALANCE] = "CompletingRebalance",
    [SH_GROUP_STABLE] = "Stable",
    [SH_GROUP_DEAD] = "Dead",
};

const char *sh_group_state_name(sh_group_state_t s)
{
    return s <= SH_GROUP_DEAD ? sh_group_state_names[s] : "Unknown";
}

const char *sh_group_printable(const void *p, size_t len)
{
    static char bufs[4][128];
    static unsigned next;
    char *out = bufs[next++ % 4];
    size_t n = len > 120 ? 120 : len;
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        out[i] = (s[i] < 0x20 || s[i] >= 0x7f || s[i] == '"') ? '?' : (char)s[i];
    out[n] = '\0';
    if (len > n)
        memcpy(out + n, "...", 4);
    return out;
}

#define GID(g) sh_group_printable((g)->id.p, (g)->id.len)
#define MID(m) sh_group_printable((m)->id.p, (m)->id.len)

static sh_slice_t str_slice(const sh_group_str_t *s)
{
    return (sh_slice_t){(const uint8_t *)s->p, s->len};
}

/* Heap copy of a slice (a null slice gives a null string). */
static sh_err_t str_set(sh_group_str_t *dst, sh_slice_t src)
{
    dst->p = NULL;
    dst->len = 0;
    if (!src.ptr)
        return SH_OK;
    char *p = malloc(src.len + 1);
    if (!p)
        return SH_E_NOMEM;
    if (src.len)
        memcpy(p, src.ptr, src.len);
    p[src.len] = '\0';
    dst->p = p;
    dst->len = src.len;
    return SH_OK;
}

static void str_free(sh_group_str_t *s)
{
    free(s->p);
    s->p = NULL;
    s->len = 0;
}

static bool str_eq(const sh_group_str_t *s, sh_slice_t x)
{
    return s->p && x.ptr && s->len == x.len && (x.len == 0 || memcmp(s->p, x.ptr, x.len) == 0);
}

int64_t sh_group_now(const sh_group_coord_t *c)
{
    return c->clock.now_ms(c->clock.ctx);
}

int64_t sh_group_wall(const sh_group_coord_t *c)
{
    return c->clock.wall_ms(c->clock.ctx);
}

void sh_group_timer_arm(sh_group_coord_t *c, sh_timer_t *t, int64_t deadline_ms)
{
    if (c->stopped)
        return;
    if (c->clock.arm(c->clock.ctx, t, deadline_ms) != SH_OK)
        sh_log(SH_LOG_ERROR, "group", "could not arm a group timer: out of memory");
}

void sh_group_timer_cancel(sh_group_coord_t *c, sh_timer_t *t)
{
    c->clock.cancel(c->clock.ctx, t);
}

/* Kafka's member ids: "<client id or instance id>-<random UUID>". */
static sh_err_t member_id_new(sh_slice_t prefix, sh_group_str_t *out)
{
    sh_uuid_t u;
    sh_err_t err = sh_meta_uuid_random(&u);
    if (err != SH_OK)
        return err;
    size_t plen = prefix.ptr ? prefix.len : 0;
    if (plen > SH_GROUP_CLIENT_ID_PREFIX_MAX)
        plen = SH_GROUP_CLIENT_ID_PREFIX_MAX;
    char *p = malloc(plen + 1 + 36 + 1);
    if (!p)
        return SH_E_NOMEM;
    if (plen)
        memcpy(p, prefix.ptr, plen);
    const uint8_t *b = u.b;
    int n = snprintf(p + plen, 38,
                     "-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                     b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
                     b[12], b[13], b[14], b[15]);
    out->p = p;
    out->len = plen + (size_t)n;
    return SH_OK;
}

/* ========================================================== coordinator */

static int64_t loop_now(void *ctx)
{
    return sh_loop_now_ms(ctx);
}

static int64_t loop_wall(void *ctx)
{
    (void)ctx;
    return sh_clock_wall_ms();
}

static sh_err_t loop_arm(void *ctx, sh_timer_t *t, int64_t deadline_ms)
{
    return sh_loop_timer_arm_at(ctx, t, deadline_ms);
}

static void loop_cancel(void *ctx, sh_timer_t *t)
{
    sh_loop_timer_cancel(ctx, t);
}

sh_group_clock_t sh_group_clock_loop(sh_loop_t *loop)
{
    return (sh_group_clock_t){.ctx = loop, .now_ms = loop_now, .wall_ms = loop_wall,
                              .arm = loop_arm, .cancel = loop_cancel};
}

void sh_group_config_from(sh_group_config_t *gc, const sh_config_t *cfg)
{
    gc->node_id = cfg->node_id;
    gc->min_session_timeout_ms = cfg->group_min_session_timeout_ms;
    gc->max_session_timeout_ms = cfg->group_max_session_timeout_ms;
    gc->initial_rebalance_delay_ms = cfg->group_initial_rebalance_delay_ms;
    gc->max_size = cfg->group_max_size;
    gc->offsets_retention_ms = (int64_t)cfg->offsets_retention_minutes * 60000;
    gc->retention_check_interval_ms = cfg->offsets_retention_check_interval_ms;
    gc->offset_metadata_max_bytes = cfg->offset_metadata_max_bytes;
}

static void retention_fire(sh_timer_t *t, void *arg)
{
    (void)t;
    sh_group_retention_sweep(arg);
}

sh_group_coord_t *sh_group_coord_new(const sh_group_config_t *cfg,
                                     const sh_group_clock_t *clock, sh_meta_t *meta,
                                     const sh_topics_t *topics)
{
    if (cfg->min_session_timeout_ms > cfg->max_session_timeout_ms) {
        sh_log(SH_LOG_ERROR, "group",
               "group.min.session.timeout.ms (%d) is greater than group.max.session.timeout.ms (%d)",
               cfg->min_session_timeout_ms, cfg->max_session_timeout_ms);
        return NULL;
    }
    sh_group_coord_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->cfg = *cfg;
    c->clock = *clock;
    c->meta = meta;
    c->topics = topics;
    sh_group_map_init(&c->groups);
    sh_timer_init(&c->retention_timer, retention_fire, c);
    return c;
}

int32_t sh_group_coord_owner(const sh_group_coord_t *c, int8_t key_type, sh_slice_t key,
                             int16_t *err)
{
    (void)key; /* one broker coordinates everything, for now */
    *err = 0;
    switch (key_type) {
    case 0: /* GROUP */
        if (c->stopped) {
            *err = SH_KERR_COORDINATOR_NOT_AVAILABLE;
            return -1;
        }
        return c->cfg.node_id;
    case 1: /* TRANSACTION: no transaction coordinator is served yet */
        *err = SH_KERR_COORDINATOR_NOT_AVAILABLE;
        return -1;
    default: /* SHARE (2) and anything else */
        *err = SH_KERR_INVALID_REQUEST;
        return -1;
    }
}

/* ================================================================ groups */

static void join_fire(sh_timer_t *t, void *arg);
static void sync_fire(sh_timer_t *t, void *arg);

sh_group_t *sh_group_find(sh_group_coord_t *c, sh_slice_t id)
{
    return sh_group_map_get(&c->groups, id.ptr ? (const void *)id.ptr : "", id.len);
}

sh_group_t *sh_group_get_or_create(sh_group_coord_t *c, sh_slice_t id)
{
    sh_group_t *g = sh_group_find(c, id);
    if (g)
        return g;
    g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    if (str_set(&g->id, id.ptr ? id : (sh_slice_t){(const uint8_t *)"", 0}) != SH_OK)
        goto fail;
    g->coord = c;
    g->state = SH_GROUP_EMPTY;
    g->empty_since_ms = sh_group_wall(c);
    sh_group_map_init(&g->members);
    sh_group_map_init(&g->statics);
    sh_group_map_init(&g->pending);
    sh_group_map_init(&g->protocols);
    sh_timer_init(&g->join_timer, join_fire, g);
    sh_timer_init(&g->sync_timer, sync_fire, g);
    if (sh_group_map_put(&c->groups, g->id.p, g->id.len, g) != SH_OK)
        goto fail;
    return g;
fail:
    str_free(&g->id);
    free(g);
    return NULL;
}

static void subscribed_clear(sh_group_t *g)
{
    for (int32_t i = 0; i < g->nsubscribed; i++)
        str_free(&g->subscribed[i]);
    free(g->subscribed);
    g->subscribed = NULL;
    g->nsubscribed = 0;
    g->subscribed_known = false;
}

static void member_free(sh_group_member_t *m)
{
    str_free(&m->id);
    str_free(&m->instance_id);
    str_free(&m->client_id);
    str_free(&m->client_host);
    str_free(&m->protocol_type);
    for (int32_t i = 0; i < m->nprotos; i++) {
        str_free(&m->protos[i].name);
        free(m->protos[i].metadata);
    }
    free(m->protos);
    free(m->assignment);
    free(m);
}

static void pending_free(sh_group_t *g, sh_group_pending_t *p)
{
    sh_group_timer_cancel(g->coord, &p->timer);
    str_free(&p->id);
    free(p);
}

/* Free everything of g; it must already be out of the coordinator's map
 * and have no parked requests. */
static void group_free(sh_group_t *g)
{
    sh_group_coord_t *c = g->coord;
    sh_group_timer_cancel(c, &g->join_timer);
    sh_group_timer_cancel(c, &g->sync_timer);
    sh_group_member_t *m = g->head;
    while (m) {
        sh_group_member_t *next = m->next;
        sh_group_timer_cancel(c, &m->session_timer);
        member_free(m);
        m = next;
    }
    size_t b = 0;
    sh_group_map_ent_t *it = NULL, *e;
    while ((e = sh_group_map_next(&g->pending, &b, &it)))
        pending_free(g, e->val);
    b = 0;
    it = NULL;
    while ((e = sh_group_map_next(&g->protocols, &b, &it))) {
        sh_group_proto_count_t *pc = e->val;
        str_free(&pc->name);
        free(pc);
    }
    sh_group_map_fini(&g->members);
    sh_group_map_fini(&g->statics);
    sh_group_map_fini(&g->pending);
    sh_group_map_fini(&g->protocols);
    subscribed_clear(g);
    str_free(&g->protocol_type);
    str_free(&g->protocol_name);
    str_free(&g->id);
    free(g);
}

void sh_group_destroy(sh_group_t *g)
{
    sh_group_map_del(&g->coord->groups, g->id.p, g->id.len);
    group_free(g);
}

void sh_group_release(sh_group_t *g)
{
    if (!g || g->deleting || g->state != SH_GROUP_EMPTY || g->nmembers > 0 ||
        g->pending.count > 0 || g->has_offsets)
        return;
    sh_log(SH_LOG_DEBUG, "group", "group \"%s\" has no members and no offsets left; "
                                  "forgetting it", GID(g));
    sh_group_destroy(g);
}

sh_group_member_t *sh_group_member_find(sh_group_t *g, sh_slice_t id)
{
    return sh_group_map_get(&g->members, id.ptr ? (const void *)id.ptr : "", id.len);
}

static sh_group_member_t *static_find(sh_group_t *g, sh_slice_t instance_id)
{
    if (!instance_id.ptr)
        return NULL;
    return sh_group_map_get(&g->statics, instance_id.ptr, instance_id.len);
}

static int32_t group_rebalance_timeout(const sh_group_t *g)
{
    int32_t t = 0;
    for (sh_group_member_t *m = g->head; m; m = m->next)
        if (m->rebalance_timeout_ms > t)
            t = m->rebalance_timeout_ms;
    return t;
}

int16_t sh_group_member_validate(sh_group_t *g, sh_slice_t member_id, sh_slice_t instance_id)
{
    if (instance_id.ptr) {
        sh_group_member_t *s = static_find(g, instance_id);
        if (!s)
            return SH_KERR_UNKNOWN_MEMBER_ID;
        if (!str_eq(&s->id, member_id))
            return SH_KERR_FENCED_INSTANCE_ID;
    }
    return sh_group_member_find(g, member_id) ? 0 : SH_KERR_UNKNOWN_MEMBER_ID;
}

static void session_fire(sh_timer_t *t, void *arg);

void sh_group_member_touch(sh_group_member_t *m)
{
    sh_group_coord_t *c = m->group->coord;
    sh_group_timer_arm(c, &m->session_timer, sh_group_now(c) + m->session_timeout_ms);
}

/* ------------------------------------------------------ protocol counts */

/* Does m list protocol `name` before index i (a repeated name counts once)? */
static bool proto_seen_before(const sh_group_member_t *m, int32_t i)
{
    for (int32_t j = 0; j < i; j++)
        if (m->protos[j].name.len == m->protos[i].name.len &&
            memcmp(m->protos[j].name.p, m->protos[i].name.p, m->protos[i].name.len) == 0)
            return true;
    return false;
}

static int32_t proto_count(const sh_group_t *g, const void *name, size_t len)
{
    sh_group_proto_count_t *pc = sh_group_map_get(&g->protocols, name, len);
    return pc ? pc->count : 0;
}

/* Add (delta 1) or withdraw (delta -1) m's protocol names. SH_E_NOMEM
 * only when adding; what was added is withdrawn again. */
static sh_err_t protos_count(sh_group_t *g, sh_group_member_t *m, int delta)
{
    for (int32_t i = 0; i < m->nprotos; i++) {
        if (proto_seen_before(m, i))
            continue;
        sh_group_str_t *n = &m->protos[i].name;
        sh_group_proto_count_t *pc = sh_group_map_get(&g->protocols, n->p, n->len);
        if (delta > 0) {
            if (!pc) {
                pc = calloc(1, sizeof(*pc));
                if (!pc || str_set(&pc->name, str_slice(n)) != SH_OK ||
                    sh_group_map_put(&g->protocols, pc->name.p, pc->name.len, pc) != SH_OK) {
                    if (pc)
                        str_free(&pc->name);
                    free(pc);
                    /* undo the names counted so far */
                    for (int32_t j = 0; j < i; j++) {
                        if (proto_seen_before(m, j))
                            continue;
                        sh_group_proto_count_t *u =
                            sh_group_map_get(&g->protocols, m->protos[j].name.p,
                                             m->protos[j].name.len);
                        if (u)
                            u->count--;
                    }
                    return SH_E_NOMEM;
                }
            }
            pc->count++;
        } else if (pc && --pc->count == 0) {
            sh_group_map_del(&g->protocols, pc->name.p, pc->name.len);
            str_free(&pc->name);
            free(pc);
        }
    }
    return SH_OK;
}

/* Kafka's supportsProtocols: an empty group takes any non-empty protocol
 * type and list; otherwise the type must match and one of the protocols
 * must be supported by every member. */
static bool group_supports(const sh_group_t *g, const sh_join_group_request_t *req)
{
    if (req->protocols_count <= 0 || !req->protocol_type.ptr || req->protocol_type.len == 0)
        return false;
    if (g->nmembers == 0)
        return true;
    if (!str_eq(&g->protocol_type, req->protocol_type))
        return false;
    for (int32_t i = 0; i < req->protocols_count; i++) {
        sh_slice_t n = req->protocols[i].name;
        if (proto_count(g, n.ptr ? (const void *)n.ptr : "", n.len) == g->nmembers)
            return true;
    }
    return false;
}

static const sh_group_proto_t *member_proto(const sh_group_member_t *m, const sh_group_str_t *name)
{
    if (!name->p)
        return NULL;
    for (int32_t i = 0; i < m->nprotos; i++)
        if (m->protos[i].name.len == name->len &&
            memcmp(m->protos[i].name.p, name->p, name->len) == 0)
            return &m->protos[i];
    return NULL;
}

/* Kafka's selectProtocol: among the protocols every member supports, each
 * member votes for the first it lists; the most votes win, ties going to
 * the oldest member's preference. NULL when there is no member or no
 * common protocol (joins are refused before that can happen). */
static const sh_group_str_t *group_select_protocol(const sh_group_t *g)
{
    const sh_group_member_t *first = g->head;
    if (!first || first->nprotos == 0)
        return NULL;
    int32_t votes[SH_GROUP_MEMBER_PROTOCOLS_MAX] = {0};
    for (const sh_group_member_t *m = g->head; m; m = m->next) {
        for (int32_t i = 0; i < m->nprotos; i++) {
            const sh_group_str_t *n = &m->protos[i].name;
            if (proto_count(g, n->p, n->len) != g->nmembers)
                continue;
            const sh_group_proto_t *fp = member_proto(first, n);
            if (fp)
                votes[fp - first->protos]++;
            break;
        }
    }
    int32_t best = -1;
    for (int32_t i = 0; i < first->nprotos; i++)
        if (votes[i] > 0 && (best < 0 || votes[i] > votes[best]))
            best = i;
    return best >= 0 ? &first->protos[best].name : NULL;
}

/* Same protocols, same order, same metadata (Kafka's member.matches). */
static bool member_matches(const sh_group_member_t *m, const sh_join_group_request_t *req)
{
    if (m->nprotos != req->protocols_count)
        return false;
    for (int32_t i = 0; i < m->nprotos; i++) {
        const sh_join_group_request_join_group_request_protocol_t *p = &req->protocols[i];
        if (!str_eq(&m->protos[i].name, p->name) ||
            m->protos[i].metadata_len != p->metadata.len ||
            (p->metadata.len && memcmp(m->protos[i].metadata, p->metadata.ptr, p->metadata.len)))
            return false;
    }
    return true;
}

/* Copy a JoinGroup's protocols into a fresh array. */
static sh_err_t protos_copy(const sh_join_group_request_t *req, sh_group_proto_t **out,
                           int32_t *n)
{
    *out = NULL;
    *n = 0;
    sh_group_proto_t *p = calloc((size_t)req->protocols_count, sizeof(*p));
    if (!p)
        return SH_E_NOMEM;
    for (int32_t i = 0; i < req->protocols_count; i++) {
        const sh_join_group_request_join_group_request_protocol_t *rp = &req->protocols[i];
        sh_slice_t name = rp->name.ptr ? rp->name : (sh_slice_t){(const uint8_t *)"", 0};
        if (str_set(&p[i].name, name) != SH_OK)
            goto fail;
        p[i].metadata_len = rp->metadata.len;
        p[i].metadata = malloc(rp->metadata.len ? rp->metadata.len : 1);
        if (!p[i].metadata)
            goto fail;
        if (rp->metadata.len)
            memcpy(p[i].metadata, rp->metadata.ptr, rp->metadata.len);
    }
    *out = p;
    *n = req->protocols_count;
    return SH_OK;
fail:
    for (int32_t i = 0; i < req->protocols_count; i++) {
        str_free(&p[i].name);
        free(p[i].metadata);
    }
    free(p);
    return SH_E_NOMEM;
}

/* Replace m's protocols and timeouts with those of a JoinGroup. */
static sh_err_t member_update(sh_group_t *g, sh_group_member_t *m,
                              const sh_join_group_request_t *req, int32_t rebalance_timeout_ms)
{
    sh_group_proto_t *np;
    int32_t nn;
    if (protos_copy(req, &np, &nn) != SH_OK)
        return SH_E_NOMEM;
    sh_group_proto_t *op = m->protos;
    int32_t on = m->nprotos;
    protos_count(g, m, -1);
    m->protos = np;
    m->nprotos = nn;
    if (protos_count(g, m, 1) != SH_OK) {
        m->protos = op;
        m->nprotos = on;
        protos_count(g, m, 1); /* names were counted before: cannot need memory */
        for (int32_t i = 0; i < nn; i++) {
            str_free(&np[i].name);
            free(np[i].metadata);
        }
        free(np);
        return SH_E_NOMEM;
    }
    for (int32_t i = 0; i < on; i++) {
        str_free(&op[i].name);
        free(op[i].metadata);
    }
    free(op);
    m->session_timeout_ms = req->session_timeout_ms;
    m->rebalance_timeout_ms = rebalance_timeout_ms;
    return SH_OK;
}

/* ------------------------------------------------------ parked replies */

static void join_reply_error(sh_group_reply_fn fn, void *arg, int16_t err, sh_slice_t member_id)
{
    sh_join_group_response_t r;
    sh_join_group_response_init(&r);
    r.error_code = err;
    r.generation_id = -1;
    r.protocol_type = SH_SLICE_NULL;
    r.protocol_name = SH_SLICE_NULL;
    r.leader = (sh_slice_t){(const uint8_t *)"", 0};
    r.member_id = member_id.ptr ? member_id : (sh_slice_t){(const uint8_t *)"", 0};
    fn(arg, &r);
}

static void sync_reply_error(sh_group_reply_fn fn, void *arg, int16_t err)
{
    sh_sync_group_response_t r;
    sh_sync_group_response_init(&r);
    r.error_code = err;
    r.protocol_type = SH_SLICE_NULL;
    r.protocol_name = SH_SLICE_NULL;
    r.assignment = (sh_slice_t){(const uint8_t *)"", 0};
    fn(arg, &r);
}

/* Take m's parked JoinGroup, if any (the caller answers it). */
static bool member_take_join(sh_group_member_t *m, sh_group_reply_fn *fn, void **arg,
                             int16_t *version)
{
    if (!m->join_fn)
        return false;
    *fn = m->join_fn;
    *arg = m->join_arg;
    if (version)
        *version = m->join_version;
    m->join_fn = NULL;
    m->join_arg = NULL;
    m->group->nawaiting_join--;
    return true;
}

static bool member_take_sync(sh_group_member_t *m, sh_group_reply_fn *fn, void **arg)
{
    if (!m->sync_fn)
        return false;
    *fn = m->sync_fn;
    *arg = m->sync_arg;
    m->sync_fn = NULL;
    m->sync_arg = NULL;
    return true;
}

static void member_fail_join(sh_group_member_t *m, int16_t err, sh_slice_t member_id)
{
    sh_group_reply_fn fn;
    void *arg;
    if (member_take_join(m, &fn, &arg, NULL))
        join_reply_error(fn, arg, err, member_id);
}

static void member_fail_sync(sh_group_member_t *m, int16_t err)
{
    sh_group_reply_fn fn;
    void *arg;
    if (member_take_sync(m, &fn, &arg))
        sync_reply_error(fn, arg, err);
}

/* Park a JoinGroup on m. A JoinGroup already parked there is one the
 * client gave up on (it sends one at a time): it still gets an answer,
 * and a retriable one. */
static void member_park_join(sh_group_member_t *m, int16_t version, sh_group_reply_fn fn,
                             void *arg)
{
    member_fail_join(m, SH_KERR_REBALANCE_IN_PROGRESS, str_slice(&m->id));
    m->join_fn = fn;
    m->join_arg = arg;
    m->join_version = version;
    m->group->nawaiting_join++;
}

static void member_park_sync(sh_group_member_t *m, sh_group_reply_fn fn, void *arg)
{
    member_fail_sync(m, SH_KERR_REBALANCE_IN_PROGRESS);
    m->sync_fn = fn;
    m->sync_arg = arg;
}

static void member_clear_pending_sync(sh_group_t *g, sh_group_member_t *m)
{
    if (!m->pending_sync)
        return;
    m->pending_sync = false;
    if (--g->npending_sync == 0)
        sh_group_timer_cancel(g->coord, &g->sync_timer);
}

/* ---------------------------------------------------- member lifecycle */

/* Unlink and free m without any rebalance decision; parked requests get
 * UNKNOWN_MEMBER_ID (a removed member must rejoin from scratch). */
static void member_remove_raw(sh_group_t *g, sh_group_member_t *m)
{
    member_fail_join(m, SH_KERR_UNKNOWN_MEMBER_ID, (sh_slice_t){(const uint8_t *)"", 0});
    member_fail_sync(m, SH_KERR_UNKNOWN_MEMBER_ID);
    sh_group_timer_cancel(g->coord, &m->session_timer);
    member_clear_pending_sync(g, m);
    if (m->prev)
        m->prev->next = m->next;
    else
        g->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        g->tail = m->prev;
    sh_group_map_del(&g->members, m->id.p, m->id.len);
    if (m->instance_id.p && sh_group_map_get(&g->statics, m->instance_id.p,
                                             m->instance_id.len) == m)
        sh_group_map_del(&g->statics, m->instance_id.p, m->instance_id.len);
    protos_count(g, m, -1);
    g->nmembers--;
    if (g->leader == m)
        g->leader = g->head;   /* the oldest member left, as Kafka's headOption */
    member_free(m);
}

static void group_prepare_rebalance(sh_group_t *g, const char *reason);
static void group_try_complete_join(sh_group_t *g);

static bool group_can_rebalance(const sh_group_t *g)
{
    return g->state == SH_GROUP_STABLE || g->state == SH_GROUP_COMPLETING_REBALANCE ||
           g->state == SH_GROUP_EMPTY;
}

static void group_maybe_prepare_rebalance(sh_group_t *g, const char *reason)
{
    if (group_can_rebalance(g))
        group_prepare_rebalance(g, reason);
    else if (g->state == SH_GROUP_PREPARING_REBALANCE)
        group_try_complete_join(g);
}

static void member_remove(sh_group_t *g, sh_group_member_t *m, const char *reason)
{
    sh_log(SH_LOG_INFO, "group", "removing member \"%s\" from group \"%s\" (%s)", MID(m), GID(g),
           reason);
    member_remove_raw(g, m);
    switch (g->state) {
    case SH_GROUP_STABLE:
    case SH_GROUP_COMPLETING_REBALANCE:
        group_prepare_rebalance(g, reason);
        break;
    case SH_GROUP_PREPARING_REBALANCE:
        group_try_complete_join(g);
        break;
    default:
        break;
    }
}

static void session_fire(sh_timer_t *t, void *arg)
{
    sh_group_member_t *m = arg;
    sh_group_t *g = m->group;
    (void)t;
    /* Parked members cannot heartbeat: Kafka keeps them until the join
     * phase ends (which restarts every session), except members new to
     * this rebalance, which get the new-member timeout. */
    if ((m->join_fn && !m->is_new) || m->sync_fn) {
        sh_group_member_touch(m);
        return;
    }
    member_remove(g, m, m->is_new ? "new member did not complete its join in time"
                                  : "session timeout expired");
    sh_group_release(g);
}

static void pending_fire(sh_timer_t *t, void *arg)
{
    sh_group_pending_t *p = arg;
    sh_group_t *g = p->group;
    (void)t;
    sh_log(SH_LOG_DEBUG, "group", "pending member \"%s\" of group \"%s\" did not join in time",
           sh_group_printable(p->id.p, p->id.len), GID(g));
    sh_group_map_del(&g->pending, p->id.p, p->id.len);
    pending_free(g, p);
    if (g->state == SH_GROUP_PREPARING_REBALANCE)
        group_try_complete_join(g);
    sh_group_release(g);
}

static bool pending_remove(sh_group_t *g, sh_slice_t id)
{
    sh_group_pending_t *p = sh_group_map_del(&g->pending, id.ptr ? (const void *)id.ptr : "",
                                             id.len);
    if (!p)
        return false;
    pending_free(g, p);
    return true;
}

/* ============================================================ rebalance */

/* Every member that is waiting in SyncGroup gets err and loses its
 * assignment (Kafka's resetAndPropagateAssignmentError). */
static void group_reset_assignments(sh_group_t *g, int16_t err)
{
    for (sh_group_member_t *m = g->head; m; m = m->next) {
        free(m->assignment);
        m->assignment = NULL;
        m->assignment_len = 0;
        member_fail_sync(m, err);
    }
}

static void group_clear_pending_sync(sh_group_t *g)
{
    for (sh_group_member_t *m = g->head; m; m = m->next)
        m->pending_sync = false;
    g->npending_sync = 0;
    sh_group_timer_cancel(g->coord, &g->sync_timer);
}

static void group_prepare_rebalance(sh_group_t *g, const char *reason)
{
    sh_group_coord_t *c = g->coord;
    if (g->state == SH_GROUP_COMPLETING_REBALANCE)
        group_reset_assignments(g, SH_KERR_REBALANCE_IN_PROGRESS);
    group_clear_pending_sync(g);
    int64_t now = sh_group_now(c);
    int32_t rebalance_ms = group_rebalance_timeout(g);
    if (g->state == SH_GROUP_EMPTY) {
        /* Wait for the rest of a starting fleet: the delay restarts while
         * new members keep arriving, up to the rebalance timeout. */
        int32_t delay = c->cfg.initial_rebalance_delay_ms;
        g->join_initial = true;
        g->new_member_added = false;
        g->initial_remaining_ms = rebalance_ms > delay ? (int64_t)rebalance_ms - delay : 0;
        sh_group_timer_arm(c, &g->join_timer, now + delay);
    } else {
        g->join_initial = false;
        sh_group_timer_arm(c, &g->join_timer, now + rebalance_ms);
    }
    sh_log(SH_LOG_INFO, "group", "preparing to rebalance group \"%s\" in state %s with old "
                                 "generation %d (reason: %s)",
           GID(g), sh_group_state_name(g->state), g->generation, reason);
    g->state = SH_GROUP_PREPARING_REBALANCE;
    if (!g->join_initial)
        group_try_complete_join(g);
}

/* The leader must be a member that rejoined; false if nobody did. */
static bool group_elect_joined_leader(sh_group_t *g)
{
    if (!g->leader)
        return false;
    if (g->leader->join_fn)
        return true;
    for (sh_group_member_t *m = g->head; m; m = m->next) {
        if (m->join_fn) {
            g->leader = m;
            return true;
        }
    }
    return false;
}

static void group_compute_subscribed(sh_group_t *g);

static void group_init_next_generation(sh_group_t *g)
{
    g->generation++;
    str_free(&g->protocol_name);
    group_clear_pending_sync(g);
    if (g->nmembers > 0) {
        const sh_group_str_t *sel = group_select_protocol(g);
        if (sel && str_set(&g->protocol_name, str_slice(sel)) != SH_OK)
            sh_log(SH_LOG_ERROR, "group", "out of memory selecting the protocol of \"%s\"",
                   GID(g));
        g->state = SH_GROUP_COMPLETING_REBALANCE;
    } else {
        g->state = SH_GROUP_EMPTY;
        g->empty_since_ms = sh_group_wall(g->coord);
    }
    group_compute_subscribed(g);
}

/* The leader's JoinGroup response lists every member with its metadata
 * for the selected protocol. Array malloc'd; slices borrow the group. */
static sh_join_group_response_join_group_response_member_t *group_member_list(sh_group_t *g,
                                                                            int32_t *n)
{
    *n = 0;
    if (g->nmembers == 0)
        return NULL;
    sh_join_group_response_join_group_response_member_t *list =
        calloc((size_t)g->nmembers, sizeof(*list));
    if (!list)
        return NULL;
    int32_t i = 0;
    for (sh_group_member_t *m = g->head; m; m = m->next, i++) {
        const sh_group_proto_t *p = member_proto(m, &g->protocol_name);
        list[i].member_id = str_slice(&m->id);
        list[i].group_instance_id = str_slice(&m->instance_id);
        list[i].metadata = p ? (sh_slice_t){p->metadata, p->metadata_len}
                             : (sh_slice_t){(const uint8_t *)"", 0};
    }
    *n = i;
    return list;
}

/* A successful JoinGroup answer for m in the current generation. */
static void join_reply_current(sh_group_t *g, sh_group_member_t *m, sh_group_reply_fn fn,
                               void *arg, bool with_members, bool skip_assignment,
                               const sh_group_str_t *leader_override)
{
    sh_join_group_response_t r;
    sh_join_group_response_init(&r);
    r.error_code = 0;
    r.generation_id = g->generation;
    r.protocol_type = str_slice(&g->protocol_type);
    r.protocol_name = str_slice(&g->protocol_name);
    const sh_group_str_t *leader = leader_override ? leader_override
                                                   : (g->leader ? &g->leader->id : NULL);
    r.leader = leader && leader->p ? str_slice(leader) : (sh_slice_t){(const uint8_t *)"", 0};
    r.member_id = str_slice(&m->id);
    r.skip_assignment = skip_assignment;
    sh_join_group_response_join_group_response_member_t *list = NULL;
    if (with_members) {
        list = group_member_list(g, &r.members_count);
        if (g->nmembers && !list) {
            join_reply_error(fn, arg, SH_KERR_COORDINATOR_NOT_AVAILABLE, str_slice(&m->id));
            return;
        }
        r.members = list;
    }
    fn(arg, &r);
    free(list);
}

static void group_complete_join(sh_group_t *g)
{
    sh_group_coord_t *c = g->coord;
    sh_group_timer_cancel(c, &g->join_timer);
    g->join_initial = false;
    /* Dynamic members that did not rejoin in time are out; static members
     * keep their place (they may be restarting, KIP-345). */
    for (sh_group_member_t *m = g->head, *next; m; m = next) {
        next = m->next;
        if (!m->join_fn && !m->instance_id.p) {
            sh_log(SH_LOG_INFO, "group", "member \"%s\" of group \"%s\" did not rejoin within "
                                         "the rebalance timeout",
                   MID(m), GID(g));
            member_remove_raw(g, m);
        }
    }
    if (g->state == SH_GROUP_DEAD)
        return;
    if (!group_elect_joined_leader(g) && g->nmembers > 0) {
        /* only static members that have not rejoined are left: wait for
         * them (or for their sessions to end) one more rebalance timeout */
        sh_group_timer_arm(c, &g->join_timer, sh_group_now(c) + group_rebalance_timeout(g));
        return;
    }
    group_init_next_generation(g);
    if (g->state == SH_GROUP_EMPTY) {
        sh_log(SH_LOG_INFO, "group", "group \"%s\" with generation %d is now empty", GID(g),
               g->generation);
        return;
    }
    sh_log(SH_LOG_INFO, "group", "stabilized group \"%s\" generation %d with %d members "
                                 "(protocol \"%s\", leader \"%s\")",
           GID(g), g->generation, g->nmembers,
           g->protocol_name.p ? sh_group_printable(g->protocol_name.p, g->protocol_name.len) : "",
           g->leader ? MID(g->leader) : "");
    for (sh_group_member_t *m = g->head; m; m = m->next) {
        sh_group_reply_fn fn;
        void *arg;
        if (member_take_join(m, &fn, &arg, NULL))
            join_reply_current(g, m, fn, arg, m == g->leader, false, NULL);
        sh_group_member_touch(m);
        m->is_new = false;
        m->pending_sync = true;
        g->npending_sync++;
    }
    sh_group_timer_arm(c, &g->sync_timer, sh_group_now(c) + group_rebalance_timeout(g));
}

static void group_try_complete_join(sh_group_t *g)
{
    if (g->state == SH_GROUP_PREPARING_REBALANCE && !g->join_initial &&
        g->nawaiting_join == g->nmembers && g->pending.count == 0)
        group_complete_join(g);
}

static void join_fire(sh_timer_t *t, void *arg)
{
    sh_group_t *g = arg;
    sh_group_coord_t *c = g->coord;
    (void)t;
    if (g->join_initial && g->new_member_added && g->initial_remaining_ms > 0) {
        int64_t d = c->cfg.initial_rebalance_delay_ms;
        if (d > g->initial_remaining_ms)
            d = g->initial_remaining_ms;
        g->new_member_added = false;
        g->initial_remaining_ms -= d;
        sh_group_timer_arm(c, &g->join_timer, sh_group_now(c) + d);
        return;
    }
    group_complete_join(g);
    sh_group_release(g);
}

static void sync_fire(sh_timer_t *t, void *arg)
{
    sh_group_t *g = arg;
    (void)t;
    if (g->state != SH_GROUP_COMPLETING_REBALANCE && g->state != SH_GROUP_STABLE)
        return;
    int32_t removed = 0;
    for (sh_group_member_t *m = g->head, *next; m; m = next) {
        next = m->next;
        if (m->pending_sync) {
            sh_log(SH_LOG_INFO, "group", "member \"%s\" of group \"%s\" did not send SyncGroup "
                                         "within the rebalance timeout",
                   MID(m), GID(g));
            member_remove_raw(g, m);
            removed++;
        }
    }
    if (removed)
        group_prepare_rebalance(g, "members failed to sync in time");
    sh_group_release(g);
}

/* ========================================================== JoinGroup */

static sh_group_member_t *member_new(sh_group_t *g, sh_group_str_t *id,
                                     const sh_group_client_t *client,
                                     const sh_join_group_request_t *req,
                                     int32_t rebalance_timeout_ms)
{
    sh_group_member_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->group = g;
    m->id = *id; /* taken */
    id->p = NULL;
    id->len = 0;
    sh_timer_init(&m->session_timer, session_fire, m);
    if (str_set(&m->instance_id, req->group_instance_id) != SH_OK ||
        str_set(&m->client_id, sh_slice_str(client->client_id ? client->client_id : "")) != SH_OK ||
        str_set(&m->client_host, sh_slice_str(client->client_host ? client->client_host : "")) !=
            SH_OK ||
        str_set(&m->protocol_type, req->protocol_type) != SH_OK ||
        protos_copy(req, &m->protos, &m->nprotos) != SH_OK) {
        member_free(m);
        return NULL;
    }
    m->session_timeout_ms = req->session_timeout_ms;
    m->rebalance_timeout_ms = rebalance_timeout_ms;
    return m;
}

/* Kafka's addMemberAndRebalance. id is taken. */
static void group_add_member(sh_group_t *g, sh_group_str_t *id, const sh_group_client_t *client,
                             int16_t version, const sh_join_group_request_t *req,
                             int32_t rebalance_timeout_ms, sh_group_reply_fn fn, void *arg)
{
    sh_group_coord_t *c = g->coord;
    sh_slice_t id_slice = str_slice(id);
    sh_group_member_t *m = member_new(g, id, client, req, rebalance_timeout_ms);
    if (!m || sh_group_map_put(&g->members, m->id.p, m->id.len, m) != SH_OK)
        goto nomem;
    if (protos_count(g, m, 1) != SH_OK) {
        sh_group_map_del(&g->members, m->id.p, m->id.len);
        goto nomem;
    }
    if (m->instance_id.p &&
        sh_group_map_put(&g->statics, m->instance_id.p, m->instance_id.len, m) != SH_OK) {
        protos_count(g, m, -1);
        sh_group_map_del(&g->members, m->id.p, m->id.len);
        goto nomem;
    }
    if (g->nmembers == 0) {
        /* the first member sets the group's protocol type */
        str_free(&g->protocol_type);
        if (str_set(&g->protocol_type, str_slice(&m->protocol_type)) != SH_OK) {
            protos_count(g, m, -1);
            if (m->instance_id.p)
                sh_group_map_del(&g->statics, m->instance_id.p, m->instance_id.len);
            sh_group_map_del(&g->members, m->id.p, m->id.len);
            goto nomem;
        }
    }
    m->prev = g->tail;
    if (g->tail)
        g->tail->next = m;
    else
        g->head = m;
    g->tail = m;
    g->nmembers++;
    if (!g->leader)
        g->leader = m;
    m->is_new = true;
    if (g->state == SH_GROUP_PREPARING_REBALANCE && g->join_initial)
        g->new_member_added = true;
    member_park_join(m, version, fn, arg);
    /* It has no id to heartbeat with until the join completes, and we
     * cannot tell whether its connection is still there: bound its wait. */
    sh_group_timer_arm(c, &m->session_timer,
                       sh_group_now(c) + SH_GROUP_NEW_MEMBER_JOIN_TIMEOUT_MS);
    if (!m->instance_id.p)
        pending_remove(g, str_slice(&m->id));
    sh_log(SH_LOG_DEBUG, "group", "member \"%s\" joins group \"%s\" in state %s", MID(m),
           GID(g), sh_group_state_name(g->state));
    group_maybe_prepare_rebalance(g, "a new member joined");
    return;
nomem:
    if (m)
        member_free(m);
    sh_log(SH_LOG_ERROR, "group", "out of memory adding a member to group \"%s\"", GID(g));
    join_reply_error(fn, arg, SH_KERR_COORDINATOR_NOT_AVAILABLE, id_slice.ptr ? id_slice
                                                                             : SH_SLICE_NULL);
}

/* A static member restarting with no member id replaces its old
 * incarnation (KIP-345): the old id is fenced, and the group does not
 * rebalance when nothing else changes. new_id is taken. */
static void group_replace_static(sh_group_t *g, sh_group_member_t *m, sh_group_str_t *new_id,
                                 int16_t version, const sh_join_group_request_t *req,
                                 int32_t rebalance_timeout_ms, sh_group_reply_fn fn, void *arg)
{
    sh_group_str_t old_leader = {0};
    if (g->leader)
        str_set(&old_leader, str_slice(&g->leader->id));
    member_fail_join(m, SH_KERR_FENCED_INSTANCE_ID, str_slice(&m->id));
    member_fail_sync(m, SH_KERR_FENCED_INSTANCE_ID);
    sh_log(SH_LOG_INFO, "group", "static member \"%s\" of group \"%s\" rejoined as \"%s\"; "
                                 "the old member id is fenced",
           sh_group_printable(m->instance_id.p, m->instance_id.len), GID(g),
           sh_group_printable(new_id->p, new_id->len));
    sh_group_map_del(&g->members, m->id.p, m->id.len);
    sh_group_str_t prev = m->id;
    m->id = *new_id;
    new_id->p = NULL;
    new_id->len = 0;
    if (sh_group_map_put(&g->members, m->id.p, m->id.len, m) != SH_OK) {
        /* keep the old identity rather than lose the member */
        str_free(&m->id);
        m->id = prev;
        sh_group_map_put(&g->members, m->id.p, m->id.len, m);
        join_reply_error(fn, arg, SH_KERR_COORDINATOR_NOT_AVAILABLE, SH_SLICE_NULL);
        str_free(&old_leader);
        return;
    }
    str_free(&prev);
    if (member_update(g, m, req, rebalance_timeout_ms) != SH_OK) {
        join_reply_error(fn, arg, SH_KERR_COORDINATOR_NOT_AVAILABLE, str_slice(&m->id));
        str_free(&old_leader);
        return;
    }
    sh_group_member_touch(m);
    member_park_join(m, version, fn, arg);

    switch (g->state) {
    case SH_GROUP_STABLE: {
        const sh_group_str_t *sel = group_select_protocol(g);
        if (sel && g->protocol_name.p && sel->len == g->protocol_name.len &&
            memcmp(sel->p, g->protocol_name.p, sel->len) == 0) {
            sh_group_reply_fn rfn = NULL;
            void *rarg = NULL;
            int16_t v = 0;
            if (!member_take_join(m, &rfn, &rarg, &v))
                break;
            if (v >= 9) {
                /* v9: the leader gets the members but is told to keep the
                 * current assignment (KIP-814) */
                bool leader = g->leader == m;
                join_reply_current(g, m, rfn, rarg, leader, leader, NULL);
            } else {
                /* older clients: name the previous leader id, so that a
                 * replaced leader does not compute an assignment nobody
                 * would receive; it syncs as a follower */
                join_reply_current(g, m, rfn, rarg, false, false,
                                   old_leader.p ? &old_leader : NULL);
            }
        } else {
            group_maybe_prepare_rebalance(g, "a static member rejoined with other protocols");
        }
        break;
    }
    case SH_GROUP_COMPLETING_REBALANCE:
        /* the leader may already be assigning to the old member id */
        group_prepare_rebalance(g, "a static member rejoined during the sync phase");
        break;
    case SH_GROUP_PREPARING_REBALANCE:
        group_try_complete_join(g);
        break;
    default:
        break;
    }
    str_free(&old_leader);
}

static void join_new_member(sh_group_t *g, const sh_group_client_t *client, int16_t version,
                            const sh_join_group_request_t *req, int32_t rebalance_timeout_ms,
                            sh_group_reply_fn fn, void *arg)
{
    sh_slice_t none = {(const uint8_t *)"", 0};
    if (g->state == SH_GROUP_DEAD) {
        join_reply_error(fn, arg, SH_KERR_COORDINATOR_NOT_AVAILABLE, none);
        return;
    }
    if (!group_supports(g, req)) {
        join_reply_error(fn, arg, SH_KERR_INCONSISTENT_GROUP_PROTOCOL, none);
        return;
    }
    sh_group_str_t id;
    sh_slice_t prefix = req->group_instance_id.ptr ? req->group_instance_id
                                                   : sh_slice_str(client->client_id);
    if (member_id_new(prefix, &id) != SH_OK) {
        join_reply_error(fn, arg, SH_KERR_COORDINATOR_NOT_AVAILABLE, none);
        return;
    }
    if (req->group_instance_id.ptr) {
        sh_group_member_t *old = static_find(g, req->group_instance_id);
        if (old)
            group_replace_static(g, old, &id, version, req, rebalance_timeout_ms, fn, arg);
        else
            group_add_member(g, &id, client, version, req, rebalance_timeout_ms, fn, arg);
        str_free(&id);
        return;
    }
    if (version >= 4) {
        /* KIP-394: hand out the id first, so a client that never comes
         * back (or retries after a timeout) does not leave a member
         * behind that the rebalance would wait for */
        sh_group_pending_t *p = calloc(1, sizeof(*p));
        if (!p || sh_group_map_put(&g->pending, id.p, id.len, p) != SH_OK) {
            free(p);
            join_reply_error(fn, arg, SH_KERR_COORDINATOR_NOT_AVAILABLE, none);
            str_free(&id);
            return;
        }
        p->group = g;
        p->id = id;
        sh_timer_init(&p->timer, pending_fire, p);
        sh_group_timer_arm(g->coord, &p->timer, sh_group_now(g->coord) + req->session_timeout_ms);
        join_reply_error(fn, arg, SH_KERR_MEMBER_ID_REQUIRED, str_slice(&p->id));
        return;
    }
    group_add_member(g, &id, client, version, req, rebalance_timeout_ms, fn, arg);
    str_free(&id);
}

static void join_existing_member(sh_group_t *g, const sh_group_client_t *client,
                                 int16_t version, const sh_join_group_request_t *req,
                                 int32_t rebalance_timeout_ms, sh_group_reply_fn fn, void *arg)
{
    if (g->state == SH_GROUP_DEAD) {
        join_reply_error(fn, arg, SH_KERR_COORDINATOR_NOT_AVAILABLE, req->member_id);
        return;
    }
    if (!group_supports(g, req)) {
        join_reply_error(fn, arg, SH_KERR_INCONSISTENT_GROUP_PROTOCOL, req->member_id);
        return;
    }
    if (sh_group_map_get(&g->pending, req->member_id.ptr, req->member_id.len)) {
        /* pending ids are only ever given to dynamic members */
        if (req->group_instance_id.ptr) {
            join_reply_error(fn, arg, SH_KERR_UNKNOWN_MEMBER_ID, req->member_id);
            return;
        }
        sh_group_str_t id;
        if (str_set(&id, req->member_id) != SH_OK) {
            join_reply_error(fn, arg, SH_KERR_COORDINATOR_NOT_AVAILABLE, req->member_id);
            return;
        }
        group_add_member(g, &id, client, version, req, rebalance_timeout_ms, fn, arg);
        str_free(&id);
        return;
    }
    int16_t err = sh_group_member_validate(g, req->member_id, req->group_instance_id);
    if (err) {
        join_reply_error(fn, arg, err, req->member_id);
        return;
    }
    sh_group_member_t *m = sh_group_member_find(g, req->member_id);
    bool update = true;
    switch (g->state) {
    case SH_GROUP_PREPARING_REBALANCE:
        break;
    case SH_GROUP_COMPLETING_REBALANCE:
        /* the same metadata again: it lost our answer; repeat it */
        update = !member_matches(m, req);
        break;
    case SH_GROUP_STABLE:
        /* a leader's JoinGroup always rebalances: that is how it reacts to
         * changes only it sees (new partitions of subscribed topics) */
        update = g->leader == m || !member_matches(m, req);
        break;
    default:
        join_reply_error(fn, arg, SH_KERR_UNKNOWN_MEMBER_ID, req->member_id);
        return;
    }
    if (!update) {
        sh_group_member_touch(m);
        join_reply_current(g, m, fn, arg,
                           g->state == SH_GROUP_COMPLETING_REBALANCE && g->leader == m, false,
                           NULL);
        return;
    }
    if (member_update(g, m, req, rebalance_timeout_ms) != SH_OK) {
        join_reply_error(fn, arg, SH_KERR_COORDINATOR_NOT_AVAILABLE, req->member_id);
        return;
    }
    member_park_join(m, version, fn, arg);
    group_maybe_prepare_rebalance(g, "a member rejoined");
}

/* Kafka's acceptJoiningMember (group.max.size). */
static bool group_accepts(const sh_group_t *g, sh_slice_t member_id)
{
    const sh_group_member_t *m = sh_group_map_get(&g->members, member_id.ptr ? (const void *)member_id.ptr : "",
                                                  member_id.len);
    switch (g->state) {
    case SH_GROUP_PREPARING_REBALANCE:
        return (m && m->join_fn) || g->nawaiting_join < g->coord->cfg.max_size;
    case SH_GROUP_COMPLETING_REBALANCE:
    case SH_GROUP_STABLE:
        return m || g->nmembers < g->coord->cfg.max_size;
    default:
        return true;
    }
}

void sh_group_join(sh_group_coord_t *c, const sh_group_client_t *client, int16_t version,
                   const sh_join_group_request_t *req, sh_group_reply_fn fn, void *arg)
{
    sh_slice_t member_id = req->member_id.ptr ? req->member_id : (sh_slice_t){(const uint8_t *)"", 0};
    if (c->stopped) {
        join_reply_error(fn, arg, SH_KERR_COORDINATOR_NOT_AVAILABLE, member_id);
        return;
    }
    if (!req->group_id.ptr || req->group_id.len == 0) {
        join_reply_error(fn, arg, SH_KERR_INVALID_GROUP_ID, member_id);
        return;
    }
    if (req->session_timeout_ms < c->cfg.min_session_timeout_ms ||
        req->session_timeout_ms > c->cfg.max_session_timeout_ms) {
        join_reply_error(fn, arg, SH_KERR_INVALID_SESSION_TIMEOUT, member_id);
        return;
    }
    size_t meta_bytes = 0;
    for (int32_t i = 0; i < req->protocols_count; i++)
        meta_bytes += req->protocols[i].name.len + req->protocols[i].metadata.len;
    if (meta_bytes > SH_GROUP_MEMBER_METADATA_MAX ||
        req->protocols_count > SH_GROUP_MEMBER_PROTOCOLS_MAX) {
        sh_log(SH_LOG_WARN, "group", "refusing JoinGroup of group \"%s\": %d protocols with "
                                     "%zu bytes of metadata (limits %d and %d)",
               sh_group_printable(req->group_id.ptr, req->group_id.len), req->protocols_count,
               meta_bytes, SH_GROUP_MEMBER_PROTOCOLS_MAX, SH_GROUP_MEMBER_METADATA_MAX);
        join_reply_error(fn, arg, SH_KERR_INVALID_REQUEST, member_id);
        return;
    }
    /* v0 has no rebalance timeout: it was the session timeout */
    int32_t rebalance_ms = req->rebalance_timeout_ms;
    if (version == 0 || rebalance_ms < 0)
        rebalance_ms = req->session_timeout_ms;
    if (req->reason.ptr)
        sh_log(SH_LOG_DEBUG, "group", "JoinGroup of group \"%s\", reason: %s",
               sh_group_printable(req->group_id.ptr, req->group_id.len),
               sh_group_printable(req->reason.ptr, req->reason.len));

    bool unknown = member_id.len == 0;
    sh_group_t *g = sh_group_find(c, req->group_id);
    if (!g) {
        if (!unknown) {
            /* a member of a group we do not know (e.g. from before a
             * restart): it must rejoin without its id */
            join_reply_error(fn, arg, SH_KERR_UNKNOWN_MEMBER_ID, member_id);
            return;
        }
        g = sh_group_get_or_create(c, req->group_id);
        if (!g) {
            join_reply_error(fn, arg, SH_KERR_COORDINATOR_NOT_AVAILABLE, member_id);
            return;
        }
    }
    if (!group_accepts(g, member_id)) {
        sh_group_member_t *m = sh_group_member_find(g, member_id);
        sh_log(SH_LOG_INFO, "group", "group \"%s\" is full (group.max.size %d)", GID(g),
               c->cfg.max_size);
        if (m)
            member_remove(g, m, "the group is over its maximum size");
        join_reply_error(fn, arg, SH_KERR_GROUP_MAX_SIZE_REACHED,
                         (sh_slice_t){(const uint8_t *)"", 0});
    } else if (unknown) {
        join_new_member(g, client, version, req, rebalance_ms, fn, arg);
    } else {
        join_existing_member(g, client, version, req, rebalance_ms, fn, arg);
    }
    sh_group_release(g);
}

/* ========================================================== SyncGroup */

static void sync_reply_ok(sh_group_t *g, sh_group_member_t *m, sh_group_reply_fn fn, void *arg)
{
    sh_sync_group_response_t r;
    sh_sync_group_response_init(&r);
    r.error_code = 0;
    r.protocol_type = str_slice(&g->protocol_type);
    r.protocol_name = str_slice(&g->protocol_name);
    r.assignment = m->assignment ? (sh_slice_t){m->assignment, m->assignment_len}
                                 : (sh_slice_t){(const uint8_t *)"", 0};
    fn(arg, &r);
}

/* The leader's assignment: members it does not name get an empty one. */
static sh_err_t group_set_assignment(sh_group_t *g, const sh_sync_group_request_t *req)
{
    for (sh_group_member_t *m = g->head; m; m = m->next) {
        free(m->assignment);
        m->assignment = NULL;
        m->assignment_len = 0;
    }
    for (int32_t i = 0; i < req->assignments_count; i++) {
        const sh_sync_group_request_sync_group_request_assignment_t *a = &req->assignments[i];
        sh_group_member_t *m = sh_group_member_find(g, a->member_id);
        if (!m)
            continue; /* gone meanwhile, or never existed: Kafka ignores it too */
        uint8_t *copy = malloc(a->assignment.len ? a->assignment.len : 1);
        if (!copy)
            return SH_E_NOMEM;
        if (a->assignment.len)
            memcpy(copy, a->assignment.ptr, a->assignment.len);
        free(m->assignment);
        m->assignment = copy;
        m->assignment_len = a->assignment.len;
    }
    return SH_OK;
}

void sh_group_sync(sh_group_coord_t *c, int16_t version, const sh_sync_group_request_t *req,
                   sh_group_reply_fn fn, void *arg)
{
    (void)version;
    if (c->stopped) {
        sync_reply_error(fn, arg, SH_KERR_COORDINATOR_NOT_AVAILABLE);
        return;
    }
    if (!req->group_id.ptr || req->group_id.len == 0) {
        sync_reply_error(fn, arg, SH_KERR_INVALID_GROUP_ID);
        return;
    }
    sh_group_t *g = sh_group_find(c, req->group_id);
    if (!g) {
        sync_reply_error(fn, arg, SH_KERR_UNKNOWN_MEMBER_ID);
        return;
    }
    int16_t err = 0;
    if (g->state == SH_GROUP_DEAD)
        err = SH_KERR_COORDINATOR_NOT_AVAILABLE;
    else if ((err = sh_group_member_validate(g, req->member_id, req->group_instance_id)))
        ;
    else if (req->generation_id != g->generation)
        err = SH_KERR_ILLEGAL_GENERATION;
    else if ((req->protocol_type.ptr && g->protocol_type.p &&
              !str_eq(&g->protocol_type, req->protocol_type)) ||
             (req->protocol_name.ptr && g->protocol_name.p &&
              !str_eq(&g->protocol_name, req->protocol_name)))
        err = SH_KERR_INCONSISTENT_GROUP_PROTOCOL;
    else if (g->state == SH_GROUP_EMPTY)
        err = SH_KERR_UNKNOWN_MEMBER_ID;
    else if (g->state == SH_GROUP_PREPARING_REBALANCE)
        err = SH_KERR_REBALANCE_IN_PROGRESS;
    if (err) {
        sync_reply_error(fn, arg, err);
        sh_group_release(g);
        return;
    }
    sh_group_member_t *m = sh_group_member_find(g, req->member_id);
    member_clear_pending_sync(g, m);
    if (g->state == SH_GROUP_STABLE) {
        sync_reply_ok(g, m, fn, arg);
        sh_group_member_touch(m);
        return;
    }
    /* CompletingRebalance: wait for the leader's assignment */
    member_park_sync(m, fn, arg);
    if (g->leader != m)
        return;
    sh_log(SH_LOG_INFO, "group", "assignment received from leader \"%s\" of group \"%s\" for "
                                 "generation %d",
           MID(m), GID(g), g->generation);
    if (group_set_assignment(g, req) != SH_OK) {
        sh_log(SH_LOG_ERROR, "group", "out of memory storing the assignment of group \"%s\"",
               GID(g));
        group_reset_assignments(g, SH_KERR_COORDINATOR_NOT_AVAILABLE);
        group_prepare_rebalance(g, "could not store the assignment");
        return;
    }
    g->state = SH_GROUP_STABLE;
    for (sh_group_member_t *x = g->head; x; x = x->next) {
        sh_group_reply_fn sfn;
        void *sarg;
        if (member_take_sync(x, &sfn, &sarg)) {
            sync_reply_ok(g, x, sfn, sarg);
            sh_group_member_touch(x);
        }
    }
}

/* ========================================================== Heartbeat */

int16_t sh_group_heartbeat(sh_group_coord_t *c, int16_t version,
                           const sh_heartbeat_request_t *req)
{
    (void)version;
    if (c->stopped)
        return SH_KERR_COORDINATOR_NOT_AVAILABLE;
    if (!req->group_id.ptr || req->group_id.len == 0)
        return SH_KERR_INVALID_GROUP_ID;
    sh_group_t *g = sh_group_find(c, req->group_id);
    if (!g)
        return SH_KERR_UNKNOWN_MEMBER_ID;
    if (g->state == SH_GROUP_DEAD)
        return SH_KERR_COORDINATOR_NOT_AVAILABLE;
    int16_t err = sh_group_member_validate(g, req->member_id, req->group_instance_id);
    if (err)
        return err;
    if (req->generation_id != g->generation)
        return SH_KERR_ILLEGAL_GENERATION;
    sh_group_member_t *m = sh_group_member_find(g, req->member_id);
    switch (g->state) {
    case SH_GROUP_PREPARING_REBALANCE:
        sh_group_member_touch(m);
        return SH_KERR_REBALANCE_IN_PROGRESS;
    case SH_GROUP_COMPLETING_REBALANCE:
    case SH_GROUP_STABLE:
        /* members may heartbeat between their JoinGroup answer and
         * SyncGroup: that is a live member, not a rebalance */
        sh_group_member_touch(m);
        return 0;
    default:
        return SH_KERR_UNKNOWN_MEMBER_ID;
    }
}

/* ========================================================= LeaveGroup */

static int16_t leave_one(sh_group_t *g, sh_slice_t member_id, sh_slice_t instance_id)
{
    sh_group_member_t *m;
    if (!instance_id.ptr) {
        if (pending_remove(g, member_id)) {
            if (g->state == SH_GROUP_PREPARING_REBALANCE)
                group_try_complete_join(g);
            return 0;
        }
        m = sh_group_member_find(g, member_id);
        if (!m)
            return SH_KERR_UNKNOWN_MEMBER_ID;
    } else {
        m = static_find(g, instance_id);
        if (!m)
            return SH_KERR_UNKNOWN_MEMBER_ID;
        /* an admin may remove a static member by instance id alone */
        if (member_id.len && !str_eq(&m->id, member_id))
            return SH_KERR_FENCED_INSTANCE_ID;
    }
    member_remove(g, m, "the member left the group");
    return 0;
}

sh_err_t sh_group_leave(sh_group_coord_t *c, int16_t version,
                        const sh_leave_group_request_t *req, sh_arena_t *a,
                        sh_leave_group_response_t *out)
{
    sh_leave_group_response_init(out);
    sh_leave_group_request_member_identity_t single = {
        .member_id = req->member_id, .group_instance_id = SH_SLICE_NULL, .reason = SH_SLICE_NULL};
    const sh_leave_group_request_member_identity_t *ids = version <= 2 ? &single : req->members;
    int32_t n = version <= 2 ? 1 : (req->members_count > 0 ? req->members_count : 0);
    if (c->stopped) {
        out->error_code = SH_KERR_COORDINATOR_NOT_AVAILABLE;
        return SH_OK;
    }
    if (!req->group_id.ptr || req->group_id.len == 0) {
        out->error_code = SH_KERR_INVALID_GROUP_ID;
        return SH_OK;
    }
    sh_group_t *g = sh_group_find(c, req->group_id);
    if (g && g->state == SH_GROUP_DEAD) {
        out->error_code = SH_KERR_COORDINATOR_NOT_AVAILABLE;
        return SH_OK;
    }
    sh_leave_group_response_member_response_t *res =
        n ? sh_arena_calloc(a, (size_t)n, sizeof(*res)) : NULL;
    if (n && !res)
        return SH_E_NOMEM;
    for (int32_t i = 0; i < n; i++) {
        res[i].member_id = ids[i].member_id;
        res[i].group_instance_id = ids[i].group_instance_id;
        res[i].error_code = g ? leave_one(g, ids[i].member_id, ids[i].group_instance_id)
                              : SH_KERR_UNKNOWN_MEMBER_ID;
        if (ids[i].reason.ptr)
            sh_log(SH_LOG_DEBUG, "group", "LeaveGroup reason: %s",
                   sh_group_printable(ids[i].reason.ptr, ids[i].reason.len));
    }
    if (version <= 2) {
        out->error_code = res[0].error_code;
    } else {
        out->members = res;
        out->members_count = n;
    }
    sh_group_release(g);
    return SH_OK;
}

/* ===================================================== DescribeGroups */

static sh_err_t describe_one(sh_group_coord_t *c, int16_t version, bool want_ops,
                             sh_slice_t id, sh_arena_t *a,
                             sh_describe_groups_response_described_group_t *d)
{
    sh_slice_t empty = {(const uint8_t *)"", 0};
    sh_group_t *g = c->stopped ? NULL : sh_group_find(c, id);
    (void)version;
    d->error_code = c->stopped ? SH_KERR_COORDINATOR_NOT_AVAILABLE : 0;
    d->group_id = id;
    d->protocol_type = empty;
    d->protocol_data = empty;
    d->members = NULL;
    d->members_count = 0;
    d->authorized_operations = want_ops ? SH_GROUP_AUTHORIZED_OPS : SH_GROUP_OPS_NOT_REQUESTED;
    if (!g) {
        /* Kafka before DescribeGroups v6: an unknown group is "Dead" */
        d->group_state = sh_slice_str(c->stopped ? "" : "Dead");
        return SH_OK;
    }
    d->group_state = sh_slice_str(sh_group_state_name(g->state));
    if (g->protocol_type.p)
        d->protocol_type = str_slice(&g->protocol_type);
    bool with_data = g->state == SH_GROUP_STABLE || g->state == SH_GROUP_COMPLETING_REBALANCE;
    if (with_data && g->protocol_name.p)
        d->protocol_data = str_slice(&g->protocol_name);
    if (g->nmembers == 0)
        return SH_OK;
    d->members = sh_arena_calloc(a, (size_t)g->nmembers, sizeof(*d->members));
    if (!d->members)
        return SH_E_NOMEM;
    int32_t i = 0;
    for (sh_group_member_t *m = g->head; m; m = m->next, i++) {
        sh_describe_groups_response_described_group_member_t *dm = &d->members[i];
        dm->member_id = str_slice(&m->id);
        dm->group_instance_id = str_slice(&m->instance_id);
        dm->client_id = str_slice(&m->client_id);
        dm->client_host = str_slice(&m->client_host);
        dm->member_metadata = empty;
        dm->member_assignment = empty;
        if (with_data) {
            /* metadata and assignment only once a protocol is chosen */
            const sh_group_proto_t *p = member_proto(m, &g->protocol_name);
            if (p)
                dm->member_metadata = (sh_slice_t){p->metadata, p->metadata_len};
            if (m->assignment)
                dm->member_assignment = (sh_slice_t){m->assignment, m->assignment_len};
        }
    }
    d->members_count = i;
    return SH_OK;
}

sh_err_t sh_group_describe(sh_group_coord_t *c, int16_t version,
                           const sh_describe_groups_request_t *req, sh_arena_t *a,
                           sh_describe_groups_response_t *out)
{
    sh_describe_groups_response_init(out);
    int32_t n = req->groups_count > 0 ? req->groups_count : 0;
    if (n == 0)
        return SH_OK;
    out->groups = sh_arena_calloc(a, (size_t)n, sizeof(*out->groups));
    if (!out->groups)
        return SH_E_NOMEM;
    for (int32_t i = 0; i < n; i++) {
        sh_err_t err = describe_one(c, version, version >= 3 && req->include_authorized_operations,
                                    req->groups[i], a, &out->groups[i]);
        if (err != SH_OK)
            return err;
    }
    out->groups_count = n;
    return SH_OK;
}

/* ========================================================= ListGroups */

static bool slice_in_ci(const sh_slice_t *list, int32_t n, const char *s)
{
    size_t len = strlen(s);
    for (int32_t i = 0; i < n; i++)
        if (list[i].ptr && list[i].len == len && strncasecmp((const char *)list[i].ptr, s, len) == 0)
            return true;
    return false;
}

static int listed_cmp(const void *x, const void *y)
{
    const sh_list_groups_response_listed_group_t *a = x, *b = y;
    size_t n = a->group_id.len < b->group_id.len ? a->group_id.len : b->group_id.len;
    int r = n ? memcmp(a->group_id.ptr, b->group_id.ptr, n) : 0;
    if (r)
        return r;
    return a->group_id.len < b->group_id.len ? -1 : a->group_id.len > b->group_id.len;
}

sh_err_t sh_group_list(sh_group_coord_t *c, int16_t version, const sh_list_groups_request_t *req,
                       sh_arena_t *a, sh_list_groups_response_t *out)
{
    sh_list_groups_response_init(out);
    if (c->stopped) {
        out->error_code = SH_KERR_COORDINATOR_NOT_AVAILABLE;
        return SH_OK;
    }
    size_t total = c->groups.count;
    if (total == 0)
        return SH_OK;
    sh_list_groups_response_listed_group_t *list = sh_arena_calloc(a, total, sizeof(*list));
    if (!list)
        return SH_E_NOMEM;
    bool by_state = version >= 4 && req->states_filter_count > 0;
    bool by_type = version >= 5 && req->types_filter_count > 0;
    size_t n = 0, b = 0;
    sh_group_map_ent_t *it = NULL, *e;
    while ((e = sh_group_map_next(&c->groups, &b, &it))) {
        sh_group_t *g = e->val;
        if (g->state == SH_GROUP_DEAD)
            continue;
        const char *state = sh_group_state_name(g->state);
        if (by_state && !slice_in_ci(req->states_filter, req->states_filter_count, state))
            continue;
        /* every group here speaks the classic protocol */
        if (by_type && !slice_in_ci(req->types_filter, req->types_filter_count, "classic"))
            continue;
        list[n].group_id = str_slice(&g->id);
        list[n].protocol_type = g->protocol_type.p ? str_slice(&g->protocol_type)
                                                   : (sh_slice_t){(const uint8_t *)"", 0};
        list[n].group_state = sh_slice_str(state);
        list[n].group_type = sh_slice_str("classic");
        n++;
    }
    qsort(list, n, sizeof(*list), listed_cmp);
    out->groups = list;
    out->groups_count = (int32_t)n;
    return SH_OK;
}

/* ================================================ consumer subscription */

/* Read a big-endian int16/int32 from a bounded buffer. */
static bool rd16(const uint8_t **p, const uint8_t *end, int16_t *v)
{
    if (end - *p < 2)
        return false;
    *v = (int16_t)(((*p)[0] << 8) | (*p)[1]);
    *p += 2;
    return true;
}

static bool rd32(const uint8_t **p, const uint8_t *end, int32_t *v)
{
    if (end - *p < 4)
        return false;
    *v = (int32_t)(((uint32_t)(*p)[0] << 24) | ((uint32_t)(*p)[1] << 16) |
                   ((uint32_t)(*p)[2] << 8) | (*p)[3]);
    *p += 4;
    return true;
}

/*
 * Topics a member subscribes to, from its ConsumerProtocolSubscription
 * (version int16, then topics as int32 count + int16-length strings; the
 * rest does not matter here). Appends to g->subscribed; false if the
 * bytes do not parse, which makes the whole set unknown (Kafka then
 * treats no topic as subscribed).
 */
static bool subscription_parse(sh_group_t *g, const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    int16_t version, slen;
    int32_t count;
    if (!rd16(&p, end, &version) || version < 0 || !rd32(&p, end, &count) || count < 0 ||
        (size_t)count > (size_t)(end - p) / 2)
        return false;
    for (int32_t i = 0; i < count; i++) {
        if (!rd16(&p, end, &slen) || slen < 0 || end - p < slen)
            return false;
        sh_slice_t t = {p, (size_t)slen};
        p += slen;
        if (sh_group_subscribes(g, t))
            continue;
        sh_group_str_t *grown = realloc(g->subscribed, (size_t)(g->nsubscribed + 1) * sizeof(*grown));
        if (!grown)
            return false;
        g->subscribed = grown;
        if (str_set(&g->subscribed[g->nsubscribed], t) != SH_OK)
            return false;
        g->nsubscribed++;
    }
    return true;
}

static void group_compute_subscribed(sh_group_t *g)
{
    subscribed_clear(g);
    if (g->nmembers == 0 || !g->protocol_name.p || !g->protocol_type.p ||
        strcmp(g->protocol_type.p, "consumer") != 0)
        return;
    for (sh_group_member_t *m = g->head; m; m = m->next) {
        const sh_group_proto_t *p = member_proto(m, &g->protocol_name);
        if (!p || !subscription_parse(g, p->metadata, p->metadata_len)) {
            subscribed_clear(g);
            return;
        }
    }
    g->subscribed_known = true;
}

bool sh_group_subscribes(const sh_group_t *g, sh_slice_t topic)
{
    for (int32_t i = 0; i < g->nsubscribed; i++)
        if (str_eq(&g->subscribed[i], topic))
            return true;
    return false;
}

/* ====================================================== dead and stop */

void sh_group_mark_dead(sh_group_t *g)
{
    sh_group_coord_t *c = g->coord;
    g->deleting = true;
    g->state = SH_GROUP_DEAD;
    sh_group_timer_cancel(c, &g->join_timer);
    sh_group_timer_cancel(c, &g->sync_timer);
    /* an Empty group has no members, but it may have handed out ids */
    size_t b = 0;
    sh_group_map_ent_t *it = NULL, *e;
    while ((e = sh_group_map_next(&g->pending, &b, &it)))
        pending_free(g, e->val);
    sh_group_map_fini(&g->pending);
    sh_group_map_init(&g->pending);
}

void sh_group_unmark_dead(sh_group_t *g)
{
    g->deleting = false;
    g->state = SH_GROUP_EMPTY;
}

void sh_group_coord_stop(sh_group_coord_t *c)
{
    if (!c || c->stopped)
        return;
    sh_group_timer_cancel(c, &c->retention_timer);
    size_t b = 0;
    sh_group_map_ent_t *it = NULL, *e;
    while ((e = sh_group_map_next(&c->groups, &b, &it))) {
        sh_group_t *g = e->val;
        sh_group_timer_cancel(c, &g->join_timer);
        sh_group_timer_cancel(c, &g->sync_timer);
        for (sh_group_member_t *m = g->head; m; m = m->next) {
            member_fail_join(m, SH_KERR_NOT_COORDINATOR, str_slice(&m->id));
            member_fail_sync(m, SH_KERR_NOT_COORDINATOR);
            sh_group_timer_cancel(c, &m->session_timer);
        }
        size_t pb = 0;
        sh_group_map_ent_t *pit = NULL, *pe;
        while ((pe = sh_group_map_next(&g->pending, &pb, &pit)))
            sh_group_timer_cancel(c, &((sh_group_pending_t *)pe->val)->timer);
    }
    c->stopped = true;
}

void sh_group_coord_free(sh_group_coord_t *c)
{
    if (!c)
        return;
    sh_group_coord_stop(c);
    size_t b = 0;
    sh_group_map_ent_t *it = NULL, *e;
    while ((e = sh_group_map_next(&c->groups, &b, &it)))
        group_free(e->val);
    sh_group_map_fini(&c->groups);
    free(c);
}

/* ============================================================ testing */

sh_group_state_t sh_group_testing_state(sh_group_coord_t *c, const char *group_id,
                                        int32_t *generation, int32_t *members)
{
    sh_group_t *g = sh_group_find(c, sh_slice_str(group_id));
    if (generation)
        *generation = g ? g->generation : -1;
    if (members)
        *members = g ? g->nmembers : 0;
    return g ? g->state : SH_GROUP_DEAD;
}
