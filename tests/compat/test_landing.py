"""Large one-partition produce requests have their record set received straight into the
memory of the partition's direct stage (a landing buffer the stage takes over), not copied
there: every byte arrives, in order, whether the landing was taken over or copied after all,
and a refused batch received that way leaves nothing behind."""
import random
import socket
import struct
import time
import urllib.request

import pytest

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import wire
from conftest import IO_ARGS, Broker, unique


def counters(broker):
    text = urllib.request.urlopen(broker.metrics_url, timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def landed(broker):
    c = counters(broker)
    return (c['riptide_produce_landed_bytes_total{outcome="adopted"}'],
            c['riptide_produce_landed_bytes_total{outcome="copied"}'])


def start_broker(tmp_path, landing=True):
    return Broker(str(tmp_path / "data"), extra_args=[
        "--shards", "2", "--no-pin", "--durability", "fsync", "--override", "log.io=direct",
        "--override", f"socket.receive.landing={'true' if landing else 'false'}",
        *IO_ARGS]).start()


def consume_all(bootstrap, topic, expect_count, partition=0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-" + topic,
                  "enable.auto.commit": False, "fetch.max.bytes": 50 << 20,
                  "max.partition.fetch.bytes": 4 << 20})
    c.assign([TopicPartition(topic, partition, 0)])
    got = []
    for _ in range(300):
        if len(got) >= expect_count:
            break
        for m in c.consume(1000, 0.5):
            assert m.error() is None, m.error()
            got.append((m.offset(), m.key(), m.value()))
    c.close()
    return got


@pytest.mark.parametrize("landing", [True, False])
def test_large_batches_land_in_the_stage_and_arrive_intact(tmp_path, landing):
    b = start_broker(tmp_path, landing)
    try:
        rng = random.Random(1808)
        topics = [unique(f"land{i}") for i in range(3)]
        sent = {t: [rng.randbytes(rng.randint(1000, 9000)) for _ in range(1500)] for t in topics}
        # One producer per topic: one connection each, so each sends one-partition requests
        # (some owned by the connection's shard, some by the other).
        producers = {t: Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 20,
                                  "batch.size": 1000000, "acks": "all",
                                  "compression.type": "none"}) for t in topics}
        for i in range(1500):
            for t in topics:
                producers[t].produce(t, sent[t][i], key=b"%d" % i, partition=0)
        for p in producers.values():
            assert p.flush(60) == 0
        for t in topics:
            got = consume_all(b.bootstrap, t, len(sent[t]))
            assert [o for o, _, _ in got] == list(range(len(sent[t])))
            assert [k for _, k, _ in got] == [b"%d" % i for i in range(len(sent[t]))]
            assert [v for _, _, v in got] == sent[t]
        # Some of the ~22 MB went in as large requests whose records were taken over (how
        # much depends on how the client batched; the wire test below counts exactly).
        adopted, copied = landed(b)
        if landing:
            assert adopted > 0, (adopted, copied)
        else:
            assert adopted == copied == 0, (adopted, copied)
    finally:
        b.stop()


def produce_request(topic, records, version=9, correlation=1):
    """A Produce request frame for one partition (0), acks=all."""
    cid = b"landing-test"
    flexible = version >= 9
    header = struct.pack(">hhih", 0, version, correlation, len(cid)) + cid
    if flexible:
        header += wire.uvarint(0)
        body = (wire.uvarint(0) + struct.pack(">hi", -1, 30000) + wire.uvarint(2)
                + wire.compact_string(topic) + wire.uvarint(2) + struct.pack(">i", 0)
                + wire.uvarint(len(records) + 1))
        tail = wire.uvarint(0) * 3
    else:
        body = (struct.pack(">h", -1) + struct.pack(">hi", -1, 30000) + struct.pack(">i", 1)
                + struct.pack(">h", len(topic)) + topic.encode() + struct.pack(">i", 1)
                + struct.pack(">i", 0) + struct.pack(">i", len(records)))
        tail = b""
    head = header + body
    size = len(head) + len(records) + len(tail)
    return struct.pack(">i", size) + head, records + tail


def produce_answer(frame, version):
    """(error code, base offset) of a one-partition Produce answer."""
    r = wire.Reader(frame, 8)
    flexible = version >= 9
    if flexible:
        r.tags()
        assert r.uvarint() == 2
        r.compact_string()
        assert r.uvarint() == 2
    else:
        assert r.take(">i") == 1
        r.pos += 2 + r.take(">h")
        assert r.take(">i") == 1
    assert r.take(">i") == 0
    return r.take(">h"), r.take(">q")


def values(n, seed):
    rng = random.Random(seed)
    return [rng.randbytes(2000) for _ in range(n)]


def test_a_refused_landed_batch_leaves_nothing_and_pipelined_ones_land_in_order(tmp_path):
    b = start_broker(tmp_path)
    try:
        topic = unique("landraw")
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        new = NewTopic(topic, num_partitions=1, config={"max.message.bytes": str(8 << 20)})
        for f in admin.create_topics([new]).values():
            f.result(30)
        host, port = b.bootstrap.rsplit(":", 1)
        expect = []
        with socket.create_connection((host, int(port)), timeout=30) as s:
            def send(records, version=9, correlation=1, pause=True):
                head, rest = produce_request(topic, records, version, correlation)
                s.sendall(head)
                if pause:
                    time.sleep(0.05)  # the broker reads the fields before the records arrive
                s.sendall(rest)

            pending = bytearray()

            def answer(version=9):
                # Pipelined answers may arrive in one read: one frame at a time off the front.
                while len(pending) < 4 or len(pending) < 4 + struct.unpack(">i", pending[:4])[0]:
                    chunk = s.recv(65536)
                    assert chunk, "the broker closed the connection"
                    pending.extend(chunk)
                size = 4 + struct.unpack(">i", pending[:4])[0]
                frame = bytes(pending[:size])
                del pending[:size]
                return produce_answer(frame, version)

            # The first one makes the partition's log direct and its append point known.
            for i, version in enumerate([9, 9, 3, 9]):
                vs = values(100, i)
                send(wire.record_batch(vs), version)
                assert answer(version) == (0, len(expect))
                expect += vs
            adopted_before, _ = landed(b)
            # A batch whose CRC does not check out: refused, nothing written.
            bad = bytearray(wire.record_batch(values(100, 99)))
            bad[-10] ^= 0xFF
            send(bytes(bad))
            code, _ = answer()
            assert code == 2, code  # CORRUPT_MESSAGE
            # Pipelined: five sent before any answer; each lands after the ones before it.
            batches = [values(100, 10 + i) for i in range(5)]
            for i, vs in enumerate(batches):
                send(wire.record_batch(vs), correlation=10 + i, pause=False)
            for vs in batches:
                assert answer() == (0, len(expect))
                expect += vs
            adopted, copied = landed(b)
            assert adopted - adopted_before >= 4 * 200_000, (adopted, adopted_before, copied)
            # A record set more than a read-ahead step (1 MiB) beyond what has arrived gets no
            # landing buffer until the rest is within a step: stored all the same.
            vs = values(1500, 77)
            send(wire.record_batch(vs))
            assert answer() == (0, len(expect))
            expect += vs
        got = consume_all(b.bootstrap, topic, len(expect))
        assert [o for o, _, _ in got] == list(range(len(expect)))
        assert [v for _, _, v in got] == expect
        # Across a kill (recovery reads what the stages wrote; everything answered was synced).
        b.kill9()
        b.start()
        got = consume_all(b.bootstrap, topic, len(expect))
        assert [v for _, _, v in got] == expect
    finally:
        b.stop()
