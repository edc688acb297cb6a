//! The leader side's ISR upkeep, one task per shard: every tick, the partitions this shard
//! leads say which ISR change is due (`Partition::isr_change`); each is sent to the active
//! controller through the broker agent, and the new ISR arrives back as applied metadata.
//! A refused or lost change is retried on a later tick.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::shard::Ctx;

/// How often ISR membership is checked (a fraction of `replica.lag.time.max.ms`, at most 1 s).
fn tick(lag_max: Duration) -> Duration {
    (lag_max / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
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
        for (topic, partition, change) in changes {
            let Some(agent) = ctx.broker.cluster.agent.clone() else { continue };
            let shrink = change.isr.len()
                < ctx.broker.topic(&topic).and_then(|t| t.state(partition).map(|s| s.isr.len())).unwrap_or(0);
            tracing::info!(
                "{topic}-{partition}: asking for ISR {:?} at leader epoch {}: {}",
                change.isr,
                change.leader_epoch.0,
                change.reason
            );
            let counter =
                if shrink { &ctx.broker.metrics.isr_shrinks } else { &ctx.broker.metrics.isr_expands };
            counter.fetch_add(1, Ordering::Relaxed);
            let ctx = ctx.clone();
            compio::runtime::spawn(async move {
                let t = topic.to_string();
                let (epoch, pepoch, isr) = (change.leader_epoch.0, change.partition_epoch, change.isr);
                let result = ctx
                    .broker
                    .cluster
                    .run(async move { agent.alter_partition(&t, partition, epoch, pepoch, isr).await })
                    .await;
                if let Err(e) = result {
                    tracing::warn!("{topic}-{partition}: ISR change refused: {e}");
                    ctx.table.borrow_mut().isr_change_failed(&topic, partition);
                }
            })
            .detach();
        }
    }
}
