//! Opening a log: checkpoints, segment recovery, producer-state restore, and the bookkeeping
//! that makes the opened state durable before the first append.

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;

use super::Log;
use crate::checkpoint::{
    self, read_offset, remove_durably, topic_partition, write_atomic, CLEAN_SHUTDOWN_FILE, LOG_START_FILE,
    RECOVERY_POINT_FILE,
};
use crate::config::LogConfig;
use crate::epoch_cache::{EpochCache, LEADER_EPOCH_FILE};
use crate::error::LogError;
use crate::io::{FileHandle, Io};
use crate::producer_state::ProducerState;
use crate::recovery;
use crate::segment::{file_path, scan_batches, Segment};

pub(super) const SNAPSHOT_SUFFIX: &str = "snapshot";
/// Producer snapshots kept; older ones are deleted.
const SNAPSHOTS_KEPT: usize = 2;

impl Log {
    /// Opens (creating if missing) the partition log in `dir` and recovers it.
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<Log, LogError> {
        let config = config.sanitized();
        let io = Io::resolve(config.io)?;
        create_dir_durably(io, dir)?;
        let (topic, partition) = topic_partition(dir);
        let mut clean = io.exists(&dir.join(CLEAN_SHUTDOWN_FILE));
        let (mut epochs, epochs_ok) = match malformed_is_none(EpochCache::load(io, dir).map(Some))? {
            Some(c) => (c, true),
            None => (EpochCache::default(), false),
        };
        // A malformed checkpoint degrades to "trust nothing": a full scan rebuilds it all.
        let recovery_ck = malformed_is_none(read_offset(io, dir, RECOVERY_POINT_FILE, partition))?;
        let mut recovery_point = recovery_ck.unwrap_or(0);
        if !epochs_ok {
            clean = false;
            recovery_point = i64::MIN;
        }
        let recovery_point_known = recovery_ck.is_some() && epochs_ok;
        let log_start_ck = malformed_is_none(read_offset(io, dir, LOG_START_FILE, partition))?;
        let trust = recovery::Trust { recovery_point, recovery_point_known, log_start: log_start_ck, clean };
        let loaded = recovery::load_segments(dir, &config, io, &trust, &mut epochs, now_ms)?;
        let mut segments = loaded.segments;
        if segments.is_empty() {
            segments.push(Segment::create(io, dir, log_start_ck.unwrap_or(0).max(0), &config, now_ms)?);
            io.sync_dir(dir)?;
        }
        let mut log = Log {
            dir: dir.to_path_buf(),
            partition,
            topic,
            config,
            io,
            segments,
            log_start_offset: 0,
            recovery_point: recovery_point.max(0),
            checkpointed_recovery_point: -1,
            epochs,
            producers: ProducerState::default(),
            pending_sync: Vec::new(),
            sync_round: Cell::new(0),
            durable_snapshot: Cell::new(i64::MIN),
            checkpoint_in_flight: false,
            retention_in_flight: false,
            log_start_rewrite: false,
            compaction: Default::default(),
            dir_file: if io.is_sim() { None } else { std::fs::File::open(dir).ok().map(Arc::new) },
            failed: None,
            truncations: 0,
            target_truncations: Cell::new(0),
            truncated_to: 0,
            scratch_batches: Vec::new(),
            sealer: None,
            scratch_staged: Vec::new(),
            scan_buf: Vec::new(),
            read_hints: super::read::empty_hints(),
            log_id: super::spare::next_log_id(),
            spare: Default::default(),
            direct_refused: false,
            scratch_copy: Vec::new(),
        };
        let first_base = log.segments[0].base_offset;
        log.log_start_offset = log_start_ck.unwrap_or(first_base).clamp(first_base, log.next_offset());
        log.finish_open(loaded.rescanned || !epochs_ok, clean)?;
        Ok(log)
    }

    fn finish_open(&mut self, rescanned: bool, clean: bool) -> Result<(), LogError> {
        self.drop_segments_below_start()?;
        let leo = self.next_offset();
        self.epochs.truncate_from_end(leo);
        self.epochs.truncate_from_start(self.log_start_offset);
        self.write_epoch_checkpoint()?;
        if rescanned || !clean {
            // Whatever survived in the page cache is made durable now, so the recovery point
            // can move to the end and the next open does not rescan it.
            let files: Vec<&FileHandle> = self.segments.iter().map(|s| &s.log).collect();
            self.io.datasync_all(&files)?;
        }
        self.recovery_point = leo;
        self.write_recovery_checkpoint()?;
        self.write_log_start_checkpoint()?;
        self.load_producer_state()?;
        // A snapshot at the recovered end bounds the next open's replay to what follows it.
        self.write_producer_snapshot(true)?;
        self.scan_buf = Vec::new();
        remove_durably(self.io, &self.dir, CLEAN_SHUTDOWN_FILE)?;
        Ok(())
    }

    /// Segments that end at or below the log start (a crash during retention) are removed.
    fn drop_segments_below_start(&mut self) -> Result<(), LogError> {
        while self.segments.len() > 1 && self.segments[1].base_offset <= self.log_start_offset {
            let seg = self.segments.remove(0);
            seg.delete_files(self.io)?;
        }
        Ok(())
    }

    pub(super) fn write_recovery_checkpoint(&mut self) -> Result<(), LogError> {
        let text = checkpoint::encode_offset(&self.topic, self.partition, self.recovery_point);
        write_atomic(self.io, &self.dir, RECOVERY_POINT_FILE, text.as_bytes())?;
        self.checkpointed_recovery_point = self.recovery_point;
        Ok(())
    }

    pub(super) fn write_log_start_checkpoint(&self) -> Result<(), LogError> {
        let text = checkpoint::encode_offset(&self.topic, self.partition, self.log_start_offset);
        write_atomic(self.io, &self.dir, LOG_START_FILE, text.as_bytes())?;
        Ok(())
    }

    pub(super) fn write_epoch_checkpoint(&self) -> Result<(), LogError> {
        write_atomic(self.io, &self.dir, LEADER_EPOCH_FILE, self.epochs.encode().as_bytes())?;
        Ok(())
    }

    /// Snapshot files as (offset, name), newest first.
    fn list_snapshots(&self) -> Result<Vec<(i64, String)>, LogError> {
        Ok(list_snapshots(self.io, &self.dir)?)
    }

    /// Restores producer state from the newest usable snapshot at or below the log end and
    /// replays the idempotent batches after it; damaged or too-new snapshots are deleted.
    pub(super) fn load_producer_state(&mut self) -> Result<(), LogError> {
        let leo = self.next_offset();
        let mut from = self.log_start_offset;
        self.producers = ProducerState::default();
        for (off, name) in self.list_snapshots()? {
            let usable = off <= leo;
            let state = if usable {
                self.io.read_file(&self.dir.join(&name)).ok().and_then(|b| ProducerState::decode(&b))
            } else {
                None
            };
            match state {
                Some(s) => {
                    self.producers = s;
                    from = off.max(self.log_start_offset);
                    break;
                }
                None => remove_snapshot(self.io, &self.dir, &name)?,
            }
        }
        self.replay_producers(from)
    }

    fn replay_producers(&mut self, from: i64) -> Result<(), LogError> {
        let mut buf = std::mem::take(&mut self.scan_buf);
        let first = self.segment_index_for(from);
        for i in first..self.segments.len() {
            let seg = &self.segments[i];
            let start = match seg.find_batch(self.io, from)? {
                Some((pos, _)) => pos,
                None => continue,
            };
            let producers = &mut self.producers;
            scan_batches(self.io, &seg.log, start, seg.size_bytes, &mut buf, |_, bytes| {
                // Checked: bytes of trusted segments were not validated at open.
                if let Ok(h) = crate::batch::check_stored(bytes) {
                    if h.base_offset >= from {
                        super::track_producer(producers, &h, bytes);
                    }
                }
                Ok(true)
            })?;
        }
        self.scan_buf = buf;
        Ok(())
    }

    /// Writes the producer snapshot for the current log end and prunes old snapshots.
    /// Writes the producer state at the log end. `durable` (close, open): fsynced and in the
    /// directory for sure. Otherwise (roll) without waiting for the disk, returning the file for
    /// the next group commit to sync: a snapshot lost or torn by a power loss before that fails
    /// its checksum or names an offset past the recovered end, and is skipped. Older snapshots
    /// are pruned only below the newest one known durable, so one always survives.
    pub(super) fn write_producer_snapshot(&mut self, durable: bool) -> Result<Option<FileHandle>, LogError> {
        let leo = self.next_offset();
        self.producers.prune_aborted(self.log_start_offset);
        let name = file_path(Path::new(""), leo, SNAPSHOT_SUFFIX);
        let name = name.to_string_lossy();
        let pending = if durable {
            write_atomic(self.io, &self.dir, &name, &self.producers.encode())?;
            self.durable_snapshot.set(leo);
            None
        } else {
            let bytes = self.producers.encode();
            // The spare's snapshot file, created off the owner's thread, saves the create
            // (an inode allocation: the slowest call left in a roll, ~0.3 ms under fsync load).
            match self.take_spare_snapshot() {
                Some((file, spare)) => {
                    self.io.write_all_at(&file, &bytes, 0)?;
                    self.io.rename(&spare, &self.dir.join(&*name))?;
                    Some(file)
                }
                None => Some(crate::checkpoint::write_replacing(self.io, &self.dir, &name, &bytes)?),
            }
        };
        // A log whose owner prepares spare segments leaves a roll's pruning to the next
        // preparation, on its helper thread (`spare.rs`): the unlink is the slowest call of a roll.
        if durable || !self.spare.prunes_snapshots() {
            prune_snapshots(self.io, &self.dir, self.durable_snapshot.get())?;
        }
        Ok(pending)
    }

    /// Deletes snapshots for offsets above `offset` (around a truncation), durably: a stale
    /// snapshot that came back after a power loss would describe producers of batches that
    /// were truncated away, and a retried batch would be appended twice (simulator, seed 29).
    pub(super) fn delete_snapshots_above(&self, offset: i64) -> Result<(), LogError> {
        let mut removed = false;
        for (off, name) in self.list_snapshots()? {
            if off > offset {
                remove_snapshot(self.io, &self.dir, &name)?;
                removed = true;
            }
        }
        if removed {
            self.io.sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Snapshot files in `dir` as (offset, name), newest first.
fn list_snapshots(io: Io, dir: &Path) -> std::io::Result<Vec<(i64, String)>> {
    let mut out = Vec::new();
    for name in io.list_dir(dir)? {
        if let Some(stem) = name.strip_suffix(".snapshot") {
            if let Ok(off) = stem.parse::<i64>() {
                out.push((off, name));
            }
        }
    }
    out.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
    Ok(out)
}

/// Removes the snapshots older than the newest `SNAPSHOTS_KEPT` and below `keep_from` (the
/// newest known durable, so one always survives a power loss). May run on a helper thread
/// (`spare.rs`) while the owner writes newer snapshots: it never touches those.
pub(super) fn prune_snapshots(io: Io, dir: &Path, keep_from: i64) -> std::io::Result<()> {
    for (off, old) in list_snapshots(io, dir)?.into_iter().skip(SNAPSHOTS_KEPT) {
        if off < keep_from {
            remove_snapshot(io, dir, &old)?;
        }
    }
    Ok(())
}

/// Removes a snapshot file; one already gone counts as removed (pruning on a helper thread and
/// the owner may both pick the same old snapshot).
fn remove_snapshot(io: Io, dir: &Path, name: &str) -> std::io::Result<()> {
    match io.remove_file(&dir.join(name)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// A checkpoint read: malformed contents count as never written (the caller degrades safely),
/// but a failed read fails the open. Treating an EIO like a missing file let a transient read
/// error on the log-start checkpoint bring deleted segments back (simulator, seed 1863).
fn malformed_is_none<T>(r: std::io::Result<Option<T>>) -> Result<Option<T>, LogError> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Ok(None),
        r => Ok(r?),
    }
}

/// Creates `dir` and any missing ancestors, fsyncing the parent of every directory created,
/// and the parent of `dir` on every open. Found by the simulator: fsyncing only the last
/// parent let a power loss undo a freshly created ancestor and with it the whole log (seed 1);
/// and after a failed parent fsync the next open saw the directory and skipped the fsync, so
/// a power loss later removed the directory with acknowledged data in it (seed 117).
fn create_dir_durably(io: Io, dir: &Path) -> Result<(), LogError> {
    let mut created: Vec<&Path> =
        dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !io.is_dir(d)).collect();
    if created.is_empty() {
        created.push(dir);
    } else {
        io.create_dir_all(dir)?;
    }
    // Outermost first, so each fsynced entry hangs from a durable directory.
    for d in created.iter().rev() {
        if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            io.sync_dir(parent)?;
        }
    }
    Ok(())
}
