#!/usr/bin/python3
"""capture.py - record the request frames a real Kafka client sends.

    /usr/bin/python3 tests/vectors/capture.py --name kcat-L --port 39001 \\
        [--out DIR] [--stop-after Metadata] [--timeout 10] \\
        -- kcat -b 127.0.0.1:{port} -L

Listens on 127.0.0.1:PORT, runs the client command ({port} is replaced),
and writes every frame it receives, without the int32 size prefix, as
<out>/<name>-<NN>-<Api>-v<version>.hex (hex, 32 bytes a line; <out>
defaults to tests/vectors/requests). It plays
just enough of a broker for clients to move on to their next request:

  ApiVersions  answered in the requested version with the list ADVERTISED
               below (or UNSUPPORTED_VERSION in v0 format when too new)
  Metadata     v0-v8: this listener as broker 0, every requested topic (or
               "vectors" for an all-topics request) with one partition led
               by broker 0
  Produce      v3-v8: every partition gets base offset 0 (none for acks=0)
  FindCoordinator v0-v2: this listener as the coordinator
  InitProducerId v0-v1: producer id 1000, epoch 0

Anything else is recorded and left unanswered. The capture ends when the
client exits, when a frame of the --stop-after API has been recorded and
answered, or after --timeout seconds; the client is then terminated.
Python 3 stdlib only. The port is the first free one from --port up to 39099.
"""

import argparse
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

API_NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
    9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
    13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups",
    17: "SaslHandshake", 18: "ApiVersions", 19: "CreateTopics", 20: "DeleteTopics",
    21: "DeleteRecords", 22: "InitProducerId", 29: "DescribeAcls", 32: "DescribeConfigs",
    33: "AlterConfigs", 36: "SaslAuthenticate", 37: "CreatePartitions", 42: "DeleteGroups",
    60: "DescribeCluster",
}
BY_NAME = {v: k for k, v in API_NAMES.items()}

# Non-flexible ranges only (besides ApiVersions), so the answers stay simple.
ADVERTISED = [
    (0, 0, 7), (1, 0, 11), (2, 0, 5), (3, 0, 8), (8, 0, 7), (9, 0, 5), (10, 0, 2),
    (11, 0, 5), (12, 0, 3), (13, 0, 3), (14, 0, 3), (15, 0, 4), (16, 0, 2), (17, 0, 1),
    (18, 0, 3), (19, 0, 4), (20, 0, 3), (21, 0, 1), (22, 0, 1), (29, 0, 1), (32, 0, 2),
    (33, 0, 1), (36, 0, 1), (37, 0, 1), (42, 0, 1),
]


def i8(v): return struct.pack(">b", v)
def i16(v): return struct.pack(">h", v)
def i32(v): return struct.pack(">i", v)
def i64(v): return struct.pack(">q", v)


def uvarint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def string(s):
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


class Reader:
    def __init__(self, b, pos=0):
        self.b, self.pos = b, pos

    def take(self, n):
        if self.pos + n > len(self.b):
            raise ValueError("short frame")
        v = self.b[self.pos:self.pos + n]
        self.pos += n
        return v

    def i16(self): return struct.unpack(">h", self.take(2))[0]
    def i32(self): return struct.unpack(">i", self.take(4))[0]

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
        return None if n < 0 else self.take(n).decode("utf-8", "replace")

    def cstring(self):
        n = self.uvarint() - 1
        return None if n < 0 else self.take(n).decode("utf-8", "replace")

    def skip_tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


def api_versions_response(version):
    if version > 3:
        # too new for us: v0 body, UNSUPPORTED_VERSION, our own range
        return i16(35) + i32(1) + i16(18) + i16(0) + i16(3)
    if version >= 3:
        body = i16(0) + uvarint(len(ADVERTISED) + 1)
        for k, lo, hi in ADVERTISED:
            body += i16(k) + i16(lo) + i16(hi) + b"\x00"
        return body + i32(0) + b"\x00"
    body = i16(0) + i32(len(ADVERTISED))
    for k, lo, hi in ADVERTISED:
        body += i16(k) + i16(lo) + i16(hi)
    if version >= 1:
        body += i32(0)
    return body


def metadata_topics(r, version):
    """Topic names of a Metadata request body (v0-v8); None = all."""
    n = r.i32()
    if n < 0:
        return None
    names = [r.string() for _ in range(n)]
    return names if names or version == 0 else None


def metadata_response(version, topics, port):
    b = b""
    if version >= 3:
        b += i32(0)
    b += i32(1) + i32(0) + string("127.0.0.1") + i32(port)
    if version >= 1:
        b += string(None)                       # rack
    if version >= 2:
        b += string("streamhouse-vectors")      # cluster_id
    if version >= 1:
        b += i32(0)                             # controller_id
    b += i32(len(topics))
    for t in topics:
        b += i16(0) + string(t)
        if version >= 1:
            b += i8(0)                          # is_internal
        b += i32(1) + i16(0) + i32(0) + i32(0)  # one partition, leader 0
        if version >= 7:
            b += i32(0)                         # leader_epoch
        b += i32(1) + i32(0) + i32(1) + i32(0)  # replicas [0], isr [0]
        if version >= 5:
            b += i32(0)                         # offline replicas []
        if version >= 8:
            b += i32(-2147483648)
    if version >= 8:
        b += i32(-2147483648)
    return b


def produce_parse(r, version):
    """(acks, [(topic, [partition...])]) of a Produce request v3-v8."""
    r.string()                                   # transactional_id
    acks = r.i16()
    r.i32()
    topics = []
    for _ in range(r.i32()):
        name = r.string()
        parts = []
        for _ in range(r.i32()):
            parts.append(r.i32())
            n = r.i32()
            if n > 0:
                r.take(n)
        topics.append((name, parts))
    return acks, topics


def produce_response(version, topics):
    b = i32(len(topics))
    for name, parts in topics:
        b += string(name) + i32(len(parts))
        for p in parts:
            b += i32(p) + i16(0) + i64(0) + i64(-1)
            if version >= 5:
                b += i64(0)
            if version >= 8:
                b += i32(0) + string(None)
    return b + i32(0)


class Capture:
    def __init__(self, args):
        self.args = args
        self.frames = []
        self.lock = threading.Lock()
        self.done = threading.Event()

    def answer(self, key, version, body_reader):
        port = self.args.port
        if key == 18:
            return api_versions_response(version)
        if key == 3 and version <= 8:
            topics = metadata_topics(body_reader, version)
            return metadata_response(version, topics or ["vectors"], port)
        if key == 0 and 3 <= version <= 8:
            acks, topics = produce_parse(body_reader, version)
            return None if acks == 0 else produce_response(version, topics)
        if key == 10 and version <= 2:
            tail = i32(0) + string("127.0.0.1") + i32(port)
            return i16(0) + tail if version == 0 else i32(0) + i16(0) + string(None) + tail
        if key == 22 and version <= 1:
            return i32(0) + i16(0) + i64(1000) + i16(0)
        return None

    def serve_conn(self, conn):
        buf = b""
        with conn:
            while not self.done.is_set():
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 4:
                    size = struct.unpack(">i", buf[:4])[0]
                    if size < 0 or len(buf) < 4 + size:
                        break
                    frame, buf = buf[4:4 + size], buf[4 + size:]
                    self.handle(conn, frame)

    def handle(self, conn, frame):
        r = Reader(frame)
        key, version, corr = r.i16(), r.i16(), r.i32()
        with self.lock:
            self.frames.append(frame)
        name = API_NAMES.get(key, "Api%d" % key)
        print("capture: %s v%d correlation %d, %d bytes" % (name, version, corr, len(frame)),
              file=sys.stderr)
        flexible_hdr = (key == 18 and version >= 3)
        try:
            r.string()                              # client_id
            if flexible_hdr:
                r.skip_tags()
            body = self.answer(key, version, r)
        except (ValueError, UnicodeDecodeError, struct.error) as e:
            print("capture: cannot answer %s v%d: %s" % (name, version, e), file=sys.stderr)
            body = None
        if body is not None:
            resp = i32(corr) + body                 # response header v0
            try:
                conn.sendall(i32(len(resp)) + resp)
            except OSError:
                pass
        if self.args.stop_after and key == BY_NAME.get(self.args.stop_after):
            self.done.set()

    def run(self):
        srv = None
        # other programs' outgoing connections may hold ports of our range
        # for a while; move up to the next free one
        for port in range(self.args.port, 39100):
            srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                srv.bind(("127.0.0.1", port))
                break
            except OSError:
                srv.close()
                srv = None
        if srv is None:
            sys.exit("capture: no free port in %d-39099" % self.args.port)
        self.args.port = port
        print("capture: listening on 127.0.0.1:%d" % port, file=sys.stderr)
        srv.listen(8)
        srv.settimeout(0.2)
        cmd = [c.replace("{port}", str(self.args.port)) for c in self.args.command]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL if not self.args.stdin else subprocess.PIPE,
                                start_new_session=True)
        if self.args.stdin:
            proc.stdin.write(self.args.stdin.encode().replace(b"\\n", b"\n"))
            proc.stdin.close()
        deadline = time.monotonic() + self.args.timeout
        while not self.done.is_set() and time.monotonic() < deadline and proc.poll() is None:
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self.serve_conn, args=(conn,), daemon=True).start()
        # give the client a moment to finish on its own after the last answer
        end = time.monotonic() + 1.0
        while proc.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.done.set()
        srv.close()
        self.write()

    def write(self):
        os.makedirs(self.args.out, exist_ok=True)
        for i, f in enumerate(self.frames):
            key, version = struct.unpack(">hh", f[:4])
            name = API_NAMES.get(key, "Api%d" % key)
            path = os.path.join(self.args.out, "%s-%02d-%s-v%d.hex" % (self.args.name, i, name, version))
            with open(path, "w") as out:
                for j in range(0, len(f), 32):
                    out.write(f[j:j + 32].hex() + "\n")
            print("capture: wrote %s" % path, file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--name", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "requests"))
    p.add_argument("--stop-after", default=None)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--stdin", default=None, help="text fed to the client (\\n = newline)")
    p.add_argument("command", nargs="+")
    args = p.parse_args()
    if not 39000 <= args.port <= 39099:
        sys.exit("capture: use a port in 39000-39099")
    Capture(args).run()


if __name__ == "__main__":
    main()
