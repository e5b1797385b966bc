#!/usr/bin/env bash
# Stop a server started by tests/tools/pg-start.sh and remove its files.
#
#   tests/tools/pg-stop.sh STATE          stop, delete its directory and STATE
#   tests/tools/pg-stop.sh --keep STATE   stop only (fast shutdown); the files
#                                         and STATE stay for pg-start.sh --resume
#
# Safe to call twice, and on a state file whose server already died: it
# tries a fast shutdown, then an immediate one, then SIGKILL of the
# postmaster named in postmaster.pid, so nothing is left running. A
# missing state file is not an error (nothing to stop).
set -uo pipefail

say() { echo "pg-stop: $*" >&2; }

keep=0
if [ "${1:-}" = --keep ]; then
    keep=1
    shift
fi
[ $# -eq 1 ] || { say "usage: $0 [--keep] STATE"; exit 2; }
state=$1
[ -f "$state" ] || exit 0
# shellcheck disable=SC1090
. "$state"
[ -n "${PG_DATA:-}" ] || { say "state file \"$state\" names no data directory"; exit 1; }

as_owner() {
    if [ "${PG_RUNAS:-}" = "$(id -un)" ] || [ -z "${PG_RUNAS:-}" ]; then
        "$@"
    else
        runuser -u "$PG_RUNAS" -- "$@"
    fi
}

running() { [ -f "$PG_DATA/postmaster.pid" ] && kill -0 "$(head -n 1 "$PG_DATA/postmaster.pid")" 2>/dev/null; }

if running; then
    as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -t 20 -m fast stop >/dev/null 2>&1 ||
        as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -t 10 -m immediate stop >/dev/null 2>&1
    if running; then
        pid=$(head -n 1 "$PG_DATA/postmaster.pid")
        say "the server (pid $pid) ignored pg_ctl stop; killing it"
        kill -KILL "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
fi
if running; then
    say "could not stop the server in $PG_DATA"
    exit 1
fi
[ $keep -eq 1 ] && exit 0
case ${PG_DIR:-} in
    */sh-pg.*) rm -rf "$PG_DIR" ;;
    *) say "not removing \"${PG_DIR:-}\": not a directory pg-start.sh made" ;;
esac
rm -f "$state"
exit 0
