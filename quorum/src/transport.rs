//! How controller-protocol connections are made and accepted: plain TCP, or TLS with a client
//! certificate on both sides (`CONTROLLER:SSL` in `listener.security.protocol.map`).
//!
//! The controller protocol has no login of its own, so on TLS the certificate is the
//! identity: the controller listener always requires one, signed by the truststore, and the
//! owner's `admit` rule (e.g. "a super user") decides whether its principal may speak the
//! protocol at all. The rustls configs are built by the owner (it knows the PEM files and how
//! to reload them); this module only drives the handshakes.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A connection the controller protocol runs on.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

pub type Conn = Box<dyn Io>;

/// The server config for the next accepted connection (called per connection, so that a
/// renewed certificate is served without a restart).
pub type ServerConfigSource = Arc<dyn Fn() -> Arc<rustls::ServerConfig> + Send + Sync>;

/// Decides from the client certificate (DER) whether a connection may speak the controller
/// protocol; `Err` says why not (logged).
pub type Admit = Arc<dyn Fn(&[u8]) -> Result<(), String> + Send + Sync>;

/// The accepting side of TLS (a controller's listener).
pub struct TlsServer {
    pub config: ServerConfigSource,
    pub admit: Admit,
}

/// Plain TCP (`Transport::default()`) or TLS.
#[derive(Clone, Default)]
pub struct Transport {
    /// Trusts the truststore and shows this end's own certificate.
    client: Option<Arc<rustls::ClientConfig>>,
    server: Option<Arc<TlsServer>>,
}

/// A handshake that takes longer than this is a dead or hostile peer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Transport {
    /// TLS both ways (a controller, or a broker that is also one).
    pub fn tls(client: Arc<rustls::ClientConfig>, server: TlsServer) -> Transport {
        Transport { client: Some(client), server: Some(Arc::new(server)) }
    }

    /// TLS for connecting only (a broker-only node, the CLI).
    pub fn tls_client(client: Arc<rustls::ClientConfig>) -> Transport {
        Transport { client: Some(client), server: None }
    }

    pub fn is_tls(&self) -> bool {
        self.client.is_some()
    }

    /// Connects to `addr` (`host:port`) within `timeout`, the TLS handshake included; on TLS
    /// the server's certificate must name `host`.
    pub async fn connect(&self, addr: &str, timeout: Duration) -> std::io::Result<Conn> {
        let connect = async {
            let stream = TcpStream::connect(addr).await?;
            let _ = stream.set_nodelay(true);
            match &self.client {
                None => Ok(Box::new(stream) as Conn),
                Some(client) => {
                    let name = server_name(addr)?;
                    let connector = tokio_rustls::TlsConnector::from(client.clone());
                    Ok(Box::new(connector.connect(name, stream).await?) as Conn)
                }
            }
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(r) => r,
            Err(_) => {
                Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("connect to {addr} timed out")))
            }
        }
    }

    /// Wraps an accepted connection: on TLS, the handshake (a client certificate required)
    /// and the admit rule.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<Conn> {
        let _ = stream.set_nodelay(true);
        let tls = match (&self.server, &self.client) {
            (Some(server), _) => server,
            (None, None) => return Ok(Box::new(stream)),
            (None, Some(_)) => return Err(std::io::Error::other("this TLS transport only connects")),
        };
        let acceptor = tokio_rustls::TlsAcceptor::from((tls.config)());
        let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))
            }
        };
        let cert =
            stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec());
        let Some(cert) = cert else {
            // The server config requires one; a config that did not is the owner's bug.
            return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no client certificate"));
        };
        (tls.admit)(&cert).map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))?;
        Ok(Box::new(stream))
    }
}

/// The host part of `host:port` (`[v6]:port` too) as a TLS server name.
fn server_name(addr: &str) -> std::io::Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: not a TLS server name: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_from_addresses() {
        assert_eq!(server_name("127.0.0.1:9093").unwrap(), ServerName::try_from("127.0.0.1").unwrap());
        assert_eq!(server_name("[::1]:9093").unwrap(), ServerName::try_from("::1").unwrap());
        assert_eq!(
            server_name("broker-1.example:9093").unwrap(),
            ServerName::try_from("broker-1.example").unwrap()
        );
        assert!(server_name("bad host:1").is_err());
    }
}
