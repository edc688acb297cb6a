"""Metadata latencies of a local 3-node cluster: CreateTopics round trips, and the time from
kill -9 of the active controller to the next successful topic creation. Not a test.
Usage: RIPTIDE_BIN=target/release/riptide .venv/bin/python tests/compat/cluster_latency.py"""
import os
import sys
import tempfile
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("RIPTIDE_BIN", "target/release/riptide")
from cluster import Cluster
from confluent_kafka.admin import AdminClient, NewTopic
c = Cluster(tempfile.mkdtemp(), 3, ["--override", "broker.session.timeout.ms=3000", "--override", "broker.heartbeat.interval.ms=500"])
c.start()
a = AdminClient({"bootstrap.servers": c.node(1).bootstrap})
lat = []
for i in range(50):
    s = time.time(); a.create_topics([NewTopic(f"m{i}", 3, 1)])[f"m{i}"].result(30); lat.append((time.time()-s)*1000)
lat.sort(); print(f"CreateTopics (3 partitions) x50: p50 {lat[25]:.1f} ms, p90 {lat[45]:.1f} ms, max {lat[-1]:.1f} ms")
act = c.active_controller(); s = time.time(); act.kill9()
new = c.active_controller(timeout=30); t_elect = time.time()-s
other = [n for n in c.nodes if n.alive()][0]
a2 = AdminClient({"bootstrap.servers": other.bootstrap})
while True:
    try:
        a2.create_topics([NewTopic("after", 1, 1)])["after"].result(30); break
    except Exception as e:
        time.sleep(0.05)
print(f"kill -9 active controller {act.id}: new active {new.id} seen after {t_elect:.2f}s, first topic created after {time.time()-s:.2f}s")
c.stop()
