#!/usr/bin/env bash
# Build the broker with clang's AddressSanitizer and UndefinedBehaviorSanitizer
# into build-asan-broker/streamhouse-server (bin/ is left alone) and print
# its path. run.sh --asan uses it; by hand:
#   BROKER=$(kafka-compat-suite/lib/build-asan-broker.sh) kafka-compat-suite/run.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
out=build-asan-broker
# Passed through the environment, not the command line: a command-line
# CFLAGS would replace the Makefile's own "CFLAGS += -std=c11 -I. ..."
# instead of adding to it.
CC=clang \
CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
LDFLAGS="-fsanitize=address,undefined" \
    make -s -j2 -f Makefile -f kafka-compat-suite/lib/asan-broker.mk BUILD=$out \
    "$out/streamhouse-server" >&2
echo "$root/$out/streamhouse-server"
