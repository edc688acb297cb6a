//! The leader side's ISR upkeep, one task per shard: every tick, the partitions this shard
//! leads say which ISR change is due (`Partition::isr_change`); each is sent to the active
//! controller through the broker agent, and the new ISR arrives back as applied metadata.
//! A refused or lost change is retried on a later tick.

use std::sync::atomic::Ordering;
use std::time::Duration;

use riptide_quorum::IsrChangeRequest;

use crate::shard::Ctx;

/// How often ISR membership is checked: an eighth of `replica.lag.time.max.ms` (125 ms at the
/// default 1 s), so a hung follower leaves the ISR at most that long after its lag ran out;
/// between 50 ms and 1 s.
fn tick(lag_max: Duration) -> Duration {
    (lag_max / 8).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

pub async fn run(ctx: Ctx) {
    let lag_max = Duration::from_millis(ctx.broker.config.cluster.replica_lag_time_max_ms.max(1));
    let period = tick(lag_max);
    while !ctx.broker.is_shutting_down() {
        compio::time::sleep(period).await;
        let (changes, gauges) = ctx.table.borrow_mut().isr_changes(lag_max);
        ctx.broker.metrics.set_replication(ctx.id, gauges);
        if ctx.id == 0 {
            let offline = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner()).offline_partitions();
            ctx.broker.metrics.offline_partitions.store(offline as u64, Ordering::Relaxed);
        }
        if changes.is_empty() {
            continue;
        }
        let Some(agent) = ctx.broker.cluster.agent.clone() else { continue };
        let mut requests = Vec::with_capacity(changes.len());
        for (topic, partition, change) in &changes {
            let current = ctx.broker.topic(topic).and_then(|t| t.state(*partition).map(|s| s.isr.len()));
            let counter = if change.isr.len() < current.unwrap_or(0) {
                &ctx.broker.metrics.isr_shrinks
            } else {
                &ctx.broker.metrics.isr_expands
            };
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                "{topic}-{partition}: asking for ISR {:?} at leader epoch {}: {}",
                change.isr,
                change.leader_epoch,
                change.reason
            );
            requests.push(IsrChangeRequest {
                topic: topic.to_string(),
                partition: *partition,
                leader_epoch: change.leader_epoch,
                partition_epoch: change.partition_epoch,
                isr: change.isr.clone(),
            });
        }
        // One request (one metadata log entry) for every change this shard wants now.
        let ctx = ctx.clone();
        compio::runtime::spawn(async move {
            let result = ctx.broker.cluster.run(async move { agent.alter_partitions(requests).await }).await;
            let mut table = ctx.table.borrow_mut();
            match result {
                Ok(verdicts) => {
                    for ((topic, partition, _), verdict) in changes.iter().zip(verdicts) {
                        if let Err(e) = verdict {
                            tracing::warn!("{topic}-{partition}: ISR change refused: {e}");
                            table.isr_change_failed(topic, *partition);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("{} ISR change(s) not made: {e}", changes.len());
                    for (topic, partition, _) in &changes {
                        table.isr_change_failed(topic, *partition);
                    }
                }
            }
        })
        .detach();
    }
}
