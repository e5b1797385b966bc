#!/usr/bin/env bash
# Proves: the group admin APIs answer what admin tools expect, while kcat
# (librdkafka) consumes as a balanced group member (kcat -G).
#  1. kcat -G compat-036 reads all 300 records of a 3-partition topic and
#     auto-commits. While it runs: kafka-python lists the group (ListGroups)
#     with protocol type "consumer" and describes it (DescribeGroups) as
#     Stable with one member, kcat's client id, a client host, and an
#     assignment of all 3 partitions; kafkajs does the same (listGroups,
#     describeGroups); kafkajs's deleteGroups is refused with
#     NON_EMPTY_GROUP. Lag is 0 (committed == end offsets) for compat-036,
#     and 60 per partition for a second group that committed offset 40 from
#     outside group management, as both kafka-python
#     (list_consumer_group_offsets) and kafkajs (fetchOffsets) report.
#  2. kcat stops (SIGTERM: it commits and leaves): the group is Empty with
#     no members, still listed. kafkajs deletes compat-036, kafka-python
#     deletes the other group; neither is listed any more, their offsets are
#     gone, deleting again gives GROUP_ID_NOT_FOUND, and describing an
#     unknown group answers state Dead.
# compat-timeout: 120
# compat-override: group.initial.rebalance.delay.ms=0
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
T=$SCENARIO_TMP
export NODE_PATH=$COMPAT_LIB/../node_modules

/usr/bin/python3 - <<'PY'
import os, sys
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
bs = os.environ["BOOTSTRAP"]
adm = AdminClient({"bootstrap.servers": bs})
for f in adm.create_topics([NewTopic("g036", 3, 1)]).values():
    f.result(15)
p = Producer({"bootstrap.servers": bs, "acks": "all"})
for i in range(300):
    p.produce("g036", value=b"v%d" % i, partition=i % 3)
if p.flush(30):
    sys.exit("records not acknowledged")
from kafka import KafkaConsumer, TopicPartition, OffsetAndMetadata
c = KafkaConsumer(bootstrap_servers=bs, group_id="compat-036-lagging", enable_auto_commit=False)
c.commit({TopicPartition("g036", q): OffsetAndMetadata(40, "") for q in range(3)})
c.close(autocommit=False)
PY

kcat -b "$BOOTSTRAP" -G compat-036 -o beginning -u -q -f '%p %o\n' \
    -X client.id=kcat-036 -X session.timeout.ms=6000 -X auto.commit.interval.ms=200 \
    g036 >"$T/kcat.out" 2>"$T/kcat.err" &
KCAT=$!
trap 'kill -9 $KCAT 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
    [ "$(wc -l <"$T/kcat.out")" -ge 300 ] && break
    kill -0 $KCAT 2>/dev/null || fail "kcat exited: $(cat "$T/kcat.err")"
    sleep 0.1
done
[ "$(wc -l <"$T/kcat.out")" -eq 300 ] || fail "kcat read $(wc -l <"$T/kcat.out") records, expected 300"

/usr/bin/python3 - <<'PY'
import os, sys, time
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.coordinator.protocol import ConsumerProtocolMemberAssignment
bs = os.environ["BOOTSTRAP"]
a = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=10000)
groups = dict(a.list_consumer_groups())
print("kafka-python list:", groups)
if groups.get("compat-036") != "consumer" or "compat-036-lagging" not in groups:
    sys.exit("list_consumer_groups: %r" % groups)
d = a.describe_consumer_groups(["compat-036"])[0]
print("kafka-python describe:", d)
if d.state != "Stable" or d.protocol_type != "consumer" or len(d.members) != 1:
    sys.exit("describe: %r" % (d,))
m = d.members[0]
if m.client_id != "kcat-036" or not m.client_host.startswith("/"):
    sys.exit("member: %r" % (m,))
parts = sorted(p for t, ps in m.member_assignment.assignment for p in ps)
if parts != [0, 1, 2]:
    sys.exit("member assignment: %r" % (m.member_assignment,))
ends = KafkaConsumer(bootstrap_servers=bs).end_offsets([TopicPartition("g036", q) for q in range(3)])
deadline = time.time() + 20
while True:
    offs = a.list_consumer_group_offsets("compat-036")
    lag = {tp.partition: ends[tp] - om.offset for tp, om in offs.items()}
    if lag == {0: 0, 1: 0, 2: 0} or time.time() > deadline:
        break
    time.sleep(0.2)
print("kafka-python lag compat-036:", lag)
if lag != {0: 0, 1: 0, 2: 0}:
    sys.exit("lag of compat-036: %r" % lag)
offs = a.list_consumer_group_offsets("compat-036-lagging")
lag = {tp.partition: ends[tp] - om.offset for tp, om in offs.items()}
print("kafka-python lag compat-036-lagging:", lag)
if lag != {0: 60, 1: 60, 2: 60}:
    sys.exit("lag of compat-036-lagging: %r" % lag)
PY

cat >"$T/admin.js" <<'JS'
'use strict';
const assert = require('node:assert/strict');
const { Kafka, logLevel, AssignerProtocol } = require('kafkajs');
const phase = process.argv[2];
async function main() {
  const kafka = new Kafka({ clientId: 'compat-036-js', brokers: [process.env.BOOTSTRAP],
                            logLevel: logLevel.NOTHING, retry: { retries: 1 } });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { groups } = await admin.listGroups();
    console.log('kafkajs listGroups', JSON.stringify(groups));
    const mine = groups.find((g) => g.groupId === 'compat-036');
    if (phase === 'running') {
      assert.deepEqual(mine, { groupId: 'compat-036', protocolType: 'consumer' });
      const { groups: [d] } = await admin.describeGroups(['compat-036']);
      console.log('kafkajs describeGroups', d.state, d.protocolType, d.protocol, d.members.length);
      assert.equal(d.errorCode, 0);
      assert.equal(d.state, 'Stable');
      assert.equal(d.members.length, 1);
      assert.equal(d.members[0].clientId, 'kcat-036');
      const asg = AssignerProtocol.MemberAssignment.decode(d.members[0].memberAssignment);
      assert.deepEqual(asg.assignment.g036.sort(), [0, 1, 2]);
      const ends = await admin.fetchTopicOffsets('g036');
      for (const [group, want] of [['compat-036', 0], ['compat-036-lagging', 60]]) {
        const [{ partitions }] = await admin.fetchOffsets({ groupId: group, topics: ['g036'] });
        for (const p of partitions) {
          const end = ends.find((e) => e.partition === p.partition).high;
          console.log(`kafkajs lag ${group} p${p.partition}: ${Number(end) - Number(p.offset)}`);
          assert.equal(Number(end) - Number(p.offset), want);
        }
      }
      await assert.rejects(admin.deleteGroups(['compat-036']), (e) => {
        console.log('kafkajs deleteGroups while running:', e.name, JSON.stringify(e.groups));
        return e.groups && e.groups[0].errorCode === 68; // NON_EMPTY_GROUP
      });
    } else {
      assert.ok(mine, 'the empty group is still listed');
      const { groups: [d] } = await admin.describeGroups(['compat-036']);
      assert.equal(d.state, 'Empty');
      assert.equal(d.members.length, 0);
      const r = await admin.deleteGroups(['compat-036']);
      console.log('kafkajs deleteGroups', JSON.stringify(r));
      assert.deepEqual(r, [{ groupId: 'compat-036', errorCode: 0 }]);
    }
  } finally {
    await admin.disconnect();
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
JS
node "$T/admin.js" running || fail "kafkajs checks while kcat runs"

kill -TERM $KCAT
for _ in $(seq 1 100); do kill -0 $KCAT 2>/dev/null || break; sleep 0.1; done
kill -0 $KCAT 2>/dev/null && fail "kcat did not stop"
trap - EXIT

/usr/bin/python3 - <<'PY'
import os, sys
from kafka import KafkaAdminClient
a = KafkaAdminClient(bootstrap_servers=os.environ["BOOTSTRAP"], request_timeout_ms=10000)
d = a.describe_consumer_groups(["compat-036"])[0]
print("after kcat stopped:", d)
if d.state != "Empty" or d.members:
    sys.exit("after kcat left: %r" % (d,))
PY

node "$T/admin.js" stopped || fail "kafkajs checks after kcat stopped"

/usr/bin/python3 - <<'PY'
import os, sys
from kafka import KafkaAdminClient
from kafka.errors import GroupIdNotFoundError
a = KafkaAdminClient(bootstrap_servers=os.environ["BOOTSTRAP"], request_timeout_ms=10000)
r = a.delete_consumer_groups(["compat-036-lagging"])
print("kafka-python delete:", r)
if [(g, e.__name__) for g, e in r] != [("compat-036-lagging", "NoError")]:
    sys.exit("delete_consumer_groups: %r" % r)
groups = a.list_consumer_groups()
if groups:
    sys.exit("groups still listed after deletion: %r" % groups)
for g in ("compat-036", "compat-036-lagging"):
    if a.list_consumer_group_offsets(g):
        sys.exit("offsets of %s survived its deletion" % g)
r = a.delete_consumer_groups(["compat-036"])
if [(g, e.__name__) for g, e in r] != [("compat-036", GroupIdNotFoundError.__name__)]:
    sys.exit("deleting twice: %r" % r)
d = a.describe_consumer_groups(["no-such-group"])[0]
if d.state != "Dead":
    sys.exit("unknown group described as %r" % (d,))
print("deleted, gone, GROUP_ID_NOT_FOUND the second time, unknown groups are Dead")
PY
echo "ok: group admin through kafka-python, kafkajs and kcat -G"
