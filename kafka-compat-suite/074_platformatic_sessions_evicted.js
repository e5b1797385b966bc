// Proves: a real incremental-fetch client recovers from sessions taken
// away under it, without losing or repeating a record. The broker keeps
// one fetch session (max.incremental.fetch.session.cache.slots=1) and lets
// any session idle for more than 0 ms give way
// (streamhouse.fetch.session.eviction.ms=0), so two @platformatic/kafka
// 2.12 consumers (different groups, different topics, Fetch v17) keep
// evicting each other's session: their incremental fetches get
// FETCH_SESSION_ID_NOT_FOUND, they fall back to a full fetch, which
// creates a session again and evicts the other's. Both read their topic,
// written meanwhile in bursts, exactly once and in order per partition.
// The broker's debug log must show sessions created many times,
// incremental fetches, and FETCH_SESSION_ID_NOT_FOUND answers.
// COMPAT_074_RECORDS sets the record count per topic (default 3000).
// compat-timeout: 180
// compat-override: streamhouse.log.level=debug
// compat-override: group.initial.rebalance.delay.ms=0
// compat-override: max.incremental.fetch.session.cache.slots=1
// compat-override: streamhouse.fetch.session.eviction.ms=0
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');

const bootstrap = process.env.BOOTSTRAP;
if (!bootstrap) throw new Error('run this through kafka-compat-suite/run.sh');
const N = Number(process.env.COMPAT_074_RECORDS || 3000);
const TOPICS = ['s074a', 's074b'];
const PARTS = 3;
const BURST = 150;

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
  // a session error costs one retry: keep its delay short
  const base = { clientId: 'compat-074', bootstrapBrokers: [bootstrap], timeout: 15000,
    retries: 5, retryDelay: 20 };

  const admin = new Admin(base);
  await admin.createTopics({ topics: TOPICS, partitions: PARTS, replicas: 1 });
  await admin.close();

  const acked = Object.fromEntries(TOPICS.map((t) => [t, Array.from({ length: PARTS }, () => new Map())]));
  const producer = new Producer({ ...base, serializers: stringSerializers, acks: -1,
    idempotent: false, autocreateTopics: false });
  const produce = (async () => {
    for (let start = 0, burst = 0; start < N; start += BURST, burst++) {
      const messages = [];
      for (let i = start; i < Math.min(N, start + BURST); i++) {
        for (const topic of TOPICS) {
          messages.push({ topic, partition: i % PARTS, key: `k${i}`, value: `${topic}-${i}` });
        }
      }
      const res = await producer.send({ messages });
      for (const o of res.offsets) {
        const mine = messages.filter((m) => m.topic === o.topic && m.partition === o.partition);
        mine.forEach((m, k) => acked[o.topic][o.partition].set(Number(o.offset) + k, m.value));
      }
      if (burst % 2 === 1) await sleep(100);
    }
  })();

  async function consume(topic) {
    const consumer = new Consumer({ ...base, groupId: `compat-074-${topic}`,
      deserializers: stringDeserializers, maxWaitTime: 100, autocommit: false });
    const stream = await consumer.consume({ topics: [topic], mode: 'earliest', maxWaitTime: 100 });
    const got = Array.from({ length: PARTS }, () => []);
    let total = 0;
    const timer = setTimeout(() => stream.close(), 120000);
    for await (const m of stream) {
      got[m.partition].push([Number(m.offset), m.value]);
      if (++total === N) break;
    }
    clearTimeout(timer);
    await stream.close();
    await consumer.close();
    return { topic, got, total };
  }

  const results = await Promise.all(TOPICS.map(consume));
  await produce;
  await producer.close();

  for (const { topic, got, total } of results) {
    assert.equal(total, N, `${topic}: consumed ${total} of ${N}`);
    for (let p = 0; p < PARTS; p++) {
      const offs = got[p].map(([o]) => o);
      assert.deepEqual(offs, [...offs.keys()], `${topic}-${p}: offsets are not 0..n-1 once each`);
      assert.equal(got[p].length, acked[topic][p].size, `${topic}-${p}: consumed vs acknowledged`);
      let last = -1;
      for (const [o, v] of got[p]) {
        assert.equal(v, acked[topic][p].get(o), `${topic}-${p} offset ${o}`);
        const seq = Number(v.split('-')[1]);
        assert.ok(seq > last, `${topic}-${p}: ${v} after ${last}`);
        last = seq;
      }
    }
    console.log(`${topic}: ${N} records exactly once and in order`);
  }

  const log = fs.readFileSync(process.env.BROKER_LOG, 'utf8');
  const count = (re) => (log.match(re) || []).length;
  const created = count(/created fetch session \d+/g);
  const incremental = count(/incremental fetch session \d+ epoch \d+/g);
  const notFound = count(/conn=\d+ fetch session \d+ epoch \d+: FETCH_SESSION_ID_NOT_FOUND/g);
  const other = count(/conn=\d+ fetch session -?\d+ epoch -?\d+: (?!FETCH_SESSION_ID_NOT_FOUND)/g);
  console.log(`broker: ${created} sessions created, ${incremental} incremental fetches, ` +
    `${notFound} FETCH_SESSION_ID_NOT_FOUND`);
  assert.ok(created >= 3, `only ${created} sessions created`);
  assert.ok(incremental >= 1, 'no incremental fetch');
  assert.ok(notFound >= 1, 'no session was ever taken away');
  assert.equal(other, 0, 'other session errors');
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
