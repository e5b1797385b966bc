/*
 * test_broker_config.c - the config table: defaults, Java-properties
 * parsing, overrides, aliases, unknown-key warnings, invalid values
 * refused with the key named, listener parsing and derived values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/sh_config.h"
#include "common/sh_log.h"

static char err[1024];

/* Capture log output in a temporary file for the duration of a test. */
static FILE *logcap;

static void log_capture_start(void)
{
    logcap = tmpfile();
    assert_non_null(logcap);
    sh_log_set_fd(fileno(logcap));
}

static char *log_capture_end(void)
{
    static char buf[8192];
    sh_log_set_fd(2);
    fflush(logcap);
    rewind(logcap);
    size_t n = fread(buf, 1, sizeof(buf) - 1, logcap);
    buf[n] = '\0';
    fclose(logcap);
    logcap = NULL;
    return buf;
}

static sh_err_t load(sh_config_t *c, const char *text)
{
    return sh_config_load_string(c, text, "test.properties", err, sizeof(err));
}

static void test_defaults(void **state)
{
    (void)state;
    sh_config_t c;
    assert_int_equal(sh_config_init(&c), SH_OK);
    assert_int_equal(sh_config_finalize(&c, err, sizeof(err)), SH_OK);
    assert_string_equal(c.listeners, "PLAINTEXT://127.0.0.1:9092");
    assert_int_equal(c.listener_count, 1);
    assert_string_equal(c.listener[0].name, "PLAINTEXT");
    assert_string_equal(c.listener[0].host, "127.0.0.1");
    assert_int_equal(c.listener[0].port, 9092);
    assert_string_equal(c.advertised[0].host, "127.0.0.1");
    assert_int_equal(c.advertised[0].port, 9092);
    assert_int_equal(c.node_id, 1);
    assert_int_equal(c.num_partitions, 1);
    assert_true(c.auto_create_topics_enable);
    assert_int_equal(c.socket_request_max_bytes, 104857600);
    assert_int_equal(c.connections_max_idle_ms, 600000);
    assert_int_equal(c.retention_ms, 604800000);
    assert_string_equal(c.log_level, "info");
    /* derived: absolute data dir and URLs under it */
    assert_true(c.data_dir[0] == '/');
    assert_non_null(strstr(c.data_dir, "/data"));
    char want[4200];
    snprintf(want, sizeof(want), "file://%s/objects", c.data_dir);
    assert_string_equal(c.storage_url, want);
    snprintf(want, sizeof(want), "sqlite://%s/meta.db", c.data_dir);
    assert_string_equal(c.metadata_url, want);
    for (int i = 0; i < SH_CONFIG_NKEYS; i++)
        assert_int_equal(c.source[i], SH_CONFIG_SRC_DEFAULT);
    sh_config_fini(&c);
}

static void test_properties_syntax(void **state)
{
    (void)state;
    sh_config_t c;
    assert_int_equal(sh_config_init(&c), SH_OK);
    const char *text =
        "# a comment = not a key\n"
        "   ! another comment\n"
        "\n"
        "num.partitions=3\n"
        "  default.replication.factor : 2   \n"
        "log.segment.bytes 2097152\n"
        "log.dirs = /tmp/sh-test-\\\n"
        "           data\r\n"
        "streamhouse.log.level=\\u0064ebug\n"
        "auto.create.topics.enable=FALSE\n"
        "message.max.bytes=1000\n"
        "message.max.bytes=2000\n"; /* last one wins */
    assert_int_equal(load(&c, text), SH_OK);
    assert_int_equal(c.num_partitions, 3);
    assert_int_equal(c.default_replication_factor, 2);
    assert_int_equal(c.log_segment_bytes, 2097152);
    assert_string_equal(c.log_dirs, "/tmp/sh-test-data");
    assert_string_equal(c.log_level, "debug");
    assert_false(c.auto_create_topics_enable);
    assert_int_equal(c.message_max_bytes, 2000);
    assert_int_equal(c.source[SH_CONFIG_K_num_partitions], SH_CONFIG_SRC_FILE);
    assert_int_equal(c.source[SH_CONFIG_K_node_id], SH_CONFIG_SRC_DEFAULT);
    assert_int_equal(sh_config_finalize(&c, err, sizeof(err)), SH_OK);
    assert_string_equal(c.data_dir, "/tmp/sh-test-data");
    sh_config_fini(&c);
}

static void test_overrides_win(void **state)
{
    (void)state;
    sh_config_t c;
    assert_int_equal(sh_config_init(&c), SH_OK);
    assert_int_equal(load(&c, "num.partitions=3\nbroker.id=4\n"), SH_OK);
    assert_int_equal(sh_config_set_override(&c, "num.partitions=9", err, sizeof(err)),
                     SH_OK);
    /* an override may use the canonical name over a file's alias */
    assert_int_equal(sh_config_set_override(&c, " node.id = 8 ", err, sizeof(err)),
                     SH_OK);
    assert_int_equal(c.num_partitions, 9);
    assert_int_equal(c.node_id, 8);
    assert_int_equal(c.source[SH_CONFIG_K_num_partitions], SH_CONFIG_SRC_OVERRIDE);
    assert_int_equal(sh_config_set_override(&c, "novalue", err, sizeof(err)), SH_E_INVAL);
    assert_non_null(strstr(err, "novalue"));
    assert_int_equal(sh_config_set_override(&c, "=5", err, sizeof(err)), SH_E_INVAL);
    sh_config_fini(&c);
}

static void test_aliases(void **state)
{
    (void)state;
    sh_config_t c;
    assert_int_equal(sh_config_init(&c), SH_OK);
    assert_int_equal(load(&c, "broker.id=5\nlog.dir=/tmp/x\n"), SH_OK);
    assert_int_equal(c.node_id, 5);
    assert_string_equal(c.log_dirs, "/tmp/x");
    sh_config_fini(&c);

    /* both spellings agreeing is fine */
    assert_int_equal(sh_config_init(&c), SH_OK);
    assert_int_equal(load(&c, "broker.id=5\nnode.id=5\n"), SH_OK);
    assert_int_equal(c.node_id, 5);
    sh_config_fini(&c);

    /* disagreeing in one file is refused, naming both */
    assert_int_equal(sh_config_init(&c), SH_OK);
    assert_int_equal(load(&c, "node.id=5\nbroker.id=6\n"), SH_E_INVAL);
    assert_non_null(strstr(err, "node.id"));
    assert_non_null(strstr(err, "broker.id"));
    assert_non_null(strstr(err, "line 2"));
    sh_config_fini(&c);
    assert_int_equal(sh_config_key_find("broker.id"), SH_CONFIG_K_node_id);
    assert_int_equal(sh_config_key_find("no.such.key"), -1);
}

static void test_unknown_key_warns(void **state)
{
    (void)state;
    sh_config_t c;
    assert_int_equal(sh_config_init(&c), SH_OK);
    log_capture_start();
    sh_err_t e = load(&c, "zookeeper.connect=localhost:2181\nnum.partitions=2\n");
    sh_err_t e2 = sh_config_set_override(&c, "made.up=1", err, sizeof(err));
    char *log = log_capture_end();
    assert_int_equal(e, SH_OK);
    assert_int_equal(e2, SH_OK);
    assert_int_equal(c.num_partitions, 2);
    assert_non_null(strstr(log, "WARN"));
    assert_non_null(strstr(log, "\"zookeeper.connect\""));
    assert_non_null(strstr(log, "line 1"));
    assert_non_null(strstr(log, "\"made.up\""));
    sh_config_fini(&c);
}

/* Each invalid setting must be refused with the key named. */
static void test_invalid_values(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        const char *key;
    } bad[] = {
        {"num.partitions=abc", "num.partitions"},
        {"num.partitions=0", "num.partitions"},
        {"num.partitions=12x", "num.partitions"},
        {"num.partitions=", "num.partitions"},
        {"node.id=-1", "node.id"},
        {"node.id=99999999999", "node.id"},
        {"broker.id=x", "broker.id"},
        {"socket.request.max.bytes=4", "socket.request.max.bytes"},
        {"connections.max.idle.ms=-2", "connections.max.idle.ms"},
        {"auto.create.topics.enable=yes", "auto.create.topics.enable"},
        {"streamhouse.log.level=verbose", "streamhouse.log.level"},
        {"listeners=127.0.0.1:9092", "listeners"},
        {"listeners=PLAINTEXT://127.0.0.1", "listeners"},
        {"listeners=PLAINTEXT://127.0.0.1:99999", "listeners"},
        {"listeners=PLAINTEXT://::1:9092", "listeners"},
        {"listeners=", "listeners"},
        {"listeners=A://:1,A://:2", "listeners"},
        {"advertised.listeners=nonsense", "advertised.listeners"},
        {"listener.security.protocol.map=PLAINTEXT:FOO", "listener.security.protocol.map"},
        {"streamhouse.storage.url=ftp://x", "streamhouse.storage.url"},
        {"streamhouse.storage.url=file://relative", "streamhouse.storage.url"},
        {"streamhouse.metadata.url=mysql://x", "streamhouse.metadata.url"},
        {"log.dirs=", "log.dirs"},
        {"log.segment.bytes=10", "log.segment.bytes"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sh_config_t c;
        assert_int_equal(sh_config_init(&c), SH_OK);
        err[0] = '\0';
        sh_err_t e = load(&c, bad[i].line);
        if (e != SH_E_INVAL || !strstr(err, bad[i].key))
            fail_msg("\"%s\": got %d, \"%s\"", bad[i].line, e, err);
        sh_config_fini(&c);

        /* same through --override */
        assert_int_equal(sh_config_init(&c), SH_OK);
        err[0] = '\0';
        e = sh_config_set_override(&c, bad[i].line, err, sizeof(err));
        if (e != SH_E_INVAL || !strstr(err, bad[i].key))
            fail_msg("override \"%s\": got %d, \"%s\"", bad[i].line, e, err);
        sh_config_fini(&c);
    }
}

static void test_missing_file(void **state)
{
    (void)state;
    sh_config_t c;
    assert_int_equal(sh_config_init(&c), SH_OK);
    assert_int_equal(sh_config_load_file(&c, "/nonexistent/x.properties", err, sizeof(err)),
                     SH_E_IO);
    assert_non_null(strstr(err, "/nonexistent/x.properties"));
    sh_config_fini(&c);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/sh-test-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "node.id=3\nlisteners=PLAINTEXT://127.0.0.1:19093\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    sh_config_t c;
    assert_int_equal(sh_config_init(&c), SH_OK);
    assert_int_equal(sh_config_load_file(&c, path, err, sizeof(err)), SH_OK);
    unlink(path);
    assert_int_equal(c.node_id, 3);
    assert_int_equal(sh_config_finalize(&c, err, sizeof(err)), SH_OK);
    assert_int_equal(c.listener[0].port, 19093);
    sh_config_fini(&c);
}

static void test_listeners(void **state)
{
    (void)state;
    sh_config_t c;
    assert_int_equal(sh_config_init(&c), SH_OK);
    assert_int_equal(
        load(&c, "listeners=PLAINTEXT://:19092, internal://[::1]:19093 ,EXT://0.0.0.0:0\n"
                 "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,"
                 "EXT:PLAINTEXT\n"
                 "advertised.listeners=EXT://broker.example.com:443\n"),
        SH_OK);
    assert_int_equal(sh_config_finalize(&c, err, sizeof(err)), SH_OK);
    assert_int_equal(c.listener_count, 3);
    assert_string_equal(c.listener[0].host, "");
    assert_int_equal(c.listener[0].port, 19092);
    assert_string_equal(c.listener[1].name, "INTERNAL"); /* normalised */
    assert_string_equal(c.listener[1].host, "::1");
    assert_int_equal(c.listener[1].port, 19093);
    assert_string_equal(c.listener[2].host, "0.0.0.0");
    /* a wildcard host is never advertised */
    assert_true(c.advertised[0].host[0] != '\0');
    assert_string_not_equal(c.advertised[0].host, "0.0.0.0");
    assert_int_equal(c.advertised[0].port, 19092);
    assert_string_equal(c.advertised[1].host, "::1");
    assert_string_equal(c.advertised[2].host, "broker.example.com");
    assert_int_equal(c.advertised[2].port, 443);
    sh_config_fini(&c);
}

static void test_listener_finalize_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *needle;
    } bad[] = {
        /* only PLAINTEXT is served */
        {"listeners=SSL://:9093\nlistener.security.protocol.map=SSL:SSL\n", "SSL"},
        /* no protocol for the name */
        {"listeners=FOO://:9093\n", "FOO"},
        /* advertised name must exist */
        {"advertised.listeners=OTHER://h:1\n", "OTHER"},
        /* advertised needs a concrete host */
        {"advertised.listeners=PLAINTEXT://0.0.0.0:9092\n", "advertised.listeners"},
        /* same address twice */
        {"listeners=A://127.0.0.1:9092,B://127.0.0.1:9092\n"
         "listener.security.protocol.map=A:PLAINTEXT,B:PLAINTEXT\n", "twice"},
        {"log.dirs=/a,/b\n", "log.dirs"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sh_config_t c;
        assert_int_equal(sh_config_init(&c), SH_OK);
        assert_int_equal(load(&c, bad[i].text), SH_OK);
        err[0] = '\0';
        sh_err_t e = sh_config_finalize(&c, err, sizeof(err));
        if (e == SH_OK || !strstr(err, bad[i].needle))
            fail_msg("\"%s\": got %d, \"%s\"", bad[i].text, e, err);
        sh_config_fini(&c);
    }
}

static void test_retention_precedence(void **state)
{
    (void)state;
    sh_config_t c;
    assert_int_equal(sh_config_init(&c), SH_OK);
    assert_int_equal(load(&c, "log.retention.hours=2\n"), SH_OK);
    assert_int_equal(sh_config_finalize(&c, err, sizeof(err)), SH_OK);
    assert_int_equal(c.retention_ms, 2 * 3600000);
    assert_int_equal(load(&c, "log.retention.minutes=3\n"), SH_OK);
    assert_int_equal(sh_config_finalize(&c, err, sizeof(err)), SH_OK);
    assert_int_equal(c.retention_ms, 3 * 60000);
    assert_int_equal(load(&c, "log.retention.ms=1234\n"), SH_OK);
    assert_int_equal(sh_config_finalize(&c, err, sizeof(err)), SH_OK);
    assert_int_equal(c.retention_ms, 1234);
    sh_config_fini(&c);

    assert_int_equal(sh_config_init(&c), SH_OK);
    assert_int_equal(load(&c, "log.retention.hours=-1\n"), SH_OK);
    assert_int_equal(sh_config_finalize(&c, err, sizeof(err)), SH_OK);
    assert_int_equal(c.retention_ms, -1);
    sh_config_fini(&c);
}

static void test_explicit_urls_and_relative_dir(void **state)
{
    (void)state;
    sh_config_t c;
    assert_int_equal(sh_config_init(&c), SH_OK);
    assert_int_equal(load(&c, "log.dirs=./some/dir/\n"
                              "streamhouse.storage.url=s3://bucket/prefix\n"
                              "streamhouse.metadata.url=postgresql://u@h/db\n"),
                     SH_OK);
    assert_int_equal(sh_config_finalize(&c, err, sizeof(err)), SH_OK);
    char cwd[4096], want[4200];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    snprintf(want, sizeof(want), "%s/some/dir", cwd);
    assert_string_equal(c.data_dir, want);
    assert_string_equal(c.storage_url, "s3://bucket/prefix");
    assert_string_equal(c.metadata_url, "postgresql://u@h/db");
    sh_config_fini(&c);
}

/* The table itself: names unique, defaults valid (init parses them),
 * every key printable. */
static void test_table_and_log(void **state)
{
    (void)state;
    for (int i = 0; i < SH_CONFIG_NKEYS; i++) {
        assert_non_null(sh_config_keys[i].help);
        assert_int_equal(sh_config_key_find(sh_config_keys[i].name), i);
        for (int j = i + 1; j < SH_CONFIG_NKEYS; j++)
            assert_string_not_equal(sh_config_keys[i].name, sh_config_keys[j].name);
    }
    sh_config_t c;
    assert_int_equal(sh_config_init(&c), SH_OK);
    assert_int_equal(sh_config_set_override(&c, "num.partitions=7", err, sizeof(err)), SH_OK);
    assert_int_equal(sh_config_finalize(&c, err, sizeof(err)), SH_OK);
    log_capture_start();
    sh_config_log(&c);
    char *log = log_capture_end();
    for (int i = 0; i < SH_CONFIG_NKEYS; i++) {
        char needle[128];
        snprintf(needle, sizeof(needle), "%s = ", sh_config_keys[i].name);
        assert_non_null(strstr(log, needle));
    }
    assert_non_null(strstr(log, "num.partitions = 7 (override)"));
    sh_config_fini(&c);

    /* passwords in URLs never reach the log */
    assert_int_equal(sh_config_init(&c), SH_OK);
    assert_int_equal(sh_config_set_override(&c,
                                            "streamhouse.metadata.url=postgresql://"
                                            "sh:s3cret@db.example.com/sh",
                                            err, sizeof(err)),
                     SH_OK);
    assert_int_equal(sh_config_finalize(&c, err, sizeof(err)), SH_OK);
    log_capture_start();
    sh_config_log(&c);
    log = log_capture_end();
    assert_null(strstr(log, "s3cret"));
    assert_non_null(strstr(log, "postgresql://sh:****@db.example.com/sh"));
    sh_config_fini(&c);

    /* nor does a password given as a libpq query parameter */
    assert_int_equal(sh_config_init(&c), SH_OK);
    assert_int_equal(sh_config_set_override(&c,
                                            "streamhouse.metadata.url=postgresql://"
                                            "db.example.com/sh?user=sh&password=pw&"
                                            "sslmode=verify-full",
                                            err, sizeof(err)),
                     SH_OK);
    assert_int_equal(sh_config_finalize(&c, err, sizeof(err)), SH_OK);
    log_capture_start();
    sh_config_log(&c);
    log = log_capture_end();
    assert_null(strstr(log, "password=pw"));
    assert_non_null(strstr(log, "?user=sh&password=****&sslmode=verify-full"));
    sh_config_fini(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_properties_syntax),
        cmocka_unit_test(test_overrides_win),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_unknown_key_warns),
        cmocka_unit_test(test_invalid_values),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_listeners),
        cmocka_unit_test(test_listener_finalize_errors),
        cmocka_unit_test(test_retention_precedence),
        cmocka_unit_test(test_explicit_urls_and_relative_dir),
        cmocka_unit_test(test_table_and_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
