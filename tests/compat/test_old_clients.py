"""Clients older than Kafka 4 (issue 19 item 3): API versions Kafka 3.9 still served and 4.0
removed (KIP-896), with the old message formats. kafka-python with an explicit `api_version`
speaks the protocol of that Kafka release: (0, 10, 0) produces message format 1 with Produce
v2, (0, 9) format 0 with Produce v1. What they write must read back through a current client
as Kafka 3.9 would give it (keys, values, timestamps), and what current clients write must read
back through them (Fetch v0-3, down-converted). The old group APIs (OffsetCommit v0-1,
OffsetFetch v0) are exercised on the wire in server/tests/legacy_versions.rs and by sarama 1.22
in the matrix."""
import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaProducer

from conftest import unique

OLD_RELEASES = {(0, 9): 0, (0, 10, 0): 1, (0, 10, 1): 1}


def create(bootstrap, topic, partitions=1):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(15)


def read_all(bootstrap, topic, count):
    """(key, value, timestamp type, timestamp) of the first `count` records of partition 0."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"),
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out, deadline = [], time.time() + 20
    try:
        while len(out) < count and time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            kind, ts = m.timestamp()
            out.append((m.key(), m.value(), kind, ts))
    finally:
        c.close()
    return out


@pytest.mark.parametrize("release", list(OLD_RELEASES), ids=lambda r: ".".join(map(str, r)))
@pytest.mark.parametrize("compression", [None, "gzip"])
def test_old_producer_records_read_back_as_written(broker, release, compression):
    topic = unique(f"old-produce-{'-'.join(map(str, release))}-{compression}")
    create(broker.bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, api_version=release,
                             compression_type=compression, acks="all", linger_ms=5)
    sent = []
    for i in range(20):
        key = None if i % 5 == 0 else f"k{i}".encode()
        ts = 1_700_000_000_000 + i
        meta = producer.send(topic, key=key, value=f"v{i}".encode(), partition=0,
                             timestamp_ms=ts).get(timeout=15)
        assert meta.offset == i, meta
        sent.append((key, f"v{i}".encode(), ts))
    producer.close(10)
    got = read_all(broker.bootstrap, topic, len(sent))
    assert [(k, v) for k, v, _, _ in got] == [(k, v) for k, v, _ in sent]
    if OLD_RELEASES[release] == 1:
        assert [ts for _, _, _, ts in got] == [ts for _, _, ts in sent], "format 1 keeps CreateTime"
    else:
        # Format 0 has no timestamps: Kafka stores NO_TIMESTAMP (-1) for them.
        assert all(ts == -1 for _, _, _, ts in got), got[:3]


@pytest.mark.parametrize("release", list(OLD_RELEASES), ids=lambda r: ".".join(map(str, r)))
def test_old_consumer_reads_what_current_clients_write(broker, release):
    """Fetch v0-3: the stored batches (message format 2, here from librdkafka with headers, one
    of them compressed) are down-converted to the format the old consumer parses; headers are
    dropped (format 0/1 has none), keys, values and offsets are kept, and format 1 keeps
    the timestamps."""
    from confluent_kafka import Producer
    from kafka import KafkaConsumer, TopicPartition as KTopicPartition
    topic = unique(f"old-consume-{'-'.join(map(str, release))}")
    create(broker.bootstrap, topic)
    sent = []
    for codec in ["none", "zstd"]:
        p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "linger.ms": 5})
        for i in range(10):
            key, value, ts = f"k{codec}{i}".encode(), f"{codec}-{i}".encode(), 1_700_000_000_000 + i
            p.produce(topic, key=key, value=value, partition=0, timestamp=ts, headers=[("h", b"x")])
            sent.append((key, value, ts))
        assert p.flush(15) == 0
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, api_version=release, enable_auto_commit=False,
                      consumer_timeout_ms=10_000)
    tp = KTopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    got = []
    for m in c:
        got.append(m)
        if len(got) == len(sent):
            break
    c.close()
    assert [(m.key, m.value) for m in got] == [(k, v) for k, v, _ in sent]
    assert [m.offset for m in got] == list(range(len(sent)))
    if OLD_RELEASES[release] == 1:
        assert [m.timestamp for m in got] == [ts for _, _, ts in sent]
