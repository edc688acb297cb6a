"""Transactions on a 3-node cluster (issue 17): a transaction spanning partitions led by all
three brokers (the coordinator writes the markers of the partitions it does not lead with
WriteTxnMarkers to their leaders), exactly-once output through send_offsets_to_transaction,
and the coordinator's node killed: the next leader of its __transaction_state partition loads
the id's state, so a new producer instance continues (the epoch keeps growing, the open
transaction is aborted). And transactions v2 (KIP-890) on the wire: a partition led by
another broker than the coordinator joins the transaction implicitly."""
import struct
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster
from conftest import unique
from wire import call, compact_string, record_batch, uvarint

FAST = ["--override", "broker.session.timeout.ms=3000", "--override", "broker.heartbeat.interval.ms=500"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("txn-cluster")), 3, FAST).start()
    yield c
    c.stop()


def create(bootstrap, name, partitions, rf=3, timeout=30):
    a = AdminClient({"bootstrap.servers": bootstrap})
    fs = a.create_topics([NewTopic(name, partitions, rf)], operation_timeout=timeout)
    fs[name].result(timeout)


def leaders(bootstrap, topic):
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return {p.id: p.leader for p in md.topics[topic].partitions.values()}


def read(bootstrap, topic, partitions, isolation, idle_s=3.0, timeout_s=60):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"), "enable.auto.commit": False,
                  "isolation.level": isolation})
    c.assign([TopicPartition(topic, p, 0) for p in partitions])
    out, deadline, last_new = [], time.time() + timeout_s, time.time()
    while time.time() < deadline and time.time() - last_new < idle_s:
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        out.append(m.value())
        last_new = time.time()
    c.close()
    return out


def producer(bootstrap, tid):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 5})
    p.init_transactions(60)
    return p


def test_a_transaction_across_every_leader_commits_and_aborts(cluster):
    topic = unique("txn-spread")
    create(cluster.bootstrap, topic, 6)
    assert len(set(leaders(cluster.bootstrap, topic).values())) == 3, "partitions led by every node"
    p = producer(cluster.bootstrap, unique("tid-spread"))
    p.begin_transaction()
    for i in range(12):
        p.produce(topic, value=f"c-{i}".encode(), partition=i % 6)
    p.commit_transaction(60)
    p.begin_transaction()
    for i in range(6):
        p.produce(topic, value=f"a-{i}".encode(), partition=i % 6)
    p.flush(30)
    p.abort_transaction(60)
    committed = read(cluster.bootstrap, topic, range(6), "read_committed")
    assert sorted(committed) == sorted(f"c-{i}".encode() for i in range(12))
    everything = read(cluster.bootstrap, topic, range(6), "read_uncommitted")
    assert sorted(everything) == sorted([f"c-{i}".encode() for i in range(12)] + [f"a-{i}".encode() for i in range(6)])


def test_exactly_once_consume_transform_produce(cluster):
    src, dst = unique("txn-c-in"), unique("txn-c-out")
    create(cluster.bootstrap, src, 1)
    create(cluster.bootstrap, dst, 3)
    plain = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    n = 30
    for i in range(n):
        plain.produce(src, value=str(i).encode(), partition=0)
    plain.flush(30)
    group = unique("eos-cluster")
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(src, 0)])
    p = producer(cluster.bootstrap, unique("tid-eos-cluster"))
    done, rounds = 0, 0
    while done < n and rounds < 100:
        rounds += 1
        batch = [m for m in consumer.consume(num_messages=8, timeout=2) if m.error() is None]
        if not batch:
            continue
        p.begin_transaction()
        for m in batch:
            p.produce(dst, value=b"x" + m.value(), partition=int(m.value()) % 3)
        p.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                      consumer.consumer_group_metadata(), 60)
        p.commit_transaction(60)
        done = int(batch[-1].value()) + 1
    consumer.close()
    out = read(cluster.bootstrap, dst, range(3), "read_committed")
    assert sorted(out) == sorted(b"x" + str(i).encode() for i in range(n))
    check = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group})
    assert check.committed([TopicPartition(src, 0)], timeout=30)[0].offset == n
    check.close()


def test_the_coordinator_fails_over_with_its_state(cluster):
    topic = unique("txn-failover")
    create(cluster.bootstrap, topic, 3)
    tid = unique("tid-failover")
    p = producer(cluster.bootstrap, tid)
    p.begin_transaction()
    p.produce(topic, value=b"kept", partition=0)
    p.commit_transaction(60)
    p.begin_transaction()
    p.produce(topic, value=b"open", partition=1)
    p.flush(30)
    # The node leading the id's __transaction_state partition.
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": unique("probe")})
    md = c.list_topics("__transaction_state", timeout=10)
    c.close()
    java_hash = 0
    for ch in tid:
        java_hash = (java_hash * 31 + ord(ch)) & 0xFFFFFFFF
    if java_hash >= 1 << 31:
        java_hash -= 1 << 32
    part = abs(java_hash) % len(md.topics["__transaction_state"].partitions)
    coordinator = md.topics["__transaction_state"].partitions[part].leader
    victim = cluster.node(coordinator)
    victim.kill9()
    survivors = ",".join(n.bootstrap for n in cluster.nodes if n.id != coordinator)
    try:
        p2 = producer(survivors, tid)  # loaded on the new leader: aborts the open transaction
        p2.begin_transaction()
        p2.produce(topic, value=b"after", partition=2)
        p2.commit_transaction(60)
        out = read(survivors, topic, range(3), "read_committed")
        assert sorted(out) == [b"after", b"kept"]
    finally:
        victim.spawn()
        victim.wait_listening()


# Transactions v2 (KIP-890) spoken on the wire as Kafka 4's Java producer speaks it: no client
# installed here speaks v2 yet (librdkafka and kafkajs use v1).

def _txn_batch(pid, epoch, seq, value):
    """A transactional RecordBatch v2 of one record."""
    return record_batch([value], producer=(pid, epoch, seq), attributes=0x10)


def _retrying(fn, retriable, timeout=60):
    deadline = time.time() + timeout
    while True:
        out = fn()
        code = out[0] if isinstance(out, tuple) else out
        if code not in retriable or time.time() > deadline:
            return out
        time.sleep(0.2)


def _find_coordinator(addr, tid):
    t = tid.encode()
    r = call(addr, 10, 1, struct.pack(">h", len(t)) + t + b"\x01", False)
    _, err = r.take(">ih")
    n = r.take(">h")
    r.pos += max(n, 0)  # error message
    node = r.take(">i")
    return err, node


def _init_producer_id(addr, tid):
    t = tid.encode()
    r = call(addr, 22, 1, struct.pack(">h", len(t)) + t + struct.pack(">i", 60_000), False)
    _, err, pid, epoch = r.take(">ihqh")
    return err, pid, epoch


def _produce_v12(addr, tid, topic, partition, records, version=12):
    body = compact_string(tid) + struct.pack(">hi", -1, 10_000)
    body += uvarint(2) + compact_string(topic)
    body += uvarint(2) + struct.pack(">i", partition) + uvarint(len(records) + 1) + records + uvarint(0)
    body += uvarint(0) + uvarint(0)
    r = call(addr, 0, version, body, True)
    assert r.uvarint() == 2, "one topic"
    r.compact_string()
    assert r.uvarint() == 2, "one partition"
    _, err = r.take(">ih")
    return err


def _end_txn_v5(addr, tid, pid, epoch, commit):
    r = call(addr, 26, 5, compact_string(tid) + struct.pack(">qhb", pid, epoch, int(commit)) + uvarint(0), True)
    _, err, pid, epoch = r.take(">ihqh")
    return err, pid, epoch


def _producer_and_remote_partition(cluster, name):
    """A new 3-partition topic and an initialized transactional id: (topic, id, its
    coordinator's address, (producer id, epoch), a partition led by another broker, that
    leader's address)."""
    topic, tid = unique(f"txn-{name}"), unique(f"tid-{name}")
    create(cluster.bootstrap, topic, 3)
    any_node = cluster.bootstrap.split(",")[0]
    err, coordinator = _retrying(lambda: _find_coordinator(any_node, tid), {14, 15})
    assert err == 0, f"FindCoordinator: error {err}"
    coord = cluster.node(coordinator).bootstrap
    err, pid, epoch = _retrying(lambda: _init_producer_id(coord, tid), {14, 15, 51})
    assert err == 0, f"InitProducerId: error {err}"
    lead = leaders(cluster.bootstrap, topic)
    remote = next(p for p, node in lead.items() if node != coordinator)
    return topic, tid, coord, (pid, epoch), remote, cluster.node(lead[remote]).bootstrap


def test_transactions_v2_add_partitions_on_another_broker_and_bump_the_epoch(cluster):
    """Produce v12 to a partition whose leader is not the id's coordinator: the leader adds
    the partition with AddPartitionsToTxn v5 to the coordinator (no AddPartitionsToTxn from the
    client); EndTxn v5 bumps the epoch and answers it; the old epoch is fenced on the remote
    leader; read_committed sees the committed record only."""
    topic, tid, coord, (pid, epoch), remote, at = _producer_and_remote_partition(cluster, "v2")
    retriable = {6, 19}  # NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS (coordinator busy)
    produce = lambda e, seq, v: _retrying(
        lambda: _produce_v12(at, tid, topic, remote, _txn_batch(pid, e, seq, v)), retriable)
    assert produce(epoch, 0, b"committed") == 0
    assert _end_txn_v5(coord, tid, pid, epoch, True) == (0, pid, epoch + 1)
    assert _end_txn_v5(coord, tid, pid, epoch, True) == (0, pid, epoch + 1), "a retry is answered as done"
    assert produce(epoch, 1, b"zombie") == 90, "PRODUCER_FENCED: its coordinator moved past that epoch"
    assert produce(epoch + 1, 0, b"aborted") == 0
    assert _end_txn_v5(coord, tid, pid, epoch + 1, False) == (0, pid, epoch + 2)
    assert read(cluster.bootstrap, topic, [remote], "read_committed") == [b"committed"]
    assert read(cluster.bootstrap, topic, [remote], "read_uncommitted") == [b"committed", b"aborted"]


def _add_partitions_v2(addr, tid, pid, epoch, topic, partition):
    t, n = tid.encode(), topic.encode()
    body = struct.pack(">h", len(t)) + t + struct.pack(">qhi", pid, epoch, 1)
    body += struct.pack(">h", len(n)) + n + struct.pack(">ii", 1, partition)
    r = call(addr, 24, 2, body, False)
    r.take(">i")  # throttle time
    assert r.take(">i") == 1, "one topic"
    name_len = r.take(">h")
    r.pos += name_len
    assert r.take(">i") == 1, "one partition"
    _, err = r.take(">ih")
    return err


def _end_txn_v2(addr, tid, pid, epoch, commit):
    t = tid.encode()
    r = call(addr, 26, 2, struct.pack(">h", len(t)) + t + struct.pack(">qhb", pid, epoch, int(commit)), False)
    _, err = r.take(">ih")
    return err


def test_a_v1_producer_is_verified_with_a_coordinator_on_another_broker(cluster):
    """KIP-890's defence for v1 producers (Produce below v12): the leader of a partition asks
    the id's coordinator on another broker whether the partition is in the producer's ongoing
    transaction before it appends, so a stray write cannot open a transaction no coordinator
    will end; after the marker the next transaction is checked again (same epoch in v1)."""
    topic, tid, coord, (pid, epoch), remote, at = _producer_and_remote_partition(cluster, "verify")
    produce = lambda seq, v: _retrying(
        lambda: _produce_v12(at, tid, topic, remote, _txn_batch(pid, epoch, seq, v), version=11), {6, 19})
    assert produce(0, b"stray") == 48, "INVALID_TXN_STATE: not added to the transaction"
    assert _retrying(lambda: _add_partitions_v2(coord, tid, pid, epoch, topic, remote), {14, 15, 51}) == 0
    assert produce(0, b"in") == 0
    assert _retrying(lambda: _end_txn_v2(coord, tid, pid, epoch, True), {51}) == 0
    assert produce(1, b"after the marker") == 48, "the next transaction must add the partition again"
    assert read(cluster.bootstrap, topic, [remote], "read_uncommitted") == [b"in"]
