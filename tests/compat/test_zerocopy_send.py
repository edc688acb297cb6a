"""Fetch answers served from memory (a direct-mode log's stage and tail cache) go out by io_uring
zero-copy send when `socket.send.zerocopy` says so: every byte arrives, in order, and the
metrics count what went out zero-copy. `auto` leaves loopback peers (the kernel would copy
anyway) on ordinary sends; the epoll fallback has no zero-copy send at all."""
import random
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import IO_ARGS, Broker, unique


def counters(broker):
    text = urllib.request.urlopen(broker.metrics_url, timeout=5).read().decode()
    return {l.split()[0]: float(l.split()[1]) for l in text.splitlines() if l and not l.startswith("#")}


@pytest.mark.parametrize("mode", ["on", "auto", "off"])
def test_memory_served_fetches_arrive_intact(tmp_path, mode):
    b = Broker(str(tmp_path / "data"), extra_args=[
        "--shards", "2", "--no-pin", "--durability", "fsync", "--override", "log.io=direct",
        "--override", f"socket.send.zerocopy={mode}", *IO_ARGS]).start()
    try:
        topic = unique("zc")
        rng = random.Random(18)
        sent = [rng.randbytes(rng.randint(100, 4000)) for _ in range(3000)]  # ~6 MB
        p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5, "batch.size": 1000000,
                      "acks": "all"})
        for i, v in enumerate(sent):
            p.produce(topic, v, key=b"%d" % i, partition=0)
        assert p.flush(30) == 0

        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "unused-" + topic,
                      "enable.auto.commit": False, "fetch.max.bytes": 50 << 20,
                      "max.partition.fetch.bytes": 4 << 20})
        c.assign([TopicPartition(topic, 0, 0)])
        got = []
        for _ in range(200):
            if len(got) >= len(sent):
                break
            for m in c.consume(1000, 0.5):
                assert m.error() is None, m.error()
                assert m.key() == b"%d" % len(got)
                got.append(m.value())
        c.close()
        assert len(got) == len(sent)
        assert got == sent

        values = counters(b)
        zero_copy = values["riptide_zerocopy_bytes_out_total"]
        if mode == "on" and not IO_ARGS:
            # Most of the 6 MB leaves in large memory-served ranges.
            assert zero_copy > sum(map(len, sent)) / 2, values
            assert zero_copy <= values["riptide_bytes_out_total"]
        else:
            assert zero_copy == 0, values
    finally:
        b.stop()
