// Proves: @platformatic/kafka 2.12, a client that speaks the newest versions
// it shares with the broker, produces and consumes through the data path
// over the flexible (tagged-field) versions: Produce v11, Fetch v17 with
// topic ids (v13+), ListOffsets v9 (its newest). Every send reports the offsets its
// records are read back at; listOffsets gives the high watermarks and,
// with a timestamp, the first record at or after it; a consumer group
// member streaming from the earliest offset reads all N records of 2
// partitions in order per partition with the same keys, values, headers
// and timestamps. The versions used are checked from the broker's debug log.
// COMPAT_017_RECORDS sets N (default 2000).
// compat-override: streamhouse.log.level=debug
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');

const bootstrap = process.env.BOOTSTRAP;
if (!bootstrap) throw new Error('run this through kafka-compat-suite/run.sh');
const N = Number(process.env.COMPAT_017_RECORDS || 2000);
const TOPIC = 'pk-flex';
const PARTS = 2;
const T0 = 1700000000000n;

if (typeof Promise.withResolvers !== 'function') {
  // @platformatic/kafka wants Node.js 22's Promise.withResolvers (see 003)
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
    return { promise, resolve, reject };
  };
}

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
  const base = { clientId: 'compat-017', bootstrapBrokers: [bootstrap], timeout: 15000, retries: 1 };

  const admin = new Admin(base);
  await admin.createTopics({ topics: [TOPIC], partitions: PARTS, replicas: 1 });
  await admin.close();

  const producer = new Producer({ ...base, serializers: stringSerializers, acks: -1,
    idempotent: false, autocreateTopics: false });
  const next = new Array(PARTS).fill(0);
  for (let start = 0; start < N; start += 200) {
    const messages = [];
    for (let i = start; i < Math.min(N, start + 200); i++) {
      messages.push({
        topic: TOPIC, partition: i % PARTS, key: `k${i}`, value: `value ${i} ${'w'.repeat(i % 20)}`,
        headers: new Map([['n', String(i)]]), timestamp: T0 + BigInt(i),
      });
    }
    const res = await producer.send({ messages });
    for (const o of res.offsets) {
      assert.equal(Number(o.offset), next[o.partition], `partition ${o.partition}: base offset`);
      next[o.partition] += messages.filter((m) => m.partition === o.partition).length;
    }
  }
  await producer.close();
  console.log(`produced ${N} records`);

  const consumer = new Consumer({ ...base, groupId: 'compat-017', deserializers: stringDeserializers,
    maxWaitTime: 200, autocommit: false });
  const high = await consumer.listOffsets({ topics: [TOPIC] });
  assert.deepEqual(high.get(TOPIC).map(Number), next, 'high watermarks');
  const byTime = await consumer.listOffsets({ topics: [TOPIC], timestamp: T0 + 501n });
  // record 501 is on partition 1 at offset 250; partition 0's first >= 501 is 502 at 251
  assert.deepEqual(byTime.get(TOPIC).map(Number), [251, 250], 'offsets by timestamp');

  const stream = await consumer.consume({ topics: [TOPIC], mode: 'earliest', maxWaitTime: 200 });
  const got = Array.from({ length: PARTS }, () => []);
  let total = 0;
  const timer = setTimeout(() => stream.close(), 60000);
  for await (const m of stream) {
    got[m.partition].push(m);
    if (++total === N) break;
  }
  clearTimeout(timer);
  await stream.close();
  await consumer.close();
  assert.equal(total, N, `consumed ${total} of ${N}`);
  for (let p = 0; p < PARTS; p++) {
    got[p].forEach((m, n) => {
      const i = n * PARTS + p;
      assert.equal(Number(m.offset), n, `partition ${p}: offset`);
      assert.equal(m.key, `k${i}`);
      assert.equal(m.value, `value ${i} ${'w'.repeat(i % 20)}`);
      assert.equal(m.headers.get('n'), String(i));
      assert.equal(BigInt(m.timestamp), T0 + BigInt(i));
    });
  }
  console.log(`consumed ${N} records in order`);

  const log = fs.readFileSync(process.env.BROKER_LOG, 'utf8');
  for (const [api, v] of [['Produce', 11], ['Fetch', 17], ['ListOffsets', 9]]) {
    assert.ok(new RegExp(`request ${api} v${v} `).test(log), `no ${api} v${v} request in the log`);
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
