"""confluent-kafka (librdkafka) against riptide: acks levels, idempotence, compression,
ordering, keyed partitioning, assign/seek, AdminClient."""
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

from conftest import IO_ARGS, Broker, unique


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create(broker, topic, partitions=1, config=None):
    a = admin(broker)  # keep the client alive until the future resolves
    fs = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})])
    fs[topic].result(15)


def consume_all(broker, topic, expected, partitions=None, timeout=30):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused-" + topic,
                  "enable.auto.commit": False})
    parts = partitions if partitions is not None else [0]
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out = []
    deadline = time.time() + timeout
    while len(out) < expected and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        assert m.error() is None, m.error()
        out.append(m)
    c.close()
    return out


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks_levels(broker, acks):
    topic = unique(f"acks{acks}")
    create(broker, topic)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": acks, "enable.idempotence": False,
                  "linger.ms": 5})
    errors = []
    for i in range(1000):
        p.produce(topic, value=f"v{i}".encode(), partition=0,
                  on_delivery=lambda e, m: errors.append(e) if e else None)
    assert p.flush(30) == 0
    assert errors == []
    msgs = consume_all(broker, topic, 1000)
    assert [m.value() for m in msgs] == [f"v{i}".encode() for i in range(1000)]


def test_idempotent_producer_and_ordering_100k(broker):
    topic = unique("order")
    create(broker, topic)
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 10,
                  "batch.size": 65536})
    n = 100_000
    for i in range(n):
        while True:
            try:
                p.produce(topic, value=str(i).encode(), partition=0)
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(60) == 0
    msgs = consume_all(broker, topic, n, timeout=90)
    assert len(msgs) == n
    assert all(int(m.value()) == i and m.offset() == i for i, m in enumerate(msgs))


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_round_trip(broker, codec):
    topic = unique(f"comp-{codec}")
    create(broker, topic)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "linger.ms": 20})
    values = [(f"value-{i}-" + "x" * (i % 100)).encode() for i in range(2000)]
    for i, v in enumerate(values):
        p.produce(topic, key=f"k{i}".encode(), value=v, partition=0, headers=[("h", str(i).encode())])
    assert p.flush(30) == 0
    msgs = consume_all(broker, topic, len(values))
    assert [m.value() for m in msgs] == values
    assert msgs[7].headers() == [("h", b"7")]
    assert msgs[7].key() == b"k7"


def test_same_key_same_partition(broker):
    topic = unique("keys")
    create(broker, topic, partitions=6)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(600):
        p.produce(topic, key=f"key-{i % 10}".encode(), value=str(i).encode())
    assert p.flush(30) == 0
    msgs = consume_all(broker, topic, 600, partitions=range(6))
    by_key = {}
    for m in msgs:
        by_key.setdefault(m.key(), set()).add(m.partition())
    assert len(by_key) == 10
    assert all(len(ps) == 1 for ps in by_key.values())
    assert len({m.partition() for m in msgs}) > 1


def test_assign_and_seek(broker):
    topic = unique("seek")
    create(broker, topic)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(100):
        p.produce(topic, value=str(i).encode(), partition=0)
    p.flush(30)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g-" + topic, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 50)])
    first = None
    deadline = time.time() + 20
    while first is None and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            first = m
    assert first is not None and first.offset() == 50
    c.seek(TopicPartition(topic, 0, 90))
    got = None
    deadline = time.time() + 20
    while got is None and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got = m
    assert got.offset() == 90 and got.value() == b"90"
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    assert (lo, hi) == (0, 100)
    c.close()


def test_admin_create_describe_alter_delete(broker):
    a = admin(broker)
    topic = unique("adm")
    a.create_topics([NewTopic(topic, 3, 1, config={"retention.ms": "3600000"})])[topic].result(15)
    # duplicate -> TOPIC_ALREADY_EXISTS
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic(topic, 3, 1)])[topic].result(15)
    assert e.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    # bad config -> INVALID_CONFIG
    bad = unique("bad")
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic(bad, 1, 1, config={"no.such.thing": "1"})])[bad].result(15)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    cfg = a.describe_configs([res])[res].result(15)
    assert cfg["retention.ms"].value == "3600000"
    assert cfg["cleanup.policy"].value == "delete"
    a.incremental_alter_configs([ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        __import__("confluent_kafka.admin", fromlist=["ConfigEntry"]).ConfigEntry(
            "retention.ms", "7200000",
            incremental_operation=__import__("confluent_kafka.admin", fromlist=["AlterConfigOpType"]).AlterConfigOpType.SET)
    ])])[res].result(15)
    cfg = a.describe_configs([res])[res].result(15)
    assert cfg["retention.ms"].value == "7200000"
    a.create_partitions([NewPartitions(topic, 5)])[topic].result(15)
    md = a.list_topics(topic, timeout=10)
    assert len(md.topics[topic].partitions) == 5
    a.delete_topics([topic])[topic].result(15)
    time.sleep(0.2)
    md = a.list_topics(timeout=10)
    assert topic not in md.topics
    broker_res = ConfigResource(ConfigResource.Type.BROKER, "0")
    bcfg = a.describe_configs([broker_res])[broker_res].result(15)
    assert bcfg["num.partitions"].value == "1"


def test_configs_kafka_4_removed_are_accepted_as_no_ops(broker):
    """Older tools still set message.format.version (and the timestamp difference Kafka 4.0
    replaced): the topic is created or altered and the removed config is dropped, as Kafka 4
    does, instead of the whole request failing. message.downconversion.enable is a no-op config
    that Kafka 4 still accepts and describes."""
    a = admin(broker)
    topic = unique("legacycfg")
    a.create_topics([NewTopic(topic, 1, 1, config={"message.format.version": "2.8-IV1",
                                                   "message.timestamp.difference.max.ms": "60000",
                                                   "retention.ms": "3600000"})])[topic].result(15)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    cfg = a.describe_configs([res])[res].result(15)
    assert cfg["retention.ms"].value == "3600000"
    assert "message.format.version" not in cfg
    assert cfg["message.downconversion.enable"].value == "true"
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry
    a.incremental_alter_configs([ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("message.format.version", "3.0", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("message.downconversion.enable", "false", incremental_operation=AlterConfigOpType.SET),
    ])])[res].result(15)
    cfg = a.describe_configs([res])[res].result(15)
    assert "message.format.version" not in cfg
    assert cfg["message.downconversion.enable"].value == "false"
    assert cfg["retention.ms"].value == "3600000"
    a.delete_topics([topic])[topic].result(15)


def test_partition_limits_refuse_topics_past_them(tmp_path):
    """`max.partitions` (cluster) and `max.broker.partitions` (replicas on one broker): a
    CreateTopics or CreatePartitions past either is refused with POLICY_VIOLATION and a message
    naming the limit, and nothing is created; below them everything works."""
    b = Broker(str(tmp_path / "data"), extra_args=["--shards", "2", "--no-pin", *IO_ARGS,
                                                   "--override", "max.partitions=60",
                                                   "--override", "max.broker.partitions=50"]).start()
    try:
        a = AdminClient({"bootstrap.servers": b.bootstrap})

        def create(name, n):
            return a.create_topics([NewTopic(name, n, 1)], operation_timeout=30)[name]

        first = unique("limits-a")
        create(first, 40).result(30)
        over = unique("limits-b")
        with pytest.raises(KafkaException) as e:
            create(over, 15).result(30)  # 55 replicas on the one broker
        err = e.value.args[0]
        assert err.code() == KafkaError.POLICY_VIOLATION, err
        assert "max.broker.partitions=50" in err.str(), err
        with pytest.raises(KafkaException) as e:
            a.create_partitions([NewPartitions(first, 51)], operation_timeout=30)[first].result(30)
        assert e.value.args[0].code() == KafkaError.POLICY_VIOLATION, e.value.args[0]
        md = a.list_topics(timeout=10)
        assert over not in md.topics and len(md.topics[first].partitions) == 40
        a.create_partitions([NewPartitions(first, 45)], operation_timeout=30)[first].result(30)
        b.restart()  # the limits hold against the image replayed from the metadata log
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        with pytest.raises(KafkaException) as e:
            create(unique("limits-c"), 6).result(30)  # 51 on the broker
        assert "max.broker.partitions=50" in e.value.args[0].str(), e.value.args[0]
        b.stop()
        b = Broker(str(tmp_path / "data"), extra_args=["--shards", "2", "--no-pin", *IO_ARGS,
                                                       "--override", "max.partitions=60"]).start()
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        with pytest.raises(KafkaException) as e:
            create(unique("limits-d"), 16).result(30)  # 61 in the cluster
        err = e.value.args[0]
        assert err.code() == KafkaError.POLICY_VIOLATION and "max.partitions=60" in err.str(), err
        create(unique("limits-e"), 15).result(30)
    finally:
        b.stop()


def test_an_idempotent_producer_resumes_after_its_state_expired(tmp_path):
    """producer.id.expiration.ms: the broker forgets an idle producer, and the producer's next
    batch (sequence far past 0) is accepted as Kafka accepts it, not refused."""
    b = Broker(str(tmp_path / "data"), extra_args=[
        "--shards", "1", "--no-pin",
        "--override", "producer.id.expiration.ms=1000",
        "--override", "log.retention.check.interval.ms=200"]).start()
    try:
        topic = unique("expire-pid")
        create(b, topic)
        errors = []
        p = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True, "linger.ms": 0})
        for i in range(5):
            p.produce(topic, value=f"a{i}".encode(), partition=0,
                      on_delivery=lambda e, m: e and errors.append(e))
            p.flush(10)
        deadline = time.time() + 15
        while "idle producer id(s) expired" not in b.read_log() and time.time() < deadline:
            time.sleep(0.2)
        for i in range(5):
            p.produce(topic, value=f"b{i}".encode(), partition=0,
                      on_delivery=lambda e, m: e and errors.append(e))
            p.flush(10)
        assert errors == []
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("g"), "auto.offset.reset": "earliest"})
        c.assign([TopicPartition(topic, 0, 0)])
        got = []
        deadline = time.time() + 15
        while len(got) < 10 and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
        c.close()
        assert got == [f"a{i}".encode() for i in range(5)] + [f"b{i}".encode() for i in range(5)]
    finally:
        b.stop()


def test_dynamic_broker_config_is_the_topics_default(broker):
    """A dynamic broker config (IncrementalAlterConfigs on the BROKER resource) becomes the
    default of every topic that does not override it, described with Kafka's source; a config
    that cannot change at run time is refused with INVALID_CONFIG. Undone at the end (the
    broker is shared by the module)."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigSource
    a = admin(broker)
    topic = unique("dyncfg")
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    broker_res = lambda ops: ConfigResource(ConfigResource.Type.BROKER, "0", incremental_configs=ops)
    set_ = lambda v: [ConfigEntry("log.retention.bytes", v, incremental_operation=AlterConfigOpType.SET)]
    target = broker_res(set_("123456789"))
    a.incremental_alter_configs([target])[target].result(15)
    try:
        cfg = a.describe_configs([res])[res].result(15)["retention.bytes"]
        assert cfg.value == "123456789"
        assert cfg.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
        bad = broker_res([ConfigEntry("listeners", "PLAINTEXT://:1",
                                      incremental_operation=AlterConfigOpType.SET)])
        with pytest.raises(KafkaException) as e:
            a.incremental_alter_configs([bad])[bad].result(15)
        assert e.value.args[0].code() == KafkaError.INVALID_CONFIG
    finally:
        undo = broker_res([ConfigEntry("log.retention.bytes", None,
                                       incremental_operation=AlterConfigOpType.DELETE)])
        a.incremental_alter_configs([undo])[undo].result(15)
    cfg = a.describe_configs([res])[res].result(15)["retention.bytes"]
    assert (cfg.value, cfg.source) == ("-1", ConfigSource.DEFAULT_CONFIG.value)
    a.delete_topics([topic])[topic].result(15)
