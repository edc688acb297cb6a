"""Client matrix: kcat, confluent-kafka, kafka-python (also speaking Kafka 0.10.2's protocol, as
clients from before Kafka 4 do), aiokafka, kafkajs and sarama each run the
same scenario (tests/compat/matrix/scenario.py) against one broker; every step's result goes to
tests/compat/matrix/results/<client>.json and docs/COMPATIBILITY.md is re-rendered after each
client. A step that fails and is not an expected failure (matrix/known.json) fails the test.
The document's API versions table is the broker's ApiVersions answer beside Kafka 3.9's and
4.1's ranges (matrix/kafka_api_versions.json); a version range narrower than Kafka 4.1's, for an
API the broker serves, fails the test unless that file's allow-list says why.

Under CI (CI set) a client whose toolchain is missing fails the test, since .ci/run installs
every client; elsewhere it is skipped."""
import json
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
MATRIX = os.path.join(HERE, "matrix")
RESULTS = os.path.join(MATRIX, "results")
sys.path.insert(0, MATRIX)
import render  # noqa: E402
from scenario import STEPS  # noqa: E402

PY = sys.executable
GOPATH_DEBIAN = "/usr/share/gocode"
SARAMA_SRC = os.path.join(GOPATH_DEBIAN, "src", "github.com", "Shopify", "sarama")
NOT_RUN = {}


def debian_version(package):
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def build_sarama():
    """Builds the sarama driver offline (GOPATH mode over Debian's packaged sources)."""
    if not shutil.which("go") or not os.path.isdir(SARAMA_SRC):
        return None, "needs golang-go and golang-github-shopify-sarama-dev (Debian)"
    out = os.path.join(MATRIX, "sarama", "sarama-driver")
    env = dict(os.environ, GO111MODULE="off", GOPATH=GOPATH_DEBIAN, GOFLAGS="", GOPROXY="off",
               GOCACHE=os.environ.get("GOCACHE", "/tmp/riptide-gocache"))
    r = subprocess.run(["go", "build", "-o", out, "."], cwd=os.path.join(MATRIX, "sarama"), env=env,
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        return None, "go build failed: " + r.stderr[-1500:]
    return out, None


def command(client):
    """(argv, env) of a client's driver, or (None, why-not)."""
    clients = os.path.join(MATRIX, "clients")
    if client == "kcat":
        return ([PY, os.path.join(clients, "kcat.py")], {}) if shutil.which("kcat") else (None, "kcat not installed")
    if client in ("confluent", "kafka_python", "kafka_python_old", "aiokafka_client"):
        return [PY, os.path.join(clients, f"{client}.py")], {}
    remote = [PY, os.path.join(clients, "remote.py")]
    if client == "kafkajs":
        if not shutil.which("node") or not os.path.isdir(os.path.join(MATRIX, "node_modules", "kafkajs")):
            return None, "needs node and `npm ci` in tests/compat/matrix"
        return remote + ["--", "node", os.path.join(MATRIX, "kafkajs.js")], {}
    if client == "sarama":
        driver, why = build_sarama()
        if driver is None:
            return None, why
        return remote + ["--", driver], {"SARAMA_VERSION": debian_version("golang-github-shopify-sarama-dev")}
    raise ValueError(client)


def known_failures():
    with open(os.path.join(MATRIX, "known.json")) as f:
        return {k: v for k, v in json.load(f).items() if not k.startswith("_")}


@pytest.fixture(scope="module", autouse=True)
def fresh_results():
    """Results of earlier runs are dropped, so the document shows this run only."""
    os.makedirs(RESULTS, exist_ok=True)
    for name in os.listdir(RESULTS):
        os.remove(os.path.join(RESULTS, name))


@pytest.mark.parametrize("client", ["kcat", "confluent", "kafka_python", "kafka_python_old", "aiokafka_client",
                                    "kafkajs", "sarama"])
def test_client_matrix(broker, client):
    os.makedirs(RESULTS, exist_ok=True)
    out = os.path.join(RESULTS, f"{client}.json")
    if os.path.exists(out):
        os.remove(out)
    argv, env = command(client)
    if argv is None:
        NOT_RUN[client] = env
        render.main(RESULTS, bootstrap=broker.bootstrap, not_run=NOT_RUN)
        if os.environ.get("CI"):
            pytest.fail(f"{client}: {env} (.ci/run should have installed it)")
        pytest.skip(f"{client}: {env}")
    # fuzz/seeds/capture.py points the clients at a recording proxy instead.
    bootstrap = os.environ.get("RIPTIDE_MATRIX_BOOTSTRAP") or broker.bootstrap
    split = argv.index("--") if "--" in argv else len(argv)
    argv = argv[:split] + ["--bootstrap", bootstrap, "--out", out] + argv[split:]
    r = subprocess.run(argv, env=dict(os.environ, **env),
                       capture_output=True, text=True, timeout=420)
    sys.stdout.write(r.stdout[-4000:])
    sys.stderr.write(r.stderr[-4000:])
    render.main(RESULTS, bootstrap=broker.bootstrap, not_run=NOT_RUN)
    assert os.path.exists(out), f"driver wrote no results (exit {r.returncode}): {r.stderr[-2000:]}"
    with open(out) as f:
        doc = json.load(f)
    assert r.returncode == 0, f"driver exited {r.returncode}: {r.stderr[-2000:]}"
    expected = known_failures().get(doc["client"], {})
    missing = [s for s in STEPS if s not in doc["steps"]]
    unexpected = {s: v["detail"] for s, v in doc["steps"].items()
                  if v["status"] in ("fail", "skipped") and s not in expected}
    fixed = [s for s in expected if doc["steps"].get(s, {}).get("status") == "pass"]
    if fixed:
        print(f"{doc['client']}: expected failures now pass, update matrix/known.json: {fixed}")
    assert not missing, f"{doc['client']}: steps not run: {missing}"
    assert not unexpected, f"{doc['client']}: unexpected failures: {json.dumps(unexpected, indent=1)}"
    assert broker.alive(), "broker died during the matrix"


def test_api_versions_not_narrower_than_kafka_4_1(broker):
    """Every API the broker serves covers Kafka 4.1's versions of it (older ones may be bridged),
    but for the versions kafka_api_versions.json's allow-list gives a reason for."""
    data = render.kafka_versions()
    allowed = data["riptide_narrower_than_kafka_4_1"]
    served = render.advertised(broker.bootstrap)
    gaps = render.narrower_than_kafka_4_1(served, data["apis"])
    unexplained = {name: [v for v in missing if v not in allowed.get(name, {}).get("versions", [])]
                   for name, missing in gaps.items()}
    unexplained = {name: vs for name, vs in unexplained.items() if vs}
    stale = {name: [v for v in entry["versions"] if v not in gaps.get(name, [])]
             for name, entry in allowed.items()}
    stale = {name: vs for name, vs in stale.items() if vs}
    if stale:
        print(f"served now, drop from riptide_narrower_than_kafka_4_1: {stale}")
    render.main(RESULTS, bootstrap=broker.bootstrap, not_run=NOT_RUN)
    assert not unexplained, ("versions Kafka 4.1 serves and riptide does not, with no reason in "
                             f"matrix/kafka_api_versions.json: {unexplained}")
