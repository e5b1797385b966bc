#!/usr/bin/python3
# Proves: malformed input cannot take the broker down or disturb other
# clients. 10,000 bad frames (valid ApiVersions/Metadata requests of several
# versions with bits flipped, bytes inserted or deleted, truncated bodies,
# lying, zero, negative and huge length prefixes, unknown API keys,
# unsupported versions, lying string lengths, pure noise) go out from four
# threads over fresh and reused connections, closed politely, half-closed or
# reset. Meanwhile a client on its own connection keeps making correct
# requests and must get every answer right. Afterwards the broker process is
# alive, answers ApiVersions v0-v4 and Metadata v0-v1 correctly on a new
# connection, still answers an ApiVersions version it does not support with
# UNSUPPORTED_VERSION and a v0 body, and its log has no sanitizer report.
#
# COMPAT_SEED=N replays one run (the seed is printed).
# compat-timeout: 120
# compat-override: auto.create.topics.enable=false
import os
import random
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
import kwire  # noqa: E402
from compat import check, log  # noqa: E402

TOTAL_FRAMES = 10000
WORKERS = 4
DEADLINE_S = 60           # the whole flood; an answer-less broker shows up as a shortfall
seed = int(os.environ.get("COMPAT_SEED", random.randrange(1 << 32)))
log("seed %d (COMPAT_SEED=%d to replay)", seed, seed)

SEEDS = [
    kwire.api_versions_request(0, 1),
    kwire.api_versions_request(1, 2),
    kwire.api_versions_request(2, 3),
    kwire.api_versions_request(3, 4),
    kwire.api_versions_request(4, 5),
    kwire.api_versions_request(3, 6, client_id=None),
    kwire.metadata_request(0, 7),
    kwire.metadata_request(0, 8, topics=["garbage-topic"]),
    kwire.metadata_request(1, 9),
    kwire.metadata_request(1, 10, topics=["a", "bb"]),
]


def body(frame):
    return bytearray(frame[4:])


def with_len(payload):
    return struct.pack(">i", len(payload)) + bytes(payload)


# Each mutator returns (bytes to send, whether the length prefix is honest).
def m_flip(rng):
    b = body(rng.choice(SEEDS))
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return with_len(b), True


def m_insert(rng):
    b = body(rng.choice(SEEDS))
    i = rng.randrange(len(b) + 1)
    b[i:i] = rng.randbytes(rng.randint(1, 32))
    return with_len(b), True


def m_delete(rng):
    b = body(rng.choice(SEEDS))
    i = rng.randrange(len(b))
    del b[i:i + rng.randint(1, 8)]
    return with_len(b), True


def m_truncate(rng):
    f = rng.choice(SEEDS)
    return f[:rng.randrange(1, len(f))], False     # prefix promises more


def m_bogus_len(rng):
    b = body(rng.choice(SEEDS))
    n = rng.choice([0, 1, 2, 3, 4, 7, 8, -1, -2, -(1 << 31), (1 << 31) - 1,
                    len(b) - 1, len(b) + 1, len(b) + 1000, rng.randrange(-(1 << 31), 1 << 31)])
    return struct.pack(">i", n) + bytes(b), n == len(b)


def m_huge_len(rng):
    n = rng.choice([(1 << 31) - 1, 1 << 30, 200 << 20, (100 << 20) + 1, 0x10000000])
    return struct.pack(">i", n) + rng.randbytes(rng.randint(0, 64)), False


def m_unknown_api(rng):
    key = rng.choice([-1, -32768, 999, 32767, 93, 100, 4, 5, 6, 7, rng.randrange(-32768, 32768)])
    hdr = kwire.request_header(0, 0, rng.randrange(1 << 31))
    hdr = struct.pack(">h", key) + struct.pack(">h", rng.randrange(-2, 20)) + hdr[4:]
    return with_len(hdr + rng.randbytes(rng.randint(0, 40))), True


def m_bad_version(rng):
    ver = rng.choice([-1, -32768, 5, 13, 100, 32767, rng.randrange(-32768, 32768)])
    key = rng.choice([kwire.API_API_VERSIONS, kwire.API_METADATA])
    b = body(rng.choice(SEEDS))
    b[0:4] = struct.pack(">hh", key, ver)
    return with_len(b), True


def m_string_len(rng):
    # client_id's int16 length sits right after the 8 fixed header bytes.
    b = body(rng.choice(SEEDS))
    b[8:10] = struct.pack(">h", rng.choice([-2, -32768, 32767, len(b), len(b) - 9, 1000]))
    return with_len(b), True


def m_noise(rng):
    return with_len(rng.randbytes(rng.randint(0, 300))), True


def m_pipelined(rng):
    # A valid request followed by garbage in the same write.
    bad, honest = rng.choice(MUTATORS[:-1])(rng)
    return rng.choice(SEEDS) + bad, honest


MUTATORS = [m_flip, m_insert, m_delete, m_truncate, m_bogus_len, m_huge_len,
            m_unknown_api, m_bad_version, m_string_len, m_noise, m_pipelined]

lock = threading.Lock()
stats = {"sent": 0, "fresh": 0, "reused": 0, "connect_errors": [], "closed_by_broker": 0}
stop = threading.Event()


def close(sock, rng):
    how = rng.randrange(3)
    try:
        if how == 0:
            # reset: also keeps our side free of TIME_WAIT sockets
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif how == 1:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(0.05)
            try:
                while sock.recv(65536):
                    pass
            except OSError:
                pass
    except OSError:
        pass
    sock.close()


def connect():
    try:
        return kwire.connect(compat.HOST, compat.PORT, timeout=10)
    except OSError as e:
        with lock:
            stats["connect_errors"].append(repr(e))
        return None


def worker(idx, count):
    rng = random.Random(seed * 100 + idx)
    sock = None
    for _ in range(count):
        if stop.is_set():
            break
        data, honest = rng.choice(MUTATORS)(rng)
        fresh = sock is None or rng.random() < 0.6
        if fresh:
            if sock is not None:
                close(sock, rng)
            sock = connect()
            if sock is None:
                continue
        try:
            sock.settimeout(5)
            # Sometimes in pieces, so the broker must reassemble frames.
            if rng.random() < 0.2 and len(data) > 2:
                cut = rng.randrange(1, len(data))
                sock.sendall(data[:cut])
                sock.sendall(data[cut:])
            else:
                sock.sendall(data)
        except OSError:
            with lock:
                stats["closed_by_broker"] += 1
            sock.close()
            sock = None
            continue
        with lock:
            stats["sent"] += 1
            stats["fresh" if fresh else "reused"] += 1
        # A connection whose prefix lied leaves the broker mid-frame; only an
        # honest one may carry the next frame.
        if not honest or rng.random() < 0.3:
            close(sock, rng)
            sock = None
    if sock is not None:
        close(sock, rng)


canary = {"ok": 0, "errors": []}


def canary_loop():
    """Correct requests on one long-lived connection during the flood."""
    rng = random.Random(seed)
    corr = 1000
    try:
        sock = kwire.connect(compat.HOST, compat.PORT, timeout=10)
    except OSError as e:
        canary["errors"].append("connect: %r" % e)
        return
    while not stop.is_set():
        corr += 1
        try:
            if rng.random() < 0.5:
                v = rng.randrange(4)
                resp = kwire.decode_api_versions_response(
                    v, kwire.roundtrip(sock, kwire.api_versions_request(v, corr)))
                kwire.check_api_versions(v, resp, corr)
            else:
                v = rng.randrange(2)
                resp = kwire.decode_metadata_response(
                    v, kwire.roundtrip(sock, kwire.metadata_request(v, corr)))
                check(resp["correlation_id"] == corr, "metadata correlation id %d, expected %d",
                      resp["correlation_id"], corr)
                check([(b["node_id"], b["host"], b["port"]) for b in resp["brokers"]]
                      == [(compat.BROKER_ID, "127.0.0.1", compat.PORT)],
                      "metadata brokers %r", resp["brokers"])
            canary["ok"] += 1
        except Exception as e:  # noqa: BLE001 - every failure is a finding
            canary["errors"].append("request %d: %r" % (corr, e))
            return
        time.sleep(0.005)
    sock.close()


start = time.monotonic()
threads = [threading.Thread(target=worker, args=(i, TOTAL_FRAMES // WORKERS)) for i in range(WORKERS)]
can = threading.Thread(target=canary_loop)
can.start()
for t in threads:
    t.start()
for t in threads:
    t.join(timeout=max(1, DEADLINE_S - (time.monotonic() - start)))
timed_out = any(t.is_alive() for t in threads)
stop.set()
for t in threads:
    t.join(timeout=15)
can.join(timeout=15)
log("sent %d bad frames (%d on fresh connections, %d on reused ones), %d sends refused by a "
    "closed connection, %d canary round trips",
    stats["sent"], stats["fresh"], stats["reused"], stats["closed_by_broker"], canary["ok"])

check(compat.broker_alive(), "the broker process is gone")
check(not stats["connect_errors"], "%d connects failed, e.g. %s",
      len(stats["connect_errors"]), stats["connect_errors"][:3])
check(not canary["errors"], "the concurrent well-behaved client failed: %s", canary["errors"])
check(canary["ok"] > 0, "the concurrent well-behaved client got no answer at all")
check(not timed_out, "the flood did not finish within %d s: the broker stalled", DEADLINE_S)
check(stats["sent"] + stats["closed_by_broker"] >= TOTAL_FRAMES - 1,
      "only %d of %d frames went out", stats["sent"] + stats["closed_by_broker"], TOTAL_FRAMES)

# Afterwards, on a new connection: every supported request still works.
sock = kwire.connect(compat.HOST, compat.PORT)
corr = 50000
ver_range = None
for v in range(5):
    corr += 1
    resp = kwire.decode_api_versions_response(v, kwire.roundtrip(sock, kwire.api_versions_request(v, corr)))
    ver_range = kwire.check_api_versions(v, resp, corr)
    if resp["error_code"] == kwire.ERR_UNSUPPORTED_VERSION:
        # The broker closes or keeps the connection as it likes after that.
        sock.close()
        sock = kwire.connect(compat.HOST, compat.PORT)
for v in range(2):
    corr += 1
    resp = kwire.decode_metadata_response(v, kwire.roundtrip(sock, kwire.metadata_request(v, corr)))
    check(resp["correlation_id"] == corr, "metadata v%d correlation id", v)
    got = [(b["node_id"], b["host"], b["port"]) for b in resp["brokers"]]
    check(got == [(compat.BROKER_ID, "127.0.0.1", compat.PORT)], "metadata v%d brokers %r", v, got)
sock.close()

# A version above the advertised maximum: error 35 and a v0 body that lists
# at least ApiVersions itself, so the client can retry lower.
too_high = max(ver_range[1] + 1, 5)
for v in (too_high, 127):
    sock = kwire.connect(compat.HOST, compat.PORT)
    corr += 1
    resp = kwire.decode_api_versions_response(v, kwire.roundtrip(sock, kwire.api_versions_request(v, corr)))
    check(resp["error_code"] == kwire.ERR_UNSUPPORTED_VERSION,
          "ApiVersions v%d got error %d, expected 35 (UNSUPPORTED_VERSION)", v, resp["error_code"])
    kwire.check_api_versions(v, resp, corr)
    sock.close()

check(compat.broker_alive(), "the broker process is gone")
reports = compat.sanitizer_reports()
check(not reports, "sanitizer reports in the broker log:\n%s", "\n".join(reports[:10]))
log("ok: the broker survived %d bad frames and answers correctly", stats["sent"])
