//! Start-up and shutdown of a broker process: bind, start shards and metrics, wait for
//! SIGTERM/SIGINT, then flush and close every partition.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::broker::Broker;
use crate::config::ServerConfig;
use crate::{metrics, net, shard};

pub struct RunningBroker {
    pub broker: Arc<Broker>,
    pub addr: SocketAddr,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl RunningBroker {
    /// Clean shutdown: stop accepting, finish in-flight work, fsync and close every log.
    pub fn shutdown(self) {
        shard::shutdown_all(&self.broker);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

pub fn start(config: ServerConfig) -> std::io::Result<RunningBroker> {
    config.validate().map_err(std::io::Error::other)?;
    let listeners = net::listener::bind_reuseport(config.listen, config.shards)?;
    let addr = listeners[0].local_addr()?;
    let broker = Arc::new(Broker::new(config)?);
    if let Some(m) = broker.config.metrics_listen {
        metrics::serve(m, broker.metrics.clone())
            .map_err(|e| std::io::Error::new(e.kind(), format!("metrics listener {m}: {e}")))?;
    }
    let threads = shard::spawn_shards(broker.clone(), listeners)?;
    Ok(RunningBroker { broker, addr, threads })
}

/// Blocks SIGTERM and SIGINT in every thread (call before starting any) so that
/// `wait_for_signal` receives them synchronously.
pub fn block_shutdown_signals() {
    // SAFETY: plain libc calls on a local, initialised signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

pub fn wait_for_signal() -> i32 {
    // SAFETY: as above; sigwait writes the received signal number into `sig`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
        sig
    }
}
