//! Crash safety. (a) A child process appends and syncs, printing every offset acknowledged
//! as durable, and is SIGKILLed at random moments, many times over the same directory; after
//! each kill the log opens and every acknowledged record is there, intact, in order, without
//! gaps. (b) Torn and bit-flipped tails are cut, damaged or missing indexes rebuilt.
//! (c) Injected EIO and a real ENOSPC poison the log; acknowledged data survives reopening.

mod common;

use riptide_engine::TimestampAndOffset;
use riptide_model::{LeaderEpoch, Offset};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use riptide_engine::io::fault::{self, Fault};
use riptide_engine::{IoBackend, Log, LogConfig};

const CHILD_ENV: &str = "RIPTIDE_CRASH_CHILD_DIR";
const CHILD_IO_ENV: &str = "RIPTIDE_CRASH_CHILD_IO";

fn crash_config(io: IoBackend) -> LogConfig {
    LogConfig { segment_bytes: 64 * 1024, index_interval_bytes: 1024, ..config(io) }
}

/// Batch whose record values name their own offsets, so a reader can check content.
fn self_describing_batch(first_offset: i64, n: usize) -> Vec<u8> {
    let mut recs = records(n, 0, 1_000, None);
    for (i, r) in recs.iter_mut().enumerate() {
        r.value = Some(bytes::Bytes::from(format!("value-of-{}", first_offset + i as i64)));
    }
    encode(&recs, kafka_protocol::records::Compression::None)
}

/// The child: runs only when the parent sets CHILD_ENV; appends until killed. While it has
/// an even number of segments it keeps a spare segment ready (prepared inline, as a helper
/// thread would), so kills land before, during and after rolls with and without a spare.
#[test]
fn crash_child_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let io =
        if std::env::var(CHILD_IO_ENV).as_deref() == Ok("uring") { IoBackend::Uring } else { IoBackend::Std };
    let mut log = Log::open(std::path::Path::new(&dir), crash_config(io), 0).expect("child open");
    let mut out = std::io::stdout().lock();
    for i in 0..1_000_000u64 {
        let leo = log.log_end_offset();
        let n = 1 + (i % 7) as usize;
        log.append(&mut self_describing_batch(leo.0, n), LeaderEpoch(0), 1_000).expect("child append");
        if log.segment_count().is_multiple_of(2) {
            if let Some(prep) = log.prepare_segment() {
                log.segment_prepared(prep.run()).expect("child spare segment");
            }
        }
        if i % 3 == 0 {
            let durable = log.sync().expect("child sync");
            writeln!(out, "durable {durable}").expect("stdout");
            out.flush().expect("flush");
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn check_log(dir: &std::path::Path, io: IoBackend, acked: i64, seed: u64) -> i64 {
    let log =
        Log::open(dir, crash_config(io), 0).unwrap_or_else(|e| panic!("open after kill (seed {seed}): {e}"));
    let leo = log.log_end_offset();
    assert!(leo >= Offset(acked), "acknowledged {acked} but log ends at {leo} (seed {seed})");
    let bytes = read_all(&log, 0);
    let mut expected = 0i64;
    for set in decode(&bytes) {
        for r in set.records {
            assert_eq!(r.offset, expected, "gap or reorder (seed {seed})");
            let want = format!("value-of-{expected}");
            assert_eq!(r.value.as_deref(), Some(want.as_bytes()), "content (seed {seed})");
            expected += 1;
        }
    }
    assert_eq!(Offset(expected), leo);
    log.close().expect("close");
    leo.0
}

#[test]
fn sigkill_at_random_points_loses_nothing_acknowledged() {
    let dir = tmpdir("sigkill");
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
            | 1;
    eprintln!("sigkill test seed {seed}");
    let mut rng = Rng(seed);
    let exe = std::env::current_exe().expect("test binary");
    let started = Instant::now();
    let mut acked_total = 0;
    for iteration in 0..30 {
        let io = if iteration % 2 == 0 { IoBackend::Std } else { IoBackend::Uring };
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child_entry", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .env(CHILD_IO_ENV, if io == IoBackend::Uring { "uring" } else { "std" })
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut acked = -1i64;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(v) = line.strip_prefix("durable ") {
                    acked = v.trim().parse().unwrap_or(acked);
                }
            }
            acked
        });
        std::thread::sleep(Duration::from_millis(20 + rng.next() % 150));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let acked = reader.join().expect("reader");
        let leo = check_log(&dir, io, acked, seed);
        acked_total = acked_total.max(acked);
        assert!(leo >= acked_total);
    }
    assert!(acked_total > 0, "the child acknowledged something");
    eprintln!("30 kills in {:?}, {acked_total} records acknowledged", started.elapsed());
}

fn unclean_log(name: &str, batches: usize) -> (std::path::PathBuf, Vec<u64>) {
    let dir = tmpdir(name);
    let mut log = Log::open(&dir, crash_config(IoBackend::Std), 0).expect("open");
    let mut ends = Vec::new();
    for i in 0..batches {
        let leo = log.log_end_offset();
        log.append(&mut self_describing_batch(leo.0, 1 + i % 3), LeaderEpoch(0), 1_000).expect("append");
        ends.push(log.size_bytes());
    }
    log.sync().expect("sync");
    drop(log); // no clean shutdown
    (dir, ends)
}

/// Where the active segment's data ends: its file may be longer (direct writes pad the last
/// block with zeros; `RIPTIDE_LOG_IO=direct`), while closed segments are exactly their data.
fn active_data_len(dir: &std::path::Path, total: u64) -> u64 {
    let active = active_log_file(dir);
    let closed: u64 = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log") && *p != active)
        .map(|p| std::fs::metadata(p).expect("meta").len())
        .sum();
    total - closed
}

fn active_log_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("a segment")
}

#[test]
fn torn_and_bit_flipped_tails_are_truncated() {
    // Torn: the last batch is cut short.
    let (dir, ends) = unclean_log("torn", 30);
    let path = active_log_file(&dir);
    let len = active_data_len(&dir, ends[29]);
    let f = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
    f.set_len(len - 5).expect("cut");
    let log = Log::open(&dir, crash_config(IoBackend::Std), 0).expect("recover torn");
    let leo = log.log_end_offset();
    assert_eq!(leo, Offset(57), "the torn 3-record batch is dropped, the 29 before it kept");
    assert_eq!(all_offsets(&log), (0..leo.0).collect::<Vec<_>>());
    drop(log);

    // Garbage appended after the last batch (a zero-filled or random tail).
    let (dir, ends) = unclean_log("garbage", 30);
    let path = active_log_file(&dir);
    let len = active_data_len(&dir, ends[29]);
    std::fs::OpenOptions::new().write(true).open(&path).expect("open").set_len(len).expect("cut padding");
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
    f.write_all(&[0u8; 100]).expect("zeros");
    let mut log = Log::open(&dir, crash_config(IoBackend::Std), 0).expect("recover garbage");
    assert_eq!(log.log_end_offset(), Offset(60), "garbage dropped, all 30 batches kept");
    let leo = log.log_end_offset();
    log.append(&mut self_describing_batch(leo.0, 2), LeaderEpoch(0), 1_000).expect("append after recovery");
    assert_eq!(all_offsets(&log), (0..leo.0 + 2).collect::<Vec<_>>());
    drop(log);

    // Bit flip inside the third-to-last batch: it and everything after are dropped.
    let (dir, ends) = unclean_log("bitflip", 30);
    let path = active_log_file(&dir);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes.truncate(active_data_len(&dir, ends[29]) as usize);
    let seg_start = ends[29] - bytes.len() as u64;
    let flip_at = (ends[27] - 10 - seg_start) as usize;
    bytes[flip_at] ^= 0x10;
    std::fs::write(&path, &bytes).expect("write");
    let log = Log::open(&dir, crash_config(IoBackend::Std), 0).expect("recover flip");
    assert_eq!(log.size_bytes(), ends[26], "cut at the start of the damaged batch");
    let leo = log.log_end_offset();
    assert_eq!(all_offsets(&log), (0..leo.0).collect::<Vec<_>>());
}

#[test]
fn corrupt_or_missing_indexes_are_rebuilt() {
    let dir = tmpdir("indexes");
    let cfg = crash_config(IoBackend::Std);
    let mut log = Log::open(&dir, cfg.clone(), 0).expect("open");
    for i in 0..400 {
        let leo = log.log_end_offset();
        let mut b = self_describing_batch(leo.0, 3);
        b[27..35].copy_from_slice(&(1_000 + i as i64).to_be_bytes()); // baseTimestamp
        common::fix_crc(&mut b);
        log.append(&mut b, LeaderEpoch(0), 1_000).expect("append");
    }
    let leo = log.log_end_offset();
    let ts_answer = log.offset_for_timestamp(1_200).expect("ts");
    log.close().expect("close");
    let mut damaged = 0;
    for e in std::fs::read_dir(&dir).expect("dir") {
        let p = e.expect("entry").path();
        match p.extension().and_then(|x| x.to_str()) {
            Some("index") if damaged % 2 == 0 => {
                std::fs::write(&p, [0xffu8; 24]).expect("garble");
                damaged += 1;
            }
            Some("timeindex") if damaged % 2 == 1 => {
                std::fs::remove_file(&p).expect("remove");
                damaged += 1;
            }
            _ => {}
        }
    }
    assert!(damaged >= 2);
    let log = Log::open(&dir, cfg, 0).expect("reopen rebuilds");
    assert_eq!(log.log_end_offset(), leo);
    assert_eq!(all_offsets(&log), (0..leo.0).collect::<Vec<_>>());
    assert_eq!(log.offset_for_timestamp(1_200).expect("ts"), ts_answer);
    // Batch i holds timestamps 1000+i .. 1002+i at offsets 3i..3i+2: 1200 is first at 3*198+2.
    assert_eq!(ts_answer, Some(TimestampAndOffset { timestamp_ms: 1_200, offset: Offset(596) }));
}

#[test]
fn injected_eio_poisons_the_log_and_acknowledged_data_survives() {
    for (what, f) in [("write", Fault::WriteEio), ("fsync", Fault::SyncEio)] {
        let dir = tmpdir(&format!("eio-{what}"));
        let mut log = Log::open(&dir, config(IoBackend::Std), 0).expect("open");
        for _ in 0..10 {
            let leo = log.log_end_offset();
            log.append(&mut self_describing_batch(leo.0, 2), LeaderEpoch(0), 1_000).expect("append");
        }
        let acked = log.sync().expect("sync");
        fault::inject(Some(f));
        let leo = log.log_end_offset();
        let r =
            log.append(&mut self_describing_batch(leo.0, 2), LeaderEpoch(0), 1_000).and_then(|_| log.sync());
        fault::inject(None);
        let err = r.expect_err("fault surfaces");
        assert_eq!(kafka_code(&err), 56, "{what}: {err}");
        assert!(err.to_string().contains("Input/output error"), "clear message: {err}");
        assert!(log.is_failed());
        let leo = log.log_end_offset();
        assert_eq!(
            kafka_code(
                &log.append(&mut self_describing_batch(leo.0, 1), LeaderEpoch(0), 1_000)
                    .expect_err("poisoned")
            ),
            56
        );
        assert!(log.close().is_err(), "a failed log does not close cleanly");
        let log = Log::open(&dir, config(IoBackend::Std), 0).expect("reopen");
        assert!(log.log_end_offset() >= acked);
        let offsets = all_offsets(&log);
        assert_eq!(offsets, (0..log.log_end_offset().0).collect::<Vec<_>>());
    }
}

#[test]
fn real_enospc_on_a_tiny_tmpfs() {
    // One tmpfs per backend, and space given back by truncating, not only unlinking: another
    // test of this binary may fork a child at any moment, and until it execs the child holds
    // copies of our open descriptors, so an unlinked file's pages could stay allocated (a
    // loaded CI run once started the second backend on a still-full tmpfs).
    for io in BACKENDS {
        let mnt = tmpdir(&format!("enospc-mnt-{io:?}"));
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&mnt)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipping: cannot mount a tmpfs here");
            return;
        }
        let result = std::panic::catch_unwind(|| {
            let dir = mnt.join("part");
            let filler = mnt.join("filler");
            let mut log = Log::open(&dir, config(io), 0).expect("open");
            std::fs::write(&filler, vec![0u8; 700 * 1024]).expect("filler");
            let mut acked = 0;
            let err = loop {
                let leo = log.log_end_offset();
                match log
                    .append(&mut self_describing_batch(leo.0, 50), LeaderEpoch(0), 1_000)
                    .and_then(|_| log.sync())
                {
                    Ok(d) => acked = d.0,
                    Err(e) => break e,
                }
            };
            assert_eq!(kafka_code(&err), 56);
            assert!(err.to_string().contains("No space left"), "clear message: {err}");
            assert!(log.is_failed());
            drop(log);
            std::fs::OpenOptions::new()
                .write(true)
                .open(&filler)
                .and_then(|f| f.set_len(0))
                .expect("free space");
            std::fs::remove_file(&filler).expect("remove filler");
            let log = Log::open(&dir, config(io), 0).expect("reopen after ENOSPC");
            assert!(
                log.log_end_offset() >= Offset(acked) && acked > 0,
                "{io:?}: acknowledged up to {acked}, log end after reopen {}",
                log.log_end_offset()
            );
            assert_eq!(all_offsets(&log), (0..log.log_end_offset().0).collect::<Vec<_>>());
            log.delete().expect("delete");
        });
        // Lazily: a forked child of another test may still hold a descriptor on it.
        let _ = Command::new("umount").arg("-l").arg(&mnt).status();
        if let Err(p) = result {
            std::panic::resume_unwind(p);
        }
    }
}
