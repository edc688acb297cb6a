"""kcat (librdkafka) against riptide: keys, headers, timestamps, offsets -o beginning/end/-N,
offsets for times with -Q."""
import subprocess
import time

from conftest import unique


def kcat(broker, *args, input=None, timeout=30):
    r = subprocess.run(["kcat", "-b", broker.bootstrap, *args], input=input, capture_output=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout.decode()


def create_topic(broker, topic, partitions=1):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(15)


def test_produce_consume_keys_headers_timestamps(broker):
    topic = unique("kcat-kh")
    create_topic(broker, topic)
    lines = "".join(f"k{i}:v{i}\n" for i in range(20))
    kcat(broker, "-P", "-t", topic, "-K:", "-H", "h1=x", "-H", "h2=y", "-p", "0", input=lines.encode())
    out = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k|%s|%h|%T|%p|%o\\n")
    rows = [l.split("|") for l in out.strip().splitlines()]
    assert len(rows) == 20
    now_ms = time.time() * 1000
    for i, (k, v, h, ts, p, o) in enumerate(rows):
        assert (k, v, p, int(o)) == (f"k{i}", f"v{i}", "0", i)
        assert h == "h1=x,h2=y"
        assert abs(int(ts) - now_ms) < 120_000


def test_offsets_beginning_end_and_relative(broker):
    topic = unique("kcat-off")
    create_topic(broker, topic)
    kcat(broker, "-P", "-t", topic, "-p", "0", input="".join(f"m{i}\n" for i in range(10)).encode())
    tail = kcat(broker, "-C", "-t", topic, "-p", "0", "-o", "-3", "-e", "-f", "%s\\n")
    assert tail.split() == ["m7", "m8", "m9"]
    end = kcat(broker, "-C", "-t", topic, "-p", "0", "-o", "end", "-e", "-f", "%s\\n")
    assert end.strip() == ""
    mid = kcat(broker, "-C", "-t", topic, "-p", "0", "-o", "4", "-c", "2", "-f", "%s\\n")
    assert mid.split() == ["m4", "m5"]


def test_offsets_for_times(broker):
    topic = unique("kcat-q")
    create_topic(broker, topic)
    t0 = int(time.time() * 1000)
    # Explicit CreateTime timestamps via the kcat message-format input is not available, so
    # produce two bursts separated in time and look up the boundary.
    kcat(broker, "-P", "-t", topic, "-p", "0", input=b"a\nb\nc\n")
    time.sleep(1.1)
    t1 = int(time.time() * 1000)
    kcat(broker, "-P", "-t", topic, "-p", "0", input=b"d\ne\n")
    out = kcat(broker, "-Q", "-t", f"{topic}:0:{t1}")
    assert "offset 3" in out, out
    out = kcat(broker, "-Q", "-t", f"{topic}:0:{t0 - 60000}")
    assert "offset 0" in out, out
    out = kcat(broker, "-Q", "-t", f"{topic}:0:{t1 + 3600_000}")
    assert "offset -1" in out, out


def test_metadata_listing(broker):
    topic = unique("kcat-l")
    create_topic(broker, topic, partitions=3)
    out = kcat(broker, "-L", "-t", topic)
    assert "3 partitions" in out, out
