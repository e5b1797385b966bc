# shellcheck shell=bash
# compat-needs provider "postgres": a PostgreSQL metadata store for every
# broker of one scenario. Sourced by run.sh (see README.md, "Services").
#
# need_postgres_start, in run.sh's shell with SCENARIO_TMP set:
#   - when run.sh runs the whole suite on PostgreSQL (META=postgresql), it
#     started one throwaway server for the run (SH_COMPAT_PG_STATE); the
#     scenario gets a fresh database on it, so every scenario starts from
#     an empty store as it would on SQLite;
#   - otherwise the scenario gets a throwaway server of its own
#     (tests/tools/pg-start.sh), stopped and removed by need_postgres_stop.
#   Either way the broker setting streamhouse.metadata.url=URL is added to
#   COMPAT_OVERRIDES for the scenario's lifetime, so brokers that run.sh
#   starts and brokers a "compat-broker: none" scenario starts itself all
#   use it. Exported for the scenario:
#     PG_URL     the postgresql:// URL the brokers use
#     PG_STATE   the server's state file, for tests/tools/pg-stop.sh --keep,
#                pg-start.sh --resume and pg-start.sh --restart
#     PG_TOOLS   the directory holding those scripts
# need_postgres_stop: drops the database or stops the scenario's server,
#   and takes its setting out of COMPAT_OVERRIDES.
#
# PostgreSQL listens on 127.0.0.1 on a port from 55400-55499 (pg-start.sh's
# range, apart from the brokers' 29000-29999); its data directory lives in
# its own temporary directory owned by the postgres user (the server
# refuses to run as root), which the stop function removes.

PG_TOOLS=$SH_REPO_ROOT/tests/tools
sh_need_pg_added=
sh_need_pg_own_state=
sh_need_pg_state_copy=
sh_need_pg_db=

need_postgres_start() {
    local url
    sh_need_pg_own_state=
    sh_need_pg_db=
    if [ -n "${SH_COMPAT_PG_STATE:-}" ]; then
        local PG_DIR PG_DATA PG_SOCKET PG_PORT PG_BIN PG_RUNAS PG_URL
        # shellcheck disable=SC1090
        . "$SH_COMPAT_PG_STATE" || return 1
        sh_need_pg_db=sc_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
        "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET" -p "$PG_PORT" -U postgres \
            -d postgres -c "CREATE DATABASE $sh_need_pg_db OWNER streamhouse" >/dev/null ||
            { echo "could not create database $sh_need_pg_db" >&2; return 1; }
        url=${PG_URL%/*}/$sh_need_pg_db
        PG_STATE=$SH_COMPAT_PG_STATE
    else
        sh_need_pg_own_state=$SCENARIO_TMP/postgres.state
        url=$("$PG_TOOLS/pg-start.sh" "$sh_need_pg_own_state") || return 1
        # kept here too: the server must be stopped even if something
        # removes SCENARIO_TMP under us
        sh_need_pg_state_copy=$(cat "$sh_need_pg_own_state")
        PG_STATE=$sh_need_pg_own_state
    fi
    PG_URL=$url
    sh_need_pg_added=streamhouse.metadata.url=$url
    COMPAT_OVERRIDES="${COMPAT_OVERRIDES:+$COMPAT_OVERRIDES }$sh_need_pg_added"
    export PG_URL PG_STATE PG_TOOLS COMPAT_OVERRIDES
}

need_postgres_stop() {
    if [ -n "$sh_need_pg_own_state" ]; then
        if [ ! -f "$sh_need_pg_own_state" ]; then
            sh_need_pg_own_state=$(mktemp "${TMPDIR:-/tmp}/sh-pg-state.XXXXXX")
            printf '%s\n' "$sh_need_pg_state_copy" >"$sh_need_pg_own_state"
        fi
        "$PG_TOOLS/pg-stop.sh" "$sh_need_pg_own_state"
    elif [ -n "$sh_need_pg_db" ] && [ -n "${SH_COMPAT_PG_STATE:-}" ]; then
        (
            # shellcheck disable=SC1090
            . "$SH_COMPAT_PG_STATE"
            # a scenario may have stopped the run's server; bring it back
            "$PG_TOOLS/pg-start.sh" --resume "$SH_COMPAT_PG_STATE" 2>/dev/null
            "$PG_BIN/psql" -X -q -h "$PG_SOCKET" -p "$PG_PORT" -U postgres -d postgres \
                -c "DROP DATABASE IF EXISTS $sh_need_pg_db WITH (FORCE)" >/dev/null
        )
    fi
    # take out our setting only: other providers started after us may
    # have added theirs and not removed them yet
    local kept=() w
    # shellcheck disable=SC2086 # a word list, as broker.sh reads it
    for w in ${COMPAT_OVERRIDES:-}; do
        [ "$w" = "$sh_need_pg_added" ] || kept+=("$w")
    done
    COMPAT_OVERRIDES=${kept[*]}
    [ -n "$COMPAT_OVERRIDES" ] || unset COMPAT_OVERRIDES
    sh_need_pg_added=
    unset PG_URL PG_STATE
    sh_need_pg_own_state=
    sh_need_pg_db=
    return 0
}
