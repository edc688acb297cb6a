//! riptide-server: a Kafka-wire-compatible broker on the riptide storage engine.
//!
//! Layout (ARCHITECTURE.md §3): `net` accepts connections and cuts frames; `api` decodes
//! requests and has one module per API family; `shard` owns partitions per core and is the only
//! place shards talk to each other; `catalog` is the topic metadata; `broker` what all shards
//! share.

pub mod api;
pub mod broker;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod coordinator;
pub mod fuzzing;
pub mod metrics;
pub mod net;
pub mod server;
pub mod shard;
