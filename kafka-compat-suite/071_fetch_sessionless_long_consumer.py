#!/usr/bin/python3
# Proves: serving fetch sessions changed nothing for clients that never
# ask for one. A confluent-kafka (librdkafka 2.0.2) consumer in a group
# reads a 6-partition topic while a confluent-kafka producer keeps writing
# to it (acks=all, bursts with pauses, so the consumer keeps catching up
# and waiting in long polls); it must get every acknowledged record
# exactly once, at the offset its delivery report gave, in the producer's
# order per partition, with offsets 0..n-1 and nothing else. A kafka-python
# 2.0.2 consumer (Fetch v4, which has no sessions) then reads everything
# again the same way. The broker's debug log shows librdkafka's Fetch v11
# and kafka-python's v4, and that no session was ever created: librdkafka
# sends session epoch -1 (sessionless).
# COMPAT_071_RECORDS sets the record count (default 30000).
# compat-timeout: 240
# compat-override: streamhouse.log.level=debug
# compat-override: group.initial.rebalance.delay.ms=0
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
from compat import check, log  # noqa: E402

from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

N = int(os.environ.get("COMPAT_071_RECORDS", "30000"))
TOPIC = "s071"
PARTS = 6
BURST = 500

admin = AdminClient({"bootstrap.servers": compat.BOOTSTRAP})
for f in admin.create_topics([NewTopic(TOPIC, PARTS, 1)], request_timeout=15).values():
    f.result()

acked = {}          # (partition, offset) -> value
errors = []
produced_all = threading.Event()


def produce():
    p = Producer({"bootstrap.servers": compat.BOOTSTRAP, "acks": "all", "linger.ms": 2,
                  "enable.idempotence": False})

    def done(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked[(msg.partition(), msg.offset())] = msg.value()

    try:
        for start in range(0, N, BURST):
            for i in range(start, min(N, start + BURST)):
                v = b"rec-%d" % i
                while True:
                    try:
                        p.produce(TOPIC, value=v, key=b"%d" % i, partition=i % PARTS,
                                  on_delivery=done)
                        break
                    except BufferError:
                        p.poll(0.05)
            p.poll(0)
            # a pause now and then: the consumer drains and parks on its
            # long polls, then is woken by the next burst
            if (start // BURST) % 2 == 1:
                p.flush(30)
                time.sleep(0.3)
        check(p.flush(60) == 0, "records still queued after 60 s")
    except Exception as e:  # reported by the main thread
        errors.append(repr(e))
    finally:
        produced_all.set()


def check_partitions(got, who):
    """got: {partition: [(offset, value)]} in consumption order."""
    total = 0
    for part in range(PARTS):
        recs = got.get(part, [])
        offs = [o for o, _ in recs]
        check(offs == list(range(len(offs))), "%s: partition %d offsets are not 0..n-1 "
              "exactly once in order (first problem near %s)", who, part,
              next((k for k, o in enumerate(offs) if o != k), None))
        n_acked = sum(1 for (p, _) in acked if p == part)
        check(len(recs) == n_acked, "%s: partition %d: %d records, %d acknowledged", who, part,
              len(recs), n_acked)
        for o, v in recs:
            check(acked.get((part, o)) == v, "%s: partition %d offset %d holds %r, the "
                  "producer was told %r", who, part, o, v, acked.get((part, o)))
        seqs = [int(v.split(b"-")[1]) for _, v in recs]
        check(seqs == sorted(seqs), "%s: partition %d out of the producer's order", who, part)
        total += len(recs)
    check(total == N, "%s: %d records, %d produced", who, total, N)


producer = threading.Thread(target=produce, daemon=True)
producer.start()

cons = Consumer({"bootstrap.servers": compat.BOOTSTRAP, "group.id": "compat-071",
                 "auto.offset.reset": "earliest", "enable.auto.commit": False,
                 "fetch.wait.max.ms": 200, "session.timeout.ms": 10000})
cons.subscribe([TOPIC])
got = {}
count = 0
acked_first = None  # records acknowledged when the first one was consumed
deadline = time.time() + 180
while time.time() < deadline:
    m = cons.poll(0.5)
    if m is None:
        if produced_all.is_set() and count >= N:
            break
        continue
    check(m.error() is None, "consumer error: %s", m.error())
    if acked_first is None:
        acked_first = len(acked)
    got.setdefault(m.partition(), []).append((m.offset(), m.value()))
    count += 1
    if produced_all.is_set() and count >= N:
        break
cons.close()
producer.join(60)
check(not errors, "producer errors: %s", errors[:5])
check(len(acked) == N, "%d of %d records acknowledged", len(acked), N)
check_partitions(got, "librdkafka")
check(acked_first is not None and acked_first < N, "the consumer did not start reading "
      "before the producer finished (%s of %d acknowledged by then)", acked_first, N)
log("librdkafka consumed %d records exactly once, in order, starting when %d were "
    "acknowledged", count, acked_first)

from kafka import KafkaConsumer, TopicPartition  # noqa: E402

kc = KafkaConsumer(bootstrap_servers=compat.BOOTSTRAP, enable_auto_commit=False, group_id=None,
                   consumer_timeout_ms=5000, fetch_max_wait_ms=100)
tps = [TopicPartition(TOPIC, p) for p in range(PARTS)]
kc.assign(tps)
kc.seek_to_beginning()
kgot = {}
kcount = 0
deadline = time.time() + 120
while kcount < N and time.time() < deadline:
    for m in kc:
        kgot.setdefault(m.partition, []).append((m.offset, m.value))
        kcount += 1
        if kcount >= N:
            break
kc.close()
check_partitions(kgot, "kafka-python")
log("kafka-python read the same %d records", kcount)

with open(compat.BROKER_LOG, errors="replace") as f:
    blog = f.read()
check("request Fetch v11 " in blog, "no Fetch v11 request in the broker log")
check("request Fetch v4 " in blog, "no Fetch v4 request in the broker log")
check("created fetch session" not in blog and "incremental fetch session" not in blog,
      "a fetch session was used, but neither client asks for one")
check(compat.broker_alive(), "broker died")
