// Proves: DeleteRecords through two JavaScript admin clients, kafkajs 2.2.4
// (admin.deleteTopicRecords, DeleteRecords v1) and @platformatic/kafka
// (admin.deleteRecords, v2, flexible), against a topic "dr" with 2
// partitions whose data is partly uploaded to objects, partly in the tail:
//  - deleting partition 0 up to offset 15 (inside the second batch):
//    fetchTopicOffsets (ListOffsets) reports low 15 / high 30; the first
//    batch's object (offsets 0-9, uploaded alone) disappears from the
//    object store; a consumer group member reading from the beginning gets
//    exactly offsets 15..29 of partition 0 (the straddling batch is
//    returned whole and kafkajs skips 10-14) and 0..4 of partition 1;
//  - @platformatic: offset -1 on partition 1 answers low watermark 5 (its
//    high watermark), an offset below the current log start answers the
//    current one (15) and deletes nothing, an offset above the high
//    watermark fails with OFFSET_OUT_OF_RANGE (1), as does kafkajs's;
//  - when both partitions are deleted up to their high watermarks, every
//    object of the topic disappears (chunks uploaded after the move are
//    swept by the next retention pass), and the data is gone for a new
//    consumer too;
//  - the broker's debug log shows DeleteRecords v1 and v2 requests.
// Anything kafkajs logs at WARN or ERROR fails it. Every wait is a bounded
// poll for a condition.
// compat-override: streamhouse.log.level=debug
// compat-override: log.retention.check.interval.ms=200
// compat-override: streamhouse.upload.interval.ms=100
// compat-override: group.initial.rebalance.delay.ms=0
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const { Kafka, logLevel } = require('kafkajs');

const bootstrap = process.env.BOOTSTRAP;
if (!bootstrap) throw new Error('run this through kafka-compat-suite/run.sh');
const TOPIC = 'dr';

if (typeof Promise.withResolvers !== 'function') {
  // @platformatic/kafka wants Node.js 22's Promise.withResolvers (see 003)
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
    return { promise, resolve, reject };
  };
}

const problems = [];
const logCreator = () => ({ level, log }) => {
  const line = `${log.logger || ''} ${log.message} ${log.error || ''}`;
  if (/rebalanc|The group is rebalancing/i.test(line)) return;
  console.log(`kafkajs[${level}] ${line}`);
  if (level <= logLevel.WARN) problems.push(line);
};
const kafka = new Kafka({
  clientId: 'compat-052',
  brokers: [bootstrap],
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 2 },
  logLevel: logLevel.WARN,
  logCreator,
});

function objectFiles() {
  const s3 = process.env.S3_OBJECTS;
  const root = s3 || path.join(process.env.BROKER_DATA, 'objects');
  const out = [];
  const walk = (d) => {
    let ents;
    try { ents = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of ents) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (s3 ? e.name.endsWith('._S3rver_object') : !e.name.startsWith('.sh-tmp.')) out.push(p);
    }
  };
  walk(root);
  return out.sort();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what, cond, timeoutMs = 30000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function offsets(admin) {
  const o = await admin.fetchTopicOffsets(TOPIC);
  return o.sort((a, b) => a.partition - b.partition).map((p) => [Number(p.low), Number(p.high)]);
}

async function consumeAll(groupId, want) {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  const got = { 0: [], 1: [] };
  let total = 0;
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      got[partition].push([Number(message.offset), message.value.toString()]);
      total++;
    },
  });
  await waitFor(`${want} records for ${groupId}`, () => total >= want);
  await sleep(300); // anything beyond `want` would show up here
  await consumer.disconnect();
  return got;
}

async function main() {
  const mod = await import('@platformatic/kafka');
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 2 }], waitForLeaders: true });
  assert.deepEqual(objectFiles(), [], 'objects before anything was produced');

  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const batch = (tag, n, partition) => producer.send({
    topic: TOPIC,
    acks: -1,
    messages: Array.from({ length: n }, (_, i) => ({ value: `${tag}-${i}`, partition })),
  });
  // batch a (0-9) is uploaded alone, so its object holds nothing else
  await batch('a', 10, 0);
  const first = await waitFor('the first upload', () => {
    const o = objectFiles();
    return o.length === 1 ? o : null;
  });
  await batch('b', 10, 0); // 10-19
  await batch('c', 10, 0); // 20-29
  await batch('d', 5, 1);  // partition 1: 0-4
  assert.deepEqual(await offsets(admin), [[0, 30], [0, 5]]);

  // kafkajs, v1: into the middle of batch b
  await admin.deleteTopicRecords({ topic: TOPIC, partitions: [{ partition: 0, offset: '15' }] });
  assert.deepEqual(await offsets(admin), [[15, 30], [0, 5]], 'after deleting to 15');
  await waitFor('the first object to go', () => !objectFiles().includes(first[0]));

  const got = await consumeAll('compat-052-a', 20);
  assert.deepEqual(got[0], Array.from({ length: 15 }, (_, i) => [15 + i, `${i < 5 ? 'b' : 'c'}-${(15 + i) % 10}`]));
  assert.deepEqual(got[1], Array.from({ length: 5 }, (_, i) => [i, `d-${i}`]));

  // kafkajs: above the high watermark (it logs the refusal at ERROR, which
  // is expected here and only here)
  const seen = problems.length;
  await assert.rejects(
    admin.deleteTopicRecords({ topic: TOPIC, partitions: [{ partition: 0, offset: '31' }] }),
    (e) => {
      const inner = e.cause || e; // the retrier wraps it as non-retriable
      const types = (inner.partitions || []).map((p) => p.error && p.error.type);
      console.log('kafkajs above the high watermark:', e.name, inner.name, JSON.stringify(types));
      return inner.name === 'KafkaJSDeleteTopicRecordsError' && types.length === 1 &&
        types[0] === 'OFFSET_OUT_OF_RANGE';
    });
  problems.splice(seen, problems.length - seen,
    ...problems.slice(seen).filter((l) => !/DeleteRecords.*Error while deleting records/.test(l)));
  assert.deepEqual(await offsets(admin), [[15, 30], [0, 5]], 'a refused delete moved something');

  // @platformatic, v2
  const padmin = new mod.Admin({ clientId: 'compat-052-pk', bootstrapBrokers: [bootstrap], timeout: 15000, retries: 1 });
  try {
    const res = await padmin.deleteRecords({
      topics: [{ name: TOPIC, partitions: [{ partition: 1, offset: -1n }, { partition: 0, offset: 10n }] }],
    });
    console.log('platformatic deleteRecords:', JSON.stringify(res, (k, v) => (typeof v === 'bigint' ? v.toString() : v)));
    const lw = Object.fromEntries(res[0].partitions.map((p) => [p.partition, BigInt(p.lowWatermark)]));
    assert.deepEqual(lw, { 0: 15n, 1: 5n }, 'low watermarks');
    await assert.rejects(
      padmin.deleteRecords({ topics: [{ name: TOPIC, partitions: [{ partition: 0, offset: 1000n }] }] }),
      (e) => {
        // the protocol error sits under the aggregate's errors / causes
        const ids = [];
        const walk = (x, depth) => {
          if (!x || typeof x !== 'object' || depth > 6) return;
          if (x.apiId) ids.push(`${x.apiId}(${x.apiCode})`);
          for (const c of [x.cause, ...(Array.isArray(x.errors) ? x.errors : [])]) walk(c, depth + 1);
        };
        walk(e, 0);
        console.log('platformatic above the high watermark:', e.message, ids);
        return ids.length === 1 && ids[0] === 'OFFSET_OUT_OF_RANGE(1)';
      });
  } finally {
    await padmin.close();
  }
  assert.deepEqual(await offsets(admin), [[15, 30], [5, 5]], 'after @platformatic');

  // everything: every object of the topic goes (some chunks may be
  // uploaded after the move and are swept by the next pass)
  await admin.deleteTopicRecords({ topic: TOPIC, partitions: [{ partition: 0, offset: '-1' }] });
  assert.deepEqual(await offsets(admin), [[30, 30], [5, 5]], 'after deleting everything');
  await waitFor('every object to go', () => objectFiles().length === 0);

  await producer.send({ topic: TOPIC, acks: -1, messages: [{ value: 'e-0', partition: 0 }] });
  const later = await consumeAll('compat-052-b', 1);
  assert.deepEqual(later[0], [[30, 'e-0']]);
  assert.deepEqual(later[1], []);
  await producer.disconnect();
  await admin.disconnect();

  const log = fs.readFileSync(process.env.BROKER_LOG, 'utf8');
  for (const v of [1, 2]) {
    assert.ok(new RegExp(`request DeleteRecords v${v} `).test(log), `no DeleteRecords v${v} request in the log`);
  }
  assert.deepEqual(problems, [], 'kafkajs logged warnings or errors');
  console.log('ok: low watermarks 15 and 5, then 30; objects deleted; consumers start at the log start');
}

main().then(() => process.exit(0), (e) => {
  console.error('FAIL:', e && e.stack ? e.stack : e);
  process.exit(1);
});
