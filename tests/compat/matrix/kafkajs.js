// kafkajs driver for the client matrix: serves the scenario's primitives as JSON lines on
// stdin/stdout (protocol in clients/remote.py; the steps and checks are in scenario.py).
// Usage: node kafkajs.js BOOTSTRAP
//
// kafkajs ships GZIP; the other codecs are pluggable: snappy from kafkajs-snappy, LZ4 and ZSTD
// through small codecs over the pure-JS lz4js (LZ4 frame format, as Kafka uses) and zstd-codec
// (WebAssembly), so nothing native has to build on install.
'use strict'
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const readline = require('readline')
const { Kafka, CompressionTypes, CompressionCodecs, ConfigResourceTypes, logLevel } = require('kafkajs')
const lz4 = require('lz4js')
const { ZstdCodec } = require('zstd-codec')

const bootstrap = process.argv[2]
const kafkajsVersion = require('kafkajs/package.json').version

CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  async compress (encoder) { return Buffer.from(lz4.compress(encoder.buffer)) },
  async decompress (buffer) { return Buffer.from(lz4.decompress(buffer)) }
})
const zstdReady = new Promise(resolve => ZstdCodec.run(zstd => resolve(new zstd.Streaming())))
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  async compress (encoder) { return Buffer.from((await zstdReady).compress(encoder.buffer, 3)) },
  async decompress (buffer) { return Buffer.from((await zstdReady).decompress(buffer)) }
})
const CODECS = {
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD
}

// Logs go to stderr: stdout carries the protocol.
const logCreator = () => ({ namespace, level, log }) => {
  const { message, ...extra } = log
  process.stderr.write(`[kafkajs ${namespace}] ${message} ${JSON.stringify(extra)}\n`)
}
const kafka = new Kafka({
  clientId: 'riptide-matrix',
  brokers: [bootstrap],
  logLevel: logLevel.WARN,
  logCreator,
  retry: { retries: 3 }
})

async function withAdmin (fn) {
  const admin = kafka.admin()
  await admin.connect()
  try { return await fn(admin) } finally { await admin.disconnect() }
}

const str = b => (b === null || b === undefined ? null : b.toString())
let readers = 0

// Consumes with a consumer in `groupId` until `count` records with offset >= `from` arrived
// (or `timeoutS` passed); `seek` moves it first when reading from an offset.
async function consumeWith (topic, groupId, count, timeoutS, seekTo, commit) {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000 })
  await consumer.connect()
  const out = []
  let last = null
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    let done
    const finished = new Promise(resolve => { done = resolve })
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (seekTo !== null && Number(message.offset) < seekTo) return
        if (out.length >= count) return
        out.push(message)
        last = { partition, offset: message.offset }
        if (out.length >= count) done()
      }
    })
    if (seekTo !== null) consumer.seek({ topic, partition: 0, offset: String(seekTo) })
    const timer = setTimeout(done, timeoutS * 1000)
    await finished
    clearTimeout(timer)
    if (commit && last) {
      await consumer.commitOffsets([{ topic, partition: last.partition, offset: String(Number(last.offset) + 1) }])
    }
  } finally {
    await consumer.disconnect()
  }
  return out
}

const ops = {
  async version () {
    return { client: 'kafkajs', version: kafkajsVersion, details: `node ${process.version}` }
  },
  async topics () { return withAdmin(a => a.listTopics()) },
  async create_topic (topic) {
    const created = await withAdmin(a => a.createTopics({
      topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true
    }))
    if (!created) throw new Error('createTopics returned false (topic already existed)')
  },
  async produce (topic, msgs, acks, codec) {
    const producer = kafka.producer({ allowAutoTopicCreation: false })
    await producer.connect()
    try {
      await producer.send({
        topic,
        acks,
        compression: codec ? CODECS[codec] : CompressionTypes.None,
        messages: msgs.map(([key, value, headers]) => ({
          key, value, partition: 0, headers: Object.fromEntries(headers)
        }))
      })
    } finally {
      await producer.disconnect()
    }
  },
  async consume (topic, offset, count, timeoutS) {
    const msgs = await consumeWith(topic, `matrix-read-${process.pid}-${readers++}`, count, timeoutS, offset, false)
    return msgs.map(m => [str(m.key), str(m.value),
      Object.entries(m.headers || {}).map(([k, v]) => [k, str(v)])])
  },
  async end_offset (topic) {
    const offsets = await withAdmin(a => a.fetchTopicOffsets(topic))
    return Number(offsets.find(p => p.partition === 0).high)
  },
  async offset_for_time (topic, ts) {
    const offsets = await withAdmin(a => a.fetchTopicOffsetsByTimestamp(topic, ts))
    return Number(offsets.find(p => p.partition === 0).offset)
  },
  async group_consume (topic, group, count, timeoutS) {
    const msgs = await consumeWith(topic, group, count, timeoutS, null, true)
    return msgs.map(m => str(m.value))
  },
  async committed (topic, group) {
    const res = await withAdmin(a => a.fetchOffsets({ groupId: group, topics: [topic] }))
    return Number(res[0].partitions.find(p => p.partition === 0).offset)
  },
  async describe_configs (topic) {
    const res = await withAdmin(a => a.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }], includeSynonyms: false
    }))
    const r = res.resources[0]
    if (r.errorCode !== 0) throw new Error(`describeConfigs error ${r.errorCode}: ${r.errorMessage}`)
    return Object.fromEntries(r.configEntries.map(e => [e.configName, e.configValue]))
  },
  async delete_topic (topic) { await withAdmin(a => a.deleteTopics({ topics: [topic], timeout: 10000 })) }
}

const rl = readline.createInterface({ input: process.stdin })
const queue = []
let busy = false
async function drain () {
  if (busy) return
  busy = true
  while (queue.length) {
    const { op, args } = JSON.parse(queue.shift())
    let answer
    try {
      answer = { ok: (await ops[op](...args)) ?? null }
    } catch (e) {
      answer = { error: `${e.name}: ${e.message}${e.type ? ` (${e.type})` : ''}` }
    }
    process.stdout.write(JSON.stringify(answer) + '\n')
  }
  busy = false
}
rl.on('line', line => { queue.push(line); drain() })
rl.on('close', async () => { while (busy || queue.length) await new Promise(r => setTimeout(r, 50)); process.exit(0) })
