#!/usr/bin/python3
# Proves: confluent-kafka-python 1.7 on librdkafka 2.0.2 manages topics
# through AdminClient (CreateTopics v4, DescribeConfigs v1 with synonyms,
# AlterConfigs v0, CreatePartitions v0, DeleteTopics v1, Metadata v4):
# create_topics() creates topics whose partitions list_topics() shows led by
# this broker (replication factor 3 accepted: one durable copy); per-topic
# futures fail with librdkafka's TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS,
# INVALID_CONFIG (compaction), INVALID_REPLICATION_FACTOR (0) and
# TOPIC_EXCEPTION (illegal name) codes; validate_only creates nothing;
# describe_configs() returns every topic key with its source (topic override
# DYNAMIC_TOPIC_CONFIG, broker default STATIC_BROKER_CONFIG/DEFAULT_CONFIG),
# synonyms and flags, and the broker's own keys as read-only;
# alter_configs() replaces a topic's overrides and refuses broker changes;
# create_partitions() grows a topic; delete_topics() removes them. (1.7 has
# no incremental_alter_configs: IncrementalAlterConfigs is covered by the
# unit tests.) librdkafka reports no error through error_cb meanwhile.
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
from compat import check, log  # noqa: E402

from confluent_kafka import KafkaError, KafkaException  # noqa: E402
from confluent_kafka.admin import (AdminClient, ConfigResource, ConfigSource,  # noqa: E402
                                   NewPartitions, NewTopic)

errors = []
admin = AdminClient({
    "bootstrap.servers": compat.BOOTSTRAP,
    "client.id": "compat-023",
    "socket.timeout.ms": 10000,
    "error_cb": lambda err: errors.append(str(err)),
})
T = 15


def results(futures):
    """{key: None or KafkaError code}"""
    out = {}
    for k, f in futures.items():
        try:
            f.result(timeout=T)
            out[k] = None
        except KafkaException as e:
            out[k] = e.args[0].code()
    return out


def partitions_of(topic):
    md = admin.list_topics(topic=topic, timeout=T)
    t = md.topics[topic]
    check(t.error is None, "metadata for %s: %r", topic, t.error)
    return t.partitions


def describe(topic):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin.describe_configs([res], request_timeout=T)[res].result(timeout=T)


# --- create
r = results(admin.create_topics([
    NewTopic("payments", num_partitions=3, replication_factor=1),
    NewTopic("ledger", num_partitions=1, replication_factor=3,
             config={"retention.ms": "7200000", "message.timestamp.type": "LogAppendTime"}),
], operation_timeout=10, request_timeout=T))
check(r == {"payments": None, "ledger": None}, "create_topics: %r", r)
parts = partitions_of("payments")
check(sorted(parts) == [0, 1, 2], "payments partitions %r", sorted(parts))
for p in parts.values():
    check(p.leader == compat.BROKER_ID and p.replicas == [compat.BROKER_ID]
          and p.isrs == [compat.BROKER_ID], "partition %d: leader %r replicas %r isr %r",
          p.id, p.leader, p.replicas, p.isrs)
log("created payments (3) and ledger (1)")

# --- errors, one request with many topics
r = results(admin.create_topics([
    NewTopic("payments", num_partitions=1, replication_factor=1),
    NewTopic("none", num_partitions=0, replication_factor=1),
    NewTopic("compacted", num_partitions=1, replication_factor=1,
             config={"cleanup.policy": "compact"}),
    NewTopic("rf0", num_partitions=1, replication_factor=0),
    NewTopic("white space", num_partitions=1, replication_factor=1),
], request_timeout=T))
want = {"payments": KafkaError.TOPIC_ALREADY_EXISTS, "none": KafkaError.INVALID_PARTITIONS,
        "compacted": KafkaError.INVALID_CONFIG, "rf0": KafkaError.INVALID_REPLICATION_FACTOR,
        "white space": KafkaError.TOPIC_EXCEPTION}
check(r == want, "create_topics errors: %r, expected %r", r, want)
r = results(admin.create_topics([NewTopic("dry", num_partitions=2, replication_factor=1)],
                                validate_only=True, request_timeout=T))
check(r == {"dry": None}, "validate_only: %r", r)
check("dry" not in admin.list_topics(timeout=T).topics, "validate_only created the topic")

# --- configs
cfg = describe("ledger")
check(cfg["retention.ms"].value == "7200000", "retention.ms %r", cfg["retention.ms"])
check(cfg["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
      "retention.ms source %r", cfg["retention.ms"].source)
syn = cfg["retention.ms"].synonyms
check("retention.ms" in syn and syn["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
      "retention.ms synonyms %r", syn)
check(cfg["message.timestamp.type"].value == "LogAppendTime", "timestamp type %r",
      cfg["message.timestamp.type"])
pol = cfg["cleanup.policy"]
check(pol.value == "delete" and pol.is_default and pol.source == ConfigSource.DEFAULT_CONFIG.value,
      "cleanup.policy %r source %r default %r", pol.value, pol.source, pol.is_default)
for name in ("segment.bytes", "max.message.bytes", "streamhouse.durability",
             "compression.type", "min.insync.replicas"):
    check(name in cfg and not cfg[name].is_read_only and not cfg[name].is_sensitive,
          "%s missing or flagged: %r", name, cfg.get(name))

res = ConfigResource(ConfigResource.Type.TOPIC, "ledger", set_config={"retention.bytes": "1000000"})
admin.alter_configs([res], request_timeout=T)[res].result(timeout=T)
cfg = describe("ledger")
check(cfg["retention.bytes"].value == "1000000", "retention.bytes %r", cfg["retention.bytes"])
check(cfg["retention.ms"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
      "AlterConfigs replaces all overrides; retention.ms still one: %r", cfg["retention.ms"])
res = ConfigResource(ConfigResource.Type.TOPIC, "ledger", set_config={"segment.ms": "-3"})
try:
    admin.alter_configs([res], request_timeout=T)[res].result(timeout=T)
    check(False, "a negative segment.ms was accepted")
except KafkaException as e:
    check(e.args[0].code() == KafkaError.INVALID_CONFIG, "bad segment.ms: %r", e)

bres = ConfigResource(ConfigResource.Type.BROKER, str(compat.BROKER_ID))
bcfg = admin.describe_configs([bres], request_timeout=T)[bres].result(timeout=T)
check(bcfg["node.id"].value == str(compat.BROKER_ID) and bcfg["node.id"].is_read_only,
      "broker node.id %r", bcfg.get("node.id"))
bres = ConfigResource(ConfigResource.Type.BROKER, str(compat.BROKER_ID),
                      set_config={"num.partitions": "9"})
try:
    admin.alter_configs([bres], request_timeout=T)[bres].result(timeout=T)
    check(False, "a dynamic broker config change was accepted")
except KafkaException as e:
    check(e.args[0].code() == KafkaError.INVALID_REQUEST, "broker alter: %r", e)
log("configs described and altered")

# --- partitions
r = results(admin.create_partitions([NewPartitions("ledger", 4)], request_timeout=T))
check(r == {"ledger": None}, "create_partitions: %r", r)
# librdkafka caches metadata; the broker answers the new count at once
deadline = time.monotonic() + 10
while len(partitions_of("ledger")) != 4 and time.monotonic() < deadline:
    time.sleep(0.2)
check(len(partitions_of("ledger")) == 4, "ledger partitions %r", sorted(partitions_of("ledger")))
r = results(admin.create_partitions([NewPartitions("ledger", 2)], request_timeout=T))
check(r == {"ledger": KafkaError.INVALID_PARTITIONS}, "shrink: %r", r)

# --- delete
r = results(admin.delete_topics(["payments", "ledger", "ghost"], operation_timeout=10,
                                request_timeout=T))
check(r == {"payments": None, "ledger": None, "ghost": KafkaError.UNKNOWN_TOPIC_OR_PART},
      "delete_topics: %r", r)
left = set(admin.list_topics(timeout=T).topics)
check(not left & {"payments", "ledger"}, "still listed after delete: %r", left)

check(not errors, "librdkafka reported errors: %r", errors)
log("ok")
