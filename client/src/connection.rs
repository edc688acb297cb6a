//! One pipelined connection to one broker, on the current compio runtime (it is `!Send`, like
//! everything per-thread in compio).
//!
//! Many requests may be in flight at once (up to `max_in_flight`): each caller encodes its
//! request with a fresh correlation id, registers a one-shot slot for the answer and queues
//! the frame; a writer task sends queued frames together (one vectored write for everything
//! queued), and a reader task cuts response frames and hands each to the slot of its
//! correlation id. Kafka answers a connection's requests in order, but matching by id keeps
//! us honest and lets abandoned (timed-out) requests be dropped cleanly.
//!
//! At connect time the connection asks ApiVersions (retrying at the broker's highest version
//! if it refuses ours, per KIP-511), and afterwards every typed request goes out at the
//! highest version both sides support (`versions`).
//!
//! Dropping the `Connection` cancels both tasks and closes the socket; requests still waiting
//! then fail with `Error::Disconnected`.
//!
//! With `ConnectOptions::tls` the bytes go through TLS (`tls`); with `ConnectOptions::sasl`
//! the connection logs in (SaslHandshake v1 + SaslAuthenticate: PLAIN or SCRAM, `sasl`) right
//! after ApiVersions, before any caller's request.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use compio::runtime::JoinHandle;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, Request, StrBytes};

use crate::error::{Error, KafkaCode, Result};
use crate::versions::{api_name, client_range, ApiVersions};

/// Tunables of a connection; the defaults suit the CLI, the bench raises `max_in_flight`.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub client_id: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Requests awaiting an answer at once; further callers wait for a slot.
    pub max_in_flight: usize,
    /// Largest response frame accepted (a bigger size prefix breaks the connection).
    pub response_bytes_max: usize,
    /// TLS to the broker (SSL and SASL_SSL listeners).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// A SASL login (SASL_PLAINTEXT and SASL_SSL listeners).
    pub sasl: Option<crate::sasl::Login>,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            client_id: "riptide-client".to_string(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_in_flight: 64,
            response_bytes_max: 256 << 20,
            tls: None,
            sasl: None,
        }
    }
}

/// Frames queued for writing that one vectored write may carry.
const WRITE_BATCH_FRAMES_MAX: usize = 64;
/// How far ahead of arrived bytes the read buffer is reserved for a large response.
const READ_RESERVE_STEP: usize = 4 << 20;

type Slot = flume::Sender<Result<Bytes>>;

/// A frame for the writer, with an optional signal for when it is on the socket.
struct Outgoing {
    frame: Bytes,
    written: Option<flume::Sender<()>>,
}

/// The connection's byte stream.
enum Transport {
    Plain(TcpStream),
    Tls(Box<crate::tls::TlsStream>),
}

impl Transport {
    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => t.tcp(),
        }
    }
}

struct Shared {
    addr: String,
    client_id: StrBytes,
    stream: Transport,
    pending: RefCell<HashMap<i32, Slot>>,
    next_correlation: Cell<i32>,
    write_tx: flume::Sender<Outgoing>,
    /// A bounded channel used as a semaphore: a request holds one queued `()` while in flight.
    slots_tx: flume::Sender<()>,
    slots_rx: flume::Receiver<()>,
    broken: RefCell<Option<String>>,
    versions: RefCell<ApiVersions>,
    request_timeout: Duration,
    response_bytes_max: usize,
}

impl Shared {
    /// Marks the connection dead and fails every waiting request with the reason.
    fn fail(&self, reason: String) {
        if self.broken.borrow().is_none() {
            *self.broken.borrow_mut() = Some(reason.clone());
        }
        let waiting: Vec<Slot> = self.pending.borrow_mut().drain().map(|(_, s)| s).collect();
        for slot in waiting {
            let _ = slot.send(Err(Error::Disconnected { addr: self.addr.clone(), reason: reason.clone() }));
        }
        // Wakes the reader if it sits in a read; the tasks end with the `Connection`.
        let _ = socket2::SockRef::from(self.stream.tcp()).shutdown(std::net::Shutdown::Both);
    }

    fn check_open(&self) -> Result<()> {
        match self.broken.borrow().as_ref() {
            Some(reason) => Err(Error::Disconnected { addr: self.addr.clone(), reason: reason.clone() }),
            None => Ok(()),
        }
    }
}

/// A pipelined connection; share it as `Rc<Connection>` between tasks of one thread.
pub struct Connection {
    shared: Rc<Shared>,
    _reader: JoinHandle<()>,
    _writer: JoinHandle<()>,
}

impl Connection {
    /// Connects, starts the reader and writer tasks and negotiates API versions.
    pub async fn connect(addr: &str, options: &ConnectOptions) -> Result<Connection> {
        let unreachable = |reason: String| Error::Unreachable { addr: addr.to_string(), reason };
        let stream = compio::time::timeout(options.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| unreachable(format!("timed out after {} ms", options.connect_timeout.as_millis())))?
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let stream = match &options.tls {
            None => Transport::Plain(stream),
            Some(config) => {
                let host = addr
                    .rsplit_once(':')
                    .map_or(addr, |(h, _)| h)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| unreachable(format!("TLS server name {host:?}: {e}")))?;
                let tls = crate::tls::TlsStream::client(stream, config.clone(), name)
                    .map_err(|e| unreachable(format!("TLS: {e}")))?;
                tls.start().await.map_err(|e| unreachable(format!("TLS: {e}")))?;
                Transport::Tls(Box::new(tls))
            }
        };
        let (write_tx, write_rx) = flume::unbounded();
        let (slots_tx, slots_rx) = flume::bounded(options.max_in_flight.max(1));
        let shared = Rc::new(Shared {
            addr: addr.to_string(),
            client_id: StrBytes::from_string(options.client_id.clone()),
            stream,
            pending: RefCell::new(HashMap::new()),
            next_correlation: Cell::new(1),
            write_tx,
            slots_tx,
            slots_rx,
            broken: RefCell::new(None),
            versions: RefCell::new(ApiVersions::default()),
            request_timeout: options.request_timeout,
            response_bytes_max: options.response_bytes_max,
        });
        let reader = compio::runtime::spawn(read_loop(shared.clone()));
        let writer = compio::runtime::spawn(write_loop(shared.clone(), write_rx));
        let connection = Connection { shared, _reader: reader, _writer: writer };
        connection.negotiate().await?;
        if let Some(login) = &options.sasl {
            connection.login(login).await?;
        }
        Ok(connection)
    }

    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// SaslHandshake v1, then SaslAuthenticate with each token of the exchange.
    async fn login(&self, login: &crate::sasl::Login) -> Result<()> {
        use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
        let handshake =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(login.mechanism.clone()));
        let handshake = self.send(&handshake).await?;
        if handshake.error_code != 0 {
            let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
            let context = format!("SASL {} (the broker offers {})", login.mechanism, offered.join(", "));
            return Err(Error::kafka(handshake.error_code, context, None));
        }
        let (mut exchange, mut token) = crate::sasl::Exchange::start(login)?;
        loop {
            let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
            let answer = self.send(&request).await?;
            if answer.error_code != 0 {
                return Err(Error::kafka(answer.error_code, "SASL login", answer.error_message.as_deref()));
            }
            match exchange.next(&answer.auth_bytes)? {
                Some(next) => token = next,
                None => return Ok(()),
            }
        }
    }

    /// The broker's advertised ranges, as negotiated at connect time.
    pub fn api_versions(&self) -> ApiVersions {
        self.shared.versions.borrow().clone()
    }

    /// Whether the connection broke (it is then useless; connect again).
    pub fn is_broken(&self) -> bool {
        self.shared.broken.borrow().is_some()
    }

    /// The version `R` goes out at on this connection.
    pub fn version_for<R: Request>(&self) -> Result<i16> {
        let versions = self.shared.versions.borrow();
        versions.version_for::<R>().ok_or_else(|| {
            let (min, max) = client_range::<R>();
            Error::UnsupportedVersion {
                api: api_name(R::KEY),
                addr: self.shared.addr.clone(),
                broker: versions
                    .broker_range(R::KEY)
                    .map_or("none".to_string(), |(a, b)| format!("{a}..={b}")),
                client: format!("{min}..={max}"),
            }
        })
    }

    /// Sends `request` at the negotiated version and waits for its answer.
    pub async fn send<R: Request>(&self, request: &R) -> Result<R::Response> {
        let version = self.version_for::<R>()?;
        self.send_at(request, version, self.shared.request_timeout).await
    }

    /// Sends at an explicit version; `timeout` covers the wait for the answer (a Fetch long
    /// poll needs its `max_wait_ms` on top of the usual timeout).
    pub async fn send_at<R: Request>(
        &self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        let mut body = self.round_trip(request, version, timeout).await?;
        R::Response::decode(&mut body, version)
            .map_err(|e| self.protocol(format!("{}: {e}", api_name(R::KEY))))
    }

    /// The negotiated version plus `extra` on the request timeout.
    pub async fn send_with_extra_time<R: Request>(
        &self,
        request: &R,
        extra: Duration,
    ) -> Result<R::Response> {
        let version = self.version_for::<R>()?;
        self.send_at(request, version, self.shared.request_timeout + extra).await
    }

    /// Sends a request that gets no answer (Produce with acks=0); resolves once the frame
    /// has been written to the socket (so a process may exit after it).
    pub async fn send_oneway<R: Request>(&self, request: &R) -> Result<()> {
        self.shared.check_open()?;
        let version = self.version_for::<R>()?;
        let correlation = self.next_correlation();
        let frame = self.encode(request, version, correlation)?;
        let (tx, rx) = flume::bounded(1);
        self.shared.write_tx.send(Outgoing { frame, written: Some(tx) }).map_err(|_| self.closed())?;
        rx.recv_async().await.map_err(|_| self.closed())
    }

    fn next_correlation(&self) -> i32 {
        let id = self.shared.next_correlation.get();
        self.shared.next_correlation.set(id.wrapping_add(1).max(1));
        id
    }

    fn encode<R: Request>(&self, request: &R, version: i16, correlation: i32) -> Result<Bytes> {
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(self.shared.client_id.clone()));
        let mut buf = BytesMut::with_capacity(64);
        buf.put_i32(0);
        let encode_error =
            |e: String| Error::Invalid(format!("cannot encode {} v{version}: {e}", api_name(R::KEY)));
        header.encode(&mut buf, R::header_version(version)).map_err(|e| encode_error(e.to_string()))?;
        request.encode(&mut buf, version).map_err(|e| encode_error(e.to_string()))?;
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        Ok(buf.freeze())
    }

    /// Sends a request and returns the response body (header removed).
    async fn round_trip<R: Request>(&self, request: &R, version: i16, timeout: Duration) -> Result<Bytes> {
        self.shared.check_open()?;
        // Wait for an in-flight slot; the guard gives it back however this future ends.
        self.shared.slots_tx.send_async(()).await.map_err(|_| self.closed())?;
        let correlation = self.next_correlation();
        let guard = InFlight { shared: &self.shared, correlation };
        let frame = self.encode(request, version, correlation)?;
        let (tx, rx) = flume::bounded(1);
        self.shared.pending.borrow_mut().insert(correlation, tx);
        self.shared.write_tx.send(Outgoing { frame, written: None }).map_err(|_| self.closed())?;
        let answer = compio::time::timeout(timeout, rx.recv_async()).await.map_err(|_| Error::Timeout {
            api: api_name(R::KEY),
            addr: self.shared.addr.clone(),
            timeout_ms: timeout.as_millis() as u64,
        })?;
        drop(guard);
        let mut frame = answer.map_err(|_| self.closed())??;
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .map_err(|e| self.protocol(format!("response header: {e}")))?;
        if header.correlation_id != correlation {
            return Err(
                self.protocol(format!("answer to {} for request {correlation}", header.correlation_id))
            );
        }
        Ok(frame)
    }

    /// ApiVersions at our highest version; on UNSUPPORTED_VERSION the broker answers in the v0
    /// format with its ranges (KIP-511) and we retry at its highest ApiVersions version.
    async fn negotiate(&self) -> Result<()> {
        let mut version = ApiVersionsRequest::VERSIONS.max;
        for _ in 0..2 {
            let request = if version >= 3 {
                ApiVersionsRequest::default()
                    .with_client_software_name(StrBytes::from_static_str("riptide-client"))
                    .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")))
            } else {
                ApiVersionsRequest::default()
            };
            let body = self.round_trip(&request, version, self.shared.request_timeout).await?;
            let error_code = if body.len() >= 2 { i16::from_be_bytes([body[0], body[1]]) } else { -1 };
            let decode_version = if error_code == KafkaCode::UNSUPPORTED_VERSION.0 { 0 } else { version };
            let response = ApiVersionsResponse::decode(&mut body.clone(), decode_version)
                .map_err(|e| self.protocol(format!("ApiVersions: {e}")))?;
            let versions = ApiVersions::from_response(&response);
            if error_code == KafkaCode::UNSUPPORTED_VERSION.0 {
                let theirs = versions.broker_range(18).map_or(0, |(_, max)| max);
                if theirs >= version {
                    return Err(self.protocol("ApiVersions refused a version it advertises".into()));
                }
                version = theirs;
                continue;
            }
            if response.error_code != 0 {
                return Err(Error::kafka(
                    response.error_code,
                    format!("ApiVersions to {}", self.shared.addr),
                    None,
                ));
            }
            *self.shared.versions.borrow_mut() = versions;
            return Ok(());
        }
        Err(self.protocol("ApiVersions negotiation did not converge".into()))
    }

    fn protocol(&self, reason: String) -> Error {
        Error::Protocol { addr: self.shared.addr.clone(), reason }
    }

    fn closed(&self) -> Error {
        let reason = self.shared.broken.borrow().clone().unwrap_or_else(|| "connection closed".to_string());
        Error::Disconnected { addr: self.shared.addr.clone(), reason }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.fail("connection dropped".to_string());
    }
}

/// A request's hold on an in-flight slot and its pending entry; released on drop (answer,
/// timeout, or the caller giving up).
struct InFlight<'a> {
    shared: &'a Rc<Shared>,
    correlation: i32,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.shared.pending.borrow_mut().remove(&self.correlation);
        let _ = self.shared.slots_rx.try_recv();
    }
}

async fn read_loop(shared: Rc<Shared>) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        loop {
            match cut_frame(&mut buf, shared.response_bytes_max) {
                Ok(Some(frame)) => deliver(&shared, frame),
                Ok(None) => break,
                Err(reason) => return shared.fail(reason),
            }
        }
        let res = match &shared.stream {
            Transport::Plain(s) => {
                let mut reader: &TcpStream = s;
                let compio::BufResult(res, back) = reader.append(buf).await;
                buf = back;
                res
            }
            Transport::Tls(t) => t.read_into(&mut buf).await,
        };
        match res {
            Ok(0) => return shared.fail("closed by the broker".to_string()),
            Ok(_) => {}
            Err(e) => return shared.fail(format!("read: {e}")),
        }
    }
}

fn deliver(shared: &Shared, frame: Bytes) {
    if frame.len() < 4 {
        return shared.fail(format!("{} byte response is shorter than a header", frame.len()));
    }
    let correlation = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    // No slot: the caller timed out or gave up; the answer is dropped.
    if let Some(slot) = shared.pending.borrow_mut().remove(&correlation) {
        let _ = slot.send(Ok(frame));
    }
}

/// One complete frame (size prefix removed) off the front of `buf`, reserving room for the
/// rest of a partial one.
fn cut_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, String> {
    if buf.len() < 4 {
        buf.reserve(64 * 1024);
        return Ok(None);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size < 0 || size as usize > max {
        return Err(format!("response frame size {size} outside 0..={max}"));
    }
    let total = 4 + size as usize;
    if buf.len() >= total {
        let mut frame = buf.split_to(total);
        frame.advance(4);
        return Ok(Some(frame.freeze()));
    }
    buf.reserve((total - buf.len()).clamp(64 * 1024, READ_RESERVE_STEP));
    Ok(None)
}

async fn write_loop(shared: Rc<Shared>, rx: flume::Receiver<Outgoing>) {
    let mut notify = Vec::new();
    while let Ok(first) = rx.recv_async().await {
        let writer: &TcpStream = match &shared.stream {
            Transport::Plain(s) => s,
            Transport::Tls(t) => {
                notify.extend(first.written);
                let mut result = t.write_all(&first.frame).await;
                while result.is_ok() {
                    let Ok(next) = rx.try_recv() else { break };
                    notify.extend(next.written);
                    result = t.write_all(&next.frame).await;
                }
                if let Err(e) = result {
                    return shared.fail(format!("write: {e}"));
                }
                for done in notify.drain(..) {
                    let _ = done.send(());
                }
                continue;
            }
        };
        let mut writer = writer;
        notify.extend(first.written);
        let result = if rx.is_empty() {
            writer.write_all(first.frame).await.0
        } else {
            let mut frames = Vec::with_capacity(WRITE_BATCH_FRAMES_MAX);
            frames.push(first.frame);
            while frames.len() < WRITE_BATCH_FRAMES_MAX {
                match rx.try_recv() {
                    Ok(next) => {
                        frames.push(next.frame);
                        notify.extend(next.written);
                    }
                    Err(_) => break,
                }
            }
            writer.write_vectored_all(frames).await.0
        };
        if let Err(e) = result {
            return shared.fail(format!("write: {e}"));
        }
        for done in notify.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_cut_at_their_size_prefix() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0, 0, 0, 6, 0, 0, 0, 7, b'a', b'b', 0, 0, 0, 9, 0]);
        let frame = cut_frame(&mut buf, 100).expect("valid").expect("complete");
        assert_eq!(&frame[..], &[0, 0, 0, 7, b'a', b'b']);
        assert_eq!(cut_frame(&mut buf, 100), Ok(None));
        let mut huge = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        assert!(cut_frame(&mut huge, 100).is_err());
    }
}
