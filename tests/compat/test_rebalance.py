"""Cluster part 3 on real processes: partition reassignment through Kafka's admin APIs
(kafka-python's alter/list_partition_reassignments, confluent-kafka's elect_leaders), the
balancer spreading a 3-broker cluster onto a 4th broker under load, a decommission under
load through the CLI, the destination broker killed in the middle of a move (resumed, and
cancelled), and a hot topic spread by its bytes rather than its partition count. Every write
acknowledged under acks=all is checked by the Jepsen-style checker (jepsen.py).

Node logs: <pytest tmp>/<test>*/node-N.log (printed when a test fails)."""
import json
import os
import shutil
import subprocess
import threading
import time

import pytest
from confluent_kafka import ElectionType, Producer, TopicPartition as CTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
import kafka.errors
from kafka import KafkaAdminClient
from kafka.structs import TopicPartition

import jepsen
from cluster import Cluster
from conftest import BINARY, unique
from jepsen import Workload, assert_ok, partition_state, wait_for, wait_isr_full, wait_replicas_identical

o = lambda k, v: ["--override", f"{k}={v}"]  # noqa: E731
EXTRA = [*o("broker.session.timeout.ms", 3000), *o("broker.heartbeat.interval.ms", 500),
         *o("replica.lag.time.max.ms", 3000), *o("default.replication.factor", 3),
         *o("balancer.interval.ms", 1000)]
BALANCER_OFF = o("balancer.enable", "false")


def say(line):
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


@pytest.fixture
def make_cluster(tmp_path):
    made = []

    def make(n=3, extra=()):
        c = Cluster(str(tmp_path / f"c{len(made)}"), n, [*EXTRA, *extra]).start()
        made.append(c)
        say(f"cluster under {c.base}")
        wait_brokers(c, n)
        return c
    yield make
    for c in made:
        c.stop()


def wait_brokers(c, n, timeout=60):
    try:
        wait_for(lambda: all(len(AdminClient({"bootstrap.servers": x.bootstrap}).list_topics(timeout=10).brokers)
                             == n for x in c.nodes if x.alive()), timeout, f"{n} live brokers seen from every node")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{c.exited_report()}") from None


def create(c, name, partitions, rf=3, assignment=None, config=None):
    a = AdminClient({"bootstrap.servers": jepsen.bootstrap_of(c)})
    if assignment:
        t = NewTopic(name, num_partitions=len(assignment), replica_assignment=assignment, config=config or {})
    else:
        t = NewTopic(name, partitions, rf, config=config or {})
    a.create_topics([t], operation_timeout=30)[name].result(30)
    wait_isr_full(c, name, None, timeout=30)
    return name


def fill(c, topic, partitions, count, size=1024):
    """Writes `count` unique records of about `size` bytes spread over the partitions
    (acks=all); returns {value: (partition, offset)} for Workload.adopt."""
    p = Producer({"bootstrap.servers": jepsen.bootstrap_of(c), "acks": "all", "linger.ms": 20,
                  "batch.size": 262144, "compression.type": "none"})
    errors, acked = [], {}

    def done(err, msg):
        if err is None:
            acked[msg.value()] = (msg.partition(), msg.offset())
        else:
            errors.append(err)
    pad = "x" * max(0, size - 16)
    for i in range(count):
        while True:
            try:
                p.produce(topic, f"b-{i:08d}-{pad}".encode(), partition=i % partitions, on_delivery=done)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0 and not errors, errors[:3]
    assert len(acked) == count
    return acked


def counts(c, topics):
    """{broker: (replicas, leaders, preferred leaders)} over `topics`, from node 1's metadata."""
    out = {}
    for n in c.nodes:
        if n.alive():
            out[n.id] = [0, 0, 0]
    for t in topics:
        for _, (leader, replicas, _) in partition_state(c.nodes[0], t).items():
            for r in replicas:
                out.setdefault(r, [0, 0, 0])[0] += 1
            if leader >= 0:
                out.setdefault(leader, [0, 0, 0])[1] += 1
            out.setdefault(replicas[0], [0, 0, 0])[2] += 1
    return out


def spread(values):
    return max(values) - min(values)


def kadmin(c):
    return KafkaAdminClient(bootstrap_servers=jepsen.bootstrap_of(c), request_timeout_ms=30000)


def alter(c, moves):
    """kafka-python's AlterPartitionReassignments; {TopicPartition: error class or None}."""
    admin = kadmin(c)
    try:
        return admin.alter_partition_reassignments(moves)
    finally:
        admin.close()


def reassignments(c):
    admin = kadmin(c)
    try:
        return admin.list_partition_reassignments()
    finally:
        admin.close()


def balanced(c, topics):
    got = counts(c, topics)
    ok = spread([v[0] for v in got.values()]) <= 1 and spread([v[1] for v in got.values()]) <= 1
    return got if ok and not reassignments(c) else None


HERE = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(HERE, "matrix", "node_modules")
KAFKAJS_REASSIGN = r"""
'use strict'
// kafkajs admin: move TOPIC-0 to the replicas given, list moves until none runs, print the
// partition's replicas as the metadata reports them (one JSON line).
const { Kafka, logLevel } = require('kafkajs')
const [brokers, topic, replicas] = process.argv.slice(2)
const admin = new Kafka({ brokers: brokers.split(','), logLevel: logLevel.NOTHING }).admin()
const sleep = ms => new Promise(r => setTimeout(r, ms))
;(async () => {
  await admin.connect()
  await admin.alterPartitionReassignments({
    topics: [{ topic, partitionAssignment: [{ partition: 0, replicas: replicas.split(',').map(Number) }] }],
  })
  let listed = []
  for (let i = 0; i < 120; i++) {
    const r = await admin.listPartitionReassignments({ topics: [{ topic, partitions: [0] }] })
    if (r.topics.length === 0) break
    listed.push(r.topics[0].partitions[0])
    await sleep(250)
  }
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  console.log(JSON.stringify({ seen_moving: listed.length, replicas: md.topics[0].partitions[0].replicas }))
  await admin.disconnect()
})().catch(e => { console.error(e); process.exit(1) })
"""


def pct(xs, q):
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else float("nan")


def cli(c, *args, timeout=180):
    r = subprocess.run([BINARY, *args, "-b", c.nodes[0].bootstrap], capture_output=True, text=True, timeout=timeout)
    say(f"$ riptide {' '.join(args)}\n{r.stdout}{r.stderr}")
    return r


# ---------------------------------------------------------------------------------------------


def test_reassign_and_elect_with_kafka_admin_clients(make_cluster):
    """kafka-python moves a replica, lists a move in progress and cancels it; confluent-kafka
    elects the preferred leader; the moved-off broker deletes its copy."""
    c = make_cluster(3, BALANCER_OFF)
    topic = create(c, unique("ra"), 1, assignment=[[1, 2]])
    fill(c, topic, 1, 2000, 200)
    assert alter(c, {TopicPartition(topic, 0): [3, 2]}) == {TopicPartition(topic, 0): None}
    st = wait_for(lambda: (lambda s: s if s[1] == [3, 2] and s[2] == [2, 3] else None)(
        partition_state(c.nodes[1], topic)[0]), 30, "the move to [3, 2] completed")
    say(f"after the move: leader {st[0]}, replicas {st[1]}, ISR {st[2]}")
    assert st[0] in (2, 3)
    wait_for(lambda: not os.path.isdir(os.path.join(c.node(1).data_dir, f"{topic}-0")), 20,
             "broker 1 deleted its copy")
    report, same = wait_replicas_identical(c, topic, 1, rf=2, timeout=30)
    assert same, report
    assert report[0]["lengths"] == {2: 2000, 3: 2000}, report

    # A move onto a broker that is down stays in progress (listed) until cancelled.
    c.node(1).kill9()
    wait_brokers(c, 2)  # fenced: Metadata names a live controller for the admin clients again
    assert alter(c, {TopicPartition(topic, 0): [1, 2, 3]}) == {TopicPartition(topic, 0): None}
    listed = wait_for(lambda: reassignments(c), 20, "the move listed")
    entry = listed[TopicPartition(topic, 0)]
    say(f"in progress: {entry}")
    assert sorted(entry["replicas"]) == [1, 2, 3] and entry["adding_replicas"] == [1]
    assert entry["removing_replicas"] == []
    assert alter(c, {TopicPartition(topic, 0): None}) == {TopicPartition(topic, 0): None}
    wait_for(lambda: not reassignments(c), 20, "the move cancelled")
    assert sorted(partition_state(c.nodes[1], topic)[0][1]) == [2, 3], "back to the original replicas"
    c.node(1).spawn().wait_listening()
    wait_brokers(c, 3)

    # Preferred election: reorder to [2, 3] (no copy), then elect 2 (the controller's own
    # preferred election may get there first: either way 2 leads).
    assert alter(c, {TopicPartition(topic, 0): [2, 3]}) == {TopicPartition(topic, 0): None}
    ca = AdminClient({"bootstrap.servers": c.nodes[0].bootstrap})
    # {TopicPartition: KafkaException or None}
    first = ca.elect_leaders(ElectionType.PREFERRED, [CTopicPartition(topic, 0)]).result(30)
    say(f"elect_leaders: {first}")
    err = list(first.values())[0]
    assert err is None or "ELECTION_NOT_NEEDED" in str(err), err  # the periodic election may win
    wait_for(lambda: partition_state(c.nodes[2], topic)[0][0] == 2, 30, "broker 2 leads")
    # Nothing to elect for a partition led by its preferred replica.
    again = ca.elect_leaders(ElectionType.PREFERRED, [CTopicPartition(topic, 0)]).result(30)
    assert "ELECTION_NOT_NEEDED" in str(list(again.values())[0]), again
    # Bad targets get Kafka's codes, per partition.
    tp = TopicPartition(topic, 0)
    assert alter(c, {tp: [2, 9]})[tp] is kafka.errors.for_code(39)
    assert alter(c, {tp: None})[tp] is kafka.errors.for_code(85)
    assert alter(c, {TopicPartition(topic, 7): [1]})[TopicPartition(topic, 7)] is kafka.errors.for_code(3)

    # kafkajs's admin moves it back and lists the move.
    if shutil.which("node") and os.path.isdir(os.path.join(NODE_MODULES, "kafkajs")):
        script = os.path.join(c.base, "reassign.js")
        with open(script, "w") as f:
            f.write(KAFKAJS_REASSIGN)
        r = subprocess.run(["node", script, jepsen.bootstrap_of(c), topic, "1,2"], capture_output=True, text=True,
                           timeout=120, env=dict(os.environ, NODE_PATH=NODE_MODULES))
        say(f"kafkajs: {r.stdout.strip()} {r.stderr.strip()[-500:]}")
        assert r.returncode == 0, r.stderr[-2000:]
        assert json.loads(r.stdout.strip().splitlines()[-1])["replicas"] == [1, 2]


def test_fourth_broker_evens_out_under_load(make_cluster):
    """A loaded 3-broker cluster gains a 4th broker: the balancer moves replicas and
    leadership until every broker holds the same number within one; no acknowledged write is
    lost; the producer's p99 before and during the moves is printed."""
    c = make_cluster(3, o("follower.replication.throttled.rate", 4 << 20))
    topic = create(c, unique("even"), 6)
    ballast = fill(c, topic, 6, 12000)
    w = Workload(c.bootstrap, topic, 6, producers=1, consumers=1, rate=200)
    w.adopt(ballast)
    w.start()
    assert w.wait_acked(400, 60), "workload running"
    before_t = time.monotonic()
    time.sleep(5)
    joined = time.monotonic()
    c.add_broker()
    say("broker 4 joined")
    got = wait_for(lambda: balanced(c, [topic]) if 4 in counts(c, [topic]) and counts(c, [topic])[4][0] > 0
                   else None, 180, "partitions and leaders even over 4 brokers", interval=1)
    took = time.monotonic() - joined
    say(f"balanced after {took:.1f} s: {got}")
    assert w.wait_acked(200, 60), "writes continue"
    w.stop()
    before = w.latencies(before_t, joined)
    during = w.latencies(joined, joined + took)
    say(f"producer p50/p99/max before: {pct(before, .5):.1f}/{pct(before, .99):.1f}/{pct(before, 1):.1f} ms "
        f"({len(before)} acks); during the moves: {pct(during, .5):.1f}/{pct(during, .99):.1f}/"
        f"{pct(during, 1):.1f} ms ({len(during)} acks)")
    assert_ok(w.check(c.bootstrap, timeout=60))
    report, same = wait_replicas_identical(c, topic, 6, rf=3, timeout=30)
    assert same, report
    assert sum(v[0] for v in got.values()) == 18 and got[4][0] >= 4, got
    m = c.active_controller().metrics()
    assert m["riptide_reassignments_in_progress"] == 0
    assert m["riptide_balancer_moves_started_total"] >= 4
    assert m["riptide_balancer_replica_spread"] <= 1


def test_decommission_under_load_with_the_cli(make_cluster):
    """`riptide cluster decommission 2 --wait` drains broker 2 under load and says it can be
    stopped; stopping it then loses nothing; `riptide cluster unregister 2` forgets it."""
    c = make_cluster(3)
    c.add_broker()
    wait_brokers(c, 4)
    topic = create(c, unique("drain"), 4)
    ballast = fill(c, topic, 4, 4000)
    w = Workload(c.bootstrap, topic, 4, producers=1, consumers=1, rate=200)
    w.adopt(ballast)
    w.start()
    assert w.wait_acked(300, 60)
    r = cli(c, "cluster", "balance", "--dry-run")
    assert r.returncode == 0 and "BROKER" in r.stdout, r.stderr
    r = cli(c, "cluster", "decommission", "2", "--wait", "--timeout", "150")
    assert r.returncode == 0, r.stderr
    assert "it can be stopped" in r.stdout
    st = counts(c, [topic])
    assert st.get(2, [0])[0] == 0, st
    assert all(2 not in replicas for _, replicas, _ in partition_state(c.nodes[0], topic).values())
    c.node(2).stop()  # SIGTERM: it leads nothing
    assert w.wait_acked(200, 60), "writes continue without broker 2"
    w.stop()
    assert_ok(w.check(c.bootstrap, timeout=60))
    r = cli(c, "cluster", "balance", "--output", "json")
    assert r.returncode == 0 and '"draining": true' in r.stdout.replace('"draining":true', '"draining": true')
    # Gone for good: UnregisterBroker forgets it (refused for a live broker).
    r = cli(c, "cluster", "unregister", "3")
    assert r.returncode != 0 and "live" in r.stderr, r.stderr
    r = cli(c, "cluster", "unregister", "2")
    assert r.returncode == 0, r.stderr
    status = json.loads(cli(c, "cluster", "status", "--output", "json").stdout)
    assert sorted(b["id"] for b in status["brokers"]) == [1, 3, 4], status["brokers"]


def test_destination_killed_in_the_middle_of_a_move(make_cluster):
    """The broker a replica moves to is killed mid-copy: the move stays in progress (the ISR
    keeps the old replicas, writes go on), resumes when the broker returns, and completes; a
    second such move is cancelled instead and rolls back. Nothing acknowledged is lost."""
    c = make_cluster(3, [*BALANCER_OFF, *o("follower.replication.throttled.rate", 1 << 20)])
    c.add_broker()
    wait_brokers(c, 4)
    topic = create(c, unique("kill"), 2, assignment=[[1, 2, 3], [2, 3, 1]])
    ballast = fill(c, topic, 2, 8000)
    w = Workload(c.bootstrap, topic, 2, producers=1, consumers=1, rate=150)
    w.adopt(ballast)
    w.start()
    assert w.wait_acked(200, 60)
    alter(c, {TopicPartition(topic, 0): [4, 2, 3], TopicPartition(topic, 1): [2, 3, 4]})
    time.sleep(1.5)  # 1 MiB/s: about a third of each partition copied
    assert len(reassignments(c)) == 2, "still copying"
    c.node(4).kill9()
    say("destination broker 4 killed mid-move")
    wait_brokers(c, 3)  # fenced: the admin clients stop routing to it
    assert w.wait_acked(300, 60), "writes continue while the destination is down"
    moving = reassignments(c)
    assert len(moving) == 2 and all(e["adding_replicas"] == [4] for e in moving.values()), moving
    for p in (0, 1):
        assert 4 not in partition_state(c.nodes[0], topic)[p][2], "4 never made the ISR"
    # Roll back partition 1; partition 0 resumes once 4 is back.
    alter(c, {TopicPartition(topic, 1): None})
    wait_for(lambda: list(reassignments(c)) == [TopicPartition(topic, 0)], 20, "partition 1 rolled back")
    assert partition_state(c.nodes[0], topic)[1][1] == [2, 3, 1]
    c.node(4).spawn().wait_listening()
    wait_for(lambda: not reassignments(c), 120, "the move of partition 0 completed after the restart", interval=1)
    st = partition_state(c.nodes[0], topic)
    assert st[0][1] == [4, 2, 3] and st[0][2] == [2, 3, 4], st
    assert w.wait_acked(200, 60)
    w.stop()
    assert_ok(w.check(c.bootstrap, timeout=60))
    report, same = wait_replicas_identical(c, topic, 2, rf=3, timeout=30)
    assert same, report
    assert not os.path.isdir(os.path.join(c.node(1).data_dir, f"{topic}-0")), "broker 1 deleted its copy"
    assert not os.path.isdir(os.path.join(c.node(4).data_dir, f"{topic}-1")), "the cancelled copy went"


def test_hot_partitions_are_spread_by_bytes(make_cluster):
    """Replica counts are even, per topic too (two partitions per broker), but the producer
    writes only to partitions 0 and 1, both on broker 1: the balancer swaps a hot partition
    with a cold one, so the bytes written spread while the counts stay even."""
    c = make_cluster(3, o("balancer.min.bytes.per.sec", 50_000))
    topic = create(c, unique("skew"), 6, assignment=[[1], [1], [2], [2], [3], [3]])
    stop = threading.Event()

    def blast():
        p = Producer({"bootstrap.servers": c.bootstrap, "acks": "1", "linger.ms": 10})
        payload = b"h" * 1000
        deadline = time.time() + 150
        i = 0
        while not stop.is_set() and time.time() < deadline:
            for _ in range(50):
                try:
                    p.produce(topic, payload, partition=i % 2)
                except BufferError:
                    p.poll(0.05)
                i += 1
            p.poll(0)
            time.sleep(0.05)  # ~1 MB/s
        p.flush(30)
    t = threading.Thread(target=blast, daemon=True)
    t.start()
    try:
        def spread_out():
            st = partition_state(c.nodes[0], topic)
            hot_brokers = {st[p][1][0] for p in (0, 1)}
            if len(hot_brokers) == 2 and not reassignments(c):
                return hot_brokers
            return None
        brokers = wait_for(spread_out, 120, "the hot partitions on two brokers", interval=1)
        say(f"hot partitions now on brokers {sorted(brokers)}")
        got = counts(c, [topic])
        assert all(v[0] == 2 for v in got.values()), got
    finally:
        stop.set()
        t.join(60)
    log = c.active_controller().read_log()
    assert "bytes in: broker 1" in log, "the move's reason is logged"
