#!/usr/bin/env bash
# bench/run.sh - the driver behind `make bench` and `make bench-smoke`.
#
# Runs the standard workload set against StreamHouse (embedded defaults) and
# the reference broker (librdkafka's mock cluster, bench/mockbroker.c) in
# the same run, interleaving their repetitions so that a noisy machine
# affects both alike, then prints a table: workload, StreamHouse median
# [spread], reference median [spread], ratio. Also measures the machine's
# raw limits (loopback TCP, fsync latency, sequential write bandwidth).
#
# A workload StreamHouse cannot serve yet (missing API, server not built or
# not starting) shows as "n/a" with the reason and does not fail the run.
# A run that loses, duplicates or reorders records shows as FAILED and makes
# the script exit 1.
#
# Environment (all optional):
#   SHBENCH_SHORT=1        smoke run: tiny counts, one repetition, no timing
#                          figures worth reading, no hardware probes; exit
#                          code reflects correctness only
#   SHBENCH_REPS=3         repetitions per workload
#   SHBENCH_ONLY=REGEX     run only workloads whose id matches (grep -E)
#   SHBENCH_BUDGET=840     seconds the broker runs may take in total; a run
#                          is cut short (and reported n/a, with the reason)
#                          when it would pass this, so `make bench` ends in
#                          under 15 minutes whatever the brokers' speed
#   SHBENCH_STREAMHOUSE=0  skip StreamHouse (reference only)
#   SHBENCH_HW=0           skip the hardware probes
#   SHBENCH_PORT=59100     first port: the reference takes the first free one
#                          of +0..+9, StreamHouse of +10..+19, probes +90..+99
#   SHBENCH_DATA_DIR=/tmp  parent of the StreamHouse data directories and of
#                          the disk probes (put it on the disk to measure)
#   SHBENCH_OUT=DIR        results directory (default build/bench/results/<time>)
#   SHBENCH_SH_ARGS="..."  extra arguments for bin/streamhouse-server
#   SHBENCH_BUILD=0        do not run `make all`; use bin/streamhouse-server
#                          as it is (recorded in machine.txt)
#
# Processes: the script starts brokers and clients itself, remembers their
# pids and stops exactly those on exit (trap), including on Ctrl-C.

set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2

BUILD=${BUILD:-build}
BIN=$BUILD/bench
SHORT=${SHBENCH_SHORT:-0}
REPS=${SHBENCH_REPS:-3}
[ "$SHORT" = 1 ] && REPS=1
ONLY=${SHBENCH_ONLY:-}
USE_SH=${SHBENCH_STREAMHOUSE:-1}
USE_HW=${SHBENCH_HW:-1}
[ "$SHORT" = 1 ] && USE_HW=0
PORT_REF=${SHBENCH_PORT:-59100}
PORT_SH=$((PORT_REF + 10))
PORT_HW=$((PORT_REF + 90))
DATA_PARENT=${SHBENCH_DATA_DIR:-${TMPDIR:-/tmp}}
OUT=${SHBENCH_OUT:-$BUILD/bench/results/$(date +%Y%m%d-%H%M%S)$([ "$SHORT" = 1 ] && echo -smoke)}
SH_CONFIG=configs/server.properties
SH_SERVER=bin/streamhouse-server
# the system interpreter: version-manager shims cost ~0.3 s per call
PY=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
TABLE="$PY bench/table.py"

mkdir -p "$OUT/logs" || exit 2
RESULTS=$OUT/results.jsonl
: > "$RESULTS"

REF_PID= SH_PID= SH_DATA=
START_TIME=$(date +%s)
BUDGET=${SHBENCH_BUDGET:-840}
DEADLINE=$((START_TIME + BUDGET))

log() { printf '%s\n' "$*" >&2; }

stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}

stop_brokers() {
    stop_pid "$REF_PID"; REF_PID=
    stop_pid "$SH_PID"; SH_PID=
    if [ -n "$SH_DATA" ]; then rm -rf "$SH_DATA"; SH_DATA=; fi
}

cleanup() { stop_brokers; }
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------------ build

if [ ! -x "$BIN/shbench" ] || [ ! -x "$BIN/shbench-mock" ] || [ ! -x "$BIN/shbench-hw" ]; then
    ${MAKE:-make} -s bench-tools || { log "bench tools do not build"; exit 2; }
fi

SH_NA=
if [ "$USE_SH" != 1 ]; then
    SH_NA="skipped (SHBENCH_STREAMHOUSE=0)"
elif [ "${SHBENCH_BUILD:-1}" = 1 ] &&
     ! ${MAKE:-make} -s all >"$OUT/logs/build-streamhouse.log" 2>&1; then
    SH_NA="server does not build (make all failed, see logs/build-streamhouse.log)"
elif [ ! -x "$SH_SERVER" ]; then
    SH_NA="$SH_SERVER missing"
elif [ ! -f "$SH_CONFIG" ]; then
    SH_NA="$SH_CONFIG missing"
fi
[ -n "$SH_NA" ] && log "StreamHouse: n/a: $SH_NA"

# ----------------------------------------------------------- machine info

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "nproc: $(nproc)"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "data disk: $(df -h --output=source,fstype,size,avail "$DATA_PARENT" 2>/dev/null | tail -1 | tr -s ' ') (for $DATA_PARENT)"
    echo "kernel: $(uname -r)"
    echo "librdkafka: $(pkg-config --modversion rdkafka 2>/dev/null || echo unknown)"
    echo "git: $(git rev-parse --short HEAD 2>/dev/null)"
    [ "${SHBENCH_BUILD:-1}" = 1 ] ||
        echo "server: $SH_SERVER not rebuilt (SHBENCH_BUILD=0), built $(date -u -r "$SH_SERVER" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null)"
} > "$OUT/machine.txt"

# ---------------------------------------------------------------- workloads
#
# One line per workload: id | kind | partitions | title | shbench arguments
#   kind produce: throughput; e2e: latency at a fixed rate;
#   consume: fill once per broker (arguments after "fill:"), then read the
#   whole topic from offset 0 each repetition.
# Topic names are derived from the id and the repetition.

WORKLOADS=()
if [ "$SHORT" = 1 ]; then
    WORKLOADS+=(
        "smoke-produce|produce|3|produce 100B p3 acks=all lz4|-s 100 -a all -z lz4 -n 2000"
        "smoke-idempotent|produce|3|produce idempotent 2 producers|-s 200 -a all -i -P 2 -n 2000"
        "smoke-consume|consume|3|consume from start|fill:-s 100 -a all --spread rr:100 -n 3000"
        "smoke-e2e|e2e|3|e2e at 2000 rec/s|-s 100 -a all -l 1 -r 2000 -n 1000 --fetch-wait-ms 5"
        "smoke-1000p|produce|1000|1000 partitions, small batches|-s 100 -a 1 --spread rr -l 0 --batch-size 1024 -n 3000"
    )
else
    # Throughput matrix: 2 s of produce per repetition, capped at 20M records.
    # librdkafka's defaults otherwise (linger.ms 5, batch.size 1 MB).
    for size in 100 1024; do
        for parts in 1 12; do
            for acks in 1 all; do
                for comp in none lz4; do
                    WORKLOADS+=("p${size}-p${parts}-a${acks}-${comp}|produce|${parts}|produce ${size}B p${parts} acks=${acks} ${comp}|-s ${size} -a ${acks} -z ${comp} -d 2 -n 20000000")
                done
            done
        done
    done
    # Latency at a moderate fixed rate. fetch.wait.max.ms 5: the reference
    # answers an empty fetch only after the full wait (no long-poll wake-up),
    # which would otherwise dominate its end-to-end figure.
    WORKLOADS+=("latency-10k|e2e|12|latency 100B p12 acks=all at 10k rec/s|-s 100 -a all -l 1 -r 10000 -d 10 --fetch-wait-ms 5")
    # Pathological: one record to each of 1000 partitions in turn, no linger,
    # 1 KiB batches: many tiny batches per request.
    WORKLOADS+=("p1000-small|produce|1000|1000 partitions, rr, linger 0, 1 KiB batches|-s 100 -a 1 --spread rr -l 0 --batch-size 1024 -d 3 -n 20000000")
    # 10M records of 100 B, the one big workload, last so that the time
    # budget can only ever cut it. The reference keeps at most 5 MiB per
    # partition (librdkafka 2.0.2 mock), so the records are spread over 256
    # partitions in runs of 1000 (~4.4 MB each) to stay resident; the same
    # shape for both brokers. The fill stops at 10M records or 60 s.
    WORKLOADS+=("consume-10m|consume|256|consume 10M x 100B from offset 0 (256 partitions)|fill:-s 100 -a 1 --spread rr:1000 -n 10000000 -d 60")
fi

# ------------------------------------------------------------------ brokers

wait_port() { # pid port seconds
    local pid=$1 port=$2 tries=$(( $3 * 10 ))
    for _ in $(seq "$tries"); do
        kill -0 "$pid" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

start_ref() { # wid topic:partitions...
    local wid=$1; shift
    local args=() t
    for t in "$@"; do args+=(--topic "$t"); done
    "$BIN/shbench-mock" --port "$PORT_REF" "${args[@]}" \
        >"$OUT/logs/reference-$wid.out" 2>"$OUT/logs/reference-$wid.err" &
    REF_PID=$!
    for _ in $(seq 100); do
        REF_BS=$(awk '/^BOOTSTRAP/ {print $2; exit}' "$OUT/logs/reference-$wid.out")
        [ -n "$REF_BS" ] && return 0
        kill -0 "$REF_PID" 2>/dev/null || break
        sleep 0.1
    done
    log "reference broker did not start: $(tail -2 "$OUT/logs/reference-$wid.err")"
    REF_PID=
    return 1
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

SH_START_NA=
start_sh() { # wid
    local wid=$1 port
    SH_START_NA=$SH_NA
    [ -n "$SH_START_NA" ] && return 1
    SH_DATA=$(mktemp -d "$DATA_PARENT/shbench-sh.XXXXXX") || { SH_START_NA="no data dir"; return 1; }
    # Ports in our range can be held by other programs (listeners, or
    # outgoing connections that were given them as ephemeral ports):
    # try the next one when the server cannot bind.
    for port in $(seq "$PORT_SH" $((PORT_SH + 9))); do
        port_busy "$port" && continue
        # shellcheck disable=SC2086
        "$SH_SERVER" "$SH_CONFIG" \
            --override "listeners=PLAINTEXT://127.0.0.1:$port" \
            --override "log.dirs=$SH_DATA" ${SHBENCH_SH_ARGS:-} \
            >"$OUT/logs/streamhouse-$wid.log" 2>&1 &
        SH_PID=$!
        if wait_port "$SH_PID" "$port" 20; then
            SH_BS=127.0.0.1:$port
            return 0
        fi
        stop_pid "$SH_PID"; SH_PID=
        grep -qi "in use" "$OUT/logs/streamhouse-$wid.log" || break
    done
    SH_START_NA="server did not start listening (logs/streamhouse-$wid.log: $(tail -1 "$OUT/logs/streamhouse-$wid.log" | cut -c1-80))"
    return 1
}

# ------------------------------------------------------------------ runs

FAILED=0

record() { # workload title kind broker rep status reason [out-file]
    $TABLE record "$RESULTS" --workload "$1" --title "$2" --kind "$3" --broker "$4" \
        --rep "$5" --status "$6" --reason "$7" ${8:+--out "$8"}
}

# run_one broker wid title kind rep topic timeout shbench-args...
# Sets RUN_STATUS (ok/na/failed) and RUN_JSON_FILE.
run_one() {
    local broker=$1 wid=$2 title=$3 kind=$4 rep=$5 topic=$6 tmo=$7; shift 7
    local bs pid
    if [ "$broker" = streamhouse ]; then bs=$SH_BS; pid=$SH_PID; else bs=$REF_BS; pid=$REF_PID; fi
    local base="$OUT/logs/$broker-$wid-r$rep"
    local left=$((DEADLINE - $(date +%s))) cut=0
    if [ "$left" -lt 5 ]; then
        RUN_STATUS=na RUN_REASON="time budget of ${BUDGET} s used up before this run (SHBENCH_BUDGET)"
        record "$wid" "$title" "$kind" "$broker" "$rep" na "$RUN_REASON"
        log "  $(printf '%-11s' "$broker") r$rep: NA: $RUN_REASON"
        return
    fi
    [ "$left" -lt "$tmo" ] && { tmo=$left; cut=1; }
    timeout -k 5 "$tmo" "$BIN/shbench" -b "$bs" -t "$topic" --broker-pid "$pid" \
        --label "$wid" "$@" >"$base.out" 2>"$base.err"
    local rc=$? reason=
    if [ "$cut" = 1 ] && { [ "$rc" = 124 ] || [ "$rc" = 137 ]; }; then
        rc=budget
    fi
    case $rc in
        budget) RUN_STATUS=na; reason="stopped by the time budget of ${BUDGET} s (SHBENCH_BUDGET)" ;;
        0) RUN_STATUS=ok ;;
        2|3) RUN_STATUS=na; reason=$(grep '^shbench: ' "$base.err" | tail -1 | sed 's/^shbench: //') ;;
        1) RUN_STATUS=failed; reason=$(grep 'FAILED' "$base.err" | tail -1 | sed 's/^.*FAILED: //') ;;
        124|137) RUN_STATUS=failed; reason="no result within ${tmo}s (timeout)" ;;
        *) RUN_STATUS=failed; reason="shbench exited with status $rc: $(tail -1 "$base.err")" ;;
    esac
    [ "$RUN_STATUS" = failed ] && FAILED=$((FAILED + 1))
    record "$wid" "$title" "$kind" "$broker" "$rep" "$RUN_STATUS" "${reason:-}" "$base.out"
    RUN_JSON_FILE=$base.out
    RUN_REASON=${reason:-}
    log "  $(printf '%-11s' "$broker") r$rep: $($TABLE brief "$base.out" "$RUN_STATUS" "${reason:-}")"
}

duration_of() { # shbench args -> seconds of produce, 0 when count-bound
    local d=0
    while [ $# -gt 0 ]; do
        case $1 in -d|--duration) d=$2; shift ;; esac
        shift
    done
    printf '%s' "${d%.*}"
}

# hardware limits ------------------------------------------------------

if [ "$USE_HW" = 1 ]; then
    log "machine limits ($REPS runs each)"
    for rep in $(seq "$REPS"); do
        for t in tcp fsync seqwrite; do
            case $t in
                tcp) args=(tcp --port "$PORT_HW" --seconds 2) ;;
                fsync) args=(fsync --dir "$DATA_PARENT" --count 1000 --size 1024) ;;
                seqwrite) args=(seqwrite --dir "$DATA_PARENT" --mib 256) ;;
            esac
            out="$OUT/logs/machine-$t-r$rep.out"
            if timeout -k 5 60 "$BIN/shbench-hw" "${args[@]}" >"$out" 2>"$out.err"; then
                $TABLE record "$RESULTS" --workload "hw-$t" --title "$t" --kind hw \
                    --broker machine --rep "$rep" --status ok --reason "" --out "$out"
            else
                $TABLE record "$RESULTS" --workload "hw-$t" --title "$t" --kind hw \
                    --broker machine --rep "$rep" --status na --reason "$(tail -1 "$out.err")"
            fi
        done
    done
fi

# broker workloads -------------------------------------------------------

nw=${#WORKLOADS[@]}
i=0
for w in "${WORKLOADS[@]}"; do
    i=$((i + 1))
    IFS='|' read -r wid kind parts title wargs <<<"$w"
    if [ -n "$ONLY" ] && ! grep -Eq "$ONLY" <<<"$wid"; then continue; fi
    log "[$i/$nw] $title"
    # shellcheck disable=SC2206
    if [ "$kind" = consume ]; then fill=(${wargs#fill:}); args=(); else args=($wargs); fi

    topics=()
    if [ "$kind" = consume ]; then
        topics=("shb-$wid:$parts")
    else
        for rep in $(seq "$REPS"); do topics+=("shb-$wid-r$rep:$parts"); done
    fi
    start_ref "$wid" "${topics[@]}" || { log "cannot run the reference broker; giving up"; exit 2; }
    start_sh "$wid" || true
    brokers=(streamhouse reference)

    if [ "$kind" = consume ]; then
        declare -A filled=() fillwhy=()
        for b in "${brokers[@]}"; do
            if [ "$b" = streamhouse ] && [ -n "$SH_START_NA" ]; then
                record "$wid-fill" "fill for: $title" fill "$b" 1 na "$SH_START_NA"
                fillwhy[$b]=$SH_START_NA
                continue
            fi
            run_one "$b" "$wid-fill" "fill for: $title" fill 1 "shb-$wid" 240 -p "$parts" "${fill[@]}"
            if [ "$RUN_STATUS" = ok ]; then
                filled[$b]=$($TABLE field "$RUN_JSON_FILE" acked)
            else
                filled[$b]=
                fillwhy[$b]="fill run $RUN_STATUS: $RUN_REASON"
            fi
        done
        for rep in $(seq "$REPS"); do
            for b in "${brokers[@]}"; do
                if [ "$b" = streamhouse ] && [ -n "$SH_START_NA" ]; then
                    record "$wid" "$title" "$kind" "$b" "$rep" na "$SH_START_NA"
                elif [ -z "${filled[$b]:-}" ]; then
                    record "$wid" "$title" "$kind" "$b" "$rep" na "${fillwhy[$b]:-fill run did not succeed}"
                else
                    run_one "$b" "$wid" "$title" "$kind" "$rep" "shb-$wid" 240 \
                        -m consume -n "${filled[$b]}"
                fi
            done
        done
        unset filled fillwhy
    else
        mode=()
        [ "$kind" = e2e ] && mode=(-m e2e)
        tmo=$(( $(duration_of "${args[@]}") + 120 ))
        for rep in $(seq "$REPS"); do
            for b in "${brokers[@]}"; do
                if [ "$b" = streamhouse ] && [ -n "$SH_START_NA" ]; then
                    record "$wid" "$title" "$kind" "$b" "$rep" na "$SH_START_NA"
                    continue
                fi
                run_one "$b" "$wid" "$title" "$kind" "$rep" "shb-$wid-r$rep" "$tmo" \
                    -p "$parts" "${mode[@]}" "${args[@]}"
            done
        done
    fi
    stop_brokers
done

# checker self-test (smoke only) ------------------------------------------
# Inject each fault the checks exist for; shbench must fail every time.
# Proves a figure in the table is never printed for a lossy run.

if [ "$SHORT" = 1 ] && [ -z "$ONLY" ]; then
    log "checker self-test (each run must FAIL)"
    start_ref selftest shb-self-skip:3 shb-self-dup:3 shb-self-reorder:3 ||
        { log "cannot run the reference broker; giving up"; exit 2; }
    for f in skip:missing dup:duplicate reorder:order; do
        fault=${f%%:*} word=${f#*:}
        base="$OUT/logs/selftest-$fault"
        timeout -k 5 60 "$BIN/shbench" -b "$REF_BS" -t "shb-self-$fault" -p 3 -m e2e -a all \
            -n 1000 --fetch-wait-ms 5 --inject "$fault:10" >"$base.out" 2>"$base.err"
        rc=$?
        if [ "$rc" = 1 ] && grep -q "FAILED.*$word" "$base.err"; then
            log "  $fault: detected ($(grep -o 'FAILED.*' "$base.err" | cut -c9-90))"
        else
            log "  $fault: NOT DETECTED (exit $rc, expected 1 and \"$word\"; see $base.err)"
            FAILED=$((FAILED + 1))
        fi
    done
    stop_brokers
fi

ELAPSED=$(( $(date +%s) - START_TIME ))
echo "elapsed: ${ELAPSED} s" >> "$OUT/machine.txt"

# ------------------------------------------------------------------ table

$TABLE table "$RESULTS" --machine "$OUT/machine.txt" --markdown "$OUT/table.md" \
    $([ "$SHORT" = 1 ] && echo --smoke)
log ""
log "results: $OUT (results.jsonl, table.md, logs/); elapsed ${ELAPSED} s"
if [ "$FAILED" -gt 0 ]; then
    log "FAILED: $FAILED run(s) lost, duplicated or reordered records, or did not finish"
    exit 1
fi
exit 0
