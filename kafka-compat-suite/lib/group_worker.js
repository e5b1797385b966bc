// A kafkajs consumer-group member in its own process, for the group
// scenarios: the same file protocol as lib/group_worker.py (<id>.rec,
// <id>.asg, <id>.stop in the scenario's directory; see lib/groups.py).
//
// usage: node group_worker.js JSON-CONFIG
// JSON-CONFIG: {"dir", "id", "bootstrap", "group", "topic", "conf": {...
// kafkajs consumer options (sessionTimeout, heartbeatInterval, ...) ...}}
//
// kafkajs commits the offsets it has processed after every batch
// (autoCommit), which is what the scenario waits for.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { Kafka, logLevel } = require('kafkajs');

const cfg = JSON.parse(process.argv[2]);
const rec = fs.openSync(path.join(cfg.dir, `${cfg.id}.rec`), 'a');
const stopPath = path.join(cfg.dir, `${cfg.id}.stop`);
const state = { parts: [], assigns: 0, revokes: 0, seq: 0 };

function publish(parts) {
  if (parts) state.parts = [...parts].sort((a, b) => a - b);
  state.seq += 1;
  const tmp = path.join(cfg.dir, `${cfg.id}.asg.tmp`);
  fs.writeFileSync(tmp, JSON.stringify(state));
  fs.renameSync(tmp, path.join(cfg.dir, `${cfg.id}.asg`));
}

async function main() {
  publish([]);
  const kafka = new Kafka({
    clientId: `worker-${cfg.id}`,
    brokers: [cfg.bootstrap],
    connectionTimeout: 5000,
    requestTimeout: 15000,
    logLevel: logLevel.WARN,
  });
  const consumer = kafka.consumer({ groupId: cfg.group, ...(cfg.conf || {}) });
  const { GROUP_JOIN } = consumer.events;
  consumer.on(GROUP_JOIN, (e) => {
    const parts = e.payload.memberAssignment[cfg.topic] || [];
    if (state.assigns > 0) state.revokes += 1;
    state.assigns += 1;
    console.log(`join: member ${e.payload.memberId} leader=${e.payload.isLeader} parts=${parts}`);
    publish(parts);
  });
  await consumer.connect();
  await consumer.subscribe({ topic: cfg.topic, fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
      let lines = '';
      for (const m of batch.messages) {
        lines += `${batch.partition} ${m.offset}\n`;
        resolveOffset(m.offset);
      }
      if (lines) fs.writeSync(rec, lines);
      await heartbeat();
    },
  });
  while (!fs.existsSync(stopPath)) await new Promise((r) => setTimeout(r, 200));
  await consumer.disconnect();
  console.log(`worker ${cfg.id} done`);
}

main().catch((e) => {
  console.error(`worker ${cfg.id} failed:`, e);
  process.exit(1);
});
