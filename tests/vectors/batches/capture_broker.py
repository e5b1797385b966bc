#!/usr/bin/python3
"""A tiny fake Kafka broker that records what librdkafka produces.

It answers just enough of the protocol for a producer to send one batch:
ApiVersions (v0-v3), Metadata (v0-v4: one broker, itself; every asked-for
topic has one partition it leads), InitProducerId (v0-v1, for idempotent
producers) and Produce (v3-v7: the records bytes of every partition are
written to a file, and the answer is base offset 0, no error). Anything
else closes the connection.

Advertised ranges matter to librdkafka 2.0.2: it enables gzip, snappy and
lz4 only if Produce's range contains 0, and zstd only if Produce contains 7
and Fetch contains 10, so we advertise Produce 0-7 and Fetch 0-11; its lz4
feature flag also needs FindCoordinator v0 in the list (a leftover from
0.8.2 detection). Fetch and FindCoordinator are advertised, never served.

Usage (Debian's python3):
  capture_broker.py serve PORT OUTDIR      serve until killed (for kcat)
  capture_broker.py confluent PORT OUTDIR  capture one batch per codec with
                                           confluent-kafka and write
                                           rdk_<codec>.bin/.expect
Ports: use 49000-49099 (the range this project reserves for helpers).
"""
import os
import socket
import socketserver
import struct
import sys
import threading

API_PRODUCE, API_FETCH, API_METADATA, API_FINDCOORD = 0, 1, 3, 10
API_APIVERSIONS, API_INITPID = 18, 22
ADVERTISED = [
    (API_PRODUCE, 0, 7),
    (API_FETCH, 0, 11),
    (API_METADATA, 0, 4),
    (API_FINDCOORD, 0, 2),
    (API_APIVERSIONS, 0, 3),
    (API_INITPID, 0, 1),
]


class Reader:
    def __init__(self, buf):
        self.b, self.p = buf, 0

    def take(self, n):
        if n < 0 or self.p + n > len(self.b):
            raise ValueError("truncated request")
        v = self.b[self.p:self.p + n]
        self.p += n
        return v

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def uvarint(self):
        v, shift = 0, 0
        while True:
            c = self.take(1)[0]
            v |= (c & 0x7F) << shift
            if not c & 0x80:
                return v
            shift += 7

    def string(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def bytes_(self):
        n = self.i32()
        return None if n < 0 else self.take(n)

    def skip_tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


def s16(s):
    if s is None:
        return struct.pack(">h", -1)
    e = s.encode()
    return struct.pack(">h", len(e)) + e


def uvarint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


class Capture:
    """Where produced records go: one file per partition append."""

    def __init__(self, outdir):
        self.outdir = outdir
        self.lock = threading.Lock()
        self.count = 0
        self.saved = []          # (topic, partition, path)
        self.event = threading.Event()

    def save(self, topic, partition, data):
        with self.lock:
            self.count += 1
            path = os.path.join(self.outdir, "capture_%s_p%d_%d.bin" % (topic, partition, self.count))
            with open(path, "wb") as f:
                f.write(data)
            self.saved.append((topic, partition, path))
            self.event.set()


class Handler(socketserver.BaseRequestHandler):
    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.request.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def handle(self):
        try:
            while True:
                size = struct.unpack(">i", self.recv_exact(4))[0]
                if size <= 0 or size > 64 << 20:
                    return
                frame = self.recv_exact(size)
                resp = self.dispatch(Reader(frame))
                if resp is None:
                    return
                self.request.sendall(struct.pack(">i", len(resp)) + resp)
        except (EOFError, ConnectionError, ValueError):
            return

    def dispatch(self, r):
        key, ver, corr = r.i16(), r.i16(), r.i32()
        r.string()  # client id
        flexible = key == API_APIVERSIONS and ver >= 3
        if flexible:
            r.skip_tags()
        head = struct.pack(">i", corr)
        if key == API_APIVERSIONS:
            return head + self.api_versions(ver)
        if key == API_METADATA and ver <= 4:
            return head + self.metadata(r, ver)
        if key == API_INITPID and ver <= 1:
            return head + struct.pack(">ihqh", 0, 0, 4242, 0)
        if key == API_PRODUCE and 3 <= ver <= 7:
            return head + self.produce(r, ver)
        sys.stderr.write("capture_broker: unhandled api %d v%d\n" % (key, ver))
        return None

    def api_versions(self, ver):
        if ver >= 3:
            body = struct.pack(">h", 0) + uvarint(len(ADVERTISED) + 1)
            for k, lo, hi in ADVERTISED:
                body += struct.pack(">hhh", k, lo, hi) + uvarint(0)
            return body + struct.pack(">i", 0) + uvarint(0)
        body = struct.pack(">hi", 0, len(ADVERTISED))
        for k, lo, hi in ADVERTISED:
            body += struct.pack(">hhh", k, lo, hi)
        if ver >= 1:
            body += struct.pack(">i", 0)
        return body

    def metadata(self, r, ver):
        n = r.i32()
        topics = [r.string() for _ in range(max(n, 0))]
        host, port = self.server.server_address
        out = b""
        if ver >= 3:
            out += struct.pack(">i", 0)                       # throttle
        out += struct.pack(">i", 1) + struct.pack(">i", 1) + s16(host) + struct.pack(">i", port)
        if ver >= 1:
            out += s16(None)                                  # rack
        if ver >= 2:
            out += s16("capture")                             # cluster id
        if ver >= 1:
            out += struct.pack(">i", 1)                       # controller
        out += struct.pack(">i", len(topics))
        for t in topics:
            out += struct.pack(">h", 0) + s16(t)
            if ver >= 1:
                out += struct.pack(">b", 0)                   # internal
            out += struct.pack(">i", 1)                       # one partition
            out += struct.pack(">hii", 0, 0, 1)               # err, index, leader
            out += struct.pack(">ii", 1, 1) + struct.pack(">ii", 1, 1)  # replicas, isr
        return out

    def produce(self, r, ver):
        r.string()                                            # transactional id
        r.i16()                                               # acks
        r.i32()                                               # timeout
        result = []
        for _ in range(r.i32()):
            topic = r.string()
            parts = []
            for _ in range(r.i32()):
                idx = r.i32()
                data = r.bytes_()
                if data is not None:
                    self.server.capture.save(topic, idx, data)
                parts.append(idx)
            result.append((topic, parts))
        out = struct.pack(">i", len(result))
        for topic, parts in result:
            out += s16(topic) + struct.pack(">i", len(parts))
            for idx in parts:
                out += struct.pack(">ihq", idx, 0, 0)
                out += struct.pack(">q", -1)                  # log append time (v2+)
                if ver >= 5:
                    out += struct.pack(">q", 0)               # log start offset
        return out + struct.pack(">i", 0)                     # throttle


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def start(port, outdir):
    srv = Server(("127.0.0.1", port), Handler)
    srv.capture = Capture(outdir)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return srv


# ---------------------------------------------------------------- driver

BASE_TS = 1700000000000
FILLER = "streamhouse-" * 40


def confluent_records():
    """(timestamp, key, value, headers); headers as (name, bytes-or-None)."""
    return [
        (BASE_TS, b"key-0", ("value-0 " + FILLER).encode(), []),
        (BASE_TS + 5, None, ("value-1 null key " + FILLER).encode(),
         [("trace", b"abc"), ("empty", b"")]),
        (BASE_TS - 3, b"key-2", None, [("h-null", None)]),
        (BASE_TS + 1000, b"", b"", []),
        (BASE_TS + 7, b"k\x00\xff", (FILLER + "\x00\x01\x02").encode(),
         [("dup", b"1"), ("dup", b"2")]),
    ]


def hexval(b):
    return "null" if b is None else "x:" + b.hex()


def capture_confluent(port, outdir):
    from confluent_kafka import Producer, libversion

    srv = start(port, outdir)
    codecs = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
    try:
        for codec, cid in codecs.items():
            for idem in (False, True):
                if idem and codec not in ("none", "zstd"):
                    continue
                name = "rdk_%s%s" % (codec, "_idempotent" if idem else "")
                topic = name
                srv.capture.event.clear()
                p = Producer({
                    "bootstrap.servers": "127.0.0.1:%d" % port,
                    "compression.type": codec,
                    "linger.ms": 200,
                    "enable.idempotence": idem,
                    "api.version.request": True,
                })
                # learn the leader first so every record joins one batch
                p.list_topics(topic, timeout=10)
                recs = confluent_records()
                for ts, k, v, h in recs:
                    p.produce(topic, value=v, key=k, timestamp=ts, headers=h or None, partition=0)
                left = p.flush(15)
                if left:
                    raise SystemExit("%s: %d messages not delivered" % (name, left))
                mine = [s for s in srv.capture.saved if s[0] == topic]
                if len(mine) != 1:
                    raise SystemExit("%s: expected one batch, got %d" % (name, len(mine)))
                os.replace(mine[0][2], os.path.join(outdir, name + ".bin"))
                with open(os.path.join(outdir, name + ".bin"), "rb") as f:
                    data = f.read()
                got_codec = struct.unpack(">h", data[21:23])[0] & 7
                if got_codec != cid:
                    raise SystemExit("%s: librdkafka sent codec %d" % (name, got_codec))
                pid = struct.unpack(">q", data[43:51])[0]
                epoch = struct.unpack(">h", data[51:53])[0]
                seq = struct.unpack(">i", data[53:57])[0]
                lines = [
                    "# librdkafka %s via confluent-kafka, compression.type=%s%s"
                    % (libversion()[0], codec, ", enable.idempotence=true" if idem else ""),
                    "codec %d" % cid,
                    "base_offset 0",
                    "leader_epoch *",
                    "producer_id %d" % (4242 if idem else -1),
                    "producer_epoch %d" % (0 if idem else -1),
                    "base_sequence %d" % (0 if idem else -1),
                    "transactional 0",
                    "control 0",
                    "timestamp_type 0",
                    "base_timestamp %d" % recs[0][0],
                    "max_timestamp %d" % max(r[0] for r in recs),
                    "count %d" % len(recs),
                ]
                if (pid, epoch, seq) != ((4242, 0, 0) if idem else (-1, -1, -1)):
                    raise SystemExit("%s: unexpected producer fields %r" % (name, (pid, epoch, seq)))
                for i, (ts, k, v, h) in enumerate(recs):
                    lines.append("record %d %d %s %s %d" % (i, ts, hexval(k), hexval(v), len(h)))
                    for hk, hv in h:
                        lines.append("header %s %s" % (hexval(hk.encode()), hexval(hv)))
                with open(os.path.join(outdir, name + ".expect"), "w") as f:
                    f.write("\n".join(lines) + "\n")
                print("captured %s (%d bytes)" % (name, len(data)))
    finally:
        srv.shutdown()
        srv.server_close()


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("serve", "confluent"):
        raise SystemExit(__doc__)
    port, outdir = int(sys.argv[2]), sys.argv[3]
    if sys.argv[1] == "confluent":
        capture_confluent(port, outdir)
        return
    srv = start(port, outdir)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        srv.shutdown()


if __name__ == "__main__":
    main()
