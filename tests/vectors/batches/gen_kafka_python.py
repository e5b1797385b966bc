#!/usr/bin/python3
"""Write RecordBatch v2 test vectors with kafka-python's own record builder.

Run with Debian's interpreter (kafka-python 2.0.2 plus python3-snappy,
python3-lz4 and python3-zstandard for the codecs):

    /usr/bin/python3 tests/vectors/batches/gen_kafka_python.py tests/vectors/batches

For each case it writes <name>.bin (the batch exactly as the builder made
it) and <name>.expect (what a decoder must find, written from the inputs
below, not from any decoder). The .expect format is described in README.md.
"""
import os
import struct
import sys

from kafka.record.default_records import DefaultRecordBatchBuilder, DefaultRecordBatch

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
BASE_TS = 1700000000000

# Values repeat so every codec actually shrinks the records: kafka-python
# silently falls back to an uncompressed batch when compression does not help.
FILLER = b"streamhouse-" * 40


def records():
    return [
        # (timestamp, key, value, headers)
        (BASE_TS, b"key-0", b"value-0 " + FILLER, []),
        (BASE_TS + 5, None, b"value-1 null key " + FILLER,
         [("trace", b"abc"), ("empty", b"")]),
        (BASE_TS - 3, b"key-2", None, [("h-null", None)]),   # tombstone, earlier ts
        (BASE_TS + 1000, b"", b"", []),                       # empty key and value
        (BASE_TS + 7, b"k\x00\xff", FILLER + b"\x00\x01\x02",
         [("utf8-\u00e9", b"\xff\xfe"), ("dup", b"1"), ("dup", b"2")]),
    ]


def hexval(b):
    if isinstance(b, Rep):
        return "rep:%s:%d" % (b.unit.hex(), b.n)
    return "null" if b is None else "x:" + b.hex()


class Rep(bytes):
    """A value that is `unit` repeated n times; .expect writes it short."""

    def __new__(cls, unit, n):
        obj = super().__new__(cls, unit * n)
        obj.unit, obj.n = unit, n
        return obj


def to_raw_snappy(batch):
    """Re-encode an uncompressed batch's records as one raw snappy block (no
    xerial framing), as some non-Java producers send; the header is kept and
    the CRC recomputed with kafka-python's own CRC-32C."""
    import snappy
    from kafka.record.util import calc_crc32c
    body = snappy.compress(bytes(batch[61:]))
    out = bytearray(batch[:61]) + body
    struct.pack_into(">i", out, 8, len(out) - 12)
    attrs = struct.unpack_from(">h", out, 21)[0]
    struct.pack_into(">h", out, 21, (attrs & ~7) | CODECS["snappy"])
    struct.pack_into(">I", out, 17, calc_crc32c(bytes(out[21:])))
    return bytes(out)


def write_case(outdir, name, codec, recs, pid=-1, epoch=-1, seq=-1, txn=False):
    raw_snappy = codec == "snappy-raw"
    if raw_snappy:
        codec = "none"
    b = DefaultRecordBatchBuilder(magic=2, compression_type=CODECS[codec],
                                  is_transactional=txn, producer_id=pid,
                                  producer_epoch=epoch, base_sequence=seq,
                                  batch_size=1 << 20)
    for i, (ts, k, v, h) in enumerate(recs):
        plain = None if v is None else bytes(v)   # the builder wants exact bytes
        if b.append(i, timestamp=ts, key=k, value=plain, headers=h) is None:
            raise SystemExit("builder refused record %d" % i)
    data = bytes(b.build())
    # kafka-python must have kept the codec (it falls back when it does not help)
    got = DefaultRecordBatch(bytearray(data))
    if got.compression_type != CODECS[codec]:
        raise SystemExit("%s: builder fell back to codec %d" % (name, got.compression_type))
    if raw_snappy:
        data = to_raw_snappy(data)
    with open(os.path.join(outdir, name + ".bin"), "wb") as f:
        f.write(data)
    lines = [
        "# kafka-python 2.0.2 DefaultRecordBatchBuilder, compression %s" % codec
        + ("; records then re-encoded as raw snappy by python-snappy" if raw_snappy else ""),
        "codec %d" % (CODECS["snappy"] if raw_snappy else CODECS[codec]),
        "base_offset 0",
        "leader_epoch 0",          # kafka-python writes 0, Java -1
        "producer_id %d" % pid,
        "producer_epoch %d" % epoch,
        "base_sequence %d" % seq,
        "transactional %d" % int(txn),
        "control 0",
        "timestamp_type 0",
        "base_timestamp %d" % recs[0][0],
        "max_timestamp %d" % max(r[0] for r in recs),
        "count %d" % len(recs),
    ]
    for i, (ts, k, v, h) in enumerate(recs):
        lines.append("record %d %d %s %s %d" % (i, ts, hexval(k), hexval(v), len(h)))
        for hk, hv in h:
            lines.append("header %s %s" % (hexval(hk.encode("utf-8")), hexval(hv)))
    with open(os.path.join(outdir, name + ".expect"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    for codec in CODECS:
        write_case(outdir, "kpy_%s" % codec, codec, records())
    # idempotent and transactional producer fields, one record
    write_case(outdir, "kpy_idempotent_lz4", "lz4",
               [(BASE_TS, b"id", b"idempotent " + FILLER, [])], pid=4242, epoch=3, seq=17)
    # raw snappy (no xerial framing), which readers must also accept
    write_case(outdir, "kpy_snappy_raw", "snappy-raw", records())
    # ~150 KB of records: several 32 KiB xerial chunks, several lz4 blocks
    big = [(BASE_TS + i, b"big-%02d" % i, Rep(b"record %02d|" % i, 360), [])
           for i in range(40)]
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        write_case(outdir, "kpy_big_%s" % codec, codec, big)
    write_case(outdir, "kpy_txn_none", "none",
               [(BASE_TS, b"tx", b"in a transaction", [("a", b"b")]),
                (BASE_TS + 1, b"tx", b"second", [])], pid=77, epoch=0, seq=0, txn=True)


if __name__ == "__main__":
    main()
