#!/usr/bin/python3
"""A consumer-group member in its own process, for the group scenarios
(030-039), so that a scenario can SIGKILL one. Driven and observed through
files in a directory (see lib/groups.py for the other side):

  <id>.rec   one line "partition offset" per record consumed (appended)
  <id>.asg   JSON {"parts": [...], "assigns": n, "revokes": n, "seq": n}:
             the current assignment, rewritten atomically on every change
  <id>.stop  created by the scenario: leave the group and exit 0

usage: group_worker.py confluent|kafka-python JSON-CONFIG

JSON-CONFIG: {"dir", "id", "bootstrap", "group", "topic", "conf": {...
client-specific consumer settings ...}}. Offsets are committed
synchronously after every batch of records and once a second while idle,
so that the scenario can wait for committed offsets to reach the high
watermarks. Commit failures during a rebalance are expected and retried by
the next commit.
"""

import json
import os
import sys
import time


def main():
    kind, cfg = sys.argv[1], json.loads(sys.argv[2])
    d, wid = cfg["dir"], cfg["id"]
    rec = open(os.path.join(d, "%s.rec" % wid), "a")
    state = {"parts": [], "assigns": 0, "revokes": 0, "seq": 0}
    stop_path = os.path.join(d, "%s.stop" % wid)

    def publish(parts=None):
        if parts is not None:
            state["parts"] = sorted(parts)
        state["seq"] += 1
        tmp = os.path.join(d, "%s.asg.tmp" % wid)
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.rename(tmp, os.path.join(d, "%s.asg" % wid))

    publish([])
    print("worker %s (%s) starting" % (wid, kind), flush=True)
    if kind == "confluent":
        run_confluent(cfg, rec, state, publish, stop_path)
    elif kind == "kafka-python":
        run_kafka_python(cfg, rec, state, publish, stop_path)
    else:
        sys.exit("unknown worker kind %r" % kind)
    print("worker %s done" % wid, flush=True)


def run_confluent(cfg, rec, state, publish, stop_path):
    from confluent_kafka import Consumer, KafkaException

    conf = {"bootstrap.servers": cfg["bootstrap"], "group.id": cfg["group"],
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "client.id": "worker-%s" % cfg["id"]}
    conf.update(cfg.get("conf", {}))
    c = Consumer(conf)

    def on_assign(consumer, parts):
        state["assigns"] += 1
        print("assign %s" % [p.partition for p in parts], flush=True)

    def on_revoke(consumer, parts):
        state["revokes"] += 1
        print("revoke %s" % [p.partition for p in parts], flush=True)

    c.subscribe([cfg["topic"]], on_assign=on_assign, on_revoke=on_revoke)
    last_commit = 0.0
    dirty = False
    last_parts = None
    while not os.path.exists(stop_path):
        msgs = c.consume(num_messages=500, timeout=0.2)
        for m in msgs:
            if m.error():
                print("consume error: %s" % m.error(), flush=True)
                continue
            rec.write("%d %d\n" % (m.partition(), m.offset()))
            dirty = True
        rec.flush()
        parts = sorted(tp.partition for tp in c.assignment())
        if parts != last_parts:
            last_parts = parts
            publish(parts)
        now = time.time()
        if dirty and (msgs or now - last_commit > 1.0):
            try:
                c.commit(asynchronous=False)
                dirty = False
            except KafkaException as e:
                # a rebalance between consume and commit: the next one retries
                print("commit failed: %s" % e, flush=True)
            last_commit = now
    c.close()


def run_kafka_python(cfg, rec, state, publish, stop_path):
    from kafka import KafkaConsumer
    from kafka.errors import CommitFailedError, KafkaError

    conf = {"bootstrap_servers": cfg["bootstrap"], "group_id": cfg["group"],
            "auto_offset_reset": "earliest", "enable_auto_commit": False,
            "client_id": "worker-%s" % cfg["id"]}
    conf.update(cfg.get("conf", {}))
    c = KafkaConsumer(**conf)
    c.subscribe([cfg["topic"]])
    last_commit = 0.0
    dirty = False
    last_parts = None
    while not os.path.exists(stop_path):
        batches = c.poll(timeout_ms=200, max_records=500)
        n = 0
        for tp, msgs in batches.items():
            for m in msgs:
                rec.write("%d %d\n" % (m.partition, m.offset))
                n += 1
        if n:
            dirty = True
        rec.flush()
        parts = sorted(tp.partition for tp in c.assignment())
        if parts != last_parts:
            if last_parts:
                state["revokes"] += 1
            state["assigns"] += 1
            last_parts = parts
            publish(parts)
        now = time.time()
        if dirty and (n or now - last_commit > 1.0):
            try:
                c.commit()
                dirty = False
            except (CommitFailedError, KafkaError) as e:
                print("commit failed: %r" % e, flush=True)
            last_commit = now
    c.close()


if __name__ == "__main__":
    main()
