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
    let listeners = bind_with_retry(&config)?;
    let addr = listeners[0].local_addr()?;
    let broker = Arc::new(Broker::new(config)?);
    if let Some(m) = broker.config.metrics_listen {
        metrics::serve(m, broker.metrics.clone())
            .map_err(|e| std::io::Error::new(e.kind(), format!("metrics listener {m}: {e}")))?;
    }
    let threads = shard::spawn_shards(broker.clone(), listeners)?;
    Ok(RunningBroker { broker, addr, threads })
}

/// A predecessor killed with SIGKILL can hold its listening socket for a moment after it is
/// reaped (io_uring tears its ring down asynchronously), so EADDRINUSE is retried for a few
/// seconds before giving up.
fn bind_with_retry(config: &ServerConfig) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut attempts = 0;
    loop {
        match net::listener::bind_reuseport(config.listen, config.shards) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempts < 50 => {
                if attempts == 0 {
                    eprintln!("riptide: {} is in use; retrying for up to 5 s", config.listen);
                }
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
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
