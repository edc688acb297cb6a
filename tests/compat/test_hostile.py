"""Hostile input against a running broker: the offending connection is closed or answered
with an error, the broker keeps serving everyone else."""
import socket
import struct

from confluent_kafka.admin import AdminClient

from conftest import unique
from wire import record_batch, recv_frame


def still_serving(broker):
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    return md.brokers


def closed_after(broker, payload):
    s = socket.create_connection((broker.host, broker.port), timeout=5)
    s.sendall(payload)
    try:
        data = s.recv(4096)
    except (ConnectionResetError, socket.timeout):
        data = b""
    s.close()
    return data


def test_huge_and_negative_frame_sizes_close_the_connection(broker):
    assert closed_after(broker, struct.pack(">i", 2**31 - 1)) == b""
    assert closed_after(broker, struct.pack(">i", -5)) == b""
    assert still_serving(broker)


def test_unknown_api_and_garbage_close_the_connection(broker):
    body = struct.pack(">hhi", 999, 0, 1) + struct.pack(">h", -1)
    assert closed_after(broker, struct.pack(">i", len(body)) + body) == b""
    junk = bytes(range(256)) * 4
    closed_after(broker, struct.pack(">i", len(junk)) + junk)
    assert still_serving(broker)


def test_api_versions_unknown_version_answers_v0_with_error(broker):
    body = struct.pack(">hhi", 18, 99, 7) + struct.pack(">h", -1)
    data = closed_after(broker, struct.pack(">i", len(body)) + body)
    size, corr, err = struct.unpack(">iih", data[:10])
    assert corr == 7 and err == 35
    (count,) = struct.unpack(">i", data[10:14])
    keys = [struct.unpack(">hhh", data[14 + 6 * i:20 + 6 * i]) for i in range(count)]
    assert (18, 0, 4) in keys


def test_truncated_frame_then_close(broker):
    s = socket.create_connection((broker.host, broker.port), timeout=5)
    s.sendall(struct.pack(">i", 100) + b"\x00\x12")
    s.close()
    assert still_serving(broker)


def fetch_v4(corr, topic, max_bytes=1 << 20):
    t = topic.encode()
    body = struct.pack(">iiiib", -1, 100, 1, max_bytes, 0)
    body += struct.pack(">i", 1) + struct.pack(">h", len(t)) + t
    body += struct.pack(">i", 1) + struct.pack(">iqi", 0, 0, max_bytes)
    header = struct.pack(">hhi", 1, 4, corr) + struct.pack(">h", -1)
    return struct.pack(">i", len(header) + len(body)) + header + body


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def test_client_that_never_reads_costs_bounded_memory(broker):
    from confluent_kafka import Producer
    topic = unique("noread")
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for _ in range(400):
        p.produce(topic, b"x" * 10_000, partition=0)
    assert p.flush(30) == 0
    before = rss_mb(broker.proc.pid)
    s = socket.create_connection((broker.host, broker.port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    for i in range(1000):  # ~4 GB of answers requested, none read
        try:
            s.sendall(fetch_v4(i, topic))
        except (BlockingIOError, socket.timeout):
            break
    assert still_serving(broker)
    grown = rss_mb(broker.proc.pid) - before
    assert grown < 200, f"broker RSS grew {grown:.0f} MB"
    s.close()
    assert still_serving(broker)


def test_request_one_byte_at_a_time_does_not_block_others(broker):
    import threading
    import time
    body = struct.pack(">hhi", 18, 0, 99) + struct.pack(">h", -1)
    frame = struct.pack(">i", len(body)) + body
    s = socket.create_connection((broker.host, broker.port), timeout=30)
    answered = {}

    def trickle():
        for b in frame:
            s.sendall(bytes([b]))
            time.sleep(0.5)
        answered["data"] = s.recv(4096)

    t = threading.Thread(target=trickle)
    t.start()
    # Served while the slow request is still half sent (it takes 7 s to arrive): a check on
    # what happened first, not on how fast a loaded machine is.
    assert still_serving(broker)
    assert t.is_alive() and "data" not in answered, "another client waited for the slow request"
    t.join(30)
    size, corr, err = struct.unpack(">iih", answered["data"][:10])
    assert corr == 99 and err == 0
    s.close()


# ---------------------------------------------------------------------------------------------
# Issue 8 item 3: every case checks that the offending connection is answered with the right
# error or closed, that other connections keep being served, that broker memory stays bounded,
# and that acknowledged data is still there (the canary topic is consumed after each case).

import os
import random
import time

import pytest

CANARY_RECORDS = 200


def produce_v3(corr, topic, records, acks=-1):
    t = topic.encode()
    body = struct.pack(">hhi", -1, acks, 10_000)  # null transactional id, acks, timeout
    body += struct.pack(">i", 1) + struct.pack(">h", len(t)) + t
    body += struct.pack(">i", 1) + struct.pack(">i", 0) + struct.pack(">i", len(records)) + records
    header = struct.pack(">hhi", 0, 3, corr) + struct.pack(">h", -1)
    return struct.pack(">i", len(header) + len(body)) + header + body


def parse_produce_v3(data):
    """(error_code, base_offset) of the single partition in a Produce v3 response."""
    pos = 8  # size, correlation id
    (n_topics,) = struct.unpack_from(">i", data, pos)
    assert n_topics == 1
    (name_len,) = struct.unpack_from(">h", data, pos + 4)
    pos += 6 + name_len
    (n_parts,) = struct.unpack_from(">i", data, pos)
    assert n_parts == 1
    _, err, base = struct.unpack_from(">ihq", data, pos + 4)
    return err, base


def api_versions_v0(corr):
    body = struct.pack(">hhi", 18, 0, corr) + struct.pack(">h", -1)
    return struct.pack(">i", len(body)) + body


def is_closed(s, timeout=10):
    """True when the broker closes the connection (EOF or reset) within `timeout`."""
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def healthy_connection(broker):
    """A raw connection that has completed one ApiVersions round trip."""
    s = socket.create_connection((broker.host, broker.port), timeout=10)
    s.sendall(api_versions_v0(1))
    data = recv_frame(s)
    assert data and struct.unpack(">ih", data[4:10])[1] == 0
    return s


def consume_values(broker, topic, expected, timeout=30):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "hostile-check", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    deadline = time.time() + timeout
    while len(out) < expected and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            out.append(m.value())
    # Anything beyond `expected` would be data that should not be there.
    end = time.time() + 1
    while time.time() < end:
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            out.append(m.value())
    c.close()
    return out


def create_topic(broker, topic):
    from confluent_kafka.admin import NewTopic
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(15)


@pytest.fixture(scope="module")
def canary(broker):
    """A topic with acknowledged records (acks=all) written before the hostile cases."""
    from confluent_kafka import Producer
    topic = unique("canary")
    create_topic(broker, topic)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(CANARY_RECORDS):
        p.produce(topic, value=f"canary-{i}".encode(), partition=0)
    assert p.flush(30) == 0
    return topic


def assert_unharmed(broker, canary, rss_before_mb=None, rss_growth_mb_max=150):
    """The broker is alive, serves a new client, kept its memory and lost no acknowledged data."""
    assert broker.alive(), "broker died: " + broker.read_log()[-3000:]
    assert still_serving(broker)
    values = consume_values(broker, canary, CANARY_RECORDS)
    assert values == [f"canary-{i}".encode() for i in range(CANARY_RECORDS)]
    if rss_before_mb is not None:
        grown = rss_mb(broker.proc.pid) - rss_before_mb
        assert grown < rss_growth_mb_max, f"broker RSS grew {grown:.0f} MB"


def test_truncated_frames_close_only_that_connection(broker, canary):
    other = healthy_connection(broker)
    meta = struct.pack(">hhi", 3, 0, 5) + struct.pack(">h", -1) + struct.pack(">i", 0)
    frame = struct.pack(">i", len(meta)) + meta
    # Cut inside the size prefix, inside the header, and inside the body, then half-close:
    # the broker must drop the connection rather than wait forever or answer garbage.
    for cut in (2, 6, len(frame) - 2):
        s = socket.create_connection((broker.host, broker.port), timeout=10)
        s.sendall(frame[:cut])
        s.shutdown(socket.SHUT_WR)
        assert is_closed(s), f"connection cut at {cut} bytes was not closed"
        s.close()
    # A complete frame whose body ends in the middle of a field (size prefix consistent).
    short = struct.pack(">hhi", 3, 0, 6) + struct.pack(">h", -1) + b"\x00\x00"
    s = socket.create_connection((broker.host, broker.port), timeout=10)
    s.sendall(struct.pack(">i", len(short)) + short)
    assert is_closed(s)
    s.close()
    other.sendall(api_versions_v0(2))
    assert recv_frame(other), "an unrelated connection stopped being served"
    other.close()
    assert_unharmed(broker, canary)


def test_oversized_frames_close_without_allocating(broker, canary):
    before = rss_mb(broker.proc.pid)
    sockets = []
    for size in (100 * 1024 * 1024 + 1, 2**31 - 1):  # just over socket.request.max.bytes, and 2 GiB
        s = socket.create_connection((broker.host, broker.port), timeout=10)
        s.sendall(struct.pack(">i", size) + b"\x00" * 1024)
        sockets.append(s)
    for s in sockets:
        assert is_closed(s)
        s.close()
    # Legal (under the limit) but never completed: 50 connections each announcing 90 MB and
    # sending 64 KiB must not reserve 90 MB each.
    pending = []
    for _ in range(50):
        s = socket.create_connection((broker.host, broker.port), timeout=10)
        s.sendall(struct.pack(">i", 90 * 1024 * 1024) + b"\x00" * 65536)
        pending.append(s)
    time.sleep(0.5)
    grown = rss_mb(broker.proc.pid) - before
    for s in pending:
        s.close()
    assert grown < 200, f"RSS grew {grown:.0f} MB for 50 announced 90 MB frames"
    assert_unharmed(broker, canary, before)


def test_unknown_apis_and_versions_close_only_that_connection(broker, canary):
    other = healthy_connection(broker)
    cases = [
        (999, 0),    # no such API
        (-1, 0),     # negative key
        (57, 0),     # a real Kafka API riptide does not implement (UpdateFeatures)
        (3, 99),     # Metadata at a version nobody knows
        (0, 0),      # Produce below Kafka 4.0's minimum (v3)
        (1, -1),     # negative version
    ]
    for key, version in cases:
        body = struct.pack(">hhi", key, version, 9) + struct.pack(">h", -1)
        s = socket.create_connection((broker.host, broker.port), timeout=10)
        s.sendall(struct.pack(">i", len(body)) + body)
        assert is_closed(s), f"api {key} v{version} was not refused"
        s.close()
    other.sendall(api_versions_v0(3))
    assert recv_frame(other)
    other.close()
    assert_unharmed(broker, canary)


# APIs a random body is not sent to: those that change topics, partitions, groups or configs,
# and those that may legitimately wait for as long as the request says (Fetch long-poll,
# JoinGroup/SyncGroup rebalance timeouts), which a random timeout field would make hours.
MUTATING_OR_WAITING_APIS = {1, 11, 14, 19, 20, 33, 37, 42, 44, 47}


def test_random_bytes_and_random_bodies(broker, canary):
    seed = int(os.environ.get("RIPTIDE_HOSTILE_SEED", time.time_ns() % 2**32))
    print(f"RIPTIDE_HOSTILE_SEED={seed}")
    rng = random.Random(seed)
    before = rss_mb(broker.proc.pid)
    for i in range(150):
        s = socket.create_connection((broker.host, broker.port), timeout=10)
        junk = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 2048)))
        if i % 3 == 0:
            payload = junk  # no framing at all
        else:
            key, lo, hi = rng.choice(SUPPORTED_FOR_RANDOM)
            body = struct.pack(">hhi", key, rng.randint(lo, hi), i) + junk
            payload = struct.pack(">i", len(body)) + body
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert is_closed(s, timeout=15), f"seed {seed} case {i}: connection neither answered nor closed"
        s.close()
    assert_unharmed(broker, canary, before)


SUPPORTED_FOR_RANDOM = [(k, lo, hi) for k, lo, hi in [
    (0, 3, 11), (1, 4, 12), (2, 1, 9), (3, 0, 12), (18, 0, 4), (22, 0, 5), (32, 1, 4), (60, 0, 1),
    (10, 0, 6), (11, 0, 9), (14, 0, 5), (12, 0, 4), (13, 0, 5), (8, 2, 9), (9, 1, 9), (16, 0, 5),
    (15, 0, 6), (68, 0, 1), (69, 0, 1)] if k not in MUTATING_OR_WAITING_APIS]


def test_bad_crc_is_corrupt_message_and_writes_nothing(broker, canary):
    topic = unique("crc")
    create_topic(broker, topic)
    s = healthy_connection(broker)
    good = record_batch([b"good-0", b"good-1", b"good-2"])
    s.sendall(produce_v3(10, topic, good))
    assert parse_produce_v3(recv_frame(s)) == (0, 0)
    bad = bytearray(record_batch([b"bad-0", b"bad-1"]))
    bad[-3] ^= 0xFF  # flip a value byte: the CRC no longer matches
    s.sendall(produce_v3(11, topic, bytes(bad)))
    err, _ = parse_produce_v3(recv_frame(s))
    assert err == 2, f"expected CORRUPT_MESSAGE (2), got {err}"
    # A set with a good batch followed by a corrupt one is refused as a whole.
    s.sendall(produce_v3(12, topic, record_batch([b"mixed-ok"]) + bytes(bad)))
    err, _ = parse_produce_v3(recv_frame(s))
    assert err == 2, f"expected CORRUPT_MESSAGE (2) for a mixed set, got {err}"
    # The connection stays usable after an error answer.
    s.sendall(produce_v3(13, topic, record_batch([b"good-3"])))
    assert parse_produce_v3(recv_frame(s)) == (0, 3)
    s.close()
    assert consume_values(broker, topic, 4) == [b"good-0", b"good-1", b"good-2", b"good-3"]
    assert_unharmed(broker, canary)


def test_huge_array_count_in_body_is_refused_without_allocating(broker, canary):
    """A 14-byte Metadata request with a topic count of 2^31-1 once made the codec reserve
    154 GB and abort the broker (fixed in vendor/kafka-protocol, found by fuzzing)."""
    before = rss_mb(broker.proc.pid)
    other = healthy_connection(broker)
    bodies = [
        struct.pack(">hhi", 3, 0, 1) + struct.pack(">h", -1) + struct.pack(">i", 2**31 - 1),
        struct.pack(">hhi", 3, 4, 2) + struct.pack(">h", -1) + struct.pack(">i", 2**31 - 1),
        # Metadata v12 (flexible): compact array count 2^32-2 as an unsigned varint
        struct.pack(">hhi", 3, 12, 3) + struct.pack(">h", -1) + b"\x00" + b"\xff\xff\xff\xff\x0f",
        # Produce v3 with a topic count of 2^31-1
        struct.pack(">hhi", 0, 3, 4) + struct.pack(">h", -1) + struct.pack(">hhi", -1, 1, 1000)
        + struct.pack(">i", 2**31 - 1),
        # Fetch v4 with a partition count of 2^31-1 inside the first topic
        struct.pack(">hhi", 1, 4, 5) + struct.pack(">h", -1) + struct.pack(">iiiib", -1, 100, 1, 1 << 20, 0)
        + struct.pack(">i", 1) + struct.pack(">h", 1) + b"t" + struct.pack(">i", 2**31 - 1),
        # Produce v3 whose records field claims 2^31-1 bytes
        struct.pack(">hhi", 0, 3, 6) + struct.pack(">h", -1) + struct.pack(">hhi", -1, 1, 1000)
        + struct.pack(">i", 1) + struct.pack(">h", 1) + b"t" + struct.pack(">i", 1) + struct.pack(">i", 0)
        + struct.pack(">i", 2**31 - 1),
        # negative lengths: client id -5, then a topic-name length of -7
        struct.pack(">hhi", 3, 0, 7) + struct.pack(">h", -5),
        struct.pack(">hhi", 3, 0, 8) + struct.pack(">h", -1) + struct.pack(">i", 1) + struct.pack(">h", -7),
        # negative array count other than -1
        struct.pack(">hhi", 3, 1, 9) + struct.pack(">h", -1) + struct.pack(">i", -2),
    ]
    for body in bodies:
        for _ in range(3):  # repeated, so a leak or a big reservation would show in RSS
            s = socket.create_connection((broker.host, broker.port), timeout=10)
            s.sendall(struct.pack(">i", len(body)) + body)
            assert is_closed(s), f"request {body[:8].hex()} was answered instead of refused"
            s.close()
            assert broker.alive(), "broker died: " + broker.read_log()[-2000:]
    other.sendall(api_versions_v0(4))
    assert recv_frame(other)
    other.close()
    assert_unharmed(broker, canary, before, rss_growth_mb_max=100)


def connect_retrying(broker, timeout=10):
    """healthy_connection, retried while the broker still counts a just-closed connection."""
    deadline = time.time() + timeout
    while True:
        try:
            return healthy_connection(broker)
        except (AssertionError, OSError, struct.error):
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def test_max_connections_refuses_extra_connections_only(tmp_path):
    from conftest import IO_ARGS, Broker
    cfg = tmp_path / "riptide.toml"
    cfg.write_text('"max.connections" = 5\n')
    b = Broker(str(tmp_path / "data"), extra_args=["--shards", "2", "--no-pin", "--config", str(cfg), *IO_ARGS])
    b.start()
    try:
        # The start-up probe's connection is released asynchronously: retry until admitted.
        held = [connect_retrying(b) for _ in range(5)]
        extra = []
        for _ in range(3):
            s = socket.create_connection((b.host, b.port), timeout=10)
            extra.append(s)
            try:
                s.sendall(api_versions_v0(7))
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert is_closed(s, timeout=5), "a connection over max.connections was served"
        for s in extra:
            s.close()
        for i, s in enumerate(held):  # the five admitted connections keep working
            s.sendall(api_versions_v0(100 + i))
            assert recv_frame(s)
        held.pop().close()
        held.append(connect_retrying(b))  # a freed slot is reusable
        assert "max.connections" in b.read_log()
        for s in held:
            s.close()
        assert b.alive()
    finally:
        b.stop()
