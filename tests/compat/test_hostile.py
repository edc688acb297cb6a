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
