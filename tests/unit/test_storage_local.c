/*
 * test_storage_local.c - what is specific to the file:// backend (the
 * shared behaviour is in test_storage_objstore.c): URL forms, the file
 * layout, temporary files staying invisible, key/directory conflicts, and
 * I/O failures reported as SH_E_IO with a log line naming the key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "common/sh_log.h"
#include "test_storage_util.h"

static char *g_dir;

static int setup(void **state)
{
    (void)state;
    g_dir = tsu_tempdir();
    return g_dir ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tsu_rmrf(g_dir);
    free(g_dir);
    return 0;
}

static void open_ok(const char *url)
{
    sh_objstore_t *s = NULL;
    assert_int_equal(sh_objstore_open(url, &s), SH_OK);
    assert_non_null(s);
    assert_string_equal(sh_objstore_url(s), url);
    assert_true(sh_objstore_fd(s) >= 0);
    assert_int_equal(sh_objstore_next_deadline_ms(s), -1);
    sh_objstore_free(s);
}

static void test_urls(void **state)
{
    (void)state;
    char url[1024], path[900];
    snprintf(url, sizeof(url), "file://%s", g_dir);
    open_ok(url);
    snprintf(url, sizeof(url), "file://localhost%s", g_dir);
    open_ok(url);
    snprintf(url, sizeof(url), "file:%s", g_dir);
    open_ok(url);
    open_ok(g_dir);
    /* a missing directory, several levels deep, is created */
    snprintf(url, sizeof(url), "file://%s/new/deeper/store", g_dir);
    open_ok(url);
    snprintf(path, sizeof(path), "%s/new/deeper/store", g_dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));

    /* relative forms resolve against the working directory at open */
    char cwd[1024];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(g_dir), 0);
    open_ok("file:rel/a");
    open_ok("file:./rel/b");
    open_ok("./rel/c");
    sh_objstore_t *s;
    assert_int_equal(sh_objstore_open("file:rel/a", &s), SH_OK);
    assert_int_equal(chdir(cwd), 0);
    /* the store stays bound to the directory it opened, not the cwd */
    tsu_put_ok(s, "k", "v", 1);
    sh_objstore_free(s);
    snprintf(path, sizeof(path), "%s/rel/a/k", g_dir);
    assert_int_equal(stat(path, &sb), 0);

    /* the refusals below log errors by design; keep the test output clean */
    int devnull = open("/dev/null", O_WRONLY);
    assert_true(devnull >= 0);
    sh_log_set_fd(devnull);
    const char *bad[] = {"", "file://", "file:", "file://host/dir", "file://rel/dir",
                         "http://example.com/x", "bucket/dir", NULL};
    for (int i = 0; bad[i]; i++) {
        s = (sh_objstore_t *)1;
        assert_int_equal(sh_objstore_open(bad[i], &s), SH_E_INVAL);
        assert_null(s);
    }
    assert_int_equal(sh_objstore_open(NULL, &s), SH_E_INVAL);
    /* s3:// goes to the S3 backend (tests in test_storage_s3*.c) */
    assert_int_equal(sh_objstore_open("s3://", &s), SH_E_INVAL);
    assert_null(s);
    /* a path through a regular file cannot become a store */
    snprintf(path, sizeof(path), "%s/plainfile", g_dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    close(fd);
    snprintf(url, sizeof(url), "file://%s/plainfile/store", g_dir);
    assert_int_equal(sh_objstore_open(url, &s), SH_E_IO);
    sh_log_set_fd(2);
    close(devnull);
}

static int count_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, ".sh-tmp.", 8) == 0)
            n++;
        if (de->d_type == DT_DIR && de->d_name[0] != '.') {
            char sub[1024];
            snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
            n += count_tmp(sub);
        }
    }
    closedir(d);
    return n;
}

static void test_layout_and_temp_files(void **state)
{
    (void)state;
    char url[1024], path[1024];
    snprintf(url, sizeof(url), "file://%s", g_dir);
    sh_objstore_t *s;
    assert_int_equal(sh_objstore_open(url, &s), SH_OK);
    tsu_put_ok(s, "ab/seg/one", "hello", 5);
    tsu_put_ok(s, "top", "x", 1);

    /* a key is the file at that relative path */
    snprintf(path, sizeof(path), "%s/ab/seg/one", g_dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char buf[16] = {0};
    assert_int_equal(fread(buf, 1, sizeof(buf), f), 5);
    fclose(f);
    assert_string_equal(buf, "hello");
    /* successful puts leave no temporary files behind */
    assert_int_equal(count_tmp(g_dir), 0);

    /* leftovers of a crashed put are never listed */
    snprintf(path, sizeof(path), "%s/ab/seg/.sh-tmp.999.1", g_dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    fputs("partial", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/.sh-tmp.999.2", g_dir);
    f = fopen(path, "wb");
    fclose(f);
    /* files placed by hand are objects like any other */
    snprintf(path, sizeof(path), "%s/ab/manual", g_dir);
    f = fopen(path, "wb");
    fputs("m", f);
    fclose(f);
    tsu_res_t r;
    tsu_list(s, "", NULL, 0, &r);
    assert_int_equal(r.err, SH_OK);
    assert_int_equal(r.nentries, 3);
    assert_string_equal(r.keys[0], "ab/manual");
    assert_string_equal(r.keys[1], "ab/seg/one");
    assert_string_equal(r.keys[2], "top");
    tsu_res_fini(&r);
    sh_objstore_free(s);
}

static void test_key_dir_conflict(void **state)
{
    (void)state;
    char url[1024];
    snprintf(url, sizeof(url), "file://%s", g_dir);
    sh_objstore_t *s;
    assert_int_equal(sh_objstore_open(url, &s), SH_OK);
    tsu_put_ok(s, "f", "file", 4);
    assert_int_equal(tsu_put(s, "f/g", "x", 1), SH_E_INVAL);
    tsu_put_ok(s, "d/e", "x", 1);
    assert_int_equal(tsu_put(s, "d", "x", 1), SH_E_INVAL);
    tsu_res_t r;
    tsu_get(s, "f/g", &r);
    assert_int_equal(r.err, SH_E_NOTFOUND);
    tsu_res_fini(&r);
    tsu_get(s, "f", &r);
    assert_int_equal(r.err, SH_OK);
    assert_int_equal(r.block->size, 4);
    tsu_res_fini(&r);
    assert_int_equal(tsu_delete(s, "d"), SH_OK); /* a directory is no object */
    tsu_get(s, "d/e", &r);
    assert_int_equal(r.err, SH_OK);
    tsu_res_fini(&r);
    assert_int_equal(count_tmp(g_dir), 0);
    sh_objstore_free(s);
}

static void test_io_error_logged(void **state)
{
    (void)state;
    char url[1100], root[1024];
    snprintf(root, sizeof(root), "%s/doomed", g_dir);
    snprintf(url, sizeof(url), "file://%s", root);
    sh_objstore_t *s;
    assert_int_equal(sh_objstore_open(url, &s), SH_OK);
    /* the directory vanishes under the open store: writes must fail */
    assert_int_equal(rmdir(root), 0);

    char logpath[1024];
    snprintf(logpath, sizeof(logpath), "%s/log.txt", g_dir);
    int lfd = open(logpath, O_CREAT | O_RDWR | O_TRUNC, 0644);
    assert_true(lfd >= 0);
    sh_log_set_fd(lfd);
    tsu_res_t r = {0};
    struct iovec iov = {"abc", 3};
    assert_int_equal(sh_objstore_put_start(s, "zz/victim-key", &iov, 1, tsu_cb, &r), SH_OK);
    tsu_finish(s, &r);
    sh_log_set_fd(2);
    assert_int_equal(r.err, SH_E_IO);
    tsu_res_fini(&r);
    char text[4096] = {0};
    assert_true(pread(lfd, text, sizeof(text) - 1, 0) > 0);
    close(lfd);
    assert_non_null(strstr(text, "zz/victim-key"));
    assert_non_null(strstr(text, "No such file or directory"));

    /* reads of anything in the vanished store are simply missing */
    tsu_get(s, "zz/victim-key", &r);
    assert_int_equal(r.err, SH_E_NOTFOUND);
    tsu_res_fini(&r);
    sh_objstore_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_urls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout_and_temp_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_dir_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_error_logged, setup, teardown),
    };
    return cmocka_run_group_tests_name("storage_local", tests, NULL, NULL);
}
