// kafkajs side of scenario 061: produce N records to TOPIC (record i to
// partition i % PARTS, acks=-1, sequential send()s of 5000 records) and
// check each send result's base offset per partition; then read them all
// back with a consumer group (fromBeginning, eachBatch) and check that
// offset o of partition p holds exactly record o*PARTS+p: key, value,
// headers and CreateTime timestamp, as 061_big_produce_consume.py builds
// them. Prints "TIMES <produce s> <consume s>"; exits 1 on any difference
// or on anything kafkajs logs at WARN or above.
//   node big061.js BOOTSTRAP TOPIC N PARTS T0
'use strict';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic, nArg, partsArg, t0Arg] = process.argv.slice(2);
const N = Number(nArg);
const PARTS = Number(partsArg);
const T0 = BigInt(t0Arg);
const ROWS = [];
for (let r = 0; r < 256; r++) {
  const b = Buffer.alloc(160);
  for (let j = 0; j < 160; j++) b[j] = (r + j * 31) % 256;
  ROWS.push(b);
}

function record(i) {
  const key = i % 1000 === 7 ? null : Buffer.from(`k-${String(i).padStart(8, '0')}`);
  let value;
  if (i % 997 === 3) value = Buffer.alloc(0);
  else value = Buffer.concat([Buffer.from(`v${i}:`), ROWS[i % 256].subarray(0, (i * 7919) % 160)]);
  const headers = {
    i: Buffer.from(String(i)),
    bin: Buffer.from([i % 256, 0, 255]),
    empty: Buffer.alloc(0),
  };
  return { key, value, headers, timestamp: (T0 + BigInt(i)).toString(), partition: i % PARTS };
}

const problems = [];
const logCreator = () => ({ level, log }) => {
  const line = `${log.logger || ''} ${log.message} ${log.error || ''}`;
  if (/rebalanc|The group is rebalancing/i.test(line)) return;
  console.log(`kafkajs[${level}] ${line}`);
  if (level <= logLevel.WARN) problems.push(line);
};

const kafka = new Kafka({
  clientId: 'compat-061',
  brokers: [bootstrap],
  connectionTimeout: 10000,
  requestTimeout: 60000,
  logLevel: logLevel.WARN,
  logCreator,
});

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}

function same(a, b) {
  if (a === null || b === null) return a === b;
  return Buffer.compare(a, b) === 0;
}

async function produce() {
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const next = new Array(PARTS).fill(0);
  for (let start = 0; start < N; start += 5000) {
    const msgs = [];
    for (let i = start; i < Math.min(N, start + 5000); i++) msgs.push(record(i));
    const res = await producer.send({ topic, acks: -1, messages: msgs });
    const sent = new Array(PARTS).fill(0);
    for (const m of msgs) sent[m.partition]++;
    for (const r of res) {
      if (r.errorCode !== 0) fail(`partition ${r.partition}: error ${r.errorCode}`);
      if (Number(r.baseOffset) !== next[r.partition]) {
        fail(`partition ${r.partition}: base offset ${r.baseOffset}, want ${next[r.partition]}`);
      }
      next[r.partition] += sent[r.partition];
    }
  }
  await producer.disconnect();
}

async function consume() {
  const want = [];
  for (let p = 0; p < PARTS; p++) want.push(Math.floor((N - p + PARTS - 1) / PARTS));
  const consumer = kafka.consumer({
    groupId: `compat-061-${process.pid}`,
    maxWaitTimeInMs: 100,
    maxBytes: 50 << 20,
    maxBytesPerPartition: 8 << 20,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const next = new Array(PARTS).fill(0);
  let total = 0;
  let done;
  let err = null;
  const finished = new Promise((resolve) => { done = resolve; });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      const p = batch.partition;
      for (const m of batch.messages) {
        const o = Number(m.offset);
        if (o !== next[p]) {
          err = err || `partition ${p}: offset ${o} after ${next[p]}`;
          continue;
        }
        next[p]++;
        const w = record(o * PARTS + p);
        const h = m.headers || {};
        const keys = Object.keys(h).sort().join(',');
        if (!same(m.key, w.key) || !same(m.value, w.value) || m.timestamp !== w.timestamp ||
            keys !== 'bin,empty,i' || !same(h.i, w.headers.i) || !same(h.bin, w.headers.bin) ||
            !same(h.empty, w.headers.empty)) {
          err = err || `partition ${p} offset ${o} differs: key ${m.key} ts ${m.timestamp} ` +
            `headers ${keys}`;
        }
        total++;
      }
      if (total >= N || err) done();
    },
  });
  const timer = setTimeout(() => { err = err || 'timed out'; done(); }, 600000);
  await finished;
  clearTimeout(timer);
  await consumer.disconnect();
  if (err) fail(err);
  for (let p = 0; p < PARTS; p++) {
    if (next[p] !== want[p]) fail(`partition ${p}: read ${next[p]} of ${want[p]}`);
  }
}

async function main() {
  const t0 = Date.now();
  await produce();
  const t1 = Date.now();
  await consume();
  const t2 = Date.now();
  if (problems.length) fail(`kafkajs logged problems:\n${problems.slice(0, 10).join('\n')}`);
  console.log(`kafkajs: ${N} records produced and read back in order, byte for byte`);
  console.log(`TIMES ${(t1 - t0) / 1000} ${(t2 - t1) / 1000}`);
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
