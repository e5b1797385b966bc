#!/usr/bin/python3
# Proves: the fetch session cache is bounded and evicts as Kafka's does,
# seen from the wire (Fetch v12, lib/kfsession.py), with a broker of 2
# slots (max.incremental.fetch.session.cache.slots) and an eviction time
# of 1 s (Kafka's is a fixed 120 s; streamhouse.fetch.session.eviction.ms):
#  - two sessions fill the cache; a third full fetch with epoch 0 gets a
#    full answer with session id 0 (no session), and both sessions keep
#    working;
#  - after more than 1 s without use, a new session evicts the least
#    recently used one (FETCH_SESSION_ID_NOT_FOUND for it afterwards), not
#    the one used meanwhile;
#  - sessions older than 1 s at their last use can be evicted by a new one
#    with more partitions, never by one with as many or fewer;
#  - a session whose id is evicted while its fetch waits still answers
#    that fetch (with its id); the next request gets FETCH_SESSION_ID_NOT_FOUND.
# Sleeps only make time pass; nothing is asserted on time.
# compat-override: max.incremental.fetch.session.cache.slots=2
# compat-override: streamhouse.fetch.session.eviction.ms=1000
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
import kfsession as ks  # noqa: E402
from compat import check, log  # noqa: E402

from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

T = "s073"
PARTS = 4
PMAX = 1 << 20
V = 12
IDLE = 1.2      # seconds: more than the 1 s eviction time

admin = AdminClient({"bootstrap.servers": compat.BOOTSTRAP})
for f in admin.create_topics([NewTopic(T, PARTS, 1)], request_timeout=15).values():
    f.result()
c = ks.Conn(compat.BOOTSTRAP)


def new_session(parts):
    r = c.fetch(V, 0, ks.INITIAL_EPOCH, partitions=[(T, p, 0, PMAX) for p in parts])
    check(r["error_code"] == 0, "full fetch: error %d", r["error_code"])
    check([k for k, _ in r["parts"]] == [(T, p) for p in parts], "full fetch: %s", r["parts"])
    return r["session_id"]


epochs = {}


def use(sid, expect_error=0):
    """One incremental fetch with nothing listed."""
    e = epochs.get(sid, 1)
    r = c.fetch(V, sid, e, min_bytes=0)
    check(r["error_code"] == expect_error, "session %d epoch %d: error %d, expected %d", sid, e,
          r["error_code"], expect_error)
    if expect_error == 0:
        check(r["session_id"] == sid, "session %d answered as %d", sid, r["session_id"])
        epochs[sid] = e + 1
    return r


a = new_session([0])
b = new_session([1])
check(a > 0 and b > 0 and a != b, "sessions %d, %d", a, b)
# full: no third session, but a full answer
check(new_session([2]) == 0, "a third session was created in a 2-slot cache")
use(a)
use(b)
log("2 slots: a third session is refused while the others are fresh")

# a idle, b used: the next session evicts a
time.sleep(IDLE)
use(b)
d = new_session([2])
check(d > 0, "no session although session %d was idle", a)
use(a, ks.FETCH_SESSION_ID_NOT_FOUND)
use(b)
use(d)
log("an idle session gives way; the one in use stays")

# b and d are now older than 1 s at their last use: a bigger session
# may evict the smaller; the same size or smaller may not
time.sleep(IDLE)
use(b)          # b: 1 partition, last used now, created > 1 s ago
use(d)          # d: 1 partition
check(new_session([3]) == 0, "a 1-partition session evicted an equal one")
e = new_session([0, 3])
check(e > 0, "a 2-partition session did not evict a 1-partition one")
r_b = c.fetch(V, b, epochs[b], min_bytes=0)
r_d = c.fetch(V, d, epochs[d], min_bytes=0)
codes = sorted([r_b["error_code"], r_d["error_code"]])
check(codes == [0, ks.FETCH_SESSION_ID_NOT_FOUND], "after the eviction: b %d, d %d",
      r_b["error_code"], r_d["error_code"])
survivor = b if r_b["error_code"] == 0 else d
epochs[survivor] += 1
# Kafka evicts the lowest (size, id): both have 1 partition, so the lower id
check(survivor == max(b, d), "session %d survived, expected %d", survivor, max(b, d))
log("an older, smaller session gives way to a bigger one (lowest id first)")

# a fetch waiting on a session that gets evicted still answers with it
c2 = ks.Conn(compat.BOOTSTRAP)
sent = c2.send_fetch(V, e, epochs.get(e, 1), max_wait_ms=3000)
epochs[e] = epochs.get(e, 1) + 1
time.sleep(IDLE)            # e idle while it waits; the survivor too
use(survivor)               # keep the survivor fresh
f = new_session([1])        # evicts e (idle, least recently used)
check(f > 0, "no session while session %d was idle", e)
r = c2.recv_fetch(sent)
check(r["error_code"] == 0 and r["session_id"] == e, "the waiting fetch: error %d, id %d",
      r["error_code"], r["session_id"])
r = c2.fetch(V, e, epochs[e], min_bytes=0)
check(r["error_code"] == ks.FETCH_SESSION_ID_NOT_FOUND, "evicted session %d: error %d", e,
      r["error_code"])
c.close()
c2.close()
check(compat.broker_alive(), "broker died")
log("a fetch waiting on an evicted session answers; the next request is refused")
