"""A Jepsen-style checker for replicated partitions, on real clients and real processes.

`Workload` runs idempotent acks=all confluent-kafka producers (threads) that write unique,
per-producer sequential values ("p0-00000123") to fixed partitions (value seq goes to
partition seq % N), recording for every value whether it was acknowledged (and at which
offset) or failed; and consumers (group-less, assigned from the beginning) that record
every (partition, offset, value) they read while the faults happen.

`Workload.check()` then reads every partition from the beginning up to its high watermark
(and at least past every acknowledged offset, since a new leader's high watermark may lag
for a moment) and reports:

  acknowledged     values whose delivery callback reported success
  lost             acknowledged but absent from the final log                      (must be 0)
  duplicated       values appearing more than once in the final log                (must be 0)
  reordered        one producer's values in one partition not increasing by offset (must be 0)
  vanished         a consumer read value v at (partition, offset) and the final
                   log does not hold v there                                       (must be 0)
  misplaced        acknowledged at offset o but found elsewhere in the final log   (must be 0)
  unknown          values in the log that no producer sent                         (must be 0)
  fatal            fatal (idempotence) producer errors                             (must be empty)
  incomplete       the final read did not reach its targets in time                (must be False)
  unacked_present  failed or never-answered values that are in the log (allowed: indeterminate)

Also here, shared by test_replication.py, test_failover_clients.py and chaos_replication.py:
metadata helpers (leader, replicas, ISR as every live node reports them; nodes paused or
marked `isolated` are left out), pause/resume (SIGSTOP/SIGCONT) and
heal for cluster.Node, and a reader of the on-disk segment files (Kafka record batch v2)
to compare the replicas' logs byte for byte in content (offset, value).

Every loop here is bounded in count and in time.
"""
import glob
import os
import signal
import struct
import threading
import time
import zlib

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

# ---------------------------------------------------------------------------------------------
# Generic bounded waiting


def wait_for(pred, timeout=30, what="condition", interval=0.25):
    """Polls pred() until it returns something truthy (returned) or timeout (AssertionError
    carrying the last value or exception)."""
    deadline = time.time() + timeout
    last = None
    while True:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        if time.time() >= deadline:
            raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# The workload


def value_of(producer, seq):
    return f"p{producer}-{seq:08d}".encode()


def parse_value(v):
    """(producer, seq) of a workload value, or None."""
    try:
        s = v.decode()
        p, q = s.split("-", 1)
        if not p.startswith("p"):
            return None
        return int(p[1:]), int(q)
    except (AttributeError, UnicodeDecodeError, ValueError):
        return None


class Workload:
    """Producers and consumers on `topic` (which must exist, with `partitions` partitions).

    bootstrap: a bootstrap string, or a callable returning one (called when each client is
    made). rate: values per second per producer. Bounded by max_messages per producer and by
    max_seconds overall, whatever stop() does."""

    def __init__(self, bootstrap, topic, partitions, producers=1, consumers=1, rate=150,
                 max_messages=200_000, max_seconds=900, max_reads=2_000_000,
                 producer_config=None, consumer_config=None, log=None):
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.n_producers = producers
        self.n_consumers = consumers
        self.rate = rate
        self.max_messages = max_messages
        self.max_seconds = max_seconds
        self.max_reads = max_reads
        self.producer_config = dict(producer_config or {})
        self.consumer_config = dict(consumer_config or {})
        self.log = log or say
        self.lock = threading.Lock()
        self.sent = {}       # value -> partition
        self.sent_at = {}    # value -> monotonic time of produce()
        self.acked = {}      # value -> (partition, offset, monotonic time)
        self.failed = {}     # value -> error string
        self.fatal = []      # fatal producer errors
        self.errors = []     # other error_cb reports (informational, first few)
        self.unflushed = 0   # still queued when the producers gave up flushing
        self.reads = []      # (consumer, partition, offset, value)
        self.consumer_errors = 0
        self.stopping = threading.Event()
        self.producers_stop = threading.Event()
        self.threads = []
        self.started_at = None

    def _bootstrap(self):
        return self.bootstrap() if callable(self.bootstrap) else self.bootstrap

    # -- producers --

    def producer_conf(self):
        conf = {
            "bootstrap.servers": self._bootstrap(),
            "acks": "all",
            "enable.idempotence": True,
            "retries": 2_000_000,
            "retry.backoff.ms": 100,
            "delivery.timeout.ms": 60000,      # = message.timeout.ms
            "request.timeout.ms": 10000,
            "socket.timeout.ms": 10000,
            "topic.metadata.refresh.interval.ms": 2000,
            "linger.ms": 5,
            "compression.type": "none",        # the on-disk reader parses uncompressed batches
            "queue.buffering.max.messages": 20000,
        }
        conf.update(self.producer_config)
        return conf

    def _produce(self, pi):
        def on_error(err):
            with self.lock:
                if err.fatal():
                    self.fatal.append(f"producer {pi}: {err}")
                elif len(self.errors) < 50:
                    self.errors.append(f"producer {pi}: {err}")

        conf = self.producer_conf()
        conf["error_cb"] = on_error
        p = Producer(conf)

        def on_delivery(err, msg):
            v = msg.value()
            with self.lock:
                if err is None:
                    self.acked[v] = (msg.partition(), msg.offset(), time.monotonic())
                else:
                    self.failed[v] = f"{err.name()}: {err.str()}"
                    if err.fatal():
                        self.fatal.append(f"producer {pi}: {err}")

        deadline = time.monotonic() + self.max_seconds
        next_at = time.monotonic()
        seq = 0
        while (not self.producers_stop.is_set() and seq < self.max_messages
               and time.monotonic() < deadline and not self.fatal):
            v = value_of(pi, seq)
            part = seq % self.partitions
            with self.lock:  # recorded first: a check() may read it back before produce() returns
                self.sent[v] = part
                self.sent_at[v] = time.monotonic()
            try:
                p.produce(self.topic, value=v, key=str(part).encode(), partition=part, on_delivery=on_delivery)
            except BufferError:
                with self.lock:
                    del self.sent[v]
                p.poll(0.1)
                continue
            except KafkaException as e:  # a fatal error makes every later produce() fail
                with self.lock:
                    del self.sent[v]
                    self.fatal.append(f"producer {pi}: produce(): {e}")
                break
            seq += 1
            p.poll(0)
            next_at = max(next_at + 1.0 / self.rate, time.monotonic() - 1.0)
            pause = next_at - time.monotonic()
            if pause > 0:
                p.poll(min(pause, 1.0))
        left = p.flush(self.flush_timeout)
        with self.lock:
            self.unflushed += left

    # -- consumers --

    def consumer_conf(self, ci):
        conf = {
            "bootstrap.servers": self._bootstrap(),
            "group.id": f"jepsen-{self.topic}-{ci}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "socket.timeout.ms": 10000,
            "topic.metadata.refresh.interval.ms": 2000,
            "fetch.wait.max.ms": 200,
        }
        conf.update(self.consumer_config)
        return conf

    def _consume(self, ci):
        c = Consumer(self.consumer_conf(ci))
        c.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)])
        deadline = time.monotonic() + self.max_seconds
        try:
            while not self.stopping.is_set() and time.monotonic() < deadline and len(self.reads) < self.max_reads:
                for m in c.consume(num_messages=500, timeout=0.5):
                    if m.error():
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            self.consumer_errors += 1
                        continue
                    self.reads.append((ci, m.partition(), m.offset(), m.value()))
        finally:
            c.close()

    # -- control --

    def start(self):
        self.started_at = time.monotonic()
        for pi in range(self.n_producers):
            self.threads.append(threading.Thread(target=self._produce, args=(pi,), daemon=True, name=f"producer-{pi}"))
        for ci in range(self.n_consumers):
            self.threads.append(threading.Thread(target=self._consume, args=(ci,), daemon=True, name=f"consumer-{ci}"))
        for t in self.threads:
            t.start()
        return self

    flush_timeout = 90

    def acked_count(self):
        return len(self.acked)

    def adopt(self, acked):
        """Counts values written before the workload ({value: (partition, offset)}, all
        acknowledged) as its own, so that check() also proves none of them was lost."""
        now = time.monotonic()
        with self.lock:
            for v, (part, off) in acked.items():
                self.sent[v] = part
                self.acked[v] = (part, off, now)

    def latencies(self, start=0.0, end=float("inf")):
        """Sorted produce-to-acknowledgement times (s) of the values sent in [start, end)
        (monotonic clock)."""
        with self.lock:
            return sorted(a[2] - self.sent_at[v] for v, a in self.acked.items()
                          if v in self.sent_at and start <= self.sent_at[v] < end)

    def wait_acked(self, more, timeout):
        """Waits until `more` further values are acknowledged; True if they were in time."""
        target = len(self.acked) + more
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.acked) >= target:
                return True
            if self.fatal:
                return False
            time.sleep(0.1)
        return False

    def stop(self, flush_timeout=90):
        """Stops producing, waits (bounded) for every outstanding delivery report, then stops
        the consumers."""
        self.flush_timeout = flush_timeout
        self.producers_stop.set()
        deadline = time.monotonic() + flush_timeout + 15
        for t in self.threads:
            if t.name.startswith("producer"):
                t.join(max(0.1, deadline - time.monotonic()))
        self.stopping.set()
        for t in self.threads:
            t.join(max(0.1, min(20, deadline - time.monotonic())))
        stuck = [t.name for t in self.threads if t.is_alive()]
        if stuck:
            self.log(f"jepsen: threads still running after stop(): {stuck}")
        return self

    # -- the checker --

    def check(self, bootstrap=None, timeout=60, label="jepsen"):
        """Reads the whole topic back and compares it with what was acknowledged and what the
        consumers saw. May be called while the workload runs (it judges what was acknowledged
        and read before the call)."""
        with self.lock:
            acked = dict(self.acked)
            failed = dict(self.failed)
            fatal = list(self.fatal)
        reads = self.reads[:len(self.reads)]
        # Read at least past every acknowledged offset: a just-elected leader's high watermark
        # can trail the old leader's for a moment.
        min_end = {}
        for part, off, _ in acked.values():
            if off is not None and off >= 0:
                min_end[part] = max(min_end.get(part, 0), off + 1)
        # And past every offset a consumer read (it was below some high watermark).
        for _, part, off, _ in reads:
            min_end[part] = max(min_end.get(part, 0), off + 1)
        final, complete = read_log(bootstrap or self._bootstrap(), self.topic, self.partitions, min_end, timeout)
        with self.lock:  # what the log may hold by now (sent while it was read)
            sent = dict(self.sent)
        return judge(sent, acked, failed, fatal, reads, final, complete, self.unflushed, self.consumer_errors,
                     label, self.log)


def say(line):
    print(line, flush=True)


def judge(sent, acked, failed, fatal, reads, final, complete, unflushed=0, consumer_errors=0, label="jepsen",
          log=say):
    at = {p: dict(recs) for p, recs in final.items()}              # partition -> offset -> value
    where = {}                                                      # value -> [(partition, offset)]
    for p, recs in final.items():
        for off, v in recs:
            where.setdefault(v, []).append((p, off))
    lost = [v for v in acked if v not in where]
    duplicated = [v for v, w in where.items() if len(w) > 1]
    misplaced = [v for v, (p, off, _) in acked.items()
                 if v in where and off is not None and off >= 0 and (p, off) not in where[v]]
    unknown = [v for v in where if v not in sent]
    unacked_present = [v for v in where if v in sent and v not in acked]
    failed_present = [v for v in unacked_present if v in failed]
    reordered = []
    gaps = 0
    for p, recs in final.items():
        last = {}
        prev_off = None
        for off, v in recs:
            if prev_off is not None and off != prev_off + 1:
                gaps += 1
            prev_off = off
            pv = parse_value(v)
            if pv is None:
                continue
            prod, seq = pv
            if prod in last and seq < last[prod][0]:
                reordered.append((p, off, v, last[prod][1]))  # (partition, offset, value, a greater value before it)
            else:
                last[prod] = (seq, v)
    vanished = []
    seen = set()
    for _, p, off, v in reads:
        if (p, off, v) in seen:
            continue
        seen.add((p, off, v))
        if at.get(p, {}).get(off) != v:
            vanished.append((p, off, v, at.get(p, {}).get(off)))
    indeterminate = len(sent) - len(acked) - len(failed)
    r = {
        "sent": len(sent),
        "acknowledged": len(acked),
        "failed": len(failed),
        "indeterminate": indeterminate,
        "unflushed": unflushed,
        "final": sum(len(v) for v in final.values()),
        "read_during_faults": len(reads),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "reordered": len(reordered),
        "vanished": len(vanished),
        "misplaced": len(misplaced),
        "unknown": len(unknown),
        "unacked_present": len(unacked_present),
        "failed_present": len(failed_present),
        "gaps": gaps,
        "consumer_errors": consumer_errors,
        "fatal": fatal,
        "incomplete": not complete,
        "examples": {
            "lost": [(v, acked[v][:2]) for v in sorted(lost)[:10]],
            "duplicated": [(v, where[v]) for v in sorted(duplicated)[:10]],
            "reordered": reordered[:10],
            "vanished": vanished[:10],
            "misplaced": [(v, acked[v][:2], where[v]) for v in sorted(misplaced)[:10]],
            "unknown": sorted(unknown)[:10],
            "failed": sorted(set(failed.values()))[:10],
        },
    }
    log(summary(r, label))
    return r


def summary(r, label="jepsen"):
    return (f"{label}: sent={r['sent']} acknowledged={r['acknowledged']} failed={r['failed']} "
            f"indeterminate={r['indeterminate']} final={r['final']} read={r['read_during_faults']} | "
            f"lost={r['lost']} duplicated={r['duplicated']} reordered={r['reordered']} vanished={r['vanished']} "
            f"misplaced={r['misplaced']} unknown={r['unknown']} fatal={len(r['fatal'])} "
            f"incomplete={r['incomplete']} | unacked_present={r['unacked_present']} gaps={r['gaps']}")


def problems(r):
    """What in a check() result breaks the guarantees (empty: all good)."""
    out = []
    for k in ("lost", "duplicated", "reordered", "vanished", "misplaced", "unknown"):
        if r[k]:
            out.append(f"{k}={r[k]} e.g. {r['examples'].get(k)}")
    if r["fatal"]:
        out.append(f"fatal producer errors: {r['fatal'][:5]}")
    if r["incomplete"]:
        out.append("the final read did not reach the high watermark / every acknowledged offset in time")
    return out


def assert_ok(r):
    p = problems(r)
    assert not p, summary(r) + "\n" + "\n".join(p)


def read_log(bootstrap, topic, partitions, min_end=None, timeout=60):
    """Every record of every partition from the beginning to max(high watermark, min_end[p]):
    ({partition: [(offset, value)]}, complete)."""
    min_end = min_end or {}
    deadline = time.time() + timeout
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"jepsen-check-{topic}", "enable.auto.commit": False,
                  "enable.partition.eof": True, "auto.offset.reset": "earliest", "socket.timeout.ms": 10000,
                  "topic.metadata.refresh.interval.ms": 2000, "fetch.wait.max.ms": 200})
    try:
        target = {}
        for p in range(partitions):
            hw = None
            while hw is None and time.time() < deadline:
                try:
                    hw = c.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
                except KafkaException:
                    time.sleep(0.5)
            target[p] = max(hw or 0, min_end.get(p, 0))
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out = {p: [] for p in range(partitions)}
        nxt = {p: 0 for p in range(partitions)}
        # Partitions with nothing to read are done at once.
        pending = {p for p in range(partitions) if target[p] > 0}
        while pending and time.time() < deadline:
            for m in c.consume(num_messages=1000, timeout=0.5):
                p = m.partition()
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF and m.offset() >= target.get(p, 0):
                        pending.discard(p)
                    continue
                out[p].append((m.offset(), m.value()))
                nxt[p] = m.offset() + 1
                if nxt[p] >= target[p]:
                    pending.discard(p)
        return out, not pending
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# Cluster helpers (cluster.Node / cluster.Cluster from cluster.py)


def paused(node):
    return getattr(node, "paused", False)


def isolated(node):
    """Cut off the network by a test (which sets node.isolated while the cut lasts)."""
    return getattr(node, "isolated", False)


def usable(cluster, exclude=()):
    """Nodes that are running, not SIGSTOPped and not cut off, minus `exclude` (nodes or ids)."""
    ex = {getattr(n, "id", n) for n in exclude}
    return [n for n in cluster.nodes if n.alive() and not paused(n) and not isolated(n) and n.id not in ex]


def bootstrap_of(cluster, exclude=()):
    return ",".join(n.bootstrap for n in usable(cluster, exclude))


def pause(node):
    node.proc.send_signal(signal.SIGSTOP)
    node.paused = True


def resume(node):
    if node.proc is not None and node.proc.poll() is None:
        node.proc.send_signal(signal.SIGCONT)
    node.paused = False


def heal(cluster, timeout=60):
    """Resumes stopped nodes and restarts dead ones; waits (bounded) until each listens.
    Returns [(node id, exit code, log tail)] of the nodes that had exited on their own
    (crashes: a node stopped through Node.stop/kill9 has no process)."""
    crashed = []
    for n in cluster.nodes:
        if paused(n):
            resume(n)
    restarted = []
    for n in cluster.nodes:
        if not n.alive():
            if n.proc is not None:
                crashed.append((n.id, n.proc.returncode, log_tail(n)))
            n.proc = None
            restarted.append(n.spawn())
    # All spawned before any is waited for: a node is ready only once the metadata quorum
    # answers, which may need the others.
    for n in restarted:
        n.wait_listening(timeout)
    return crashed


def log_tail(node, lines=40):
    try:
        return "\n".join(node.read_log().splitlines()[-lines:])
    except OSError as e:
        return repr(e)


def partition_state(node, topic, timeout=10):
    """{partition: (leader, replicas in assignment order, sorted isr)} as `node` reports it."""
    a = AdminClient({"bootstrap.servers": node.bootstrap})
    md = a.list_topics(topic, timeout=timeout)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        raise RuntimeError(f"topic {topic} on node {node.id}: {None if t is None else t.error}")
    return {p.id: (p.leader, list(p.replicas), sorted(p.isrs)) for p in t.partitions.values()}


def state(cluster, topic, exclude=()):
    """partition_state from the first usable node."""
    nodes = usable(cluster, exclude)
    if not nodes:
        raise RuntimeError("no usable node")
    return partition_state(nodes[0], topic)


def leader_of(cluster, topic, partition, exclude=()):
    return state(cluster, topic, exclude)[partition][0]


def wait_leader_change(cluster, topic, partition, old, timeout=30):
    """Waits until the live nodes report a leader for `partition` other than `old` (and not
    -1); returns it."""
    def new_leader():
        ls = {partition_state(n, topic)[partition][0] for n in usable(cluster, exclude=[old])}
        ls.discard(-1)
        return ls.pop() if len(ls) == 1 and old not in ls else None
    return wait_for(new_leader, timeout, f"a new leader (not {old}) for {topic}-{partition}")


def isr_full(cluster, topic, rf=None, exclude=()):
    """True when every usable node reports, for every partition, a live leader and an ISR equal
    to the replica set (of size rf when given)."""
    for n in usable(cluster, exclude):
        for p, (leader, replicas, isr) in partition_state(n, topic).items():
            if leader < 0 or isr != sorted(replicas) or (rf is not None and len(replicas) != rf):
                return False
    return True


def wait_isr_full(cluster, topic, rf=None, timeout=60):
    def ok():
        if isr_full(cluster, topic, rf):
            return True
        return None
    try:
        return wait_for(ok, timeout, f"every ISR of {topic} back to its full replica set")
    except AssertionError as e:
        raise AssertionError(f"{e}; last state: {describe_states(cluster, topic)}") from None


def wait_isr_size(cluster, topic, partition, size, timeout=30):
    return wait_for(lambda: all(len(partition_state(n, topic)[partition][2]) == size for n in usable(cluster)),
                    timeout, f"ISR of {topic}-{partition} of size {size}")


def describe_states(cluster, topic):
    out = {}
    for n in usable(cluster):
        try:
            out[n.id] = partition_state(n, topic)
        except Exception as e:  # noqa: BLE001 - diagnostics only
            out[n.id] = repr(e)
    return out


# ---------------------------------------------------------------------------------------------
# On-disk logs: Kafka record batches (magic 2) in <data_dir>/<topic>-<partition>/<20 digits>.log


def segment_files(data_dir, topic, partition):
    d = os.path.join(data_dir, f"{topic}-{partition}")
    files = [f for f in glob.glob(os.path.join(d, "*.log")) if len(os.path.basename(f)) == 24]
    return sorted(files)


def _varint(buf, pos):
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")
    return (result >> 1) ^ -(result & 1), pos


def _decompress(codec, data):
    if codec == 1:
        return zlib.decompress(data, 16 + zlib.MAX_WBITS)
    if codec == 2:
        import snappy  # noqa: PLC0415 - optional
        if data[:8] == b"\x82SNAPPY\x00":  # xerial framing
            out, pos = bytearray(), 16
            while pos < len(data):
                n = struct.unpack_from(">i", data, pos)[0]
                out += snappy.decompress(data[pos + 4:pos + 4 + n])
                pos += 4 + n
            return bytes(out)
        return snappy.decompress(data)
    if codec == 3:
        import lz4.frame  # noqa: PLC0415
        return lz4.frame.decompress(data)
    if codec == 4:
        import zstandard  # noqa: PLC0415
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    raise ValueError(f"codec {codec}")


def parse_segment(data):
    """[(offset, value)] of the data records in one segment's bytes, and whether the bytes
    ended in a torn or unparsable batch."""
    out = []
    pos = 0
    while pos + 12 <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        end = pos + 12 + length
        if length < 49 or end > len(data) or data[pos + 16] != 2:
            return out, True
        attrs = struct.unpack_from(">h", data, pos + 21)[0]
        count = struct.unpack_from(">i", data, pos + 57)[0]
        if attrs & 0x20:  # control batch
            pos = end
            continue
        body = data[pos + 61:end]
        try:
            if attrs & 0x07:
                body = _decompress(attrs & 0x07, body)
            rp = 0
            for _ in range(count):
                rlen, rp = _varint(body, rp)
                rend = rp + rlen
                rp += 1  # attributes
                _, rp = _varint(body, rp)       # timestamp delta
                odelta, rp = _varint(body, rp)
                klen, rp = _varint(body, rp)
                rp += max(klen, 0)
                vlen, rp = _varint(body, rp)
                value = None if vlen < 0 else bytes(body[rp:rp + vlen])
                out.append((base + odelta, value))
                rp = rend
        except (ValueError, IndexError, struct.error, ImportError):
            return out, True
        pos = end
    return out, pos != len(data)


def replica_log(data_dir, topic, partition):
    """The records of one replica's log on disk: [(offset, value)] (its torn tail, if any,
    left out)."""
    out = []
    for f in segment_files(data_dir, topic, partition):
        with open(f, "rb") as fh:
            recs, _ = parse_segment(fh.read())
        out.extend(recs)
    return out


def compare_replicas(cluster, topic, partitions):
    """{partition: {"lengths": {node: n}, "diverged": [(offset, {node: value})]}} over the
    nodes holding the partition's directory; "diverged" lists offsets held by several
    replicas with different values."""
    out = {}
    for p in range(partitions):
        logs = {n.id: dict(replica_log(n.data_dir, topic, p)) for n in cluster.nodes
                if os.path.isdir(os.path.join(n.data_dir, f"{topic}-{p}"))}
        diverged = []
        offsets = set().union(*[set(l) for l in logs.values()]) if logs else set()
        for off in sorted(offsets):
            vals = {nid: l[off] for nid, l in logs.items() if off in l}
            if len(set(vals.values())) > 1:
                diverged.append((off, vals))
                if len(diverged) >= 10:
                    break
        out[p] = {"lengths": {nid: len(l) for nid, l in logs.items()},
                  "ends": {nid: (max(l) + 1 if l else 0) for nid, l in logs.items()},
                  "diverged": diverged}
    return out


def replicas_identical(report, rf=None):
    for r in report.values():
        if r["diverged"] or len(set(r["ends"].values())) > 1 or len(set(r["lengths"].values())) > 1:
            return False
        if rf is not None and len(r["lengths"]) != rf:
            return False
    return True


def wait_replicas_identical(cluster, topic, partitions, rf=None, timeout=30):
    """Waits (bounded) until every replica's log on disk holds the same records; returns the
    last comparison and whether they converged."""
    deadline = time.time() + timeout
    report = None
    while True:
        try:
            report = compare_replicas(cluster, topic, partitions)
        except FileNotFoundError:
            # A replica's directory is being replaced (a stale copy deleted, a fresh one made):
            # not identical yet.
            pass
        else:
            if replicas_identical(report, rf):
                return report, True
        if time.time() >= deadline:
            return report, False
        time.sleep(0.5)
