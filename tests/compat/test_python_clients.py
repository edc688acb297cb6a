"""kafka-python and aiokafka produce and consume against riptide."""
import asyncio
import time

from conftest import unique


def test_kafka_python_produce_consume(broker):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic
    topic = unique("kp")
    KafkaAdminClient(bootstrap_servers=broker.bootstrap).create_topics(
        [NewTopic(topic, num_partitions=2, replication_factor=1)])
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", compression_type="gzip")
    futures = [p.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % 2,
                      headers=[("n", str(i).encode())]) for i in range(200)]
    metas = [f.get(timeout=20) for f in futures]
    assert {m.partition for m in metas} == {0, 1}
    p.close()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                      consumer_timeout_ms=5000, auto_offset_reset="earliest")
    c.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    got = sorted((int(m.value[1:]), m.key, m.headers) for m in c)
    c.close()
    assert [g[0] for g in got] == list(range(200))
    assert got[5][1] == b"k5" and got[5][2] == [("n", b"5")]


def test_aiokafka_produce_consume(broker):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition
    topic = unique("aio")

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        await p.start()
        try:
            for i in range(100):
                await p.send_and_wait(topic, f"v{i}".encode(), key=b"k", partition=0)
        finally:
            await p.stop()
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest")
        await c.start()
        try:
            c.assign([TopicPartition(topic, 0)])
            out = []
            deadline = time.time() + 20
            while len(out) < 100 and time.time() < deadline:
                batch = await c.getmany(timeout_ms=500)
                for msgs in batch.values():
                    out.extend(m.value for m in msgs)
            return out
        finally:
            await c.stop()

    out = asyncio.run(run())
    assert out == [f"v{i}".encode() for i in range(100)]
