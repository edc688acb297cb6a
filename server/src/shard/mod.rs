//! Shards: one OS thread per core, each with its own compio event loop (io_uring, or epoll as
//! the fallback) and the partitions it owns.
//!
//! Ownership: `Router::owner_of(topic, partition)` names the one shard that appends to and
//! reads from a partition. Work for a partition owned elsewhere crosses shards only through
//! [`router`] (with the messages of [`mailbox`]). Shard-local state (`ShardCtx`) is `!Send` by
//! construction (`Rc`). The shard layer starts nothing above it: whatever else runs on a shard
//! (listeners, the group coordinator) is started by the composition root through the hook
//! given to [`spawn_shards`].
//!
//! Modules: `table` (the partitions this shard owns), `router`, `mailbox`, `flusher` (group
//! commit), `preparer` (next segments created off the shard before their rolls).

mod flusher;
pub mod mailbox;
mod preparer;
pub mod router;
pub mod table;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use compio::driver::{DriverType, ProactorBuilder};

use crate::broker::Broker;
use crate::config::IoMode;
use mailbox::{ShardMsg, MAILBOX_CAPACITY};
use router::Router;
use table::PartitionTable;

/// What code running on a shard knows of it.
pub struct ShardCtx {
    pub id: usize,
    pub broker: Arc<Broker>,
    pub router: Arc<Router>,
    pub table: Rc<RefCell<PartitionTable>>,
}

pub type Ctx = Rc<ShardCtx>;

/// Called once on each shard's thread, inside its runtime, with that shard's share of the
/// start-up payload (e.g. its listener); it spawns the shard's other tasks.
pub type StartHook<T> = Arc<dyn Fn(&Ctx, T) -> std::io::Result<()> + Send + Sync>;

/// Starts one shard thread per element of `per_shard`. Returns the router (to reach the shards)
/// and the threads.
pub fn spawn_shards<T: Send + 'static>(
    broker: Arc<Broker>,
    per_shard: Vec<T>,
    start: StartHook<T>,
) -> std::io::Result<(Arc<Router>, Vec<std::thread::JoinHandle<()>>)> {
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..per_shard.len() {
        let (tx, rx) = flume::bounded(MAILBOX_CAPACITY);
        senders.push(tx);
        receivers.push(rx);
    }
    let router = Arc::new(Router::new(senders));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads = Vec::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    for (id, (rx, payload)) in receivers.into_iter().zip(per_shard).enumerate() {
        let (broker, router, start, ready) =
            (broker.clone(), router.clone(), start.clone(), ready_tx.clone());
        let thread = std::thread::Builder::new().name(format!("shard-{id}")).spawn(move || {
            if let Err(e) = run_shard(id, broker, router, rx, cores, payload, start, &ready) {
                tracing::error!("shard {id} failed: {e}");
                // Before start-up finished the caller reports the error; after, nothing can
                // take over this shard's partitions.
                if ready.send(Err(e)).is_err() {
                    std::process::exit(1);
                }
            }
        })?;
        threads.push(thread);
    }
    drop(ready_tx);
    // Every shard has its runtime before this returns, so start-up errors (io_uring refused,
    // a listener that cannot be registered) are the caller's to report.
    for _ in 0..threads.len() {
        match ready_rx.recv() {
            Ok(Ok(driver)) => tracing::debug!("shard started with the {driver:?} driver"),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(std::io::Error::other("a shard thread ended during start-up")),
        }
    }
    Ok((router, threads))
}

#[allow(clippy::too_many_arguments)]
fn run_shard<T>(
    id: usize,
    broker: Arc<Broker>,
    router: Arc<Router>,
    inbox: flume::Receiver<ShardMsg>,
    cores: usize,
    payload: T,
    start: StartHook<T>,
    ready: &std::sync::mpsc::Sender<std::io::Result<DriverType>>,
) -> std::io::Result<()> {
    let mut builder = runtime_builder(broker.config.io);
    if broker.config.pin_shards {
        builder.thread_affinity(HashSet::from([id % cores]));
    }
    let runtime = builder.build()?;
    runtime.block_on(async move {
        let (flush_tx, flush_rx) = flume::bounded(1);
        let (prep_tx, prep_rx) = flume::bounded(1);
        let _ = ready.send(Ok(compio::runtime::Runtime::with_current(|r| r.driver_type())));
        let table = PartitionTable::new(broker.clone(), router.clone(), id, flush_tx, prep_tx);
        let ctx = Rc::new(ShardCtx { id, broker, router, table: Rc::new(RefCell::new(table)) });
        ctx.table.borrow_mut().open_all_owned();
        compio::runtime::spawn(flusher::run(ctx.clone(), flush_rx)).detach();
        compio::runtime::spawn(preparer::run(ctx.clone(), prep_rx)).detach();
        compio::runtime::spawn(housekeeping(ctx.clone())).detach();
        start(&ctx, payload)?;
        serve_inbox(&ctx, inbox).await;
        Ok(())
    })
}

/// A shard's runtime builder: compio's fusion driver picks io_uring when the kernel allows it,
/// `--io poll` forces epoll.
fn runtime_builder(io: IoMode) -> compio::runtime::RuntimeBuilder {
    let mut proactor = ProactorBuilder::new();
    match io {
        IoMode::Poll => {
            proactor.driver_type(DriverType::Poll);
        }
        IoMode::Uring => {
            proactor.driver_type(DriverType::IoUring);
        }
        IoMode::Auto => {}
    }
    let mut builder = compio::runtime::RuntimeBuilder::new();
    builder.with_proactor(proactor);
    builder
}

/// The driver the shards will get, from a runtime built the same way and dropped (so it can be
/// logged, or refused, before any listener exists).
pub fn probe_driver(io: IoMode) -> std::io::Result<DriverType> {
    Ok(runtime_builder(io).build()?.driver_type())
}

async fn serve_inbox(ctx: &Ctx, inbox: flume::Receiver<ShardMsg>) {
    while let Ok(msg) = inbox.recv_async().await {
        if let ShardMsg::Shutdown(reply) = msg {
            ctx.table.borrow_mut().close_all();
            // Let connection tasks write the answers that the final fsync released.
            compio::time::sleep(Duration::from_millis(100)).await;
            let _ = reply.send(());
            break;
        }
        handle_msg(ctx, msg);
    }
}

/// The owner side of every message (also called directly when the sender is the owner).
fn handle_msg(ctx: &Ctx, msg: ShardMsg) {
    let mut table = ctx.table.borrow_mut();
    match msg {
        ShardMsg::Produce(calls) => {
            for call in calls {
                table.produce(call);
            }
        }
        ShardMsg::Read(calls, reply) => {
            let results = calls.into_iter().map(|(i, call)| (i, table.read(call))).collect();
            let _ = reply.send(results);
        }
        ShardMsg::ListOffset(call, reply) => {
            let _ = reply.send(table.list_offset(call));
        }
        ShardMsg::DeleteRecords(topic, partition, offset, live, reply) => {
            let _ = reply.send(table.delete_records(&topic, partition, offset, &live));
        }
        ShardMsg::Producers(topic, partition, reply) => {
            let _ = reply.send(table.producers(&topic, partition));
        }
        ShardMsg::DropTopic(topic, id, partitions, reply) => {
            table.drop_topic(&topic, id, partitions);
            let _ = reply.send(());
        }
        ShardMsg::Reconfigure(topic) => table.reconfigure(&topic),
        ShardMsg::Follow(calls) => {
            for call in calls {
                table.follow(call);
            }
        }
        ShardMsg::EpochEnd(calls, reply) => {
            let results = calls.into_iter().map(|(i, call)| (i, table.epoch_end(call))).collect();
            let _ = reply.send(results);
        }
        ShardMsg::RolesChanged => table.sync_roles(),
        ShardMsg::LogDirs(reply) => {
            let _ = reply.send(table.replica_logs());
        }
        ShardMsg::Shutdown(_) => unreachable!("handled by the inbox loop"),
    }
}

/// Rolling, retention and compaction every `log.retention.check.interval.ms`. Retention's
/// checkpoint and unlinks, and compaction's rewrites, run on blocking threads (at most one of
/// each per shard at a time, so the helper threads are bounded), so the shard goes on serving
/// meanwhile. Each runs in its own task, so rolls keep their pace: a compaction pass can take
/// long (it reads and rewrites whole segments), and both spread the freeing of dropped
/// segments' blocks over most of a period (`RetentionWrite::write_until`). No new retention
/// write or compaction pass starts before the last one ends.
async fn housekeeping(ctx: Ctx) {
    let period = Duration::from_millis(ctx.broker.config.log.retention_check_interval_ms.max(100));
    let (retaining, compacting) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));
    loop {
        compio::time::sleep(period).await;
        let writes = ctx.table.borrow_mut().housekeeping(!retaining.get());
        if !writes.is_empty() {
            retaining.set(true);
            compio::runtime::spawn(retain(ctx.clone(), writes, period, retaining.clone())).detach();
        }
        if !compacting.get() {
            let jobs = ctx.table.borrow_mut().compaction_jobs();
            if !jobs.is_empty() {
                compacting.set(true);
                compio::runtime::spawn(compact(ctx.clone(), jobs, period, compacting.clone())).detach();
            }
        }
    }
}

/// The share of a housekeeping period that freeing dropped segments may spend in pauses.
fn release_budget(period: Duration) -> Duration {
    period * 4 / 5
}

/// Runs retention writes on a blocking thread and reports them to their partitions.
async fn retain(
    ctx: Ctx,
    writes: Vec<(std::sync::Arc<str>, i32, riptide_engine::RetentionWrite)>,
    period: Duration,
    retaining: Rc<Cell<bool>>,
) {
    let files: usize = writes.iter().map(|(_, _, w)| w.file_count()).sum();
    let (n, started) = (writes.len(), std::time::Instant::now());
    let deadline = started + release_budget(period);
    let done = compio::runtime::spawn_blocking(move || {
        writes
            .into_iter()
            .map(|(topic, index, w)| (topic, index, w.write_until(deadline)))
            .collect::<Vec<_>>()
    })
    .await;
    tracing::debug!("retention: {n} partitions, {files} files removed in {:.1?}", started.elapsed());
    match done {
        Ok(done) => {
            let mut table = ctx.table.borrow_mut();
            for (topic, index, result) in done {
                table.retention_done(&topic, index, result);
            }
        }
        Err(_) => tracing::error!("retention writer panicked"),
    }
    retaining.set(false);
}

/// Runs compaction passes on a blocking thread and reports them to their partitions.
async fn compact(
    ctx: Ctx,
    jobs: Vec<(std::sync::Arc<str>, i32, riptide_engine::CompactionJob)>,
    period: Duration,
    compacting: Rc<Cell<bool>>,
) {
    let deadline = std::time::Instant::now() + release_budget(period);
    let done = compio::runtime::spawn_blocking(move || {
        jobs.into_iter()
            .map(|(topic, index, job)| (topic, index, job.run_until(deadline)))
            .collect::<Vec<_>>()
    })
    .await;
    match done {
        Ok(done) => {
            let replaced: Vec<_> = {
                let mut table = ctx.table.borrow_mut();
                done.into_iter()
                    .filter_map(|(topic, index, done)| table.compaction_done(&topic, index, done))
                    .collect()
            };
            // The replaced segments' files were unlinked by the swaps: their last close frees
            // the inodes (page cache and blocks), file-system work that goes in paced steps.
            if !replaced.is_empty() {
                let deadline = std::time::Instant::now() + release_budget(period);
                let released = compio::runtime::spawn_blocking(move || {
                    replaced
                        .into_iter()
                        .map(|r| r.release(deadline))
                        .filter_map(Result::err)
                        .collect::<Vec<_>>()
                })
                .await;
                for e in released.unwrap_or_default() {
                    tracing::warn!("cutting down a replaced segment failed ({e}); its close frees it whole");
                }
            }
        }
        // The passes are lost with their thread: their logs keep a pass "in flight", so
        // retention and truncation stay held off there until the partition is reopened.
        Err(_) => tracing::error!("compaction panicked"),
    }
    compacting.set(false);
}
