#!/usr/bin/env bash
# Proves: librdkafka 2.0.2 (through kcat) produces and consumes through the
# broker's data path. kcat -P sends N keyed records with two headers to one
# partition (Produce v7, acks=all by default), and N more spread over three
# partitions by key; kcat -C -o beginning -e (ListOffsets, Fetch v11 long
# polls) reads every record back byte for byte: same keys, values (with
# colons, spaces, UTF-8 and an empty value), headers and per-partition
# order, offsets 0..n-1 without gaps, and exits at the end offsets (the high
# watermark). The second read happens after the upload interval, so it is
# served from segment objects (cache or ranged GETs) rather than the tail.
# The topic is created with kafka-python's admin client (kcat cannot).
# COMPAT_010_RECORDS sets N (default 3000).
# compat-override: streamhouse.upload.interval.ms=200
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }
N=${COMPAT_010_RECORDS:-3000}
T=$SCENARIO_TMP

/usr/bin/python3 - "$BOOTSTRAP" <<'PY'
import sys
from kafka.admin import KafkaAdminClient, NewTopic
a = KafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=10000)
for name, n in (("kcat-one", 1), ("kcat-three", 3)):
    r = a.create_topics([NewTopic(name, n, 1)])
    for t, code, msg in r.topic_errors:
        if code != 0:
            sys.exit("create_topics %s: error %d %s" % (t, code, msg))
a.close()
PY

# Input lines "key:value"; kcat splits at the first ':' so values keep theirs.
/usr/bin/python3 - "$N" >"$T/in.txt" <<'PY'
import sys
n = int(sys.argv[1])
for i in range(n):
    if i % 97 == 5:
        v = ""
    else:
        v = "value %d: ünïcödé ✓ %s" % (i, "x" * (i % 50))
    print("key-%06d:%s" % (i, v))
PY

kcat -b "$BOOTSTRAP" -P -t kcat-one -p 0 -K: -H trace=abc -H "empty=" -X linger.ms=5 \
    <"$T/in.txt" 2>"$T/p1.err" || { cat "$T/p1.err"; fail "kcat -P (one partition) failed"; }
kcat -b "$BOOTSTRAP" -P -t kcat-three -K: -H trace=def \
    <"$T/in.txt" 2>"$T/p2.err" || { cat "$T/p2.err"; fail "kcat -P (three partitions) failed"; }
if grep -Ei 'error|fail' "$T/p1.err" "$T/p2.err"; then fail "kcat reported produce errors"; fi

consume() { # topic outfile
    kcat -b "$BOOTSTRAP" -C -t "$1" -o beginning -e -q \
        -f '%p\t%o\t%k\t%s\t%h\n' >"$2" 2>"$2.err" ||
        { cat "$2.err"; fail "kcat -C $1 failed"; }
}

check_one() { # outfile
    /usr/bin/python3 - "$T/in.txt" "$1" <<'PY'
import sys
want = open(sys.argv[1], encoding="utf-8").read().splitlines()
got = open(sys.argv[2], encoding="utf-8").read().splitlines()
if len(got) != len(want):
    sys.exit("read %d records, produced %d" % (len(got), len(want)))
for i, (w, g) in enumerate(zip(want, got)):
    k, v = w.split(":", 1)
    exp = "0\t%d\t%s\t%s\ttrace=abc,empty=" % (i, k, v)
    if g != exp:
        sys.exit("record %d differs:\n want %r\n got  %r" % (i, exp, g))
PY
}

check_three() { # outfile
    /usr/bin/python3 - "$T/in.txt" "$1" <<'PY'
import sys
want = open(sys.argv[1], encoding="utf-8").read().splitlines()
got = open(sys.argv[2], encoding="utf-8").read().splitlines()
if len(got) != len(want):
    sys.exit("read %d records, produced %d" % (len(got), len(want)))
seen, nxt, order = set(), {}, {}
pos = {w.split(":", 1)[0]: i for i, w in enumerate(want)}
for g in got:
    p, o, k, v, h = g.split("\t")
    if int(o) != nxt.get(p, 0):
        sys.exit("partition %s: offset %s where %d was expected" % (p, o, nxt.get(p, 0)))
    nxt[p] = int(o) + 1
    if h != "trace=def":
        sys.exit("headers %r" % h)
    line = "%s:%s" % (k, v)
    if k not in pos or want[pos[k]] != line:
        sys.exit("record %r was never produced" % line)
    # the producer's order is kept within a partition
    if pos[k] < order.get(p, -1):
        sys.exit("partition %s: %s arrived out of order" % (p, k))
    order[p] = pos[k]
    seen.add(k)
if len(seen) != len(want):
    sys.exit("%d distinct records read, %d produced" % (len(seen), len(want)))
if len(nxt) < 2:
    sys.exit("keys all went to %d partition(s)" % len(nxt))
PY
}

consume kcat-one "$T/out1.txt"
check_one "$T/out1.txt" || fail "kcat-one (from the tail) differs"
consume kcat-three "$T/out3.txt"
check_three "$T/out3.txt" || fail "kcat-three (from the tail) differs"

# After the upload interval everything is in segment objects.
sleep 1
ls -R "${S3_OBJECTS:-$BROKER_DATA/objects}" | grep -q seg || fail "no segment object was uploaded"
consume kcat-one "$T/out1b.txt"
check_one "$T/out1b.txt" || fail "kcat-one (from objects) differs"
consume kcat-three "$T/out3b.txt"
check_three "$T/out3b.txt" || fail "kcat-three (from objects) differs"
echo "OK: $N records x 2 topics, read back from the tail and from objects"
