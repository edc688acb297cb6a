//! The Raft log on disk: one append-only file of framed entries (`[len u32][crc32c u32][JSON]`)
//! and a small state file (vote, committed and purged log ids) replaced atomically.
//!
//! Every append is fdatasync'ed before openraft is told it is flushed, and the vote before it
//! is acknowledged (Raft's safety depends on both). Metadata is small and rare next to record
//! data, so entries are also kept in memory; a torn or corrupt frame at the tail (a crash in
//! the middle of an append that was never acknowledged) is cut off on open. When purged
//! entries make up most of the file it is rewritten with only the live ones.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader};
use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::types::{write_error, Entry, LogId, StorageError, TypeConfig, Vote};

const FRAME_HEADER: usize = 8;

#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    dir: PathBuf,
    file: File,
    file_len: u64,
    /// index → (entry, file position of its frame)
    entries: BTreeMap<u64, (Entry, u64)>,
    state: StateFile,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct StateFile {
    vote: Option<Vote>,
    committed: Option<LogId>,
    purged: Option<LogId>,
}

impl LogStore {
    pub fn open(dir: &Path) -> std::io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let state_path = dir.join("raft-state.json");
        let state: StateFile = match fsutil::read_optional(&state_path)? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| fsutil::invalid(&state_path, e))?,
            None => StateFile::default(),
        };
        let log_path = dir.join("raft.log");
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
        let inner = Inner { dir: dir.to_path_buf(), file, file_len: pos as u64, entries, state };
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
    fn save_state(&self) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&self.state).map_err(std::io::Error::other)?;
        fsutil::write_atomically(&self.dir.join("raft-state.json"), &bytes)
    }

    fn append(&mut self, entries: Vec<Entry>) -> std::io::Result<()> {
        let mut buf = Vec::new();
        let mut positions = Vec::with_capacity(entries.len());
        for e in &entries {
            positions.push(self.file_len + buf.len() as u64);
            encode_frame(e, &mut buf)?;
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.file_len += buf.len() as u64;
        for (e, pos) in entries.into_iter().zip(positions) {
            self.entries.insert(e.log_id.index, (e, pos));
        }
        Ok(())
    }

    /// Removes entries at and after `index` (a conflicting tail from an old leader).
    fn truncate(&mut self, index: u64) -> std::io::Result<()> {
        let Some(pos) = self.entries.range(index..).next().map(|(_, (_, pos))| *pos) else {
            return Ok(());
        };
        self.entries.split_off(&index);
        self.file.set_len(pos)?;
        self.file.sync_all()?;
        self.file_len = pos;
        Ok(())
    }

    /// Forgets entries up to `log_id` (they are in a snapshot); rewrites the file when most of
    /// it is dead.
    fn purge(&mut self, log_id: LogId) -> std::io::Result<()> {
        self.state.purged = Some(log_id);
        self.save_state()?;
        self.entries = self.entries.split_off(&(log_id.index + 1));
        let live_from = self.entries.values().next().map_or(self.file_len, |(_, pos)| *pos);
        if live_from > self.file_len / 2 && live_from > 1 << 20 {
            self.rewrite()?;
        }
        Ok(())
    }

    fn rewrite(&mut self) -> std::io::Result<()> {
        let path = self.dir.join("raft.log");
        let tmp = self.dir.join("raft.log.tmp");
        let mut buf = Vec::new();
        let mut positions = BTreeMap::new();
        for (index, (e, _)) in &self.entries {
            positions.insert(*index, buf.len() as u64);
            encode_frame(e, &mut buf)?;
        }
        fsutil::write_atomically(&tmp, &buf)?;
        std::fs::rename(&tmp, &path)?;
        fsutil::sync_dir(&path)?;
        self.file = OpenOptions::new().read(true).append(true).open(&path)?;
        self.file_len = buf.len() as u64;
        for (index, (_, pos)) in self.entries.iter_mut() {
            *pos = positions[index];
        }
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
        let mut inner = self.lock();
        inner.state.vote = Some(*vote);
        inner.save_state().map_err(|e| write_error(&e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().state.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.state.committed = committed;
        inner.save_state().map_err(|e| write_error(&e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().state.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let result = self.lock().append(entries.into_iter().collect());
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = write_error(&e);
                callback.log_io_completed(Err(e));
                Err(err)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.lock().truncate(log_id.index).map_err(|e| write_error(&e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.lock().purge(log_id).map_err(|e| write_error(&e))
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
}
