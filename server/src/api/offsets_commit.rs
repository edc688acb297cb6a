//! Committed offsets: OffsetCommit (v2..=9), OffsetFetch (v1..=9, including the multi-group
//! v8+ form) and OffsetDelete. A commit is answered only once its records are durable in
//! `__consumer_offsets`. With `require_stable` (v7+), a topic with transactional offsets still
//! waiting for their transaction's marker answers UNSTABLE_OFFSET_COMMIT (the client retries),
//! as in Kafka (KIP-447).

use super::error::ToKafka;
use crate::security::acl::{op, resource};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use super::RequestInfo;
use crate::coordinator::registry::{CommitPartition, CommitRequest, FetchedPartition};
use crate::coordinator::{self, GroupError};
use riptide_model::{LeaderEpoch, Offset};

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Whether `topic`/`partition` exists in the catalog.
fn partition_exists(ctx: &Ctx, topic: &str, partition: i32) -> bool {
    ctx.broker.topic(topic).is_some_and(|t| (0..t.partitions).contains(&partition))
}

// ---- OffsetCommit --------------------------------------------------------------------------

pub async fn offset_commit(ctx: &Ctx, info: &RequestInfo, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let metadata_max = ctx.coordinator.config().offset_metadata_bytes_max;
    let topics: Vec<(String, Vec<CommitPartition>)> = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let topic_allowed = ctx.allowed(info, op::READ, resource::TOPIC, &name);
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    let metadata = p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default();
                    let error = if !topic_allowed {
                        Some(GroupError::TopicAuthorizationFailed)
                    } else if !partition_exists(ctx, &name, p.partition_index) {
                        Some(GroupError::UnknownTopicOrPartition)
                    } else if metadata.len() > metadata_max {
                        Some(GroupError::OffsetMetadataTooLarge)
                    } else {
                        None
                    };
                    CommitPartition {
                        partition: p.partition_index,
                        offset: Offset(p.committed_offset),
                        leader_epoch: LeaderEpoch(if info.version >= 6 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        }),
                        metadata,
                        error,
                    }
                })
                .collect();
            (name, parts)
        })
        .collect();
    let commit = CommitRequest {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: if info.version >= 7 { req.group_instance_id.map(|i| i.to_string()) } else { None },
        generation_id: req.generation_id_or_member_epoch,
        topics,
    };
    let result = if ctx.allowed(info, op::READ, resource::GROUP, &commit.group_id) {
        commit_durably(ctx, &commit).await
    } else {
        Err(GroupError::GroupAuthorizationFailed)
    };
    commit_response(&commit, result)
}

/// Validate, write, then apply: the offsets are visible only once durable.
async fn commit_durably(ctx: &Ctx, commit: &CommitRequest) -> Result<(), GroupError> {
    let coordinator = &ctx.coordinator;
    let prepared = coordinator
        .with_group(&commit.group_id, |groups, now| groups.prepare_commit(commit, now))
        .and_then(|r| r)?;
    coordinator::write(&ctx.shard, &ctx.coordinator, &prepared.write).await?;
    coordinator.with(|groups, now| groups.apply_commit(prepared, now))
}

fn commit_response(commit: &CommitRequest, result: Result<(), GroupError>) -> OffsetCommitResponse {
    let topics = commit
        .topics
        .iter()
        .map(|(name, parts)| {
            let partitions = parts
                .iter()
                .map(|p| {
                    let error = p.error.or(result.err());
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition)
                        .with_error_code(super::error::code_of_opt(error))
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(topic_name(name)).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

// ---- OffsetFetch ---------------------------------------------------------------------------

pub fn offset_fetch(ctx: &Ctx, info: &RequestInfo, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let v = info.version;
    if v >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let topics: Option<Vec<(String, Vec<i32>)>> = g
                    .topics
                    .map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
                let fetched = fetch(ctx, info, &g.group_id.0, topics.as_deref(), req.require_stable);
                group_fetch_response(v, g.group_id, fetched)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics: Option<Vec<(String, Vec<i32>)>> =
        req.topics.map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
    let fetched = fetch(ctx, info, &req.group_id.0, topics.as_deref(), v >= 7 && req.require_stable);
    legacy_fetch_response(v, topics.as_deref(), fetched)
}

/// Per topic: its partitions, and the error all of them carry (an unauthorized topic).
type Fetched = Result<Vec<(String, Vec<FetchedPartition>, Option<GroupError>)>, GroupError>;

/// DESCRIBE on the group and on each topic. As in Kafka, a topic the principal may not
/// describe is left out of an "all topics" answer and, when asked for by name, answered with
/// TOPIC_AUTHORIZATION_FAILED on each requested partition (offset -1) without looking it up.
fn fetch(
    ctx: &Ctx,
    info: &RequestInfo,
    group_id: &str,
    topics: Option<&[(String, Vec<i32>)]>,
    require_stable: bool,
) -> Fetched {
    let mut fetched = fetch_committed(ctx, info, group_id, topics)?;
    if require_stable {
        let unstable: Vec<bool> = ctx.coordinator.with_group(group_id, |groups, _| {
            fetched
                .iter()
                .map(|(topic, parts, _)| {
                    parts.iter().any(|p| groups.has_pending_offset(group_id, topic, p.partition))
                })
                .collect()
        })?;
        for ((_, _, error), unstable) in fetched.iter_mut().zip(unstable) {
            if unstable && error.is_none() {
                *error = Some(GroupError::UnstableOffsetCommit);
            }
        }
    }
    Ok(fetched)
}

fn fetch_committed(
    ctx: &Ctx,
    info: &RequestInfo,
    group_id: &str,
    topics: Option<&[(String, Vec<i32>)]>,
) -> Fetched {
    if !ctx.allowed(info, op::DESCRIBE, resource::GROUP, group_id) {
        return Err(GroupError::GroupAuthorizationFailed);
    }
    let Some(requested) = topics else {
        let mut fetched =
            ctx.coordinator.with_group(group_id, |groups, _| groups.fetch_offsets(group_id, None))?;
        fetched.retain(|(name, _)| ctx.allowed(info, op::DESCRIBE, resource::TOPIC, name));
        return Ok(fetched.into_iter().map(|(name, parts)| (name, parts, None)).collect());
    };
    let (allowed, denied): (Vec<_>, Vec<_>) = requested
        .iter()
        .cloned()
        .partition(|(name, _)| ctx.allowed(info, op::DESCRIBE, resource::TOPIC, name));
    let mut out: Vec<_> = ctx
        .coordinator
        .with_group(group_id, |groups, _| groups.fetch_offsets(group_id, Some(&allowed)))?
        .into_iter()
        .map(|(name, parts)| (name, parts, None))
        .collect();
    for (name, parts) in denied {
        let parts = parts.into_iter().map(unknown_offset).collect();
        out.push((name, parts, Some(GroupError::TopicAuthorizationFailed)));
    }
    Ok(out)
}

fn unknown_offset(partition: i32) -> FetchedPartition {
    FetchedPartition {
        partition,
        offset: Offset::NONE,
        leader_epoch: LeaderEpoch::UNKNOWN,
        metadata: Some(String::new()),
    }
}

/// v1..=7: one group, top-level error (v2+), per-partition errors in v1.
fn legacy_fetch_response(
    v: i16,
    requested: Option<&[(String, Vec<i32>)]>,
    fetched: Fetched,
) -> OffsetFetchResponse {
    let partition = |p: &FetchedPartition, error: Option<GroupError>| {
        let r = OffsetFetchResponsePartition::default()
            .with_partition_index(p.partition)
            .with_committed_offset(p.offset.0)
            .with_metadata(p.metadata.clone().map(StrBytes::from_string))
            .with_error_code(super::error::code_of_opt(error));
        if v >= 5 {
            r.with_committed_leader_epoch(p.leader_epoch.0)
        } else {
            r
        }
    };
    match fetched {
        Ok(topics) => {
            let topics = topics
                .iter()
                .map(|(name, parts, error)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(topic_name(name))
                        .with_partitions(parts.iter().map(|p| partition(p, *error)).collect())
                })
                .collect();
            OffsetFetchResponse::default().with_topics(topics)
        }
        Err(e) if v >= 2 => OffsetFetchResponse::default().with_error_code(e.code()),
        Err(e) => {
            // v1 has no top-level error: every requested partition carries it.
            let topics = requested
                .unwrap_or_default()
                .iter()
                .map(|(name, parts)| {
                    OffsetFetchResponseTopic::default().with_name(topic_name(name)).with_partitions(
                        parts.iter().map(|p| partition(&unknown_offset(*p), Some(e))).collect(),
                    )
                })
                .collect();
            OffsetFetchResponse::default().with_topics(topics)
        }
    }
}

fn group_fetch_response(v: i16, group_id: GroupId, fetched: Fetched) -> OffsetFetchResponseGroup {
    let _ = v;
    match fetched {
        Err(e) => OffsetFetchResponseGroup::default().with_group_id(group_id).with_error_code(e.code()),
        Ok(topics) => {
            let topics = topics
                .into_iter()
                .map(|(name, parts, error)| {
                    let partitions = parts
                        .into_iter()
                        .map(|p| {
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p.partition)
                                .with_committed_offset(p.offset.0)
                                .with_committed_leader_epoch(p.leader_epoch.0)
                                .with_metadata(p.metadata.map(StrBytes::from_string))
                                .with_error_code(super::error::code_of_opt(error))
                        })
                        .collect();
                    OffsetFetchResponseTopics::default()
                        .with_name(topic_name(&name))
                        .with_partitions(partitions)
                })
                .collect();
            OffsetFetchResponseGroup::default().with_group_id(group_id).with_topics(topics)
        }
    }
}

// ---- OffsetDelete --------------------------------------------------------------------------

pub async fn offset_delete(ctx: &Ctx, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group_id = req.group_id.0.to_string();
    let topics: Vec<(String, Vec<i32>)> = req
        .topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.partitions.iter().map(|p| p.partition_index).collect()))
        .collect();
    let coordinator = &ctx.coordinator;
    let prepared = coordinator
        .with_group(&group_id, |groups, _| groups.prepare_offset_delete(&group_id, &topics))
        .and_then(|r| r);
    let (write, mut errors) = match prepared {
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
        Ok(p) => p,
    };
    // Partitions of unknown topics are reported as such, as Kafka does.
    for ((topic, parts), row) in topics.iter().zip(errors.iter_mut()) {
        for (p, e) in parts.iter().zip(row.iter_mut()) {
            if e.is_none() && !partition_exists(ctx, topic, *p) {
                *e = Some(GroupError::UnknownTopicOrPartition);
            }
        }
    }
    if let Err(e) = coordinator::write(&ctx.shard, &ctx.coordinator, &write).await {
        return OffsetDeleteResponse::default().with_error_code(e.code());
    }
    let _ = coordinator.with(|groups, _| groups.apply_offset_delete(&group_id, &write));
    let topics = topics
        .iter()
        .zip(errors)
        .map(|((name, parts), row)| {
            let partitions = parts
                .iter()
                .zip(row)
                .map(|(p, e)| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(*p)
                        .with_error_code(super::error::code_of_opt(e))
                })
                .collect();
            OffsetDeleteResponseTopic::default().with_name(topic_name(name)).with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn responses_encode_at_every_version() {
        let fetched = || -> Fetched {
            Ok(vec![
                (
                    "t".to_string(),
                    vec![FetchedPartition {
                        partition: 0,
                        offset: Offset(5),
                        leader_epoch: LeaderEpoch(2),
                        metadata: Some("m".into()),
                    }],
                    None,
                ),
                ("secret".to_string(), vec![unknown_offset(0)], Some(GroupError::TopicAuthorizationFailed)),
            ])
        };
        let requested = vec![("t".to_string(), vec![0])];
        for v in 1..=9 {
            let mut buf = BytesMut::new();
            let resp = if v >= 8 {
                OffsetFetchResponse::default().with_groups(vec![
                    group_fetch_response(v, GroupId(StrBytes::from_static_str("g")), fetched()),
                    group_fetch_response(
                        v,
                        GroupId(StrBytes::from_static_str("h")),
                        Err(GroupError::LoadInProgress),
                    ),
                ])
            } else {
                legacy_fetch_response(v, Some(&requested), fetched())
            };
            resp.encode(&mut buf, v).unwrap_or_else(|e| panic!("fetch v{v}: {e}"));
            let err = legacy_fetch_response(v.min(7), Some(&requested), Err(GroupError::LoadInProgress));
            err.encode(&mut BytesMut::new(), v.min(7)).unwrap_or_else(|e| panic!("fetch err v{v}: {e}"));
        }
        let commit = CommitRequest {
            group_id: "g".into(),
            member_id: "m".into(),
            instance_id: None,
            generation_id: 1,
            topics: vec![(
                "t".into(),
                vec![CommitPartition {
                    partition: 0,
                    offset: Offset(1),
                    leader_epoch: LeaderEpoch(-1),
                    metadata: String::new(),
                    error: None,
                }],
            )],
        };
        for v in 2..=9 {
            commit_response(&commit, Err(GroupError::IllegalGeneration))
                .encode(&mut BytesMut::new(), v)
                .unwrap_or_else(|e| panic!("commit v{v}: {e}"));
        }
    }
}
