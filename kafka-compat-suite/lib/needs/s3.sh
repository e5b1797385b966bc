# shellcheck shell=bash
# compat-needs provider "s3": S3 object storage for every broker of one
# scenario. Sourced by run.sh (see README.md, "Services").
#
# need_s3_start, in run.sh's shell with SCENARIO_TMP set, starts a
# throwaway s3rver (tests/tools/s3-start.sh: 127.0.0.1, a port from
# 55500-55599 apart from the brokers' 29000-29999, SigV4 signatures
# checked against a random key pair, files in its own temporary directory)
# and points every broker at it:
#   - COMPAT_OVERRIDES (brokers run.sh starts and brokers a
#     "compat-broker: none" scenario starts itself) gets
#     streamhouse.storage.url=s3://BUCKET/SCENARIO and
#     streamhouse.s3.endpoint=http://127.0.0.1:PORT;
#   - the credentials go through the environment (AWS_ACCESS_KEY_ID,
#     AWS_SECRET_ACCESS_KEY, AWS_REGION), the broker's fallback for unset
#     streamhouse.s3.* keys, so the secret is on no command line and in no
#     log.
# Exported for the scenario:
#   S3_STATE    the server's state file (tests/tools/s3-stop.sh --keep
#               S3_STATE, s3-start.sh --resume S3_STATE)
#   S3_TOOLS    the directory holding those scripts
#   S3_URL      the streamhouse.storage.url the brokers use
#   S3_OBJECTS  the directory where s3rver keeps that prefix's objects
#               (files named KEY._S3rver_object), to look at what landed
# need_s3_stop stops the server, removes its files, takes its settings out
# of COMPAT_OVERRIDES and restores the AWS_* variables.

S3_TOOLS=$SH_REPO_ROOT/tests/tools
sh_need_s3_added=()
sh_need_s3_state=
sh_need_s3_saved_env=
sh_need_s3_pid=
sh_need_s3_dir=

need_s3_start() {
    local settings v
    sh_need_s3_saved_env=
    for v in AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION; do
        [ -n "${!v+x}" ] && sh_need_s3_saved_env+=$(printf 'export %s=%q; ' "$v" "${!v}")
    done
    sh_need_s3_state=$SCENARIO_TMP/s3.state
    settings=$("$S3_TOOLS/s3-start.sh" "$sh_need_s3_state") || return 1
    eval "$settings"
    # the broker must not pick the endpoint up from the environment: the
    # configuration key is what this exercises
    unset AWS_ENDPOINT_URL AWS_SESSION_TOKEN
    # shellcheck disable=SC1090
    . "$sh_need_s3_state"
    S3_STATE=$sh_need_s3_state
    # if SCENARIO_TMP (and the state file in it) disappears, stop still
    # knows what to kill
    sh_need_s3_pid=$S3_PID
    sh_need_s3_dir=$S3_DIR
    S3_URL=s3://$S3_BUCKET/${SCENARIO_NAME:-scenario}
    S3_OBJECTS=$S3_DIR/data/$S3_BUCKET/${SCENARIO_NAME:-scenario}
    sh_need_s3_added=("streamhouse.storage.url=$S3_URL" "streamhouse.s3.endpoint=$S3_ENDPOINT")
    for v in "${sh_need_s3_added[@]}"; do
        COMPAT_OVERRIDES="${COMPAT_OVERRIDES:+$COMPAT_OVERRIDES }$v"
    done
    export COMPAT_OVERRIDES S3_STATE S3_TOOLS S3_URL S3_OBJECTS AWS_ACCESS_KEY_ID \
        AWS_SECRET_ACCESS_KEY AWS_REGION
}

need_s3_stop() {
    if [ -n "$sh_need_s3_state" ] && [ -f "$sh_need_s3_state" ]; then
        "$S3_TOOLS/s3-stop.sh" "$sh_need_s3_state"
    elif [ -n "$sh_need_s3_pid" ]; then
        if tr '\0' ' ' <"/proc/$sh_need_s3_pid/cmdline" 2>/dev/null |
            grep -q "s3rver-run.js.*$sh_need_s3_dir"; then
            kill -TERM "$sh_need_s3_pid" 2>/dev/null
            kill -CONT "$sh_need_s3_pid" 2>/dev/null
        fi
        case $sh_need_s3_dir in */sh-s3.*) rm -rf "$sh_need_s3_dir" ;; esac
    fi
    sh_need_s3_pid=
    sh_need_s3_dir=
    # remove our settings only: other providers may have added theirs
    # after ours, and may be stopped before or after us
    local kept=() w a mine
    # shellcheck disable=SC2086 # a word list, as broker.sh reads it
    for w in ${COMPAT_OVERRIDES:-}; do
        mine=0
        for a in "${sh_need_s3_added[@]}"; do [ "$w" = "$a" ] && mine=1; done
        [ $mine -eq 1 ] || kept+=("$w")
    done
    COMPAT_OVERRIDES=${kept[*]}
    [ -n "$COMPAT_OVERRIDES" ] || unset COMPAT_OVERRIDES
    sh_need_s3_added=()
    unset AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION
    unset S3_STATE S3_URL S3_OBJECTS SH_TEST_S3_BUCKET SH_TEST_S3_STATE S3_DIR S3_PORT S3_PID \
        S3_ENDPOINT S3_BUCKET S3_REGION S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY
    [ -n "$sh_need_s3_saved_env" ] && eval "$sh_need_s3_saved_env"
    sh_need_s3_state=
    sh_need_s3_saved_env=
    return 0
}
