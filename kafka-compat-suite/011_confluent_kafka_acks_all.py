#!/usr/bin/python3
# Proves: confluent-kafka (librdkafka 2.0.2) produces N records over 6
# partitions with acks=all and reads every one back exactly: each delivery
# report carries the offset the record is later found at, offsets per
# partition run 0..n-1 without gaps, the producer's order is kept per
# partition, and keys, values (including null and empty), headers (with an
# empty header value) and CreateTime timestamps come back unchanged. The
# consumer uses assign() from the beginning and stops at the high
# watermarks it reads with get_watermark_offsets (ListOffsets).
# COMPAT_011_RECORDS sets N (default 20000; 100000 is the full-size run).
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
from compat import check, log  # noqa: E402

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

N = int(os.environ.get("COMPAT_011_RECORDS", "20000"))
TOPIC = "ck-acks-all"
PARTS = 6
T0 = 1700000000000

admin = AdminClient({"bootstrap.servers": compat.BOOTSTRAP})
for f in admin.create_topics([NewTopic(TOPIC, PARTS, 1)], request_timeout=15).values():
    f.result()


def record(i):
    key = None if i % 1000 == 7 else b"key-%d" % i
    value = None if i % 1000 == 11 else (b"" if i % 1000 == 13 else b"v%d-" % i + bytes([i % 256]) * (i % 40))
    # (no null header values: confluent-kafka 1.7 on Python 3.11 frees None
    # once too often when it reads them back, and the interpreter aborts)
    headers = [("seq", b"%d" % i), ("maybe-empty", b"" if i % 2 else b"x")]
    return key, value, headers, T0 + i


acked = {}      # i -> (partition, offset)
errors = []


def on_delivery(i, err, msg):
    # (delivery reports of librdkafka 2.0.2 carry no headers: bind i)
    if err is not None:
        errors.append(str(err))
        return
    acked[i] = (msg.partition(), msg.offset())


p = Producer({"bootstrap.servers": compat.BOOTSTRAP, "acks": "all", "linger.ms": 5,
              "enable.idempotence": False})
for i in range(N):
    k, v, h, ts = record(i)
    while True:
        try:
            p.produce(TOPIC, key=k, value=v, headers=h, timestamp=ts, partition=i % PARTS,
                      on_delivery=lambda err, msg, i=i: on_delivery(i, err, msg))
            break
        except BufferError:
            p.poll(0.1)
    if i % 1000 == 0:
        p.poll(0)
left = p.flush(60)
check(left == 0, "%d records never acknowledged", left)
check(not errors, "delivery errors: %s", errors[:5])
check(len(acked) == N, "%d of %d delivery reports", len(acked), N)
log("produced %d records, all acknowledged", N)

# what the producer was told, per partition, in produce order
expect = {q: [] for q in range(PARTS)}
for i in range(N):
    expect[i % PARTS].append(i)
for q in range(PARTS):
    offs = [acked[i][1] for i in expect[q]]
    check(offs == list(range(len(offs))), "partition %d: acknowledged offsets are not 0..n-1", q)

c = Consumer({"bootstrap.servers": compat.BOOTSTRAP, "group.id": "compat-011",
              "enable.auto.commit": False, "fetch.wait.max.ms": 100})
high = {}
for q in range(PARTS):
    lo, hi = c.get_watermark_offsets(TopicPartition(TOPIC, q), timeout=10)
    check(lo == 0 and hi == len(expect[q]), "partition %d watermarks %d..%d, want 0..%d",
          q, lo, hi, len(expect[q]))
    high[q] = hi
c.assign([TopicPartition(TOPIC, q, 0) for q in range(PARTS)])
got = {q: [] for q in range(PARTS)}
deadline = time.time() + 120
while sum(len(v) for v in got.values()) < N and time.time() < deadline:
    for m in c.consume(1000, 1.0):
        if m.error():
            raise KafkaException(m.error())
        got[m.partition()].append(m)
c.close()
for q in range(PARTS):
    msgs = got[q]
    check(len(msgs) == len(expect[q]), "partition %d: read %d of %d", q, len(msgs),
          len(expect[q]))
    for n, (m, i) in enumerate(zip(msgs, expect[q])):
        k, v, h, ts = record(i)
        check(m.offset() == n, "partition %d: offset %d at position %d", q, m.offset(), n)
        check(m.key() == k and m.value() == v, "record %d: key/value differ", i)
        check(m.headers() == h, "record %d: headers %r, want %r", i, m.headers(), h)
        check(m.timestamp() == (1, ts), "record %d: timestamp %r", i, m.timestamp())
log("read back all %d records in order with keys, values, headers and timestamps", N)
check(compat.broker_alive(), "broker died")
