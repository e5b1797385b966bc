#!/usr/bin/python3
# Proves: the broker serves 1,000 open connections at once, each with five
# ApiVersions requests pipelined (mixed versions 0-3, distinct correlation
# ids, written in one to three pieces so frames straddle reads), and answers
# every request on every connection exactly once, in request order, with
# the matching correlation id and a body that decodes strictly for the
# version asked. Afterwards the broker is alive and a new connection works.
# compat-timeout: 150
import os
import random
import resource
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
import kwire  # noqa: E402
from compat import check, log  # noqa: E402

CONNECTIONS = 1000
PER_CONNECTION = 5
DEADLINE_S = 90
seed = int(os.environ.get("COMPAT_SEED", random.randrange(1 << 32)))
rng = random.Random(seed)
log("seed %d (COMPAT_SEED=%d to replay)", seed, seed)

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
need = CONNECTIONS + 64
if soft < need:
    new = need if hard == resource.RLIM_INFINITY else min(hard, max(need, 4096))
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    soft = new
check(soft >= need, "RLIMIT_NOFILE hard limit %d is below the %d this scenario needs", hard, need)


class Conn:
    def __init__(self, idx):
        self.idx = idx
        self.sock = kwire.connect(compat.HOST, compat.PORT, timeout=15)
        self.expect = []            # (correlation id, version), in request order
        self.inbuf = bytearray()
        self.answered = 0
        self.closed = False


conns = []
corr_seen = set()
for i in range(CONNECTIONS):
    conns.append(Conn(i))
log("%d connections open", len(conns))

# Build every connection's pipeline first, then write them all, so all
# requests are in flight at the same time.
for c in conns:
    data = b""
    for _ in range(PER_CONNECTION):
        corr = rng.randrange(1, 1 << 31)
        while corr in corr_seen:
            corr = rng.randrange(1, 1 << 31)
        corr_seen.add(corr)
        v = rng.randrange(4)
        c.expect.append((corr, v))
        data += kwire.api_versions_request(v, corr, client_id="compat-006-%d" % c.idx)
    pieces = rng.randint(1, 3)
    cuts = sorted(rng.sample(range(1, len(data)), pieces - 1))
    c.pending = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]

for c in conns:
    for piece in c.pending:
        c.sock.sendall(piece)
    c.sock.setblocking(False)

sel = selectors.DefaultSelector()
for c in conns:
    sel.register(c.sock, selectors.EVENT_READ, c)

errors = []
done = 0
deadline = time.monotonic() + DEADLINE_S
while done < len(conns) and time.monotonic() < deadline:
    for key, _ in sel.select(timeout=1.0):
        c = key.data
        try:
            chunk = c.sock.recv(65536)
        except BlockingIOError:
            continue
        except OSError as e:
            chunk = b""
            errors.append("connection %d: %r" % (c.idx, e))
        if not chunk:
            if c.answered < PER_CONNECTION:
                errors.append("connection %d closed after %d of %d answers"
                              % (c.idx, c.answered, PER_CONNECTION))
            sel.unregister(c.sock)
            c.closed = True
            done += 1
            continue
        c.inbuf += chunk
        try:
            frames, c.inbuf = kwire.split_frames(c.inbuf)
        except kwire.DecodeError as e:
            errors.append("connection %d: %s" % (c.idx, e))
            frames = []
        for payload in frames:
            if c.answered >= PER_CONNECTION:
                errors.append("connection %d: unsolicited extra response" % c.idx)
                break
            corr, v = c.expect[c.answered]
            try:
                resp = kwire.decode_api_versions_response(v, payload)
                kwire.check_api_versions(v, resp, corr)
            except (kwire.DecodeError, AssertionError) as e:
                got = int.from_bytes(payload[:4], "big", signed=True) if len(payload) >= 4 else None
                errors.append("connection %d, answer %d (v%d, correlation id %d, got %r): %s"
                              % (c.idx, c.answered, v, corr, got, e))
            c.answered += 1
            if c.answered == PER_CONNECTION:
                sel.unregister(c.sock)
                done += 1
        if len(errors) > 20:
            break
    if len(errors) > 20:
        break

answered = sum(c.answered for c in conns)
missing = [c.idx for c in conns if c.answered < PER_CONNECTION]
log("%d of %d requests answered over %d connections", answered, CONNECTIONS * PER_CONNECTION, CONNECTIONS)
for c in conns:
    c.sock.close()

check(not errors, "%d problems, first ones:\n%s", len(errors), "\n".join(errors[:20]))
check(not missing, "%d connections still waiting after %d s, e.g. %s",
      len(missing), DEADLINE_S, missing[:10])
check(answered == CONNECTIONS * PER_CONNECTION, "answered %d", answered)

check(compat.broker_alive(), "the broker process is gone")
with kwire.connect(compat.HOST, compat.PORT) as s:
    resp = kwire.decode_api_versions_response(0, kwire.roundtrip(s, kwire.api_versions_request(0, 77)))
    kwire.check_api_versions(0, resp, 77)
reports = compat.sanitizer_reports()
check(not reports, "sanitizer reports in the broker log:\n%s", "\n".join(reports[:10]))
log("ok: %d connections x %d pipelined requests all answered in order", CONNECTIONS, PER_CONNECTION)
