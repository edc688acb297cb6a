"""cleanup.policy=compact on a user topic: after housekeeping only the latest record per key
(plus the active segment) remains, and consumers read the latest value of every key."""
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

import pytest

from conftest import Broker, unique


@pytest.mark.parametrize("compression", ["none", "zstd", "snappy"])
def test_compacted_topic_keeps_latest_value_per_key(tmp_path, compression):
    """Compressed batches are cleaned too (read decompressed, kept ones compressed again)."""
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
        p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0, "compression.type": compression})
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


def test_transactions_on_a_compacted_topic_and_its_offsets(tmp_path):
    """Issue 17: the cleaner on transactions. Committed records are compacted like any, aborted
    ones go whole (also from read_uncommitted), and __consumer_offsets, where every
    send_offsets_to_transaction writes a transactional batch, is compacted too: the group's
    offset survives the cleaning and a restart."""
    cfg = tmp_path / "riptide.toml"
    cfg.write_text('"log.retention.check.interval.ms" = 300\n"offsets.topic.segment.bytes" = 2000\n')
    b = Broker(str(tmp_path / "data"), extra_args=["--shards", "1", "--no-pin", "--config", str(cfg)]).start()
    try:
        topic, group = unique("compact-txn"), unique("compact-txn-group")
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        a.create_topics([NewTopic(topic, 1, 1, config={
            "cleanup.policy": "compact", "segment.bytes": "2000", "delete.retention.ms": "0"})])[topic].result(15)
        p = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": unique("tid"), "linger.ms": 5})
        p.init_transactions(30)
        meta = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group})
        rounds, last_committed = 30, None
        for r in range(rounds):
            p.begin_transaction()
            for k in range(5):
                p.produce(topic, key=f"k{k}".encode(), value=f"{r}".encode(), partition=0)
            p.send_offsets_to_transaction([TopicPartition(topic, 0, r + 1)], meta.consumer_group_metadata(), 30)
            if r % 3 == 2:
                p.flush(30)
                p.abort_transaction(30)
            else:
                p.commit_transaction(30)
                last_committed = r
        meta.close()
        produced = rounds * 6  # five records and a marker per transaction
        time.sleep(2)  # several housekeeping passes

        def read(isolation):
            c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("r"), "enable.auto.commit": False,
                          "isolation.level": isolation})
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
            assert hi == produced, "offsets never change under compaction"
            c.assign([TopicPartition(topic, 0, 0)])
            seen, deadline, idle = [], time.time() + 20, time.time()
            while time.time() < deadline and time.time() - idle < 2:
                m = c.poll(0.3)
                if m is None:
                    continue
                assert m.error() is None, m.error()
                seen.append((m.offset(), m.key(), m.value()))
                idle = time.time()
            c.close()
            return seen

        aborted = {f"{r}".encode() for r in range(rounds) if r % 3 == 2}
        seen = read("read_committed")
        latest = {k: v for (_, k, v) in seen}
        assert latest == {f"k{k}".encode(): f"{last_committed}".encode() for k in range(5)}
        assert not [s for s in seen if s[2] in aborted]
        assert len(seen) < rounds * 5 * 2 // 3, f"nothing was compacted ({len(seen)})"
        # The cleaner removed aborted records from the cleaned segments: what read_uncommitted
        # still sees of them is in the tail, not yet cleaned (the newest segments).
        left = [s for s in read("read_uncommitted") if s[2] in aborted]
        assert all(s[0] >= produced // 2 for s in left), f"aborted records are gone: {left}"
        cleaned = [line for line in b.read_log().splitlines() if "compacted" in line]
        assert any("__consumer_offsets" in line for line in cleaned), "the offsets topic is compacted"
        assert any(topic in line for line in cleaned)
        b.restart()
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group})
        assert c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == last_committed + 1
        c.close()
    finally:
        b.stop()
