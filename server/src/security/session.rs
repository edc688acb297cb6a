//! One connection's security state: the listener it came in on, who it is (the principal) and
//! where its SASL exchange stands. Owned by the connection (shard-local, `!Send`); request
//! handlers read it and the SASL handlers move it along.
//!
//! Contract: on a SASL listener no request other than ApiVersions, SaslHandshake and
//! SaslAuthenticate is served before authentication succeeds, nor after the session's
//! lifetime (`connections.max.reauth.ms`) ends without a re-authentication; either closes the
//! connection, as Kafka does.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::messages::ApiKey;

use super::scram;
use super::tls::TlsAcceptor;
use crate::config::{Mechanism, SecurityProtocol};

/// A Kafka listener as connections see it.
pub struct Listener {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub tls: Option<Arc<TlsAcceptor>>,
}

pub enum SaslStep {
    /// Nothing yet, or the last exchange finished: a SaslHandshake comes next.
    Start,
    /// SaslHandshake chose a mechanism: SaslAuthenticate comes next.
    Chosen(Mechanism),
    /// A SCRAM exchange waits for client-final.
    Scram(Mechanism, scram::Exchange),
}

pub struct Session {
    pub listener: Arc<Listener>,
    pub peer: IpAddr,
    /// The client's address as Kafka reports it in DescribeGroups (`/127.0.0.1`).
    pub client_host: String,
    principal: RefCell<Rc<str>>,
    authenticated: Cell<bool>,
    expires_at: Cell<Option<Instant>>,
    pub step: RefCell<SaslStep>,
    /// Until when the connection is not read from: a client over its quota (KIP-219).
    throttled_until: Cell<Option<Instant>>,
    pub peer_port: u16,
    /// The client software's name and version, as its ApiVersions (v3+) told them.
    client_software: RefCell<Option<(Rc<str>, Rc<str>)>>,
}

impl Session {
    pub fn new(listener: Arc<Listener>, peer: std::net::SocketAddr) -> Session {
        let (peer, peer_port) = (peer.ip(), peer.port());
        Session {
            authenticated: Cell::new(!listener.protocol.sasl()),
            listener,
            peer,
            client_host: format!("/{peer}"),
            principal: RefCell::new(Rc::from(super::acl::ANONYMOUS)),
            expires_at: Cell::new(None),
            step: RefCell::new(SaslStep::Start),
            throttled_until: Cell::new(None),
            peer_port,
            client_software: RefCell::new(None),
        }
    }

    /// A session for requests that come from no connection (tests, internal calls).
    pub fn internal() -> Rc<Session> {
        let listener =
            Arc::new(Listener { name: "PLAINTEXT".into(), protocol: SecurityProtocol::Plaintext, tls: None });
        Rc::new(Session::new(listener, std::net::SocketAddr::from(([127, 0, 0, 1], 0))))
    }

    pub fn principal(&self) -> Rc<str> {
        self.principal.borrow().clone()
    }

    /// The host part of ACLs: the peer's address without the slash.
    pub fn host(&self) -> String {
        self.peer.to_string()
    }

    pub fn set_principal(&self, principal: &str) {
        *self.principal.borrow_mut() = Rc::from(principal);
    }

    pub fn set_client_software(&self, name: &str, version: &str) {
        *self.client_software.borrow_mut() = Some((Rc::from(name), Rc::from(version)));
    }

    /// (name, version) of the client software, empty when it did not say.
    pub fn client_software(&self) -> (Rc<str>, Rc<str>) {
        self.client_software.borrow().clone().unwrap_or_else(|| (Rc::from(""), Rc::from("")))
    }

    /// Stops reading the connection's requests for `d` from now (a longer throttle wins).
    pub fn throttle(&self, d: std::time::Duration) {
        if d.is_zero() {
            return;
        }
        let until = Instant::now() + d;
        if self.throttled_until.get().is_none_or(|t| t < until) {
            self.throttled_until.set(Some(until));
        }
    }

    /// Until when the connection is throttled, if it still is.
    pub fn throttled_until(&self) -> Option<Instant> {
        self.throttled_until.get().filter(|t| *t > Instant::now())
    }

    /// The user the client quotas know this client as: the principal's name without its type.
    pub fn quota_user(&self) -> Rc<str> {
        let principal = self.principal();
        match principal.split_once(':') {
            Some((_, name)) => Rc::from(name),
            None => principal,
        }
    }

    pub fn is_sasl(&self) -> bool {
        self.listener.protocol.sasl()
    }

    pub fn authenticated(&self) -> bool {
        self.authenticated.get()
    }

    /// SASL succeeded as `principal`; the session lasts `lifetime_ms` (0: forever).
    pub fn authenticate(&self, principal: &str, lifetime_ms: u64) {
        self.set_principal(principal);
        self.authenticated.set(true);
        self.expires_at
            .set((lifetime_ms > 0).then(|| Instant::now() + std::time::Duration::from_millis(lifetime_ms)));
    }

    /// Whether `api` may be served now; the reason to close the connection if not.
    pub fn gate(&self, api: ApiKey) -> Result<(), String> {
        let sasl_api = matches!(api, ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate);
        if sasl_api {
            return Ok(());
        }
        if !self.authenticated.get() {
            return Err(format!("{api:?} request before SASL authentication"));
        }
        if self.expires_at.get().is_some_and(|t| Instant::now() >= t) {
            return Err(format!(
                "{api:?} request after the SASL session expired (connections.max.reauth.ms)"
            ));
        }
        Ok(())
    }
}
