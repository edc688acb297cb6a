//! Which shard owns a partition, and the only code that sends work across shards.
//!
//! `route_*` hide whether the owner is local: a local partition is served by a direct call
//! (no queue, same code), a remote one through the owner's bounded inbox. Produce and Fetch fan
//! out per owner shard: one message carries all of a request's partitions for that shard, and
//! every shard works on its part at the same time. A shard that stopped answering (shutting
//! down) turns into `NotLeaderOrFollower`, which makes clients refresh metadata and retry.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::mailbox::{
    EpochEndCall, EpochEndOutcome, FollowCall, ListOffsetCall, ListOffsetOutcome, ProduceCall, ReadCall,
    ReadOutcome, ShardMsg, ShardSender,
};
use super::{handle_msg, Ctx};
use crate::partition::{Acks, AppendReply, AppendResult, Offset, Origin, PartitionError, TxnMarker};

/// The shards' inboxes, in shard order.
pub struct Router {
    senders: Vec<ShardSender>,
}

impl Router {
    pub fn new(senders: Vec<ShardSender>) -> Router {
        assert!(!senders.is_empty(), "a broker has at least one shard");
        Router { senders }
    }

    pub fn shard_count(&self) -> usize {
        self.senders.len()
    }

    /// The shard that owns a partition: consecutive partitions of a topic land on
    /// consecutive shards, so a topic's load spreads evenly.
    pub fn owner_of(&self, topic: &str, partition: i32) -> usize {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in topic.as_bytes() {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        ((h.wrapping_add(partition as u64)) % self.senders.len() as u64) as usize
    }

    /// Asks every shard to flush and close, and waits for them (SIGTERM / SIGINT).
    pub fn shutdown_all(&self) {
        let mut waits = Vec::new();
        for shard in &self.senders {
            let (tx, rx) = flume::bounded(1);
            if shard.send(ShardMsg::Shutdown(tx)).is_ok() {
                waits.push(rx);
            }
        }
        for rx in waits {
            let _ = rx.recv_timeout(Duration::from_secs(30));
        }
    }
}

/// Starts every append of `calls` on its owner shard; each call answers itself. Calls for one
/// remote shard travel in one message, sent before the local appends run, so the owners work
/// on their parts at the same time as this shard does.
pub async fn route_produce(ctx: &Ctx, calls: Vec<ProduceCall>) {
    let shards = ctx.router.shard_count();
    let mut local = Vec::new();
    let mut remote: Vec<Vec<ProduceCall>> = Vec::new();
    for call in calls {
        let owner = ctx.router.owner_of(&call.topic, call.partition);
        if owner == ctx.id {
            local.push(call);
        } else {
            if remote.is_empty() {
                remote.resize_with(shards, Vec::new);
            }
            remote[owner].push(call);
        }
    }
    for (owner, calls) in remote.into_iter().enumerate().filter(|(_, c)| !c.is_empty()) {
        let sent = ctx.router.senders[owner].send_async(ShardMsg::Produce(calls)).await;
        if let Err(flume::SendError(ShardMsg::Produce(calls))) = sent {
            for call in calls {
                let _ = call.reply.send(Err(PartitionError::NotLeaderOrFollower));
            }
        }
    }
    if !local.is_empty() {
        let mut table = ctx.table.borrow_mut();
        for call in local {
            table.produce(call);
        }
    }
}

/// One append, answered when its durability policy allows.
pub async fn route_produce_one(
    ctx: &Ctx,
    topic: Arc<str>,
    partition: i32,
    records: Bytes,
    acks: Acks,
) -> AppendResult {
    route_produce_from(ctx, topic, partition, records, Origin::Client, acks).await
}

/// `route_produce_one` for batches of a given origin (a coordinator's transactional batches).
pub async fn route_produce_from(
    ctx: &Ctx,
    topic: Arc<str>,
    partition: i32,
    records: Bytes,
    origin: Origin,
    acks: Acks,
) -> AppendResult {
    let (tx, rx) = flume::bounded(1);
    let reply = AppendReply::new(tx, 0);
    let call = ProduceCall {
        topic,
        partition,
        records,
        landed: None,
        mark: None,
        origin,
        marker: None,
        acks,
        reply,
    };
    route_produce(ctx, vec![call]).await;
    rx.recv_async().await.map_or(Err(PartitionError::NotLeaderOrFollower), |(_, r)| r)
}

/// Transaction markers, each on its partition's owner shard, all at once; answered (in call
/// order) when durable on the ISR (acks=all), as Kafka writes them.
pub async fn route_markers(ctx: &Ctx, markers: Vec<(Arc<str>, i32, TxnMarker)>) -> Vec<AppendResult> {
    let n = markers.len();
    let (tx, rx) = flume::bounded(n.max(1));
    let calls = markers
        .into_iter()
        .enumerate()
        .map(|(i, (topic, partition, m))| ProduceCall {
            topic,
            partition,
            records: Bytes::new(),
            landed: None,
            mark: None,
            origin: Origin::Coordinator,
            marker: Some(m),
            acks: Acks::All,
            reply: AppendReply::new(tx.clone(), i),
        })
        .collect();
    drop(tx);
    route_produce(ctx, calls).await;
    let mut out: Vec<AppendResult> = (0..n).map(|_| Err(PartitionError::NotLeaderOrFollower)).collect();
    while let Ok((i, r)) = rx.recv_async().await {
        if let Some(slot) = out.get_mut(i) {
            *slot = r;
        }
    }
    out
}

/// A call addressed to one partition, answered by its owner shard.
trait Addressed {
    fn partition(&self) -> (&str, i32);
}

impl Addressed for ReadCall {
    fn partition(&self) -> (&str, i32) {
        (&self.topic, self.partition)
    }
}

impl Addressed for EpochEndCall {
    fn partition(&self) -> (&str, i32) {
        (&self.topic, self.partition)
    }
}

/// Runs every call on its owner shard, all owners at once (one message per remote owner,
/// built by `message`; local calls through `local`); the outcomes are in call order, and a
/// shard that does not answer makes NOT_LEADER_OR_FOLLOWER.
async fn fan_out<C: Addressed, O>(
    ctx: &Ctx,
    calls: Vec<C>,
    local: impl Fn(&mut super::table::PartitionTable, C) -> Result<O, PartitionError>,
    message: impl Fn(Vec<(usize, C)>, flume::Sender<Vec<(usize, Result<O, PartitionError>)>>) -> ShardMsg,
) -> Vec<Result<O, PartitionError>> {
    let shards = ctx.router.shard_count();
    let mut out: Vec<Option<Result<O, PartitionError>>> = Vec::with_capacity(calls.len());
    out.resize_with(calls.len(), || None);
    let mut remote: Vec<Vec<(usize, C)>> = Vec::new();
    for (i, call) in calls.into_iter().enumerate() {
        let (topic, partition) = call.partition();
        let owner = ctx.router.owner_of(topic, partition);
        if owner == ctx.id {
            out[i] = Some(local(&mut ctx.table.borrow_mut(), call));
        } else {
            if remote.is_empty() {
                remote.resize_with(shards, Vec::new);
            }
            remote[owner].push((i, call));
        }
    }
    let mut waits = Vec::new();
    for (owner, calls) in remote.into_iter().enumerate().filter(|(_, c)| !c.is_empty()) {
        let (tx, rx) = flume::bounded(1);
        if ctx.router.senders[owner].send_async(message(calls, tx)).await.is_ok() {
            waits.push(rx);
        }
    }
    for rx in waits {
        if let Ok(results) = rx.recv_async().await {
            for (i, r) in results {
                out[i] = Some(r);
            }
        }
    }
    out.into_iter().map(|o| o.unwrap_or(Err(PartitionError::NotLeaderOrFollower))).collect()
}

/// Reads every call on its owner shard, all owners at once; the outcomes are in call order.
pub async fn route_read(ctx: &Ctx, calls: Vec<ReadCall>) -> Vec<ReadOutcome> {
    fan_out(ctx, calls, |t, c| t.read(c), ShardMsg::Read).await
}

/// One read on the partition's owner shard.
pub async fn route_read_one(ctx: &Ctx, call: ReadCall) -> ReadOutcome {
    route_read(ctx, vec![call]).await.pop().unwrap_or(Err(PartitionError::NotLeaderOrFollower))
}

pub async fn route_list_offset(ctx: &Ctx, call: ListOffsetCall) -> ListOffsetOutcome {
    let owner = ctx.router.owner_of(&call.topic, call.partition);
    if owner == ctx.id {
        return ctx.table.borrow_mut().list_offset(call);
    }
    let (tx, rx) = flume::bounded(1);
    if ctx.router.senders[owner].send_async(ShardMsg::ListOffset(call, tx)).await.is_err() {
        return Err(PartitionError::NotLeaderOrFollower);
    }
    rx.recv_async().await.unwrap_or(Err(PartitionError::NotLeaderOrFollower))
}

/// DeleteRecords on the partition's owner shard: the low watermark afterwards.
pub async fn route_delete_records(
    ctx: &Ctx,
    topic: Arc<str>,
    partition: i32,
    offset: Offset,
    live: Arc<[riptide_model::NodeId]>,
) -> super::mailbox::DeleteRecordsOutcome {
    let owner = ctx.router.owner_of(&topic, partition);
    if owner == ctx.id {
        return ctx.table.borrow_mut().delete_records(&topic, partition, offset, &live);
    }
    let (tx, rx) = flume::bounded(1);
    if ctx.router.senders[owner]
        .send_async(ShardMsg::DeleteRecords(topic, partition, offset, live, tx))
        .await
        .is_err()
    {
        return Err(PartitionError::NotLeaderOrFollower);
    }
    rx.recv_async().await.unwrap_or(Err(PartitionError::NotLeaderOrFollower))
}

/// A partition's producers, from its owner shard (DescribeProducers).
pub async fn route_producers(ctx: &Ctx, topic: Arc<str>, partition: i32) -> super::mailbox::ProducersOutcome {
    let owner = ctx.router.owner_of(&topic, partition);
    if owner == ctx.id {
        return ctx.table.borrow_mut().producers(&topic, partition);
    }
    let (tx, rx) = flume::bounded(1);
    if ctx.router.senders[owner].send_async(ShardMsg::Producers(topic, partition, tx)).await.is_err() {
        return Err(PartitionError::NotLeaderOrFollower);
    }
    rx.recv_async().await.unwrap_or(Err(PartitionError::NotLeaderOrFollower))
}

/// Starts every follower call on its owner shard; each answers on its own reply channel.
pub async fn route_follow(ctx: &Ctx, calls: Vec<FollowCall>) {
    let shards = ctx.router.shard_count();
    let mut remote: Vec<Vec<FollowCall>> = Vec::new();
    for call in calls {
        let owner = ctx.router.owner_of(&call.topic, call.partition);
        if owner == ctx.id {
            ctx.table.borrow_mut().follow(call);
        } else {
            if remote.is_empty() {
                remote.resize_with(shards, Vec::new);
            }
            remote[owner].push(call);
        }
    }
    for (owner, calls) in remote.into_iter().enumerate().filter(|(_, c)| !c.is_empty()) {
        if let Err(flume::SendError(ShardMsg::Follow(calls))) =
            ctx.router.senders[owner].send_async(ShardMsg::Follow(calls)).await
        {
            for call in calls {
                let _ = call.reply.send(Err(PartitionError::NotLeaderOrFollower));
            }
        }
    }
}

/// OffsetForLeaderEpoch lookups on their owner shards, all at once; outcomes in call order.
pub async fn route_epoch_end(ctx: &Ctx, calls: Vec<EpochEndCall>) -> Vec<EpochEndOutcome> {
    fan_out(ctx, calls, |t, c| t.epoch_end(c), ShardMsg::EpochEnd).await
}

/// Every shard's open replicas, for DescribeLogDirs.
pub async fn gather_replica_logs(ctx: &Ctx) -> Vec<super::mailbox::ReplicaLog> {
    let mut out = Vec::new();
    let mut waits = Vec::new();
    for (shard, sender) in ctx.router.senders.iter().enumerate() {
        if shard == ctx.id {
            out.extend(ctx.table.borrow().replica_logs());
            continue;
        }
        let (tx, rx) = flume::bounded(1);
        if sender.send_async(ShardMsg::LogDirs(tx)).await.is_ok() {
            waits.push(rx);
        }
    }
    for rx in waits {
        if let Ok(logs) = rx.recv_async().await {
            out.extend(logs);
        }
    }
    out
}

/// Tells every shard that partition roles changed in the applied metadata.
pub fn broadcast_roles_changed(ctx: &Ctx) {
    for (shard, sender) in ctx.router.senders.iter().enumerate() {
        if shard == ctx.id {
            ctx.table.borrow_mut().sync_roles();
        } else {
            let _ = sender.try_send(ShardMsg::RolesChanged);
        }
    }
}

/// Sends a message built by `make` to every shard and waits until each has handled it.
pub async fn broadcast_and_wait(ctx: &Ctx, make: impl Fn(flume::Sender<()>) -> ShardMsg) {
    let mut waits = Vec::new();
    for (shard, sender) in ctx.router.senders.iter().enumerate() {
        let (tx, rx) = flume::bounded(1);
        if shard == ctx.id {
            handle_msg(ctx, make(tx));
        } else if sender.send_async(make(tx)).await.is_err() {
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
    for (shard, sender) in ctx.router.senders.iter().enumerate() {
        if shard == ctx.id {
            ctx.table.borrow_mut().reconfigure(topic);
        } else {
            let _ = sender.try_send(ShardMsg::Reconfigure(Arc::from(topic)));
        }
    }
}
