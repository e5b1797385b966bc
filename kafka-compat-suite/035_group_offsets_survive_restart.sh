#!/usr/bin/env bash
# Proves: committed offsets are durable and a restarted broker still knows
# the group. A confluent-kafka consumer in group compat-035 (subscribe, so
# through JoinGroup/SyncGroup) consumes part of a 4-partition topic and
# commits offset 50 of every partition with a metadata string, then closes
# (LeaveGroup: the group is Empty). The broker stops (SIGTERM, exit 0) and
# starts again on the same data directory. Then: kafka-python's admin lists
# the group and describes it as Empty; the committed offsets and their
# metadata are read back unchanged; a new consumer of the group, after more
# records were produced, resumes at offset 50 everywhere (no committed
# record is read again) and reads every record from there to the end; its
# final commit equals the high watermarks.
# compat-broker: none
# compat-timeout: 150
set -euo pipefail
. "$COMPAT_LIB/broker.sh"
sh_broker_cleanup_on_exit

fail() { echo "FAIL: $*" >&2; exit 1; }
B=$SCENARIO_TMP/b1
SETTINGS=(group.initial.rebalance.delay.ms=0 streamhouse.upload.interval.ms=300)
export COMPAT_LIB

sh_broker_start "$B" "${SETTINGS[@]}" || fail "broker did not start"

/usr/bin/python3 - <<'PY'
import os, sys, time
sys.path.insert(0, os.environ["COMPAT_LIB"])
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
bs = os.environ["BOOTSTRAP"]
adm = AdminClient({"bootstrap.servers": bs})
for f in adm.create_topics([NewTopic("g035", 4, 1)]).values():
    f.result(15)
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": bs, "acks": "all"})
for i in range(400):
    p.produce("g035", value=b"a%d" % i, partition=i % 4)
if p.flush(30):
    sys.exit("phase 1: records not acknowledged")
c = Consumer({"bootstrap.servers": bs, "group.id": "compat-035", "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "session.timeout.ms": 6000})
c.subscribe(["g035"])
seen = {q: 0 for q in range(4)}
deadline = time.time() + 40
while time.time() < deadline and min(seen.values()) < 50:
    m = c.poll(0.5)
    if m is not None and not m.error():
        seen[m.partition()] = max(seen[m.partition()], m.offset() + 1)
if min(seen.values()) < 50:
    sys.exit("phase 1: consumed only %r" % seen)
c.commit(offsets=[TopicPartition("g035", q, 50) for q in range(4)], asynchronous=False)
got = c.committed([TopicPartition("g035", q) for q in range(4)], timeout=10)
if [tp.offset for tp in got] != [50] * 4:
    sys.exit("phase 1: committed %r" % got)
c.close()
print("phase 1: committed offset 50 of every partition, consumer closed")
PY

# the metadata string, through kafka-python (confluent-kafka 1.7 cannot set it)
/usr/bin/python3 - <<'PY'
import os, sys
from kafka import KafkaConsumer, TopicPartition, OffsetAndMetadata
c = KafkaConsumer(bootstrap_servers=os.environ["BOOTSTRAP"], group_id="compat-035",
                  enable_auto_commit=False)
# a commit from outside group management (generation -1) into the Empty group
c.commit({TopicPartition("g035", 3): OffsetAndMetadata(50, "phase-1-md")})
c.close(autocommit=False)
print("phase 1: metadata committed for partition 3")
PY

sh_broker_stop || fail "the broker needed SIGKILL"
[ "$BROKER_EXIT" = 0 ] || fail "the broker exited with status $BROKER_EXIT"
sh_broker_start "$B" "${SETTINGS[@]}" || fail "broker did not restart"
grep -q 'loaded 1 consumer groups holding committed offsets' "$BROKER_LOG" \
    || fail "the restarted broker did not load the group"

/usr/bin/python3 - <<'PY'
import os, sys, time
from kafka import KafkaAdminClient, TopicPartition as KTP
from confluent_kafka import Consumer, Producer, TopicPartition
bs = os.environ["BOOTSTRAP"]
a = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=10000)
groups = a.list_consumer_groups()
print("list_consumer_groups:", groups)
if "compat-035" not in [g[0] for g in groups]:
    sys.exit("the group is not listed after the restart: %r" % groups)
d = a.describe_consumer_groups(["compat-035"])[0]
print("describe:", d)
if d.state != "Empty" or d.members:
    sys.exit("after the restart the group is %s with %d members, expected Empty" % (d.state, len(d.members)))
offs = a.list_consumer_group_offsets("compat-035")
print("offsets:", offs)
want = {KTP("g035", q): 50 for q in range(4)}
if {tp: om.offset for tp, om in offs.items()} != want:
    sys.exit("committed offsets after the restart: %r" % offs)
if offs[KTP("g035", 3)].metadata != "phase-1-md":
    sys.exit("metadata after the restart: %r" % offs[KTP("g035", 3)].metadata)
a.close()

p = Producer({"bootstrap.servers": bs, "acks": "all"})
for i in range(400):
    p.produce("g035", value=b"b%d" % i, partition=i % 4)
if p.flush(30):
    sys.exit("phase 2: records not acknowledged")
probe = Consumer({"bootstrap.servers": bs, "group.id": "compat-035-probe"})
hwm = [probe.get_watermark_offsets(TopicPartition("g035", q), timeout=10)[1] for q in range(4)]
probe.close()
if hwm != [200] * 4:
    sys.exit("high watermarks after the restart: %r" % hwm)

c = Consumer({"bootstrap.servers": bs, "group.id": "compat-035", "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "session.timeout.ms": 6000})
c.subscribe(["g035"])
got = {q: [] for q in range(4)}
deadline = time.time() + 60
while time.time() < deadline and sum(len(v) for v in got.values()) < 4 * 150:
    m = c.poll(0.5)
    if m is not None and not m.error():
        got[m.partition()].append(m.offset())
for q in range(4):
    if got[q] != list(range(50, 200)):
        sys.exit("partition %d: read offsets %s..%s (%d records), expected 50..199 once each"
                 % (q, got[q][:1], got[q][-1:], len(got[q])))
c.commit(asynchronous=False)
com = [tp.offset for tp in c.committed([TopicPartition("g035", q) for q in range(4)], timeout=10)]
if com != hwm:
    sys.exit("final committed offsets %r, high watermarks %r" % (com, hwm))
c.close()
print("phase 2: resumed at 50 on every partition, read 50..199, committed", com)
PY

sh_broker_stop || fail "the broker needed SIGKILL"
[ "$BROKER_EXIT" = 0 ] || fail "the broker exited with status $BROKER_EXIT"
echo "ok: committed offsets and the Empty group survived a broker restart"
