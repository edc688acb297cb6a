"""aiokafka driver for the client matrix (see ../scenario.py). Each primitive runs its own
event loop, so the scenario code stays synchronous."""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import aiokafka  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType  # noqa: E402
from aiokafka.structs import TopicPartition  # noqa: E402

import scenario  # noqa: E402

ACKS = {0: 0, 1: 1, -1: "all"}


def s(b):
    return None if b is None else b.decode()


def sync(fn):
    def wrapper(*a):
        return asyncio.run(fn(*a))
    return wrapper


class Client:
    def __init__(self, bootstrap):
        self.bootstrap = bootstrap

    async def _admin(self, fn):
        a = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await a.start()
        try:
            return await fn(a)
        finally:
            await a.close()

    @sync
    async def topics(self):
        return set(await self._admin(lambda a: a.list_topics()))

    @sync
    async def create_topic(self, topic):
        await self._admin(lambda a: a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]))

    @sync
    async def produce(self, topic, msgs, acks, codec):
        p = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks=ACKS[acks], linger_ms=5,
                             compression_type=codec)
        await p.start()
        try:
            futures = [await p.send(topic, key=k and k.encode(), value=v.encode(), partition=0,
                                    headers=[(hk, hv.encode()) for hk, hv in h]) for k, v, h in msgs]
            await asyncio.wait_for(asyncio.gather(*futures), 20)
        finally:
            await p.stop()

    async def _poll(self, c, count, timeout, convert):
        out = []
        deadline = time.time() + timeout
        while len(out) < count and time.time() < deadline:
            for msgs in (await c.getmany(timeout_ms=500)).values():
                out.extend(convert(m) for m in msgs)
        return out

    @sync
    async def consume(self, topic, offset, count, timeout):
        c = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await c.start()
        try:
            tp = TopicPartition(topic, 0)
            c.assign([tp])
            c.seek(tp, offset)
            return await self._poll(c, count, timeout, lambda m: (
                s(m.key), s(m.value), [(hk, s(hv)) for hk, hv in m.headers]))
        finally:
            await c.stop()

    async def _one_shot(self, fn, group=None):
        c = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=group)
        await c.start()
        try:
            return await fn(c, TopicPartition(self._topic, 0))
        finally:
            await c.stop()

    @sync
    async def end_offset(self, topic):
        self._topic = topic
        return await self._one_shot(lambda c, tp: self._end(c, tp))

    async def _end(self, c, tp):
        return (await c.end_offsets([tp]))[tp]

    @sync
    async def offset_for_time(self, topic, ts_ms):
        self._topic = topic

        async def lookup(c, tp):
            found = (await c.offsets_for_times({tp: ts_ms}))[tp]
            return None if found is None else found.offset
        return await self._one_shot(lookup)

    @sync
    async def group_consume(self, topic, group, count, timeout):
        c = AIOKafkaConsumer(topic, bootstrap_servers=self.bootstrap, group_id=group,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             session_timeout_ms=6000, heartbeat_interval_ms=500)
        await c.start()
        try:
            out = await self._poll(c, count, timeout, lambda m: s(m.value))
            if out:
                await c.commit()
            return out
        finally:
            await c.stop()

    @sync
    async def committed(self, topic, group):
        self._topic = topic
        return await self._one_shot(lambda c, tp: c.committed(tp), group=group)

    @sync
    async def describe_configs(self, topic):
        resps = await self._admin(lambda a: a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)]))
        out = {}
        for resp in resps:
            for res in resp.resources:
                scenario.check(res[0] == 0, f"describe_configs error {res[0]}: {res[1]}")
                for entry in res[4]:
                    out[entry[0]] = entry[1]
        return out

    @sync
    async def delete_topic(self, topic):
        await self._admin(lambda a: a.delete_topics([topic]))


if __name__ == "__main__":
    scenario.main(Client, "aiokafka", aiokafka.__version__)
