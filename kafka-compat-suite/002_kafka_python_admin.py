#!/usr/bin/python3
# Proves: kafka-python 2.0.2 bootstraps against the broker. Its startup probe
# (ApiVersions v0 with Metadata v0 pipelined right behind it) is answered, so
# KafkaAdminClient and KafkaConsumer connect; describe_cluster() (Metadata at
# the highest version both sides know, up to v5) returns exactly this broker
# with its node.id, host and port, as controller, plus a non-empty cluster
# id that is the same on every call; list_topics() and the consumer's
# topics() (Metadata v1) are empty.
import logging
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
from compat import check, log  # noqa: E402

from kafka import KafkaAdminClient, KafkaConsumer  # noqa: E402

# kafka-python logs protocol trouble (correlation id mismatches, parse
# errors) at WARNING/ERROR and then retries quietly; collect those so they
# fail the scenario instead of hiding behind a retry.
problems = []


class Collect(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.WARNING:
            problems.append(self.format(record))


logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("kafka").addHandler(Collect())

common = dict(bootstrap_servers=compat.BOOTSTRAP, request_timeout_ms=15000,
              api_version_auto_timeout_ms=10000)

admin = KafkaAdminClient(client_id="compat-002-admin", **common)
log("admin connected; inferred broker release %s", admin.config["api_version"])
check(admin.config["api_version"] >= (0, 10, 0),
      "kafka-python guessed release %s from ApiVersions", admin.config["api_version"])

cluster = admin.describe_cluster()
log("describe_cluster: %r", cluster)
want = [{"node_id": compat.BROKER_ID, "host": "127.0.0.1", "port": compat.PORT}]
got = [{k: b[k] for k in ("node_id", "host", "port")} for b in cluster["brokers"]]
check(got == want, "brokers %r, expected %r", got, want)
check(cluster.get("controller_id") == compat.BROKER_ID,
      "controller_id %r, expected %d", cluster.get("controller_id"), compat.BROKER_ID)
cluster_id = cluster.get("cluster_id")
check(isinstance(cluster_id, str) and cluster_id,
      "cluster_id %r: expected a non-empty string (needs Metadata v2+)", cluster_id)

topics = admin.list_topics()
check(topics == [], "list_topics() = %r, expected []", topics)
again = admin.describe_cluster()
check(again.get("cluster_id") == cluster_id,
      "cluster id changed between calls: %r then %r", cluster_id, again.get("cluster_id"))
admin.close()

consumer = KafkaConsumer(client_id="compat-002-consumer", enable_auto_commit=False, **common)
check(consumer.bootstrap_connected(), "KafkaConsumer did not connect")
ctopics = consumer.topics()
check(ctopics == set(), "consumer.topics() = %r, expected an empty set", ctopics)
nodes = [(b.nodeId, b.host, b.port) for b in consumer._client.cluster.brokers()]
check(nodes == [(compat.BROKER_ID, "127.0.0.1", compat.PORT)],
      "consumer's view of the cluster %r", nodes)
consumer.close()

check(not problems, "kafka-python logged problems:\n%s", "\n".join(problems))
log("ok: broker %d at 127.0.0.1:%d, cluster id %s, no topics",
    compat.BROKER_ID, compat.PORT, cluster_id)
