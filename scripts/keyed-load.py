#!/usr/bin/env python3
"""Keyed produce load with librdkafka (confluent-kafka): random keys spread every request over all
partitions, so partition-batches are small (about rate * linger / partitions records each) --
the shape of issue 22's per-batch cost. Prints what it sent; the broker-side CPU is read by the
caller (scripts/batch-cost-keyed.sh). Not run in CI.

usage: keyed-load.py BOOTSTRAP TOPIC PARTITIONS RATE SECONDS [SIZE]
"""
import os
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, topic, partitions, rate, seconds = sys.argv[1:6]
size = int(sys.argv[6]) if len(sys.argv) > 6 else 1024
partitions, rate, seconds = int(partitions), int(rate), float(seconds)
admin = AdminClient({"bootstrap.servers": bootstrap})
for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
    f.result(30)
p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "acks": "all",
              "enable.idempotence": False, "queue.buffering.max.messages": 1000000,
              "batch.size": 1048576})
payload = os.urandom(size)
sent = errors = 0
def done(err, _msg):
    global errors
    if err is not None:
        errors += 1
start = time.monotonic()
tick = 0.005
while True:
    elapsed = time.monotonic() - start
    if elapsed >= seconds:
        break
    due = int(elapsed * rate) - sent
    for _ in range(max(due, 0)):
        p.produce(topic, payload, key=os.urandom(8), on_delivery=done)
        sent += 1
    p.poll(0)
    time.sleep(tick)
left = p.flush(30)
print(f"sent {sent} in {time.monotonic() - start:.1f} s, errors {errors}, unflushed {left}")
