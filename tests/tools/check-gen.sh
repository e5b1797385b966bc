#!/usr/bin/env bash
# Check that protocol/generated is exactly what protocol/gen/shgen.py makes
# of protocol/spec (nobody edited generated code by hand, nobody forgot
# `make gen`), and, when the reference schemas are around
# (../shared/kafka-protocol/messages), that the spec agrees with them.
#
#   tests/tools/check-gen.sh        (make check-gen)
#
# Prints one "check-gen: OK" or "check-gen: FAIL ..." line at the end.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
py=/usr/bin/python3

tmp=$(mktemp -d "${TMPDIR:-/tmp}/streamhouse-gen.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

status=0
if ! $py protocol/gen/shgen.py protocol/spec "$tmp/generated" >"$tmp/gen.log" 2>&1; then
    cat "$tmp/gen.log"
    echo "check-gen: FAIL: protocol/gen/shgen.py could not process protocol/spec"
    exit 1
fi
if ! diff -ru protocol/generated "$tmp/generated" >"$tmp/diff.txt"; then
    head -n 60 "$tmp/diff.txt"
    n=$(grep -c '^\(Only in\|diff \)' "$tmp/diff.txt")
    echo "check-gen: protocol/generated differs from a fresh generation ($n file(s)); run \`make gen\` and commit"
    status=1
fi
# Run the determinism check too: a second run must give the same bytes.
if ! $py protocol/gen/shgen.py protocol/spec "$tmp/again" >/dev/null 2>&1 ||
   ! diff -r "$tmp/generated" "$tmp/again" >/dev/null; then
    echo "check-gen: the generator is not deterministic (two runs differ)"
    status=1
fi

ref=../shared/kafka-protocol/messages
if [ -d "$ref" ]; then
    $py protocol/gen/check_spec.py protocol/spec "$ref" || status=1
else
    echo "check-gen: $ref not present; spec not compared with the reference schemas"
fi

if [ $status -eq 0 ]; then
    echo "check-gen: OK (protocol/generated matches protocol/spec)"
else
    echo "check-gen: FAIL"
fi
exit $status
