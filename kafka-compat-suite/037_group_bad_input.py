#!/usr/bin/python3
# Proves: bad group requests get Kafka's error codes and do not disturb the
# group for its other members. A confluent-kafka consumer (its own process)
# consumes a 4-partition topic in group compat-037 throughout. On one raw
# connection this scenario sends, with exact request and response bytes
# (FindCoordinator v1 and, flexible and batched, v4; JoinGroup v5,
# Heartbeat v3, SyncGroup v3, OffsetCommit v7, LeaveGroup v3):
#  - JoinGroup with an empty protocol list (INCONSISTENT_GROUP_PROTOCOL),
#    with 2 MiB of metadata (INVALID_REQUEST), with a 10 ms session timeout
#    (INVALID_SESSION_TIMEOUT), with an empty group id (INVALID_GROUP_ID),
#    with a member id the group never gave (UNKNOWN_MEMBER_ID);
#  - Heartbeat from an unknown member (UNKNOWN_MEMBER_ID);
#  - then it joins for real (MEMBER_ID_REQUIRED, rejoin, the consumer
#    rebalances with it, SyncGroup) and sends a Heartbeat, SyncGroup and
#    OffsetCommit with a wrong generation (ILLEGAL_GENERATION), an
#    OffsetCommit from an unknown member (UNKNOWN_MEMBER_ID), one with 5000
#    bytes of metadata (OFFSET_METADATA_TOO_LARGE) and one for a topic that
#    does not exist (UNKNOWN_TOPIC_OR_PARTITION), a valid Heartbeat (NONE),
#    and finally a LeaveGroup for itself and an unknown member (NONE and
#    UNKNOWN_MEMBER_ID per member).
# Every answer arrives on the same connection (none closes it). Afterwards
# the consumer holds all 4 partitions again, has consumed every record
# produced before and after, and its committed offsets reach the high
# watermarks.
# compat-timeout: 120
# compat-override: group.initial.rebalance.delay.ms=0
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
import groups  # noqa: E402
from compat import check, log  # noqa: E402

TOPIC, PARTS, GROUP = "g037", 4, "compat-037"

NONE, OFFSET_METADATA_TOO_LARGE, UNKNOWN_TOPIC_OR_PARTITION = 0, 12, 3
ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL, INVALID_GROUP_ID = 22, 23, 24
UNKNOWN_MEMBER_ID, INVALID_SESSION_TIMEOUT, REBALANCE_IN_PROGRESS = 25, 26, 27
INVALID_REQUEST, MEMBER_ID_REQUIRED = 42, 79


# ------------------------------------------------------------- encoding

def i8(v): return struct.pack(">b", v)
def i16(v): return struct.pack(">h", v)
def i32(v): return struct.pack(">i", v)
def i64(v): return struct.pack(">q", v)


def s(v):
    if v is None:
        return i16(-1)
    b = v.encode() if isinstance(v, str) else v
    return i16(len(b)) + b


def byts(b):
    return i32(len(b)) + b


def arr(items):
    return i32(len(items)) + b"".join(items)


class Reader:
    def __init__(self, b):
        self.b, self.o = b, 0

    def take(self, n):
        check(self.o + n <= len(self.b), "response too short at byte %d", self.o)
        v = self.b[self.o:self.o + n]
        self.o += n
        return v

    def i16(self): return struct.unpack(">h", self.take(2))[0]
    def i32(self): return struct.unpack(">i", self.take(4))[0]

    def str(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def bytes(self):
        n = self.i32()
        return None if n < 0 else self.take(n)

    def arr(self, fn):
        return [fn() for _ in range(self.i32())]

    def end(self):
        check(self.o == len(self.b), "%d bytes left over in the response", len(self.b) - self.o)


class Conn:
    def __init__(self):
        self.sock = socket.create_connection(("127.0.0.1", compat.PORT), timeout=60)
        self.corr = 0

    def call(self, key, version, body):
        self.corr += 1
        hdr = i16(key) + i16(version) + i32(self.corr) + s("compat-037-raw")
        req = hdr + body
        self.sock.sendall(i32(len(req)) + req)
        size = struct.unpack(">i", self._recv(4))[0]
        resp = self._recv(size)
        check(struct.unpack(">i", resp[:4])[0] == self.corr, "correlation id mismatch")
        return Reader(resp[4:])

    def _recv(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            check(chunk, "the broker closed the connection")
            out += chunk
        return out


def subscription(topic):
    # ConsumerProtocolSubscription v0: topics, null user data
    return i16(0) + arr([s(topic)]) + i32(-1)


def join(c, member="", protocols=None, session=10000, group=GROUP):
    if protocols is None:
        protocols = [("range", subscription(TOPIC))]
    body = (s(group) + i32(session) + i32(20000) + s(member) + s(None) + s("consumer") +
            arr([s(n) + byts(m) for n, m in protocols]))
    r = c.call(11, 5, body)
    out = {"throttle": r.i32(), "error": r.i16(), "generation": r.i32(), "protocol": r.str(),
           "leader": r.str(), "member_id": r.str(),
           "members": r.arr(lambda: (r.str(), r.str(), r.bytes()))}
    r.end()
    return out


def heartbeat(c, member, generation):
    r = c.call(12, 3, s(GROUP) + i32(generation) + s(member) + s(None))
    r.i32()
    err = r.i16()
    r.end()
    return err


def sync(c, member, generation, assignments=()):
    body = s(GROUP) + i32(generation) + s(member) + s(None) + \
        arr([s(m) + byts(a) for m, a in assignments])
    r = c.call(14, 3, body)
    r.i32()
    err, asg = r.i16(), r.bytes()
    r.end()
    return err, asg


def commit(c, member, generation, topic=TOPIC, metadata="", partition=0):
    part = i32(partition) + i64(1) + i32(-1) + s(metadata)
    body = s(GROUP) + i32(generation) + s(member) + s(None) + arr([s(topic) + arr([part])])
    r = c.call(8, 7, body)
    r.i32()
    topics = r.arr(lambda: (r.str(), r.arr(lambda: (r.i32(), r.i16()))))
    r.end()
    return topics[0][1][0][1]


def leave(c, members):
    r = c.call(13, 3, s(GROUP) + arr([s(m) + s(None) for m in members]))
    r.i32()
    top = r.i16()
    res = r.arr(lambda: (r.str(), r.str(), r.i16()))
    r.end()
    return top, [e for _, _, e in res]


# ------------------------------------------------------------- scenario

groups.create_topic(TOPIC, PARTS)
w = groups.Workers(GROUP, TOPIC, "confluent", conf={
    "session.timeout.ms": 10000, "heartbeat.interval.ms": 500})
try:
    w.start("ok")
    w.wait_assignment(["ok"], PARTS, timeout=60)
    groups.produce(TOPIC, 400, PARTS)

    c = Conn()
    r = c.call(10, 1, s(GROUP) + i8(0))  # FindCoordinator v1
    r.i32()
    err, _, node = r.i16(), r.str(), r.i32()
    host, port = r.str(), r.i32()
    r.end()
    check(err == NONE and node == compat.BROKER_ID and port == compat.PORT,
          "FindCoordinator: error %d node %d %s:%d", err, node, host, port)

    # FindCoordinator v4 (flexible: header v2, compact strings, tags),
    # batched keys; transactions are not coordinated here yet
    def uvarint(v):
        out = b""
        while True:
            byte, v = v & 0x7F, v >> 7
            out += bytes([byte | (0x80 if v else 0)])
            if not v:
                return out

    def cstr(v):
        return uvarint(len(v) + 1) + v.encode()

    def find_v4(key_type, keys):
        c.corr += 1
        req = (i16(10) + i16(4) + i32(c.corr) + s("compat-037-raw") + b"\x00" + i8(key_type) +
               uvarint(len(keys) + 1) + b"".join(cstr(k) for k in keys) + b"\x00")
        c.sock.sendall(i32(len(req)) + req)
        resp = c._recv(struct.unpack(">i", c._recv(4))[0])
        check(struct.unpack(">i", resp[:4])[0] == c.corr and resp[4] == 0, "v4 response header")
        r = Reader(resp[5:])

        def uv():
            v = shift = 0
            while True:
                b = r.take(1)[0]
                v |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    return v

        def cs():
            n = uv()
            return None if n == 0 else r.take(n - 1).decode()
        r.i32()
        out = []
        for _ in range(uv() - 1):
            key, node, host, port, err, msg = cs(), r.i32(), cs(), r.i32(), r.i16(), cs()
            check(uv() == 0, "tagged fields in a coordinator entry")
            out.append((key, node, host, port, err))
        check(uv() == 0, "tagged fields at the end")
        r.end()
        return out

    got = find_v4(0, [GROUP, "another-group"])
    check(got == [(GROUP, compat.BROKER_ID, "127.0.0.1", compat.PORT, NONE),
                  ("another-group", compat.BROKER_ID, "127.0.0.1", compat.PORT, NONE)],
          "FindCoordinator v4 groups: %r", got)
    got = find_v4(1, ["some-transactional-id"])
    check(got == [("some-transactional-id", -1, "", -1, 15)],
          "FindCoordinator v4 transaction: %r", got)
    log("FindCoordinator v4: both groups here; transactions COORDINATOR_NOT_AVAILABLE")

    def expect(what, got, want):
        check(got == want, "%s: error %r, expected %r", what, got, want)
        log("%s -> %d", what, got)

    expect("JoinGroup, no protocols", join(c, protocols=[])["error"], INCONSISTENT_GROUP_PROTOCOL)
    expect("JoinGroup, 2 MiB of metadata",
           join(c, protocols=[("range", b"x" * (2 << 20))])["error"], INVALID_REQUEST)
    expect("JoinGroup, 10 ms session", join(c, session=10)["error"], INVALID_SESSION_TIMEOUT)
    expect("JoinGroup, empty group id", join(c, group="")["error"], INVALID_GROUP_ID)
    expect("JoinGroup, invented member id", join(c, member="nobody")["error"], UNKNOWN_MEMBER_ID)
    expect("Heartbeat, unknown member", heartbeat(c, "nobody", 1), UNKNOWN_MEMBER_ID)

    j = join(c)
    expect("JoinGroup v5 without a member id", j["error"], MEMBER_ID_REQUIRED)
    me = j["member_id"]
    check(me.startswith("compat-037-raw-"), "member id %r", me)
    # parked until the consumer rejoins (it hears REBALANCE_IN_PROGRESS)
    j = join(c, member=me)
    expect("JoinGroup with the given id", j["error"], NONE)
    gen = j["generation"]
    check(j["protocol"] == "range" and j["member_id"] == me and j["leader"] != me,
          "join answer %r", j)
    err, asg = sync(c, me, gen)
    expect("SyncGroup", err, NONE)
    log("joined generation %d as a follower; assignment %d bytes", gen, len(asg or b""))

    expect("Heartbeat, wrong generation", heartbeat(c, me, gen + 7), ILLEGAL_GENERATION)
    expect("SyncGroup, wrong generation", sync(c, me, gen - 1)[0], ILLEGAL_GENERATION)
    expect("OffsetCommit, wrong generation", commit(c, me, gen + 1), ILLEGAL_GENERATION)
    expect("OffsetCommit, unknown member", commit(c, "nobody", gen), UNKNOWN_MEMBER_ID)
    expect("OffsetCommit, 5000 bytes of metadata", commit(c, me, gen, metadata="m" * 5000),
           OFFSET_METADATA_TOO_LARGE)
    expect("OffsetCommit, unknown topic", commit(c, me, gen, topic="no-such-topic"),
           UNKNOWN_TOPIC_OR_PARTITION)
    hb = heartbeat(c, me, gen)
    check(hb in (NONE, REBALANCE_IN_PROGRESS), "valid heartbeat: error %d", hb)
    log("valid heartbeat -> %d", hb)
    top, errs = leave(c, [me, "nobody"])
    check(top == NONE and errs == [NONE, UNKNOWN_MEMBER_ID], "LeaveGroup: %r %r", top, errs)
    log("LeaveGroup -> per member %s", errs)
    c.sock.close()

    # the consumer takes everything back and keeps consuming
    w.wait_assignment(["ok"], PARTS, timeout=60)
    groups.produce(TOPIC, 400, PARTS, start=400)
    hwms = groups.high_watermarks(TOPIC, PARTS)
    check(sum(hwms) == 800, "high watermarks %s", hwms)
    w.wait_consumed(hwms, timeout=60)
    w.wait_committed(hwms, timeout=60)
    check(compat.broker_alive(), "the broker died")
    w.stop_all()
finally:
    w.kill_all()
log("ok: bad group requests got Kafka's errors; the real member kept working")
