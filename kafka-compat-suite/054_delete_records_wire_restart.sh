#!/usr/bin/env bash
# Proves: DeleteRecords at the wire level, every served version, and that
# what it does survives a SIGKILL:
#  - DeleteRecords v0, v1 and v2 (flexible) built byte by byte and decoded
#    strictly (no byte missing or left over): low watermark = the new log
#    start; -1 = the high watermark; an offset below the current log start
#    answers the current one; above the high watermark or below -1:
#    OFFSET_OUT_OF_RANGE (1) with low watermark -1; an unknown partition
#    or topic: UNKNOWN_TOPIC_OR_PARTITION (3); several partitions and
#    topics in one request, answered in request order;
#  - ListOffsets v1 EARLIEST answers the new log start; Fetch v4 below it
#    gets OFFSET_OUT_OF_RANGE, and at a log start inside a batch gets that
#    batch whole (as Kafka returns it);
#  - after DeleteRecords up to the high watermark the broker is killed
#    with SIGKILL at once, before or while it deletes the freed objects;
#    restarted, it still answers the moved log starts (they were durable
#    before the answer), the partition's data uploaded after the restart
#    (WAL replay) lies below the log start and is swept, every segment
#    object ends up deleted and the metadata store's object list empty;
#    a new record gets the next offset and a consumer from the beginning
#    (confluent-kafka) reads exactly it.
# Every wait is a bounded poll for a condition.
# compat-broker: none
set -euo pipefail
. "$COMPAT_LIB/broker.sh"
sh_broker_cleanup_on_exit

fail() { echo "FAIL: $*" >&2; exit 1; }
T=$SCENARIO_TMP
B=$T/b1
SETTINGS=(streamhouse.upload.interval.ms=100 log.retention.check.interval.ms=200)

cat >"$T/wire.py" <<'PY'
import os
import socket
import sqlite3
import struct
import sys
import time

sys.path.insert(0, os.environ["COMPAT_LIB"])
import kwire  # noqa: E402
from kwire import Reader, _i16, _i32, _string, _uvarint, frame  # noqa: E402

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

BOOT = os.environ["BOOTSTRAP"]
HOST, PORT = BOOT.split(":")
DATA = os.environ["BROKER_DATA"]
S3 = os.environ.get("S3_OBJECTS")
TOPIC = "wire"


def check(cond, msg, *args):
    if not cond:
        raise AssertionError(msg % args if args else msg)


def _i64(v):
    return struct.pack(">q", v)


def i64(r):
    return struct.unpack(">q", r._take(8))[0]


def compact_string(r):
    n = r.uvarint()
    check(n > 0, "null compact string")
    return r._take(n - 1).decode()


def delete_records(sock, version, corr, topics, timeout_ms=5000):
    """topics: [(name, [(partition, offset)])] -> [(name, [(p, lw, err)])]"""
    flex = version >= 2
    h = kwire.request_header(21, version, corr, flexible=flex)
    if flex:
        body = _uvarint(len(topics) + 1)
        for name, parts in topics:
            body += kwire._compact_string(name) + _uvarint(len(parts) + 1)
            body += b"".join(_i32(p) + _i64(o) + _uvarint(0) for p, o in parts)
            body += _uvarint(0)
        body += _i32(timeout_ms) + _uvarint(0)
    else:
        body = _i32(len(topics))
        for name, parts in topics:
            body += _string(name) + _i32(len(parts))
            body += b"".join(_i32(p) + _i64(o) for p, o in parts)
        body += _i32(timeout_ms)
    sock.sendall(frame(h + body))
    r = Reader(kwire.read_frame(sock))
    check(r.i32() == corr, "correlation id")
    if flex:
        r.tagged_fields()
    check(r.i32() == 0, "throttle_time_ms")
    out = []
    for _ in range(r.compact_array_len() if flex else r.array_len()):
        name = compact_string(r) if flex else r.string()
        parts = []
        for _ in range(r.compact_array_len() if flex else r.array_len()):
            p, lw, err = r.i32(), i64(r), r.i16()
            if flex:
                r.tagged_fields()
            parts.append((p, lw, err))
        if flex:
            r.tagged_fields()
        out.append((name, parts))
    if flex:
        r.tagged_fields()
    r.end()
    return out


def list_offsets(sock, corr, partition, ts):
    """ListOffsets v1 -> (error, offset)."""
    h = kwire.request_header(2, 1, corr)
    body = (_i32(-1) + _i32(1) + _string(TOPIC) + _i32(1) + _i32(partition) + _i64(ts))
    sock.sendall(frame(h + body))
    r = Reader(kwire.read_frame(sock))
    check(r.i32() == corr, "correlation id")
    res = None
    for _ in range(r.array_len()):
        r.string()
        for _ in range(r.array_len()):
            check(r.i32() == partition, "partition")
            err = r.i16()
            i64(r)  # timestamp
            res = (err, i64(r))
    r.end()
    return res


def fetch(sock, corr, partition, offset):
    """Fetch v4 of one partition -> (error, high watermark, [batch base offsets])."""
    h = kwire.request_header(1, 4, corr)
    body = (_i32(-1) + _i32(100) + _i32(0) + _i32(1 << 20) + b"\x00" + _i32(1) +
            _string(TOPIC) + _i32(1) + _i32(partition) + _i64(offset) + _i32(1 << 20))
    sock.sendall(frame(h + body))
    r = Reader(kwire.read_frame(sock))
    check(r.i32() == corr, "correlation id")
    r.i32()  # throttle
    res = None
    for _ in range(r.array_len()):
        r.string()
        for _ in range(r.array_len()):
            check(r.i32() == partition, "partition")
            err, hw = r.i16(), i64(r)
            i64(r)  # last stable offset
            n = r.i32()
            for _ in range(max(n, 0)):
                r._take(16)
            size = r.i32()
            recs = r._take(size) if size > 0 else b""
            bases, pos = [], 0
            while pos + 12 <= len(recs):
                base, blen = struct.unpack(">qi", recs[pos:pos + 12])
                if pos + 12 + blen > len(recs):
                    break  # a partial batch at the end is allowed
                bases.append(base)
                pos += 12 + blen
            res = (err, hw, bases)
    r.end()
    return res


def object_files():
    root = S3 or os.path.join(DATA, "objects")
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            if (S3 and f.endswith("._S3rver_object")) or (not S3 and not f.startswith(".sh-tmp.")):
                out.append(os.path.join(d, f))
    return out


def wait_for(what, cond, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    check(False, "timed out waiting for %s", what)


sock = socket.create_connection((HOST, int(PORT)), timeout=10)
phase = sys.argv[1]
if phase == "before":
    admin = AdminClient({"bootstrap.servers": BOOT})
    for f in admin.create_topics([NewTopic(TOPIC, 2, 1)], request_timeout=15).values():
        f.result()
    p = Producer({"bootstrap.servers": BOOT, "acks": "all", "linger.ms": 5})
    for b in range(3):  # partition 0: batches 0-4, 5-9, 10-14
        for i in range(5):
            p.produce(TOPIC, value=b"p0-%d" % (b * 5 + i), partition=0)
        check(p.flush(30) == 0, "not acknowledged")
    for i in range(3):
        p.produce(TOPIC, value=b"p1-%d" % i, partition=1)
    check(p.flush(30) == 0, "not acknowledged")
    # "wire" is deleted from uploaded chunks, "inside" (below) from the tail
    wait_for("the upload", object_files)
    meta = os.path.join(DATA, "meta.db")
    if os.path.exists(meta):  # the commit follows the PUT
        def committed():
            con = sqlite3.connect("file:%s?mode=ro" % meta, uri=True, timeout=10)
            try:
                return con.execute("SELECT count(*) FROM segment_chunks").fetchone()[0] > 0
            finally:
                con.close()
        wait_for("the chunk commit", committed)

    got = delete_records(sock, 0, 1, [(TOPIC, [(0, 7), (1, -1), (9, 0)]), ("nosuch", [(0, 0)])])
    check(got == [(TOPIC, [(0, 7, 0), (1, 3, 0), (9, -1, 3)]), ("nosuch", [(0, -1, 3)])],
          "v0: %s", got)
    got = delete_records(sock, 1, 2, [(TOPIC, [(0, 1000), (0, -2), (0, 6), (0, 15)])])
    # in order: the store applies the moves in the order they were asked
    check(got == [(TOPIC, [(0, -1, 1), (0, -1, 1), (0, 7, 0), (0, 15, 0)])], "v1: %s", got)
    print("v0 and v1 answered as Kafka:", got)
PY

# A second Python piece for the checks between the deletes: the log start
# is 15 after v1 above only if the last entry went through, so the checks
# on a log start inside a batch run on a second topic.
cat >"$T/inside.py" <<'PY'
import os
import sys
exec(open(os.path.join(os.environ["SCENARIO_TMP"], "wire.py")).read().split("sock = socket")[0])
TOPIC = "inside"
sock = socket.create_connection((HOST, int(PORT)), timeout=10)
admin = AdminClient({"bootstrap.servers": BOOT})
for f in admin.create_topics([NewTopic(TOPIC, 1, 1)], request_timeout=15).values():
    f.result()
p = Producer({"bootstrap.servers": BOOT, "acks": "all", "linger.ms": 5})
for b in range(3):
    for i in range(5):
        p.produce(TOPIC, value=b"%d" % (b * 5 + i), partition=0)
    check(p.flush(30) == 0, "not acknowledged")
got = delete_records(sock, 2, 3, [(TOPIC, [(0, 8)])])
check(got == [(TOPIC, [(0, 8, 0)])], "v2: %s", got)
check(list_offsets(sock, 4, 0, -2) == (0, 8), "earliest %s", list_offsets(sock, 4, 0, -2))
check(list_offsets(sock, 5, 0, -1) == (0, 15), "latest %s", list_offsets(sock, 5, 0, -1))
f = fetch(sock, 6, 0, 7)
check(f[0] == 1 and f[2] == [], "fetch below the log start: %s", f)
f = fetch(sock, 7, 0, 8)
check(f[0] == 0 and f[1] == 15 and f[2][:1] == [5], "fetch at the log start: %s", f)
got = delete_records(sock, 2, 8, [(TOPIC, [(0, -1)])])
check(got == [(TOPIC, [(0, 15, 0)])], "v2 to the high watermark: %s", got)
print("v2, ListOffsets and Fetch around a log start inside a batch: ok")
PY

cat >"$T/after.py" <<'PY'
import os
import sys
exec(open(os.path.join(os.environ["SCENARIO_TMP"], "wire.py")).read().split("sock = socket")[0])
sock = socket.create_connection((HOST, int(PORT)), timeout=10)
for topic, part, start in (("wire", 0, 15), ("wire", 1, 3), ("inside", 0, 15)):
    TOPIC = topic
    check(list_offsets(sock, 1, part, -2) == (0, start), "%s-%d earliest %s", topic, part,
          list_offsets(sock, 1, part, -2))
    check(list_offsets(sock, 2, part, -1) == (0, start), "%s-%d latest %s", topic, part,
          list_offsets(sock, 2, part, -1))
    f = fetch(sock, 3, part, start - 1)
    check(f[0] == 1, "%s-%d fetch below the log start: %s", topic, part, f)
    f = fetch(sock, 4, part, start)
    check(f == (0, start, []), "%s-%d fetch at the log start: %s", topic, part, f)
wait_for("every object to be deleted", lambda: object_files() == [])
meta = os.path.join(DATA, "meta.db")
if os.path.exists(meta):
    def store_objects():
        con = sqlite3.connect("file:%s?mode=ro" % meta, uri=True, timeout=10)
        try:
            return con.execute("SELECT count(*) FROM segment_objects").fetchall() == [(0,)]
        finally:
            con.close()
    wait_for("the store's object list to empty", store_objects)
TOPIC = "wire"
dr = []
p = Producer({"bootstrap.servers": BOOT, "acks": "all"})
p.produce(TOPIC, value=b"new", partition=0, on_delivery=lambda e, m: dr.append((e, m.offset())))
check(p.flush(30) == 0 and dr == [(None, 15)], "new record %s", dr)
c = Consumer({"bootstrap.servers": BOOT, "group.id": "compat-054", "auto.offset.reset": "earliest"})
c.assign([TopicPartition(TOPIC, 0, -2)])  # OFFSET_BEGINNING
m = None
deadline = time.monotonic() + 30
while m is None and time.monotonic() < deadline:
    m = c.poll(0.5)
check(m is not None and m.error() is None and (m.offset(), m.value()) == (15, b"new"),
      "consumed %s", m and (m.offset(), m.value(), m.error()))
c.close()
print("after the restart: log starts kept, objects swept, new data at 15")
PY

sh_broker_start "$B" "${SETTINGS[@]}" || fail "broker did not start"
/usr/bin/python3 "$T/wire.py" before || fail "DeleteRecords v0/v1"
/usr/bin/python3 "$T/inside.py" || fail "DeleteRecords v2 inside a batch"
# at once: the freed objects may not be deleted yet
kill -KILL "$BROKER_PID"
wait "$BROKER_PID" 2>/dev/null || true
echo "killed the broker right after the last DeleteRecords answer"
sh_broker_start "$B" "${SETTINGS[@]}" || fail "broker did not restart"
/usr/bin/python3 "$T/after.py" || fail "after the restart"
grep -q "ERROR" "$BROKER_LOG" && { grep "ERROR" "$BROKER_LOG" | head; fail "the broker logged errors"; }
sh_broker_stop || fail "SIGTERM did not stop the broker"
echo "054: ok"
