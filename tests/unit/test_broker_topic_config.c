/*
 * test_broker_topic_config.c - topic-level configuration: every key's
 * validation (good and bad values, unknown keys, compaction refused),
 * defaults taken from the broker configuration, how DescribeConfigs
 * describes a key (value, source, synonyms in Kafka's order), whole-set
 * validation and IncrementalAlterConfigs list editing.
 *
 * Pure functions over structs: no threads, no files, no clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "broker/sh_config.h"
#include "broker/sh_topic_config.h"

#define OK(x) assert_int_equal((x), SH_OK)

static void cfg_make(sh_config_t *c, const char *const *overrides)
{
    char err[256];
    OK(sh_config_init(c));
    for (int i = 0; overrides && overrides[i]; i++)
        OK(sh_config_set_override(c, overrides[i], err, sizeof(err)));
    OK(sh_config_finalize(c, err, sizeof(err)));
}

static sh_err_t apply(sh_topic_cfg_t *t, const sh_config_t *b, const char *k, const char *v)
{
    char why[256] = "";
    sh_err_t err = sh_topic_cfg_apply(t, b, k, v, why, sizeof(why));
    if (err != SH_OK)
        assert_true(why[0] != '\0'); /* every refusal explains itself */
    return err;
}

static void test_key_table(void **state)
{
    (void)state;
    sh_config_t b;
    cfg_make(&b, NULL);
    assert_true(sh_topic_cfg_nkeys >= 11);
    for (size_t i = 0; i < sh_topic_cfg_nkeys; i++) {
        const sh_topic_cfg_key_t *k = &sh_topic_cfg_keys[i];
        /* sorted, unique, documented, found by name */
        if (i > 0)
            assert_true(strcmp(sh_topic_cfg_keys[i - 1].name, k->name) < 0);
        assert_ptr_equal(sh_topic_cfg_key_find(k->name), k);
        assert_non_null(k->doc);
        assert_true(strlen(k->doc) > 20);
        assert_true(k->type > SH_CFG_TYPE_UNKNOWN && k->type <= SH_CFG_TYPE_PASSWORD);
        /* every broker synonym exists in the broker's table */
        for (int j = 0; k->broker_keys[j]; j++)
            assert_true(sh_config_key_find(k->broker_keys[j]) >= 0);
        assert_true(k->broker_keys[0] || k->default_value);
        /* the key's own default is a value it accepts, and NULL restores it */
        char def[SH_TOPIC_CFG_VALUE_MAX];
        sh_topic_cfg_t t;
        sh_topic_cfg_defaults(&t, &b);
        assert_int_equal(sh_topic_cfg_default_str(&b, k, def, sizeof(def)), SH_CFG_SOURCE_DEFAULT);
        OK(apply(&t, &b, k->name, def));
        OK(apply(&t, &b, k->name, NULL));
    }
    assert_null(sh_topic_cfg_key_find("retention.hours"));
    assert_null(sh_topic_cfg_key_find(""));
    sh_config_fini(&b);
}

static void test_defaults_from_broker(void **state)
{
    (void)state;
    sh_config_t b;
    sh_topic_cfg_t t;
    cfg_make(&b, NULL);
    sh_topic_cfg_defaults(&t, &b);
    assert_int_equal(t.retention_ms, 7LL * 24 * 3600 * 1000);
    assert_int_equal(t.retention_bytes, -1);
    assert_int_equal(t.segment_bytes, 1073741824);
    assert_int_equal(t.segment_ms, 7LL * 24 * 3600 * 1000);
    assert_int_equal(t.max_message_bytes, 1048588);
    assert_false(t.log_append_time);
    assert_int_equal(t.durability, SH_DURABILITY_WAL);
    sh_config_fini(&b);

    const char *const ov[] = {"log.retention.hours=2", "log.retention.bytes=5000",
                              "log.segment.bytes=2000000", "message.max.bytes=777", NULL};
    cfg_make(&b, ov);
    sh_topic_cfg_defaults(&t, &b);
    assert_int_equal(t.retention_ms, 2LL * 3600 * 1000);
    assert_int_equal(t.retention_bytes, 5000);
    assert_int_equal(t.segment_bytes, 2000000);
    assert_int_equal(t.max_message_bytes, 777);
    /* NULL brings back the broker's value, not Kafka's */
    OK(apply(&t, &b, "max.message.bytes", "100"));
    assert_int_equal(t.max_message_bytes, 100);
    OK(apply(&t, &b, "max.message.bytes", NULL));
    assert_int_equal(t.max_message_bytes, 777);
    sh_config_fini(&b);
}

static void test_values(void **state)
{
    (void)state;
    sh_config_t b;
    sh_topic_cfg_t t;
    cfg_make(&b, NULL);
    sh_topic_cfg_defaults(&t, &b);

    OK(apply(&t, &b, "retention.ms", "-1"));
    assert_int_equal(t.retention_ms, -1);
    OK(apply(&t, &b, "retention.ms", "3600000"));
    assert_int_equal(t.retention_ms, 3600000);
    assert_int_equal(apply(&t, &b, "retention.ms", "-2"), SH_KERR_INVALID_CONFIG);
    assert_int_equal(apply(&t, &b, "retention.ms", "1h"), SH_KERR_INVALID_CONFIG);
    assert_int_equal(apply(&t, &b, "retention.ms", ""), SH_KERR_INVALID_CONFIG);
    assert_int_equal(apply(&t, &b, "retention.ms", "99999999999999999999"),
                     SH_KERR_INVALID_CONFIG);
    assert_int_equal(t.retention_ms, 3600000); /* a refusal changes nothing */

    OK(apply(&t, &b, "retention.bytes", "-1"));
    OK(apply(&t, &b, "retention.bytes", "1099511627776"));
    assert_int_equal(t.retention_bytes, 1099511627776LL);
    assert_int_equal(apply(&t, &b, "retention.bytes", "-5"), SH_KERR_INVALID_CONFIG);

    OK(apply(&t, &b, "segment.bytes", "1048576"));
    assert_int_equal(t.segment_bytes, 1048576);
    assert_int_equal(apply(&t, &b, "segment.bytes", "13"), SH_KERR_INVALID_CONFIG);
    assert_int_equal(apply(&t, &b, "segment.bytes", "4294967296"), SH_KERR_INVALID_CONFIG);

    OK(apply(&t, &b, "segment.ms", "60000"));
    assert_int_equal(t.segment_ms, 60000);
    assert_int_equal(apply(&t, &b, "segment.ms", "0"), SH_KERR_INVALID_CONFIG);

    OK(apply(&t, &b, "max.message.bytes", "0"));
    assert_int_equal(t.max_message_bytes, 0);
    assert_int_equal(apply(&t, &b, "max.message.bytes", "2147483648"), SH_KERR_INVALID_CONFIG);

    OK(apply(&t, &b, "message.timestamp.type", "LogAppendTime"));
    assert_true(t.log_append_time);
    OK(apply(&t, &b, "message.timestamp.type", "CreateTime"));
    assert_false(t.log_append_time);
    assert_int_equal(apply(&t, &b, "message.timestamp.type", "logappendtime"),
                     SH_KERR_INVALID_CONFIG);

    OK(apply(&t, &b, "streamhouse.durability", "object"));
    assert_int_equal(t.durability, SH_DURABILITY_OBJECT);
    OK(apply(&t, &b, "streamhouse.durability", "wal"));
    assert_int_equal(t.durability, SH_DURABILITY_WAL);
    assert_int_equal(apply(&t, &b, "streamhouse.durability", "disk"), SH_KERR_INVALID_CONFIG);

    /* compaction is refused with a message that says so */
    char why[256];
    OK(apply(&t, &b, "cleanup.policy", "delete"));
    assert_int_equal(sh_topic_cfg_apply(&t, &b, "cleanup.policy", "compact", why, sizeof(why)),
                     SH_KERR_INVALID_CONFIG);
    assert_non_null(strstr(why, "compact"));
    assert_int_equal(apply(&t, &b, "cleanup.policy", "delete,compact"), SH_KERR_INVALID_CONFIG);
    assert_int_equal(apply(&t, &b, "cleanup.policy", ""), SH_KERR_INVALID_CONFIG);

    OK(apply(&t, &b, "compression.type", "producer"));
    assert_int_equal(apply(&t, &b, "compression.type", "zstd"), SH_KERR_INVALID_CONFIG);

    OK(apply(&t, &b, "min.insync.replicas", "2"));
    assert_int_equal(apply(&t, &b, "min.insync.replicas", "0"), SH_KERR_INVALID_CONFIG);

    OK(apply(&t, &b, "unclean.leader.election.enable", "TRUE"));
    OK(apply(&t, &b, "unclean.leader.election.enable", "false"));
    assert_int_equal(apply(&t, &b, "unclean.leader.election.enable", "yes"),
                     SH_KERR_INVALID_CONFIG);

    assert_int_equal(sh_topic_cfg_apply(&t, &b, "retention.hours", "1", why, sizeof(why)),
                     SH_KERR_INVALID_CONFIG);
    assert_non_null(strstr(why, "unknown"));
    sh_config_fini(&b);
}

static void test_validate_set(void **state)
{
    (void)state;
    sh_config_t b;
    sh_topic_cfg_t t;
    char why[256];
    cfg_make(&b, NULL);
    const sh_meta_config_t good[] = {{"retention.ms", "1000"}, {"segment.bytes", "100000"}};
    OK(sh_topic_cfg_validate(&b, good, 2, &t, why, sizeof(why)));
    assert_int_equal(t.retention_ms, 1000);
    assert_int_equal(t.segment_bytes, 100000);
    OK(sh_topic_cfg_validate(&b, NULL, 0, &t, why, sizeof(why)));
    assert_int_equal(t.retention_ms, b.retention_ms);

    const sh_meta_config_t twice[] = {{"retention.ms", "1000"}, {"retention.ms", "2000"}};
    assert_int_equal(sh_topic_cfg_validate(&b, twice, 2, NULL, why, sizeof(why)),
                     SH_KERR_INVALID_CONFIG);
    assert_non_null(strstr(why, "more than once"));
    const sh_meta_config_t bad[] = {{"retention.ms", "1000"}, {"cleanup.policy", "compact"}};
    assert_int_equal(sh_topic_cfg_validate(&b, bad, 2, NULL, why, sizeof(why)),
                     SH_KERR_INVALID_CONFIG);
    sh_config_fini(&b);
}

static void test_describe_sources(void **state)
{
    (void)state;
    sh_config_t b;
    sh_topic_cfg_entry_t e;
    cfg_make(&b, NULL);
    const sh_topic_cfg_key_t *rms = sh_topic_cfg_key_find("retention.ms");
    const sh_topic_cfg_key_t *dur = sh_topic_cfg_key_find("streamhouse.durability");
    const sh_topic_cfg_key_t *cp = sh_topic_cfg_key_find("cleanup.policy");
    assert_non_null(rms);
    assert_non_null(dur);
    assert_non_null(cp);

    /* no override, broker default: DEFAULT_CONFIG, one synonym */
    sh_topic_cfg_describe(&b, NULL, 0, rms, &e);
    assert_string_equal(e.value, "604800000");
    assert_int_equal(e.source, SH_CFG_SOURCE_DEFAULT);
    assert_true(e.is_default);
    assert_int_equal(e.nsynonyms, 1);
    assert_string_equal(e.synonyms[0].name, "log.retention.ms");
    assert_int_equal(e.synonyms[0].source, SH_CFG_SOURCE_DEFAULT);

    /* a topic override wins, and is the first synonym */
    const sh_meta_config_t ovr[] = {{"retention.ms", "1234"}, {"segment.ms", "99"}};
    sh_topic_cfg_describe(&b, ovr, 2, rms, &e);
    assert_string_equal(e.value, "1234");
    assert_int_equal(e.source, SH_CFG_SOURCE_TOPIC);
    assert_false(e.is_default);
    assert_int_equal(e.nsynonyms, 2);
    assert_string_equal(e.synonyms[0].name, "retention.ms");
    assert_string_equal(e.synonyms[0].value, "1234");
    assert_int_equal(e.synonyms[0].source, SH_CFG_SOURCE_TOPIC);
    assert_int_equal(e.synonyms[1].source, SH_CFG_SOURCE_DEFAULT);

    /* keys without a broker key: their own default, Kafka's broker name */
    sh_topic_cfg_describe(&b, ovr, 2, cp, &e);
    assert_string_equal(e.value, "delete");
    assert_int_equal(e.source, SH_CFG_SOURCE_DEFAULT);
    assert_int_equal(e.nsynonyms, 1);
    assert_string_equal(e.synonyms[0].name, "log.cleanup.policy");
    sh_topic_cfg_describe(&b, NULL, 0, dur, &e);
    assert_string_equal(e.value, "wal");
    assert_int_equal(e.nsynonyms, 0);
    sh_config_fini(&b);

    /* broker keys the operator set: STATIC_BROKER_CONFIG, listed in order */
    const char *const set[] = {"log.retention.hours=5", "log.retention.ms=60000", NULL};
    cfg_make(&b, set);
    sh_topic_cfg_describe(&b, NULL, 0, rms, &e);
    assert_string_equal(e.value, "60000");
    assert_int_equal(e.source, SH_CFG_SOURCE_STATIC_BROKER);
    assert_false(e.is_default);
    assert_int_equal(e.nsynonyms, 3);
    assert_string_equal(e.synonyms[0].name, "log.retention.ms");
    assert_string_equal(e.synonyms[0].value, "60000");
    assert_int_equal(e.synonyms[0].source, SH_CFG_SOURCE_STATIC_BROKER);
    assert_string_equal(e.synonyms[1].name, "log.retention.hours");
    assert_string_equal(e.synonyms[1].value, "5");
    assert_int_equal(e.synonyms[1].source, SH_CFG_SOURCE_STATIC_BROKER);
    assert_string_equal(e.synonyms[2].name, "log.retention.ms");
    assert_int_equal(e.synonyms[2].source, SH_CFG_SOURCE_DEFAULT);
    sh_topic_cfg_describe(&b, ovr, 2, rms, &e);
    assert_int_equal(e.source, SH_CFG_SOURCE_TOPIC);
    assert_int_equal(e.nsynonyms, 4);
    sh_config_fini(&b);
}

static void test_list_edit(void **state)
{
    (void)state;
    char out[64];
    OK(sh_topic_cfg_list_edit("delete", "compact", true, out, sizeof(out)));
    assert_string_equal(out, "delete,compact");
    OK(sh_topic_cfg_list_edit("delete", "delete", true, out, sizeof(out)));
    assert_string_equal(out, "delete");
    OK(sh_topic_cfg_list_edit("delete,compact", "compact", false, out, sizeof(out)));
    assert_string_equal(out, "delete");
    OK(sh_topic_cfg_list_edit("delete", "compact", false, out, sizeof(out)));
    assert_string_equal(out, "delete");
    OK(sh_topic_cfg_list_edit("delete", "delete", false, out, sizeof(out)));
    assert_string_equal(out, "");
    OK(sh_topic_cfg_list_edit(NULL, " a , b ,a", true, out, sizeof(out)));
    assert_string_equal(out, "a,b");
    OK(sh_topic_cfg_list_edit("a, b,c", "b", false, out, sizeof(out)));
    assert_string_equal(out, "a,c");
    assert_int_equal(sh_topic_cfg_list_edit("abcdef", "ghijkl", true, out, 8), SH_E_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_table),
        cmocka_unit_test(test_defaults_from_broker),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_validate_set),
        cmocka_unit_test(test_describe_sources),
        cmocka_unit_test(test_list_edit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
