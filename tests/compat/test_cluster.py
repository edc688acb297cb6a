"""Cluster part 1 on real processes: three combined nodes on loopback form a metadata quorum;
clients bootstrapped from any node produce to and consume from partitions led by all three
(kcat, confluent-kafka, kafkajs); the active controller is killed and topic creation goes on;
a killed broker's partitions are reported offline; a full restart keeps the metadata."""
import json
import shutil
import os
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster
from conftest import ROOT, unique

# Short sessions so that fencing shows within the test's patience.
FAST = ["--override", "broker.session.timeout.ms=3000", "--override", "broker.heartbeat.interval.ms=500"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("cluster")), 3, FAST).start()
    yield c
    c.stop()


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def create(bootstrap, name, partitions, timeout=30):
    a = admin(bootstrap)  # kept alive until the result is in: the futures die with their client
    fs = a.create_topics([NewTopic(name, partitions, 1)], operation_timeout=timeout)
    fs[name].result(timeout)


def leaders(bootstrap, topic):
    md = admin(bootstrap).list_topics(topic, timeout=10)
    return {p.id: p.leader for p in md.topics[topic].partitions.values()}


def wait_for(pred, timeout=30, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(0.25)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")


def consume_all(bootstrap, topic, n, group, timeout=60):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    deadline = time.time() + timeout
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append((m.partition(), m.key(), m.value()))
    c.close()
    return got


def test_brokers_and_placement_are_seen_from_every_node(cluster):
    for n in cluster.nodes:
        md = wait_for(lambda: (lambda m: m if len(m.brokers) == 3 else None)(admin(n.bootstrap).list_topics(timeout=10)),
                      what=f"3 brokers seen from node {n.id}")
        assert {b.id for b in md.brokers.values()} == {1, 2, 3}
    topic = unique("spread")
    create(cluster.node(1).bootstrap, topic, 6)
    by_leader = {}
    for p, l in leaders(cluster.node(2).bootstrap, topic).items():
        by_leader.setdefault(l, []).append(p)
    assert sorted(len(v) for v in by_leader.values()) == [2, 2, 2], by_leader
    # A replication factor above the broker count is refused.
    a = admin(cluster.bootstrap)
    fs = a.create_topics([NewTopic(unique("rf4"), 1, 4)])
    with pytest.raises(Exception) as e:
        list(fs.values())[0].result(30)
    assert "REPLICATION_FACTOR" in str(e.value).upper()


def test_confluent_and_kcat_across_all_brokers(cluster):
    topic = unique("clients")
    create(cluster.node(3).bootstrap, topic, 6)
    # Bootstrapped from one node only: the client finds every partition's leader itself.
    p = Producer({"bootstrap.servers": cluster.node(2).bootstrap, "enable.idempotence": True})
    for i in range(120):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % 6)
    assert p.flush(30) == 0
    got = consume_all(cluster.node(3).bootstrap, topic, 120, unique("g"))
    assert sorted(v for _, _, v in got) == sorted(f"v{i}".encode() for i in range(120))
    assert {part for part, _, _ in got} == set(range(6))
    # kcat: metadata lists the three brokers; produce and consume through node 1.
    md = json.loads(subprocess.run(["kcat", "-b", cluster.node(1).bootstrap, "-L", "-J", "-t", topic],
                                   capture_output=True, text=True, timeout=30, check=True).stdout)
    assert sorted(b["id"] for b in md["brokers"]) == [1, 2, 3]
    subprocess.run(["kcat", "-b", cluster.node(1).bootstrap, "-P", "-t", topic, "-K:"],
                   input="".join(f"x{i}:kc{i}\n" for i in range(30)), text=True, timeout=30, check=True)
    out = subprocess.run(["kcat", "-b", cluster.node(1).bootstrap, "-C", "-t", topic, "-o", "beginning", "-e",
                          "-f", "%s\n"], capture_output=True, text=True, timeout=60, check=True).stdout
    assert sum(1 for line in out.splitlines() if line.startswith("kc")) == 30


KAFKAJS = r"""
const { Kafka, logLevel } = require('kafkajs')
const [bootstrap, topic, n] = [process.argv[2], process.argv[3], parseInt(process.argv[4])]
const kafka = new Kafka({ clientId: 'cluster-test', brokers: [bootstrap], logLevel: logLevel.NOTHING })
;(async () => {
  const producer = kafka.producer()
  await producer.connect()
  const partitions = (await kafka.admin().fetchTopicMetadata({ topics: [topic] })).topics[0].partitions.length
  for (let i = 0; i < n; i++) await producer.send({ topic, messages: [{ key: `j${i}`, value: `js${i}`, partition: i % partitions }] })
  await producer.disconnect()
  const consumer = kafka.consumer({ groupId: `g-${topic}` })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const seen = new Set()
  await new Promise((resolve) => {
    consumer.run({ eachMessage: async ({ partition, message }) => {
      seen.add(partition + ':' + message.value.toString())
      if (seen.size >= n) resolve()
    } })
  })
  await consumer.disconnect()
  console.log(JSON.stringify({ seen: seen.size, partitions: [...new Set([...seen].map(s => s.split(':')[0]))].length }))
  process.exit(0)
})().catch((e) => { console.error(e); process.exit(1) })
"""


def test_kafkajs_across_all_brokers(cluster, tmp_path):
    topic = unique("kafkajs")
    create(cluster.node(1).bootstrap, topic, 3)
    script = tmp_path / "cluster_kafkajs.js"
    script.write_text(KAFKAJS)
    env = dict(os.environ, NODE_PATH=os.path.join(ROOT, "tests", "compat", "matrix", "node_modules"))
    out = subprocess.run(["node", str(script), cluster.node(3).bootstrap, topic, "30"], capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"seen": 30, "partitions": 3}


def test_partitions_added_and_topic_deleted_cluster_wide(cluster):
    from confluent_kafka.admin import NewPartitions
    topic = unique("lifecycle")
    create(cluster.node(1).bootstrap, topic, 3)
    a = admin(cluster.node(2).bootstrap)
    a.create_partitions([NewPartitions(topic, 6)])[topic].result(30)
    wait_for(lambda: len(leaders(cluster.node(3).bootstrap, topic)) == 6 or None, what="6 partitions seen on node 3")
    assert set(leaders(cluster.node(3).bootstrap, topic).values()) == {1, 2, 3}
    p = Producer({"bootstrap.servers": cluster.node(1).bootstrap})
    for i in range(12):
        p.produce(topic, value=b"x", partition=i % 6)
    assert p.flush(30) == 0
    dirs = [os.path.join(n.data_dir, f"{topic}-{i}") for n in cluster.nodes for i in range(6)]
    assert sum(os.path.isdir(d) for d in dirs) == 6, "each partition's log lives on its one replica"
    a.delete_topics([topic])[topic].result(30)
    wait_for(lambda: all(topic not in admin(n.bootstrap).list_topics(timeout=10).topics for n in cluster.nodes) or None,
             what="topic gone from every node")
    wait_for(lambda: not any(os.path.isdir(d) for d in dirs) or None, what="logs deleted on every node")


def test_broker_only_node_joins_and_shuts_down_in_a_controlled_way(cluster, tmp_path):
    from launch import BINARY, Process, loopback_host
    voters = cluster.nodes[0].voters
    node = Process(str(tmp_path / "node-9.ready.json"), str(tmp_path / "node-9.log")).spawn([
        BINARY, "serve", "--data-dir", str(tmp_path / "node-9"), "--node-id", "9", "--metrics-listen", "off",
        "--rest-listen", "off", "--listen", f"{loopback_host()}:0", "--shards", "1", "--no-pin",
        "--override", "process.roles=broker", "--override", f"controller.quorum.voters={voters}",
    ])
    proc = node.proc
    try:
        bootstrap = node.wait(60, "broker 9")["kafka"]
        wait_for(lambda: 9 in admin(cluster.node(1).bootstrap).list_topics(timeout=10).brokers or None,
                 timeout=30, what="broker 9 registered and unfenced")
        topic = unique("with-9")
        create(bootstrap, topic, 8)
        theirs = [p for p, l in leaders(cluster.node(1).bootstrap, topic).items() if l == 9]
        assert theirs, "the new broker takes its share of new partitions"
        p = Producer({"bootstrap.servers": bootstrap})
        for i in range(16):
            p.produce(topic, value=b"y", partition=i % 8)
        assert p.flush(30) == 0
        # SIGTERM: controlled shutdown fences it at once, no session timeout to wait for: the
        # controller confirmed it (said in its log) and its partitions are offline right away.
        proc.send_signal(subprocess.signal.SIGTERM)
        assert proc.wait(30) == 0
        log = open(tmp_path / "node-9.log").read()
        assert "controlled shutdown: broker 9 leads no partition" in log, log[-3000:]
        assert all(leaders(cluster.node(2).bootstrap, topic)[p] == -1 for p in theirs)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_controller_kill_then_topics_are_still_created(cluster):
    spread = unique("spread-kill")
    create(cluster.node(1).bootstrap, spread, 6)
    active = cluster.active_controller()
    assert active.id in leaders(cluster.node(1).bootstrap, spread).values()
    active.kill9()
    try:
        survivors = [n for n in cluster.nodes if n.alive()]
        new_active = cluster.active_controller(timeout=30)
        assert new_active.id != active.id
        # The new controller fences the dead node once its session runs out.
        wait_for(lambda: active.id not in admin(survivors[0].bootstrap).list_topics(timeout=10).brokers or None,
                 timeout=30, what=f"node {active.id} fenced")
        topic = unique("after-kill")
        wait_for(lambda: create(survivors[0].bootstrap, topic, 2) or True, timeout=30, what="topic creation")
        assert set(leaders(survivors[1].bootstrap, topic).values()) <= {n.id for n in survivors}
    finally:
        active.spawn().wait_listening()
    # Back: it leads its partitions again.
    wait_for(lambda: active.id in leaders(active.bootstrap, spread).values() or None, timeout=30,
             what=f"node {active.id} leading again")


def test_killed_broker_partitions_are_offline_not_served(cluster):
    topic = unique("offline")
    create(cluster.node(1).bootstrap, topic, 6)
    victim = next(n for n in cluster.nodes if n.id != cluster.active_controller().id)
    theirs = [p for p, l in leaders(cluster.node(1).bootstrap, topic).items() if l == victim.id]
    assert theirs
    victim.kill9()
    try:
        other = next(n for n in cluster.nodes if n.alive())
        wait_for(lambda: all(leaders(other.bootstrap, topic)[p] == -1 for p in theirs) or None, timeout=30,
                 what="the killed broker's partitions reported without a leader")
        md = admin(other.bootstrap).list_topics(topic, timeout=10)
        assert victim.id not in md.brokers
    finally:
        victim.spawn().wait_listening()
    wait_for(lambda: all(leaders(victim.bootstrap, topic)[p] == victim.id for p in theirs) or None, timeout=30,
             what="leaders back after restart")


def snapshot(bootstrap):
    md = admin(bootstrap).list_topics(timeout=10)
    return {t: sorted((p.id, tuple(p.replicas)) for p in m.partitions.values())
            for t, m in md.topics.items()}


def test_full_restart_keeps_the_metadata(cluster):
    topic = unique("restart")
    create(cluster.node(2).bootstrap, topic, 4)
    p = Producer({"bootstrap.servers": cluster.bootstrap})
    for i in range(40):
        p.produce(topic, value=f"r{i}".encode(), partition=i % 4)
    assert p.flush(30) == 0
    before = snapshot(cluster.node(1).bootstrap)
    cluster.stop()
    cluster.start()
    after = wait_for(lambda: (lambda s: s if s == before else None)(snapshot(cluster.node(3).bootstrap)), timeout=30,
                     what="the same metadata after a full restart")
    assert after[topic] == before[topic]
    wait_for(lambda: all(l > 0 for l in leaders(cluster.node(1).bootstrap, topic).values()) or None, timeout=30,
             what="every partition led again")
    got = consume_all(cluster.node(1).bootstrap, topic, 40, unique("g"))
    assert len(got) == 40


def cli(*args, timeout=90):
    from conftest import BINARY
    out = subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_status_and_controllers_added_and_removed_online(cluster, tmp_path):
    from launch import BINARY, CONTROLLER_PORT, Process, loopback_host
    status = json.loads(cli("cluster", "-b", cluster.node(1).bootstrap, "status", "--output", "json"))
    states = {b["id"]: b["state"] for b in status["brokers"]}
    assert [states[i] for i in (1, 2, 3)] == ["live"] * 3
    # A broker that went away stays registered, fenced (as in Kafka until it is unregistered).
    assert all(s == "fenced" for i, s in states.items() if i not in (1, 2, 3))
    assert sorted(c["id"] for c in status["controllers"]) == [1, 2, 3]
    assert sum(1 for c in status["controllers"] if c["active"]) == 1
    assert status["metadata_offset"] > 0
    # A fourth, controller-only node joins through the bootstrap servers and is made a voter.
    bootstrap = ",".join(f"{n.host}:{n.controller_port}" for n in cluster.nodes)
    controller = f"{loopback_host()}:{CONTROLLER_PORT}"
    node = Process(str(tmp_path / "node-4.ready.json"), str(tmp_path / "node-4.log")).spawn([
        BINARY, "serve", "--data-dir", str(tmp_path / "node-4"), "--node-id", "4", "--metrics-listen", "off",
        "--rest-listen", "off", "--override", "process.roles=controller",
        "--override", f"controller.quorum.bootstrap.servers={bootstrap}",
        "--override", f"listeners=CONTROLLER://{controller}",
    ])
    proc = node.proc
    try:
        assert node.wait(60, "controller 4")["controller"] == controller
        cli("cluster", "-b", cluster.node(2).bootstrap, "add-controller", "4", controller)
        status = json.loads(cli("cluster", "-b", cluster.node(3).bootstrap, "status", "--output", "json"))
        assert sorted(c["id"] for c in status["controllers"]) == [1, 2, 3, 4]
        create(cluster.node(1).bootstrap, unique("four-voters"), 1)
        cli("cluster", "-b", cluster.node(2).bootstrap, "remove-controller", "4")
        status = json.loads(cli("cluster", "-b", cluster.node(1).bootstrap, "status", "--output", "json"))
        assert sorted(c["id"] for c in status["controllers"]) == [1, 2, 3]
        create(cluster.node(1).bootstrap, unique("three-voters"), 1)
    finally:
        proc.terminate()
        proc.wait(30)


def test_single_node_data_directory_is_imported(tmp_path):
    """A data directory from before the metadata quorum (topics in topics.json) starts with
    every topic and record, under `riptide serve`'s one-node defaults."""
    from conftest import Broker, IO_ARGS
    data = str(tmp_path / "data")
    b = Broker(data, extra_args=["--shards", "2", "--no-pin", *IO_ARGS]).start()
    topic = unique("legacy")
    p = Producer({"bootstrap.servers": b.bootstrap})
    create(b.bootstrap, topic, 2)
    for i in range(20):
        p.produce(topic, value=f"old{i}".encode(), partition=i % 2)
    assert p.flush(30) == 0
    b.stop()
    # What the single-node broker kept: topics.json and meta.properties, no metadata log, and
    # no topic ids in the partition directories (partition.metadata came later).
    shutil.rmtree(os.path.join(data, "__cluster_metadata-0"))
    for i in range(2):
        os.unlink(os.path.join(data, f"{topic}-{i}", "partition.metadata"))
    with open(os.path.join(data, "topics.json"), "w") as f:
        json.dump({"version": 1, "topics": [{"name": topic, "id": 123456789, "partitions": 2,
                                             "replication_factor": 1, "configs": {"retention.ms": "-1"}}]}, f)
    b.start()
    try:
        got = consume_all(b.bootstrap, topic, 20, unique("g"))
        assert sorted(v for _, _, v in got) == sorted(f"old{i}".encode() for i in range(20))
        assert not os.path.exists(os.path.join(data, "topics.json"))
        assert os.path.exists(os.path.join(data, "topics.json.imported"))
    finally:
        b.stop()
