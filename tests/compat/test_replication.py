"""Partition replication on real processes: three combined nodes, topics with replication
factor 3, faults (kill -9 of a leader, a leader SIGSTOPped past its session, a follower
restarted with a torn or garbage log tail, a follower down under min.insync.replicas) under
an idempotent acks=all workload, judged by the Jepsen-style checker in jepsen.py: no
acknowledged record lost, none duplicated or reordered, nothing a consumer read vanished,
and the replicas' logs on disk identical once healed.

Node logs: <pytest tmp>/repl*/node-N.log (the path is printed when a test fails)."""
import os
import subprocess
import time

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

import jepsen
from cluster import Cluster
from conftest import unique
from launch import BINARY
from jepsen import (Workload, assert_ok, heal, leader_of, partition_state, pause, resume, state,
                    wait_for, wait_isr_full, wait_isr_size, wait_leader_change, wait_replicas_identical)

o = lambda k, v: ["--override", f"{k}={v}"]  # noqa: E731
# Short sessions and lag time so that fencing and ISR shrinking show within the tests' patience.
EXTRA = [*o("broker.session.timeout.ms", 3000), *o("broker.heartbeat.interval.ms", 500),
         *o("replica.lag.time.max.ms", 3000), *o("default.replication.factor", 3)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("repl")), 3, EXTRA).start()
    print(f"cluster under {c.base}")
    yield c
    for n in c.nodes:
        if jepsen.paused(n):
            resume(n)
    c.stop()


def crash_report(crashed, cluster):
    return "; ".join(f"node {i} exited with {rc} on its own, log tail:\n{tail}" for i, rc, tail in crashed)


@pytest.fixture(autouse=True)
def healed(cluster):
    """Every test starts and ends with the three nodes running (whatever the previous one
    left behind); a node that exited on its own fails the test. Prints where the node logs
    are (shown when the test fails)."""
    print(f"node logs: {[n.log_path for n in cluster.nodes]}")
    crashed = heal(cluster)
    wait_for(lambda: all(len(AdminClient({"bootstrap.servers": n.bootstrap}).list_topics(timeout=10).brokers) == 3
                         for n in cluster.nodes), 60, "3 live brokers seen from every node")
    assert not crashed, "before this test: " + crash_report(crashed, cluster)
    yield
    crashed = heal(cluster)
    assert not crashed, crash_report(crashed, cluster)


def create(cluster, name, partitions, rf=3, config=None, timeout=30):
    a = AdminClient({"bootstrap.servers": jepsen.bootstrap_of(cluster)})
    fs = a.create_topics([NewTopic(name, partitions, rf, config=config or {})], operation_timeout=timeout)
    fs[name].result(timeout)
    # Created and led everywhere, every ISR complete.
    wait_isr_full(cluster, name, rf if rf > 0 else None, timeout=30)
    return name


def workload(cluster, topic, partitions, **kw):
    all_nodes = ",".join(n.bootstrap for n in cluster.nodes)  # clients find live brokers themselves
    return Workload(all_nodes, topic, partitions, **kw)


def pick_victim(cluster, topic, partition=0):
    """The leader of `partition` as a live node reports it."""
    lid = leader_of(cluster, topic, partition)
    assert lid > 0, f"{topic}-{partition} has no leader"
    return cluster.node(lid)


def run_check(cluster, w, topic, partitions, rf=3):
    r = w.check(jepsen.bootstrap_of(cluster), timeout=60)
    assert_ok(r)
    assert r["acknowledged"] > 0
    report, same = wait_replicas_identical(cluster, topic, partitions, rf=rf, timeout=30)
    assert same, f"replica logs differ on disk: {report}"
    # Every acknowledged value is in every replica's log (the on-disk reader agrees with the
    # final read).
    on_disk = {v for p in range(partitions) for _, v in jepsen.replica_log(cluster.nodes[0].data_dir, topic, p)}
    missing = [v for v in w.acked if v not in on_disk]
    assert not missing, f"{len(missing)} acknowledged values not on node 1's disk, e.g. {missing[:5]}"
    return r


# ---------------------------------------------------------------------------------------------


def test_rf3_metadata_and_round_trip(cluster):
    topic = create(cluster, unique("rf3"), 3, 3)
    for n in cluster.nodes:
        st = partition_state(n, topic)
        assert sorted(st) == [0, 1, 2]
        for p, (leader, replicas, isr) in st.items():
            assert sorted(replicas) == [1, 2, 3], (n.id, p, replicas)
            assert isr == [1, 2, 3], (n.id, p, isr)
            assert leader in replicas
    # default.replication.factor=3 applies to a topic created without a replication factor.
    dflt = unique("rf-default")
    a = AdminClient({"bootstrap.servers": cluster.node(2).bootstrap})
    a.create_topics([NewTopic(dflt, 2)])[dflt].result(30)
    wait_for(lambda: all(len(r) == 3 for _, r, _ in partition_state(cluster.node(3), dflt).values()), 30,
             "3 replicas by default")

    acked, errors = [], []
    p = Producer({"bootstrap.servers": cluster.node(1).bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5})

    def cb(err, msg):
        if err is None:
            acked.append((msg.partition(), msg.offset(), msg.value()))
        else:
            errors.append(err)
    for i in range(1000):
        p.produce(topic, value=f"r-{i:05d}".encode(), partition=i % 3, on_delivery=cb)
        p.poll(0)
    assert p.flush(60) == 0
    assert not errors, errors[:5]
    assert len(acked) == 1000
    # Back through another node's bootstrap, group-less.
    got, complete = jepsen.read_log(cluster.node(2).bootstrap, topic, 3, timeout=60)
    assert complete
    values = {p: [v for _, v in recs] for p, recs in got.items()}
    for part in range(3):
        assert values[part] == [f"r-{i:05d}".encode() for i in range(part, 1000, 3)], part
    # And the followers hold the same logs on disk.
    report, same = wait_replicas_identical(cluster, topic, 3, rf=3, timeout=30)
    assert same, report
    assert all(r["lengths"] == {1: n, 2: n, 3: n} for r, n in
               ((report[q], len(values[q])) for q in range(3))), report


def test_kill9_leader_under_acks_all(cluster):
    topic = create(cluster, unique("kill-leader"), 3, 3, {"min.insync.replicas": "2"})
    w = workload(cluster, topic, 3, producers=2, consumers=1).start()
    try:
        assert w.wait_acked(200, 30), f"no progress before the fault ({w.acked_count()} acked, fatal {w.fatal})"
        victim = pick_victim(cluster, topic, 0)
        victim.kill9()
        new = wait_leader_change(cluster, topic, 0, victim.id, timeout=30)
        assert new != victim.id
        # The survivors (ISR of 2 >= min.insync.replicas) keep taking acks=all writes.
        assert w.wait_acked(200, 40), f"no progress after failover ({w.acked_count()} acked, fatal {w.fatal})"
        victim.spawn().wait_listening()
        wait_isr_full(cluster, topic, 3, timeout=60)
        assert w.wait_acked(100, 30), "no progress after the restart"
    finally:
        w.stop(flush_timeout=75)
    run_check(cluster, w, topic, 3)


def test_sigstop_leader_past_its_session(cluster):
    topic = create(cluster, unique("stop-leader"), 3, 3, {"min.insync.replicas": "2"})
    w = workload(cluster, topic, 3, producers=2, consumers=1).start()
    victim = None
    try:
        assert w.wait_acked(200, 30), f"no progress before the fault ({w.acked_count()} acked)"
        victim = pick_victim(cluster, topic, 0)
        t0 = time.time()
        pause(victim)
        new = wait_leader_change(cluster, topic, 0, victim.id, timeout=30)
        assert new != victim.id
        # The frozen node is out of the ISR of the partitions it followed or led.
        wait_for(lambda: all(victim.id not in isr for _, _, isr in state(cluster, topic).values()), 30,
                 f"node {victim.id} out of every ISR")
        assert w.wait_acked(200, 40), "no progress while the old leader is frozen"
        # Frozen for well past the session timeout (3 s), then thawed: a zombie leader, its
        # connections and in-flight requests still open.
        time.sleep(max(0.0, 8 - (time.time() - t0)))
        resume(victim)
        # It comes back as a follower, catches up and rejoins every ISR.
        wait_isr_full(cluster, topic, 3, timeout=60)
        assert victim.alive(), "the thawed node exited"
        assert w.wait_acked(100, 30), "no progress after the thaw"
    finally:
        if victim is not None and jepsen.paused(victim):
            resume(victim)
        w.stop(flush_timeout=75)
    run_check(cluster, w, topic, 3)
    st = state(cluster, topic)
    assert all(victim.id in isr for _, _, isr in st.values()), st


def test_follower_restart_with_torn_and_garbage_tail(cluster):
    topic = create(cluster, unique("torn"), 2, 3, {"min.insync.replicas": "2"})
    w = workload(cluster, topic, 2, producers=1, consumers=1, rate=200).start()
    try:
        assert w.wait_acked(300, 30), "no progress before the fault"
        st = state(cluster, topic)
        leader0, replicas0, _ = st[0]
        # The follower of partition 0 next in assignment order (a controller electing the first
        # live ISR member in that order makes it the next leader).
        follower = cluster.node(next(r for r in replicas0 if r != leader0))
        follower.kill9()
        # The others move on without it.
        assert w.wait_acked(200, 30), "no progress with a follower down"
        segs0 = jepsen.segment_files(follower.data_dir, topic, 0)
        segs1 = jepsen.segment_files(follower.data_dir, topic, 1)
        assert segs0 and segs1, f"follower {follower.id} holds no segment of {topic}: {segs0} {segs1}"
        seg0, seg1 = segs0[-1], segs1[-1]
        size0 = os.path.getsize(seg0)
        assert size0 > 200, size0
        with open(seg0, "r+b") as f:  # a torn tail: cut mid-batch
            f.truncate(size0 - (size0 // 4 + 7))
        with open(seg1, "ab") as f:   # garbage after the last batch
            f.write(os.urandom(97))
        follower.spawn().wait_listening()
        assert follower.alive()
        wait_isr_full(cluster, topic, 3, timeout=60)
        assert w.wait_acked(100, 30), "no progress after the restart"
    finally:
        w.stop(flush_timeout=75)
    run_check(cluster, w, topic, 2)
    # Now make the repaired follower serve: kill the leader of partition 0 (unless it leads
    # already) and read everything back from whoever leads then (the repaired node when the
    # controller elects the first live ISR member in assignment order).
    lid = leader_of(cluster, topic, 0)
    if lid != follower.id:
        old = cluster.node(lid)
        old.kill9()
        lid = wait_leader_change(cluster, topic, 0, old.id, timeout=30)
        print(f"partition 0: leader {old.id} killed, new leader {lid} (repaired follower {follower.id})")
        r = w.check(jepsen.bootstrap_of(cluster), timeout=60, label=f"jepsen (leader {lid})")
        assert_ok(r)
        old.spawn().wait_listening()
        wait_isr_full(cluster, topic, 3, timeout=60)
    else:
        print(f"partition 0: the repaired follower {follower.id} leads already")
        assert_ok(w.check(jepsen.bootstrap_of(cluster), timeout=60, label=f"jepsen (leader {lid})"))


def test_min_insync_replicas(cluster):
    two = create(cluster, unique("misr2"), 1, 3, {"min.insync.replicas": "2"})
    three = create(cluster, unique("misr3"), 1, 3, {"min.insync.replicas": "3"})
    # A follower of both partitions, preferably not the active controller.
    leaders = {leader_of(cluster, two, 0), leader_of(cluster, three, 0)}
    candidates = [n for n in cluster.nodes if n.id not in leaders]
    controller = cluster.active_controller()
    candidates.sort(key=lambda n: n.id == controller.id)
    follower = candidates[0]
    follower.stop()  # SIGTERM: controlled shutdown
    try:
        for t in (two, three):
            wait_isr_size(cluster, t, 0, 2, timeout=30)
            assert follower.id not in state(cluster, t)[0][2]

        def produce(topic, acks, n, prefix, timeout_ms=10000):
            res = []
            p = Producer({"bootstrap.servers": jepsen.bootstrap_of(cluster), "acks": acks,
                          "enable.idempotence": False, "retries": 0, "message.timeout.ms": timeout_ms,
                          "request.timeout.ms": 5000})
            for i in range(n):
                p.produce(topic, value=f"{prefix}-{i}".encode(), partition=0,
                          on_delivery=lambda e, m: res.append(e))
            assert p.flush(timeout_ms / 1000 + 10) == 0
            return res

        # ISR 2 >= min.insync.replicas 2: acks=all still works.
        res = produce(two, "all", 50, "ok")
        assert res == [None] * 50, [e for e in res if e is not None][:3]
        # ISR 2 < min.insync.replicas 3: acks=all is refused with NOT_ENOUGH_REPLICAS (19)...
        res = produce(three, "all", 5, "refused")
        codes = {e.code() if e is not None else None for e in res}
        assert codes == {KafkaError.NOT_ENOUGH_REPLICAS}, [str(e) for e in res]
        # ...while acks=1 is still taken.
        res = produce(three, "1", 20, "one")
        assert res == [None] * 20, [e for e in res if e is not None][:3]
        # acks=1 is answered before the ISR follower fetched it: read until all 20 are there.
        got, complete = jepsen.read_log(jepsen.bootstrap_of(cluster), three, 1, min_end={0: 20}, timeout=30)
        assert complete
        values = [v for _, v in got[0]]
        assert values == [f"one-{i}".encode() for i in range(20)], "refused records must not be appended"
    finally:
        follower.spawn().wait_listening()
    wait_isr_full(cluster, three, 3, timeout=60)
    wait_isr_full(cluster, two, 3, timeout=60)
    # Full ISR again: acks=all is accepted on the min.insync.replicas=3 topic.
    p = Producer({"bootstrap.servers": jepsen.bootstrap_of(cluster), "acks": "all", "enable.idempotence": True})
    res = []
    for i in range(10):
        p.produce(three, value=f"back-{i}".encode(), partition=0, on_delivery=lambda e, m: res.append(e))
    assert p.flush(30) == 0
    assert res == [None] * 10, res
    report, same = wait_replicas_identical(cluster, three, 1, rf=3, timeout=30)
    assert same, report



@pytest.mark.parametrize("absence", ["paused", "killed"])
def test_topic_recreated_while_a_replica_missed_it(tmp_path, absence):
    """A topic deleted and re-created under its name while one replica missed it: paused
    (it then applies both changes late, in one go) or killed and restarted before its session
    expired (so it stays a replica, as in a rolling restart). That replica must end with the
    new topic's records only, identical to the other replicas: its old log (epoch 0, 50
    records) must not be truncated to the new leader's epoch-0 end (10) and kept as offsets
    0..9. The broker used to get this right only because the deletion, matched by name,
    reached the shard before the new topic's replica opened; topic ids (partition.metadata,
    `Change::TopicDeleted`'s id) make it independent of that order. Both orders are run here;
    the release before topic ids passes them too."""
    # Its own cluster: a session long enough that the absent node is never fenced, so it
    # stays a replica of the new topic; and no crash signals (a killed node would be fenced
    # at once: its heartbeat connection closes, its controller port refuses).
    extra = [*o("broker.session.timeout.ms", 15000), *o("broker.heartbeat.interval.ms", 500),
             *o("broker.session.disconnect.ms", 0),
             *o("default.replication.factor", 3)]
    c = Cluster(str(tmp_path / "reborn"), 3, extra).start()
    victim = None
    try:
        topic = create(c, unique("reborn"), 1)
        gone = create(c, unique("gone"), 1)  # deleted for good while the node is away
        # No auto-creation: a live producer's metadata refresh (e.g. when the killed node's
        # connection drops) would re-create the topics right after their deletion, as in Kafka.
        p = Producer({"bootstrap.servers": jepsen.bootstrap_of(c), "acks": "all", "allow.auto.create.topics": False})
        for i in range(50):
            p.produce(topic, value=f"old-{i:03}".encode(), partition=0)
            p.produce(gone, value=f"gone-{i:03}".encode(), partition=0)
        assert p.flush(30) == 0
        report, same = wait_replicas_identical(c, topic, 1, rf=3, timeout=30)
        assert same, report
        # A follower that is not the active controller (the quorum must go on without it).
        busy = {c.active_controller().id, leader_of(c, topic, 0)}
        victim = next(n for n in c.nodes if n.id not in busy)
        others = [n for n in c.nodes if n is not victim]
        if absence == "paused":
            pause(victim)
        else:
            victim.kill9()
        # Deleted and re-created through the riptide CLI, which sends admin requests to the
        # broker it bootstraps from (which forwards them to the active controller). librdkafka
        # picks brokers from metadata, which still lists the paused node, and a request that
        # lands there hangs until its socket timeout.
        quick = {"socket.timeout.ms": 2000}
        bootstrap = others[0].bootstrap

        def cli(*args):
            out = subprocess.run([BINARY, "topic", *args, "-b", bootstrap], capture_output=True, text=True,
                                 timeout=60)
            assert out.returncode == 0, out.stdout + out.stderr

        cli("delete", topic, gone)
        wait_for(lambda: all(not {topic, gone} & set(AdminClient({"bootstrap.servers": n.bootstrap, **quick}).list_topics(timeout=10).topics)
                             for n in others) or None, 30, "the topics gone on the running nodes")
        cli("create", topic, "--partitions", "1", "--replication-factor", "3")
        a = AdminClient({"bootstrap.servers": bootstrap, **quick})
        md = a.list_topics(topic, timeout=10).topics[topic].partitions[0]
        assert victim.id in md.replicas, f"the absent node must be a replica of the new topic: {md.replicas}"
        # acks=1: the absent replica is still in the new topic's ISR and would hold acks=all.
        p = Producer({"bootstrap.servers": ",".join(n.bootstrap for n in others), "acks": "1",
                      "allow.auto.create.topics": False, **quick})
        for i in range(10):
            p.produce(topic, value=f"new-{i:03}".encode(), partition=0)
        assert p.flush(30) == 0
        if absence == "paused":
            resume(victim)
        else:
            victim.spawn().wait_listening()
        report, same = wait_replicas_identical(c, topic, 1, rf=3, timeout=60)
        assert same, f"the replicas differ after the absent one caught up: {report}"
        values = [v for _, v in jepsen.replica_log(victim.data_dir, topic, 0)]
        assert values == [f"new-{i:03}".encode() for i in range(10)], values[:12]
        # The topic deleted for good leaves no directory behind on the node that missed it.
        wait_for(lambda: not os.path.exists(os.path.join(victim.data_dir, f"{gone}-0")) or None, 30,
                 f"{gone}-0 deleted on node {victim.id}")
    finally:
        if victim is not None and jepsen.paused(victim):
            resume(victim)
        c.stop()
