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
mod instance;
mod produce;
mod records;
mod router;
mod share_groups;
mod state;
mod topics;

use std::net::SocketAddr;
use std::rc::Rc;

use hyper::server::conn::http1;
use hyper::service::service_fn;

pub use error::RestError;

/// The REST interface's settings (`rest.*` in the broker's config).
#[derive(Clone, Debug, PartialEq)]
pub struct RestConfig {
    /// `rest.listeners` (`http://host:port`, `off` to disable).
    pub listen: Option<SocketAddr>,
    /// `rest.max.request.bytes`: the largest request body (one record of a streamed produce).
    pub max_request_bytes: usize,
    /// `rest.consumer.instance.timeout.ms`: a v2 consumer instance not used for this long is
    /// deleted (and leaves its group).
    pub consumer_instance_timeout_ms: u64,
}

impl Default for RestConfig {
    fn default() -> Self {
        RestConfig {
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 8082))),
            max_request_bytes: 16 << 20,
            consumer_instance_timeout_ms: 300_000,
        }
    }
}

/// Serves `listener` (bound by the broker, so that a taken port fails its start-up like the
/// Kafka listener) on a thread of its own until the process exits. `bootstrap` is the broker's
/// Kafka listener to dial, which the handlers use as their bootstrap.
pub fn serve(
    config: &RestConfig,
    listener: std::net::TcpListener,
    bootstrap: SocketAddr,
) -> std::io::Result<SocketAddr> {
    let bound = listener.local_addr()?;
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
    Ok(bound)
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
