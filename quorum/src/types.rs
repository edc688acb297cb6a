//! openraft's type configuration for the metadata quorum.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::records::NodeId;
use crate::records::{ApplyError, MetadataRecord};

/// One Raft entry's payload: records applied together.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Batch {
    pub records: Vec<MetadataRecord>,
}

/// What applying a batch did: its log index and one result per record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Applied {
    pub index: u64,
    pub results: Vec<Result<(), ApplyError>>,
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Batch,
        R = Applied,
        NodeId = crate::records::NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<crate::records::NodeId>;
pub type Vote = openraft::Vote<crate::records::NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;

/// Storage failures in openraft's terms (they stop the Raft node: a controller that cannot
/// persist must not vote or lead).
pub fn write_error(e: &std::io::Error) -> StorageError {
    openraft::StorageIOError::write_logs(openraft::AnyError::new(e)).into()
}

pub fn read_error(e: &std::io::Error) -> StorageError {
    openraft::StorageIOError::read_logs(openraft::AnyError::new(e)).into()
}
