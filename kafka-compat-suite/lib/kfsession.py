"""Fetch requests with sessions (KIP-227) for the fetch session scenarios
(070-074): Fetch v7 and v11 (classic encoding) and v12 (flexible), with a
session id, an epoch, the partitions to add or update and the partitions
to forget, and a strict decoder of the answers that keeps the order of
topics and partitions (an incremental answer lists only some of them) and
reads the records of uncompressed batches.

Decoders are strict: bytes left over or missing raise kwire.DecodeError.

Test code written from the protocol reference (the FetchRequest and
FetchResponse schemas, RECORD-BATCH.md); it is not a client.
"""

import struct

import kwire
from kwire import Reader, _i16, _i32, _string, _uvarint, frame

API_FETCH = 1

# Kafka error codes the scenarios expect
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71
FETCH_SESSION_TOPIC_ID_ERROR = 106

INITIAL_EPOCH = 0
FINAL_EPOCH = -1

VERSIONS = (7, 11, 12)


def _i8(v):
    return struct.pack(">b", v)


def _i64(v):
    return struct.pack(">q", v)


def _r64(r):
    return struct.unpack(">q", r._take(8))[0]


def _cstring(s):
    b = s.encode() if isinstance(s, str) else s
    return _uvarint(len(b) + 1) + b


def _group(items):
    """[(topic, x)] -> [(topic, [x, ...])], topics in first-seen order."""
    out = []
    for topic, x in items:
        for t, xs in out:
            if t == topic:
                xs.append(x)
                break
        else:
            out.append((topic, [x]))
    return out


def fetch_request(version, corr, session_id, epoch, partitions=(), forgotten=(),
                  max_wait_ms=0, min_bytes=1, max_bytes=64 << 20, isolation_level=0):
    """A framed Fetch v7, v11 or v12.
    partitions: [(topic, partition, fetch_offset, partition_max_bytes)];
    forgotten: [(topic, partition)]."""
    if version not in VERSIONS:
        raise ValueError("Fetch v%d is not encoded here" % version)
    flex = version >= 12

    def arr(n):
        return _uvarint(n + 1) if flex else _i32(n)

    def string(s):
        return _cstring(s) if flex else _string(s)

    h = kwire.request_header(API_FETCH, version, corr, flexible=flex)
    body = (_i32(-1) + _i32(max_wait_ms) + _i32(min_bytes) + _i32(max_bytes) +
            _i8(isolation_level) + _i32(session_id) + _i32(epoch))
    topics = _group([(t, (p, off, pmax)) for t, p, off, pmax in partitions])
    body += arr(len(topics))
    for name, parts in topics:
        body += string(name) + arr(len(parts))
        for idx, off, pmax in parts:
            body += _i32(idx)
            if version >= 9:
                body += _i32(-1)            # current leader epoch: unknown
            body += _i64(off)
            if version >= 12:
                body += _i32(-1)            # last fetched epoch
            body += _i64(-1)                # log start offset (followers only)
            body += _i32(pmax)
            if flex:
                body += _uvarint(0)
        if flex:
            body += _uvarint(0)
    gone = _group(list(forgotten))
    body += arr(len(gone))
    for name, parts in gone:
        body += string(name) + arr(len(parts)) + b"".join(_i32(p) for p in parts)
        if flex:
            body += _uvarint(0)
    if version >= 11:
        body += string("")                  # rack id
    if flex:
        body += _uvarint(0)
    return frame(h + body)


def decode_fetch(version, payload):
    """{"correlation_id", "throttle_time_ms", "error_code", "session_id",
    "topics": [name, ...] (as the answer groups them), "parts": [((topic,
    partition), {error_code, high_watermark, last_stable_offset,
    log_start_offset, aborted, preferred_read_replica, records}), ...] in
    answer order}."""
    flex = version >= 12
    r = Reader(payload)
    out = {"correlation_id": r.i32()}
    if flex:
        r.tagged_fields()
    out["throttle_time_ms"] = r.i32()
    out["error_code"] = r.i16()
    out["session_id"] = r.i32()
    out["topics"] = []
    out["parts"] = []

    def arr():
        return r.compact_array_len() if flex else r.array_len()

    for _ in range(arr()):
        if flex:
            name = r._take(r.uvarint() - 1).decode()
        else:
            name = r.string()
        out["topics"].append(name)
        for _ in range(arr()):
            idx = r.i32()
            p = {"error_code": r.i16(), "high_watermark": _r64(r),
                 "last_stable_offset": _r64(r), "log_start_offset": _r64(r)}
            n = (r.uvarint() - 1) if flex else r.i32()
            if n < -1:
                raise kwire.DecodeError("aborted transactions length %d" % n)
            aborted = None
            if n >= 0:
                aborted = []
                for _ in range(n):
                    aborted.append((_r64(r), _r64(r)))
                    if flex:
                        r.tagged_fields()
            p["aborted"] = aborted
            p["preferred_read_replica"] = r.i32() if version >= 11 else -1
            n = (r.uvarint() - 1) if flex else r.i32()
            if n < -1:
                raise kwire.DecodeError("records length %d" % n)
            p["records"] = None if n == -1 else r._take(n)
            if flex:
                r.tagged_fields()
            out["parts"].append(((name, idx), p))
        if flex:
            r.tagged_fields()
    if flex:
        r.tagged_fields()
    r.end()
    return out


# ---------------------------------------------------------------- records

def _varint(r):
    """Zig-zag varint (records)."""
    v = shift = 0
    while True:
        b = r._take(1)[0]
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 63:
            raise kwire.DecodeError("varint too long")
    return (v >> 1) ^ -(v & 1)


def records_of(data):
    """[(offset, key, value)] of every whole batch in a records field.
    Only uncompressed batches (attributes & 7 == 0) are opened; a partial
    batch at the end (cut by a byte limit) is skipped, as clients do."""
    out = []
    pos, n = 0, len(data or b"")
    while n - pos >= 12:
        base, length = struct.unpack_from(">qi", data, pos)
        if n - pos - 12 < length:
            break
        attributes = struct.unpack_from(">h", data, pos + 21)[0]
        count = struct.unpack_from(">i", data, pos + 57)[0]
        if attributes & 7:
            raise kwire.DecodeError("batch at %d is compressed" % base)
        r = Reader(data[pos + 61:pos + 12 + length])
        for _ in range(count):
            rec = Reader(r._take(_varint(r)))
            rec.i8()                                    # attributes
            _varint(rec)                                # timestamp delta
            delta = _varint(rec)
            kl = _varint(rec)
            key = None if kl < 0 else rec._take(kl)
            vl = _varint(rec)
            value = None if vl < 0 else rec._take(vl)
            for _ in range(_varint(rec)):               # headers
                rec._take(_varint(rec))
                hl = _varint(rec)
                if hl >= 0:
                    rec._take(hl)
            rec.end()
            out.append((base + delta, key, value))
        r.end()
        pos += 12 + length
    return out


# --------------------------------------------------------------- a client

class Conn:
    """One connection with its own correlation ids."""

    def __init__(self, bootstrap, timeout=30.0):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = kwire.connect(host, int(port), timeout=timeout)
        self.corr = 0

    def send_fetch(self, version, session_id, epoch, **kw):
        """Send without waiting; returns what recv_fetch needs."""
        self.corr += 1
        self.sock.sendall(fetch_request(version, self.corr, session_id, epoch, **kw))
        return (version, self.corr)

    def recv_fetch(self, sent):
        version, corr = sent
        resp = decode_fetch(version, kwire.read_frame(self.sock, max_size=256 << 20))
        if resp["correlation_id"] != corr:
            raise AssertionError("correlation id %d, sent %d" % (resp["correlation_id"], corr))
        return resp

    def fetch(self, version, session_id, epoch, **kw):
        return self.recv_fetch(self.send_fetch(version, session_id, epoch, **kw))

    def close(self):
        self.sock.close()
