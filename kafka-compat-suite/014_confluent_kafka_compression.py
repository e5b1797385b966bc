#!/usr/bin/python3
# Proves: confluent-kafka (librdkafka 2.0.2) really compresses with gzip,
# snappy, lz4 and zstd against this broker (its feature probes need Produce
# min version 0 for the first three and Produce v7 + Fetch v10 for zstd),
# the broker stores the compressed batches unchanged, and they round-trip:
#  - a raw Fetch v4 (kafka-python's protocol classes over a plain socket)
#    shows the stored batches of partition k carry codec k (all but tiny
#    ones, which librdkafka leaves uncompressed when that is smaller), with
#    valid CRCs, offsets continuing without gaps;
#  - a confluent-kafka consumer reads every record back exactly, first from
#    the in-memory tail, then again after the upload interval, from segment
#    objects (cache evicted by a restart is covered by 015).
# COMPAT_014_RECORDS sets records per codec (default 5000).
# compat-override: streamhouse.upload.interval.ms=200
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import compat  # noqa: E402
from compat import check, log  # noqa: E402

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from kafka.protocol.fetch import FetchRequest  # noqa: E402
from kafka.protocol.parser import KafkaProtocol  # noqa: E402
from kafka.record import MemoryRecords  # noqa: E402

N = int(os.environ.get("COMPAT_014_RECORDS", "5000"))
TOPIC = "ck-codecs"
CODECS = ["gzip", "snappy", "lz4", "zstd"]   # partition k gets codec k (ids 1..4)

admin = AdminClient({"bootstrap.servers": compat.BOOTSTRAP})
for f in admin.create_topics([NewTopic(TOPIC, len(CODECS), 1)], request_timeout=15).values():
    f.result()


def value(codec, i):
    # compressible, but not trivially: a counter inside repeated text
    return ("%s record %d " % (codec, i) * (1 + i % 7)).encode()


for part, codec in enumerate(CODECS):
    errs = []
    p = Producer({"bootstrap.servers": compat.BOOTSTRAP, "compression.type": codec,
                  "acks": "all", "linger.ms": 20, "batch.num.messages": 500})
    for i in range(N):
        while True:
            try:
                p.produce(TOPIC, key=b"%d" % i, value=value(codec, i), partition=part,
                          on_delivery=lambda e, m: e and errs.append(str(e)))
                break
            except BufferError:
                p.poll(0.1)
    check(p.flush(60) == 0, "%s: records never acknowledged", codec)
    check(not errs, "%s: delivery errors %s", codec, errs[:3])
log("produced %d records with each of %s", N, ", ".join(CODECS))


def raw_fetch(part, offset):
    """Fetch v4 of one partition: (error, high watermark, records bytes)."""
    host, port = compat.BOOTSTRAP.rsplit(":", 1)
    proto = KafkaProtocol(client_id="compat-014")
    req = FetchRequest[4](replica_id=-1, max_wait_time=0, min_bytes=0, max_bytes=64 << 20,
                          isolation_level=0,
                          topics=[(TOPIC, [(part, offset, 64 << 20)])])
    proto.send_request(req)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(proto.send_bytes())
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = s.recv(1 << 20)
            check(chunk, "connection closed during a raw fetch")
            buf += chunk
    (_, resp), = proto.receive_bytes(buf)
    (_, parts), = resp.topics
    (_, err, hw, _lso, _aborted, records), = parts
    return err, hw, records


def check_stored(part, codec_id):
    offset, batches, compressed = 0, 0, 0
    while True:
        err, hw, records = raw_fetch(part, offset)
        check(err == 0, "partition %d: fetch error %d", part, err)
        mr = MemoryRecords(records)
        got_any = False
        while True:
            b = mr.next_batch()
            if b is None:
                break
            got_any = True
            # librdkafka sends a batch uncompressed when compressing would
            # not make it smaller (a lone short record and the lz4 frame)
            n = b.last_offset_delta + 1
            check(b.compression_type == codec_id or (b.compression_type == 0 and n <= 2),
                  "partition %d: batch at %d (%d records) has codec %d", part, b.base_offset,
                  n, b.compression_type)
            compressed += b.compression_type == codec_id
            check(b.validate_crc(), "partition %d: batch at %d has a bad CRC", part,
                  b.base_offset)
            check(b.base_offset == offset, "partition %d: batch at %d, expected %d", part,
                  b.base_offset, offset)
            offset = b.base_offset + b.last_offset_delta + 1
            batches += 1
        check(got_any or offset == hw, "partition %d: empty fetch at %d below %d", part,
              offset, hw)
        if offset >= hw:
            check(offset == N, "partition %d: ends at %d, want %d", part, offset, N)
            check(compressed > 0, "partition %d: none of %d batches compressed", part,
                  batches)
            return batches


def consume_all():
    c = Consumer({"bootstrap.servers": compat.BOOTSTRAP, "group.id": "compat-014",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(TOPIC, k, 0) for k in range(len(CODECS))])
    got = {k: [] for k in range(len(CODECS))}
    deadline = time.time() + 60
    while sum(len(v) for v in got.values()) < N * len(CODECS) and time.time() < deadline:
        for m in c.consume(1000, 1.0):
            if m.error():
                raise KafkaException(m.error())
            got[m.partition()].append(m)
    c.close()
    for part, codec in enumerate(CODECS):
        msgs = got[part]
        check(len(msgs) == N, "%s: read %d of %d", codec, len(msgs), N)
        for i, m in enumerate(msgs):
            check(m.offset() == i and m.key() == b"%d" % i and m.value() == value(codec, i),
                  "%s: record %d differs", codec, i)


for part, codec in enumerate(CODECS):
    nb = check_stored(part, part + 1)
    log("%s: %d batches stored compressed, CRCs valid", codec, nb)
consume_all()
log("read back from the tail")
time.sleep(1.0)
consume_all()
for part in range(len(CODECS)):
    check_stored(part, part + 1)
log("read back from segment objects")
check(compat.broker_alive(), "broker died")
