/*
 * test_broker_registry.c - the topic registry over a real (SQLite)
 * metadata store prepared by the test: loading (leadership taken with the
 * right expected epoch, a lease held by another broker, stored overrides
 * resolved, deletions resumed and their objects purged), lookups by name
 * and id, the Metadata adapter, hooks (open, close, config_changed,
 * objects_purge, a failing open) and every change operation (create,
 * delete, add partitions, alter configs) including races between them.
 *
 * The test thread plays the loop: it submits registry changes and runs
 * their completions with sh_meta_drain when the store's descriptor turns
 * readable. Waits are bounded (a stuck op fails the test, it never hangs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/sh_config.h"
#include "broker/sh_registry.h"
#include "common/sh_clock.h"
#include "common/sh_log.h"
#include "meta/sh_meta.h"

#define OK(x) assert_int_equal((x), SH_OK)
#define NODE 7

/* ------------------------------------------------------------ fixture */

typedef struct {
    int opens, closes, closes_deleted, changed, purges;
    int fail_open_index;          /* partition index whose open fails, -1 none */
    char purged[8][128];
    int npurged;
    int32_t last_open_epoch;
} hooks_rec_t;

typedef struct {
    char dir[64];
    sh_config_t cfg;
    sh_meta_t *m;
    sh_arena_t a;
    hooks_rec_t rec;
} fx_t;

static sh_err_t h_open(void *arg, sh_rpartition_t *p)
{
    hooks_rec_t *r = arg;
    if (p->index == r->fail_open_index)
        return SH_E_IO;
    r->opens++;
    r->last_open_epoch = p->leader_epoch;
    assert_int_equal(p->leader_id, NODE);
    return SH_OK;
}

static void h_close(void *arg, sh_rpartition_t *p, bool deleted)
{
    hooks_rec_t *r = arg;
    assert_true(p->opened);
    r->closes++;
    if (deleted)
        r->closes_deleted++;
}

static void h_changed(void *arg, sh_rtopic_t *t)
{
    hooks_rec_t *r = arg;
    (void)t;
    r->changed++;
}

static void h_purge(void *arg, const char *const *keys, size_t n)
{
    hooks_rec_t *r = arg;
    r->purges++;
    for (size_t i = 0; i < n && r->npurged < 8; i++)
        snprintf(r->purged[r->npurged++], sizeof(r->purged[0]), "%s", keys[i]);
}

static sh_registry_t *reg_new(fx_t *f)
{
    sh_registry_t *r = sh_registry_new(f->m, &f->cfg, NODE);
    assert_non_null(r);
    sh_registry_hooks_t h = {.partition_open = h_open,
                             .partition_close = h_close,
                             .config_changed = h_changed,
                             .objects_purge = h_purge,
                             .arg = &f->rec};
    sh_registry_set_hooks(r, &h);
    return r;
}

static int fx_setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char err[256], url[128];
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/sh-registry-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    OK(sh_config_init(&f->cfg));
    OK(sh_config_set_override(&f->cfg, "num.partitions=2", err, sizeof(err)));
    OK(sh_config_finalize(&f->cfg, err, sizeof(err)));
    snprintf(url, sizeof(url), "sqlite://%s/meta.db", f->dir);
    OK(sh_meta_open(url, &f->m));
    sh_arena_init(&f->a, 4096);
    f->rec.fail_open_index = -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;
    sh_meta_close(f->m);
    sh_arena_fini(&f->a);
    sh_config_fini(&f->cfg);
    static const char *const files[] = {"meta.db", "meta.db-wal", "meta.db-shm",
                                        "meta.db-journal"};
    char p[128];
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s/%s", f->dir, files[i]);
        unlink(p);
    }
    assert_int_equal(rmdir(f->dir), 0);
    free(f);
    return 0;
}

/* Run completions until the registry has nothing pending (bounded). */
static void drain(fx_t *f, sh_registry_t *r)
{
    for (int i = 0; i < 1000 && sh_registry_pending(r) > 0; i++) {
        struct pollfd p = {.fd = sh_meta_fd(f->m), .events = POLLIN};
        poll(&p, 1, 10);
        sh_meta_drain(f->m);
    }
    assert_int_equal(sh_registry_pending(r), 0);
}

/* Completion recorder for change operations. */
typedef struct {
    int calls;
    sh_err_t err;
    sh_rtopic_t *t;
    int32_t partitions;
} done_rec_t;

static void on_done(void *arg, sh_err_t err, sh_rtopic_t *t)
{
    done_rec_t *d = arg;
    d->calls++;
    d->err = err;
    d->t = t;
    d->partitions = t ? t->partition_count : -1;
}

static sh_uuid_t meta_topic(fx_t *f, const char *name, int32_t parts,
                            const sh_meta_config_t *cfgs, size_t n)
{
    sh_uuid_t id;
    OK(sh_meta_topic_create(f->m, name, parts, cfgs, n, 1000, &id));
    return id;
}

/* ------------------------------------------------------------- tests */

static void test_load(void **state)
{
    fx_t *f = *state;
    int64_t now = sh_clock_wall_ms();
    int32_t e;

    /* "alpha": 2 partitions, an override; its partition 0 was led before
     * (epoch 0), so the load must expect 0 and get 1 */
    const sh_meta_config_t acfg[] = {{"retention.ms", "1000"}};
    sh_uuid_t alpha = meta_topic(f, "alpha", 2, acfg, 1);
    OK(sh_meta_partition_acquire(f->m, (sh_meta_tp_t){alpha, 0}, NODE, -1, now, now + 1000, &e));
    assert_int_equal(e, 0);
    /* "beta": another broker holds a live lease on its only partition */
    sh_uuid_t beta = meta_topic(f, "beta", 1, NULL, 0);
    OK(sh_meta_partition_acquire(f->m, (sh_meta_tp_t){beta, 0}, 99, -1, now,
                                 now + 3600 * 1000, &e));
    /* "gamma": deleting, with one committed chunk in an object */
    sh_uuid_t gamma = meta_topic(f, "gamma", 1, NULL, 0);
    OK(sh_meta_partition_acquire(f->m, (sh_meta_tp_t){gamma, 0}, NODE, -1, now, now + 1000, &e));
    sh_meta_chunk_t ch = {.topic_id = gamma, .partition = 0, .base_offset = 0,
                          .last_offset = 9, .max_timestamp = 5, .byte_offset = 0,
                          .byte_length = 100, .leader_epoch = e};
    OK(sh_meta_chunks_commit(f->m, "segments/gamma-obj", 100, &ch, 1, now));
    OK(sh_meta_topic_mark_deleting(f->m, gamma));
    /* an override this build refuses is ignored, not fatal */
    const sh_meta_config_t odd[] = {{"cleanup.policy", "compact"}};
    sh_uuid_t delta = meta_topic(f, "delta", 1, odd, 1);

    sh_registry_t *r = reg_new(f);
    OK(sh_registry_load(r));

    sh_rtopic_t **all;
    size_t n = sh_registry_topics(r, &all);
    assert_int_equal(n, 3);
    assert_string_equal(all[0]->name, "alpha");
    assert_string_equal(all[1]->name, "beta");
    assert_string_equal(all[2]->name, "delta");
    assert_null(sh_registry_find(r, sh_slice_str("gamma")));
    assert_null(sh_registry_find(r, sh_slice_str("alph")));
    assert_null(sh_registry_find(r, SH_SLICE_NULL));

    sh_rtopic_t *a = sh_registry_find(r, sh_slice_str("alpha"));
    assert_non_null(a);
    assert_memory_equal(a->id.b, alpha.b, 16);
    assert_ptr_equal(sh_registry_find_id(r, alpha), a);
    assert_ptr_equal(sh_registry_find_id(r, delta), all[2]);
    assert_null(sh_registry_find_id(r, gamma));
    assert_int_equal(a->cfg.retention_ms, 1000);
    assert_int_equal(a->noverrides, 1);
    assert_int_equal(a->partition_count, 2);
    assert_int_equal(a->partitions[0]->leader_epoch, 1);
    assert_int_equal(a->partitions[1]->leader_epoch, 0);
    assert_int_equal(a->partitions[0]->leader_id, NODE);
    assert_int_equal(a->partitions[0]->error_code, 0);
    assert_true(a->partitions[0]->opened);
    assert_ptr_equal(sh_registry_partition(r, sh_slice_str("alpha"), 1), a->partitions[1]);
    assert_null(sh_registry_partition(r, sh_slice_str("alpha"), 2));
    assert_null(sh_registry_partition(r, sh_slice_str("alpha"), -1));

    /* the store agrees on the epochs and the leader */
    sh_meta_partition_t mp;
    OK(sh_meta_partition_get(f->m, (sh_meta_tp_t){alpha, 0}, &mp));
    assert_int_equal(mp.leader_epoch, 1);
    assert_int_equal(mp.leader_id, NODE);

    sh_rtopic_t *b = sh_registry_find(r, sh_slice_str("beta"));
    assert_int_equal(b->partitions[0]->error_code, SH_KERR_LEADER_NOT_AVAILABLE);
    assert_int_equal(b->partitions[0]->leader_id, -1);
    assert_false(b->partitions[0]->opened);
    /* alpha 2 + delta 1 opened; beta not led */
    assert_int_equal(f->rec.opens, 3);

    sh_rtopic_t *d = all[2];
    assert_int_equal(d->cfg.retention_ms, f->cfg.retention_ms);

    /* the Metadata adapter */
    sh_arena_t va;
    sh_arena_init(&va, 1024);
    sh_topic_view_t *views;
    int32_t nv;
    OK(sh_registry_topics_ops.list(r, &va, &views, &nv));
    assert_int_equal(nv, 3);
    sh_topic_view_t v;
    OK(sh_registry_topics_ops.find(r, &va, sh_slice_str("beta"), &v));
    assert_int_equal(v.partition_count, 1);
    assert_int_equal(v.partitions[0].leader_id, -1);
    assert_int_equal(v.partitions[0].error_code, SH_KERR_LEADER_NOT_AVAILABLE);
    OK(sh_registry_topics_ops.find_id(r, &va, alpha, &v));
    assert_true(sh_slice_eq_str(v.name, "alpha"));
    assert_memory_equal(v.topic_id.b, alpha.b, 16);
    assert_int_equal(v.partitions[0].leader_id, NODE);
    assert_int_equal(v.partitions[0].leader_epoch, 1);
    assert_int_equal(v.partitions[1].partition_index, 1);
    assert_int_equal(sh_registry_topics_ops.find(r, &va, sh_slice_str("gamma"), &v),
                     SH_E_NOTFOUND);
    assert_int_equal(sh_registry_topics_ops.find_id(r, &va, gamma, &v), SH_E_NOTFOUND);
    sh_arena_fini(&va);

    /* the resumed deletion completes: topic dropped, its object purged */
    drain(f, r);
    assert_int_equal(f->rec.purges, 1);
    assert_int_equal(f->rec.npurged, 1);
    assert_string_equal(f->rec.purged[0], "segments/gamma-obj");
    sh_meta_topic_t mt;
    assert_int_equal(sh_meta_topic_get_by_name(f->m, "gamma", &f->a, &mt),
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);

    sh_registry_free(r);
    assert_int_equal(f->rec.closes, 3);
    assert_int_equal(f->rec.closes_deleted, 0);

    /* a restart takes every partition again, one epoch further */
    memset(&f->rec, 0, sizeof(f->rec));
    f->rec.fail_open_index = -1;
    r = reg_new(f);
    OK(sh_registry_load(r));
    a = sh_registry_find(r, sh_slice_str("alpha"));
    assert_int_equal(a->partitions[0]->leader_epoch, 2);
    assert_int_equal(a->partitions[1]->leader_epoch, 1);
    assert_int_equal(f->rec.opens, 3);
    sh_registry_free(r);
}

static void test_open_failure(void **state)
{
    fx_t *f = *state;
    meta_topic(f, "t", 3, NULL, 0);
    f->rec.fail_open_index = 1;
    sh_registry_t *r = reg_new(f);
    sh_log_level_t saved = sh_log_level;
    sh_log_level = SH_LOG_ERROR;
    OK(sh_registry_load(r));
    sh_log_level = saved;
    sh_rtopic_t *t = sh_registry_find(r, sh_slice_str("t"));
    assert_int_equal(f->rec.opens, 2);
    assert_int_equal(t->partitions[1]->error_code, SH_KERR_LEADER_NOT_AVAILABLE);
    assert_false(t->partitions[1]->opened);
    assert_int_equal(t->partitions[0]->error_code, 0);

    sh_arena_t va;
    sh_arena_init(&va, 1024);
    sh_topic_view_t v;
    OK(sh_registry_topics_ops.find(r, &va, sh_slice_str("t"), &v));
    assert_int_equal(v.partitions[1].leader_id, -1);
    assert_int_equal(v.partitions[1].error_code, SH_KERR_LEADER_NOT_AVAILABLE);
    assert_int_equal(v.partitions[2].leader_id, NODE);
    sh_arena_fini(&va);
    sh_registry_free(r);
    /* only opened partitions are closed */
    assert_int_equal(f->rec.closes, 2);
}

static void test_changes(void **state)
{
    fx_t *f = *state;
    sh_registry_t *r = reg_new(f);
    OK(sh_registry_load(r));
    done_rec_t d = {0}, d2 = {0};

    /* create, with an override */
    const sh_meta_config_t cfgs[] = {{"retention.ms", "5000"}};
    OK(sh_registry_topic_create(r, sh_slice_str("orders"), 3, cfgs, 1, on_done, &d));
    OK(sh_registry_topic_create(r, sh_slice_str("orders"), 3, NULL, 0, on_done, &d2));
    assert_null(sh_registry_find(r, sh_slice_str("orders"))); /* not before it commits */
    assert_int_equal(d.calls, 0);
    drain(f, r);
    assert_int_equal(d.calls, 1);
    OK(d.err);
    assert_int_equal(d.partitions, 3);
    assert_int_equal(d2.calls, 1);
    assert_int_equal(d2.err, SH_KERR_TOPIC_ALREADY_EXISTS);
    assert_null(d2.t);
    sh_rtopic_t *t = sh_registry_find(r, sh_slice_str("orders"));
    assert_non_null(t);
    assert_int_equal(t->cfg.retention_ms, 5000);
    assert_int_equal(f->rec.opens, 3);
    assert_int_equal(f->rec.last_open_epoch, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(t->partitions[i]->leader_id, NODE);
        assert_int_equal(t->partitions[i]->leader_epoch, 0);
    }
    sh_meta_topic_t mt;
    OK(sh_meta_topic_get_by_name(f->m, "orders", &f->a, &mt));
    assert_memory_equal(mt.topic_id.b, t->id.b, 16);

    /* arguments no caller should pass */
    assert_int_equal(sh_registry_topic_create(r, sh_slice_str("x"), 0, NULL, 0, on_done, &d),
                     SH_E_INVAL);

    /* add partitions: two adds queued before either completes */
    memset(&d, 0, sizeof(d));
    memset(&d2, 0, sizeof(d2));
    OK(sh_registry_partitions_add(r, t, 5, on_done, &d));
    OK(sh_registry_partitions_add(r, t, 5, on_done, &d2));
    drain(f, r);
    OK(d.err);
    assert_int_equal(d.partitions, 5);
    assert_int_equal(d2.err, SH_KERR_INVALID_PARTITIONS);
    assert_int_equal(t->partition_count, 5);
    assert_int_equal(f->rec.opens, 5);
    assert_int_equal(t->partitions[4]->leader_epoch, 0);
    assert_int_equal(t->partitions[4]->index, 4);
    assert_ptr_equal(t->partitions[4]->topic, t);

    /* alter configs: incremental set, then replace everything */
    memset(&d, 0, sizeof(d));
    const sh_meta_config_t inc[] = {{"segment.ms", "60000"}, {"retention.ms", NULL}};
    OK(sh_registry_configs_alter(r, t, inc, 2, false, on_done, &d));
    drain(f, r);
    OK(d.err);
    assert_int_equal(f->rec.changed, 1);
    assert_int_equal(t->cfg.segment_ms, 60000);
    assert_int_equal(t->cfg.retention_ms, f->cfg.retention_ms);
    assert_int_equal(t->noverrides, 1);
    assert_string_equal(t->overrides[0].key, "segment.ms");
    const sh_meta_config_t rep[] = {{"max.message.bytes", "1000"}};
    OK(sh_registry_configs_alter(r, t, rep, 1, true, on_done, &d));
    drain(f, r);
    OK(d.err);
    assert_int_equal(t->noverrides, 1);
    assert_int_equal(t->cfg.max_message_bytes, 1000);
    assert_int_equal(t->cfg.segment_ms, 7LL * 24 * 3600 * 1000);

    /* delete: twice in a row (the second finds it gone), and an alter
     * queued behind it; the topic stays allocated for both */
    memset(&d, 0, sizeof(d));
    memset(&d2, 0, sizeof(d2));
    done_rec_t d3 = {0};
    OK(sh_registry_topic_delete(r, t, on_done, &d));
    OK(sh_registry_topic_delete(r, t, on_done, &d2));
    OK(sh_registry_configs_alter(r, t, rep, 1, true, on_done, &d3));
    drain(f, r);
    OK(d.err);
    assert_int_equal(d2.err, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(d3.err, SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_null(sh_registry_find(r, sh_slice_str("orders")));
    assert_int_equal(f->rec.closes_deleted, 5);
    assert_int_equal(f->rec.changed, 2);
    /* dropped from the store: the name is free again */
    assert_int_equal(sh_meta_topic_get_by_name(f->m, "orders", &f->a, &mt),
                     SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    memset(&d, 0, sizeof(d));
    OK(sh_registry_topic_create(r, sh_slice_str("orders"), 1, NULL, 0, on_done, &d));
    drain(f, r);
    OK(d.err);
    t = sh_registry_find(r, sh_slice_str("orders"));
    assert_int_equal(t->partition_count, 1);
    assert_int_equal(t->noverrides, 0);
    assert_int_equal(sh_registry_topic_delete(r, NULL, on_done, &d), SH_E_INVAL);

    sh_registry_free(r);
    assert_int_equal(f->rec.closes, 6);
}

static void test_name_dups(void **state)
{
    fx_t *f = *state;
    const sh_slice_t names[] = {sh_slice_str("b"), sh_slice_str("a"), SH_SLICE_NULL,
                                sh_slice_str("b"), SH_SLICE_NULL, sh_slice_str("ab"),
                                sh_slice_str("b")};
    bool dup[7], rep[7];
    OK(sh_registry_names_dups(&f->a, names, 7, dup));
    OK(sh_registry_names_repeats(&f->a, names, 7, rep));
    const bool want_dup[] = {true, false, false, true, false, false, true};
    const bool want_rep[] = {false, false, false, true, false, false, true};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(dup[i], want_dup[i]);
        assert_int_equal(rep[i], want_rep[i]);
    }
    OK(sh_registry_names_dups(&f->a, names, 0, dup));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_load, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_open_failure, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_changes, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_name_dups, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
