//! The `riptide` client commands against a real broker: each test starts `riptide serve`
//! (temp data dir, free port, 2 shards) and runs the built binary as a user would, checking
//! tables, JSON, exit codes and one-line errors.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use riptide_client::launch;
use serde_json::Value;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_riptide");

/// A broker process with its own data directory; killed and removed on drop.
struct Broker {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl Broker {
    /// `riptide serve` on port 0, ready when its ready file says where and the listener there
    /// answers ApiVersions; a broker that exits at start fails the test with its log.
    fn start() -> Broker {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "riptide-cli-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let log = dir.join("broker.log");
        let ready_file = dir.join("ready.json");
        let out = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(BIN)
            .args(["serve", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "off", "--rest-listen", "off"])
            .args(["--shards", "2", "--no-pin", "--ready-file"])
            .arg(&ready_file)
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("spawn riptide serve");
        let ready = launch::wait_ready(&mut child, &ready_file, &log, Duration::from_secs(60))
            .unwrap_or_else(|e| {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{e}")
            });
        let addr = ready.kafka.expect("a Kafka listener").to_string();
        Broker { child, addr, dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).env("RIPTIDE_BROKERS", &self.addr);
        c
    }

    /// Runs a CLI command to completion with `stdin` as input.
    fn run_with_input(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn riptide");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
        wait(child, args)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_input(args, "")
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_with_input(args, "")
    }

    fn ok_with_input(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run_with_input(args, stdin);
        assert!(
            out.status.success(),
            "riptide {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("riptide {all:?}: not JSON ({e}): {text}"))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits for a CLI process, killing it if it hangs (a failing test must not hang CI). Its
/// output is read while it runs: a long one (completion scripts) fills the pipe otherwise.
fn wait(child: Child, args: &[&str]) -> Output {
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(out) => out.expect("output"),
        Err(_) => {
            // SAFETY: kill(2) on the child's pid; at worst it is already gone.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("riptide {args:?} did not finish within 30 s");
        }
    }
}

/// A failed command: its exit code and its single stderr line.
fn failure(out: &Output) -> (i32, String) {
    assert!(!out.status.success(), "expected a failure, got: {}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(stderr.lines().count(), 1, "one-line error expected: {stderr:?}");
    assert!(stderr.starts_with("riptide: "), "{stderr:?}");
    (out.status.code().unwrap_or(-1), stderr.trim_end().to_string())
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// Column cells of a table row, split on runs of spaces.
fn cells(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn records(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

#[test]
fn topic_create_list_describe_alter_delete() {
    let b = Broker::start();
    let out = b.ok(&["topic", "create", "orders", "--partitions", "3", "--config", "retention.ms=86400000"]);
    assert_eq!(lines(&out), vec!["TOPIC   STATUS", "orders  created"]);
    b.ok(&["topic", "create", "audit", "-p", "1"]);

    let list = b.ok(&["topic", "list"]);
    assert_eq!(
        lines(&list),
        vec!["NAME    PARTITIONS  REPLICAS", "audit   1           1", "orders  3           1"]
    );
    let json = b.json(&["topic", "list"]);
    let names: Vec<&str> =
        json.as_array().expect("array").iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, vec!["audit", "orders"]);
    assert_eq!(json[1]["partitions"], 3);

    let describe = b.ok(&["topic", "describe", "orders"]);
    assert!(describe.starts_with("NAME        orders\nPARTITIONS  3\n"), "{describe}");
    assert!(
        describe.contains("PARTITION  LEADER  EPOCH  REPLICAS  ISR  LOG-START  HIGH-WATERMARK  REPLICA:LAG"),
        "{describe}"
    );
    let rows: Vec<Vec<&str>> = describe.lines().map(cells).filter(|c| c.len() == 8 && c[0] == "2").collect();
    assert_eq!(rows, vec![vec!["2", "0", "0", "0", "0", "0", "0", "0:0"]], "{describe}");
    let retention = describe.lines().find(|l| l.starts_with("retention.ms ")).expect("retention.ms row");
    assert_eq!(cells(retention), vec!["retention.ms", "86400000", "DYNAMIC_TOPIC_CONFIG"]);

    let out = b.ok(&[
        "topic",
        "alter-config",
        "orders",
        "--set",
        "retention.ms=3600000",
        "--set",
        "segment.bytes=1048576",
    ]);
    assert!(out.contains("retention.ms   set to 3600000"), "{out}");
    let d = b.json(&["topic", "describe", "orders", "--overrides-only"]);
    let configs: Vec<(String, String)> = d["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .map(|c| {
            (c["name"].as_str().unwrap_or("").to_string(), c["value"].as_str().unwrap_or("").to_string())
        })
        .collect();
    assert_eq!(
        configs,
        vec![("retention.ms".into(), "3600000".into()), ("segment.bytes".into(), "1048576".into())]
    );
    assert_eq!(d["partitions"].as_array().map(Vec::len), Some(3));
    assert_eq!(d["partitions"][0]["high_watermark"], 0);
    b.ok(&["topic", "alter-config", "orders", "--delete", "segment.bytes"]);
    let d = b.json(&["topic", "describe", "orders", "--overrides-only"]);
    assert_eq!(d["configs"].as_array().map(Vec::len), Some(1));

    let out = b.ok(&["topic", "add-partitions", "orders", "--total", "5"]);
    assert!(out.contains("partitions added"));
    assert_eq!(b.json(&["topic", "describe", "orders"])["partitions"].as_array().map(Vec::len), Some(5));

    let (code, err) = failure(&b.run(&["topic", "create", "orders"]));
    assert_eq!(code, 1);
    assert!(err.contains("TOPIC_ALREADY_EXISTS (36)"), "{err}");
    assert!(b.ok(&["topic", "create", "orders", "--if-not-exists"]).contains("orders  exists"));

    let out = b.json(&["topic", "delete", "orders", "audit"]);
    assert_eq!(out[0]["status"], "deleted");
    assert_eq!(out[1]["status"], "deleted");
    assert_eq!(lines(&b.ok(&["topic", "list"])), vec!["NAME  PARTITIONS  REPLICAS"]);
}

#[test]
fn produce_and_consume_round_trip() {
    let b = Broker::start();
    b.ok(&["topic", "create", "events", "-p", "3"]);
    let input = "alice:first\nbob:second\ncarol:third\nalice:fourth\nno-key-line\n";
    let summary: Value = serde_json::from_str(&b.ok_with_input(
        &["produce", "events", "--key-separator", ":", "--header", "source=test", "-H", "n=1", "-o", "json"],
        input,
    ))
    .expect("json summary");
    assert_eq!(summary["records"], 5);

    let out = b.ok(&["consume", "events", "--from", "beginning", "--exit-at-end", "--format", "json"]);
    let recs = records(&out);
    assert_eq!(recs.len(), 5, "{out}");
    for r in &recs {
        assert_eq!(r["topic"], "events");
        assert_eq!(r["headers"]["source"], "test");
        assert_eq!(r["headers"]["n"], "1");
        assert_eq!(r["timestamp_type"], "CreateTime");
        assert!(r["timestamp"].as_i64().is_some_and(|t| t > 1_600_000_000_000));
        if let Some(key) = r["key"].as_str() {
            // Keyed records land where the Java client's murmur2 partitioner puts them.
            let want = riptide_client::partition_for_key(key.as_bytes(), 3);
            assert_eq!(r["partition"], want, "{r}");
        } else {
            assert_eq!(r["value"], "no-key-line");
        }
    }
    let alice: Vec<&str> =
        recs.iter().filter(|r| r["key"] == "alice").filter_map(|r| r["value"].as_str()).collect();
    assert_eq!(alice, vec!["first", "fourth"], "one key keeps its order");

    // Explicit partition, every codec and acks level; values come back in order.
    for (codec, acks) in [("gzip", "1"), ("snappy", "all"), ("lz4", "1"), ("zstd", "all"), ("none", "1")] {
        let out = b.ok_with_input(
            &["produce", "events", "-p", "1", "-z", codec, "--acks", acks],
            &format!("{codec}-a\n{codec}-b\n"),
        );
        assert!(
            out.starts_with("PARTITION  RECORDS  FIRST-OFFSET  LAST-OFFSET\n1          2"),
            "{codec}: {out}"
        );
    }
    let one = b.ok(&["consume", "events", "-p", "1", "--from", "beginning", "-e"]);
    let tail: Vec<&str> = one
        .lines()
        .filter(|l| ["gzip-", "snappy-", "lz4-", "zstd-", "none-"].iter().any(|p| l.starts_with(p)))
        .collect();
    let codecs = [
        "gzip-a", "gzip-b", "snappy-a", "snappy-b", "lz4-a", "lz4-b", "zstd-a", "zstd-b", "none-a", "none-b",
    ];
    assert_eq!(tail, codecs);

    // --count, --from OFFSET, --from end, --from @timestamp, value format.
    let two = b.ok(&["consume", "events", "-p", "1", "--from", "2", "-n", "2"]);
    assert_eq!(lines(&two).len(), 2);
    assert_eq!(b.ok(&["consume", "events", "--from", "end", "-e"]), "");
    let future =
        (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis()
            + 3_600_000)
            .to_string();
    assert_eq!(b.ok(&["consume", "events", "--from", &format!("@{future}"), "-e"]), "");
    assert_eq!(lines(&b.ok(&["consume", "events", "--from", "@-1h", "-e"])).len(), 5 + 10);

    // --rate spaces records out: 10 records at 40/s take at least ~225 ms.
    let started = Instant::now();
    let input: String = (0..10).map(|i| format!("r{i}\n")).collect();
    b.ok_with_input(&["produce", "events", "--rate", "40"], &input);
    assert!(started.elapsed() >= Duration::from_millis(200), "{:?}", started.elapsed());

    // --file instead of stdin.
    let path = b.dir.join("input.txt");
    std::fs::write(&path, "from-file-1\nfrom-file-2\n").expect("write input");
    let path = path.to_string_lossy().to_string();
    assert!(b
        .ok(&["produce", "events", "--file", &path, "-p", "2", "-o", "json"])
        .contains("\"records\": 2"));

    // acks=0 gets no answer, so the record shows up a little later.
    let out = b.ok_with_input(&["produce", "events", "-p", "0", "--acks", "0"], "fire-and-forget\n");
    assert!(out.contains("0          1        -             -"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.ok(&["consume", "events", "-p", "0", "--from", "beginning", "-e"]).contains("fire-and-forget") {
        assert!(Instant::now() < deadline, "acks=0 record never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn consume_follows_new_records_until_count() {
    let b = Broker::start();
    b.ok(&["topic", "create", "live", "-p", "2"]);
    let follower = b
        .command(&["consume", "live", "-n", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn consumer");
    // It starts at the end, so keep producing until it has seen three new records, however
    // long it took to start.
    let mut follower = follower;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut produced = 0;
    while follower.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < deadline, "the consumer never saw three new records");
        b.ok_with_input(&["produce", "live"], &format!("record-{produced}\n"));
        produced += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = wait(follower, &["consume", "live", "-n", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(seen.lines().count(), 3, "{seen}");
    assert!(seen.lines().all(|l| l.starts_with("record-")), "{seen}");
}

#[test]
fn groups_commit_describe_reset_delete() {
    let b = Broker::start();
    b.ok(&["topic", "create", "jobs", "-p", "2"]);
    let input: String = (0..10).map(|i| format!("k{i}:job-{i}\n")).collect();
    b.ok_with_input(&["produce", "jobs", "-k", ":"], &input);

    let out = b.ok(&["consume", "jobs", "--group", "workers", "--from", "beginning", "-n", "4"]);
    assert_eq!(lines(&out).len(), 4);
    let list = b.ok(&["group", "list"]);
    assert!(list.lines().any(|l| cells(l) == ["workers", "Empty", "consumer"]), "{list}");

    let d = b.json(&["group", "describe", "workers"]);
    assert_eq!(d["state"], "Empty");
    let offsets = d["offsets"].as_array().expect("offsets");
    let committed: i64 = offsets.iter().filter_map(|o| o["committed"].as_i64()).sum();
    let lag: i64 = offsets.iter().filter_map(|o| o["lag"].as_i64()).sum();
    assert_eq!((committed, lag), (4, 6), "{d}");
    let table = b.ok(&["group", "describe", "workers"]);
    assert!(table.contains("TOPIC  PARTITION  COMMITTED  LOG-END  LAG  MEMBER"), "{table}");

    // The group resumes where it committed: the other 6 records.
    let rest = b.ok(&["consume", "jobs", "--group", "workers", "--exit-at-end"]);
    assert_eq!(lines(&rest).len(), 6, "{rest}");

    // A running member shows up with its assignment; Ctrl-C makes it commit and leave.
    let mut member = b
        .command(&["consume", "jobs", "--group", "workers"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn member");
    let deadline = Instant::now() + Duration::from_secs(15);
    let described = loop {
        let d = b.json(&["group", "describe", "workers"]);
        if d["state"] == "Stable" {
            break d;
        }
        assert!(Instant::now() < deadline, "member never joined: {d}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let members = described["members"].as_array().expect("members");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["client_id"], "riptide-cli");
    assert_eq!(members[0]["assignment"][0]["topic"], "jobs");
    assert_eq!(members[0]["assignment"][0]["partitions"], serde_json::json!([0, 1]));
    let (code, err) =
        failure(&b.run(&["group", "reset-offsets", "workers", "--topic", "jobs", "--to", "beginning"]));
    assert_eq!(code, 1);
    assert!(err.contains("active member"), "{err}");
    // SAFETY: kill(2) on the child we spawned and still own.
    unsafe { libc::kill(member.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while member.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < deadline, "member did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(member.wait().expect("status").success());
    assert_eq!(b.json(&["group", "describe", "workers"])["state"], "Empty", "left the group on Ctrl-C");

    // Reset: dry run changes nothing, then to the beginning, then to an offset.
    let dry =
        b.ok(&["group", "reset-offsets", "workers", "--topic", "jobs", "--to", "beginning", "--dry-run"]);
    assert!(dry.contains("(dry run: nothing committed)"), "{dry}");
    let lag = |b: &Broker| -> i64 {
        b.json(&["group", "describe", "workers"])["offsets"]
            .as_array()
            .expect("offsets")
            .iter()
            .filter_map(|o| o["lag"].as_i64())
            .sum()
    };
    assert_eq!(lag(&b), 0);
    let reset = b.json(&["group", "reset-offsets", "workers", "--topic", "jobs", "--to", "beginning"]);
    assert!(reset["offsets"].as_array().expect("offsets").iter().all(|o| o["new"] == 0), "{reset}");
    assert_eq!(lag(&b), 10);
    b.ok(&["group", "reset-offsets", "workers", "--topic", "jobs", "--partition", "0", "--to", "1"]);
    assert_eq!(lag(&b), 9);

    let out = b.ok(&["group", "delete", "workers"]);
    assert_eq!(lines(&out), vec!["GROUP    STATUS", "workers  deleted"]);
    let (code, _) = failure(&b.run(&["group", "describe", "workers"]));
    assert_eq!(code, 1);
}

#[test]
fn errors_are_one_line_with_exit_codes() {
    let b = Broker::start();
    b.ok(&["topic", "create", "present", "-p", "1"]);

    let (code, err) = failure(&b.run(&["topic", "describe", "missing"]));
    assert_eq!((code, err.as_str()), (1, "riptide: topic missing: UNKNOWN_TOPIC_OR_PARTITION (3)"));
    let (code, err) = failure(&b.run(&["consume", "missing", "-e"]));
    assert_eq!(code, 1);
    assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");

    let (code, err) = failure(&b.run(&["topic", "alter-config", "present", "--set", "no.such.config=1"]));
    assert_eq!(code, 1);
    assert!(err.contains("INVALID_CONFIG (40)"), "{err}");
    let (code, err) = failure(&b.run(&["topic", "create", "bad", "--config", "no.such.config=1"]));
    assert_eq!(code, 1);
    assert!(err.contains("topic bad"), "{err}");

    // Nothing listens on a loopback host reserved for this test.
    let nobody = launch::LoopbackHost::reserve().expect("host");
    let (code, err) = failure(&b.run(&["topic", "list", "-b", &nobody.addr(9092).to_string()]));
    assert_eq!(code, 3);
    assert!(err.contains(&format!("cannot connect to {}:9092", nobody.ip)), "{err}");
    // The connection flags also go before the subcommand, and Kafka's --bootstrap-server
    // names -b: both win over RIPTIDE_BROKERS (set to the live broker here).
    let away = nobody.addr(9092).to_string();
    for args in [vec!["-b", &away, "topic", "list"], vec!["topic", "list", "--bootstrap-server", &away]] {
        let (code, err) = failure(&b.run(&args));
        assert_eq!(code, 3, "{args:?}");
        assert!(err.contains(&format!("cannot connect to {}:9092", nobody.ip)), "{args:?}: {err}");
    }
    let listed: Value = serde_json::from_str(&b.ok(&["-o", "json", "topic", "list"])).expect("JSON");
    assert!(listed.to_string().contains("present"), "{listed}");

    let (code, err) = failure(&b.run(&["consume", "present", "--from", "yesterday"]));
    assert_eq!(code, 2);
    assert!(err.contains("--from"), "{err}");
    let (code, _) = failure(&b.run(&["consume", "present", "-p", "7", "-e"]));
    assert_eq!(code, 1);
    let (code, _) = failure(&b.run_with_input(&["produce", "present", "-p", "9"], "x\n"));
    assert_eq!(code, 1);
    let out = b.run(&["produce", "present", "--acks", "2"]);
    assert_eq!(out.status.code(), Some(2), "clap rejects bad values");
}

#[test]
fn cluster_info_help_and_completions() {
    let b = Broker::start();
    let info = b.ok(&["cluster", "info", "--apis"]);
    let port = b.addr.rsplit(':').next().expect("port");
    assert!(info.lines().any(|l| cells(l) == ["0", "127.0.0.1", port, "-", "yes"]), "{info}");
    assert!(info.contains("CONTROLLER   0"), "{info}");
    assert!(info.lines().any(|l| cells(l) == ["0", "Produce", "0-13"]), "{info}");
    assert!(info.contains("FEATURES     transaction.version=2"), "{info}");
    let json = b.json(&["cluster", "info"]);
    assert_eq!(json["controller_id"], 0);
    assert_eq!(json["brokers"][0]["port"].as_i64(), port.parse::<i64>().ok());
    assert!(json["cluster_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(json["apis"].as_array().is_some_and(|a| a.iter().any(|x| x["name"] == "Fetch")));

    let help = b.ok(&["topic", "--help"]);
    assert!(help.contains("Examples:") && help.contains("riptide topic create"), "{help}");
    assert!(b.ok(&["consume", "--help"]).contains("--from"));
    for shell in ["bash", "zsh", "fish"] {
        let script = b.ok(&["completions", shell]);
        assert!(script.contains("riptide") && script.contains("consume"), "{shell}");
    }
}

/// One request on its own connection (kafka-protocol's codec), for state the CLI only reads.
fn kafka_call(
    addr: &str,
    key: kafka_protocol::messages::ApiKey,
    version: i16,
    request: kafka_protocol::messages::RequestKind,
) -> kafka_protocol::messages::ResponseKind {
    use bytes::{BufMut, Bytes, BytesMut};
    use kafka_protocol::messages::{RequestHeader, ResponseHeader, ResponseKind};
    use kafka_protocol::protocol::{Decodable, Encodable};
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .encode(&mut buf, key.request_header_version(version))
        .expect("header");
    request.encode(&mut buf, version).expect("request");
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    stream.write_all(&buf).expect("send");
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("answer");
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).expect("answer");
    let mut body = Bytes::from(body);
    ResponseHeader::decode(&mut body, key.response_header_version(version)).expect("header");
    ResponseKind::decode(key, &mut body, version).expect("response")
}

#[test]
fn txn_list_and_describe() {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    let b = Broker::start();
    b.ok(&["topic", "create", "ledger", "-p", "2"]);
    let tid = || TransactionalId(StrBytes::from_static_str("cli-txn"));
    let find = FindCoordinatorRequest::default().with_key_type(1).with_coordinator_keys(vec![tid().0]);
    kafka_call(&b.addr, ApiKey::FindCoordinator, 4, RequestKind::FindCoordinator(find));
    // The coordinator loads the new __transaction_state partitions first.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (pid, epoch) = loop {
        let init = InitProducerIdRequest::default()
            .with_transactional_id(Some(tid()))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        match kafka_call(&b.addr, ApiKey::InitProducerId, 4, RequestKind::InitProducerId(init)) {
            ResponseKind::InitProducerId(r) if r.error_code == 0 => break (r.producer_id, r.producer_epoch),
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            other => panic!("{other:?}"),
        }
    };
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(tid())
        .with_v3_and_below_producer_id(pid)
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("ledger")))
            .with_partitions(vec![1])]);
    match kafka_call(&b.addr, ApiKey::AddPartitionsToTxn, 3, RequestKind::AddPartitionsToTxn(add)) {
        ResponseKind::AddPartitionsToTxn(r) => {
            assert_eq!(r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code, 0)
        }
        other => panic!("{other:?}"),
    }

    let table = b.ok(&["txn", "list"]);
    let rows = lines(&table);
    assert_eq!(cells(rows[0]), ["TRANSACTIONAL-ID", "PRODUCER-ID", "STATE", "COORDINATOR"]);
    assert_eq!(cells(rows[1]), ["cli-txn", &pid.0.to_string(), "Ongoing", "0"]);
    let d = b.json(&["txn", "describe", "cli-txn"]);
    assert_eq!(d["state"], "Ongoing");
    assert_eq!(d["producer_id"], pid.0);
    assert_eq!(d["partitions"], serde_json::json!(["ledger-1"]));
    assert!(b.ok(&["txn", "describe", "cli-txn"]).contains("partitions        ledger-1"));
    let (code, err) = failure(&b.run(&["txn", "describe", "nobody"]));
    assert_eq!(code, 1);
    assert!(err.contains("TRANSACTIONAL_ID_NOT_FOUND (105)"), "{err}");

    // A group's lag as read_committed consumers see it ends at the last stable offset.
    b.ok_with_input(&["produce", "ledger", "-p", "1"], "a\nb\n");
    let produce = common::produce_request(Some("cli-txn"), "ledger", 1, common::txn_batch(pid.0, epoch, 0));
    match kafka_call(&b.addr, ApiKey::Produce, 9, RequestKind::Produce(produce)) {
        ResponseKind::Produce(r) => assert_eq!(r.responses[0].partition_responses[0].error_code, 0),
        other => panic!("{other:?}"),
    }
    b.ok(&["group", "reset-offsets", "lagging", "--topic", "ledger", "--partition", "1", "--to", "0"]);
    let lag = |isolation: &str| {
        let d = b.json(&["group", "describe", "lagging", "--isolation", isolation]);
        (d["offsets"][0]["log_end"].as_i64(), d["offsets"][0]["lag"].as_i64())
    };
    assert_eq!(lag("read-uncommitted"), (Some(3), Some(3)));
    assert_eq!(lag("read-committed"), (Some(2), Some(2)), "the open transaction's record is not counted");
    let table = b.ok(&["group", "describe", "lagging", "--isolation", "read-committed"]);
    assert!(table.contains("LAST-STABLE"), "{table}");
}
