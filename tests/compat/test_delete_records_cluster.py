"""DeleteRecords in a cluster (issue 19 item 4): the leader moves the log start; its followers
take it from their fetch answers (as Kafka's followers do) and write it to their own
log-start checkpoints, so after the leader is killed the new leader's log still starts there.
The answer comes, as Kafka's, once every live replica's log start reached the offset: by then
every replica's checkpoint says so; a live follower that stopped fetching makes it time out.

Node logs: <pytest tmp>/delrec*/node-N.log."""
import os

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster
from conftest import unique
from jepsen import bootstrap_of, leader_of, pause, resume, wait_isr_full, wait_leader_change

o = lambda k, v: ["--override", f"{k}={v}"]  # noqa: E731
EXTRA = [*o("broker.session.timeout.ms", 3000), *o("broker.heartbeat.interval.ms", 500),
         *o("replica.lag.time.max.ms", 3000)]


def log_start_on_disk(node, topic, partition):
    path = os.path.join(node.data_dir, f"{topic}-{partition}", "log-start-offset-checkpoint")
    try:
        with open(path) as f:
            return int(f.read().split()[-1])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def test_followers_take_the_leaders_log_start(tmp_path):
    cluster = Cluster(str(tmp_path / "delrec"), 3, EXTRA).start()
    try:
        topic = unique("delrec")
        admin = AdminClient({"bootstrap.servers": bootstrap_of(cluster)})
        admin.create_topics([NewTopic(topic, 1, 3)])[topic].result(30)
        wait_isr_full(cluster, topic, 3, timeout=30)
        p = Producer({"bootstrap.servers": bootstrap_of(cluster), "acks": "all"})
        for i in range(30):
            p.produce(topic, value=str(i).encode(), partition=0)
        assert p.flush(30) == 0
        [f] = admin.delete_records([TopicPartition(topic, 0, 17)]).values()
        assert f.result(15).low_watermark == 17
        # Answered after the followers reported their new log start: already on their disks.
        assert [log_start_on_disk(n, topic, 0) for n in cluster.nodes] == [17, 17, 17]
        # A follower that stopped fetching (SIGSTOP, still registered as live) holds the low
        # watermark back: the leader's log start moves, the answer is REQUEST_TIMED_OUT.
        old = leader_of(cluster, topic, 0)
        follower = next(n for n in cluster.nodes if n.id != old)
        pause(follower)
        try:
            [f] = admin.delete_records([TopicPartition(topic, 0, 20)], operation_timeout=0.3).values()
            with pytest.raises(KafkaException) as refused:
                f.result(15)
            assert refused.value.args[0].code() == KafkaError.REQUEST_TIMED_OUT, refused.value
            assert log_start_on_disk(cluster.node(old), topic, 0) == 20
        finally:
            resume(follower)
        [f] = admin.delete_records([TopicPartition(topic, 0, 20)]).values()
        assert f.result(15).low_watermark == 20
        cluster.node(old).kill9()
        wait_leader_change(cluster, topic, 0, old, timeout=30)
        live = ",".join(n.bootstrap for n in cluster.nodes if n.id != old)
        c = Consumer({"bootstrap.servers": live, "group.id": unique("wm")})
        try:
            low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=15)
        finally:
            c.close()
        assert (low, high) == (20, 30), "the new leader's log starts where the old one's did"
    finally:
        cluster.stop()
