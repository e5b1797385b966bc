// Proves: kafkajs 2.2.4 produces (Produce v7, acks=-1, uncompressed and
// gzip) and consumes (Fetch v11, ListOffsets v3) through the broker: every
// send() result names the base offset its records are later read at; a
// consumer group member subscribed fromBeginning reads all N records of 3
// partitions in order per partition with the same keys, values, headers and
// timestamps; admin.fetchTopicOffsets gives high watermark = record count
// and low = 0; fetchTopicOffsetsByTimestamp finds the first record at or
// after a timestamp. Anything kafkajs logs at WARN or ERROR fails it.
// COMPAT_013_RECORDS sets N (default 2000).
'use strict';

const assert = require('node:assert/strict');
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'; // we choose partitions explicitly
const { Kafka, logLevel, CompressionTypes } = require('kafkajs');

const bootstrap = process.env.BOOTSTRAP;
if (!bootstrap) throw new Error('run this through kafka-compat-suite/run.sh');
const N = Number(process.env.COMPAT_013_RECORDS || 2000);
const TOPIC = 'kjs-data';
const PARTS = 3;
const T0 = 1700000000000;

const problems = [];
const logCreator = () => ({ level, log }) => {
  const line = `${log.logger || ''} ${log.message} ${log.error || ''}`;
  // the group coordinator's own join dance is not a data-path problem
  if (/rebalanc|The group is rebalancing/i.test(line)) return;
  console.log(`kafkajs[${level}] ${line}`);
  if (level <= logLevel.WARN) problems.push(line);
};

const kafka = new Kafka({
  clientId: 'compat-013',
  brokers: [bootstrap],
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 2 },
  logLevel: logLevel.WARN,
  logCreator,
});

function record(i) {
  return {
    key: `key-${i}`,
    value: `value-${i}-${'q'.repeat(i % 30)}`,
    headers: { n: String(i) },
    timestamp: String(T0 + i),
    partition: i % PARTS,
  };
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTS }] });

  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const expectBase = new Array(PARTS).fill(0);
  for (let start = 0; start < N; start += 250) {
    const batch = [];
    for (let i = start; i < Math.min(N, start + 250); i++) batch.push(record(i));
    const compression = (start / 250) % 2 ? CompressionTypes.GZIP : CompressionTypes.None;
    const res = await producer.send({ topic: TOPIC, acks: -1, compression, messages: batch });
    for (const r of res) {
      assert.equal(r.errorCode, 0);
      assert.equal(Number(r.baseOffset), expectBase[r.partition],
        `partition ${r.partition}: base offset ${r.baseOffset}`);
      expectBase[r.partition] += batch.filter((m) => m.partition === r.partition).length;
    }
  }
  await producer.disconnect();
  console.log(`produced ${N} records`);

  const offs = await admin.fetchTopicOffsets(TOPIC);
  for (const o of offs) {
    assert.equal(Number(o.high), expectBase[o.partition], `partition ${o.partition} high`);
    assert.equal(Number(o.low), 0);
  }
  const byTime = await admin.fetchTopicOffsetsByTimestamp(TOPIC, T0 + 100);
  for (const o of byTime) {
    // the first i >= 100 with i % PARTS == partition
    let i = 100;
    while (i % PARTS !== o.partition) i++;
    assert.equal(Number(o.offset), Math.floor(i / PARTS), `partition ${o.partition} by time`);
  }

  const consumer = kafka.consumer({ groupId: 'compat-013', maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  const got = Array.from({ length: PARTS }, () => []);
  let total = 0;
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      got[partition].push(message);
      if (++total === N) done();
    },
  });
  const timer = setTimeout(() => done(), 60000);
  await finished;
  clearTimeout(timer);
  await consumer.disconnect();
  assert.equal(total, N, `consumed ${total} of ${N}`);
  for (let p = 0; p < PARTS; p++) {
    got[p].forEach((m, n) => {
      const i = n * PARTS + p;
      const want = record(i);
      assert.equal(Number(m.offset), n, `partition ${p}: offset ${m.offset} at ${n}`);
      assert.equal(m.key.toString(), want.key);
      assert.equal(m.value.toString(), want.value);
      assert.equal(m.headers.n.toString(), want.headers.n);
      assert.equal(m.timestamp, want.timestamp);
    });
  }
  console.log(`consumed ${N} records in order`);
  await admin.disconnect();
  assert.deepEqual(problems, [], 'kafkajs logged problems');
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
