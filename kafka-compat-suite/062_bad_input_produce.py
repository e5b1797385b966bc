#!/usr/bin/python3
# compat-timeout: 240
# Proves: bad Produce, Fetch and ListOffsets input gets exactly Kafka's
# error code for each partition, stores nothing, takes no offset, and does
# not disturb anybody else:
#  - Produce v3, v7 and v8 (byte-level, lib/kprobe.py) on one connection,
#    with a good partition next to the bad one where it matters: corrupt
#    CRC (payload byte or CRC field) -> CORRUPT_MESSAGE (2); batch length
#    below 14 -> CORRUPT_MESSAGE; truncated batch, null records ->
#    INVALID_RECORD (87); magic 3 -> CORRUPT_MESSAGE, magic 0/1 ->
#    INVALID_RECORD; 12 + batchLength one byte above the topic's
#    max.message.bytes (10000) and far above it -> MESSAGE_TOO_LARGE (10),
#    exactly at it -> accepted; unknown topic, unknown partition,
#    partition -1 -> UNKNOWN_TOPIC_OR_PARTITION (3); acks 2, -2, 5 ->
#    INVALID_REQUIRED_ACKS (21) for every partition and nothing written;
#    codec 5 -> UNSUPPORTED_COMPRESSION_TYPE (76), zstd on Produce v3 ->
#    76; a complete batch followed by a partial one -> accepted, only the
#    complete batch stored (Kafka trims the rest).
#  - acks=0 with a corrupt batch: no response and the connection is closed
#    (as Kafka does, so the producer notices); acks=0 with a good batch:
#    stored, no response.
#  - a frame whose size prefix is above socket.request.max.bytes: closed.
#  - Fetch v4 and v11 at offsets -1, -1000 and far past the end ->
#    OFFSET_OUT_OF_RANGE (1) with no records; partition -1 and unknown
#    topic -> 3. ListOffsets v1/v4: partition -1 and unknown topic -> 3;
#    timestamp -100 (not a special value) -> the first record at or after
#    it, i.e. offset 0 with its timestamp, as Kafka's search answers.
#  - the connection stays usable after every per-partition error; the
#    offsets the good partitions got are contiguous (failures take none);
#    at the end the stored batches are exactly the accepted ones (raw
#    fetch, CRCs checked) and a confluent-kafka consumer reads exactly the
#    accepted records.
#  - meanwhile a confluent-kafka producer (acks=all) and consumer on other
#    connections keep working: after every case both must make progress,
#    and at the end every record it was acknowledged is read at its offset.
#  - the broker is alive afterwards and its log has no sanitizer report.
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
import kprobe  # noqa: E402
from compat import check, log  # noqa: E402

BAD = "bad062"
GOOD = "good062"
MAX_MSG = 10000
T0 = 1700000000000
T = compat.SCENARIO_TMP


def write_json(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f)
    os.rename(path + ".tmp", path)


def read_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


# ------------------------------------------------ the well-behaved client

def run_good():
    """Produces to GOOD at a steady pace with acks=all and reads it back
    with assign(); progress in good.json; on "stop" (stdin) checks that
    every acknowledged record was read at its offset."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    acks, errors = [], []
    p = Producer({"bootstrap.servers": compat.BOOTSTRAP, "acks": "all", "linger.ms": 2,
                  "enable.idempotence": False})
    c = Consumer({"bootstrap.servers": compat.BOOTSTRAP, "group.id": "compat-062",
                  "enable.auto.commit": False, "auto.offset.reset": "error",
                  "fetch.wait.max.ms": 50})
    c.assign([TopicPartition(GOOD, q, 0) for q in range(2)])
    got = {0: [], 1: []}
    problems = []
    i, stopping, t_stop, last = 0, False, None, 0

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            acks.append((msg.partition(), msg.offset(), msg.value()))

    while True:
        if not stopping and select.select([sys.stdin], [], [], 0)[0]:
            sys.stdin.readline()
            stopping, t_stop = True, time.time()
            p.flush(30)
        if not stopping:
            p.produce(GOOD, value=b"good-%d" % i, partition=i % 2, on_delivery=on_delivery)
            i += 1
            p.poll(0.002)
        for m in c.consume(500, 0.01):
            if m.error():
                problems.append("consumer: %s" % m.error())
                continue
            if m.offset() != len(got[m.partition()]):
                problems.append("partition %d: offset %d after %d" % (
                    m.partition(), m.offset(), len(got[m.partition()])))
            got[m.partition()].append(m.value())
        if time.time() - last > 0.05:
            write_json(os.path.join(T, "good.json"),
                       {"acked": len(acks), "consumed": sum(len(v) for v in got.values()),
                        "errors": len(errors), "problems": len(problems)})
            last = time.time()
        if stopping:
            need = {0: 0, 1: 0}
            for q, o, _ in acks:
                need[q] = max(need[q], o + 1)
            if all(len(got[q]) >= need[q] for q in (0, 1)) or time.time() - t_stop > 30:
                break
    c.close()
    for q, o, v in acks:
        if o >= len(got[q]) or got[q][o] != v:
            problems.append("acknowledged %r at %d/%d not read there" % (v, q, o))
            break
    problems += ["delivery error: %s" % e for e in errors[:5]]
    print("good client: %d produced, %d acknowledged, %d read, problems: %s"
          % (i, len(acks), sum(len(v) for v in got.values()), problems[:5]), flush=True)
    return 1 if problems or not acks else 0


# ----------------------------------------------------------- the probes

def rec(i, size=0):
    return (b"key-%d" % i, b"value-%d-" % i + b"z" * size, [("n", b"%d" % i)], T0 + i)


def batch(recs, **kw):
    return kprobe.record_batch(recs, base_ts=recs[0][3], **kw)


def flip(b, pos):
    b = bytearray(b)
    b[pos] ^= 0x40
    return bytes(b)


def set_magic(b, magic):
    b = bytearray(b)
    b[16] = magic
    return bytes(b)


def main():
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": compat.BOOTSTRAP})
    for f in admin.create_topics([
            NewTopic(BAD, 3, 1, config={"max.message.bytes": str(MAX_MSG), "retention.ms": "-1"}),
            NewTopic(GOOD, 2, 1, config={"retention.ms": "-1"})], request_timeout=15).values():
        f.result()
    del admin

    good = subprocess.Popen([sys.executable, "-u", os.path.abspath(__file__), "good"],
                            stdin=subprocess.PIPE, stdout=open(os.path.join(T, "good.out"), "w"),
                            stderr=subprocess.STDOUT, text=True)

    def progress(need=30, limit=15):
        """The other client keeps being served: acks and reads advance."""
        base = read_json(os.path.join(T, "good.json"), {"acked": 0, "consumed": 0})
        t0 = time.time()
        while time.time() - t0 < limit:
            now = read_json(os.path.join(T, "good.json"), base)
            if now["acked"] - base["acked"] >= need and now["consumed"] - base["consumed"] >= need:
                return
            check(good.poll() is None, "the well-behaved client exited:\n%s",
                  open(os.path.join(T, "good.out")).read()[-2000:])
            time.sleep(0.02)
        raise AssertionError("the well-behaved client made no progress for %d s (%r -> %r)"
                             % (limit, base, now))

    progress(100, 30)
    conn = kprobe.Conn(compat.BOOTSTRAP)
    stored = {q: [] for q in range(3)}     # records that must be in BAD, per partition
    n = [0]
    cases = [0]

    def fresh(k=2, size=0):
        out = [rec(n[0] + j, size) for j in range(k)]
        n[0] += k
        return out

    def produce(version, what, parts, acks=-1):
        """parts: [(topic, partition, records_bytes, expected_code, recs_if_ok)]."""
        topics = {}
        for t, q, b, _, _ in parts:
            topics.setdefault(t, []).append((q, b))
        resp = conn.produce(version, list(topics.items()), acks=acks)
        keys = {(t, q) for t, q, _, _, _ in parts}
        got = {k for k in resp if isinstance(k, tuple)}
        check(got == keys, "%s: answered for %r, asked %r", what, sorted(got), sorted(keys))
        for t, q, _, code, recs in parts:
            r = resp[(t, q)]
            check(r["error_code"] == code, "%s (Produce v%d, %s-%d): error %d, want %d (%s)",
                  what, version, t, q, r["error_code"], code, r.get("error_message"))
            if code == 0:
                check(r["base_offset"] == len(stored[q]), "%s: base offset %d, want %d",
                      what, r["base_offset"], len(stored[q]))
                stored[q].extend(recs)
            else:
                check(r["base_offset"] == -1, "%s: base offset %d on an error", what,
                      r["base_offset"])
        progress()
        cases[0] += 1
        log("ok  %-58s v%d -> %s", what, version,
            ",".join("%d" % c for _, _, _, c, _ in parts))

    # baseline
    r = fresh()
    produce(3, "good batch", [(BAD, 0, batch(r), 0, r)])

    for v in (3, 7, 8):
        r, g = fresh(), fresh()
        b = batch(r)
        produce(v, "corrupt CRC (a payload byte flipped)",
                [(BAD, 1, flip(b, len(b) - 3), kprobe.CORRUPT_MESSAGE, None),
                 (BAD, 0, batch(g), 0, g)])
        produce(v, "corrupt CRC (the CRC field flipped)",
                [(BAD, 1, flip(batch(fresh()), 18), kprobe.CORRUPT_MESSAGE, None)])
        b = batch(fresh())
        produce(v, "truncated batch (5 bytes missing)",
                [(BAD, 2, b[:-5], kprobe.INVALID_RECORD, None)])
        produce(v, "truncated batch (30 bytes: header only)",
                [(BAD, 2, b[:30], kprobe.INVALID_RECORD, None)])
        produce(v, "null records", [(BAD, 2, None, kprobe.INVALID_RECORD, None)])
        bad_len = bytearray(b)
        bad_len[8:12] = struct.pack(">i", 5)
        produce(v, "batch length 5", [(BAD, 2, bytes(bad_len), kprobe.CORRUPT_MESSAGE, None)])
        produce(v, "wrong magic 3", [(BAD, 1, set_magic(b, 3), kprobe.CORRUPT_MESSAGE, None)])
        produce(v, "wrong magic 1", [(BAD, 1, set_magic(b, 1), kprobe.INVALID_RECORD, None)])
        produce(v, "wrong magic 0", [(BAD, 1, set_magic(b, 0), kprobe.INVALID_RECORD, None)])
        r = fresh(1)
        whole = batch(r)
        produce(v, "complete batch + partial batch (trimmed)",
                [(BAD, 2, whole + batch(fresh())[:40], 0, r)])

    # sizes against max.message.bytes = 10000 (12 + batchLength)
    for v in (3, 7):
        at, value = kprobe.batch_of_size(MAX_MSG, base_ts=T0)
        produce(v, "batch of exactly max.message.bytes", [(BAD, 0, at, 0, [(b"k", value, [], T0)])])
        produce(v, "batch 1 byte over max.message.bytes", [
            (BAD, 0, kprobe.batch_of_size(MAX_MSG + 1, base_ts=T0)[0], kprobe.MESSAGE_TOO_LARGE,
             None)])
        produce(v, "batch of 300 KB (max.message.bytes 10000)", [
            (BAD, 0, kprobe.batch_of_size(300000, base_ts=T0)[0], kprobe.MESSAGE_TOO_LARGE,
             None)])

    for v in (3, 8):
        g = fresh()
        produce(v, "unknown topic, unknown partitions, next to a good one", [
            ("no-such-topic-062", 0, batch(fresh()), kprobe.UNKNOWN_TOPIC_OR_PARTITION, None),
            (BAD, 7, batch(fresh()), kprobe.UNKNOWN_TOPIC_OR_PARTITION, None),
            (BAD, -1, batch(fresh()), kprobe.UNKNOWN_TOPIC_OR_PARTITION, None),
            (BAD, 1, batch(g), 0, g)])
        for acks in (2, -2, 5):
            produce(v, "invalid acks %d (valid batches)" % acks, [
                (BAD, 0, batch(fresh()), kprobe.INVALID_REQUIRED_ACKS, None),
                (BAD, 1, batch(fresh()), kprobe.INVALID_REQUIRED_ACKS, None)], acks=acks)
        produce(v, "codec 5", [
            (BAD, 2, batch(fresh(), attributes=5), kprobe.UNSUPPORTED_COMPRESSION_TYPE, None)])
    produce(3, "zstd on Produce v3", [
        (BAD, 2, batch(fresh(), attributes=4), kprobe.UNSUPPORTED_COMPRESSION_TYPE, None)])

    # acks=0: a good batch is stored without an answer; a bad one closes
    r = fresh()
    conn.produce(7, [(BAD, [(0, batch(r))])], acks=0)
    stored[0].extend(r)
    c0 = kprobe.Conn(compat.BOOTSTRAP)
    c0.produce(7, [(BAD, [(1, flip(batch(fresh()), 70))])], acks=0)
    c0.sock.settimeout(10)
    try:
        data = c0.sock.recv(100)
    except (ConnectionResetError, socket.timeout) as e:
        data = e
    check(data == b"" or isinstance(data, ConnectionResetError),
          "acks=0 with a corrupt batch: the connection was not closed (got %r)", data)
    c0.close()
    progress()
    log("ok  acks=0: good batch stored silently, corrupt batch closes the connection")

    # a frame larger than socket.request.max.bytes
    s = socket.create_connection(("127.0.0.1", compat.PORT), timeout=10)
    s.sendall(struct.pack(">i", 0x7FFFFFF0) + b"\x00\x00\x00\x03" + b"x" * 100)
    try:
        data = s.recv(100)
    except (ConnectionResetError, socket.timeout) as e:
        data = e
    check(data == b"" or isinstance(data, ConnectionResetError),
          "an oversized frame was not refused (got %r)", data)
    s.close()
    progress()
    log("ok  a 2 GB frame size closes the connection")

    # Fetch and ListOffsets with offsets that cannot exist
    for v in (4, 11):
        resp = conn.fetch(v, [(BAD, [(0, -1, 1 << 20), (1, -1000, 1 << 20),
                                     (2, 1 << 40, 1 << 20), (-1, 0, 1 << 20)]),
                              ("no-such-topic-062", [(0, 0, 1 << 20)])])
        for key, code in (((BAD, 0), kprobe.OFFSET_OUT_OF_RANGE),
                          ((BAD, 1), kprobe.OFFSET_OUT_OF_RANGE),
                          ((BAD, 2), kprobe.OFFSET_OUT_OF_RANGE),
                          ((BAD, -1), kprobe.UNKNOWN_TOPIC_OR_PARTITION),
                          (("no-such-topic-062", 0), kprobe.UNKNOWN_TOPIC_OR_PARTITION)):
            p = resp[key]
            check(p["error_code"] == code, "Fetch v%d %r: error %d, want %d", v, key,
                  p["error_code"], code)
            check(not p["records"], "Fetch v%d %r: records on an error", v, key)
        progress()
        log("ok  Fetch v%d at offsets -1, -1000, 2^40, partition -1, unknown topic", v)
    for v in (1, 4):
        resp = conn.list_offsets(v, [(BAD, [(-1, -1), (0, -100)]),
                                     ("no-such-topic-062", [(0, -1)])])
        check(resp[(BAD, -1)][0] == kprobe.UNKNOWN_TOPIC_OR_PARTITION,
              "ListOffsets v%d partition -1: %r", v, resp[(BAD, -1)])
        check(resp[("no-such-topic-062", 0)][0] == kprobe.UNKNOWN_TOPIC_OR_PARTITION,
              "ListOffsets v%d unknown topic: %r", v, resp[("no-such-topic-062", 0)])
        first_ts = stored[0][0][3]
        check(resp[(BAD, 0)][:3] == (0, first_ts, 0),
              "ListOffsets v%d timestamp -100: %r, want offset 0 at %d", v, resp[(BAD, 0)],
              first_ts)
        progress()
        log("ok  ListOffsets v%d: partition -1, unknown topic, timestamp -100", v)

    # the connection still works and offsets continue where they should
    r = fresh()
    produce(8, "good batch after everything", [(BAD, 0, batch(r), 0, r)])
    for q in range(3):
        hw = conn.list_offsets(4, [(BAD, [(q, -1)])])[(BAD, q)]
        check(hw[0] == 0 and hw[2] == len(stored[q]), "partition %d: high watermark %r, "
              "%d records accepted", q, hw, len(stored[q]))
        bs, _ = kprobe.walk_partition(conn, BAD, q, check_crc=True)
        check(sum(b.count for b in bs) == len(stored[q]), "partition %d: %d records stored",
              q, sum(b.count for b in bs))
    conn.close()

    c = Consumer({"bootstrap.servers": compat.BOOTSTRAP, "group.id": "compat-062-check",
                  "enable.auto.commit": False, "check.crcs": True, "fetch.wait.max.ms": 50})
    c.assign([TopicPartition(BAD, q, 0) for q in range(3)])
    got = {q: [] for q in range(3)}
    deadline = time.time() + 30
    while sum(map(len, got.values())) < sum(map(len, stored.values())) and time.time() < deadline:
        for m in c.consume(100, 0.5):
            if m.error():
                raise KafkaException(m.error())
            got[m.partition()].append(m)
    c.close()
    for q in range(3):
        check(len(got[q]) == len(stored[q]), "partition %d: read %d records, %d accepted", q,
              len(got[q]), len(stored[q]))
        for o, (m, (k, v, h, ts)) in enumerate(zip(got[q], stored[q])):
            check(m.offset() == o and m.key() == k and m.value() == v and
                  (m.headers() or []) == list(h) and m.timestamp()[1] == ts,
                  "partition %d offset %d: read %r, accepted %r", q, o,
                  (m.offset(), m.key(), m.value()[:30]), (k, v[:30]))
    log("the bad topic holds exactly the %d accepted records", sum(map(len, stored.values())))

    good.stdin.write("stop\n")
    good.stdin.flush()
    good.wait(60)
    print(open(os.path.join(T, "good.out")).read().strip())
    check(good.returncode == 0, "the well-behaved client failed")
    check(compat.broker_alive(), "the broker died")
    reports = compat.sanitizer_reports()
    check(not reports, "sanitizer reports in the broker log:\n%s", "\n".join(reports[:10]))
    log("OK 062: %d bad-input cases answered exactly, the other client never disturbed",
        cases[0] + 6)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "good":
        sys.exit(run_good())
    main()
