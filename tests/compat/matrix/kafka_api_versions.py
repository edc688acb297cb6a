"""Refreshes the Kafka 4.1 column of kafka_api_versions.json from the vendored codec
(vendor/kafka-protocol 0.18.0, generated from Kafka 4.1.0's JSON schemas: each request's
`impl Message` carries the schema's validVersions as `VERSIONS`), and cross-checks both Kafka
columns against kafka-python's recorded broker answers when kafka-python is installed.
Everything else in the data file (the 3.9 column, notes, the allow-list) is kept as it is.

Usage: python kafka_api_versions.py [--check]   (--check: change nothing, exit 1 on a difference)"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DATA = os.path.join(HERE, "kafka_api_versions.json")
CODEC = os.path.join(ROOT, "vendor", "kafka-protocol", "src")


def codec_ranges():
    """{key: (name, min, max)} for every API key the vendored codec knows."""
    with open(os.path.join(CODEC, "messages.rs")) as f:
        src = f.read()
    enum = src[src.index("pub enum ApiKey"):]
    enum = enum[:enum.index("\n}")]
    out = {}
    for name, key in re.findall(r"^\s*(\w+) = (\d+),", enum, re.M):
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
        with open(os.path.join(CODEC, "messages", f"{snake}_request.rs")) as f:
            text = f.read()
        m = re.search(r"impl Message for %sRequest \{\s*const VERSIONS: VersionRange = "
                      r"VersionRange \{ min: (-?\d+), max: (-?\d+) \};" % name, text)
        if not m:
            raise SystemExit(f"{name}: no VERSIONS in {snake}_request.rs")
        out[int(key)] = (name, int(m.group(1)), int(m.group(2)))
    return out


def recorded(release):
    """kafka-python's recorded ApiVersions answer of a broker of `release`, or None."""
    try:
        from kafka.protocol.broker_version_data import BROKER_API_VERSIONS
    except ImportError:
        return None
    return {k: list(v) for k, v in BROKER_API_VERSIONS.get(release, {}).items()}


def main(check=False):
    with open(DATA) as f:
        data = json.load(f)
    by_key = {a["key"]: a for a in data["apis"]}
    problems = []
    for key, (name, lo, hi) in sorted(codec_ranges().items()):
        api = by_key.setdefault(key, {"key": key, "name": name, "kafka_3_9": None})
        if api.get("kafka_4_1") != [lo, hi] or api["name"] != name:
            problems.append(f"{key} {name}: data has {api['name']} {api.get('kafka_4_1')}, codec {lo}-{hi}")
            api["name"], api["kafka_4_1"] = name, [lo, hi]
    for key, api in by_key.items():
        if key not in codec_ranges() and api.get("kafka_4_1") is not None:
            problems.append(f"{key} {api['name']}: not in the codec, data has {api['kafka_4_1']}")
            api["kafka_4_1"] = None
    # Cross-checks, reported only: kafka-python's answers are what a broker advertised.
    for release, field in (((4, 1), "kafka_4_1"), ((3, 9), "kafka_3_9")):
        answer = recorded(release)
        if answer is None:
            print("kafka-python not importable: no cross-check")
            break
        for key, api in sorted(by_key.items()):
            got, want = answer.get(key), api.get(field)
            if got is not None and got != want:
                print(f"note: {release} {key} {api['name']}: recorded broker answer {got}, data {want}")
    data["apis"] = [by_key[k] for k in sorted(by_key)]
    for p in problems:
        print(("differs: " if check else "updated: ") + p)
    if check:
        return 1 if problems else 0
    with open(DATA, "w") as f:
        f.write(dump(data))
    return 0


def dump(data):
    """The data file's layout: one line per API, so a diff shows which one changed."""
    parts = []
    for k, v in data.items():
        if k == "apis":
            rows = ",\n".join("  " + json.dumps(a, ensure_ascii=False) for a in v)
            parts.append(f' "apis": [\n{rows}\n ]')
        else:
            parts.append(f" {json.dumps(k)}: " + json.dumps(v, indent=2, ensure_ascii=False).replace("\n", "\n "))
    return "{\n" + ",\n".join(parts) + "\n}\n"


if __name__ == "__main__":
    sys.exit(main(check="--check" in sys.argv[1:]))
