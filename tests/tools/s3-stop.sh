#!/usr/bin/env bash
# Stop a server started by tests/tools/s3-start.sh and remove its files.
#
#   tests/tools/s3-stop.sh STATE          stop, delete its directory and STATE
#   tests/tools/s3-stop.sh --keep STATE   stop only; the objects, credentials
#                                         and STATE stay for s3-start.sh --resume
#
# Safe to call twice, and on a state file whose server already died:
# SIGTERM (and SIGCONT, in case a test paused it), then SIGKILL after 5 s,
# so nothing is left running. A missing state file is not an error.
set -uo pipefail

say() { echo "s3-stop: $*" >&2; }

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
[ -n "${S3_DIR:-}" ] || { say "state file \"$state\" names no server directory"; exit 1; }

# The pid must still be our node process (pids are reused), alive: an
# exiting process loses its command line before it is gone.
ours() {
    local st
    [ -n "${S3_PID:-}" ] || return 1
    st=$(cut -d')' -f2 "/proc/$S3_PID/stat" 2>/dev/null | awk '{print $1}')
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ] &&
        tr '\0' ' ' <"/proc/$S3_PID/cmdline" 2>/dev/null | grep -q "s3rver-run.js.*$S3_DIR"
}

if ours; then
    kill -TERM "$S3_PID" 2>/dev/null
    kill -CONT "$S3_PID" 2>/dev/null
    for _ in $(seq 50); do ours || break; sleep 0.1; done
    if ours; then
        say "s3rver (pid $S3_PID) ignored SIGTERM; killing it"
        kill -KILL "$S3_PID" 2>/dev/null
        for _ in $(seq 50); do ours || break; sleep 0.1; done
    fi
fi
if ours; then
    say "could not stop s3rver (pid $S3_PID)"
    exit 1
fi
[ $keep -eq 1 ] && exit 0
case $S3_DIR in
    */sh-s3.*) rm -rf "$S3_DIR" ;;
    *) say "not removing \"$S3_DIR\": not a directory s3-start.sh made" ;;
esac
rm -f "$state"
exit 0
