//! Connections to another broker over the inter-broker listener, for the coordinators'
//! broker-to-broker requests (transaction markers, share-group state).

use std::time::Duration;

use riptide_client::{ConnectOptions, Connection};

use crate::shard::Ctx;

/// A new connection to broker `node` (its inter-broker listener, else its first), with this
/// broker's inter-broker TLS and SASL settings; `purpose` names it in the client id.
pub async fn connect(ctx: &Ctx, node: i32, purpose: &str) -> Result<Connection, String> {
    let addr = {
        let cat = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
        let listener = ctx.broker.config.inter_broker_listener().name.clone();
        let b = cat.brokers.get(&node).ok_or_else(|| format!("broker {node} is not registered"))?;
        let e = b
            .endpoints
            .iter()
            .find(|e| e.name == listener)
            .or(b.endpoints.first())
            .ok_or_else(|| format!("broker {node} has no endpoint"))?;
        format!("{}:{}", e.host, e.port)
    };
    let options = ConnectOptions {
        client_id: format!("riptide-{purpose}-{}", ctx.broker.config.node_id),
        request_timeout: Duration::from_secs(30),
        tls: ctx.broker.security.inter_broker_tls.clone(),
        sasl: ctx.broker.security.inter_broker_login.clone(),
        ..ConnectOptions::default()
    };
    Connection::connect(&addr, &options).await.map_err(|e| e.to_string())
}
