#!/usr/bin/python3
# Proves: with its metadata in PostgreSQL, the broker rides out a PostgreSQL
# restart and a short outage during produce and consume by itself (no broker
# restart), clients see only retriable conditions, and nothing acknowledged
# is lost. confluent-kafka (librdkafka) produces numbered records (acks=all,
# one request in flight, so order holds across retries) to two topics: one
# with streamhouse.durability=wal (acked after the WAL fsync; uploads commit
# their chunks to PostgreSQL in the background) and one with
# streamhouse.durability=object (acked only once the segment's chunks are
# committed in PostgreSQL). A consumer in a group reads both and commits its
# offsets (stored in PostgreSQL) as it goes. After 3 s of traffic PostgreSQL
# is restarted (pg_ctl restart, fast shutdown); at 6 s it is stopped for 3 s
# and started again; traffic goes on until 13 s. Checked: every record is
# acknowledged (no delivery error), the group consumer saw every record, a
# fresh reader finds each topic's records complete and in order, the group's
# final commit and its committed offsets are there after the outage, and
# the broker log says it reconnected. Printed, not asserted (no wall-clock
# assertions): the longest gap between acknowledgements per topic and how
# long offset commits failed, the figures behind "a PostgreSQL restart costs
# under 10 s of retriable errors".
# compat-needs: postgres
# compat-override: streamhouse.upload.interval.ms=200
# compat-timeout: 240
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
from compat import check, log  # noqa: E402

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

BOOT = compat.BOOTSTRAP
PG_STATE = os.environ.get("PG_STATE", "")
PG_TOOLS = os.environ.get("PG_TOOLS", "")
check(PG_STATE and PG_TOOLS, "run through run.sh with compat-needs: postgres")

WAL_T, OBJ_T = "pgr-wal", "pgr-object"
GROUP = "pgr-group"
PERIOD = 0.01           # one record per topic every 10 ms
RUN_S = 13.0


def pg(script, arg):
    rc = subprocess.run([os.path.join(PG_TOOLS, script), arg, PG_STATE],
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                        timeout=60)
    check(rc.returncode == 0, "%s %s failed: %s", script, arg, rc.stderr.strip())


admin = AdminClient({"bootstrap.servers": BOOT})
fs = admin.create_topics([
    NewTopic(WAL_T, num_partitions=1, replication_factor=1,
             config={"streamhouse.durability": "wal"}),
    NewTopic(OBJ_T, num_partitions=1, replication_factor=1,
             config={"streamhouse.durability": "object"}),
], operation_timeout=30)
for t, f in fs.items():
    f.result(timeout=30)
log("created %s and %s", WAL_T, OBJ_T)

# ------------------------------------------------------------- consumer
seen = {WAL_T: [], OBJ_T: []}
commit_fail = {"n": 0, "first": None, "last": None, "codes": set()}
stop_consumer = threading.Event()
consumer_error = []


def consume():
    c = Consumer({"bootstrap.servers": BOOT, "group.id": GROUP, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 30000,
                  "heartbeat.interval.ms": 1000})
    try:
        c.subscribe([WAL_T, OBJ_T])
        since_commit = 0
        while not stop_consumer.is_set():
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    log("consumer: %s", m.error())
                continue
            seen[m.topic()].append(int(m.value()))
            since_commit += 1
            if since_commit >= 50:
                try:
                    c.commit(asynchronous=False)
                    since_commit = 0
                except KafkaException as e:
                    now = time.monotonic()
                    commit_fail["n"] += 1
                    commit_fail["codes"].add(e.args[0].name())
                    commit_fail["first"] = commit_fail["first"] or now
                    commit_fail["last"] = now
                    check(e.args[0].retriable() or e.args[0].name() in (
                        "COORDINATOR_NOT_AVAILABLE", "NOT_COORDINATOR", "REQUEST_TIMED_OUT",
                        "_TIMED_OUT", "COORDINATOR_LOAD_IN_PROGRESS", "_WAIT_COORD",
                        "REBALANCE_IN_PROGRESS"),
                        "offset commit failed with a non-retriable error: %s", e)
        # the final commit, after the outage: must work (retries allowed)
        for attempt in range(60):
            try:
                c.commit(asynchronous=False)
                break
            except KafkaException as e:
                if e.args[0].code() == KafkaError._NO_OFFSET:
                    break
                time.sleep(0.5)
        else:
            raise AssertionError("the final offset commit never succeeded")
    except Exception as e:  # reported on the main thread
        consumer_error.append(e)
    finally:
        c.close()


ct = threading.Thread(target=consume)
ct.start()

# ------------------------------------------------------------- producer
acks = {WAL_T: [], OBJ_T: []}       # (value, monotonic time) per delivery
errors = []


def delivered(err, msg):
    if err is not None:
        errors.append("%s: %s" % (msg.topic(), err))
    else:
        acks[msg.topic()].append((int(msg.value()), time.monotonic()))


# One producer per topic: a produce request carrying both topics would hold
# the WAL topic's acknowledgement back behind the object topic's.
prod = {t: Producer({"bootstrap.servers": BOOT, "acks": "all", "linger.ms": 5,
                     "max.in.flight.requests.per.connection": 1,
                     "message.timeout.ms": 120000, "request.timeout.ms": 60000,
                     "enable.idempotence": False})
        for t in (WAL_T, OBJ_T)}
t0 = time.monotonic()
events = [(3.0, "restart"), (6.0, "stop"), (9.0, "start")]
timeline = {}
n = 0
while time.monotonic() - t0 < RUN_S:
    now = time.monotonic() - t0
    if events and now >= events[0][0]:
        what = events.pop(0)[1]
        timeline[what] = time.monotonic()
        if what == "restart":
            pg("pg-start.sh", "--restart")
        elif what == "stop":
            pg("pg-stop.sh", "--keep")
        else:
            pg("pg-start.sh", "--resume")
        timeline[what + " done"] = time.monotonic()
        log("t=%.1f s: PostgreSQL %s (took %.0f ms)", now, what,
            (timeline[what + " done"] - timeline[what]) * 1000)
    for t in (WAL_T, OBJ_T):
        while True:
            try:
                prod[t].produce(t, value=str(n).encode(), on_delivery=delivered)
                break
            except BufferError:
                prod[t].poll(0.05)
        prod[t].poll(0)
    n += 1
    time.sleep(PERIOD)
for t in (WAL_T, OBJ_T):
    left = prod[t].flush(120)
    check(left == 0, "%s: %d records were never acknowledged", t, left)
check(not errors, "delivery errors: %s", errors[:5])
log("produced %d records to each topic, all acknowledged", n)


def max_gap(lst):
    ts = sorted(t for _, t in lst)
    gaps = [(b - a, a) for a, b in zip(ts, ts[1:])]
    return max(gaps) if gaps else (0.0, t0)


for t in (WAL_T, OBJ_T):
    vals = [v for v, _ in acks[t]]
    check(sorted(vals) == list(range(n)), "%s: acknowledged values are not 0..%d", t, n - 1)
    gap, at = max_gap(acks[t])
    log("%s: longest gap between acknowledgements %.0f ms (starting %.1f s into the run)",
        t, gap * 1000, at - t0)

# ------------------------------------------------------------- consumer done
deadline = time.monotonic() + 90
while time.monotonic() < deadline and (len(set(seen[WAL_T])) < n or len(set(seen[OBJ_T])) < n):
    time.sleep(0.2)
stop_consumer.set()
ct.join(120)
check(not ct.is_alive(), "the consumer did not stop")
if consumer_error:
    raise consumer_error[0]
for t in (WAL_T, OBJ_T):
    check(set(seen[t]) == set(range(n)), "group consumer of %s saw %d of %d records", t,
          len(set(seen[t])), n)
if commit_fail["n"]:
    log("offset commits failed %d times over %.0f ms (%s), then worked again",
        commit_fail["n"], (commit_fail["last"] - commit_fail["first"]) * 1000,
        ", ".join(sorted(commit_fail["codes"])))
else:
    log("no offset commit failed")

# ------------------------------------------------------------- read back
r = Consumer({"bootstrap.servers": BOOT, "group.id": "pgr-reader", "enable.auto.commit": False,
              "enable.partition.eof": True})
r.assign([TopicPartition(WAL_T, 0, 0), TopicPartition(OBJ_T, 0, 0)])
got = {WAL_T: [], OBJ_T: []}
deadline = time.monotonic() + 60
while time.monotonic() < deadline and (len(got[WAL_T]) < n or len(got[OBJ_T]) < n):
    m = r.poll(0.5)
    if m is None or m.error():
        continue
    got[m.topic()].append((m.offset(), int(m.value())))
for t in (WAL_T, OBJ_T):
    offs = [o for o, _ in got[t]]
    vals = [v for _, v in got[t]]
    check(offs == list(range(len(offs))), "%s: offsets are not contiguous from 0", t)
    check(vals == list(range(n)), "%s: read back %d records, not 0..%d in order", t,
          len(vals), n - 1)
wm = {t: r.get_watermark_offsets(TopicPartition(t, 0), timeout=10) for t in (WAL_T, OBJ_T)}
r.close()
for t in (WAL_T, OBJ_T):
    check(wm[t][1] == n, "%s: high watermark %d, produced %d", t, wm[t][1], n)
log("a fresh reader found %d records in order in each topic", n)

# the group's committed offsets survived the restart and the outage
g = Consumer({"bootstrap.servers": BOOT, "group.id": GROUP, "enable.auto.commit": False})
committed = g.committed([TopicPartition(WAL_T, 0), TopicPartition(OBJ_T, 0)], timeout=30)
g.close()
for tp in committed:
    check(tp.error is None and tp.offset == n, "committed offset of %s is %s, want %d",
          tp.topic, tp.offset if tp.error is None else tp.error, n)
log("the group's committed offsets are %d for both topics", n)

with open(compat.BROKER_LOG, errors="replace") as f:
    blog = f.read()
check("reconnected to metadata database" in blog or "closed the connection" in blog,
      "the broker log does not show a reconnection to PostgreSQL")
check(compat.broker_alive(), "the broker died")
check(not compat.sanitizer_reports(), "sanitizer reports in the broker log")
log("ok")
