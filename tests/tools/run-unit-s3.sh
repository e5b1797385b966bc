#!/usr/bin/env bash
# Run unit-test binaries against the S3 server that
# `tests/tools/s3-start.sh --run` started (make unit-s3): the object-store
# conformance suite gets SH_TEST_OBJSTORE_URL pointing at the server's
# bucket, under a prefix of its own; the S3 tests read the AWS_* and
# SH_TEST_S3_* variables s3-start.sh exported.
set -u
: "${SH_TEST_S3_BUCKET:?run this through tests/tools/s3-start.sh --run}"
export SH_TEST_OBJSTORE_URL="s3://$SH_TEST_S3_BUCKET/conformance"
exec "$(dirname "${BASH_SOURCE[0]}")/run-unit.sh" "$@"
