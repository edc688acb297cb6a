//! One client connection: a reader that cuts frames and starts each request as its own task
//! (so pipelined produces share a group commit), and a writer that sends the answers strictly
//! in request order. At most `max_in_flight_requests_per_connection` requests are in flight;
//! beyond that the reader stops reading (TCP backpressure).
//!
//! A protocol error (bad frame size, unknown API, undecodable request) closes this connection
//! only; other connections and the shard are untouched.
//!
//! The bytes go over plain TCP (where Fetch answers are spliced from the segment files) or
//! through TLS (`tls`). Before its first request on a TLS listener, the connection takes its
//! principal from the client certificate, if there is one.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use compio::runtime::JoinHandle;

use super::frame::take_frame;
use super::zerocopy::{self, ZeroCopy};
use crate::api::{self, Chunk, Ctx, RequestError, Response};
use crate::metrics::Metrics;
use crate::security::{tls::certificate_principal, Session};
use riptide_client::tls::TlsStream;

/// The connection's byte stream.
enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Transport {
    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => t.tcp(),
        }
    }

    async fn read(&self, mut buf: BytesMut) -> (std::io::Result<usize>, BytesMut) {
        match self {
            Transport::Plain(s) => {
                let mut reader: &TcpStream = s;
                let compio::BufResult(res, back) = reader.append(buf).await;
                (res, back)
            }
            Transport::Tls(t) => {
                let res = t.read_into(&mut buf).await;
                (res, buf)
            }
        }
    }

    async fn write_all(&self, bytes: BytesMut) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => {
                let mut writer: &TcpStream = s;
                writer.write_all(bytes).await.0
            }
            Transport::Tls(t) => t.write_all(&bytes).await,
        }
    }

    async fn write_bytes(&self, bytes: bytes::Bytes) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => {
                let mut writer: &TcpStream = s;
                writer.write_all(bytes).await.0
            }
            Transport::Tls(t) => t.write_all(&bytes).await,
        }
    }
}

type Pending = (JoinHandle<Result<Option<Response>, RequestError>>, usize);

/// Request bytes one connection may have in flight before its reader stops reading (on top of
/// the request-count limit): a client that never reads its answers costs bounded memory.
const IN_FLIGHT_BYTES_MAX: usize = 64 << 20;

/// Request bytes dispatched but not yet answered, shared by a connection's reader and writer.
struct Budget {
    in_flight: std::cell::Cell<usize>,
    writer_done: std::cell::Cell<bool>,
    released_tx: flume::Sender<()>,
    released_rx: flume::Receiver<()>,
}

pub async fn serve(ctx: Ctx, stream: TcpStream, peer: SocketAddr, session: Session) {
    let metrics = ctx.broker.metrics.clone();
    metrics.connections.fetch_add(1, Ordering::Relaxed);
    let stream = match &session.listener.tls {
        None => Transport::Plain(stream),
        Some(acceptor) => match TlsStream::server(stream, acceptor.config()) {
            Ok(t) => Transport::Tls(Box::new(t)),
            Err(e) => {
                tracing::warn!("closing connection from {peer}: TLS: {e}");
                metrics.connections.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        },
    };
    let stream = Rc::new(stream);
    let session = Rc::new(session);
    let (tx, rx) = flume::bounded::<Pending>(ctx.broker.config.max_in_flight_requests_per_connection);
    let (released_tx, released_rx) = flume::bounded(1);
    let budget = Rc::new(Budget {
        in_flight: std::cell::Cell::new(0),
        writer_done: std::cell::Cell::new(false),
        released_tx,
        released_rx,
    });
    let writer = compio::runtime::spawn(write_loop(ctx.clone(), stream.clone(), rx, peer, budget.clone()));
    if let Err(reason) = read_loop(&ctx, &stream, tx, &budget, &session).await {
        tracing::info!("closing connection from {peer}: {reason}");
    }
    let _ = writer.await;
    metrics.connections.fetch_sub(1, Ordering::Relaxed);
}

async fn read_loop(
    ctx: &Ctx,
    stream: &Rc<Transport>,
    tx: flume::Sender<Pending>,
    budget: &Budget,
    session: &Rc<Session>,
) -> Result<(), String> {
    let limit = ctx.broker.config.socket_request_max_bytes;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut identified = false;
    loop {
        if !identified && !buf.is_empty() {
            identified = true;
            if let Transport::Tls(t) = &**stream {
                if let Some(principal) = t.peer_certificate().as_deref().and_then(certificate_principal) {
                    session.set_principal(&principal);
                }
            }
        }
        loop {
            let frame = match take_frame(&mut buf, limit) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    ctx.broker.metrics.frames_rejected.fetch_add(1, Ordering::Relaxed);
                    return Err(e.to_string());
                }
            };
            // A client over its quota is not read from until its throttle ends (KIP-219).
            if let Some(until) = session.throttled_until() {
                compio::time::sleep(until.saturating_duration_since(std::time::Instant::now())).await;
            }
            let size = frame.len();
            // A produce is counted against its client's quota as it is read, so that the
            // requests read after it wait out the throttle it earns, as they would on Kafka,
            // which reads a connection's next request only once the last is answered.
            let throttle = api::produce_throttle(&ctx.broker, &frame, session);
            session.throttle(throttle);
            let task = compio::runtime::spawn(api::handle(ctx.clone(), frame, session.clone(), throttle));
            budget.in_flight.set(budget.in_flight.get() + size);
            if tx.send_async((task, size)).await.is_err() {
                return Ok(()); // the writer stopped: the connection is going away
            }
        }
        while budget.in_flight.get() > IN_FLIGHT_BYTES_MAX {
            if budget.writer_done.get() || budget.released_rx.recv_async().await.is_err() {
                return Ok(());
            }
        }
        let (res, back) = stream.read(buf).await;
        buf = back;
        match res {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(format!("read error: {e}")),
        }
    }
}

async fn write_loop(
    ctx: Ctx,
    stream: Rc<Transport>,
    rx: flume::Receiver<Pending>,
    peer: SocketAddr,
    budget: Rc<Budget>,
) {
    let mut zero_copy: Option<ZeroCopy> = None;
    let send_zerocopy = matches!(&*stream, Transport::Plain(_))
        && ctx.broker.config.send_zerocopy.applies(zerocopy::on_uring(), &peer);
    while let Ok((task, size)) = rx.recv_async().await {
        let release = || {
            budget.in_flight.set(budget.in_flight.get() - size);
            let _ = budget.released_tx.try_send(());
        };
        let response = match task.await {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => {
                release(); // acks=0 produce: Kafka sends nothing back
                continue;
            }
            Ok(Err(e)) => {
                tracing::warn!("closing connection from {peer}: {e}");
                break;
            }
            Err(_) => {
                tracing::error!("closing connection from {peer}: request handler panicked");
                break;
            }
        };
        let close = response.close;
        if let Err(e) = send_response(&ctx, &stream, response, &mut zero_copy, send_zerocopy).await {
            if e.kind() != std::io::ErrorKind::BrokenPipe && e.kind() != std::io::ErrorKind::ConnectionReset {
                tracing::info!("closing connection from {peer}: {e}");
            }
            break;
        }
        release();
        if close {
            break;
        }
    }
    if let Transport::Tls(t) = &*stream {
        t.close().await;
    }
    // Wake the reader if it is blocked in read or on the budget: the connection is done.
    budget.writer_done.set(true);
    let _ = budget.released_tx.try_send(());
    let _ = socket2::SockRef::from(stream.tcp()).shutdown(std::net::Shutdown::Both);
}

/// Below this many record bytes a response is copied into one buffer: one write beats the
/// extra system calls of splicing small ranges.
const ZERO_COPY_MIN_BYTES: usize = 64 * 1024;

/// Memory-served ranges at least this long go out by zero-copy send when the connection uses
/// them: below it, pinning the pages and taking the completion notice cost more than the copy
/// (the kernel's MSG_ZEROCOPY guide puts the break-even near 10 KB).
const ZERO_COPY_SEND_MIN_BYTES: usize = 16 * 1024;

async fn send_response(
    ctx: &Ctx,
    stream: &Transport,
    response: Response,
    zero_copy: &mut Option<ZeroCopy>,
    send_zerocopy: bool,
) -> std::io::Result<()> {
    let metrics = &ctx.broker.metrics;
    let total: usize = response.chunks.iter().map(Chunk::len).sum();
    metrics.bytes_out.fetch_add(total as u64, Ordering::Relaxed);
    let file_bytes: usize =
        response.chunks.iter().filter(|c| matches!(c, Chunk::File(_))).map(Chunk::len).sum();
    // TLS encrypts in user space: the file ranges are read into memory like small answers.
    let tcp = match stream {
        Transport::Plain(tcp) if file_bytes >= ZERO_COPY_MIN_BYTES => tcp,
        _ => return stream.write_all(flatten(response, metrics)?).await,
    };
    if zero_copy.is_none() {
        *zero_copy = Some(ZeroCopy::new(tcp)?);
    }
    let zc = zero_copy.as_ref().ok_or_else(|| std::io::Error::other("zero-copy state missing"))?;
    for chunk in response.chunks {
        match chunk {
            Chunk::Bytes(b) => stream.write_bytes(b).await?,
            Chunk::File(slice) => {
                metrics.messages_out.fetch_add(slice.offset_span(), Ordering::Relaxed);
                let Some(memory) = &slice.memory else {
                    zc.send(tcp, &slice).await?;
                    continue;
                };
                // A direct-mode log's recent bytes: sent from memory, not the file.
                for piece in memory.pieces() {
                    if send_zerocopy && piece.len() >= ZERO_COPY_SEND_MIN_BYTES {
                        metrics.zerocopy_bytes_out.fetch_add(piece.len() as u64, Ordering::Relaxed);
                        zerocopy::send_pinned(tcp, piece.clone()).await?
                    } else {
                        stream.write_bytes(piece.clone()).await?
                    }
                }
            }
        }
    }
    Ok(())
}

/// Joins a response's pieces into one buffer; file ranges are read from the page cache.
fn flatten(response: Response, metrics: &Metrics) -> std::io::Result<BytesMut> {
    let total: usize = response.chunks.iter().map(Chunk::len).sum();
    let mut out = BytesMut::with_capacity(total);
    for chunk in response.chunks {
        match chunk {
            Chunk::Bytes(b) => out.extend_from_slice(&b),
            Chunk::File(slice) => {
                let start = out.len();
                out.resize(start + slice.len as usize, 0);
                slice.read_into(&mut out[start..])?;
                metrics.messages_out.fetch_add(slice.offset_span(), Ordering::Relaxed);
            }
        }
    }
    Ok(out)
}
