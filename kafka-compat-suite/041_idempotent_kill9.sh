#!/usr/bin/env bash
# Proves: an idempotent librdkafka producer (confluent-kafka,
# enable.idempotence=true, acks=all, five requests in flight per
# partition) loses nothing and writes nothing twice while its broker is
# killed with SIGKILL and restarted, again and again, in the middle of the
# stream.
#  - N records go to 6 partitions (record i to partition i % 6, value
#    "<partition>:<n-th record of that partition>").
#  - Whenever the acknowledged count passes another 1/(KILLS+1) of N, the
#    broker is killed with SIGKILL (batches are in flight, some only in
#    the WAL, some in uploaded objects) and started again on the same data
#    directory and port; the producer reconnects and retries by itself.
#  - Every record must be acknowledged with no error; then a consumer
#    (assign from offset 0 up to the high watermarks) must find, in every
#    partition, exactly that partition's records in production order,
#    each once, with offsets 0..n-1, each at the offset its delivery
#    report gave.
# The producer is paced to spread the stream over COMPAT_041_SECONDS
# (default 40) so the kills land all along it (it runs flat out when the
# machine is slower than that); each kill comes a random 0-400 ms after
# its threshold (COMPAT_SEED replays the choice).
# COMPAT_041_RECORDS sets N (default 200000; the issue's full run is
# 1000000), COMPAT_041_KILLS the number of kills (default 6, at least 5).
# compat-broker: none
# compat-timeout: 900
set -euo pipefail
. "$COMPAT_LIB/broker.sh"
sh_broker_cleanup_on_exit

fail() { echo "FAIL: $*" >&2; exit 1; }
N=${COMPAT_041_RECORDS:-200000}
KILLS=${COMPAT_041_KILLS:-6}
PACE_SECONDS=${COMPAT_041_SECONDS:-40}
SEED=${COMPAT_SEED:-$RANDOM}
echo "seed $SEED (COMPAT_SEED replays it)"
RANDOM=$SEED
[ "$KILLS" -ge 5 ] || fail "COMPAT_041_KILLS must be at least 5"
T=$SCENARIO_TMP
B=$T/b1
export N T PACE_SECONDS
# Uploads every 300 ms, so each kill leaves some acknowledged batches in
# objects (with producer snapshots) and some only in the WAL.
SETTINGS=(streamhouse.upload.interval.ms=300)

# The producer must find the broker where it left it: keep one port. The
# broker binds with SO_REUSEADDR, so the port's TIME_WAIT connections from
# the previous life do not stand in its way (a plain bind test would).
FIXED_PORT=$(sh_broker_pick_port)
sh_broker_pick_port() { echo "$FIXED_PORT"; }

start() {
    local i
    for i in 1 2 3 4 5 6 7 8 9 10; do
        sh_broker_start "$B" "${SETTINGS[@]}" && return 0
        sleep 0.5
    done
    return 1
}

start || fail "broker did not start"
/usr/bin/python3 - <<'PY'
import os
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": os.environ["BOOTSTRAP"]})
for f in a.create_topics([NewTopic("idem041", 6, 1)], request_timeout=15).values():
    f.result()
PY

cat >"$T/produce.py" <<'PY'
import os, sys, time
from confluent_kafka import Producer
N, T = int(os.environ["N"]), os.environ["T"]
RATE = N / float(os.environ["PACE_SECONDS"])
PARTS = 6
acked, errors = [], []
def on_delivery(err, msg):
    if err is not None:
        errors.append(str(err))
    else:
        acked.append((msg.partition(), msg.offset(), msg.value()))
def progress():
    with open(os.path.join(T, "progress.tmp"), "w") as f:
        f.write("%d %d\n" % (len(acked), len(errors)))
    os.rename(os.path.join(T, "progress.tmp"), os.path.join(T, "progress"))
p = Producer({"bootstrap.servers": os.environ["BOOTSTRAP"], "enable.idempotence": True,
              "acks": "all", "linger.ms": 5, "max.in.flight.requests.per.connection": 5,
              "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500,
              "message.timeout.ms": 300000})
t0 = time.time()
next_report = 0
for i in range(N):
    part = i % PARTS
    v = b"%d:%d" % (part, i // PARTS)
    while True:
        try:
            p.produce("idem041", value=v, partition=part, on_delivery=on_delivery)
            break
        except BufferError:
            p.poll(0.05)
    p.poll(0)
    ahead = i / RATE - (time.time() - t0)
    if ahead > 0.01:
        p.poll(ahead)
    if len(acked) >= next_report:
        progress()
        next_report = len(acked) + 2000
while len(p) > 0 and time.time() - t0 < 600:
    p.poll(0.2)
    progress()
left = len(p)
progress()
with open(os.path.join(T, "acked.tsv"), "w") as f:
    for part, off, v in acked:
        f.write("%d\t%d\t%s\n" % (part, off, v.decode()))
print("produced %d records in %.1f s: %d acknowledged, %d failed, %d unfinished"
      % (N, time.time() - t0, len(acked), len(errors), left))
if errors:
    print("first errors: %r" % errors[:5])
sys.exit(0 if len(acked) == N and not errors and not left else 1)
PY

cat >"$T/verify.py" <<'PY'
import os, sys, time
from confluent_kafka import Consumer, TopicPartition
N, T = int(os.environ["N"]), os.environ["T"]
PARTS = 6
acked = {}
for line in open(os.path.join(T, "acked.tsv")):
    part, off, v = line.rstrip("\n").split("\t")
    acked[(int(part), int(off))] = v
c = Consumer({"bootstrap.servers": os.environ["BOOTSTRAP"], "group.id": "compat-041",
              "enable.auto.commit": False, "fetch.wait.max.ms": 100})
high = {p: c.get_watermark_offsets(TopicPartition("idem041", p), timeout=10)[1]
        for p in range(PARTS)}
c.assign([TopicPartition("idem041", p, 0) for p in range(PARTS)])
got = {p: [] for p in range(PARTS)}
deadline = time.time() + 300
while sum(len(v) for v in got.values()) < sum(high.values()) and time.time() < deadline:
    for m in c.consume(5000, 1.0):
        if m.error():
            sys.exit("consume: %s" % m.error())
        got[m.partition()].append((m.offset(), m.value().decode()))
c.close()
bad = 0
for p in range(PARTS):
    want = ["%d:%d" % (p, k) for k in range((N - p + PARTS - 1) // PARTS)]
    offs = [o for o, _ in got[p]]
    vals = [v for _, v in got[p]]
    if offs != list(range(len(offs))):
        print("partition %d: offsets are not 0..n-1" % p)
        bad += 1
    if vals != want:
        dups = len(vals) - len(set(vals))
        missing = len(set(want) - set(vals))
        first = next((k for k, (a, b) in enumerate(zip(vals, want)) if a != b), None)
        print("partition %d: %d records, %d expected; %d duplicates, %d missing; first "
              "difference at offset %s: %r" % (p, len(vals), len(want), dups, missing, first,
                                               vals[first:first + 3] if first is not None
                                               else None))
        bad += 1
wrong = [(k, v) for k, v in acked.items()
         if not (k[1] < len(got[k[0]]) and got[k[0]][k[1]][1] == v)]
if wrong:
    print("%d acknowledged records are not at their acknowledged offsets, e.g. %r"
          % (len(wrong), wrong[:3]))
    bad += 1
total = sum(len(v) for v in got.values())
print("read %d records from 6 partitions (high watermarks %r)" % (total, high))
sys.exit(1 if bad else 0)
PY

SECONDS=0
/usr/bin/python3 "$T/produce.py" >"$T/produce.out" 2>&1 &
PRODUCER=$!
kills=0
for k in $(seq 1 "$KILLS"); do
    target=$((N * k / (KILLS + 1)))
    while :; do
        kill -0 "$PRODUCER" 2>/dev/null || break
        done_n=$(cut -d' ' -f1 "$T/progress" 2>/dev/null || echo 0)
        [ "${done_n:-0}" -ge "$target" ] && break
        [ $SECONDS -lt 800 ] || { kill "$PRODUCER"; fail "no progress towards $target acknowledgements"; }
        sleep 0.05
    done
    kill -0 "$PRODUCER" 2>/dev/null || break
    sleep "0.$(printf '%03d' $((RANDOM % 400)))"
    kill -KILL "$BROKER_PID"
    wait "$BROKER_PID" 2>/dev/null || true
    kills=$((kills + 1))
    echo "kill $kills at $(cut -d' ' -f1 "$T/progress") acknowledged records (${SECONDS}s)"
    start || { kill "$PRODUCER"; fail "broker did not restart after kill $kills"; }
done
status=0
wait "$PRODUCER" || status=$?
cat "$T/produce.out"
[ "$status" -eq 0 ] || fail "the producer did not get every record acknowledged"
[ "$kills" -ge 5 ] || fail "only $kills kills happened before the producer finished"
/usr/bin/python3 "$T/verify.py" || fail "records lost, duplicated or reordered"
echo "041: $N records, $kills SIGKILLs, each record stored once and in order (${SECONDS}s)"
sh_broker_stop || fail "SIGTERM did not stop the broker"
[ "$BROKER_EXIT" = 0 ] || fail "broker exited with $BROKER_EXIT after SIGTERM"
