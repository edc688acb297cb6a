"""Share groups (KIP-932, issue 34) with a real share consumer: librdkafka's, through
confluent-kafka's `ShareConsumer`. Records are handed out by the partition leader, several
consumers may read one partition, each record is acknowledged on its own (ACCEPT, RELEASE,
REJECT), and what a consumer held when it died comes back to the others once its acquisition
lock expires. The group's settings are GROUP config resources set with
IncrementalAlterConfigs, as with Kafka (`share.auto.offset.reset=earliest` so that records
produced before the group starts are delivered; short locks so that redelivery is quick).

Every wait is bounded in time; the checks are on which records arrive, not on how fast."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

import wire
from conftest import BINARY, unique

LOCK_MS = 2000


def set_group_configs(broker, group, **configs):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    entries = [ConfigEntry(k.replace("_", "."), str(v), incremental_operation=AlterConfigOpType.SET)
               for k, v in configs.items()]
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
    admin.incremental_alter_configs([res])[res].result(10)


def make_topic(broker, name, partitions):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(10)


def produce(broker, topic, count, partitions):
    # Small producer batches: a share fetch acquires whole batches (batch-optimized, KIP-1206),
    # and the tests need acquisitions smaller than a partition's records.
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "batch.num.messages": 10})
    for i in range(count):
        p.produce(topic, value=b"v%d" % i, partition=i % partitions)
    assert p.flush(15) == 0
    return {(i % partitions, i // partitions) for i in range(count)}


def consumer(broker, group, topic, **extra):
    c = ShareConsumer({"bootstrap.servers": broker.bootstrap, "group.id": group, **extra})
    c.subscribe([topic])
    return c


def records(batch):
    out = []
    for m in batch:
        assert m.error() is None, m.error()
        out.append(m)
    return out


def group_for(broker, topic, **configs):
    group = unique("share")
    set_group_configs(broker, group, share_auto_offset_reset="earliest", **configs)
    return group


def test_more_consumers_than_partitions_all_get_work(broker):
    topic = unique("share-many")
    make_topic(broker, topic, 2)
    # Four members on two partitions: two read each. Each takes at most 5 records a poll and
    # at most 20 records of a partition are in flight, so the window is exercised too.
    group = group_for(broker, topic, share_partition_max_record_locks=20)
    produced = produce(broker, topic, 400, 2)
    consumers = [consumer(broker, group, topic, **{"max.poll.records": 5}) for _ in range(4)]
    try:
        seen, per_consumer = [], [0] * 4
        deadline = time.time() + 60
        while len(set(seen)) < len(produced) and time.time() < deadline:
            for i, c in enumerate(consumers):
                got = records(c.poll(0.2))
                per_consumer[i] += len(got)
                seen.extend((m.partition(), m.offset()) for m in got)
        assert set(seen) == produced, f"missing {sorted(produced - set(seen))[:10]}"
        assert len(seen) == len(produced), "no record delivered twice while nobody failed"
        assert all(n > 0 for n in per_consumer), per_consumer
    finally:
        for c in consumers:
            c.close()


def test_release_redelivers_at_once_and_reject_archives(broker):
    topic = unique("share-ack")
    make_topic(broker, topic, 1)
    group = group_for(broker, topic, share_record_lock_duration_ms=60_000)
    produce(broker, topic, 5, 1)
    a = consumer(broker, group, topic, **{"share.acknowledgement.mode": "explicit"})
    b = consumer(broker, group, topic, **{"share.acknowledgement.mode": "explicit"})
    try:
        got = []
        deadline = time.time() + 20
        while len(got) < 5 and time.time() < deadline:
            got += records(a.poll(0.5))
        assert sorted(m.offset() for m in got) == [0, 1, 2, 3, 4]
        for m in got:
            kind = {0: AcknowledgeType.RELEASE, 1: AcknowledgeType.REJECT}.get(m.offset(), AcknowledgeType.ACCEPT)
            a.acknowledge(m, kind)
        a.commit_sync(10)
        # The released record comes back long before its 60 s lock would have expired; the
        # rejected and accepted ones never do.
        again = []
        deadline = time.time() + 15
        while not again and time.time() < deadline:
            again = records(b.poll(0.5))
        assert [(m.offset(), m.delivery_count()) for m in again] == [(0, 2)]
        b.acknowledge(again[0], AcknowledgeType.ACCEPT)
        b.commit_sync(10)
        end = time.time() + 2
        while time.time() < end:
            assert records(b.poll(0.3)) == [], "nothing left to deliver"
    finally:
        a.close()
        b.close()


def test_the_delivery_limit_archives_a_record(broker):
    topic = unique("share-limit")
    make_topic(broker, topic, 1)
    group = group_for(broker, topic, share_delivery_count_limit=2)
    produce(broker, topic, 1, 1)
    c = consumer(broker, group, topic, **{"share.acknowledgement.mode": "explicit"})
    try:
        counts = []
        deadline = time.time() + 20
        while time.time() < deadline and len(counts) < 3:
            for m in records(c.poll(0.5)):
                counts.append(m.delivery_count())
                c.acknowledge(m, AcknowledgeType.RELEASE)
            c.commit_sync(10)
            if len(counts) == 2:
                # Released at its last delivery: archived, so nothing comes within 2 s.
                end = time.time() + 2
                while time.time() < end:
                    assert records(c.poll(0.3)) == []
                break
        assert counts == [1, 2]
    finally:
        c.close()


HOLDER = """
import json, sys, time
from confluent_kafka import ShareConsumer
c = ShareConsumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
                   "share.acknowledgement.mode": "explicit"})
c.subscribe([sys.argv[3]])
deadline = time.time() + 30
while time.time() < deadline:
    got = [m for m in c.poll(0.5) if m.error() is None]
    if got:
        print(json.dumps([[m.partition(), m.offset()] for m in got]), flush=True)
        time.sleep(600)  # holds them until killed, never acknowledging
"""


def test_a_killed_consumers_records_go_to_another_after_the_lock(broker):
    topic = unique("share-kill")
    make_topic(broker, topic, 1)
    group = group_for(broker, topic, share_record_lock_duration_ms=LOCK_MS)
    produced = produce(broker, topic, 20, 1)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, broker.bootstrap, group, topic],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = holder.stdout.readline()
        assert line, "the holder got nothing"
        held = {tuple(x) for x in json.loads(line)}
        assert held
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        c = consumer(broker, group, topic)
        try:
            got, counts = set(), {}
            deadline = time.time() + 30
            while got != produced and time.time() < deadline:
                for m in records(c.poll(0.5)):
                    got.add((m.partition(), m.offset()))
                    counts[(m.partition(), m.offset())] = m.delivery_count()
            assert got == produced
            assert all(counts[k] == 2 for k in held), "the held records were delivered a second time"
            assert all(counts[k] == 1 for k in produced - held)
        finally:
            c.close()
    finally:
        if holder.poll() is None:
            holder.kill()


def test_acknowledged_records_stay_acknowledged_across_a_restart(fresh_broker):
    broker = fresh_broker
    topic = unique("share-restart")
    make_topic(broker, topic, 2)
    group = group_for(broker, topic)
    produced = produce(broker, topic, 200, 2)
    c = consumer(broker, group, topic, **{"share.acknowledgement.mode": "explicit", "max.poll.records": 30})
    accepted = set()
    try:
        deadline = time.time() + 20
        while not accepted and time.time() < deadline:
            for m in records(c.poll(0.5)):
                c.acknowledge(m, AcknowledgeType.ACCEPT)
                accepted.add((m.partition(), m.offset()))
        c.commit_sync(10)
    finally:
        c.close()
    assert accepted and accepted != produced
    broker.restart()
    c = consumer(broker, group, topic)
    try:
        rest = set()
        deadline = time.time() + 30
        while rest | accepted != produced and time.time() < deadline:
            for m in records(c.poll(0.5)):
                assert (m.partition(), m.offset()) not in accepted, "an acknowledged record came back"
                rest.add((m.partition(), m.offset()))
        assert rest | accepted == produced
    finally:
        c.close()


WORKER = """
import json, sys, time
from confluent_kafka import ShareConsumer
c = ShareConsumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
                   "share.acknowledgement.mode": "explicit", "max.poll.records": 20})
c.subscribe([sys.argv[3]])
# Until nothing came for IDLE seconds (the last records are in), at most 60 s.
deadline, idle_until = time.time() + 60, time.time() + float(sys.argv[4])
while time.time() < min(deadline, idle_until):
    got = [m for m in c.poll(0.3) if m.error() is None]
    for m in got:
        c.acknowledge(m)
    if not got:
        continue
    idle_until = time.time() + float(sys.argv[4])
    # Delivered; acknowledged only once commit_sync returns (a member killed in between
    # has acknowledged them or not: the broker's start offsets say which).
    print(json.dumps([[m.partition(), m.offset()] for m in got]), flush=True)
    try:
        c.commit_sync(10)
    except Exception as e:
        print("commit failed:", e, file=sys.stderr, flush=True)
c.close()
"""


def test_every_record_is_acknowledged_at_least_once_when_a_member_dies(broker):
    """Jepsen-style: three members in their own processes share four partitions while records
    are produced; one is killed -9 mid-run. Every produced record must be delivered and end up
    acknowledged (the share-partition start offsets reach the log end: none lost); only what
    the dead member held may come twice."""
    topic = unique("share-jepsen")
    make_topic(broker, topic, 4)
    # With 3 members on 4 partitions each partition has one reader: the dead member's go to
    # the others once its group session (6 s here) expires.
    group = group_for(broker, topic, share_record_lock_duration_ms=LOCK_MS, share_session_timeout_ms=6000,
                      share_heartbeat_interval_ms=1000)
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, broker.bootstrap, group, topic, "12"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(3)]
    try:
        produced = set()
        p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
        for i in range(1500):
            p.produce(topic, value=b"j%d" % i, partition=i % 4)
            if i == 700:
                p.flush(10)
                workers[0].send_signal(signal.SIGKILL)
            if i % 100 == 0:
                p.poll(0)
                time.sleep(0.05)
        assert p.flush(15) == 0
        produced = {(i % 4, i // 4) for i in range(1500)}
        delivered = []
        errors = []
        for w in workers:
            out, err = w.communicate(timeout=90)
            errors += [line for line in err.splitlines() if "commit failed" in line]
            for line in out.splitlines():
                delivered.extend(tuple(x) for x in json.loads(line))
        lost = sorted(produced - set(delivered))
        assert not lost, f"never delivered {len(lost)}: {lost[:5]} .. {lost[-5:]}; {errors[:3]}"
        assert len(delivered) - len(set(delivered)) <= 20 * 4, "duplicates beyond what the dead member held"
        assert share_start_offsets(broker, group) == {(p, 375) for p in range(4)}, "every record acknowledged"
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()


def share_start_offsets(broker, group):
    """DescribeShareGroupOffsets v0 for every topic of `group`: {(partition, start offset)}."""
    body = wire.uvarint(2) + wire.compact_string(group) + wire.uvarint(0) + wire.uvarint(0) + wire.uvarint(0)
    r = wire.call(broker.bootstrap, 90, 0, body, flexible=True)
    r.take(">i")
    out = set()
    for _ in range(r.uvarint() - 1):
        r.compact_string()
        for _ in range(r.uvarint() - 1):
            r.compact_string()
            r.take(">16s")
            for _ in range(r.uvarint() - 1):
                partition, start, _epoch, code = r.take(">iqih")
                r.compact_string()
                r.tags()
                assert code == 0
                out.add((partition, start))
            r.tags()
        assert r.take(">h") == 0
        r.compact_string()
        r.tags()
    return out


@pytest.mark.parametrize("value", ["sometimes", "by_duration:1H"])
def test_bad_group_configs_are_refused(broker, value):
    with pytest.raises(Exception) as e:
        set_group_configs(broker, unique("bad"), share_auto_offset_reset=value)
    assert "INVALID_CONFIG" in str(e.value) or "Invalid value" in str(e.value)


def riptide(broker, *args):
    """The `riptide` CLI against the broker, JSON output."""
    out = subprocess.run([BINARY, *args, "-o", "json"], env={**os.environ, "RIPTIDE_BROKERS": broker.bootstrap},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def rest_get(broker, path):
    with urllib.request.urlopen(f"{broker.rest_url}{path}", timeout=30) as r:
        return json.loads(r.read())


def test_cli_and_rest_show_and_reset_a_share_group(broker):
    topic = unique("share-cli")
    make_topic(broker, topic, 2)
    group = group_for(broker, topic)
    produced = produce(broker, topic, 40, 2)
    c = consumer(broker, group, topic)
    try:
        got = set()
        deadline = time.time() + 20
        while got != produced and time.time() < deadline:
            got |= {(m.partition(), m.offset()) for m in records(c.poll(0.3))}
        c.commit_sync(10)
        assert got == produced
        listed = {g["group"]: g for g in riptide(broker, "group", "list")}
        assert listed[group]["protocol_type"] == "share"
        d = riptide(broker, "group", "describe", group)
        assert (d["type"], d["state"], len(d["members"])) == ("share", "Stable", 1)
        assert {(o["partition"], o["start_offset"], o["log_end"], o["lag"]) for o in d["offsets"]} == {
            (0, 20, 20, 0), (1, 20, 20, 0)}
        cluster_id = rest_get(broker, "/v3/clusters")["data"][0]["cluster_id"]
        shares = rest_get(broker, f"/v3/clusters/{cluster_id}/share-groups")
        assert group in [g["share_group_id"] for g in shares["data"]]
        one = rest_get(broker, f"/v3/clusters/{cluster_id}/share-groups/{group}")
        assert (one["state"], len(one["consumers"]), one["total_lag"]) == ("STABLE", 1, 0)
        consumer_groups = rest_get(broker, f"/v3/clusters/{cluster_id}/consumer-groups")
        assert group not in [g["consumer_group_id"] for g in consumer_groups["data"]]
    finally:
        c.close()
    # Reset to the beginning while the group is empty: everything is delivered again.
    reset = riptide(broker, "group", "reset-offsets", group, "--topic", topic, "--to", "beginning")
    assert {(o["partition"], o["previous"], o["new"]) for o in reset["offsets"]} == {(0, 20, 0), (1, 20, 0)}
    c = consumer(broker, group, topic)
    try:
        again = set()
        deadline = time.time() + 20
        while again != produced and time.time() < deadline:
            again |= {(m.partition(), m.offset()) for m in records(c.poll(0.3))}
        assert again == produced
    finally:
        c.close()


def test_read_committed_share_groups_skip_aborted_records(broker):
    topic = unique("share-txn")
    make_topic(broker, topic, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": unique("share-tid")})
    p.init_transactions(30)
    for value, commit in ((b"aborted", False), (b"committed", True)):
        p.begin_transaction()
        for i in range(5):
            p.produce(topic, value=value + b"-%d" % i, partition=0)
        p.flush(10)
        (p.commit_transaction if commit else p.abort_transaction)(30)
    values = {}
    for isolation in ("read_committed", "read_uncommitted"):
        group = group_for(broker, topic, share_isolation_level=isolation)
        c = consumer(broker, group, topic)
        got = []
        try:
            deadline = time.time() + 15
            while len(got) < (5 if isolation == "read_committed" else 10) and time.time() < deadline:
                got += [m.value() for m in records(c.poll(0.3))]
            end = time.time() + 1
            while time.time() < end:
                got += [m.value() for m in records(c.poll(0.2))]
        finally:
            c.close()
        values[isolation] = sorted(got)
    assert values["read_committed"] == sorted(b"committed-%d" % i for i in range(5))
    assert len(values["read_uncommitted"]) == 10
