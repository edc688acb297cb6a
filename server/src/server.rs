//! The composition root: binds the listeners, starts the shards with what runs on each (the
//! accept loop, and on shard 0 the group coordinator), the metrics listener, and shuts it all
//! down. Nothing below this module starts anything above it.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::api::ApiCtx;
use crate::broker::Broker;
use crate::config::ServerConfig;
use crate::coordinator::Coordinator;
use crate::shard::router::Router;
use crate::shard::StartHook;
use crate::{coordinator, metrics, net, shard};

pub struct RunningBroker {
    pub broker: Arc<Broker>,
    pub addr: SocketAddr,
    router: Arc<Router>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl RunningBroker {
    /// Clean shutdown: stop accepting, finish in-flight work, fsync and close every log.
    pub fn shutdown(self) {
        self.broker.shutting_down.store(true, Ordering::SeqCst);
        self.router.shutdown_all();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

pub fn start(config: ServerConfig) -> std::io::Result<RunningBroker> {
    config.validate().map_err(std::io::Error::other)?;
    // Said before any listener exists, so whoever can connect can also read it in the log.
    tracing::info!("shards use the {:?} driver", shard::probe_driver(config.io)?);
    let listeners = bind_with_retry(&config)?;
    let addr = listeners[0].local_addr()?;
    let broker = Arc::new(Broker::new(config)?);
    if let Some(m) = broker.config.metrics_listen {
        metrics::serve(m, broker.metrics.clone())
            .map_err(|e| std::io::Error::new(e.kind(), format!("metrics listener {m}: {e}")))?;
    }
    let coordinator = Arc::new(Coordinator::new(Default::default()));
    let start: StartHook<std::net::TcpListener> = Arc::new(move |shard, listener| {
        let ctx = ApiCtx::new(shard, coordinator.clone());
        if shard.id == 0 {
            compio::runtime::spawn(coordinator::background(shard.clone(), coordinator.clone())).detach();
        }
        let listener = compio::net::TcpListener::from_std(listener)?;
        compio::runtime::spawn(net::listener::accept_loop(ctx, listener)).detach();
        Ok(())
    });
    let (router, threads) = shard::spawn_shards(broker.clone(), listeners, start)?;
    Ok(RunningBroker { broker, addr, router, threads })
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
                    tracing::warn!("{} is in use; retrying for up to 5 s", config.listen);
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

/// Logs through `tracing` to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
