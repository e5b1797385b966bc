// Proves: kafkajs 2.2.4's admin client manages topics against the broker
// (CreateTopics v3, Metadata v6, CreatePartitions v1, DescribeConfigs v2,
// AlterConfigs v1, DeleteTopics v1): createTopics() returns true, waits for
// leaders and is answered by this broker for every partition;
// fetchTopicMetadata() lists the partitions with this broker as leader,
// replica and ISR; createTopics() of an existing topic returns false (kafkajs
// swallows TOPIC_ALREADY_EXISTS) and of an illegal name or zero partitions
// fails with INVALID_TOPIC_EXCEPTION / INVALID_PARTITIONS; createPartitions()
// grows a topic and refuses to shrink it (INVALID_PARTITIONS);
// describeConfigs() with synonyms reports a topic override as TOPIC_CONFIG
// (source 1) with itself as first synonym and defaults as DEFAULT_CONFIG (5);
// alterConfigs() changes the override and validateOnly changes nothing;
// deleteTopics() removes topics; and kafkajs logs no warnings or errors.
'use strict';

const assert = require('node:assert/strict');
const { Kafka, logLevel, ConfigResourceTypes } = require('kafkajs');

const bootstrap = process.env.BOOTSTRAP;
const brokerId = Number(process.env.BROKER_ID);
if (!bootstrap) throw new Error('run this through kafka-compat-suite/run.sh');

// kafkajs logs every error response at ERROR; those of the calls expected
// to fail are fine, anything else fails the scenario.
const problems = [];
let expecting = false;
const logCreator = () => ({ level, log }) => {
  const line = `${log.logger || ''} ${log.message} ${log.error || ''}`;
  console.log(`kafkajs[${level}] ${line}`);
  if (level <= logLevel.WARN && !expecting) problems.push(line);
};

async function expectError(type, fn) {
  expecting = true;
  try {
    await fn();
  } catch (e) {
    // retriable codes (UNKNOWN_TOPIC_OR_PARTITION) come back wrapped
    const err = e.cause || e.originalError || e;
    const types = err.errors ? err.errors.map((x) => x.type) : [err.type];
    assert.ok(types.includes(type), `expected ${type}, got ${e.name} ${types} ${e.message}`);
    console.log(`  got ${type} as expected`);
    return;
  } finally {
    expecting = false;
  }
  assert.fail(`expected ${type}, the call succeeded`);
}

async function configsOf(admin, topic, configNames) {
  const r = await admin.describeConfigs({
    includeSynonyms: true,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames }],
  });
  assert.equal(r.resources.length, 1);
  assert.equal(r.resources[0].errorCode, 0);
  return Object.fromEntries(r.resources[0].configEntries.map((e) => [e.configName, e]));
}

async function main() {
  const kafka = new Kafka({
    clientId: 'compat-022',
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
    // create
    const created = await admin.createTopics({
      topics: [
        { topic: 'events', numPartitions: 4, replicationFactor: 1 },
        { topic: 'clicks', numPartitions: 1, replicationFactor: 3,
          configEntries: [{ name: 'retention.ms', value: '86400000' }] },
      ],
      timeout: 10000,
    });
    assert.equal(created, true, 'createTopics');
    assert.deepEqual((await admin.listTopics()).sort(), ['clicks', 'events']);
    const md = await admin.fetchTopicMetadata({ topics: ['events'] });
    const parts = md.topics[0].partitions.sort((a, b) => a.partitionId - b.partitionId);
    assert.deepEqual(parts.map((p) => p.partitionId), [0, 1, 2, 3]);
    for (const p of parts) {
      assert.equal(p.partitionErrorCode, 0);
      assert.equal(p.leader, brokerId);
      assert.deepEqual(p.replicas, [brokerId]);
      assert.deepEqual(p.isr, [brokerId]);
    }
    console.log('created events (4 partitions) and clicks');

    // errors
    expecting = true; // kafkajs logs the TOPIC_ALREADY_EXISTS it then swallows
    const again = await admin.createTopics({ topics: [{ topic: 'events' }] });
    expecting = false;
    assert.equal(again, false, 'an existing topic: createTopics returns false');
    await expectError('INVALID_TOPIC_EXCEPTION',
      () => admin.createTopics({ topics: [{ topic: 'no spaces', numPartitions: 1 }] }));
    await expectError('INVALID_PARTITIONS',
      () => admin.createTopics({ topics: [{ topic: 'none', numPartitions: 0 }] }));
    await expectError('INVALID_CONFIG', () => admin.createTopics({
      topics: [{ topic: 'compacted', configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }],
    }));
    assert.equal(await admin.createTopics({ topics: [{ topic: 'dry' }], validateOnly: true,
      waitForLeaders: false }), true);
    assert.ok(!(await admin.listTopics()).includes('dry'), 'validateOnly created a topic');

    // partitions
    await admin.createPartitions({ topicPartitions: [{ topic: 'clicks', count: 3 }] });
    const md2 = await admin.fetchTopicMetadata({ topics: ['clicks'] });
    assert.equal(md2.topics[0].partitions.length, 3, 'clicks after createPartitions');
    await expectError('INVALID_PARTITIONS',
      () => admin.createPartitions({ topicPartitions: [{ topic: 'clicks', count: 2 }] }));

    // configs
    let cfg = await configsOf(admin, 'clicks');
    assert.equal(cfg['retention.ms'].configValue, '86400000');
    assert.equal(cfg['retention.ms'].configSource, 1);
    assert.equal(cfg['retention.ms'].configSynonyms[0].configName, 'retention.ms');
    assert.equal(cfg['retention.ms'].configSynonyms[0].configSource, 1);
    assert.equal(cfg['cleanup.policy'].configValue, 'delete');
    assert.equal(cfg['cleanup.policy'].configSource, 5);
    assert.equal(cfg['cleanup.policy'].isDefault, true);
    cfg = await configsOf(admin, 'clicks', ['segment.ms']);
    assert.deepEqual(Object.keys(cfg), ['segment.ms'], 'configNames filter');

    await admin.alterConfigs({
      validateOnly: true,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: 'clicks',
        configEntries: [{ name: 'retention.ms', value: '1000' }] }],
    });
    assert.equal((await configsOf(admin, 'clicks'))['retention.ms'].configValue, '86400000',
      'validateOnly changed the topic');
    await admin.alterConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: 'clicks',
        configEntries: [{ name: 'retention.ms', value: '1000' },
          { name: 'max.message.bytes', value: '65536' }] }],
    });
    cfg = await configsOf(admin, 'clicks');
    assert.equal(cfg['retention.ms'].configValue, '1000');
    assert.equal(cfg['max.message.bytes'].configValue, '65536');
    assert.equal(cfg['max.message.bytes'].configSource, 1);
    await expectError('INVALID_CONFIG', () => admin.alterConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: 'clicks',
        configEntries: [{ name: 'retention.ms', value: 'forever' }] }],
    }));
    await expectError('UNKNOWN_TOPIC_OR_PARTITION', () => configsOf(admin, 'missing'));
    const broker = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.BROKER, name: String(brokerId) }],
    });
    const nodeId = broker.resources[0].configEntries.find((e) => e.configName === 'node.id');
    assert.equal(nodeId.configValue, String(brokerId));
    assert.equal(nodeId.readOnly, true);
    console.log('configs described and altered');

    // delete
    await admin.deleteTopics({ topics: ['events', 'clicks'], timeout: 10000 });
    assert.deepEqual(await admin.listTopics(), []);
    await expectError('UNKNOWN_TOPIC_OR_PARTITION',
      () => admin.deleteTopics({ topics: ['events'], timeout: 5000 }));
    console.log('deleted');
  } finally {
    await admin.disconnect();
  }
}

main().then(() => {
  if (problems.length) {
    console.error('kafkajs logged problems:\n' + problems.join('\n'));
    process.exit(1);
  }
  console.log('ok');
}, (e) => {
  console.error(e);
  process.exit(1);
});
