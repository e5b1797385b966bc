#!/usr/bin/python3
# Proves: DeleteTopics (kafka-python 2.0.2 delete_topics) removes a topic's
# segment objects from the object store, and an object shared with another
# topic only once no live chunk references it:
#  - "gone" is uploaded alone (object O1), then "gone" and "stays" are
#    produced in one request and uploaded together (object O2, holding a
#    chunk of each: the metadata store's segment_chunks says so, read from
#    the broker's SQLite file);
#  - deleting "gone" deletes O1 and keeps O2, whose "stays" chunk is still
#    read back in full by a consumer; "gone"'s chunks and partitions leave
#    the metadata store;
#  - "gone" re-created under the same name starts empty: earliest = latest
#    = 0, a consumer from the beginning gets nothing of the old data, and a
#    new record gets offset 0;
#  - deleting both topics empties the object store and the store's object
#    list (segment_objects).
# Uploads happen streamhouse.upload.interval.ms = 1000 after the oldest
# waiting byte, so two records produced together share one object. Every
# wait is a bounded poll for a condition.
# compat-override: streamhouse.upload.interval.ms=1000
import logging
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
from compat import check, log  # noqa: E402

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from kafka import KafkaAdminClient  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402

logging.basicConfig(level=logging.ERROR)
S3 = os.environ.get("S3_OBJECTS")


def object_files():
    root = S3 or os.path.join(os.environ["BROKER_DATA"], "objects")
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            if (S3 and f.endswith("._S3rver_object")) or (not S3 and not f.startswith(".sh-tmp.")):
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


META_DB = os.path.join(os.environ["BROKER_DATA"], "meta.db")
SQLITE = os.path.exists(META_DB)  # META=postgresql: no file to look into


def store_rows(sql):
    """Rows of the broker's metadata store, read-only (SQLite only)."""
    con = sqlite3.connect("file:%s?mode=ro" % META_DB, uri=True, timeout=10)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def marks(c, topic):
    return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)


admin = KafkaAdminClient(bootstrap_servers=compat.BOOTSTRAP, request_timeout_ms=15000)
admin.create_topics([NewTopic("gone", 1, 1), NewTopic("stays", 1, 1)])
p = Producer({"bootstrap.servers": compat.BOOTSTRAP, "acks": "all", "linger.ms": 20})
check(object_files() == [], "objects before anything was produced")

for i in range(10):
    p.produce("gone", value=b"old-%d" % i, partition=0)
check(p.flush(30) == 0, "gone: not acknowledged")
o1 = wait_for("the first upload", lambda: (lambda o: o if len(o) == 1 else None)(object_files()))
for i in range(5):
    p.produce("gone", value=b"old-%d" % (10 + i), partition=0)
    p.produce("stays", value=b"stays-%d" % i, partition=0)
check(p.flush(30) == 0, "gone+stays: not acknowledged")
both = wait_for("the second upload", lambda: (lambda o: o if len(o) == 2 else None)(object_files()))
o2 = [o for o in both if o not in o1]
log("objects: O1 %s, O2 %s", o1, o2)
if SQLITE:
    # the object is PUT before its chunks are committed: wait for the commit
    shared = wait_for("O2's chunks in the store", lambda: store_rows(
        "SELECT c.object_key, count(DISTINCT t.name) FROM segment_chunks c "
        "JOIN topics t ON t.topic_id = c.topic_id GROUP BY c.object_key "
        "HAVING count(DISTINCT t.name) = 2"))
    check(len(shared) == 1 and (S3 or o2[0] == os.path.join(
        os.environ["BROKER_DATA"], "objects", shared[0][0])),
        "O2 is not shared by both topics: %s", shared)

admin.delete_topics(["gone"])
left = wait_for("O1 to go", lambda: (lambda o: o if o1[0] not in o else None)(object_files()))
time.sleep(0.3)  # nothing else may follow
check(object_files() == o2, "after deleting gone: %s (O2 %s)", object_files(), o2)
if SQLITE:
    rows = store_rows("SELECT count(*) FROM segment_chunks c JOIN topics t ON "
                      "t.topic_id = c.topic_id WHERE t.name = 'gone'")
    check(rows == [(0,)], "chunks of gone are left: %s", rows)
    objs = store_rows("SELECT object_key, live_chunks FROM segment_objects")
    check(len(objs) == 1 and objs[0][1] == 1, "segment_objects %s", objs)

c = Consumer({"bootstrap.servers": compat.BOOTSTRAP, "group.id": "compat-053",
              "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.assign([TopicPartition("stays", 0, 0)])
got = []
deadline = time.monotonic() + 30
while len(got) < 5 and time.monotonic() < deadline:
    m = c.poll(0.5)
    if m is not None:
        check(m.error() is None, "stays: %s", m.error())
        got.append(m.value())
check(got == [b"stays-%d" % i for i in range(5)], "stays read back %s", got)

# the name is free again and the new topic has none of the old data
admin.create_topics([NewTopic("gone", 1, 1)])
check(marks(c, "gone") == (0, 0), "re-created gone: %s", marks(c, "gone"))
c.assign([TopicPartition("gone", 0, 0)])
deadline = time.monotonic() + 1.5
while time.monotonic() < deadline:
    m = c.poll(0.2)
    check(m is None or m.error() is not None, "old data in the new topic: %s",
          m and (m.offset(), m.value()))
dr = []
p.produce("gone", value=b"new-0", partition=0, on_delivery=lambda e, m: dr.append((e, m.offset())))
check(p.flush(30) == 0 and dr == [(None, 0)], "new record: %s", dr)
m = None
deadline = time.monotonic() + 30
while m is None and time.monotonic() < deadline:
    m = c.poll(0.5)
check(m is not None and m.error() is None and (m.offset(), m.value()) == (0, b"new-0"),
      "new topic read back %s", m and (m.offset(), m.value()))
c.close()

admin.delete_topics(["gone", "stays"])
wait_for("every object to go", lambda: object_files() == [])
if SQLITE:
    wait_for("the store's object list to empty",
             lambda: store_rows("SELECT count(*) FROM segment_objects") == [(0,)])
admin.close()
check(compat.broker_alive(), "the broker died")
log("ok: O1 went with gone, O2 with stays; the re-created gone started at 0")
