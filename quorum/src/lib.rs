//! Riptide's metadata quorum (ARCHITECTURE.md §5, like Kafka's KRaft): a Raft log of metadata
//! records (brokers, topics, partitions with replicas, leader, leader epoch and ISR, topic
//! configs), run by 1, 3 or 5 controllers on openraft, and the broker side that registers,
//! heartbeats and follows that log.
//!
//! Layering: `records` and `image` are the data (pure and deterministic); `placement` decides
//! where new partitions go, `reassign` how a partition moves and `balancer` which ones should; `log_store` and `state_machine` persist the Raft log and snapshots;
//! `rpc` and `network` carry the controller protocol over `transport` (TCP or TLS); `controller` is the active controller's
//! logic; `broker` is what every broker runs. Nothing here knows about shards or Kafka's wire
//! protocol.

pub mod balancer;
pub mod broker;
pub mod controller;
pub mod fsutil;
pub mod image;
pub mod log_store;
pub mod network;
pub mod placement;
pub mod reassign;
pub mod records;
pub mod rpc;
pub mod state_machine;
pub mod transport;
pub mod types;

pub use balancer::{BalanceReport, BalancerConfig, BrokerLoad, PartitionLoad};
pub use broker::{BrokerAgent, BrokerConfig, ImageSink};
pub use controller::{Controller, ControllerConfig, ControllerMetrics, PartitionLimits};
pub use image::{BrokerState, Change, MetadataImage};
pub use records::{
    AclBinding, ClientQuotas, Endpoint, LeaderEpoch, MetadataRecord, NodeId, PartitionState, QuotaEntity,
    QuotaValue, ScramCredential, TopicRecord, CLUSTER_DEFAULT, NO_LEADER,
};
pub use rpc::{AdminCommand, AdminReply, ControllerError, IsrChangeRequest, QuorumInfo};
pub use transport::Transport;
