"""Renders docs/COMPATIBILITY.md from the client-matrix results (results/*.json, written by
the drivers run by tests/compat/test_matrix.py), the expected failures in known.json, and the
API versions table: what a running broker advertises (ApiVersions v3 to BOOTSTRAP) beside
Kafka 3.9's and 4.1's ranges (kafka_api_versions.json).
Usage: python render.py [RESULTS_DIR] [OUT] [BOOTSTRAP]   (no BOOTSTRAP: riptide's column says
"not queried")"""
import glob
import json
import os
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import wire  # noqa: E402
from scenario import STEPS  # noqa: E402

TITLES = {
    "create_topic": "create topic", "produce_keys_headers": "keys + headers", "acks_0": "acks=0",
    "acks_1": "acks=1", "acks_all": "acks=all", "gzip": "gzip", "snappy": "snappy", "lz4": "lz4",
    "zstd": "zstd", "consume_from_beginning": "consume from beginning",
    "offsets_for_times": "seek by timestamp", "group_consume_commit": "group + commit",
    "describe_configs": "describe configs", "delete_topic": "delete topic",
}
MARK = {"pass": "✅", "fail": "❌", "unsupported": "➖", "skipped": "⏭", None: "·"}
ORDER = ["kcat", "confluent-kafka (Python)", "kafka-python", "aiokafka", "kafkajs", "sarama (Go)"]


def load(results_dir):
    docs = []
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        with open(path) as f:
            docs.append(json.load(f))
    docs.sort(key=lambda d: (ORDER.index(d["client"]) if d["client"] in ORDER else 99, d["client"]))
    return docs


def broker_revision():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def cell(text):
    return text.replace("|", "\\|").replace("\n", " ")


def advertised(bootstrap, timeout=10):
    """{api key: (min, max)} as the broker at `bootstrap` (host:port) advertises them: one
    ApiVersions v3 request (header v2; ApiVersions answers always have header v0, so that a
    client of any version can read them)."""
    cid = b"riptide-matrix"
    header = struct.pack(">hhih", 18, 3, 7, len(cid)) + cid + wire.uvarint(0)
    body = wire.compact_string("riptide-compat-matrix") + wire.compact_string("1") + wire.uvarint(0)
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        frame = wire.recv_frame(s, timeout=timeout)
    if not frame:
        raise OSError(f"{bootstrap} closed the connection")
    r = wire.Reader(frame, 4)
    if r.take(">i") != 7:
        raise OSError("ApiVersions: wrong correlation id")
    error = r.take(">h")
    if error:
        raise OSError(f"ApiVersions v3: error {error}")
    out = {}
    for _ in range(r.uvarint() - 1):
        key, lo, hi = r.take(">hhh")
        r.tags()
        out[key] = (lo, hi)
    return out


def kafka_versions():
    with open(os.path.join(HERE, "kafka_api_versions.json")) as f:
        return json.load(f)


def span(r):
    return "—" if r is None else f"{r[0]}–{r[1]}"


def versions(lo, hi):
    return f"v{lo}" if lo == hi else f"v{lo}–{hi}"


def narrower_than_kafka_4_1(served, apis):
    """{API name: [versions Kafka 4.1 has and riptide does not]} over the APIs riptide serves."""
    out = {}
    for a in apis:
        mine, theirs = served.get(a["key"]), a.get("kafka_4_1")
        if mine and theirs:
            missing = sorted(set(range(theirs[0], theirs[1] + 1)) - set(range(mine[0], mine[1] + 1)))
            if missing:
                out[a["name"]] = missing
    return out


def api_notes(a, mine, queried, allowed):
    notes = []
    theirs = a.get("kafka_4_1")
    if queried and mine is None:
        notes.append("not served")
    elif queried and theirs is None:
        notes.append("served by riptide, not by Kafka 4.1")
    elif queried:
        (lo, hi), (klo, khi) = mine, theirs
        if lo < klo:
            notes.append(f"{versions(lo, klo - 1)} bridged to v{klo}")
        if lo > klo:
            notes.append(f"{versions(klo, lo - 1)} not served")
        if hi < khi:
            why = allowed.get(a["name"], {}).get("reason", "no reason on record")
            notes.append(f"{versions(hi + 1, khi)} not served: {why}")
        if hi > khi:
            notes.append(f"riptide only beyond Kafka 4.1 ({versions(khi + 1, hi)})")
    if a.get("listener") == "controller":
        notes.append("Kafka: controller or inter-broker only")
    if a.get("kafka_note"):
        notes.append("Kafka: " + a["kafka_note"])
    return "; ".join(notes)


def api_versions_section(bootstrap):
    data = kafka_versions()
    served, why_not = {}, None
    if bootstrap:
        try:
            served = advertised(bootstrap)
        except (OSError, struct.error, IndexError) as e:
            why_not = f"the broker at {bootstrap} did not answer ApiVersions: {e}"
    else:
        why_not = "no broker was given to render.py"
    queried = why_not is None
    allowed = data.get("riptide_narrower_than_kafka_4_1", {})
    lines = [
        "",
        "## API versions",
        "",
        "Every Kafka API key with the versions riptide serves (its ApiVersions v3 answer, asked of the "
        "matrix's broker), beside Apache Kafka 3.9's and 4.1's. Kafka's ranges and where each comes from "
        "are in `tests/compat/matrix/kafka_api_versions.json`: Kafka 4.1's are its request schemas' "
        "`validVersions` (read from `vendor/kafka-protocol`, generated from Kafka 4.1.0); Kafka 3.9's are a "
        "3.9 broker's recorded ApiVersions answer, except those marked †, taken from when the versions were "
        "added (KRaft-only APIs the recorded ZooKeeper-mode broker did not list). Versions older than "
        "Kafka 4's minimum (removed by KIP-896) are served by rewriting them to the oldest version the codec "
        "knows (\"bridged\", `server/src/api/legacy/`). — means not served (or no such API).",
        "",
    ]
    if not queried:
        lines += [f"riptide's column was not queried: {why_not}.", ""]
    lines += ["| key | API | riptide | Kafka 3.9 | Kafka 4.1 | note |", "|---:|---|---|---|---|---|"]
    for a in sorted(data["apis"], key=lambda a: a["key"]):
        mine = served.get(a["key"])
        r = span(mine) if queried else "not queried"
        k39 = span(a.get("kafka_3_9"))
        if a.get("kafka_3_9_from") == "history":
            k39 += " †"
        elif a.get("kafka_3_9_from") == "controller":
            k39 = "controller only"
        note = api_notes(a, mine, queried, allowed)
        lines.append(f"| {a['key']} | {a['name']} | {r} | {k39} | {span(a.get('kafka_4_1'))} | {cell(note)} |")
    if queried:
        unknown = sorted(set(served) - {a["key"] for a in data["apis"]})
        for key in unknown:
            lines.append(f"| {key} | ? | {span(served[key])} | — | — | key unknown to Kafka 3.9 and 4.1 |")
    return lines


def render(docs, known, not_run, bootstrap=None):
    lines = [
        "# Client compatibility",
        "",
        "<!-- Generated by tests/compat/test_matrix.py (tests/compat/matrix/render.py); do not edit by hand. -->",
        "",
        f"Generated {time.strftime('%Y-%m-%d', time.gmtime())} against riptide `{broker_revision()}` "
        "by the client matrix in `tests/compat/matrix/`: every client runs the same scenario against "
        "one broker (`scenario.py` says what each step does and checks). Client versions are pinned in "
        "`tests/compat/requirements.txt`, `tests/compat/matrix/package.json` and Debian's packages, "
        "and installed by `.ci/run`.",
        "",
        "✅ passed · ❌ failed · ➖ the client has no API for it · ⏭ skipped (an earlier step failed)",
        "",
        "| client | version | " + " | ".join(TITLES[s] for s in STEPS) + " |",
        "|---|---|" + "---|" * len(STEPS),
    ]
    for d in docs:
        version = d["version"] + (f" ({d['details']})" if d.get("details") else "")
        marks = [MARK.get(d["steps"].get(s, {}).get("status")) for s in STEPS]
        lines.append(f"| {cell(d['client'])} | {cell(version)} | " + " | ".join(marks) + " |")
    for client, why in not_run.items():
        lines.append(f"| {cell(client)} | not run | " + " | ".join("·" for _ in STEPS) + " |")
    notes = []
    for d in docs:
        for s in STEPS:
            r = d["steps"].get(s)
            if r is None or r["status"] == "pass":
                continue
            reason = known.get(d["client"], {}).get(s)
            text = f"- **{d['client']} · {TITLES[s]}** ({r['status']}): `{cell(r['detail'])}`"
            if reason:
                text += f"\n  Known: {reason}"
            notes.append(text)
    lines += ["", "## Failures and unsupported steps", ""]
    lines += notes or ["None."]
    if not_run:
        lines += ["", "## Clients not run", ""]
        lines += [f"- **{c}**: {why}" for c, why in not_run.items()]
    lines += [
        "",
        "## Clients not in the matrix",
        "",
        "- **franz-go**: not packaged in Debian 12; the matrix builds Go clients offline from "
        "Debian's toolchain and packaged libraries only. sarama is Debian's packaged Go client "
        "(`golang-github-shopify-sarama-dev` 1.22.1, built with Debian's Go 1.19 in GOPATH mode).",
        "- **Java client**: no Java toolchain or Kafka client jars from the reachable registries in CI.",
    ]
    lines += api_versions_section(bootstrap)
    lines += [
        "",
        "## Running it",
        "",
        "```sh",
        "RIPTIDE_BIN=target/debug/riptide .venv/bin/python -m pytest -q tests/compat/test_matrix.py",
        "```",
        "",
        "Each client's raw results (status, seconds, exact error) are in "
        "`tests/compat/matrix/results/<client>.json` after a run.",
        "",
    ]
    return "\n".join(lines)


def main(results_dir=os.path.join(HERE, "results"), out=os.path.join(ROOT, "docs", "COMPATIBILITY.md"),
         bootstrap=None, not_run=None):
    with open(os.path.join(HERE, "known.json")) as f:
        known = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    with open(out, "w") as f:
        f.write(render(load(results_dir), known, not_run or {}, bootstrap))
    return out


if __name__ == "__main__":
    print(main(*sys.argv[1:]))
