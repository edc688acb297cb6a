"""The REST interface in a cluster: every broker serves the whole API and reaches partition
leaders wherever they are. A topic created over REST on one node, records produced over REST
through each node to partitions led by all three, read back byte for byte with confluent-kafka;
a v2 consumer instance on another node reads them all;
with one broker killed, REST on a surviving node still produces once leadership has moved."""
import base64
import http.client
import json
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from cluster import Cluster
from conftest import unique
from jepsen import leader_of, wait_for, wait_isr_full, wait_leader_change

FAST = ["--override", "broker.session.timeout.ms=3000", "--override", "broker.heartbeat.interval.ms=500",
        "--override", "replica.lag.time.max.ms=3000"]


def call(node, method, path, body=None, content_type="application/json", accept=None, timeout=30):
    c = http.client.HTTPConnection(node.host, node.rest_port, timeout=timeout)
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode() if not isinstance(body, (bytes, str)) else (
            body.encode() if isinstance(body, str) else body)
        headers["Content-Type"] = content_type
    if accept:
        headers["Accept"] = accept
    c.request(method, path, data, headers)
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    try:
        return r.status, json.loads(text) if text else None
    except ValueError:
        return r.status, text


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("rest-cluster")), 3, FAST).start()
    wait_for(lambda: all(call(n, "GET", "/v3/clusters")[0] == 200 for n in c.nodes), 60, "REST on every node")
    yield c
    c.stop()


def cluster_id(node):
    return call(node, "GET", "/v3/clusters")[1]["data"][0]["cluster_id"]


def test_every_node_serves_every_partition(cluster):
    n1, n2, n3 = cluster.nodes
    cid = cluster_id(n1)
    assert cid == cluster_id(n2) == cluster_id(n3)
    status, brokers = call(n2, "GET", f"/v3/clusters/{cid}/brokers")
    assert status == 200 and sorted(b["broker_id"] for b in brokers["data"]) == [1, 2, 3]
    topic = unique("rest-c")
    status, t = call(n1, "POST", f"/v3/clusters/{cid}/topics",
                     {"topic_name": topic, "partitions_count": 3, "replication_factor": 3})
    assert status == 201, t
    assert t["partitions_count"] == 3 and t["replication_factor"] == 3
    wait_isr_full(cluster, topic, 3, timeout=60)
    leaders = {p: leader_of(cluster, topic, p) for p in range(3)}
    sent = {}
    for node in cluster.nodes:
        for p in range(3):
            value = f"{node.id}->{p}".encode() + bytes(range(256))
            status, r = call(node, "POST", f"/v3/clusters/{cid}/topics/{topic}/records",
                             {"partition_id": p, "key": {"type": "STRING", "data": f"k{node.id}"},
                              "value": {"type": "BINARY", "data": base64.b64encode(value).decode()}})
            assert status == 200 and r["error_code"] == 200, r
            assert r["partition_id"] == p
            sent[(p, r["offset"])] = (f"k{node.id}".encode(), value)
    got = {}
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": unique("g"), "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(3)])
    deadline = time.time() + 30
    while len(got) < len(sent) and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got[(m.partition(), m.offset())] = (m.key(), m.value())
    c.close()
    assert got == sent
    # Partition replicas as v3 reports them agree with the leaders.
    for p, leader in leaders.items():
        status, reps = call(n3, "GET", f"/v3/clusters/{cid}/topics/{topic}/partitions/{p}/replicas")
        assert status == 200
        assert [r["broker_id"] for r in reps["data"] if r["is_leader"]] == [leader]

    # A v2 consumer instance on node 2 reads all of it (through whichever leaders).
    group = unique("rest-g")
    v2 = "application/vnd.kafka.v2+json"
    status, inst = call(n2, "POST", f"/consumers/{group}", {"name": "c1", "format": "binary",
                                                          "auto.offset.reset": "earliest"}, v2)
    assert status == 200, inst
    base = f"/consumers/{group}/instances/c1"
    assert call(n2, "POST", f"{base}/subscription", {"topics": [topic]}, v2)[0] == 204
    records = []
    deadline = time.time() + 60
    while len(records) < len(sent) and time.time() < deadline:
        status, batch = call(n2, "GET", f"{base}/records?timeout=1000", accept="application/vnd.kafka.binary.v2+json")
        assert status == 200, batch
        records.extend(batch)
    assert {(r["partition"], r["offset"]): (base64.b64decode(r["key"]), base64.b64decode(r["value"]))
            for r in records} == sent
    assert call(n2, "DELETE", base)[0] == 204


def test_produce_goes_on_after_a_broker_dies(cluster):
    n1 = cluster.nodes[0]
    cid = cluster_id(n1)
    topic = unique("rest-f")
    status, _ = call(n1, "POST", f"/v3/clusters/{cid}/topics",
                     {"topic_name": topic, "partitions_count": 1, "replication_factor": 3})
    assert status == 201
    wait_isr_full(cluster, topic, 3, timeout=60)
    leader = leader_of(cluster, topic, 0)
    victim = cluster.node(leader)
    survivor = next(n for n in cluster.nodes if n.id != leader)
    victim.kill9()
    try:
        wait_leader_change(cluster, topic, 0, leader, timeout=60)

        def produced():
            status, r = call(survivor, "POST", f"/v3/clusters/{cid}/topics/{topic}/records",
                             {"value": {"type": "STRING", "data": "after"}})
            return r if status == 200 and r.get("error_code") == 200 else None
        r = wait_for(produced, 60, "a REST produce after the leader died", interval=1)
        assert r["partition_id"] == 0 and r["offset"] >= 0
    finally:
        victim.spawn().wait_listening()
