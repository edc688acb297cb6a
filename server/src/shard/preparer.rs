//! Spare segments: the files of each busy partition's next segment (log, index, time index)
//! are created on a blocking thread before its roll, so the roll on the shard only renames
//! them (`riptide_engine::SegmentPrep`). Partitions ask after their appends; one blocking job
//! at a time per shard creates every spare asked for since the last one, so the helper work
//! is bounded (one thread per shard at most) however many partitions roll at once. A roll that
//! comes before its spare is ready creates its files on the shard, as without this.
//!
//! The same job removes deleted partitions' directories (issue 22): a deletion on the shard
//! only renames the directory out of the way (`riptide_engine::DirRemoval`); its unlinks and
//! the parent's fsync run here. A broker stopped before that removes the rest at start-up.

use super::Ctx;

pub(super) async fn run(ctx: Ctx, wake: flume::Receiver<()>) {
    while wake.recv_async().await.is_ok() {
        let (preps, removals) = {
            let mut table = ctx.table.borrow_mut();
            (table.take_segment_preps(), table.take_removals())
        };
        if preps.is_empty() && removals.is_empty() {
            continue;
        }
        let (n, started) = (preps.len() + removals.len(), std::time::Instant::now());
        let done = compio::runtime::spawn_blocking(move || {
            for r in removals {
                if let Err(e) = r.run() {
                    let dir = r.dir().map(|d| d.display().to_string()).unwrap_or_default();
                    tracing::error!("removing deleted partition directory {dir}: {e}");
                }
            }
            preps.into_iter().map(|(topic, index, prep)| (topic, index, prep.run())).collect::<Vec<_>>()
        })
        .await;
        let Ok(done) = done else {
            // The preparations are lost with their thread: those logs keep waiting for a
            // report that never comes and roll by creating their files on the shard.
            tracing::error!("segment preparer panicked");
            continue;
        };
        tracing::debug!("{n} spare segments and removals done in {:.1?}", started.elapsed());
        let mut table = ctx.table.borrow_mut();
        for (topic, index, prepared) in done {
            table.segment_prepared(&topic, index, prepared);
        }
    }
}
