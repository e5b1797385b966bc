#!/usr/bin/env bash
# Re-capture every request vector in tests/vectors/requests/ from the real
# clients (see README.md). Needs kcat, python3-kafka, python3-confluent-kafka
# and kafkajs 2.2.4 installed with npm OUTSIDE the repository:
#
#   mkdir -p /tmp/capture && (cd /tmp/capture && npm init -y && npm install kafkajs@2.2.4)
#   tests/vectors/capture-all.sh [KAFKAJS_DIR]        (default /tmp/capture)
#
# Client ids are fixed where the client allows it; record batches carry
# timestamps, so a new capture differs from the committed one in those
# bytes. tests/unit/test_protocol_vectors.c asserts on what is stable.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
js=${1:-/tmp/capture}
py=/usr/bin/python3
cap() { $py "$here/capture.py" "$@"; }
out=$here/requests
rm -f "$out"/*.hex
mkdir -p "$out"

# librdkafka 2.0.2 via kcat: metadata listing, a producer, a group consumer
cap --name kcat-L --port 39001 --stop-after Metadata -- kcat -b '127.0.0.1:{port}' -L
cap --name kcat-P --port 39010 --stop-after Produce --stdin 'k1:hello\nk2:world\n' -- \
    kcat -b '127.0.0.1:{port}' -P -t vectors -K: -X client.id=kcat-vectors
cap --name kcat-G --port 39020 --stop-after JoinGroup --timeout 20 -- \
    kcat -b '127.0.0.1:{port}' -G vectors-group -X client.id=kcat-vectors vectors

# confluent-kafka-python (librdkafka 2.0.2 underneath)
cap --name confluent --port 39030 --stop-after Metadata -- $py -c "
from confluent_kafka.admin import AdminClient
AdminClient({'bootstrap.servers': '127.0.0.1:{port}'}).list_topics(timeout=5)"

# kafka-python 2.0.2: producer (version probe, metadata, produce) and admin
cap --name kafka-python-producer --port 39040 --stop-after Produce --timeout 20 -- $py -c "
from kafka import KafkaProducer
p = KafkaProducer(bootstrap_servers='127.0.0.1:{port}', client_id='kafka-python-vectors')
p.send('vectors', b'hello', key=b'k1').get(timeout=10)
p.close(timeout=2)"
cap --name kafka-python-admin --port 39050 --stop-after CreateTopics --timeout 20 -- $py -c "
from kafka.admin import KafkaAdminClient, NewTopic
a = KafkaAdminClient(bootstrap_servers='127.0.0.1:{port}', client_id='kafka-python-admin', request_timeout_ms=3000)
a.create_topics([NewTopic('vectors-new', 3, 1, topic_configs={'retention.ms': '60000'})])"

# kafkajs 2.2.4: producer and admin
cat >"$js/sh-produce.js" <<'JS'
const { Kafka, logLevel } = require('kafkajs')
const kafka = new Kafka({ clientId: 'kafkajs-vectors', brokers: [process.argv[2]], logLevel: logLevel.NOTHING, retry: { retries: 0 } })
async function main() {
  const p = kafka.producer()
  await p.connect()
  await p.send({ topic: 'vectors', messages: [{ key: 'k1', value: 'hello' }, { key: 'k2', value: 'world' }] })
  await p.disconnect()
}
main().catch(e => { console.error('kafkajs:', e.message); process.exit(1) })
JS
cat >"$js/sh-admin.js" <<'JS'
const { Kafka, logLevel } = require('kafkajs')
const kafka = new Kafka({ clientId: 'kafkajs-admin', brokers: [process.argv[2]], logLevel: logLevel.NOTHING, retry: { retries: 0 }, requestTimeout: 3000 })
async function main() {
  const a = kafka.admin()
  await a.connect()
  await a.createTopics({ topics: [{ topic: 'vectors-new', numPartitions: 3, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '60000' }] }] })
  await a.disconnect()
}
main().catch(e => { console.error('kafkajs:', e.message); process.exit(1) })
JS
cap --name kafkajs-producer --port 39060 --stop-after Produce --timeout 20 -- node "$js/sh-produce.js" '127.0.0.1:{port}'
cap --name kafkajs-admin --port 39070 --stop-after CreateTopics --timeout 20 -- node "$js/sh-admin.js" '127.0.0.1:{port}' || true
echo "capture-all: $(ls "$out"/*.hex | wc -l) frames in $out"
