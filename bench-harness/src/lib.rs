//! riptide-bench: an open-loop benchmark harness for Kafka-compatible brokers (Riptide first).
//! It speaks the Kafka protocol through the shared `riptide-client`, so the same workload
//! measures Riptide and any other broker.
//!
//! Layout: `workload` (YAML in, checked) → `runner` (topics, worker threads, timeline,
//! progress) → `worker` (one compio runtime per thread) running `producer`s (open-loop,
//! `schedule`) and `consumer`s (groups or static split) that write batches and read them back
//! with `records` and `payload` stamps, measuring into `stats` → `report` (JSON) and `plots`
//! (`svg`). `sweep` runs a workload at fractions of its max rate, `compare` tabulates results,
//! `baseline` measures the machine (fio, iperf3), `spawn` starts brokers, and `discard` is the
//! do-nothing broker that measures the harness's own ceiling. `keys` are OMB's key
//! distributors; `collect` is the main thread's per-second work during a run: soak `windows`
//! and their stability figure, the `backlog` test, the broker's `segments` events; `omb`
//! writes OMB's result JSON and `driver` reads OMB's Kafka driver files; `side_by_side` runs
//! brokers in interleaved rounds.

pub mod backlog;
pub mod baseline;
pub mod clock;
pub mod collect;
pub mod compare;
pub mod consumer;
pub mod discard;
pub mod driver;
pub mod error;
pub mod keys;
pub mod omb;
pub mod payload;
pub mod plots;
pub mod producer;
pub mod records;
pub mod report;
pub mod rng;
pub mod runner;
pub mod schedule;
pub mod segments;
pub mod side_by_side;
pub mod spawn;
pub mod stats;
pub mod svg;
pub mod sweep;
pub mod sys;
pub mod windows;
pub mod worker;
pub mod workload;
