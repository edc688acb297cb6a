"""Transactions (issue 17) with confluent-kafka (librdkafka): commit and abort seen through
read_committed and read_uncommitted consumers, an open transaction holding read_committed
consumers at the last stable offset, send_offsets_to_transaction in a consume-transform-
produce loop (exactly-once output), a newer producer fencing an older one, a rebalance
fencing a stale offset commit, a transaction aborted on its timeout, and a broker killed and
restarted mid-transaction."""
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker, IO_ARGS, unique


def create(broker, topic, partitions=1):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    fs = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    fs[topic].result(15)


def txn_producer(broker, tid, **extra):
    conf = {"bootstrap.servers": broker.bootstrap, "transactional.id": tid, "linger.ms": 5}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(30)
    return p


def read(broker, topic, isolation, partitions=(0,), idle_s=3.0, timeout_s=30):
    """Every record readable now at `isolation`, as (partition, offset, value): polls until
    nothing new arrives for `idle_s`."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("reader"),
                  "enable.auto.commit": False, "isolation.level": isolation,
                  "enable.partition.eof": False})
    c.assign([TopicPartition(topic, p, 0) for p in partitions])
    out = []
    deadline = time.time() + timeout_s
    last_new = time.time()
    while time.time() < deadline and time.time() - last_new < idle_s:
        m = c.poll(0.2)
        if m is None:
            continue
        assert m.error() is None, m.error()
        out.append((m.partition(), m.offset(), m.value()))
        last_new = time.time()
    c.close()
    return out


def metrics_text(broker):
    import urllib.request
    return urllib.request.urlopen(broker.metrics_url, timeout=5).read().decode()


def values(records):
    return [v for (_, _, v) in records]


def test_commit_and_abort_through_both_isolation_levels(broker):
    topic = unique("txn-basic")
    create(broker, topic, partitions=2)
    p = txn_producer(broker, unique("tid-basic"))
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=f"c1-{i}".encode(), partition=i % 2)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(4):
        p.produce(topic, value=f"ab-{i}".encode(), partition=i % 2)
    p.flush(30)
    p.abort_transaction(30)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, value=f"c2-{i}".encode(), partition=i % 2)
    p.commit_transaction(30)
    committed = read(broker, topic, "read_committed", partitions=(0, 1))
    uncommitted = read(broker, topic, "read_uncommitted", partitions=(0, 1))
    expect_committed = sorted([f"c1-{i}".encode() for i in range(5)] + [f"c2-{i}".encode() for i in range(3)])
    assert sorted(values(committed)) == expect_committed
    aborted = [f"ab-{i}".encode() for i in range(4)]
    assert sorted(values(uncommitted)) == sorted(expect_committed + aborted)
    # Markers take offsets: each partition's offsets have gaps where they are.
    offsets_p0 = [o for (part, o, _) in uncommitted if part == 0]
    assert offsets_p0 != list(range(len(offsets_p0)))


def test_an_open_transaction_holds_read_committed_at_the_last_stable_offset(broker):
    topic = unique("txn-lso")
    create(broker, topic)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce(topic, value=b"before", partition=0)
    plain.flush(10)
    p = txn_producer(broker, unique("tid-lso"))
    p.begin_transaction()
    p.produce(topic, value=b"open-0", partition=0)
    p.flush(30)
    # A non-transactional record after the open transaction is not stable either.
    plain.produce(topic, value=b"after", partition=0)
    plain.flush(10)
    assert values(read(broker, topic, "read_committed", idle_s=2)) == [b"before"]
    assert values(read(broker, topic, "read_uncommitted", idle_s=2)) == [b"before", b"open-0", b"after"]
    # ListOffsets "latest": the last stable offset for read_committed, the high watermark else.
    latest = {}
    for isolation in ("read_committed", "read_uncommitted"):
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("lso"),
                      "isolation.level": isolation})
        latest[isolation] = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        c.close()
    assert latest == {"read_committed": (0, 1), "read_uncommitted": (0, 3)}
    p.commit_transaction(30)
    assert values(read(broker, topic, "read_committed")) == [b"before", b"open-0", b"after"]
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("lso"),
                  "isolation.level": "read_committed"})
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 4), "past the marker"
    c.close()


def test_consume_transform_produce_is_exactly_once(broker):
    src, dst = unique("txn-in"), unique("txn-out")
    create(broker, src)
    create(broker, dst)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    n = 40
    for i in range(n):
        plain.produce(src, value=str(i).encode(), partition=0)
    plain.flush(10)
    group = unique("eos")
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(src, 0)])
    p = txn_producer(broker, unique("tid-eos"))
    done, rounds = 0, 0
    while done < n and rounds < 100:
        rounds += 1
        batch = consumer.consume(num_messages=7, timeout=2)
        batch = [m for m in batch if m.error() is None]
        if not batch:
            continue
        p.begin_transaction()
        for m in batch:
            p.produce(dst, value=b"x" + m.value(), partition=0)
        p.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                      consumer.consumer_group_metadata(), 30)
        if rounds == 2:
            # A failed round: aborted, and the consumer goes back to the committed offset.
            p.flush(30)
            p.abort_transaction(30)
            committed = consumer.committed([TopicPartition(src, 0)], timeout=10)[0].offset
            consumer.seek(TopicPartition(src, 0, committed if committed >= 0 else 0))
            continue
        p.commit_transaction(30)
        done = int(batch[-1].value()) + 1
    consumer.close()
    out = values(read(broker, dst, "read_committed"))
    assert out == [b"x" + str(i).encode() for i in range(n)], "each input once, in order"
    everything = values(read(broker, dst, "read_uncommitted"))
    assert len(everything) > n, "the aborted round's records are in the log"
    check = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    assert check.committed([TopicPartition(src, 0)], timeout=10)[0].offset == n
    check.close()


def test_a_new_producer_fences_the_old_one(broker):
    topic = unique("txn-fence")
    create(broker, topic)
    tid = unique("tid-fence")
    old = txn_producer(broker, tid)
    old.begin_transaction()
    old.produce(topic, value=b"zombie", partition=0)
    old.flush(30)
    new = txn_producer(broker, tid)  # aborts the old producer's open transaction
    new.begin_transaction()
    new.produce(topic, value=b"fresh", partition=0)
    new.commit_transaction(30)
    with pytest.raises(KafkaException) as e:
        old.produce(topic, value=b"zombie-2", partition=0)
        old.commit_transaction(30)
    err = e.value.args[0]
    assert err.fatal() or "fenced" in err.str().lower() or "epoch" in err.str().lower(), err
    assert values(read(broker, topic, "read_committed")) == [b"fresh"]
    assert b"zombie" in values(read(broker, topic, "read_uncommitted", idle_s=2))


def test_a_stuck_transaction_is_aborted_on_its_timeout(tmp_path):
    b = Broker(str(tmp_path / "data"), extra_args=[
        "--shards", "2", "--no-pin", *IO_ARGS,
        "--override", "transaction.abort.timed.out.transaction.cleanup.interval.ms=500"]).start()
    try:
        topic = unique("txn-timeout")
        create(b, topic)
        p = txn_producer(b, unique("tid-timeout"), **{"transaction.timeout.ms": 2000})
        p.begin_transaction()
        p.produce(topic, value=b"stuck", partition=0)
        p.flush(30)
        assert read(b, topic, "read_committed", idle_s=1) == []
        assert "riptide_transactions_open 1" in metrics_text(b), "the open transaction is counted"
        time.sleep(4)
        # Aborted by the coordinator: the last stable offset moved past it.
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("t"),
                      "isolation.level": "read_committed"})
        c.assign([TopicPartition(topic, 0, 0)])
        c.poll(3)
        pos = c.position([TopicPartition(topic, 0)])[0].offset
        c.close()
        assert pos == 2, f"consumer position {pos}: past the record and the ABORT marker"
        with pytest.raises(KafkaException):
            p.commit_transaction(10)
        metrics = metrics_text(b)
        assert "riptide_transactions_timed_out_total 1" in metrics
        assert "riptide_transactions_aborted_total 1" in metrics
        assert "riptide_transactions_open 0" in metrics
    finally:
        b.stop()


def test_broker_killed_mid_transaction_keeps_committed_data_and_aborts_the_open_one(tmp_path):
    b = Broker(str(tmp_path / "data"), extra_args=["--shards", "2", "--no-pin", *IO_ARGS]).start()
    try:
        topic = unique("txn-crash")
        create(b, topic)
        tid = unique("tid-crash")
        p = txn_producer(b, tid)
        p.begin_transaction()
        for i in range(3):
            p.produce(topic, value=f"kept-{i}".encode(), partition=0)
        p.commit_transaction(30)
        p.begin_transaction()
        p.produce(topic, value=b"in-flight", partition=0)
        p.flush(30)
        b.kill9()
        b.start()
        assert values(read(b, topic, "read_committed", idle_s=2)) == [f"kept-{i}".encode() for i in range(3)]
        # The next instance of the producer recovers the id: the open transaction is aborted.
        p2 = txn_producer(b, tid)
        p2.begin_transaction()
        p2.produce(topic, value=b"after", partition=0)
        p2.commit_transaction(30)
        assert values(read(b, topic, "read_committed")) == [
            b"kept-0", b"kept-1", b"kept-2", b"after"]
        # And once more across a clean restart: the aborted index and markers persist.
        b.restart()
        assert values(read(b, topic, "read_committed")) == [
            b"kept-0", b"kept-1", b"kept-2", b"after"]
        assert b"in-flight" in values(read(b, topic, "read_uncommitted", idle_s=2))
    finally:
        b.stop()


def test_a_rebalance_mid_transaction_fences_the_stale_offset_commit(broker):
    """KIP-447: offsets sent with the consumer group metadata of a generation the group left
    behind (a rebalance happened mid-transaction) are refused; the producer aborts, nothing of
    the transaction is visible and the group's committed offset does not move."""
    src, dst = unique("txn-rb-in"), unique("txn-rb-out")
    create(broker, src, partitions=2)
    create(broker, dst)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        plain.produce(src, value=str(i).encode(), partition=i % 2)
    plain.flush(10)
    group = unique("rb")
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "isolation.level": "read_committed",
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
    a = Consumer(conf)
    a.subscribe([src])
    got = []
    deadline = time.time() + 30
    while len(got) < 10 and time.time() < deadline:
        m = a.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m)
    assert len(got) == 10
    stale = a.consumer_group_metadata()
    positions = a.position(a.assignment())
    p = txn_producer(broker, unique("tid-rb"))
    p.begin_transaction()
    for m in got:
        p.produce(dst, value=b"y" + m.value(), partition=0)
    p.flush(30)
    # A second member joins: the group moves to a new generation (a polls to rejoin).
    b = Consumer(conf)
    b.subscribe([src])
    deadline = time.time() + 60
    while time.time() < deadline and not (a.assignment() and b.assignment()
                                          and len(a.assignment()) + len(b.assignment()) == 2):
        a.poll(0.2)
        b.poll(0.2)
    assert len(a.assignment()) == 1 and len(b.assignment()) == 1, "rebalanced"
    with pytest.raises(KafkaException) as e:
        p.send_offsets_to_transaction(positions, stale, 30)
        p.commit_transaction(30)
    err = e.value.args[0]
    assert err.code() == KafkaError.ILLEGAL_GENERATION and err.txn_requires_abort(), err
    p.abort_transaction(30)
    assert values(read(broker, dst, "read_committed", idle_s=2)) == []
    check = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    committed = check.committed([TopicPartition(src, 0), TopicPartition(src, 1)], timeout=10)
    assert [tp.offset for tp in committed] == [-1001, -1001], "no offset committed"
    check.close()
    a.close()
    b.close()


def test_an_idle_transactional_id_expires(tmp_path):
    """transactional.id.expiration.ms: an id idle past it is forgotten with a tombstone in
    __transaction_state (also after a restart), and a producer using it again starts over."""
    b = Broker(str(tmp_path / "data"), extra_args=[
        "--shards", "2", "--no-pin", *IO_ARGS,
        "--override", "transactional.id.expiration.ms=1500",
        "--override", "transaction.remove.expired.transaction.cleanup.interval.ms=300"]).start()
    try:
        topic, tid = unique("txn-expire"), unique("tid-expire")
        create(b, topic)
        p = txn_producer(b, tid)
        p.begin_transaction()
        p.produce(topic, value=b"before", partition=0)
        p.commit_transaction(30)
        deadline = time.time() + 20
        while f"transactional id {tid} expired" not in b.read_log() and time.time() < deadline:
            time.sleep(0.3)
        assert f"transactional id {tid} expired" in b.read_log()
        b.restart()  # the tombstone is read back
        p2 = txn_producer(b, tid)
        p2.begin_transaction()
        p2.produce(topic, value=b"after", partition=0)
        p2.commit_transaction(30)
        assert values(read(b, topic, "read_committed")) == [b"before", b"after"]
    finally:
        b.stop()
