//! Per-shard accept loop on the shard's own `SO_REUSEPORT` socket, with the broker-wide
//! `max.connections` limit (a connection over the limit is closed at once and counted).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use socket2::{Domain, Protocol, Socket, Type};

use crate::api::Ctx;

/// Binds one listener per shard on the same address with `SO_REUSEPORT`, so the kernel
/// spreads incoming connections across shards. Port 0 picks a free port once, shared by all.
pub fn bind_reuseport(addr: SocketAddr, count: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut listeners = Vec::with_capacity(count);
    let mut addr = addr;
    if addr.port() != 0 {
        // SO_REUSEPORT would let a second broker bind the same port and silently split clients
        // between two processes: a plain bind first fails with EADDRINUSE if anyone listens
        // there. SO_REUSEADDR on the probe too, so sockets of a killed predecessor in TIME_WAIT
        // don't block a restart (it does not allow binding over a live listener).
        let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        probe.set_reuse_address(true)?;
        probe.bind(&addr.into())?;
        probe.listen(1)?;
        drop(probe);
    }
    // With port 0 the first shard's bind picks a port nobody uses, and the other shards join
    // it, so there is no moment when the port is free for someone else to take.
    for _ in 0..count {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        let listener: std::net::TcpListener = socket.into();
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

pub async fn accept_loop(
    ctx: Ctx,
    listener: compio::net::TcpListener,
    spec: std::sync::Arc<crate::security::Listener>,
) {
    let metrics = ctx.broker.metrics.clone();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(shard = ctx.shard.id, "accept failed: {e}");
                compio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if ctx.broker.is_shutting_down() {
            break;
        }
        let open = metrics.connections.load(Ordering::Relaxed);
        if open >= ctx.broker.config.max_connections as i64 {
            metrics.connections_rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "refusing connection from {peer}: max.connections ({}) reached",
                ctx.broker.config.max_connections
            );
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let session = crate::security::Session::new(spec.clone(), peer);
        compio::runtime::spawn(super::connection::serve(ctx.clone(), stream, peer, session)).detach();
    }
}
