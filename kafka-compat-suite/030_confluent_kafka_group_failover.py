#!/usr/bin/python3
# Proves: three confluent-kafka (librdkafka 2.0.2) consumers in one group,
# each its own process, subscribed to a 12-partition topic, are given
# disjoint assignments that together cover all 12 partitions (FindCoordinator,
# JoinGroup with MEMBER_ID_REQUIRED, SyncGroup, Heartbeat, OffsetFetch,
# OffsetCommit). One is killed with SIGKILL (no LeaveGroup): after its
# session timeout (6 s) the coordinator removes it and the two others take
# over its partitions, again disjoint and covering all 12. Every record
# produced before and after the kill is consumed at least once, and the
# group's committed offsets end equal to the high watermarks. Records are
# not assumed to be consumed exactly once: the killed member's uncommitted
# work is consumed again, as Kafka's at-least-once promises.
# compat-timeout: 180
# compat-override: group.initial.rebalance.delay.ms=0
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import groups  # noqa: E402

groups.run_failover("confluent", {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
                                  "partition.assignment.strategy": "range"},
                    group="compat-030")
