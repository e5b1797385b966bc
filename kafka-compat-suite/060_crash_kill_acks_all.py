#!/usr/bin/python3
# compat-broker: none
# compat-timeout: 600
# Proves: an acknowledged record is never lost, moved or altered when the
# broker is killed with SIGKILL at random moments under acks=all load, and
# a consumer never reads anything a crash takes back.
#  - Two confluent-kafka producers (librdkafka 2.0.2; acks=all,
#    enable.idempotence=false, retries on, one uncompressed, one lz4) write
#    unique records (key, value, two headers, CreateTime timestamp, all
#    derived from the record's id and the seed) to 6 partitions at a steady
#    rate, plus bursts of thousands of records on command.
#  - The broker is SIGKILLed KILLS times (default 20) and restarted each
#    time on the same data directory and port: after a random delay since
#    the restart (0.05-2 s, some before the producers have reconnected), or
#    a random 0-300 ms after a burst was queued (many requests in flight).
#    Uploads run every 300 ms or 2 MB, so every kill leaves acknowledged
#    data both in segment objects and only in the WAL. The producers
#    reconnect and retry by themselves; each records the partition and
#    offset of every successful delivery report. No delivery may fail in
#    the end (retries are unlimited, message.timeout.ms is 240 s).
#  - A confluent-kafka consumer (assign() from offset 0, auto.offset.reset
#    =error, check.crcs) reads all along and survives every restart. It
#    must see offsets 0, 1, 2... in each partition, each record intact, and
#    never OFFSET_OUT_OF_RANGE (the high watermark never goes back).
#  - After a last SIGKILL and restart: the stored batches of each partition
#    (raw Fetch v4) start at 0, follow each other without gap or overlap
#    and end at the high watermark; a fresh consumer (check.crcs) reads
#    offsets 0..HW-1, each exactly once, and every record there is one
#    that was produced, byte-identical (key, value, headers, timestamp);
#    EVERY ACKNOWLEDGED RECORD IS AT EXACTLY THE OFFSET ITS DELIVERY REPORT
#    GAVE; everything the live consumer read is what is there now; and
#    a clean SIGTERM restart changes nothing.
# What is allowed: a record that was never acknowledged may be there or
# not. With idempotence off, a batch whose first attempt was written (and
# made durable, or at least written to the WAL before the kill) but whose
# acknowledgement was lost is sent again and stored again at a later
# offset: the record then appears twice, and only the copy at the offset
# its delivery report names was acknowledged. That is Kafka's at-least-
# once semantics, not loss; the counts of such copies are printed. Order between retried batches
# is not checked either (retries without idempotence may reorder).
# COMPAT_060_KILLS (default 20), COMPAT_060_RATE (records/s per producer,
# default 2500), COMPAT_060_BURST (records per producer per burst, default
# 10000), COMPAT_060_MAX_DELAY (s, default 2.0), COMPAT_060_DURABILITY
# (the topic's streamhouse.durability, default wal), COMPAT_060_SETTINGS
# (more broker KEY=VALUE settings, e.g. a tiny WAL); COMPAT_SEED replays
# the kill schedule and the record contents.
import json
import os
import random
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import crashkit  # noqa: E402
import kprobe  # noqa: E402

TOPIC = "crash060"
PARTS = 6
T0 = 1700000000000
SEED = int(os.environ.get("COMPAT_SEED") or os.environ.get("C060_SEED") or
           random.SystemRandom().randrange(1, 1 << 30))
T = os.environ.get("SCENARIO_TMP", "")


def record(rid):
    """Everything about record `rid` ("a17", "b4242"): partition, key,
    value, headers, timestamp. Deterministic from the seed, so the checker
    regenerates what must be there from the id alone."""
    seq = int(rid[1:])
    rnd = random.Random("%d:%s" % (SEED, rid))
    r = rnd.random()
    if r < 0.004:
        n = rnd.randint(8000, 40000)
    elif r < 0.2:
        n = rnd.randint(300, 2000)
    else:
        n = rnd.randint(0, 200)
    pad = rnd.randbytes(n // 4) + (b"streamhouse " * (n // 12 + 1))[:n - n // 4]
    value = rid.encode() + b"|" + pad
    key = None if seq % 53 == 7 else b"key-" + rid.encode()
    headers = [("rid", rid.encode()), ("x", pad[:6])]
    return seq % PARTS, key, value, headers, T0 + seq


def rid_of(value):
    if value is None or b"|" not in value[:16]:
        return None
    rid = value.split(b"|", 1)[0].decode("ascii", "replace")
    if len(rid) < 2 or rid[0] not in "ab" or not rid[1:].isdigit():
        return None
    return rid


def check_message(m):
    """None if m is exactly the record it claims to be, else the problem."""
    rid = rid_of(m.value())
    if rid is None:
        return "partition %d offset %d: not a record of this test: %r" % (
            m.partition(), m.offset(), (m.value() or b"")[:40])
    part, key, value, headers, ts = record(rid)
    if m.partition() != part:
        return "record %s in partition %d, produced to %d" % (rid, m.partition(), part)
    if m.key() != key or m.value() != value:
        return "record %s at %d/%d: key or value differs" % (rid, m.partition(), m.offset())
    if (m.headers() or []) != headers:
        return "record %s at %d/%d: headers %r" % (rid, m.partition(), m.offset(), m.headers())
    if m.timestamp() != (1, ts):
        return "record %s at %d/%d: timestamp %r, want (1, %d)" % (
            rid, m.partition(), m.offset(), m.timestamp(), ts)
    return None


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, path)


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def stdin_lines():
    out = []
    while select.select([sys.stdin], [], [], 0)[0]:
        line = sys.stdin.readline()
        if not line:
            out.append("stop")
            break
        out.append(line.strip())
    return out


# ---------------------------------------------------------------- producer

def run_producer(name, codec):
    from confluent_kafka import Producer
    rate = float(os.environ.get("COMPAT_060_RATE", "2500"))
    acks, errors = [], []
    ack_file = open(os.path.join(T, "acks-%s.tsv" % name), "w")
    written = 0

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            acks.append((msg.partition(), msg.offset(), rid_of(msg.value())))

    p = Producer({"bootstrap.servers": os.environ["BOOTSTRAP"], "acks": "all",
                  "enable.idempotence": False, "compression.type": codec,
                  "linger.ms": 5, "retries": 1000000, "retry.backoff.ms": 50,
                  "message.timeout.ms": 240000, "request.timeout.ms": 30000,
                  "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 250,
                  "queue.buffering.max.messages": 500000,
                  "queue.buffering.max.kbytes": 512 * 1024})

    def send(seq):
        rid = "%s%d" % (name, seq)
        part, key, value, headers, ts = record(rid)
        while True:
            try:
                p.produce(TOPIC, key=key, value=value, headers=headers, partition=part,
                          timestamp=ts, on_delivery=on_delivery)
                return
            except BufferError:
                p.poll(0.01)

    def flush_acks():
        nonlocal written
        for a in acks[written:]:
            ack_file.write("%d\t%d\t%s\n" % a)
        written = len(acks)
        ack_file.flush()

    def progress(seq):
        flush_acks()
        write_json(os.path.join(T, "progress-%s.json" % name),
                   {"produced": seq, "acked": len(acks), "errors": len(errors)})

    seq, extra, stopping = 0, 0, False
    t0 = last = time.time()
    while not stopping:
        for line in stdin_lines():
            if line.startswith("burst"):
                extra += int(line.split()[1])
            elif line == "stop":
                stopping = True
        target = int((time.time() - t0) * rate) + extra
        n = 0
        while seq < target and n < 5000:
            send(seq)
            seq += 1
            n += 1
        p.poll(0.005)
        if time.time() - last > 0.1:
            progress(seq)
            last = time.time()
    deadline = time.time() + 240
    while len(p) > 0 and time.time() < deadline:
        p.poll(0.1)
        progress(seq)
    unfinished = len(p)
    progress(seq)
    ack_file.close()
    write_json(os.path.join(T, "summary-%s.json" % name),
               {"produced": seq, "acked": len(acks), "errors": errors[:20],
                "error_count": len(errors), "unfinished": unfinished})
    return 0


# ---------------------------------------------------------------- consumer

def run_consumer():
    """Reads while the broker is killed; prints problems; at "final HW..."
    reads up to those high watermarks and dumps what it saw."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    c = Consumer({"bootstrap.servers": os.environ["BOOTSTRAP"], "group.id": "compat-060-live",
                  "enable.auto.commit": False, "auto.offset.reset": "error",
                  "check.crcs": True, "fetch.wait.max.ms": 100,
                  "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 250})
    c.assign([TopicPartition(TOPIC, q, 0) for q in range(PARTS)])
    seen = {q: [] for q in range(PARTS)}
    problems, errors = [], []
    targets, deadline, last = None, None, 0
    while True:
        for line in stdin_lines():
            if line.startswith("final"):
                targets = [int(x) for x in line.split()[1:]]
                deadline = time.time() + 180
            elif line == "stop":
                targets = targets or [0] * PARTS
        for m in c.consume(2000, 0.2):
            e = m.error()
            if e is not None:
                errors.append(str(e))
                if e.code() in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET):
                    problems.append("consumer error %s (partition %s): the high watermark "
                                    "went back" % (e, m.partition()))
                continue
            q, o = m.partition(), m.offset()
            if o != len(seen[q]):
                problems.append("partition %d: offset %d delivered after %d records"
                                % (q, o, len(seen[q])))
                continue
            bad = check_message(m)
            if bad:
                problems.append("live read: " + bad)
            seen[q].append(rid_of(m.value()))
        if time.time() - last > 0.25:
            write_json(os.path.join(T, "progress-live.json"),
                       {"consumed": sum(len(v) for v in seen.values()),
                        "problems": len(problems)})
            last = time.time()
        if targets and all(len(seen[q]) >= targets[q] for q in range(PARTS)):
            break
        if deadline and time.time() > deadline:
            problems.append("live consumer stopped at %r, high watermarks %r"
                            % ([len(seen[q]) for q in range(PARTS)], targets))
            break
    c.close()
    write_json(os.path.join(T, "live.json"),
               {"seen": seen, "problems": problems[:50], "problem_count": len(problems),
                "errors": sorted(set(errors))[:20], "error_count": len(errors)})
    return 0


# ------------------------------------------------------------ orchestrator

def log(msg, *args):
    print("[%6.1f] %s" % (time.time() - START, msg % args if args else msg), flush=True)


START = time.time()


def main():
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    fail = crashkit.fail
    kills_wanted = int(os.environ.get("COMPAT_060_KILLS", "20"))
    burst = int(os.environ.get("COMPAT_060_BURST", "10000"))
    max_delay = float(os.environ.get("COMPAT_060_MAX_DELAY", "2.0"))
    rng = random.Random(SEED)
    print("seed %d (COMPAT_SEED replays it); %d kills" % (SEED, kills_wanted), flush=True)

    broker = crashkit.Broker(os.path.join(T, "b1"),
                             ["streamhouse.upload.interval.ms=300",
                              "streamhouse.upload.bytes=2097152"] +
                             os.environ.get("COMPAT_060_SETTINGS", "").split())
    broker.start()
    env = dict(os.environ, BOOTSTRAP=broker.bootstrap, C060_SEED=str(SEED))
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    # retention.ms=-1: the records carry fixed 2023 timestamps (T0), which a
    # 7-day time retention would delete while the test runs.
    config = {"retention.ms": "-1"}
    if os.environ.get("COMPAT_060_DURABILITY"):
        config["streamhouse.durability"] = os.environ["COMPAT_060_DURABILITY"]
    for f in admin.create_topics([NewTopic(TOPIC, PARTS, 1, config=config)],
                                 request_timeout=15).values():
        f.result()
    del admin

    me = os.path.abspath(__file__)
    children = {}

    def spawn(name, *args):
        out = open(os.path.join(T, "%s.out" % name), "w")
        children[name] = subprocess.Popen([sys.executable, "-u", me] + list(args),
                                          stdin=subprocess.PIPE, stdout=out,
                                          stderr=subprocess.STDOUT, env=env, text=True)

    def tell(name, line):
        children[name].stdin.write(line + "\n")
        children[name].stdin.flush()

    def acked():
        return [read_json(os.path.join(T, "progress-%s.json" % n), {}).get("acked", 0)
                for n in ("a", "b")]

    def in_flight():
        t = 0
        for n in ("a", "b"):
            pr = read_json(os.path.join(T, "progress-%s.json" % n), {})
            t += pr.get("produced", 0) - pr.get("acked", 0) - pr.get("errors", 0)
        return t

    def children_alive():
        for n, c in children.items():
            if c.poll() is not None:
                fail("%s exited early (status %s):\n%s", n, c.returncode,
                     open(os.path.join(T, "%s.out" % n)).read()[-3000:])

    def probe():
        """What the broker answers right now (ListOffsets latest), if anything."""
        try:
            conn = kprobe.Conn(broker.bootstrap, timeout=5)
            r = conn.list_offsets(1, [(TOPIC, [(q, -1) for q in range(PARTS)])])
            conn.close()
            return "high watermarks %r" % [r[(TOPIC, q)][2] for q in range(PARTS)]
        except Exception as e:  # noqa: BLE001 - any failure is the answer
            return "no answer to ListOffsets (%r)" % e

    def wait_flow(base, need, limit=60):
        """Wait until both producers got `need` more acks than `base`."""
        t0 = time.time()
        while True:
            now = acked()
            if all(now[i] - base[i] >= need for i in range(2)):
                return time.time() - t0
            children_alive()
            if not broker.alive():
                fail("the broker died by itself:\n%s", broker.log_tail())
            if time.time() - t0 > limit:
                fail("producers got no acknowledgements for %d s after a restart "
                     "(acks %r, before %r); the broker says: %s\n%s", limit, now, base,
                     probe(), broker.log_tail())
            time.sleep(0.02)

    spawn("consumer", "consumer")
    spawn("a", "producer", "a", "none")
    spawn("b", "producer", "b", "lz4")
    wait_flow([0, 0], 500)
    log("producers and consumer running")

    kill_log = []
    since = acked()
    for k in range(1, kills_wanted + 1):
        mode = "burst" if rng.random() < 0.4 else "timer"
        if mode == "timer":
            delay = rng.uniform(0.05, max_delay)
            time.sleep(delay)
        else:
            wait_flow(since, 100)
            tell("a", "burst %d" % burst)
            tell("b", "burst %d" % burst)
            delay = rng.uniform(0.0, 0.3)
            time.sleep(delay)
        children_alive()
        if not broker.alive():
            fail("the broker died by itself before kill %d:\n%s", k, broker.log_tail())
        flying = in_flight()
        before = acked()
        broker.kill9()
        down = rng.uniform(0.0, 0.5)
        time.sleep(down)
        try:
            took = broker.start()
        except crashkit.BrokerError as e:
            fail("restart after kill %d: %s", k, e)
        kill_log.append({"kill": k, "mode": mode, "delay": round(delay, 3),
                         "acked": sum(before), "in_flight": flying})
        log("kill %2d (%s, %.2f s): %d acknowledged so far, ~%d unacknowledged in flight; "
            "down %.2f s, restarted in %.2f s", k, mode, delay, sum(before), flying, down, took)
        since = before
    wait_flow(since, 500)
    log("producing after the last kill; stopping the producers")
    for n in ("a", "b"):
        tell(n, "stop")
    for n in ("a", "b"):
        try:
            children[n].wait(300)
        except subprocess.TimeoutExpired:
            fail("producer %s did not finish", n)
        if children[n].returncode != 0:
            fail("producer %s failed:\n%s", n, open(os.path.join(T, "%s.out" % n)).read()[-3000:])
    summary = {n: read_json(os.path.join(T, "summary-%s.json" % n)) for n in ("a", "b")}
    for n, s in summary.items():
        log("producer %s: %d produced, %d acknowledged, %d failed, %d unfinished",
            n, s["produced"], s["acked"], s["error_count"], s["unfinished"])
        # Retries are unlimited and a record may wait 240 s, so a failed or
        # unfinished delivery means the broker refused a retried batch or
        # stayed unreachable: not loss, but not what a client must see.
        if s["error_count"] or s["unfinished"]:
            fail("producer %s: %d deliveries failed (%s), %d unfinished", n, s["error_count"],
                 s["errors"][:3], s["unfinished"])

    # One more SIGKILL with nothing in flight, then the checks.
    broker.kill9()
    broker.start()
    total_kills = broker.kills
    log("final SIGKILL and restart (%d kills in all)", total_kills)

    conn = kprobe.Conn(broker.bootstrap)
    hw = {}
    batches = 0
    for q in range(PARTS):
        bs, hw[q] = kprobe.walk_partition(conn, TOPIC, q)
        batches += len(bs)
    conn.close()
    log("stored batches contiguous: %d batches, high watermarks %r",
        batches, [hw[q] for q in range(PARTS)])

    tell("consumer", "final " + " ".join(str(hw[q]) for q in range(PARTS)))

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "compat-060-check",
                  "enable.auto.commit": False, "auto.offset.reset": "error", "check.crcs": True,
                  "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(TOPIC, q, 0) for q in range(PARTS)])
    final = {q: [] for q in range(PARTS)}
    problems = []
    total = sum(hw.values())
    deadline = time.time() + 240
    got = 0
    while got < total and time.time() < deadline:
        for m in c.consume(5000, 1.0):
            if m.error():
                raise KafkaException(m.error())
            q, o = m.partition(), m.offset()
            if o != len(final[q]):
                problems.append("final read: partition %d offset %d after %d records"
                                % (q, o, len(final[q])))
                continue
            bad = check_message(m)
            if bad:
                problems.append("final read: " + bad)
            final[q].append(rid_of(m.value()))
            got += 1
    c.close()
    for q in range(PARTS):
        if len(final[q]) != hw[q]:
            problems.append("partition %d: read %d records, high watermark %d"
                            % (q, len(final[q]), hw[q]))
    log("read back %d records", got)

    # every acknowledged record at its acknowledged offset
    acked_ids = set()
    n_acks = 0
    wrong = []
    for n in ("a", "b"):
        with open(os.path.join(T, "acks-%s.tsv" % n)) as f:
            for line in f:
                q, o, rid = line.split()
                q, o = int(q), int(o)
                n_acks += 1
                acked_ids.add(rid)
                have = final[q][o] if o < len(final[q]) else None
                if have != rid:
                    wrong.append((rid, q, o, have))
    if n_acks != sum(s["acked"] for s in summary.values()):
        problems.append("ack files hold %d acknowledgements, the producers counted %d"
                        % (n_acks, sum(s["acked"] for s in summary.values())))
    if len(acked_ids) != n_acks:
        problems.append("%d records were acknowledged more than once"
                        % (n_acks - len(acked_ids)))
    for rid, q, o, have in wrong[:10]:
        problems.append("ACKNOWLEDGED RECORD %s should be at partition %d offset %d, found %r"
                        % (rid, q, o, have))
    if wrong:
        problems.append("%d acknowledged records are not at their acknowledged offsets"
                        % len(wrong))

    # what is there beyond the acknowledged records
    counts = {}
    for q in range(PARTS):
        for rid in final[q]:
            counts[rid] = counts.get(rid, 0) + 1
    produced = {n: summary[n]["produced"] for n in ("a", "b")}
    unknown = [r for r in counts if r is None or int(r[1:]) >= produced[r[0]]]
    if unknown:
        problems.append("%d records that were never produced, e.g. %r" % (len(unknown), unknown[:3]))
    copies = sum(v - 1 for v in counts.values() if v > 1)
    unacked_present = [r for r in counts if r not in acked_ids]
    never = sum(produced.values()) - n_acks
    log("%d acknowledged records all at their offsets; %d extra copies of retried records, "
        "%d never-acknowledged records present; %d records were never acknowledged",
        n_acks - len(wrong), copies, len(unacked_present), never)

    # the live consumer saw exactly what is there
    try:
        children["consumer"].wait(240)
    except subprocess.TimeoutExpired:
        fail("the live consumer did not reach the high watermarks")
    live = read_json(os.path.join(T, "live.json"))
    if live is None:
        fail("the live consumer wrote no result:\n%s",
             open(os.path.join(T, "consumer.out")).read()[-3000:])
    problems += live["problems"]
    for q in range(PARTS):
        seen = live["seen"][str(q)]
        if seen != final[q][:len(seen)]:
            k = next(i for i, (a, b) in enumerate(zip(seen, final[q])) if a != b) \
                if any(a != b for a, b in zip(seen, final[q])) else min(len(seen), len(final[q]))
            problems.append("partition %d: the live consumer read %r at offset %d, now there "
                            "is %r" % (q, seen[k] if k < len(seen) else None, k,
                                       final[q][k] if k < len(final[q]) else None))
        elif len(seen) != hw[q]:
            problems.append("partition %d: the live consumer read %d of %d records"
                            % (q, len(seen), hw[q]))
    log("live consumer read %d records across the kills (%d client errors while the broker "
        "was down, e.g. %s)", sum(len(v) for v in live["seen"].values()), live["error_count"],
        live["errors"][:2])

    # a clean restart changes nothing
    status = broker.stop()
    if status != 0:
        problems.append("SIGTERM: the broker exited with status %s" % status)
    broker.start()
    conn = kprobe.Conn(broker.bootstrap)
    for q in range(PARTS):
        bs, h = kprobe.walk_partition(conn, TOPIC, q)
        if h != hw[q]:
            problems.append("partition %d: high watermark %d after SIGTERM, %d before"
                            % (q, h, hw[q]))
    conn.close()
    status = broker.stop()
    if status != 0:
        problems.append("final SIGTERM: the broker exited with status %s" % status)

    flying = sorted(k["in_flight"] for k in kill_log)
    print("kills: %s" % json.dumps(kill_log))
    if problems:
        for p in problems[:40]:
            print("PROBLEM: " + p)
        fail("%d problems (seed %d)", len(problems), SEED)
    errs = sum(s["error_count"] for s in summary.values())
    print("OK 060: %d SIGKILLs (+1 final), %d records produced, %d acknowledged and all at "
          "their offsets, %d delivery errors, %d extra copies of unacknowledged retries; "
          "in flight at a kill: min %d, median %d, max %d; %.0f s"
          % (total_kills - 1, sum(produced.values()), n_acks, errs, copies,
             flying[0], flying[len(flying) // 2], flying[-1], time.time() - START),
          flush=True)
    return 0


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else "main"
    if role == "producer":
        sys.exit(run_producer(sys.argv[2], sys.argv[3]))
    if role == "consumer":
        sys.exit(run_consumer())
    if not T:
        sys.exit("run this through kafka-compat-suite/run.sh")
    sys.exit(main())
