"""Newer clients (issue 19 item 4): Fetch v13+ with topic ids and fetch sessions (KIP-227), and
DeleteRecords and DescribeTopicPartitions, through real clients. kafka-python 3.0 keeps a fetch
session per broker and sends incremental fetches (at Fetch v12, topics by name: its fetcher stops
there); librdkafka 2.16 fetches at v16, by topic id, without sessions (session 0, epoch -1). No
client here uses sessions by topic id: server/tests/fetch_sessions.rs covers that on the wire. Both consume every record of several partitions, in
order, in many small fetches. DeleteRecords through both admin clients moves the log start, which
a kill -9 and restart does not undo; kafka-python pages through DescribeTopicPartitions."""
import re
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import KafkaAdminClient

from conftest import unique

PARTITIONS = 6
PER_PARTITION = 500


def metric(broker, name):
    text = urllib.request.urlopen(broker.metrics_url, timeout=5).read().decode()
    m = re.search(rf"^{name} (\d+)$", text, re.M)
    assert m, f"{name} in /metrics"
    return int(m.group(1))


def create(broker, topic, partitions):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(15)


def fill(broker, topic, partitions, per_partition):
    """per_partition records in each partition, values "<partition>:<i>" in order, in batches
    of at most 20 records (so that a consumer needs many fetches)."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "batch.num.messages": 20})
    for i in range(per_partition):
        for part in range(partitions):
            p.produce(topic, value=f"{part}:{i}".encode(), partition=part)
        if i % 100 == 0:
            p.poll(0)
    assert p.flush(30) == 0


def check_in_order(seen):
    for part in range(PARTITIONS):
        assert seen.get(part) == [f"{part}:{i}" for i in range(PER_PARTITION)], f"partition {part}"


def test_kafka_python_consumes_through_an_incremental_session(broker):
    topic = unique("sessions-kp")
    create(broker, topic, PARTITIONS)
    fill(broker, topic, PARTITIONS, PER_PARTITION)
    before = metric(broker, "riptide_incremental_fetches_total")
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", max_partition_fetch_bytes=1024,
                             consumer_timeout_ms=10_000)
    consumer.assign([KpTopicPartition(topic, p) for p in range(PARTITIONS)])
    seen = {}
    total = 0
    try:
        for msg in consumer:
            seen.setdefault(msg.partition, []).append(msg.value.decode())
            total += 1
            if total == PARTITIONS * PER_PARTITION:
                break
    finally:
        consumer.close()
    check_in_order(seen)
    # Small per-partition limits make it take many fetches, all but the first incremental.
    assert metric(broker, "riptide_incremental_fetches_total") - before >= 5
    assert metric(broker, "riptide_fetch_sessions") >= 1


def test_librdkafka_consumes_every_partition(broker):
    topic = unique("sessions-rdk")
    create(broker, topic, PARTITIONS)
    fill(broker, topic, PARTITIONS, PER_PARTITION)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("g"),
                  "enable.auto.commit": False, "max.partition.fetch.bytes": 1024})
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    seen = {}
    total = 0
    try:
        while total < PARTITIONS * PER_PARTITION:
            msgs = c.consume(1000, timeout=10)
            assert msgs, f"stalled at {total}"
            for m in msgs:
                assert m.error() is None, m.error()
                seen.setdefault(m.partition(), []).append(m.value().decode())
                total += 1
    finally:
        c.close()
    check_in_order(seen)


def test_delete_records_with_both_admin_clients_survives_kill9(fresh_broker):
    broker = fresh_broker
    topic = unique("trim")
    create(broker, topic, 2)
    fill(broker, topic, 2, 20)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    result = admin.delete_records([TopicPartition(topic, 0, 7)])
    [deleted] = [f.result(15) for f in result.values()]
    assert deleted.low_watermark == 7
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        answer = kp.delete_records({KpTopicPartition(topic, 1): 12})
        assert answer[KpTopicPartition(topic, 1)]["low_watermark"] == 12
    finally:
        kp.close()

    def low_watermarks():
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("wm")})
        try:
            return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(2)]
        finally:
            c.close()

    assert low_watermarks() == [(7, 20), (12, 20)]
    broker.kill9()
    broker.start()
    assert low_watermarks() == [(7, 20), (12, 20)], "the log start survives kill -9"
    # A consumer from the start now begins at the log start.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("from-start"),
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, -2)])
    try:
        msg = None
        for _ in range(20):
            msg = c.poll(1)
            if msg is not None and msg.error() is None:
                break
        assert msg is not None and msg.error() is None
        assert (msg.offset(), msg.value()) == (7, b"0:7")
    finally:
        c.close()


def test_kafka_python_pages_topic_partitions(broker):
    topic = unique("dtp")
    create(broker, topic, 5)
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        cursor, pages, partitions = None, 0, []
        while True:
            page = kp.describe_topic_partitions([topic], response_partition_limit=2, cursor=cursor)
            pages += 1
            [t] = page["topics"]
            assert (t["name"], t["error_code"]) == (topic, 0)
            partitions += [p["partition_index"] for p in t["partitions"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert cursor["topic_name"] == topic
    finally:
        kp.close()
    assert (pages, partitions) == (3, [0, 1, 2, 3, 4])
