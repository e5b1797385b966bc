#!/usr/bin/env bash
# Run the end-to-end compatibility scenarios (make compat). Each numbered
# scenario NNN_name.{sh,py,js} runs against a fresh broker on a free port
# with its own temporary data directory, under a time limit; the broker log
# is kept with the scenario's output and shown when the scenario fails.
#
#   kafka-compat-suite/run.sh [-v] [-k] [--asan] [SCENARIO...]
#
# SCENARIO is a number or part of a name ("003", "garbage"); default: all.
# -v prints every scenario's output, -k keeps every temporary directory
# (failed scenarios always keep theirs), --asan builds and tests an
# ASan+UBSan broker instead of bin/streamhouse-server. Environment: see
# README.md (BROKER selects the broker binary).
#
# Configurations (environment): META=postgresql runs every broker on a
# PostgreSQL metadata store (one throwaway server for the run, a fresh
# database per scenario; make compat-pg); STORAGE=s3 is the hook for S3
# object storage (lib/needs/s3.sh). Default: SQLite and a local directory.
#
# Directives in a scenario's first 40 lines, "# compat-KEY: VALUE" (or "//"):
#   compat-timeout: SECONDS     instead of COMPAT_TIMEOUT (default 120)
#   compat-override: KEY=VALUE  extra broker setting (repeatable); the text
#                               $SCENARIO_TMP is replaced by its directory
#   compat-needs: NAME...       services from lib/needs/NAME.sh (see README.md)
#   compat-broker: none         the scenario starts its own brokers
#
# Ends with "compat: N passed, N failed"; exits 1 if any failed.
set -uo pipefail

SUITE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/broker.sh
. "$SUITE/lib/broker.sh"

verbose=${COMPAT_VERBOSE:-0}
asan=0
keep=${COMPAT_KEEP_TMP:-0}
patterns=()
for a in "$@"; do
    case $a in
        -v) verbose=1 ;;
        -k) keep=1 ;;
        --asan) asan=1 ;;
        -h|--help) sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown option $a" >&2; exit 2 ;;
        *) patterns+=("$a") ;;
    esac
done

# Production-like configurations: services every scenario needs, started
# like a scenario's own compat-needs (lib/needs/NAME.sh).
global_needs=()
case ${META:-sqlite} in
    sqlite) ;;
    postgresql|postgres) global_needs+=(postgres) ;;
    *) echo "compat: unknown META=$META (sqlite or postgresql)" >&2; exit 2 ;;
esac
case ${STORAGE:-local} in
    local|file) ;;
    s3) global_needs+=(s3) ;;   # provider: lib/needs/s3.sh (S3-compatible store)
    *) echo "compat: unknown STORAGE=$STORAGE (local or s3)" >&2; exit 2 ;;
esac

mapfile -t all < <(cd "$SUITE" && ls -1 | grep -E '^[0-9]{3}_.+\.(sh|py|js)$' | sort)
scenarios=()
for s in "${all[@]}"; do
    if [ ${#patterns[@]} -eq 0 ]; then scenarios+=("$s"); continue; fi
    for p in "${patterns[@]}"; do
        if [[ $s == "$p"_* || $s == "$p" || $s == *"$p"* ]]; then scenarios+=("$s"); break; fi
    done
done
if [ ${#scenarios[@]} -eq 0 ]; then
    echo "compat: no scenario matches ${patterns[*]:-(none in $SUITE)}" >&2
    exit 2
fi

if [ $asan -eq 1 ]; then
    BROKER=$("$SUITE/lib/build-asan-broker.sh") || { echo "compat: the ASan broker build failed" >&2; exit 1; }
    export BROKER
fi
bin=$(sh_broker_bin)
if [ ! -x "$bin" ]; then
    echo "compat: broker binary $bin is missing: run make, or set BROKER=path" >&2
    exit 1
fi
export BROKER=$bin

# 1,000-connection scenarios need more descriptors than a login shell's
# usual 1024; raising the soft limit to the hard one is what an operator's
# service manager would do.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp_root=$(mktemp -d "${TMPDIR:-/tmp}/streamhouse-compat.XXXXXX")
current_needs=()
pg_run_state=
cleanup() {
    sh_broker_stop_all
    stop_needs
    if [ -n "$pg_run_state" ]; then
        "$SH_REPO_ROOT/tests/tools/pg-stop.sh" "$pg_run_state" || true
    fi
    # Directories of failed scenarios stay for inspection; drop the root
    # only if nothing is left in it.
    rmdir "$tmp_root" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# META=postgresql: one server for the whole run (starting one takes a few
# seconds); lib/needs/postgres.sh gives each scenario a fresh database on it.
if [[ " ${global_needs[*]} " == *" postgres "* ]]; then
    pg_run_state=$tmp_root/postgres.state
    if ! "$SH_REPO_ROOT/tests/tools/pg-start.sh" "$pg_run_state" >/dev/null; then
        echo "compat: could not start PostgreSQL for META=postgresql" >&2
        exit 1
    fi
    export SH_COMPAT_PG_STATE=$pg_run_state
    echo "compat: metadata in PostgreSQL (META=postgresql), a fresh database per scenario"
fi

directive() {   # directive FILE KEY -> each value, one a line
    head -n 40 "$1" | sed -nE "s@^(#|//)[[:space:]]*compat-$2:[[:space:]]*(.*[^[:space:]])[[:space:]]*\$@\\2@p"
}

start_needs() {   # start_needs NAME...: each may append to scenario_overrides
    local n
    for n in "$@"; do
        if [ ! -f "$SUITE/lib/needs/$n.sh" ]; then
            echo "scenario needs '$n' but lib/needs/$n.sh does not exist" >&2
            return 1
        fi
        # shellcheck disable=SC1090
        . "$SUITE/lib/needs/$n.sh"
        current_needs+=("$n")
        "need_${n}_start" || { echo "need_${n}_start failed" >&2; return 1; }
    done
}

stop_needs() {   # in reverse order of starting
    local i
    for ((i = ${#current_needs[@]} - 1; i >= 0; i--)); do
        "need_${current_needs[i]}_stop" >/dev/null 2>&1 || true
    done
    current_needs=()
}

# Reports that mean the broker misbehaved even if the client side passed.
sanitizer_re='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: (Address|Undefined|Leak)Sanitizer|\*\*\* stack smashing|double free or corruption|malloc\(\): '

indent() { sed 's/^/    | /'; }

pass=0 fail=0 failed=()
for s in "${scenarios[@]}"; do
    name=${s%.*}
    path=$SUITE/$s
    dir=$(mktemp -d "$tmp_root/$name.XXXX")
    out=$dir/output.log
    : >"$out"
    problems=()
    started=$SECONDS

    case $s in
        *.sh) interp=(bash) ;;
        *.py) interp=(/usr/bin/python3 -u) ;;
        *.js) interp=(node) ;;
    esac
    timeout_s=$(directive "$path" timeout | tail -n 1)
    timeout_s=${timeout_s:-${COMPAT_TIMEOUT:-120}}
    own_broker=0
    [ "$(directive "$path" broker | tail -n 1)" = none ] && own_broker=1
    scenario_overrides=()
    while IFS= read -r kv; do
        [ -n "$kv" ] && scenario_overrides+=("${kv//\$SCENARIO_TMP/$dir}")
    done < <(directive "$path" override)
    read -r -a needs <<<"$(directive "$path" needs | tr '\n' ' ')"
    for n in "${global_needs[@]}"; do
        [[ " ${needs[*]} " == *" $n "* ]] || needs+=("$n")
    done

    export SCENARIO_TMP=$dir COMPAT_LIB=$SUITE/lib SCENARIO_NAME=$name
    unset BROKER_PID BROKER_PORT BOOTSTRAP BROKER_LOG BROKER_DATA BROKER_EXIT
    BROKER_LOG=$dir/broker.log

    ok=1
    if [ ${#needs[@]} -gt 0 ] && ! start_needs "${needs[@]}" 2>>"$out"; then
        problems+=("a service it needs did not start")
        ok=0
    fi
    if [ $ok -eq 1 ] && [ $own_broker -eq 0 ]; then
        if ! sh_broker_start "$dir" "${scenario_overrides[@]}" 2>>"$out"; then
            problems+=("the broker did not start")
            ok=0
        fi
    fi

    if [ $ok -eq 1 ]; then
        timeout -k 5 "$timeout_s" "${interp[@]}" "$path" </dev/null >>"$out" 2>&1
        rc=$?
        if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
            problems+=("timed out after $timeout_s s")
        elif [ $rc -ne 0 ]; then
            problems+=("exited with status $rc")
        fi
        if [ $own_broker -eq 0 ]; then
            if ! sh_broker_alive; then
                problems+=("the broker died during the scenario")
            fi
            if ! sh_broker_stop; then
                echo "note: the broker ignored SIGTERM for ${COMPAT_STOP_TIMEOUT:-10} s and was killed" >>"$out"
            fi
            # SIGTERM asks for a clean exit (0); dying by it or by our SIGKILL
            # is tolerated, any other status or signal means it failed.
            case ${BROKER_EXIT:-0} in
                0|143|137) ;;
                *) problems+=("the broker exited with status $BROKER_EXIT") ;;
            esac
        fi
    fi
    stop_needs

    # Every broker log of this scenario (own-broker scenarios may have several).
    reports=$(find "$dir" -name '*.log' ! -name output.log -exec grep -hE "$sanitizer_re" {} + 2>/dev/null | head -n 5)
    [ -n "$reports" ] && problems+=("sanitizer reports in the broker log")

    took=$((SECONDS - started))
    if [ ${#problems[@]} -eq 0 ]; then
        pass=$((pass + 1))
        echo "PASS $name (${took} s)"
        [ "$verbose" = 1 ] && indent <"$out"
        [ "$keep" = 1 ] || rm -rf "$dir"
    else
        fail=$((fail + 1))
        failed+=("$name")
        reason=$(IFS=';'; echo "${problems[*]}" | sed 's/;/; /g')
        echo "FAIL $name (${took} s): $reason"
        echo "  scenario output (last 60 lines):"
        tail -n 60 "$out" | indent
        if [ -n "$reports" ]; then
            echo "  sanitizer reports:"
            indent <<<"$reports"
        fi
        if [ -s "$BROKER_LOG" ]; then
            echo "  broker log $BROKER_LOG (last 40 lines):"
            tail -n 40 "$BROKER_LOG" | indent
        fi
        if [[ $s == *.js ]] && grep -q "Cannot find module" "$out"; then
            echo "  hint: node modules are missing; run make deps-test (npm ci in kafka-compat-suite/)"
        fi
        echo "  kept: $dir"
    fi
done

[ $fail -eq 0 ] || printf 'compat failed: %s\n' "${failed[@]}"
echo "compat: $pass passed, $fail failed"
[ $fail -eq 0 ]
