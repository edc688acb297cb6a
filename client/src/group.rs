//! Consumer-group administration on `Client`: finding a group's coordinator, listing,
//! describing and deleting groups, and reading and writing committed offsets. The membership
//! protocol itself (join, sync, heartbeat, leave) is in `consumer`.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest,
    OffsetCommitRequest, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::assignment::decode_assignment;
use crate::client::{broker_addr, Client};
use crate::connection::Connection;
use crate::error::{Error, KafkaCode, Result};

/// Maps of committed offsets are keyed by it (ordered by topic, then partition).
pub use riptide_model::TopicPartition;

fn group_id(g: &str) -> GroupId {
    GroupId(StrBytes::from_string(g.to_string()))
}

fn topic_name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_string()))
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Empty when the broker's ListGroups version predates states (v4).
    pub state: String,
}

/// A member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Decoded for `consumer` groups; empty otherwise or when the member has none yet.
    pub assignment: Vec<(String, Vec<i32>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    /// The assignor chosen (`range`, `roundrobin`, ...).
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// How many times FindCoordinator is retried while the coordinator loads or moves.
const COORDINATOR_ATTEMPTS_MAX: usize = 20;

/// The answers that mean "ask the (new) coordinator again in a moment": the group's offsets
/// partition is still loading, or it moved. Kafka's admin client retries these until its
/// `default.api.timeout.ms`; the group calls here retry them for about five seconds.
fn coordinator_moved_or_loading(e: &Error) -> bool {
    matches!(
        e.code(),
        Some(KafkaCode::COORDINATOR_LOAD_IN_PROGRESS)
            | Some(KafkaCode::COORDINATOR_NOT_AVAILABLE)
            | Some(KafkaCode::NOT_COORDINATOR)
    )
}

/// Runs `call` again (each time looking the coordinator up afresh) while it answers
/// [`coordinator_moved_or_loading`].
async fn retry_on_coordinator<T, F, Fut>(mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Err(e) if coordinator_moved_or_loading(&e) && attempt < COORDINATOR_ATTEMPTS_MAX => {
                compio::time::sleep(Duration::from_millis(250)).await;
            }
            r => return r,
        }
    }
}

impl Client {
    /// The connection to `group`'s coordinator, waiting out COORDINATOR_NOT_AVAILABLE and
    /// COORDINATOR_LOAD_IN_PROGRESS for a few seconds.
    pub async fn coordinator(&self, group: &str) -> Result<Rc<Connection>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.find_coordinator_once(group).await {
                Ok((_, addr)) => return self.connection_to(&addr).await,
                Err(e) if e.is_retriable() && attempt < COORDINATOR_ATTEMPTS_MAX => {
                    compio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The node id of `group`'s coordinator.
    pub async fn coordinator_id(&self, group: &str) -> Result<i32> {
        Ok(self.find_coordinator_once(group).await?.0)
    }

    async fn find_coordinator_once(&self, group: &str) -> Result<(i32, String)> {
        let connection = self.any_broker().await?;
        let version = connection.version_for::<FindCoordinatorRequest>()?;
        let key = StrBytes::from_string(group.to_string());
        let request = if version >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![key])
        } else {
            FindCoordinatorRequest::default().with_key(key)
        };
        let response = connection.send(&request).await?;
        let context = || format!("coordinator of group {group}");
        if version >= 4 {
            let c = response.coordinators.first().ok_or_else(|| Error::Invalid(context()))?;
            if c.error_code != 0 {
                return Err(Error::kafka(c.error_code, context(), c.error_message.as_deref()));
            }
            Ok((c.node_id.0, broker_addr(&c.host, c.port)))
        } else {
            if response.error_code != 0 {
                return Err(Error::kafka(response.error_code, context(), response.error_message.as_deref()));
            }
            Ok((response.node_id.0, broker_addr(&response.host, response.port)))
        }
    }

    /// Every group on every broker, sorted by id.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        retry_on_coordinator(|| self.list_groups_once()).await
    }

    async fn list_groups_once(&self) -> Result<Vec<GroupListing>> {
        let metadata = self.metadata(Some(&[]), false).await?;
        let mut out = Vec::new();
        for broker in &metadata.brokers {
            let connection = self.broker(broker.node_id).await?;
            let response = connection.send(&ListGroupsRequest::default()).await?;
            KafkaCode::check(response.error_code, || format!("list groups on broker {}", broker.node_id))?;
            out.extend(response.groups.into_iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(out)
    }

    /// State and members of one group (state `Dead` when it does not exist, as Kafka says).
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        retry_on_coordinator(|| self.describe_group_once(group)).await
    }

    async fn describe_group_once(&self, group: &str) -> Result<GroupDescription> {
        let connection = self.coordinator(group).await?;
        let response =
            connection.send(&DescribeGroupsRequest::default().with_groups(vec![group_id(group)])).await?;
        let g = response
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| Error::Invalid(format!("group {group}: no answer")))?;
        if g.error_code != 0 {
            return Err(Error::kafka(g.error_code, format!("group {group}"), g.error_message.as_deref()));
        }
        let is_consumer = g.protocol_type.as_str() == "consumer";
        let members = g
            .members
            .into_iter()
            .map(|m| MemberDescription {
                member_id: m.member_id.to_string(),
                instance_id: m.group_instance_id.map(|s| s.to_string()),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                assignment: if is_consumer {
                    decode_assignment(&m.member_assignment).unwrap_or_default()
                } else {
                    Vec::new()
                },
            })
            .collect();
        Ok(GroupDescription {
            group_id: g.group_id.0.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members,
        })
    }

    /// Deletes groups (they must be empty); one result per group.
    pub async fn delete_groups(&self, groups: &[&str]) -> Result<Vec<Result<()>>> {
        let mut out = Vec::with_capacity(groups.len());
        for group in groups {
            let result = async {
                let connection = self.coordinator(group).await?;
                let response = connection
                    .send(&DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]))
                    .await?;
                let r = response
                    .results
                    .first()
                    .ok_or_else(|| Error::Invalid(format!("group {group}: no answer")))?;
                KafkaCode::check(r.error_code, || format!("group {group}"))
            }
            .await;
            out.push(result);
        }
        Ok(out)
    }

    /// Committed offsets of `group`: for the given partitions, or (`None`) all it has.
    /// Partitions without a commit are left out.
    pub async fn committed_offsets(
        &self,
        group: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, riptide_model::Offset>> {
        retry_on_coordinator(|| self.committed_offsets_once(group, partitions)).await
    }

    async fn committed_offsets_once(
        &self,
        group: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, riptide_model::Offset>> {
        let connection = self.coordinator(group).await?;
        let version = connection.version_for::<OffsetFetchRequest>()?;
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for TopicPartition { topic, partition } in partitions.unwrap_or_default() {
            by_topic.entry(topic.as_str()).or_default().push(*partition);
        }
        let request = if version >= 8 {
            let topics = partitions.map(|_| {
                by_topic
                    .iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopics::default()
                            .with_name(topic_name(t))
                            .with_partition_indexes(ps.clone())
                    })
                    .collect()
            });
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(group_id(group))
                .with_topics(topics)])
        } else {
            let topics = partitions.map(|_| {
                by_topic
                    .iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partition_indexes(ps.clone())
                    })
                    .collect()
            });
            if topics.is_none() && version < 2 {
                return Err(Error::Invalid("listing all committed offsets needs OffsetFetch v2+".into()));
            }
            OffsetFetchRequest::default().with_group_id(group_id(group)).with_topics(topics)
        };
        let response = connection.send(&request).await?;
        committed_from_response(group, response)
    }

    /// Commits offsets for `group`. Outside a generation (`generation` -1, empty member id)
    /// this is an admin commit, which Kafka accepts only for an empty group.
    pub async fn commit_offsets(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        offsets: &BTreeMap<TopicPartition, riptide_model::Offset>,
    ) -> Result<()> {
        retry_on_coordinator(|| self.commit_offsets_once(group, generation, member_id, offsets)).await
    }

    async fn commit_offsets_once(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        offsets: &BTreeMap<TopicPartition, riptide_model::Offset>,
    ) -> Result<()> {
        let connection = self.coordinator(group).await?;
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (TopicPartition { topic, partition }, offset) in offsets {
            by_topic.entry(topic.as_str()).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(offset.0),
            );
        }
        let topics = by_topic
            .into_iter()
            .map(|(t, ps)| OffsetCommitRequestTopic::default().with_name(topic_name(t)).with_partitions(ps))
            .collect();
        let request = OffsetCommitRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(StrBytes::from_string(member_id.to_string()))
            .with_topics(topics);
        let response = connection.send(&request).await?;
        for t in &response.topics {
            for p in &t.partitions {
                KafkaCode::check(p.error_code, || {
                    format!("commit {}/{} for group {group}", t.name.0, p.partition_index)
                })?;
            }
        }
        Ok(())
    }
}

fn committed_from_response(
    group: &str,
    response: OffsetFetchResponse,
) -> Result<BTreeMap<TopicPartition, riptide_model::Offset>> {
    let mut out = BTreeMap::new();
    if let Some(g) = response.groups.into_iter().next() {
        KafkaCode::check(g.error_code, || format!("offsets of group {group}"))?;
        for t in g.topics {
            for p in t.partitions {
                KafkaCode::check(p.error_code, || {
                    format!("offset of {}/{} in group {group}", t.name.0, p.partition_index)
                })?;
                if p.committed_offset >= 0 {
                    out.insert(
                        TopicPartition::new(t.name.0.as_str(), p.partition_index),
                        riptide_model::Offset(p.committed_offset),
                    );
                }
            }
        }
        return Ok(out);
    }
    KafkaCode::check(response.error_code, || format!("offsets of group {group}"))?;
    for t in response.topics {
        for p in t.partitions {
            KafkaCode::check(p.error_code, || {
                format!("offset of {}/{} in group {group}", t.name.0, p.partition_index)
            })?;
            if p.committed_offset >= 0 {
                out.insert(
                    TopicPartition::new(t.name.0.as_str(), p.partition_index),
                    riptide_model::Offset(p.committed_offset),
                );
            }
        }
    }
    Ok(out)
}
