"""A deliberately tiny Kafka wire codec for test scenarios.

Scenarios that probe the broker below the level real clients work at
(garbage frames, pipelining, many connections) need to build exact request
bytes and check exact response bytes. This module encodes ApiVersions v0-v4
and Metadata v0-v1 requests and decodes their responses, strictly: a
response with bytes left over or missing raises DecodeError, so a broker
that writes a field too many or too few fails the scenario.

It is test code, written from the field layouts in the protocol reference;
it is not meant to grow into a client.
"""

import socket
import struct

API_PRODUCE = 0
API_METADATA = 3
API_API_VERSIONS = 18

ERR_NONE = 0
ERR_UNSUPPORTED_VERSION = 35
ERR_INVALID_REQUEST = 42

# ApiVersions is flexible (header v2, compact encodings) from v3.
API_VERSIONS_FIRST_FLEXIBLE = 3


class DecodeError(Exception):
    pass


# ---------------------------------------------------------------- encoding

def _i16(v):
    return struct.pack(">h", v)


def _i32(v):
    return struct.pack(">i", v)


def _string(s):
    if s is None:
        return _i16(-1)
    b = s.encode()
    return _i16(len(b)) + b


def _uvarint(v):
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _compact_string(s):
    if s is None:
        return _uvarint(0)
    b = s.encode()
    return _uvarint(len(b) + 1) + b


def frame(payload):
    """Prefix a request or response payload with its int32 size."""
    return _i32(len(payload)) + payload


def request_header(api_key, api_version, correlation_id, client_id="compat",
                   flexible=False):
    """Request header v1, or v2 (v1 + empty tagged fields) when flexible."""
    h = _i16(api_key) + _i16(api_version) + _i32(correlation_id) + _string(client_id)
    if flexible:
        h += _uvarint(0)
    return h


def api_versions_request(version, correlation_id, client_id="compat",
                         software_name="streamhouse-compat", software_version="1.0"):
    """A framed ApiVersions request. Versions above 4 are encoded as v4 would
    be, which is what a newer client sends to an older broker."""
    flexible = version >= API_VERSIONS_FIRST_FLEXIBLE
    body = b""
    if flexible:
        body = _compact_string(software_name) + _compact_string(software_version) + _uvarint(0)
    return frame(request_header(API_API_VERSIONS, version, correlation_id, client_id,
                                flexible) + body)


def metadata_request(version, correlation_id, topics=None, client_id="compat"):
    """A framed Metadata v0 or v1 request. topics=None asks for every topic:
    v0 spells that as an empty array, v1 as a null array."""
    if version not in (0, 1):
        raise ValueError("only Metadata v0-v1 are encoded here")
    if topics is None:
        body = _i32(0) if version == 0 else _i32(-1)
    else:
        body = _i32(len(topics)) + b"".join(_string(t) for t in topics)
    return frame(request_header(API_METADATA, version, correlation_id, client_id) + body)


# ---------------------------------------------------------------- decoding

class Reader:
    """Bounds-checked big-endian reader over one response payload."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def _take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise DecodeError("need %d bytes at offset %d, have %d"
                              % (n, self.pos, len(self.data) - self.pos))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self):
        return struct.unpack(">b", self._take(1))[0]

    def i16(self):
        return struct.unpack(">h", self._take(2))[0]

    def i32(self):
        return struct.unpack(">i", self._take(4))[0]

    def uvarint(self):
        v = shift = 0
        while True:
            if shift > 28:
                raise DecodeError("unsigned varint too long at offset %d" % self.pos)
            b = self._take(1)[0]
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7

    def string(self, nullable=False):
        n = self.i16()
        if n == -1 and nullable:
            return None
        if n < 0:
            raise DecodeError("negative string length %d" % n)
        return self._take(n).decode()

    def array_len(self):
        n = self.i32()
        if n < 0:
            raise DecodeError("negative array length %d" % n)
        return n

    def compact_array_len(self):
        n = self.uvarint()
        if n == 0:
            raise DecodeError("null compact array where one is required")
        return n - 1

    def tagged_fields(self):
        for _ in range(self.uvarint()):
            self.uvarint()                  # tag
            self._take(self.uvarint())      # skipped: we know none of them

    def end(self):
        if self.pos != len(self.data):
            raise DecodeError("%d unexpected trailing bytes at offset %d"
                              % (len(self.data) - self.pos, self.pos))


def read_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def read_frame(sock, max_size=64 << 20):
    """Read one size-prefixed response and return its payload."""
    size = struct.unpack(">i", read_exact(sock, 4))[0]
    if size < 4 or size > max_size:
        raise DecodeError("response size %d out of range" % size)
    return read_exact(sock, size)


def split_frames(buf):
    """Split complete size-prefixed frames off the front of a bytearray.
    Returns (payloads, rest)."""
    out = []
    pos = 0
    while len(buf) - pos >= 4:
        size = struct.unpack_from(">i", buf, pos)[0]
        if size < 4:
            raise DecodeError("response size %d out of range" % size)
        if len(buf) - pos - 4 < size:
            break
        out.append(bytes(buf[pos + 4:pos + 4 + size]))
        pos += 4 + size
    return out, buf[pos:]


def decode_api_versions_response(version, payload):
    """Decode an ApiVersions response to a request of `version`.

    The response header is always v0 (correlation id only). A broker that
    does not support `version` must answer with error 35 and a v0 body, so
    that body layout is used whenever error_code is 35."""
    r = Reader(payload)
    out = {"correlation_id": r.i32()}
    err = r.i16()
    out["error_code"] = err
    body_version = 0 if err == ERR_UNSUPPORTED_VERSION else version
    flexible = body_version >= API_VERSIONS_FIRST_FLEXIBLE
    n = r.compact_array_len() if flexible else r.array_len()
    keys = {}
    for _ in range(n):
        k, lo, hi = r.i16(), r.i16(), r.i16()
        if flexible:
            r.tagged_fields()
        if k in keys:
            raise DecodeError("api key %d listed twice" % k)
        keys[k] = (lo, hi)
    out["api_keys"] = keys
    if body_version >= 1:
        out["throttle_time_ms"] = r.i32()
    if flexible:
        r.tagged_fields()
    r.end()
    return out


def decode_metadata_response(version, payload):
    """Decode a Metadata v0 or v1 response (header v0)."""
    r = Reader(payload)
    out = {"correlation_id": r.i32()}
    brokers = []
    for _ in range(r.array_len()):
        b = {"node_id": r.i32(), "host": r.string(), "port": r.i32()}
        if version >= 1:
            b["rack"] = r.string(nullable=True)
        brokers.append(b)
    out["brokers"] = brokers
    if version >= 1:
        out["controller_id"] = r.i32()
    topics = []
    for _ in range(r.array_len()):
        t = {"error_code": r.i16(), "name": r.string()}
        if version >= 1:
            t["is_internal"] = r.i8() != 0
        parts = []
        for _ in range(r.array_len()):
            p = {"error_code": r.i16(), "partition_index": r.i32(), "leader_id": r.i32()}
            p["replica_nodes"] = [r.i32() for _ in range(r.array_len())]
            p["isr_nodes"] = [r.i32() for _ in range(r.array_len())]
            parts.append(p)
        t["partitions"] = parts
        topics.append(t)
    out["topics"] = topics
    r.end()
    return out


# ---------------------------------------------------------------- checks

def check_api_versions(version, resp, correlation_id):
    """Raise AssertionError unless `resp` is a correct answer to an ApiVersions
    request of `version` with `correlation_id`. Returns the advertised range
    of ApiVersions itself."""
    if resp["correlation_id"] != correlation_id:
        raise AssertionError("correlation id %d, expected %d"
                             % (resp["correlation_id"], correlation_id))
    keys = resp["api_keys"]
    if API_API_VERSIONS not in keys:
        raise AssertionError("ApiVersions (18) missing from the advertised APIs: %r" % keys)
    lo, hi = keys[API_API_VERSIONS]
    if resp["error_code"] == ERR_UNSUPPORTED_VERSION:
        # Allowed only when the version really is above what is advertised.
        if lo <= version <= hi:
            raise AssertionError("v%d answered UNSUPPORTED_VERSION but %d-%d is advertised"
                                 % (version, lo, hi))
        return lo, hi
    if resp["error_code"] != ERR_NONE:
        raise AssertionError("error_code %d for ApiVersions v%d" % (resp["error_code"], version))
    if not lo <= version <= hi:
        raise AssertionError("v%d answered although only %d-%d is advertised" % (version, lo, hi))
    for k, (a, b) in keys.items():
        if a < 0 or b < a:
            raise AssertionError("api key %d has a bad range %d-%d" % (k, a, b))
    if API_METADATA not in keys:
        raise AssertionError("Metadata (3) is not advertised")
    return lo, hi


def connect(host, port, timeout=10.0):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def roundtrip(sock, request_frame):
    sock.sendall(request_frame)
    return read_frame(sock)
