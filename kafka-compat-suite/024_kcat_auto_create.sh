#!/usr/bin/env bash
# Proves: Metadata auto-creation works for librdkafka 2.0.2 through kcat.
# kcat -L -t NAME (a producer handle, so Metadata v4 with
# allow_auto_topic_creation=true) creates the unknown topic with
# num.partitions (4 here) partitions and lists it at once, every partition
# led by this broker; a later plain kcat -L lists it too, with the same
# partitions (JSON output checked as well); an illegal name is answered
# with "Invalid topic" and nothing is created; and a producer writing to a
# topic that does not exist yet (kcat -P) gets it created and its records
# accepted, and a consumer reads them back.
# compat-override: num.partitions=4
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }
k() { timeout 30 kcat -b "$BOOTSTRAP" -m 10 "$@"; }

out=$(k -L -t auto-created 2>&1) || fail "kcat -L -t auto-created: $out"
echo "$out"
grep -q 'topic "auto-created" with 4 partitions:' <<<"$out" ||
    fail "the topic was not created with num.partitions=4 partitions"
for p in 0 1 2 3; do
    grep -Eq "partition $p, leader $BROKER_ID, replicas: $BROKER_ID, isrs: $BROKER_ID" <<<"$out" ||
        fail "partition $p is not led by broker $BROKER_ID"
done

out=$(k -L 2>&1) || fail "kcat -L: $out"
grep -q '^ 1 topics:$' <<<"$out" || fail "expected exactly one topic: $out"
grep -q 'topic "auto-created" with 4 partitions:' <<<"$out" || fail "kcat -L does not list it"

json=$(k -J -L 2>/dev/null) || fail "kcat -J -L failed"
/usr/bin/python3 - "$json" "$BROKER_ID" <<'EOF' || fail "JSON metadata is wrong"
import json, sys
md, me = json.loads(sys.argv[1]), int(sys.argv[2])
topics = {t["topic"]: t for t in md["topics"]}
assert list(topics) == ["auto-created"], topics
parts = topics["auto-created"]["partitions"]
assert sorted(p["partition"] for p in parts) == [0, 1, 2, 3], parts
assert all(p["leader"] == me and [r["id"] for r in p["replicas"]] == [me] for p in parts), parts
assert "error" not in topics["auto-created"], topics
EOF

out=$(k -L -t 'not/legal' 2>&1) || true
echo "$out"
grep -q 'Invalid topic' <<<"$out" || fail "an illegal name was not refused as an invalid topic"
out=$(k -L 2>&1)
grep -q '^ 1 topics:$' <<<"$out" || fail "the illegal name created something: $out"

# a producer to a topic nobody created
printf 'one\ntwo\nthree\n' | k -P -t produced-into 2>&1 || fail "kcat -P failed"
got=$(k -C -t produced-into -o beginning -e -q -f '%s\n' 2>/dev/null | sort | tr '\n' ' ')
[ "$got" = "one three two " ] || fail "consumed '$got' from the auto-created topic"
out=$(k -L -t produced-into 2>&1)
grep -q 'topic "produced-into" with 4 partitions:' <<<"$out" || fail "produced-into: $out"
echo "ok"
