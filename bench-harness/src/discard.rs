//! The discard broker: the smallest thing that speaks enough Kafka for producers —
//! ApiVersions, Metadata, CreateTopics, DeleteTopics and Produce — and answers every Produce
//! at once without storing anything. Run against it, the harness measures its own ceiling:
//! whatever limits throughput then is the harness (and the loopback), not a broker.
//!
//! Deliberately plain: blocking sockets, one thread per connection, one read buffer reused
//! for every request. Responses are written together when no further request is already
//! buffered (pipelined requests get their answers in one write). Consumers are not served
//! (no Fetch, no groups): a ceiling run has producers only.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, RequestHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, Request, StrBytes};

/// Largest request accepted (a bigger size prefix closes the connection).
const REQUEST_BYTES_MAX: usize = 128 << 20;

struct State {
    default_partitions: i32,
    topics: Mutex<HashMap<String, i32>>,
    next_offset: AtomicI64,
}

/// Serves until the process is killed; reports the bound address on stderr and, when asked,
/// in a ready file (port 0 picks one).
pub fn serve(
    listen: &str,
    default_partitions: u32,
    ready_file: Option<&std::path::Path>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    eprintln!("discard broker listening on {addr}");
    let partitions = default_partitions;
    let serving = std::thread::spawn(move || serve_on(listener, partitions));
    if let Some(path) = ready_file {
        riptide_client::launch::probe_api_versions(addr, std::time::Duration::from_secs(10))?;
        let ready = riptide_client::launch::Ready {
            node_id: 0,
            pid: std::process::id(),
            kafka: Some(addr),
            controller: None,
            rest: None,
            metrics: None,
            listeners: [("PLAINTEXT".to_string(), addr)].into(),
        };
        ready.write_atomically(path)?;
    }
    serving.join().map_err(|_| std::io::Error::other("discard broker thread panicked"))?
}

/// Serves connections arriving on `listener` (for tests: bind port 0, read the address, then
/// call this on a thread).
pub fn serve_on(listener: TcpListener, default_partitions: u32) -> std::io::Result<()> {
    let state = Arc::new(State {
        default_partitions: default_partitions.max(1) as i32,
        topics: Mutex::new(HashMap::new()),
        next_offset: AtomicI64::new(0),
    });
    for stream in listener.incoming() {
        let stream = stream?;
        let state = state.clone();
        std::thread::spawn(move || {
            if let Err(e) = connection(stream, &state) {
                if e.kind() != std::io::ErrorKind::UnexpectedEof {
                    eprintln!("discard broker: connection ended: {e}");
                }
            }
        });
    }
    Ok(())
}

fn invalid(reason: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, reason)
}

fn connection(stream: TcpStream, state: &State) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let local = stream.local_addr()?;
    let mut reader = BufReader::with_capacity(1 << 20, stream.try_clone()?);
    let mut writer = BufWriter::with_capacity(1 << 16, stream);
    let mut frame = BytesMut::new();
    loop {
        let mut size = [0u8; 4];
        reader.read_exact(&mut size)?;
        let size = i32::from_be_bytes(size);
        if size < 8 || size as usize > REQUEST_BYTES_MAX {
            return Err(invalid(format!("request size {size}")));
        }
        frame.clear();
        frame.resize(size as usize, 0);
        reader.read_exact(&mut frame)?;
        let request = frame.split().freeze();
        if let Some(response) = answer(request, state, &local.ip().to_string(), i32::from(local.port()))? {
            writer.write_all(&response)?;
        }
        if reader.buffer().is_empty() {
            writer.flush()?;
        }
    }
}

/// Decodes header and body of a request of type `R` at `version`.
fn decode<R: Request + Decodable>(mut frame: Bytes, version: i16) -> std::io::Result<(RequestHeader, R)> {
    let header =
        RequestHeader::decode(&mut frame, R::header_version(version)).map_err(|e| invalid(e.to_string()))?;
    let body = R::decode(&mut frame, version).map_err(|e| invalid(e.to_string()))?;
    Ok((header, body))
}

fn encode<M: Encodable + HeaderVersion>(
    correlation: i32,
    version: i16,
    response: &M,
) -> std::io::Result<Bytes> {
    let mut out = BytesMut::with_capacity(64);
    out.put_i32(0);
    out.put_i32(correlation);
    if M::header_version(version) >= 1 {
        out.put_u8(0); // no tagged fields
    }
    response.encode(&mut out, version).map_err(|e| invalid(e.to_string()))?;
    let size = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Ok(out.freeze())
}

fn answer(frame: Bytes, state: &State, host: &str, port: i32) -> std::io::Result<Option<Bytes>> {
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    match key {
        ProduceRequest::KEY => {
            let (_, request) = decode::<ProduceRequest>(frame, version)?;
            if request.acks == 0 {
                return Ok(None);
            }
            encode(correlation, version, &produce(&request, state)).map(Some)
        }
        ApiVersionsRequest::KEY => {
            // An unknown version is answered in the v0 layout (KIP-511), as every broker does.
            let v = version.clamp(0, ApiVersionsRequest::VERSIONS.max);
            encode(correlation, v, &api_versions()).map(Some)
        }
        MetadataRequest::KEY => {
            let (_, request) = decode::<MetadataRequest>(frame, version)?;
            encode(correlation, version, &metadata(&request, state, host, port)).map(Some)
        }
        CreateTopicsRequest::KEY => {
            let (_, request) = decode::<CreateTopicsRequest>(frame, version)?;
            encode(correlation, version, &create_topics(&request, state)).map(Some)
        }
        DeleteTopicsRequest::KEY => {
            let (_, request) = decode::<DeleteTopicsRequest>(frame, version)?;
            encode(correlation, version, &delete_topics(&request, state)).map(Some)
        }
        other => Err(invalid(format!("API {other} is not served by the discard broker"))),
    }
}

fn range<R: Request>(min: i16) -> ApiVersion {
    ApiVersion::default()
        .with_api_key(R::KEY)
        .with_min_version(min.max(R::VERSIONS.min))
        .with_max_version(R::VERSIONS.max)
}

fn api_versions() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(vec![
        range::<ProduceRequest>(3),
        range::<MetadataRequest>(1),
        range::<ApiVersionsRequest>(0),
        range::<CreateTopicsRequest>(2),
        range::<DeleteTopicsRequest>(1),
    ])
}

fn produce(request: &ProduceRequest, state: &State) -> ProduceResponse {
    let responses = request
        .topic_data
        .iter()
        .map(|t| {
            let partitions = t
                .partition_data
                .iter()
                .map(|p| {
                    let records = p.records.as_ref().map_or(0, record_count);
                    let base = state.next_offset.fetch_add(records, Ordering::Relaxed);
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_base_offset(base)
                        .with_log_append_time_ms(-1)
                })
                .collect();
            TopicProduceResponse::default().with_name(t.name.clone()).with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

/// Records in the batches of a Produce payload (from each header's record count).
fn record_count(bytes: &Bytes) -> i64 {
    riptide_format::whole_batches(bytes)
        .map_while(|b| b.ok())
        .map(|(header, _)| i64::from(header.records_count.max(0)))
        .sum()
}

fn metadata(request: &MetadataRequest, state: &State, host: &str, port: i32) -> MetadataResponse {
    let known = state.topics.lock().expect("topics lock").clone();
    let names: Vec<String> = match &request.topics {
        Some(topics) => topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())).collect(),
        None => known.keys().cloned().collect(),
    };
    let topics = names
        .into_iter()
        .map(|name| {
            let count = known.get(&name).copied().unwrap_or(state.default_partitions);
            let partitions = (0..count)
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p)
                        .with_leader_id(BrokerId(0))
                        .with_replica_nodes(vec![BrokerId(0)])
                        .with_isr_nodes(vec![BrokerId(0)])
                })
                .collect();
            MetadataResponseTopic::default()
                .with_name(Some(kafka_protocol::messages::TopicName(StrBytes::from_string(name))))
                .with_partitions(partitions)
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(0))
            .with_host(StrBytes::from_string(host.to_string()))
            .with_port(port)])
        .with_cluster_id(Some(StrBytes::from_static_str("discard")))
        .with_controller_id(BrokerId(0))
        .with_topics(topics)
}

fn create_topics(request: &CreateTopicsRequest, state: &State) -> CreateTopicsResponse {
    let mut topics = state.topics.lock().expect("topics lock");
    let results = request
        .topics
        .iter()
        .map(|t| {
            let partitions = if t.num_partitions > 0 { t.num_partitions } else { state.default_partitions };
            topics.insert(t.name.0.to_string(), partitions);
            CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(partitions)
                .with_replication_factor(1)
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

fn delete_topics(request: &DeleteTopicsRequest, state: &State) -> DeleteTopicsResponse {
    let mut topics = state.topics.lock().expect("topics lock");
    let mut names: Vec<_> = request.topic_names.clone();
    names.extend(request.topics.iter().filter_map(|t| t.name.clone()));
    let responses = names
        .into_iter()
        .map(|n| {
            topics.remove(n.0.as_str());
            DeletableTopicResult::default().with_name(Some(n))
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
