#!/usr/bin/env bash
# Proves: with streamhouse.storage.url=s3://... the broker keeps partition
# data in S3-compatible storage through SigV4-signed requests (s3rver checks
# every signature). kcat produces N records to three partitions; segment
# objects appear in the bucket under the scenario's prefix, with keys of
# the documented form <hh>/seg/<writer>-<epoch>-<seq> and the segment magic
# "SHSG" as their first bytes. The broker is then restarted over the same
# data directory (empty read cache), and kcat reads every record back in
# order, so uploaded data comes back with ranged GETs from the bucket.
# Finally a broker given a wrong secret key refuses to start, with one
# log line naming the bucket's endpoint and the cause, never the secret.
# COMPAT_020_RECORDS sets N (default 2000).
# compat-needs: s3
# compat-broker: none
set -euo pipefail

. "$COMPAT_LIB/broker.sh"
sh_broker_cleanup_on_exit

fail() { echo "FAIL: $*" >&2; exit 1; }
N=${COMPAT_020_RECORDS:-2000}
T=$SCENARIO_TMP
[ -n "${S3_OBJECTS:-}" ] || fail "the s3 provider did not run"

sh_broker_start "$T/b1" streamhouse.upload.interval.ms=200 || fail "broker did not start"
grep -q "object store \"$S3_URL\" at .* is reachable" "$BROKER_LOG" ||
    fail "the broker did not report the startup probe of $S3_URL"

/usr/bin/python3 - "$BOOTSTRAP" <<'PY'
import sys
from kafka.admin import KafkaAdminClient, NewTopic
a = KafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=10000)
r = a.create_topics([NewTopic("s3-data", 3, 1)])
for t, code, msg in r.topic_errors:
    if code != 0:
        sys.exit("create_topics %s: error %d %s" % (t, code, msg))
a.close()
PY

for ((i = 0; i < N; i++)); do
    printf 'key-%06d:value %d %s\n' "$i" "$i" "$(printf '%*s' $((i % 40)) '' | tr ' ' 's')"
done >"$T/in.txt"
kcat -b "$BOOTSTRAP" -P -t s3-data -K: -X linger.ms=5 <"$T/in.txt" 2>"$T/p.err" ||
    { cat "$T/p.err"; fail "kcat -P failed"; }

# Uploads run every 200 ms; give them a bounded while to reach the bucket.
objects=()
for _ in $(seq 100); do
    mapfile -t objects < <(find "$S3_OBJECTS" -name '*._S3rver_object' 2>/dev/null | sort)
    [ ${#objects[@]} -gt 0 ] && break
    sleep 0.2
done
[ ${#objects[@]} -gt 0 ] || fail "no segment object appeared under $S3_URL"
for f in "${objects[@]}"; do
    key=${f#"$S3_OBJECTS"/}
    key=${key%._S3rver_object}
    [[ $key =~ ^[0-9a-f]{2}/seg/[0-9a-f]{8}-[0-9a-f]{16}-[0-9a-f]{16}$ ]] ||
        fail "unexpected object key \"$key\""
    [ "$(head -c 4 "$f")" = SHSG ] || fail "object \"$key\" does not start with the segment magic"
done
first=${objects[0]#"$S3_OBJECTS"/}
echo "${#objects[@]} segment object(s) in $S3_URL, e.g. ${first%._S3rver_object}"

# The same objects as a third-party S3 client sees them: the AWS CLI
# (Debian's awscli, signing with SigV4 like any AWS tool) lists the
# bucket through the server's API rather than its files.
# shellcheck disable=SC1090
. "$S3_STATE"
prefix=${S3_URL#s3://"$S3_BUCKET"/}
AWS_EC2_METADATA_DISABLED=true /usr/bin/aws --endpoint-url "$S3_ENDPOINT" \
    --region "$AWS_REGION" s3 ls "s3://$S3_BUCKET/$prefix/" --recursive \
    >"$T/aws-ls.txt" 2>"$T/aws-ls.err" || { cat "$T/aws-ls.err"; fail "aws s3 ls failed"; }
listed=$(grep -c "$prefix/[0-9a-f][0-9a-f]/seg/" "$T/aws-ls.txt" || true)
[ "$listed" -ge ${#objects[@]} ] ||
    { cat "$T/aws-ls.txt"; fail "the AWS CLI lists $listed segment objects, the bucket holds ${#objects[@]}"; }
echo "aws s3 ls lists $listed segment object(s) under s3://$S3_BUCKET/$prefix/"

# Let the last upload commit, then restart over the same data directory.
sleep 1
sh_broker_stop || fail "the broker ignored SIGTERM"
[ "$BROKER_EXIT" = 0 ] || fail "the broker exited with status $BROKER_EXIT"
sh_broker_start "$T/b1" streamhouse.upload.interval.ms=200 || fail "broker did not restart"

kcat -b "$BOOTSTRAP" -C -t s3-data -o beginning -e -q -f '%p\t%o\t%k\t%s\n' \
    >"$T/out.txt" 2>"$T/c.err" || { cat "$T/c.err"; fail "kcat -C failed"; }
/usr/bin/python3 - "$T/in.txt" "$T/out.txt" <<'PY' || fail "records read back differ"
import sys
want = {}
order = []
for line in open(sys.argv[1], encoding="utf-8").read().splitlines():
    k, v = line.split(":", 1)
    want[k] = v
    order.append(k)
got = open(sys.argv[2], encoding="utf-8").read().splitlines()
if len(got) != len(want):
    sys.exit("read %d records, produced %d" % (len(got), len(want)))
pos = {k: i for i, k in enumerate(order)}
nxt, last = {}, {}
for g in got:
    p, o, k, v = g.split("\t")
    if int(o) != nxt.get(p, 0):
        sys.exit("partition %s: offset %s where %d was expected" % (p, o, nxt.get(p, 0)))
    nxt[p] = int(o) + 1
    if want.get(k) != v:
        sys.exit("record %r: %r" % (k, v))
    if pos[k] < last.get(p, -1):
        sys.exit("partition %s: %s out of order" % (p, k))
    last[p] = pos[k]
PY
echo "OK: $N records read back after a restart"
sh_broker_stop || fail "the broker ignored SIGTERM"

# A wrong secret: the startup probe refuses, with one clear line.
bad_log=$T/bad/broker.log
if AWS_SECRET_ACCESS_KEY=not-the-secret-$$ sh_broker_start "$T/bad" 2>/dev/null; then
    fail "a broker with a wrong secret key started"
fi
grep -q "is not usable (endpoint \"http://127.0.0.1:[0-9]*\".*SignatureDoesNotMatch" "$bad_log" ||
    { tail -n 5 "$bad_log"; fail "no clear log line for the wrong secret"; }
if grep -q "not-the-secret-$$" "$bad_log"; then fail "the secret key was logged"; fi
echo "OK: wrong secret refused at startup"
