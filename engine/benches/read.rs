//! Sequential read throughput: `Log::read` slices of up to 1 MiB, each copied out with pread
//! (what a fetch does before sendfile/splice), over a 256 MiB log in the page cache.

mod support;

use riptide_model::{LeaderEpoch, Offset};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use riptide_engine::{Log, LogConfig};

const LOG_BYTES: usize = 256 << 20;

fn read(c: &mut Criterion) {
    let root =
        std::env::var("RIPTIDE_BENCH_DIR").map_or_else(|_| std::env::temp_dir(), std::path::PathBuf::from);
    let dir = root.join("riptide-bench-read");
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = LogConfig { retention_ms: -1, ..LogConfig::default() };
    let mut log = Log::open(&dir, cfg, 0).expect("open");
    let mut batch = support::batch_of(64 << 10);
    while (log.size_bytes() as usize) < LOG_BYTES {
        log.append(&mut batch, LeaderEpoch(0), 1_700_000_000_000).expect("append");
    }
    log.sync().expect("sync");
    let total = log.size_bytes();
    let mut group = c.benchmark_group("read");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Bytes(total));
    let mut buf = vec![0u8; 2 << 20];
    group.bench_function("sequential_1MiB_fetches_256MiB_log", |b| {
        b.iter(|| {
            let (mut offset, mut bytes) = (0i64, 0u64);
            let end = log.log_end_offset();
            while offset < end.0 {
                let s = log.read(Offset(offset), 1 << 20, end, true).expect("read");
                let out = &mut buf[..s.len as usize];
                s.read_into(out).expect("pread");
                bytes += u64::from(s.len);
                offset = next_offset(out);
            }
            assert_eq!(bytes, total);
        })
    });
    group.finish();
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Offset after the last batch in `bytes` (walks the batch headers).
fn next_offset(bytes: &[u8]) -> i64 {
    let mut pos = 0;
    let mut next = 0;
    while pos + 61 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().expect("8"));
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().expect("4")) as usize;
        let delta = i32::from_be_bytes(bytes[pos + 23..pos + 27].try_into().expect("4"));
        next = base + i64::from(delta) + 1;
        pos += len + 12;
    }
    next
}

criterion_group!(benches, read);
criterion_main!(benches);
