//! Share-group administration on `Client` (KIP-932): describing a share group's members
//! (ShareGroupDescribe) and reading and moving its share-partition start offsets
//! (DescribeShareGroupOffsets, AlterShareGroupOffsets). All go to the group's coordinator.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, DescribeShareGroupOffsetsRequest, GroupId, ShareGroupDescribeRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::Client;
use crate::error::{Error, KafkaCode, Result};
use crate::group::TopicPartition;

/// A member of a share group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareMember {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    pub subscribed: Vec<String>,
    /// Partitions by topic; members of a share group may share a partition.
    pub assignment: Vec<(String, Vec<i32>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupDescription {
    pub group_id: String,
    pub state: String,
    pub group_epoch: i32,
    pub assignor: String,
    pub members: Vec<ShareMember>,
}

fn group_id(g: &str) -> GroupId {
    GroupId(StrBytes::from_string(g.to_string()))
}

impl Client {
    /// Members and assignments of share group `group`.
    pub async fn describe_share_group(&self, group: &str) -> Result<ShareGroupDescription> {
        let connection = self.coordinator(group).await?;
        let request = ShareGroupDescribeRequest::default().with_group_ids(vec![group_id(group)]);
        let g = connection
            .send(&request)
            .await?
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| Error::Invalid(format!("share group {group}: no answer")))?;
        if g.error_code != 0 {
            return Err(Error::kafka(
                g.error_code,
                format!("share group {group}"),
                g.error_message.as_deref(),
            ));
        }
        let members = g
            .members
            .into_iter()
            .map(|m| ShareMember {
                member_id: m.member_id.to_string(),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                member_epoch: m.member_epoch,
                subscribed: m.subscribed_topic_names.iter().map(|t| t.0.to_string()).collect(),
                assignment: m
                    .assignment
                    .topic_partitions
                    .iter()
                    .map(|tp| (tp.topic_name.0.to_string(), tp.partitions.clone()))
                    .collect(),
            })
            .collect();
        Ok(ShareGroupDescription {
            group_id: g.group_id.0.to_string(),
            state: g.group_state.to_string(),
            group_epoch: g.group_epoch,
            assignor: g.assignor_name.to_string(),
            members,
        })
    }

    /// The share-partition start offsets of `group` (every partition it has state for):
    /// records below are done, the ones from it on are still to be acknowledged.
    pub async fn share_group_offsets(&self, group: &str) -> Result<BTreeMap<TopicPartition, i64>> {
        let connection = self.coordinator(group).await?;
        let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
            DescribeShareGroupOffsetsRequestGroup::default().with_group_id(group_id(group)).with_topics(None),
        ]);
        let g = connection
            .send(&request)
            .await?
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| Error::Invalid(format!("share group {group}: no answer")))?;
        if g.error_code != 0 {
            return Err(Error::kafka(
                g.error_code,
                format!("share group {group}"),
                g.error_message.as_deref(),
            ));
        }
        let mut out = BTreeMap::new();
        for t in g.topics {
            for p in t.partitions {
                KafkaCode::check(p.error_code, || format!("{}/{}", t.topic_name.0, p.partition_index))?;
                if p.start_offset >= 0 {
                    out.insert(
                        TopicPartition::new(t.topic_name.0.as_str(), p.partition_index),
                        p.start_offset,
                    );
                }
            }
        }
        Ok(out)
    }

    /// Moves `group`'s share-partition start offsets (the group must have no members): what
    /// lies below is treated as done, everything from the new offset is delivered again.
    pub async fn alter_share_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<()> {
        let mut by_topic: BTreeMap<&str, Vec<AlterShareGroupOffsetsRequestPartition>> = BTreeMap::new();
        for (tp, offset) in offsets {
            by_topic.entry(tp.topic.as_str()).or_default().push(
                AlterShareGroupOffsetsRequestPartition::default()
                    .with_partition_index(tp.partition)
                    .with_start_offset(*offset),
            );
        }
        let topics = by_topic
            .into_iter()
            .map(|(t, ps)| {
                AlterShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(TopicName(StrBytes::from_string(t.to_string())))
                    .with_partitions(ps)
            })
            .collect();
        let connection = self.coordinator(group).await?;
        let request =
            AlterShareGroupOffsetsRequest::default().with_group_id(group_id(group)).with_topics(topics);
        let response = connection.send(&request).await?;
        if response.error_code != 0 {
            return Err(Error::kafka(
                response.error_code,
                format!("share group {group}"),
                response.error_message.as_deref(),
            ));
        }
        for t in response.responses {
            for p in t.partitions {
                KafkaCode::check(p.error_code, || format!("{}/{}", t.topic_name.0, p.partition_index))?;
            }
        }
        Ok(())
    }
}
