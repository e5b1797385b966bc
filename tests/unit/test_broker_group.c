/*
 * test_broker_group.c - the consumer group coordinator driven directly:
 * fake requests (reply callbacks that record what they get), a fake clock
 * (a timer heap and two counters the test advances), a fake topic source,
 * and a real SQLite metadata store in a temp directory for the offset
 * APIs. Covers the classic rebalance protocol (join, sync, heartbeat,
 * leave, generations, leaders, MEMBER_ID_REQUIRED, static members, the
 * initial rebalance delay, rebalance/session/sync timeouts), the errors
 * bad input gets while the group keeps working for the others, and
 * committed offsets (validation, durability across a coordinator restart,
 * OffsetDelete, DeleteGroups, ListGroups/DescribeGroups, retention).
 *
 * Time is entirely synthetic: nothing here depends on the wall clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/sh_group.h"
#include "common/sh_log.h"
#include "common/sh_timer.h"

/* ------------------------------------------------------------ fixture */

typedef struct {
    sh_timer_heap_t heap;
    int64_t now;   /* monotonic ms */
    int64_t wall;  /* wall-clock ms */
} fclock_t;

static int64_t fc_now(void *ctx) { return ((fclock_t *)ctx)->now; }
static int64_t fc_wall(void *ctx) { return ((fclock_t *)ctx)->wall; }
static sh_err_t fc_arm(void *ctx, sh_timer_t *t, int64_t deadline)
{
    return sh_timer_arm(&((fclock_t *)ctx)->heap, t, deadline);
}
static void fc_cancel(void *ctx, sh_timer_t *t) { sh_timer_cancel(&((fclock_t *)ctx)->heap, t); }

/* A topic source with topics "t" (4 partitions) and "u" (2). */
static sh_err_t ft_find(void *ctx, sh_arena_t *a, sh_slice_t name, sh_topic_view_t *out)
{
    (void)ctx;
    (void)a;
    memset(out, 0, sizeof(*out));
    if (sh_slice_eq_str(name, "t"))
        out->partition_count = 4;
    else if (sh_slice_eq_str(name, "u"))
        out->partition_count = 2;
    else
        return SH_E_NOTFOUND;
    out->name = name;
    return SH_OK;
}
static sh_err_t ft_list(void *ctx, sh_arena_t *a, sh_topic_view_t **out, int32_t *n)
{
    (void)ctx;
    (void)a;
    *out = NULL;
    *n = 0;
    return SH_OK;
}
static sh_err_t ft_find_id(void *ctx, sh_arena_t *a, sh_uuid_t id, sh_topic_view_t *out)
{
    (void)ctx;
    (void)a;
    (void)id;
    (void)out;
    return SH_E_NOTFOUND;
}
static const sh_topics_ops_t ft_ops = {.list = ft_list, .find = ft_find, .find_id = ft_find_id};

typedef struct {
    fclock_t clk;
    sh_group_clock_t clock;
    sh_group_config_t cfg;
    sh_topics_t topics;
    char dir[64];
    char url[128];
    sh_meta_t *meta;
    sh_group_coord_t *c;
    sh_arena_t a;
} fx_t;

static void fx_coord(fx_t *f)
{
    f->c = sh_group_coord_new(&f->cfg, &f->clock, f->meta, &f->topics);
    assert_non_null(f->c);
    assert_int_equal(sh_group_coord_load(f->c), SH_OK);
}

static int fx_setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    sh_timer_heap_init(&f->clk.heap);
    f->clk.now = 1000000;
    f->clk.wall = 1700000000000;
    f->clock = (sh_group_clock_t){.ctx = &f->clk, .now_ms = fc_now, .wall_ms = fc_wall,
                                  .arm = fc_arm, .cancel = fc_cancel};
    f->cfg = (sh_group_config_t){.node_id = 7,
                                 .min_session_timeout_ms = 1000,
                                 .max_session_timeout_ms = 60000,
                                 .initial_rebalance_delay_ms = 0,
                                 .max_size = 1000,
                                 .offsets_retention_ms = 3600000,
                                 .retention_check_interval_ms = 600000,
                                 .offset_metadata_max_bytes = 16};
    f->topics = (sh_topics_t){.ops = &ft_ops, .ctx = NULL};
    snprintf(f->dir, sizeof(f->dir), "/tmp/sh-group-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->url, sizeof(f->url), "sqlite://%s/meta.db", f->dir);
    assert_int_equal(sh_meta_open(f->url, &f->meta), SH_OK);
    sh_arena_init(&f->a, 4096);
    fx_coord(f);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;
    sh_group_coord_stop(f->c);
    sh_meta_close(f->meta);
    sh_group_coord_free(f->c);
    sh_timer_heap_fini(&f->clk.heap);
    sh_arena_fini(&f->a);
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        char p[128];
        snprintf(p, sizeof(p), "%s/meta.db%s", f->dir, suffix[i]);
        unlink(p);
    }
    assert_int_equal(rmdir(f->dir), 0);
    free(f);
    return 0;
}

/* Move time forward by ms, firing timers in deadline order. */
static void advance(fx_t *f, int64_t ms)
{
    int64_t target = f->clk.now + ms;
    for (;;) {
        int64_t next = sh_timer_heap_next_deadline(&f->clk.heap);
        if (next < 0 || next > target)
            break;
        if (next > f->clk.now)
            f->clk.now = next;
        sh_timer_heap_run(&f->clk.heap, f->clk.now);
    }
    f->clk.now = target;
    f->clk.wall += ms;
}

/* ------------------------------------------------------ recorded replies */

typedef struct {
    int calls;
    int16_t err;
    int32_t gen;
    char member_id[300];
    char leader[300];
    char protocol[64];
    bool protocol_null;
    bool skip;
    int32_t nmembers;
    char members[8][300];
    char member_meta[8][64];
    uint8_t assignment[128];
    size_t alen;
} rec_t;

static void cpy(char *dst, size_t n, sh_slice_t s)
{
    size_t len = s.len < n - 1 ? s.len : n - 1;
    if (len)
        memcpy(dst, s.ptr, len);
    dst[len] = '\0';
}

static void join_cb(void *arg, const void *resp)
{
    rec_t *r = arg;
    const sh_join_group_response_t *j = resp;
    r->calls++;
    r->err = j->error_code;
    r->gen = j->generation_id;
    cpy(r->member_id, sizeof(r->member_id), j->member_id);
    cpy(r->leader, sizeof(r->leader), j->leader);
    r->protocol_null = j->protocol_name.ptr == NULL;
    cpy(r->protocol, sizeof(r->protocol), j->protocol_name);
    r->skip = j->skip_assignment;
    r->nmembers = j->members_count;
    for (int32_t i = 0; i < j->members_count && i < 8; i++) {
        cpy(r->members[i], sizeof(r->members[i]), j->members[i].member_id);
        cpy(r->member_meta[i], sizeof(r->member_meta[i]), j->members[i].metadata);
    }
}

static void sync_cb(void *arg, const void *resp)
{
    rec_t *r = arg;
    const sh_sync_group_response_t *s = resp;
    r->calls++;
    r->err = s->error_code;
    r->alen = s->assignment.len < sizeof(r->assignment) ? s->assignment.len : 0;
    if (r->alen)
        memcpy(r->assignment, s->assignment.ptr, r->alen);
    r->protocol_null = s->protocol_name.ptr == NULL;
    cpy(r->protocol, sizeof(r->protocol), s->protocol_name);
}

/* ------------------------------------------------------------- requests */

typedef struct {
    const char *group;
    const char *member;          /* "" for none */
    const char *instance;        /* NULL for dynamic */
    const char *type;            /* protocol type */
    const char *protos[2];       /* protocol names (NULL ends) */
    const char *meta;            /* metadata for each protocol */
    size_t meta_len;             /* 0: strlen(meta) */
    int32_t session;
    int32_t rebalance;
    int16_t version;   /* 0: the default (5) */
    bool v0;           /* ask for version 0 */
    const char *client;
} jspec_t;

static void join(fx_t *f, rec_t *r, jspec_t s)
{
    sh_join_group_request_t req;
    sh_join_group_request_init(&req);
    sh_join_group_request_join_group_request_protocol_t p[2];
    int n = 0;
    for (; n < 2 && s.protos[n]; n++) {
        p[n].name = sh_slice_str(s.protos[n]);
        p[n].metadata = (sh_slice_t){(const uint8_t *)(s.meta ? s.meta : ""),
                                     s.meta_len ? s.meta_len : (s.meta ? strlen(s.meta) : 0)};
    }
    req.group_id = sh_slice_str(s.group ? s.group : "g");
    req.session_timeout_ms = s.session ? s.session : 10000;
    req.rebalance_timeout_ms = s.rebalance ? s.rebalance : 30000;
    req.member_id = sh_slice_str(s.member ? s.member : "");
    req.group_instance_id = s.instance ? sh_slice_str(s.instance) : SH_SLICE_NULL;
    req.protocol_type = sh_slice_str(s.type ? s.type : "consumer");
    req.protocols = n ? p : NULL;
    req.protocols_count = n;
    sh_group_client_t client = {.client_id = s.client ? s.client : "cli",
                                .client_host = "/127.0.0.1"};
    memset(r, 0, sizeof(*r));
    sh_group_join(f->c, &client, s.v0 ? 0 : (s.version ? s.version : 5), &req, join_cb, r);
}

/* J(.member = x, ...): a JoinGroup spec with the defaults below overridden
 * by the named fields (designated initializers: later ones win). */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Winitializer-overrides"
#else
#pragma GCC diagnostic ignored "-Woverride-init"
#endif
#define J(...) ((jspec_t){.protos = {"range", NULL}, .meta = "m", __VA_ARGS__})

typedef struct {
    const char *member;
    const uint8_t *bytes;
    size_t len;
} assign_t;

static void sync_(fx_t *f, rec_t *r, const char *group, const char *member, int32_t gen,
                  const char *instance, const assign_t *as, int n)
{
    sh_sync_group_request_t req;
    sh_sync_group_request_init(&req);
    sh_sync_group_request_sync_group_request_assignment_t a[8];
    for (int i = 0; i < n; i++) {
        a[i].member_id = sh_slice_str(as[i].member);
        a[i].assignment = (sh_slice_t){as[i].bytes, as[i].len};
    }
    req.group_id = sh_slice_str(group);
    req.generation_id = gen;
    req.member_id = sh_slice_str(member);
    req.group_instance_id = instance ? sh_slice_str(instance) : SH_SLICE_NULL;
    req.assignments = n ? a : NULL;
    req.assignments_count = n;
    memset(r, 0, sizeof(*r));
    sh_group_sync(f->c, 5, &req, sync_cb, r);
}

static int16_t hb(fx_t *f, const char *group, const char *member, int32_t gen,
                  const char *instance)
{
    sh_heartbeat_request_t req;
    sh_heartbeat_request_init(&req);
    req.group_id = sh_slice_str(group);
    req.member_id = sh_slice_str(member);
    req.generation_id = gen;
    req.group_instance_id = instance ? sh_slice_str(instance) : SH_SLICE_NULL;
    return sh_group_heartbeat(f->c, 4, &req);
}

static sh_group_state_t state_of(fx_t *f, const char *group, int32_t *gen, int32_t *members)
{
    return sh_group_testing_state(f->c, group, gen, members);
}

/* A v4+ dynamic member's two-step join; returns with r parked or answered. */
static void join_dynamic(fx_t *f, rec_t *r, jspec_t s, char *id_out, size_t idn)
{
    s.version = s.version ? s.version : 5;
    join(f, r, s);
    assert_int_equal(r->calls, 1);
    assert_int_equal(r->err, SH_KERR_MEMBER_ID_REQUIRED);
    assert_true(strlen(r->member_id) > 0);
    snprintf(id_out, idn, "%s", r->member_id);
    s.member = id_out;
    join(f, r, s);
}

static const uint8_t ASSIGN_A[] = {0, 1, 'A'};
static const uint8_t ASSIGN_B[] = {0, 1, 'B'};

/* Two members A (leader) and B in a Stable group g, generation *gen. */
static void stable_pair(fx_t *f, char *a, char *b, int32_t *gen)
{
    rec_t ra, rb, sa, sb;
    join_dynamic(f, &ra, J(.client = "A"), a, 300);
    advance(f, 0); /* initial delay 0 */
    assert_int_equal(ra.calls, 1);
    assert_int_equal(ra.err, 0);
    assert_int_equal(ra.gen, 1);
    assert_string_equal(ra.leader, a);
    assign_t as1[] = {{a, ASSIGN_A, sizeof(ASSIGN_A)}};
    sync_(f, &sa, "g", a, 1, NULL, as1, 1);
    assert_int_equal(sa.calls, 1);
    assert_int_equal(sa.err, 0);
    assert_int_equal(state_of(f, "g", NULL, NULL), SH_GROUP_STABLE);

    join_dynamic(f, &rb, J(.client = "B"), b, 300);
    assert_int_equal(rb.calls, 0); /* parked: A must rejoin */
    assert_int_equal(state_of(f, "g", NULL, NULL), SH_GROUP_PREPARING_REBALANCE);
    assert_int_equal(hb(f, "g", a, 1, NULL), SH_KERR_REBALANCE_IN_PROGRESS);
    join(f, &ra, J(.member = a));
    assert_int_equal(ra.calls, 1);
    assert_int_equal(rb.calls, 1);
    assert_int_equal(ra.err, 0);
    assert_int_equal(rb.err, 0);
    assert_int_equal(ra.gen, 2);
    assert_int_equal(rb.gen, 2);
    assert_string_equal(ra.leader, a);
    assert_string_equal(rb.leader, a);
    assert_int_equal(ra.nmembers, 2); /* the leader sees everyone */
    assert_int_equal(rb.nmembers, 0);
    assert_string_equal(ra.protocol, "range");
    assert_int_equal(state_of(f, "g", NULL, NULL), SH_GROUP_COMPLETING_REBALANCE);

    /* B's SyncGroup waits for the leader's */
    sync_(f, &sb, "g", b, 2, NULL, NULL, 0);
    assert_int_equal(sb.calls, 0);
    assign_t as2[] = {{a, ASSIGN_A, sizeof(ASSIGN_A)}, {b, ASSIGN_B, sizeof(ASSIGN_B)}};
    sync_(f, &sa, "g", a, 2, NULL, as2, 2);
    assert_int_equal(sa.calls, 1);
    assert_int_equal(sb.calls, 1);
    assert_int_equal(sa.err, 0);
    assert_int_equal(sb.err, 0);
    assert_memory_equal(sa.assignment, ASSIGN_A, sizeof(ASSIGN_A));
    assert_memory_equal(sb.assignment, ASSIGN_B, sizeof(ASSIGN_B));
    assert_string_equal(sb.protocol, "range");
    assert_int_equal(state_of(f, "g", gen, NULL), SH_GROUP_STABLE);
}

/* ---------------------------------------------------------- membership */

static void test_join_sync_two_members(void **state)
{
    fx_t *f = *state;
    char a[300], b[300];
    int32_t gen;
    stable_pair(f, a, b, &gen);
    assert_int_equal(gen, 2);
    assert_int_equal(hb(f, "g", a, 2, NULL), 0);
    assert_int_equal(hb(f, "g", b, 2, NULL), 0);
    /* a follower rejoining with the same metadata in Stable gets the
     * current generation without a rebalance */
    rec_t rb;
    join(f, &rb, J(.member = b));
    assert_int_equal(rb.calls, 1);
    assert_int_equal(rb.err, 0);
    assert_int_equal(rb.gen, 2);
    assert_int_equal(state_of(f, "g", NULL, NULL), SH_GROUP_STABLE);
    /* SyncGroup in Stable returns the member's assignment at once */
    rec_t sb;
    sync_(f, &sb, "g", b, 2, NULL, NULL, 0);
    assert_int_equal(sb.calls, 1);
    assert_memory_equal(sb.assignment, ASSIGN_B, sizeof(ASSIGN_B));
}

static void test_member_ids_and_versions(void **state)
{
    fx_t *f = *state;
    rec_t r;
    /* v3 joins without MEMBER_ID_REQUIRED */
    join(f, &r, J(.version = 3, .client = "kafka-python"));
    assert_int_equal(r.calls, 0);
    advance(f, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, 0);
    assert_int_equal(strncmp(r.member_id, "kafka-python-", 13), 0);
    assert_int_equal(strlen(r.member_id), 13 + 36);
    /* a member id from nowhere */
    rec_t x;
    join(f, &x, J(.member = "bogus"));
    assert_int_equal(x.err, SH_KERR_UNKNOWN_MEMBER_ID);
    join(f, &x, J(.group = "nosuch", .member = "bogus"));
    assert_int_equal(x.err, SH_KERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(state_of(f, "nosuch", NULL, NULL), SH_GROUP_DEAD); /* not created */
}

static void test_bad_input_keeps_group_working(void **state)
{
    fx_t *f = *state;
    char a[300], b[300];
    int32_t gen;
    stable_pair(f, a, b, &gen);
    rec_t r;

    join(f, &r, J(.group = ""));
    assert_int_equal(r.err, SH_KERR_INVALID_GROUP_ID);
    join(f, &r, J(.session = 999));
    assert_int_equal(r.err, SH_KERR_INVALID_SESSION_TIMEOUT);
    join(f, &r, J(.session = 60001));
    assert_int_equal(r.err, SH_KERR_INVALID_SESSION_TIMEOUT);
    /* empty protocol list, another protocol type, nothing in common */
    join(f, &r, ((jspec_t){.protos = {NULL}}));
    assert_int_equal(r.err, SH_KERR_INCONSISTENT_GROUP_PROTOCOL);
    join(f, &r, J(.type = "connect"));
    assert_int_equal(r.err, SH_KERR_INCONSISTENT_GROUP_PROTOCOL);
    join(f, &r, ((jspec_t){.protos = {"roundrobin", NULL}, .meta = "m"}));
    assert_int_equal(r.err, SH_KERR_INCONSISTENT_GROUP_PROTOCOL);
    join(f, &r, ((jspec_t){.member = b, .protos = {"roundrobin", NULL}, .meta = "m"}));
    assert_int_equal(r.err, SH_KERR_INCONSISTENT_GROUP_PROTOCOL);
    /* oversized metadata */
    char *big = malloc(SH_GROUP_MEMBER_METADATA_MAX + 1);
    memset(big, 'x', SH_GROUP_MEMBER_METADATA_MAX + 1);
    join(f, &r, J(.meta = big, .meta_len = SH_GROUP_MEMBER_METADATA_MAX + 1));
    assert_int_equal(r.err, SH_KERR_INVALID_REQUEST);
    join(f, &r, J(.member = a, .meta = big, .meta_len = SH_GROUP_MEMBER_METADATA_MAX + 1));
    assert_int_equal(r.err, SH_KERR_INVALID_REQUEST);
    free(big);
    /* wrong generation, unknown member */
    assert_int_equal(hb(f, "g", a, gen + 1, NULL), SH_KERR_ILLEGAL_GENERATION);
    assert_int_equal(hb(f, "g", a, gen - 1, NULL), SH_KERR_ILLEGAL_GENERATION);
    assert_int_equal(hb(f, "g", "bogus", gen, NULL), SH_KERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(hb(f, "nosuch", a, gen, NULL), SH_KERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(hb(f, "", a, gen, NULL), SH_KERR_INVALID_GROUP_ID);
    rec_t s;
    sync_(f, &s, "g", a, gen + 5, NULL, NULL, 0);
    assert_int_equal(s.err, SH_KERR_ILLEGAL_GENERATION);
    sync_(f, &s, "g", "bogus", gen, NULL, NULL, 0);
    assert_int_equal(s.err, SH_KERR_UNKNOWN_MEMBER_ID);
    /* none of that disturbed the group */
    assert_int_equal(state_of(f, "g", &gen, NULL), SH_GROUP_STABLE);
    assert_int_equal(gen, 2);
    assert_int_equal(hb(f, "g", a, gen, NULL), 0);
    assert_int_equal(hb(f, "g", b, gen, NULL), 0);
}

/* SyncGroup v5 names the protocol type and name it expects: another one
 * than the group's is INCONSISTENT_GROUP_PROTOCOL; null means "no check". */
static void test_sync_protocol_checks(void **state)
{
    fx_t *f = *state;
    char a[300], b[300];
    int32_t gen;
    stable_pair(f, a, b, &gen);
    sh_sync_group_request_t req;
    sh_sync_group_request_init(&req);
    req.group_id = sh_slice_str("g");
    req.generation_id = gen;
    req.member_id = sh_slice_str(b);
    rec_t r;
    req.protocol_type = sh_slice_str("consumer");
    req.protocol_name = sh_slice_str("roundrobin");
    memset(&r, 0, sizeof(r));
    sh_group_sync(f->c, 5, &req, sync_cb, &r);
    assert_int_equal(r.err, SH_KERR_INCONSISTENT_GROUP_PROTOCOL);
    req.protocol_type = sh_slice_str("connect");
    req.protocol_name = sh_slice_str("range");
    memset(&r, 0, sizeof(r));
    sh_group_sync(f->c, 5, &req, sync_cb, &r);
    assert_int_equal(r.err, SH_KERR_INCONSISTENT_GROUP_PROTOCOL);
    assert_true(r.protocol_null);
    req.protocol_type = sh_slice_str("consumer");
    memset(&r, 0, sizeof(r));
    sh_group_sync(f->c, 5, &req, sync_cb, &r);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.protocol, "range");
    assert_memory_equal(r.assignment, ASSIGN_B, sizeof(ASSIGN_B));
}

/* JoinGroup v0 has no rebalance timeout: the session timeout bounds the
 * join phase. */
static void test_join_v0_rebalance_timeout(void **state)
{
    fx_t *f = *state;
    rec_t ra, rb;
    join(f, &ra, J(.v0 = true, .session = 5000, .rebalance = 60000));
    advance(f, 0);
    assert_int_equal(ra.err, 0);
    rec_t sa;
    sync_(f, &sa, "g", ra.member_id, ra.gen, NULL, NULL, 0);
    assert_int_equal(sa.err, 0);
    /* a second member joins; the first keeps its session alive but does
     * not rejoin: the join phase ends after 5 s (v0: the session timeout),
     * not after the 60 s the v0 request cannot carry */
    join(f, &rb, J(.v0 = true, .session = 5000));
    assert_int_equal(rb.calls, 0);
    advance(f, 2500);
    assert_int_equal(hb(f, "g", ra.member_id, ra.gen, NULL), SH_KERR_REBALANCE_IN_PROGRESS);
    advance(f, 2499);
    assert_int_equal(rb.calls, 0);
    advance(f, 1);
    assert_int_equal(rb.calls, 1);
    assert_int_equal(rb.err, 0);
    assert_int_equal(rb.nmembers, 1); /* the first did not rejoin: removed */
}

static void test_session_expiry(void **state)
{
    fx_t *f = *state;
    char a[300], b[300];
    int32_t gen;
    stable_pair(f, a, b, &gen);
    /* A heartbeats, B goes silent; session timeout is 10 s */
    for (int i = 0; i < 3; i++) {
        advance(f, 3000);
        assert_int_equal(hb(f, "g", a, gen, NULL), 0);
    }
    advance(f, 3000); /* 12 s since B's last request */
    assert_int_equal(state_of(f, "g", NULL, NULL), SH_GROUP_PREPARING_REBALANCE);
    assert_int_equal(hb(f, "g", b, gen, NULL), SH_KERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(hb(f, "g", a, gen, NULL), SH_KERR_REBALANCE_IN_PROGRESS);
    rec_t ra;
    join(f, &ra, J(.member = a));
    assert_int_equal(ra.calls, 1);
    assert_int_equal(ra.gen, gen + 1);
    assert_int_equal(ra.nmembers, 1);
    assert_string_equal(ra.members[0], a);
}

static void test_rebalance_timeout_drops_laggards(void **state)
{
    fx_t *f = *state;
    char a[300], b[300], c[300];
    int32_t gen, members;
    stable_pair(f, a, b, &gen);
    rec_t rc, ra;
    join_dynamic(f, &rc, J(.client = "C", .rebalance = 20000), c, sizeof(c));
    join(f, &ra, J(.member = a));
    assert_int_equal(ra.calls, 0);
    /* B keeps heartbeating but never rejoins */
    for (int i = 0; i < 9; i++) {
        advance(f, 3000);
        assert_int_equal(hb(f, "g", b, gen, NULL), SH_KERR_REBALANCE_IN_PROGRESS);
    }
    assert_int_equal(ra.calls, 0);
    advance(f, 3001); /* 30 s, the largest rebalance timeout */
    assert_int_equal(ra.calls, 1);
    assert_int_equal(rc.calls, 1);
    assert_int_equal(ra.gen, gen + 1);
    assert_int_equal(state_of(f, "g", NULL, &members), SH_GROUP_COMPLETING_REBALANCE);
    assert_int_equal(members, 2);
    assert_int_equal(hb(f, "g", b, gen, NULL), SH_KERR_UNKNOWN_MEMBER_ID);
}

static void test_sync_timeout(void **state)
{
    fx_t *f = *state;
    char a[300], b[300], c[300];
    int32_t gen, members;
    stable_pair(f, a, b, &gen);
    rec_t rc, ra, rb, sa;
    join_dynamic(f, &rc, J(.client = "C"), c, sizeof(c));
    join(f, &ra, J(.member = a));
    join(f, &rb, J(.member = b));
    assert_int_equal(rc.calls, 1);
    /* A and B sync (A's assignment makes the group Stable); C never does */
    assign_t as[] = {{a, ASSIGN_A, sizeof(ASSIGN_A)}};
    sync_(f, &sa, "g", a, gen + 1, NULL, as, 1);
    assert_int_equal(sa.calls, 1);
    rec_t sb;
    sync_(f, &sb, "g", b, gen + 1, NULL, NULL, 0);
    assert_int_equal(sb.calls, 1);
    assert_int_equal(sb.alen, 0); /* not named by the leader: empty */
    /* everyone heartbeats, C included: only the missing SyncGroup counts */
    for (int i = 0; i < 10; i++) {
        advance(f, 2900);
        assert_int_equal(state_of(f, "g", NULL, NULL), SH_GROUP_STABLE);
        assert_int_equal(hb(f, "g", a, gen + 1, NULL), 0);
        assert_int_equal(hb(f, "g", b, gen + 1, NULL), 0);
        assert_int_equal(hb(f, "g", c, gen + 1, NULL), 0);
    }
    advance(f, 1001);
    assert_int_equal(state_of(f, "g", NULL, &members), SH_GROUP_PREPARING_REBALANCE);
    assert_int_equal(members, 2);
    assert_int_equal(hb(f, "g", c, gen + 1, NULL), SH_KERR_UNKNOWN_MEMBER_ID);
}

static void test_pending_member_expires(void **state)
{
    fx_t *f = *state;
    char a[300], b[300], p[300];
    int32_t gen;
    stable_pair(f, a, b, &gen);
    rec_t r, ra, rb;
    /* someone gets an id but never comes back; a rebalance started by A
     * waits for it only until its session timeout */
    join(f, &r, J(.client = "P", .session = 5000));
    assert_int_equal(r.err, SH_KERR_MEMBER_ID_REQUIRED);
    snprintf(p, sizeof(p), "%s", r.member_id);
    join(f, &ra, J(.member = a, .protos = {"range", NULL}, .meta = "changed"));
    join(f, &rb, J(.member = b));
    assert_int_equal(ra.calls, 0);
    advance(f, 5001);
    assert_int_equal(ra.calls, 1);
    assert_int_equal(rb.calls, 1);
    assert_int_equal(ra.nmembers, 2);
    /* the leader sees the new metadata */
    assert_true(strcmp(ra.member_meta[0], "changed") == 0 || strcmp(ra.member_meta[1], "changed") == 0);
    /* the expired id is refused */
    join(f, &r, J(.member = p));
    assert_int_equal(r.err, SH_KERR_UNKNOWN_MEMBER_ID);
}

static void test_leave_group(void **state)
{
    fx_t *f = *state;
    char a[300], b[300];
    int32_t gen, members;
    stable_pair(f, a, b, &gen);
    sh_leave_group_request_t req;
    sh_leave_group_request_init(&req);
    sh_leave_group_request_member_identity_t ids[2] = {
        {.member_id = sh_slice_str(b), .group_instance_id = SH_SLICE_NULL},
        {.member_id = sh_slice_str("bogus"), .group_instance_id = SH_SLICE_NULL},
    };
    req.group_id = sh_slice_str("g");
    req.members = ids;
    req.members_count = 2;
    sh_leave_group_response_t resp;
    assert_int_equal(sh_group_leave(f->c, 5, &req, &f->a, &resp), SH_OK);
    assert_int_equal(resp.error_code, 0);
    assert_int_equal(resp.members_count, 2);
    assert_int_equal(resp.members[0].error_code, 0);
    assert_int_equal(resp.members[1].error_code, SH_KERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(state_of(f, "g", NULL, &members), SH_GROUP_PREPARING_REBALANCE);
    assert_int_equal(members, 1);
    rec_t ra;
    join(f, &ra, J(.member = a));
    assert_int_equal(ra.calls, 1);
    assert_int_equal(ra.nmembers, 1);
    /* v0-2: one member, top-level error */
    sh_leave_group_request_init(&req);
    req.group_id = sh_slice_str("g");
    req.member_id = sh_slice_str("bogus");
    assert_int_equal(sh_group_leave(f->c, 1, &req, &f->a, &resp), SH_OK);
    assert_int_equal(resp.error_code, SH_KERR_UNKNOWN_MEMBER_ID);
    req.member_id = sh_slice_str(a);
    assert_int_equal(sh_group_leave(f->c, 1, &req, &f->a, &resp), SH_OK);
    assert_int_equal(resp.error_code, 0);
    /* the last member gone: the group ends Empty and, holding no offsets,
     * is forgotten */
    assert_int_equal(state_of(f, "g", NULL, NULL), SH_GROUP_DEAD);
}

static void test_static_member_restart(void **state)
{
    fx_t *f = *state;
    rec_t ra, rb, sa, sb;
    /* two static members */
    join(f, &ra, J(.instance = "inst-a", .client = "A"));
    join(f, &rb, J(.instance = "inst-b", .client = "B"));
    advance(f, 0);
    assert_int_equal(ra.err, 0);
    assert_int_equal(rb.err, 0);
    assert_int_equal(ra.gen, 1);
    assert_int_equal(strncmp(ra.member_id, "inst-a-", 7), 0);
    char a[300], b[300];
    snprintf(a, sizeof(a), "%s", ra.member_id);
    snprintf(b, sizeof(b), "%s", rb.member_id);
    const char *leader = ra.leader;
    assert_true(strcmp(leader, a) == 0 || strcmp(leader, b) == 0);
    bool a_leads = strcmp(ra.leader, a) == 0;
    assign_t as[] = {{a, ASSIGN_A, sizeof(ASSIGN_A)}, {b, ASSIGN_B, sizeof(ASSIGN_B)}};
    sync_(f, a_leads ? &sb : &sa, "g", a_leads ? b : a, 1, a_leads ? "inst-b" : "inst-a", NULL, 0);
    sync_(f, a_leads ? &sa : &sb, "g", a_leads ? a : b, 1, a_leads ? "inst-a" : "inst-b", as, 2);
    assert_int_equal(sa.err, 0);
    assert_int_equal(sb.err, 0);
    assert_int_equal(state_of(f, "g", NULL, NULL), SH_GROUP_STABLE);

    /* A restarts: same instance id, no member id, same metadata */
    rec_t ra2;
    join(f, &ra2, J(.instance = "inst-a", .client = "A"));
    assert_int_equal(ra2.calls, 1);
    assert_int_equal(ra2.err, 0);
    assert_int_equal(ra2.gen, 1);                 /* no new generation */
    assert_string_not_equal(ra2.member_id, a);
    assert_int_equal(state_of(f, "g", NULL, NULL), SH_GROUP_STABLE);
    /* v5 (< 9): the answer names the previous leader id, so a restarted
     * leader does not think it must assign */
    if (a_leads)
        assert_string_equal(ra2.leader, a);
    /* the old incarnation is fenced; B was not disturbed */
    assert_int_equal(hb(f, "g", a, 1, "inst-a"), SH_KERR_FENCED_INSTANCE_ID);
    assert_int_equal(hb(f, "g", b, 1, "inst-b"), 0);
    assert_int_equal(hb(f, "g", ra2.member_id, 1, "inst-a"), 0);
    rec_t s2;
    sync_(f, &s2, "g", ra2.member_id, 1, "inst-a", NULL, 0);
    assert_int_equal(s2.err, 0);
    assert_memory_equal(s2.assignment, ASSIGN_A, sizeof(ASSIGN_A)); /* its partitions back */
    sync_(f, &s2, "g", a, 1, "inst-a", NULL, 0);
    assert_int_equal(s2.err, SH_KERR_FENCED_INSTANCE_ID);

    /* v9: a restarted static leader gets the members and skip_assignment */
    const char *lead_inst = a_leads ? "inst-a" : "inst-b";
    rec_t rl;
    join(f, &rl, J(.instance = lead_inst, .version = 9));
    assert_int_equal(rl.err, 0);
    assert_true(rl.skip);
    assert_int_equal(rl.nmembers, 2);
    assert_string_equal(rl.leader, rl.member_id);
    assert_int_equal(state_of(f, "g", NULL, NULL), SH_GROUP_STABLE);
}

static void test_static_member_fences_parked_join(void **state)
{
    fx_t *f = *state;
    rec_t r1, r2;
    f->cfg.initial_rebalance_delay_ms = 1000;
    sh_group_coord_stop(f->c);
    sh_group_coord_free(f->c);
    fx_coord(f);
    join(f, &r1, J(.instance = "inst"));
    assert_int_equal(r1.calls, 0);
    /* the same instance again while the first join is parked */
    join(f, &r2, J(.instance = "inst"));
    assert_int_equal(r1.calls, 1);
    assert_int_equal(r1.err, SH_KERR_FENCED_INSTANCE_ID);
    assert_int_equal(r2.calls, 0);
    advance(f, 1000);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.err, 0);
    assert_int_equal(r2.nmembers, 1);
}

static void test_initial_rebalance_delay(void **state)
{
    fx_t *f = *state;
    f->cfg.initial_rebalance_delay_ms = 3000;
    sh_group_coord_stop(f->c);
    sh_group_coord_free(f->c);
    fx_coord(f);
    rec_t ra, rb;
    join(f, &ra, J(.version = 3, .rebalance = 60000));
    advance(f, 2000);
    join(f, &rb, J(.version = 3, .rebalance = 60000));
    advance(f, 1000); /* the first delay ends; a member arrived: wait again */
    assert_int_equal(ra.calls, 0);
    advance(f, 2999);
    assert_int_equal(ra.calls, 0);
    advance(f, 1); /* nobody new during the second delay: done */
    assert_int_equal(ra.calls, 1);
    assert_int_equal(rb.calls, 1);
    assert_int_equal(ra.gen, 1);
    assert_int_equal(rb.gen, 1);
    assert_int_equal(ra.nmembers + rb.nmembers, 2);
}

static void test_protocol_selection(void **state)
{
    fx_t *f = *state;
    rec_t ra, rb;
    /* A prefers cooperative-sticky, B only knows range and sticky */
    join(f, &ra, ((jspec_t){.version = 3, .protos = {"cooperative-sticky", "range"}, .meta = "m"}));
    join(f, &rb, ((jspec_t){.version = 3, .protos = {"range", "cooperative-sticky"}, .meta = "m"}));
    advance(f, 0);
    /* one generation for both (B arrived during the initial delay); both
     * support both, the votes are 1-1 and the oldest member's choice wins */
    assert_int_equal(ra.calls, 1);
    assert_int_equal(rb.calls, 1);
    assert_int_equal(ra.gen, 1);
    assert_int_equal(rb.gen, 1);
    assert_string_equal(ra.protocol, "cooperative-sticky");
    assert_string_equal(rb.protocol, "cooperative-sticky");
    /* a third member that supports only sticky is inconsistent */
    rec_t rc;
    join(f, &rc, ((jspec_t){.version = 3, .protos = {"sticky", NULL}, .meta = "m"}));
    assert_int_equal(rc.err, SH_KERR_INCONSISTENT_GROUP_PROTOCOL);
}

static void test_group_max_size(void **state)
{
    fx_t *f = *state;
    f->cfg.max_size = 1;
    sh_group_coord_stop(f->c);
    sh_group_coord_free(f->c);
    fx_coord(f);
    rec_t ra, rb;
    join(f, &ra, J(.version = 3));
    advance(f, 0);
    assert_int_equal(ra.err, 0);
    join(f, &rb, J(.version = 3));
    assert_int_equal(rb.err, SH_KERR_GROUP_MAX_SIZE_REACHED);
    assert_int_equal(state_of(f, "g", NULL, NULL), SH_GROUP_COMPLETING_REBALANCE);
}

static void test_stop_answers_parked(void **state)
{
    fx_t *f = *state;
    char a[300], b[300];
    int32_t gen;
    stable_pair(f, a, b, &gen);
    rec_t ra;
    join(f, &ra, J(.member = a));
    assert_int_equal(ra.calls, 0);
    sh_group_coord_stop(f->c);
    assert_int_equal(ra.calls, 1);
    assert_int_equal(ra.err, SH_KERR_NOT_COORDINATOR);
    assert_int_equal(hb(f, "g", b, gen, NULL), SH_KERR_COORDINATOR_NOT_AVAILABLE);
}

static void test_find_coordinator_owner(void **state)
{
    fx_t *f = *state;
    int16_t err;
    assert_int_equal(sh_group_coord_owner(f->c, 0, sh_slice_str("g"), &err), 7);
    assert_int_equal(err, 0);
    assert_int_equal(sh_group_coord_owner(f->c, 1, sh_slice_str("tx"), &err), -1);
    assert_int_equal(err, SH_KERR_COORDINATOR_NOT_AVAILABLE);
    assert_int_equal(sh_group_coord_owner(f->c, 2, sh_slice_str("s"), &err), -1);
    assert_int_equal(err, SH_KERR_INVALID_REQUEST);
}

/* ------------------------------------------------------------- offsets */

/* Wait (bounded) until the reply recorder has been called. */
static void wait_calls(fx_t *f, int *calls, int want)
{
    for (int i = 0; i < 1000 && *calls < want; i++) {
        struct pollfd p = {.fd = sh_meta_fd(f->meta), .events = POLLIN};
        poll(&p, 1, 10);
        sh_meta_drain(f->meta);
    }
    assert_int_equal(*calls, want);
}

typedef struct {
    int calls;
    int n;
    int16_t err[16];
    int16_t top;
} crec_t;

static void commit_cb(void *arg, const void *resp)
{
    crec_t *r = arg;
    const sh_offset_commit_response_t *c = resp;
    r->calls++;
    r->n = 0;
    for (int32_t t = 0; t < c->topics_count; t++)
        for (int32_t p = 0; p < c->topics[t].partitions_count && r->n < 16; p++)
            r->err[r->n++] = c->topics[t].partitions[p].error_code;
}

typedef struct {
    const char *topic;
    int32_t part;
    int64_t offset;
    const char *md;
} cpart_t;

static void commit(fx_t *f, crec_t *r, const char *group, int32_t gen, const char *member,
                   const cpart_t *parts, int n)
{
    sh_offset_commit_request_t req;
    sh_offset_commit_request_init(&req);
    static sh_offset_commit_request_offset_commit_request_topic_t topics[16];
    static sh_offset_commit_request_offset_commit_request_partition_t ps[16];
    for (int i = 0; i < n; i++) {
        topics[i].name = sh_slice_str(parts[i].topic);
        topics[i].partitions = &ps[i];
        topics[i].partitions_count = 1;
        ps[i].partition_index = parts[i].part;
        ps[i].committed_offset = parts[i].offset;
        ps[i].committed_leader_epoch = 3;
        ps[i].committed_metadata = parts[i].md ? sh_slice_str(parts[i].md) : SH_SLICE_NULL;
    }
    req.group_id = sh_slice_str(group);
    req.generation_id_or_member_epoch = gen;
    req.member_id = sh_slice_str(member ? member : "");
    req.topics = topics;
    req.topics_count = n;
    memset(r, 0, sizeof(*r));
    sh_group_offsets_commit(f->c, 8, &req, &f->a, commit_cb, r);
    wait_calls(f, &r->calls, 1);
}

typedef struct {
    int calls;
    int16_t top;
    int n;
    char topic[16][32];
    int32_t part[16];
    int64_t offset[16];
    int32_t epoch[16];
    char md[16][32];
    bool md_null[16];
} frec_t;

static void fetch_cb(void *arg, const void *resp)
{
    frec_t *r = arg;
    const sh_offset_fetch_response_t *o = resp;
    r->calls++;
    r->top = o->error_code;
    r->n = 0;
    for (int32_t t = 0; t < o->topics_count; t++)
        for (int32_t p = 0; p < o->topics[t].partitions_count && r->n < 16; p++) {
            const sh_offset_fetch_response_offset_fetch_response_partition_t *x =
                &o->topics[t].partitions[p];
            cpy(r->topic[r->n], sizeof(r->topic[0]), o->topics[t].name);
            r->part[r->n] = x->partition_index;
            r->offset[r->n] = x->committed_offset;
            r->epoch[r->n] = x->committed_leader_epoch;
            r->md_null[r->n] = x->metadata.ptr == NULL;
            cpy(r->md[r->n], sizeof(r->md[0]), x->metadata);
            r->n++;
        }
}

/* OffsetFetch v7 of "t" partitions 0..3, or every topic when all. */
static void fetch(fx_t *f, frec_t *r, const char *group, bool all)
{
    sh_offset_fetch_request_t req;
    sh_offset_fetch_request_init(&req);
    static int32_t parts[] = {0, 1, 2, 3};
    static sh_offset_fetch_request_offset_fetch_request_topic_t t;
    t.name = sh_slice_str("t");
    t.partition_indexes = parts;
    t.partition_indexes_count = 4;
    req.group_id = sh_slice_str(group);
    req.topics = all ? NULL : &t;
    req.topics_count = all ? -1 : 1;
    memset(r, 0, sizeof(*r));
    sh_group_offsets_fetch(f->c, 7, &req, &f->a, fetch_cb, r);
    wait_calls(f, &r->calls, 1);
}

static void test_offsets_simple_consumer(void **state)
{
    fx_t *f = *state;
    crec_t c;
    cpart_t p[] = {{"t", 0, 100, "hello"}, {"t", 2, 200, NULL}, {"nosuch", 0, 1, NULL},
                   {"t", 9, 1, NULL}, {"u", 1, 5, "0123456789abcdefX"}};
    commit(f, &c, "simple", -1, NULL, p, 5);
    assert_int_equal(c.n, 5);
    assert_int_equal(c.err[0], 0);
    assert_int_equal(c.err[1], 0);
    assert_int_equal(c.err[2], SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(c.err[3], SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(c.err[4], SH_KERR_OFFSET_METADATA_TOO_LARGE); /* limit 16 here */
    /* the group exists now, Empty, because it holds offsets */
    assert_int_equal(state_of(f, "simple", NULL, NULL), SH_GROUP_EMPTY);

    frec_t r;
    fetch(f, &r, "simple", false);
    assert_int_equal(r.top, 0);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.offset[0], 100);
    assert_int_equal(r.epoch[0], 3);
    assert_string_equal(r.md[0], "hello");
    assert_int_equal(r.offset[1], -1); /* never committed */
    assert_int_equal(r.epoch[1], -1);
    assert_false(r.md_null[1]);
    assert_string_equal(r.md[1], "");
    assert_int_equal(r.offset[2], 200);
    assert_false(r.md_null[2]);         /* null metadata is stored as "" */
    fetch(f, &r, "simple", true);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.topic[0], "t");
    assert_int_equal(r.part[1], 2);
    fetch(f, &r, "nobody", true);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.top, 0);

    /* the coordinator restarts: offsets and the Empty group are still there */
    sh_group_coord_stop(f->c);
    sh_group_coord_free(f->c);
    fx_coord(f);
    assert_int_equal(state_of(f, "simple", NULL, NULL), SH_GROUP_EMPTY);
    fetch(f, &r, "simple", false);
    assert_int_equal(r.offset[0], 100);
    assert_int_equal(r.offset[2], 200);
}

typedef struct {
    int calls;
    int ngroups;
    char group[4][32];
    int16_t gerr[4];
    int nparts[4];
    int64_t offset[4][8];
} f8rec_t;

static void fetch8_cb(void *arg, const void *resp)
{
    f8rec_t *r = arg;
    const sh_offset_fetch_response_t *o = resp;
    r->calls++;
    r->ngroups = o->groups_count;
    for (int32_t g = 0; g < o->groups_count && g < 4; g++) {
        cpy(r->group[g], sizeof(r->group[0]), o->groups[g].group_id);
        r->gerr[g] = o->groups[g].error_code;
        r->nparts[g] = 0;
        for (int32_t t = 0; t < o->groups[g].topics_count; t++)
            for (int32_t p = 0; p < o->groups[g].topics[t].partitions_count && r->nparts[g] < 8; p++)
                r->offset[g][r->nparts[g]++] = o->groups[g].topics[t].partitions[p].committed_offset;
    }
}

/* OffsetFetch v8+: several groups in one request, each with its own topics
 * (or null for all). */
static void test_offsets_fetch_v8_groups(void **state)
{
    fx_t *f = *state;
    crec_t c;
    cpart_t p1[] = {{"t", 1, 11, NULL}, {"u", 0, 7, NULL}};
    commit(f, &c, "ga", -1, NULL, p1, 2);
    cpart_t p2[] = {{"t", 3, 33, NULL}};
    commit(f, &c, "gb", -1, NULL, p2, 1);

    sh_offset_fetch_request_t req;
    sh_offset_fetch_request_init(&req);
    int32_t parts[] = {1, 3};
    sh_offset_fetch_request_offset_fetch_request_topics_t t = {
        .name = sh_slice_str("t"), .partition_indexes = parts, .partition_indexes_count = 2};
    sh_offset_fetch_request_offset_fetch_request_group_t gs[3] = {
        {.group_id = sh_slice_str("ga"), .topics = NULL, .topics_count = -1},
        {.group_id = sh_slice_str("gb"), .topics = &t, .topics_count = 1},
        {.group_id = sh_slice_str("nobody"), .topics = &t, .topics_count = 1},
    };
    req.groups = gs;
    req.groups_count = 3;
    f8rec_t r = {0};
    sh_group_offsets_fetch(f->c, 8, &req, &f->a, fetch8_cb, &r);
    wait_calls(f, &r.calls, 1);
    assert_int_equal(r.ngroups, 3);
    assert_string_equal(r.group[0], "ga");
    assert_int_equal(r.gerr[0], 0);
    assert_int_equal(r.nparts[0], 2);   /* all of ga's offsets: t/1 and u/0 */
    assert_int_equal(r.offset[0][0], 11);
    assert_int_equal(r.offset[0][1], 7);
    assert_int_equal(r.nparts[1], 2);   /* gb: t/1 never committed, t/3 */
    assert_int_equal(r.offset[1][0], -1);
    assert_int_equal(r.offset[1][1], 33);
    assert_int_equal(r.gerr[2], 0);
    assert_int_equal(r.offset[2][0], -1);
    assert_int_equal(r.offset[2][1], -1);
}

static void test_offsets_member_checks(void **state)
{
    fx_t *f = *state;
    char a[300], b[300];
    int32_t gen;
    stable_pair(f, a, b, &gen);
    crec_t c;
    cpart_t p[] = {{"t", 1, 42, NULL}};
    commit(f, &c, "g", gen, a, p, 1);
    assert_int_equal(c.err[0], 0);
    commit(f, &c, "g", gen - 1, a, p, 1);
    assert_int_equal(c.err[0], SH_KERR_ILLEGAL_GENERATION);
    commit(f, &c, "g", gen, "bogus", p, 1);
    assert_int_equal(c.err[0], SH_KERR_UNKNOWN_MEMBER_ID);
    /* a simple consumer may not commit into a group with members */
    commit(f, &c, "g", -1, NULL, p, 1);
    assert_int_equal(c.err[0], SH_KERR_UNKNOWN_MEMBER_ID);
    /* a generation for a group nobody knows */
    commit(f, &c, "ghost", 3, "x", p, 1);
    assert_int_equal(c.err[0], SH_KERR_ILLEGAL_GENERATION);
    /* unknown partitions are reported first, whatever the group says */
    cpart_t q[] = {{"nosuch", 0, 1, NULL}};
    commit(f, &c, "g", gen - 1, a, q, 1);
    assert_int_equal(c.err[0], SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    /* during CompletingRebalance: REBALANCE_IN_PROGRESS */
    rec_t ra, rb;
    join(f, &ra, J(.member = a));
    join(f, &rb, J(.member = b));
    assert_int_equal(ra.calls, 1);
    commit(f, &c, "g", gen + 1, a, p, 1);
    assert_int_equal(c.err[0], SH_KERR_REBALANCE_IN_PROGRESS);
    frec_t r;
    fetch(f, &r, "g", false);
    assert_int_equal(r.offset[1], 42);
}

typedef struct {
    int calls;
    int n;
    char id[8][32];
    int16_t err[8];
    char state[8][32];
    int32_t members[8];
} grec_t;

static void delete_cb(void *arg, const void *resp)
{
    grec_t *r = arg;
    const sh_delete_groups_response_t *d = resp;
    r->calls++;
    r->n = d->results_count;
    for (int32_t i = 0; i < d->results_count && i < 8; i++) {
        cpy(r->id[i], sizeof(r->id[0]), d->results[i].group_id);
        r->err[i] = d->results[i].error_code;
    }
}

static void list(fx_t *f, grec_t *r, const char *state_filter)
{
    sh_list_groups_request_t req;
    sh_list_groups_request_init(&req);
    sh_slice_t st = sh_slice_str(state_filter ? state_filter : "");
    req.states_filter = state_filter ? &st : NULL;
    req.states_filter_count = state_filter ? 1 : 0;
    sh_list_groups_response_t resp;
    assert_int_equal(sh_group_list(f->c, 4, &req, &f->a, &resp), SH_OK);
    memset(r, 0, sizeof(*r));
    r->n = resp.groups_count;
    for (int32_t i = 0; i < resp.groups_count && i < 8; i++) {
        cpy(r->id[i], sizeof(r->id[0]), resp.groups[i].group_id);
        cpy(r->state[i], sizeof(r->state[0]), resp.groups[i].group_state);
    }
}

static void describe(fx_t *f, grec_t *r, const char *g1, const char *g2)
{
    sh_describe_groups_request_t req;
    sh_describe_groups_request_init(&req);
    sh_slice_t ids[2] = {sh_slice_str(g1), sh_slice_str(g2 ? g2 : "")};
    req.groups = ids;
    req.groups_count = g2 ? 2 : 1;
    sh_describe_groups_response_t resp;
    assert_int_equal(sh_group_describe(f->c, 5, &req, &f->a, &resp), SH_OK);
    memset(r, 0, sizeof(*r));
    r->n = resp.groups_count;
    for (int32_t i = 0; i < resp.groups_count; i++) {
        cpy(r->id[i], sizeof(r->id[0]), resp.groups[i].group_id);
        cpy(r->state[i], sizeof(r->state[0]), resp.groups[i].group_state);
        r->err[i] = resp.groups[i].error_code;
        r->members[i] = resp.groups[i].members_count;
    }
}

static void delete_groups(fx_t *f, grec_t *r, const char **ids, int n)
{
    sh_delete_groups_request_t req;
    sh_delete_groups_request_init(&req);
    sh_slice_t s[8];
    for (int i = 0; i < n; i++)
        s[i] = sh_slice_str(ids[i]);
    req.groups_names = s;
    req.groups_names_count = n;
    memset(r, 0, sizeof(*r));
    sh_group_delete(f->c, &req, &f->a, delete_cb, r);
    wait_calls(f, &r->calls, 1);
}

static void test_admin_list_describe_delete(void **state)
{
    fx_t *f = *state;
    char a[300], b[300];
    int32_t gen;
    stable_pair(f, a, b, &gen);
    crec_t c;
    cpart_t p[] = {{"t", 0, 1, NULL}};
    commit(f, &c, "old", -1, NULL, p, 1);
    grec_t r;
    list(f, &r, NULL);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.id[0], "g");       /* in id order */
    assert_string_equal(r.state[0], "Stable");
    assert_string_equal(r.id[1], "old");
    assert_string_equal(r.state[1], "Empty");
    list(f, &r, "empty");                    /* case-insensitive filter */
    assert_int_equal(r.n, 1);
    assert_string_equal(r.id[0], "old");
    describe(f, &r, "g", "nosuch");
    assert_int_equal(r.n, 2);
    assert_string_equal(r.state[0], "Stable");
    assert_int_equal(r.members[0], 2);
    assert_string_equal(r.state[1], "Dead");
    assert_int_equal(r.err[1], 0);

    const char *ids[] = {"g", "old", "nosuch", "old"};
    delete_groups(f, &r, ids, 4);
    assert_int_equal(r.n, 3); /* one answer per group */
    assert_int_equal(r.err[0], SH_KERR_NON_EMPTY_GROUP);
    assert_int_equal(r.err[1], 0);
    assert_int_equal(r.err[2], SH_KERR_GROUP_ID_NOT_FOUND);
    list(f, &r, NULL);
    assert_int_equal(r.n, 1);
    frec_t fr;
    fetch(f, &fr, "old", true);
    assert_int_equal(fr.n, 0);
    /* the group that still has members kept working */
    assert_int_equal(hb(f, "g", a, gen, NULL), 0);
}

static void od_cb(void *arg, const void *resp)
{
    grec_t *r = arg;
    const sh_offset_delete_response_t *d = resp;
    r->calls++;
    r->err[7] = d->error_code;
    r->n = 0;
    for (int32_t t = 0; t < d->topics_count; t++)
        for (int32_t p = 0; p < d->topics[t].partitions_count && r->n < 7; p++)
            r->err[r->n++] = d->topics[t].partitions[p].error_code;
}

static void offset_delete(fx_t *f, grec_t *r, const char *group, const char *topic, int32_t part)
{
    sh_offset_delete_request_t req;
    sh_offset_delete_request_init(&req);
    sh_offset_delete_request_offset_delete_request_partition_t p = {.partition_index = part};
    sh_offset_delete_request_offset_delete_request_topic_t t = {
        .name = sh_slice_str(topic), .partitions = &p, .partitions_count = 1};
    req.group_id = sh_slice_str(group);
    req.topics = &t;
    req.topics_count = 1;
    memset(r, 0, sizeof(*r));
    sh_group_offsets_delete(f->c, &req, &f->a, od_cb, r);
    wait_calls(f, &r->calls, 1);
}

/* ConsumerProtocolSubscription v0 for one topic. */
static size_t subscription(char *buf, const char *topic)
{
    size_t n = strlen(topic), o = 0;
    buf[o++] = 0; buf[o++] = 0;                      /* version 0 */
    buf[o++] = 0; buf[o++] = 0; buf[o++] = 0; buf[o++] = 1; /* 1 topic */
    buf[o++] = 0; buf[o++] = (char)n;
    memcpy(buf + o, topic, n);
    o += n;
    buf[o++] = (char)0xff; buf[o++] = (char)0xff; buf[o++] = (char)0xff; buf[o++] = (char)0xff;
    return o;
}

static void test_offset_delete(void **state)
{
    fx_t *f = *state;
    char sub[64];
    size_t sl = subscription(sub, "t");
    rec_t ra;
    join(f, &ra, J(.version = 3, .meta = sub, .meta_len = sl));
    advance(f, 0);
    assert_int_equal(ra.err, 0);
    char a[300];
    snprintf(a, sizeof(a), "%s", ra.member_id);
    crec_t c;
    cpart_t p[] = {{"t", 0, 5, NULL}, {"u", 0, 6, NULL}};
    rec_t sa;
    sync_(f, &sa, "g", a, 1, NULL, NULL, 0);
    commit(f, &c, "g", 1, a, p, 2);
    assert_int_equal(c.err[0], 0);
    assert_int_equal(c.err[1], 0);
    grec_t r;
    offset_delete(f, &r, "g", "t", 0);
    assert_int_equal(r.err[7], 0);
    assert_int_equal(r.err[0], SH_KERR_GROUP_SUBSCRIBED_TO_TOPIC);
    offset_delete(f, &r, "g", "u", 0);
    assert_int_equal(r.err[0], 0);
    offset_delete(f, &r, "g", "nosuch", 0);
    assert_int_equal(r.err[0], SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    offset_delete(f, &r, "nogroup", "t", 0);
    assert_int_equal(r.err[7], SH_KERR_GROUP_ID_NOT_FOUND);
    /* once the group is empty, its subscribed topic's offsets can go too */
    sh_leave_group_request_t lreq;
    sh_leave_group_request_init(&lreq);
    lreq.group_id = sh_slice_str("g");
    lreq.member_id = sh_slice_str(a);
    sh_leave_group_response_t lresp;
    assert_int_equal(sh_group_leave(f->c, 1, &lreq, &f->a, &lresp), SH_OK);
    assert_int_equal(state_of(f, "g", NULL, NULL), SH_GROUP_EMPTY);
    offset_delete(f, &r, "g", "t", 0);
    assert_int_equal(r.err[0], 0);
    /* no offsets left: the group is gone */
    assert_int_equal(state_of(f, "g", NULL, NULL), SH_GROUP_DEAD);
}

static void test_offsets_retention(void **state)
{
    fx_t *f = *state;
    f->cfg.offsets_retention_ms = 20000;
    f->cfg.retention_check_interval_ms = 1000000000;
    sh_group_coord_stop(f->c);
    sh_group_coord_free(f->c);
    fx_coord(f);
    crec_t c;
    cpart_t p[] = {{"t", 0, 1, NULL}};
    commit(f, &c, "idle", -1, NULL, p, 1);
    char a[300], b[300];
    int32_t gen;
    stable_pair(f, a, b, &gen);
    commit(f, &c, "g", gen, a, p, 1);
    assert_int_equal(c.err[0], 0);
    /* past the retention (20 s here): the idle group's offsets go; the
     * group with members keeps its offsets, however old */
    for (int i = 0; i < 8; i++) {
        advance(f, 3000);
        /* keep g's members alive */
        assert_int_equal(hb(f, "g", a, gen, NULL), 0);
        assert_int_equal(hb(f, "g", b, gen, NULL), 0);
    }
    sh_group_testing_expire_offsets(f->c);
    for (int i = 0; i < 200 && state_of(f, "idle", NULL, NULL) != SH_GROUP_DEAD; i++) {
        struct pollfd pf = {.fd = sh_meta_fd(f->meta), .events = POLLIN};
        poll(&pf, 1, 10);
        sh_meta_drain(f->meta);
    }
    assert_int_equal(state_of(f, "idle", NULL, NULL), SH_GROUP_DEAD);
    frec_t r;
    fetch(f, &r, "idle", true);
    assert_int_equal(r.n, 0);
    fetch(f, &r, "g", true);
    assert_int_equal(r.n, 1);
}

int main(void)
{
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (!getenv("SH_TEST_VERBOSE") && devnull >= 0)
        sh_log_set_fd(devnull);
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
        T(test_join_sync_two_members),
        T(test_member_ids_and_versions),
        T(test_bad_input_keeps_group_working),
        T(test_sync_protocol_checks),
        T(test_join_v0_rebalance_timeout),
        T(test_session_expiry),
        T(test_rebalance_timeout_drops_laggards),
        T(test_sync_timeout),
        T(test_pending_member_expires),
        T(test_leave_group),
        T(test_static_member_restart),
        T(test_static_member_fences_parked_join),
        T(test_initial_rebalance_delay),
        T(test_protocol_selection),
        T(test_group_max_size),
        T(test_stop_answers_parked),
        T(test_find_coordinator_owner),
        T(test_offsets_simple_consumer),
        T(test_offsets_fetch_v8_groups),
        T(test_offsets_member_checks),
        T(test_admin_list_describe_delete),
        T(test_offset_delete),
        T(test_offsets_retention),
#undef T
    };
    return cmocka_run_group_tests_name("broker_group", tests, NULL, NULL);
}
