//! Share groups on the wire (KIP-932): ShareGroupHeartbeat and ShareGroupDescribe at the group
//! coordinator; ShareFetch and ShareAcknowledge at the partition leaders (`coordinator::shares`
//! keeps their state).
//!
//! ShareFetch, in order: the share session (open, next epoch, close), the piggy-backed
//! acknowledgements (answered once durable), then acquisition: for each partition of the
//! session that has something to hand out, read whole batches from where the share-partition
//! would deliver next and acquire the records read, up to `max_records` in all (batch-optimized
//! mode runs on to the end of the batch it stopped in; v2's record-limit mode never exceeds it).
//! With nothing acquired, the request long-polls up to `max_wait_ms`: woken by a new high
//! watermark or by an acknowledgement or release in the share-partition, and rechecked every
//! 100 ms for records whose locks expired. Partitions with neither data nor an error are left
//! out of the answer, as Kafka's share sessions do. A v2 request with `IsRenewAck` only
//! acknowledges (RENEW restarts the member's locks) and fetches nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::share_acknowledge_response as sar;
use kafka_protocol::messages::share_fetch_response as sfr;
use kafka_protocol::messages::share_group_describe_response as sgd;
use kafka_protocol::messages::share_group_heartbeat_response as sgh;
use kafka_protocol::messages::{
    BrokerId, ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest, ShareFetchResponse,
    ShareGroupDescribeRequest, ShareGroupDescribeResponse, ShareGroupHeartbeatRequest,
    ShareGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::error::ToKafka;
use super::{Ctx, RequestInfo};
use crate::coordinator::assignor::TopicPartitions;
use crate::coordinator::share_group::{ShareGroup, ShareHeartbeat, ShareTimings};
use crate::coordinator::share_partition::{delivery_complete, RENEW};
use crate::coordinator::share_state::StateKey;
use crate::coordinator::shares::{wait_written, GroupShareSettings, ShareError, TopicIdPartition};
use crate::coordinator::GroupError;
use crate::partition::{Offset, OffsetSpec, PartitionError};
use crate::security::acl::{op, resource};
use crate::security::at_rest::open_all;
use crate::shard::mailbox::{ListOffsetCall, ReadCall};
use crate::shard::router::{route_list_offset, route_read_one};

/// Upper bound on a long poll, whatever the client asks.
const MAX_WAIT_MS_LIMIT: i32 = 60_000;
/// How often a waiting fetch looks again for released or expired records.
const RECHECK: Duration = Duration::from_millis(100);
/// Bytes read per partition and round at most.
const PARTITION_READ_BYTES: u32 = 1 << 20;
/// Kafka's "authorized operations omitted" (-2^31).
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn group_settings(ctx: &Ctx, group: &str) -> GroupShareSettings {
    let cat = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
    ctx.shares.settings(cat.group_configs.get(group))
}

fn timings(ctx: &Ctx, group: &str) -> ShareTimings {
    let cat = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
    let cfg = &ctx.shares.cfg;
    let get =
        |k: &str| cat.group_configs.get(group).and_then(|c| c.get(k)).and_then(|v| v.parse::<i64>().ok());
    ShareTimings {
        session_timeout_ms: get("share.session.timeout.ms")
            .map_or(cfg.session_timeout_ms, |v| v.max(1) as u64),
        heartbeat_interval_ms: get("share.heartbeat.interval.ms")
            .map_or(cfg.heartbeat_interval_ms, |v| v.clamp(1, i64::from(i32::MAX)) as i32),
    }
}

// ---- ShareGroupHeartbeat / ShareGroupDescribe --------------------------------------------------

pub fn heartbeat(
    ctx: &Ctx,
    info: &RequestInfo,
    req: ShareGroupHeartbeatRequest,
) -> ShareGroupHeartbeatResponse {
    let broker = &ctx.broker;
    let group_id = req.group_id.0.to_string();
    let subscribed =
        req.subscribed_topic_names.map(|ts| ts.into_iter().map(|t| t.0.to_string()).collect::<Vec<_>>());
    // Kafka checks DESCRIBE on each subscribed topic; unauthorized ones fail the heartbeat.
    if let Some(names) = &subscribed {
        if names.iter().any(|t| !ctx.allowed(info, op::DESCRIBE, resource::TOPIC, t)) {
            return ShareGroupHeartbeatResponse::default()
                .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                .with_member_epoch(-1);
        }
    }
    let hb = ShareHeartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        rack_id: req.rack_id.map(|r| r.to_string()),
        subscribed_topic_names: subscribed,
        client_id: info.client_id().to_string(),
        client_host: info.client_host.clone(),
    };
    let lookup = |name: &str| broker.topic(name).map(|t| t.partitions);
    let ids = |name: &str| broker.topic(name).map(|t| t.id);
    let timings = timings(ctx, &group_id);
    let result = ctx
        .coordinator
        .with_group(&group_id, |groups, now| {
            groups.share_heartbeat(&group_id, hb, &lookup, &ids, timings, now)
        })
        .and_then(|r| r);
    match result {
        Err(e) => ShareGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(s(e.to_string())))
            .with_member_epoch(-1),
        Ok(r) => {
            let assignment = r.assignment.map(|a| {
                let tps = super::group::by_topic_id(broker, a)
                    .map(|(id, ps)| sgh::TopicPartitions::default().with_topic_id(id).with_partitions(ps))
                    .collect();
                sgh::Assignment::default().with_topic_partitions(tps)
            });
            ShareGroupHeartbeatResponse::default()
                .with_member_id(Some(s(r.member_id)))
                .with_member_epoch(r.member_epoch)
                .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
                .with_assignment(assignment)
        }
    }
}

pub fn describe(ctx: &Ctx, info: &RequestInfo, req: ShareGroupDescribeRequest) -> ShareGroupDescribeResponse {
    let broker = &ctx.broker;
    let ids = |name: &str| broker.topic(name).map(|t| Uuid::from_u128(t.id));
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let found = if !ctx.allowed(info, op::DESCRIBE, resource::GROUP, &id.0) {
                Err(GroupError::GroupAuthorizationFailed)
            } else {
                ctx.coordinator
                    .with_group(&id.0, |groups, _| groups.share_group(&id.0).map(|g| described(g, &ids)))
            };
            let base = sgd::DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
            match found {
                Ok(Some(g)) => g.with_group_id(id).with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED),
                Ok(None) => {
                    let message = format!("Group {} is not a share group.", &*id.0);
                    base.with_error_code(GroupError::GroupIdNotFound.code())
                        .with_error_message(Some(s(message)))
                }
                Err(e) => base.with_error_code(e.code()).with_error_message(Some(s(e.to_string()))),
            }
        })
        .collect();
    ShareGroupDescribeResponse::default().with_groups(groups)
}

fn described(g: &ShareGroup, ids: &dyn Fn(&str) -> Option<Uuid>) -> sgd::DescribedGroup {
    let assignment = |a: &TopicPartitions| {
        let tps = a
            .iter()
            .filter_map(|(name, ps)| {
                Some(
                    sgd::TopicPartitions::default()
                        .with_topic_id(ids(name)?)
                        .with_topic_name(TopicName(s(name.clone())))
                        .with_partitions(ps.iter().copied().collect()),
                )
            })
            .collect();
        sgd::Assignment::default().with_topic_partitions(tps)
    };
    let members = g
        .members
        .values()
        .map(|m| {
            sgd::Member::default()
                .with_member_id(s(m.id.clone()))
                .with_rack_id(m.rack_id.clone().map(s))
                .with_member_epoch(m.epoch)
                .with_client_id(s(m.client_id.clone()))
                .with_client_host(s(m.client_host.clone()))
                .with_subscribed_topic_names(m.subscribed.iter().map(|t| TopicName(s(t.clone()))).collect())
                .with_assignment(assignment(&m.assigned))
        })
        .collect();
    sgd::DescribedGroup::default()
        .with_group_state(s(g.state_name()))
        .with_group_epoch(g.group_epoch)
        .with_assignment_epoch(g.assignment_epoch)
        .with_assignor_name(s("simple"))
        .with_members(members)
}

// ---- ShareFetch / ShareAcknowledge -------------------------------------------------------------

/// One partition a share request names, its topic resolved.
struct Target {
    topic_id: u128,
    partition: i32,
    topic: Arc<str>,
    sealed: bool,
    /// The partition's leader epoch as this broker leads it.
    leader_epoch: i32,
    /// Refused before anything else: unknown topic id, not authorized, not the leader.
    refused: Option<PartitionError>,
}

fn resolve(ctx: &Ctx, info: &RequestInfo, topic_id: u128, partition: i32) -> Target {
    let meta = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner()).by_id(topic_id);
    let Some(meta) = meta else {
        return Target {
            topic_id,
            partition,
            topic: Arc::from(""),
            sealed: false,
            leader_epoch: -1,
            refused: Some(PartitionError::UnknownTopicId),
        };
    };
    let topic: Arc<str> = Arc::from(meta.name.as_str());
    let sealed = meta.configs.get("encryption.at.rest").is_some_and(|v| v != "false");
    let leader_epoch = meta.state(partition).map_or(-1, |s| s.leader_epoch.0);
    let refused = if !ctx.allowed(info, op::READ, resource::TOPIC, &meta.name) {
        Some(PartitionError::TopicAuthorizationFailed)
    } else if partition < 0 || partition >= meta.partitions {
        Some(PartitionError::UnknownTopicOrPartition)
    } else if !ctx.broker.leads(&meta, partition) {
        Some(PartitionError::NotLeaderOrFollower)
    } else {
        None
    };
    Target { topic_id, partition, topic, sealed, leader_epoch, refused }
}

/// What a share request answers for one partition.
#[derive(Default)]
struct PartitionAnswer {
    error: Option<(i16, String)>,
    ack_error: Option<(i16, String)>,
    records: Option<Bytes>,
    acquired: Vec<sfr::AcquiredRecords>,
    leader: Option<(i32, i32)>,
}

impl PartitionAnswer {
    fn is_news(&self) -> bool {
        self.error.is_some() || self.ack_error.is_some() || !self.acquired.is_empty()
    }
}

fn refusal(ctx: &Ctx, t: &Target, e: &PartitionError) -> PartitionAnswer {
    let code = super::error::partition_code(e);
    let leader =
        super::leader_hint::current_leader(&ctx.broker, &t.topic, t.partition).map(|l| (l.leader, l.epoch.0));
    PartitionAnswer { error: Some((code, e.to_string())), leader, ..Default::default() }
}

type AckBatches = Vec<(i64, i64, Vec<i8>)>;

/// Applies the acknowledgements of each named partition; answers once they are durable.
async fn acknowledge(
    ctx: &Ctx,
    group: &str,
    member: &str,
    acks: Vec<(Target, AckBatches)>,
    renew_allowed: bool,
    answers: &mut BTreeMap<TopicIdPartition, PartitionAnswer>,
) {
    let mut waits = Vec::new();
    for (t, batches) in acks {
        let key = (t.topic_id, t.partition);
        if let Some(e) = &t.refused {
            let r = refusal(ctx, &t, e);
            let a = answers.entry(key).or_default();
            a.ack_error = r.error;
            a.leader = r.leader;
            continue;
        }
        if batches.is_empty() {
            continue;
        }
        // RENEW needs v2 and the request's IsRenewAck (KIP-1222); nothing of the partition's
        // acknowledgements is applied otherwise.
        if !renew_allowed && batches.iter().any(|(_, _, types)| types.contains(&RENEW)) {
            let message = "Renew acknowledgements need a v2 request with IsRenewAck set.".to_string();
            answers.entry(key).or_default().ack_error = Some((ResponseError::InvalidRequest.code(), message));
            continue;
        }
        let state_key = StateKey { group: group.to_string(), topic_id: t.topic_id, partition: t.partition };
        match ctx.shares.acknowledge(&state_key, member, &batches) {
            Ok(done) => waits.push((key, done)),
            Err(e) => answers.entry(key).or_default().ack_error = Some((e.code(), e.to_string())),
        }
    }
    for (key, done) in waits {
        if let Err(e) = wait_written(done).await {
            answers.entry(key).or_default().ack_error = Some((e.code(), e.to_string()));
        }
    }
}

/// Reads and acquires from every partition that has something, up to `max_records` in all.
/// Returns the records acquired; `notify` is registered with the partitions that have
/// nothing readable.
#[allow(clippy::too_many_arguments)]
async fn acquire_round(
    ctx: &Ctx,
    group: &str,
    member: &str,
    targets: &[Target],
    settings: &GroupShareSettings,
    mut max_records: usize,
    mut max_bytes: u32,
    mode: AcquireMode,
    notify: Option<flume::Sender<()>>,
    answers: &mut BTreeMap<TopicIdPartition, PartitionAnswer>,
) -> usize {
    let mut total = 0;
    for t in targets {
        if max_records == 0 || max_bytes == 0 {
            break;
        }
        let key = (t.topic_id, t.partition);
        if let Some(e) = &t.refused {
            let r = refusal(ctx, t, e);
            let a = answers.entry(key).or_default();
            a.error = r.error;
            a.leader = r.leader;
            continue;
        }
        let state_key = StateKey { group: group.to_string(), topic_id: t.topic_id, partition: t.partition };
        match ctx.shares.ensure(&ctx.shard, &state_key, &t.topic, t.leader_epoch, settings).await {
            Ok(()) => {}
            // The share coordinator is loading or moving: as Kafka's leaders do, the fetch
            // waits for it (the next round retries) rather than failing the partition.
            Err(ShareError::CoordinatorNotAvailable) => continue,
            Err(e) => {
                answers.entry(key).or_default().error = Some((e.code(), e.to_string()));
                continue;
            }
        }
        // One read from where the share-partition delivers next: it also tells the high
        // watermark and log start, and registers `notify` when nothing is readable there.
        let Some(from) = ctx.shares.next_fetch_offset(&state_key) else { continue };
        let call = ReadCall {
            topic: t.topic.clone(),
            partition: t.partition,
            offset: Offset(from),
            max_bytes: max_bytes.min(PARTITION_READ_BYTES),
            min_one: true,
            notify: notify.clone(),
            replica: None,
            read_committed: settings.read_committed,
        };
        let read = match route_read_one(&ctx.shard, call).await {
            Ok(r) => r,
            Err(PartitionError::Log(e))
                if matches!(e.cause(), riptide_engine::LogError::OffsetOutOfRange { .. }) =>
            {
                // Retention (or DeleteRecords) moved the log start past the share-partition:
                // it moves up too, and the next round reads from there.
                let call = ListOffsetCall {
                    topic: t.topic.clone(),
                    partition: t.partition,
                    spec: OffsetSpec::Earliest,
                };
                if let Ok(earliest) = route_list_offset(&ctx.shard, call).await {
                    ctx.shares.log_start_moved(&state_key, earliest.offset.0);
                }
                continue;
            }
            Err(e) => {
                let r = refusal(ctx, t, &e);
                let a = answers.entry(key).or_default();
                a.error = r.error;
                a.leader = r.leader;
                continue;
            }
        };
        let readable_end =
            if settings.read_committed { read.last_stable_offset } else { read.high_watermark };
        if !ctx.shares.can_acquire(&state_key, readable_end.0, read.log_start_offset.0) {
            if let Some(n) = &notify {
                ctx.shares.wait_for(&state_key, n);
            }
            continue;
        }
        let Some(slice) = read.slice else { continue };
        let bytes = match slice.read_to_vec() {
            Ok(b) if t.sealed => open_all(ctx.broker.security.keyring.as_deref(), &b),
            Ok(b) => Ok(b),
            Err(e) => Err(e.to_string()),
        };
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("share fetch of {}-{}: {e}", t.topic, t.partition);
                answers.entry(key).or_default().error = Some((ResponseError::KafkaStorageError.code(), e));
                continue;
            }
        };
        // What was read: the offsets up to the last whole batch, and those no member gets:
        // transaction markers and, under read_committed, aborted transactions' records (a
        // share fetch carries no aborted-transactions list, so the leader archives them).
        let (mut read_end, mut archived, mut batches) = (from, Vec::new(), Vec::new());
        for (header, _) in riptide_format::whole_batches(&bytes).map_while(Result::ok) {
            read_end = read_end.max(header.next_offset());
            batches.push((header.base_offset, header.last_offset()));
            let aborted = || {
                read.aborted.iter().any(|a| {
                    a.producer_id == header.producer_id
                        && (a.first_offset..=a.last_offset).contains(&header.base_offset)
                })
            };
            if header.is_control() || (settings.read_committed && header.is_transactional() && aborted()) {
                archived.push((header.base_offset, header.last_offset()));
            }
        }
        let readable = readable_end.0.min(read_end);
        let mut got = ctx.shares.acquire(&state_key, member, max_records, from, readable, &archived);
        // Batch-optimized (v1, and v2's default): the limit is soft, the acquisition runs to
        // the end of the batch it stopped in, so that the member gets whole batches.
        // Record-limit (KIP-1206): never more than MaxRecords.
        if let (AcquireMode::BatchOptimized, Some(last)) = (mode, got.last().map(|r| r.last_offset)) {
            let batch_end = batches.iter().find(|(b, l)| (*b..=*l).contains(&last)).map(|(_, l)| *l);
            if let Some(end) = batch_end.filter(|end| *end > last) {
                let rest = (end - last) as usize;
                let more =
                    ctx.shares.acquire(&state_key, member, rest, last + 1, readable.min(end + 1), &archived);
                for r in more {
                    match got.last_mut() {
                        Some(l)
                            if l.last_offset + 1 == r.first_offset
                                && l.delivery_count == r.delivery_count =>
                        {
                            l.last_offset = r.last_offset
                        }
                        _ => got.push(r),
                    }
                }
            }
        }
        let count: usize = got.iter().map(|r| (r.last_offset - r.first_offset + 1) as usize).sum();
        if count == 0 {
            continue;
        }
        max_records = max_records.saturating_sub(count);
        max_bytes = max_bytes.saturating_sub(bytes.len() as u32);
        total += count;
        let a = answers.entry(key).or_default();
        a.records = Some(Bytes::from(bytes));
        a.acquired = got
            .iter()
            .map(|r| {
                sfr::AcquiredRecords::default()
                    .with_first_offset(r.first_offset)
                    .with_last_offset(r.last_offset)
                    .with_delivery_count(r.delivery_count as i16)
            })
            .collect();
    }
    total
}

fn nullable(v: &Option<StrBytes>) -> Option<String> {
    v.as_ref().map(|s| s.to_string()).filter(|s| !s.is_empty())
}

pub async fn fetch(ctx: &Ctx, info: &RequestInfo, req: ShareFetchRequest) -> ShareFetchResponse {
    let started = Instant::now();
    let top = |code: i16, message: String| {
        ShareFetchResponse::default().with_error_code(code).with_error_message(Some(s(message)))
    };
    let (Some(group), Some(member)) =
        (req.group_id.as_ref().map(|g| g.0.to_string()), nullable(&req.member_id))
    else {
        return top(
            ResponseError::InvalidRequest.code(),
            "A share fetch needs a group id and a member id.".into(),
        );
    };
    if group.is_empty() {
        return top(ResponseError::InvalidRequest.code(), "A share fetch needs a group id.".into());
    }
    if !ctx.allowed(info, op::READ, resource::GROUP, &group) {
        return top(
            ResponseError::GroupAuthorizationFailed.code(),
            format!("Not authorized to access group: {group}"),
        );
    }
    let epoch = req.share_session_epoch;
    let has_acks =
        req.topics.iter().any(|t| t.partitions.iter().any(|p| !p.acknowledgement_batches.is_empty()));
    let Some(mode) = AcquireMode::from_wire(req.share_acquire_mode) else {
        return top(
            ResponseError::InvalidRequest.code(),
            format!("Unknown share acquire mode {}.", req.share_acquire_mode),
        );
    };
    // A request that renews locks (KIP-1222) only acknowledges: it asks for no records.
    if req.is_renew_ack
        && (req.max_wait_ms != 0 || req.min_bytes != 0 || req.max_bytes != 0 || req.max_records != 0)
    {
        return top(
            ResponseError::InvalidRequest.code(),
            "A share fetch with renew acknowledgements must have MaxWaitMs, MinBytes, MaxBytes and MaxRecords 0."
                .into(),
        );
    }
    if epoch == 0 && has_acks {
        return top(
            ResponseError::InvalidRequest.code(),
            "Acknowledgements are not allowed when opening a share session.".into(),
        );
    }
    let named: Vec<TopicIdPartition> = req
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id.as_u128(), p.partition_index)))
        .collect();
    let forgotten: Vec<TopicIdPartition> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id.as_u128(), *p)))
        .collect();
    let session = match ctx.shares.session(&group, &member, epoch, &named, &forgotten) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("share fetch of {group}/{member} at session epoch {epoch}: {e}");
            return top(e.code(), e.to_string());
        }
    };
    let mut answers: BTreeMap<TopicIdPartition, PartitionAnswer> = BTreeMap::new();
    let acks: Vec<(Target, AckBatches)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().filter(|p| !p.acknowledgement_batches.is_empty()).map(move |p| {
                let batches = p
                    .acknowledgement_batches
                    .iter()
                    .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone()))
                    .collect();
                (t.topic_id.as_u128(), p.partition_index, batches)
            })
        })
        .map(|(id, p, batches)| (resolve(ctx, info, id, p), batches))
        .collect();
    acknowledge(ctx, &group, &member, acks, req.is_renew_ack, &mut answers).await;
    let settings = group_settings(ctx, &group);
    if epoch == -1 {
        ctx.shares.close_session(&group, &member);
    } else if !req.is_renew_ack {
        let targets: Vec<Target> = session.iter().map(|(id, p)| resolve(ctx, info, *id, *p)).collect();
        // MaxRecords 0: the request only acknowledges.
        let max_records = usize::try_from(req.max_records).unwrap_or(0);
        let max_bytes = u32::try_from(req.max_bytes).ok().filter(|n| *n > 0).unwrap_or(u32::MAX >> 1);
        let wait = Duration::from_millis(req.max_wait_ms.clamp(0, MAX_WAIT_MS_LIMIT) as u64);
        let (notify_tx, notify_rx) = flume::bounded(1);
        let mut rounds = 0u32;
        loop {
            rounds += 1;
            let got = acquire_round(
                ctx,
                &group,
                &member,
                &targets,
                &settings,
                max_records,
                max_bytes,
                mode,
                Some(notify_tx.clone()),
                &mut answers,
            )
            .await;
            let remaining = wait.saturating_sub(started.elapsed());
            // Bounded: the wait is at most MAX_WAIT_MS_LIMIT and each round waits at least a
            // recheck period or a notification.
            if got > 0 || remaining.is_zero() || targets.is_empty() || max_records == 0 || rounds > 1000 {
                break;
            }
            let _ = compio::time::timeout(remaining.min(RECHECK), notify_rx.recv_async()).await;
        }
    }
    fetch_response(ctx, info, &settings, answers)
}

/// KIP-1206's `ShareAcquireMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AcquireMode {
    BatchOptimized,
    RecordLimit,
}

impl AcquireMode {
    fn from_wire(v: i8) -> Option<AcquireMode> {
        match v {
            0 => Some(AcquireMode::BatchOptimized),
            1 => Some(AcquireMode::RecordLimit),
            _ => None,
        }
    }
}

/// The group's acquisition lock, as the answers report it.
fn lock_timeout_ms(settings: &GroupShareSettings) -> i32 {
    settings.limits_lock_ms.clamp(0, i64::from(i32::MAX)) as i32
}

fn fetch_response(
    ctx: &Ctx,
    info: &RequestInfo,
    settings: &GroupShareSettings,
    answers: BTreeMap<TopicIdPartition, PartitionAnswer>,
) -> ShareFetchResponse {
    let mut leaders = Vec::new();
    let mut topics: BTreeMap<u128, Vec<sfr::PartitionData>> = BTreeMap::new();
    for ((topic_id, partition), a) in answers.into_iter().filter(|(_, a)| a.is_news()) {
        let (leader_id, leader_epoch) = a.leader.unwrap_or((-1, -1));
        if leader_id >= 0 {
            leaders.push(leader_id);
        }
        let (code, message) = a.error.unwrap_or((0, String::new()));
        let (ack_code, ack_message) = a.ack_error.unwrap_or((0, String::new()));
        topics.entry(topic_id).or_default().push(
            sfr::PartitionData::default()
                .with_partition_index(partition)
                .with_error_code(code)
                .with_error_message((code != 0).then(|| s(message)))
                .with_acknowledge_error_code(ack_code)
                .with_acknowledge_error_message((ack_code != 0).then(|| s(ack_message)))
                .with_current_leader(
                    sfr::LeaderIdAndEpoch::default()
                        .with_leader_id(leader_id)
                        .with_leader_epoch(leader_epoch),
                )
                // Not nullable from v1 on: no records is an empty set.
                .with_records(Some(a.records.unwrap_or_default()))
                .with_acquired_records(a.acquired),
        );
    }
    let responses = topics
        .into_iter()
        .map(|(id, partitions)| {
            sfr::ShareFetchableTopicResponse::default()
                .with_topic_id(Uuid::from_u128(id))
                .with_partitions(partitions)
        })
        .collect();
    let endpoints = super::leader_hint::endpoints(&ctx.broker, &info.session.listener.name, &leaders)
        .into_iter()
        .map(|e| {
            sfr::NodeEndpoint::default()
                .with_node_id(BrokerId(e.node_id.0))
                .with_host(e.host)
                .with_port(e.port)
                .with_rack(e.rack)
        })
        .collect();
    ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(lock_timeout_ms(settings))
        .with_responses(responses)
        .with_node_endpoints(endpoints)
}

pub async fn acknowledge_request(
    ctx: &Ctx,
    info: &RequestInfo,
    req: ShareAcknowledgeRequest,
) -> ShareAcknowledgeResponse {
    let top = |code: i16, message: String| {
        ShareAcknowledgeResponse::default().with_error_code(code).with_error_message(Some(s(message)))
    };
    let (Some(group), Some(member)) =
        (req.group_id.as_ref().map(|g| g.0.to_string()), nullable(&req.member_id))
    else {
        return top(
            ResponseError::InvalidRequest.code(),
            "An acknowledgement needs a group id and a member id.".into(),
        );
    };
    if !ctx.allowed(info, op::READ, resource::GROUP, &group) {
        return top(
            ResponseError::GroupAuthorizationFailed.code(),
            format!("Not authorized to access group: {group}"),
        );
    }
    let epoch = req.share_session_epoch;
    if epoch == 0 {
        return top(
            ResponseError::InvalidShareSessionEpoch.code(),
            ShareError::InvalidSessionEpoch.to_string(),
        );
    }
    if let Err(e) = ctx.shares.session(&group, &member, epoch, &[], &[]) {
        tracing::debug!("share acknowledgement of {group}/{member} at session epoch {epoch}: {e}");
        return top(e.code(), e.to_string());
    }
    let acks: Vec<(Target, AckBatches)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                let batches = p
                    .acknowledgement_batches
                    .iter()
                    .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone()))
                    .collect();
                (t.topic_id.as_u128(), p.partition_index, batches)
            })
        })
        .map(|(id, p, batches)| (resolve(ctx, info, id, p), batches))
        .collect();
    let named: Vec<TopicIdPartition> = acks.iter().map(|(t, _)| (t.topic_id, t.partition)).collect();
    let mut answers: BTreeMap<TopicIdPartition, PartitionAnswer> = BTreeMap::new();
    acknowledge(ctx, &group, &member, acks, req.is_renew_ack, &mut answers).await;
    if epoch == -1 {
        ctx.shares.close_session(&group, &member);
    }
    let mut leaders = Vec::new();
    let mut topics: BTreeMap<u128, Vec<sar::PartitionData>> = BTreeMap::new();
    for key in named {
        let a = answers.remove(&key).unwrap_or_default();
        let (leader_id, leader_epoch) = a.leader.unwrap_or((-1, -1));
        if leader_id >= 0 {
            leaders.push(leader_id);
        }
        let (code, message) = a.ack_error.unwrap_or((0, String::new()));
        topics.entry(key.0).or_default().push(
            sar::PartitionData::default()
                .with_partition_index(key.1)
                .with_error_code(code)
                .with_error_message((code != 0).then(|| s(message)))
                .with_current_leader(
                    sar::LeaderIdAndEpoch::default()
                        .with_leader_id(leader_id)
                        .with_leader_epoch(leader_epoch),
                ),
        );
    }
    let responses = topics
        .into_iter()
        .map(|(id, partitions)| {
            sar::ShareAcknowledgeTopicResponse::default()
                .with_topic_id(Uuid::from_u128(id))
                .with_partitions(partitions)
        })
        .collect();
    let endpoints = super::leader_hint::endpoints(&ctx.broker, &info.session.listener.name, &leaders)
        .into_iter()
        .map(|e| {
            sar::NodeEndpoint::default()
                .with_node_id(BrokerId(e.node_id.0))
                .with_host(e.host)
                .with_port(e.port)
                .with_rack(e.rack)
        })
        .collect();
    ShareAcknowledgeResponse::default()
        .with_acquisition_lock_timeout_ms(lock_timeout_ms(&group_settings(ctx, &group)))
        .with_responses(responses)
        .with_node_endpoints(endpoints)
}

// ---- DescribeShareGroupOffsets / AlterShareGroupOffsets / DeleteShareGroupOffsets ---------

/// Whether a share-group admin request may act on `group`: it must not be another kind of
/// group, and (`need_empty`) must have no members.
fn share_group_check(ctx: &Ctx, group: &str, need_empty: bool) -> Result<bool, GroupError> {
    ctx.coordinator
        .with_group(group, |groups, _| match groups.share_group(group) {
            Some(g) if need_empty && !g.members.is_empty() => Err(GroupError::NonEmptyGroup),
            Some(_) => Ok(true),
            None if groups.names_another_kind(group) => Err(GroupError::GroupIdNotFound),
            None => Ok(false),
        })
        .and_then(|r| r)
}

pub async fn describe_offsets(
    ctx: &Ctx,
    info: &RequestInfo,
    req: kafka_protocol::messages::DescribeShareGroupOffsetsRequest,
) -> kafka_protocol::messages::DescribeShareGroupOffsetsResponse {
    use kafka_protocol::messages::describe_share_group_offsets_response as d;
    let mut groups = Vec::with_capacity(req.groups.len());
    for g in req.groups {
        let id = g.group_id.0.to_string();
        let base = d::DescribeShareGroupOffsetsResponseGroup::default().with_group_id(g.group_id.clone());
        if !ctx.allowed(info, op::DESCRIBE, resource::GROUP, &id) {
            let e = GroupError::GroupAuthorizationFailed;
            groups.push(base.with_error_code(e.code()).with_error_message(Some(s(e.to_string()))));
            continue;
        }
        match share_group_check(ctx, &id, false) {
            Err(e) => {
                groups.push(base.with_error_code(e.code()).with_error_message(Some(s(e.to_string()))));
                continue;
            }
            Ok(false) => {
                let message = format!("Group {id} is not a share group.");
                groups.push(
                    base.with_error_code(GroupError::GroupIdNotFound.code())
                        .with_error_message(Some(s(message))),
                );
                continue;
            }
            Ok(true) => {}
        }
        // What this broker knows (the share-partitions it leads, the state it coordinates);
        // the rest is asked of each key's share coordinator.
        let mut starts = ctx.shares.start_offsets(&id);
        // Without topics: those the members subscribe to, those with initialized state (kept
        // with the group across restarts) and those with state here.
        let subscribed = ctx
            .coordinator
            .with_any(|groups, _| {
                groups.share_group(&id).map(|sg| {
                    let mut names = sg.subscribed_topics();
                    names.extend(sg.initialized.values().map(|(name, _)| name.clone()));
                    names
                })
            })
            .unwrap_or_default();
        let wanted: Vec<(String, Option<Arc<crate::catalog::TopicMeta>>, Vec<i32>)> = {
            let cat = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
            match g.topics {
                Some(ts) => ts
                    .into_iter()
                    .map(|t| {
                        let name = t.topic_name.0.to_string();
                        let meta = cat.get(&name);
                        (name, meta, t.partitions)
                    })
                    .collect(),
                None => {
                    let mut names: std::collections::BTreeSet<String> = subscribed;
                    names
                        .extend(starts.keys().filter_map(|(tid, _)| cat.by_id(*tid).map(|m| m.name.clone())));
                    names
                        .into_iter()
                        .filter_map(|n| {
                            let meta = cat.get(&n)?;
                            let ps = (0..meta.partitions).collect();
                            Some((n, Some(meta), ps))
                        })
                        .collect()
                }
            }
        };
        for (_, meta, partitions) in &wanted {
            let Some(m) = meta else { continue };
            for p in partitions.iter().filter(|p| (0..m.partitions).contains(*p)) {
                if starts.contains_key(&(m.id, *p)) {
                    continue;
                }
                let key = StateKey { group: id.clone(), topic_id: m.id, partition: *p };
                if let Ok(Some(state)) = ctx.shares.read_state(&ctx.shard, &key, -1).await {
                    let done = delivery_complete(state.start_offset, &state.batches);
                    starts.insert((m.id, *p), (state.start_offset, done));
                }
            }
        }
        // v1's lag (KIP-1226): the records from the start offset to the high watermark that
        // are not done yet, from each partition's leader.
        let mut log_ends = std::collections::HashMap::new();
        if info.version >= 1 {
            let parts: Vec<(String, i32)> = wanted
                .iter()
                .filter_map(|(name, meta, ps)| meta.as_ref().map(|m| (name, m, ps)))
                .flat_map(|(name, m, ps)| {
                    ps.iter().filter(|p| starts.contains_key(&(m.id, **p))).map(|p| (name.clone(), *p))
                })
                .collect();
            log_ends = high_watermarks(ctx, parts).await;
        }
        let topics = wanted
            .into_iter()
            .filter(|(name, _, _)| ctx.allowed(info, op::DESCRIBE, resource::TOPIC, name))
            .map(|(name, meta, partitions)| {
                let parts = partitions
                    .into_iter()
                    .map(|p| {
                        let part = d::DescribeShareGroupOffsetsResponsePartition::default()
                            .with_partition_index(p)
                            .with_leader_epoch(-1);
                        match &meta {
                            Some(m) if p >= 0 && p < m.partitions => {
                                let state = starts.get(&(m.id, p)).copied();
                                let lag = match (state, log_ends.get(&(name.clone(), p))) {
                                    (Some((start, done)), Some(hw)) => (hw - start - done).max(0),
                                    _ => -1,
                                };
                                part.with_start_offset(state.map_or(-1, |s| s.0)).with_lag(lag)
                            }
                            _ => part
                                .with_start_offset(-1)
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                                .with_error_message(Some(s(
                                    "This server does not host this topic-partition.",
                                ))),
                        }
                    })
                    .collect();
                d::DescribeShareGroupOffsetsResponseTopic::default()
                    .with_topic_name(TopicName(s(name)))
                    .with_topic_id(meta.map_or(Uuid::nil(), |m| Uuid::from_u128(m.id)))
                    .with_partitions(parts)
            })
            .collect();
        groups.push(base.with_topics(topics));
    }
    kafka_protocol::messages::DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}

/// The high watermarks of `parts`: from this broker's shards where it leads them, else one
/// ListOffsets to each leader. A partition whose leader cannot answer is left out.
async fn high_watermarks(
    ctx: &Ctx,
    parts: Vec<(String, i32)>,
) -> std::collections::HashMap<(String, i32), i64> {
    use kafka_protocol::messages::list_offsets_request as lo;
    let mut out = std::collections::HashMap::new();
    let mut remote: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    for (name, p) in parts {
        let Some(leader) = ctx.broker.topic(&name).map(|t| t.leader(p)).filter(|l| *l >= 0) else { continue };
        if leader != ctx.broker.config.node_id {
            remote.entry(leader).or_default().push((name, p));
            continue;
        }
        let call = ListOffsetCall { topic: Arc::from(name.as_str()), partition: p, spec: OffsetSpec::Latest };
        if let Ok(listed) = route_list_offset(&ctx.shard, call).await {
            out.insert((name, p), listed.offset.0);
        }
    }
    for (leader, parts) in remote {
        let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (name, p) in parts {
            by_topic.entry(name).or_default().push(p);
        }
        let topics = by_topic
            .into_iter()
            .map(|(name, ps)| {
                lo::ListOffsetsTopic::default().with_name(TopicName(s(name))).with_partitions(
                    ps.into_iter()
                        .map(|p| {
                            lo::ListOffsetsPartition::default().with_partition_index(p).with_timestamp(-1)
                        })
                        .collect(),
                )
            })
            .collect();
        let request = kafka_protocol::messages::ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(topics);
        let answer = match crate::coordinator::peer::connect(&ctx.shard, leader, "share").await {
            Ok(c) => c.send(&request).await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match answer {
            Ok(r) => {
                for t in r.topics {
                    for p in t.partitions.into_iter().filter(|p| p.error_code == 0) {
                        out.insert((t.name.0.to_string(), p.partition_index), p.offset);
                    }
                }
            }
            Err(e) => tracing::debug!("share-group lag: the high watermarks from broker {leader}: {e}"),
        }
    }
    out
}

pub async fn alter_offsets(
    ctx: &Ctx,
    info: &RequestInfo,
    req: kafka_protocol::messages::AlterShareGroupOffsetsRequest,
) -> kafka_protocol::messages::AlterShareGroupOffsetsResponse {
    use kafka_protocol::messages::alter_share_group_offsets_response as a;
    let id = req.group_id.0.to_string();
    let top = |e: GroupError| {
        kafka_protocol::messages::AlterShareGroupOffsetsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(s(e.to_string())))
    };
    if !ctx.allowed(info, op::READ, resource::GROUP, &id) {
        return top(GroupError::GroupAuthorizationFailed);
    }
    if let Err(e) = share_group_check(ctx, &id, true) {
        return top(e);
    }
    let mut responses = Vec::new();
    for t in req.topics {
        let name = t.topic_name.0.to_string();
        let meta = ctx.broker.topic(&name);
        let allowed = ctx.allowed(info, op::READ, resource::TOPIC, &name);
        let mut resets = Vec::new();
        let mut parts = Vec::new();
        for p in t.partitions {
            let code = match &meta {
                _ if !allowed => ResponseError::TopicAuthorizationFailed.code(),
                Some(m) if p.partition_index >= 0 && p.partition_index < m.partitions => {
                    if p.start_offset < 0 {
                        ResponseError::InvalidRequest.code()
                    } else {
                        let key =
                            StateKey { group: id.clone(), topic_id: m.id, partition: p.partition_index };
                        resets.push((key, p.start_offset));
                        0
                    }
                }
                _ => ResponseError::UnknownTopicOrPartition.code(),
            };
            parts.push(
                a::AlterShareGroupOffsetsResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code),
            );
        }
        let mut failed = None;
        let added: Vec<(u128, String, i32)> =
            resets.iter().map(|(k, _)| (k.topic_id, name.clone(), k.partition)).collect();
        for done in ctx.shares.reset(&id, &resets) {
            if let Err(e) = wait_written(done).await {
                failed = Some(e);
            }
        }
        if let Some(e) = failed {
            for part in parts.iter_mut().filter(|p| p.error_code == 0) {
                part.error_code = e.code();
                part.error_message = Some(s(e.to_string()));
            }
        } else {
            let _ = ctx
                .coordinator
                .with_group(&id, |groups, _| groups.share_partitions_changed(&id, &added, &[]));
        }
        responses.push(
            a::AlterShareGroupOffsetsResponseTopic::default()
                .with_topic_name(TopicName(s(name)))
                .with_topic_id(meta.map_or(Uuid::nil(), |m| Uuid::from_u128(m.id)))
                .with_partitions(parts),
        );
    }
    kafka_protocol::messages::AlterShareGroupOffsetsResponse::default().with_responses(responses)
}

pub async fn delete_offsets(
    ctx: &Ctx,
    info: &RequestInfo,
    req: kafka_protocol::messages::DeleteShareGroupOffsetsRequest,
) -> kafka_protocol::messages::DeleteShareGroupOffsetsResponse {
    use kafka_protocol::messages::delete_share_group_offsets_response as d;
    let id = req.group_id.0.to_string();
    let top = |e: GroupError| {
        kafka_protocol::messages::DeleteShareGroupOffsetsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(s(e.to_string())))
    };
    if !ctx.allowed(info, op::DELETE, resource::GROUP, &id) {
        return top(GroupError::GroupAuthorizationFailed);
    }
    match share_group_check(ctx, &id, true) {
        Err(e) => return top(e),
        Ok(false) => return top(GroupError::GroupIdNotFound),
        Ok(true) => {}
    }
    let mut responses = Vec::new();
    for t in req.topics {
        let name = t.topic_name.0.to_string();
        let meta = ctx.broker.topic(&name);
        let code = match &meta {
            _ if !ctx.allowed(info, op::READ, resource::TOPIC, &name) => {
                ResponseError::TopicAuthorizationFailed.code()
            }
            None => ResponseError::UnknownTopicOrPartition.code(),
            Some(m) => {
                let topics = std::collections::BTreeSet::from([m.id]);
                match super::group::delete_share_state(ctx, &id, Some(&topics)).await {
                    Ok(()) => {
                        let _ = ctx
                            .coordinator
                            .with_group(&id, |groups, _| groups.share_partitions_changed(&id, &[], &[m.id]));
                        0
                    }
                    Err(e) => e.code(),
                }
            }
        };
        responses.push(
            d::DeleteShareGroupOffsetsResponseTopic::default()
                .with_topic_name(TopicName(s(name)))
                .with_topic_id(meta.map_or(Uuid::nil(), |m| Uuid::from_u128(m.id)))
                .with_error_code(code),
        );
    }
    kafka_protocol::messages::DeleteShareGroupOffsetsResponse::default().with_responses(responses)
}

// ---- Read/Write/DeleteShareGroupState: the share coordinator, asked by partition leaders -------

type StateItems = Vec<(StateKey, Option<crate::coordinator::share_state::Snapshot>)>;

/// Writes (or deletes) each key at this share coordinator, grouped by state partition.
/// Returns the code per (topic id, partition).
async fn write_state_items(ctx: &Ctx, items: StateItems) -> BTreeMap<(u128, i32), i16> {
    let n = ctx.shares.cfg.state_topic_partitions;
    let mut codes = BTreeMap::new();
    let mut by_partition: BTreeMap<i32, StateItems> = BTreeMap::new();
    for (key, snapshot) in items {
        let p = key.partition_in(n);
        match ctx.shares.stored_state(&ctx.shard, &key) {
            Err(code) => {
                codes.insert((key.topic_id, key.partition), code);
            }
            Ok(_) => by_partition.entry(p).or_default().push((key, snapshot)),
        }
    }
    for (p, items) in by_partition {
        match ctx.shares.write_local(&ctx.shard, p, &items).await {
            Ok(results) => {
                for ((k, _), r) in items.iter().zip(results) {
                    codes.insert((k.topic_id, k.partition), r.err().map_or(0, |e| e.code()));
                }
            }
            Err(e) => {
                for (k, _) in &items {
                    codes.insert((k.topic_id, k.partition), e.code());
                }
            }
        }
    }
    codes
}

/// The share coordinator's writes of `items` when the caller may (CLUSTER_ACTION): the code of
/// each (topic id, partition) of the request.
async fn state_codes(ctx: &Ctx, allowed: bool, items: StateItems) -> impl Fn(Uuid, i32) -> i16 {
    let codes = if allowed { write_state_items(ctx, items).await } else { BTreeMap::new() };
    move |topic: Uuid, partition: i32| {
        if allowed {
            codes.get(&(topic.as_u128(), partition)).copied().unwrap_or(0)
        } else {
            ResponseError::ClusterAuthorizationFailed.code()
        }
    }
}

pub async fn write_state(
    ctx: &Ctx,
    info: &RequestInfo,
    req: kafka_protocol::messages::WriteShareGroupStateRequest,
) -> kafka_protocol::messages::WriteShareGroupStateResponse {
    use crate::coordinator::share_partition::StateBatch;
    use crate::coordinator::share_state::Snapshot;
    use kafka_protocol::messages::write_share_group_state_response as w;
    let group = req.group_id.to_string();
    let allowed = ctx.allowed_on_cluster(info, op::CLUSTER_ACTION);
    let now = crate::clock::now_ms();
    let mut items = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let key =
                StateKey { group: group.clone(), topic_id: t.topic_id.as_u128(), partition: p.partition };
            let snapshot = Snapshot {
                snapshot_epoch: 0,
                state_epoch: p.state_epoch,
                leader_epoch: p.leader_epoch,
                start_offset: p.start_offset,
                create_timestamp_ms: now,
                write_timestamp_ms: now,
                batches: p
                    .state_batches
                    .iter()
                    .map(|b| StateBatch {
                        first_offset: b.first_offset,
                        last_offset: b.last_offset,
                        state: b.delivery_state,
                        delivery_count: b.delivery_count.max(0) as u16,
                    })
                    .collect(),
            };
            items.push((key, Some(snapshot)));
        }
    }
    let code = state_codes(ctx, allowed, items).await;
    let results = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t.partitions.iter().map(|p| {
                w::PartitionResult::default()
                    .with_partition(p.partition)
                    .with_error_code(code(t.topic_id, p.partition))
            });
            w::WriteStateResult::default().with_topic_id(t.topic_id).with_partitions(partitions.collect())
        })
        .collect();
    kafka_protocol::messages::WriteShareGroupStateResponse::default().with_results(results)
}

pub async fn delete_state(
    ctx: &Ctx,
    info: &RequestInfo,
    req: kafka_protocol::messages::DeleteShareGroupStateRequest,
) -> kafka_protocol::messages::DeleteShareGroupStateResponse {
    use kafka_protocol::messages::delete_share_group_state_response as d;
    let group = req.group_id.to_string();
    let allowed = ctx.allowed_on_cluster(info, op::CLUSTER_ACTION);
    let items = req
        .topics
        .iter()
        .flat_map(|t| {
            let group = group.clone();
            t.partitions.iter().map(move |p| {
                (
                    StateKey { group: group.clone(), topic_id: t.topic_id.as_u128(), partition: p.partition },
                    None,
                )
            })
        })
        .collect();
    let code = state_codes(ctx, allowed, items).await;
    let results = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t.partitions.iter().map(|p| {
                d::PartitionResult::default()
                    .with_partition(p.partition)
                    .with_error_code(code(t.topic_id, p.partition))
            });
            d::DeleteStateResult::default().with_topic_id(t.topic_id).with_partitions(partitions.collect())
        })
        .collect();
    kafka_protocol::messages::DeleteShareGroupStateResponse::default().with_results(results)
}

/// ReadShareGroupState: a share-partition's persisted state; with none yet, state epoch and
/// start offset -1.
pub fn read_state(
    ctx: &Ctx,
    info: &RequestInfo,
    req: kafka_protocol::messages::ReadShareGroupStateRequest,
) -> kafka_protocol::messages::ReadShareGroupStateResponse {
    use kafka_protocol::messages::read_share_group_state_response as r;
    let group = req.group_id.to_string();
    let allowed = ctx.allowed_on_cluster(info, op::CLUSTER_ACTION);
    let results = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let base = r::PartitionResult::default().with_partition(p.partition);
                    if !allowed {
                        return base.with_error_code(ResponseError::ClusterAuthorizationFailed.code());
                    }
                    let key = StateKey {
                        group: group.clone(),
                        topic_id: t.topic_id.as_u128(),
                        partition: p.partition,
                    };
                    match ctx.shares.stored_state(&ctx.shard, &key) {
                        Err(code) => base.with_error_code(code),
                        Ok(None) => base.with_state_epoch(-1).with_start_offset(-1),
                        Ok(Some(s)) => base
                            .with_state_epoch(s.state_epoch)
                            .with_start_offset(s.start_offset)
                            .with_state_batches(
                                s.batches
                                    .iter()
                                    .map(|b| {
                                        r::StateBatch::default()
                                            .with_first_offset(b.first_offset)
                                            .with_last_offset(b.last_offset)
                                            .with_delivery_state(b.state)
                                            .with_delivery_count(b.delivery_count as i16)
                                    })
                                    .collect(),
                            ),
                    }
                })
                .collect();
            r::ReadStateResult::default().with_topic_id(t.topic_id).with_partitions(partitions)
        })
        .collect();
    kafka_protocol::messages::ReadShareGroupStateResponse::default().with_results(results)
}
