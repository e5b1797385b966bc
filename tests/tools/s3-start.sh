#!/usr/bin/env bash
# Start a throwaway S3 server (s3rver) for tests and print how to reach it.
#
#   tests/tools/s3-start.sh STATE            start a new server; print its settings
#   tests/tools/s3-start.sh --run CMD...     start one, run CMD with the settings
#                                            in its environment, always stop it;
#                                            exit with CMD's status
#   tests/tools/s3-start.sh --resume STATE   start a server stopped with
#                                            s3-stop.sh --keep again (same port,
#                                            same credentials, same objects)
#
# The server is @20minutes/s3rver (tests/tools/package.json, installed by
# make deps-test), run by tests/tools/s3rver-run.js on 127.0.0.1 at a free
# port in S3_PORT_MIN..S3_PORT_MAX (default 55500-55599), storing objects
# in its own directory under ${TMPDIR:-/tmp}. It verifies SigV4 signatures
# against one random access key id and secret made for this server, and has
# one bucket, "streamhouse-test" (S3_BUCKET to change it).
#
# stdout gets the settings as shell assignments, ready for eval:
#
#   export AWS_ENDPOINT_URL=http://127.0.0.1:PORT AWS_REGION=us-east-1
#   export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
#   export SH_TEST_S3_BUCKET=streamhouse-test SH_TEST_S3_STATE=STATE
#
# STATE is a shell-sourceable file (S3_DIR, S3_PORT, S3_PID, S3_ENDPOINT,
# S3_BUCKET, S3_REGION, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY) that
# tests/tools/s3-stop.sh STATE uses to stop the server and remove
# everything. If anything fails after the directory exists, the server is
# stopped and the directory removed before exiting non-zero. Progress and
# errors go to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
say() { echo "s3-start: $*" >&2; }
die() { say "$*"; exit 1; }

need_node() {
    command -v node >/dev/null 2>&1 || die "node is missing (run make deps-test)"
    [ -f "$here/node_modules/@20minutes/s3rver/package.json" ] ||
        die "s3rver is not installed in tests/tools/node_modules (run make deps-test)"
}

# running, and not a zombie waiting for its parent (init) to reap it
alive() {
    local state
    [ -n "${1:-}" ] || return 1
    state=$(cut -d')' -f2 "/proc/$1/stat" 2>/dev/null | awk '{print $1}')
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# launch: start the server from the variables S3_DIR, S3_BUCKET,
# S3_ACCESS_KEY_ID and (when set) S3_PORT; sets S3_PORT and S3_PID.
launch() {
    local ready=$S3_DIR/ready args i
    rm -f "$ready"
    args=(--dir "$S3_DIR/data" --bucket "$S3_BUCKET" --access-key-id "$S3_ACCESS_KEY_ID"
          --secret-file "$S3_DIR/secret" --ready-file "$ready"
          --port-min "${S3_PORT_MIN:-55500}" --port-max "${S3_PORT_MAX:-55599}")
    [ -n "${S3_PORT:-}" ] && args+=(--port "$S3_PORT")
    [ "${S3_VERBOSE:-0}" = 1 ] && args+=(--verbose)
    # its own session, all descriptors redirected: it must outlive this
    # script without holding a caller's pipe open. s3rver encrypts list
    # continuation tokens with DES, which OpenSSL 3 keeps in its legacy
    # provider (Debian's libssl3 ships it).
    setsid node --openssl-legacy-provider "$here/s3rver-run.js" "${args[@]}" </dev/null >>"$S3_DIR/s3rver.log" 2>&1 &
    S3_PID=$!
    for ((i = 0; i < 300; i++)); do
        [ -s "$ready" ] && break
        alive "$S3_PID" || break
        sleep 0.1
    done
    if [ ! -s "$ready" ]; then
        kill -KILL "$S3_PID" 2>/dev/null || true
        die "s3rver did not start: $(tail -n 5 "$S3_DIR/s3rver.log")"
    fi
    read -r S3_PORT S3_PID <"$ready"
}

write_state() {
    {
        printf 'S3_DIR=%q\n' "$S3_DIR"
        printf 'S3_PORT=%q\n' "$S3_PORT"
        printf 'S3_PID=%q\n' "$S3_PID"
        printf 'S3_ENDPOINT=%q\n' "http://127.0.0.1:$S3_PORT"
        printf 'S3_BUCKET=%q\n' "$S3_BUCKET"
        printf 'S3_REGION=%q\n' us-east-1
        printf 'S3_ACCESS_KEY_ID=%q\n' "$S3_ACCESS_KEY_ID"
        printf 'S3_SECRET_ACCESS_KEY=%q\n' "$(cat "$S3_DIR/secret")"
    } >"$1.tmp"
    mv "$1.tmp" "$1"
}

print_env() {   # print_env STATE
    # shellcheck disable=SC1090
    . "$1"
    printf 'export AWS_ENDPOINT_URL=%q AWS_REGION=%q\n' "$S3_ENDPOINT" "$S3_REGION"
    printf 'export AWS_ACCESS_KEY_ID=%q AWS_SECRET_ACCESS_KEY=%q\n' "$S3_ACCESS_KEY_ID" \
        "$S3_SECRET_ACCESS_KEY"
    printf 'export SH_TEST_S3_BUCKET=%q SH_TEST_S3_STATE=%q\n' "$S3_BUCKET" "$1"
}

case ${1:-} in
    --resume)
        [ $# -eq 2 ] || die "usage: $0 --resume STATE"
        [ -f "$2" ] || die "state file \"$2\" does not exist"
        # shellcheck disable=SC1090
        . "$2"
        [ -d "${S3_DIR:-}" ] || die "state file \"$2\" names no server directory"
        alive "${S3_PID:-}" && die "the server in $S3_DIR is still running (pid $S3_PID)"
        need_node
        launch
        write_state "$2"
        exit 0
        ;;
    --run)
        shift
        [ $# -ge 1 ] || die "usage: $0 --run CMD [ARG...]"
        state=$(mktemp "${TMPDIR:-/tmp}/sh-s3-state.XXXXXX")
        # The server must go whatever happens to CMD, including Ctrl-C.
        trap '"$here/s3-stop.sh" "$state" || true; rm -f "$state"' EXIT
        trap 'exit 130' INT TERM
        settings=$("$here/s3-start.sh" "$state") || exit 1
        eval "$settings"
        rc=0
        "$@" || rc=$?
        exit $rc
        ;;
    -h|--help|"")
        sed -n '2,31p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        [ -n "${1:-}" ] && exit 0
        exit 2
        ;;
    -*)
        die "unknown option $1"
        ;;
esac

[ $# -eq 1 ] || die "usage: $0 STATE"
state=$1
need_node
S3_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sh-s3.XXXXXX")
S3_PID=
S3_PORT=
cleanup_on_failure() {
    alive "$S3_PID" && kill -KILL "$S3_PID" 2>/dev/null
    rm -rf "$S3_DIR"
    rm -f "$state"
}
trap 'rc=$?; [ $rc -eq 0 ] || cleanup_on_failure' EXIT
chmod 700 "$S3_DIR"
mkdir "$S3_DIR/data"

S3_BUCKET=${S3_BUCKET:-streamhouse-test}
# AWS-shaped: 20 upper-case alphanumerics, a 40-character secret
S3_ACCESS_KEY_ID=AKST$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)
(umask 077; od -An -N20 -tx1 /dev/urandom | tr -d ' \n' >"$S3_DIR/secret")

launch
write_state "$state"
say "s3rver on 127.0.0.1:$S3_PORT (pid $S3_PID), bucket $S3_BUCKET, files in $S3_DIR"
print_env "$state"
