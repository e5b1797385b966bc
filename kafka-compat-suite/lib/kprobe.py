"""Byte-level data-path requests for the durability scenarios (060-069).

What the scenarios need below the client level:
 - RecordBatch v2 bytes with chosen keys, values, headers, timestamps,
   attributes and magic (CRC-32C computed here), so that a test can corrupt
   exactly one thing;
 - Produce v3-v8 requests with any acks and any number of topics and
   partitions, and their responses (strictly decoded);
 - Fetch v4 and v11 requests (any offset, negative ones included) and their
   responses, with the records bytes kept whole;
 - ListOffsets v1, v4 and v9 (flexible; LATEST_TIERED -5 needs v9);
 - a walk over stored batches that checks their framing, base offsets and
   (optionally) CRCs, which is how the scenarios see gaps or overlaps that a
   client library would hide.
Decoders are strict: bytes left over or missing raise kwire.DecodeError.

Test code written from the protocol reference (RECORD-BATCH.md and the
message schemas in protocol/spec); it is not a client.
"""

import struct

import kwire
from kwire import Reader, _i16, _i32, _string, _uvarint, frame

API_PRODUCE = 0
API_FETCH = 1
API_LIST_OFFSETS = 2

# Kafka error codes these scenarios expect
NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
INVALID_REQUIRED_ACKS = 21
UNSUPPORTED_COMPRESSION_TYPE = 76
INVALID_RECORD = 87

# LATEST_TIERED and friends
TS_LATEST = -1
TS_EARLIEST = -2
TS_LATEST_TIERED = -5

BATCH_OVERHEAD = 61     # baseOffset .. recordCount, no records


def _i8(v):
    return struct.pack(">b", v)


def _i64(v):
    return struct.pack(">q", v)


def _compact_string(s):
    b = s.encode() if isinstance(s, str) else s
    return _uvarint(len(b) + 1) + b


# ------------------------------------------------------------- CRC-32C

def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    tab = _CRC
    for b in data:
        c = tab[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


# ---------------------------------------------------------- record batch

def varint(v):
    """Zig-zag varint (signed), as records use."""
    return _uvarint(((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF)


def _bytes_field(b):
    if b is None:
        return varint(-1)
    return varint(len(b)) + b


def encode_record(offset_delta, ts_delta, key, value, headers=()):
    body = (b"\x00" + varint(ts_delta) + varint(offset_delta) + _bytes_field(key) +
            _bytes_field(value) + varint(len(headers)))
    for hk, hv in headers:
        hk = hk.encode() if isinstance(hk, str) else hk
        body += varint(len(hk)) + hk + _bytes_field(hv)
    return varint(len(body)) + body


def record_batch(records, base_ts=1700000000000, attributes=0, magic=2, producer_id=-1,
                 producer_epoch=-1, base_sequence=-1, records_bytes=None):
    """One RecordBatch v2. records: [(key, value, headers, ts)] with ts
    absolute (None = base_ts). records_bytes replaces the encoded records
    (with len(records) still used for the counts), to build bad batches."""
    enc = []
    max_ts = base_ts
    for i, (k, v, h, ts) in enumerate(records):
        ts = base_ts if ts is None else ts
        max_ts = max(max_ts, ts)
        enc.append(encode_record(i, ts - base_ts, k, v, h))
    body = b"".join(enc) if records_bytes is None else records_bytes
    n = len(records)
    after_crc = (_i16(attributes) + _i32(n - 1) + _i64(base_ts) + _i64(max_ts) +
                 _i64(producer_id) + _i16(producer_epoch) + _i32(base_sequence) +
                 _i32(n) + body)
    rest = _i32(-1) + _i8(magic) + struct.pack(">I", crc32c(after_crc)) + after_crc
    return _i64(0) + _i32(len(rest)) + rest


def batch_of_size(total, base_ts=1700000000000, key=b"k"):
    """A valid single-record batch whose 12 + batchLength is exactly
    `total` bytes (the size Kafka compares with max.message.bytes).
    Returns (batch, value)."""
    n = 0
    for _ in range(4):      # the varint lengths settle within a few rounds
        b = record_batch([(key, b"x" * n, (), None)], base_ts)
        if len(b) == total:
            return b, b"x" * n
        n += total - len(b)
        if n < 0:
            raise ValueError("%d bytes is too small for a batch" % total)
    raise ValueError("could not size a batch to %d bytes" % total)


# --------------------------------------------------------------- produce

def produce_request(version, corr, topics, acks=-1, timeout_ms=30000,
                    transactional_id=None):
    """Produce v3-v8 (classic encoding). topics: [(name, [(partition,
    records_bytes_or_None)])]."""
    if not 3 <= version <= 8:
        raise ValueError("Produce v%d is not encoded here" % version)
    h = kwire.request_header(API_PRODUCE, version, corr)
    body = _string(transactional_id) + _i16(acks) + _i32(timeout_ms) + _i32(len(topics))
    for name, parts in topics:
        body += _string(name) + _i32(len(parts))
        for idx, rec in parts:
            body += _i32(idx)
            body += _i32(-1) if rec is None else _i32(len(rec)) + rec
    return frame(h + body)


def decode_produce(version, payload):
    """{(topic, partition): {error_code, base_offset, log_append_time_ms,
    log_start_offset, record_errors, error_message}} plus "correlation_id"."""
    r = Reader(payload)
    out = {"correlation_id": r.i32()}
    for _ in range(r.array_len()):
        name = r.string()
        for _ in range(r.array_len()):
            idx = r.i32()
            p = {"error_code": r.i16(), "base_offset": _r64(r), "log_append_time_ms": _r64(r)}
            if version >= 5:
                p["log_start_offset"] = _r64(r)
            if version >= 8:
                p["record_errors"] = [(r.i32(), r.string(nullable=True))
                                      for _ in range(r.array_len())]
                p["error_message"] = r.string(nullable=True)
            out[(name, idx)] = p
    out["throttle_time_ms"] = r.i32()
    r.end()
    return out


def _r64(r):
    return struct.unpack(">q", r._take(8))[0]


# ----------------------------------------------------------------- fetch

def fetch_request(version, corr, topics, max_wait_ms=0, min_bytes=0, max_bytes=64 << 20,
                  isolation_level=0):
    """Fetch v4 or v11 (sessionless). topics: [(name, [(partition, offset,
    partition_max_bytes)])]."""
    if version not in (4, 11):
        raise ValueError("Fetch v%d is not encoded here" % version)
    h = kwire.request_header(API_FETCH, version, corr)
    body = _i32(-1) + _i32(max_wait_ms) + _i32(min_bytes) + _i32(max_bytes) + _i8(isolation_level)
    if version >= 7:
        body += _i32(0) + _i32(-1)      # session id, epoch: no session
    body += _i32(len(topics))
    for name, parts in topics:
        body += _string(name) + _i32(len(parts))
        for idx, off, pmax in parts:
            body += _i32(idx)
            if version >= 9:
                body += _i32(-1)        # current leader epoch: unknown
            body += _i64(off)
            if version >= 5:
                body += _i64(-1)        # log start offset (followers only)
            body += _i32(pmax)
    if version >= 7:
        body += _i32(0)                 # forgotten topics
    if version >= 11:
        body += _string("")
    return frame(h + body)


def decode_fetch(version, payload):
    """{(topic, partition): {error_code, high_watermark, last_stable_offset,
    log_start_offset, aborted, records}} plus top-level fields."""
    r = Reader(payload)
    out = {"correlation_id": r.i32(), "throttle_time_ms": r.i32()}
    if version >= 7:
        out["error_code"] = r.i16()
        out["session_id"] = r.i32()
    for _ in range(r.array_len()):
        name = r.string()
        for _ in range(r.array_len()):
            idx = r.i32()
            p = {"error_code": r.i16(), "high_watermark": _r64(r),
                 "last_stable_offset": _r64(r)}
            if version >= 5:
                p["log_start_offset"] = _r64(r)
            n = r.i32()
            if n < -1:
                raise kwire.DecodeError("aborted transactions length %d" % n)
            p["aborted"] = None if n == -1 else [(_r64(r), _r64(r)) for _ in range(n)]
            if version >= 11:
                p["preferred_read_replica"] = r.i32()
            n = r.i32()
            if n < -1:
                raise kwire.DecodeError("records length %d" % n)
            p["records"] = None if n == -1 else r._take(n)
            out[(name, idx)] = p
    r.end()
    return out


# ----------------------------------------------------------- list offsets

def list_offsets_request(version, corr, topics, isolation_level=0):
    """ListOffsets v1, v4 or v9. topics: [(name, [(partition, timestamp)])]."""
    if version not in (1, 4, 9):
        raise ValueError("ListOffsets v%d is not encoded here" % version)
    flexible = version >= 6
    h = kwire.request_header(API_LIST_OFFSETS, version, corr, flexible=flexible)
    body = _i32(-1)
    if version >= 2:
        body += _i8(isolation_level)

    def arr(n):
        return _uvarint(n + 1) if flexible else _i32(n)

    body += arr(len(topics))
    for name, parts in topics:
        body += (_compact_string(name) if flexible else _string(name)) + arr(len(parts))
        for idx, ts in parts:
            body += _i32(idx)
            if version >= 4:
                body += _i32(-1)
            body += _i64(ts)
            if flexible:
                body += _uvarint(0)
        if flexible:
            body += _uvarint(0)
    if flexible:
        body += _uvarint(0)
    return frame(h + body)


def decode_list_offsets(version, payload):
    """{(topic, partition): (error_code, timestamp, offset, leader_epoch)}."""
    flexible = version >= 6
    r = Reader(payload)
    out = {"correlation_id": r.i32()}
    if flexible:
        r.tagged_fields()
    if version >= 2:
        out["throttle_time_ms"] = r.i32()
    nt = r.compact_array_len() if flexible else r.array_len()
    for _ in range(nt):
        if flexible:
            name = r._take(r.uvarint() - 1).decode()
        else:
            name = r.string()
        np_ = r.compact_array_len() if flexible else r.array_len()
        for _ in range(np_):
            idx, err = r.i32(), r.i16()
            ts, off = _r64(r), _r64(r)
            epoch = r.i32() if version >= 4 else -1
            if flexible:
                r.tagged_fields()
            out[(name, idx)] = (err, ts, off, epoch)
        if flexible:
            r.tagged_fields()
    if flexible:
        r.tagged_fields()
    r.end()
    return out


# ------------------------------------------------------------- a session

class Conn:
    """One connection with its own correlation ids; call() sends a request
    built by fn(corr, ...) and decodes the answer."""

    def __init__(self, bootstrap, timeout=30.0):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = kwire.connect(host, int(port), timeout=timeout)
        self.corr = 0

    def next_corr(self):
        self.corr += 1
        return self.corr

    def produce(self, version, topics, acks=-1, timeout_ms=30000):
        c = self.next_corr()
        self.sock.sendall(produce_request(version, c, topics, acks, timeout_ms))
        if acks == 0:
            return None
        resp = decode_produce(version, kwire.read_frame(self.sock))
        if resp["correlation_id"] != c:
            raise AssertionError("correlation id %d, sent %d" % (resp["correlation_id"], c))
        return resp

    def fetch(self, version, topics, **kw):
        c = self.next_corr()
        self.sock.sendall(fetch_request(version, c, topics, **kw))
        resp = decode_fetch(version, kwire.read_frame(self.sock, max_size=256 << 20))
        if resp["correlation_id"] != c:
            raise AssertionError("correlation id %d, sent %d" % (resp["correlation_id"], c))
        return resp

    def list_offsets(self, version, topics):
        c = self.next_corr()
        self.sock.sendall(list_offsets_request(version, c, topics))
        resp = decode_list_offsets(version, kwire.read_frame(self.sock))
        if resp["correlation_id"] != c:
            raise AssertionError("correlation id %d, sent %d" % (resp["correlation_id"], c))
        return resp

    def close(self):
        self.sock.close()


# -------------------------------------------------------- stored batches

class Batch:
    __slots__ = ("base_offset", "length", "epoch", "magic", "crc", "attributes",
                 "last_offset_delta", "base_ts", "max_ts", "producer_id",
                 "producer_epoch", "base_sequence", "count", "raw")

    @property
    def next_offset(self):
        return self.base_offset + self.last_offset_delta + 1


def iter_batches(records, check_crc=False):
    """Whole batches in a Fetch response's records bytes. A partial batch
    at the end (the byte limit cut it) is skipped, as clients do."""
    pos, n = 0, len(records)
    while n - pos >= 12:
        base, length = struct.unpack_from(">qi", records, pos)
        if length < 49:
            raise kwire.DecodeError("batch at %d: length %d" % (base, length))
        if n - pos - 12 < length:
            return
        b = Batch()
        b.base_offset, b.length = base, length
        (b.epoch, b.magic, b.crc, b.attributes, b.last_offset_delta, b.base_ts, b.max_ts,
         b.producer_id, b.producer_epoch, b.base_sequence,
         b.count) = struct.unpack_from(">ibIhiqqqhii", records, pos + 12)
        b.raw = records[pos:pos + 12 + length]
        if b.magic != 2:
            raise kwire.DecodeError("batch at %d: magic %d" % (base, b.magic))
        if check_crc and crc32c(b.raw[21:]) != b.crc:
            raise kwire.DecodeError("batch at %d: CRC mismatch" % base)
        yield b
        pos += 12 + length


def walk_partition(conn, topic, partition, start=0, end=None, check_crc=False,
                   max_bytes=8 << 20):
    """Every stored batch of a partition from `start` to the high watermark
    (or `end`), through raw Fetch v4. Checks that each batch begins exactly
    where the previous one ended (no gap, no overlap, no duplicate offset)
    and that the last ends at the high watermark. Returns (batches, hw)."""
    out = []
    nxt = start
    hw = None
    while True:
        resp = conn.fetch(4, [(topic, [(partition, nxt, max_bytes)])], max_bytes=max_bytes)
        p = resp[(topic, partition)]
        if p["error_code"] != NONE:
            raise AssertionError("fetch %s-%d at %d: error %d" % (topic, partition, nxt,
                                                                 p["error_code"]))
        hw = p["high_watermark"] if end is None else end
        if nxt >= hw:
            break
        got = False
        for b in iter_batches(p["records"] or b"", check_crc):
            if b.next_offset <= nxt and not out:
                continue        # a batch that starts before `start`
            if b.base_offset != nxt:
                raise AssertionError("%s-%d: batch at %d where %d was expected (gap or "
                                     "overlap)" % (topic, partition, b.base_offset, nxt))
            if b.count != b.last_offset_delta + 1:
                raise AssertionError("%s-%d: batch at %d has %d records but offset delta %d"
                                     % (topic, partition, b.base_offset, b.count,
                                        b.last_offset_delta))
            out.append(b)
            nxt = b.next_offset
            got = True
            if nxt >= hw:
                break
        if not got:
            raise AssertionError("%s-%d: fetch at %d below the high watermark %d returned "
                                 "no whole batch" % (topic, partition, nxt, hw))
    if nxt != hw:
        raise AssertionError("%s-%d: batches end at %d, high watermark %d"
                             % (topic, partition, nxt, hw))
    return out, hw
