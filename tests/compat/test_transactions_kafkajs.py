"""Transactions with kafkajs (its own protocol implementation, not librdkafka): commit, abort,
sendOffsets in a transaction, and a read_committed kafkajs consumer seeing exactly the
committed records; the group's offset is the one sent in the committed transaction."""
import json
import os
import shutil
import subprocess

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import unique

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(HERE, "matrix", "node_modules")

SCRIPT = r"""
const { Kafka, logLevel } = require('kafkajs')
const [,, broker, topic, tid, group] = process.argv
const kafka = new Kafka({ clientId: 'txn-test', brokers: [broker], logLevel: logLevel.NOTHING })
const sleep = ms => new Promise(r => setTimeout(r, ms))
async function main() {
  const producer = kafka.producer({ transactionalId: tid, maxInFlightRequests: 1, idempotent: true })
  await producer.connect()
  let t = await producer.transaction()
  await t.send({ topic, messages: [{ value: 'c-0' }, { value: 'c-1' }] })
  await t.commit()
  t = await producer.transaction()
  await t.send({ topic, messages: [{ value: 'aborted' }] })
  await t.abort()
  t = await producer.transaction()
  await t.send({ topic, messages: [{ value: 'c-2' }] })
  await t.sendOffsets({ consumerGroupId: group, topics: [{ topic, partitions: [{ partition: 0, offset: '7' }] }] })
  await t.commit()
  await producer.disconnect()
  const seen = []
  const consumer = kafka.consumer({ groupId: group + '-reader', readUncommitted: false })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  await consumer.run({ eachMessage: async ({ message }) => { seen.push(message.value.toString()) } })
  for (let i = 0; i < 100 && seen.length < 3; i++) await sleep(200)
  await sleep(1000)
  await consumer.disconnect()
  const admin = kafka.admin()
  await admin.connect()
  const offsets = await admin.fetchOffsets({ groupId: group, topics: [topic] })
  await admin.disconnect()
  console.log(JSON.stringify({ seen, offset: offsets[0].partitions[0].offset }))
}
main().catch(e => { console.error(e && e.stack || String(e)); process.exit(1) })
"""


@pytest.mark.skipif(not (shutil.which("node") and os.path.isdir(os.path.join(NODE_MODULES, "kafkajs"))),
                    reason="node and kafkajs (tests/compat/matrix: npm ci) are needed")
def test_kafkajs_transactions(broker, tmp_path):
    topic = unique("txn-kjs")
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(15)
    script = tmp_path / "txn.js"
    script.write_text(SCRIPT)
    r = subprocess.run(["node", str(script), broker.bootstrap, topic, unique("kjs-tid"), unique("kjs-group")],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, NODE_PATH=NODE_MODULES))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert sorted(out["seen"]) == ["c-0", "c-1", "c-2"], out
    assert out["offset"] == "7", out
