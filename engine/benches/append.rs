//! Append throughput for batches of 1 KiB records (16 KiB, 64 KiB, 1 MiB per batch), with no
//! fsync and with group commit (one fdatasync per MiB appended), on the default backend.
//! Set RIPTIDE_BENCH_DIR to choose the disk (default: target dir's tmp). Run with
//! `cargo bench -p riptide-engine --bench append`.

mod support;

use riptide_model::LeaderEpoch;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use riptide_engine::{Log, LogConfig};

const SYNC_EVERY_BYTES: usize = 1 << 20;

fn bench_dir(name: &str) -> std::path::PathBuf {
    let root =
        std::env::var("RIPTIDE_BENCH_DIR").map_or_else(|_| std::env::temp_dir(), std::path::PathBuf::from);
    let dir = root.join(format!("riptide-bench-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn bench_config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 << 20,
        retention_bytes: 512 << 20,
        retention_ms: -1,
        max_message_bytes: 2 << 20,
        ..LogConfig::default()
    }
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group.sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    for batch_bytes in [16 << 10, 64 << 10, 1 << 20] {
        let template = support::batch_of(batch_bytes);
        group.throughput(Throughput::Bytes(template.len() as u64));
        for fsync in [false, true] {
            let name = if fsync { "group_commit_fsync_per_mib" } else { "no_fsync" };
            let dir = bench_dir(&format!("append-{batch_bytes}-{fsync}"));
            let mut log = Log::open(&dir, bench_config(), 0).expect("open");
            let mut buf = template.clone();
            let sync_every = (SYNC_EVERY_BYTES / template.len()).max(1) as u64;
            group.bench_function(BenchmarkId::new(name, batch_bytes), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for i in 0..iters {
                        log.append(&mut buf, LeaderEpoch(0), 1_700_000_000_000).expect("append");
                        if fsync && (i + 1) % sync_every == 0 {
                            log.sync().expect("sync");
                        }
                    }
                    if fsync {
                        log.sync().expect("sync");
                    }
                    let elapsed = start.elapsed();
                    log.apply_retention(1_700_000_000_000).expect("retention");
                    elapsed
                })
            });
            drop(log);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
