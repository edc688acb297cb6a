//! Shards: one OS thread per core, each with its own compio event loop (io_uring, or epoll as
//! the fallback), its own `SO_REUSEPORT` listener, and the partitions it owns.
//!
//! Ownership: `Broker::owner_of(topic, partition)` names the one shard that appends to and
//! reads from a partition's log. Work for a partition owned elsewhere crosses shards only
//! through [`mailbox`]; [`route_produce`], [`route_read`] and [`route_list_offset`] hide whether
//! the owner is local. Shard-local state (`ShardCtx`) is `!Send` by construction (`Rc`).

pub mod mailbox;
pub mod partition;

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compio::driver::{DriverType, ProactorBuilder};

use crate::broker::Broker;
use crate::config::IoMode;
use mailbox::{
    ListOffsetCall, ListOffsetOutcome, ProduceCall, ProduceOutcome, ReadCall, ReadOutcome, ShardMsg,
    MAILBOX_CAPACITY,
};
use partition::{Partitions, SharedPartitions};

/// What a connection task needs of its shard.
pub struct ShardCtx {
    pub id: usize,
    pub broker: Arc<Broker>,
    pub partitions: SharedPartitions,
}

pub type Ctx = Rc<ShardCtx>;

/// Starts every shard thread. The listeners are bound by the caller (so the port is known and
/// clients may connect as soon as this returns; the kernel queues them until accepted).
pub fn spawn_shards(
    broker: Arc<Broker>,
    listeners: Vec<std::net::TcpListener>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    assert_eq!(listeners.len(), broker.shard_count());
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..broker.shard_count() {
        let (tx, rx) = flume::bounded(MAILBOX_CAPACITY);
        senders.push(tx);
        receivers.push(rx);
    }
    broker.set_shards(senders);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads = Vec::new();
    for (id, (rx, listener)) in receivers.into_iter().zip(listeners).enumerate() {
        let broker = broker.clone();
        let thread = std::thread::Builder::new().name(format!("shard-{id}")).spawn(move || {
            if let Err(e) = run_shard(id, broker, rx, listener, cores) {
                eprintln!("riptide: shard {id} failed to start: {e}");
                std::process::exit(1);
            }
        })?;
        threads.push(thread);
    }
    Ok(threads)
}

fn run_shard(
    id: usize,
    broker: Arc<Broker>,
    inbox: flume::Receiver<ShardMsg>,
    listener: std::net::TcpListener,
    cores: usize,
) -> std::io::Result<()> {
    let mut proactor = ProactorBuilder::new();
    match broker.config.io {
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
    if broker.config.pin_shards {
        builder.thread_affinity(HashSet::from([id % cores]));
    }
    let runtime = builder.build()?;
    if id == 0 {
        eprintln!("riptide: shards use the {:?} driver", runtime.driver_type());
    }
    runtime.block_on(shard_main(id, broker, inbox, listener))
}

async fn shard_main(
    id: usize,
    broker: Arc<Broker>,
    inbox: flume::Receiver<ShardMsg>,
    listener: std::net::TcpListener,
) -> std::io::Result<()> {
    let (flush_tx, flush_rx) = flume::bounded(1);
    let partitions = Rc::new(RefCell::new(Partitions::new(broker.clone(), id, flush_tx)));
    partitions.borrow_mut().open_all_owned();
    let ctx = Rc::new(ShardCtx { id, broker: broker.clone(), partitions: partitions.clone() });
    let listener = compio::net::TcpListener::from_std(listener)?;
    compio::runtime::spawn(flusher(ctx.clone(), flush_rx)).detach();
    compio::runtime::spawn(housekeeping(ctx.clone())).detach();
    compio::runtime::spawn(crate::coordinator::background(ctx.clone())).detach();
    compio::runtime::spawn(crate::net::listener::accept_loop(ctx.clone(), listener)).detach();
    while let Ok(msg) = inbox.recv_async().await {
        if let ShardMsg::Shutdown(reply) = msg {
            partitions.borrow_mut().close_all();
            // Let connection tasks write the answers that the final fsync released.
            compio::time::sleep(Duration::from_millis(100)).await;
            let _ = reply.send(());
            break;
        }
        handle_msg(&ctx, msg);
    }
    Ok(())
}

fn handle_msg(ctx: &Ctx, msg: ShardMsg) {
    let mut parts = ctx.partitions.borrow_mut();
    match msg {
        ShardMsg::Produce(call, reply) => parts.produce(call, reply),
        ShardMsg::Read(call, reply) => {
            let _ = reply.send(parts.read(call));
        }
        ShardMsg::ListOffset(call, reply) => {
            let _ = reply.send(parts.list_offset(call));
        }
        ShardMsg::DropTopic(topic, reply) => {
            parts.drop_topic(&topic);
            let _ = reply.send(());
        }
        ShardMsg::Reconfigure(topic) => parts.reconfigure(&topic),
        ShardMsg::Shutdown(_) => unreachable!("handled by the inbox loop"),
    }
}

/// Group commit: whenever appends have left partitions dirty, fdatasync each dirty segment
/// once (concurrently, through the event loop), then release every acknowledgement the sync
/// covered. Appends arriving during a sync are covered by the next round.
async fn flusher(ctx: Ctx, wake: flume::Receiver<()>) {
    while wake.recv_async().await.is_ok() {
        let jobs = ctx.partitions.borrow_mut().take_sync_jobs();
        if jobs.is_empty() {
            continue;
        }
        let started = Instant::now();
        let mut pending = Vec::with_capacity(jobs.len());
        for (topic, index, target) in jobs {
            let files = target.files.clone();
            let handle = compio::runtime::spawn(async move {
                for file in files {
                    let op = compio::driver::op::Sync::new(file, true);
                    compio::runtime::submit(op).await.0?;
                }
                Ok::<(), std::io::Error>(())
            });
            pending.push((topic, index, target.up_to_offset, handle));
        }
        for (topic, index, up_to, handle) in pending {
            let result = match handle.await {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::other("fsync task panicked")),
            };
            ctx.partitions.borrow_mut().complete_sync(&topic, index, up_to, result);
        }
        ctx.broker.metrics.fsync_latency.record_us(started.elapsed().as_micros() as u64);
    }
}

async fn housekeeping(ctx: Ctx) {
    let period = Duration::from_millis(ctx.broker.config.log.retention_check_interval_ms.max(100));
    loop {
        compio::time::sleep(period).await;
        ctx.partitions.borrow_mut().housekeeping();
    }
}

/// A shard that stopped answering (shutting down) turns into NOT_LEADER_OR_FOLLOWER, which
/// makes clients refresh metadata and retry rather than fail.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

pub async fn route_produce(ctx: &Ctx, call: ProduceCall) -> ProduceOutcome {
    let owner = ctx.broker.owner_of(&call.topic, call.partition);
    let (tx, rx) = flume::bounded(1);
    if owner == ctx.id {
        ctx.partitions.borrow_mut().produce(call, tx);
    } else if ctx.broker.shard(owner).send_async(ShardMsg::Produce(call, tx)).await.is_err() {
        return ProduceOutcome::error(NOT_LEADER_OR_FOLLOWER, None);
    }
    rx.recv_async().await.unwrap_or_else(|_| ProduceOutcome::error(NOT_LEADER_OR_FOLLOWER, None))
}

pub async fn route_read(ctx: &Ctx, call: ReadCall) -> ReadOutcome {
    let owner = ctx.broker.owner_of(&call.topic, call.partition);
    if owner == ctx.id {
        return ctx.partitions.borrow_mut().read(call);
    }
    let (tx, rx) = flume::bounded(1);
    let gone = ReadOutcome {
        error_code: NOT_LEADER_OR_FOLLOWER,
        high_watermark: -1,
        log_start_offset: -1,
        slice: None,
    };
    if ctx.broker.shard(owner).send_async(ShardMsg::Read(call, tx)).await.is_err() {
        return gone;
    }
    rx.recv_async().await.unwrap_or(gone)
}

pub async fn route_list_offset(ctx: &Ctx, call: ListOffsetCall) -> ListOffsetOutcome {
    let owner = ctx.broker.owner_of(&call.topic, call.partition);
    if owner == ctx.id {
        return ctx.partitions.borrow_mut().list_offset(call);
    }
    let (tx, rx) = flume::bounded(1);
    let gone =
        ListOffsetOutcome { error_code: NOT_LEADER_OR_FOLLOWER, offset: -1, timestamp: -1, leader_epoch: -1 };
    if ctx.broker.shard(owner).send_async(ShardMsg::ListOffset(call, tx)).await.is_err() {
        return gone;
    }
    rx.recv_async().await.unwrap_or(gone)
}

/// Sends a message built by `make` to every shard and waits until each has handled it.
pub async fn broadcast_and_wait(ctx: &Ctx, make: impl Fn(flume::Sender<()>) -> ShardMsg) {
    let mut waits = Vec::new();
    for shard in 0..ctx.broker.shard_count() {
        let (tx, rx) = flume::bounded(1);
        if shard == ctx.id {
            handle_msg(ctx, make(tx));
        } else if ctx.broker.shard(shard).send_async(make(tx)).await.is_err() {
            continue;
        }
        waits.push(rx);
    }
    for rx in waits {
        let _ = rx.recv_async().await;
    }
}

/// Tells every shard to reload a topic's configs (fire and forget: the catalog is already
/// updated, so partitions opened later pick the new values up anyway).
pub fn broadcast_reconfigure(ctx: &Ctx, topic: &str) {
    for shard in 0..ctx.broker.shard_count() {
        if shard == ctx.id {
            ctx.partitions.borrow_mut().reconfigure(topic);
        } else {
            let _ = ctx.broker.shard(shard).try_send(ShardMsg::Reconfigure(Arc::from(topic)));
        }
    }
}

/// Asks every shard to flush and close, and waits for them (SIGTERM / SIGINT).
pub fn shutdown_all(broker: &Broker) {
    broker.shutting_down.store(true, Ordering::SeqCst);
    let mut waits = Vec::new();
    for shard in 0..broker.shard_count() {
        let (tx, rx) = flume::bounded(1);
        if broker.shard(shard).send(ShardMsg::Shutdown(tx)).is_ok() {
            waits.push(rx);
        }
    }
    for rx in waits {
        let _ = rx.recv_timeout(Duration::from_secs(30));
    }
}
