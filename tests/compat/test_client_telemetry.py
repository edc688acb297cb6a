"""Client telemetry (KIP-714, issue 19 item 4): a client-metrics subscription set through
kafka-python's admin client (CLIENT_METRICS config resources) makes librdkafka push its metrics
(GetTelemetrySubscriptions, then PushTelemetry every interval), and the broker exposes them on
/metrics per client instance. A client the subscription's `match` leaves out pushes nothing."""
import re
import time
import urllib.request

from confluent_kafka import Producer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from conftest import unique


def scrape(broker):
    return urllib.request.urlopen(broker.metrics_url, timeout=5).read().decode()


def described(admin, name):
    """{config: value} of the subscription, defaults included."""
    r = admin.describe_configs([ConfigResource(ConfigResourceType.CLIENT_METRICS, name)], config_filter="all")
    (configs,) = [c for by_name in r.values() for c in by_name.values()]
    return {k: v["value"] for k, v in configs.items()}


def alter(admin, name, configs):
    admin.alter_configs([ConfigResource(ConfigResourceType.CLIENT_METRICS, name, configs=configs)],
                        raise_on_unknown=False, incremental=True)


def test_librdkafka_pushes_subscribed_metrics(broker):
    subscription = unique("telemetry")
    pushing, silent = unique("telemetry-app"), unique("quiet-app")
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    configs = {"metrics": "org.apache.kafka.producer.", "interval.ms": "500",
               "match": f"client_id={re.escape(pushing)}"}
    alter(admin, subscription, configs)
    assert described(admin, subscription) == configs

    producers = []
    for client_id in (pushing, silent):
        p = Producer({"bootstrap.servers": broker.bootstrap, "client.id": client_id, "linger.ms": 5})
        p.produce(unique("telemetry-topic"), b"x")
        producers.append(p)
    series = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for p in producers:
            p.poll(0.2)
        text = scrape(broker)
        series = [line for line in text.splitlines()
                  if line.startswith("kafka_client_producer_") and f'client_id="{pushing}"' in line]
        if len(series) >= 3:
            break
    assert len(series) >= 3, "the subscribed producer's metrics on /metrics"
    assert any("node_request_latency" in s for s in series), series
    assert all('client_instance_id="' in s for s in series)
    assert f'client_id="{silent}"' not in scrape(broker), "not selected by the match: no push"
    for p in producers:
        p.flush(10)

    # No configs left: the subscription is gone (DescribeConfigs shows the defaults).
    alter(admin, subscription, {k: ("DELETE", None) for k in configs})
    assert described(admin, subscription) == {"metrics": "", "interval.ms": "300000", "match": ""}
    admin.close()
