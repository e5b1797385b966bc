"""Helpers for the consumer-group scenarios (030-039): create and fill a
topic, run group members as separate processes (lib/group_worker.py for
confluent-kafka and kafka-python, lib/group_worker.js for kafkajs), watch
their assignments and what they consumed through files, and read committed
offsets and high watermarks.

Every wait is bounded by a deadline and fails the scenario with what it saw.
"""

import json
import os
import signal
import subprocess
import sys
import time

import compat
from compat import check, log

LIB = os.path.dirname(os.path.abspath(__file__))


def create_topic(topic, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": compat.BOOTSTRAP})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)], request_timeout=15).values():
        f.result()


def produce(topic, n, partitions, start=0):
    """Produce records start..start+n-1 round-robin over the partitions,
    acks=all; fails unless every one is acknowledged."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": compat.BOOTSTRAP, "acks": "all", "linger.ms": 5})
    errors = []

    def cb(err, msg):
        if err is not None:
            errors.append(str(err))
    for i in range(start, start + n):
        while True:
            try:
                p.produce(topic, key=b"k%d" % i, value=b"v%d" % i, partition=i % partitions,
                          on_delivery=cb)
                break
            except BufferError:
                p.poll(0.1)
    left = p.flush(60)
    check(left == 0 and not errors, "produce: %d unacknowledged, errors %s", left, errors[:3])


def high_watermarks(topic, partitions):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": compat.BOOTSTRAP, "group.id": "compat-hwm-probe"})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, q), timeout=10)[1]
                for q in range(partitions)]
    finally:
        c.close()


def committed(group, topic, partitions):
    """The group's committed offsets (OffsetFetch through librdkafka); -1
    where none. A consumer that never subscribes does not join."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": compat.BOOTSTRAP, "group.id": group,
                  "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, q) for q in range(partitions)], timeout=10)
        return [tp.offset if tp.offset >= 0 else -1 for tp in tps]
    finally:
        c.close()


def wait_for(what, pred, timeout, interval=0.2):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        ok, last = pred()
        if ok:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %ds waiting for %s; last seen: %r" % (timeout, what, last))


class Workers:
    """Group members as processes; each has an id, a kind and a log file."""

    def __init__(self, group, topic, kind, conf=None):
        self.dir = os.path.join(compat.SCENARIO_TMP, "workers")
        os.makedirs(self.dir, exist_ok=True)
        self.group, self.topic, self.kind = group, topic, kind
        self.conf = conf or {}
        self.procs = {}

    def start(self, wid, conf=None):
        cfg = {"dir": self.dir, "id": wid, "bootstrap": compat.BOOTSTRAP, "group": self.group,
               "topic": self.topic, "conf": dict(self.conf, **(conf or {}))}
        # a restarted worker starts from a clean stop flag, and must not be
        # mistaken for its predecessor by what that one left behind
        for leftover in ("stop", "asg"):
            path = os.path.join(self.dir, "%s.%s" % (wid, leftover))
            if os.path.exists(path):
                os.unlink(path)
        out = open(os.path.join(compat.SCENARIO_TMP, "worker-%s.log" % wid), "a")
        if self.kind == "kafkajs":
            argv = ["node", os.path.join(LIB, "group_worker.js"), json.dumps(cfg)]
        else:
            argv = [sys.executable, os.path.join(LIB, "group_worker.py"), self.kind,
                    json.dumps(cfg)]
        self.procs[wid] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=subprocess.STDOUT)
        log("started %s worker %s (pid %d)", self.kind, wid, self.procs[wid].pid)

    def kill(self, wid):
        self.procs[wid].send_signal(signal.SIGKILL)
        self.procs[wid].wait(10)
        log("killed worker %s with SIGKILL", wid)

    def alive(self):
        return [w for w, p in self.procs.items() if p.poll() is None]

    def assignment(self, wid):
        try:
            with open(os.path.join(self.dir, "%s.asg" % wid)) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return {"parts": [], "assigns": 0, "revokes": 0, "seq": 0}

    def consumed(self, wids=None):
        """{(partition, offset)} over the given workers (default: all ever started)."""
        out = set()
        for w in (wids or list(self.procs)):
            try:
                with open(os.path.join(self.dir, "%s.rec" % w)) as f:
                    for line in f:
                        if line.endswith("\n"):
                            p, o = line.split()
                            out.add((int(p), int(o)))
            except FileNotFoundError:
                pass
        return out

    def check_running(self):
        dead = [w for w, p in self.procs.items() if p.poll() not in (None, -signal.SIGKILL)]
        check(not dead, "workers exited early: %s (see worker-*.log)", dead)

    def wait_assignment(self, wids, partitions, timeout, exact_each=None):
        """Until the given live workers hold disjoint assignments that cover
        0..partitions-1; returns {wid: parts}."""
        def pred():
            self.check_running()
            a = {w: self.assignment(w)["parts"] for w in wids}
            flat = [q for ps in a.values() for q in ps]
            ok = sorted(flat) == list(range(partitions))
            if ok and exact_each is not None:
                ok = all(len(ps) == exact_each for ps in a.values())
            return ok, a
        a = wait_for("disjoint assignments covering %d partitions over %s" % (partitions, wids),
                     pred, timeout)
        log("assignments: %s", a)
        return a

    def wait_consumed(self, hwms, timeout):
        """Until every offset below each high watermark has been consumed by
        some worker (at least once)."""
        def pred():
            self.check_running()
            got = self.consumed()
            missing = [(q, o) for q, h in enumerate(hwms) for o in range(h) if (q, o) not in got]
            return not missing, "%d missing, e.g. %s" % (len(missing), missing[:5])
        wait_for("every record consumed", pred, timeout)
        log("every one of %d records consumed at least once", sum(hwms))

    def wait_committed(self, hwms, timeout):
        def pred():
            self.check_running()
            c = committed(self.group, self.topic, len(hwms))
            return c == hwms, c
        wait_for("committed offsets == high watermarks %s" % hwms, pred, timeout, interval=0.5)
        log("committed offsets equal the high watermarks %s", hwms)

    def stop_all(self, timeout=30):
        for w in self.procs:
            open(os.path.join(self.dir, "%s.stop" % w), "w").close()
        deadline = time.time() + timeout
        for w, p in self.procs.items():
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise AssertionError("worker %s did not stop in time" % w)
        bad = {w: p.returncode for w, p in self.procs.items()
               if p.returncode not in (0, -signal.SIGKILL)}
        check(not bad, "workers exited with %s (see worker-*.log)", bad)

    def kill_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


def run_failover(kind, conf, group, topic="grp", partitions=12, n1=2400, n2=2400,
                 sticky=False):
    """The body of scenarios 030-033: three members of `kind` over a topic
    of `partitions`; disjoint assignments covering every partition; one is
    SIGKILLed and, after its session timeout, the two others take over its
    partitions; every record (produced before and after the kill) is
    consumed at least once; committed offsets end equal to the high
    watermarks. sticky: the survivors must also keep what they had."""
    create_topic(topic, partitions)
    w = Workers(group, topic, kind, conf=conf)
    try:
        for wid in ("c1", "c2", "c3"):
            w.start(wid)
        a = w.wait_assignment(["c1", "c2", "c3"], partitions, timeout=60,
                              exact_each=partitions // 3)
        victim = a["c3"]
        # produced now, so that each of the three has work of its own
        produce(topic, n1, partitions)
        wait_for("c3 consuming its partitions",
                 lambda: (any(q in victim for q, _ in w.consumed(["c3"])), None), 30)
        w.kill("c3")
        produce(topic, n2, partitions, start=n1)
        a2 = w.wait_assignment(["c1", "c2"], partitions, timeout=60,
                               exact_each=partitions // 2)
        taken = set(victim) & set(a2["c1"] + a2["c2"])
        check(taken == set(victim), "the survivors hold %s of c3's partitions %s", taken, victim)
        if sticky:
            for wid in ("c1", "c2"):
                check(set(a[wid]) <= set(a2[wid]), "%s had %s, now %s", wid, a[wid], a2[wid])
        hwms = high_watermarks(topic, partitions)
        check(sum(hwms) == n1 + n2, "high watermarks %s sum to %d, expected %d", hwms, sum(hwms),
              n1 + n2)
        w.wait_consumed(hwms, timeout=60)
        w.wait_committed(hwms, timeout=60)
        for wid in ("c1", "c2"):
            st = w.assignment(wid)
            log("%s: %d assignments, %d revocations", wid, st["assigns"], st["revokes"])
        w.stop_all()
    finally:
        w.kill_all()
    log("ok: %d records over %d partitions, failover after SIGKILL, committed == high watermarks",
        n1 + n2, partitions)
