#!/usr/bin/env bash
# Run each cmocka unit-test binary given as an argument; print a summary
# line and fail if any binary fails.
set -u
pass=0; fail=0; failed=()
for t in "$@"; do
    if "$t"; then pass=$((pass+1)); else fail=$((fail+1)); failed+=("$t"); fi
done
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ] || { printf 'failed: %s\n' "${failed[@]}"; exit 1; }
