"""scripts/cluster.sh, the README's local cluster, as a user runs it: start 3 nodes, every one
of them answers (not only the first), records produced through one node are consumed through
another, and `stop` ends every process."""
import json
import os
import subprocess

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import BINARY, ROOT, unique
from launch import loopback_host

SCRIPT = os.path.join(ROOT, "scripts", "cluster.sh")


def run(env, *args, timeout=240):
    out = subprocess.run(["bash", SCRIPT, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"cluster.sh {args} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out.stdout


def test_cluster_script_starts_three_answering_nodes_and_stops_them(tmp_path):
    host = loopback_host()
    env = dict(os.environ, RIPTIDE_BIN=BINARY, RIPTIDE_CLUSTER_DIR=str(tmp_path / "cluster"),
               RIPTIDE_CLUSTER_HOST=host)
    pids = []
    try:
        out = run(env, "3")
        assert "cluster of 3 node(s) up" in out, out
        pids = [int(open(tmp_path / "cluster" / f"node-{i}.pid").read()) for i in (1, 2, 3)]
        for i, pid in enumerate(pids, 1):
            os.kill(pid, 0)  # still running
            ready = json.load(open(tmp_path / "cluster" / f"node-{i}.ready.json"))
            assert ready["kafka"] == f"{host}:{9092 + 100 * i}"
            assert ready["rest"] == f"{host}:{9095 + 100 * i}"
            assert ready["metrics"] == f"{host}:{9094 + 100 * i}"
        bootstrap = ",".join(f"{host}:{9092 + 100 * i}" for i in (1, 2, 3))
        admin = AdminClient({"bootstrap.servers": bootstrap})
        assert sorted(admin.list_topics(timeout=20).brokers) == [1, 2, 3]
        topic = unique("script")
        admin.create_topics([NewTopic(topic, 3, 3)])[topic].result(30)
        p = Producer({"bootstrap.servers": f"{host}:9192", "acks": "all"})
        for i in range(30):
            p.produce(topic, key=str(i).encode(), value=f"v{i}".encode())
        assert p.flush(60) == 0
        c = Consumer({"bootstrap.servers": f"{host}:9392", "group.id": unique("g"),
                      "auto.offset.reset": "earliest"})
        c.subscribe([topic])
        got = set()
        for _ in range(300):
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got.add(m.value())
            if len(got) == 30:
                break
        c.close()
        assert got == {f"v{i}".encode() for i in range(30)}
        assert "stopped 3 node(s)" in run(env, "stop")
        for pid in pids:
            assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    finally:
        for pid in pids:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
