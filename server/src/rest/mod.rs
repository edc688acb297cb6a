//! The REST interface: Confluent REST Proxy's API (v3 admin and produce, v2 consumer
//! instances) served by the broker itself, so that a language without a Kafka client can
//! produce and consume over HTTP with the scripts and tools REST Proxy users already have.
//!
//! Shape: one thread of its own with a compio runtime (never a shard's: an HTTP request must
//! not delay a shard's produce path) running hyper's HTTP/1 server through cyper-core's
//! adaptors. Every handler talks to the cluster as a Kafka client (`riptide-client`) through
//! this broker's own listener, exactly as REST Proxy does from outside: metadata, leader
//! routing and group coordination come from the protocol, so in a cluster every broker
//! serves the whole API and requests reach partition leaders wherever they are.
//!
//! `docs/openapi.json` describes the API and is served at `/openapi.json`; `docs/REST.md`
//! has curl examples.

mod consumers;
mod error;
mod groups;
mod http;
mod produce;
mod records;
mod router;
mod state;
mod topics;

use std::net::SocketAddr;
use std::rc::Rc;

use hyper::server::conn::http1;
use hyper::service::service_fn;

use crate::config::RestConfig;

pub use error::RestError;

/// Binds `config.listen` now (so that a taken port fails start-up, like the Kafka listener)
/// and serves it on a thread of its own until the process exits. `kafka` is this broker's
/// Kafka listener, which the handlers use as their bootstrap.
pub fn serve(config: &RestConfig, kafka: SocketAddr) -> std::io::Result<Option<SocketAddr>> {
    let Some(addr) = config.listen else { return Ok(None) };
    let listener = crate::bind::bind_retrying(addr)?;
    let bound = listener.local_addr()?;
    let bootstrap = crate::bind::local_dial_addr(kafka);
    let config = config.clone();
    std::thread::Builder::new().name("rest".into()).spawn(move || {
        let runtime = match compio::runtime::Runtime::new() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("REST interface cannot start its runtime: {e}");
                return;
            }
        };
        runtime.block_on(accept_loop(listener, config, bootstrap.to_string()));
    })?;
    tracing::info!("REST interface on http://{bound}");
    Ok(Some(bound))
}

async fn accept_loop(listener: std::net::TcpListener, config: RestConfig, bootstrap: String) {
    let listener = match compio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("REST listener: {e}");
            return;
        }
    };
    let state = Rc::new(state::State::new(config, bootstrap));
    compio::runtime::spawn(consumers::expire_idle(state.clone())).detach();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("REST accept: {e}");
                compio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        compio::runtime::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(router::handle(&state, req).await) }
            });
            let io = cyper_core::HyperStream::new_plain(stream);
            if let Err(e) = http1::Builder::new()
                .timer(cyper_core::CompioTimer)
                .keep_alive(true)
                .serve_connection(io, service)
                .await
            {
                tracing::debug!("REST connection from {peer}: {e}");
            }
        })
        .detach();
    }
}
