//! TLS on the controller listener (`CONTROLLER:SSL`): the quorum's transport built from this
//! node's `ssl.*` files. Every controller connection, from a voter or a broker, shows a
//! certificate signed by the truststore (the controller protocol has no other login); with an
//! authorizer on, its principal must also be one of `super.users`, since whoever speaks that
//! protocol can change any metadata.

use std::sync::Arc;

use riptide_quorum::transport::{TlsServer, Transport};

use crate::config::security::ClientAuth;
use crate::config::ServerConfig;
use crate::security::tls::{certificate_principal, TlsAcceptor};

/// The controller transport for this node: plain TCP unless the controller listener is SSL.
pub fn transport(config: &ServerConfig) -> Result<Transport, String> {
    let c = &config.cluster;
    // A combined single node without a CONTROLLER listener talks to itself on a private
    // loopback port that nobody else can reach; TLS would add nothing there.
    let reachable = c.controller_listen.is_some() || !c.controller;
    if !c.controller_protocol.tls() || !reachable {
        return Ok(Transport::default());
    }
    let settings = config.security.tls.clone().ok_or("an SSL controller listener needs ssl.* settings")?;
    let ca = settings.truststore.clone().ok_or("an SSL controller listener needs ssl.truststore.location")?;
    let client = riptide_client::tls::client_config(&ca, Some((&settings.certificate, &settings.key)))
        .map_err(|e| format!("controller TLS: {e}"))?;
    let mut server_settings = settings;
    server_settings.client_auth = ClientAuth::Required;
    let acceptor = Arc::new(TlsAcceptor::new(server_settings).map_err(|e| format!("controller TLS: {e}"))?);
    let super_users = config.security.authorizer.then(|| config.security.super_users.clone());
    Ok(Transport::tls(
        client,
        TlsServer {
            config: Arc::new(move || acceptor.config()),
            admit: Arc::new(move |der| admit(super_users.as_deref(), der)),
        },
    ))
}

fn admit(super_users: Option<&[String]>, der: &[u8]) -> Result<(), String> {
    let Some(super_users) = super_users else { return Ok(()) };
    let principal = certificate_principal(der).ok_or("an unreadable client certificate")?;
    if super_users.contains(&principal) {
        Ok(())
    } else {
        Err(format!("{principal} is not a super user (super.users); only they may speak to controllers"))
    }
}
