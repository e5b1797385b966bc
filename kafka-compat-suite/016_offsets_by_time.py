#!/usr/bin/python3
# Proves: consumers start from the middle of a partition, by offset and by
# timestamp, and get exactly the records from there on, both while the
# data is in the broker's tail and after it was uploaded to objects:
#  - confluent-kafka: assign() at offset k reads k, k+1, ... (Fetch from a
#    batch boundary or from inside a batch); offsets_for_times (ListOffsets
#    v2 by timestamp) answers the first record whose timestamp is >= T, at
#    record granularity inside compressed and uncompressed batches,
#    offset 0 for a T before everything and -1 (end) for one after it;
#  - kafka-python: offsets_for_times (ListOffsets v1) agrees, with the
#    record's timestamp.
# Timestamps are T0 + 10 * i for record i (and not monotonic in a second
# topic, where the first record at or after T in offset order is expected,
# as Kafka defines it). COMPAT_016_RECORDS sets N (default 4000).
# compat-override: streamhouse.upload.interval.ms=200
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
from compat import check, log  # noqa: E402

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from kafka import KafkaConsumer  # noqa: E402
from kafka import TopicPartition as KTP  # noqa: E402

N = int(os.environ.get("COMPAT_016_RECORDS", "4000"))
T0 = 1700000000000
admin = AdminClient({"bootstrap.servers": compat.BOOTSTRAP})
for f in admin.create_topics([NewTopic("bytime", 2, 1), NewTopic("jumbled", 1, 1)],
                             request_timeout=15).values():
    f.result()


def ts_sorted(i):
    return T0 + 10 * i


def ts_jumbled(i):
    # a saw tooth: times go up by 10 and fall back every 100 records
    return T0 + 10 * (i % 100) + 7 * (i // 100)


for topic, parts, tsf, codec in (("bytime", 2, ts_sorted, "lz4"),
                                 ("jumbled", 1, ts_jumbled, "none")):
    p = Producer({"bootstrap.servers": compat.BOOTSTRAP, "acks": "all", "linger.ms": 10,
                  "compression.type": codec})
    for i in range(N):
        while True:
            try:
                p.produce(topic, key=b"%d" % i, value=b"v%d" % i, partition=i % parts,
                          timestamp=tsf(i))
                break
            except BufferError:
                p.poll(0.1)
    check(p.flush(60) == 0, "%s: not everything was acknowledged", topic)
log("produced %d records to each topic", N)


def read_from(c, topic, part, offset, count):
    c.assign([TopicPartition(topic, part, offset)])
    out = []
    deadline = time.time() + 30
    while len(out) < count and time.time() < deadline:
        for m in c.consume(count - len(out), 1.0):
            if m.error():
                raise KafkaException(m.error())
            out.append(m)
    c.unassign()
    return out


def expected_by_time(tsf, parts, part, t):
    """(offset, timestamp) of the first record in partition order with ts >= t."""
    n = 0
    for i in range(part, N, parts):
        if tsf(i) >= t:
            return n, tsf(i)
        n += 1
    return -1, -1


def check_all(where):
    c = Consumer({"bootstrap.servers": compat.BOOTSTRAP, "group.id": "compat-016",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    kc = KafkaConsumer(bootstrap_servers=compat.BOOTSTRAP, group_id=None,
                       enable_auto_commit=False)
    per = N // 2
    for part in (0, 1):
        for start in (0, 1, per // 3, per // 2 + 1, per - 1):
            msgs = read_from(c, "bytime", part, start, min(25, per - start))
            check(len(msgs) == min(25, per - start), "%s: bytime-%d from %d: %d records",
                  where, part, start, len(msgs))
            for n, m in enumerate(msgs):
                i = (start + n) * 2 + part
                check(m.offset() == start + n and m.key() == b"%d" % i,
                      "%s: bytime-%d from %d: record %d is %r at %d", where, part, start, n,
                      m.key(), m.offset())
    probes = [T0 - 1, T0, T0 + 5, T0 + 10 * (N // 3) + 3, T0 + 10 * (N - 1),
              T0 + 10 * N + 1]
    for topic, parts, tsf in (("bytime", 2, ts_sorted), ("jumbled", 1, ts_jumbled)):
        for t in probes + [T0 + 333, T0 + 10 * 99 + 50]:
            for part in range(parts):
                want_off, want_ts = expected_by_time(tsf, parts, part, t)
                r = c.offsets_for_times([TopicPartition(topic, part, t)], timeout=10)[0]
                check(r.error is None, "offsets_for_times error %s", r.error)
                check(r.offset == want_off, "%s: %s-%d at %d: offset %d, want %d", where,
                      topic, part, t, r.offset, want_off)
                kr = kc.offsets_for_times({KTP(topic, part): t})[KTP(topic, part)]
                if want_off < 0:
                    check(kr is None, "%s: kafka-python %s-%d at %d: %r, want None", where,
                          topic, part, t, kr)
                else:
                    check(kr is not None and kr.offset == want_off and kr.timestamp == want_ts,
                          "%s: kafka-python %s-%d at %d: %r, want (%d, %d)", where, topic,
                          part, t, kr, want_off, want_ts)
                if 0 <= want_off < per - 3:
                    m = read_from(c, topic, part, r.offset, 1)[0]
                    check(m.timestamp()[1] == want_ts, "%s: record at %d has time %d", where,
                          r.offset, m.timestamp()[1])
    c.close()
    kc.close()
    log("%s: reads by offset and by time are right", where)


check_all("tail")
time.sleep(1.0)
check_all("objects")
check(compat.broker_alive(), "broker died")
