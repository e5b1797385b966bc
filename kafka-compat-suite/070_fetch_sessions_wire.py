#!/usr/bin/python3
# Proves: incremental fetch sessions (KIP-227) behave exactly as Kafka's
# broker serves them, at Fetch v7, v11 (classic) and v12 (flexible), on
# data produced by confluent-kafka (librdkafka 2.0.2). For each version,
# byte-level requests (lib/kfsession.py) walk one session:
#  - session_id 0 / epoch 0 gets a full answer and a new non-zero id;
#  - epoch 1 moving every partition to its end gets no partitions at all;
#  - epoch 2 listing nothing gets only the partition that received records
#    since (exact offsets and values), not the unchanged ones;
#  - epoch 3 waits (max_wait 20 s) and is answered when a record reaches a
#    partition it did not list, with that partition only;
#  - epoch 4 forgets a partition that still has records to read: not
#    answered; epoch 5 adds it back: answered once without records (never
#    sent before), together with nothing else;
#  - the same epoch again: INVALID_FETCH_SESSION_EPOCH (71), session id 0,
#    no topics, and the session still takes the right epoch afterwards;
#  - errors are always answered: a partition that does not exist is in
#    every answer with UNKNOWN_TOPIC_OR_PARTITION until it is forgotten;
#  - an unknown id, and session id 0 with epoch > 0:
#    FETCH_SESSION_ID_NOT_FOUND (70);
#  - sessions belong to no connection, and by-name sessions may switch
#    between v7-v12;
#  - epoch 0 naming the session closes it and makes another; epoch -1
#    naming one closes it and answers with session id 0; forgetting the
#    last partition closes it (answer with session id 0).
# Finally a librdkafka consumer reads every partition from the beginning
# (sessionless, epoch -1) and gets every record once, in order.
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
import kfsession as ks  # noqa: E402
from compat import check, log  # noqa: E402

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

PARTS = 3
PMAX = 1 << 20

producer = Producer({"bootstrap.servers": compat.BOOTSTRAP, "acks": "all", "linger.ms": 0,
                     "enable.idempotence": False, "compression.type": "none"})
values = {}     # (topic, partition) -> [value at offset 0, 1, ...]


def produce(topic, part, n):
    """n records to one partition, each value naming its offset; returns
    the offsets librdkafka reports."""
    vs = values.setdefault((topic, part), [])
    got, errors = [], []

    def done(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            got.append(msg.offset())

    for _ in range(n):
        v = ("%s/%d@%d" % (topic, part, len(vs))).encode()
        vs.append(v)
        producer.produce(topic, value=v, partition=part, on_delivery=done)
    check(producer.flush(30) == 0, "records still queued after 30 s")
    check(not errors, "delivery errors: %s", errors)
    first = len(vs) - n
    check(sorted(got) == list(range(first, first + n)),
          "%s-%d: offsets %s, expected %d..%d", topic, part, sorted(got), first, first + n - 1)
    return got


def hw(topic, part):
    return len(values.get((topic, part), []))


def view(resp):
    """The answer as [(topic, partition, error, hw, [(offset, value)])]."""
    out = []
    for (t, p), d in resp["parts"]:
        recs = [(o, v) for o, _, v in ks.records_of(d["records"])]
        out.append((t, p, d["error_code"], d["high_watermark"], recs))
    return out


def expect(resp, error, sid, parts, what):
    """parts: [(topic, partition, error, hw, first_offset or None)]; records
    from first_offset to hw must be there, exactly, when it is not None."""
    check(resp["error_code"] == error, "%s: error_code %d, expected %d", what,
          resp["error_code"], error)
    check(resp["session_id"] == sid, "%s: session_id %d, expected %d", what,
          resp["session_id"], sid)
    want = []
    for t, p, err, h, first in parts:
        recs = [] if first is None else [(o, values[(t, p)][o]) for o in range(first, h)]
        want.append((t, p, err, h, recs))
    got = view(resp)
    check(got == want, "%s:\n  got      %s\n  expected %s", what, got, want)


def walk(ver):
    topic = "s070-v%d" % ver
    admin = AdminClient({"bootstrap.servers": compat.BOOTSTRAP})
    for f in admin.create_topics([NewTopic(topic, PARTS, 1)], request_timeout=15).values():
        f.result()
    for p in range(PARTS):
        produce(topic, p, 4 + p)
    c = ks.Conn(compat.BOOTSTRAP)
    c2 = ks.Conn(compat.BOOTSTRAP)
    T = topic

    r = c.fetch(ver, 0, ks.INITIAL_EPOCH, partitions=[(T, p, 0, PMAX) for p in range(PARTS)])
    sid = r["session_id"]
    check(sid > 0, "v%d: a full fetch with epoch 0 got session id %d", ver, sid)
    expect(r, 0, sid, [(T, p, 0, hw(T, p), 0) for p in range(PARTS)], "full, epoch 0")

    r = c.fetch(ver, sid, 1, partitions=[(T, p, hw(T, p), PMAX) for p in range(PARTS)])
    expect(r, 0, sid, [], "epoch 1, nothing new")

    start = hw(T, 1)
    produce(T, 1, 3)
    r = c.fetch(ver, sid, 2)
    expect(r, 0, sid, [(T, 1, 0, hw(T, 1), start)], "epoch 2, new records on partition 1")

    # a long poll on the session, woken by a partition it does not list
    sent = c.send_fetch(ver, sid, 3, partitions=[(T, 1, hw(T, 1), PMAX)], max_wait_ms=20000)
    time.sleep(0.2)
    start2 = hw(T, 2)
    produce(T, 2, 1)    # one record: the first durable one ends the wait
    r = c.recv_fetch(sent)
    expect(r, 0, sid, [(T, 2, 0, hw(T, 2), start2)], "epoch 3, woken by partition 2")

    # partition 2 is forgotten while it still has records at its offset
    start0 = hw(T, 0)
    produce(T, 0, 1)
    produce(T, 2, 1)
    r = c.fetch(ver, sid, 4, forgotten=[(T, 2)])
    expect(r, 0, sid, [(T, 0, 0, hw(T, 0), start0)], "epoch 4, partition 2 forgotten")

    # added back at its end, partition 0 moved on: only partition 2, once
    r = c.fetch(ver, sid, 5, partitions=[(T, 2, hw(T, 2), PMAX), (T, 0, hw(T, 0), PMAX)])
    expect(r, 0, sid, [(T, 2, 0, hw(T, 2), None)], "epoch 5, partition 2 added back")

    # a wrong epoch changes nothing
    r = c.fetch(ver, sid, 5)
    expect(r, ks.INVALID_FETCH_SESSION_EPOCH, 0, [], "epoch 5 again")
    r = c.fetch(ver, sid, 4)
    expect(r, ks.INVALID_FETCH_SESSION_EPOCH, 0, [], "epoch 4 again")
    r = c.fetch(ver, sid, 7)
    expect(r, ks.INVALID_FETCH_SESSION_EPOCH, 0, [], "epoch 7, too far")
    r = c.fetch(ver, sid, 6)
    expect(r, 0, sid, [], "epoch 6")

    # errors are always answered, and at once
    r = c.fetch(ver, sid, 7, partitions=[(T, 9, 0, PMAX)], max_wait_ms=20000)
    expect(r, 0, sid, [(T, 9, ks.UNKNOWN_TOPIC_OR_PARTITION, -1, None)], "epoch 7, partition 9")
    r = c.fetch(ver, sid, 8, max_wait_ms=20000)
    expect(r, 0, sid, [(T, 9, ks.UNKNOWN_TOPIC_OR_PARTITION, -1, None)], "epoch 8, still 9")
    r = c.fetch(ver, sid, 9, forgotten=[(T, 9)])
    expect(r, 0, sid, [], "epoch 9, 9 forgotten")

    # ids nobody gave out
    other = sid - 1 if sid > 1 else sid + 1
    r = c.fetch(ver, other, 10)
    expect(r, ks.FETCH_SESSION_ID_NOT_FOUND, 0, [], "an unknown session id")
    r = c.fetch(ver, 0, 10, partitions=[(T, 0, 0, PMAX)])
    expect(r, ks.FETCH_SESSION_ID_NOT_FOUND, 0, [], "session id 0 with epoch 10")

    # any connection may continue it, at any by-name version
    start1 = hw(T, 1)
    produce(T, 1, 1)
    other_ver = 11 if ver == 12 else 12
    r = c2.fetch(other_ver, sid, 10)
    expect(r, 0, sid, [(T, 1, 0, hw(T, 1), start1)], "epoch 10 on another connection, v%d"
           % other_ver)

    # a full fetch naming the session closes it and makes a new one
    r = c.fetch(ver, sid, ks.INITIAL_EPOCH, partitions=[(T, 1, hw(T, 1), PMAX)])
    sid2 = r["session_id"]
    check(sid2 > 0 and sid2 != sid, "v%d: new session %d after closing %d", ver, sid2, sid)
    expect(r, 0, sid2, [(T, 1, 0, hw(T, 1), None)], "epoch 0 naming the session")
    r = c.fetch(ver, sid, 11)
    expect(r, ks.FETCH_SESSION_ID_NOT_FOUND, 0, [], "the closed session")

    # epoch -1 naming it: closed, answered sessionless
    r = c.fetch(ver, sid2, ks.FINAL_EPOCH, partitions=[(T, 0, hw(T, 0) - 1, PMAX)])
    expect(r, 0, 0, [(T, 0, 0, hw(T, 0), hw(T, 0) - 1)], "epoch -1 naming a session")
    r = c.fetch(ver, sid2, 1)
    expect(r, ks.FETCH_SESSION_ID_NOT_FOUND, 0, [], "the session closed by epoch -1")

    # forgetting the last partition closes the session
    r = c.fetch(ver, 0, ks.INITIAL_EPOCH, partitions=[(T, 2, hw(T, 2), PMAX)])
    sid3 = r["session_id"]
    check(sid3 > 0, "v%d: third session", ver)
    r = c.fetch(ver, sid3, 1, forgotten=[(T, 2)])
    expect(r, 0, 0, [], "the last partition forgotten")
    r = c.fetch(ver, sid3, 2)
    expect(r, ks.FETCH_SESSION_ID_NOT_FOUND, 0, [], "the emptied session")
    c.close()
    c2.close()
    log("v%d: session walk as Kafka answers it", ver)
    return topic


topics = [walk(v) for v in ks.VERSIONS]

# librdkafka fetches sessionless (epoch -1): everything, once, in order
cons = Consumer({"bootstrap.servers": compat.BOOTSTRAP, "group.id": "compat-070",
                 "enable.auto.commit": False, "enable.partition.eof": True})
cons.assign([TopicPartition(t, p, 0) for t in topics for p in range(PARTS)])
seen = {}
eof = set()
deadline = time.time() + 60
while len(eof) < len(topics) * PARTS and time.time() < deadline:
    m = cons.poll(1.0)
    if m is None:
        continue
    key = (m.topic(), m.partition())
    if m.error():
        check(m.error().code() == -191, "consumer error: %s", m.error())  # _PARTITION_EOF
        if len(seen.get(key, [])) == hw(*key):
            eof.add(key)
        continue
    seen.setdefault(key, []).append((m.offset(), m.value()))
cons.close()
for key, vs in values.items():
    check(seen.get(key) == list(enumerate(vs)), "%s-%d: librdkafka read %s", key[0], key[1],
          seen.get(key))
check(compat.broker_alive(), "broker died")
log("librdkafka read all %d records once, in order", sum(len(v) for v in values.values()))
