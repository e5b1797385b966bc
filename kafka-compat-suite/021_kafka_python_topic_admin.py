#!/usr/bin/python3
# Proves: kafka-python 2.0.2's KafkaAdminClient manages topics end to end
# (CreateTopics v3, Metadata v5, DescribeConfigs v2, AlterConfigs v1,
# CreatePartitions v1, DeleteTopics v3): created topics appear in
# list_topics() and describe_topics() with their partitions led by this
# broker; describe_configs() shows the topic's override as
# DYNAMIC_TOPIC_CONFIG (1) and everything else as a broker default (4/5);
# alter_configs() replaces the overrides; create_partitions() grows a topic;
# delete_topics() removes it and the name can be created again. Each error
# Kafka defines reaches the client as the matching exception: a duplicate
# name TopicAlreadyExistsError, an illegal name InvalidTopicError, zero
# partitions InvalidPartitionsError, cleanup.policy=compact
# InvalidConfigurationError, shrinking a topic InvalidPartitionsError,
# deleting an unknown topic UnknownTopicOrPartitionError; and
# validate_only creates nothing.
import logging
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
from compat import check, log  # noqa: E402

from kafka import KafkaAdminClient  # noqa: E402
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic  # noqa: E402
from kafka.errors import (InvalidConfigurationError, InvalidPartitionsError,  # noqa: E402
                          InvalidTopicError, TopicAlreadyExistsError,
                          UnknownTopicOrPartitionError)

problems = []


class Collect(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.WARNING:
            problems.append(self.format(record))


logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("kafka").addHandler(Collect())

admin = KafkaAdminClient(bootstrap_servers=compat.BOOTSTRAP, client_id="compat-021",
                         request_timeout_ms=15000, api_version_auto_timeout_ms=10000)


def expect_error(exc_type, fn, *args, **kwargs):
    try:
        resp = fn(*args, **kwargs)
    except exc_type as e:
        log("  got %s as expected", type(e).__name__)
        return
    raise AssertionError("expected %s, got %r" % (exc_type.__name__, resp))


def topic_errors(resp):
    # CreateTopics/DeleteTopics/CreatePartitions responses list
    # (name, code[, message]) tuples under different attribute names.
    for attr in ("topic_errors", "topic_error_codes"):
        if hasattr(resp, attr):
            return {t[0]: t[1] for t in getattr(resp, attr)}
    raise AssertionError("unexpected response %r" % (resp,))


def configs_of(topic):
    resp = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    res = resp[0].resources[0]
    check(res[0] == 0, "describe_configs(%s) error %r", topic, res)
    # (name, value, read_only, source, is_sensitive, synonyms) in v1+
    return {e[0]: (e[1], e[3]) for e in res[4]}


# --- create
resp = admin.create_topics([
    NewTopic("orders", 3, 1),
    NewTopic("audit", 2, 3, topic_configs={"retention.ms": "3600000"}),
])
check(topic_errors(resp) == {"orders": 0, "audit": 0}, "create_topics: %r", resp)
check(sorted(admin.list_topics()) == ["audit", "orders"], "list_topics: %r", admin.list_topics())
desc = {t["topic"]: t for t in admin.describe_topics(["orders", "audit"])}
for name, n in (("orders", 3), ("audit", 2)):
    parts = sorted(desc[name]["partitions"], key=lambda p: p["partition"])
    check(desc[name]["error_code"] == 0, "describe_topics %s: %r", name, desc[name])
    check([p["partition"] for p in parts] == list(range(n)), "%s partitions %r", name, parts)
    for p in parts:
        check(p["leader"] == compat.BROKER_ID and p["replicas"] == [compat.BROKER_ID],
              "%s partition %r", name, p)
log("created orders (3) and audit (2, replication factor 3 accepted)")

# --- the errors Kafka defines
expect_error(TopicAlreadyExistsError, admin.create_topics, [NewTopic("orders", 1, 1)])
expect_error(InvalidTopicError, admin.create_topics, [NewTopic("bad name!", 1, 1)])
expect_error(InvalidTopicError, admin.create_topics, [NewTopic("..", 1, 1)])
expect_error(InvalidPartitionsError, admin.create_topics, [NewTopic("zero", 0, 1)])
expect_error(InvalidConfigurationError, admin.create_topics,
             [NewTopic("compacted", 1, 1, topic_configs={"cleanup.policy": "compact"})])
expect_error(InvalidConfigurationError, admin.create_topics,
             [NewTopic("odd", 1, 1, topic_configs={"retention.ms": "soon"})])
resp = admin.create_topics([NewTopic("dry-run", 4, 1)], validate_only=True)
check(topic_errors(resp) == {"dry-run": 0}, "validate_only: %r", resp)
check("dry-run" not in admin.list_topics(), "validate_only created the topic")

# --- configs
cfg = configs_of("audit")
check(cfg["retention.ms"] == ("3600000", 1), "audit retention.ms %r", cfg.get("retention.ms"))
check(cfg["cleanup.policy"] == ("delete", 5), "cleanup.policy %r", cfg.get("cleanup.policy"))
check(cfg["streamhouse.durability"][0] == "wal", "durability %r", cfg.get("streamhouse.durability"))
check(cfg["segment.bytes"][1] in (4, 5), "segment.bytes source %r", cfg.get("segment.bytes"))
resp = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "audit",
                                           configs={"retention.bytes": "1048576",
                                                    "streamhouse.durability": "object"})])
check(resp.resources[0][0] == 0, "alter_configs: %r", resp)
cfg = configs_of("audit")
check(cfg["retention.bytes"] == ("1048576", 1), "retention.bytes %r", cfg.get("retention.bytes"))
check(cfg["streamhouse.durability"] == ("object", 1), "durability %r",
      cfg.get("streamhouse.durability"))
# AlterConfigs replaces: retention.ms was not listed, so it is a default again
check(cfg["retention.ms"][1] != 1, "retention.ms still overridden: %r", cfg.get("retention.ms"))
resp = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "audit",
                                           configs={"cleanup.policy": "compact"})])
check(resp.resources[0][0] == 40, "alter to compact: %r", resp)
check(configs_of("audit")["cleanup.policy"][0] == "delete", "a refused alter changed the topic")
resp = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, str(compat.BROKER_ID))])
bres = resp[0].resources[0]
bcfg = {e[0]: e[1] for e in bres[4]}
check(bres[0] == 0 and bcfg.get("node.id") == str(compat.BROKER_ID), "broker configs %r", bres)
resp = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "nope")])
check(resp[0].resources[0][0] == 3, "describe unknown topic: %r", resp)
log("configs described and altered")

# --- partitions
resp = admin.create_partitions({"orders": NewPartitions(5)})
check(topic_errors(resp) == {"orders": 0}, "create_partitions: %r", resp)
parts = admin.describe_topics(["orders"])[0]["partitions"]
check(len(parts) == 5, "orders has %d partitions after growing to 5", len(parts))
expect_error(InvalidPartitionsError, admin.create_partitions, {"orders": NewPartitions(2)})
expect_error(UnknownTopicOrPartitionError, admin.create_partitions, {"nope": NewPartitions(2)})

# --- delete, and the name is free again
resp = admin.delete_topics(["orders", "audit"])
check(topic_errors(resp) == {"orders": 0, "audit": 0}, "delete_topics: %r", resp)
check(admin.list_topics() == [], "after delete: %r", admin.list_topics())
expect_error(UnknownTopicOrPartitionError, admin.delete_topics, ["orders"])
resp = admin.create_topics([NewTopic("orders", 1, 1)])
check(topic_errors(resp) == {"orders": 0}, "re-create: %r", resp)
check(len(admin.describe_topics(["orders"])[0]["partitions"]) == 1, "re-created orders")
admin.close()

check(not problems, "kafka-python logged problems:\n%s", "\n".join(problems))
log("ok")
