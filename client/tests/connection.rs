//! `Connection` against a scripted broker on a std thread: ApiVersions negotiation (including
//! the KIP-511 retry after UNSUPPORTED_VERSION), pipelining (every request is on the wire
//! before the first answer) and matching answers to requests by correlation id when they
//! come back out of order.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsResponse, MetadataRequest, MetadataResponse, ResponseHeader};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use riptide_client::{join_all, ConnectOptions, Connection};

/// One request as the scripted broker saw it.
struct Seen {
    api_key: i16,
    version: i16,
    correlation: i32,
}

fn read_request(stream: &mut TcpStream) -> Seen {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("size");
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).expect("body");
    Seen {
        api_key: i16::from_be_bytes([body[0], body[1]]),
        version: i16::from_be_bytes([body[2], body[3]]),
        correlation: i32::from_be_bytes([body[4], body[5], body[6], body[7]]),
    }
}

fn send_frame(stream: &mut TcpStream, body: &[u8]) {
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame).expect("write");
}

fn respond<M: Encodable + HeaderVersion>(stream: &mut TcpStream, seen: &Seen, message: &M) {
    let mut buf = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(seen.correlation)
        .encode(&mut buf, M::header_version(seen.version))
        .expect("header");
    message.encode(&mut buf, seen.version).expect("body");
    send_frame(stream, &buf);
}

fn api_versions(ranges: &[(i16, i16, i16)]) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        ranges
            .iter()
            .map(|(k, min, max)| {
                ApiVersion::default().with_api_key(*k).with_min_version(*min).with_max_version(*max)
            })
            .collect(),
    )
}

/// Starts a scripted broker; returns its address and the thread (joined for its asserts).
fn scripted(script: impl FnOnce(TcpStream) + Send + 'static) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let thread = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        script(stream);
    });
    (addr, thread)
}

const PIPELINED: usize = 10;

#[test]
fn pipelines_requests_and_matches_out_of_order_answers() {
    let (addr, broker) = scripted(|mut s| {
        let hello = read_request(&mut s);
        assert_eq!(hello.api_key, 18);
        respond(&mut s, &hello, &api_versions(&[(18, 0, 4), (3, 0, 12)]));
        // Every request arrives before any answer is sent: they are pipelined.
        let seen: Vec<Seen> = (0..PIPELINED).map(|_| read_request(&mut s)).collect();
        for request in seen.iter().rev() {
            assert_eq!((request.api_key, request.version), (3, 12), "highest common Metadata version");
            let cluster = StrBytes::from_string(format!("answer-to-{}", request.correlation));
            respond(&mut s, request, &MetadataResponse::default().with_cluster_id(Some(cluster)));
        }
    });
    let runtime = compio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let connection = Connection::connect(&addr, &ConnectOptions::default()).await.expect("connect");
        assert_eq!(connection.version_for::<MetadataRequest>().expect("common version"), 12);
        let request = MetadataRequest::default().with_topics(None);
        let answers = join_all((0..PIPELINED).map(|_| connection.send(&request)).collect()).await;
        let clusters: Vec<String> = answers
            .into_iter()
            .map(|a| a.expect("answer").cluster_id.map(|c| c.to_string()).unwrap_or_default())
            .collect();
        // Correlation 1 was ApiVersions; the pipelined requests got 2..=11 in order.
        let expected: Vec<String> = (2..2 + PIPELINED).map(|c| format!("answer-to-{c}")).collect();
        assert_eq!(clusters, expected);
    });
    broker.join().expect("scripted broker");
}

#[test]
fn retries_api_versions_at_the_version_the_broker_offers() {
    let (addr, broker) = scripted(|mut s| {
        let first = read_request(&mut s);
        assert_eq!((first.api_key, first.version), (18, 4));
        // KIP-511: header v0, v0 body with UNSUPPORTED_VERSION and our ApiVersions range.
        let mut body = BytesMut::new();
        body.put_i32(first.correlation);
        body.put_i16(35);
        body.put_i32(1);
        body.put_i16(18);
        body.put_i16(0);
        body.put_i16(2);
        send_frame(&mut s, &body);
        let second = read_request(&mut s);
        assert_eq!((second.api_key, second.version), (18, 2), "retried at the broker's highest");
        respond(&mut s, &second, &api_versions(&[(18, 0, 2), (3, 1, 5)]));
        let metadata = read_request(&mut s);
        assert_eq!((metadata.api_key, metadata.version), (3, 5));
        respond(&mut s, &metadata, &MetadataResponse::default());
    });
    let runtime = compio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let connection = Connection::connect(&addr, &ConnectOptions::default()).await.expect("connect");
        assert_eq!(connection.api_versions().broker_range(3), Some((1, 5)));
        connection.send(&MetadataRequest::default().with_topics(None)).await.expect("metadata at v5");
    });
    broker.join().expect("scripted broker");
}

#[test]
fn a_broker_that_goes_away_fails_waiting_requests() {
    let (addr, broker) = scripted(|mut s| {
        let hello = read_request(&mut s);
        respond(&mut s, &hello, &api_versions(&[(18, 0, 4), (3, 0, 12)]));
        let _ = read_request(&mut s);
        drop(s); // close without answering
    });
    let runtime = compio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let connection = Connection::connect(&addr, &ConnectOptions::default()).await.expect("connect");
        let err =
            connection.send(&MetadataRequest::default().with_topics(None)).await.expect_err("no answer");
        assert!(matches!(err, riptide_client::Error::Disconnected { .. }), "{err}");
        assert!(connection.is_broken());
    });
    broker.join().expect("scripted broker");
}

#[test]
fn a_closed_port_is_unreachable() {
    // Nothing listens on a loopback host reserved for this test (a port found free by binding
    // and closing could be taken by anyone before the connect).
    let nobody = riptide_client::launch::LoopbackHost::reserve().expect("host");
    let runtime = compio::runtime::Runtime::new().expect("runtime");
    let err = runtime
        .block_on(Connection::connect(&nobody.addr(9092).to_string(), &ConnectOptions::default()))
        .err()
        .expect("nothing listens there");
    assert!(matches!(err, riptide_client::Error::Unreachable { .. }), "{err}");
}
