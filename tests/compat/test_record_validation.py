"""Record validation as Kafka does it (issue 19 item 1), through librdkafka: on a compacted
topic a keyless record is refused with INVALID_RECORD (in every codec: compressed batches are
looked inside) and nothing of it is appended, while keyed records go in and keyless ones are
still welcome on a topic that is not compacted."""
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import unique


def produce_one(producer, topic, key, value):
    """Produces one record to partition 0 and waits for its delivery report: (error, offset)."""
    reports = []
    producer.produce(topic, key=key, value=value, partition=0,
                     on_delivery=lambda err, msg: reports.append((err, msg.offset())))
    producer.flush(15)
    assert len(reports) == 1, "a delivery report arrives"
    return reports[0]


def high_watermark(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("hw")})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_keyless_record_on_compacted_topic_is_invalid(broker, compression):
    compacted, plain = unique(f"compacted-{compression}"), unique(f"plain-{compression}")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics([
        NewTopic(compacted, 1, 1, config={"cleanup.policy": "compact"}),
        NewTopic(plain, 1, 1),
    ])
    for f in futures.values():
        f.result(15)
    # No retries: INVALID_RECORD is not retriable, but a retry would only hide a slow answer.
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0,
                         "compression.type": compression, "retries": 0})
    err, offset = produce_one(producer, compacted, b"k", b"keyed")
    assert err is None and offset == 0, err
    err, _ = produce_one(producer, compacted, None, b"keyless")
    assert err is not None and err.code() == KafkaError.INVALID_RECORD, err
    assert not err.retriable(), err
    err, offset = produce_one(producer, compacted, b"k", b"keyed again")
    assert err is None and offset == 1, "the refused record took no offset"
    assert high_watermark(broker.bootstrap, compacted) == 2
    err, offset = produce_one(producer, plain, None, b"keyless")
    assert err is None and offset == 0, err
