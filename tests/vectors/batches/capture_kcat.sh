#!/usr/bin/env bash
# Capture one batch per codec from kcat (librdkafka's command-line producer)
# through capture_broker.py, and write kcat_<codec>.bin/.expect.
#   tests/vectors/batches/capture_kcat.sh [port]     (default 49011)
# kcat stamps records with the wall clock, so .expect files say "*" for
# timestamps; everything else is fixed by the input below.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
port=${1:-49011}
tmp=$(mktemp -d)
/usr/bin/python3 "$here/capture_broker.py" serve "$port" "$tmp" &
srv=$!
trap 'kill $srv 2>/dev/null; wait $srv 2>/dev/null; rm -rf "$tmp"' EXIT
sleep 1
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
for codec in none gzip snappy lz4 zstd; do
    topic=kcat_$codec
    # three records: key:value lines; every record gets the same two headers
    printf 'k1:first value first value first value\nk2:second value second value\n:no key here\n' |
        kcat -P -b 127.0.0.1:"$port" -t "$topic" -p 0 -z "$codec" -K: \
             -H trace=xyz -H empty= -X linger.ms=100 -X api.version.request=true
    files=("$tmp"/capture_"$topic"_p0_*.bin)
    [ "${#files[@]}" -eq 1 ] || { echo "$topic: expected one batch, got ${#files[@]}" >&2; exit 1; }
    cp "${files[0]}" "$here/$topic.bin"
    codec_id=$(printf '%d' "0x$(od -An -tx1 -j22 -N1 "$here/$topic.bin" | tr -d ' ')")
    codec_id=$((codec_id & 7))
    {
        echo "# $(kcat -V 2>&1 | head -1), kcat -P -z $codec -K: -H trace=xyz -H empty="
        echo "codec $codec_id"
        echo "base_offset 0"
        echo "leader_epoch *"
        echo "producer_id -1"
        echo "producer_epoch -1"
        echo "base_sequence -1"
        echo "transactional 0"
        echo "control 0"
        echo "timestamp_type 0"
        echo "base_timestamp *"
        echo "max_timestamp *"
        echo "count 3"
        echo "record 0 * x:$(hex k1) x:$(hex 'first value first value first value') 2"
        echo "header x:$(hex trace) x:$(hex xyz)"
        echo "header x:$(hex empty) x:"
        echo "record 1 * x:$(hex k2) x:$(hex 'second value second value') 2"
        echo "header x:$(hex trace) x:$(hex xyz)"
        echo "header x:$(hex empty) x:"
        echo "record 2 * x: x:$(hex 'no key here') 2"
        echo "header x:$(hex trace) x:$(hex xyz)"
        echo "header x:$(hex empty) x:"
    } > "$here/$topic.expect"
    echo "captured $topic ($(stat -c %s "$here/$topic.bin") bytes, codec $codec_id)"
done
