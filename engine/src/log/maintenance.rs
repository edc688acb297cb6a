//! Segment lifecycle: rolling, retention (whole segments by time and size, advancing the log
//! start), truncation for replication, and clean close/delete.

use super::{Log, Pending};
use crate::checkpoint::{write_atomic, CLEAN_SHUTDOWN_FILE};
use crate::error::LogError;
use crate::segment::Segment;
use riptide_model::Offset;

impl Log {
    /// Rolls the active segment if it is older than segment.ms (appends also roll on size).
    pub fn maybe_roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        self.check_writable()?;
        let seg = self.active();
        if !seg.is_empty() && now_ms.saturating_sub(seg.roll_base_ms) >= self.config.segment_ms {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// Closes the active segment (final time-index entry, trimmed index files) and starts a
    /// new one at the log end (the spare segment renamed, when one was prepared; see
    /// `spare.rs`), with a producer-state snapshot for that offset. Nothing here
    /// waits for the disk: the closed segment's files and the directory entry of the new one are
    /// queued for the next group commit, which makes them durable before any offset at or above
    /// the roll is (so a power loss cannot keep data of the new segment without the directory
    /// entry, and recovery drops a new segment whose predecessor lost its tail). The snapshot
    /// is written without fsync: it is checksummed and only shortens recovery. Any failure
    /// poisons the log.
    pub(super) fn roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        let leo = self.next_offset();
        let io = self.io;
        if let Err(e) = self.active_mut().detach_direct() {
            return Err(self.fail("direct write on roll", e));
        }
        let active = self.active_mut();
        active.seal();
        let indexes = match active.persist_indexes(io, false) {
            Ok(files) => files,
            Err(e) => return Err(self.fail("index write on roll", e)),
        };
        active.release_index_files();
        let file = self.active().log.clone();
        self.queue_sync(Pending::File(file), leo);
        for f in indexes {
            self.queue_sync(Pending::File(f), leo);
        }
        match self.next_segment(leo, now_ms) {
            Ok(s) => self.segments.push(s),
            Err(e) => return Err(self.fail("segment creation", e)),
        }
        self.queue_sync(Pending::Dir, leo);
        match self.write_producer_snapshot(false) {
            Ok(Some(f)) => self.queue_sync(Pending::Snapshot(f, leo), leo),
            Ok(None) => {}
            Err(e) => return Err(self.fail_with("producer snapshot", e)),
        }
        Ok(())
    }

    /// Deletes the oldest segments (never the active one) whose newest timestamp is older
    /// than retention.ms, or while the log exceeds retention.bytes, or that lie wholly
    /// below the log start offset. Returns how many were deleted. Blocking: see
    /// `apply_retention_deferred` for the form that leaves the file work to the caller.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        let (deleted, write) = self.apply_retention_deferred(now_ms)?;
        if let Some(w) = write {
            let result = w.write();
            self.retention_done(result)?;
        }
        Ok(deleted)
    }

    /// Retention without touching the disk: the segments leave the log and the log start moves
    /// at once (reads below it get OFFSET_OUT_OF_RANGE); the returned [`RetentionWrite`] makes
    /// the new log start durable and then unlinks the files, on whatever thread the caller
    /// likes; report it with `retention_done`. One at a time: while one is out this does
    /// nothing. A crash before it ran brings the segments back (retention is at least, not at
    /// most); after its checkpoint, recovery drops what is left of them unread.
    pub fn apply_retention_deferred(
        &mut self,
        now_ms: i64,
    ) -> Result<(usize, Option<RetentionWrite>), LogError> {
        self.check_writable()?;
        // While a compaction pass is out, the segments it rewrites must stay: retention waits
        // for the next check (it is "at least", never "exactly at" retention.ms).
        if self.retention_in_flight || self.compaction.in_flight {
            return Ok((0, None));
        }
        let mut total = self.size_bytes();
        let mut deleted = 0;
        while deleted + 1 < self.segments.len() && self.segment_expired(deleted, total, now_ms) {
            total -= u64::from(self.segments[deleted].size_bytes);
            deleted += 1;
        }
        if deleted == 0 {
            return Ok((0, None));
        }
        // The new log start is durable before any file goes (`RetentionWrite::write`), so
        // recovery drops whatever a power loss leaves of the deleted segments. Deleting first
        // let a crash undo some unlinks and not others, leaving a hole in the middle of the log
        // (simulator, seed 110).
        let new_start = self.segments[deleted].base_offset;
        self.advance_log_start(new_start);
        let mut segments = Vec::new();
        for seg in self.segments.drain(..deleted).collect::<Vec<_>>() {
            self.pending_sync.retain(|p| !matches!(&p.what, Pending::File(f) if f.same_file(&seg.log)));
            segments.push((seg.log.clone(), seg.file_paths()));
        }
        self.retention_in_flight = true;
        let log_start = crate::checkpoint::encode_offset(&self.topic, self.partition, self.log_start_offset);
        let dir = self.dir.clone();
        let write = RetentionWrite { io: self.io, dir, log_start: log_start.into_bytes(), segments };
        Ok((deleted, Some(write)))
    }

    /// Records the outcome of a `RetentionWrite`; a failure poisons the log. A log start moved
    /// by `delete_records` while the write was out is written again: the write carried the
    /// older value.
    pub fn retention_done(&mut self, result: std::io::Result<()>) -> Result<(), LogError> {
        self.retention_in_flight = false;
        result.map_err(|e| self.fail("retention", e))?;
        if std::mem::take(&mut self.log_start_rewrite) {
            let r = self.write_log_start_checkpoint();
            r.map_err(|e| self.fail_with("log start checkpoint", e))?;
        }
        Ok(())
    }

    /// Kafka's DeleteRecords on this log: the log start moves up to `offset` (never down, never
    /// past the log end; the caller checks the high watermark), reads below it get
    /// OFFSET_OUT_OF_RANGE, and the segments wholly below it go with the next retention check.
    /// Durable when this returns: the log start checkpoint is written (temp, fsync, rename)
    /// before, where Kafka writes it only periodically. A retention write still out carries an
    /// older value and is followed by a rewrite (`retention_done`); a crash between the two
    /// brings back the records in between. A failed write poisons the log.
    pub fn delete_records(&mut self, offset: Offset) -> Result<Offset, LogError> {
        self.check_writable()?;
        let offset = offset.0;
        if offset > self.next_offset() || offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset: Offset(offset),
                log_start_offset: Offset(self.log_start_offset),
                log_end_offset: Offset(self.next_offset()),
            });
        }
        if offset <= self.log_start_offset {
            return Ok(Offset(self.log_start_offset));
        }
        self.advance_log_start(offset);
        self.producers.prune_aborted(offset);
        if self.retention_in_flight {
            self.log_start_rewrite = true;
        }
        let r = self.write_log_start_checkpoint();
        r.map_err(|e| self.fail_with("log start checkpoint", e))?;
        debug_assert_eq!(self.log_start_offset, offset);
        Ok(Offset(self.log_start_offset))
    }

    /// Whether segment `i` (all before it being deleted too) is due for deletion.
    fn segment_expired(&self, i: usize, total_bytes: u64, now_ms: i64) -> bool {
        let seg = &self.segments[i];
        let below_start =
            self.segments.get(i + 1).is_some_and(|next| next.base_offset <= self.log_start_offset);
        let newest_ms = if seg.max_timestamp_ms >= 0 { seg.max_timestamp_ms } else { seg.last_modified_ms };
        let by_time =
            self.config.retention_ms >= 0 && now_ms.saturating_sub(newest_ms) > self.config.retention_ms;
        let by_size = self.config.retention_bytes >= 0
            && total_bytes.saturating_sub(u64::from(seg.size_bytes)) >= self.config.retention_bytes as u64;
        below_start || by_time || by_size
    }

    /// Moves the log start up (in memory). The leader-epoch cache drops entries below it here;
    /// its checkpoint is not rewritten for that (entries below the log start are harmless there
    /// and every open drops them), so no other writer of that file races a retention write.
    fn advance_log_start(&mut self, offset: i64) {
        if offset <= self.log_start_offset {
            return;
        }
        self.log_start_offset = offset;
        self.recovery_point = self.recovery_point.max(offset);
        self.epochs.truncate_from_start(offset);
    }

    /// Removes every batch at or after `offset` (cutting at the start of the batch holding
    /// it, as Kafka does). Below the log start, the log is emptied and restarts at `offset`.
    /// Not while a `CheckpointWrite` is out (refused, nothing changed): its value could land
    /// after the truncation's own checkpoint and claim truncated offsets durable. Nor while a
    /// retention write or a compaction pass is out: they delete or rewrite segment files that
    /// the truncation would delete or make active again.
    pub fn truncate_to(&mut self, offset: Offset) -> Result<(), LogError> {
        let offset = offset.0;
        self.check_writable()?;
        if self.checkpoint_in_flight || self.retention_in_flight || self.compaction.in_flight {
            return Err(LogError::InvalidRequest("a checkpoint, retention or compaction write is in flight"));
        }
        if offset >= self.next_offset() {
            return Ok(());
        }
        // Snapshots past the cut go before the cut is made durable (again after it, at the
        // exact cut), so no crash point leaves one describing truncated batches.
        let r =
            self.delete_snapshots_above(offset.max(0)).and_then(|()| self.truncate_segments(offset.max(0)));
        if let Err(e) = r {
            return Err(self.fail_with("truncation", e));
        }
        let leo = self.next_offset();
        self.clear_read_hints();
        self.truncations += 1;
        self.truncated_to = leo;
        self.pending_sync.retain(|p| p.next_offset <= leo);
        self.recovery_point = self.recovery_point.min(leo);
        let r = self.after_truncation(leo);
        r.map_err(|e| self.fail_with("truncation bookkeeping", e))
    }

    /// Kafka's truncateFullyAndStartAt for a follower whose log ends below the leader's log
    /// start (a new replica of a partition whose oldest segments retention deleted, or one
    /// that was away too long): everything here goes and the log restarts, empty, at
    /// `offset`, which must lie past its end.
    pub fn start_at(&mut self, offset: Offset) -> Result<(), LogError> {
        let offset = offset.0;
        self.check_writable()?;
        if self.checkpoint_in_flight || self.retention_in_flight || self.compaction.in_flight {
            return Err(LogError::InvalidRequest("a checkpoint, retention or compaction write is in flight"));
        }
        if offset <= self.next_offset() {
            return Err(LogError::InvalidRequest("a log restarts only past its end"));
        }
        let r = self.delete_snapshots_above(-1).and_then(|()| self.truncate_fully_and_start_at(offset));
        if let Err(e) = r {
            return Err(self.fail_with("restart at the leader's log start", e));
        }
        let leo = self.next_offset();
        self.clear_read_hints();
        self.truncations += 1;
        self.truncated_to = leo;
        self.pending_sync.clear();
        // The empty log is durable: its segment was created and the directory fsynced.
        self.recovery_point = leo;
        let r = self.after_truncation(leo);
        r.map_err(|e| self.fail_with("restart bookkeeping", e))
    }

    fn truncate_segments(&mut self, offset: i64) -> Result<(), LogError> {
        if offset < self.log_start_offset || self.segments[0].base_offset >= offset {
            return self.truncate_fully_and_start_at(offset);
        }
        while self.active().base_offset >= offset {
            if let Some(seg) = self.segments.pop() {
                self.delete_durably(&seg)?;
            }
        }
        let io = self.io;
        let mut buf = std::mem::take(&mut self.scan_buf);
        let seg = self.active_mut();
        if let Some((pos, _)) = seg.find_batch(io, offset)? {
            seg.truncate_file(io, pos)?;
            // The cut must be durable before anyone relies on it: otherwise a power loss brings
            // the removed batches back (simulator, seed 30: records truncated away reappeared
            // after a clean restart and a crash, because nothing fsynced the shorter file).
            io.datasync_all(&[&seg.log])?;
            let mut scratch = crate::epoch_cache::EpochCache::default();
            crate::recovery::recover_tail(seg, io, &mut buf, &mut scratch)?;
        }
        self.scan_buf = buf;
        Ok(())
    }

    /// Kafka's truncateFullyAndStartAt: an empty log whose start and end are `offset`.
    fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        let now_ms = self.active_time();
        // On failure the old segments stay in place (their files may be gone, the handles
        // still read) and the caller poisons the log.
        for seg in self.segments.iter().rev() {
            self.delete_durably(seg)?;
        }
        let fresh = Segment::create(self.io, &self.dir, offset, &self.config, now_ms)?;
        self.io.sync_dir(&self.dir)?;
        self.segments.clear();
        self.segments.push(fresh);
        self.log_start_offset = offset;
        self.epochs = crate::epoch_cache::EpochCache::default();
        self.write_epoch_checkpoint()
    }

    /// Deletes a segment's files and fsyncs the directory. Truncation deletes newest first,
    /// one segment at a time, so a power loss at any point leaves the log a prefix of what it
    /// was: deleting several and fsyncing once let the crash keep a later segment and drop an
    /// earlier one, a hole of missing offsets (simulator, seeds 50 and 3673). And the later
    /// segments are gone for good before the cut of the new active segment is made durable.
    fn delete_durably(&self, seg: &Segment) -> Result<(), LogError> {
        seg.delete_files(self.io)?;
        self.io.sync_dir(&self.dir)?;
        Ok(())
    }

    fn active_time(&self) -> i64 {
        self.active().last_modified_ms
    }

    fn after_truncation(&mut self, leo: i64) -> Result<(), LogError> {
        if self.epochs.truncate_from_end(leo) {
            self.write_epoch_checkpoint()?;
        }
        self.write_recovery_checkpoint()?;
        self.write_log_start_checkpoint()?;
        self.delete_snapshots_above(leo)?;
        self.load_producer_state()
    }

    /// Syncs, writes indexes, checkpoints and a producer snapshot, and marks the shutdown
    /// clean so the next open skips recovery.
    pub fn close(mut self) -> Result<(), LogError> {
        self.discard_spare();
        self.cancel_compaction();
        self.check_writable()?;
        self.sync()?;
        let io = self.io;
        let active = self.active_mut();
        if matches!(active.log, crate::io::FileHandle::Direct(_)) {
            // The cut of the last block's padding must be durable before the clean-shutdown
            // marker says the file's length can be trusted.
            active.detach_direct()?;
            io.datasync_all(&[&active.log])?;
        }
        active.seal();
        active.persist_indexes(io, true)?;
        self.write_producer_snapshot(true)?;
        self.write_recovery_checkpoint()?;
        self.write_log_start_checkpoint()?;
        self.write_epoch_checkpoint()?;
        // A compaction pass still running on another thread may be between the steps of a
        // segment swap: the next open must run recovery, which handles any of them (a crash
        // there is what `compaction.rs`'s swap order is made for), not trust the files.
        if !self.compaction.in_flight {
            write_atomic(self.io, &self.dir, CLEAN_SHUTDOWN_FILE, b"")?;
        }
        Ok(())
    }

    /// Removes the partition directory and everything in it.
    pub fn delete(mut self) -> Result<(), LogError> {
        self.discard_spare();
        self.cancel_compaction();
        let (dir, io) = (self.dir.clone(), self.io);
        drop(self);
        remove_log_dir(io, &dir)
    }

    /// Deletion without the file work: the directory is renamed out of the way (one
    /// rename, so a partition of the same name can be created at once) and the returned
    /// [`DirRemoval`] removes it, on whatever thread the caller likes.
    pub fn delete_deferred(mut self) -> Result<DirRemoval, LogError> {
        self.discard_spare();
        self.cancel_compaction();
        let (dir, io) = (self.dir.clone(), self.io);
        drop(self);
        Ok(retire_dir(io, &dir)?.unwrap_or(DirRemoval { io, dir: None }))
    }

    /// `delete_dir` without the file work (see `delete_deferred`); `None` when there is no
    /// such directory.
    pub fn retire_dir(
        dir: &std::path::Path,
        backend: crate::config::IoBackend,
    ) -> Result<Option<DirRemoval>, LogError> {
        Ok(retire_dir(crate::io::Io::resolve(backend)?, dir)?)
    }

    /// Removes a partition directory that is not open (nothing if it does not exist).
    pub fn delete_dir(dir: &std::path::Path, backend: crate::config::IoBackend) -> Result<(), LogError> {
        remove_log_dir(crate::io::Io::resolve(backend)?, dir)
    }
}

fn remove_log_dir(io: crate::io::Io, dir: &std::path::Path) -> Result<(), LogError> {
    match io.remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        r => r?,
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() {
            io.sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Suffix of a partition directory renamed for deletion (Kafka's `-delete`): never a
/// partition's name (those end in `-<partition number>`), so nothing opens it as a log.
pub const DELETED_DIR_SUFFIX: &str = "-delete";

/// Distinguishes retired directories of the same partition.
static RETIRED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Renames `dir` to `<dir>.<unique>-delete`; `None` when it does not exist. Not durable by
/// itself: the removal's parent fsync makes it so, and a crash before that leaves either name,
/// both removed in full by a later pass (`remove_retired_dirs` at start-up for the new one).
fn retire_dir(io: crate::io::Io, dir: &std::path::Path) -> std::io::Result<Option<DirRemoval>> {
    let Some(name) = dir.file_name() else { return Err(std::io::Error::other("no directory name")) };
    let stamp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let n = RETIRED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let retired =
        dir.with_file_name(format!("{}.{stamp:x}{n:x}{DELETED_DIR_SUFFIX}", name.to_string_lossy()));
    match io.rename(dir, &retired) {
        Ok(()) => Ok(Some(DirRemoval { io, dir: Some(retired) })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes every directory under `data_dir` that a deferred deletion renamed and did not get
/// to remove (a crash or stop in between). Blocking; for start-up.
pub fn remove_retired_dirs(
    data_dir: &std::path::Path,
    backend: crate::config::IoBackend,
) -> Result<usize, LogError> {
    let io = crate::io::Io::resolve(backend)?;
    let names = match io.list_dir(data_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        r => r?,
    };
    let mut removed = 0;
    for name in names.iter().filter(|n| n.ends_with(DELETED_DIR_SUFFIX)) {
        remove_log_dir(io, &data_dir.join(name))?;
        removed += 1;
    }
    Ok(removed)
}

/// A deleted partition's directory, renamed out of the way, to remove off the owner's thread
/// (see `Log::delete_deferred`).
pub struct DirRemoval {
    io: crate::io::Io,
    dir: Option<std::path::PathBuf>,
}

impl DirRemoval {
    /// Removes the directory and fsyncs its parent (blocking: an unlink per file).
    pub fn run(&self) -> Result<(), LogError> {
        match &self.dir {
            Some(dir) => remove_log_dir(self.io, dir),
            None => Ok(()),
        }
    }

    /// The renamed directory, if there was one.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }
}

/// Retention's file work (see `Log::apply_retention_deferred`): the log-start checkpoint,
/// crash-safely and through its own temp name, then each deleted segment's log cut down in
/// paced steps (`release_blocks`) and its files unlinked.
pub struct RetentionWrite {
    io: crate::io::Io,
    dir: std::path::PathBuf,
    log_start: Vec<u8>,
    /// Each deleted segment's log, and its three file paths.
    segments: Vec<(crate::io::FileHandle, [std::path::PathBuf; 3])>,
}

impl RetentionWrite {
    /// Runs it, pausing for at most `RELEASE_PAUSE_BUDGET` (see `write_until`).
    pub fn write(&self) -> std::io::Result<()> {
        self.write_until(std::time::Instant::now() + RELEASE_PAUSE_BUDGET)
    }

    /// Runs it, pausing between the steps of the segments' cuts until `deadline` at most
    /// (blocking: a few fsyncs, a truncation per MiB deleted, the unlinks, the pauses). A
    /// caller that checks retention periodically gives it most of the period, so a tick's
    /// deletions spread over the time until the next.
    pub fn write_until(&self, deadline: std::time::Instant) -> std::io::Result<()> {
        use crate::checkpoint::{write_atomic_via, LOG_START_FILE};
        write_atomic_via(self.io, &self.dir, LOG_START_FILE, "async.tmp", &self.log_start)?;
        // Only now may a segment lose bytes: a crash from here on finds the new log start and
        // drops what is left of the deleted segments unread.
        let mut pacer = Pacer::new(self.io, deadline);
        for (log, paths) in &self.segments {
            release_blocks(self.io, log, &mut pacer)?;
            for path in paths {
                match self.io.remove_file(path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// How many files it unlinks.
    pub fn file_count(&self) -> usize {
        self.segments.len() * 3
    }
}

/// Size of one step when a deleted segment is cut down before its unlink.
const RELEASE_STEP_BYTES: u64 = 1 << 20;
/// Pause after each step, so that the file system's journal commits, which the group commit's
/// syncfs waits for, each free a step's blocks rather than a whole segment's.
const RELEASE_STEP_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);
/// How long a `RetentionWrite::write` may pause; past its deadline the rest is cut without
/// pauses, so a backlog (retention lowered, a start after a long stop) still goes at once.
pub(super) const RELEASE_PAUSE_BUDGET: std::time::Duration = std::time::Duration::from_secs(1);

/// Frees a deleted segment's blocks a step at a time, when nothing else holds its file.
///
/// ext4 frees an unlinked file's extents in the next journal commit, and on a file system
/// mounted with `discard` (this project's machines are) it trims them there too; a 16 MiB
/// segment's unlink made that one commit, and every ack waiting on it, measurably slower
/// (`scripts/unlink-stall.py`, docs/BENCHMARKS.md issue 22). Cut down first, the same blocks
/// go over many commits. A file someone still reads (a fetch's splice, a sync job) is left
/// whole for its unlink: shortening it would short that read.
pub(super) fn release_blocks(
    io: crate::io::Io,
    log: &crate::io::FileHandle,
    pacer: &mut Pacer,
) -> std::io::Result<()> {
    if !log.is_sole_holder() {
        return Ok(());
    }
    let mut len = io.file_len(log)?;
    while len > 0 {
        len = (len - 1) / RELEASE_STEP_BYTES * RELEASE_STEP_BYTES;
        io.set_len(log, len)?;
        pacer.pause();
    }
    Ok(())
}

/// Paces file-system work done in steps (`release_blocks`, compaction's rewrite) until a
/// deadline; never pauses a simulated run, whose file system has no journal to spare.
pub(super) struct Pacer {
    deadline: Option<std::time::Instant>,
}

impl Pacer {
    pub(super) fn new(io: crate::io::Io, deadline: std::time::Instant) -> Pacer {
        let real = matches!(io, crate::io::Io::Std | crate::io::Io::Uring);
        Pacer { deadline: real.then_some(deadline) }
    }

    pub(super) fn pause(&mut self) {
        if self.deadline.is_some_and(|d| std::time::Instant::now() + RELEASE_STEP_PAUSE <= d) {
            std::thread::sleep(RELEASE_STEP_PAUSE);
        }
    }
}
