#!/usr/bin/env bash
# Proves, at the byte level (Produce v8 and InitProducerId v1/v3/v4 built by
# hand, lib/kidem.py), Kafka's idempotent-producer rules:
#  1. InitProducerId hands out distinct producer ids at epoch 0 (v1 and
#     v4), advertised from version 0 (librdkafka's idempotence probe).
#  2. A batch whose response is lost (the connection is closed before the
#     answer is read) and which is sent again on a new connection is
#     answered with the SAME base offset and stored once; so is a copy
#     pipelined right behind the original on one connection (a duplicate
#     arriving while the first copy still waits for its fsync).
#  3. A sequence gap gets OUT_OF_ORDER_SEQUENCE_NUMBER (45); an unknown
#     producer that does not start at 0 gets UNKNOWN_PRODUCER_ID (59).
#  4. InitProducerId v4 with the current (id, epoch) bumps the epoch; the
#     old epoch is then refused on Produce with INVALID_PRODUCER_EPOCH (47)
#     and on InitProducerId with PRODUCER_FENCED (90, v4) or
#     INVALID_PRODUCER_EPOCH (v3); a retry of the bump gets the same epoch
#     (KIP-360); the new epoch must start at sequence 0.
#  5. transactional ids: COORDINATOR_NOT_AVAILABLE ("" is INVALID_REQUEST).
#  6. DescribeProducers v0 lists the producer with its epoch and last
#     sequence; an unknown partition gets UNKNOWN_TOPIC_OR_PARTITION.
#  7. After SIGKILL and a restart on the same data (some batches in an
#     uploaded object with the producer snapshot, the newest only in the
#     WAL), a retry of the newest batch still gets its original offset,
#     the old epoch is still fenced, sequences continue, and a consumer
#     (confluent-kafka) reads every record exactly once, in order.
#  8. Restarted with producer.id.expiration.ms=1500: the idle producers
#     leave DescribeProducers, the next batch of one that does not start at
#     0 gets UNKNOWN_PRODUCER_ID, and InitProducerId with its old id hands
#     out a fresh one (its record in the metadata store expired too).
# compat-broker: none
# compat-timeout: 180
set -euo pipefail
. "$COMPAT_LIB/broker.sh"
sh_broker_cleanup_on_exit

fail() { echo "FAIL: $*" >&2; exit 1; }
T=$SCENARIO_TMP
B=$T/b1
export T
SETTINGS=(streamhouse.upload.interval.ms=200)

sh_broker_start "$B" "${SETTINGS[@]}" || fail "broker did not start"

cat >"$T/idem040.py" <<'PY'
import json, os, socket, sys, time
sys.path.insert(0, os.environ["COMPAT_LIB"])
import kwire, kidem
from kidem import record_batch

HOST, PORT = "127.0.0.1", int(os.environ["BROKER_PORT"])
STATE = os.path.join(os.environ["T"], "state.json")
TOPIC = "idem040"
corr = [100]


def check(cond, msg, *a):
    if not cond:
        raise AssertionError(msg % a if a else msg)


def conn():
    return kwire.connect(HOST, PORT)


def rt(s, make, decode):
    corr[0] += 1
    s.sendall(make(corr[0]))
    return decode(kwire.read_frame(s))


def init(s, version, pid=-1, epoch=-1, txn=None):
    r = rt(s, lambda c: kidem.init_producer_id_request(version, c, txn, 60000, pid, epoch),
           lambda p: kidem.decode_init_producer_id(version, p))
    check(r["correlation_id"] == corr[0], "InitProducerId correlation id")
    return r


def produce(s, batch):
    r = rt(s, lambda c: kidem.produce_request(c, TOPIC, 0, batch), kidem.decode_produce)
    check(r["correlation_id"] == corr[0], "Produce correlation id")
    return r


def log_end(s):
    idx, err, off = rt(s, lambda c: kidem.list_offsets_request(c, TOPIC, 0),
                       kidem.decode_list_offsets)
    check(err == 0, "ListOffsets error %d", err)
    return off


def vals(pid, epoch, first, n):
    return [b"p%d-e%d-s%d" % (pid, epoch, first + i) for i in range(n)]


def expect_ok(r, what, base=None):
    check(r["error_code"] == 0, "%s: error %d (%s)", what, r["error_code"], r["error_message"])
    if base is not None:
        check(r["base_offset"] == base, "%s: base offset %d, expected %d", what,
              r["base_offset"], base)
    return r["base_offset"]


def expect_err(r, code, what):
    check(r["error_code"] == code, "%s: error %d, expected %d", what, r["error_code"], code)
    check(r["base_offset"] == -1, "%s: base offset %d on an error", what, r["base_offset"])


def phase1():
    s = conn()
    # 1. ids and advertisement
    s.sendall(kwire.api_versions_request(1, 1))
    av = kwire.decode_api_versions_response(1, kwire.read_frame(s))
    check(av["api_keys"].get(22) == (0, 5), "InitProducerId advertised %r", av["api_keys"].get(22))
    check(av["api_keys"].get(61) == (0, 0), "DescribeProducers advertised %r",
          av["api_keys"].get(61))
    a = init(s, 4)
    b = init(s, 1)
    for r in (a, b):
        check(r["error_code"] == 0 and r["producer_epoch"] == 0 and r["producer_id"] >= 0,
              "InitProducerId: %r", r)
    check(a["producer_id"] != b["producer_id"], "the same producer id twice")
    P, Q = a["producer_id"], b["producer_id"]

    # 2. a lost answer: close before reading, then retry on a new connection
    b0 = record_batch(P, 0, 0, vals(P, 0, 0, 5))
    lost = conn()
    lost.sendall(kidem.produce_request(999, TOPIC, 0, b0))
    lost.close()
    deadline = time.time() + 20
    while log_end(s) < 5:
        check(time.time() < deadline, "the first copy never reached the log")
        time.sleep(0.05)
    s2 = conn()
    base0 = expect_ok(produce(s2, b0), "retry on a new connection", 0)
    expect_ok(produce(s2, b0), "second retry", base0)
    check(log_end(s) == 5, "the batch was stored more than once: log end %d", log_end(s))

    # ... and a copy pipelined right behind the original
    b1 = record_batch(P, 0, 5, vals(P, 0, 5, 3))
    corr[0] += 2
    s2.sendall(kidem.produce_request(corr[0] - 1, TOPIC, 0, b1) +
               kidem.produce_request(corr[0], TOPIC, 0, b1))
    r1 = kidem.decode_produce(kwire.read_frame(s2))
    r2 = kidem.decode_produce(kwire.read_frame(s2))
    check((r1["correlation_id"], r2["correlation_id"]) == (corr[0] - 1, corr[0]),
          "pipelined answers out of order")
    expect_ok(r1, "pipelined original", 5)
    expect_ok(r2, "pipelined duplicate", 5)
    check(log_end(s) == 8, "pipelined duplicate stored: log end %d", log_end(s))

    # 3. gap, unknown producer
    expect_err(produce(s, record_batch(P, 0, 10, vals(P, 0, 10, 1))),
               kidem.OUT_OF_ORDER_SEQUENCE_NUMBER, "sequence gap")
    expect_err(produce(s, record_batch(Q, 0, 3, vals(Q, 0, 3, 1))),
               kidem.UNKNOWN_PRODUCER_ID, "unknown producer at sequence 3")
    expect_ok(produce(s, record_batch(Q, 0, 0, vals(Q, 0, 0, 2))), "second producer", 8)

    # 4. epoch bump and fencing
    bumped = init(s, 4, P, 0)
    check(bumped["error_code"] == 0 and bumped["producer_id"] == P and
          bumped["producer_epoch"] == 1, "bump: %r", bumped)
    again = init(s, 4, P, 0)
    check(again["error_code"] == 0 and again["producer_epoch"] == 1,
          "a retried bump must get the same epoch: %r", again)
    expect_err(produce(s, record_batch(P, 0, 8, vals(P, 0, 8, 1))),
               kidem.INVALID_PRODUCER_EPOCH, "old epoch after the bump")
    expect_err(produce(s, record_batch(P, 1, 4, vals(P, 1, 4, 1))),
               kidem.OUT_OF_ORDER_SEQUENCE_NUMBER, "new epoch not at sequence 0")
    expect_ok(produce(s, record_batch(P, 1, 0, vals(P, 1, 0, 2))), "new epoch", 10)
    b2 = init(s, 4, P, 1)
    check(b2["producer_epoch"] == 2, "second bump: %r", b2)
    f4 = init(s, 4, P, 0)
    check(f4["error_code"] == kidem.PRODUCER_FENCED and f4["producer_id"] == -1,
          "v4 fenced: %r", f4)
    f3 = init(s, 3, P, 0)
    check(f3["error_code"] == kidem.INVALID_PRODUCER_EPOCH, "v3 fenced: %r", f3)
    expect_err(produce(s, record_batch(P, 1, 2, vals(P, 1, 2, 1))),
               kidem.INVALID_PRODUCER_EPOCH, "epoch 1 after the second bump")
    check(init(s, 4, P, -1)["error_code"] == kidem.INVALID_REQUEST, "id without epoch")

    # 5. transactions are not served
    check(init(s, 4, txn="tx-040")["error_code"] == kidem.COORDINATOR_NOT_AVAILABLE,
          "transactional id")
    check(init(s, 1, txn="")["error_code"] == kidem.INVALID_REQUEST, "empty transactional id")

    # epoch 2 writes four batches; the broker uploads some of them
    base = 12
    for k in range(4):
        expect_ok(produce(s, record_batch(P, 2, k * 2, vals(P, 2, k * 2, 2))),
                  "epoch 2 batch %d" % k, base + 2 * k)
    time.sleep(1.0)  # > streamhouse.upload.interval.ms: an object and a snapshot
    last = record_batch(P, 2, 8, vals(P, 2, 8, 3))
    expect_ok(produce(s, last), "newest batch", 20)

    # 6. DescribeProducers
    d = rt(s, lambda c: kidem.describe_producers_request(c, TOPIC, [0, 9]),
           kidem.decode_describe_producers)
    check(d[9][0] == kidem.UNKNOWN_TOPIC_OR_PARTITION, "partition 9: %r", d[9])
    err, prods = d[0]
    check(err == 0, "DescribeProducers error %d", err)
    byid = {p["producer_id"]: p for p in prods}
    check(P in byid and Q in byid, "producers listed: %r", prods)
    check(byid[P]["producer_epoch"] == 2 and byid[P]["last_sequence"] == 10,
          "producer P: %r", byid[P])
    check(byid[Q]["producer_epoch"] == 0 and byid[Q]["last_sequence"] == 1,
          "producer Q: %r", byid[Q])
    check(byid[P]["coordinator_epoch"] == -1 and byid[P]["current_txn_start_offset"] == -1,
          "transaction fields: %r", byid[P])
    json.dump({"P": P, "Q": Q, "last": last.hex()}, open(STATE, "w"))
    print("phase 1: producers %d and %d, log end %d" % (P, Q, log_end(s)))


def phase2():
    st = json.load(open(STATE))
    P, Q, last = st["P"], st["Q"], bytes.fromhex(st["last"])
    s = None
    deadline = time.time() + 30
    while True:  # the partition may still be opening
        try:
            s = conn()
            r = produce(s, last)
            if r["error_code"] == 0:
                break
        except (ConnectionError, OSError, kwire.DecodeError):
            pass
        check(time.time() < deadline, "no answer to the retry after the restart")
        time.sleep(0.2)
    expect_ok(r, "retry of the newest batch after SIGKILL", 20)
    check(log_end(s) == 23, "log end %d after the restart", log_end(s))
    # older duplicates (in the object part) too
    expect_ok(produce(s, record_batch(P, 2, 6, vals(P, 2, 6, 2))), "older duplicate", 18)
    expect_err(produce(s, record_batch(P, 1, 2, vals(P, 1, 2, 1))),
               kidem.INVALID_PRODUCER_EPOCH, "old epoch after the restart")
    expect_err(produce(s, record_batch(P, 2, 12, vals(P, 2, 12, 1))),
               kidem.OUT_OF_ORDER_SEQUENCE_NUMBER, "gap after the restart")
    expect_ok(produce(s, record_batch(P, 2, 11, vals(P, 2, 11, 1))), "next batch", 23)
    expect_ok(produce(s, record_batch(Q, 0, 2, vals(Q, 0, 2, 1))), "producer Q goes on", 24)
    check(init(s, 4, P, 0)["error_code"] == kidem.PRODUCER_FENCED, "fenced after restart")

    # 7. a consumer sees every record once, in order
    from confluent_kafka import Consumer, TopicPartition
    want = (vals(P, 0, 0, 5) + vals(P, 0, 5, 3) + vals(Q, 0, 0, 2) + vals(P, 1, 0, 2) +
            [v for k in range(4) for v in vals(P, 2, k * 2, 2)] + vals(P, 2, 8, 3) +
            vals(P, 2, 11, 1) + vals(Q, 0, 2, 1))
    c = Consumer({"bootstrap.servers": "%s:%d" % (HOST, PORT), "group.id": "compat-040",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    got = []
    deadline = time.time() + 30
    while len(got) < len(want) and time.time() < deadline:
        for m in c.consume(100, 1.0):
            check(not m.error(), "consume: %s", m.error())
            got.append((m.offset(), m.value()))
    c.close()
    check([o for o, _ in got] == list(range(len(want))), "offsets %r", [o for o, _ in got])
    check([v for _, v in got] == want, "records differ: %r", got)
    print("phase 2: %d records, each once and in order" % len(got))


def phase3():
    st = json.load(open(STATE))
    P = st["P"]
    s = conn()
    deadline = time.time() + 60
    while True:
        d = rt(s, lambda c: kidem.describe_producers_request(c, TOPIC, [0]),
               kidem.decode_describe_producers)
        if d[0][0] == 0 and not d[0][1]:
            break
        check(time.time() < deadline, "producers never expired: %r", d)
        time.sleep(0.2)
    expect_err(produce(s, record_batch(P, 2, 12, vals(P, 2, 12, 1))),
               kidem.UNKNOWN_PRODUCER_ID, "expired producer, sequence 12")
    # epoch 0 is older than the record's 2 (fenced, no side effect) until
    # the record expires; then the old id is unknown and a fresh one comes
    while True:
        r = init(s, 4, P, 0)
        if r["error_code"] == 0:
            break
        check(r["error_code"] == kidem.PRODUCER_FENCED, "InitProducerId: %r", r)
        check(time.time() < deadline, "the producer record never expired")
        time.sleep(0.2)
    check(r["producer_id"] not in (P, st["Q"]) and r["producer_epoch"] == 0,
          "expired id: %r", r)
    expect_ok(produce(s, record_batch(P, 2, 0, vals(P, 2, 0, 1))),
              "an expired producer starting again at 0", 25)
    print("phase 3: producers expired; fresh id %d" % r["producer_id"])


{"1": phase1, "2": phase2, "3": phase3}[sys.argv[1]]()
PY

/usr/bin/python3 - <<'PY'
import os
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": os.environ["BOOTSTRAP"]})
for f in a.create_topics([NewTopic("idem040", 1, 1)], request_timeout=15).values():
    f.result()
PY

/usr/bin/python3 "$T/idem040.py" 1 || fail "phase 1"
kill -KILL "$BROKER_PID"
wait "$BROKER_PID" 2>/dev/null || true
sh_broker_start "$B" "${SETTINGS[@]}" || fail "broker did not restart after SIGKILL"
/usr/bin/python3 "$T/idem040.py" 2 || fail "phase 2"
sh_broker_stop || fail "SIGTERM did not stop the broker"
[ "$BROKER_EXIT" = 0 ] || fail "broker exited with $BROKER_EXIT after SIGTERM"
sh_broker_start "$B" "${SETTINGS[@]}" producer.id.expiration.ms=1500 \
    producer.id.expiration.check.interval.ms=200 || fail "broker did not restart"
/usr/bin/python3 "$T/idem040.py" 3 || fail "phase 3"
sh_broker_stop || fail "SIGTERM did not stop the broker"
[ "$BROKER_EXIT" = 0 ] || fail "broker exited with $BROKER_EXIT after SIGTERM"
echo "040: idempotent producer rules hold on the wire and across a SIGKILL"
