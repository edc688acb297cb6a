"""The REST interface (docs/REST.md, docs/openapi.json): Confluent REST Proxy's v3 admin and produce
and v2 consumer instances, served by the broker on rest.listeners. Every endpoint is called over
plain HTTP (the standard library only), what is produced is read back with confluent-kafka byte for
byte, and what a v2 consumer instance does is checked against the group as Kafka and v3 see it.
The error cases check the status and REST Proxy's error_code, and that the broker still serves
Kafka afterwards.

Waits are deadlines on a condition (never a fixed sleep), so that a slow 2-core CI machine only
makes them take longer."""
import base64
import datetime
import http.client as httpclient
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from conftest import IO_ARGS, ROOT, Broker, unique

V3 = "application/json"
V2 = "application/vnd.kafka.v2+json"
V2_BINARY = "application/vnd.kafka.binary.v2+json"
V2_JSON = "application/vnd.kafka.json.v2+json"


# ---------------------------------------------------------------- HTTP helpers

def http(method, url, body=None, content_type=None, accept=None, raw=None, headers=None, timeout=40):
    """One request; answers (status, headers, parsed JSON, or the text when it is not JSON, or None
    when empty). `body` is sent as JSON, `raw` as given; either gets `content_type`
    (application/json unless told)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", content_type or V3)
    elif content_type is not None:
        req.add_header("Content-Type", content_type)
    if accept is not None:
        req.add_header("Accept", accept)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, hdrs, payload = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, hdrs, payload = e.code, e.headers, e.read()
    return status, hdrs, parse(payload)


def parse(payload):
    if not payload:
        return None
    text = payload.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def lines(payload_text):
    """A v3 produce answer of several records: one JSON object per line."""
    if isinstance(payload_text, dict):
        return [payload_text]
    return [json.loads(l) for l in payload_text.splitlines() if l.strip()]


def media(headers):
    return (headers.get("Content-Type") or "").split(";")[0].strip().lower()


def assert_error(resp, status, code, content_type=None):
    got_status, hdrs, body = resp
    assert got_status == status, (got_status, body)
    assert isinstance(body, dict), body
    assert set(body) == {"error_code", "message"}, body
    assert body["error_code"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    if content_type is not None:
        assert media(hdrs) == content_type, hdrs


def b64(b):
    return base64.b64encode(b).decode()


def wait_for(what, fn, timeout=40, interval=0.2):
    """Calls fn() until it answers something truthy (which is returned); fails after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not reached in {timeout}s (last: {last!r})")


class Rest:
    """The REST listener of one broker: its URL, the cluster id and v3 paths."""

    def __init__(self, broker):
        self.broker = broker
        self.url = broker.rest_url
        wait_for("REST listener answers", lambda: self._answers(), timeout=30)
        status, _, body = http("GET", f"{self.url}/v3/clusters")
        assert status == 200, body
        self.cluster_id = body["data"][0]["cluster_id"]
        self.v3 = f"{self.url}/v3/clusters/{self.cluster_id}"

    def _answers(self):
        try:
            return http("GET", f"{self.url}/", timeout=2)[0] == 200
        except OSError:
            return False

    def create_topic(self, name, partitions=3, configs=None):
        body = {"topic_name": name, "partitions_count": partitions, "replication_factor": 1}
        if configs:
            body["configs"] = [{"name": k, "value": v} for k, v in configs.items()]
        status, _, answer = http("POST", f"{self.v3}/topics", body)
        assert status == 201, answer
        return answer

    def produce(self, topic, record):
        return http("POST", f"{self.v3}/topics/{topic}/records", record)

    def consumer(self, group, **config):
        status, _, body = http("POST", f"{self.url}/consumers/{group}", config, V2)
        assert status == 200, body
        return body["base_uri"]


@pytest.fixture(scope="module")
def rest(broker):
    return Rest(broker)


def kafka_alive(broker):
    """The broker still serves Kafka: a topic is created, a record produced and read back."""
    assert broker.alive(), broker.read_log()[-3000:]
    topic = unique("alive")
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(15)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(topic, value=b"still here", partition=0)
    assert p.flush(15) == 0
    got = read_back(broker, topic, {(0, 0)})
    assert got[(0, 0)].value() == b"still here"


def read_back(broker, topic, wanted, timeout=30):
    """Reads the records at the (partition, offset) pairs in `wanted` with confluent-kafka;
    answers {(partition, offset): Message}."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("readback"),
                  "enable.auto.commit": False, "enable.partition.eof": False})
    starts = {}
    for p, o in wanted:
        starts[p] = min(starts.get(p, o), o)
    c.assign([TopicPartition(topic, p, o) for p, o in sorted(starts.items())])
    got = {}
    deadline = time.monotonic() + timeout
    try:
        while not set(wanted) <= set(got) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            got[(m.partition(), m.offset())] = m
    finally:
        c.close()
    missing = set(wanted) - set(got)
    assert not missing, f"not read back from {topic}: {sorted(missing)[:10]}"
    return got


def topic_names(broker):
    return set(AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics)


# ---------------------------------------------------------------- root, clusters, brokers

def test_root_and_openapi_document(rest):
    status, hdrs, body = http("GET", f"{rest.url}/")
    assert (status, body) == (200, {})
    assert media(hdrs) == V3
    status, hdrs, body = http("GET", f"{rest.url}/openapi.json")
    assert status == 200
    with open(os.path.join(ROOT, "docs", "openapi.json")) as f:
        repo_copy = json.load(f)
    # The binary embeds docs/openapi.json: the served document is exactly the repository's.
    assert body == repo_copy, "GET /openapi.json differs from docs/openapi.json (binary built from an older copy?)"
    assert body["openapi"].startswith("3.0")


def test_openapi_document_is_served_as_application_json(rest):
    status, hdrs, body = http("GET", f"{rest.url}/openapi.json")
    assert status == 200 and body["openapi"].startswith("3.0")
    # An OpenAPI document is JSON (application/json, as the document itself says), not a v2
    # REST Proxy entity.
    assert media(hdrs) == "application/json", hdrs


def test_clusters_and_brokers(rest, broker):
    status, hdrs, body = http("GET", f"{rest.url}/v3/clusters")
    assert status == 200 and media(hdrs) == V3
    assert body["kind"] == "KafkaClusterList"
    assert body["metadata"] == {"self": f"{rest.url}/v3/clusters", "next": None}
    assert len(body["data"]) == 1
    cluster = body["data"][0]
    c = rest.cluster_id
    assert cluster["kind"] == "KafkaCluster" and isinstance(c, str) and c
    assert cluster["metadata"] == {"self": rest.v3, "resource_name": f"crn:///kafka={c}"}
    for link in ("controller", "acls", "brokers", "broker_configs", "consumer_groups", "topics",
                 "partition_reassignments"):
        assert cluster[link]["related"].startswith(rest.v3), (link, cluster[link])
    assert cluster["brokers"] == {"related": f"{rest.v3}/brokers"}
    assert cluster["topics"] == {"related": f"{rest.v3}/topics"}
    assert cluster["consumer_groups"] == {"related": f"{rest.v3}/consumer-groups"}

    status, _, one = http("GET", rest.v3)
    assert status == 200 and one == cluster

    status, _, brokers = http("GET", f"{rest.v3}/brokers")
    assert status == 200 and brokers["kind"] == "KafkaBrokerList"
    assert brokers["metadata"] == {"self": f"{rest.v3}/brokers", "next": None}
    assert len(brokers["data"]) == 1
    b = brokers["data"][0]
    bid = b["broker_id"]
    assert b["kind"] == "KafkaBroker" and b["cluster_id"] == c and isinstance(bid, int)
    assert (b["host"], b["port"]) == (broker.host, broker.port)
    assert b["rack"] is None
    assert b["metadata"] == {"self": f"{rest.v3}/brokers/{bid}", "resource_name": f"crn:///kafka={c}/broker={bid}"}
    assert b["configs"] == {"related": f"{rest.v3}/brokers/{bid}/configs"}
    assert b["partition_replicas"]["related"].startswith(f"{rest.v3}/brokers/{bid}/")
    assert cluster["controller"] == {"related": f"{rest.v3}/brokers/{bid}"}
    status, _, one = http("GET", f"{rest.v3}/brokers/{bid}")
    assert status == 200 and one == b
    assert_error(http("GET", f"{rest.v3}/brokers/{bid + 1000}"), 404, 404, V3)

    status, hdrs, v2 = http("GET", f"{rest.url}/brokers")
    assert status == 200 and media(hdrs) == V2
    assert v2 == {"brokers": [bid]}


def test_absolute_urls_follow_the_host_header(rest):
    status, _, body = http("GET", f"{rest.url}/v3/clusters", headers={"Host": "rest.example.com:8082"})
    assert status == 200
    assert body["metadata"]["self"] == "http://rest.example.com:8082/v3/clusters"
    assert body["data"][0]["metadata"]["self"] == f"http://rest.example.com:8082/v3/clusters/{rest.cluster_id}"
    status, _, created = http("POST", f"{rest.url}/consumers/{unique('hostgrp')}", {"name": "h"}, V2,
                              headers={"Host": "proxy.internal"})
    assert status == 200
    assert created["base_uri"].startswith("http://proxy.internal/consumers/")


# ---------------------------------------------------------------- topics

def test_topic_create_list_describe_delete(rest, broker):
    name = unique("rest-topic")
    status, hdrs, t = http("POST", f"{rest.v3}/topics",
                           {"topic_name": name, "partitions_count": 3, "replication_factor": 1,
                            "configs": [{"name": "cleanup.policy", "value": "compact"}]})
    assert status == 201, t
    assert media(hdrs) == V3
    c = rest.cluster_id
    tp = f"{rest.v3}/topics/{name}"
    assert t["kind"] == "KafkaTopic"
    assert t["metadata"] == {"self": tp, "resource_name": f"crn:///kafka={c}/topic={name}"}
    assert (t["cluster_id"], t["topic_name"], t["is_internal"]) == (c, name, False)
    assert (t["partitions_count"], t["replication_factor"]) == (3, 1)
    assert t["partitions"] == {"related": f"{tp}/partitions"}
    assert t["configs"] == {"related": f"{tp}/configs"}
    assert t["partition_reassignments"]["related"].startswith(tp)
    assert t["authorized_operations"] == []
    assert name in topic_names(broker)

    status, _, got = http("GET", tp)
    assert status == 200 and got == t
    status, _, listed = http("GET", f"{rest.v3}/topics")
    assert status == 200 and listed["kind"] == "KafkaTopicList"
    assert listed["metadata"] == {"self": f"{rest.v3}/topics", "next": None}
    assert [x for x in listed["data"] if x["topic_name"] == name] == [t]
    status, _, names = http("GET", f"{rest.url}/topics")
    assert status == 200 and name in names and names == sorted(names)

    # Already exists: 400 / 40002.
    assert_error(http("POST", f"{rest.v3}/topics", {"topic_name": name, "partitions_count": 1}), 400, 40002, V3)
    # validate_only: answered as created, nothing created.
    other = unique("rest-validate")
    status, _, v = http("POST", f"{rest.v3}/topics", {"topic_name": other, "partitions_count": 2,
                                                      "validate_only": True})
    assert status == 201, v
    assert (v["topic_name"], v["partitions_count"]) == (other, 2)
    assert_error(http("GET", f"{rest.v3}/topics/{other}"), 404, 40403, V3)
    assert other not in topic_names(broker)
    # Defaults for partitions_count and replication_factor.
    dflt = unique("rest-default")
    status, _, d = http("POST", f"{rest.v3}/topics", {"topic_name": dflt})
    assert status == 201 and d["partitions_count"] >= 1 and d["replication_factor"] == 1, d

    # Bad values: 400.
    assert_error(http("POST", f"{rest.v3}/topics", {"topic_name": unique("zero"), "partitions_count": 0}), 400, 400)
    assert_error(http("POST", f"{rest.v3}/topics", {"topic_name": unique("rf"), "replication_factor": 3}), 400, 400)
    assert_error(http("POST", f"{rest.v3}/topics", {"topic_name": "bad name!"}), 400, 400)
    assert_error(http("POST", f"{rest.v3}/topics", {"partitions_count": 1}), 400, 400)
    assert_error(http("POST", f"{rest.v3}/topics", {"topic_name": unique("t"), "partitions_count": "three"}), 400, 400)
    assert_error(http("POST", f"{rest.v3}/topics",
                      {"topic_name": unique("cfg"), "configs": [{"name": "no.such.config", "value": "1"}]}), 400, 400)

    status, _, body = http("DELETE", tp)
    assert (status, body) == (204, None)
    wait_for("topic deleted", lambda: name not in topic_names(broker), timeout=20)
    assert_error(http("GET", tp), 404, 40403, V3)
    assert_error(http("DELETE", tp), 404, 40403, V3)
    assert http("DELETE", f"{rest.v3}/topics/{dflt}")[0] == 204


def test_topic_configs(rest, broker):
    name = unique("rest-configs")
    rest.create_topic(name, 1, {"cleanup.policy": "compact"})
    base = f"{rest.v3}/topics/{name}/configs"
    c = rest.cluster_id

    status, hdrs, listed = http("GET", base)
    assert status == 200 and media(hdrs) == V3
    assert listed["kind"] == "KafkaTopicConfigList"
    assert listed["metadata"] == {"self": base, "next": None}
    by_name = {x["name"]: x for x in listed["data"]}
    assert {"cleanup.policy", "retention.ms", "segment.bytes"} <= set(by_name)
    cp = by_name["cleanup.policy"]
    assert cp == {
        "kind": "KafkaTopicConfig",
        "metadata": {"self": f"{base}/cleanup.policy",
                     "resource_name": f"crn:///kafka={c}/topic={name}/config=cleanup.policy"},
        "cluster_id": c, "topic_name": name, "name": "cleanup.policy", "value": "compact",
        "is_default": False, "is_read_only": False, "is_sensitive": False,
        "source": "DYNAMIC_TOPIC_CONFIG", "synonyms": cp["synonyms"],
    }
    assert all(set(s) == {"name", "value", "source"} for s in cp["synonyms"])
    assert by_name["retention.ms"]["is_default"] is True

    status, _, one = http("GET", f"{base}/cleanup.policy")
    assert status == 200 and one == cp
    assert_error(http("GET", f"{base}/no.such.config"), 404, 404, V3)
    assert_error(http("GET", f"{rest.v3}/topics/{unique('nope')}/configs"), 404, 40403, V3)

    def value(n):
        status, _, e = http("GET", f"{base}/{n}")
        assert status == 200, e
        return e

    def kafka_value(n):
        a = AdminClient({"bootstrap.servers": broker.bootstrap})
        res = ConfigResource(ConfigResource.Type.TOPIC, name)
        return a.describe_configs([res])[res].result(15)[n].value

    # PUT one config.
    status, _, body = http("PUT", f"{base}/retention.ms", {"value": "3600000"})
    assert (status, body) == (204, None)
    e = value("retention.ms")
    assert (e["value"], e["is_default"], e["source"]) == ("3600000", False, "DYNAMIC_TOPIC_CONFIG")
    assert kafka_value("retention.ms") == "3600000"
    assert_error(http("PUT", f"{base}/retention.ms", {}), 400, 400)
    assert_error(http("PUT", f"{base}/retention.ms", {"value": 5}), 400, 400)

    # DELETE: back to the default.
    default_retention = by_name["retention.ms"]["value"]
    status, _, body = http("DELETE", f"{base}/retention.ms")
    assert (status, body) == (204, None)
    e = value("retention.ms")
    assert (e["value"], e["is_default"]) == (default_retention, True)

    # Batch: SET two, DELETE one.
    status, _, body = http("POST", f"{rest.v3}/topics/{name}/configs:alter", {"data": [
        {"name": "retention.ms", "value": "7200000"},
        {"name": "segment.ms", "value": "600000", "operation": "SET"},
        {"name": "cleanup.policy", "operation": "DELETE"},
    ]})
    assert (status, body) == (204, None)
    assert value("retention.ms")["value"] == "7200000"
    assert value("segment.ms")["value"] == "600000"
    cp = value("cleanup.policy")
    assert (cp["value"], cp["is_default"]) == ("delete", True)
    assert kafka_value("segment.ms") == "600000"
    assert_error(http("POST", f"{rest.v3}/topics/{name}/configs:alter",
                      {"data": [{"name": "retention.ms", "value": "1", "operation": "APPEND"}]}), 400, 400)
    assert_error(http("POST", f"{rest.v3}/topics/{name}/configs:alter", {"data": "retention.ms"}), 400, 400)
    assert_error(http("POST", f"{rest.v3}/topics/{unique('nope')}/configs:alter",
                      {"data": [{"name": "retention.ms", "value": "1"}]}), 404, 40403)

    # v2 shows the configs too.
    status, hdrs, v2 = http("GET", f"{rest.url}/topics/{name}")
    assert status == 200 and media(hdrs) == V2
    assert v2["name"] == name
    assert v2["configs"]["retention.ms"] == "7200000"
    assert len(v2["partitions"]) == 1


# ---------------------------------------------------------------- partitions, replicas

def test_partitions_and_replicas(rest, broker):
    name = unique("rest-parts")
    rest.create_topic(name, 3)
    c = rest.cluster_id
    tp = f"{rest.v3}/topics/{name}"
    status, _, bl = http("GET", f"{rest.v3}/brokers")
    bid = bl["data"][0]["broker_id"]

    status, _, parts = http("GET", f"{tp}/partitions")
    assert status == 200 and parts["kind"] == "KafkaPartitionList"
    assert parts["metadata"] == {"self": f"{tp}/partitions", "next": None}
    assert [p["partition_id"] for p in parts["data"]] == [0, 1, 2]
    for p in parts["data"]:
        n = p["partition_id"]
        pp = f"{tp}/partitions/{n}"
        assert p == {
            "kind": "KafkaPartition",
            "metadata": {"self": pp, "resource_name": f"crn:///kafka={c}/topic={name}/partition={n}"},
            "cluster_id": c, "topic_name": name, "partition_id": n,
            "leader": {"related": f"{pp}/replicas/{bid}"},
            "replicas": {"related": f"{pp}/replicas"},
            "reassignment": {"related": f"{pp}/reassignment"},
        }
    status, _, one = http("GET", f"{tp}/partitions/1")
    assert status == 200 and one == parts["data"][1]
    status, _, reps = http("GET", f"{tp}/partitions/1/replicas")
    assert status == 200 and reps["kind"] == "KafkaReplicaList"
    assert reps["metadata"] == {"self": f"{tp}/partitions/1/replicas", "next": None}
    assert len(reps["data"]) == 1
    r = reps["data"][0]
    assert (r["kind"], r["cluster_id"], r["topic_name"], r["partition_id"], r["broker_id"]) == \
        ("KafkaReplica", c, name, 1, bid)
    assert (r["is_leader"], r["is_in_sync"]) == (True, True)
    assert r["broker"] == {"related": f"{rest.v3}/brokers/{bid}"}
    assert r["metadata"]["self"] == f"{tp}/partitions/1/replicas/{bid}"

    assert_error(http("GET", f"{tp}/partitions/7"), 404, 40402, V3)
    assert_error(http("GET", f"{tp}/partitions/7/replicas"), 404, 40402, V3)
    assert_error(http("GET", f"{rest.v3}/topics/{unique('nope')}/partitions"), 404, 40403, V3)

    # v2
    want = {"partition": 1, "leader": bid, "replicas": [{"broker": bid, "leader": True, "in_sync": True}]}
    status, hdrs, v2parts = http("GET", f"{rest.url}/topics/{name}/partitions")
    assert status == 200 and media(hdrs) == V2
    assert [p["partition"] for p in v2parts] == [0, 1, 2] and v2parts[1] == want
    status, _, v2one = http("GET", f"{rest.url}/topics/{name}/partitions/1")
    assert status == 200 and v2one == want
    status, _, offs = http("GET", f"{rest.url}/topics/{name}/partitions/1/offsets")
    assert status == 200 and offs == {"beginning_offset": 0, "end_offset": 0}
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(4):
        p.produce(name, value=b"x%d" % i, partition=1)
    assert p.flush(15) == 0
    status, _, offs = http("GET", f"{rest.url}/topics/{name}/partitions/1/offsets")
    assert status == 200 and offs == {"beginning_offset": 0, "end_offset": 4}
    assert_error(http("GET", f"{rest.url}/topics/{name}/partitions/9"), 404, 40402, V2)
    assert_error(http("GET", f"{rest.url}/topics/{name}/partitions/9/offsets"), 404, 40402, V2)
    assert_error(http("GET", f"{rest.url}/topics/{unique('nope')}"), 404, 40403, V2)
    assert_error(http("GET", f"{rest.url}/topics/{unique('nope')}/partitions"), 404, 40403, V2)


# ---------------------------------------------------------------- v3 produce

def parse_ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def check_result(r, rest, topic, partition=None):
    assert r["error_code"] == 200, r
    assert set(r) == {"error_code", "cluster_id", "topic_name", "partition_id", "offset", "timestamp", "key",
                      "value"}, r
    assert (r["cluster_id"], r["topic_name"]) == (rest.cluster_id, topic)
    assert isinstance(r["offset"], int) and r["offset"] >= 0
    parse_ts(r["timestamp"])
    if partition is not None:
        assert r["partition_id"] == partition, r


def test_v3_produce_types_headers_partition_timestamp(rest, broker):
    topic = unique("rest-produce")
    rest.create_topic(topic, 3)
    binary_key = bytes([0, 1, 2, 0xFF, 0xFE, 0x80])
    binary_value = bytes(range(256)) * 3
    ts = "2026-12-02T10:00:00.250Z"
    ts_ms = int(parse_ts(ts).timestamp() * 1000)
    cases = [
        # (record, expected key bytes, expected value bytes, expected headers, key info, value info)
        ({"partition_id": 2, "timestamp": ts,
          "key": {"type": "BINARY", "data": b64(binary_key)},
          "value": {"type": "BINARY", "data": b64(binary_value)},
          "headers": [{"name": "h-bin", "value": b64(b"\x00\xffheader")}, {"name": "h-null", "value": None},
                      {"name": "h-empty", "value": ""}]},
         binary_key, binary_value, [("h-bin", b"\x00\xffheader"), ("h-null", None), ("h-empty", b"")],
         {"type": "BINARY", "size": len(binary_key)}, {"type": "BINARY", "size": len(binary_value)}),
        ({"partition_id": 0, "key": {"type": "STRING", "data": "clé-ü"}, "value": {"type": "STRING", "data": "väl ✓ 🌊"}},
         "clé-ü".encode(), "väl ✓ 🌊".encode(), None,
         {"type": "STRING", "size": len("clé-ü".encode())}, {"type": "STRING", "size": len("väl ✓ 🌊".encode())}),
        ({"partition_id": 1, "key": {"type": "JSON", "data": [1, "two", None]},
          "value": {"type": "JSON", "data": {"order": 17, "items": [1, 2], "note": "ok"}}},
         b'[1,"two",null]', None, None,
         {"type": "JSON", "size": len(b'[1,"two",null]')}, None),
        # JSON is the default type; a JSON string is stored with its quotes.
        ({"partition_id": 1, "value": {"data": "hi"}}, None, b'"hi"', None, None, {"type": "JSON", "size": 4}),
        # A BINARY value of null data is a null value (a tombstone); no key.
        ({"partition_id": 1, "value": {"type": "BINARY", "data": None}}, None, None, None, None,
         {"type": "BINARY", "size": 0}),
    ]
    results = []
    for record, _, _, _, key_info, value_info in cases:
        status, hdrs, r = rest.produce(topic, record)
        assert status == 200, r
        assert media(hdrs) == V3
        check_result(r, rest, topic, record["partition_id"])
        assert r["key"] == key_info, r
        if value_info is not None:
            assert r["value"] == value_info, r
        results.append(r)
    assert results[0]["timestamp"] == ts or parse_ts(results[0]["timestamp"]) == parse_ts(ts)
    # Offsets per partition: p1 got three records in a row.
    assert [r["offset"] for r in results[2:]] == [results[2]["offset"] + i for i in range(3)]

    got = read_back(broker, topic, {(r["partition_id"], r["offset"]) for r in results})
    for (record, key, value, headers, _, _), r in zip(cases, results):
        m = got[(r["partition_id"], r["offset"])]
        assert m.key() == key, (record, m.key())
        if record["value"].get("type") == "JSON" and value is None:
            assert json.loads(m.value()) == record["value"]["data"]
        else:
            assert m.value() == value, (record, m.value())
        assert (m.headers() or None) == headers, (record, m.headers())
    assert got[(2, results[0]["offset"])].timestamp()[1] == ts_ms
    # Records without a timestamp get the produce time.
    now_ms = time.time() * 1000
    assert abs(got[(0, results[1]["offset"])].timestamp()[1] - now_ms) < 120_000


def test_v3_produce_keeps_repeated_header_names(rest, broker):
    """Kafka headers are a list: one name may come several times, in order (a Kafka producer's
    record keeps them all, and so does the broker)."""
    topic = unique("rest-dup-headers")
    rest.create_topic(topic, 1)
    headers = [("trace", b"first"), ("other", b"x"), ("trace", b"second")]
    status, _, r = rest.produce(topic, {"value": {"type": "STRING", "data": "v"},
                                        "headers": [{"name": n, "value": b64(v)} for n, v in headers]})
    assert status == 200, r
    m = read_back(broker, topic, {(0, r["offset"])})[(0, r["offset"])]
    assert m.headers() == headers


def test_v3_produce_without_partition_places_keys_consistently(rest, broker):
    topic = unique("rest-keys")
    rest.create_topic(topic, 3)
    first = {}
    for rnd in range(2):
        for i in range(12):
            status, _, r = rest.produce(topic, {"key": {"type": "STRING", "data": f"user-{i}"},
                                                "value": {"type": "STRING", "data": f"v{rnd}"}})
            assert status == 200, r
            check_result(r, rest, topic)
            assert 0 <= r["partition_id"] < 3
            first.setdefault(i, r["partition_id"])
            assert r["partition_id"] == first[i], "one key, two partitions"
    assert len(set(first.values())) > 1, "12 keys all on one partition"
    # Keyless records still land on existing partitions.
    status, _, r = rest.produce(topic, {"value": {"type": "STRING", "data": "no key"}})
    assert status == 200 and 0 <= r["partition_id"] < 3 and r["key"] is None


def test_v3_produce_several_records_in_one_body(rest, broker):
    topic = unique("rest-multi")
    rest.create_topic(topic, 1)
    body = "\n".join(json.dumps({"value": {"type": "STRING", "data": f"m{i}"}}) for i in range(5)).encode()
    status, hdrs, answer = http("POST", f"{rest.v3}/topics/{topic}/records", raw=body)
    assert status == 200, answer
    rs = lines(answer)
    assert len(rs) == 5
    for r in rs:
        check_result(r, rest, topic, 0)
    assert [r["offset"] for r in rs] == list(range(5))
    got = read_back(broker, topic, {(0, i) for i in range(5)})
    assert [got[(0, i)].value() for i in range(5)] == [b"m%d" % i for i in range(5)]


def chunked_post(url, chunks, timeout=60):
    """POSTs `chunks` with Transfer-Encoding: chunked (http.client); answers (status, headers, body text)."""
    u = urllib.parse.urlsplit(url)
    conn = httpclient.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.putrequest("POST", u.path)
        conn.putheader("Content-Type", V3)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for c in chunks:
            conn.send(b"%x\r\n%s\r\n" % (len(c), c))
        conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read().decode()
    finally:
        conn.close()


def test_v3_produce_streamed_chunked(rest, broker):
    topic = unique("rest-stream")
    rest.create_topic(topic, 3)
    n = 300
    records = []
    for i in range(n):
        if i % 3 == 0:
            rec = {"partition_id": i % 2, "value": {"type": "BINARY", "data": b64(b"bin-%d\x00" % i)}}
        elif i % 3 == 1:
            rec = {"key": {"type": "STRING", "data": f"k{i % 7}"}, "value": {"type": "STRING", "data": f"s-{i}"}}
        else:
            rec = {"partition_id": 2, "value": {"type": "JSON", "data": {"i": i}},
                   "headers": [{"name": "seq", "value": b64(str(i).encode())}]}
        records.append(rec)
    # One bad record in the middle: it is answered with its error in its place.
    bad_at = 150
    records.insert(bad_at, {"partition_id": 99, "value": {"type": "STRING", "data": "nowhere"}})
    text = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    # Chunks of odd sizes, so that records are split across chunk boundaries.
    chunks, pos, size = [], 0, 97
    while pos < len(text):
        chunks.append(text[pos:pos + size])
        pos += size
        size = size * 3 % 1013 + 50
    status, hdrs, body = chunked_post(f"{rest.v3}/topics/{topic}/records", chunks)
    assert status == 200, body
    assert media(hdrs) == V3
    answers = lines(body)
    assert len(answers) == n + 1, len(answers)
    assert answers[bad_at]["error_code"] == 40402 and set(answers[bad_at]) == {"error_code", "message"}
    ok = answers[:bad_at] + answers[bad_at + 1:]
    sent = records[:bad_at] + records[bad_at + 1:]
    per_partition = {}
    for rec, r in zip(sent, ok):
        check_result(r, rest, topic, rec.get("partition_id"))
        per_partition.setdefault(r["partition_id"], []).append(r["offset"])
    # Offsets are consecutive per partition, in the order of the records (a fresh topic: from 0).
    for p, offs in per_partition.items():
        assert offs == list(range(len(offs))), (p, offs[:20])
    got = read_back(broker, topic, {(r["partition_id"], r["offset"]) for r in ok})
    for i, (rec, r) in enumerate(zip(sent, ok)):
        m = got[(r["partition_id"], r["offset"])]
        v = rec["value"]
        if v["type"] == "BINARY":
            assert m.value() == base64.b64decode(v["data"])
        elif v["type"] == "STRING":
            assert m.value() == v["data"].encode()
            assert m.key() == rec["key"]["data"].encode()
        else:
            assert json.loads(m.value()) == v["data"]
            assert m.headers() == [("seq", base64.b64decode(rec["headers"][0]["value"]))]


def test_v3_stream_is_answered_while_the_body_arrives(rest):
    """The first records of a stream are answered before the stream ends (a client can pipe an
    endless stream), each on its own line."""
    topic = unique("rest-live")
    rest.create_topic(topic, 1)
    u = urllib.parse.urlsplit(f"{rest.v3}/topics/{topic}/records")
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    try:
        s.sendall(f"POST {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n".encode())

        def chunk(data):
            s.sendall(b"%x\r\n%s\r\n" % (len(data), data))

        first = b"".join(json.dumps({"value": {"type": "STRING", "data": f"a{i}"}}).encode() + b"\n"
                         for i in range(3))
        chunk(first)
        buf = b""
        deadline = time.monotonic() + 30
        while buf.count(b'"error_code":200') < 3 and time.monotonic() < deadline:
            data = s.recv(65536)
            if not data:
                break
            buf += data
        assert buf.startswith(b"HTTP/1.1 200"), buf[:200]
        assert buf.count(b'"error_code":200') == 3, buf
        chunk(json.dumps({"value": {"type": "STRING", "data": "last"}}).encode() + b"\n")
        s.sendall(b"0\r\n\r\n")
        deadline = time.monotonic() + 30
        while not buf.endswith(b"0\r\n\r\n") and time.monotonic() < deadline:
            data = s.recv(65536)
            if not data:
                break
            buf += data
        assert buf.count(b'"error_code":200') == 4, buf
        assert b'"offset":3' in buf
    finally:
        s.close()


# ---------------------------------------------------------------- v2 produce

def test_v2_produce_binary_and_json(rest, broker):
    topic = unique("rest-v2produce")
    rest.create_topic(topic, 2)
    keys = [b"\x00k\xff", None, b"key-2"]
    values = [bytes(range(200)), b"plain", None]
    body = {"records": [
        {"key": b64(keys[0]), "value": b64(values[0]), "partition": 1},
        {"value": b64(values[1]), "partition": 0},
        {"key": b64(keys[2]), "value": None, "partition": 1},
    ]}
    status, hdrs, r = http("POST", f"{rest.url}/topics/{topic}", body, V2_BINARY)
    assert status == 200, r
    assert media(hdrs) == V2
    assert (r["key_schema_id"], r["value_schema_id"]) == (None, None)
    assert [(o["partition"], o["offset"], o["error_code"], o["error"]) for o in r["offsets"]] == \
        [(1, 0, None, None), (0, 0, None, None), (1, 1, None, None)]
    got = read_back(broker, topic, {(1, 0), (0, 0), (1, 1)})
    assert (got[(1, 0)].key(), got[(1, 0)].value()) == (keys[0], values[0])
    assert (got[(0, 0)].key(), got[(0, 0)].value()) == (None, values[1])
    assert (got[(1, 1)].key(), got[(1, 1)].value()) == (keys[2], None)

    jbody = {"records": [{"key": "order-1", "value": {"total": 9.5, "items": ["a", "b"]}, "partition": 0},
                         {"value": [1, 2, 3], "partition": 0}]}
    status, _, r = http("POST", f"{rest.url}/topics/{topic}", jbody, V2_JSON)
    assert status == 200, r
    assert [(o["partition"], o["offset"]) for o in r["offsets"]] == [(0, 1), (0, 2)]
    got = read_back(broker, topic, {(0, 1), (0, 2)})
    assert got[(0, 1)].key() == b'"order-1"'
    assert json.loads(got[(0, 1)].value()) == {"total": 9.5, "items": ["a", "b"]}
    assert got[(0, 2)].key() is None and json.loads(got[(0, 2)].value()) == [1, 2, 3]

    # Keyed records without a partition: one key, one partition.
    body = {"records": [{"key": b64(b"same"), "value": b64(b"%d" % i)} for i in range(6)]}
    status, _, r = http("POST", f"{rest.url}/topics/{topic}", body, V2_BINARY)
    assert status == 200 and len({o["partition"] for o in r["offsets"]}) == 1, r


# ---------------------------------------------------------------- v2 consumers

def poll(base, accept=V2_BINARY, timeout_ms=1000):
    status, hdrs, body = http("GET", f"{base}/records?timeout={timeout_ms}", accept=accept)
    assert status == 200, body
    assert media(hdrs) == accept, hdrs
    assert isinstance(body, list), body
    return body


def poll_until(base, count, accept=V2_BINARY, timeout=60):
    """Polls until `count` records arrived (bounded in time and in number of polls)."""
    got = []
    deadline = time.monotonic() + timeout
    for _ in range(400):
        if len(got) >= count or time.monotonic() > deadline:
            break
        got.extend(poll(base, accept))
    assert len(got) >= count, f"{len(got)} of {count} records in {timeout}s: {got[:5]}"
    return got


def group_view(rest, group, path=""):
    status, _, body = http("GET", f"{rest.v3}/consumer-groups/{group}{path}")
    return status, body


def test_v2_consumer_instance_lifecycle(rest, broker):
    topic = unique("rest-consume")
    group = unique("rest-group")
    rest.create_topic(topic, 2)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    produced = {}
    for i in range(10):
        part = i % 2
        key, value = b"k\x00%d" % i, bytes([i, 0xFF, 0]) + b"v%d" % i
        p.produce(topic, key=key, value=value, partition=part)
        produced[(part, i // 2)] = (key, value)
    assert p.flush(15) == 0

    status, hdrs, created = http("POST", f"{rest.url}/consumers/{group}",
                                 {"name": "c1", "format": "binary", "auto.offset.reset": "earliest",
                                  "auto.commit.enable": "false"}, V2)
    assert status == 200, created
    assert media(hdrs) == V2
    base = f"{rest.url}/consumers/{group}/instances/c1"
    assert created == {"instance_id": "c1", "base_uri": base}

    status, _, body = http("POST", f"{base}/subscription", {"topics": [topic]}, V2)
    assert (status, body) == (204, None)
    status, hdrs, sub = http("GET", f"{base}/subscription")
    assert status == 200 and sub == {"topics": [topic]} and media(hdrs) == V2

    records = poll_until(base, 10)
    assert len(records) == 10
    seen = {}
    for r in records:
        assert set(r) >= {"topic", "key", "value", "partition", "offset"}, r
        assert r["topic"] == topic and isinstance(r.get("timestamp"), int)
        seen[(r["partition"], r["offset"])] = (base64.b64decode(r["key"]), base64.b64decode(r["value"]))
    assert seen == produced

    # The instance is a member of its group, as v3 sees it.
    def stable():
        s, g = group_view(rest, group)
        return s == 200 and g["state"] == "STABLE" and g
    g = wait_for("group stable", stable)
    c = rest.cluster_id
    gp = f"{rest.v3}/consumer-groups/{group}"
    assert g["kind"] == "KafkaConsumerGroup" and g["consumer_group_id"] == group and g["cluster_id"] == c
    assert g["metadata"] == {"self": gp, "resource_name": f"crn:///kafka={c}/consumer-group={group}"}
    assert g["is_simple"] is False and isinstance(g["partition_assignor"], str)
    assert g["consumers"] == {"related": f"{gp}/consumers"}
    assert g["lag_summary"] == {"related": f"{gp}/lag-summary"}
    assert g["coordinator"]["related"].startswith(f"{rest.v3}/brokers/")
    status, listed = http("GET", f"{rest.v3}/consumer-groups")[0::2]
    assert status == 200 and listed["kind"] == "KafkaConsumerGroupList"
    assert [x for x in listed["data"] if x["consumer_group_id"] == group] == [g]

    status, members = group_view(rest, group, "/consumers")
    assert status == 200 and members["kind"] == "KafkaConsumerList"
    assert len(members["data"]) == 1
    m = members["data"][0]
    mid = m["consumer_id"]
    assert m["kind"] == "KafkaConsumer" and m["consumer_group_id"] == group and isinstance(mid, str) and mid
    assert m["instance_id"] is None and isinstance(m["client_id"], str)
    status, one = group_view(rest, group, f"/consumers/{urllib.parse.quote(mid, safe='')}")
    assert status == 200 and one == m
    status, asg = group_view(rest, group, f"/consumers/{urllib.parse.quote(mid, safe='')}/assignments")
    assert status == 200 and asg["kind"] == "KafkaConsumerAssignmentList"
    assert sorted((a["topic_name"], a["partition_id"]) for a in asg["data"]) == [(topic, 0), (topic, 1)]
    for a in asg["data"]:
        assert a["kind"] == "KafkaConsumerAssignment" and a["consumer_id"] == mid
        assert a["partition"] == {"related": f"{rest.v3}/topics/{topic}/partitions/{a['partition_id']}"}
    assert_error(http("GET", f"{gp}/consumers/no-such-member"), 404, 404, V3)
    status, v2asg = http("GET", f"{base}/assignments")[0::2]
    assert status == 200
    assert sorted((x["topic"], x["partition"]) for x in v2asg["partitions"]) == [(topic, 0), (topic, 1)]

    # Commit an explicit offset (the last record processed: N+1 is committed), then everything.
    parts = {"partitions": [{"topic": topic, "partition": 0}, {"topic": topic, "partition": 1}]}

    def committed():
        status, _, body = http("GET", f"{base}/offsets", parts, V2)
        assert status == 200, body
        for o in body["offsets"]:
            assert o["topic"] == topic and o["metadata"] == "", o
        return {o["partition"]: o["offset"] for o in body["offsets"]}

    assert committed() == {0: -1, 1: -1}
    status, _, body = http("POST", f"{base}/offsets", {"offsets": [{"topic": topic, "partition": 0, "offset": 2}]}, V2)
    assert status == 200, body
    assert committed() == {0: 3, 1: -1}
    status, lags = group_view(rest, group, "/lags")
    assert status == 200 and lags["kind"] == "KafkaConsumerLagList"
    assert [(l["partition_id"], l["current_offset"], l["log_end_offset"], l["lag"]) for l in lags["data"]] == \
        [(0, 3, 5, 2)]
    status, _, body = http("POST", f"{base}/offsets", raw=b"", content_type=V2)
    assert status == 200, body
    assert committed() == {0: 5, 1: 5}

    status, lags = group_view(rest, group, "/lags")
    assert status == 200
    rows = sorted(lags["data"], key=lambda l: l["partition_id"])
    assert [(l["topic_name"], l["partition_id"], l["current_offset"], l["log_end_offset"], l["lag"])
            for l in rows] == [(topic, 0, 5, 5, 0), (topic, 1, 5, 5, 0)]
    for l in rows:
        assert l["kind"] == "KafkaConsumerLag" and l["consumer_group_id"] == group and l["cluster_id"] == c
        assert l["consumer_id"] == mid and l["instance_id"] is None and l["client_id"] == m["client_id"]
    for i in range(4):
        p.produce(topic, value=b"more-%d" % i, partition=1)
    assert p.flush(15) == 0
    status, summary = group_view(rest, group, "/lag-summary")
    assert status == 200 and summary["kind"] == "KafkaConsumerGroupLagSummary"
    assert (summary["consumer_group_id"], summary["max_lag_topic_name"], summary["max_lag_partition_id"],
            summary["max_lag"], summary["total_lag"]) == (group, topic, 1, 4, 4)
    assert summary["max_lag_consumer_id"] == mid and summary["max_lag_instance_id"] is None
    assert summary["max_lag_client_id"] == m["client_id"]
    assert summary["max_lag_partition"] == {"related": f"{rest.v3}/topics/{topic}/partitions/1"}
    assert summary["max_lag_consumer"]["related"].startswith(f"{gp}/consumers/")

    # The new records arrive; seek to the beginning, to an offset, to the end.
    more = poll_until(base, 4)
    assert sorted((r["partition"], r["offset"]) for r in more) == [(1, 5), (1, 6), (1, 7), (1, 8)]
    status, _, body = http("POST", f"{base}/positions/beginning", parts, V2)
    assert (status, body) == (204, None)
    again = poll_until(base, 14)
    assert sorted((r["partition"], r["offset"]) for r in again)[:14] == \
        sorted([(0, i) for i in range(5)] + [(1, i) for i in range(9)])
    status, _, body = http("POST", f"{base}/positions", {"offsets": [{"topic": topic, "partition": 1, "offset": 7}]}, V2)
    assert (status, body) == (204, None)
    after_seek = poll_until(base, 2)
    assert sorted((r["partition"], r["offset"]) for r in after_seek) == [(1, 7), (1, 8)]
    status, _, body = http("POST", f"{base}/positions/end", parts, V2)
    assert (status, body) == (204, None)
    assert poll(base, timeout_ms=300) == []
    p.produce(topic, value=b"after-end", partition=0)
    assert p.flush(15) == 0
    tail = poll_until(base, 1)
    assert [(r["partition"], r["offset"], base64.b64decode(r["value"])) for r in tail] == [(0, 5, b"after-end")]

    # Unsubscribe; assign by hand; subscription and assignment exclude each other.
    status, _, body = http("DELETE", f"{base}/subscription")
    assert (status, body) == (204, None)
    assert http("GET", f"{base}/subscription")[2] == {"topics": []}
    status, _, body = http("POST", f"{base}/assignments", {"partitions": [{"topic": topic, "partition": 1}]}, V2)
    assert (status, body) == (204, None)
    assert http("GET", f"{base}/assignments")[2] == {"partitions": [{"topic": topic, "partition": 1}]}
    assert_error(http("POST", f"{base}/subscription", {"topics": [topic]}, V2), 409, 40903, V2)
    status, _, body = http("POST", f"{base}/positions", {"offsets": [{"topic": topic, "partition": 1, "offset": 8}]}, V2)
    assert status == 204, body
    assigned = poll_until(base, 1)
    assert [(r["partition"], r["offset"]) for r in assigned] == [(1, 8)]

    # Delete: gone, and the group has no member left.
    status, _, body = http("DELETE", base)
    assert (status, body) == (204, None)
    for method, path in (("GET", "/subscription"), ("GET", "/assignments"), ("GET", "/records"), ("DELETE", "")):
        assert_error(http(method, f"{base}{path}", accept=V2_BINARY if path == "/records" else None),
                     404, 40403, V2)
    wait_for("member left", lambda: group_view(rest, group)[0] == 404
             or group_view(rest, group)[1]["state"] == "EMPTY")


def test_v2_consumer_json_format_and_topic_pattern(rest, broker):
    prefix = unique("rest-pattern")
    topics = [f"{prefix}-a", f"{prefix}-b"]
    for t in topics:
        rest.create_topic(t, 1)
    for t in topics:
        status, _, r = http("POST", f"{rest.url}/topics/{t}",
                            {"records": [{"key": {"t": t}, "value": {"n": i, "s": "é"}} for i in range(3)]}, V2_JSON)
        assert status == 200 and all(o["error_code"] is None for o in r["offsets"]), r
    group = unique("rest-jgroup")
    base = rest.consumer(group, format="json", **{"auto.offset.reset": "earliest"})
    status, _, body = http("POST", f"{base}/subscription", {"topic_pattern": f"{prefix}-.*"}, V2)
    assert status == 204, body
    assert_error(http("GET", f"{base}/records", accept=V2_BINARY), 406, 40601, V2)
    records = poll_until(base, 6, accept=V2_JSON)
    assert sorted((r["topic"], r["offset"]) for r in records) == sorted((t, i) for t in topics for i in range(3))
    for r in records:
        assert r["key"] == {"t": r["topic"]} and r["value"] == {"n": r["offset"], "s": "é"}
    # auto.commit.enable defaults to true: what was returned is committed.
    def all_committed():
        status, _, body = http("GET", f"{base}/offsets",
                               {"partitions": [{"topic": t, "partition": 0} for t in topics]}, V2)
        return status == 200 and [o["offset"] for o in body["offsets"]] == [3, 3]
    wait_for("auto commit", all_committed, timeout=20)
    assert http("DELETE", base)[0] == 204


# ---------------------------------------------------------------- errors

def test_bad_requests(rest, broker):
    v3t = f"{rest.v3}/topics"
    # Bad JSON, missing field, wrong type: 400 / 400.
    assert_error(http("POST", v3t, raw=b'{"topic_name": '), 400, 400, V3)
    assert_error(http("POST", v3t, raw=b"not json at all"), 400, 400, V3)
    assert_error(http("POST", v3t, {"topic_name": 5}), 400, 400, V3)
    topic = unique("rest-errors")
    rest.create_topic(topic, 2)
    rec = f"{v3t}/{topic}/records"
    assert_error(http("POST", rec, raw=b'{"value": {"type": "STRING", "data": "x"'), 400, 400, V3)
    assert_error(http("POST", rec, {"value": {"type": "BINARY", "data": "%%% not base64"}}), 400, 400, V3)
    assert_error(http("POST", rec, {"value": {"type": "STRING", "data": 5}}), 400, 400, V3)
    assert_error(http("POST", rec, {"value": {"type": "XML", "data": "<a/>"}}), 400, 400, V3)
    assert_error(http("POST", rec, {"value": {"type": "STRING", "data": "x"}, "timestamp": "yesterday"}), 400, 400, V3)
    assert_error(http("POST", rec, {"value": {"type": "STRING", "data": "x"}, "partition_id": "one"}), 400, 400, V3)
    assert_error(http("POST", rec, {"headers": [{"name": "h", "value": "%%%"}]}), 400, 400, V3)
    assert_error(http("POST", f"{rest.url}/topics/{topic}", raw=b'{"records": [', content_type=V2_BINARY),
                 400, 400, V2)
    assert_error(http("POST", f"{rest.url}/consumers/{unique('g')}", raw=b"{nope", content_type=V2), 400, 400, V2)
    # v2 consumer configs REST Proxy cannot use: 422 / 42204.
    for config in ({"format": "avro"}, {"format": "protobuf"}, {"format": "jsonschema"},
                   {"auto.offset.reset": "sometimes"}, {"auto.commit.enable": "perhaps"}):
        assert_error(http("POST", f"{rest.url}/consumers/{unique('g')}", config, V2), 422, 42204, V2)
    kafka_alive(broker)


def test_unknown_cluster_topic_partition(rest, broker):
    bogus = f"{rest.url}/v3/clusters/no-such-cluster"
    for path in ("", "/brokers", "/topics", f"/topics/x", "/consumer-groups"):
        assert_error(http("GET", bogus + path), 404, 404, V3)
    assert_error(http("POST", f"{bogus}/topics/x/records", {"value": {"data": 1}}), 404, 404, V3)
    missing = unique("rest-missing")
    assert_error(http("GET", f"{rest.v3}/topics/{missing}"), 404, 40403, V3)
    assert_error(rest.produce(missing, {"value": {"type": "STRING", "data": "x"}}), 404, 40403, V3)
    assert_error(http("POST", f"{rest.url}/topics/{missing}", {"records": [{"value": "eA=="}]}, V2_BINARY),
                 404, 40403, V2)
    assert_error(http("GET", f"{rest.url}/topics/{missing}/partitions/0/offsets"), 404, 40403, V2)
    # Produce never creates a topic.
    assert missing not in topic_names(broker)
    topic = unique("rest-unknown-part")
    rest.create_topic(topic, 2)
    assert_error(rest.produce(topic, {"partition_id": 2, "value": {"type": "STRING", "data": "x"}}), 404, 40402, V3)
    assert_error(http("GET", f"{rest.v3}/topics/{topic}/partitions/2"), 404, 40402, V3)
    assert_error(http("GET", f"{rest.url}/topics/{topic}/partitions/2"), 404, 40402, V2)
    assert_error(group_view_resp(rest, unique("no-group")), 404, 404, V3)
    kafka_alive(broker)


def test_v3_produce_of_an_empty_body_is_a_bad_request(rest, broker):
    topic = unique("rest-empty")
    rest.create_topic(topic, 1)
    # The body is required: an empty one is a missing record (400), not an empty stream.
    assert_error(http("POST", f"{rest.v3}/topics/{topic}/records", raw=b""), 400, 400, V3)
    kafka_alive(broker)


def test_v2_binary_produce_of_a_non_string_is_a_bad_request(rest, broker):
    topic = unique("rest-mistyped")
    rest.create_topic(topic, 1)
    # v2 binary produce: a value that is not a (base64) string is of the wrong type (400).
    assert_error(http("POST", f"{rest.url}/topics/{topic}", {"records": [{"value": {"a": 1}}]}, V2_BINARY),
                 400, 400, V2)
    kafka_alive(broker)


def test_seek_to_an_unknown_partition_or_topic(rest, broker):
    topic = unique("rest-seek")
    rest.create_topic(topic, 2)
    base = rest.consumer(unique("rest-seek-group"))
    try:
        for where in ("beginning", "end"):
            assert_error(http("POST", f"{base}/positions/{where}",
                              {"partitions": [{"topic": unique("nope"), "partition": 0}]}, V2), 404, 40403, V2)
            assert_error(http("POST", f"{base}/positions/{where}",
                              {"partitions": [{"topic": topic, "partition": 7}]}, V2), 404, 40402, V2)
    finally:
        assert http("DELETE", base)[0] == 204
    kafka_alive(broker)


def group_view_resp(rest, group):
    return http("GET", f"{rest.v3}/consumer-groups/{group}")


def test_content_type_accept_and_routes(rest, broker):
    topic = unique("rest-ctype")
    rest.create_topic(topic, 1)
    rec = json.dumps({"value": {"type": "STRING", "data": "x"}}).encode()
    # Unsupported Content-Type on a request with a body: 415.
    assert_error(http("POST", f"{rest.v3}/topics", raw=b'{"topic_name": "x"}', content_type="text/plain"),
                 415, 415, V3)
    assert_error(http("POST", f"{rest.v3}/topics/{topic}/records", raw=rec, content_type="text/plain"), 415, 415, V3)
    assert_error(http("PUT", f"{rest.v3}/topics/{topic}/configs/retention.ms", raw=b'{"value": "1000"}',
                      content_type="application/xml"), 415, 415, V3)
    assert_error(http("POST", f"{rest.url}/topics/{topic}", raw=b'{"records": []}', content_type="text/plain"),
                 415, 415, V2)
    assert_error(http("POST", f"{rest.url}/consumers/{unique('g')}", raw=b"{}",
                      content_type="application/x-www-form-urlencoded"), 415, 415, V2)
    # application/json is accepted on v2 requests too.
    status, _, body = http("POST", f"{rest.url}/consumers/{unique('g')}", {"name": "j"}, V3)
    assert status == 200, body

    # Wrong Accept on records: 406 / 40601.
    group = unique("rest-accept")
    base = rest.consumer(group, name="bin")
    assert http("POST", f"{base}/subscription", {"topics": [topic]}, V2)[0] == 204
    assert_error(http("GET", f"{base}/records", accept=V2_JSON), 406, 40601, V2)
    assert_error(http("GET", f"{base}/records", accept="application/vnd.kafka.avro.v2+json"), 406, 40601, V2)
    # Duplicate instance name: 409 / 40902.
    assert_error(http("POST", f"{rest.url}/consumers/{group}", {"name": "bin"}, V2), 409, 40902, V2)
    # The same name in another group is another instance.
    assert http("POST", f"{rest.url}/consumers/{unique('other')}", {"name": "bin"}, V2)[0] == 200
    assert_error(http("GET", f"{rest.url}/consumers/{group}/instances/nobody/subscription"), 404, 40403, V2)
    assert http("DELETE", base)[0] == 204

    # Unknown routes: 404 / 404; a wrong method on a known route: 405 / 405.
    for path in ("/v3/nope", "/v3/clusters/x/y/z/w/v", "/nope", "/topics/a/b/c/d/e", "/consumers/g/nope"):
        assert_error(http("GET", f"{rest.url}{path}"), 404, 404)
    for method, path in (("DELETE", "/v3/clusters"), ("PUT", f"/v3/clusters/{rest.cluster_id}/topics"),
                         ("POST", f"/v3/clusters/{rest.cluster_id}/topics/{topic}/partitions"),
                         ("DELETE", "/topics"), ("PUT", f"/topics/{topic}"), ("GET", f"/consumers/{group}"),
                         ("POST", "/brokers")):
        assert_error(http(method, f"{rest.url}{path}", raw=b"{}" if method in ("PUT", "POST") else None), 405, 405)
    kafka_alive(broker)


# ---------------------------------------------------------------- limits and expiry: a broker of their own

@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """A broker with a small body limit and a 2 s consumer instance timeout."""
    base = tmp_path_factory.mktemp("riptide-rest-limits")
    b = Broker(str(base / "data"), extra_args=[
        "--shards", "2", "--no-pin", *IO_ARGS,
        "--override", "rest.max.request.bytes=4096",
        "--override", "rest.consumer.instance.timeout.ms=2000"]).start()
    yield Rest(b)
    b.stop()


def test_oversized_body_is_refused(limited):
    r = limited
    topic = unique("rest-big")
    r.create_topic(topic, 1)
    big = {"value": {"type": "BINARY", "data": b64(os.urandom(8192))}}
    assert_error(r.produce(topic, big), 413, 413, V3)
    assert_error(http("POST", f"{r.v3}/topics", {"topic_name": "x" * 200, "configs": [
        {"name": "retention.ms", "value": "1" * 5000}]}), 413, 413, V3)
    assert_error(http("POST", f"{r.url}/topics/{topic}", {"records": [{"value": b64(os.urandom(8192))}]}, V2_BINARY),
                 413, 413, V2)
    # A record under the limit still goes through, and the broker serves Kafka.
    status, _, ok = r.produce(topic, {"value": {"type": "BINARY", "data": b64(b"small")}})
    assert status == 200 and ok["offset"] == 0, ok
    kafka_alive(r.broker)


class KeepBusy:
    """Uses a consumer instance every 0.3 s from a thread of its own; `answers` are the statuses."""

    def __init__(self, base):
        self.base, self.answers, self.stop = base, [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            self.answers.append(http("GET", f"{self.base}/subscription", timeout=10)[0])
            self.stop.wait(0.3)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(15)


def gone_after_idling(base, idle_s=3.0, attempts=8):
    """Leaves the instance alone for idle_s (more than the 2 s timeout plus the 0.5 s sweep), then
    looks: answers True once it is gone. A look that finds it uses it again, so a slow sweep only
    costs another round (bounded)."""
    for _ in range(attempts):
        time.sleep(idle_s)
        status, _, _ = http("GET", f"{base}/assignments")
        if status == 404:
            return True
    return False


def test_idle_consumer_instances_expire(limited):
    r = limited
    topic = unique("rest-expire")
    r.create_topic(topic, 1)
    group = unique("rest-expire-group")
    idle = r.consumer(group, name="idle")
    busy = r.consumer(group, name="busy")
    assert http("POST", f"{idle}/assignments", {"partitions": [{"topic": topic, "partition": 0}]}, V2)[0] == 204
    with KeepBusy(busy) as keeper:
        assert gone_after_idling(idle), "an idle instance outlived rest.consumer.instance.timeout.ms"
        assert_error(http("GET", f"{idle}/assignments"), 404, 40403, V2)
        assert_error(http("DELETE", idle), 404, 40403, V2)
    assert keeper.answers and set(keeper.answers) == {200}, keeper.answers
    assert http("GET", f"{busy}/subscription")[0] == 200
    # The name is free again.
    status, _, again = http("POST", f"{r.url}/consumers/{group}", {"name": "idle"}, V2)
    assert status == 200, again
    kafka_alive(r.broker)


def test_consumer_instance_in_use_does_not_expire(limited):
    """Idle means unused: a poll longer than the timeout, or the first poll of a subscription
    (which joins the group, 3 s for a new group), does not get its instance deleted under it.
    Left alone afterwards, the member expires and leaves its group."""
    r = limited
    topic = unique("rest-inuse")
    r.create_topic(topic, 1)
    group = unique("rest-inuse-group")
    assigned = r.consumer(group, name="assigned")
    assert http("POST", f"{assigned}/assignments",
                {"partitions": [{"topic": topic, "partition": 0}]}, V2)[0] == 204
    status, _, body = http("GET", f"{assigned}/records?timeout=3500", accept=V2_BINARY)
    assert (status, body) == (200, []), body
    assert http("GET", f"{assigned}/assignments")[0] == 200, "expired during its own poll"
    assert http("DELETE", assigned)[0] == 204

    member = r.consumer(group + "-m", name="member", **{"auto.offset.reset": "earliest"})
    assert http("POST", f"{member}/subscription", {"topics": [topic]}, V2)[0] == 204

    def joined():
        poll(member, timeout_ms=200)
        status, body = group_view(r, group + "-m", "/consumers")
        return status == 200 and len(body["data"]) == 1
    wait_for("member joined its group", joined, timeout=60, interval=0.1)

    def left():
        status, body = group_view(r, group + "-m", "/consumers")
        return status == 404 or not body["data"]
    wait_for("expired member left its group", left, timeout=30, interval=0.3)
    assert_error(http("GET", f"{member}/subscription"), 404, 40403, V2)


def test_broker_serves_kafka_after_all_of_it(rest, broker):
    kafka_alive(broker)
    status, _, body = http("GET", f"{rest.url}/v3/clusters")
    assert status == 200 and body["data"][0]["cluster_id"] == rest.cluster_id
