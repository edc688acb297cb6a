"""The epoll fallback (`--io poll`) behaves like io_uring: large produce/consume (zero-copy
fetch path), long-poll fetch, restart."""
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import Broker, unique


@pytest.mark.parametrize("io", ["poll", "uring"])
def test_large_round_trip_on_each_driver(tmp_path, io):
    b = Broker(str(tmp_path / "data"), extra_args=["--shards", "2", "--no-pin", "--io", io]).start()
    try:
        assert ("Poll" if io == "poll" else "IoUring") in b.read_log()
        topic = unique(f"fb-{io}")
        p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
        payloads = [bytes([i % 256]) * 3000 for i in range(3000)]  # ~9 MB, fetches of MBs
        for v in payloads:
            p.produce(topic, v, partition=0)
        assert p.flush(30) == 0
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "x", "enable.auto.commit": False,
                      "fetch.wait.max.ms": 200})
        c.assign([TopicPartition(topic, 0, 0)])
        got = []
        deadline = time.time() + 30
        while len(got) < len(payloads) and time.time() < deadline:
            for m in c.consume(1000, 0.5):
                assert m.error() is None, m.error()
                got.append(m.value())
        assert got == payloads
        # Long poll: a fetch waiting at the end is answered as soon as new data arrives.
        t0 = time.time()
        p.produce(topic, b"late", partition=0)
        p.flush(10)
        m = None
        while m is None and time.time() - t0 < 10:
            m = c.poll(0.5)
        assert m is not None and m.value() == b"late"
        c.close()
    finally:
        b.stop()
