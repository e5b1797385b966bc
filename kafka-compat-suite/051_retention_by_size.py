#!/usr/bin/python3
# Proves: retention.bytes keeps a partition to its size budget by deleting
# whole uploaded chunks, oldest first, while at least retention.bytes
# remain (Kafka's rule), seen through kafka-python 2.0.2:
#  - topic "ret-size" without a limit gets 5 uploads of 10 records of
#    1000-byte values (about 10.2 KB each, one chunk per upload, each in its
#    own object); nothing is deleted;
#  - alter_configs sets retention.bytes = 25000: the next passes
#    (log.retention.check.interval.ms = 200) drop exactly the two oldest
#    chunks (5 x S - 25000 leaves 3 chunks for any S between 8.4 and 12.5
#    KB), so beginning_offsets (ListOffsets EARLIEST) becomes 20,
#    end_offsets stays 50 and 3 objects are left in the object store;
#  - a consumer reading from the beginning gets offsets 20..49; one that
#    seeks to offset 5 (below the log start) is reset by auto_offset_reset
#    to 20, and with auto_offset_reset=none gets OffsetOutOfRangeError.
# Every wait is a bounded poll for a condition.
# compat-override: log.retention.check.interval.ms=200
# compat-override: streamhouse.upload.interval.ms=100
import logging
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
from compat import check, log  # noqa: E402

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic  # noqa: E402
from kafka.errors import OffsetOutOfRangeError  # noqa: E402

logging.basicConfig(level=logging.ERROR)
TOPIC = "ret-size"
TP = TopicPartition(TOPIC, 0)


def object_files():
    s3 = os.environ.get("S3_OBJECTS")
    root = s3 or os.path.join(os.environ["BROKER_DATA"], "objects")
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            if (s3 and f.endswith("._S3rver_object")) or (not s3 and not f.startswith(".sh-tmp.")):
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


admin = KafkaAdminClient(bootstrap_servers=compat.BOOTSTRAP, request_timeout_ms=15000)
admin.create_topics([NewTopic(TOPIC, 1, 1)])
producer = KafkaProducer(bootstrap_servers=compat.BOOTSTRAP, acks="all", linger_ms=100,
                         batch_size=1 << 20)
watch = KafkaConsumer(bootstrap_servers=compat.BOOTSTRAP)


def marks():
    return (watch.beginning_offsets([TP])[TP], watch.end_offsets([TP])[TP])


for step in range(5):
    futures = [producer.send(TOPIC, value=b"%d-%d-" % (step, i) + b"x" * 990, partition=0)
               for i in range(10)]
    producer.flush(30)
    offsets = [f.get(timeout=30).offset for f in futures]
    check(offsets == list(range(step * 10, step * 10 + 10)), "step %d offsets %s", step, offsets)
    wait_for("upload %d" % (step + 1), lambda: len(object_files()) == step + 1)
producer.close()
check(marks() == (0, 50), "before the limit: %s", marks())
before = object_files()

resp = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC,
                                           configs={"retention.bytes": "25000"})])
check(resp.resources[0][0] == 0, "alter_configs: %r", resp)
wait_for("the earliest offset to reach 20", lambda: marks() == (20, 50))
wait_for("two objects to go", lambda: len(object_files()) == 3)
time.sleep(0.5)  # more passes take nothing more
check(marks() == (20, 50), "moved on: %s", marks())
after = object_files()
# object names end in the writer's sequence number: the oldest two went
by_seq = sorted(before, key=os.path.basename)
check(sorted(after, key=os.path.basename) == by_seq[2:], "objects %s -> %s", by_seq, after)
with open(compat.BROKER_LOG) as f:
    check("partition ret-size-0: log start offset 0 -> 20 (retention.bytes)" in f.read(),
          "the broker did not log the move")

c = KafkaConsumer(bootstrap_servers=compat.BOOTSTRAP, auto_offset_reset="earliest",
                  enable_auto_commit=False, consumer_timeout_ms=5000)
c.assign([TP])
c.seek_to_beginning(TP)
got = []
deadline = time.monotonic() + 30
while len(got) < 30 and time.monotonic() < deadline:
    for recs in c.poll(timeout_ms=500).values():
        got += [r.offset for r in recs]
check(got == list(range(20, 50)), "from the beginning: %s", got)
c.seek(TP, 5)
first = None
deadline = time.monotonic() + 30
while first is None and time.monotonic() < deadline:
    for recs in c.poll(timeout_ms=500).values():
        first = recs[0].offset
check(first == 20, "after a reset the first offset was %s", first)
c.close()

c = KafkaConsumer(bootstrap_servers=compat.BOOTSTRAP, auto_offset_reset="none",
                  enable_auto_commit=False)
c.assign([TP])
c.seek(TP, 5)
raised = None
deadline = time.monotonic() + 30
while raised is None and time.monotonic() < deadline:
    try:
        recs = c.poll(timeout_ms=500)
        check(not recs, "read below the log start: %s", recs)
    except OffsetOutOfRangeError as e:
        raised = e
c.close()
check(raised is not None, "no OffsetOutOfRangeError")
log("auto_offset_reset=none: %r", raised)
watch.close()
admin.close()
check(compat.broker_alive(), "the broker died")
log("ok: 3 chunks (offsets 20-49) kept under retention.bytes=25000")
