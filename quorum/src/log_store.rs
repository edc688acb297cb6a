//! The Raft log on disk: one append-only file of framed entries (`[len u32][crc32c u32][JSON]`)
//! and a small state file (vote and purged log id) replaced atomically.
//!
//! Every append is fdatasync'ed before openraft is told it is flushed, and the vote before it
//! is acknowledged (Raft's safety depends on both). Metadata is small and rare next to record
//! data, so entries are also kept in memory; a torn or corrupt frame at the tail (a crash in
//! the middle of an append that was never acknowledged) is cut off on open. When purged
//! entries make up most of the file it is rewritten with only the live ones.
//!
//! All file I/O runs on one thread of its own (`LogWriter`), in the order it was asked for,
//! never on the metadata runtime: that runtime also carries Raft's heartbeats and the brokers'
//! session heartbeats, and a write or fsync that waits behind a disk busy with record data
//! (hundreds of milliseconds under full load) used to hold them all up, so a live broker could
//! miss its session. Appends return at once and report their flush through openraft's
//! callback; consecutive appends share one fdatasync. Every other operation first flushes the
//! appends queued before it, so the committed log id, written last and without an fsync of its
//! own (losing it only means re-learning it from the leader), never names an entry that is
//! not on disk.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader};
use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::types::{write_error, Entry, LogId, StorageError, TypeConfig, Vote};

const FRAME_HEADER: usize = 8;
const LOG_FILE: &str = "raft.log";
const STATE_FILE: &str = "raft-state.json";
const COMMITTED_FILE: &str = "raft-committed.json";

#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    file_len: u64,
    /// index → (entry, file position of its frame)
    entries: BTreeMap<u64, (Entry, u64)>,
    state: StateFile,
    committed: Option<LogId>,
    writer: mpsc::Sender<Op>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct StateFile {
    vote: Option<Vote>,
    /// Written here by older versions; now in its own file (see the module comment).
    #[serde(default, skip_serializing)]
    committed: Option<LogId>,
    purged: Option<LogId>,
}

/// Work for the log's I/O thread, done in the order sent.
enum Op {
    /// Frames to append at the end of the log; `done` hears when they are on disk.
    Append { frames: Vec<u8>, done: LogFlushed<TypeConfig> },
    /// Cut the log file to `len` bytes (a conflicting tail), durably.
    Truncate { len: u64, done: Reply },
    /// Replace the log file with `frames` (only live entries), durably.
    Rewrite { frames: Vec<u8>, done: Reply },
    /// Replace the state file (vote, purged), durably.
    SaveState { bytes: Vec<u8>, done: Reply },
    /// Replace the committed-id file, without an fsync.
    SaveCommitted { bytes: Vec<u8> },
}

type Reply = tokio::sync::oneshot::Sender<std::io::Result<()>>;

impl LogStore {
    pub fn open(dir: &Path) -> std::io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let state_path = dir.join(STATE_FILE);
        let state: StateFile = match fsutil::read_optional(&state_path)? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| fsutil::invalid(&state_path, e))?,
            None => StateFile::default(),
        };
        let log_path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&log_path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut entries = BTreeMap::new();
        let mut pos = 0usize;
        while let Some((entry, len)) = decode_frame(&bytes[pos..]) {
            let index = entry.log_id.index;
            // A later frame for an index replaces the earlier one only after a truncate, which
            // cuts the file; so indexes in the file are strictly increasing.
            if state.purged.is_none_or(|p| index > p.index) {
                entries.insert(index, (entry, pos as u64));
            }
            pos += len;
        }
        if pos < bytes.len() {
            tracing::warn!(
                "{}: cutting {} byte(s) of a torn or corrupt tail at {pos}",
                log_path.display(),
                bytes.len() - pos
            );
            file.set_len(pos as u64)?;
            file.sync_all()?;
        }
        fsutil::sync_dir(&log_path)?;
        let last = entries.values().next_back().map(|(e, _)| e.log_id).or(state.purged);
        let committed = recover_committed(dir, &state, last);
        let (writer, ops) = mpsc::channel();
        let io = LogWriter { dir: dir.to_path_buf(), file };
        std::thread::Builder::new().name("riptide-raft-log".into()).spawn(move || io.run(ops))?;
        let inner = Inner { file_len: pos as u64, entries, state, committed, writer };
        Ok(LogStore { inner: Arc::new(Mutex::new(inner)) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last log index written (for metrics and `riptide cluster`).
    pub fn last_index(&self) -> u64 {
        self.lock().entries.keys().next_back().copied().unwrap_or(0)
    }
}

type Done = tokio::sync::oneshot::Receiver<std::io::Result<()>>;

/// Waits for an operation queued with `Inner::queue`, without blocking the runtime.
async fn finished(done: Done) -> Result<(), StorageError> {
    match done.await {
        Ok(r) => r.map_err(|e| write_error(&e)),
        Err(_) => Err(write_error(&std::io::Error::other("the Raft log's I/O thread stopped"))),
    }
}

/// The committed log id to start from: the newer of the committed file and what older
/// versions kept in the state file, and never one beyond the log's last entry (the file is
/// written without an fsync, so after a power loss it may be stale or torn, never ahead).
fn recover_committed(dir: &Path, state: &StateFile, last: Option<LogId>) -> Option<LogId> {
    let path = dir.join(COMMITTED_FILE);
    let from_file: Option<LogId> = match fsutil::read_optional(&path) {
        Ok(Some(b)) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            tracing::warn!("{}: unreadable ({e}); the leader will tell the commit point", path.display());
            None
        }),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!("{}: {e}", path.display());
            None
        }
    };
    let committed = from_file.max(state.committed);
    committed.filter(|c| last.is_some_and(|l| c.index <= l.index))
}

fn decode_frame(b: &[u8]) -> Option<(Entry, usize)> {
    if b.len() < FRAME_HEADER {
        return None;
    }
    let len = u32::from_be_bytes(b[0..4].try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(b[4..8].try_into().ok()?);
    let body = b.get(FRAME_HEADER..FRAME_HEADER + len)?;
    if crc32c::crc32c(body) != crc {
        return None;
    }
    let entry: Entry = serde_json::from_slice(body).ok()?;
    Some((entry, FRAME_HEADER + len))
}

fn encode_frame(entry: &Entry, out: &mut Vec<u8>) -> std::io::Result<()> {
    let body = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

impl Inner {
    fn send(&self, op: Op) -> std::io::Result<()> {
        self.writer.send(op).map_err(|_| std::io::Error::other("the Raft log's I/O thread stopped"))
    }

    /// Queues `op` (made with its reply channel). Queue under the same lock as the change it
    /// writes, so the I/O thread sees operations in the order their changes were made.
    fn queue(&self, op: impl FnOnce(Reply) -> Op) -> std::io::Result<Done> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(op(tx))?;
        Ok(rx)
    }

    fn state_bytes(&self) -> std::io::Result<Vec<u8>> {
        serde_json::to_vec(&self.state).map_err(std::io::Error::other)
    }

    /// Records `entries` in memory and queues their frames; `done` hears when they are durable.
    fn append(&mut self, entries: Vec<Entry>, done: LogFlushed<TypeConfig>) -> std::io::Result<()> {
        let mut frames = Vec::new();
        let mut positions = Vec::with_capacity(entries.len());
        for e in &entries {
            positions.push(self.file_len + frames.len() as u64);
            encode_frame(e, &mut frames)?;
        }
        self.file_len += frames.len() as u64;
        for (e, pos) in entries.into_iter().zip(positions) {
            self.entries.insert(e.log_id.index, (e, pos));
        }
        self.send(Op::Append { frames, done })
    }

    /// Removes entries at and after `index` (a conflicting tail from an old leader) from memory;
    /// the file length to cut to, if anything was removed.
    fn truncate(&mut self, index: u64) -> Option<u64> {
        let pos = self.entries.range(index..).next().map(|(_, (_, pos))| *pos)?;
        self.entries.split_off(&index);
        self.file_len = pos;
        Some(pos)
    }

    /// Forgets entries up to `log_id` (they are in a snapshot); the file's new contents when
    /// most of it is dead.
    fn purge(&mut self, log_id: LogId) -> std::io::Result<Option<Vec<u8>>> {
        self.state.purged = Some(log_id);
        self.entries = self.entries.split_off(&(log_id.index + 1));
        let live_from = self.entries.values().next().map_or(self.file_len, |(_, pos)| *pos);
        if !(live_from > self.file_len / 2 && live_from > 1 << 20) {
            return Ok(None);
        }
        let mut frames = Vec::new();
        for (e, pos) in self.entries.values_mut() {
            *pos = frames.len() as u64;
            encode_frame(e, &mut frames)?;
        }
        self.file_len = frames.len() as u64;
        Ok(Some(frames))
    }
}

/// The log's I/O thread: owns the open log file.
struct LogWriter {
    dir: PathBuf,
    file: File,
}

impl LogWriter {
    fn run(mut self, ops: mpsc::Receiver<Op>) {
        let mut unflushed: Vec<LogFlushed<TypeConfig>> = Vec::new();
        let mut failed: Option<std::io::ErrorKind> = None;
        loop {
            // Block only when nothing is waiting for a flush; otherwise take what has queued
            // meanwhile, and flush once the queue is empty.
            let op = if unflushed.is_empty() {
                match ops.recv() {
                    Ok(op) => op,
                    Err(_) => return,
                }
            } else {
                match ops.try_recv() {
                    Ok(op) => op,
                    Err(mpsc::TryRecvError::Empty) => {
                        self.flush(&mut unflushed, &mut failed);
                        continue;
                    }
                    Err(mpsc::TryRecvError::Disconnected) => {
                        self.flush(&mut unflushed, &mut failed);
                        return;
                    }
                }
            };
            if let Op::Append { frames, done } = op {
                // After a failed write or flush the log is poisoned: nothing later may be
                // reported durable (openraft stops on the first error anyway).
                if let Some(kind) = failed {
                    done.log_io_completed(Err(std::io::Error::new(kind, "an earlier Raft log write failed")));
                    continue;
                }
                if let Err(e) = self.file.write_all(&frames) {
                    failed = Some(e.kind());
                    done.log_io_completed(Err(e));
                    continue;
                }
                unflushed.push(done);
                continue;
            }
            self.flush(&mut unflushed, &mut failed);
            let poisoned = |kind| Err(std::io::Error::new(kind, "an earlier Raft log write failed"));
            match op {
                Op::Append { .. } => unreachable!("handled above"),
                Op::Truncate { len, done } => {
                    let r = match failed {
                        Some(kind) => poisoned(kind),
                        None => self.file.set_len(len).and_then(|()| self.file.sync_all()),
                    };
                    let _ = done.send(r);
                }
                Op::Rewrite { frames, done } => {
                    let r = match failed {
                        Some(kind) => poisoned(kind),
                        None => self.rewrite(&frames),
                    };
                    let _ = done.send(r);
                }
                Op::SaveState { bytes, done } => {
                    let _ = done.send(fsutil::write_atomically(&self.dir.join(STATE_FILE), &bytes));
                }
                Op::SaveCommitted { bytes } => {
                    let path = self.dir.join(COMMITTED_FILE);
                    let tmp = path.with_extension("tmp");
                    if let Err(e) = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, &path)) {
                        tracing::warn!("{}: {e}", path.display());
                    }
                }
            }
        }
    }

    /// One fdatasync for every append written since the last, then their callbacks, in order.
    fn flush(
        &mut self,
        unflushed: &mut Vec<LogFlushed<TypeConfig>>,
        failed: &mut Option<std::io::ErrorKind>,
    ) {
        if unflushed.is_empty() {
            return;
        }
        let result = match *failed {
            Some(kind) => Err(kind),
            None => self.file.sync_data().map_err(|e| e.kind()),
        };
        if let Err(kind) = result {
            *failed = Some(kind);
        }
        for done in unflushed.drain(..) {
            done.log_io_completed(
                result.map_err(|kind| std::io::Error::new(kind, "Raft log fdatasync failed")),
            );
        }
    }

    fn rewrite(&mut self, frames: &[u8]) -> std::io::Result<()> {
        let path = self.dir.join(LOG_FILE);
        let tmp = self.dir.join("raft.log.tmp");
        fsutil::write_atomically(&tmp, frames)?;
        std::fs::rename(&tmp, &path)?;
        fsutil::sync_dir(&path)?;
        self.file = OpenOptions::new().read(true).append(true).open(&path)?;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + openraft::OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self.lock().entries.range(range).map(|(_, (e, _))| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.lock();
        let last_purged_log_id = inner.state.purged;
        let last_log_id = inner.entries.values().next_back().map(|(e, _)| e.log_id).or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let done = {
            let mut inner = self.lock();
            inner.state.vote = Some(*vote);
            let bytes = inner.state_bytes().map_err(|e| write_error(&e))?;
            inner.queue(|done| Op::SaveState { bytes, done }).map_err(|e| write_error(&e))?
        };
        finished(done).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().state.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.committed = committed;
        let bytes = serde_json::to_vec(&committed).map_err(|e| write_error(&std::io::Error::other(e)))?;
        inner.send(Op::SaveCommitted { bytes }).map_err(|e| write_error(&e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        self.lock().append(entries.into_iter().collect(), callback).map_err(|e| write_error(&e))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let done = {
            let mut inner = self.lock();
            let Some(len) = inner.truncate(log_id.index) else { return Ok(()) };
            inner.queue(|done| Op::Truncate { len, done }).map_err(|e| write_error(&e))?
        };
        finished(done).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let (state_saved, rewritten) = {
            let mut inner = self.lock();
            let frames = inner.purge(log_id).map_err(|e| write_error(&e))?;
            let bytes = inner.state_bytes().map_err(|e| write_error(&e))?;
            let state_saved =
                inner.queue(|done| Op::SaveState { bytes, done }).map_err(|e| write_error(&e))?;
            let rewritten = match frames {
                Some(frames) => {
                    Some(inner.queue(|done| Op::Rewrite { frames, done }).map_err(|e| write_error(&e))?)
                }
                None => None,
            };
            (state_saved, rewritten)
        };
        finished(state_saved).await?;
        match rewritten {
            Some(done) => finished(done).await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry {
        Entry { log_id: LogId::new(CommittedLeaderId::new(term, 1), index), payload: EntryPayload::Blank }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("riptide-raftlog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[tokio::test(flavor = "current_thread")]
    async fn entries_truncate_purge_and_torn_tail_survive_reopen() {
        let dir = tmp("reopen");
        let mut s = LogStore::open(&dir).expect("open");
        s.blocking_append((1..=5).map(|i| entry(1, i))).await.expect("append");
        s.truncate(LogId::new(CommittedLeaderId::new(1, 1), 4)).await.expect("truncate");
        s.blocking_append([entry(2, 4)]).await.expect("append");
        s.purge(LogId::new(CommittedLeaderId::new(1, 1), 1)).await.expect("purge");
        s.save_vote(&Vote::new(2, 1)).await.expect("vote");
        drop(s);
        // A torn frame after the last acknowledged append is cut off on open.
        let mut f = OpenOptions::new().append(true).open(dir.join("raft.log")).expect("open log");
        f.write_all(&[0, 0, 0, 50, 1, 2, 3]).expect("tear");
        drop(f);
        let mut s = LogStore::open(&dir).expect("reopen");
        let got: Vec<(u64, u64)> = s
            .try_get_log_entries(0..100)
            .await
            .expect("read")
            .iter()
            .map(|e| (e.log_id.leader_id.term, e.log_id.index))
            .collect();
        assert_eq!(got, vec![(1, 2), (1, 3), (2, 4)]);
        assert_eq!(s.read_vote().await.expect("vote"), Some(Vote::new(2, 1)));
        let st = s.get_log_state().await.expect("state");
        assert_eq!(st.last_purged_log_id.map(|l| l.index), Some(1));
        assert_eq!(st.last_log_id.map(|l| l.index), Some(4));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_committed_id_survives_reopen_but_never_beyond_the_log() {
        let dir = tmp("committed");
        let id = |index| LogId::new(CommittedLeaderId::new(1, 1), index);
        let mut s = LogStore::open(&dir).expect("open");
        s.blocking_append((1..=3).map(|i| entry(1, i))).await.expect("append");
        s.save_committed(Some(id(3))).await.expect("committed");
        // The I/O thread works in order: once the vote is saved, so is the committed id.
        s.save_vote(&Vote::new(1, 1)).await.expect("vote");
        drop(s);
        let mut s = LogStore::open(&dir).expect("reopen");
        assert_eq!(s.read_committed().await.expect("read"), Some(id(3)));
        drop(s);
        // A committed id naming entries the log does not hold (written without an fsync, it
        // could only be stale, but it is never trusted beyond the log) is forgotten.
        std::fs::write(dir.join(COMMITTED_FILE), serde_json::to_vec(&Some(id(9))).expect("json"))
            .expect("write");
        let mut s = LogStore::open(&dir).expect("reopen");
        assert_eq!(s.read_committed().await.expect("read"), None);
        // So is a torn one.
        drop(s);
        std::fs::write(dir.join(COMMITTED_FILE), b"{\"leader_id\":").expect("write");
        let mut s = LogStore::open(&dir).expect("reopen");
        assert_eq!(s.read_committed().await.expect("read"), None);
        assert_eq!(s.get_log_state().await.expect("state").last_log_id.map(|l| l.index), Some(3));
        std::fs::remove_dir_all(&dir).ok();
    }
}
