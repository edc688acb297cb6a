//! Group commit: whenever appends have left partitions dirty, fdatasync each dirty segment
//! once (concurrently, through the event loop), then release every acknowledgement the sync
//! covered. Appends arriving during a sync are covered by the next round.

use std::time::Instant;

use super::Ctx;

pub(super) async fn run(ctx: Ctx, wake: flume::Receiver<()>) {
    while wake.recv_async().await.is_ok() {
        let jobs = ctx.table.borrow_mut().take_sync_jobs();
        if jobs.is_empty() {
            continue;
        }
        let started = Instant::now();
        let mut pending = Vec::with_capacity(jobs.len());
        for job in jobs {
            let files = job.target.files;
            let handle = compio::runtime::spawn(async move {
                for file in files {
                    let op = compio::driver::op::Sync::new(file, true);
                    compio::runtime::submit(op).await.0?;
                }
                Ok::<(), std::io::Error>(())
            });
            pending.push((job.topic, job.partition, job.target.up_to_offset, handle));
        }
        for (topic, index, up_to, handle) in pending {
            let result = match handle.await {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::other("fsync task panicked")),
            };
            ctx.table.borrow_mut().complete_sync(&topic, index, up_to, result);
        }
        ctx.broker.metrics.fsync_latency.record_us(started.elapsed().as_micros() as u64);
    }
}
