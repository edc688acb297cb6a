"""The client-matrix scenario, shared by every driver: step names, the messages each step sends,
and a recorder that writes one JSON results file per client.

Every client driver (clients/*.py, kafkajs.js, sarama/main.go) runs the same steps in this order
against one broker and reports each as pass / fail / unsupported / skipped with a detail string
(the exact error on failure). `render.py` turns the files into docs/COMPATIBILITY.md.

Steps (ids are the table's columns):
  create_topic            admin API: create a 1-partition topic
  produce_keys_headers    10 records with keys and two headers, acks=all, no compression
  acks_0, acks_1, acks_all  5 records at each acks level
  gzip, snappy, lz4, zstd   5 records with each codec
  consume_from_beginning  read partition 0 from offset 0: every acknowledged record, in order,
                          keys and headers intact
  offsets_for_times       ListOffsets by timestamp: the offset of the first record produced
                          after a timestamp taken between two produces; then fetch from it
  group_consume_commit    subscribe in a group, consume everything, commit, close; committed
                          offset = end; a new member of the group resumes after the commit
  describe_configs        topic configs include cleanup.policy=delete
  delete_topic            delete, and the topic leaves the metadata
"""
import json
import os
import time
import traceback

STEPS = [
    "create_topic", "produce_keys_headers", "acks_0", "acks_1", "acks_all",
    "gzip", "snappy", "lz4", "zstd", "consume_from_beginning", "offsets_for_times",
    "group_consume_commit", "describe_configs", "delete_topic",
]
ACKS = {"acks_0": 0, "acks_1": 1, "acks_all": -1}
CODECS = ["gzip", "snappy", "lz4", "zstd"]
PAD = "-" + "abcdefgh" * 16  # compressible values


def keyed_messages():
    """(key, value, headers) of produce_keys_headers."""
    return [(f"key-{i}", f"kh-{i}", [("h1", f"v{i}"), ("h2", "x")]) for i in range(10)]


def step_values(step):
    """Values produced by an acks or codec step."""
    if step in CODECS:
        return [f"{step}-{i}{PAD}" for i in range(5)]
    return [f"{step}-{i}" for i in range(5)]


class Unsupported(Exception):
    """The client has no API for this step (not a broker failure)."""


class Skip(Exception):
    """A step this one depends on failed."""


class Recorder:
    def __init__(self, client, version, out_path, details=""):
        self.doc = {"client": client, "version": version, "details": details,
                    "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "steps": {}}
        self.out_path = out_path
        self.produced = []  # values acknowledged so far, in produce order
        self.keyed = {}  # value -> (key, headers) for produce_keys_headers
        self.save()

    def save(self):
        tmp = self.out_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.doc, f, indent=1, sort_keys=True)
        os.replace(tmp, self.out_path)

    def record(self, step, status, detail="", seconds=0.0):
        assert step in STEPS, step
        self.doc["steps"][step] = {"status": status, "detail": detail[:2000], "seconds": round(seconds, 2)}
        self.save()
        print(f"[{self.doc['client']}] {step}: {status} {detail[:300]}", flush=True)

    def run(self, step, fn, *args):
        """Runs one step; returns fn's result, or None if it did not pass."""
        t0 = time.time()
        try:
            result = fn(*args)
            self.record(step, "pass", result if isinstance(result, str) else "", time.time() - t0)
            return result if result is not None else True
        except Unsupported as e:
            self.record(step, "unsupported", str(e), time.time() - t0)
        except Skip as e:
            self.record(step, "skipped", str(e), time.time() - t0)
        except Exception as e:  # noqa: BLE001 - the point is to report any failure
            tb = traceback.format_exception_only(type(e), e)[-1].strip()
            self.record(step, "fail", tb, time.time() - t0)
        return None

    def passed(self, step):
        return self.doc["steps"].get(step, {}).get("status") == "pass"


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def expect_values(got, expected, what="values"):
    """Asserts `got` equals `expected` (both in offset order), with a short diff on failure."""
    if got != expected:
        missing = [v for v in expected if v not in set(got)]
        extra = [v for v in got if v not in set(expected)]
        raise AssertionError(f"{what}: got {len(got)}, expected {len(expected)}; "
                             f"missing {missing[:3]}, unexpected {extra[:3]}, first got {got[:2]}")


def topic_name(client):
    slug = "".join(ch if ch.isalnum() else "-" for ch in client.lower()).strip("-")
    return f"matrix-{slug}-{os.getpid()}-{int(time.time() * 1000) % 10_000_000}"


def args():
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--out", required=True)
    return p.parse_args()


def wait_until(fn, timeout, what):
    deadline = time.time() + timeout
    while True:
        last = fn()
        if last:
            return last
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def run_scenario(c, rec, topic):
    """Runs every step against client `c` (see the module doc for the primitives it offers).
    Checks are made here, identically for every client."""
    group = topic + "-g"

    def create():
        c.create_topic(topic)
        wait_until(lambda: topic in c.topics(), 10, "the topic in metadata")

    if rec.run("create_topic", create) is None:
        rec.doc["notes"] = "topic auto-created by the first produce"

    def produce(step, msgs, acks, codec):
        c.produce(topic, msgs, acks, codec)
        rec.produced.extend(v for _, v, _ in msgs)
        if acks == 0:
            # acks=0 is answered by nobody: the records may still be on their way when the next
            # step produces on another connection, and two connections are not ordered, so the
            # log could hold them after the next step's. Wait until they are in the log.
            try:
                wait_until(lambda: c.end_offset(topic) >= len(rec.produced), 20, "the acks=0 records in the log")
            except Unsupported:
                pass

    keyed = keyed_messages()
    for k, v, h in keyed:
        rec.keyed[v] = (k, h)
    rec.run("produce_keys_headers", produce, "produce_keys_headers", keyed, -1, None)
    for step, acks in ACKS.items():
        rec.run(step, produce, step, [(None, v, []) for v in step_values(step)], acks, None)
    for codec in CODECS:
        rec.run(codec, produce, codec, [(None, v, []) for v in step_values(codec)], -1, codec)

    def consume_from_beginning():
        if not rec.produced:
            raise Skip("nothing was produced")
        got = c.consume(topic, 0, len(rec.produced), 30)
        expect_values([v for _, v, _ in got], rec.produced)
        for k, v, h in got:
            if v in rec.keyed:
                want_k, want_h = rec.keyed[v]
                check(k == want_k, f"key of {v}: {k!r}, expected {want_k!r}")
                check(sorted(map(tuple, h)) == sorted(map(tuple, want_h)),
                      f"headers of {v}: {h!r}, expected {want_h!r}")
        return f"{len(got)} records"

    rec.run("consume_from_beginning", consume_from_beginning)

    def offsets_for_times():
        end = c.end_offset(topic)
        check(end == len(rec.produced), f"end offset {end}, expected {len(rec.produced)}")
        time.sleep(0.05)
        t_ms = int(time.time() * 1000)
        time.sleep(0.01)
        msgs = [(None, f"ts-{i}", []) for i in range(3)]
        c.produce(topic, msgs, -1, None)
        rec.produced.extend(v for _, v, _ in msgs)
        off = c.offset_for_time(topic, t_ms)
        check(off == end, f"offset for {t_ms}: {off}, expected {end}")
        got = c.consume(topic, off, 1, 20)
        check([v for _, v, _ in got[:1]] == ["ts-0"], f"record at that offset: {got[:1]}")
        return f"timestamp {t_ms} -> offset {off}"

    rec.run("offsets_for_times", offsets_for_times)

    def group_consume_commit():
        n = len(rec.produced)
        if n == 0:
            raise Skip("nothing was produced")
        got = c.group_consume(topic, group, n, 45)
        expect_values(got, rec.produced, "group member's values")
        notes = []
        try:
            committed = c.committed(topic, group)
            check(committed == n, f"committed offset {committed}, expected {n}")
            notes.append(f"committed {committed}")
        except Unsupported as e:
            notes.append(f"committed offset not queryable ({e}); checked by resuming")
        after = [(None, f"after-commit-{i}", []) for i in range(2)]
        c.produce(topic, after, -1, None)
        rec.produced.extend(v for _, v, _ in after)
        resumed = c.group_consume(topic, group, 2, 45)
        expect_values(resumed, [v for _, v, _ in after], "new member after the commit")
        return "; ".join(notes + ["a new member resumed after the commit"])

    rec.run("group_consume_commit", group_consume_commit)

    def describe_configs():
        cfg = c.describe_configs(topic)
        check(cfg.get("cleanup.policy") == "delete", f"cleanup.policy = {cfg.get('cleanup.policy')!r}")
        return f"{len(cfg)} entries"

    rec.run("describe_configs", describe_configs)

    def delete_topic():
        c.delete_topic(topic)
        wait_until(lambda: topic not in c.topics(), 15, "the topic to leave the metadata")

    rec.run("delete_topic", delete_topic)


def main(make_client, client, version, details=""):
    a = args()
    rec = Recorder(client, version, a.out, details)
    c = make_client(a.bootstrap)
    try:
        run_scenario(c, rec, topic_name(client))
    finally:
        close = getattr(c, "close", None)
        if close:
            close()
    rec.doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rec.save()
