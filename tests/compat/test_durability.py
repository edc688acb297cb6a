"""Topics, configs and data survive a clean restart; kill -9 loses nothing acknowledged."""
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from conftest import unique


def produce_acked(broker, topic, n, start=0):
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 2})
    acked = []
    for i in range(start, start + n):
        p.produce(topic, value=str(i).encode(), partition=0,
                  on_delivery=lambda e, m: acked.append(int(m.value())) if e is None else None)
    p.flush(30)
    return acked


def read_all(broker, topic):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x", "enable.auto.commit": False})
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    deadline = time.time() + 30
    while len(out) < hi and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            out.append(int(m.value()))
    c.close()
    return out


def test_restart_keeps_topics_configs_and_data(fresh_broker):
    b = fresh_broker
    topic = unique("restart")
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(topic, 2, 1, config={"retention.ms": "-1"})])[topic].result(15)
    acked = produce_acked(b, topic, 500)
    assert len(acked) == 500
    assert b.restart() is not None
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    md = a.list_topics(topic, timeout=10)
    assert len(md.topics[topic].partitions) == 2
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    assert a.describe_configs([res])[res].result(15)["retention.ms"].value == "-1"
    assert read_all(b, topic) == list(range(500))
    assert "stopped cleanly" in b.read_log()


def test_kill9_loses_nothing_acknowledged(fresh_broker):
    b = fresh_broker
    topic = unique("kill")
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    acked = []
    for round_ in range(3):
        acked += produce_acked(b, topic, 300, start=round_ * 300)
        b.kill9()
        b.start()
    got = read_all(b, topic)
    assert got[:len(acked)] == acked
    assert got == sorted(got)
