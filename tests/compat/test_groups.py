"""Consumer groups against riptide with real clients: confluent-kafka (librdkafka), kafka-python,
aiokafka and kcat -G. Partitions are shared out, every message consumed exactly once, partitions
move when a member leaves or dies, committed offsets survive a broker restart, and the admin
APIs (list/describe/delete groups, offsets) answer as Kafka does.

Short session timeouts (6 s, the broker minimum) and small message counts keep the file near a
minute and a half; the broker's group.initial.rebalance.delay.ms is Kafka's 3 s."""
import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import unique

SESSION_MS = 6000


def create(broker, topic, partitions):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(15)


def produce(broker, topic, partitions, per_partition, prefix="m"):
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for part in range(partitions):
        for i in range(per_partition):
            p.produce(topic, value=f"{prefix}-{part}-{i}".encode(), partition=part)
    assert p.flush(30) == 0


def consumer(broker, group, topic, **extra):
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 500,
            "partition.assignment.strategy": "range"}
    conf.update(extra)
    c = Consumer(conf)
    c.subscribe([topic])
    return c


def poll_until(consumers, done, timeout=40, sink=None):
    """Polls every consumer in turn until done() holds; messages go to sink[consumer index]."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for i, c in enumerate(consumers):
            m = c.poll(0.05)
            if m is not None:
                assert m.error() is None, m.error()
                if sink is not None:
                    sink[i].append((m.partition(), m.offset(), m.value()))
        if done():
            return
    raise AssertionError("condition not reached; assignments: "
                         + str([[tp.partition for tp in c.assignment()] for c in consumers]))


def sizes(consumers):
    return sorted(len(c.assignment()) for c in consumers)


def test_three_consumers_share_six_partitions_exactly_once(broker):
    topic, group = unique("grp6"), unique("g3")
    create(broker, topic, 6)
    cs = [consumer(broker, group, topic) for _ in range(3)]
    got = [[], [], []]
    try:
        poll_until(cs, lambda: sizes(cs) == [2, 2, 2], sink=got)
        owned = [{tp.partition for tp in c.assignment()} for c in cs]
        assert set().union(*owned) == set(range(6))
        produce(broker, topic, 6, 10)
        poll_until(cs, lambda: sum(map(len, got)) >= 60, sink=got)
        time.sleep(0.5)
        poll_until(cs, lambda: True, sink=got)
    finally:
        for c in cs:
            c.close()
    everything = [m for per in got for m in per]
    assert len(everything) == 60
    assert len({(p, o) for p, o, _ in everything}) == 60, "a message was consumed twice"
    for i, per in enumerate(got):
        assert {p for p, _, _ in per} <= owned[i], "consumed a partition it did not own"


def test_closed_member_hands_its_partitions_over(broker):
    topic, group = unique("grpclose"), unique("gclose")
    create(broker, topic, 6)
    cs = [consumer(broker, group, topic) for _ in range(3)]
    try:
        poll_until(cs, lambda: sizes(cs) == [2, 2, 2])
        leaving = cs.pop()
        started = time.time()
        leaving.close()  # sends LeaveGroup: no need to wait for the session timeout
        poll_until(cs, lambda: sizes(cs) == [3, 3])
        assert time.time() - started < SESSION_MS / 1000
        got = [[], []]
        produce(broker, topic, 6, 5)
        poll_until(cs, lambda: sum(map(len, got)) >= 30, sink=got)
        assert {p for per in got for p, _, _ in per} == set(range(6))
    finally:
        for c in cs:
            c.close()


KILLED_MEMBER = """
import sys, time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "session.timeout.ms": %d,
              "heartbeat.interval.ms": 500, "partition.assignment.strategy": "range"})
c.subscribe([sys.argv[3]])
announced = False
while True:
    c.poll(0.1)
    if c.assignment() and not announced:
        print("assigned", len(c.assignment()), flush=True)
        announced = True
""" % SESSION_MS


def test_killed_member_partitions_move_within_session_timeout(broker):
    topic, group = unique("grpkill"), unique("gkill")
    create(broker, topic, 6)
    cs = [consumer(broker, group, topic) for _ in range(2)]
    child = subprocess.Popen([sys.executable, "-c", KILLED_MEMBER, broker.bootstrap, group, topic],
                             stdout=subprocess.PIPE, text=True)
    try:
        poll_until(cs, lambda: sizes(cs) == [2, 2])
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        killed_at = time.time()
        poll_until(cs, lambda: sizes(cs) == [3, 3])
        moved_after = time.time() - killed_at
        # Expiry after the session timeout, then one rebalance round (heartbeat 0.5 s).
        assert moved_after < SESSION_MS / 1000 + 4, moved_after
        got = [[], []]
        produce(broker, topic, 6, 5)
        poll_until(cs, lambda: sum(map(len, got)) >= 30, sink=got)
    finally:
        if child.poll() is None:
            child.kill()
        for c in cs:
            c.close()


def test_committed_offsets_survive_restart(fresh_broker):
    topic, group = unique("grprestart"), unique("grestart")
    create(fresh_broker, topic, 2)
    produce(fresh_broker, topic, 2, 20)
    c = consumer(fresh_broker, group, topic, **{"enable.auto.commit": False})
    seen = [[]]
    poll_until([c], lambda: len(seen[0]) >= 10, sink=seen)
    # Commit exactly what was consumed (per partition: last offset + 1).
    last = {}
    for p, o, _ in seen[0]:
        last[p] = max(last.get(p, -1), o)
    c.commit(offsets=[TopicPartition(topic, p, o + 1) for p, o in last.items()], asynchronous=False)
    c.close()
    fresh_broker.restart()
    c = consumer(fresh_broker, group, topic, **{"enable.auto.commit": False})
    try:
        committed = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=20)
        committed = {tp.partition: tp.offset for tp in committed}
        for p, o in last.items():
            assert committed[p] == o + 1, committed
        rest = [[]]
        poll_until([c], lambda: len(rest[0]) >= 40 - len(seen[0]), sink=rest)
        time.sleep(0.3)
        poll_until([c], lambda: True, sink=rest)
    finally:
        c.close()
    first_after = {}
    for p, o, _ in rest[0]:
        first_after[p] = min(first_after.get(p, 1 << 62), o)
    for p, o in last.items():
        assert first_after.get(p, o + 1) == o + 1, f"partition {p} resumed at {first_after.get(p)}"
    before = {(p, o) for p, o, _ in seen[0]}
    after = {(p, o) for p, o, _ in rest[0]}
    assert not before & after and len(before | after) == 40


def test_cooperative_sticky_rebalances_incrementally(broker):
    topic, group = unique("grpcoop"), unique("gcoop")
    create(broker, topic, 6)
    extra = {"partition.assignment.strategy": "cooperative-sticky"}
    cs = [consumer(broker, group, topic, **extra) for _ in range(2)]
    try:
        poll_until(cs, lambda: sizes(cs) == [3, 3])
        before = [{tp.partition for tp in c.assignment()} for c in cs]
        cs.append(consumer(broker, group, topic, **extra))
        poll_until(cs, lambda: sizes(cs) == [2, 2, 2])
        after = [{tp.partition for tp in c.assignment()} for c in cs]
        # Sticky: the two original members kept partitions they had; only two moved.
        assert after[0] <= before[0] and after[1] <= before[1]
        got = [[], [], []]
        produce(broker, topic, 6, 5)
        poll_until(cs, lambda: sum(map(len, got)) >= 30, sink=got)
        assert len({(p, o) for per in got for p, o, _ in per}) == 30
    finally:
        for c in cs:
            c.close()


def test_admin_list_describe_offsets_delete(broker):
    from confluent_kafka import ConsumerGroupTopicPartitions
    topic, group = unique("grpadmin"), unique("gadmin")
    create(broker, topic, 2)
    produce(broker, topic, 2, 3)
    c = consumer(broker, group, topic, **{"enable.auto.commit": False})
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    try:
        got = [[]]
        poll_until([c], lambda: len(got[0]) >= 6, sink=got)
        c.commit(asynchronous=False)
        listed = a.list_consumer_groups().result(15)
        assert group in {g.group_id for g in listed.valid}
        desc = a.describe_consumer_groups([group])[group].result(15)
        assert str(desc.state).endswith("STABLE") and len(desc.members) == 1
        assert {tp.partition for tp in desc.members[0].assignment.topic_partitions} == {0, 1}
        # The group is not empty: deleting it must fail.
        try:
            a.delete_consumer_groups([group])[group].result(15)
            raise AssertionError("deleted a group with members")
        except Exception as e:  # noqa: BLE001 - KafkaException with NON_EMPTY_GROUP
            assert "NON_EMPTY_GROUP" in str(e)
    finally:
        c.close()
    offsets = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(15)
    assert sorted((tp.partition, tp.offset) for tp in offsets.topic_partitions) == [(0, 3), (1, 3)]
    a.delete_consumer_groups([group])[group].result(15)
    assert group not in {g.group_id for g in a.list_consumer_groups().result(15).valid}


def test_kafka_python_group_consumers(broker):
    from kafka import KafkaConsumer
    from kafka.admin import KafkaAdminClient
    topic, group = unique("grpkp"), unique("gkp")
    create(broker, topic, 4)
    produce(broker, topic, 4, 5)
    kw = dict(bootstrap_servers=broker.bootstrap, group_id=group, auto_offset_reset="earliest",
              session_timeout_ms=SESSION_MS, heartbeat_interval_ms=500, enable_auto_commit=False)
    cs = [KafkaConsumer(topic, **kw) for _ in range(2)]
    got, dups, lock, stop = set(), [], threading.Lock(), threading.Event()

    def run(c):
        # Each consumer polls on its own thread, as applications do: a consumer blocked in a
        # rebalance must not keep the other from joining.
        while not stop.is_set():
            for records in c.poll(timeout_ms=100).values():
                with lock:
                    for r in records:
                        if (r.partition, r.offset) in got:
                            dups.append((r.partition, r.offset))
                        got.add((r.partition, r.offset))

    threads = [threading.Thread(target=run, args=(c,)) for c in cs]
    try:
        for t in threads:
            t.start()
        deadline = time.time() + 60
        while time.time() < deadline and (len(got) < 20 or sorted(len(c.assignment()) for c in cs) != [2, 2]):
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(10)
        assert dups == []
        assert len(got) == 20
        assert sorted(len(c.assignment()) for c in cs) == [2, 2]
        for c in cs:
            c.commit()
    finally:
        stop.set()
        for c in cs:
            c.close()
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    offsets = admin.list_group_offsets(group)
    offsets = offsets.get(group, offsets)
    assert sorted((tp.partition, om.offset) for tp, om in offsets.items()) == [(p, 5) for p in range(4)]
    # OffsetDelete on the now empty group removes just the partitions asked for.
    from kafka import TopicPartition as KTP
    result = admin.delete_group_offsets(group, [KTP(topic, 0), KTP(topic, 1)])
    assert all(getattr(e, "errno", 0) == 0 for e in result.values()), result
    offsets = admin.list_group_offsets(group)
    offsets = offsets.get(group, offsets)
    assert sorted(tp.partition for tp, om in offsets.items() if om.offset >= 0) == [2, 3]


def test_aiokafka_group_consumer(broker):
    from aiokafka import AIOKafkaConsumer
    topic, group = unique("grpaio"), unique("gaio")
    create(broker, topic, 2)
    produce(broker, topic, 2, 5)

    async def consume(expected):
        c = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=SESSION_MS, heartbeat_interval_ms=500)
        await c.start()
        out = []
        try:
            while len(out) < expected:
                batch = await asyncio.wait_for(c.getmany(timeout_ms=500), 30)
                for records in batch.values():
                    out.extend((r.partition, r.offset) for r in records)
            await c.commit()
            more = await c.getmany(timeout_ms=1000)
            out.extend((r.partition, r.offset) for rs in more.values() for r in rs)
        finally:
            await c.stop()
        return out

    first = asyncio.run(consume(10))
    assert sorted(first) == [(p, o) for p in range(2) for o in range(5)]
    produce(broker, topic, 2, 1, prefix="late")
    second = asyncio.run(consume(2))
    assert sorted(second) == [(0, 5), (1, 5)], "resumed from the committed offsets"


def test_kcat_balanced_consumer(broker):
    topic, group = unique("grpkcat"), unique("gkcat")
    create(broker, topic, 3)
    produce(broker, topic, 3, 4)
    cmd = ["kcat", "-b", broker.bootstrap, "-G", group, topic, "-e", "-q", "-f", "%p:%o\n",
           "-X", "auto.offset.reset=earliest", "-X", f"session.timeout.ms={SESSION_MS}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    lines = sorted(out.stdout.split())
    assert lines == sorted(f"{p}:{o}" for p in range(3) for o in range(4)), out.stderr
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert again.stdout.split() == [], "kcat's commits were not kept"


def test_static_member_restart_keeps_partitions_without_rebalance(broker):
    topic, group = unique("grpstatic"), unique("gstatic")
    create(broker, topic, 6)
    revokes = {"a": 0}

    def on_revoke(_consumer, _partitions):
        revokes["a"] += 1

    a = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "group.instance.id": "a",
                  "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 500,
                  "partition.assignment.strategy": "range"})
    a.subscribe([topic], on_revoke=on_revoke)
    b = consumer(broker, group, topic, **{"group.instance.id": "b"})
    try:
        poll_until([a, b], lambda: sizes([a, b]) == [3, 3])
        b_parts = {tp.partition for tp in b.assignment()}
        revokes_before = revokes["a"]
        b.close()  # a static member leaves no LeaveGroup behind (KIP-345)
        b = consumer(broker, group, topic, **{"group.instance.id": "b"})
        poll_until([a, b], lambda: sizes([a, b]) == [3, 3])
        assert {tp.partition for tp in b.assignment()} == b_parts
        # Wait past a heartbeat round: `a` must not have been asked to rebalance.
        deadline = time.time() + 2
        while time.time() < deadline:
            a.poll(0.1)
            b.poll(0.1)
        assert revokes["a"] == revokes_before, "the other member was rebalanced"
    finally:
        a.close()
        b.close()


def test_kip848_consumer_protocol_server_side_assignment(broker):
    """librdkafka with group.protocol=consumer: ConsumerGroupHeartbeat, server-side uniform
    assignor, incremental moves, leave, commits and ConsumerGroupDescribe."""
    from confluent_kafka import ConsumerGroupTopicPartitions
    topic, group = unique("grp848"), unique("g848")
    create(broker, topic, 6)

    def member():
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "group.protocol": "consumer",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([topic])
        return c

    cs = [member(), member()]
    try:
        poll_until(cs, lambda: sizes(cs) == [3, 3])
        before = [{tp.partition for tp in c.assignment()} for c in cs]
        cs.append(member())
        poll_until(cs, lambda: sizes(cs) == [2, 2, 2])
        after = [{tp.partition for tp in c.assignment()} for c in cs]
        assert after[0] <= before[0] and after[1] <= before[1], "a partition moved that did not have to"
        got = [[], [], []]
        produce(broker, topic, 6, 5)
        poll_until(cs, lambda: sum(map(len, got)) >= 30, sink=got)
        assert len({(p, o) for per in got for p, o, _ in per}) == 30
        for c in cs:
            c.commit(asynchronous=False)
        a = AdminClient({"bootstrap.servers": broker.bootstrap})
        desc = a.describe_consumer_groups([group])[group].result(15)
        assert len(desc.members) == 3
        offsets = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(15)
        assert sorted((tp.partition, tp.offset) for tp in offsets.topic_partitions) == [(p, 5) for p in range(6)]
        leaving = cs.pop()
        leaving.close()  # heartbeat with epoch -1: its partitions go to the others
        poll_until(cs, lambda: sizes(cs) == [3, 3])
    finally:
        for c in cs:
            c.close()
