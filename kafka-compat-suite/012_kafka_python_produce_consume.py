#!/usr/bin/python3
# Proves: kafka-python 2.0.2 produces (Produce v7 by its release guess,
# acks=all, gzip and uncompressed) and consumes (Fetch v4, ListOffsets v1)
# through the broker: every future resolves to the offset the record is
# later read at, the consumer reads everything back in order with the same
# keys, values, headers and timestamps, end_offsets/beginning_offsets are
# the high watermark and 0, and a consumer positioned at the end sees a
# record produced after it started polling (a long poll woken by new data).
# Warnings kafka-python logs about protocol trouble fail the scenario.
# COMPAT_012_RECORDS sets N (default 3000).
import logging
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
from compat import check, log  # noqa: E402

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402

problems = []


class Collect(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.WARNING:
            problems.append(self.format(record))


logging.getLogger("kafka").addHandler(Collect())
logging.getLogger("kafka").setLevel(logging.WARNING)

N = int(os.environ.get("COMPAT_012_RECORDS", "3000"))
TOPIC = "kp-data"
T0 = 1700000000000

admin = KafkaAdminClient(bootstrap_servers=compat.BOOTSTRAP, request_timeout_ms=10000)
r = admin.create_topics([NewTopic(TOPIC, 2, 1)])
check(all(code == 0 for _, code, _ in r.topic_errors), "create_topics: %r", r.topic_errors)
admin.close()

sent = {0: [], 1: []}
for codec in (None, "gzip"):
    p = KafkaProducer(bootstrap_servers=compat.BOOTSTRAP, acks="all", compression_type=codec,
                      linger_ms=5)
    futs = []
    for i in range(N):
        part = i % 2
        key = b"%s-%d" % ((codec or "none").encode(), i)
        value = b"value-%d-" % i + b"z" * (i % 64)
        headers = [("n", b"%d" % i)]
        ts = T0 + i
        futs.append((part, key, value, headers, ts,
                     p.send(TOPIC, key=key, value=value, headers=headers, partition=part,
                            timestamp_ms=ts)))
    p.flush(60)
    for part, key, value, headers, ts, f in futs:
        md = f.get(timeout=30)
        check(md.partition == part, "acknowledged on partition %d, sent to %d", md.partition, part)
        check(md.offset == len(sent[part]), "partition %d: acknowledged offset %d, expected %d",
              part, md.offset, len(sent[part]))
        sent[part].append((key, value, headers, ts))
    p.close()
log("produced %d records (plain and gzip), all acknowledged", 2 * N)

c = KafkaConsumer(bootstrap_servers=compat.BOOTSTRAP, enable_auto_commit=False, group_id=None,
                  consumer_timeout_ms=5000, fetch_max_wait_ms=100)
tps = [TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)]
c.assign(tps)
end = c.end_offsets(tps)
begin = c.beginning_offsets(tps)
for tp in tps:
    check(end[tp] == len(sent[tp.partition]), "%s: end offset %d, want %d", tp, end[tp],
          len(sent[tp.partition]))
    check(begin[tp] == 0, "%s: beginning offset %d", tp, begin[tp])
c.seek_to_beginning()
got = {0: [], 1: []}
deadline = time.time() + 60
while sum(len(v) for v in got.values()) < 2 * N and time.time() < deadline:
    for tp, msgs in c.poll(timeout_ms=1000).items():
        got[tp.partition].extend(msgs)
for part in (0, 1):
    check(len(got[part]) == len(sent[part]), "partition %d: read %d of %d", part,
          len(got[part]), len(sent[part]))
    for n, (m, (key, value, headers, ts)) in enumerate(zip(got[part], sent[part])):
        check(m.offset == n, "partition %d: offset %d at position %d", part, m.offset, n)
        check(m.key == key and m.value == value, "partition %d offset %d differs", part, n)
        check(list(m.headers) == headers, "partition %d offset %d: headers %r", part, n,
              m.headers)
        check(m.timestamp == ts, "partition %d offset %d: timestamp %d", part, n, m.timestamp)
log("read back %d records in order", 2 * N)

# At the end: a long poll must be woken by a new record.
p = KafkaProducer(bootstrap_servers=compat.BOOTSTRAP, acks=1)
before = c.position(tps[0])
t = time.time()
p.send(TOPIC, key=b"late", value=b"late", partition=0).get(timeout=10)
late = []
while not late and time.time() < t + 20:
    late = c.poll(timeout_ms=1000).get(tps[0], [])
check(late and late[0].key == b"late" and late[0].offset == before,
      "the record produced at the end was not consumed")
p.close()
c.close()
check(not problems, "kafka-python logged problems:\n%s", "\n".join(problems[:10]))
check(compat.broker_alive(), "broker died")
