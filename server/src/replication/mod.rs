//! Replication between brokers (ARCHITECTURE.md §5): the follower side's fetchers, which copy
//! each followed partition's log from its leader, and the leader side's ISR upkeep, which asks
//! the controller to drop lagging followers from the ISR and take caught-up ones back
//! (Kafka's AlterPartition). The leader side's bookkeeping (acknowledged offsets, high
//! watermark) lives with the partition (`partition::replica`); the leader serves followers
//! through the Fetch API (`api::fetch`, zero-copy from the segment files).
//!
//! Both run as tasks on the shards, started by the composition root; they reach partitions
//! only through the shard router.

pub mod fetcher;
pub mod isr;
pub mod load;
