"""Share groups (KIP-932, issue 34) on a 3-node cluster with librdkafka's share consumer. The
partition leaders keep the delivery state and persist it through the share coordinators (the
leaders of `__share_group_state` partitions, on any broker: ReadShareGroupState and
WriteShareGroupState between brokers). A data partition's leader killed -9: its new leader reads
the state back, so records acknowledged before are not delivered again and none is lost."""
import time

import pytest
from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from cluster import Cluster
from conftest import unique

FAST = ["--override", "broker.session.timeout.ms=3000", "--override", "broker.heartbeat.interval.ms=500"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("share-cluster")), 3, FAST).start()
    yield c
    c.stop()


def setup(bootstrap, topic, partitions, group, **configs):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, partitions, 3)], operation_timeout=30)[topic].result(30)
    entries = [ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)]
    entries += [ConfigEntry(k.replace("_", "."), str(v), incremental_operation=AlterConfigOpType.SET)
                for k, v in configs.items()]
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
    a.incremental_alter_configs([res])[res].result(30)


def produce(bootstrap, topic, count, partitions):
    # Small producer batches: a share fetch acquires whole batches (batch-optimized, KIP-1206),
    # and the tests need acquisitions smaller than a partition's records.
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all", "batch.num.messages": 10})
    for i in range(count):
        p.produce(topic, value=b"v%d" % i, partition=i % partitions)
    assert p.flush(30) == 0
    return {(i % partitions, i // partitions) for i in range(count)}


def leaders(bootstrap, topic):
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return {p.id: p.leader for p in md.topics[topic].partitions.values()}


def drain(consumers, want, timeout):
    """Polls the consumers in turn until `want` (a set of (partition, offset)) is covered."""
    seen = []
    deadline = time.time() + timeout
    while not want <= set(seen) and time.time() < deadline:
        for c in consumers:
            for m in c.poll(0.2):
                assert m.error() is None, m.error()
                seen.append((m.partition(), m.offset()))
    return seen


def test_members_on_every_broker_get_every_record_once(cluster):
    topic, group = unique("share-spread"), unique("share-spread-g")
    setup(cluster.bootstrap, topic, 6, group)
    assert len(set(leaders(cluster.bootstrap, topic).values())) == 3, "partitions led by every node"
    produced = produce(cluster.bootstrap, topic, 600, 6)
    consumers = [ShareConsumer({"bootstrap.servers": cluster.bootstrap, "group.id": group}) for _ in range(4)]
    for c in consumers:
        c.subscribe([topic])
    try:
        seen = drain(consumers, produced, 60)
        assert set(seen) == produced, f"missing {sorted(produced - set(seen))[:10]}"
        assert len(seen) == len(produced), "no record delivered twice while nobody failed"
    finally:
        for c in consumers:
            c.close()


def test_a_killed_leaders_share_partitions_keep_their_acknowledgements(cluster):
    topic, group = unique("share-failover"), unique("share-failover-g")
    setup(cluster.bootstrap, topic, 3, group)
    produced = produce(cluster.bootstrap, topic, 300, 3)
    c = ShareConsumer({"bootstrap.servers": cluster.bootstrap, "group.id": group,
                       "share.acknowledgement.mode": "explicit", "max.poll.records": 40})
    c.subscribe([topic])
    accepted = set()
    try:
        deadline = time.time() + 30
        while len({p for p, _ in accepted}) < 3 and time.time() < deadline:
            for m in c.poll(0.3):
                assert m.error() is None, m.error()
                c.acknowledge(m, AcknowledgeType.ACCEPT)
                accepted.add((m.partition(), m.offset()))
            c.commit_sync(30)
    finally:
        c.close()
    assert {p for p, _ in accepted} == {0, 1, 2} and accepted != produced
    victim_id = leaders(cluster.bootstrap, topic)[0]
    victim = cluster.node(victim_id)
    victim.kill9()
    survivors = ",".join(n.bootstrap for n in cluster.nodes if n.id != victim_id)
    try:
        # Partition 0 moves to a survivor, which reads its share state back.
        deadline = time.time() + 30
        while leaders(survivors, topic).get(0) in (victim_id, -1) and time.time() < deadline:
            time.sleep(0.3)
        assert leaders(survivors, topic)[0] not in (victim_id, -1), "partition 0 has a new leader"
        c = ShareConsumer({"bootstrap.servers": survivors, "group.id": group})
        c.subscribe([topic])
        try:
            rest = set(drain([c], produced - accepted, 90))
            assert not rest & accepted, f"acknowledged records came back: {sorted(rest & accepted)[:10]}"
            assert rest | accepted == produced, f"lost {sorted(produced - rest - accepted)[:10]}"
        finally:
            c.close()
    finally:
        victim.spawn()
        victim.wait_listening()
