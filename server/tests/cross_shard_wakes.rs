//! Two shards waking each other's tasks at once, far more tasks than compio's cross-thread wake
//! queue held (64 by default): each shard's sends wake tasks on the other. With a bounded queue
//! a full queue made the waker spin until the other thread drained it, and two shards doing so
//! at once spun forever (a broker under a burst of pipelined produces stopped answering, and
//! ignored SIGTERM). The vendored executor's queue (vendor/compio-executor) never refuses a wake.

use std::sync::{Arc, Barrier};
use std::time::Duration;

const TASKS: usize = 2_000;

/// Runs one "shard": TASKS tasks each waiting on a channel the other shard sends on, and one
/// task that, once both shards are ready, sends on every channel of the other shard's tasks.
fn shard(
    waits: Vec<flume::Receiver<()>>,
    sends: Vec<flume::Sender<()>>,
    ready: Arc<Barrier>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let runtime = compio::runtime::RuntimeBuilder::new().build().expect("runtime");
        runtime.block_on(async move {
            let waiting: Vec<_> = waits
                .into_iter()
                .map(|rx| compio::runtime::spawn(async move { rx.recv_async().await.is_ok() }))
                .collect();
            // Let every waiter register its waker before the storm.
            compio::time::sleep(Duration::from_millis(200)).await;
            ready.wait();
            for tx in &sends {
                let _ = tx.send(());
            }
            let mut woken = 0;
            for task in waiting {
                woken += usize::from(task.await.unwrap_or(false));
            }
            woken
        })
    })
}

#[test]
fn shards_waking_each_other_in_bulk_do_not_livelock() {
    let (a_tx, a_rx): (Vec<_>, Vec<_>) = (0..TASKS).map(|_| flume::bounded(1)).unzip();
    let (b_tx, b_rx): (Vec<_>, Vec<_>) = (0..TASKS).map(|_| flume::bounded(1)).unzip();
    let ready = Arc::new(Barrier::new(2));
    let a = shard(a_rx, b_tx, ready.clone());
    let b = shard(b_rx, a_tx, ready);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send((a.join().expect("shard a"), b.join().expect("shard b")));
    });
    // Bounded: a livelock would spin forever, so give up after a generous time.
    let woken = done_rx.recv_timeout(Duration::from_secs(60)).expect("the shards livelocked");
    assert_eq!(woken, (TASKS, TASKS));
}
