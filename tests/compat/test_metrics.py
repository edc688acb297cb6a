"""Prometheus /metrics: request latency per API, bytes and messages in/out, fsync latency,
log end offset per partition, connection count."""
import subprocess
import urllib.request

from conftest import unique


def scrape(broker):
    return urllib.request.urlopen(broker.metrics_url, timeout=5).read().decode()


def test_metrics_reflect_traffic(broker):
    topic = unique("metrics")
    subprocess.run(["kcat", "-b", broker.bootstrap, "-P", "-t", topic, "-p", "0"],
                   input=b"".join(b"m%d\n" % i for i in range(50)), check=True, timeout=30)
    subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q"],
                   check=True, timeout=30, capture_output=True)
    text = scrape(broker)
    assert 'riptide_request_latency_seconds_count{api="Produce"}' in text
    assert 'riptide_request_latency_seconds_count{api="Fetch"}' in text
    assert f'riptide_log_end_offset{{topic="{topic}",partition="0"}} 50' in text
    values = {l.split()[0]: float(l.split()[1]) for l in text.splitlines() if l and not l.startswith("#")}
    assert values["riptide_messages_in_total"] >= 50
    assert values["riptide_messages_out_total"] >= 50
    assert values["riptide_bytes_in_total"] > 0 and values["riptide_bytes_out_total"] > 0
    assert values["riptide_fsync_latency_seconds_count{}"] >= 1
    assert "riptide_connections " in text
