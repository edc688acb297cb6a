//! The quorum in one process: one or three controllers on loopback with a broker agent each.
//! Metadata written through the active controller reaches every broker's image; the log is
//! snapshotted and purged and a restarted controller comes back with the same image; with three
//! voters, stopping the leader elects another that keeps accepting changes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use riptide_quorum::rpc::AdminCommand;
use riptide_quorum::NodeId;
use riptide_quorum::{
    BrokerAgent, BrokerConfig, Change, Controller, ControllerConfig, ImageSink, MetadataImage,
};

struct Seen(Mutex<Vec<Change>>);

impl ImageSink for Seen {
    fn applied(&self, _image: &MetadataImage, changes: &[Change]) {
        self.0.lock().expect("lock").extend(changes.iter().cloned());
    }
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("riptide-quorum-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn controller_cfg(
    id: NodeId,
    dir: PathBuf,
    voters: &BTreeMap<NodeId, String>,
    snapshot_every: u64,
) -> ControllerConfig {
    ControllerConfig {
        node_id: id,
        dir,
        voters: voters.clone(),
        advertised: voters[&id].clone(),
        session_timeout: Duration::from_secs(3),
        disconnect_grace: Duration::from_millis(300),
        broker_heartbeat_interval: Duration::from_millis(200),
        cluster_id: "test-cluster".into(),
        election_timeout_ms: (300, 600),
        heartbeat_interval_ms: 100,
        snapshot_every,
        balancer: Default::default(),
        limits: Default::default(),
        balancer_interval: Duration::from_secs(1),
        transport: Default::default(),
    }
}

fn agent(id: NodeId, voters: &BTreeMap<NodeId, String>) -> (Arc<BrokerAgent>, Arc<Seen>) {
    let seen = Arc::new(Seen(Mutex::new(Vec::new())));
    let cfg = BrokerConfig {
        id,
        endpoints: vec![],
        rack: None,
        controllers: voters.values().cloned().collect(),
        heartbeat_interval: Duration::from_millis(200),
        transport: Default::default(),
    };
    (BrokerAgent::start(cfg, seen.clone()), seen)
}

fn create(name: &str) -> AdminCommand {
    AdminCommand::CreateTopic {
        name: name.into(),
        partitions: 2,
        replication_factor: 1,
        configs: BTreeMap::new(),
        assignment: None,
        id: None,
        validate_only: false,
    }
}

async fn ready(a: &BrokerAgent) {
    tokio::time::timeout(Duration::from_secs(20), a.wait_ready()).await.expect("broker ready");
}

#[tokio::test(flavor = "current_thread")]
async fn one_voter_snapshots_purges_and_restarts_with_the_same_image() {
    let d = dir("single");
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let voters = BTreeMap::from([(1, l.local_addr().expect("addr").to_string())]);
    let c = Controller::start(controller_cfg(1, d.clone(), &voters, 20), l.try_clone().expect("clone"))
        .await
        .expect("start");
    let (a, seen) = agent(1, &voters);
    ready(&a).await;
    for i in 0..60 {
        a.admin(create(&format!("t{i}")), Duration::from_secs(10)).await.expect("create");
    }
    a.admin(AdminCommand::DeleteTopic { name: "t0".into() }, Duration::from_secs(10)).await.expect("delete");
    let before = c.image();
    assert_eq!(before.topics.len(), 59);
    assert_eq!(a.image().topics, before.topics, "the broker's image follows the controller's");
    assert!(seen
        .0
        .lock()
        .expect("lock")
        .iter()
        .any(|c| matches!(c, Change::TopicDeleted { name, partitions: 2, .. } if name == "t0")));
    // Snapshots were taken and the log purged below them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.join("snapshot.json").exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(d.join("snapshot.json").exists(), "no snapshot written");
    let purged = c.raft.metrics().borrow().purged;
    assert!(purged.is_some_and(|p| p.index > 0), "log not purged: {purged:?}");
    c.raft.shutdown().await.expect("shutdown");
    drop(c);
    // Restart on the same directory and listener address.
    let c = Controller::start(controller_cfg(1, d.clone(), &voters, 20), l).await.expect("restart");
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.image().applied < before.applied && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = c.image();
    assert_eq!(after.topics, before.topics);
    assert_eq!(after.cluster_id.as_deref(), Some("test-cluster"));
    c.raft.shutdown().await.expect("shutdown");
    std::fs::remove_dir_all(&d).ok();
}

#[tokio::test(flavor = "current_thread")]
async fn three_voters_elect_a_new_leader_when_the_leader_stops() {
    let listeners: Vec<TcpListener> =
        (0..3).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    let voters: BTreeMap<NodeId, String> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (i as NodeId + 1, l.local_addr().expect("addr").to_string()))
        .collect();
    let mut controllers = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let id = i as NodeId + 1;
        controllers.push(
            Controller::start(controller_cfg(id, dir(&format!("three-{id}")), &voters, 1000), l)
                .await
                .expect("start"),
        );
    }
    let agents: Vec<_> = (1..=3).map(|id| agent(id, &voters).0).collect();
    for a in &agents {
        ready(a).await;
    }
    agents[0].admin(create("before"), Duration::from_secs(10)).await.expect("create");
    let leader = controllers[0].raft.metrics().borrow().current_leader.expect("a leader");
    let old = &controllers[(leader - 1) as usize];
    old.raft.shutdown().await.expect("stop leader");
    let survivor = agents.iter().find(|a| a.id() != leader).expect("survivor");
    survivor.admin(create("after"), Duration::from_secs(20)).await.expect("create after failover");
    let live: BTreeSet<NodeId> = controllers
        .iter()
        .filter(|c| c.id != leader)
        .filter_map(|c| c.raft.metrics().borrow().current_leader)
        .collect();
    assert_eq!(live.len(), 1, "the survivors agree on one leader");
    assert!(!live.contains(&leader));
    let names: BTreeSet<String> = survivor.image().topics.keys().cloned().collect();
    assert_eq!(names, BTreeSet::from(["after".to_string(), "before".to_string()]));
    for c in controllers.iter().filter(|c| c.id != leader) {
        c.raft.shutdown().await.expect("shutdown");
    }
}
