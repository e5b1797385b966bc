#!/usr/bin/env bash
# Run every libFuzzer binary in DIR (named fuzz_*) for SECONDS each: first the
# committed corpus tests/fuzz/corpus/<name>/ is replayed (so inputs that once
# crashed stay fixed), then new inputs are explored for the rest of the time.
#
#   tests/tools/run-fuzz.sh DIR SECONDS          (make fuzz)
#
# The corpus is copied to a temporary directory first: what a run discovers
# must not show up as untracked files in the repository. To keep new inputs,
# run the binary by hand on tests/fuzz/corpus/<name>/ and commit the few that
# matter. Crash, leak and timeout inputs are written to DIR/artifacts/<name>/
# and their paths are printed. Ends with "fuzz: N passed, N failed".
set -uo pipefail

usage() { echo "usage: $0 DIR SECONDS" >&2; exit 2; }
[ $# -eq 2 ] || usage
dir=$1 seconds=$2
[[ $seconds =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || usage

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
corpus_root=$root/tests/fuzz/corpus

bins=()
if [ -d "$dir" ]; then
    for f in "$dir"/fuzz_*; do
        [ -f "$f" ] && [ -x "$f" ] && bins+=("$f")
    done
fi
if [ ${#bins[@]} -eq 0 ]; then
    echo "fuzz: no fuzz_* binaries in $dir, nothing to run"
    echo "fuzz: 0 passed, 0 failed"
    exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/streamhouse-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

pass=0 fail=0 failed=()
for bin in "${bins[@]}"; do
    name=$(basename "$bin")
    corpus=$work/$name.corpus
    mkdir -p "$corpus"
    seeds=0
    if [ -d "$corpus_root/$name" ]; then
        cp -R "$corpus_root/$name/." "$corpus/"
        seeds=$(find "$corpus" -type f | wc -l)
    fi
    artifacts=$(cd "$dir" && pwd)/artifacts/$name
    mkdir -p "$artifacts"
    out=$work/$name.log
    # libFuzzer stops itself after -max_total_time; the outer timeout only
    # catches a target that hangs inside one input past -timeout's reach.
    timeout -k 10 $((seconds + 120)) "$bin" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" \
        "$corpus" >"$out" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -n 1)
    if [ $rc -eq 0 ]; then
        pass=$((pass + 1))
        echo "PASS $name: ${runs:-?} runs in ${seconds}s, $seeds corpus files replayed"
    else
        fail=$((fail + 1))
        failed+=("$name")
        echo "FAIL $name (exit $rc); the report (full output: rerun the command below):"
        # The sanitizer's first lines and stack say what went wrong; the
        # shadow-memory dump after them rarely helps and is left out.
        report=$(awk '!p && /ERROR: |runtime error:|deadly signal|ALARM: working on the last Unit|out-of-memory/ { p = 1 }
             p && /^Shadow bytes/ { exit }
             p && n < 40 { print; n++ }' "$out")
        [ -n "$report" ] || report=$(tail -n 20 "$out")
        sed 's/^/    /' <<<"$report"
        grep -q '^SUMMARY:' <<<"$report" || grep -h -m1 '^SUMMARY:' "$out" | sed 's/^/    /'
        grep -ho 'Test unit written to .*' "$out" | sed 's/^Test unit written to /    artefact: /' |
            while read -r _ path; do echo "    artefact: $path"; echo "    reproduce: $bin $path"; done
        [ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "    (killed by the outer timeout: the target hung)"
    fi
done

echo "fuzz: $pass passed, $fail failed"
[ $fail -eq 0 ] || { printf 'fuzz failed: %s\n' "${failed[@]}"; exit 1; }
