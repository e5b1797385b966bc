#!/usr/bin/python3
# Proves: the failover of 030 with three kafka-python 2.0.2 consumers, each
# its own process: kafka-python infers the broker release from ApiVersions
# and then speaks JoinGroup v2 (no MEMBER_ID_REQUIRED step), SyncGroup v1,
# Heartbeat v1 from its heartbeat thread, OffsetFetch v1 and OffsetCommit v2.
# Disjoint assignments covering all 12 partitions; one member SIGKILLed;
# after its 6 s session timeout the two others take over its partitions;
# every record consumed at least once; committed offsets end equal to the
# high watermarks.
# compat-timeout: 180
# compat-override: group.initial.rebalance.delay.ms=0
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import groups  # noqa: E402

groups.run_failover("kafka-python", {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000},
                    group="compat-033")
