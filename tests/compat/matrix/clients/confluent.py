"""confluent-kafka (librdkafka) driver for the client matrix (see ../scenario.py)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import confluent_kafka  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # noqa: E402

import scenario  # noqa: E402

ACKS = {0: "0", 1: "1", -1: "all"}


def s(b):
    return None if b is None else b.decode()


class Client:
    def __init__(self, bootstrap):
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})

    def topics(self):
        return set(self.admin.list_topics(timeout=10).topics)

    def create_topic(self, topic):
        self.admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(15)

    def produce(self, topic, msgs, acks, codec):
        p = Producer({"bootstrap.servers": self.bootstrap, "acks": ACKS[acks], "linger.ms": 5,
                      "enable.idempotence": False, "compression.type": codec or "none"})
        errors = []
        for k, v, h in msgs:
            p.produce(topic, key=k and k.encode(), value=v.encode(), partition=0,
                      headers=[(hk, hv.encode()) for hk, hv in h] or None,
                      on_delivery=lambda e, m: errors.append(e) if e else None)
        left = p.flush(20)
        scenario.check(left == 0 and not errors, f"{left} undelivered, errors {errors[:3]}")

    def _consumer(self, **extra):
        conf = {"bootstrap.servers": self.bootstrap, "group.id": "matrix-assign", "enable.auto.commit": False}
        conf.update(extra)
        return Consumer(conf)

    def consume(self, topic, offset, count, timeout):
        c = self._consumer()
        c.assign([TopicPartition(topic, 0, offset)])
        out = []
        deadline = time.time() + timeout
        try:
            while len(out) < count and time.time() < deadline:
                m = c.poll(0.5)
                if m is None:
                    continue
                if m.error():
                    raise RuntimeError(str(m.error()))
                out.append((s(m.key()), s(m.value()), [(hk, s(hv)) for hk, hv in (m.headers() or [])]))
        finally:
            c.close()
        return out

    def end_offset(self, topic):
        c = self._consumer()
        try:
            return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
        finally:
            c.close()

    def offset_for_time(self, topic, ts_ms):
        c = self._consumer()
        try:
            return c.offsets_for_times([TopicPartition(topic, 0, ts_ms)], timeout=10)[0].offset
        finally:
            c.close()

    def group_consume(self, topic, group, count, timeout):
        c = self._consumer(**{"group.id": group, "auto.offset.reset": "earliest",
                              "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
        c.subscribe([topic])
        out = []
        deadline = time.time() + timeout
        try:
            while len(out) < count and time.time() < deadline:
                m = c.poll(0.5)
                if m is None:
                    continue
                if m.error():
                    raise RuntimeError(str(m.error()))
                out.append(s(m.value()))
            if out:
                c.commit(asynchronous=False)
        finally:
            c.close()
        return out

    def committed(self, topic, group):
        c = self._consumer(**{"group.id": group})
        try:
            return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
        finally:
            c.close()

    def describe_configs(self, topic):
        res = ConfigResource(ConfigResource.Type.TOPIC, topic)
        return {k: v.value for k, v in self.admin.describe_configs([res])[res].result(15).items()}

    def delete_topic(self, topic):
        self.admin.delete_topics([topic])[topic].result(15)


if __name__ == "__main__":
    scenario.main(Client, "confluent-kafka (Python)", confluent_kafka.__version__,
                  f"librdkafka {confluent_kafka.libversion()[0]}")
