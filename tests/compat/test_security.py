"""Security against real clients: TLS (SSL listener, mTLS principals, refused certificates,
certificate reload), SASL PLAIN and SCRAM-SHA-256/512 over SASL_SSL and SASL_PLAINTEXT (kcat,
confluent-kafka, kafkajs), ACLs (allowed and denied topics, hidden metadata), the brake on
password guessing, and KIP-368 re-authentication.

Certificates come from the openssl CLI, made per module in a temporary directory: a CA, one
broker certificate per broker (subjectAltName: the broker's own loopback address and
localhost), a client certificate for alice, an expired one and one signed by another CA.

Every broker here has a PLAINTEXT listener first (except the certificate-reload one, which
has TLS only): the admin side of the test (topics, users and ACLs through the riptide CLI) uses
it, and with an authorizer on, User:ANONYMOUS is a super user, a local admin listener."""
import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import IO_ARGS, unique
from launch import BINARY, CONTROLLER_PORT, ROOT, log_tail, loopback_host, split_addr, wait_ready

MATRIX = os.path.join(ROOT, "tests", "compat", "matrix")
PASSWORDS = {"alice": "alice-s3cret", "bob": "bob-s3cret", "carol": "carol-s3cret"}
ALICE_SUBJECT = "/O=Acme/OU=eng/CN=alice"  # RFC 2253 (most specific first): CN=alice,OU=eng,O=Acme
ALICE_PRINCIPAL = "User:CN=alice,OU=eng,O=Acme"
AUTH_FAILED = "Authentication failed: Invalid username or password"


# ---------------------------------------------------------------------------------------------
# Certificates


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=30)
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr.decode(errors='replace')}"


def new_key_and_csr(d, name, subject):
    """An EC P-256 key (fast to make) and a certificate request for `subject`."""
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)


def make_ca(d, name, cn):
    openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "30", "-subj", f"/CN={cn}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return os.path.join(d, f"{name}.pem")


LEAF_EXT = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"


def sign(d, ca, name, subject, usage, serial, san=None):
    """A certificate for `subject` signed by `ca` (the name of a make_ca file pair): returns
    (certificate, key) paths."""
    new_key_and_csr(d, name, subject)
    ext = LEAF_EXT + f"extendedKeyUsage={usage}\n" + (f"subjectAltName={san}\n" if san else "")
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(ext)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-set_serial", str(serial), "-days", "30", "-sha256", "-extfile", f"{name}.ext",
            "-out", f"{name}.pem", cwd=d)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")


def sign_expired(d, ca, name, subject):
    """A client certificate valid for one day in 2020 (OpenSSL 3.0's `x509` has no
    -not_before/-not_after, so this goes through `openssl ca` with explicit dates)."""
    new_key_and_csr(d, name, subject)
    db = os.path.join(d, f"{name}-ca")
    os.makedirs(db)
    open(os.path.join(db, "index.txt"), "w").close()
    with open(os.path.join(db, "serial"), "w") as f:
        f.write("5000\n")
    with open(os.path.join(db, "ca.cnf"), "w") as f:
        f.write(f"""[ ca ]
default_ca = expired_ca
[ expired_ca ]
dir = {db}
database = $dir/index.txt
new_certs_dir = $dir
serial = $dir/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
x509_extensions = leaf
[ anything ]
commonName = supplied
[ leaf ]
{LEAF_EXT}extendedKeyUsage=clientAuth
""")
    openssl("ca", "-batch", "-notext", "-config", os.path.join(db, "ca.cnf"), "-cert", f"{ca}.pem",
            "-keyfile", f"{ca}.key", "-in", f"{name}.csr", "-out", f"{name}.pem",
            "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", cwd=d)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")


class Pki:
    def __init__(self, d):
        self.dir = d
        self.ca = make_ca(d, "ca", "Riptide Test CA")
        self.other_ca = make_ca(d, "other-ca", "Somebody Else's CA")
        self.alice = sign(d, "ca", "alice", ALICE_SUBJECT, "clientAuth", 2001)
        self.mallory = sign(d, "other-ca", "mallory", "/O=Acme/OU=eng/CN=alice", "clientAuth", 2002)
        self.expired = sign_expired(d, "ca", "expired", "/CN=alice")
        self._serial = 1000

    def server(self, host, name, cn=None, usage="serverAuth"):
        """A broker certificate for `host` (IP SAN) and localhost: (cert, key, serial)."""
        self._serial += 1
        cert, key = sign(self.dir, "ca", name, f"/O=Acme/CN={cn or name}", usage, self._serial,
                         san=f"IP:{host},DNS:localhost")
        return cert, key, self._serial


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl CLI")
    return Pki(str(tmp_path_factory.mktemp("pki")))


# ---------------------------------------------------------------------------------------------
# Brokers


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))  # a TOML basic string


class SecBroker:
    """One `riptide serve -c FILE` with every listener in the config file (port 0) and the
    addresses from the ready file's "listeners"."""

    def __init__(self, base, host, config, shards=2):
        os.makedirs(base, exist_ok=True)
        self.base = base
        self.host = host
        self.config = config
        self.shards = shards
        self.config_path = os.path.join(base, "riptide.toml")
        self.ready_path = os.path.join(base, "ready.json")
        self.log_path = os.path.join(base, "broker.log")
        self.proc = None
        self.listeners = {}

    def start(self):
        return self.spawn().wait()

    def spawn(self):
        with open(self.config_path, "w") as f:
            for k, v in self.config.items():
                f.write(f"{json.dumps(k)} = {toml_value(v)}\n")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [BINARY, "serve", "-c", self.config_path, "--data-dir", os.path.join(self.base, "data"),
             "--ready-file", self.ready_path, "--metrics-listen", "off", "--rest-listen", "off",
             "--shards", str(self.shards), "--no-pin", *IO_ARGS],
            stdout=self.log, stderr=self.log)
        return self

    def wait(self, timeout=60):
        if self.config["listeners"].startswith("PLAINTEXT://"):
            ready = wait_ready(self.proc, self.ready_path, self.log_path, timeout, "broker")
        else:
            ready = self._wait_ready_file(timeout)
        self.listeners = ready["listeners"]
        return self

    def _wait_ready_file(self, timeout):
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}: {log_tail(self.log_path)}")
            try:
                with open(self.ready_path) as f:
                    return json.load(f)
            except (OSError, ValueError):
                pass
            if time.time() > deadline:
                raise RuntimeError(f"broker not ready after {timeout} s: {log_tail(self.log_path)}")
            time.sleep(0.02)

    def addr(self, listener):
        return self.listeners[listener]

    def port(self, listener):
        return split_addr(self.listeners[listener])[1]

    def read_log(self):
        return log_tail(self.log_path, 1 << 30)

    def cli(self, *args, password=None):
        """The riptide CLI against the PLAINTEXT listener."""
        env = dict(os.environ)
        env.pop("RIPTIDE_BROKERS", None)
        if password is not None:
            env["RIPTIDE_PASSWORD"] = password
        r = subprocess.run([BINARY, *args, "-b", self.addr("PLAINTEXT")], capture_output=True, env=env,
                           timeout=30)
        assert r.returncode == 0, f"riptide {' '.join(args)}: {r.stdout.decode()} {r.stderr.decode()}"
        return r.stdout.decode()

    def add_user(self, name):
        self.cli("user", "add", name, password=PASSWORDS[name])

    def create_topic(self, topic, partitions=1):
        a = AdminClient({"bootstrap.servers": self.addr("PLAINTEXT")})
        a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(15)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


def tls_config(cert, key, **extra):
    return {"ssl.certificate.location": cert, "ssl.key.location": key, **extra}


@pytest.fixture(scope="module")
def main_broker(pki, tmp_path_factory):
    """PLAINTEXT, SSL, SASL_SSL and SASL_PLAINTEXT; no authorizer; users alice and bob."""
    host = loopback_host()
    cert, key, _ = pki.server(host, "main-broker")
    b = SecBroker(str(tmp_path_factory.mktemp("main")), host, {
        "listeners": f"PLAINTEXT://{host}:0,SSL://{host}:0,SASL_SSL://{host}:0,SASL_PLAINTEXT://{host}:0",
        **tls_config(cert, key),
    }).start()
    b.add_user("alice")
    b.add_user("bob")
    yield b
    b.stop()


@pytest.fixture(scope="module")
def acl_broker(pki, tmp_path_factory):
    """ACLs on. PLAINTEXT (anonymous: super user), an mTLS listener (ssl.client.auth=required)
    under a custom name, SASL_PLAINTEXT."""
    host = loopback_host()
    cert, key, _ = pki.server(host, "acl-broker")
    b = SecBroker(str(tmp_path_factory.mktemp("acl")), host, {
        "listeners": f"PLAINTEXT://{host}:0,MTLS://{host}:0,SASL_PLAINTEXT://{host}:0",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,MTLS:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT",
        **tls_config(cert, key),
        "ssl.truststore.location": pki.ca,
        "ssl.client.auth": "required",
        "authorizer.class.name": "riptide",
        "super.users": "User:ANONYMOUS;User:carol",
        "allow.everyone.if.no.acl.found": False,
    }).start()
    b.add_user("bob")
    b.add_user("carol")
    yield b
    b.stop()


# ---------------------------------------------------------------------------------------------
# Clients


PROTOCOL = {"PLAINTEXT": "plaintext", "SSL": "ssl", "MTLS": "ssl", "SASL_SSL": "sasl_ssl",
            "SASL_PLAINTEXT": "sasl_plaintext"}


def ck_conf(broker, pki, listener, user=None, mechanism="SCRAM-SHA-256", password=None, cert=None, **extra):
    """confluent-kafka settings for one listener of `broker`."""
    proto = PROTOCOL[listener]
    conf = {"bootstrap.servers": broker.addr(listener), "security.protocol": proto,
            "socket.timeout.ms": 10000, "log_level": 0}
    if "ssl" in proto:
        conf["ssl.ca.location"] = pki.ca
        conf["ssl.endpoint.identification.algorithm"] = "https"
    if "sasl" in proto:
        conf.update({"sasl.mechanism": mechanism, "sasl.username": user,
                     "sasl.password": password if password is not None else PASSWORDS[user]})
    if cert is not None:
        conf["ssl.certificate.location"], conf["ssl.key.location"] = cert
    conf.update(extra)
    return conf


def produce(conf, topic, values, timeout=20):
    """Produces `values` to partition 0; returns the delivery errors (None for each success)."""
    results = []
    p = Producer({**conf, "enable.idempotence": False, "linger.ms": 5, "message.timeout.ms": timeout * 1000})
    for v in values:
        p.produce(topic, value=v.encode(), partition=0, on_delivery=lambda e, m: results.append(e))
    remaining = p.flush(timeout + 5)
    assert remaining == 0, f"{remaining} messages undelivered"
    return results


def consume(conf, topic, count, timeout=20, subscribe=False):
    """Reads partition 0 from the beginning until `count` records (assigned, or subscribed in
    group reader-TOPIC); (values, errors), stopping at the first error that is not retriable."""
    c = Consumer({**conf, "group.id": "reader-" + topic, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    if subscribe:
        c.subscribe([topic])
    else:
        c.assign([TopicPartition(topic, 0, 0)])
    values, errors = [], []
    deadline = time.time() + timeout
    try:
        while len(values) < count and time.time() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                errors.append(m.error())
                if not m.error().retriable() and m.error().code() != KafkaError._PARTITION_EOF:
                    break
                continue
            values.append(m.value().decode())
    finally:
        c.close()
    return values, errors


def kcat(bootstrap, *args, input=None, timeout=30, check=True):
    r = subprocess.run(["kcat", "-b", bootstrap, *args], input=input, capture_output=True, timeout=timeout)
    if check:
        assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r


def kcat_sasl(broker, pki, listener, mechanism, user):
    args = ["-X", f"security.protocol={PROTOCOL[listener]}", "-X", f"sasl.mechanism={mechanism}",
            "-X", f"sasl.username={user}", "-X", f"sasl.password={PASSWORDS[user]}"]
    if listener == "SASL_SSL":
        args += ["-X", f"ssl.ca.location={pki.ca}"]
    return args


def api_versions_request(correlation=7):
    return kafka_request(18, 0, correlation, b"")


def read_response(sock):
    """One size-prefixed response, or None when the peer closes first."""
    buf = b""
    while len(buf) < 4:
        chunk = sock.recv(4 - len(buf))
        if not chunk:
            return None
        buf += chunk
    size = struct.unpack(">i", buf)[0]
    out = b""
    while len(out) < size:
        chunk = sock.recv(size - len(out))
        if not chunk:
            return None
        out += chunk
    return out


def kafka_request(api_key, version, correlation, body):
    client_id = b"security-test"
    msg = struct.pack(">hhih", api_key, version, correlation, len(client_id)) + client_id + body
    return struct.pack(">i", len(msg)) + msg


def kafka_string(s):
    return struct.pack(">h", len(s)) + s


def sasl_plain_login(sock, user, password):
    """SaslHandshake v1 + SaslAuthenticate v1 with PLAIN on a raw socket: the session lifetime
    the broker grants (KIP-368), in ms."""
    sock.sendall(kafka_request(17, 1, 1, kafka_string(b"PLAIN")))
    resp = read_response(sock)
    assert resp is not None and struct.unpack(">ih", resp[:6]) == (1, 0), resp
    token = b"\0" + user.encode() + b"\0" + password.encode()
    sock.sendall(kafka_request(36, 1, 2, struct.pack(">i", len(token)) + token))
    resp = read_response(sock)
    assert resp is not None
    correlation, error = struct.unpack(">ih", resp[:6])
    assert (correlation, error) == (2, 0), resp
    pos = 6
    (n,) = struct.unpack(">h", resp[pos:pos + 2])  # error_message (nullable)
    pos += 2 + max(n, 0)
    (n,) = struct.unpack(">i", resp[pos:pos + 4])  # auth_bytes
    pos += 4 + max(n, 0)
    return struct.unpack(">q", resp[pos:pos + 8])[0]


def metadata_request(correlation):
    return kafka_request(3, 0, correlation, struct.pack(">i", 0))


def tls_context(pki, cert=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.ca)
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


def tls_api_versions(broker, pki, listener, cert=None):
    """A TLS connection that sends ApiVersions: "ok" when it is answered, otherwise the
    reason the connection failed (the TLS alert, or "closed")."""
    host, port = split_addr(broker.addr(listener))
    ctx = tls_context(pki, cert)
    try:
        with socket.create_connection((host, port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as s:
                s.settimeout(10)
                s.sendall(api_versions_request())
                resp = read_response(s)
                if resp is None:
                    return "closed"
                correlation, error = struct.unpack(">ih", resp[:6])
                return "ok" if (correlation, error) == (7, 0) else f"answer {correlation} {error}"
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
        return f"refused: {e}"


def peer_certificate(host, port, pki):
    ctx = tls_context(pki)
    with socket.create_connection((host, port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            cert = s.getpeercert()
    subject = {k: v for rdn in cert["subject"] for k, v in rdn}
    return subject.get("commonName"), int(cert["serialNumber"], 16)


def values(n, prefix="m"):
    return [f"{prefix}{i}" for i in range(n)]


# ---------------------------------------------------------------------------------------------
# 1. SSL


def test_ssl_kcat_produce_consume(main_broker, pki):
    topic = unique("ssl-kcat")
    main_broker.create_topic(topic)
    tls = ["-X", "security.protocol=ssl", "-X", f"ssl.ca.location={pki.ca}",
           "-X", "ssl.endpoint.identification.algorithm=https"]
    sent = values(25, "kcat-")
    kcat(main_broker.addr("SSL"), *tls, "-P", "-t", topic, "-p", "0", input="\n".join(sent).encode() + b"\n")
    out = kcat(main_broker.addr("SSL"), *tls, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e",
               "-f", "%s\\n").stdout.decode()
    assert out.split() == sent
    meta = kcat(main_broker.addr("SSL"), *tls, "-L", "-t", topic).stdout.decode()
    assert f"at {main_broker.addr('SSL')}" in meta, meta


def test_ssl_confluent_produce_consume_and_metadata(main_broker, pki):
    topic = unique("ssl-ck")
    main_broker.create_topic(topic)
    conf = ck_conf(main_broker, pki, "SSL")
    sent = values(50)
    assert produce(conf, topic, sent) == [None] * 50
    got, errors = consume(conf, topic, 50)
    assert errors == [] and got == sent
    # Metadata over SSL names the SSL listener's address, not the PLAINTEXT one.
    md = AdminClient(conf).list_topics(timeout=15)
    brokers = [(b.host, b.port) for b in md.brokers.values()]
    assert brokers == [(main_broker.host, main_broker.port("SSL"))], brokers
    md = AdminClient(ck_conf(main_broker, pki, "PLAINTEXT")).list_topics(timeout=15)
    assert [(b.host, b.port) for b in md.brokers.values()] == [(main_broker.host, main_broker.port("PLAINTEXT"))]


def test_ssl_large_batches_both_ways(main_broker, pki):
    """Regression: a 64 KiB read of ciphertext decrypts to more plaintext than rustls buffers;
    the broker closed such connections ("received plaintext buffer full") until it drained the
    plaintext after every record. Large batches in and out, over SSL and SASL_SSL."""
    for listener, user in (("SSL", None), ("SASL_SSL", "alice")):
        topic = unique("ssl-big")
        main_broker.create_topic(topic)
        conf = ck_conf(main_broker, pki, listener, user=user)
        sent = [f"{i:06d}-" + "x" * 20_000 for i in range(300)]
        p = Producer({**conf, "linger.ms": 50, "batch.size": 1_000_000, "message.timeout.ms": 30_000})
        errors = []
        for v in sent:
            p.produce(topic, value=v.encode(), partition=0, on_delivery=lambda e, m: errors.append(e))
        assert p.flush(35) == 0
        assert errors == [None] * len(sent)
        got, errs = consume({**conf, "fetch.max.bytes": 8_000_000, "max.partition.fetch.bytes": 4_000_000},
                            topic, len(sent), timeout=30)
        assert errs == [] and got == sent, (listener, len(got))


# ---------------------------------------------------------------------------------------------
# 2. SASL


@pytest.mark.parametrize("listener,mechanism", [
    ("SASL_SSL", "SCRAM-SHA-256"), ("SASL_SSL", "SCRAM-SHA-512"), ("SASL_SSL", "PLAIN"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-256"), ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
])
def test_sasl_confluent(main_broker, pki, listener, mechanism):
    topic = unique(f"sasl-{listener}-{mechanism}".lower())
    main_broker.create_topic(topic)
    conf = ck_conf(main_broker, pki, listener, "alice", mechanism)
    sent = values(30, mechanism)
    assert produce(conf, topic, sent) == [None] * 30
    got, errors = consume(ck_conf(main_broker, pki, listener, "bob", mechanism), topic, 30)
    assert errors == [] and got == sent
    md = AdminClient(conf).list_topics(timeout=15)
    assert [b.port for b in md.brokers.values()] == [main_broker.port(listener)]


@pytest.mark.parametrize("listener,mechanism", [
    ("SASL_SSL", "SCRAM-SHA-512"), ("SASL_SSL", "PLAIN"), ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
])
def test_sasl_kcat(main_broker, pki, listener, mechanism):
    topic = unique("sasl-kcat")
    main_broker.create_topic(topic)
    addr = main_broker.addr(listener)
    sent = values(10, "kc")
    kcat(addr, *kcat_sasl(main_broker, pki, listener, mechanism, "alice"), "-P", "-t", topic, "-p", "0",
         input="\n".join(sent).encode() + b"\n")
    out = kcat(addr, *kcat_sasl(main_broker, pki, listener, mechanism, "bob"), "-C", "-t", topic, "-p", "0",
               "-o", "beginning", "-e", "-f", "%s\\n").stdout.decode()
    assert out.split() == sent


KAFKAJS_SCRIPT = r"""
'use strict'
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')
const [bootstrap, ca, user, password, topic] = process.argv.slice(2)
const kafka = new Kafka({
  clientId: 'security-test', brokers: [bootstrap], logLevel: logLevel.ERROR,
  ssl: { ca: [fs.readFileSync(ca, 'utf8')] },
  sasl: { mechanism: 'scram-sha-512', username: user, password },
  connectionTimeout: 10000, requestTimeout: 10000, retry: { retries: 2 }
})
async function main () {
  const producer = kafka.producer()
  await producer.connect()
  const sent = Array.from({ length: 20 }, (_, i) => `js${i}`)
  await producer.send({ topic, messages: sent.map(value => ({ value, partition: 0 })) })
  await producer.disconnect()
  const consumer = kafka.consumer({ groupId: `g-${topic}`, sessionTimeout: 10000, heartbeatInterval: 1000 })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  const got = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, 30000)
    consumer.run({
      eachMessage: async ({ message }) => {
        got.push(message.value.toString())
        if (got.length >= sent.length) { clearTimeout(timer); resolve() }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  process.stdout.write(JSON.stringify({ sent, got }) + '\n')
}
main().then(() => process.exit(0), e => { console.error(e); process.exit(1) })
"""


def test_kafkajs_sasl_ssl_scram_sha_512(main_broker, pki, tmp_path):
    if not shutil.which("node") or not os.path.isdir(os.path.join(MATRIX, "node_modules", "kafkajs")):
        pytest.skip("needs node and `npm ci` in tests/compat/matrix")
    topic = unique("sasl-kafkajs")
    main_broker.create_topic(topic)
    script = tmp_path / "kafkajs_scram.js"
    script.write_text(KAFKAJS_SCRIPT)
    env = {**os.environ, "NODE_PATH": os.path.join(MATRIX, "node_modules")}
    r = subprocess.run(["node", str(script), main_broker.addr("SASL_SSL"), pki.ca, "alice", PASSWORDS["alice"],
                        topic], capture_output=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert out["got"] == out["sent"] and len(out["sent"]) == 20
    # And the records are really there, for another client on another listener.
    got, _ = consume(ck_conf(main_broker, pki, "PLAINTEXT"), topic, 20)
    assert got == out["sent"]


# ---------------------------------------------------------------------------------------------
# 3. mTLS and ACLs


def test_mtls_principal_and_acls(acl_broker, pki):
    allowed, denied = unique("mtls-allowed"), unique("mtls-denied")
    acl_broker.create_topic(allowed)
    acl_broker.create_topic(denied)
    acl_broker.cli("acl", "add", "--principal", ALICE_PRINCIPAL, "--operation", "write", "--topic", allowed)
    listing = acl_broker.cli("acl", "list", "--principal", ALICE_PRINCIPAL, "-o", "json")
    assert allowed in listing and ALICE_PRINCIPAL in listing, listing

    conf = ck_conf(acl_broker, pki, "MTLS", cert=pki.alice)
    sent = values(20, "alice")
    assert produce(conf, allowed, sent) == [None] * 20
    got, errors = consume(ck_conf(acl_broker, pki, "PLAINTEXT"), allowed, 20)
    assert errors == [] and got == sent

    results = produce(conf, denied, ["nope"], timeout=10)
    assert [e.code() if e else None for e in results] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], results
    # WRITE implies DESCRIBE: alice sees the allowed topic in a full listing, not the other.
    topics = AdminClient(conf).list_topics(timeout=15).topics
    assert allowed in topics and denied not in topics
    c = Consumer({**ck_conf(acl_broker, pki, "PLAINTEXT"), "group.id": "watermarks"})
    try:
        assert c.get_watermark_offsets(TopicPartition(denied, 0), timeout=10) == (0, 0)
        assert c.get_watermark_offsets(TopicPartition(allowed, 0), timeout=10) == (0, 20)
    finally:
        c.close()


def test_mtls_refuses_expired_untrusted_and_missing_certificates(acl_broker, pki):
    assert tls_api_versions(acl_broker, pki, "MTLS", pki.alice) == "ok"
    expired = tls_api_versions(acl_broker, pki, "MTLS", pki.expired)
    untrusted = tls_api_versions(acl_broker, pki, "MTLS", pki.mallory)
    missing = tls_api_versions(acl_broker, pki, "MTLS", None)
    assert expired.startswith("refused") and "EXPIRED" in expired.upper(), expired
    assert untrusted.startswith("refused") and "UNKNOWN_CA" in untrusted.upper(), untrusted
    assert missing != "ok" and (missing == "closed" or missing.startswith("refused")), missing

    # A real client with those certificates gets no metadata either.
    for cert in (pki.expired, pki.mallory):
        errors = []
        a = AdminClient(ck_conf(acl_broker, pki, "MTLS", cert=cert, error_cb=errors.append))
        with pytest.raises(KafkaException):
            a.list_topics(timeout=2)
        a.poll(0.5)  # serves error_cb
        assert errors, "no error reported"
    assert tls_api_versions(acl_broker, pki, "MTLS", pki.alice) == "ok"


def test_missing_acl_denies_produce_consume_and_hides_topic(acl_broker, pki):
    secret, described, visible = unique("acl-secret"), unique("acl-described"), unique("acl-visible")
    for t in (secret, described, visible):
        acl_broker.create_topic(t)
    assert produce(ck_conf(acl_broker, pki, "PLAINTEXT"), secret, ["s0", "s1"]) == [None, None]
    assert produce(ck_conf(acl_broker, pki, "PLAINTEXT"), described, ["d0"]) == [None]
    acl_broker.cli("acl", "add", "--principal", "User:bob", "--operation", "describe", "--topic", described)
    acl_broker.cli("acl", "add", "--principal", "User:bob", "--operation", "read", "--topic", visible)
    # bob may use the groups consume() reads with: what he is refused below is the topics.
    acl_broker.cli("acl", "add", "--principal", "User:bob", "--operation", "read", "--group", "reader-",
                   "--prefixed")

    bob = ck_conf(acl_broker, pki, "SASL_PLAINTEXT", "bob", "SCRAM-SHA-512")
    for topic in (secret, described):
        results = produce(bob, topic, ["x"], timeout=10)
        assert [e.code() if e else None for e in results] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], (topic, results)
    # Consuming: the topic bob may not even describe fails its subscription (Metadata says
    # TOPIC_AUTHORIZATION_FAILED; an assign() of it would wait silently, as librdkafka does with
    # Kafka); the described one fails at Fetch.
    for topic, subscribe in ((secret, True), (described, False)):
        got, errors = consume(bob, topic, 1, timeout=10, subscribe=subscribe)
        assert got == [], topic
        assert KafkaError.TOPIC_AUTHORIZATION_FAILED in [e.code() for e in errors], (topic, errors)

    topics = AdminClient(bob).list_topics(timeout=15).topics
    assert secret not in topics
    assert described in topics and visible in topics
    # A super user by SASL (carol, no ACL of her own) sees and reads everything.
    carol = ck_conf(acl_broker, pki, "SASL_PLAINTEXT", "carol", "SCRAM-SHA-256")
    assert {secret, described, visible} <= set(AdminClient(carol).list_topics(timeout=15).topics)
    got, errors = consume(carol, secret, 2)
    assert errors == [] and got == ["s0", "s1"]

    # Without a group ACL bob cannot join a group, even on a topic he may read.
    c = Consumer({**bob, "group.id": unique("bob-group"), "auto.offset.reset": "earliest"})
    c.subscribe([visible])
    codes = []
    deadline = time.time() + 10
    try:
        while time.time() < deadline and KafkaError.GROUP_AUTHORIZATION_FAILED not in codes:
            m = c.poll(0.2)
            if m is not None and m.error():
                codes.append(m.error().code())
    finally:
        c.close()
    assert KafkaError.GROUP_AUTHORIZATION_FAILED in codes, codes

    # OffsetFetch of a group bob may describe: a topic he may not describe, asked for by name,
    # answers TOPIC_AUTHORIZATION_FAILED on its partition; the readable one its offset.
    c = Consumer({**bob, "group.id": unique("reader-offsets"), "enable.auto.commit": False})
    try:
        parts = c.committed([TopicPartition(secret, 0), TopicPartition(visible, 0)], timeout=15)
    finally:
        c.close()
    by_topic = {p.topic: p for p in parts}
    assert by_topic[secret].error is not None, by_topic
    assert by_topic[secret].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, by_topic[secret].error
    assert by_topic[visible].error is None and by_topic[visible].offset < 0, by_topic[visible]


# ---------------------------------------------------------------------------------------------
# 4. Negatives: credentials, plaintext on TLS, the brake on guessing


def failed_login(broker, pki, listener, user, password, mechanism, timeout=15):
    """One login attempt by a confluent-kafka client (which connects at once and, with a long
    reconnect backoff, tries once): (seconds until the error, the error's text)."""
    errors = []
    t0 = time.monotonic()
    p = Producer(ck_conf(broker, pki, listener, user, mechanism, password=password,
                         **{"reconnect.backoff.ms": 30000, "reconnect.backoff.max.ms": 30000,
                            "error_cb": lambda e: errors.append((time.monotonic() - t0, e))}))
    while not errors and time.monotonic() < t0 + timeout:
        p.poll(0.005)
    del p
    assert errors, f"no error within {timeout} s"
    elapsed, err = errors[0]
    assert err.code() == KafkaError._AUTHENTICATION, err
    return elapsed, err.str()


def broker_message(text):
    m = re.search(r"SASL authentication error: (.*?) \(after", text)
    assert m, text
    return m.group(1)


def test_wrong_password_and_unknown_user_fail_alike(main_broker, pki):
    for listener, mechanism in [("SASL_PLAINTEXT", "SCRAM-SHA-256"), ("SASL_SSL", "PLAIN")]:
        _, wrong = failed_login(main_broker, pki, listener, "alice", "not-her-password", mechanism)
        _, unknown = failed_login(main_broker, pki, listener, "nobody-here", "whatever", mechanism)
        assert broker_message(wrong) == broker_message(unknown) == AUTH_FAILED, (wrong, unknown)
    log = main_broker.read_log()
    assert re.search(r"WARN .*authentication failed from 127\.0\.0\.1 on listener SASL_PLAINTEXT", log)
    assert re.search(r"WARN .*authentication failed from 127\.0\.0\.1 on listener SASL_SSL", log)
    # The right password still works (and clears the address's failures for the later tests).
    assert AdminClient(ck_conf(main_broker, pki, "SASL_SSL", "alice")).list_topics(timeout=15).brokers


def test_plaintext_client_on_tls_port_fails(main_broker, pki):
    r = kcat(main_broker.addr("SSL"), "-L", "-m", "2", check=False, timeout=30)
    assert r.returncode != 0, r.stdout.decode()
    assert b"Failed to acquire metadata" in r.stderr or b"ERROR" in r.stderr, r.stderr
    # A raw plaintext ApiVersions on the TLS port: no Kafka answer, the connection is closed.
    with socket.create_connection(split_addr(main_broker.addr("SSL")), timeout=10) as s:
        s.settimeout(10)
        s.sendall(api_versions_request())
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            data = b""
        # rustls may answer with an alert record (content type 21) before closing; never Kafka.
        assert data == b"" or data[0] == 21, data
        try:
            rest = s.recv(65536)
        except ConnectionResetError:
            rest = b""
        assert rest == b""
    # A SASL listener serves nothing but ApiVersions/SASL before authentication.
    with socket.create_connection(split_addr(main_broker.addr("SASL_PLAINTEXT")), timeout=10) as s:
        s.settimeout(10)
        s.sendall(metadata_request(9))
        try:
            assert read_response(s) is None
        except ConnectionResetError:
            pass
    # The TLS listener is unharmed.
    assert tls_api_versions(main_broker, pki, "SSL") == "ok"


def test_password_guessing_is_slowed_down_not_the_others(pki, tmp_path):
    """~8 wrong passwords in a row: each answer comes later (100 ms doubling, at most 5 s) and
    is logged at WARN, while a client that logged in before keeps producing on the same single
    shard without being held up, and a correct login afterwards is answered at once."""
    host = loopback_host()
    b = SecBroker(str(tmp_path / "brake"), host, {
        "listeners": f"PLAINTEXT://{host}:0,SASL_PLAINTEXT://{host}:0",
        "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
    }, shards=1).start()
    try:
        b.add_user("alice")
        topic = unique("brake")
        b.create_topic(topic)

        # The honest client: logged in before the guessing starts, producing throughout.
        latencies, errors, stop = [], [], threading.Event()
        honest = Producer(ck_conf(b, pki, "SASL_PLAINTEXT", "alice", "SCRAM-SHA-512",
                                  **{"linger.ms": 0, "enable.idempotence": False}))

        def report(err, msg, sent_at):
            if err:
                errors.append(err)
            else:
                latencies.append(time.monotonic() - sent_at)

        def run_honest():
            i = 0
            while not stop.is_set():
                at = time.monotonic()
                honest.produce(topic, value=f"h{i}".encode(), partition=0,
                               on_delivery=lambda e, m, at=at: report(e, m, at))
                i += 1
                honest.poll(0)
                time.sleep(0.05)
            honest.flush(20)

        t = threading.Thread(target=run_honest, daemon=True)
        t.start()
        deadline = time.time() + 15
        while not latencies and time.time() < deadline:
            time.sleep(0.05)
        assert latencies, f"the honest producer delivered nothing: {errors}"
        before = len(latencies)

        times = [failed_login(b, pki, "SASL_PLAINTEXT", "alice", f"guess-{i}", "SCRAM-SHA-256", timeout=20)[0]
                 for i in range(8)]
        during = len(latencies) - before
        fresh_t0 = time.monotonic()
        fresh = AdminClient(ck_conf(b, pki, "SASL_PLAINTEXT", "alice", "SCRAM-SHA-256"))
        assert fresh.list_topics(timeout=15).brokers
        fresh_elapsed = time.monotonic() - fresh_t0
        stop.set()
        t.join(30)
        assert not t.is_alive()

        expected = [min(0.1 * 2 ** i, 5.0) for i in range(8)]
        for got, want in zip(times, expected):
            assert want * 0.95 <= got <= want + 3.0, (times, expected)
        assert times[0] < 1.0 and times[3] > 0.75 and times[5] > 3.0 and times[7] > 4.7, times
        assert fresh_elapsed < 3.0, f"a correct login took {fresh_elapsed:.2f} s after the guessing"

        total = sum(times)
        assert errors == []
        assert during >= total / 0.05 * 0.3, f"honest client delivered {during} records in {total:.1f} s"
        assert max(latencies) < 1.5, f"honest client waited {max(latencies):.2f} s for a delivery"
        got, errs = consume(ck_conf(b, pki, "PLAINTEXT"), topic, len(latencies))
        assert len(got) == len(latencies) and got == [f"h{i}" for i in range(len(got))]

        warns = re.findall(r"WARN .*authentication failed from 127\.0\.0\.1 on listener SASL_PLAINTEXT "
                           r"\(.*answering in (\d+) ms\)", b.read_log())
        assert [int(w) for w in warns] == [100, 200, 400, 800, 1600, 3200, 5000, 5000], warns

        # sasl.enabled.mechanisms leaves PLAIN out: SaslHandshake refuses it and lists the others.
        with socket.create_connection(split_addr(b.addr("SASL_PLAINTEXT")), timeout=10) as sock:
            sock.settimeout(10)
            sock.sendall(kafka_request(17, 1, 1, kafka_string(b"PLAIN")))
            resp = read_response(sock)
        assert resp is not None
        correlation, error, count = struct.unpack(">ihi", resp[:10])
        mechanisms, pos = [], 10
        for _ in range(count):
            (n,) = struct.unpack(">h", resp[pos:pos + 2])
            mechanisms.append(resp[pos + 2:pos + 2 + n].decode())
            pos += 2 + n
        assert (correlation, error) == (1, 33), resp  # UNSUPPORTED_SASL_MECHANISM
        assert sorted(mechanisms) == ["SCRAM-SHA-256", "SCRAM-SHA-512"], mechanisms
    finally:
        b.stop()


# ---------------------------------------------------------------------------------------------
# 5. Certificate reload


def test_certificate_reload_without_restart(pki, tmp_path):
    """A TLS-only broker (no plain listener: the ready file comes without a self-probe), TLS 1.3
    only, serving a keystore file; replacing the file changes the certificate new connections
    see, a broken file keeps the current one."""
    host = loopback_host()
    base = str(tmp_path / "reload")
    os.makedirs(base)
    keystore = os.path.join(base, "keystore.pem")

    def write_keystore(cert, key):
        tmp = keystore + ".tmp"
        with open(tmp, "w") as out:
            out.write(open(key).read() + open(cert).read())
        os.replace(tmp, keystore)  # atomic: the broker never reads half a file

    cert, key, serial1 = pki.server(host, "reload-1")
    write_keystore(cert, key)
    b = SecBroker(base, host, {"listeners": f"SSL://{host}:0", "ssl.keystore.location": keystore,
                               "ssl.enabled.protocols": "TLSv1.3"}).start()
    try:
        assert set(b.listeners) == {"SSL"}
        port = b.port("SSL")
        # ssl.enabled.protocols=TLSv1.3: a TLS 1.2 client is refused.
        ctx = tls_context(pki)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(ssl.SSLError):
            with socket.create_connection((host, port), timeout=10) as raw:
                ctx.wrap_socket(raw, server_hostname=host).close()
        pid = b.proc.pid
        assert peer_certificate(host, port, pki) == ("reload-1", serial1)
        conf = {"bootstrap.servers": b.addr("SSL"), "security.protocol": "ssl", "ssl.ca.location": pki.ca}
        topic = unique("reload")
        admin = AdminClient(conf)  # alive until the future resolves
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
        assert produce(conf, topic, ["before"]) == [None]

        def wait_for_cert(cn, serial, timeout=8):
            deadline = time.time() + timeout
            seen = None
            while time.time() < deadline:
                seen = peer_certificate(host, port, pki)
                if seen == (cn, serial):
                    return
                time.sleep(0.1)
            raise AssertionError(f"still served {seen}, wanted {(cn, serial)}: {log_tail(b.log_path)}")

        cert, key, serial2 = pki.server(host, "reload-2")
        write_keystore(cert, key)
        wait_for_cert("reload-2", serial2)
        assert "TLS certificate reloaded" in b.read_log()

        # A broken file keeps the current certificate (and says so) ...
        with open(keystore + ".tmp", "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
        os.replace(keystore + ".tmp", keystore)
        deadline = time.time() + 8
        while "TLS reload failed" not in b.read_log() and time.time() < deadline:
            assert peer_certificate(host, port, pki) == ("reload-2", serial2)
            time.sleep(0.1)
        assert "TLS reload failed" in b.read_log()
        assert peer_certificate(host, port, pki) == ("reload-2", serial2)

        # ... until a good one comes.
        cert, key, serial3 = pki.server(host, "reload-3")
        write_keystore(cert, key)
        wait_for_cert("reload-3", serial3)

        assert b.proc.pid == pid and b.proc.poll() is None
        assert produce(conf, topic, ["after"]) == [None]
        got, errors = consume(conf, topic, 2)
        assert got == ["before", "after"]
    finally:
        b.stop()


# ---------------------------------------------------------------------------------------------
# 6. Re-authentication (KIP-368)


def test_reauthentication_keeps_the_connection(pki, tmp_path):
    """connections.max.reauth.ms=2000: a librdkafka producer over SASL_SSL SCRAM produces for
    ~6 s; it re-authenticates on its connections (no disconnect) and every record arrives."""
    host = loopback_host()
    cert, key, _ = pki.server(host, "reauth-broker")
    b = SecBroker(str(tmp_path / "reauth"), host, {
        "listeners": f"PLAINTEXT://{host}:0,SASL_SSL://{host}:0",
        **tls_config(cert, key),
        "connections.max.reauth.ms": 2000,
    }).start()
    try:
        b.add_user("alice")
        topic = unique("reauth")
        b.create_topic(topic)

        # The control: a client that does not re-authenticate is told the session lasts 2 s,
        # is served within it, and is cut off after it.
        host_, port = split_addr(b.addr("SASL_SSL"))
        with socket.create_connection((host_, port), timeout=10) as raw:
            with tls_context(pki).wrap_socket(raw, server_hostname=host_) as sock:
                sock.settimeout(10)
                assert sasl_plain_login(sock, "alice", PASSWORDS["alice"]) == 2000
                sock.sendall(metadata_request(3))
                resp = read_response(sock)
                assert resp is not None and struct.unpack(">i", resp[:4])[0] == 3
                time.sleep(2.3)
                try:
                    sock.sendall(metadata_request(4))
                    resp = read_response(sock)
                except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                    resp = None
                assert resp is None, "served after the session expired"

        stats = []
        p = Producer(ck_conf(b, pki, "SASL_SSL", "alice", "SCRAM-SHA-512", **{
            "linger.ms": 0, "enable.idempotence": False, "statistics.interval.ms": 500,
            "stats_cb": lambda s: stats.append(json.loads(s)), "message.timeout.ms": 15000}))
        errors, delivered = [], []
        sent = []
        t_end = time.monotonic() + 6.5
        i = 0
        while time.monotonic() < t_end:
            v = f"r{i}"
            p.produce(topic, value=v.encode(), partition=0,
                      on_delivery=lambda e, m: errors.append(e) if e else delivered.append(m.value().decode()))
            sent.append(v)
            i += 1
            p.poll(0.05)
        assert p.flush(20) == 0
        p.poll(0.6)  # one more statistics report
        assert errors == []
        assert delivered == sent
        got, errs = consume(ck_conf(b, pki, "PLAINTEXT"), topic, len(sent))
        assert got == sent

        last = stats[-1]["brokers"]
        node = [v for k, v in last.items() if k.endswith("/0")]
        assert node, list(last)
        assert node[0]["connects"] == 1 and node[0]["disconnects"] == 0, \
            {k: (v["connects"], v["disconnects"]) for k, v in last.items()}
        # One login and a re-authentication about every 2 s on the same connection.
        assert node[0]["req"]["SaslHandshake"] >= 3 and node[0]["req"]["SaslAuthenticate"] >= 6, node[0]["req"]
        # The broker closed only the control connection for an expired session.
        expired = [l for l in b.read_log().splitlines() if "after the SASL session expired" in l]
        assert len(expired) == 1, expired
    finally:
        b.stop()


# ---------------------------------------------------------------------------------------------
# 7. Between brokers

def test_replication_between_brokers_over_sasl_ssl(pki, tmp_path):
    """Two brokers whose inter-broker listener is SASL_SSL (SCRAM-SHA-512, each broker showing
    its own certificate), ACLs on and User:broker a super user: acks=all with
    min.insync.replicas=2 succeeds only once the follower fetches through TLS and SASL, and
    the follower's copy is served after the leader stops."""
    hosts = [loopback_host(), loopback_host()]
    voters = ",".join(f"{i + 1}@{h}:{CONTROLLER_PORT}" for i, h in enumerate(hosts))
    nodes = []
    for i, h in enumerate(hosts):
        cert, key, _ = pki.server(h, f"node-{i + 1}")
        nodes.append(SecBroker(str(tmp_path / f"node-{i + 1}"), h, {
            "node.id": i + 1,
            "process.roles": "broker,controller",
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{h}:0,SASL_SSL://{h}:0,CONTROLLER://{h}:{CONTROLLER_PORT}",
            "inter.broker.listener.name": "SASL_SSL",
            "inter.broker.sasl.username": "broker",
            "inter.broker.sasl.password": "broker-s3cret",
            "ssl.truststore.location": pki.ca,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:broker;User:ANONYMOUS",
            **tls_config(cert, key),
        }, shards=1))
    try:
        for n in nodes:
            n.spawn()
        for n in nodes:
            n.wait(90)
        nodes[0].cli("user", "add", "broker", password="broker-s3cret")
        topic = unique("inter")
        a = AdminClient({"bootstrap.servers": nodes[0].addr("PLAINTEXT")})
        a.create_topics([NewTopic(topic, 1, 2, config={"min.insync.replicas": "2"})])[topic].result(30)
        conf = {"bootstrap.servers": nodes[0].addr("PLAINTEXT"), "acks": "all", "message.timeout.ms": 60_000}
        p = Producer(conf)
        errors = []
        for i in range(100):
            p.produce(topic, value=f"r{i}".encode(), partition=0, on_delivery=lambda e, m: errors.append(e))
        assert p.flush(70) == 0
        assert errors == [None] * 100, errors[:3]
        md = a.list_topics(topic, timeout=15).topics[topic].partitions[0]
        assert sorted(md.isrs) == [1, 2], md.isrs
        logs = "".join(n.read_log() for n in nodes)
        lines = [line for line in logs.splitlines() if "replica fetcher connected to leader" in line]
        assert lines and all(any(n.addr("SASL_SSL") in line for n in nodes) for line in lines), lines
        # The leader goes; the follower's copy (fetched over SASL_SSL) is what clients read.
        leader = md.leader
        survivor = nodes[2 - leader]
        nodes[leader - 1].stop()
        got = []
        deadline = time.time() + 60
        while time.time() < deadline and len(got) < 100:
            c = Consumer({"bootstrap.servers": survivor.addr("PLAINTEXT"), "group.id": unique("g"),
                          "enable.auto.commit": False})
            c.assign([TopicPartition(topic, 0, 0)])
            got = []
            end = time.time() + 10
            while time.time() < end and len(got) < 100:
                m = c.poll(0.5)
                if m is not None and m.error() is None:
                    got.append(m.value().decode())
            c.close()
        assert got == [f"r{i}" for i in range(100)]
    finally:
        for n in nodes:
            n.stop()


def controller_frame(sock, request):
    """One controller-protocol exchange (4-byte length, JSON): the answer, or None when the
    peer closed or reset the connection instead."""
    body = json.dumps(request).encode()
    try:
        sock.sendall(struct.pack(">I", len(body)) + body)
        answer = read_response(sock)
    except (ConnectionError, ssl.SSLError):
        return None
    return None if answer is None else json.loads(answer)


def test_controller_quorum_over_mtls(pki, tmp_path):
    """CONTROLLER:SSL with ACLs on: two controllers (combined nodes) and a broker-only node
    form the cluster over TLS, each showing its own certificate, and a topic replicated to all
    three takes acks=all writes. The controller listener answers a super user's certificate
    and refuses a plaintext peer, a TLS client without a certificate and a trusted certificate
    whose principal is not a super user; `riptide cluster balance` reaches it over TLS."""
    hosts = [loopback_host() for _ in range(3)]
    voters = ",".join(f"{i + 1}@{h}:{CONTROLLER_PORT}" for i, h in enumerate(hosts[:2]))
    certs = [pki.server(h, f"ctl-node-{i + 1}", usage="serverAuth,clientAuth")[:2] for i, h in enumerate(hosts)]
    super_users = ";".join(["User:ANONYMOUS", *(f"User:CN=ctl-node-{i + 1},O=Acme" for i in range(3))])
    nodes = []
    for i, h in enumerate(hosts):
        controller = i < 2
        nodes.append(SecBroker(str(tmp_path / f"node-{i + 1}"), h, {
            "node.id": i + 1,
            "process.roles": "broker,controller" if controller else "broker",
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{h}:0,CONTROLLER://{h}:{CONTROLLER_PORT}" if controller
            else f"PLAINTEXT://{h}:0",
            "listener.security.protocol.map": "CONTROLLER:SSL,PLAINTEXT:PLAINTEXT",
            "ssl.truststore.location": pki.ca,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": super_users,
            **tls_config(*certs[i]),
        }, shards=1))
    try:
        for n in nodes:
            n.spawn()
        for n in nodes:
            n.wait(90)
        topic = unique("ctl-tls")
        a = AdminClient({"bootstrap.servers": nodes[0].addr("PLAINTEXT")})
        deadline = time.time() + 60
        while True:
            try:
                a.create_topics([NewTopic(topic, 1, 3, config={"min.insync.replicas": "3"})])[topic].result(30)
                break
            except KafkaException as e:
                # Until the broker-only node has registered through TLS, three replicas do not fit.
                assert time.time() < deadline, e
                time.sleep(0.5)
        p = Producer({"bootstrap.servers": nodes[2].addr("PLAINTEXT"), "acks": "all",
                      "message.timeout.ms": 60_000})
        errors = []
        for i in range(50):
            p.produce(topic, value=f"c{i}".encode(), partition=0, on_delivery=lambda e, m: errors.append(e))
        assert p.flush(70) == 0
        assert errors == [None] * 50, errors[:3]
        md = a.list_topics(topic, timeout=15).topics[topic].partitions[0]
        assert sorted(md.isrs) == [1, 2, 3], md.isrs

        host = hosts[0]

        def tls_socket(cert=None):
            ctx = ssl.create_default_context(cafile=pki.ca)
            if cert:
                ctx.load_cert_chain(*cert)
            raw = socket.create_connection((host, CONTROLLER_PORT), timeout=10)
            return ctx.wrap_socket(raw, server_hostname=host)

        with tls_socket(certs[2]) as s:
            answer = controller_frame(s, "DescribeQuorum")
        assert answer is not None and "Quorum" in answer, answer
        with socket.create_connection((host, CONTROLLER_PORT), timeout=10) as s:
            assert controller_frame(s, "DescribeQuorum") is None
        for cert in (None, pki.alice):
            try:
                with tls_socket(cert) as s:
                    assert controller_frame(s, "DescribeQuorum") is None, cert
            except (ssl.SSLError, ConnectionError):
                pass  # refused during the handshake
        # The refusal is logged by the connection's own task, possibly after the client saw
        # the socket close: wait for the line (bounded) rather than read the log at once.
        refused = "User:CN=alice,OU=eng,O=Acme is not a super user"
        deadline = time.time() + 10
        while refused not in nodes[0].read_log() and time.time() < deadline:
            time.sleep(0.1)
        log = nodes[0].read_log()
        assert refused in log, log[-3000:]

        r = subprocess.run([BINARY, "cluster", "balance", "--dry-run", "-b", nodes[0].addr("PLAINTEXT"),
                            "--controller-security-protocol", "SSL", "--ssl-ca", pki.ca,
                            "--ssl-cert", certs[2][0], "--ssl-key", certs[2][1]],
                           capture_output=True, timeout=60)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
        r = subprocess.run([BINARY, "cluster", "balance", "--dry-run", "-b", nodes[0].addr("PLAINTEXT")],
                           capture_output=True, timeout=60)
        assert r.returncode != 0, "a plaintext CLI must not reach the SSL controller listener"
    finally:
        for n in nodes:
            n.stop()


def test_cli_speaks_tls_and_sasl(main_broker, pki):
    """The riptide CLI (riptide-client) over SASL_SSL with each mechanism, and over SSL."""
    def cli(*args, password=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("RIPTIDE_")}
        if password is not None:
            env["RIPTIDE_SASL_PASSWORD"] = password
        return subprocess.run([BINARY, *args], capture_output=True, env=env, timeout=30)
    sasl = ["-b", main_broker.addr("SASL_SSL"), "--security-protocol", "SASL_SSL", "--ssl-ca", pki.ca,
            "--sasl-user", "alice"]
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"):
        r = cli("user", "list", *sasl, "--sasl-mechanism", mechanism, password=PASSWORDS["alice"])
        assert r.returncode == 0 and "alice" in r.stdout.decode(), r.stderr.decode()
    r = cli("user", "list", *sasl, password="wrong")
    assert r.returncode == 1 and AUTH_FAILED in r.stderr.decode(), r.stderr.decode()
    ssl_args = ["-b", main_broker.addr("SSL"), "--security-protocol", "SSL", "--ssl-ca", pki.ca]
    topic = unique("cli-tls")
    main_broker.create_topic(topic)
    r = subprocess.run([BINARY, "produce", topic, *ssl_args], input=b"one\ntwo\n", capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    r = cli("consume", topic, *ssl_args, "--from", "beginning", "--count", "2")
    assert r.returncode == 0 and r.stdout.decode().split() == ["one", "two"], (r.stdout, r.stderr)
    # Without the CA the broker's certificate is not trusted.
    r = cli("topic", "list", "-b", main_broker.addr("SSL"), "--security-protocol", "SSL")
    assert r.returncode == 2 and "--ssl-ca" in r.stderr.decode()
