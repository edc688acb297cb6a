//! Long-running storage-engine benchmark (release build):
//!
//! `cargo run --release -p riptide-engine --example engine_bench -- --dir /work/bench --gib 1`
//!
//! For batches of 1 KiB records (16 KiB, 64 KiB, 1 MiB per batch) it measures append
//! throughput without fsync and with group commit (one fdatasync per MiB), the latency of
//! append-until-durable (append + fdatasync per batch; hdrhistogram p50/p99/p99.9/max), then
//! sequential read throughput (1 MiB fetches copied out with pread) and the time to recover
//! (reopen after an unclean stop) a 1 GiB log, with a warm and, with --drop-caches, a cold
//! page cache. Options: --dir PATH, --gib N (data per throughput run), --seconds N (per
//! latency run), --recovery-gib N, --io std|uring|auto, --drop-caches, --only NAME.

use riptide_model::{LeaderEpoch, Offset};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use riptide_engine::{IoBackend, Log, LogConfig};

const MIB: u64 = 1 << 20;
const NOW_MS: i64 = 1_700_000_000_000;

struct Args {
    dir: PathBuf,
    gib: f64,
    seconds: u64,
    recovery_gib: f64,
    io: IoBackend,
    drop_caches: bool,
    only: Option<String>,
    batch_kib: Option<usize>,
}

fn parse_args() -> Args {
    let mut a = Args {
        dir: std::env::temp_dir().join("riptide-engine-bench"),
        gib: 1.0,
        seconds: 10,
        recovery_gib: 1.0,
        io: IoBackend::Auto,
        drop_caches: false,
        only: None,
        batch_kib: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => a.dir = PathBuf::from(value()),
            "--gib" => a.gib = value().parse().expect("--gib number"),
            "--seconds" => a.seconds = value().parse().expect("--seconds number"),
            "--recovery-gib" => a.recovery_gib = value().parse().expect("--recovery-gib number"),
            "--io" => {
                a.io = match value().as_str() {
                    "std" => IoBackend::Std,
                    "uring" => IoBackend::Uring,
                    _ => IoBackend::Auto,
                }
            }
            "--drop-caches" => a.drop_caches = true,
            "--only" => a.only = Some(value()),
            "--batch-kib" => a.batch_kib = Some(value().parse().expect("--batch-kib number")),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn batch_of(batch_bytes: usize) -> Vec<u8> {
    let n = (batch_bytes / 1024).max(1);
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1 + i as i32,
            timestamp: NOW_MS + i as i64,
            key: None,
            value: Some(Bytes::from(vec![(i % 251) as u8; 1024])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions { version: 2, compression: Compression::None },
    )
    .expect("encode");
    buf.to_vec()
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let d = dir.join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn config(a: &Args) -> LogConfig {
    LogConfig { retention_ms: -1, max_message_bytes: 2 << 20, io: a.io, ..LogConfig::default() }
}

fn mb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

/// Appends `total` bytes of `batch_bytes` batches; fdatasync every `sync_every_bytes` (0 = never).
fn throughput(a: &Args, batch_bytes: usize, sync_every_bytes: u64) -> f64 {
    let dir = fresh(&a.dir, "throughput");
    let mut log = Log::open(&dir, config(a), NOW_MS).expect("open");
    let mut batch = batch_of(batch_bytes);
    let total = (a.gib * 1024.0 * MIB as f64) as u64;
    let per_sync =
        if sync_every_bytes == 0 { u64::MAX } else { (sync_every_bytes / batch.len() as u64).max(1) };
    let start = Instant::now();
    let (mut written, mut n) = (0u64, 0u64);
    while written < total {
        log.append(&mut batch, LeaderEpoch(0), NOW_MS).expect("append");
        written += batch.len() as u64;
        n += 1;
        if n % per_sync == 0 {
            log.sync().expect("sync");
        }
    }
    if sync_every_bytes > 0 {
        log.sync().expect("sync");
    }
    let elapsed = start.elapsed();
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
    mb_s(written, elapsed)
}

/// Append + sync per batch for `seconds`: latency histogram (µs) and throughput.
fn durable_latency(a: &Args, batch_bytes: usize) -> (Histogram<u64>, f64) {
    let dir = fresh(&a.dir, "latency");
    let mut log = Log::open(&dir, config(a), NOW_MS).expect("open");
    let mut batch = batch_of(batch_bytes);
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let start = Instant::now();
    let mut written = 0u64;
    while Instant::now() < deadline {
        let t = Instant::now();
        log.append(&mut batch, LeaderEpoch(0), NOW_MS).expect("append");
        log.sync().expect("sync");
        h.saturating_record(t.elapsed().as_micros() as u64);
        written += batch.len() as u64;
    }
    let tput = mb_s(written, start.elapsed());
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
    (h, tput)
}

fn fill(dir: &Path, a: &Args, bytes: u64, segment_bytes: u64) -> Log {
    let cfg = LogConfig { segment_bytes, ..config(a) };
    let mut log = Log::open(dir, cfg, NOW_MS).expect("open");
    let mut batch = batch_of(64 << 10);
    while log.size_bytes() < bytes {
        log.append(&mut batch, LeaderEpoch(0), NOW_MS).expect("append");
    }
    log.sync().expect("sync");
    log
}

fn read_throughput(a: &Args) -> (f64, u64) {
    let dir = fresh(&a.dir, "read");
    let log = fill(&dir, a, (a.gib * 1024.0 * MIB as f64) as u64, 1 << 30);
    // Page-aligned destination, as fio uses (the source is wherever the batch sits).
    let mut backing = vec![0u8; 2 * MIB as usize + 4096];
    let skew = backing.as_ptr().align_offset(4096);
    let buf = &mut backing[skew..skew + 2 * MIB as usize];
    let mut best = 0.0f64;
    for _ in 0..3 {
        let start = Instant::now();
        let (mut offset, mut bytes) = (log.log_start_offset(), 0u64);
        let end = log.log_end_offset();
        while offset < end {
            let s = log.read(offset, MIB as u32, end, true).expect("read");
            let out = &mut buf[..s.len as usize];
            s.read_into(out).expect("pread");
            bytes += u64::from(s.len);
            offset = Offset(next_offset(out));
        }
        best = best.max(mb_s(bytes, start.elapsed()));
    }
    let size = log.size_bytes();
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
    (best, size)
}

fn next_offset(bytes: &[u8]) -> i64 {
    let (mut pos, mut next) = (0usize, 0i64);
    while pos + 61 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().expect("8"));
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().expect("4")) as usize;
        let delta = i32::from_be_bytes(bytes[pos + 23..pos + 27].try_into().expect("4"));
        next = base + i64::from(delta) + 1;
        pos += len + 12;
    }
    next
}

/// Unclean stop of a `gib` log in one segment, then timed reopens (full rescan each time).
fn recovery(a: &Args) -> Vec<(String, Duration)> {
    let dir = fresh(&a.dir, "recovery");
    let bytes = (a.recovery_gib * 1024.0 * MIB as f64) as u64;
    let log = fill(&dir, a, bytes, (bytes + 64 * MIB).min(i32::MAX as u64));
    let leo = log.log_end_offset();
    drop(log); // no close: the next open must scan and validate the whole active segment
    let mut out = Vec::new();
    let mut modes = vec!["warm page cache"];
    if a.drop_caches {
        modes.push("cold page cache");
    }
    for mode in modes {
        let _ = std::fs::remove_file(dir.join("recovery-point-offset-checkpoint"));
        if mode.starts_with("cold") {
            let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
        }
        let start = Instant::now();
        let log = Log::open(&dir, config(a), NOW_MS).expect("recover");
        out.push((mode.to_string(), start.elapsed()));
        assert_eq!(log.log_end_offset(), leo);
    }
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn wants(a: &Args, name: &str) -> bool {
    a.only.as_deref().is_none_or(|o| o == name)
}

fn main() {
    let a = parse_args();
    std::fs::create_dir_all(&a.dir).expect("bench dir");
    let probe = Log::open(&fresh(&a.dir, "probe"), config(&a), NOW_MS).expect("open");
    println!(
        "engine_bench: dir {} backend {:?} gib {} seconds {}",
        a.dir.display(),
        probe.io_backend(),
        a.gib,
        a.seconds
    );
    drop(probe);
    let sizes: Vec<usize> = a.batch_kib.map_or(vec![16 << 10, 64 << 10, 1 << 20], |k| vec![k << 10]);
    for bs in sizes {
        let actual = batch_of(bs).len();
        if wants(&a, "append") || wants(&a, "append-nofsync") {
            let t = throughput(&a, bs, 0);
            println!("append batch {:>5} KiB ({actual} B): no fsync {t:>8.1} MiB/s", bs >> 10);
        }
        if wants(&a, "append") || wants(&a, "append-gc") {
            let t = throughput(&a, bs, MIB);
            println!(
                "append batch {:>5} KiB ({actual} B): group commit (fdatasync per MiB) {t:>8.1} MiB/s",
                bs >> 10
            );
        }
        if wants(&a, "latency") {
            let (h, tput) = durable_latency(&a, bs);
            println!(
                "append-until-durable batch {:>5} KiB: n {} p50 {} us p99 {} us p99.9 {} us max {} us; {:.1} MiB/s",
                bs >> 10,
                h.len(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max(),
                tput
            );
        }
    }
    if wants(&a, "read") {
        let (tput, size) = read_throughput(&a);
        println!("sequential read ({} MiB log, 1 MiB fetches + pread): {tput:.1} MiB/s", size / MIB);
    }
    if wants(&a, "recovery") {
        for (mode, d) in recovery(&a) {
            let mib = a.recovery_gib * 1024.0;
            println!(
                "recovery of a {mib:.0} MiB unclean log ({mode}): {:.3} s ({:.0} MiB/s)",
                d.as_secs_f64(),
                mib / d.as_secs_f64()
            );
        }
    }
}
