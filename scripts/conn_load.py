#!/usr/bin/env python3
"""Many Kafka connections from one process, for the connection cost curve (issue 18, item 5).

Speaks just enough of the Kafka protocol by hand (ApiVersions v0, Metadata v1, Produce v3 with
one uncompressed v2 record batch) that one asyncio process can hold 10,000 connections; a
librdkafka client per connection would need a thread or two each. Every connection connects,
asks ApiVersions and the Metadata of the topic, and then either
  idle:   sits idle for --idle seconds, or
  active: produces one record per request to partition (i % partitions) at --rate / N msgs/s,
          open loop (a send is due at its intended time, up to 5 requests in flight per
          connection; latency runs from the intended time to the response).
Measures the broker (--broker-pid) from /proc over the idle or measured window: CPU % of one
core, CPU-s per GB produced, RSS. Prints one JSON object. Not run in CI; scripts/cost-curve-
connections.sh drives it.
"""
import argparse
import asyncio
import json
import os
import random
import struct
import sys
import time

from kafka.record.util import calc_crc32c

CLIENT_ID = b"conn-load"
CONNECT_PARALLEL = 200  # connections being opened at once: stays below the listen backlog
IN_FLIGHT_MAX = 5
OPEN_TIMEOUT_S = 5  # per request while opening
OPEN_FAILURES_MAX = 200  # then the remaining connections are not attempted


def header(api_key, version, correlation_id):
    return struct.pack(">hhih", api_key, version, correlation_id, len(CLIENT_ID)) + CLIENT_ID


def frame(body):
    return struct.pack(">i", len(body)) + body


def varint(n):
    n = (n << 1) ^ (n >> 63)  # zigzag
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def record_batch(value, timestamp_ms):
    body = b"\x00" + varint(0) + varint(0) + varint(-1) + varint(len(value)) + value + varint(0)
    record = varint(len(body)) + body
    # attributes, lastOffsetDelta, first/max timestamp, producerId, epoch, baseSequence, count
    after_crc = struct.pack(">hiqqqhii", 0, 0, timestamp_ms, timestamp_ms, -1, -1, -1, 1) + record
    tail = struct.pack(">ibI", -1, 2, calc_crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(tail)) + tail


def produce_request(topic, partition, value, acks):
    batch = record_batch(value, int(time.time() * 1000))
    t = topic.encode()
    body = (header(0, 3, 1) + struct.pack(">hhii", -1, acks, 30000, 1) + struct.pack(">h", len(t)) + t
            + struct.pack(">iii", 1, partition, len(batch)) + batch)
    return frame(body), 4 + 4 + 2 + len(t) + 4 + 4  # the error code's offset in the response


def metadata_request(topic):
    t = topic.encode()
    return frame(header(3, 1, 2) + struct.pack(">ih", 1, len(t)) + t)


async def read_frame(reader):
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(size)


async def open_one(host, port, topic, gate, failed):
    async with gate:
        if len(failed) >= OPEN_FAILURES_MAX:
            raise RuntimeError("not attempted: too many failures")
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        try:  # a broker out of file descriptors leaves the connection unaccepted in the backlog
            writer.write(frame(header(18, 0, 0)))
            await asyncio.wait_for(read_frame(reader), OPEN_TIMEOUT_S)
            writer.write(metadata_request(topic))
            await asyncio.wait_for(read_frame(reader), OPEN_TIMEOUT_S)
        except BaseException as e:
            writer.close()
            failed.append(e)
            raise
        return reader, writer


class Broker:
    """CPU ticks and RSS of the broker process, from /proc."""

    def __init__(self, pid):
        self.pid, self.ticks = pid, os.sysconf("SC_CLK_TCK")

    def cpu_s(self):
        fields = open(f"/proc/{self.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.ticks

    def rss_mib(self):
        for line in open(f"/proc/{self.pid}/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
        return 0.0


async def produce(conn, request, err_at, period, phase, start, measure_from, end, stats):
    reader, writer = conn
    gate = asyncio.Semaphore(IN_FLIGHT_MAX)
    due = []

    async def responses():
        while True:
            try:
                response = await read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            intended = due.pop(0)
            gate.release()
            now = time.monotonic()
            if intended >= measure_from:
                if struct.unpack_from(">h", response, err_at)[0] != 0:
                    stats["errors"] += 1
                else:
                    stats["latencies"].append(now - intended)
                    if now - intended > 0.1:
                        stats["slow_seconds"].add(int(intended - measure_from))

    task = asyncio.ensure_future(responses())
    intended = start + phase
    while intended < end:
        delay = intended - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await gate.acquire()
        due.append(intended)
        writer.write(request)
        if intended >= measure_from:
            stats["sent"] += 1
        intended += period
    deadline = time.monotonic() + 35
    while due and time.monotonic() < deadline and not task.done():
        await asyncio.sleep(0.05)
    stats["unanswered"] += len(due)
    task.cancel()


def pct(sorted_values, q):
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] * 1000, 2)


async def main(a):
    host, port = a.bootstrap.rsplit(":", 1)
    broker = Broker(a.broker_pid)
    gate = asyncio.Semaphore(CONNECT_PARALLEL)
    t0 = time.monotonic()
    failed = []
    results = await asyncio.gather(*(open_one(host, int(port), a.topic, gate, failed) for _ in range(a.connections)),
                                   return_exceptions=True)
    open_s = time.monotonic() - t0
    conns = [r for r in results if not isinstance(r, BaseException)]
    failures = [repr(r) for r in results if isinstance(r, BaseException)]
    out = {"connections": a.connections, "opened": len(conns), "open_s": round(open_s, 2),
           "open_failures": len(failures), "first_failure": repr(failed[0]) if failed else None,
           "rss_after_open_mib": round(broker.rss_mib(), 1)}
    if a.idle:
        await asyncio.sleep(2)  # let the opening settle before the idle window
        c0, w0 = broker.cpu_s(), time.monotonic()
        await asyncio.sleep(a.idle)
        c1, w1 = broker.cpu_s(), time.monotonic()
        out.update(mode="idle", idle_s=a.idle, idle_cpu_pct=round((c1 - c0) / (w1 - w0) * 100, 2),
                   rss_mib=round(broker.rss_mib(), 1),
                   closed_by_broker=sum(1 for r, _ in conns if r.at_eof()))
    else:
        value = random.randbytes(a.size)
        requests = [produce_request(a.topic, p, value, a.acks) for p in range(a.partitions)]
        stats = {"latencies": [], "sent": 0, "errors": 0, "unanswered": 0, "slow_seconds": set()}
        period = len(conns) / a.rate
        start = time.monotonic() + 1.0
        measure_from, end = start + a.warmup, start + a.warmup + a.duration
        tasks = [produce(c, *requests[i % a.partitions], period, random.uniform(0, period), start, measure_from,
                         end, stats) for i, c in enumerate(conns)]
        run = asyncio.gather(*tasks)  # scheduled now: the warm-up is part of the run
        await asyncio.sleep(start + a.warmup - time.monotonic())
        c0, w0, cl0 = broker.cpu_s(), time.monotonic(), sum(os.times()[:2])
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        c1, w1, cl1 = broker.cpu_s(), time.monotonic(), sum(os.times()[:2])
        rss = broker.rss_mib()
        await run
        lat = sorted(stats["latencies"])
        gb = stats["sent"] * a.size / 1e9
        out.update(mode="active", rate_target=a.rate, size=a.size, acks=a.acks, duration_s=a.duration,
                   rate=round(len(lat) / a.duration), sent=stats["sent"], errors=stats["errors"],
                   unanswered=stats["unanswered"], p50_ms=pct(lat, 0.50), p99_ms=pct(lat, 0.99),
                   p999_ms=pct(lat, 0.999), max_ms=pct(lat, 1.0),
                   over_100ms=sum(1 for x in lat if x > 0.1), seconds_over_100ms=sorted(stats["slow_seconds"]),
                   broker_cpu_pct=round((c1 - c0) / (w1 - w0) * 100, 1),
                   broker_cpu_s_per_gb=round((c1 - c0) / gb, 1) if gb else None,
                   client_cpu_pct=round((cl1 - cl0) / (w1 - w0) * 100, 1), rss_mib=round(rss, 1))
    for _, w in conns:
        w.close()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--broker-pid", type=int, required=True)
    p.add_argument("--connections", type=int, required=True)
    p.add_argument("--idle", type=float, default=0, help="idle window (s); 0 = active mode")
    p.add_argument("--partitions", type=int, default=1, help="partitions of the topic (active)")
    p.add_argument("--rate", type=float, default=5000, help="msgs/s over all connections (active)")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--acks", type=int, default=-1)
    p.add_argument("--warmup", type=float, default=3)
    p.add_argument("--duration", type=float, default=15)
    args = p.parse_args()
    assert 1 <= args.connections <= 20000 and args.rate > 0 and 0 <= args.idle <= 120 and args.duration <= 300
    sys.exit(asyncio.run(main(args)))
