//! Unit tests of the group state machine and offsets bookkeeping, driven with an explicit
//! clock (no sleeps): joins, the initial delay, leader election, sync, heartbeats, session and
//! sync expiry, static membership, fencing, commits, deletion, expiry and replay.

use bytes::Bytes;
use riptide_model::{LeaderEpoch, Offset};

use super::error::GroupError;
use super::group::{GroupState, JoinRequest, JoinResult, Protocol, SyncResult};
use super::offsets_log::{self, LogRecord};
use super::registry::{CommitPartition, CommitRequest, Groups};
use super::{GroupConfig, Now};

const G: &str = "g";
const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

struct Harness {
    groups: Groups,
    now: Now,
}

fn protocols(names: &[&str]) -> Vec<Protocol> {
    names
        .iter()
        .map(|n| Protocol { name: n.to_string(), metadata: Bytes::from(format!("meta-{n}")) })
        .collect()
}

fn join_request(member_id: &str, instance_id: Option<&str>, version: i16) -> JoinRequest {
    JoinRequest {
        group_id: G.into(),
        member_id: member_id.into(),
        instance_id: instance_id.map(str::to_string),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: protocols(&["range"]),
        version,
    }
}

impl Harness {
    fn new() -> Harness {
        Harness {
            groups: Groups::new(GroupConfig::default()),
            now: Now { mono_ms: 1_000, wall_ms: 1_700_000_000_000 },
        }
    }

    fn advance(&mut self, ms: u64) {
        self.now.mono_ms += ms;
        self.now.wall_ms += ms as i64;
        self.groups.tick(self.now);
    }

    fn join(&mut self, req: JoinRequest) -> flume::Receiver<JoinResult> {
        let (tx, rx) = flume::bounded(1);
        self.groups.join(req, tx, self.now);
        rx
    }

    /// A v5 dynamic member: MEMBER_ID_REQUIRED first, then the parked real join.
    fn join_new(&mut self) -> (String, flume::Receiver<JoinResult>) {
        let first = self.join(join_request("", None, 5)).try_recv().expect("immediate answer");
        assert_eq!(first.error, Some(GroupError::MemberIdRequired));
        assert!(!first.member_id.is_empty());
        let rx = self.join(join_request(&first.member_id, None, 5));
        (first.member_id, rx)
    }

    /// Advances the clock until `rx` is answered: the initial delay grows while members
    /// keep arriving, up to the rebalance timeout.
    fn wait_join(&mut self, rx: &flume::Receiver<JoinResult>) {
        for _ in 0..80 {
            if !rx.is_empty() {
                return;
            }
            self.advance(500);
        }
        panic!("join never completed");
    }

    fn sync(
        &mut self,
        member: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> flume::Receiver<SyncResult> {
        let (tx, rx) = flume::bounded(1);
        self.groups.sync(
            G,
            member,
            None,
            generation,
            Some("consumer"),
            Some("range"),
            assignments,
            tx,
            self.now,
        );
        rx
    }

    fn heartbeat(&mut self, member: &str, generation: i32) -> Result<(), GroupError> {
        self.groups.heartbeat(G, member, None, generation, self.now)
    }

    fn state(&self) -> GroupState {
        self.groups.get(G).map_or(GroupState::Dead, |g| g.state())
    }

    /// Brings up a Stable group of `n` dynamic members; returns (member ids, generation).
    fn stable_group(&mut self, n: usize) -> (Vec<String>, i32) {
        let mut members = Vec::new();
        let mut waits = Vec::new();
        for _ in 0..n {
            let (id, rx) = self.join_new();
            members.push(id);
            waits.push(rx);
        }
        self.wait_join(&waits[0]);
        let results: Vec<JoinResult> =
            waits.iter().map(|rx| rx.try_recv().expect("join completed")).collect();
        let generation = results[0].generation_id;
        let leader = results[0].leader.clone();
        let assignments: Vec<(String, Bytes)> =
            members.iter().map(|m| (m.clone(), Bytes::from(format!("asg-{m}")))).collect();
        let mut syncs = Vec::new();
        for m in &members {
            if *m != leader {
                syncs.push(self.sync(m, generation, vec![]));
            }
        }
        syncs.push(self.sync(&leader, generation, assignments));
        for rx in syncs {
            assert_eq!(rx.try_recv().expect("sync answered").error, None);
        }
        assert_eq!(self.state(), GroupState::Stable);
        (members, generation)
    }
}

#[test]
fn first_member_waits_for_the_initial_delay_then_leads() {
    let mut h = Harness::new();
    let (id, rx) = h.join_new();
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    h.advance(2_999);
    assert!(rx.try_recv().is_err(), "answered before the initial delay");
    h.advance(1);
    let r = rx.try_recv().expect("joined");
    assert_eq!((r.error, r.generation_id, r.leader.as_str()), (None, 1, id.as_str()));
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].metadata, Bytes::from_static(b"meta-range"));
    assert_eq!(h.state(), GroupState::CompletingRebalance);
}

#[test]
fn old_clients_join_without_member_id_required() {
    let mut h = Harness::new();
    let rx = h.join(join_request("", None, 3));
    h.advance(3_000);
    let r = rx.try_recv().expect("joined");
    assert_eq!(r.error, None);
    assert!(r.member_id.starts_with("client-"));
}

#[test]
fn three_members_one_generation_leader_assigns_followers_wait() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group(3);
    assert_eq!(generation, 1);
    // Every member got the assignment the leader made for it.
    for m in &members {
        let r = h.sync(m, generation, vec![]).try_recv().expect("stable sync");
        assert_eq!(r.assignment, Bytes::from(format!("asg-{m}")));
    }
    for m in &members {
        assert_eq!(h.heartbeat(m, generation), Ok(()));
    }
}

#[test]
fn followers_sync_is_parked_until_the_leader_syncs() {
    let mut h = Harness::new();
    let (a, ra) = h.join_new();
    let (b, rb) = h.join_new();
    h.wait_join(&ra);
    let (ja, jb) = (ra.try_recv().expect("a"), rb.try_recv().expect("b"));
    let (leader, follower) = if ja.leader == a { (a, b) } else { (b, a) };
    assert_eq!(ja.leader, jb.leader);
    let leader_join = if ja.member_id == leader { &ja } else { &jb };
    let follower_join = if ja.member_id == follower { &ja } else { &jb };
    assert_eq!(leader_join.members.len(), 2);
    assert!(follower_join.members.is_empty());
    let parked = h.sync(&follower, 1, vec![]);
    assert!(parked.try_recv().is_err());
    assert_eq!(h.heartbeat(&follower, 1), Ok(()), "heartbeats are fine while completing");
    let mine = h.sync(&leader, 1, vec![(follower.clone(), Bytes::from_static(b"F"))]);
    assert_eq!(parked.try_recv().expect("released").assignment, Bytes::from_static(b"F"));
    assert_eq!(mine.try_recv().expect("leader").assignment, Bytes::new(), "left out = empty");
}

#[test]
fn fencing_errors() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group(1);
    assert_eq!(h.heartbeat("nobody", generation), Err(GroupError::UnknownMemberId));
    assert_eq!(h.heartbeat(&members[0], generation + 1), Err(GroupError::IllegalGeneration));
    assert_eq!(
        h.groups.heartbeat("other-group", &members[0], None, 1, h.now),
        Err(GroupError::UnknownMemberId)
    );
    let r = h.sync(&members[0], generation - 1, vec![]).try_recv().expect("answered");
    assert_eq!(r.error, Some(GroupError::IllegalGeneration));
    let r = h.join(join_request("made-up", None, 5)).try_recv().expect("answered");
    assert_eq!(r.error, Some(GroupError::UnknownMemberId));
    let mut bad = join_request("", None, 5);
    bad.protocol_type = "connect".into();
    assert_eq!(h.join(bad).try_recv().expect("answered").error, Some(GroupError::InconsistentGroupProtocol));
    let mut short = join_request("", None, 5);
    short.session_timeout_ms = 1_000;
    assert_eq!(h.join(short).try_recv().expect("answered").error, Some(GroupError::InvalidSessionTimeout));
}

#[test]
fn new_member_triggers_rebalance_and_existing_members_learn_by_heartbeat() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group(2);
    let (c, rc) = h.join_new();
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(&members[0], generation), Err(GroupError::RebalanceInProgress));
    let r0 = h.join(join_request(&members[0], None, 5));
    assert!(r0.try_recv().is_err(), "waits for the others");
    let r1 = h.join(join_request(&members[1], None, 5));
    // Everyone known has rejoined: the phase completes without waiting for the timeout.
    let results = [r0.try_recv().expect("0"), r1.try_recv().expect("1"), rc.try_recv().expect("c")];
    assert!(results.iter().all(|r| r.error.is_none() && r.generation_id == generation + 1));
    assert_eq!(results.iter().filter(|r| !r.members.is_empty()).count(), 1, "one leader");
    assert!(results.iter().any(|r| r.member_id == c));
}

#[test]
fn expired_member_is_removed_and_its_partitions_rebalanced() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group(2);
    let (alive, dead) = (&members[0], &members[1]);
    for _ in 0..2 {
        h.advance(4_000);
        assert_eq!(h.heartbeat(alive, generation), Ok(()));
    }
    h.advance(4_000);
    // 12 s without a heartbeat from `dead` (session 10 s): gone, rebalance started.
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(alive, generation), Err(GroupError::RebalanceInProgress));
    let r = h.join(join_request(alive, None, 5)).try_recv().expect("sole member completes at once");
    assert_eq!((r.generation_id, r.leader.as_str(), r.members.len()), (generation + 1, alive.as_str(), 1));
    assert_eq!(h.heartbeat(dead, generation), Err(GroupError::UnknownMemberId));
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let mut h = Harness::new();
    let (members, _) = h.stable_group(2);
    let leader = h.groups.get(G).and_then(|g| g.leader_id.clone()).expect("leader");
    let other = members.iter().find(|m| **m != leader).expect("follower").clone();
    let r0 = h.join(join_request(&leader, None, 5)); // a leader's rejoin starts a rebalance
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    // The follower keeps heartbeating (REBALANCE_IN_PROGRESS) but never rejoins.
    for _ in 0..7 {
        h.advance(4_000);
        assert_eq!(h.heartbeat(&other, 1), Err(GroupError::RebalanceInProgress));
    }
    assert!(r0.is_empty());
    h.advance(4_000);
    let r = r0.try_recv().expect("completed by the rebalance timeout");
    assert_eq!((r.generation_id, r.members.len()), (2, 1));
    assert!(!h.groups.get(G).expect("group").has_member(&other));
}

#[test]
fn leave_group_rebalances_and_last_leave_empties_the_group() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group(2);
    let out = h.groups.leave(G, &[(members[1].clone(), None)], h.now).expect("group exists");
    assert_eq!(out, vec![Ok(())]);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let r = h.join(join_request(&members[0], None, 5)).try_recv().expect("completes");
    assert_eq!(r.generation_id, generation + 1);
    let out =
        h.groups.leave(G, &[(members[0].clone(), None), ("ghost".into(), None)], h.now).expect("exists");
    assert_eq!(out, vec![Ok(()), Err(GroupError::UnknownMemberId)]);
    h.advance(100);
    assert_eq!(h.state(), GroupState::Empty);
    assert!(h.groups.leave("no-such-group", &[("m".into(), None)], h.now).is_err());
}

#[test]
fn members_that_never_sync_are_removed_at_the_sync_deadline() {
    let mut h = Harness::new();
    let (a, ra) = h.join_new();
    let (b, rb) = h.join_new();
    h.wait_join(&ra);
    let ja = ra.try_recv().expect("a");
    let _ = rb.try_recv().expect("b");
    let leader = ja.leader.clone();
    let other = if leader == a { b } else { a };
    let _ = h.sync(&leader, 1, vec![]);
    // `other` heartbeats but never syncs: after the rebalance timeout it is removed.
    for _ in 0..8 {
        h.advance(4_000);
        let _ = h.heartbeat(&other, 1);
        let _ = h.heartbeat(&leader, 1);
    }
    let g = h.groups.get(G).expect("group");
    assert!(!g.has_member(&other));
    assert!(g.has_member(&leader));
}

#[test]
fn static_member_restart_keeps_assignment_without_rebalance() {
    let mut h = Harness::new();
    let rx = h.join(join_request("", Some("i-1"), 5));
    let rx2 = h.join(join_request("", Some("i-2"), 5));
    h.wait_join(&rx);
    let (j1, j2) = (rx.try_recv().expect("1"), rx2.try_recv().expect("2"));
    assert!(j1.member_id.starts_with("i-1-"));
    let leader = j1.leader.clone();
    let assignments = vec![
        (j1.member_id.clone(), Bytes::from_static(b"one")),
        (j2.member_id.clone(), Bytes::from_static(b"two")),
    ];
    for j in [&j1, &j2] {
        let a = if j.member_id == leader { assignments.clone() } else { vec![] };
        let _ = h.sync(&j.member_id, 1, a);
    }
    assert_eq!(h.state(), GroupState::Stable);
    let follower = if j1.member_id == leader { &j2 } else { &j1 };
    let iid = if follower.member_id.starts_with("i-1") { "i-1" } else { "i-2" };
    // The follower's process restarts: same instance id, no member id.
    let r = h.join(join_request("", Some(iid), 5)).try_recv().expect("answered at once");
    assert_eq!((r.error, r.generation_id), (None, 1), "no new generation");
    assert_ne!(r.member_id, follower.member_id);
    assert_eq!(h.state(), GroupState::Stable);
    let got = h.sync(&r.member_id, 1, vec![]).try_recv().expect("stable sync");
    let expected = if iid == "i-1" { "one" } else { "two" };
    assert_eq!(got.assignment, Bytes::from(expected));
    // The old process is fenced.
    assert_eq!(
        h.groups.heartbeat(G, &follower.member_id, Some(iid), 1, h.now),
        Err(GroupError::FencedInstanceId)
    );
    // Static members that stop heartbeating still expire with their session.
    h.advance(SESSION_MS as u64 + 1);
    assert_eq!(h.groups.get(G).map_or(0, |g| g.member_count()), 0);
}

#[test]
fn protocol_selection_takes_the_common_protocol_with_most_votes() {
    let mut h = Harness::new();
    let mut a = join_request("", None, 3);
    a.protocols = protocols(&["cooperative-sticky", "range"]);
    let mut b = join_request("", None, 3);
    b.protocols = protocols(&["range", "cooperative-sticky"]);
    let mut c = join_request("", None, 3);
    c.protocols = protocols(&["cooperative-sticky", "range", "roundrobin"]);
    let rxs = [h.join(a), h.join(b), h.join(c)];
    h.wait_join(&rxs[0]);
    for rx in rxs {
        assert_eq!(rx.try_recv().expect("joined").protocol_name.as_deref(), Some("cooperative-sticky"));
    }
    let mut d = join_request("", None, 3);
    d.protocols = protocols(&["roundrobin"]);
    assert_eq!(h.join(d).try_recv().expect("refused").error, Some(GroupError::InconsistentGroupProtocol));
}

fn commit(group: &str, member: &str, generation: i32, offset: i64) -> CommitRequest {
    CommitRequest {
        group_id: group.into(),
        member_id: member.into(),
        instance_id: None,
        generation_id: generation,
        topics: vec![(
            "t".into(),
            vec![CommitPartition {
                partition: 0,
                offset: Offset(offset),
                leader_epoch: LeaderEpoch(4),
                metadata: "m".into(),
                error: None,
            }],
        )],
    }
}

/// Regression (a flaky wire test, then a lost commit): a simple commit makes a new, empty
/// group; while its write is out, the expiry tick (or a partition's load) drops that group as
/// empty. The commit, once durable, must still be applied: it was answered as done.
#[test]
fn a_simple_commit_survives_its_new_group_being_dropped_while_written() {
    let mut h = Harness::new();
    let p = h.groups.prepare_commit(&commit("fresh", "", -1, 7), h.now).expect("simple commit");
    let later = Now { mono_ms: h.now.mono_ms + 100, wall_ms: h.now.wall_ms + 100 };
    h.groups.tick(later);
    h.groups.finish_load();
    h.groups.apply_commit(p, later);
    let fetched = h.groups.fetch_offsets("fresh", None);
    assert_eq!(fetched[0].1[0].offset, Offset(7));
}

#[test]
fn commits_are_validated_against_the_generation() {
    let mut h = Harness::new();
    // A standalone commit creates an empty group.
    let p = h.groups.prepare_commit(&commit("solo", "", -1, 10), h.now).expect("simple commit");
    assert_eq!(p.write.partition, offsets_log::partition_for("solo", 50));
    assert_eq!(p.write.records.len(), 1);
    h.groups.apply_commit(p, h.now);
    let fetched = h.groups.fetch_offsets("solo", None);
    assert_eq!(fetched[0].1[0].offset, Offset(10));
    assert_eq!(fetched[0].1[0].leader_epoch, LeaderEpoch(4));
    assert_eq!(
        h.groups.prepare_commit(&commit("nope", "m", 3, 1), h.now).err(),
        Some(GroupError::IllegalGeneration)
    );

    let (members, generation) = h.stable_group(2);
    let m = &members[0];
    assert!(h.groups.prepare_commit(&commit(G, m, generation, 5), h.now).is_ok());
    assert_eq!(
        h.groups.prepare_commit(&commit(G, m, generation + 1, 5), h.now).err(),
        Some(GroupError::IllegalGeneration)
    );
    assert_eq!(
        h.groups.prepare_commit(&commit(G, "x", generation, 5), h.now).err(),
        Some(GroupError::UnknownMemberId)
    );
    assert_eq!(
        h.groups.prepare_commit(&commit(G, "", -1, 5), h.now).err(),
        Some(GroupError::UnknownMemberId)
    );
    // During PreparingRebalance the current generation may still commit (cooperative).
    let _ = h.join_new();
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert!(h.groups.prepare_commit(&commit(G, m, generation, 6), h.now).is_ok());
}

#[test]
fn a_later_commit_wins_even_if_its_write_finishes_first() {
    let mut h = Harness::new();
    let first = h.groups.prepare_commit(&commit("s", "", -1, 1), h.now).expect("1");
    let second = h.groups.prepare_commit(&commit("s", "", -1, 2), h.now).expect("2");
    h.groups.apply_commit(second, h.now);
    h.groups.apply_commit(first, h.now);
    assert_eq!(h.groups.fetch_offsets("s", None)[0].1[0].offset, Offset(2));
    let requested = vec![("t".to_string(), vec![0, 1])];
    let f = h.groups.fetch_offsets("s", Some(&requested));
    assert_eq!((f[0].1[0].offset, f[0].1[1].offset), (Offset(2), Offset::NONE));
    let unknown = h.groups.fetch_offsets("missing", Some(&requested));
    assert_eq!(unknown[0].1[0].offset, Offset::NONE);
}

#[test]
fn delete_group_requires_an_empty_group_and_writes_tombstones() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group(1);
    let p = h.groups.prepare_commit(&commit(G, &members[0], generation, 7), h.now).expect("commit");
    h.groups.apply_commit(p, h.now);
    assert_eq!(h.groups.delete_group(G, h.now).err(), Some(GroupError::NonEmptyGroup));
    assert_eq!(h.groups.delete_group("missing", h.now).err(), Some(GroupError::GroupIdNotFound));
    h.groups.leave(G, &[(members[0].clone(), None)], h.now).expect("leave");
    h.advance(100);
    let w = h.groups.delete_group(G, h.now).expect("deleted");
    let decoded: Vec<LogRecord> = w
        .records
        .iter()
        .map(|kv| offsets_log::decode_record(Some(&kv.key), kv.value.as_deref()).expect("rec"))
        .collect();
    assert!(decoded.contains(&LogRecord::Offset {
        group: G.into(),
        topic: "t".into(),
        partition: 0,
        value: None
    }));
    assert!(decoded.contains(&LogRecord::Group { group: G.into(), value: None }));
    assert!(h.groups.get(G).is_none());
}

#[test]
fn offset_delete_refuses_subscribed_topics_of_active_groups() {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let mut h = Harness::new();
    let mut meta = bytes::BytesMut::new();
    meta.extend_from_slice(&1i16.to_be_bytes());
    ConsumerProtocolSubscription::default()
        .with_topics(vec![StrBytes::from_static_str("t")])
        .encode(&mut meta, 1)
        .expect("encode");
    let mut req = join_request("", None, 3);
    req.protocols = vec![Protocol { name: "range".into(), metadata: meta.freeze() }];
    let rx = h.join(req);
    h.advance(3_000);
    let j = rx.try_recv().expect("joined");
    let _ = h.sync(&j.member_id, 1, vec![]);
    for (t, o) in [("t", 1), ("u", 2)] {
        let mut c = commit(G, &j.member_id, 1, o);
        c.topics[0].0 = t.into();
        let p = h.groups.prepare_commit(&c, h.now).expect("commit");
        h.groups.apply_commit(p, h.now);
    }
    let (w, errors) = h
        .groups
        .prepare_offset_delete(G, &[("t".into(), vec![0]), ("u".into(), vec![0])])
        .expect("group exists");
    assert_eq!(errors, vec![vec![Some(GroupError::GroupSubscribedToTopic)], vec![None]]);
    assert_eq!(w.records.len(), 1);
    h.groups.apply_offset_delete(G, &w);
    let left = h.groups.fetch_offsets(G, None);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].0, "t");
    assert_eq!(h.groups.prepare_offset_delete("missing", &[]).err(), Some(GroupError::GroupIdNotFound));
}

#[test]
fn offsets_of_empty_groups_expire_after_retention() {
    let mut h = Harness::new();
    let p = h.groups.prepare_commit(&commit("old", "", -1, 3), h.now).expect("commit");
    h.groups.apply_commit(p, h.now);
    let _ = h.groups.take_outbox();
    h.advance(GroupConfig::default().offsets_retention_ms as u64 - 1_000);
    assert_eq!(h.groups.fetch_offsets("old", None).len(), 1, "not yet");
    h.advance(GroupConfig::default().offsets_retention_check_interval_ms + 1_000);
    assert!(h.groups.get("old").is_none(), "expired and removed");
    let outbox = h.groups.take_outbox();
    let tombstones: usize =
        outbox.iter().map(|w| w.records.iter().filter(|r| r.value.is_none()).count()).sum();
    assert_eq!(tombstones, 2, "offset and group tombstones");
}

#[test]
fn replay_restores_groups_offsets_and_lets_members_carry_on() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group(2);
    let p = h.groups.prepare_commit(&commit(G, &members[0], generation, 42), h.now).expect("commit");
    let commit_records = p.write.records.clone();
    h.groups.apply_commit(p, h.now);
    let mut log: Vec<LogRecord> = Vec::new();
    for w in h.groups.take_outbox() {
        for kv in w.records {
            log.push(offsets_log::decode_record(Some(&kv.key), kv.value.as_deref()).expect("decode"));
        }
    }
    for kv in &commit_records {
        log.push(offsets_log::decode_record(Some(&kv.key), kv.value.as_deref()).expect("decode"));
    }
    // Another group that was later deleted must not come back.
    log.push(LogRecord::Offset {
        group: "gone".into(),
        topic: "t".into(),
        partition: 0,
        value: Some(offsets_log::OffsetValue {
            offset: Offset(1),
            leader_epoch: LeaderEpoch(-1),
            metadata: String::new(),
            commit_timestamp_ms: 1,
            expire_timestamp_ms: -1,
        }),
    });
    log.push(LogRecord::Offset { group: "gone".into(), topic: "t".into(), partition: 0, value: None });
    log.push(LogRecord::Group { group: "gone".into(), value: None });

    let mut restarted = Harness::new();
    for r in log {
        restarted.groups.replay(r, restarted.now);
    }
    restarted.groups.finish_load();
    assert!(restarted.groups.get("gone").is_none());
    assert_eq!(restarted.state(), GroupState::Stable);
    assert_eq!(restarted.groups.fetch_offsets(G, None)[0].1[0].offset, Offset(42));
    for m in &members {
        assert_eq!(restarted.heartbeat(m, generation), Ok(()), "members carry on through a restart");
        let s = restarted.sync(m, generation, vec![]).try_recv().expect("stable sync");
        assert_eq!(s.assignment, Bytes::from(format!("asg-{m}")));
    }
}

#[test]
fn pending_member_ids_expire() {
    let mut h = Harness::new();
    let first = h.join(join_request("", None, 5)).try_recv().expect("answered");
    assert_eq!(first.error, Some(GroupError::MemberIdRequired));
    h.advance(SESSION_MS as u64 + 1);
    let late = h.join(join_request(&first.member_id, None, 5)).try_recv().expect("answered");
    assert_eq!(late.error, Some(GroupError::UnknownMemberId));
}

/// Records written by the coordinator, compacted by the engine, still load: the replay of a
/// compacted partition yields exactly the latest offsets.
#[test]
fn compacted_offsets_partition_replays_to_the_latest_values() {
    use riptide_engine::{Log, LogConfig};
    let dir = std::env::temp_dir().join(format!("riptide-offsets-compaction-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = LogConfig { segment_bytes: 400, ..LogConfig::default() };
    let mut log = Log::open(&dir, cfg.clone(), 1_000).expect("open");
    let mut h = Harness::new();
    for round in 0..20 {
        let group = if round % 2 == 0 { "g1" } else { "g2" };
        let p = h.groups.prepare_commit(&commit(group, "", -1, round), h.now).expect("commit");
        let mut batch = offsets_log::encode_batch(&p.write.records, 1_000).expect("batch").to_vec();
        log.append(&mut batch, LeaderEpoch(0), 1_000).expect("append");
        h.groups.apply_commit(p, h.now);
    }
    log.sync().expect("sync");
    let before = log.size_bytes();
    let stats = log.compact(1_000, 86_400_000).expect("compact");
    assert!(stats.records_removed > 0, "{stats:?}");
    assert!(log.size_bytes() < before);
    let mut replayed = Groups::new(GroupConfig::default());
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let s = log.read(offset, 1 << 20, Offset(i64::MAX), true).expect("read");
        let mut bytes = vec![0u8; s.len as usize];
        s.read_into(&mut bytes).expect("pread");
        let chunk = offsets_log::decode_chunk(&Bytes::from(bytes));
        assert_eq!(chunk.skipped_batches, 0);
        for e in chunk.entries {
            replayed.replay_entry(e, 0, h.now);
        }
        offset = Offset(chunk.next_offset.expect("progress"));
    }
    replayed.finish_load();
    assert_eq!(replayed.fetch_offsets("g1", None)[0].1[0].offset, Offset(18));
    assert_eq!(replayed.fetch_offsets("g2", None)[0].1[0].offset, Offset(19));
    std::fs::remove_dir_all(&dir).ok();
}

/// TxnOffsetCommit: the offsets wait for the producer's marker in their offsets partition;
/// COMMIT makes them the group's, ABORT drops them; the same happens when the log (a
/// transactional batch, then the marker) is replayed after a restart.
#[test]
fn transactional_offsets_become_visible_on_commit_only() {
    use riptide_engine::{ControlType, Log, LogConfig, TxnMarker};
    let mut h = Harness::new();
    let part = offsets_log::partition_for("eos", 50);
    let fetched = |groups: &Groups| groups.fetch_offsets("eos", None).first().map(|t| t.1[0].offset);
    let p = h.groups.prepare_txn_commit(&commit("eos", "", -1, 10), h.now).expect("txn commit");
    let records = p.write.records.clone();
    h.groups.apply_txn_commit(77, p);
    assert!(h.groups.has_pending_txn(77));
    assert!(h.groups.has_pending_offset("eos", "t", 0) && !h.groups.has_pending_offset("eos", "t", 1));
    assert_eq!(fetched(&h.groups), None, "pending until the marker");
    h.groups.complete_txn(77, part + 1, true, h.now);
    assert_eq!(fetched(&h.groups), None, "a marker in another offsets partition is not this group's");
    h.groups.complete_txn(77, part, true, h.now);
    assert_eq!(fetched(&h.groups), Some(Offset(10)));
    let p = h.groups.prepare_txn_commit(&commit("eos", "", -1, 20), h.now).expect("txn commit");
    h.groups.apply_txn_commit(77, p);
    h.groups.complete_txn(77, part, false, h.now);
    assert_eq!(fetched(&h.groups), Some(Offset(10)), "aborted offsets are dropped");
    assert!(!h.groups.has_pending_txn(77));

    // The log as the coordinators write it: txn batch, COMMIT; txn batch, ABORT.
    let dir = std::env::temp_dir().join(format!("riptide-txn-offsets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut log = Log::open(&dir, LogConfig::default(), 1_000).expect("open");
    let marker = |control| TxnMarker { producer_id: 77, producer_epoch: 0, control, coordinator_epoch: 0 };
    let mut b = offsets_log::encode_txn_batch(&records, 1_000, (77, 0)).expect("batch").to_vec();
    log.append_unsequenced(&mut b, LeaderEpoch(0), 1_000).expect("append");
    log.append_marker(&marker(ControlType::Commit), LeaderEpoch(0), 1_000).expect("commit");
    let later = h.groups.prepare_txn_commit(&commit("eos", "", -1, 30), h.now).expect("txn commit");
    let mut b = offsets_log::encode_txn_batch(&later.write.records, 1_000, (77, 0)).expect("batch").to_vec();
    log.append_unsequenced(&mut b, LeaderEpoch(0), 1_000).expect("unsequenced: no sequence check");
    log.append_marker(&marker(ControlType::Abort), LeaderEpoch(0), 1_000).expect("abort");
    let s = log.read(Offset(0), 1 << 20, Offset(i64::MAX), true).expect("read");
    let chunk = offsets_log::decode_chunk(&Bytes::from(s.read_to_vec().expect("pread")));
    assert_eq!(chunk.entries.len(), 4);
    let mut replayed = Groups::new(GroupConfig::default());
    for e in chunk.entries {
        replayed.replay_entry(e, part, h.now);
    }
    replayed.finish_load();
    assert_eq!(fetched(&replayed), Some(Offset(10)));
    std::fs::remove_dir_all(&dir).ok();
}
