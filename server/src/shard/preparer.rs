//! Spare segments: the files of each busy partition's next segment (log, index, time index)
//! are created on a blocking thread before its roll, so the roll on the shard only renames
//! them (`riptide_engine::SegmentPrep`). Partitions ask after their appends; one blocking job
//! at a time per shard creates every spare asked for since the last one, so the helper work
//! is bounded (one thread per shard at most) however many partitions roll at once. A roll that
//! comes before its spare is ready creates its files on the shard, as without this.

use super::Ctx;

pub(super) async fn run(ctx: Ctx, wake: flume::Receiver<()>) {
    while wake.recv_async().await.is_ok() {
        let preps = ctx.table.borrow_mut().take_segment_preps();
        if preps.is_empty() {
            continue;
        }
        let done = compio::runtime::spawn_blocking(move || {
            preps.into_iter().map(|(topic, index, prep)| (topic, index, prep.run())).collect::<Vec<_>>()
        })
        .await;
        let Ok(done) = done else {
            // The preparations are lost with their thread: those logs keep waiting for a
            // report that never comes and roll by creating their files on the shard.
            tracing::error!("segment preparer panicked");
            continue;
        };
        let mut table = ctx.table.borrow_mut();
        for (topic, index, prepared) in done {
            table.segment_prepared(&topic, index, prepared);
        }
    }
}
