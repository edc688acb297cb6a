//! The broker's load report for the balancer, every few seconds from shard 0: each replica's
//! size and log end, and for the partitions it leads the bytes produced and fetched per second
//! over the last window; plus the data directory's disk use. The broker agent sends it with
//! its next heartbeat.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use riptide_quorum::{BrokerLoad, PartitionLoad};

use crate::partition::Traffic;
use crate::shard::router::gather_replica_logs;
use crate::shard::Ctx;

/// The rate window: short enough that a new hot topic shows within a balancer round.
const PERIOD: Duration = Duration::from_secs(5);

pub async fn run(ctx: Ctx) {
    let Some(agent) = ctx.broker.cluster.agent.clone() else { return };
    let mut last: HashMap<(Arc<str>, i32), Traffic> = HashMap::new();
    let mut last_at = Instant::now();
    while !ctx.broker.is_shutting_down() {
        compio::time::sleep(PERIOD).await;
        let logs = gather_replica_logs(&ctx).await;
        let secs = last_at.elapsed().as_secs_f64().max(0.001);
        last_at = Instant::now();
        let mut next = HashMap::with_capacity(logs.len());
        let mut partitions = Vec::with_capacity(logs.len());
        for l in logs {
            let key = (l.topic.clone(), l.partition);
            // A counter that went down is a reopened replica: no rate this window.
            let rate = |now: u64, before: Option<u64>| {
                before.filter(|b| *b <= now).map_or(0.0, |b| (now - b) as f64 / secs)
            };
            let before = last.get(&key);
            let (bytes_in, bytes_out) = if l.leader {
                (
                    rate(l.traffic.bytes_in, before.map(|t| t.bytes_in)),
                    rate(l.traffic.bytes_out, before.map(|t| t.bytes_out)),
                )
            } else {
                (0.0, 0.0)
            };
            partitions.push(PartitionLoad {
                topic: l.topic.to_string(),
                partition: l.partition,
                size_bytes: l.size_bytes,
                log_end_offset: l.log_end_offset,
                bytes_in_per_sec: bytes_in,
                bytes_out_per_sec: bytes_out,
            });
            next.insert(key, l.traffic);
        }
        last = next;
        let (used, total) = disk_usage(&ctx.broker.config.data_dir).unwrap_or((0, 0));
        agent.report_load(BrokerLoad { partitions, disk_used_bytes: used, disk_total_bytes: total });
    }
}

/// (used, total) bytes of the file system holding `dir`.
fn disk_usage(dir: &std::path::Path) -> Option<(u64, u64)> {
    let s = rustix::fs::statvfs(dir).ok()?;
    let total = s.f_blocks.saturating_mul(s.f_frsize);
    let free = s.f_bavail.saturating_mul(s.f_frsize);
    Some((total.saturating_sub(free), total))
}
