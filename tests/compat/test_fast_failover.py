"""Fast failover with the default settings (issue 32), on real processes (three combined nodes):
  - admin calls work right after a kill -9: CreateTopics bootstrapped from another node
    succeeds, and Metadata names a live broker (the answering one) as the controller, never
    the dead one;
  - a hung follower (SIGSTOP) leaves the ISR, acks=all produce goes on without it and nothing
    acknowledged is lost; it rejoins once resumed and caught up;
  - min.insync.replicas still holds: with it equal to the replication factor, a record
    produced while a follower hangs is never acknowledged;
  - a kill -9 of the active controller's node is noticed by the crash signal (its controller
    port refuses the new active controller), not by its broker session running out, and
    acks=all produce to the partitions it led goes on with nothing acknowledged lost;
  - a Produce sent to a follower is answered NOT_LEADER_OR_FOLLOWER with the current leader
    and its endpoint (KIP-951), decoded here from the raw v10 response.
Correctness only: no assertion on how fast any of this happens (tests/compat/failover_time.py
measures that). Node logs: <pytest tmp>/<test>/node-N.log."""
import socket
import struct
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import jepsen
from cluster import Cluster
from conftest import unique
from jepsen import Workload, assert_ok, partition_state, pause, resume, wait_for, wait_isr_full
from wire import Reader, compact_string, record_batch, recv_frame, uvarint
from test_failover_clients import progress, say


@pytest.fixture
def cluster(tmp_path):
    """Three nodes with the default failover settings (no overrides)."""
    c = Cluster(str(tmp_path), 3, ["--override", "default.replication.factor=3"])
    say(f"node logs: {[n.log_path for n in c.nodes]}")
    try:
        c.start()
        wait_for(lambda: all(len(AdminClient({"bootstrap.servers": n.bootstrap}).list_topics(timeout=10).brokers)
                             == 3 for n in c.nodes), 60, "3 live brokers seen from every node")
        yield c
    finally:
        for n in c.nodes:
            if jepsen.paused(n):
                resume(n)
        c.stop()


def create(c, name, partitions, config=None):
    a = AdminClient({"bootstrap.servers": jepsen.bootstrap_of(c)})
    a.create_topics([NewTopic(name, partitions, 3, config=config or {})], operation_timeout=30)[name].result(30)
    wait_isr_full(c, name, 3, timeout=30)
    return name


def followers(c, topic):
    """The followers of partition 0, the one that is not the active controller first (so that
    pausing it does not also move the quorum)."""
    leader, replicas, _ = partition_state(jepsen.usable(c)[0], topic)[0]
    controller = c.active_controller(timeout=10).id
    return sorted((r for r in replicas if r != leader), key=lambda r: r == controller)


def test_admin_calls_work_right_after_a_kill(cluster):
    c = cluster
    victim, survivor = c.node(1), c.node(3)
    victim.kill9()
    a = AdminClient({"bootstrap.servers": survivor.bootstrap})
    name = unique("after-kill")
    # librdkafka sends CreateTopics to the broker Metadata names as controller: a dead one
    # would time this out.
    a.create_topics([NewTopic(name, 3, 2)], operation_timeout=30)[name].result(40)
    md = a.list_topics(timeout=10)
    assert md.controller_id in (2, 3), f"Metadata names broker {md.controller_id} as controller"
    assert name in md.topics
    victim.spawn().wait_listening()


def test_a_hung_follower_leaves_the_isr_and_acks_all_goes_on(cluster):
    c = cluster
    topic = create(c, unique("hung-follower"), 1, {"min.insync.replicas": "2"})
    w = Workload(jepsen.bootstrap_of(c), topic, 1, producers=1, consumers=1, log=say).start()
    hung = None
    try:
        progress(w, c, topic, 100, 30, "before the fault")
        hung = c.node(followers(c, topic)[0])
        say(f"SIGSTOP follower {hung.id}; state {jepsen.state(c, topic)}")
        pause(hung)
        wait_for(lambda: hung.id not in partition_state(jepsen.usable(c)[0], topic)[0][2], 60,
                 f"follower {hung.id} out of the ISR")
        progress(w, c, topic, 100, 60, f"with follower {hung.id} hung")
        resume(hung)
        wait_isr_full(c, topic, 3, timeout=60)
        progress(w, c, topic, 50, 30, f"after follower {hung.id} rejoined")
    finally:
        if hung is not None:
            resume(hung)
        w.stop(flush_timeout=60)
    r = w.check(jepsen.bootstrap_of(c), timeout=60)
    assert_ok(r)
    assert r["acknowledged"] > 0


def test_min_insync_replicas_holds_while_a_follower_hangs(cluster):
    c = cluster
    topic = create(c, unique("min-isr"), 1, {"min.insync.replicas": "3"})
    hung = c.node(followers(c, topic)[0])
    pause(hung)
    try:
        wait_for(lambda: hung.id not in partition_state(jepsen.usable(c)[0], topic)[0][2], 60,
                 f"follower {hung.id} out of the ISR")
        results = []
        p = Producer({"bootstrap.servers": jepsen.bootstrap_of(c), "acks": "all", "enable.idempotence": True,
                      "message.timeout.ms": 5000, "retry.backoff.ms": 100})
        p.produce(topic, b"never-acknowledged", partition=0, on_delivery=lambda err, msg: results.append(err))
        deadline = time.time() + 30
        while not results and time.time() < deadline:
            p.poll(0.1)
        assert results, "no delivery report within 30 s"
        assert results[0] is not None, "acknowledged with 2 replicas in sync under min.insync.replicas=3"
        say(f"delivery refused as it must be: {results[0]}")
    finally:
        resume(hung)
    wait_isr_full(c, topic, 3, timeout=60)


def test_a_crashed_controller_node_is_fenced_by_the_crash_signal(cluster):
    c = cluster
    topic = create(c, unique("controller-crash"), 3, {"min.insync.replicas": "2"})
    w = Workload(jepsen.bootstrap_of(c), topic, 3, producers=1, consumers=1, log=say).start()
    victim = None
    try:
        progress(w, c, topic, 100, 30, "before the fault")
        victim = c.active_controller(timeout=10)
        say(f"kill -9 node {victim.id}, the active controller; state {jepsen.state(c, topic)}")
        victim.kill9()
        new = c.active_controller(timeout=30)
        assert new.id != victim.id
        wait_for(lambda: new.metrics().get("riptide_controller_fences_disconnect_total", 0) >= 1, 30,
                 f"node {victim.id} fenced by the crash signal")
        m = new.metrics()
        # The shortened first session of the old controller's node (two heartbeat intervals)
        # would also fence it, but only after the crash signal: no session expired.
        assert m.get("riptide_controller_fences_session_total", 0) == 0, m
        assert f"broker {victim.id} is gone" in new.read_log()
        progress(w, c, topic, 100, 60, f"with node {victim.id} dead")
        victim.spawn().wait_listening()
        wait_isr_full(c, topic, 3, timeout=60)
        progress(w, c, topic, 50, 30, f"after node {victim.id} is back")
    finally:
        if victim is not None and not victim.alive():
            victim.spawn().wait_listening()
        w.stop(flush_timeout=60)
    r = w.check(jepsen.bootstrap_of(c), timeout=60)
    assert_ok(r)
    assert r["acknowledged"] > 0


def produce_v10(corr, topic, records):
    """A Produce v10 request (flexible: compact arrays and strings, tagged fields) for
    partition 0 of `topic`, acks=all."""
    body = uvarint(0) + struct.pack(">hi", -1, 10_000)  # null transactional id, acks, timeout
    body += uvarint(2) + compact_string(topic)  # one topic
    body += uvarint(2) + struct.pack(">i", 0) + uvarint(len(records) + 1) + records + uvarint(0)
    body += uvarint(0) + uvarint(0)  # topic tags, request tags
    header = struct.pack(">hhi", 0, 10, corr) + struct.pack(">h", -1) + uvarint(0)
    return struct.pack(">i", len(header) + len(body)) + header + body


def parse_produce_v10(frame):
    """(error_code, CurrentLeader (id, epoch) or None, [(node_id, host, port)]) of the single
    partition in a Produce v10 response."""
    r = Reader(frame, 4)
    r.take(">i")  # correlation id
    r.tags()
    assert r.uvarint() == 2, "one topic"
    r.compact_string()
    assert r.uvarint() == 2, "one partition"
    _, err, _, _, _ = r.take(">ihqqq")
    for _ in range(r.uvarint() - 1):  # record errors
        r.take(">i")
        r.compact_string()
        r.tags()
    r.compact_string()  # error message
    leader = None
    if 0 in (t := r.tags()):
        leader = t[0].take(">ii")
    r.tags()  # topic tags
    r.take(">i")  # throttle time
    endpoints = []
    if 0 in (t := r.tags()):
        e = t[0]
        for _ in range(e.uvarint() - 1):
            node = e.take(">i")
            host = e.compact_string()
            port = e.take(">i")
            e.compact_string()  # rack
            e.tags()
            endpoints.append((node, host, port))
    return err, leader, endpoints


def test_produce_to_a_follower_answers_with_the_current_leader(cluster):
    """KIP-951: a Produce v10 sent to a replica that does not lead the partition is refused
    with NOT_LEADER_OR_FOLLOWER and carries the current leader and its endpoint, so a client
    moves there without a metadata refresh."""
    c = cluster
    topic = create(c, unique("hint"), 1)
    leader, replicas, _ = partition_state(jepsen.usable(c)[0], topic)[0]
    follower = c.node(next(r for r in replicas if r != leader))
    host, port = follower.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(produce_v10(7, topic, record_batch([b"to-a-follower"])))
        frame = recv_frame(s)
    assert frame, "the follower closed the connection"
    err, current, endpoints = parse_produce_v10(frame)
    assert err == 6, f"error {err}, not NOT_LEADER_OR_FOLLOWER"
    assert current is not None and current[0] == leader and current[1] >= 0, current
    lhost, lport = c.node(leader).bootstrap.rsplit(":", 1)
    assert endpoints == [(leader, lhost, int(lport))], endpoints
