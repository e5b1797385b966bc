#!/usr/bin/env bash
# Proves: topics and their configuration live in the metadata store, not in
# the broker process. Topics created (with overrides), grown and altered
# through confluent-kafka, and one deleted, are after a SIGTERM and a
# restart over the same data directory exactly as they were: same topic ids
# (no client here shows topic ids, so a byte-level Metadata v10 probe reads
# them),
# same partition counts, every partition led again by this broker, the
# same overrides with source DYNAMIC_TOPIC_CONFIG, and the deleted topic
# still gone (its name free to be created again). Then a broker pointed at
# this data directory but at another, empty metadata store refuses to
# start with a message naming both cluster ids, as Kafka refuses a
# directory formatted for another cluster.
# compat-broker: none
# compat-timeout: 180
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }
. "$COMPAT_LIB/broker.sh"
sh_broker_cleanup_on_exit

dir=$SCENARIO_TMP/b1
sh_broker_start "$dir" || fail "first start"

# snapshot: "name partitions id-hex overrides..." one topic a line
snapshot() {
    /usr/bin/python3 - "$BOOTSTRAP" <<'EOF'
import os, socket, struct, sys
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource
host, port = sys.argv[1].split(":")

def metadata_v10_ids():
    # Metadata v10 is flexible: request header v2, compact arrays
    s = socket.create_connection((host, int(port)), timeout=10)
    body = bytearray()
    body += b"\x00"            # topics: null (compact array length 0 = null)
    body += b"\x01"            # allow_auto_topic_creation
    body += b"\x00"            # include_cluster_authorized_operations (v8-10)
    body += b"\x00"            # include_topic_authorized_operations
    body += b"\x00"            # tagged fields
    hdr = struct.pack(">hhi", 3, 10, 1) + struct.pack(">h", 4) + b"c025" + b"\x00"
    frame = hdr + bytes(body)
    s.sendall(struct.pack(">i", len(frame)) + frame)
    def read(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                raise EOFError
            b += c
        return b
    n = struct.unpack(">i", read(4))[0]
    data = read(n)
    s.close()
    pos = 4
    def uvarint():
        nonlocal pos
        shift = v = 0
        while True:
            b = data[pos]; pos += 1
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7
    def skip_tags():
        for _ in range(uvarint()):
            uvarint(); pos_skip(uvarint())
    def pos_skip(k):
        nonlocal pos
        pos += k
    def cstr():
        nonlocal pos
        ln = uvarint() - 1
        if ln < 0:
            return None
        v = data[pos:pos + ln].decode(); pos += ln
        return v
    def i32():
        nonlocal pos
        v = struct.unpack(">i", data[pos:pos + 4])[0]; pos += 4
        return v
    skip_tags()                      # response header v1
    i32()                            # throttle
    for _ in range(uvarint() - 1):   # brokers
        i32(); cstr(); i32(); cstr(); skip_tags()
    cstr(); i32()                    # cluster id, controller id
    ids = {}
    for _ in range(uvarint() - 1):   # topics
        pos_skip(2)                  # error code
        name = cstr()
        tid = data[pos:pos + 16].hex(); pos += 16
        pos_skip(1)                  # is_internal
        for _ in range(uvarint() - 1):
            pos_skip(2 + 4 + 4 + 4)  # error, index, leader, epoch
            for _ in range(3):       # replicas, isr, offline
                pos_skip(4 * (uvarint() - 1))
            skip_tags()
        i32()                        # authorized operations
        skip_tags()
        ids[name] = tid
    return ids

a = AdminClient({"bootstrap.servers": sys.argv[1], "socket.timeout.ms": 10000})
md = a.list_topics(timeout=15)
ids = metadata_v10_ids()
for name in sorted(md.topics):
    t = md.topics[name]
    leaders = {p.leader for p in t.partitions.values()}
    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    cfg = a.describe_configs([res], request_timeout=15)[res].result(timeout=15)
    ovr = sorted("%s=%s" % (k, v.value) for k, v in cfg.items()
                 if v.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    print(name, len(t.partitions), ids[name], "leaders=" + ",".join(map(str, sorted(leaders))),
          *ovr)
EOF
}

/usr/bin/python3 - "$BOOTSTRAP" <<'EOF' || fail "setting up topics"
import sys
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic
a = AdminClient({"bootstrap.servers": sys.argv[1], "socket.timeout.ms": 10000})
def wait(fs):
    for f in fs.values():
        f.result(timeout=15)
wait(a.create_topics([
    NewTopic("inventory", 2, 1, config={"retention.ms": "86400000", "streamhouse.durability": "object"}),
    NewTopic("shipments", 1, 1),
    NewTopic("scratch", 3, 1),
], request_timeout=15))
wait(a.create_partitions([NewPartitions("shipments", 3)], request_timeout=15))
wait(a.alter_configs([ConfigResource(ConfigResource.Type.TOPIC, "shipments",
                                     set_config={"max.message.bytes": "200000"})],
                     request_timeout=15))
wait(a.delete_topics(["scratch"], request_timeout=15))
EOF

before=$(snapshot) || fail "snapshot before restart"
echo "before restart:"; echo "$before"
[ "$(wc -l <<<"$before")" -eq 2 ] || fail "expected 2 topics before the restart"
grep -Eq "^inventory 2 [0-9a-f]{32} leaders=$BROKER_ID retention.ms=86400000 streamhouse.durability=object$" <<<"$before" ||
    fail "inventory is not as created"
grep -Eq "^shipments 3 [0-9a-f]{32} leaders=$BROKER_ID max.message.bytes=200000$" <<<"$before" ||
    fail "shipments is not as altered"

sh_broker_stop || fail "the broker needed SIGKILL"
[ "$BROKER_EXIT" = 0 ] || fail "the broker exited with $BROKER_EXIT"
sh_broker_start "$dir" || fail "restart"
after=$(snapshot) || fail "snapshot after restart"
echo "after restart:"; echo "$after"
[ "$before" = "$after" ] || fail "topics changed across the restart"
grep -q 'loaded 2 topics with 5 partitions' "$BROKER_LOG" || fail "the registry did not log the load"

# the deleted name is free
/usr/bin/python3 - "$BOOTSTRAP" <<'EOF' || fail "re-creating scratch"
import sys
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": sys.argv[1], "socket.timeout.ms": 10000})
a.create_topics([NewTopic("scratch", 1, 1)], request_timeout=15)["scratch"].result(timeout=15)
EOF
sh_broker_stop

# same data directory, another (empty) metadata store: refused
other=$SCENARIO_TMP/other-meta
mkdir -p "$other"
log=$SCENARIO_TMP/mismatch.log
set +e
(cd "$SCENARIO_TMP" && timeout 30 "$(sh_broker_bin)" "$SH_REPO_ROOT/configs/server.properties" \
    --override "listeners=PLAINTEXT://127.0.0.1:$(sh_broker_pick_port)" \
    --override "log.dirs=$dir/data" --override "node.id=$BROKER_ID" \
    --override "streamhouse.metadata.url=sqlite://$other/meta.db" \
    </dev/null >"$log" 2>&1)
rc=$?
set -e
tail -n 3 "$log"
[ $rc -eq 1 ] || fail "a broker with a foreign metadata store exited with $rc, expected 1"
grep -q 'cluster id mismatch' "$log" || fail "no clear message about the cluster id mismatch"
echo "ok"
