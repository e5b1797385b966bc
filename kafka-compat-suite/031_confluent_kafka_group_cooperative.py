#!/usr/bin/python3
# Proves: the same as 030 (three confluent-kafka consumers over 12
# partitions, one SIGKILLed, the others take over after the session timeout,
# every record consumed at least once, committed offsets == high
# watermarks), with partition.assignment.strategy=cooperative-sticky: the
# incremental protocol (KIP-429) needs nothing from the coordinator but
# passing the assignor's bytes through untouched and allowing the extra
# rebalance rounds it triggers. The survivors keep every partition they
# had and only gain the victim's.
# compat-timeout: 180
# compat-override: group.initial.rebalance.delay.ms=0
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import groups  # noqa: E402

groups.run_failover("confluent", {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
                                  "partition.assignment.strategy": "cooperative-sticky"},
                    group="compat-031", sticky=True)
