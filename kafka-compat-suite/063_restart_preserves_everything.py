#!/usr/bin/python3
# compat-broker: none
# compat-timeout: 300
# Proves: a clean SIGTERM restart and a SIGKILL restart both preserve
# everything a client can observe, whether the data was already uploaded
# to segment objects or still only in the WAL:
#  - topics (names, partition counts, an empty topic too) and their
#    configuration as DescribeConfigs shows it (values, sources, defaults),
#    including a change made with AlterConfigs just before a SIGKILL;
#  - every record of a CreateTime topic (keys, values, headers, producer
#    timestamps; lz4 and uncompressed batches), of a LogAppendTime topic
#    (the broker's timestamps must not change) and of a
#    streamhouse.durability=object topic, at the offsets the producer was
#    told, read by confluent-kafka (assign from 0) before and after: the
#    same records, offsets and timestamps;
#  - the stored batches byte for byte (raw Fetch v4: base offsets, CRCs,
#    producer fields, lengths), so nothing was rewritten or re-framed;
#  - ListOffsets answers: earliest, latest, max timestamp and several
#    by-time lookups;
#  - a consumer group's committed offsets;
#  - after each restart the log continues at the next offset.
# Where the data lives is checked, not assumed: ListOffsets v9
# LATEST_TIERED (-5) shows what is committed to objects. Before the
# SIGTERM the tails of the WAL topics are in the WAL only; before the
# SIGKILL they are again; at the end everything is uploaded and one more
# restart reads it all back from objects with a cold cache, identical to
# what was read from the WAL tail before.
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import crashkit  # noqa: E402
import kprobe  # noqa: E402

T = os.environ.get("SCENARIO_TMP", "")
T0 = 1700000000000
TOPICS = {   # name: (partitions, configs)
    "keep-a": (4, {"retention.ms": "-1", "max.message.bytes": "200000",
                   "retention.bytes": "1073741824", "segment.bytes": "1048576",
                   "min.insync.replicas": "1"}),
    "keep-logtime": (2, {"retention.ms": "-1", "message.timestamp.type": "LogAppendTime"}),
    "keep-object": (3, {"retention.ms": "-1", "streamhouse.durability": "object"}),
    "keep-empty": (5, {"cleanup.policy": "delete", "retention.ms": "-1"}),
}
WAL_TOPICS = ("keep-a", "keep-logtime")
DATA_TOPICS = ("keep-a", "keep-logtime", "keep-object")
START = time.time()
fail = crashkit.fail


def log(msg, *args):
    print("[%5.1f] %s" % (time.time() - START, msg % args if args else msg), flush=True)


def main():
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    # Uploads every 12 s: long enough that what is produced just before a
    # stop is still in the WAL only when the broker goes down (checked),
    # short enough to wait for when the test wants data in objects.
    broker = crashkit.Broker(os.path.join(T, "b1"), ["streamhouse.upload.interval.ms=12000"])
    broker.start()
    bs = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bs})
    for f in admin.create_topics([NewTopic(n, p, 1, config=c) for n, (p, c) in TOPICS.items()],
                                 request_timeout=15).values():
        f.result()

    acked = {}          # (topic, partition, offset) -> (key, value, headers, ts or None)
    counter = [0]

    def produce(topic, count, codec="none"):
        """count records over the topic's partitions; returns the first
        offset each partition was given."""
        errs, first = [], {}
        p = Producer({"bootstrap.servers": bs, "acks": "all", "linger.ms": 5,
                      "compression.type": codec, "enable.idempotence": False})
        parts = TOPICS[topic][0]
        for _ in range(count):
            i = counter[0]
            counter[0] += 1
            q = i % parts
            key = None if i % 31 == 5 else b"k%d" % i
            value = b"" if i % 37 == 3 else b"%s value %d " % (topic.encode(), i) + bytes(
                [i % 256]) * (i % 300)
            headers = [("i", b"%d" % i), ("t", topic.encode())]
            ts = T0 + i
            rec = (key, value, headers, None if topic == "keep-logtime" else ts)

            def cb(err, msg, rec=rec):
                if err is not None:
                    errs.append(str(err))
                else:
                    acked[(msg.topic(), msg.partition(), msg.offset())] = rec
                    first.setdefault(msg.partition(), msg.offset())
                    first[msg.partition()] = min(first[msg.partition()], msg.offset())
            while True:
                try:
                    p.produce(topic, key=key, value=value, headers=headers, partition=q,
                              timestamp=ts, on_delivery=cb)
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
        left = p.flush(60)
        if left or errs:
            fail("%s: %d records unacknowledged, errors %r", topic, left, errs[:3])
        return first

    def list_offsets(conn, topic, ts):
        parts = TOPICS[topic][0]
        r = conn.list_offsets(9, [(topic, [(q, ts) for q in range(parts)])])
        return [r[(topic, q)] for q in range(parts)]

    def where(conn):
        """{topic: [(high watermark, last tiered offset)]} for the data topics."""
        out = {}
        for t in DATA_TOPICS:
            hw = list_offsets(conn, t, kprobe.TS_LATEST)
            tiered = list_offsets(conn, t, kprobe.TS_LATEST_TIERED)
            out[t] = [(h[2], ti[2]) for h, ti in zip(hw, tiered)]
        return out

    def wal_only_partitions(w):
        return sum(1 for t in WAL_TOPICS for hw, ti in w[t] if hw > 0 and ti < hw - 1)

    def wal_only_now(what):
        """Fail unless some partition's tail is in the WAL only right now."""
        conn = kprobe.Conn(bs)
        w = where(conn)
        conn.close()
        n = wal_only_partitions(w)
        if n == 0:
            fail("no partition had data only in the WAL %s (machine too slow for the 12 s "
                 "upload interval?): %r", what, w)
        log("%s: %d partitions have a tail only in the WAL", what, n)

    def wait_uploaded(limit=40):
        t0 = time.time()
        conn = kprobe.Conn(bs)
        try:
            while time.time() - t0 < limit:
                w = where(conn)
                if all(ti == hw - 1 for t in DATA_TOPICS for hw, ti in w[t] if hw > 0):
                    return w
                time.sleep(0.2)
        finally:
            conn.close()
        fail("data not uploaded within %d s: %r", limit, w)

    def snapshot(label):
        """Everything observable, as comparable values."""
        s = {}
        a = AdminClient({"bootstrap.servers": bs})
        md = a.list_topics(timeout=10)
        s["topics"] = sorted((n, len(t.partitions)) for n, t in md.topics.items()
                             if not n.startswith("__"))
        res = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in TOPICS]
        s["configs"] = {}
        for r, f in a.describe_configs(res, request_timeout=15).items():
            s["configs"][r.name] = sorted((k, e.value, int(e.source), e.is_default,
                                           e.is_read_only) for k, e in f.result().items())
        del a
        conn = kprobe.Conn(bs)
        s["offsets"] = {}
        for t in TOPICS:
            for ts in (kprobe.TS_EARLIEST, kprobe.TS_LATEST, -3, 0, T0 + 10, T0 + 2500,
                       T0 + 10 ** 9):
                s["offsets"][(t, ts)] = [x[:3] for x in list_offsets(conn, t, ts)]
        s["raw"] = {}
        hws = {}
        for t in TOPICS:
            for q in range(TOPICS[t][0]):
                batches, hws[(t, q)] = kprobe.walk_partition(conn, t, q, check_crc=True)
                s["raw"][(t, q)] = hashlib.sha256(b"".join(b.raw for b in batches)).hexdigest()
        s["where"] = where(conn)
        conn.close()
        c = Consumer({"bootstrap.servers": bs, "group.id": "keep-g", "enable.auto.commit": False,
                      "check.crcs": True, "fetch.wait.max.ms": 50})
        tps = [TopicPartition(t, q, 0) for t in TOPICS for q in range(TOPICS[t][0])]
        s["committed"] = sorted((x.topic, x.partition, x.offset)
                                for x in c.committed(tps, timeout=10))
        c.assign(tps)
        recs = {}
        total = sum(hws.values())
        deadline = time.time() + 60
        n = 0
        while n < total and time.time() < deadline:
            for m in c.consume(1000, 0.5):
                if m.error():
                    raise KafkaException(m.error())
                recs[(m.topic(), m.partition(), m.offset())] = (
                    m.key(), m.value(), m.headers() or [], m.timestamp())
                n += 1
        c.close()
        if n != total or len(recs) != total:
            fail("%s: read %d records (%d distinct), high watermarks add up to %d",
                 label, n, len(recs), total)
        s["records"] = recs
        log("%s: %d topics, %d records", label, len(s["topics"]), total)
        return s

    def check_records(s, label):
        """The snapshot holds exactly the acknowledged records at their offsets."""
        recs = s["records"]
        if set(recs) != set(acked):
            extra = sorted(set(recs) - set(acked))[:3]
            missing = sorted(set(acked) - set(recs))[:3]
            fail("%s: records at %r were never acknowledged; acknowledged %r are missing",
                 label, extra, missing)
        for k, (key, value, headers, ts) in acked.items():
            got = recs[k]
            if got[0] != key or got[1] != value or got[2] != headers:
                fail("%s: %r differs: %r", label, k, got[:3])
            if ts is None:
                if got[3][0] != 2:
                    fail("%s: %r: timestamp type %r on a LogAppendTime topic", label, k, got[3])
            elif got[3] != (1, ts):
                fail("%s: %r: timestamp %r, want (1, %d)", label, k, got[3], ts)

    def same(a, b, what):
        for key in ("topics", "configs", "offsets", "raw", "committed", "records"):
            if a[key] != b[key]:
                if isinstance(a[key], dict):
                    diff = [k for k in set(a[key]) | set(b[key]) if a[key].get(k) != b[key].get(k)]
                    k = sorted(diff, key=str)[0]
                    fail("%s: %s differ, e.g. %r: %r before, %r after", what, key, k,
                         a[key].get(k), b[key].get(k))
                fail("%s: %s differ: %r before, %r after", what, key, a[key], b[key])
        log("%s: topics, configs, ListOffsets answers, stored batches, committed offsets and "
            "records identical", what)

    def commit(offsets):
        c = Consumer({"bootstrap.servers": bs, "group.id": "keep-g", "enable.auto.commit": False})
        c.commit(offsets=[TopicPartition(t, q, o) for t, q, o in offsets], asynchronous=False)
        c.close()

    # A: uploaded to objects
    produce("keep-a", 2000)
    produce("keep-a", 1000, "lz4")
    produce("keep-logtime", 1000)
    produce("keep-object", 600)
    w = wait_uploaded()
    log("phase A uploaded: %r", w)
    # B: the object topic first (its acks wait for an upload), then the WAL
    # topics, whose tails must still be in the WAL only when we stop.
    produce("keep-object", 300, "lz4")
    produce("keep-a", 800)
    produce("keep-logtime", 400)
    commit([("keep-a", 0, 17), ("keep-a", 3, 501), ("keep-object", 1, 2)])
    s0 = snapshot("before SIGTERM")
    check_records(s0, "before SIGTERM")
    wal_only_now("just before the SIGTERM")
    status = broker.stop()
    if status != 0:
        fail("SIGTERM: broker exited with status %s", status)
    broker.start()
    s1 = snapshot("after SIGTERM restart")
    same(s0, s1, "SIGTERM restart")

    # C: more data in the WAL only, a config change, a commit; then SIGKILL
    produce("keep-a", 700, "lz4")
    produce("keep-logtime", 300)
    for f in admin.alter_configs([ConfigResource(
            ConfigResource.Type.TOPIC, "keep-empty",
            set_config={"retention.ms": "86400000", "cleanup.policy": "delete"})]).values():
        f.result()
    commit([("keep-a", 1, 250), ("keep-logtime", 0, 100)])
    s2 = snapshot("before SIGKILL")
    check_records(s2, "before SIGKILL")
    if ("retention.ms", "86400000") not in [x[:2] for x in s2["configs"]["keep-empty"]]:
        fail("AlterConfigs did not take: %r", s2["configs"]["keep-empty"])
    wal_only_now("just before the SIGKILL")
    broker.kill9()
    broker.start()
    del admin
    s3 = snapshot("after SIGKILL restart")
    same(s2, s3, "SIGKILL restart")

    # D: the logs continue where they ended; then everything is uploaded
    hw = {q: h for q, (h, _) in enumerate(s3["where"]["keep-a"])}
    first = produce("keep-a", 400)
    for q, o in first.items():
        if o != hw[q]:
            fail("keep-a-%d: the first record after the restart got offset %d, high watermark "
                 "was %d", q, o, hw[q])
    log("producing continues at the old high watermarks %r", [hw[q] for q in sorted(hw)])
    w = wait_uploaded()
    s4 = snapshot("all uploaded")
    check_records(s4, "all uploaded")
    for k, v in s3["records"].items():
        if s4["records"][k] != v:
            fail("%r read from objects differs from what was read from the WAL tail", k)
    broker.stop()
    broker.start()
    s5 = snapshot("after SIGTERM restart, from objects")
    same(s4, s5, "restart with everything in objects")
    status = broker.stop()
    if status != 0:
        fail("final SIGTERM: broker exited with status %s", status)
    log("OK 063: %d records in %d topics survived SIGTERM, SIGKILL and SIGTERM restarts "
        "unchanged", len(acked), len(TOPICS))


if __name__ == "__main__":
    if not T:
        sys.exit("run this through kafka-compat-suite/run.sh")
    main()
