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

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use compio::runtime::JoinHandle;

use super::frame::{take_frame, GROWTH_STEP};
use super::landing::Recv;
use super::zerocopy::{self, ZeroCopy};
use crate::api::landing::{self, Plan, TopicRef};
use crate::api::{self, Chunk, Ctx, RequestError, Response};
use crate::metrics::{LandingMark, Metrics};
use crate::security::{tls::certificate_principal, Session};
use bytes::Bytes;
use riptide_client::tls::TlsStream;
use riptide_engine::io::direct::{Landed, LandingBuf};

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
    let mut track = None;
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
            let size = frame.len();
            let mark = if ctx.broker.config.receive_landing { follow(&mut track, &frame) } else { None };
            let request = Incoming { frame, landed: None, mark, size };
            if !start(ctx, request, &tx, budget, session).await {
                return Ok(()); // the writer stopped: the connection is going away
            }
        }
        while budget.in_flight.get() > IN_FLIGHT_BYTES_MAX {
            if budget.writer_done.get() || budget.released_rx.recv_async().await.is_err() {
                return Ok(());
            }
        }
        if let Some((plan, phase)) = landing_plan(ctx, stream, &buf, &mut track) {
            let mark = Track::note(&mut track, &plan, &buf[4..]);
            let (frame, landed, size) = receive_landed(stream, &mut buf, &plan, phase).await?;
            let request = Incoming { frame, landed: Some(landed), mark: Some(mark), size };
            if !start(ctx, request, &tx, budget, session).await {
                return Ok(());
            }
            continue;
        }
        // At a frame's start on a connection sending large one-partition produces: read
        // little, so that most of the next record set is still in the socket to be landed.
        let landing_next = ctx.broker.config.receive_landing
            && track.as_ref().is_some_and(|t| t.large)
            && buf.len() < 4 + HEAD_READ_BYTES;
        let (res, back) = match &**stream {
            Transport::Plain(tcp) if landing_next => read_head(tcp, buf).await,
            _ => stream.read(buf).await,
        };
        buf = back;
        match res {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(format!("read error: {e}")),
        }
    }
}

/// A request as read: its frame (a landed one's without its record set), the record set
/// landed apart, the request's mark if the reader follows it (`Track`), its size as received.
struct Incoming {
    frame: Bytes,
    landed: Option<Landed>,
    mark: Option<LandingMark>,
    size: usize,
}

/// Starts a request's handler as its own task and queues it for the writer; false when the
/// writer has stopped.
async fn start(
    ctx: &Ctx,
    request: Incoming,
    tx: &flume::Sender<Pending>,
    budget: &Budget,
    session: &Rc<Session>,
) -> bool {
    let Incoming { frame, landed, mark, size } = request;
    // A client over its quota is not read from until its throttle ends (KIP-219).
    if let Some(until) = session.throttled_until() {
        compio::time::sleep(until.saturating_duration_since(std::time::Instant::now())).await;
    }
    // A produce is counted against its client's quota as it is read, so that the requests
    // read after it wait out the throttle it earns, as they would on Kafka, which reads a
    // connection's next request only once the last is answered.
    let throttle = api::produce_throttle(&ctx.broker, &frame, size, session);
    session.throttle(throttle);
    let task =
        compio::runtime::spawn(api::handle(ctx.clone(), frame, landed, mark, session.clone(), throttle));
    budget.in_flight.set(budget.in_flight.get() + size);
    tx.send_async((task, size)).await.is_ok()
}

/// The partition this connection's one-partition Produce requests go to, followed so that a
/// record set read while earlier ones are still on their way to the owner lands where it
/// will go after them (the owner's point does not include those yet).
struct Track {
    /// The topic's name (or id) bytes.
    topic: Box<[u8]>,
    partition: i32,
    /// Requests sent for the partition.
    sent: u64,
    /// Record bytes of each request the owner may not have done with yet, by number.
    unseen: VecDeque<(u64, u64)>,
    /// Requests the owner is done with (`LandingMark`).
    done: Arc<AtomicU64>,
    /// The last request's record set was large enough to land.
    large: bool,
}

impl Track {
    /// Whether `plan` (read from `frame`) is for this track's partition.
    fn follows(&self, plan: &Plan, frame: &[u8]) -> bool {
        self.partition == plan.partition && *self.topic == *plan.topic.bytes(frame)
    }

    /// Follows one more request for `plan`'s partition (a new track if it is another one).
    fn note(track: &mut Option<Track>, plan: &Plan, frame: &[u8]) -> LandingMark {
        let t = match track {
            Some(t) if t.follows(plan, frame) => t,
            _ => track.insert(Track {
                topic: plan.topic.bytes(frame).into(),
                partition: plan.partition,
                sent: 0,
                unseen: VecDeque::new(),
                done: Arc::new(AtomicU64::new(0)),
                large: false,
            }),
        };
        t.large = plan.records_len >= landing::LANDING_MIN_BYTES / 2;
        t.sent += 1;
        t.unseen.push_back((t.sent, plan.records_len as u64));
        LandingMark(t.done.clone())
    }

    /// Record bytes sent that the owner's point may not include yet. Read before the point:
    /// a request done in between is then counted twice (a stale hint, a copy), never missed.
    fn unseen_bytes(&mut self) -> u64 {
        let done = self.done.load(Ordering::Acquire);
        while self.unseen.front().is_some_and(|&(n, _)| n <= done) {
            self.unseen.pop_front();
        }
        self.unseen.iter().map(|&(_, len)| len).sum()
    }
}

/// How much a read at a frame's start takes when the frame's record set may be landed: the
/// request's fields before the records, with room to spare; what comes with them is copied.
const HEAD_READ_BYTES: usize = 16 * 1024;

/// Reads at most `HEAD_READ_BYTES` more into `buf`.
async fn read_head(tcp: &TcpStream, mut buf: BytesMut) -> (std::io::Result<usize>, BytesMut) {
    use compio::buf::{IntoInner, IoBuf};
    use compio::io::AsyncRead;
    let len = buf.len();
    buf.reserve(HEAD_READ_BYTES);
    let mut reader: &TcpStream = tcp;
    let compio::BufResult(res, back) = reader.read(buf.slice(len..len + HEAD_READ_BYTES)).await;
    (res, back.into_inner())
}

/// Follows a complete frame read the usual way: a one-partition Produce continues the track
/// (or starts one if it is large enough to land), any other Produce ends it (its partitions'
/// appends are not followed). Small produces outside a track cost a size check.
fn follow(track: &mut Option<Track>, frame: &Bytes) -> Option<LandingMark> {
    if frame.len() < 2
        || frame[..2] != [0, 0]
        || (track.is_none() && frame.len() < landing::LANDING_MIN_BYTES / 2)
    {
        return None;
    }
    match landing::plan(frame, frame.len()) {
        Some(plan) => Some(Track::note(track, &plan, frame)),
        None => {
            *track = None;
            None
        }
    }
}

/// A frame whose start is in `buf` and whose record set should be received into a landing
/// buffer, and the block phase to put it at: a large one-partition Produce on plain TCP whose
/// records have not all arrived, for a partition whose direct stage said where its next batch
/// goes (moved past this connection's own requests still on their way there).
fn landing_plan(
    ctx: &Ctx,
    stream: &Transport,
    buf: &BytesMut,
    track: &mut Option<Track>,
) -> Option<(Plan, usize)> {
    if !ctx.broker.config.receive_landing || !matches!(stream, Transport::Plain(_)) || buf.len() < 4 {
        return None;
    }
    let size = usize::try_from(i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]])).ok()?;
    if size < landing::LANDING_MIN_BYTES {
        return None;
    }
    let plan = landing::plan(&buf[4..], size)?;
    if buf.len() - 4 >= plan.records_end() {
        return None; // all here already: nothing to save
    }
    // The landing buffer is allocated before the records arrive: no further ahead of what
    // was received than the ordinary buffer may grow (`frame::GROWTH_STEP`), so a peer that
    // announces a large record set and sends nothing costs about the memory it would there.
    if plan.records_end() - (buf.len() - 4) > GROWTH_STEP {
        return None;
    }
    let frame = &buf[4..];
    let unseen = match track {
        Some(t) if t.follows(&plan, frame) => t.unseen_bytes(),
        _ => 0,
    };
    let landing = &ctx.broker.metrics.landing;
    let position = match &plan.topic {
        TopicRef::Name(name) => {
            let name = std::str::from_utf8(&frame[name.clone()]).ok()?;
            landing.position(name, plan.partition)
        }
        TopicRef::Id(id) => {
            let id = u128::from_be_bytes(*id);
            let meta = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner()).by_id(id);
            landing.position(&meta?.name, plan.partition)
        }
    }?;
    let phase = (u64::from(position) + unseen) % riptide_engine::io::direct::BLOCK as u64;
    Some((plan, phase as usize))
}

/// Receives the rest of a planned frame: the record set into a landing buffer at `phase`,
/// what follows it into `buf`. Returns the frame with an empty record set in place (see
/// `api::landing`), the landed records and the frame's size.
async fn receive_landed(
    stream: &Transport,
    buf: &mut BytesMut,
    plan: &Plan,
    phase: usize,
) -> Result<(Bytes, Landed, usize), String> {
    let Transport::Plain(tcp) = stream else { return Err("landing on a TLS connection".into()) };
    let mut reader: &TcpStream = tcp;
    // `landing_plan` read the size and found the records inside it.
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let head = buf.split_to(4 + plan.records_at);
    let mut landing = LandingBuf::new(phase, plan.records_len).map_err(|e| format!("landing buffer: {e}"))?;
    // What arrived with the header (at most one read's worth) is copied; the rest is not.
    let early = buf.len();
    landing.region_mut()[..early].copy_from_slice(buf);
    landing.set_received(early);
    buf.clear();
    let mut recv = Recv(landing);
    while recv.0.received().len() < plan.records_len {
        let compio::BufResult(res, back) = reader.append(recv).await;
        recv = back;
        match res {
            Ok(0) => return Err("connection closed in a record set".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("read error: {e}")),
        }
    }
    let trailing = size - plan.records_end();
    while buf.len() < trailing {
        buf.reserve(4 + 4096);
        let compio::BufResult(res, back) = reader.append(std::mem::take(buf)).await;
        *buf = back;
        match res {
            Ok(0) => return Err("connection closed in a request".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("read error: {e}")),
        }
    }
    let tail = buf.split_to(trailing);
    let landed = recv.0.finish().ok_or("landing buffer not filled")?;
    Ok((landing::frame_without_records(plan, &head[4..], &tail), landed, size))
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
