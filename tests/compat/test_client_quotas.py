"""Client quotas (issue 19 item 4) as real clients meet them: a produce or consume byte rate set
with AlterClientQuotas slows a librdkafka producer and consumer down to it with
`throttle_time_ms` (reported through librdkafka's throttle callback), while a client id without
a quota in the same run is not slowed down. The quotas are set and read on the wire
(no client here has an API for them: server/tests/client_quotas.rs covers their checks).
The broker samples rates over 3 windows of 1 s (`quota.window.num`; Kafka's default 11 makes
any throttled run last more than 10 s)."""
import struct
import time

import pytest

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import wire
from conftest import IO_ARGS, Broker, unique

RATE = 40_000  # bytes/s
VALUE = b"q" * 1000
# 200 kB: 5 s of the quota. The rate is taken over at least 2 s (all samples but one), so about
# 80 kB goes through at once and the rest is throttled.
COUNT = 200


def alter_quota(broker, client_id, key, value):
    """AlterClientQuotas v1 for client-id `client_id`: sets `key` (value None removes it)."""
    entity = wire.uvarint(2) + wire.compact_string("client-id") + wire.compact_string(client_id) + wire.uvarint(0)
    op = (wire.compact_string(key) + struct.pack(">d", value or 0.0) + struct.pack(">?", value is None)
          + wire.uvarint(0))
    entry = entity + wire.uvarint(2) + op + wire.uvarint(0)
    body = wire.uvarint(2) + entry + b"\x00" + wire.uvarint(0)
    r = wire.call(broker.bootstrap, 49, 1, body, flexible=True)
    r.take(">i")  # throttle
    assert r.uvarint() == 2
    code = r.take(">h")
    assert code == 0, (code, r.compact_string())


def described(broker, client_id):
    """The quotas DescribeClientQuotas v1 reports for exactly client-id `client_id`."""
    component = wire.compact_string("client-id") + b"\x00" + wire.compact_string(client_id) + wire.uvarint(0)
    body = wire.uvarint(2) + component + b"\x01" + wire.uvarint(0)
    r = wire.call(broker.bootstrap, 48, 1, body, flexible=True)
    r.take(">i")
    assert r.take(">h") == 0
    r.compact_string()
    out = {}
    for _ in range(r.uvarint() - 1):
        for _ in range(r.uvarint() - 1):
            r.compact_string(), r.compact_string(), r.tags()
        for _ in range(r.uvarint() - 1):
            key = r.compact_string()
            out[key] = r.take(">d")
            r.tags()
        r.tags()
    return out


def produce(broker, topic, client_id):
    """Seconds to produce COUNT records, and the throttle times librdkafka reported."""
    throttles = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "client.id": client_id, "linger.ms": 5,
                  "batch.size": 20_000, "throttle_cb": lambda e: throttles.append(e.throttle_time)})
    started = time.monotonic()
    for _ in range(COUNT):
        p.produce(topic, VALUE)
        p.poll(0)
    assert p.flush(60) == 0
    return time.monotonic() - started, throttles


def consume(broker, topic, client_id):
    """Seconds to consume COUNT records, and the throttle times librdkafka reported."""
    throttles = []
    c = Consumer({"bootstrap.servers": broker.bootstrap, "client.id": client_id, "group.id": unique("g"),
                  "auto.offset.reset": "earliest", "fetch.max.bytes": 20_000, "max.partition.fetch.bytes": 20_000,
                  "message.max.bytes": 10_000, "receive.message.max.bytes": 30_000, "queued.max.messages.kbytes": 40,
                  "throttle_cb": lambda e: throttles.append(e.throttle_time)})
    c.assign([TopicPartition(topic, 0, 0)])  # no group join: only the fetches are timed
    started = time.monotonic()
    got = 0
    deadline = started + 60
    while got < COUNT and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    elapsed = time.monotonic() - started
    c.close()
    assert got == COUNT, f"consumed {got} of {COUNT}"
    return elapsed, throttles


@pytest.fixture
def broker(tmp_path):
    cfg = tmp_path / "quotas.toml"
    cfg.write_text('"quota.window.num" = 3\n"quota.window.size.seconds" = 1\n')
    b = Broker(str(tmp_path / "data"), extra_args=["--shards", "2", "--no-pin", "--config", str(cfg), *IO_ARGS])
    b.start()
    yield b
    b.stop()


def test_byte_rate_quotas_slow_real_clients_down(broker):
    topic = unique("quotas")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    slow, free = unique("slow"), unique("free")
    alter_quota(broker, slow, "producer_byte_rate", RATE)
    alter_quota(broker, slow, "consumer_byte_rate", RATE)
    assert described(broker, slow) == {"producer_byte_rate": RATE, "consumer_byte_rate": RATE}

    free_time, free_throttles = produce(broker, topic, free)
    slow_time, slow_throttles = produce(broker, topic, slow)
    assert not free_throttles
    assert slow_throttles and max(slow_throttles) > 0, "librdkafka was told to back off"
    assert slow_time > 1.5, f"throttled producer took {slow_time:.1f} s (unthrottled {free_time:.1f} s)"
    assert slow_time > 3 * free_time
    print(f"produce: throttled {slow_time:.2f} s, unthrottled {free_time:.2f} s")

    # The topic now holds twice COUNT: each consumer reads the first half.
    free_time, free_throttles = consume(broker, topic, free)
    slow_time, slow_throttles = consume(broker, topic, slow)
    assert not free_throttles
    assert slow_throttles and max(slow_throttles) > 0
    assert slow_time > 1.5, f"throttled consumer took {slow_time:.1f} s (unthrottled {free_time:.1f} s)"
    print(f"consume: throttled {slow_time:.2f} s, unthrottled {free_time:.2f} s")

    alter_quota(broker, slow, "producer_byte_rate", None)
    alter_quota(broker, slow, "consumer_byte_rate", None)
    assert described(broker, slow) == {}
