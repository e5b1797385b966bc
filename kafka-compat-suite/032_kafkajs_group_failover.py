#!/usr/bin/python3
# Proves: the failover of 030 with three kafkajs 2.2.4 consumers, each its
# own node process (lib/group_worker.js): kafkajs uses FindCoordinator v2,
# JoinGroup v5 (MEMBER_ID_REQUIRED), SyncGroup v3, Heartbeat v3,
# OffsetFetch v4 and OffsetCommit v5, and its own round-robin assignor.
# Disjoint assignments covering all 12 partitions; one member SIGKILLed;
# after its 6 s session timeout the two others take over its partitions;
# every record consumed at least once; committed offsets (kafkajs commits
# after every batch) end equal to the high watermarks.
# compat-timeout: 180
# compat-override: group.initial.rebalance.delay.ms=0
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import groups  # noqa: E402

groups.run_failover("kafkajs", {"sessionTimeout": 6000, "heartbeatInterval": 1000,
                                "rebalanceTimeout": 20000}, group="compat-032")
