#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for tests and print its URL.
#
#   tests/tools/pg-start.sh STATE            start a new server; print its URL
#   tests/tools/pg-start.sh --run CMD...     start one, run CMD with
#                                            SH_TEST_META_URL and SH_TEST_PG_STATE
#                                            set, always stop it; exit with CMD's status
#   tests/tools/pg-start.sh --resume STATE   start a server stopped with
#                                            pg-stop.sh --keep again (same port;
#                                            nothing to do if it runs)
#   tests/tools/pg-start.sh --restart STATE  pg_ctl restart (fast shutdown)
#
# A new server gets its own directory under ${TMPDIR:-/tmp} owned by the
# postgres user (PostgreSQL refuses to run as root; when we are not root
# it runs as ourselves), initdb'd with --no-sync, listening on 127.0.0.1
# at a free port in PG_PORT_MIN..PG_PORT_MAX (default 55400-55499) and on a
# unix socket inside that directory. fsync is off: the server is thrown
# away, and commits then cost no disk flush. Local (socket) connections
# are trusted for the postgres superuser; TCP connections need a password
# (scram-sha-256), which the role the tests use has:
#
#   role streamhouse (LOGIN, CREATEDB, random password), owner of database
#   streamhouse; URL postgresql://streamhouse:PASSWORD@127.0.0.1:PORT/streamhouse
#
# STATE is a shell-sourceable file (PG_DIR, PG_DATA, PG_PORT, PG_BIN,
# PG_URL, PG_SOCKET, PG_RUNAS) that tests/tools/pg-stop.sh STATE uses to stop
# the server and remove everything. If anything fails after initdb the
# server is stopped and its directory removed before exiting non-zero.
# Only the URL goes to stdout; progress and errors go to stderr.
#
# Binaries: PG_BIN if set, else the newest /usr/lib/postgresql/*/bin
# (Debian's postgresql package, installed by .ci/install-deps test).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
say() { echo "pg-start: $*" >&2; }
die() { say "$*"; exit 1; }

pg_bin() {
    if [ -n "${PG_BIN:-}" ]; then
        echo "$PG_BIN"
        return
    fi
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] && [ -x "$d/initdb" ] ||
        die "PostgreSQL server binaries not found under /usr/lib/postgresql (run make deps-test, or set PG_BIN)"
    echo "$d"
}

# Run a command as the server's owner.
as_owner() {
    if [ "$PG_RUNAS" = "$(id -un)" ]; then
        "$@"
    else
        runuser -u "$PG_RUNAS" -- "$@"
    fi
}

pg_ctl_start() {
    as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/postgres.log" -w -t 30 \
        -o "-p $PG_PORT" start >/dev/null
}

port_free() {   # nothing listens on 127.0.0.1:$1 (and we may bind it)
    /usr/bin/python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}

load_state() {
    [ -f "$1" ] || die "state file \"$1\" does not exist"
    # shellcheck disable=SC1090
    . "$1"
    [ -n "${PG_DATA:-}" ] && [ -d "$PG_DATA" ] || die "state file \"$1\" names no data directory"
}

case ${1:-} in
    --resume)
        [ $# -eq 2 ] || die "usage: $0 --resume STATE"
        load_state "$2"
        if [ -f "$PG_DATA/postmaster.pid" ] && kill -0 "$(head -n 1 "$PG_DATA/postmaster.pid")" 2>/dev/null; then
            exit 0 # already running
        fi
        pg_ctl_start || die "could not start the server in $PG_DATA again (log: $PG_DIR/postgres.log)"
        exit 0
        ;;
    --restart)
        [ $# -eq 2 ] || die "usage: $0 --restart STATE"
        load_state "$2"
        as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/postgres.log" -w -t 30 \
            -m fast -o "-p $PG_PORT" restart >/dev/null ||
            die "could not restart the server in $PG_DATA (log: $PG_DIR/postgres.log)"
        exit 0
        ;;
    --run)
        shift
        [ $# -ge 1 ] || die "usage: $0 --run CMD [ARG...]"
        state=$(mktemp "${TMPDIR:-/tmp}/sh-pg-state.XXXXXX")
        # The server must go whatever happens to CMD, including Ctrl-C.
        trap '"$here/pg-stop.sh" "$state" || true; rm -f "$state"' EXIT
        trap 'exit 130' INT TERM
        url=$("$here/pg-start.sh" "$state") || exit 1
        rc=0
        SH_TEST_META_URL=$url SH_TEST_PG_STATE=$state "$@" || rc=$?
        exit $rc
        ;;
    -h|--help|"")
        sed -n '2,32p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        [ -n "${1:-}" ] && exit 0
        exit 2
        ;;
    -*)
        die "unknown option $1"
        ;;
esac

[ $# -eq 1 ] || die "usage: $0 STATE"
state=$1
PG_BIN=$(pg_bin)
if [ "$(id -u)" -eq 0 ]; then
    PG_RUNAS=postgres
    id -u postgres >/dev/null 2>&1 || die "there is no postgres user (install Debian's postgresql package)"
else
    PG_RUNAS=$(id -un)
fi

# The unix socket path must stay under 107 bytes: prefer a short parent.
parent=${TMPDIR:-/tmp}
[ ${#parent} -le 60 ] || parent=/tmp
PG_DIR=$(mktemp -d "$parent/sh-pg.XXXXXX")
PG_DATA=$PG_DIR/data
PG_SOCKET=$PG_DIR
PG_PORT=
started=0

cleanup_on_failure() {
    if [ $started -eq 1 ]; then
        as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -t 10 -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_DIR"
    rm -f "$state"
}
trap 'rc=$?; [ $rc -eq 0 ] || cleanup_on_failure' EXIT

if [ "$PG_RUNAS" != "$(id -un)" ]; then
    chown "$PG_RUNAS:" "$PG_DIR"
    if ! as_owner test -w "$PG_DIR" && [ "$parent" != /tmp ]; then
        # $TMPDIR is private to us (e.g. under /root): /tmp always works
        rmdir "$PG_DIR"
        parent=/tmp
        PG_DIR=$(mktemp -d "$parent/sh-pg.XXXXXX")
        PG_DATA=$PG_DIR/data
        PG_SOCKET=$PG_DIR
        chown "$PG_RUNAS:" "$PG_DIR"
    fi
    as_owner test -w "$PG_DIR" ||
        die "user $PG_RUNAS cannot write to $PG_DIR (is $parent traversable by everyone?)"
fi
chmod 700 "$PG_DIR"

password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
as_owner "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --no-sync -E UTF8 --locale=C \
    --auth-local=trust --auth-host=scram-sha-256 >"$PG_DIR/initdb.log" 2>&1 ||
    die "initdb failed: $(tail -n 5 "$PG_DIR/initdb.log")"
cat >>"$PG_DATA/postgresql.conf" <<EOF

# tests/tools/pg-start.sh: a throwaway server for tests
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_SOCKET'
fsync = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 100
log_min_messages = warning
log_connections = off
EOF

lo=${PG_PORT_MIN:-55400} hi=${PG_PORT_MAX:-55499}
for attempt in 1 2 3 4 5 6 7 8; do
    PG_PORT=
    for p in $(shuf -i "$lo-$hi"); do
        if port_free "$p"; then PG_PORT=$p; break; fi
    done
    [ -n "$PG_PORT" ] || die "no free port in $lo-$hi"
    if pg_ctl_start; then
        started=1
        break
    fi
    # Another process may have taken the port between our check and the
    # server's bind; anything else is a real failure.
    grep -qi "address already in use\|could not create any TCP/IP sockets" "$PG_DIR/postgres.log" ||
        die "the server did not start: $(tail -n 5 "$PG_DIR/postgres.log")"
done
[ $started -eq 1 ] || die "could not find a free port for the server after 8 attempts"

"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET" -p "$PG_PORT" -U postgres -d postgres \
    >/dev/null <<EOF || die "could not create the test role and database"
CREATE ROLE streamhouse LOGIN CREATEDB PASSWORD '$password';
CREATE DATABASE streamhouse OWNER streamhouse;
EOF

PG_URL="postgresql://streamhouse:$password@127.0.0.1:$PG_PORT/streamhouse"
{
    printf 'PG_DIR=%q\n' "$PG_DIR"
    printf 'PG_DATA=%q\n' "$PG_DATA"
    printf 'PG_SOCKET=%q\n' "$PG_SOCKET"
    printf 'PG_PORT=%q\n' "$PG_PORT"
    printf 'PG_BIN=%q\n' "$PG_BIN"
    printf 'PG_RUNAS=%q\n' "$PG_RUNAS"
    printf 'PG_URL=%q\n' "$PG_URL"
} >"$state"
say "PostgreSQL $("$PG_BIN/postgres" -V | awk '{print $3}') on 127.0.0.1:$PG_PORT, files in $PG_DIR"
echo "$PG_URL"
