//! The quorum's state machine: applies committed batches to the metadata image, snapshots it
//! (`snapshot.json`, written atomically) so the log can be purged, and keeps the batches
//! applied since the snapshot so that brokers can fetch the records they miss (or the whole
//! image when they are too far behind).

use std::collections::VecDeque;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::image::MetadataImage;
use crate::records::MetadataRecord;
use crate::types::{
    read_error, write_error, Applied, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig,
};

/// Batches kept for brokers' fetches; a broker further behind gets the image.
const RECENT_MAX: usize = 20_000;

/// What the controller service reads: the image and the recent batches.
#[derive(Default)]
pub struct AppliedState {
    pub image: MetadataImage,
    pub membership: StoredMembership,
    pub last_applied: Option<LogId>,
    /// Batches with log index > `recent_base`, in order (empty for blank/membership entries).
    pub recent: VecDeque<(u64, Vec<MetadataRecord>)>,
    pub recent_base: u64,
}

/// What a broker that has applied up to `from` needs next.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Delta {
    Batches(Vec<(u64, Vec<MetadataRecord>)>),
    Image(Box<MetadataImage>),
}

impl AppliedState {
    pub fn delta_since(&self, from: u64, max: usize) -> Delta {
        if from < self.recent_base {
            return Delta::Image(Box::new(self.image.clone()));
        }
        let skip = (from - self.recent_base) as usize;
        Delta::Batches(self.recent.iter().skip(skip).take(max).cloned().collect())
    }

    fn push(&mut self, index: u64, records: Vec<MetadataRecord>) {
        self.recent.push_back((index, records));
        while self.recent.len() > RECENT_MAX {
            if let Some((i, _)) = self.recent.pop_front() {
                self.recent_base = i;
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    image: MetadataImage,
}

#[derive(Clone)]
pub struct StateMachine {
    dir: PathBuf,
    pub shared: Arc<Mutex<AppliedState>>,
    applied_tx: Arc<tokio::sync::watch::Sender<u64>>,
}

impl StateMachine {
    pub fn open(dir: &Path) -> std::io::Result<StateMachine> {
        let path = dir.join("snapshot.json");
        let mut shared = AppliedState::default();
        if let Some(bytes) = fsutil::read_optional(&path)? {
            let snap: SnapshotFile = serde_json::from_slice(&bytes).map_err(|e| fsutil::invalid(&path, e))?;
            shared.recent_base = snap.image.applied;
            shared.image = snap.image;
            shared.membership = snap.meta.last_membership.clone();
            shared.last_applied = snap.meta.last_log_id;
        }
        let (applied_tx, _) = tokio::sync::watch::channel(shared.image.applied);
        Ok(StateMachine {
            dir: dir.to_path_buf(),
            shared: Arc::new(Mutex::new(shared)),
            applied_tx: Arc::new(applied_tx),
        })
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, AppliedState> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes to the applied index, for long-polling fetches.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    fn snapshot_of(&self) -> std::io::Result<(SnapshotMeta, Vec<u8>)> {
        let s = self.lock();
        let meta = SnapshotMeta {
            last_log_id: s.last_applied,
            last_membership: s.membership.clone(),
            snapshot_id: format!("{}", s.image.applied),
        };
        let file = SnapshotFile { meta: meta.clone(), image: s.image.clone() };
        let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        Ok((meta, bytes))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (meta, bytes) = self.snapshot_of().map_err(|e| write_error(&e))?;
        fsutil::write_atomically(&self.dir.join("snapshot.json"), &bytes).map_err(|e| write_error(&e))?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(bytes)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let s = self.lock();
        Ok((s.last_applied, s.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut out = Vec::new();
        let applied = {
            let mut s = self.lock();
            for entry in entries {
                let index = entry.log_id.index;
                s.last_applied = Some(entry.log_id);
                let records = match entry.payload {
                    EntryPayload::Blank => Vec::new(),
                    EntryPayload::Normal(batch) => batch.records,
                    EntryPayload::Membership(m) => {
                        s.membership = StoredMembership::new(Some(entry.log_id), m);
                        Vec::new()
                    }
                };
                let results = if records.is_empty() {
                    s.image.skip(index);
                    Vec::new()
                } else {
                    s.image.apply(index, &records, &mut Vec::new())
                };
                s.push(index, records);
                out.push(Applied { index, results });
            }
            s.image.applied
        };
        self.applied_tx.send_replace(applied);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let file: SnapshotFile =
            serde_json::from_slice(&bytes).map_err(|e| read_error(&std::io::Error::other(e)))?;
        fsutil::write_atomically(&self.dir.join("snapshot.json"), &bytes).map_err(|e| write_error(&e))?;
        let applied = {
            let mut s = self.lock();
            s.image = file.image;
            s.membership = meta.last_membership.clone();
            s.last_applied = meta.last_log_id;
            s.recent.clear();
            s.recent_base = s.image.applied;
            s.image.applied
        };
        self.applied_tx.send_replace(applied);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let path = self.dir.join("snapshot.json");
        let Some(bytes) = fsutil::read_optional(&path).map_err(|e| read_error(&e))? else {
            return Ok(None);
        };
        let file: SnapshotFile =
            serde_json::from_slice(&bytes).map_err(|e| read_error(&std::io::Error::other(e)))?;
        Ok(Some(Snapshot { meta: file.meta, snapshot: Box::new(Cursor::new(bytes)) }))
    }
}
