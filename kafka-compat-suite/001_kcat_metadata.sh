#!/usr/bin/env bash
# Proves: librdkafka 2.0.2 (through kcat) bootstraps against the broker with
# a successful ApiVersions negotiation (no fallback to guessed versions, no
# protocol parse errors) and a Metadata answer that lists exactly one broker,
# this one, under its advertised 127.0.0.1:PORT and configured node.id, as
# controller, and no topics; both in kcat's text (-L) and JSON (-J) output.
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }

# debug=broker,protocol,feature makes librdkafka log the ApiVersions exchange, which
# is the only way to tell real negotiation from a silent version fallback.
set +e
kcat -b "$BOOTSTRAP" -L -m 10 -X debug=broker,protocol,feature >"$SCENARIO_TMP/kcat-L.out" 2>"$SCENARIO_TMP/kcat-L.err"
rc=$?
set -e
cat "$SCENARIO_TMP/kcat-L.out"
[ $rc -eq 0 ] || { tail -n 30 "$SCENARIO_TMP/kcat-L.err"; fail "kcat -L exited with $rc"; }

if grep -E 'ApiVersionRequest failed|Protocol parse failure|underflow|Protocol feature.*not supported|Unsupported.*ApiVersion|Failed to parse' \
        "$SCENARIO_TMP/kcat-L.err"; then
    fail "librdkafka reported a protocol problem (see above)"
fi
grep -q 'Broker API support' "$SCENARIO_TMP/kcat-L.err" ||
    fail "librdkafka never logged the broker's API support: ApiVersions was not used"
grep -Eq 'ApiKey Metadata \(3\) Versions' "$SCENARIO_TMP/kcat-L.err" ||
    fail "the ApiVersions answer does not list Metadata"

out=$(cat "$SCENARIO_TMP/kcat-L.out")
grep -Eq "^ 1 brokers:$" <<<"$out" || fail "expected exactly 1 broker"
grep -Eq "^  broker $BROKER_ID at 127\.0\.0\.1:$BROKER_PORT( \(controller\))?$" <<<"$out" ||
    fail "broker $BROKER_ID at 127.0.0.1:$BROKER_PORT not listed"
grep -Eq "^  broker $BROKER_ID at .* \(controller\)$" <<<"$out" ||
    fail "broker $BROKER_ID is not shown as the controller"
grep -Eq "^ 0 topics:$" <<<"$out" || fail "expected 0 topics"
grep -Eq "from broker $BROKER_ID: 127\.0\.0\.1:$BROKER_PORT/$BROKER_ID\)" <<<"$out" ||
    fail "the answer did not come from broker $BROKER_ID at 127.0.0.1:$BROKER_PORT"

# kcat is built with JSON support on Debian; check the same facts there.
kcat -b "$BOOTSTRAP" -L -J -m 10 >"$SCENARIO_TMP/kcat-J.out" 2>"$SCENARIO_TMP/kcat-J.err" ||
    { cat "$SCENARIO_TMP/kcat-J.err"; fail "kcat -L -J failed"; }
cat "$SCENARIO_TMP/kcat-J.out"; echo
/usr/bin/python3 - "$SCENARIO_TMP/kcat-J.out" "$BROKER_ID" "$BROKER_PORT" <<'PY'
import json, sys
md = json.load(open(sys.argv[1]))
bid, port = int(sys.argv[2]), sys.argv[3]
want = [{"id": bid, "name": "127.0.0.1:%s" % port}]
assert md["brokers"] == want, "brokers %r, expected %r" % (md["brokers"], want)
assert md["controllerid"] == bid, "controllerid %r, expected %d" % (md["controllerid"], bid)
assert md["topics"] == [], "topics %r, expected none" % md["topics"]
assert md["originating_broker"]["id"] == bid, md["originating_broker"]
PY
echo "ok: 1 broker ($BROKER_ID at 127.0.0.1:$BROKER_PORT, controller), 0 topics"
