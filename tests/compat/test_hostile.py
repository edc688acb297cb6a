"""Hostile input against a running broker: the offending connection is closed or answered
with an error, the broker keeps serving everyone else."""
import socket
import struct

from confluent_kafka.admin import AdminClient

from conftest import unique


def still_serving(broker):
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    return md.brokers


def closed_after(broker, payload):
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
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
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
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
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
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
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=30)
    answered = {}

    def trickle():
        for b in frame:
            s.sendall(bytes([b]))
            time.sleep(0.15)
        answered["data"] = s.recv(4096)

    t = threading.Thread(target=trickle)
    t.start()
    t0 = time.time()
    assert still_serving(broker)  # served while the slow request is half sent
    assert time.time() - t0 < 1.5
    t.join(30)
    size, corr, err = struct.unpack(">iih", answered["data"][:10])
    assert corr == 99 and err == 0
    s.close()
