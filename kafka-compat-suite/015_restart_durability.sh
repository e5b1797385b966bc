#!/usr/bin/env bash
# Proves: no acknowledged record is lost across broker restarts, whether
# its batches were already uploaded to segment objects or only in the WAL.
#  1. confluent-kafka produces N records with acks=all over 3 partitions;
#     the broker stops with SIGTERM (exit status 0) and starts again on the
#     same data directory; every record is read back at the offset its
#     delivery report gave, and nothing else is there.
#  2. More records are produced with acks=all, and the broker is killed
#     with SIGKILL from inside the delivery callback of the M-th
#     acknowledgement, while later batches are still in flight. After the
#     restart every acknowledged record (of both phases) is at its
#     acknowledged offset; offsets stay contiguous (what was written but
#     not acknowledged may be there too, after the acknowledged ones).
#  3. Producing continues at the next offset after the restart.
# The upload interval is short so that some batches are in objects and
# some only in the WAL at each stop. COMPAT_015_RECORDS sets N (default
# 6000); M is N/2.
# compat-broker: none
# compat-timeout: 240
set -euo pipefail
. "$COMPAT_LIB/broker.sh"
sh_broker_cleanup_on_exit

fail() { echo "FAIL: $*" >&2; exit 1; }
N=${COMPAT_015_RECORDS:-6000}
T=$SCENARIO_TMP
B=$T/b1
SETTINGS=(streamhouse.upload.interval.ms=300)
export N T

sh_broker_start "$B" "${SETTINGS[@]}" || fail "broker did not start"

/usr/bin/python3 - <<'PY'
import os, sys
from kafka.admin import KafkaAdminClient, NewTopic
a = KafkaAdminClient(bootstrap_servers=os.environ["BOOTSTRAP"], request_timeout_ms=10000)
r = a.create_topics([NewTopic("durable", 3, 1)])
if any(code for _, code, _ in r.topic_errors):
    sys.exit("create_topics: %r" % (r.topic_errors,))
a.close()
PY

# produce.py PHASE COUNT KILL_AT: appends "partition offset key value" of
# every acknowledged record to $T/acked.tsv; with KILL_AT > 0 it SIGKILLs
# the broker from the delivery callback of that acknowledgement.
cat >"$T/produce.py" <<'PY'
import os, signal, sys, time
from confluent_kafka import Producer
phase, count, kill_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pid = int(os.environ["BROKER_PID"])
acked, killed = [], []
def on_delivery(err, msg):
    if err is not None:
        return
    acked.append((msg.partition(), msg.offset(), msg.key().decode(), msg.value().decode()))
    if kill_at and len(acked) == kill_at and not killed:
        os.kill(pid, signal.SIGKILL)
        killed.append(time.time())
p = Producer({"bootstrap.servers": os.environ["BOOTSTRAP"], "acks": "all", "linger.ms": 2,
              "batch.num.messages": 50, "message.timeout.ms": 8000,
              "enable.idempotence": False, "retries": 0})
for i in range(count):
    key = "%s-%d" % (phase, i)
    while True:
        try:
            p.produce("durable", key=key, value="value of %s" % key, partition=i % 3,
                      on_delivery=on_delivery)
            break
        except BufferError:
            p.poll(0.05)
    p.poll(0)
    if killed:
        break
left = p.flush(30)
with open(os.path.join(os.environ["T"], "acked.tsv"), "a") as f:
    for a in acked:
        f.write("%d\t%d\t%s\t%s\n" % a)
print("phase %s: %d acknowledged, %d not, killed=%s" % (phase, len(acked), left, bool(killed)))
if not kill_at and (left or len(acked) != count):
    sys.exit("phase %s: only %d of %d acknowledged" % (phase, len(acked), count))
if kill_at and not killed:
    sys.exit("phase %s: never reached %d acknowledgements" % (phase, kill_at))
PY

# verify.py: every acknowledged record at its offset; offsets contiguous;
# nothing unexpected below the last acknowledged offset of a partition.
cat >"$T/verify.py" <<'PY'
import os, sys, time
from confluent_kafka import Consumer, TopicPartition
acked = {}
for line in open(os.path.join(os.environ["T"], "acked.tsv")):
    p, o, k, v = line.rstrip("\n").split("\t")
    acked[(int(p), int(o))] = (k, v)
c = Consumer({"bootstrap.servers": os.environ["BOOTSTRAP"], "group.id": "compat-015",
              "enable.auto.commit": False, "fetch.wait.max.ms": 100})
high = {}
for p in range(3):
    lo, hi = c.get_watermark_offsets(TopicPartition("durable", p), timeout=10)
    high[p] = hi
c.assign([TopicPartition("durable", p, 0) for p in range(3)])
got = {}
deadline = time.time() + 60
while sum(len([o for (q, o) in got if q == p]) for p in range(3)) < sum(high.values()) \
        and time.time() < deadline:
    for m in c.consume(1000, 1.0):
        if m.error():
            sys.exit("consume: %s" % m.error())
        got[(m.partition(), m.offset())] = (m.key().decode(), m.value().decode())
c.close()
for p in range(3):
    offs = sorted(o for (q, o) in got if q == p)
    if offs != list(range(high[p])):
        sys.exit("partition %d: offsets read are not 0..%d" % (p, high[p] - 1))
missing = [(po, kv) for po, kv in acked.items() if got.get(po) != kv]
if missing:
    sys.exit("%d acknowledged records lost or moved, e.g. %r at %r (found %r)" %
             (len(missing), missing[0][1], missing[0][0], got.get(missing[0][0])))
extra = len(got) - len(acked)
print("verified %d acknowledged records at their offsets (%d more were written "
      "without an acknowledgement)" % (len(acked), extra))
if os.environ.get("EXACT") == "1" and extra:
    sys.exit("%d records that were never acknowledged" % extra)
PY

: >"$T/acked.tsv"
/usr/bin/python3 "$T/produce.py" a "$N" 0 || fail "phase 1 produce"
sh_broker_stop || fail "SIGTERM did not stop the broker"
[ "$BROKER_EXIT" = 0 ] || fail "broker exited with $BROKER_EXIT after SIGTERM"
sh_broker_start "$B" "${SETTINGS[@]}" || fail "broker did not restart"
EXACT=1 /usr/bin/python3 "$T/verify.py" || fail "after SIGTERM and restart"

/usr/bin/python3 "$T/produce.py" b "$N" $((N / 2)) || fail "phase 2 produce"
wait "$BROKER_PID" 2>/dev/null || true
sh_broker_alive "$BROKER_PID" && fail "broker survived SIGKILL"
sh_broker_start "$B" "${SETTINGS[@]}" || fail "broker did not restart after SIGKILL"
/usr/bin/python3 "$T/verify.py" || fail "after SIGKILL and restart"

# the log continues where it ended
/usr/bin/python3 "$T/produce.py" c 300 0 || fail "phase 3 produce"
/usr/bin/python3 "$T/verify.py" || fail "after producing again"
sh_broker_stop || fail "final SIGTERM"
grep -q "replayed from the WAL" "$B/broker.log" || fail "no WAL replay was logged"
echo "OK"
