#!/usr/bin/python3
# Proves: confluent-kafka-python (on Debian's librdkafka 2.0.2) gets the
# cluster's metadata through AdminClient.list_topics(): exactly this broker
# with its node.id, host and port, the broker as controller, a non-empty
# cluster id, and no topics; a second call is answered by the broker under
# its advertised id (so the advertised address really leads back to it); and
# librdkafka reports no error while doing it.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
from compat import check, log  # noqa: E402

from confluent_kafka.admin import AdminClient  # noqa: E402

errors = []
admin = AdminClient({
    "bootstrap.servers": compat.BOOTSTRAP,
    "client.id": "compat-004",
    "socket.timeout.ms": 10000,
    # Any client-side error (a failed ApiVersions exchange, a parse failure,
    # a dropped connection) is a broker problem here.
    "error_cb": lambda err: errors.append(str(err)),
})

md = admin.list_topics(timeout=15)
brokers = {b.id: (b.host, b.port) for b in md.brokers.values()}
log("list_topics: cluster_id=%r controller_id=%r orig_broker_id=%r brokers=%r topics=%r",
    md.cluster_id, md.controller_id, md.orig_broker_id, brokers, list(md.topics))
check(brokers == {compat.BROKER_ID: ("127.0.0.1", compat.PORT)},
      "brokers %r, expected {%d: ('127.0.0.1', %d)}", brokers, compat.BROKER_ID, compat.PORT)
check(md.controller_id == compat.BROKER_ID, "controller_id %r", md.controller_id)
# The first answer may be credited to the bootstrap entry (-1) or, once
# librdkafka has matched that entry to the listed broker, to its id.
check(md.orig_broker_id in (compat.BROKER_ID, -1),
      "answer came from broker %r, expected %d", md.orig_broker_id, compat.BROKER_ID)
check(isinstance(md.cluster_id, str) and md.cluster_id, "cluster_id %r", md.cluster_id)
check(md.topics == {}, "topics %r, expected none", list(md.topics))

# A second call goes over the now-established connection to the broker
# under its own id rather than the bootstrap entry.
md2 = admin.list_topics(timeout=15)
check(md2.cluster_id == md.cluster_id, "cluster id changed: %r then %r", md.cluster_id, md2.cluster_id)
check({b.id for b in md2.brokers.values()} == {compat.BROKER_ID}, "second call: %r", md2.brokers)
check(md2.orig_broker_id == compat.BROKER_ID,
      "second answer came from broker %r, expected %d: the advertised address"
      " does not lead back to this broker", md2.orig_broker_id, compat.BROKER_ID)

admin.poll(0.5)   # serves error_cb for anything still queued
check(not errors, "librdkafka reported errors: %r", errors)
log("ok: broker %d at 127.0.0.1:%d, cluster id %s, no topics", compat.BROKER_ID, compat.PORT, md.cluster_id)
