//! riptide-server: a Kafka-wire-compatible broker on the riptide storage engine.
//!
//! Layers, each depending only on those below it (`tests/layering.rs` enforces the order, whose
//! full table is in docs/ARCHITECTURE.md §11, and forbids cycles):
//! - `server`: the composition root (starts shards, listeners, the coordinator, metrics);
//! - `net`: accepting connections, frames, ordered pipelined answers;
//! - `api`: request decoding, one module per API family, typed errors → Kafka codes;
//! - `coordinator`: consumer groups and `__consumer_offsets`;
//! - `shard`: per-core event loops, the partition table, the router (the only cross-shard path);
//! - `partition`: one partition's log, high watermark, leader epoch and waiters;
//! - `broker`, `catalog`, `config`, `metrics`, `clock`: state and settings every layer reads.
//!
//! The `riptide` client commands are the riptide-cli crate, the REST interface riptide-rest;
//! `fuzzing` exposes decoders to the fuzz targets.

pub mod api;
pub mod bind;
pub mod broker;
pub mod catalog;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod coordinator;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod metrics;
pub mod net;
pub mod partition;
pub mod quota;
pub mod replication;
pub mod security;
pub mod server;
pub mod shard;
pub mod telemetry;
