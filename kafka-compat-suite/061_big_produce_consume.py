#!/usr/bin/python3
# compat-timeout: 2400
# Proves: four independent client stacks each produce N records over 6
# partitions with acks=all and read every one back byte for byte and in
# order: kcat 1.7.1 (librdkafka 2.0.2, six `kcat -P -p N -l` processes at
# once with per-record keys (-K), three static headers (-H, one empty) and
# binary values, then one `kcat -C -e -f` printing partition, offset,
# timestamp, key and value lengths, headers, key and value), kafka-python
# 2.0.2, confluent-kafka 1.7.0 and kafkajs 2.2.4 (lib/big061.js; reads
# through a consumer group, fromBeginning). Each client writes its own
# topic (retention.ms=-1: the timestamps are fixed, in 2023).
# Record i goes to partition i % 6, so the record at offset o of partition
# p must be record o*6+p: every client checks exactly that (offsets
# 0..n-1, nothing missing, duplicated or reordered), with the key (some
# null), the value (0-160 binary bytes after "v<i>:", some empty), three
# headers (one binary, one empty) and the CreateTime timestamp T0+i;
# confluent-kafka, kafka-python and kafkajs also check that each delivery
# report / send result gave that offset. kcat cannot set timestamps or
# per-record headers: its timestamps must be CreateTime values inside the
# production window and never decrease within a partition, and its
# headers are the static ones. Anything the Python clients log at WARNING
# or above, or kafkajs at WARN, fails it.
# N: COMPAT_061_RECORDS (default 50000 per client), COMPAT_BIG=1 for the
# issue's 1,000,000 per client; COMPAT_061_CLIENTS picks clients
# (kcat,kafka-python,confluent-kafka,kafkajs). Prints the time per client.
import logging
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
from compat import check, log  # noqa: E402

N = int(os.environ.get("COMPAT_061_RECORDS") or
        (1000000 if os.environ.get("COMPAT_BIG") == "1" else 50000))
CLIENTS = os.environ.get("COMPAT_061_CLIENTS",
                         "kcat,kafka-python,confluent-kafka,kafkajs").split(",")
PARTS = 6
T0 = 1700000000000
T = compat.SCENARIO_TMP
LIMIT = 60 + N / 1000     # seconds any one phase may take (1060 s for 1,000,000)
ROWS = [bytes((r + j * 31) % 256 for j in range(160)) for r in range(256)]


def record(i, kcat=False):
    """(key, value, headers, timestamp) of record i; lib/big061.js builds
    the same. kcat's keys are never null and its values never hold the
    record delimiter 0x1e."""
    key = None if i % 1000 == 7 and not kcat else b"k-%08d" % i
    if i % 997 == 3:
        value = b""
    else:
        value = b"v%d:" % i + ROWS[i % 256][:(i * 7919) % 160]
        if kcat:
            value = value.replace(b"\x1e", b" ")
    headers = [("i", b"%d" % i), ("bin", bytes([i % 256, 0, 255])), ("empty", b"")]
    return key, value, headers, T0 + i


def index_of(value):
    """Record index from a value, None for the empty ones."""
    if not value:
        return None
    return int(value[1:value.index(b":")])


problems = []


class Collect(logging.Handler):
    def emit(self, rec):
        if rec.levelno >= logging.WARNING:
            problems.append(self.format(rec))


def create(topic):
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient({"bootstrap.servers": compat.BOOTSTRAP})
    for f in a.create_topics([NewTopic(topic, PARTS, 1, config={"retention.ms": "-1"})],
                             request_timeout=15).values():
        f.result()


def expect_at(p, o, kcat=False):
    return record(o * PARTS + p, kcat)


def counts():
    return [len(range(p, N, PARTS)) for p in range(PARTS)]


# ------------------------------------------------------------------ kcat

def run_kcat(topic):
    files = []
    for p in range(PARTS):
        path = os.path.join(T, "kcat-in-%d.bin" % p)
        with open(path, "wb") as f:
            for i in range(p, N, PARTS):
                key, value, _, _ = record(i, kcat=True)
                f.write(key + b"\x1f" + value + b"\x1e")
        files.append(path)
    t0 = time.time()
    t0_ms = int(t0 * 1000)
    procs = []
    for p in range(PARTS):
        err = open(os.path.join(T, "kcat-p%d.err" % p), "w")
        procs.append(subprocess.Popen(
            ["kcat", "-b", compat.BOOTSTRAP, "-P", "-t", topic, "-p", str(p),
             "-K", "\\x1f", "-D", "\\x1e", "-H", "src=kcat", "-H", "part=%d" % p,
             "-H", "empty=", "-X", "acks=all", "-X", "linger.ms=20", "-l", files[p]],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err))
    for p, pr in enumerate(procs):
        rc = pr.wait(LIMIT)
        text = open(os.path.join(T, "kcat-p%d.err" % p)).read()
        check(rc == 0 and not text.strip(), "kcat -P partition %d: status %d: %s", p, rc,
              text[-2000:])
    t1 = time.time()
    t1_ms = int(t1 * 1000) + 1
    out = os.path.join(T, "kcat-out.bin")
    with open(out, "wb") as f, open(os.path.join(T, "kcat-c.err"), "w") as err:
        rc = subprocess.call(["kcat", "-b", compat.BOOTSTRAP, "-C", "-t", topic, "-o",
                              "beginning", "-e", "-q", "-X", "fetch.max.bytes=52428800",
                              "-f", "%p %o %T %K %S %h\\x01%k%s\\n"],
                             stdin=subprocess.DEVNULL, stdout=f, stderr=err, timeout=LIMIT)
    text = open(os.path.join(T, "kcat-c.err")).read()
    check(rc == 0 and not text.strip(), "kcat -C: status %d: %s", rc, text[-2000:])
    data = open(out, "rb").read()
    nxt = [0] * PARTS
    last_ts = [0] * PARTS
    pos = 0
    n = 0
    while pos < len(data):
        sep = data.index(b"\x01", pos)
        p, o, ts, klen, vlen, hdrs = data[pos:sep].decode().split(" ")
        p, o, ts, klen, vlen = int(p), int(o), int(ts), int(klen), int(vlen)
        pos = sep + 1
        key = data[pos:pos + klen] if klen >= 0 else None
        pos += max(klen, 0)
        value = data[pos:pos + vlen] if vlen >= 0 else None
        pos += max(vlen, 0)
        check(data[pos:pos + 1] == b"\n", "kcat output is misaligned at byte %d", pos)
        pos += 1
        check(o == nxt[p], "kcat: partition %d: offset %d where %d was expected", p, o, nxt[p])
        nxt[p] += 1
        want_key, want_value, _, _ = expect_at(p, o, kcat=True)
        check(key == want_key and value == want_value,
              "kcat: partition %d offset %d: %r/%r, want %r/%r", p, o, key, value[:40],
              want_key, want_value[:40])
        check(hdrs == "src=kcat,part=%d,empty=" % p, "kcat: partition %d offset %d: headers %r",
              p, o, hdrs)
        check(t0_ms <= ts <= t1_ms and ts >= last_ts[p],
              "kcat: partition %d offset %d: timestamp %d outside %d..%d or before %d",
              p, o, ts, t0_ms, t1_ms, last_ts[p])
        last_ts[p] = ts
        n += 1
    check(nxt == counts(), "kcat: read %r records per partition, want %r", nxt, counts())
    return t1 - t0, time.time() - t1


# ------------------------------------------------------- confluent-kafka

def run_confluent(topic):
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    bad = []
    done = [0]

    def on_delivery(err, msg):
        if err is not None:
            bad.append(str(err))
            return
        i = index_of(msg.value())
        if i is not None and msg.offset() != i // PARTS:
            bad.append("record %d acknowledged at %d/%d" % (i, msg.partition(), msg.offset()))
        done[0] += 1

    def on_error(e):
        problems.append("confluent-kafka: %s" % e)

    t0 = time.time()
    p = Producer({"bootstrap.servers": compat.BOOTSTRAP, "acks": "all", "linger.ms": 20,
                  "enable.idempotence": False, "batch.num.messages": 10000,
                  "queue.buffering.max.messages": 1000000, "error_cb": on_error})
    for i in range(N):
        key, value, headers, ts = record(i)
        while True:
            try:
                p.produce(topic, key=key, value=value, headers=headers, partition=i % PARTS,
                          timestamp=ts, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        if i % 10000 == 0:
            p.poll(0)
    check(p.flush(LIMIT) == 0, "confluent-kafka: records never acknowledged")
    check(not bad, "confluent-kafka: %s", bad[:5])
    check(done[0] == N, "confluent-kafka: %d of %d delivery reports", done[0], N)
    t1 = time.time()
    c = Consumer({"bootstrap.servers": compat.BOOTSTRAP, "group.id": "compat-061",
                  "enable.auto.commit": False, "check.crcs": True, "fetch.wait.max.ms": 100,
                  "error_cb": on_error})
    c.assign([TopicPartition(topic, q, 0) for q in range(PARTS)])
    nxt = [0] * PARTS
    n = 0
    deadline = time.time() + LIMIT
    while n < N and time.time() < deadline:
        for m in c.consume(10000, 1.0):
            if m.error():
                raise KafkaException(m.error())
            q, o = m.partition(), m.offset()
            check(o == nxt[q], "confluent-kafka: partition %d: offset %d after %d", q, o, nxt[q])
            nxt[q] += 1
            key, value, headers, ts = expect_at(q, o)
            check(m.key() == key and m.value() == value and m.headers() == headers and
                  m.timestamp() == (1, ts),
                  "confluent-kafka: partition %d offset %d differs: %r", q, o,
                  (m.key(), (m.value() or b"")[:40], m.headers(), m.timestamp()))
            n += 1
    c.close()
    check(nxt == counts(), "confluent-kafka: read %r per partition, want %r", nxt, counts())
    return t1 - t0, time.time() - t1


# ---------------------------------------------------------- kafka-python

def run_kafka_python(topic):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    logging.getLogger("kafka").addHandler(Collect())
    logging.getLogger("kafka").setLevel(logging.WARNING)
    bad = []
    done = [0]

    def ok(i, md):
        if md.partition != i % PARTS or md.offset != i // PARTS:
            bad.append("record %d acknowledged at %d/%d" % (i, md.partition, md.offset))
        done[0] += 1

    t0 = time.time()
    p = KafkaProducer(bootstrap_servers=compat.BOOTSTRAP, acks="all", linger_ms=20,
                      batch_size=256 * 1024, buffer_memory=256 << 20,
                      max_request_size=8 << 20)
    for i in range(N):
        key, value, headers, ts = record(i)
        f = p.send(topic, key=key, value=value, headers=headers, partition=i % PARTS,
                   timestamp_ms=ts)
        f.add_callback(ok, i)
        f.add_errback(lambda e, i=i: bad.append("record %d: %r" % (i, e)))
    p.flush(LIMIT)
    p.close()
    check(not bad, "kafka-python: %s", bad[:5])
    check(done[0] == N, "kafka-python: %d of %d acknowledged", done[0], N)
    t1 = time.time()
    c = KafkaConsumer(bootstrap_servers=compat.BOOTSTRAP, group_id=None,
                      enable_auto_commit=False, fetch_max_wait_ms=100,
                      fetch_max_bytes=50 << 20, max_partition_fetch_bytes=8 << 20,
                      max_poll_records=20000)
    tps = [TopicPartition(topic, q) for q in range(PARTS)]
    c.assign(tps)
    c.seek_to_beginning()
    nxt = [0] * PARTS
    n = 0
    deadline = time.time() + LIMIT
    while n < N and time.time() < deadline:
        for tp, msgs in c.poll(timeout_ms=1000).items():
            q = tp.partition
            for m in msgs:
                check(m.offset == nxt[q], "kafka-python: partition %d: offset %d after %d",
                      q, m.offset, nxt[q])
                nxt[q] += 1
                key, value, headers, ts = expect_at(q, m.offset)
                check(m.key == key and m.value == value and list(m.headers) == headers and
                      m.timestamp == ts and m.timestamp_type == 0,
                      "kafka-python: partition %d offset %d differs: %r", q, m.offset,
                      (m.key, (m.value or b"")[:40], m.headers, m.timestamp))
                n += 1
    c.close()
    check(nxt == counts(), "kafka-python: read %r per partition, want %r", nxt, counts())
    return t1 - t0, time.time() - t1


# --------------------------------------------------------------- kafkajs

def run_kafkajs(topic):
    js = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib", "big061.js")
    out = os.path.join(T, "kafkajs.out")
    with open(out, "w") as f:
        rc = subprocess.call(["node", js, compat.BOOTSTRAP, topic, str(N), str(PARTS),
                              str(T0)], stdin=subprocess.DEVNULL, stdout=f,
                             stderr=subprocess.STDOUT, timeout=3 * LIMIT)
    text = open(out).read()
    print(text.strip(), flush=True)
    check(rc == 0, "kafkajs failed (status %d)", rc)
    times = [line for line in text.splitlines() if line.startswith("TIMES ")]
    check(times, "kafkajs printed no times")
    a, b = times[-1].split()[1:3]
    return float(a), float(b)


RUN = {"kcat": run_kcat, "confluent-kafka": run_confluent, "kafka-python": run_kafka_python,
       "kafkajs": run_kafkajs}


def main():
    log("%d records per client over %d partitions; clients %s", N, PARTS, ", ".join(CLIENTS))
    results = []
    for name in CLIENTS:
        topic = "big-" + name
        create(topic)
        prod_s, cons_s = RUN[name](topic)
        results.append((name, prod_s, cons_s))
        log("%-16s produce %6.1f s (%7.0f rec/s), consume+verify %6.1f s (%7.0f rec/s)",
            name, prod_s, N / prod_s, cons_s, N / cons_s)
        check(compat.broker_alive(), "the broker died")
    check(not problems, "clients logged problems:\n%s", "\n".join(problems[:10]))
    log("OK 061: %s", "; ".join("%s %d records %.1f s + %.1f s" % (n, N, a, b)
                               for n, a, b in results))


main()
