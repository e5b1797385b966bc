#!/usr/bin/python3
# Proves: an S3 outage of 60 s during a steady acks=all produce to a
# streamhouse.durability=wal topic costs producers only delay, never data
# or the broker. The broker runs on S3 storage with a small WAL
# (streamhouse.wal.max.bytes=12 MiB in 4 MiB segments), so the outage fills
# it. confluent-kafka (librdkafka, acks=all, retries, one request in flight
# so order holds across retries, message.timeout.ms=180000) produces 1 KiB numbered records at 2,000/s to
# 3 partitions for 90 s; at t=10 s the S3 server is stopped
# (s3-stop.sh --keep), at t=70 s it is resumed (s3-start.sh --resume: same
# port, credentials and objects). Checked:
#   - acknowledgements keep arriving for a while after S3 stopped (the WAL
#     still has room), so an outage is not an instant produce failure;
#   - the broker process never dies, and its RSS (VmRSS, sampled every
#     second) stays below WAL cap + read cache cap + 200 MiB: the only
#     memory a stuck upload may pin is the WAL's, bounded by
#     streamhouse.wal.max.bytes; the rest is the broker's fixed footprint,
#     a few MiB of buffers per connection and the read cache (16 MiB here);
#   - after S3 is back, uploads resume by themselves (new segment objects
#     appear in the bucket) and every record produced is acknowledged: no
#     delivery error at all, retriable errors and waits only;
#   - a fresh consumer reading from the beginning finds every acknowledged
#     record at its acknowledged offset, byte-identical, exactly once, and
#     nothing else.
# Printed, not asserted: the longest gap between acknowledgements, the
# acknowledgements during the outage, the producer's request timeouts,
# retries and largest throttle time (librdkafka statistics).
# Not idempotent on purpose: a batch parked for WAL space and cancelled at
# its timeout_ms gets REQUEST_TIMED_OUT, which librdkafka takes as "possibly
# persisted"; the next in-flight batch then gets OUT_OF_ORDER_SEQUENCE_NUMBER
# and librdkafka 1.7.0 raises a fatal "sequence desynchronization" error.
# compat-needs: s3
# compat-timeout: 240
# compat-override: streamhouse.wal.max.bytes=12582912
# compat-override: streamhouse.wal.segment.bytes=4194304
# compat-override: streamhouse.upload.bytes=2097152
# compat-override: streamhouse.upload.interval.ms=200
# compat-override: streamhouse.cache.bytes=16777216
# compat-override: streamhouse.s3.breaker.cooldown.ms=1000
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
from compat import check, log  # noqa: E402

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

BOOT = compat.BOOTSTRAP
S3_STATE = os.environ.get("S3_STATE", "")
S3_TOOLS = os.environ.get("S3_TOOLS", "")
S3_OBJECTS = os.environ.get("S3_OBJECTS", "")
check(S3_STATE and S3_TOOLS and S3_OBJECTS, "run through run.sh with compat-needs: s3")

TOPIC = "s3-outage"
PARTS = 3
RATE = 2000             # records per second
SIZE = 1024             # bytes per value
RUN_S = 90.0
STOP_AT, RESUME_AT = 10.0, 70.0
WAL_MAX = 12582912
CACHE = 16777216
RSS_BOUND = WAL_MAX + CACHE + 200 * 1024 * 1024


def value(i):
    head = b"rec %09d " % i
    return head + bytes((i + j) % 251 for j in range(SIZE - len(head)))


def s3(script, *args):
    rc = subprocess.run([os.path.join(S3_TOOLS, script)] + list(args) + [S3_STATE],
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                        timeout=60)
    check(rc.returncode == 0, "%s %s failed: %s", script, " ".join(args), rc.stderr.strip())


def objects():
    n = 0
    for _, _, files in os.walk(S3_OBJECTS):
        n += sum(1 for f in files if f.endswith("._S3rver_object"))
    return n


admin = AdminClient({"bootstrap.servers": BOOT})
for t, f in admin.create_topics([NewTopic(TOPIC, num_partitions=PARTS, replication_factor=1,
                                          config={"streamhouse.durability": "wal"})],
                                operation_timeout=30).items():
    f.result(timeout=30)
log("created %s (%d partitions, durability=wal)", TOPIC, PARTS)

# ------------------------------------------------------------ RSS sampler
rss = {"peak": 0, "samples": 0, "dead": None}
stop_sampler = threading.Event()


def sample():
    while not stop_sampler.is_set():
        if not compat.broker_alive():
            rss["dead"] = time.time()
            return
        try:
            with open("/proc/%d/status" % compat.BROKER_PID) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        kb = int(line.split()[1])
                        rss["peak"] = max(rss["peak"], kb * 1024)
                        rss["samples"] += 1
        except OSError:
            pass
        stop_sampler.wait(1.0)


sampler = threading.Thread(target=sample, daemon=True)
sampler.start()

# ------------------------------------------------------------ producer
acked = {}              # i -> (partition, offset)
ack_times = []
errors = []
stats = {"timeouts": 0, "retries": 0, "throttle": 0}


def dr(err, m):
    i = int(m.key())
    if err is not None:
        errors.append((i, str(err)))
    else:
        acked[i] = (m.partition(), m.offset())
        ack_times.append(time.time())


def on_stats(js):
    try:
        s = json.loads(js)
        for b in s.get("brokers", {}).values():
            if b.get("nodeid", -1) < 0:
                continue
            stats["timeouts"] = max(stats["timeouts"], b.get("req_timeouts", 0))
            stats["retries"] = max(stats["retries"], b.get("txretries", 0))
            stats["throttle"] = max(stats["throttle"], b.get("throttle", {}).get("max", 0))
    except (ValueError, AttributeError):
        pass


p = Producer({"bootstrap.servers": BOOT, "enable.idempotence": False, "acks": "all",
              "max.in.flight.requests.per.connection": 1, "retries": 1000000,
              "linger.ms": 10, "message.timeout.ms": 180000,
              "queue.buffering.max.messages": 400000,
              "statistics.interval.ms": 1000, "stats_cb": on_stats})

events = {}
s3_thread = None


def stop_s3():
    s3("s3-stop.sh", "--keep")
    events["stopped"] = time.time()
    events["objects_at_stop"] = objects()


def resume_s3():
    events["objects_before_resume"] = objects()
    s3("s3-start.sh", "--resume")
    events["resumed"] = time.time()


t0 = time.time()
i = 0
full = 0
while True:
    now = time.time() - t0
    if now >= RUN_S:
        break
    if "stop_started" not in events and now >= STOP_AT:
        events["stop_started"] = time.time()
        s3_thread = threading.Thread(target=stop_s3)
        s3_thread.start()
    if "resume_started" not in events and now >= RESUME_AT:
        s3_thread.join(60)
        check("stopped" in events, "s3-stop.sh did not finish")
        events["resume_started"] = time.time()
        s3_thread = threading.Thread(target=resume_s3)
        s3_thread.start()
    target = int(now * RATE)
    while i < target:
        try:
            p.produce(TOPIC, key=b"%d" % i, value=value(i), partition=i % PARTS, on_delivery=dr)
            i += 1
        except BufferError:
            full += 1
            break
    p.poll(0.01)
    check(compat.broker_alive(), "the broker died at t=%.1f s", now)
produced = i
log("produced %d records in %.0f s (%d queue-full waits); flushing", produced, RUN_S, full)
s3_thread.join(60)
check("resumed" in events, "s3-start.sh --resume did not finish")
left = p.flush(150)
flush_done = time.time()
stop_sampler.set()
sampler.join(5)

stopped, resumed = events["stopped"], events["resumed"]
during = sorted(t - stopped for t in ack_times if stopped <= t < resumed)
gaps = [b - a for a, b in zip(sorted(ack_times), sorted(ack_times)[1:])]
log("S3 stopped at t=%.1f s, resumed at t=%.1f s; all acknowledged at t=%.1f s",
    stopped - t0, resumed - t0, flush_done - t0)
log("acknowledgements during the outage: %d, the last %.1f s after S3 stopped; "
    "longest gap between acknowledgements %.1f s",
    len(during), during[-1] if during else -1, max(gaps) if gaps else -1)
log("producer: %d request timeouts, %d retries, max throttle %d ms",
    stats["timeouts"], stats["retries"], stats["throttle"])
log("broker RSS peak %.1f MiB over %d samples (bound %.0f MiB)",
    rss["peak"] / 1048576.0, rss["samples"], RSS_BOUND / 1048576.0)

check(rss["dead"] is None and compat.broker_alive(), "the broker died")
check(not errors, "%d delivery errors, e.g. %s", len(errors), errors[:3])
check(left == 0 and len(acked) == produced,
      "%d of %d records acknowledged (%d still queued)", len(acked), produced, left)
check(len(during) > 0 and during[-1] > 0.5,
      "no acknowledgements after S3 stopped although the WAL had room")
check(rss["samples"] > 60, "only %d RSS samples", rss["samples"])
check(rss["peak"] < RSS_BOUND, "broker RSS peaked at %d bytes, bound %d", rss["peak"], RSS_BOUND)

# Uploads resume by themselves: new objects once S3 is back.
deadline = time.time() + 30
while objects() <= events["objects_before_resume"] and time.time() < deadline:
    time.sleep(0.5)
after = objects()
log("segment objects: %d when S3 stopped, %d after the outage",
    events["objects_before_resume"], after)
check(after > events["objects_before_resume"], "no upload after S3 came back")

# ------------------------------------------------------------ read back
want = {}
for k, (part, off) in acked.items():
    want[(part, off)] = k
check(len(want) == len(acked), "two records acknowledged at the same offset")
c = Consumer({"bootstrap.servers": BOOT, "group.id": "s3-outage-reader",
              "enable.auto.commit": False, "auto.offset.reset": "earliest",
              "enable.partition.eof": True})
c.assign([TopicPartition(TOPIC, q, 0) for q in range(PARTS)])
seen = set()
eof = set()
deadline = time.time() + 60
while len(eof) < PARTS and time.time() < deadline:
    msgs = c.consume(1000, 1.0)
    for m in msgs:
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
                continue
            raise AssertionError("consume error: %s" % m.error())
        eof.discard(m.partition())
        at = (m.partition(), m.offset())
        check(at not in seen, "partition %d offset %d read twice", *at)
        seen.add(at)
        k = want.get(at)
        check(k is not None, "partition %d offset %d holds a record nobody acknowledged (%r)",
              at[0], at[1], m.key())
        check(m.key() == b"%d" % k and m.value() == value(k),
              "partition %d offset %d: wrong record (key %r)", at[0], at[1], m.key())
c.close()
check(len(eof) == PARTS, "did not reach the end of every partition in 60 s (%d read)", len(seen))
check(len(seen) == len(want), "read %d records, %d acknowledged", len(seen), len(want))
check(compat.broker_alive(), "the broker died")
log("OK: %d records acknowledged and read back exactly once across a 60 s S3 outage", len(seen))
