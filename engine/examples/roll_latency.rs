//! How long a shard's thread is held by the append that rolls a segment (issue 22), with and
//! without spare segments prepared on a helper thread:
//!
//! `cargo run --release -p riptide-engine --example roll_latency -- --dir /work/bench --seconds 20`
//!
//! One thread drives 16 logs as a shard does: 2 KiB batches round-robin, 256 KiB segments (a
//! roll every 128 appends per log), group commits back to back on a flusher thread (the
//! owner takes each log's `sync_target`, the flusher fdatasyncs it, the owner marks it
//! durable), retention of all but the last 4 segments with its unlinks and checkpoints on a
//! helper thread. With `--spare` (the default runs both) each log's next segment is created by
//! a preparer thread before its roll. Prints the duration (hdrhistogram, µs) of appends that
//! rolled onto a spare, of those that rolled without one (creating the files), of those that
//! did not roll, and of taking the group commit's targets.
//!
//! `--compaction inline|helper` (issue 22) makes the topic compacted as well (`compact,delete`,
//! records keyed over 64 keys per log): every 500 ms each log gets a compaction pass, run
//! on the owner's thread as before (`inline`, `Log::compact`) or as a `CompactionJob` on the
//! helper thread (`helper`, one batch of passes at a time, as the server's shards do).
//! "owner loop turn" is how long the owner's thread was away between two appends: what
//! every partition of a shard waits when the thread is held.

use riptide_model::{LeaderEpoch, Offset};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use riptide_engine::{
    CheckpointWrite, CompactionDone, CompactionJob, IoBackend, Log, LogConfig, PreparedSegment,
    RetentionWrite, SegmentPrep, SyncTarget,
};

const LOGS: usize = 16;
const NOW_MS: i64 = 1_700_000_000_000;

fn batch(key: Option<usize>) -> Vec<u8> {
    let records: Vec<Record> = (0..2)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: -1,
            timestamp: NOW_MS,
            key: key.map(|k| Bytes::from(format!("key-{k}-{i}"))),
            value: Some(Bytes::from(vec![7u8; 1000])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, &records, &opts).expect("encode");
    buf.to_vec()
}

enum Job {
    Prep(usize, SegmentPrep),
    Retention(usize, RetentionWrite),
    Checkpoint(usize, CheckpointWrite),
    Sync(Vec<(usize, SyncTarget)>),
    Compact(Vec<(usize, CompactionJob)>),
    /// Segments compaction replaced: their last close frees the unlinked inodes.
    Drop(riptide_engine::ReplacedSegments),
}

enum Done {
    Prep(usize, PreparedSegment),
    Retention(usize, std::io::Result<()>),
    Checkpoint(usize, CheckpointWrite, std::io::Result<()>),
    Synced(Vec<(usize, i64)>),
    Compacted(Vec<(usize, CompactionDone)>),
}

/// Where compaction runs (`--compaction`), if at all.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Compaction {
    Off,
    Inline,
    Helper,
}

fn fsync_target(t: &SyncTarget) -> std::io::Result<()> {
    for f in &t.files {
        f.sync_data()?;
    }
    t.dir.as_ref().map_or(Ok(()), |d| d.sync_all())
}

fn helper(jobs: mpsc::Receiver<Job>, done: mpsc::Sender<Done>) {
    for job in jobs {
        let d = match job {
            Job::Prep(i, p) => Done::Prep(i, p.run()),
            Job::Retention(i, w) => Done::Retention(i, w.write()),
            Job::Checkpoint(i, w) => {
                let r = w.write();
                Done::Checkpoint(i, w, r)
            }
            Job::Drop(replaced) => {
                drop(replaced);
                continue;
            }
            Job::Compact(jobs) => Done::Compacted(jobs.into_iter().map(|(i, j)| (i, j.run())).collect()),
            Job::Sync(targets) => Done::Synced(
                targets
                    .into_iter()
                    .map(|(i, t)| {
                        fsync_target(&t).expect("fdatasync");
                        (i, t.up_to_offset.0)
                    })
                    .collect(),
            ),
        };
        if done.send(d).is_err() {
            return;
        }
    }
}

fn run(dir: &std::path::Path, io: IoBackend, seconds: u64, spare: bool, compaction: Compaction) {
    let cfg = LogConfig { segment_bytes: 256 << 10, retention_bytes: 1 << 20, io, ..LogConfig::default() };
    // Compaction needs sealed segments below the log end to work on: keep more of them.
    let cfg = if compaction == Compaction::Off { cfg } else { LogConfig { retention_bytes: 4 << 20, ..cfg } };
    let mut logs: Vec<Log> = (0..LOGS)
        .map(|i| {
            let d = dir.join(format!("t-{i}"));
            let _ = std::fs::remove_dir_all(&d);
            Log::open(&d, cfg.clone(), NOW_MS).expect("open")
        })
        .collect();
    let (job_tx, job_rx) = mpsc::channel();
    let (sync_tx, sync_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let (prep_tx, prep_rx) = mpsc::channel();
    let (done_tx2, done_tx3) = (done_tx.clone(), done_tx.clone());
    let worker = std::thread::spawn(move || helper(job_rx, done_tx));
    let flusher = std::thread::spawn(move || helper(sync_rx, done_tx2));
    // Spares on their own thread, as the server's preparer runs apart from retention's writes.
    let done_tx3_prep = done_tx3.clone();
    let preparer = std::thread::spawn(move || helper(prep_rx, done_tx3_prep));
    let mut syncing = false;
    let templates: Vec<Vec<u8>> = match compaction {
        Compaction::Off => vec![batch(None)],
        _ => (0..64).map(|k| batch(Some(k))).collect(),
    };
    let (compactor_tx, compactor_rx) = mpsc::channel();
    let done_tx4 = done_tx3.clone();
    let compactor = std::thread::spawn(move || helper(compactor_rx, done_tx4));
    let (mut compacting, mut last_compaction) = (false, Instant::now());
    let new_hist = || Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("histogram");
    let (mut rolled, mut plain, mut commits) = (new_hist(), new_hist(), new_hist());
    let mut rolled_bare = new_hist();
    let (mut turns, mut passes, mut installs) = (new_hist(), 0u64, new_hist());
    let mut turn_started = Instant::now();
    let started = Instant::now();
    let mut n = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        for d in done_rx.try_iter() {
            match d {
                Done::Prep(i, p) => logs[i].segment_prepared(p).expect("spare"),
                Done::Retention(i, r) => logs[i].retention_done(r).expect("retention"),
                Done::Checkpoint(i, w, r) => logs[i].checkpoint_done(&w, r).expect("checkpoint"),
                Done::Compacted(done) => {
                    compacting = false;
                    for (i, d) in done {
                        let t = Instant::now();
                        passes += logs[i].compaction_done(d).expect("compaction").segments_rewritten as u64;
                        installs.record((t.elapsed().as_micros() as u64).max(1)).expect("record");
                        let replaced = logs[i].take_replaced_segments();
                        if compaction == Compaction::Helper {
                            compactor_tx.send(Job::Drop(replaced)).expect("compactor");
                        }
                    }
                }
                Done::Synced(done) => {
                    syncing = false;
                    for (i, up_to) in done {
                        if let Some(w) = logs[i].mark_durable(Offset(up_to)).expect("mark durable") {
                            job_tx.send(Job::Checkpoint(i, w)).expect("helper");
                        }
                    }
                }
            }
        }
        if !syncing {
            let t = Instant::now();
            let targets: Vec<(usize, SyncTarget)> =
                logs.iter_mut().enumerate().filter_map(|(i, l)| l.sync_target().map(|t| (i, t))).collect();
            commits.record((t.elapsed().as_micros() as u64).max(1)).expect("record");
            if !targets.is_empty() {
                syncing = true;
                sync_tx.send(Job::Sync(targets)).expect("flusher");
            }
        }
        if compaction != Compaction::Off && last_compaction.elapsed() >= Duration::from_millis(500) {
            last_compaction = Instant::now();
            if compaction == Compaction::Inline {
                for log in logs.iter_mut() {
                    passes += log.compact(NOW_MS, 86_400_000).expect("compact").segments_rewritten as u64;
                }
            } else if !compacting {
                let jobs: Vec<_> = logs
                    .iter_mut()
                    .enumerate()
                    .filter_map(|(i, l)| l.compaction_job(NOW_MS, 86_400_000).map(|j| (i, j)))
                    .collect();
                compacting = !jobs.is_empty();
                if compacting {
                    compactor_tx.send(Job::Compact(jobs)).expect("compactor");
                }
            }
        }
        turns.record((turn_started.elapsed().as_micros() as u64).max(1)).expect("record");
        turn_started = Instant::now();
        let i = n % LOGS;
        let log = &mut logs[i];
        let segments = log.segment_count();
        let had_spare = log.has_spare_segment();
        let mut b = templates[(n / LOGS) % templates.len()].clone();
        let t = Instant::now();
        log.append(&mut b, LeaderEpoch(0), NOW_MS).expect("append");
        let us = t.elapsed().as_micros() as u64;
        if log.segment_count() > segments && had_spare {
            rolled.record(us.max(1)).expect("record");
        } else if log.segment_count() > segments {
            rolled_bare.record(us.max(1)).expect("record");
        } else {
            plain.record(us.max(1)).expect("record");
        }
        if spare {
            if let Some(p) = log.prepare_segment() {
                prep_tx.send(Job::Prep(i, p)).expect("preparer");
            }
        }
        if let (_, Some(w)) = log.apply_retention_deferred(NOW_MS).expect("retention") {
            job_tx.send(Job::Retention(i, w)).expect("helper");
        }
        n += 1;
    }
    drop((job_tx, sync_tx, prep_tx, compactor_tx));
    compactor.join().expect("compactor thread");
    worker.join().expect("helper thread");
    preparer.join().expect("preparer thread");
    flusher.join().expect("flusher thread");
    let line = |name: &str, h: &Histogram<u64>| {
        println!(
            "  {name:<22} n={:>7} p50={:>6} p99={:>6} p99.9={:>6} max={:>6} µs",
            h.len(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        );
    };
    println!(
        "{io:?}, spare segments {}, compaction {compaction:?} ({passes} segments rewritten):",
        if spare { "on" } else { "off" }
    );
    line("roll onto a spare", &rolled);
    line("roll creating files", &rolled_bare);
    line("append (no roll)", &plain);
    line("sync_target (16 logs)", &commits);
    line("owner loop turn", &turns);
    line("compaction_done", &installs);
    for log in logs {
        log.close().expect("close");
    }
}

fn main() {
    let mut dir = std::env::temp_dir().join("riptide-roll-latency");
    let (mut seconds, mut io, mut modes) = (10, IoBackend::Auto, vec![false, true]);
    let mut compaction = Compaction::Off;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = PathBuf::from(args.next().expect("--dir PATH")),
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).expect("--seconds N"),
            "--io" => {
                io = match args.next().as_deref() {
                    Some("std") => IoBackend::Std,
                    Some("uring") => IoBackend::Uring,
                    _ => IoBackend::Auto,
                }
            }
            "--spare" => modes = vec![true],
            "--no-spare" => modes = vec![false],
            "--compaction" => {
                compaction = match args.next().as_deref() {
                    Some("inline") => Compaction::Inline,
                    Some("helper") => Compaction::Helper,
                    _ => panic!("--compaction inline|helper"),
                }
            }
            other => panic!("unknown argument {other}"),
        }
    }
    for spare in modes {
        run(&dir, io, seconds, spare, compaction);
    }
}
