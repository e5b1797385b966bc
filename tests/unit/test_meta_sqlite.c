/*
 * test_meta_sqlite.c - what is specific to the SQLite backend and the URL
 * front end: accepted URL forms, refusals and their log lines (with
 * passwords redacted), files that are not databases, the settings the
 * file keeps, upgrading an older schema, two processes opening a fresh
 * file at once, and the Kafka text form of UUIDs.
 * Everything lives in a temp directory removed at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/sh_log.h"
#include "meta/sh_meta.h"
#include "meta/sh_meta_backend.h"

#define OK(x) assert_int_equal((x), SH_OK)

static char dir[64];
static int devnull = -1;

static int rm_rf_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/sh-meta-sqlite-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (!getenv("SH_TEST_VERBOSE"))
        sh_log_set_fd(devnull);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    sh_log_set_fd(2);
    if (devnull >= 0)
        close(devnull);
    return rm_rf_dir() == 0 ? 0 : -1;
}

static const char *path_in(const char *name)
{
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Open url, make sure it works, close. */
static void open_use_close(const char *url)
{
    sh_meta_t *m = NULL;
    OK(sh_meta_open(url, &m));
    assert_string_equal(sh_meta_backend_name(m), "sqlite");
    int dbv, codev;
    OK(sh_meta_schema_version(m, &dbv, &codev));
    assert_int_equal(dbv, codev);
    sh_uuid_t id;
    OK(sh_meta_topic_create(m, "t", 1, NULL, 0, 1, &id));
    sh_meta_close(m);
}

static void test_url_forms(void **state)
{
    (void)state;
    char url[512], cwd[PATH_MAX];

    snprintf(url, sizeof(url), "sqlite://%s", path_in("abs.db"));
    assert_int_equal(strncmp(url, "sqlite:///", 10), 0);
    open_use_close(url);
    assert_true(file_exists(path_in("abs.db")));

    snprintf(url, sizeof(url), "SQLite://%s", path_in("upper.db"));
    open_use_close(url);
    assert_true(file_exists(path_in("upper.db")));

    open_use_close(path_in("plain.db"));
    assert_true(file_exists(path_in("plain.db")));

    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(dir), 0);
    open_use_close("sqlite://rel.db");
    open_use_close("plainrel.db");
    assert_int_equal(chdir(cwd), 0);
    assert_true(file_exists(path_in("rel.db")));
    assert_true(file_exists(path_in("plainrel.db")));

    open_use_close("sqlite://:memory:");
}

static void test_url_refusals(void **state)
{
    (void)state;
    sh_meta_t *m = (sh_meta_t *)0x1;
    assert_int_equal(sh_meta_open(NULL, &m), SH_E_INVAL);
    assert_null(m);
    assert_int_equal(sh_meta_open("", &m), SH_E_INVAL);
    assert_int_equal(sh_meta_open("sqlite://", &m), SH_E_INVAL);
    char url[512];
    snprintf(url, sizeof(url), "sqlite://%s?mode=ro", path_in("q.db"));
    assert_int_equal(sh_meta_open(url, &m), SH_E_INVAL);
    assert_false(file_exists(path_in("q.db")));
    /* PostgreSQL URLs go to the PostgreSQL backend (nothing listens on
     * port 1, so the open fails: test_meta_pg covers the rest) */
    assert_int_equal(sh_meta_open("postgresql://127.0.0.1:1/streamhouse", &m), SH_E_IO);
    assert_int_equal(sh_meta_open("postgres://127.0.0.1:1/streamhouse", &m), SH_E_IO);
    assert_int_equal(sh_meta_open("mysql://localhost/streamhouse", &m), SH_E_UNSUPPORTED);
    assert_null(m);
    snprintf(url, sizeof(url), "sqlite://%s/no/such/dir/x.db", dir);
    assert_int_equal(sh_meta_open(url, &m), SH_E_IO);
    assert_null(m);
}

/* Run sh_meta_open(url) with the log going to a file; return the log. */
static char *open_logged(const char *url, sh_err_t want)
{
    const char *lp = path_in("log.txt");
    int fd = open(lp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    sh_log_set_fd(fd);
    sh_meta_t *m = NULL;
    sh_err_t err = sh_meta_open(url, &m);
    sh_log_set_fd(getenv("SH_TEST_VERBOSE") ? 2 : devnull);
    sh_meta_close(m);
    assert_int_equal(err, want);
    static char buf[4096];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    unlink(lp);
    assert_true(n > 0);
    buf[n] = '\0';
    return buf;
}

static void test_url_log_names_url_without_password(void **state)
{
    (void)state;
    char *log = open_logged("postgresql://shuser:s3cr3t-pw@127.0.0.1:1/sh", SH_E_IO);
    assert_non_null(strstr(log, "\"postgresql://shuser:***@127.0.0.1:1/sh\""));
    assert_non_null(strstr(log, "ERROR"));
    assert_null(strstr(log, "s3cr3t"));

    log = open_logged("postgres://u:p@127.0.0.1:1/d?sslmode=disable", SH_E_IO);
    assert_non_null(strstr(log, "postgres://u:***@127.0.0.1:1/d?sslmode=disable"));
    assert_null(strstr(log, "u:p@"));

    log = open_logged("redis://host/0", SH_E_UNSUPPORTED);
    assert_non_null(strstr(log, "\"redis://host/0\""));
    assert_non_null(strstr(log, "unknown scheme \"redis\""));
}

static void test_not_a_database(void **state)
{
    (void)state;
    const char *p = path_in("garbage.db");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    char junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)(i * 131 + 7);
    assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    close(fd);
    char url[512];
    snprintf(url, sizeof(url), "sqlite://%s", p);
    char *log = open_logged(url, SH_E_IO);
    assert_non_null(strstr(log, p));
}

static void test_file_settings(void **state)
{
    (void)state;
    const char *p = path_in("settings.db");
    open_use_close(p);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    /* exactly one schema_version row per migration */
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*), max(version) FROM schema_version",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), sh_meta_sqlite_migrations_count);
    assert_int_equal(sqlite3_column_int(st, 1), sh_meta_sqlite_migrations_count);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_migration_list_is_contiguous(void **state)
{
    (void)state;
    assert_true(sh_meta_sqlite_migrations_count >= 2);
    for (int i = 0; i < sh_meta_sqlite_migrations_count; i++) {
        assert_int_equal(sh_meta_sqlite_migrations[i].version, i + 1);
        assert_non_null(sh_meta_sqlite_migrations[i].description);
        assert_true(strlen(sh_meta_sqlite_migrations[i].sql) > 0);
    }
}

static int table_exists(sqlite3 *db, const char *name)
{
    sqlite3_stmt *st;
    int found = 0;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return found;
}

/* A file written by a build that knew only migration 1 is upgraded in
 * place, keeping its data. */
static void test_upgrade_from_v1(void **state)
{
    (void)state;
    const char *p = path_in("v1.db");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db,
                          "CREATE TABLE schema_version (version INTEGER PRIMARY KEY,"
                          " applied_ms INTEGER NOT NULL, description TEXT NOT NULL);"
                          "INSERT INTO schema_version VALUES (1, 0, 'v1');",
                          NULL, NULL, &msg);
    assert_int_equal(rc, SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sh_meta_sqlite_migrations[0].sql, NULL, NULL, &msg),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO topics VALUES (zeroblob(16), 'old', 1, 5, 0);"
                                  "INSERT INTO partitions (topic_id, partition_index)"
                                  " VALUES (zeroblob(16), 0)",
                                  NULL, NULL, &msg),
                     SQLITE_OK);
    assert_int_equal(table_exists(db, "group_offsets"), 0);
    sqlite3_close(db);

    sh_meta_t *m;
    OK(sh_meta_open(p, &m));
    int dbv, codev;
    OK(sh_meta_schema_version(m, &dbv, &codev));
    assert_int_equal(dbv, codev);
    sh_arena_t a;
    sh_arena_init(&a, 1024);
    sh_meta_topic_t t;
    OK(sh_meta_topic_get_by_name(m, "old", &a, &t));
    assert_int_equal(t.created_ms, 5);
    sh_arena_fini(&a);
    int64_t pid;
    OK(sh_meta_producer_ids_allocate(m, 1, 10, 1, &pid)); /* a v2 table */
    sh_meta_close(m);

    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(table_exists(db, "group_offsets"), 1);
    assert_int_equal(table_exists(db, "producer_id_blocks"), 1);
    sqlite3_close(db);
}

/* Two brokers starting at once on a fresh file: the migrations run once,
 * both opens succeed. */
static void test_concurrent_first_open(void **state)
{
    (void)state;
    char url[512];
    snprintf(url, sizeof(url), "sqlite://%s", path_in("race.db"));
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            sh_meta_t *m;
            sh_uuid_t id;
            if (sh_meta_open(url, &m) != SH_OK)
                _exit(2);
            if (sh_meta_topic_create(m, i ? "child1" : "child0", 1, NULL, 0, 1, &id) != SH_OK)
                _exit(3);
            sh_meta_close(m);
            _exit(0);
        }
    }
    for (int i = 0; i < 2; i++) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    sh_meta_t *m;
    OK(sh_meta_open(url, &m));
    sh_arena_t a;
    sh_arena_init(&a, 1024);
    sh_meta_topic_t *ts;
    size_t n;
    OK(sh_meta_topic_list(m, &a, &ts, &n));
    assert_int_equal(n, 2);
    assert_string_equal(ts[0].name, "child0");
    assert_string_equal(ts[1].name, "child1");
    sh_arena_fini(&a);
    sh_meta_close(m);

    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path_in("race.db"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM schema_version", -1, &st,
                                        NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), sh_meta_sqlite_migrations_count);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_uuid_text(void **state)
{
    (void)state;
    char s[SH_META_CLUSTER_ID_LEN + 1];
    sh_uuid_t u = {{0}};
    sh_meta_uuid_str(u, s);
    assert_string_equal(s, "AAAAAAAAAAAAAAAAAAAAAA"); /* Kafka's Uuid.ZERO */
    u.b[15] = 1;
    sh_meta_uuid_str(u, s);
    assert_string_equal(s, "AAAAAAAAAAAAAAAAAAAAAQ"); /* Kafka's METADATA_TOPIC_ID */
    memset(u.b, 0xff, 16);
    sh_meta_uuid_str(u, s);
    assert_string_equal(s, "_____________________w");

    sh_uuid_t prev = {{0}};
    for (int i = 0; i < 500; i++) {
        OK(sh_meta_uuid_random(&u));
        assert_int_equal(u.b[6] >> 4, 4);
        assert_int_equal(u.b[8] >> 6, 2);
        sh_meta_uuid_str(u, s);
        assert_int_equal(strlen(s), 22);
        assert_true(s[0] != '-');
        assert_memory_not_equal(u.b, prev.b, 16);
        prev = u;
    }
}

static void test_topic_name_rules(void **state)
{
    (void)state;
    OK(sh_meta_topic_name_check("a"));
    OK(sh_meta_topic_name_check("..."));
    OK(sh_meta_topic_name_check("__consumer_offsets"));
    OK(sh_meta_topic_name_check("A-z.0_9"));
    assert_int_equal(sh_meta_topic_name_check(".."), SH_KERR_INVALID_TOPIC_EXCEPTION);
    assert_int_equal(sh_meta_topic_name_check("a\xff"), SH_KERR_INVALID_TOPIC_EXCEPTION);
    assert_int_equal(sh_meta_topic_name_check("a:b"), SH_KERR_INVALID_TOPIC_EXCEPTION);
    assert_int_equal(sh_meta_topic_name_check(NULL), SH_KERR_INVALID_TOPIC_EXCEPTION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_forms),
        cmocka_unit_test(test_url_refusals),
        cmocka_unit_test(test_url_log_names_url_without_password),
        cmocka_unit_test(test_not_a_database),
        cmocka_unit_test(test_file_settings),
        cmocka_unit_test(test_migration_list_is_contiguous),
        cmocka_unit_test(test_upgrade_from_v1),
        cmocka_unit_test(test_concurrent_first_open),
        cmocka_unit_test(test_uuid_text),
        cmocka_unit_test(test_topic_name_rules),
    };
    return cmocka_run_group_tests_name("meta_sqlite", tests, group_setup, group_teardown);
}
