// Proves: kafkajs 2.2.4 (ApiVersions v2 with fallback to v1/v0, then Metadata
// at min(its max 6, the broker's max)) connects an admin client;
// describeCluster() returns exactly this broker with its node.id, host and
// port, the broker as controller and a non-empty cluster id; listTopics() is
// []. Then @platformatic/kafka (ApiVersions v3 first, with its own fallback)
// reads the same facts through its metadata call, as a second, independently
// written JavaScript client.
'use strict';

const assert = require('node:assert/strict');
const { Kafka, logLevel } = require('kafkajs');

const bootstrap = process.env.BOOTSTRAP;
const brokerId = Number(process.env.BROKER_ID);
const port = Number(process.env.BROKER_PORT);
if (!bootstrap || !port) throw new Error('run this through kafka-compat-suite/run.sh');

// kafkajs retries a failed request several times before giving up, logging
// each failure; collect what it logs at WARN/ERROR so a broker that needed a
// retry still fails the scenario.
const problems = [];
const logCreator = () => ({ level, log }) => {
  const line = `${log.logger || ''} ${log.message} ${log.error || ''}`;
  console.log(`kafkajs[${level}] ${line}`);
  if (level <= logLevel.WARN) problems.push(line);
};

async function kafkajsPart() {
  const kafka = new Kafka({
    clientId: 'compat-003-kafkajs',
    brokers: [bootstrap],
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 1 },
    logLevel: logLevel.WARN,
    logCreator,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const cluster = await admin.describeCluster();
    console.log('kafkajs describeCluster:', JSON.stringify(cluster));
    assert.deepEqual(cluster.brokers, [{ nodeId: brokerId, host: '127.0.0.1', port }]);
    assert.equal(cluster.controller, brokerId, 'controller');
    assert.equal(typeof cluster.clusterId, 'string', 'clusterId type');
    assert.ok(cluster.clusterId.length > 0, 'clusterId is empty');
    const topics = await admin.listTopics();
    assert.deepEqual(topics, [], 'listTopics');
    return cluster.clusterId;
  } finally {
    await admin.disconnect();
  }
}

async function platformaticPart(clusterId) {
  // @platformatic/kafka 2.x declares Node.js >= 22 but, as far as this
  // scenario exercises it, needs only Promise.withResolvers from there;
  // supplying that lets it run on the machines' Node.js 20 and on Debian
  // 12's own 18 (both checked).
  if (typeof Promise.withResolvers !== 'function') {
    Promise.withResolvers = function withResolvers() {
      let resolve, reject;
      const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
      return { promise, resolve, reject };
    };
  }
  let mod;
  try {
    mod = await import('@platformatic/kafka');
  } catch (err) {
    // Debian 12's own Node.js is 18; where the module cannot even load, say
    // so instead of blaming the broker.
    const major = Number(process.versions.node.split('.')[0]);
    if (major < 20) {
      console.log(`skipped @platformatic/kafka: cannot load on Node.js ${process.version}: ${err.message}`);
      return;
    }
    throw err;
  }
  const admin = new mod.Admin({
    clientId: 'compat-003-platformatic',
    bootstrapBrokers: [bootstrap],
    timeout: 15000,
    retries: 1,
  });
  try {
    const md = await admin.metadata({ topics: [] });
    const brokers = [...md.brokers.entries()].map(([id, b]) => ({ id, host: b.host, port: b.port }));
    console.log('platformatic metadata:', JSON.stringify({ id: md.id, controllerId: md.controllerId, brokers }));
    assert.deepEqual(brokers, [{ id: brokerId, host: '127.0.0.1', port }]);
    assert.equal(md.controllerId, brokerId, 'controllerId');
    assert.equal(md.id, clusterId, 'cluster id differs between clients');
    const topics = await admin.listTopics();
    assert.deepEqual(topics, [], 'platformatic listTopics');
  } finally {
    await admin.close();
  }
}

(async () => {
  const clusterId = await kafkajsPart();
  await platformaticPart(clusterId);
  assert.deepEqual(problems, [], 'kafkajs logged warnings or errors');
  console.log(`ok: broker ${brokerId} at 127.0.0.1:${port}, cluster id ${clusterId}, no topics`);
})().catch((err) => {
  console.error('FAIL:', err && err.stack ? err.stack : err);
  process.exit(1);
});
