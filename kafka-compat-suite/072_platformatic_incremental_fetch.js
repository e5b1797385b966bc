// Proves: a client that really uses incremental fetch sessions reads
// exactly what was written. @platformatic/kafka 2.12 asks for a session
// (Fetch v17, epoch 0, topic ids) and then sends incremental fetches that
// list only the partitions whose offset moved, relying on the broker to
// keep the others and to answer only partitions with news. A consumer
// group member streams a 6-partition topic while a producer keeps writing
// in bursts with pauses (so fetches park on the session and are woken by
// partitions they did not list); every record must arrive exactly once,
// at the offset the producer was given, in the producer's order per
// partition. The broker's debug log must show the session created and
// many incremental requests on it, and no session error.
// COMPAT_072_RECORDS sets the record count (default 12000).
// compat-timeout: 180
// compat-override: streamhouse.log.level=debug
// compat-override: group.initial.rebalance.delay.ms=0
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');

const bootstrap = process.env.BOOTSTRAP;
if (!bootstrap) throw new Error('run this through kafka-compat-suite/run.sh');
const N = Number(process.env.COMPAT_072_RECORDS || 12000);
const TOPIC = 's072';
const PARTS = 6;
const BURST = 300;

if (typeof Promise.withResolvers !== 'function') {
  // @platformatic/kafka wants Node.js 22's Promise.withResolvers (see 003)
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
    return { promise, resolve, reject };
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  let mod;
  try {
    mod = await import('@platformatic/kafka');
  } catch (err) {
    if (Number(process.versions.node.split('.')[0]) < 20) {
      console.log(`skipped: @platformatic/kafka cannot load on Node.js ${process.version}`);
      return;
    }
    throw err;
  }
  const { Admin, Producer, Consumer, stringSerializers, stringDeserializers } = mod;
  const base = { clientId: 'compat-072', bootstrapBrokers: [bootstrap], timeout: 15000, retries: 3 };

  const admin = new Admin(base);
  await admin.createTopics({ topics: [TOPIC], partitions: PARTS, replicas: 1 });
  await admin.close();

  // offset -> value the producer was told, per partition
  const acked = Array.from({ length: PARTS }, () => new Map());
  let producedAll = false;
  let ackedCount = 0;
  const producer = new Producer({ ...base, serializers: stringSerializers, acks: -1,
    idempotent: false, autocreateTopics: false });
  const produce = (async () => {
    for (let start = 0, burst = 0; start < N; start += BURST, burst++) {
      const messages = [];
      for (let i = start; i < Math.min(N, start + BURST); i++) {
        messages.push({ topic: TOPIC, partition: i % PARTS, key: `k${i}`, value: `rec-${i}` });
      }
      const res = await producer.send({ messages });
      for (const o of res.offsets) {
        const mine = messages.filter((m) => m.partition === o.partition);
        mine.forEach((m, k) => acked[o.partition].set(Number(o.offset) + k, m.value));
        ackedCount += mine.length;
      }
      // pauses: the consumer catches up and parks on its session
      if (burst % 3 === 2) await sleep(250);
    }
    producedAll = true;
  })();

  const consumer = new Consumer({ ...base, groupId: 'compat-072', deserializers: stringDeserializers,
    maxWaitTime: 300, autocommit: false });
  const stream = await consumer.consume({ topics: [TOPIC], mode: 'earliest', maxWaitTime: 300 });
  const got = Array.from({ length: PARTS }, () => []);
  let total = 0;
  let ackedAtFirst = -1;
  const timer = setTimeout(() => stream.close(), 120000);
  for await (const m of stream) {
    if (ackedAtFirst < 0) ackedAtFirst = ackedCount;
    got[m.partition].push([Number(m.offset), m.value]);
    if (++total === N) break;
  }
  clearTimeout(timer);
  await stream.close();
  await consumer.close();
  await produce;
  await producer.close();
  assert.ok(producedAll, 'the producer did not finish');

  assert.equal(total, N, `consumed ${total} of ${N}`);
  for (let p = 0; p < PARTS; p++) {
    const offs = got[p].map(([o]) => o);
    assert.deepEqual(offs, [...offs.keys()], `partition ${p}: offsets are not 0..n-1 once each`);
    assert.equal(got[p].length, acked[p].size, `partition ${p}: consumed vs acknowledged`);
    let last = -1;
    for (const [o, v] of got[p]) {
      assert.equal(v, acked[p].get(o), `partition ${p} offset ${o}`);
      const seq = Number(v.split('-')[1]);
      assert.ok(seq > last, `partition ${p}: ${v} after rec-${last}`);
      last = seq;
    }
  }
  assert.ok(ackedAtFirst >= 0 && ackedAtFirst < N,
    `the consumer did not start before the producer finished (${ackedAtFirst} acknowledged)`);
  console.log(`consumed ${N} records exactly once and in order, starting when ${ackedAtFirst} were acknowledged`);

  const log = fs.readFileSync(process.env.BROKER_LOG, 'utf8');
  assert.ok(/request Fetch v17 /.test(log), 'no Fetch v17 request in the log');
  const created = (log.match(/created fetch session \d+/g) || []).length;
  const incremental = (log.match(/incremental fetch session \d+ epoch \d+/g) || []).length;
  const errors = log.match(/conn=\d+ fetch session -?\d+ epoch -?\d+: .*/g) || [];
  const expected = log.match(/expected epoch .*/g) || [];
  console.log(`broker: ${created} session(s) created, ${incremental} incremental fetches`);
  assert.ok(created >= 1, 'no fetch session was created');
  assert.ok(incremental >= 20, `only ${incremental} incremental fetches`);
  assert.deepEqual(errors, [], 'session errors');
  assert.deepEqual(expected, [], 'fetches answered after their session moved on');
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
