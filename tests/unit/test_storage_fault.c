/*
 * test_storage_fault.c - the fault-injecting object-store wrapper: passes
 * operations through untouched without rules, fails exactly the chosen
 * ones, delivers injected failures asynchronously on the driving thread,
 * and models a lost response (the put happened, the caller hears failure).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "storage/sh_objstore_fault.h"
#include "test_storage_util.h"

typedef struct fctx {
    char *dir;
    sh_objstore_t *plain;    /* the same directory, no faults: ground truth */
    sh_objstore_t *s;        /* the wrapper under test */
} fctx_t;

static int setup(void **state)
{
    fctx_t *f = calloc(1, sizeof(*f));
    if (!f || !(f->dir = tsu_tempdir()))
        return -1;
    char url[600];
    snprintf(url, sizeof(url), "file://%s", f->dir);
    sh_objstore_t *inner;
    if (sh_objstore_open(url, &inner) != SH_OK || sh_objstore_open(url, &f->plain) != SH_OK ||
        sh_objstore_fault_new(inner, &f->s) != SH_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fctx_t *f = *state;
    sh_objstore_free(f->s);
    sh_objstore_free(f->plain);
    tsu_rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void test_passthrough(void **state)
{
    fctx_t *f = *state;
    tsu_put_ok(f->s, "a/b", "hello", 5);
    tsu_res_t r;
    tsu_get_range(f->s, "a/b", 1, 3, &r);
    assert_int_equal(r.err, SH_OK);
    assert_memory_equal(r.block->data, "ell", 3);
    assert_true(pthread_equal(r.thread, pthread_self()));
    tsu_res_fini(&r);
    tsu_head(f->s, "a/b", &r);
    assert_int_equal(r.object_size, 5);
    tsu_res_fini(&r);
    tsu_list(f->s, "a/", NULL, 0, &r);
    assert_int_equal(r.nentries, 1);
    assert_string_equal(r.keys[0], "a/b");
    tsu_res_fini(&r);
    assert_int_equal(tsu_delete(f->s, "a/b"), SH_OK);
    tsu_get(f->plain, "a/b", &r);
    assert_int_equal(r.err, SH_E_NOTFOUND);
    tsu_res_fini(&r);
    assert_int_equal(sh_objstore_fault_seen(f->s, SH_OBJSTORE_PUT), 1);
    assert_int_equal(sh_objstore_fault_seen(f->s, SH_OBJSTORE_GET), 1);
    assert_int_equal(sh_objstore_fault_injected(f->s, SH_OBJSTORE_GET), 0);
    /* argument checks still apply through the wrapper */
    assert_int_equal(sh_objstore_get_start(f->s, "../x", tsu_cb, &r), SH_E_INVAL);
    /* rules only go on wrappers */
    sh_objstore_fault_rule_t rule = {.err = SH_E_IO};
    assert_int_equal(sh_objstore_fault_set(f->plain, SH_OBJSTORE_PUT, &rule), SH_E_INVAL);
}

static void test_fail_nth_put_before(void **state)
{
    fctx_t *f = *state;
    sh_objstore_fault_rule_t rule = {.skip = 1, .count = 2, .err = SH_E_IO, .retriable = true};
    assert_int_equal(sh_objstore_fault_set(f->s, SH_OBJSTORE_PUT, &rule), SH_OK);
    const char *keys[4] = {"p0", "p1", "p2", "p3"};
    sh_err_t want[4] = {SH_OK, SH_E_IO, SH_E_IO, SH_OK};
    for (int i = 0; i < 4; i++) {
        tsu_res_t r = {0};
        struct iovec iov = {(void *)keys[i], 2};
        assert_int_equal(sh_objstore_put_start(f->s, keys[i], &iov, 1, tsu_cb, &r), SH_OK);
        /* never completed from inside the start call */
        assert_int_equal(r.calls, 0);
        tsu_finish(f->s, &r);
        assert_int_equal(r.err, want[i]);
        assert_int_equal(r.retriable, want[i] != SH_OK);
        assert_int_equal(r.op, SH_OBJSTORE_PUT);
        assert_true(pthread_equal(r.thread, pthread_self()));
        tsu_res_fini(&r);
        /* a failure "before" means the store never saw the object */
        tsu_head(f->plain, keys[i], &r);
        assert_int_equal(r.err, want[i] == SH_OK ? SH_OK : SH_E_NOTFOUND);
        tsu_res_fini(&r);
    }
    assert_int_equal(sh_objstore_fault_injected(f->s, SH_OBJSTORE_PUT), 2);
    assert_int_equal(sh_objstore_fault_seen(f->s, SH_OBJSTORE_PUT), 4);
}

static void test_lost_response(void **state)
{
    fctx_t *f = *state;
    sh_objstore_fault_rule_t rule = {.err = SH_E_IO, .retriable = true, .after = true};
    assert_int_equal(sh_objstore_fault_set(f->s, SH_OBJSTORE_PUT, &rule), SH_OK);
    assert_int_equal(tsu_put(f->s, "lost", "data", 4), SH_E_IO);
    /* the object exists although the caller was told the put failed */
    tsu_res_t r;
    tsu_get(f->plain, "lost", &r);
    assert_int_equal(r.err, SH_OK);
    assert_int_equal(r.block->size, 4);
    tsu_res_fini(&r);

    /* a failed get carries no bytes */
    rule = (sh_objstore_fault_rule_t){.err = SH_E_IO, .after = true};
    assert_int_equal(sh_objstore_fault_set(f->s, SH_OBJSTORE_GET, &rule), SH_OK);
    tsu_get(f->s, "lost", &r);
    assert_int_equal(r.err, SH_E_IO);
    assert_null(r.block);
    tsu_res_fini(&r);
    /* removing the rule restores normal service */
    assert_int_equal(sh_objstore_fault_set(f->s, SH_OBJSTORE_GET, NULL), SH_OK);
    tsu_get(f->s, "lost", &r);
    assert_int_equal(r.err, SH_OK);
    tsu_res_fini(&r);
}

static void test_other_kinds(void **state)
{
    fctx_t *f = *state;
    tsu_put_ok(f->s, "x/1", "1", 1);
    tsu_put_ok(f->s, "x/2", "2", 1);
    sh_objstore_fault_rule_t nf = {.err = SH_E_NOTFOUND};
    assert_int_equal(sh_objstore_fault_set(f->s, SH_OBJSTORE_HEAD, &nf), SH_OK);
    tsu_res_t r;
    tsu_head(f->s, "x/1", &r);
    assert_int_equal(r.err, SH_E_NOTFOUND);
    tsu_res_fini(&r);

    sh_objstore_fault_rule_t io = {.err = SH_E_IO, .retriable = true};
    assert_int_equal(sh_objstore_fault_set(f->s, SH_OBJSTORE_LIST, &io), SH_OK);
    tsu_list(f->s, "x/", NULL, 0, &r);
    assert_int_equal(r.err, SH_E_IO);
    assert_int_equal(r.nentries, 0);
    tsu_res_fini(&r);

    assert_int_equal(sh_objstore_fault_set(f->s, SH_OBJSTORE_DELETE_MANY, &io), SH_OK);
    const char *keys[] = {"x/1", "x/2"};
    memset(&r, 0, sizeof(r));
    assert_int_equal(sh_objstore_delete_many_start(f->s, keys, 2, tsu_cb, &r), SH_OK);
    tsu_finish(f->s, &r);
    assert_int_equal(r.err, SH_E_IO);
    assert_int_equal(r.nkeys, 2);
    assert_int_equal(r.key_errs[0], SH_E_IO);
    assert_int_equal(r.key_errs[1], SH_E_IO);
    tsu_res_fini(&r);
    tsu_list(f->plain, "x/", NULL, 0, &r);
    assert_int_equal(r.nentries, 2); /* nothing was deleted */
    tsu_res_fini(&r);
}

static int g_calls;
static void count_cb(void *arg, const sh_objstore_result_t *res)
{
    (void)arg;
    (void)res;
    g_calls++;
}

/* Pending injected failures and real operations both complete on free. */
static void test_free_completes_everything(void **state)
{
    fctx_t *f = *state;
    sh_objstore_fault_rule_t rule = {.skip = 2, .err = SH_E_IO};
    assert_int_equal(sh_objstore_fault_set(f->s, SH_OBJSTORE_PUT, &rule), SH_OK);
    g_calls = 0;
    struct iovec iov = {"z", 1};
    for (int i = 0; i < 5; i++) {
        char key[8];
        snprintf(key, sizeof(key), "f%d", i);
        assert_int_equal(sh_objstore_put_start(f->s, key, &iov, 1, count_cb, NULL), SH_OK);
    }
    assert_int_equal(sh_objstore_inflight(f->s), 5);
    /* injected results are due now, so a poll does not sleep */
    int64_t dl = sh_objstore_next_deadline_ms(f->s);
    assert_true(dl >= 0);
    sh_objstore_free(f->s);
    f->s = NULL;
    assert_int_equal(g_calls, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_passthrough, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_nth_put_before, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_completes_everything, setup, teardown),
    };
    return cmocka_run_group_tests_name("storage_fault", tests, NULL, NULL);
}
