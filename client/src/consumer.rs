//! Classic consumer-group membership (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) with
//! protocol type `consumer` and the `range` assignor, so Java, librdkafka and Python
//! consumers can share a group with us. The member is driven by its owner: call
//! `heartbeat_if_due` between fetches; when it reports a rebalance, call `rejoin` and use the
//! new `assignment`. The subscription and assignment blobs are in `assignment`.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::assignment::{decode_assignment, decode_subscription, encode_assignment, encode_subscription};
use crate::client::Client;
use crate::connection::Connection;
use crate::error::{Error, KafkaCode, Result};
use crate::group::TopicPartition;

const PROTOCOL_TYPE: &str = "consumer";
const ASSIGNOR: &str = "range";
/// Join/sync rounds before giving up (each may wait for other members).
const JOIN_ATTEMPTS_MAX: usize = 30;

#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub group: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub heartbeat_interval: Duration,
}

impl GroupConfig {
    pub fn new(group: &str) -> GroupConfig {
        GroupConfig {
            group: group.to_string(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            heartbeat_interval: Duration::from_secs(3),
        }
    }
}

/// A joined member of a consumer group.
pub struct GroupMember<'c> {
    client: &'c Client,
    config: GroupConfig,
    topics: Vec<String>,
    coordinator: Rc<Connection>,
    member_id: String,
    generation: i32,
    assignment: Vec<(String, Vec<i32>)>,
    last_heartbeat: Instant,
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

impl<'c> GroupMember<'c> {
    /// Joins `config.group` subscribed to `topics` and waits for an assignment.
    pub async fn join(client: &'c Client, config: GroupConfig, topics: &[&str]) -> Result<GroupMember<'c>> {
        let coordinator = client.coordinator(&config.group).await?;
        let mut member = GroupMember {
            client,
            config,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            coordinator,
            member_id: String::new(),
            generation: -1,
            assignment: Vec::new(),
            last_heartbeat: Instant::now(),
        };
        member.rejoin().await?;
        Ok(member)
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// Partitions this member owns in the current generation.
    pub fn assignment(&self) -> &[(String, Vec<i32>)] {
        &self.assignment
    }

    /// Join and sync until the group is stable with us in it.
    pub async fn rejoin(&mut self) -> Result<()> {
        for _ in 0..JOIN_ATTEMPTS_MAX {
            let joined = match self.join_once().await {
                Ok(j) => j,
                Err(e) if self.recover(&e).await => continue,
                Err(e) => return Err(e),
            };
            match self.sync_once(joined).await {
                Ok(()) => {
                    self.last_heartbeat = Instant::now();
                    return Ok(());
                }
                Err(e) if self.recover(&e).await => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Invalid(format!(
            "group {}: no stable membership after {JOIN_ATTEMPTS_MAX} rounds",
            self.config.group
        )))
    }

    /// Adjusts state after a join/sync error; true when another round may succeed.
    async fn recover(&mut self, e: &Error) -> bool {
        match e.code() {
            Some(KafkaCode::UNKNOWN_MEMBER_ID) | Some(KafkaCode::ILLEGAL_GENERATION) => {
                self.member_id.clear();
                self.generation = -1;
                true
            }
            Some(KafkaCode::REBALANCE_IN_PROGRESS) | Some(KafkaCode::MEMBER_ID_REQUIRED) => true,
            Some(KafkaCode::NOT_COORDINATOR)
            | Some(KafkaCode::COORDINATOR_NOT_AVAILABLE)
            | Some(KafkaCode::COORDINATOR_LOAD_IN_PROGRESS) => {
                compio::time::sleep(Duration::from_millis(200)).await;
                match self.client.coordinator(&self.config.group).await {
                    Ok(c) => {
                        self.coordinator = c;
                        true
                    }
                    Err(_) => false,
                }
            }
            _ => false,
        }
    }

    async fn join_once(&mut self) -> Result<JoinGroupResponse> {
        let version = self.coordinator.version_for::<JoinGroupRequest>()?;
        let subscription = encode_subscription(&self.topics)?;
        let mut request = JoinGroupRequest::default()
            .with_group_id(GroupId(s(&self.config.group)))
            .with_session_timeout_ms(self.config.session_timeout_ms)
            .with_member_id(s(&self.member_id))
            .with_protocol_type(s(PROTOCOL_TYPE))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s(ASSIGNOR))
                .with_metadata(subscription)]);
        if version >= 1 {
            request = request.with_rebalance_timeout_ms(self.config.rebalance_timeout_ms);
        }
        let extra = Duration::from_millis(self.config.rebalance_timeout_ms.max(0) as u64);
        let response = self.coordinator.send_with_extra_time(&request, extra).await?;
        if response.error_code == KafkaCode::MEMBER_ID_REQUIRED.0 {
            self.member_id = response.member_id.to_string(); // KIP-394: rejoin with this id
        }
        KafkaCode::check(response.error_code, || format!("join group {}", self.config.group))?;
        self.member_id = response.member_id.to_string();
        self.generation = response.generation_id;
        Ok(response)
    }

    async fn sync_once(&mut self, joined: JoinGroupResponse) -> Result<()> {
        let version = self.coordinator.version_for::<SyncGroupRequest>()?;
        let assignments =
            if joined.leader.as_str() == self.member_id { self.assign(&joined).await? } else { Vec::new() };
        let mut request = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&self.config.group)))
            .with_generation_id(self.generation)
            .with_member_id(s(&self.member_id))
            .with_assignments(assignments);
        if version >= 5 {
            request = request
                .with_protocol_type(Some(s(PROTOCOL_TYPE)))
                .with_protocol_name(joined.protocol_name.clone());
        }
        let extra = Duration::from_millis(self.config.rebalance_timeout_ms.max(0) as u64);
        let response = self.coordinator.send_with_extra_time(&request, extra).await?;
        KafkaCode::check(response.error_code, || format!("sync group {}", self.config.group))?;
        self.assignment = decode_assignment(&response.assignment)?;
        Ok(())
    }

    /// As the leader: range-assign every member's subscribed topics.
    async fn assign(&self, joined: &JoinGroupResponse) -> Result<Vec<SyncGroupRequestAssignment>> {
        let mut subscriptions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in &joined.members {
            subscriptions.insert(m.member_id.to_string(), decode_subscription(&m.metadata)?);
        }
        let mut topics: Vec<&str> = subscriptions.values().flatten().map(String::as_str).collect();
        topics.sort_unstable();
        topics.dedup();
        let metadata = self.client.metadata(Some(&topics), false).await?;
        let counts: BTreeMap<String, i32> = metadata
            .topics
            .iter()
            .filter(|t| t.error == 0)
            .map(|t| (t.name.clone(), t.partitions.len() as i32))
            .collect();
        let plan = range_assign(&subscriptions, &counts);
        plan.into_iter()
            .map(|(member, owned)| {
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(s(&member))
                    .with_assignment(encode_assignment(&owned)?))
            })
            .collect()
    }

    /// Sends a heartbeat when one is due. `Ok(true)`: the group is rebalancing (or forgot
    /// us) and `rejoin` must be called before fetching on.
    pub async fn heartbeat_if_due(&mut self) -> Result<bool> {
        if self.last_heartbeat.elapsed() < self.config.heartbeat_interval {
            return Ok(false);
        }
        self.last_heartbeat = Instant::now();
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&self.config.group)))
            .with_generation_id(self.generation)
            .with_member_id(s(&self.member_id));
        let response = self.coordinator.send(&request).await?;
        match KafkaCode(response.error_code) {
            KafkaCode::NONE => Ok(false),
            KafkaCode::REBALANCE_IN_PROGRESS
            | KafkaCode::ILLEGAL_GENERATION
            | KafkaCode::UNKNOWN_MEMBER_ID => Ok(true),
            code => Err(Error::kafka(code.0, format!("heartbeat in group {}", self.config.group), None)),
        }
    }

    /// Commits offsets as this member of this generation.
    pub async fn commit(&self, offsets: &BTreeMap<TopicPartition, riptide_model::Offset>) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        self.client.commit_offsets(&self.config.group, self.generation, &self.member_id, offsets).await
    }

    /// Leaves the group so the others rebalance at once instead of after the session timeout.
    pub async fn leave(self) -> Result<()> {
        let version = self.coordinator.version_for::<LeaveGroupRequest>()?;
        let request = if version >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&self.config.group)))
                .with_members(vec![MemberIdentity::default().with_member_id(s(&self.member_id))])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&self.config.group)))
                .with_member_id(s(&self.member_id))
        };
        let response = self.coordinator.send(&request).await?;
        KafkaCode::check(response.error_code, || format!("leave group {}", self.config.group))
    }
}

/// Kafka's RangeAssignor: per topic, members subscribed to it in id order get contiguous
/// ranges, the first `partitions % members` one extra.
pub fn range_assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<(String, Vec<i32>)>> {
    let mut plan: BTreeMap<String, Vec<(String, Vec<i32>)>> =
        subscriptions.keys().map(|m| (m.clone(), Vec::new())).collect();
    for (topic, count) in partition_counts {
        let members: Vec<&String> =
            subscriptions.iter().filter(|(_, ts)| ts.contains(topic)).map(|(m, _)| m).collect();
        if members.is_empty() {
            continue;
        }
        let n = members.len() as i32;
        let (per, extra) = (count / n, count % n);
        for (i, member) in members.into_iter().enumerate() {
            let i = i as i32;
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            if len > 0 {
                if let Some(owned) = plan.get_mut(member) {
                    owned.push((topic.clone(), (start..start + len).collect()));
                }
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn range_assignment_matches_kafka() {
        let subs: BTreeMap<String, Vec<String>> = [
            ("a".to_string(), vec!["t1".to_string(), "t2".to_string()]),
            ("b".to_string(), vec!["t1".to_string()]),
            ("c".to_string(), vec!["t1".to_string(), "t2".to_string()]),
        ]
        .into_iter()
        .collect();
        let counts: BTreeMap<String, i32> =
            [("t1".to_string(), 7), ("t2".to_string(), 1)].into_iter().collect();
        let plan = range_assign(&subs, &counts);
        assert_eq!(plan["a"], vec![("t1".to_string(), vec![0, 1, 2]), ("t2".to_string(), vec![0])]);
        assert_eq!(plan["b"], vec![("t1".to_string(), vec![3, 4])]);
        assert_eq!(plan["c"], vec![("t1".to_string(), vec![5, 6])]);
    }

    #[test]
    fn protocol_blobs_round_trip() {
        let topics = vec!["orders".to_string(), "payments".to_string()];
        assert_eq!(
            decode_subscription(&encode_subscription(&topics).expect("encode")).expect("decode"),
            topics
        );
        let owned = vec![("orders".to_string(), vec![0, 2])];
        let blob = encode_assignment(&owned).expect("encode");
        assert_eq!(&blob[..2], &[0, 0], "version prefix");
        assert_eq!(decode_assignment(&blob).expect("decode"), owned);
        assert!(decode_assignment(&Bytes::new()).expect("empty").is_empty());
        assert!(decode_assignment(&Bytes::from_static(&[0])).is_err());
    }
}
