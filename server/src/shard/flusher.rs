//! Group commit: whenever appends have left partitions dirty, make every dirty segment durable
//! at once through the event loop, then release every acknowledgement the sync covered. Appends
//! arriving during a sync are covered by the next round.
//!
//! With several partitions dirty and `log.flush.method = syncfs` (the default), one `syncfs` on
//! a blocking thread replaces one fdatasync per segment file: the file system then commits its
//! journal and flushes the device once for all of them (measured in docs/BENCHMARKS.md). If it
//! fails, the round falls back to per-file fdatasync, which says which files failed.

use std::sync::Arc;
use std::time::Instant;

use riptide_engine::CheckpointWrite;

use super::table::SyncJob;
use super::Ctx;
use crate::config::FlushMethod;

/// A group commit at least this slow is logged at debug level, to line up with what ran beside it.
const SLOW_GROUP_COMMIT: std::time::Duration = std::time::Duration::from_millis(10);

pub(super) async fn run(ctx: Ctx, wake: flume::Receiver<()>) {
    while wake.recv_async().await.is_ok() {
        let jobs = ctx.table.borrow_mut().take_sync_jobs();
        if jobs.is_empty() {
            continue;
        }
        let started = Instant::now();
        let synced_all = ctx.broker.config.flush_method == FlushMethod::Syncfs
            && jobs.len() >= 2
            && syncfs(&jobs).await.is_ok();
        let n = jobs.len();
        let mut pending = Vec::with_capacity(n);
        for job in jobs {
            let target = job.target;
            let (files, dir) = (target.files, target.dir);
            let handle = (!synced_all).then(|| compio::runtime::spawn(sync_files(files, dir)));
            pending.push((job.topic, job.partition, target.up_to_offset, handle));
        }
        let mut checkpoints = Vec::new();
        for (topic, index, up_to, handle) in pending {
            let result = match handle {
                None => Ok(()),
                Some(h) => h.await.unwrap_or_else(|_| Err(std::io::Error::other("fsync task panicked"))),
            };
            if let Some(write) = ctx.table.borrow_mut().complete_sync(&topic, index, up_to, result) {
                checkpoints.push((topic, index, write));
            }
        }
        let took = started.elapsed();
        ctx.broker.metrics.fsync_latency.record_us(took.as_micros() as u64);
        if took >= SLOW_GROUP_COMMIT {
            tracing::debug!(partitions = n, syncfs = synced_all, "slow group commit: {took:.1?}");
        }
        if !checkpoints.is_empty() {
            compio::runtime::spawn(write_checkpoints(ctx.clone(), checkpoints)).detach();
        }
    }
}

/// Recovery-point checkpoints (two fsyncs and a rename each, once per segment the durable
/// offset enters) are written on a blocking thread, so neither the shard nor the next group
/// commit waits for them.
async fn write_checkpoints(ctx: Ctx, writes: Vec<(Arc<str>, i32, CheckpointWrite)>) {
    let (n, started) = (writes.len(), Instant::now());
    let done = compio::runtime::spawn_blocking(move || {
        writes
            .into_iter()
            .map(|(t, i, w)| {
                let r = w.write();
                (t, i, w, r)
            })
            .collect::<Vec<_>>()
    })
    .await;
    let Ok(done) = done else {
        tracing::error!("checkpoint writer panicked");
        return;
    };
    tracing::debug!("{n} recovery-point checkpoints written in {:.1?}", started.elapsed());
    let mut table = ctx.table.borrow_mut();
    for (topic, index, write, result) in done {
        table.checkpoint_done(&topic, index, &write, result);
    }
}

/// fdatasync every file, then fsync the directory (a new segment's entry) if given.
async fn sync_files(files: Vec<Arc<std::fs::File>>, dir: Option<Arc<std::fs::File>>) -> std::io::Result<()> {
    for file in files {
        let op = compio::driver::op::Sync::new(file, true);
        compio::runtime::submit(op).await.0?;
    }
    if let Some(dir) = dir {
        compio::runtime::submit(compio::driver::op::Sync::new(dir, false)).await.0?;
    }
    Ok(())
}

/// One syncfs covering every job (all segment files of a broker live on one file system).
async fn syncfs(jobs: &[SyncJob]) -> std::io::Result<()> {
    let Some(file) = jobs.iter().flat_map(|j| j.target.files.first()).next().cloned() else {
        return Ok(());
    };
    let result = compio::runtime::spawn_blocking(move || riptide_engine::io::syncfs(&file)).await;
    let result = result.unwrap_or_else(|_| Err(std::io::Error::other("syncfs task panicked")));
    if let Err(e) = &result {
        tracing::warn!("syncfs failed ({e}); syncing each segment file to find which");
    }
    result
}
