"""cleanup.policy=compact on a user topic: after housekeeping only the latest record per key
(plus the active segment) remains, and consumers read the latest value of every key."""
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from conftest import Broker, unique


def test_compacted_topic_keeps_latest_value_per_key(tmp_path):
    cfg = tmp_path / "riptide.toml"
    cfg.write_text('"log.retention.check.interval.ms" = 300\n')
    b = Broker(str(tmp_path / "data"), extra_args=["--shards", "1", "--no-pin", "--config", str(cfg)]).start()
    try:
        topic = unique("compact")
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        a.create_topics([NewTopic(topic, 1, 1, config={"cleanup.policy": "compact", "segment.bytes": "2000"})])[
            topic].result(15)
        res = ConfigResource(ConfigResource.Type.TOPIC, topic)
        assert a.describe_configs([res])[res].result(15)["cleanup.policy"].value == "compact"
        p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0})
        for round_ in range(20):
            for k in range(5):
                p.produce(topic, key=f"k{k}".encode(), value=f"{round_}".encode(), partition=0)
            p.flush(10)
        produced = 100
        time.sleep(1.5)  # several housekeeping passes
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "x", "enable.auto.commit": False})
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        assert hi == produced, "offsets never change under compaction"
        c.assign([TopicPartition(topic, 0, 0)])
        seen = []
        deadline = time.time() + 15
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                if seen and seen[-1][0] == hi - 1:
                    break
                continue
            assert m.error() is None, m.error()
            seen.append((m.offset(), m.key(), m.value()))
        c.close()
        latest = {}
        for off, k, v in seen:
            latest[k] = v
        assert latest == {f"k{k}".encode(): b"19" for k in range(5)}
        assert len(seen) < produced, f"nothing was compacted ({len(seen)} records read)"
        assert all(x[0] < y[0] for x, y in zip(seen, seen[1:]))
        assert "compacted" in b.read_log()
    finally:
        b.stop()
