"""Byte-level helpers for the idempotent-producer scenarios (040-049).

Builds RecordBatch v2 bytes with a chosen producer id, epoch and base
sequence (CRC-32C computed here), and encodes/decodes exactly the requests
those scenarios send: InitProducerId v1 (classic) and v3/v4 (flexible),
Produce v8 (classic), ListOffsets v1 and DescribeProducers v0 (flexible).
Decoders are strict: bytes left over or missing raise kwire.DecodeError.

Test code written from the protocol reference (RECORD-BATCH.md and the
message schemas); not a client.
"""

import struct
import time

import kwire
from kwire import Reader, _i16, _i32, _string, _uvarint, frame

API_PRODUCE = 0
API_LIST_OFFSETS = 2
API_INIT_PRODUCER_ID = 22
API_DESCRIBE_PRODUCERS = 61

# Kafka error codes the scenarios look for
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
COORDINATOR_NOT_AVAILABLE = 15
INVALID_REQUEST = 42
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
UNKNOWN_PRODUCER_ID = 59
PRODUCER_FENCED = 90


def _i64(v):
    return struct.pack(">q", v)


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
    for b in data:
        c = _CRC[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


# ---------------------------------------------------------- record batch

def _varint(v):
    return _uvarint((v << 1) ^ (v >> 63))


def record_batch(producer_id, epoch, base_seq, values, timestamp=None):
    """One uncompressed batch holding `values` (bytes each, null keys),
    stamped now unless told otherwise (old timestamps fall to retention.ms)."""
    if timestamp is None:
        timestamp = int(time.time() * 1000)
    recs = b""
    for i, v in enumerate(values):
        body = (b"\x00" + _varint(0) + _varint(i) + _varint(-1) +
                _varint(len(v)) + v + _varint(0))
        recs += _varint(len(body)) + body
    after_crc = (_i16(0) +                      # attributes
                 _i32(len(values) - 1) +        # last offset delta
                 _i64(timestamp) + _i64(timestamp) +
                 _i64(producer_id) + _i16(epoch) + _i32(base_seq) +
                 _i32(len(values)) + recs)
    head = _i32(-1) + b"\x02" + struct.pack(">I", crc32c(after_crc))
    batch = head + after_crc
    return _i64(0) + _i32(len(batch)) + batch


# -------------------------------------------------------------- requests

def _compact_nullable_string(s):
    if s is None:
        return _uvarint(0)
    b = s.encode()
    return _uvarint(len(b) + 1) + b


def init_producer_id_request(version, corr, transactional_id=None, timeout_ms=60000,
                             producer_id=-1, epoch=-1):
    flexible = version >= 2
    h = kwire.request_header(API_INIT_PRODUCER_ID, version, corr, flexible=flexible)
    if flexible:
        body = _compact_nullable_string(transactional_id) + _i32(timeout_ms)
    else:
        body = _string(transactional_id) + _i32(timeout_ms)
    if version >= 3:
        body += _i64(producer_id) + _i16(epoch)
    if flexible:
        body += _uvarint(0)
    return frame(h + body)


def decode_init_producer_id(version, payload):
    r = Reader(payload)
    out = {"correlation_id": r.i32()}
    if version >= 2:
        r.tagged_fields()
    out["throttle_time_ms"] = r.i32()
    out["error_code"] = r.i16()
    out["producer_id"] = struct.unpack(">q", r._take(8))[0]
    out["producer_epoch"] = r.i16()
    if version >= 2:
        r.tagged_fields()
    r.end()
    return out


def produce_request(corr, topic, partition, batch, acks=-1, timeout_ms=30000):
    """Produce v8: one topic, one partition."""
    h = kwire.request_header(API_PRODUCE, 8, corr)
    body = (_string(None) + _i16(acks) + _i32(timeout_ms) +
            _i32(1) + _string(topic) + _i32(1) + _i32(partition) +
            _i32(len(batch)) + batch)
    return frame(h + body)


def decode_produce(payload):
    """Produce v8 response with one topic and one partition: that partition."""
    r = Reader(payload)
    out = {"correlation_id": r.i32()}
    parts = []
    for _ in range(r.array_len()):
        r.string()
        for _ in range(r.array_len()):
            p = {"index": r.i32(), "error_code": r.i16()}
            p["base_offset"] = struct.unpack(">q", r._take(8))[0]
            p["log_append_time_ms"] = struct.unpack(">q", r._take(8))[0]
            p["log_start_offset"] = struct.unpack(">q", r._take(8))[0]
            for _ in range(r.array_len()):
                r.i32()
                r.string(nullable=True)
            p["error_message"] = r.string(nullable=True)
            parts.append(p)
    r.i32()  # throttle
    r.end()
    if len(parts) != 1:
        raise kwire.DecodeError("expected one partition, got %d" % len(parts))
    out.update(parts[0])
    return out


def list_offsets_request(corr, topic, partition, timestamp=-1):
    """ListOffsets v1 (latest by default)."""
    h = kwire.request_header(API_LIST_OFFSETS, 1, corr)
    body = (_i32(-1) + _i32(1) + _string(topic) + _i32(1) + _i32(partition) +
            _i64(timestamp))
    return frame(h + body)


def decode_list_offsets(payload):
    r = Reader(payload)
    r.i32()
    res = None
    for _ in range(r.array_len()):
        r.string()
        for _ in range(r.array_len()):
            idx, err = r.i32(), r.i16()
            r._take(8)  # timestamp
            off = struct.unpack(">q", r._take(8))[0]
            res = (idx, err, off)
    r.end()
    return res


def describe_producers_request(corr, topic, partitions):
    h = kwire.request_header(API_DESCRIBE_PRODUCERS, 0, corr, flexible=True)
    body = (_uvarint(2) + kwire._compact_string(topic) + _uvarint(len(partitions) + 1) +
            b"".join(_i32(p) for p in partitions) + _uvarint(0) + _uvarint(0))
    return frame(h + body)


def decode_describe_producers(payload):
    """{partition: (error_code, [producer dicts])} of the one topic."""
    r = Reader(payload)
    r.i32()
    r.tagged_fields()
    r.i32()  # throttle
    out = {}
    for _ in range(r.compact_array_len()):
        n = r.uvarint() - 1
        r._take(n)
        for _ in range(r.compact_array_len()):
            idx, err = r.i32(), r.i16()
            n = r.uvarint()
            if n:
                r._take(n - 1)
            prods = []
            for _ in range(r.compact_array_len()):
                pr = {"producer_id": struct.unpack(">q", r._take(8))[0],
                      "producer_epoch": r.i32(), "last_sequence": r.i32(),
                      "last_timestamp": struct.unpack(">q", r._take(8))[0],
                      "coordinator_epoch": r.i32(),
                      "current_txn_start_offset": struct.unpack(">q", r._take(8))[0]}
                r.tagged_fields()
                prods.append(pr)
            r.tagged_fields()
            out[idx] = (err, prods)
        r.tagged_fields()
    r.tagged_fields()
    r.end()
    return out
