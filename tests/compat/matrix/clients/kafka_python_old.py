"""kafka-python speaking Kafka 0.10.2's protocol (`api_version=(0, 10, 2)`): the clients Kafka
4.0 left behind (KIP-896). It produces message format 1 with Produce v2, fetches with Fetch v3
(the broker down-converts), lists offsets with ListOffsets v1 and joins groups with JoinGroup
v1. Headers and zstd need message format 2 (Kafka 0.11 / 2.1), and DescribeConfigs came with
0.11: under this protocol the client has no way to ask for them, so those steps are unsupported,
not failures."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import kafka  # noqa: E402
from kafka import KafkaConsumer, KafkaProducer  # noqa: E402
from kafka.admin import KafkaAdminClient  # noqa: E402

import kafka_python  # noqa: E402
import scenario  # noqa: E402

API_VERSION = (0, 10, 2)


class Client(kafka_python.Client):
    def __init__(self, bootstrap):
        self.bootstrap = bootstrap
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, api_version=API_VERSION)

    def produce(self, topic, msgs, acks, codec):
        if any(h for _, _, h in msgs):
            raise scenario.Unsupported("message format 1 (Kafka 0.10) has no record headers")
        if codec == "zstd":
            raise scenario.Unsupported("zstd needs message format 2 (Kafka 2.1)")
        p = KafkaProducer(bootstrap_servers=self.bootstrap, acks=kafka_python.ACKS[acks], linger_ms=5,
                          compression_type=codec, api_version=API_VERSION)
        try:
            futures = [p.send(topic, key=k and k.encode(), value=v.encode(), partition=0) for k, v, _ in msgs]
            p.flush(20)
            for f in futures:
                f.get(timeout=20)
        finally:
            p.close(5)

    def describe_configs(self, topic):
        raise scenario.Unsupported("DescribeConfigs came with Kafka 0.11; this protocol has none")

    def _consumer(self, *topics, **extra):
        conf = dict(bootstrap_servers=self.bootstrap, enable_auto_commit=False, api_version=API_VERSION)
        conf.update(extra)
        return KafkaConsumer(*topics, **conf)


if __name__ == "__main__":
    scenario.main(Client, "kafka-python (Kafka 0.10.2 protocol)", kafka.__version__)
