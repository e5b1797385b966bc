# shellcheck shell=bash
# Start and stop StreamHouse brokers for end-to-end scenarios. Sourced by
# run.sh, and by any bash scenario that manages its own brokers (header
# "# compat-broker: none"), e.g. to restart one over the same data.
#
#   sh_broker_cleanup_on_exit           trap EXIT: kill every broker started here
#   sh_broker_start DIR [KEY=VALUE...]  start one; data in DIR/data, log DIR/broker.log
#   sh_broker_stop [PID]                SIGTERM, then SIGKILL after a grace period
#   sh_broker_alive [PID]
#
# sh_broker_start sets BROKER_PID, BROKER_PORT, BROKER_HOST, BOOTSTRAP,
# BROKER_LOG, BROKER_DATA and BROKER_ID for the broker it started; sh_broker_stop
# sets BROKER_EXIT. Brokers run with DIR as their working directory, so a
# relative path in the configuration can never land in the repository.
#
# Inputs (environment):
#   BROKER                 broker binary (default: bin/streamhouse-server)
#   COMPAT_CONFIG          base configuration file (default: configs/server.properties
#                          when it exists, else an empty file)
#   COMPAT_OVERRIDES       space-separated KEY=VALUE applied to every broker
#   COMPAT_PORT_MIN/MAX    port range to pick from (default 29000-29999)
#   COMPAT_START_TIMEOUT   seconds to wait for the port to accept (default 30)
#   COMPAT_DETECT_LEAKS    1 to let LeakSanitizer report at exit (default 0)

SH_COMPAT_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SH_REPO_ROOT=$(cd "$SH_COMPAT_LIB/../.." && pwd)
SH_BROKER_PIDS=()
SH_PYTHON=/usr/bin/python3

sh_broker_bin() {
    local b=${BROKER:-$SH_REPO_ROOT/bin/streamhouse-server}
    case $b in /*) ;; *) b=$PWD/$b ;; esac
    echo "$b"
}

# A port is taken as free when we can bind it ourselves. Another process may
# still grab it before the broker does; sh_broker_start retries on that.
sh_broker_pick_port() {
    local lo=${COMPAT_PORT_MIN:-29000} hi=${COMPAT_PORT_MAX:-29999}
    "$SH_PYTHON" - "$lo" "$hi" <<'EOF'
import random, socket, sys
lo, hi = int(sys.argv[1]), int(sys.argv[2])
ports = list(range(lo, hi + 1))
random.shuffle(ports)
for p in ports:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    sys.exit(0)
sys.exit("no free port in %d-%d" % (lo, hi))
EOF
}

sh_broker_alive() {
    local pid=${1:-${BROKER_PID:-}} state
    [ -n "$pid" ] || return 1
    state=$(cut -d')' -f2 "/proc/$pid/stat" 2>/dev/null | awk '{print $1}') || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

sh_port_accepts() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

sh_broker_cleanup_on_exit() {
    trap 'sh_broker_stop_all' EXIT
}

sh_broker_stop_all() {
    local pid
    for pid in "${SH_BROKER_PIDS[@]}"; do
        sh_broker_alive "$pid" && sh_broker_stop "$pid" >/dev/null 2>&1
    done
    return 0
}

# sh_broker_start DIR [KEY=VALUE...]: returns non-zero (with the reason on
# stderr) when the broker exits or does not accept connections in time.
sh_broker_start() {
    local dir=$1; shift
    local bin config attempt port pid waited limit kv
    bin=$(sh_broker_bin)
    if [ ! -x "$bin" ]; then
        echo "broker binary $bin is missing: run make (or set BROKER=path)" >&2
        return 1
    fi
    mkdir -p "$dir/data"
    dir=$(cd "$dir" && pwd)
    config=${COMPAT_CONFIG:-$SH_REPO_ROOT/configs/server.properties}
    if [ ! -f "$config" ]; then
        config=$dir/empty.properties
        : >"$config"
    fi
    case $config in /*) ;; *) config=$PWD/$config ;; esac

    BROKER_ID=${BROKER_ID:-7}
    BROKER_HOST=127.0.0.1
    BROKER_LOG=$dir/broker.log
    BROKER_DATA=$dir/data
    limit=$(( ${COMPAT_START_TIMEOUT:-30} * 10 ))

    for attempt in 1 2 3 4 5; do
        port=$(sh_broker_pick_port) || return 1
        local args=("$config"
            --override "listeners=PLAINTEXT://127.0.0.1:$port"
            --override "log.dirs=$BROKER_DATA"
            --override "node.id=$BROKER_ID"
            # Many scenarios stamp records with fixed 2023 timestamps so runs
            # are reproducible; the default 7-day time retention would delete
            # their uploaded chunks on its first pass (30 s after start) on a
            # slow machine. Retention scenarios set retention per topic.
            --override "log.retention.ms=-1")
        # shellcheck disable=SC2086 # COMPAT_OVERRIDES is a word list on purpose
        for kv in ${COMPAT_OVERRIDES:-} "$@"; do
            args+=(--override "$kv")
        done
        echo "=== $(date '+%F %T') starting: $bin ${args[*]}" >>"$BROKER_LOG"
        (
            cd "$dir" || exit 1
            export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=${COMPAT_DETECT_LEAKS:-0}}
            export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
            exec "$bin" "${args[@]}" </dev/null >>"$BROKER_LOG" 2>&1
        ) &
        pid=$!
        waited=0
        while [ $waited -lt "$limit" ]; do
            sh_broker_alive "$pid" || break
            if sh_port_accepts "$port"; then
                # Something else may own the port; ours would die on bind.
                sleep 0.1
                if sh_broker_alive "$pid"; then
                    SH_BROKER_PIDS+=("$pid")
                    BROKER_PID=$pid BROKER_PORT=$port BOOTSTRAP=127.0.0.1:$port
                    export BROKER_PID BROKER_PORT BROKER_HOST BOOTSTRAP BROKER_LOG \
                        BROKER_DATA BROKER_ID
                    return 0
                fi
                break
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
        if sh_broker_alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
            echo "broker did not accept connections on port $port within ${COMPAT_START_TIMEOUT:-30} s" >&2
            return 1
        fi
        wait "$pid" 2>/dev/null
        local rc=$?
        if tail -n 20 "$BROKER_LOG" | grep -qi 'in use'; then
            continue    # lost a race for the port: pick another
        fi
        echo "broker exited with status $rc during startup (log: $BROKER_LOG)" >&2
        return 1
    done
    echo "could not find a free port after 5 attempts" >&2
    return 1
}

# sh_broker_stop [PID]: sets BROKER_EXIT to the exit status, 137 if it had
# to be killed. Returns 1 if SIGKILL was needed.
sh_broker_stop() {
    local pid=${1:-${BROKER_PID:-}} i grace
    [ -n "$pid" ] || return 0
    grace=$(( ${COMPAT_STOP_TIMEOUT:-10} * 10 ))
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < grace; i++)); do
        sh_broker_alive "$pid" || break
        sleep 0.1
    done
    local killed=0
    if sh_broker_alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null
        killed=1
    fi
    wait "$pid" 2>/dev/null
    BROKER_EXIT=$?
    local keep=() p
    for p in "${SH_BROKER_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    SH_BROKER_PIDS=("${keep[@]}")
    return $killed
}
