#!/usr/bin/python3
# Proves: static membership (KIP-345) with confluent-kafka (librdkafka
# 2.0.2, JoinGroup v5 with group.instance.id). Two static members share a
# 6-partition topic, 3 partitions each. One is SIGKILLed and restarted with
# the same group.instance.id within its session timeout: it gets exactly its
# old partitions back, the other member sees no rebalance (no revocation, no
# new assignment), and the coordinator starts no new generation (its log
# shows no rebalance of the group after the restart, and notes the static
# member's takeover). Everything produced before and after is consumed and
# the committed offsets end at the high watermarks.
# compat-timeout: 150
# compat-override: group.initial.rebalance.delay.ms=0
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
import groups  # noqa: E402
from compat import check, log  # noqa: E402

TOPIC, PARTS, GROUP = "g034", 6, "compat-034"


def broker_log():
    with open(compat.BROKER_LOG, errors="replace") as f:
        return f.read()


def rebalances():
    return len(re.findall(r'preparing to rebalance group "%s"' % GROUP, broker_log()))


groups.create_topic(TOPIC, PARTS)
w = groups.Workers(GROUP, TOPIC, "confluent", conf={
    "session.timeout.ms": 20000, "heartbeat.interval.ms": 1000})
try:
    w.start("s1", {"group.instance.id": "static-1"})
    w.start("s2", {"group.instance.id": "static-2"})
    a = w.wait_assignment(["s1", "s2"], PARTS, timeout=60, exact_each=3)
    groups.produce(TOPIC, 600, PARTS)
    groups.wait_for("both consuming", lambda: (
        bool(w.consumed(["s1"])) and bool(w.consumed(["s2"])), None), 30)
    # let the last rebalance settle: s2's counters must be final
    time.sleep(2)
    before_s2 = w.assignment("s2")
    before_rebalances = rebalances()

    w.kill("s1")
    w.start("s1", {"group.instance.id": "static-1"})
    groups.wait_for("the restarted s1 to get its partitions back",
                    lambda: (w.assignment("s1")["parts"] == a["s1"], w.assignment("s1")), 30)
    log("restarted s1 holds %s again", a["s1"])
    groups.produce(TOPIC, 600, PARTS, start=600)
    hwms = groups.high_watermarks(TOPIC, PARTS)
    w.wait_consumed(hwms, timeout=60)
    w.wait_committed(hwms, timeout=60)

    after_s2 = w.assignment("s2")
    check(after_s2["parts"] == a["s2"], "s2 now holds %s, had %s", after_s2["parts"], a["s2"])
    check(after_s2["assigns"] == before_s2["assigns"] and
          after_s2["revokes"] == before_s2["revokes"],
          "s2 went through a rebalance: %s -> %s", before_s2, after_s2)
    check(rebalances() == before_rebalances, "the group rebalanced %d more times",
          rebalances() - before_rebalances)
    check(re.search(r'static member "static-1" of group "%s" rejoined' % GROUP, broker_log()),
          "the broker did not log the static member's takeover")
    w.stop_all()
finally:
    w.kill_all()
log("ok: static member restarted into its old partitions without a rebalance")
