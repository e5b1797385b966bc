#!/usr/bin/env bash
# Proves: a topic with streamhouse.durability=object, on PostgreSQL metadata
# and S3 segment storage, survives the loss of the broker's local disk.
# A broker (data directory A) gets a 3-partition topic with
# streamhouse.durability=object; confluent-kafka (librdkafka, acks=all)
# produces N numbered records and records the partition and offset of every
# acknowledgement. The broker is killed with SIGKILL (no clean shutdown),
# and a new broker with the same node.id, the same PostgreSQL metadata URL
# and the same S3 URL (both from the providers' COMPAT_OVERRIDES) starts on
# a NEW, empty data directory B. A fresh consumer reads every partition from
# the beginning; every acknowledged record must be there, at its
# acknowledged offset, byte-identical (key and value), exactly once, and
# each partition must hold nothing else. So an acknowledgement on an
# object-durable topic means "in S3 and committed in PostgreSQL", with no
# help from the local WAL.
# COMPAT_080_RECORDS sets N (default 3000).
# compat-needs: postgres s3
# compat-broker: none
# compat-timeout: 180
set -euo pipefail

. "$COMPAT_LIB/broker.sh"
sh_broker_cleanup_on_exit

fail() { echo "FAIL: $*" >&2; exit 1; }
N=${COMPAT_080_RECORDS:-3000}
T=$SCENARIO_TMP
[ -n "${S3_OBJECTS:-}" ] || fail "the s3 provider did not run"
case " ${COMPAT_OVERRIDES:-} " in
*" streamhouse.metadata.url=postgresql"*) ;;
*) fail "no PostgreSQL metadata URL in COMPAT_OVERRIDES" ;;
esac

sh_broker_start "$T/a" streamhouse.upload.interval.ms=200 || fail "broker A did not start"
pid_a=$BROKER_PID
echo "broker A: pid $pid_a, data $T/a/data"

/usr/bin/python3 - "$BOOTSTRAP" "$N" "$T/acked.txt" <<'PY' || fail "produce failed"
import sys, time
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
boot, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
a = AdminClient({"bootstrap.servers": boot})
for t, f in a.create_topics([NewTopic("obj-disk", num_partitions=3, replication_factor=1,
                                      config={"streamhouse.durability": "object"})],
                            operation_timeout=30).items():
    f.result(timeout=30)
acked, errors = [], []
def dr(err, m):
    if err is not None:
        errors.append(str(err))
    else:
        acked.append((m.partition(), m.offset(), m.key(), m.value()))
p = Producer({"bootstrap.servers": boot, "acks": "all", "linger.ms": 5,
              "enable.idempotence": False, "message.timeout.ms": 60000})
deadline = time.time() + 90
for i in range(n):
    key = b"k-%06d" % i
    val = (b"value %d " % i) + bytes((i * 7 + j) % 256 for j in range(i % 200))
    while True:
        try:
            p.produce("obj-disk", key=key, value=val, partition=i % 3, on_delivery=dr)
            break
        except BufferError:
            p.poll(0.05)
    p.poll(0)
    if time.time() > deadline:
        sys.exit("produce took too long")
left = p.flush(60)
if left or errors:
    sys.exit("%d undelivered, %d errors, e.g. %s" % (left, len(errors), errors[:3]))
if len(acked) != n:
    sys.exit("%d acknowledgements for %d records" % (len(acked), n))
with open(out, "w") as f:
    for part, off, k, v in acked:
        f.write("%d %d %s %s\n" % (part, off, k.hex(), v.hex()))
print("acknowledged %d records (acks=all, durability=object)" % n)
PY

# Lose the broker and its disk: SIGKILL, then a new empty data directory.
kill -KILL "$pid_a"
{ wait "$pid_a"; } 2>/dev/null || true
echo "broker A killed with SIGKILL; $(find "$S3_OBJECTS" -name '*._S3rver_object' | wc -l) object(s) in S3"
[ ! -e "$T/b/data" ] || fail "data directory B is not new"
sh_broker_start "$T/b" streamhouse.upload.interval.ms=200 || fail "broker B did not start"
echo "broker B: pid $BROKER_PID, empty data $T/b/data, node.id $BROKER_ID"

/usr/bin/python3 - "$BOOTSTRAP" "$T/acked.txt" <<'PY' || fail "records read back differ"
import sys, time
from confluent_kafka import Consumer, TopicPartition, KafkaError
boot, path = sys.argv[1], sys.argv[2]
want = {}
for line in open(path):
    part, off, k, v = line.split()
    want[(int(part), int(off))] = (bytes.fromhex(k), bytes.fromhex(v))
c = Consumer({"bootstrap.servers": boot, "group.id": "obj-disk-reader",
              "enable.auto.commit": False, "auto.offset.reset": "earliest",
              "enable.partition.eof": True})
c.assign([TopicPartition("obj-disk", p, 0) for p in range(3)])
got, eof = {}, set()
deadline = time.time() + 60
while len(eof) < 3 and time.time() < deadline:
    m = c.poll(1.0)
    if m is None:
        continue
    if m.error():
        if m.error().code() == KafkaError._PARTITION_EOF:
            eof.add(m.partition())
            continue
        sys.exit("consume error: %s" % m.error())
    k = (m.partition(), m.offset())
    if k in got:
        sys.exit("partition %d offset %d read twice" % k)
    got[k] = (m.key(), m.value())
c.close()
if len(eof) < 3:
    sys.exit("did not reach the end of every partition in 60 s (%d records read)" % len(got))
missing = [k for k in want if k not in got]
if missing:
    sys.exit("%d acknowledged records missing, e.g. %s" % (len(missing), sorted(missing)[:5]))
bad = [k for k in want if got[k] != want[k]]
if bad:
    sys.exit("%d records differ, e.g. partition/offset %s" % (len(bad), bad[:5]))
extra = [k for k in got if k not in want]
if extra:
    sys.exit("%d records nobody acknowledged, e.g. %s" % (len(extra), sorted(extra)[:5]))
print("OK: all %d acknowledged records served from S3 and PostgreSQL on an empty disk" % len(want))
PY
sh_broker_stop || fail "broker B ignored SIGTERM"
[ "$BROKER_EXIT" = 0 ] || fail "broker B exited with status $BROKER_EXIT"
