"""kafka-python driver for the client matrix (see ../scenario.py)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import kafka  # noqa: E402
from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic  # noqa: E402

import scenario  # noqa: E402

ACKS = {0: 0, 1: 1, -1: "all"}


def s(b):
    return None if b is None else b.decode()


class Client:
    def __init__(self, bootstrap):
        self.bootstrap = bootstrap
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap)

    def close(self):
        self.admin.close()

    def topics(self):
        return set(self.admin.list_topics())

    def create_topic(self, topic):
        self.admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])

    def produce(self, topic, msgs, acks, codec):
        p = KafkaProducer(bootstrap_servers=self.bootstrap, acks=ACKS[acks], linger_ms=5,
                          compression_type=codec)
        try:
            futures = [p.send(topic, key=k and k.encode(), value=v.encode(), partition=0,
                              headers=[(hk, hv.encode()) for hk, hv in h]) for k, v, h in msgs]
            p.flush(20)
            for f in futures:
                f.get(timeout=20)
        finally:
            p.close(5)

    def _consumer(self, *topics, **extra):
        conf = dict(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        conf.update(extra)
        return KafkaConsumer(*topics, **conf)

    def consume(self, topic, offset, count, timeout):
        c = self._consumer()
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, offset)
        out = []
        deadline = time.time() + timeout
        try:
            while len(out) < count and time.time() < deadline:
                for msgs in c.poll(timeout_ms=500).values():
                    out.extend((s(m.key), s(m.value), [(hk, s(hv)) for hk, hv in m.headers]) for m in msgs)
        finally:
            c.close()
        return out

    def end_offset(self, topic):
        c = self._consumer()
        try:
            tp = TopicPartition(topic, 0)
            return c.end_offsets([tp])[tp]
        finally:
            c.close()

    def offset_for_time(self, topic, ts_ms):
        c = self._consumer()
        try:
            tp = TopicPartition(topic, 0)
            found = c.offsets_for_times({tp: ts_ms})[tp]
            return None if found is None else found.offset
        finally:
            c.close()

    def group_consume(self, topic, group, count, timeout):
        c = self._consumer(topic, group_id=group, auto_offset_reset="earliest",
                           session_timeout_ms=6000, heartbeat_interval_ms=500)
        out = []
        deadline = time.time() + timeout
        try:
            while len(out) < count and time.time() < deadline:
                for msgs in c.poll(timeout_ms=500).values():
                    out.extend(s(m.value) for m in msgs)
            if out:
                c.commit()
        finally:
            c.close()
        return out

    def committed(self, topic, group):
        c = self._consumer(group_id=group)
        try:
            return c.committed(TopicPartition(topic, 0))
        finally:
            c.close()

    def describe_configs(self, topic):
        res = self.admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                          config_filter="all")
        return {k: c.get("value") for k, c in res["topic"][topic].items()}

    def delete_topic(self, topic):
        self.admin.delete_topics([topic])


if __name__ == "__main__":
    scenario.main(Client, "kafka-python", kafka.__version__)
