//! Fencing on a closed heartbeat connection (`broker.session.disconnect.ms`), against one
//! controller in this process, with a hand-driven broker on the controller protocol:
//! - a broker whose heartbeat connection closes and that stays silent is fenced, long before
//!   its (here one-minute) session would expire: a crashed process;
//! - one that heartbeats again on a new connection within the grace is not (a live broker
//!   whose heartbeat timed out), and one fenced because it did not is unfenced by its next
//!   heartbeat and counted as a live fencing.
//!
//! Nothing here asserts a duration: the session is so long that only the disconnect rule can
//! fence within the tests' bounded waits.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use riptide_quorum::rpc::{call_on, Heartbeat, Registration, Request, Response};
use riptide_quorum::transport::Conn;
use riptide_quorum::{Controller, ControllerConfig, NodeId, Transport};

const BROKER: NodeId = 7;

async fn controller(name: &str, grace: Duration) -> (Arc<Controller>, String) {
    let d = std::env::temp_dir().join(format!("riptide-disconnect-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let cfg = ControllerConfig {
        node_id: 1,
        dir: d,
        voters: BTreeMap::from([(1, addr.clone())]),
        advertised: addr.clone(),
        session_timeout: Duration::from_secs(60),
        disconnect_grace: grace,
        broker_heartbeat_interval: Duration::from_millis(200),
        cluster_id: "test-cluster".into(),
        election_timeout_ms: (300, 600),
        heartbeat_interval_ms: 100,
        snapshot_every: 1000,
        balancer: Default::default(),
        limits: Default::default(),
        balancer_interval: Duration::from_secs(60),
        transport: Default::default(),
    };
    (Controller::start(cfg, l).await.expect("start"), addr)
}

async fn connect(addr: &str) -> Conn {
    Transport::default().connect(addr, Duration::from_secs(5)).await.expect("connect")
}

/// Registers broker `BROKER` on `conn` (retrying until the controller is active); its epoch.
async fn register(conn: &mut Conn) -> i64 {
    let reg = Registration {
        id: BROKER,
        incarnation: riptide_quorum::controller::new_id(),
        endpoints: vec![],
        rack: None,
    };
    for _ in 0..200 {
        let resp = call_on(conn, &Request::Register(reg.clone()), Duration::from_secs(5)).await;
        if let Ok(Response::Registered(Ok(r))) = resp {
            return r.epoch;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("broker {BROKER} never registered");
}

/// One heartbeat (claiming to have applied the log up to its registration); whether the
/// controller still has the broker fenced.
async fn heartbeat(conn: &mut Conn, epoch: i64) -> bool {
    let hb = Heartbeat { id: BROKER, epoch, applied: epoch as u64, want_shutdown: false, load: None };
    match call_on(conn, &Request::Heartbeat(hb), Duration::from_secs(5)).await {
        Ok(Response::Heartbeat(Ok(reply))) => reply.fenced,
        other => panic!("heartbeat: {other:?}"),
    }
}

async fn heartbeat_until_unfenced(conn: &mut Conn, epoch: i64) {
    for _ in 0..200 {
        if !heartbeat(conn, epoch).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("broker {BROKER} never unfenced");
}

fn fenced(c: &Controller) -> bool {
    c.image().brokers.get(&BROKER).is_none_or(|b| b.fenced)
}

/// Waits (bounded) until `cond` holds.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_closed_heartbeat_connection_fences_a_silent_broker() {
    let (c, addr) = controller("crash", Duration::from_millis(200)).await;
    let mut conn = connect(&addr).await;
    let epoch = register(&mut conn).await;
    heartbeat_until_unfenced(&mut conn, epoch).await;
    assert!(!fenced(&c));
    drop(conn); // what the kernel does to a killed process's sockets
    wait_until("the silent broker is fenced", || fenced(&c)).await;
    assert_eq!(c.metrics.fences_disconnect.load(Ordering::Relaxed), 1);
    assert_eq!(c.metrics.fences_session.load(Ordering::Relaxed), 0, "the one-minute session did not expire");
    c.raft.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "current_thread")]
async fn a_broker_that_heartbeats_again_stays_and_a_fenced_live_one_comes_back() {
    // A generous grace: the new connection's heartbeat comes at once.
    let grace = Duration::from_secs(2);
    let (c, addr) = controller("blip", grace).await;
    let mut conn = connect(&addr).await;
    let epoch = register(&mut conn).await;
    heartbeat_until_unfenced(&mut conn, epoch).await;
    // A heartbeat timed out: the broker dropped its connection and heartbeats on a new one.
    drop(conn);
    let mut conn = connect(&addr).await;
    assert!(!heartbeat(&mut conn, epoch).await);
    tokio::time::sleep(grace + Duration::from_secs(1)).await;
    assert!(!fenced(&c), "a broker that heartbeated again within the grace was fenced");
    assert_eq!(c.metrics.fences_disconnect.load(Ordering::Relaxed), 0);
    // Its connection drops and it stays silent past the grace (a long pause, a slow
    // reconnect): fenced, and its next heartbeat, caught up, unfences it.
    drop(conn);
    wait_until("the broker is fenced", || fenced(&c)).await;
    let mut conn = connect(&addr).await;
    heartbeat_until_unfenced(&mut conn, epoch).await;
    assert!(!fenced(&c));
    assert_eq!(c.metrics.fences_disconnect.load(Ordering::Relaxed), 1);
    assert_eq!(c.metrics.unfences_live.load(Ordering::Relaxed), 1, "the live fencing is counted");
    c.raft.shutdown().await.expect("shutdown");
}
