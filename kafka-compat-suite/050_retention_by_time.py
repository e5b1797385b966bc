#!/usr/bin/python3
# Proves: retention.ms deletes whole uploaded chunks whose newest record is
# older than the cutoff, and their segment objects, seen through
# confluent-kafka (librdkafka):
#  - topic "ret-time" (retention.ms = 1 hour): 20 records stamped 3 hours
#    ago are produced and uploaded, then 10 records stamped now. Within a
#    few retention passes (log.retention.check.interval.ms = 200) the
#    earliest offset (get_watermark_offsets, ListOffsets EARLIEST) moves
#    from 0 to exactly 20 while the latest stays 30; the old records'
#    object disappears from the object store directory and the young one
#    stays; the broker logs the move;
#  - a consumer of a new group with auto.offset.reset=earliest starts at
#    offset 20 and reads the 10 young records; one assigned at offset 5
#    (below the log start) gets OFFSET_OUT_OF_RANGE from the broker and,
#    with auto.offset.reset=earliest, resumes at 20; offsets_for_times for
#    the old timestamp answers 20 (nothing below the log start is found);
#  - topic "ret-forever" (retention.ms = -1) keeps its equally old records
#    and its object through the same passes.
# Uploads happen within streamhouse.upload.interval.ms = 100; every wait is
# a bounded poll for a condition.
# compat-override: log.retention.check.interval.ms=200
# compat-override: streamhouse.upload.interval.ms=100
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
from compat import check, log  # noqa: E402

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

HOUR = 3600 * 1000


def object_files():
    """Segment objects in the broker's object store (local directory, or
    the s3rver's directory under STORAGE=s3)."""
    s3 = os.environ.get("S3_OBJECTS")
    root = s3 or os.path.join(os.environ["BROKER_DATA"], "objects")
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            if s3 and f.endswith("._S3rver_object"):
                out.append(os.path.join(d, f))
            elif not s3 and not f.startswith(".sh-tmp."):
                out.append(os.path.join(d, f))
    return sorted(out)


def wait_for(what, cond, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        check(compat.broker_alive(), "the broker died while waiting for %s", what)
        time.sleep(0.05)
    check(False, "timed out waiting for %s", what)


admin = AdminClient({"bootstrap.servers": compat.BOOTSTRAP})
topics = [NewTopic("ret-time", 1, 1, config={"retention.ms": str(HOUR)}),
          NewTopic("ret-forever", 1, 1, config={"retention.ms": "-1"})]
for f in admin.create_topics(topics, request_timeout=15).values():
    f.result()

watch = Consumer({"bootstrap.servers": compat.BOOTSTRAP, "group.id": "compat-050-watch"})


def marks(topic):
    return watch.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)


def produce(topic, n, ts, tag):
    p = Producer({"bootstrap.servers": compat.BOOTSTRAP, "acks": "all", "linger.ms": 50})
    for i in range(n):
        p.produce(topic, value=b"%s-%d" % (tag, i), partition=0, timestamp=ts + i)
    check(p.flush(30) == 0, "%s: not everything was acknowledged", topic)


check(object_files() == [], "objects before anything was produced: %s", object_files())
now = int(time.time() * 1000)

# old data that must be kept: uploaded before anything else happens
produce("ret-forever", 20, now - 3 * HOUR, b"forever")
forever_objs = wait_for("ret-forever's upload", lambda: object_files())
log("ret-forever uploaded: %s", forever_objs)

# old data that must go: it has to be uploaded alone (a chunk holding young
# records as well would be young); it may be deleted as soon as it is
produce("ret-time", 20, now - 3 * HOUR, b"old")
wait_for("ret-time's old chunk uploaded or already deleted",
         lambda: len(object_files()) > len(forever_objs) or marks("ret-time")[0] == 20)
old_objs = set(object_files()) - set(forever_objs)  # empty if already deleted
produce("ret-time", 10, now, b"young")
check(marks("ret-time")[1] == 30, "ret-time high watermark %s", marks("ret-time"))

wait_for("the earliest offset of ret-time to reach 20", lambda: marks("ret-time") == (20, 30))
# the young chunk is uploaded (and kept), the old object is gone
final = wait_for("ret-time's young upload and the old object's deletion",
                 lambda: (lambda o: o if len(o) == 2 and not set(o) & old_objs else None)(
                     object_files()))
check(set(forever_objs) <= set(final), "ret-forever's object went: %s -> %s", forever_objs, final)
time.sleep(0.5)  # a few more passes must not take anything else
check(marks("ret-time") == (20, 30), "ret-time moved on: %s", marks("ret-time"))
check(marks("ret-forever") == (0, 20), "ret-forever lost data: %s", marks("ret-forever"))
check(object_files() == final, "objects changed: %s -> %s", final, object_files())
with open(compat.BROKER_LOG) as f:
    blog = f.read()
check("partition ret-time-0: log start offset 0 -> 20 (retention.ms)" in blog,
      "the broker did not log the retention move")

# consuming from the beginning starts at the log start
c = Consumer({"bootstrap.servers": compat.BOOTSTRAP, "group.id": "compat-050",
              "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.subscribe(["ret-time"])
got = []
deadline = time.monotonic() + 30
while len(got) < 10 and time.monotonic() < deadline:
    m = c.poll(0.5)
    if m is None:
        continue
    check(m.error() is None, "consumer error %s", m.error())
    got.append((m.offset(), m.value()))
c.close()
check(got == [(20 + i, b"young-%d" % i) for i in range(10)], "consumed %s", got)

# below the log start: the broker answers OFFSET_OUT_OF_RANGE, librdkafka
# resets to the earliest offset, which is the log start
c = Consumer({"bootstrap.servers": compat.BOOTSTRAP, "group.id": "compat-050-reset",
              "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.assign([TopicPartition("ret-time", 0, 5)])
first = None
deadline = time.monotonic() + 30
while first is None and time.monotonic() < deadline:
    m = c.poll(0.5)
    if m is not None and m.error() is None:
        first = m.offset()
c.close()
check(first == 20, "after a reset the first offset was %s", first)

# with auto.offset.reset=error the same fetch is reported, not hidden
c = Consumer({"bootstrap.servers": compat.BOOTSTRAP, "group.id": "compat-050-error",
              "auto.offset.reset": "error", "enable.auto.commit": False})
c.assign([TopicPartition("ret-time", 0, 5)])
err = None
deadline = time.monotonic() + 30
while err is None and time.monotonic() < deadline:
    m = c.poll(0.5)
    if m is not None and m.error() is not None:
        err = m.error()
    check(m is None or m.error() is not None, "read offset %s below the log start",
          m and m.offset())
c.close()
check(err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET, "error was %s", err)
log("auto.offset.reset=error: %s", err)

# timestamp lookups do not find what was deleted
tp = watch.offsets_for_times([TopicPartition("ret-time", 0, now - 3 * HOUR)], timeout=10)[0]
check(tp.error is None and tp.offset == 20, "offsets_for_times(old) = %s", tp)
tp = watch.offsets_for_times([TopicPartition("ret-time", 0, now + 5)], timeout=10)[0]
check(tp.error is None and tp.offset == 25, "offsets_for_times(now + 5) = %s", tp)
watch.close()
check(compat.broker_alive(), "the broker died")
log("ok: ret-time starts at 20 with 1 object left, ret-forever keeps 0-19")
