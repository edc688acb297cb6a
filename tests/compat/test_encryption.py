"""Encryption at rest with a real client: an encrypted topic's segment files hold no
plaintext while consumers read the records back intact; keys rotate without rewriting old
segments; kill -9 recovery and retention work on sealed batches; a wrong or missing key stops
the broker at start instead of serving garbage."""
import glob
import os
import subprocess
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from conftest import IO_ARGS, Broker, unique
from launch import BINARY

MARKER = b"CONFIDENTIAL-PAYLOAD"


def write_keys(path, keys):
    with open(path, "w") as f:
        for kid in keys:
            f.write(f"{kid}={os.urandom(32).hex()}\n")
    os.chmod(path, 0o600)


def start(data_dir, key_file, key_id=None):
    args = ["--shards", "2", "--no-pin", *IO_ARGS, "--override", f"encryption.key.file={key_file}",
            "--override", "log.retention.check.interval.ms=1000"]
    if key_id:
        args += ["--override", f"encryption.key.id={key_id}"]
    return Broker(data_dir, extra_args=args).start()


def produce(b, topic, n, start=0, **extra):
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5, **extra})
    acked = []
    for i in range(start, start + n):
        p.produce(topic, key=f"k{i % 7}".encode(), value=MARKER + b"-%d" % i, headers=[("h", b"v%d" % i)],
                  partition=0, on_delivery=lambda e, m: acked.append(m.offset()) if e is None else None)
    p.flush(30)
    assert len(acked) == n
    return acked


def consume(b, topic):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("g"), "enable.auto.commit": False})
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    c.assign([TopicPartition(topic, 0, lo)])
    out = []
    deadline = time.time() + 30
    while len(out) < hi - lo and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            out.append((m.offset(), m.key(), m.value(), m.headers()))
        elif m is not None:
            raise AssertionError(f"consume error: {m.error()}")
    c.close()
    return lo, out


def segment_bytes(data_dir, topic):
    data = b""
    for path in sorted(glob.glob(os.path.join(data_dir, f"{topic}-0", "*.log"))):
        with open(path, "rb") as f:
            data += f.read()
    return data


def create(b, topic, **config):
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(15)


def test_segments_hold_no_plaintext_and_consumers_read_it_all(tmp_path):
    keys = tmp_path / "keys"
    write_keys(keys, ["k1"])
    b = start(str(tmp_path / "data"), keys)
    try:
        enc, clear = unique("enc"), unique("clear")
        create(b, enc, **{"encryption.at.rest": "true"})
        create(b, clear)
        produce(b, enc, 200)
        produce(b, clear, 10)
        lo, got = consume(b, enc)
        assert [o for o, *_ in got] == list(range(200))
        assert got[5][1:] == (b"k5", MARKER + b"-5", [("h", b"v5")])
        on_disk = segment_bytes(b.data_dir, enc)
        assert len(on_disk) > 200 * len(MARKER)
        assert MARKER not in on_disk
        assert MARKER in segment_bytes(b.data_dir, clear), "the control topic is stored in the clear"
        # Once on, encryption stays on (its sealed batches need it).
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        off = ConfigResource(ConfigResource.Type.TOPIC, enc, set_config={"encryption.at.rest": "false"})
        try:
            a.alter_configs([off])[off].result(15)
            raise AssertionError("turning encryption off was accepted")
        except Exception as e:  # noqa: BLE001 - the client raises KafkaException
            assert "cannot be turned off" in str(e)
        unknown = ConfigResource(ConfigResource.Type.TOPIC, clear, set_config={"encryption.at.rest": "nokey"})
        try:
            a.alter_configs([unknown])[unknown].result(15)
            raise AssertionError("an unknown key id was accepted")
        except Exception as e:  # noqa: BLE001
            assert "not in the keyring" in str(e)
    finally:
        b.stop()


def test_rotation_kill9_recovery_and_retention(tmp_path):
    keys = tmp_path / "keys"
    write_keys(keys, ["k1", "k2"])
    data = str(tmp_path / "data")
    b = start(data, keys, key_id="k1")
    topic = unique("rot")
    create(b, topic, **{"encryption.at.rest": "true", "retention.ms": "-1"})
    produce(b, topic, 100)
    b.stop()
    # Rotate: new batches use k2, old ones still open with k1.
    b = start(data, keys, key_id="k2")
    try:
        produce(b, topic, 100, start=100)
        _, got = consume(b, topic)
        assert [int(v.split(b"-")[-1]) for _, _, v, _ in got] == list(range(200))
        on_disk = segment_bytes(data, topic)
        assert b"k1" in on_disk and b"k2" in on_disk, "each batch names its key"
        assert MARKER not in on_disk
        # kill -9 and recover: every acknowledged record is back.
        produce(b, topic, 50, start=200)
        b.kill9()
        b.start()
        _, got = consume(b, topic)
        assert len(got) == 250
        # Retention deletes whole sealed segments.
        small = unique("ret")
        create(b, small, **{"encryption.at.rest": "k1", "segment.bytes": "16384", "retention.bytes": "32768"})
        produce(b, small, 2000, **{"batch.size": 2048})
        deadline = time.time() + 60
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("g")})
        lo = 0
        while time.time() < deadline:
            lo, hi = c.get_watermark_offsets(TopicPartition(small, 0), timeout=10)
            if lo > 0:
                break
            time.sleep(1)
        c.close()
        assert lo > 0, "retention never deleted a sealed segment"
        lo2, got = consume(b, small)
        assert got and got[0][0] == lo2 and got[-1][0] == 1999
    finally:
        b.stop()


def test_wrong_or_missing_key_stops_the_start(tmp_path):
    keys = tmp_path / "keys"
    write_keys(keys, ["k1"])
    data = str(tmp_path / "data")
    b = start(data, keys)
    topic = unique("wk")
    create(b, topic, **{"encryption.at.rest": "true"})
    produce(b, topic, 10)
    b.stop()
    write_keys(keys, ["k1"])  # same id, other bytes
    for extra in (["--override", f"encryption.key.file={keys}"], []):
        r = subprocess.run([BINARY, "serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--metrics-listen", "off",
                            "--rest-listen", "off", "--shards", "1", "--no-pin", *extra],
                           capture_output=True, timeout=60)
        assert r.returncode != 0
        err = r.stderr.decode() + r.stdout.decode()
        assert "encryption at rest" in err, err[-2000:]
        assert ("does not open" in err) if extra else ("no keys are loaded" in err), err[-2000:]


def test_compaction_opens_and_reseals(tmp_path):
    """cleanup.policy=compact on an encrypted topic: compaction opens the sealed batches to
    read their keys, keeps the latest value per key, and what it rewrites is sealed again."""
    keys = tmp_path / "keys"
    write_keys(keys, ["k1"])
    args = ["--shards", "1", "--no-pin", *IO_ARGS, "--override", f"encryption.key.file={keys}",
            "--override", "log.retention.check.interval.ms=300"]
    b = Broker(str(tmp_path / "data"), extra_args=args).start()
    try:
        topic = unique("enc-compact")
        create(b, topic, **{"cleanup.policy": "compact", "segment.bytes": "2000", "encryption.at.rest": "true"})
        p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0})
        for round_ in range(20):
            for k in range(5):
                p.produce(topic, key=f"k{k}".encode(), value=MARKER + f"-{round_}".encode(), partition=0)
            p.flush(10)
        deadline = time.time() + 30
        while "compacted" not in b.read_log() and time.time() < deadline:
            time.sleep(0.3)
        assert "compacted" in b.read_log()
        lo, seen = consume(b, topic)
        latest = {k: v for _, k, v, _ in seen}
        assert latest == {f"k{k}".encode(): MARKER + b"-19" for k in range(5)}
        assert len(seen) < 100, f"nothing was compacted ({len(seen)} records read)"
        assert MARKER not in segment_bytes(b.data_dir, topic), "rewritten batches are sealed again"
    finally:
        b.stop()
