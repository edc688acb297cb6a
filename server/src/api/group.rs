//! Group membership APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! ListGroups, DescribeGroups, DeleteGroups, and KIP-848's ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe (topics by id on the wire, by name inside the coordinator). Each handler turns the request into a call on the
//! coordinator (`crate::coordinator`) and the outcome into the response of the request's
//! version; fields a version lacks are left at their defaults, as the codec requires.

use super::error::ToKafka;
use crate::security::acl::{op, resource};
use kafka_protocol::messages::consumer_group_describe_response as cgd;
use kafka_protocol::messages::consumer_group_heartbeat_response as cgh;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    ListGroupsRequest, ListGroupsResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::Ctx;
use super::RequestInfo;
use crate::coordinator::assignor::TopicPartitions;
use crate::coordinator::consumer_group::{ConsumerGroup, Heartbeat};
use crate::coordinator::group::{JoinRequest, JoinResult, Protocol, SyncResult};
use crate::coordinator::registry;
use crate::coordinator::{self, GroupError};

/// Authorized operations are not computed (no ACLs yet): Kafka's "not requested" value.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn opt_s(v: Option<String>) -> Option<StrBytes> {
    v.map(StrBytes::from_string)
}

fn client_id(info: &RequestInfo) -> String {
    info.header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default()
}

// ---- FindCoordinator -----------------------------------------------------------------------

pub async fn find_coordinator(
    ctx: &Ctx,
    info: &RequestInfo,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let key_type = if info.version >= 1 { req.key_type } else { 0 };
    let keys: Vec<StrBytes> = if info.version >= 4 { req.coordinator_keys } else { vec![req.key] };
    let ready = match key_type {
        // The group coordinator of a group is the leader of its __consumer_offsets partition.
        0 => coordinator::ensure_offsets_topic(&ctx.broker, &ctx.coordinator).await,
        // The transaction coordinator of an id is the leader of its __transaction_state partition.
        1 => crate::coordinator::txn::ensure_txn_topic(&ctx.broker, &ctx.txn)
            .await
            .map_err(|_| GroupError::CoordinatorNotAvailable),
        _ => Err(GroupError::InvalidRequest),
    };
    let results: Vec<(StrBytes, Result<Endpoint, GroupError>)> = keys
        .into_iter()
        .map(|k| {
            let r = match key_type {
                0 if !ctx.allowed(info, op::DESCRIBE, resource::GROUP, k.as_str()) => {
                    Err(GroupError::GroupAuthorizationFailed)
                }
                1 if !ctx.allowed(info, op::DESCRIBE, resource::TRANSACTIONAL_ID, k.as_str()) => {
                    Err(GroupError::TransactionalIdAuthorizationFailed)
                }
                _ => ready.and_then(|()| match key_type {
                    0 => coordinator_of(ctx, info, k.as_str()),
                    _ => txn_coordinator_of(ctx, info, k.as_str()),
                }),
            };
            (k, r)
        })
        .collect();
    find_coordinator_response(info.version, results)
}

type Endpoint = (i32, String, i32);

/// The live leader of the group's offsets partition, with its advertised address.
fn coordinator_of(ctx: &Ctx, info: &RequestInfo, group: &str) -> Result<Endpoint, GroupError> {
    let n = ctx.coordinator.config().offsets_topic_num_partitions;
    let partition = crate::coordinator::offsets_log::partition_for(group, n);
    if ctx.coordinator.loading(partition) {
        return Err(GroupError::CoordinatorNotAvailable);
    }
    leader_endpoint(ctx, info, crate::coordinator::offsets_log::OFFSETS_TOPIC, partition)
}

/// The live leader of the transactional id's `__transaction_state` partition.
fn txn_coordinator_of(ctx: &Ctx, info: &RequestInfo, transactional_id: &str) -> Result<Endpoint, GroupError> {
    let partition = ctx.txn.partition_of(transactional_id);
    if ctx.txn.loading(partition) {
        return Err(GroupError::CoordinatorNotAvailable);
    }
    leader_endpoint(ctx, info, crate::coordinator::txn::log::TXN_TOPIC, partition)
}

fn leader_endpoint(
    ctx: &Ctx,
    info: &RequestInfo,
    topic: &str,
    partition: i32,
) -> Result<Endpoint, GroupError> {
    let cat = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
    let meta = cat.get(topic).ok_or(GroupError::CoordinatorNotAvailable)?;
    let leader = meta.leader(partition);
    let b = cat.brokers.get(&leader).filter(|b| !b.fenced).ok_or(GroupError::CoordinatorNotAvailable)?;
    let ep = super::metadata::endpoint_for(&b.endpoints, &info.session.listener.name)
        .ok_or(GroupError::CoordinatorNotAvailable)?;
    Ok((leader, ep.host.clone(), i32::from(ep.port)))
}

fn find_coordinator_response(
    v: i16,
    results: Vec<(StrBytes, Result<Endpoint, GroupError>)>,
) -> FindCoordinatorResponse {
    let entry = |r: &Result<Endpoint, GroupError>| match r {
        Ok((node_id, host, port)) => (0i16, None, *node_id, host.clone(), *port),
        Err(e) => (e.code(), Some(e.to_string()), -1, String::new(), -1),
    };
    if v >= 4 {
        let coordinators = results
            .into_iter()
            .map(|(key, r)| {
                let (code, msg, node, host, port) = entry(&r);
                CoordinatorEntry::default()
                    .with_key(key)
                    .with_node_id(node.into())
                    .with_host(s(host))
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(opt_s(msg))
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let first = results.into_iter().next().map_or(Err(GroupError::InvalidRequest), |(_, r)| r);
    let (code, msg, node, host, port) = entry(&first);
    let resp = FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_node_id(node.into())
        .with_host(s(host))
        .with_port(port);
    if v >= 1 {
        resp.with_error_message(opt_s(msg))
    } else {
        resp
    }
}

// ---- JoinGroup / SyncGroup -------------------------------------------------------------------

pub async fn join_group(ctx: &Ctx, info: &RequestInfo, req: JoinGroupRequest) -> JoinGroupResponse {
    let v = info.version;
    let member_id = req.member_id.to_string();
    let join = JoinRequest {
        group_id: req.group_id.0.to_string(),
        member_id: member_id.clone(),
        instance_id: if v >= 5 { req.group_instance_id.map(|i| i.to_string()) } else { None },
        client_id: client_id(info),
        client_host: info.client_host.clone(),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout served both purposes.
        rebalance_timeout_ms: if v >= 1 { req.rebalance_timeout_ms } else { req.session_timeout_ms },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| Protocol { name: p.name.to_string(), metadata: p.metadata })
            .collect(),
        version: v,
    };
    let (tx, rx) = flume::bounded(1);
    let result =
        match ctx.coordinator.with_group(&join.group_id.clone(), |groups, now| groups.join(join, tx, now)) {
            Err(e) => JoinResult::failed(e, &member_id),
            Ok(()) => rx
                .recv_async()
                .await
                .unwrap_or_else(|_| JoinResult::failed(GroupError::UnknownMemberId, &member_id)),
        };
    join_response(v, result)
}

fn join_response(v: i16, r: JoinResult) -> JoinGroupResponse {
    let members = r
        .members
        .into_iter()
        .map(|m| {
            let jm =
                JoinGroupResponseMember::default().with_member_id(s(m.member_id)).with_metadata(m.metadata);
            if v >= 5 {
                jm.with_group_instance_id(opt_s(m.instance_id))
            } else {
                jm
            }
        })
        .collect();
    let mut resp = JoinGroupResponse::default()
        .with_error_code(super::error::code_of_opt(r.error))
        .with_generation_id(r.generation_id)
        .with_leader(s(r.leader))
        .with_member_id(s(r.member_id))
        .with_members(members);
    if v >= 7 {
        resp = resp.with_protocol_type(opt_s(r.protocol_type)).with_protocol_name(opt_s(r.protocol_name));
    } else {
        resp = resp.with_protocol_name(Some(s(r.protocol_name.unwrap_or_default())));
    }
    if v >= 9 {
        resp = resp.with_skip_assignment(r.skip_assignment);
    }
    resp
}

pub async fn sync_group(ctx: &Ctx, info: &RequestInfo, req: SyncGroupRequest) -> SyncGroupResponse {
    let v = info.version;
    let group_id = req.group_id.0.to_string();
    let member_id = req.member_id.to_string();
    let instance_id = if v >= 3 { req.group_instance_id.map(|i| i.to_string()) } else { None };
    let protocol_type = if v >= 5 { req.protocol_type.map(|p| p.to_string()) } else { None };
    let protocol_name = if v >= 5 { req.protocol_name.map(|p| p.to_string()) } else { None };
    let assignments = req.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect();
    let (tx, rx) = flume::bounded(1);
    let result = match ctx.coordinator.with_group(&group_id, |groups, now| {
        groups.sync(
            &group_id,
            &member_id,
            instance_id.as_deref(),
            req.generation_id,
            protocol_type.as_deref(),
            protocol_name.as_deref(),
            assignments,
            tx,
            now,
        )
    }) {
        Err(e) => SyncResult::failed(e),
        Ok(()) => {
            rx.recv_async().await.unwrap_or_else(|_| SyncResult::failed(GroupError::RebalanceInProgress))
        }
    };
    sync_response(v, result)
}

fn sync_response(v: i16, r: SyncResult) -> SyncGroupResponse {
    let resp = SyncGroupResponse::default()
        .with_error_code(super::error::code_of_opt(r.error))
        .with_assignment(r.assignment);
    if v >= 5 {
        resp.with_protocol_type(opt_s(r.protocol_type)).with_protocol_name(opt_s(r.protocol_name))
    } else {
        resp
    }
}

// ---- Heartbeat / LeaveGroup ------------------------------------------------------------------

pub fn heartbeat(ctx: &Ctx, info: &RequestInfo, req: HeartbeatRequest) -> HeartbeatResponse {
    let instance_id = if info.version >= 3 { req.group_instance_id.map(|i| i.to_string()) } else { None };
    let result = ctx
        .coordinator
        .with_group(&req.group_id.0, |groups, now| {
            groups.heartbeat(&req.group_id.0, &req.member_id, instance_id.as_deref(), req.generation_id, now)
        })
        .and_then(|r| r);
    HeartbeatResponse::default().with_error_code(super::error::code_of_opt(result.err()))
}

pub fn leave_group(ctx: &Ctx, info: &RequestInfo, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let v = info.version;
    let members: Vec<(String, Option<String>)> = if v >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|i| i.to_string())))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let result = ctx
        .coordinator
        .with_group(&req.group_id.0, |groups, now| groups.leave(&req.group_id.0, &members, now))
        .and_then(|r| r);
    leave_response(v, &members, result)
}

fn leave_response(
    v: i16,
    members: &[(String, Option<String>)],
    result: Result<Vec<Result<(), GroupError>>, GroupError>,
) -> LeaveGroupResponse {
    let per_member = match result {
        Err(e) => return LeaveGroupResponse::default().with_error_code(e.code()),
        Ok(r) => r,
    };
    if v < 3 {
        let code = per_member.first().map_or(0, |r| super::error::code_of_opt(r.err()));
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let responses = members
        .iter()
        .zip(per_member)
        .map(|((m, i), r)| {
            MemberResponse::default()
                .with_member_id(s(m.clone()))
                .with_group_instance_id(opt_s(i.clone()))
                .with_error_code(super::error::code_of_opt(r.err()))
        })
        .collect();
    LeaveGroupResponse::default().with_members(responses)
}

// ---- ListGroups / DescribeGroups / DeleteGroups --------------------------------------------

pub fn list_groups(ctx: &Ctx, info: &RequestInfo, req: ListGroupsRequest) -> ListGroupsResponse {
    let v = info.version;
    let states: Vec<String> =
        if v >= 4 { req.states_filter.iter().map(|s| s.to_lowercase()).collect() } else { vec![] };
    let types: Vec<String> =
        if v >= 5 { req.types_filter.iter().map(|s| s.to_lowercase()).collect() } else { vec![] };
    match ctx.coordinator.with(|groups, _| groups.list()) {
        Err(e) => ListGroupsResponse::default().with_error_code(e.code()),
        Ok(all) => {
            let every = ctx.allowed_on_cluster(info, op::DESCRIBE);
            let listed = all
                .into_iter()
                .filter(|g| every || ctx.allowed(info, op::DESCRIBE, resource::GROUP, &g.group_id))
                .filter(|g| states.is_empty() || states.contains(&g.state.to_lowercase()))
                .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
                .collect();
            list_groups_response(v, listed)
        }
    }
}

fn list_groups_response(v: i16, groups: Vec<registry::ListedGroup>) -> ListGroupsResponse {
    let groups = groups
        .into_iter()
        .map(|g| {
            let mut lg = ListedGroup::default()
                .with_group_id(GroupId(s(g.group_id)))
                .with_protocol_type(s(g.protocol_type));
            if v >= 4 {
                lg = lg.with_group_state(s(g.state));
            }
            if v >= 5 {
                lg = lg.with_group_type(s(g.group_type));
            }
            lg
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub fn describe_groups(ctx: &Ctx, info: &RequestInfo, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let v = info.version;
    let coordinator = &ctx.coordinator;
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            if !ctx.allowed(info, op::DESCRIBE, resource::GROUP, &id.0) {
                return described_group(v, id, Err(GroupError::GroupAuthorizationFailed));
            }
            let found = coordinator.with_group(&id.0, |groups, _| groups.describe(&id.0));
            described_group(v, id, found)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

fn described_group(
    v: i16,
    id: GroupId,
    found: Result<Option<registry::DescribedGroup>, GroupError>,
) -> DescribedGroup {
    let base = DescribedGroup::default().with_group_id(id);
    let base = if v >= 3 { base.with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED) } else { base };
    let g = match found {
        Err(e) => return base.with_error_code(e.code()).with_group_state(s("")),
        // Before v6 an unknown group is described as Dead without an error.
        Ok(None) if v >= 6 => {
            let message = format!("Group {} not found.", &*base.group_id.0);
            return base
                .with_error_code(GroupError::GroupIdNotFound.code())
                .with_error_message(Some(s(message)))
                .with_group_state(s("Dead"));
        }
        Ok(None) => return base.with_group_state(s("Dead")),
        Ok(Some(g)) => g,
    };
    let members = g
        .members
        .into_iter()
        .map(|m| {
            let dm = DescribedGroupMember::default()
                .with_member_id(s(m.member_id))
                .with_client_id(s(m.client_id))
                .with_client_host(s(m.client_host))
                .with_member_metadata(m.metadata)
                .with_member_assignment(m.assignment);
            if v >= 4 {
                dm.with_group_instance_id(opt_s(m.instance_id))
            } else {
                dm
            }
        })
        .collect();
    base.with_group_state(s(g.state))
        .with_protocol_type(s(g.protocol_type))
        .with_protocol_data(s(g.protocol_data))
        .with_members(members)
}

pub async fn delete_groups(ctx: &Ctx, info: &RequestInfo, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let coordinator = &ctx.coordinator;
    let mut results = Vec::with_capacity(req.groups_names.len());
    for id in req.groups_names {
        let prepared = if ctx.allowed(info, op::DELETE, resource::GROUP, &id.0) {
            coordinator
                .with_group(&id.0, |groups, now| {
                    let share = groups.share_group(&id.0).is_some();
                    groups.delete_group(&id.0, now).map(|w| (w, share))
                })
                .and_then(|r| r)
        } else {
            Err(GroupError::GroupAuthorizationFailed)
        };
        let outcome = match prepared {
            Ok((w, share)) => {
                coordinator.flush_outbox().await;
                let written = coordinator::write(&ctx.shard, &ctx.coordinator, &w).await;
                // A share group's delivery state goes with it (tombstones in
                // __share_group_state).
                match written {
                    Ok(()) if share => delete_share_state(ctx, &id.0, None).await,
                    other => other,
                }
            }
            Err(e) => Err(e),
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(super::error::code_of_opt(outcome.err())),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

/// Tombstones a share group's persisted share-partitions (all, or those of `topics`).
pub(super) async fn delete_share_state(
    ctx: &Ctx,
    group: &str,
    topics: Option<&std::collections::BTreeSet<u128>>,
) -> Result<(), GroupError> {
    for done in ctx.shares.delete(group, topics) {
        crate::coordinator::shares::wait_written(done)
            .await
            .map_err(|_| GroupError::CoordinatorNotAvailable)?;
    }
    Ok(())
}

// ---- KIP-848 ---------------------------------------------------------------------------------

/// An assignment by topic id, as heartbeat answers give it (topics deleted since are left out).
pub(super) fn by_topic_id(
    broker: &crate::broker::Broker,
    assignment: TopicPartitions,
) -> impl Iterator<Item = (Uuid, Vec<i32>)> + '_ {
    assignment
        .into_iter()
        .filter_map(|(name, ps)| Some((Uuid::from_u128(broker.topic(&name)?.id), ps.into_iter().collect())))
}

pub fn consumer_group_heartbeat(
    ctx: &Ctx,
    info: &RequestInfo,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let broker = &ctx.broker;
    let owned: Option<TopicPartitions> = req.topic_partitions.map(|tps| {
        let catalog = broker.catalog.read().unwrap_or_else(|e| e.into_inner());
        tps.into_iter()
            .filter_map(|tp| {
                let topic = catalog.by_id(tp.topic_id.as_u128())?;
                Some((topic.name.clone(), tp.partitions.into_iter().collect()))
            })
            .collect()
    });
    let hb = Heartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|i| i.to_string()),
        rack_id: req.rack_id.map(|r| r.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.0.to_string()).collect()),
        subscribed_topic_regex: if info.version >= 1 {
            req.subscribed_topic_regex.map(|r| r.to_string())
        } else {
            None
        },
        server_assignor: req.server_assignor.map(|a| a.to_string()),
        owned,
        client_id: client_id(info),
        client_host: info.client_host.clone(),
    };
    let lookup = |name: &str| broker.topic(name).map(|t| t.partitions);
    let group_id = req.group_id.0.to_string();
    let result = ctx
        .coordinator
        .with_group(&group_id, |groups, now| groups.consumer_heartbeat(&group_id, hb, &lookup, now))
        .and_then(|r| r);
    match result {
        Err(e) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(s(e.to_string()))),
        Ok(r) => {
            let assignment = r.assignment.map(|a| {
                let topic_partitions = by_topic_id(broker, a)
                    .map(|(id, ps)| cgh::TopicPartitions::default().with_topic_id(id).with_partitions(ps))
                    .collect();
                cgh::Assignment::default().with_topic_partitions(topic_partitions)
            });
            ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(s(r.member_id)))
                .with_member_epoch(r.member_epoch)
                .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
                .with_assignment(assignment)
        }
    }
}

pub fn consumer_group_describe(
    ctx: &Ctx,
    info: &RequestInfo,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let broker = &ctx.broker;
    let ids = |name: &str| broker.topic(name).map(|t| Uuid::from_u128(t.id));
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let found = if !ctx.allowed(info, op::DESCRIBE, resource::GROUP, &id.0) {
                Err(GroupError::GroupAuthorizationFailed)
            } else {
                ctx.coordinator.with_group(&id.0, |groups, _| {
                    groups.consumer_group(&id.0).map(|g| describe_consumer_group(info.version, g, &ids))
                })
            };
            let base = cgd::DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
            match found {
                Ok(Some(g)) => g.with_group_id(id).with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED),
                Ok(None) => {
                    let message = format!("Group {} is not a consumer group.", &*id.0);
                    base.with_error_code(GroupError::GroupIdNotFound.code())
                        .with_error_message(Some(s(message)))
                }
                Err(e) => base.with_error_code(e.code()),
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

fn describe_consumer_group(
    v: i16,
    g: &ConsumerGroup,
    ids: &dyn Fn(&str) -> Option<Uuid>,
) -> cgd::DescribedGroup {
    let assignment = |a: &TopicPartitions| {
        let tps = a
            .iter()
            .filter_map(|(name, ps)| {
                Some(
                    cgd::TopicPartitions::default()
                        .with_topic_id(ids(name)?)
                        .with_topic_name(TopicName(s(name.clone())))
                        .with_partitions(ps.iter().copied().collect()),
                )
            })
            .collect();
        cgd::Assignment::default().with_topic_partitions(tps)
    };
    let members = g
        .members
        .values()
        .map(|m| {
            let target = g.target.get(&m.id).cloned().unwrap_or_default();
            let member = cgd::Member::default()
                .with_member_id(s(m.id.clone()))
                .with_instance_id(opt_s(m.instance_id.clone()))
                .with_rack_id(opt_s(m.rack_id.clone()))
                .with_member_epoch(m.epoch)
                .with_client_id(s(m.client_id.clone()))
                .with_client_host(s(m.client_host.clone()))
                .with_subscribed_topic_names(m.subscribed.iter().map(|t| TopicName(s(t.clone()))).collect())
                .with_assignment(assignment(&m.assigned))
                .with_target_assignment(assignment(&target));
            // member_type (v1): 1 = a member speaking the consumer protocol.
            if v >= 1 {
                member.with_member_type(1)
            } else {
                member
            }
        })
        .collect();
    cgd::DescribedGroup::default()
        .with_group_state(s(g.state_name()))
        .with_group_epoch(g.group_epoch)
        .with_assignment_epoch(g.assignment_epoch)
        .with_assignor_name(s(g.assignor.name()))
        .with_members(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::group::JoinedMember;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::protocol::{Encodable, Message};

    fn encodes<T: Encodable + Message>(resp: &T, v: i16) {
        let mut buf = BytesMut::new();
        resp.encode(&mut buf, v).unwrap_or_else(|e| panic!("{} v{v}: {e}", std::any::type_name::<T>()));
    }

    /// Every response shape we build encodes at every version we advertise.
    #[test]
    fn responses_encode_at_every_version() {
        for v in 0..=6 {
            let ok = vec![(s("g"), Ok((1, "h".to_string(), 9092)))];
            encodes(&find_coordinator_response(v, ok), v);
            let err = vec![(s("g"), Err(GroupError::CoordinatorNotAvailable))];
            encodes(&find_coordinator_response(v, err), v);
        }
        let full = JoinResult {
            error: None,
            generation_id: 3,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            leader: "m1".into(),
            member_id: "m1".into(),
            skip_assignment: false,
            members: vec![JoinedMember {
                member_id: "m1".into(),
                instance_id: Some("i".into()),
                metadata: Bytes::from_static(b"x"),
            }],
        };
        for v in 0..=9 {
            encodes(&join_response(v, full.clone()), v);
            encodes(&join_response(v, JoinResult::failed(GroupError::MemberIdRequired, "m")), v);
        }
        for v in 0..=5 {
            let r = SyncResult {
                error: None,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignment: Bytes::from_static(b"a"),
            };
            encodes(&sync_response(v, r), v);
            let members = vec![("m".to_string(), Some("i".to_string()))];
            encodes(&leave_response(v, &members, Ok(vec![Err(GroupError::UnknownMemberId)])), v);
            encodes(&leave_response(v, &members, Err(GroupError::LoadInProgress)), v);
            let listed = vec![registry::ListedGroup {
                group_id: "g".into(),
                protocol_type: "consumer".into(),
                state: "Stable".into(),
                group_type: "classic",
            }];
            encodes(&list_groups_response(v, listed), v);
        }
        for v in 0..=6 {
            let g = registry::DescribedGroup {
                state: "Stable".into(),
                protocol_type: "consumer".into(),
                protocol_data: "range".into(),
                members: vec![registry::DescribedMember {
                    member_id: "m".into(),
                    instance_id: Some("i".into()),
                    client_id: "c".into(),
                    client_host: "h".into(),
                    metadata: Bytes::new(),
                    assignment: Bytes::new(),
                }],
            };
            let id = GroupId(s("g"));
            let groups = vec![
                described_group(v, id.clone(), Ok(Some(g))),
                described_group(v, id.clone(), Ok(None)),
                described_group(v, id, Err(GroupError::LoadInProgress)),
            ];
            encodes(&DescribeGroupsResponse::default().with_groups(groups), v);
        }
    }
}
