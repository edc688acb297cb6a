//! The metadata records: what the quorum's log holds (ARCHITECTURE.md §5, docs/ARCHITECTURE.md
//! "Metadata records"). One Raft entry carries a batch of records applied atomically, as Kafka's
//! metadata record batches are. Records are JSON with the variant name as tag, so a later
//! record type (ACLs, SCRAM credentials, features) is an added variant and an old log still
//! reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Node ids are Kafka's `node.id` (non-negative); Raft node ids are the same numbers.
pub use riptide_model::{LeaderEpoch, NodeId};

/// "No leader" in Kafka's partition state.
pub const NO_LEADER: NodeId = -1;

/// One advertised listener of a broker.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Endpoint {
    /// The listener name (`PLAINTEXT`, ...).
    pub name: String,
    pub host: String,
    pub port: u16,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`.
    pub security_protocol: String,
}

/// Where a partition lives and who leads it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionState {
    /// Replicas in preference order: the first is the preferred leader.
    pub replicas: Vec<NodeId>,
    pub leader: NodeId,
    /// Bumped whenever the leader changes (fencing stale leaders' requests).
    pub leader_epoch: LeaderEpoch,
    pub isr: Vec<NodeId>,
    /// Bumped on every change of this partition's state (Kafka's partition epoch).
    pub partition_epoch: i32,
    /// A reassignment in progress (Kafka's addingReplicas / removingReplicas): `replicas`
    /// holds the target replicas first, then the ones being removed; the added ones catch up
    /// and join the ISR before the removed ones go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding: Vec<NodeId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<NodeId>,
}

impl PartitionState {
    pub fn new(replicas: Vec<NodeId>) -> PartitionState {
        PartitionState {
            leader: replicas.first().copied().unwrap_or(NO_LEADER),
            isr: replicas.clone(),
            replicas,
            leader_epoch: LeaderEpoch(0),
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }

    pub fn is_reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// Where a reassignment goes: the replicas that stay once it completes (all of them when
    /// none is in progress), in preference order.
    pub fn target(&self) -> Vec<NodeId> {
        self.replicas.iter().copied().filter(|r| !self.removing.contains(r)).collect()
    }

    /// The replicas before a reassignment started.
    pub fn original(&self) -> Vec<NodeId> {
        self.replicas.iter().copied().filter(|r| !self.adding.contains(r)).collect()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopicRecord {
    pub name: String,
    /// Kafka's topic id (a UUID) as a u128; never 0.
    pub id: u128,
    pub partitions: Vec<PartitionState>,
    /// Only the configs set on the topic; the rest are broker defaults.
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
}

/// A user's SCRAM credential for one mechanism (Kafka's UserScramCredentialRecord): what
/// verifies a password without storing it, salted and hashed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

/// One ACL in Kafka's model (AccessControlEntryRecord): who (`principal` from `host`, `*`
/// for any) may or may not (`allow`) do `operation` on the resources named by
/// `resource_type`, `pattern` and `name`. The numbers are Kafka's wire codes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclBinding {
    pub resource_type: i8,
    pub name: String,
    /// 3 literal, 4 prefixed.
    pub pattern: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    /// 3 allow, 2 deny.
    pub permission: i8,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum MetadataRecord {
    /// The cluster's id, written once when the quorum is first formed.
    ClusterId {
        id: String,
    },
    /// A broker (re-)registers: a new incarnation gets a new broker epoch (the log index of this
    /// record) and starts fenced until it has caught up with the metadata log.
    RegisterBroker {
        id: NodeId,
        incarnation: u128,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
    },
    /// Fenced: the broker's session expired or it shut down; it leads nothing while fenced.
    FenceBroker {
        id: NodeId,
        epoch: i64,
        controlled_shutdown: bool,
    },
    /// The broker heartbeats and has caught up: it may lead partitions again.
    UnfenceBroker {
        id: NodeId,
        epoch: i64,
    },
    UnregisterBroker {
        id: NodeId,
    },
    CreateTopic(TopicRecord),
    /// Partitions appended to a topic (Kafka never removes partitions).
    CreatePartitions {
        topic: String,
        added: Vec<PartitionState>,
    },
    DeleteTopic {
        name: String,
        id: u128,
    },
    /// Replaces the topic's config overrides.
    SetTopicConfigs {
        topic: String,
        configs: BTreeMap<String, String>,
    },
    /// Replaces the dynamic broker configs (Kafka's dynamic broker configs) of one broker, or
    /// with `broker` = `CLUSTER_DEFAULT` the cluster-wide defaults every broker takes (Kafka's
    /// resource name ""). Empty: none left.
    SetBrokerConfigs {
        broker: NodeId,
        configs: BTreeMap<String, String>,
    },
    /// Replaces the client quotas of one entity (Kafka's `ClientQuotaRecord`s for it, as one
    /// set). Empty: the entity has none left.
    SetClientQuotas {
        entity: QuotaEntity,
        quotas: BTreeMap<String, QuotaValue>,
    },
    /// Replaces the configs of one client-metrics subscription (KIP-714's CLIENT_METRICS
    /// config resource). Empty: the subscription is deleted.
    SetClientMetrics {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// Replaces one group's dynamic configs (Kafka's GROUP config resource: share-group
    /// settings). Empty: the group has none left.
    SetGroupConfigs {
        group: String,
        configs: BTreeMap<String, String>,
    },
    /// A new leader and ISR for one partition; the leader epoch moves when the leader does.
    PartitionChange {
        topic: String,
        partition: i32,
        leader: NodeId,
        isr: Vec<NodeId>,
    },
    /// A partition's whole assignment changes: a reassignment starts, completes, is cancelled
    /// or only reorders the replicas (a new preferred leader). The leader epoch moves when
    /// the leader does.
    ReassignPartition {
        topic: String,
        partition: i32,
        replicas: Vec<NodeId>,
        adding: Vec<NodeId>,
        removing: Vec<NodeId>,
        leader: NodeId,
        isr: Vec<NodeId>,
    },
    /// A broker is being drained (its replicas move away; it gets no new ones) or, with
    /// `draining: false`, is back in service. Kept across its re-registrations.
    DecommissionBroker {
        id: NodeId,
        draining: bool,
    },
    /// Creates or replaces a user's credential for a mechanism (Kafka's code: 1 SCRAM-SHA-256,
    /// 2 SCRAM-SHA-512).
    SetScramCredential {
        user: String,
        mechanism: i8,
        credential: ScramCredential,
    },
    DeleteScramCredential {
        user: String,
        mechanism: i8,
    },
    CreateAcl(AclBinding),
    DeleteAcl(AclBinding),
}

/// A client-quota entity (Kafka's `ClientQuotaEntity`): entity type (`user`, `client-id`,
/// `ip`) to name, `None` naming the type's default entity.
pub type QuotaEntity = BTreeMap<String, Option<String>>;

/// A quota's value (a byte rate, a percentage): a float that compares by its bits, so that
/// the image stays `Eq`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// One entity's client quotas in the metadata image.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientQuotas {
    pub entity: QuotaEntity,
    pub quotas: BTreeMap<String, QuotaValue>,
}

/// The key of the cluster-wide dynamic broker configs in `SetBrokerConfigs`.
pub const CLUSTER_DEFAULT: NodeId = -1;

impl MetadataRecord {
    /// Users and ACLs: the records a broker may build itself and have the controller write.
    pub fn is_security(&self) -> bool {
        matches!(
            self,
            MetadataRecord::SetScramCredential { .. }
                | MetadataRecord::DeleteScramCredential { .. }
                | MetadataRecord::CreateAcl(_)
                | MetadataRecord::DeleteAcl(_)
        )
    }
}

/// Why a record did not apply (the image is unchanged by it). Deterministic: every node
/// applying the same log reaches the same verdict.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("Topic '{0}' already exists.")]
    TopicExists(String),
    #[error("Topic '{0}' does not exist.")]
    UnknownTopic(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("broker {0} is not registered")]
    UnknownBroker(NodeId),
    #[error("broker {id} epoch {epoch} is stale")]
    StaleBrokerEpoch { id: NodeId, epoch: i64 },
}
