//! `Client`: the cluster as one object. It holds a connection to a bootstrap broker, learns
//! the brokers from Metadata, and opens one pipelined connection per broker on demand
//! (leaders for Produce/Fetch/ListOffsets, coordinators for groups, the controller for
//! admin). Broken connections are replaced on next use. Single-threaded, like compio.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::connection::{ConnectOptions, Connection};
use crate::error::{Error, KafkaCode, Result};

/// Where to connect and how.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of one or more brokers; the first that answers is used.
    pub bootstrap: Vec<String>,
    pub connect: ConnectOptions,
}

impl ClientConfig {
    /// From a comma-separated list such as `localhost:9092,other:9092` (port 9092 if absent).
    pub fn new(brokers: &str) -> Result<ClientConfig> {
        let bootstrap: Vec<String> =
            brokers.split(',').map(str::trim).filter(|s| !s.is_empty()).map(with_default_port).collect();
        if bootstrap.is_empty() {
            return Err(Error::Invalid("no broker address given".into()));
        }
        Ok(ClientConfig { bootstrap, connect: ConnectOptions::default() })
    }
}

fn with_default_port(addr: &str) -> String {
    let has_port = match addr.rsplit_once(':') {
        Some((host, port)) => port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']')),
        None => false,
    };
    if has_port {
        addr.to_string()
    } else {
        format!("{addr}:9092")
    }
}

/// `host:port`, with brackets for IPv6 literals.
pub fn broker_addr(host: &str, port: i32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A broker as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    pub error: i16,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub error: i16,
    pub is_internal: bool,
    /// Sorted by partition id.
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    pub fn leader_of(&self, partition: i32) -> Option<i32> {
        self.partitions.iter().find(|p| p.partition == partition).map(|p| p.leader).filter(|l| *l >= 0)
    }
}

/// The cluster as one Metadata response saw it.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: Vec<BrokerInfo>,
    pub topics: Vec<TopicInfo>,
}

impl Metadata {
    pub fn topic(&self, name: &str) -> Option<&TopicInfo> {
        self.topics.iter().find(|t| t.name == name)
    }

    /// The topic, or the error the broker gave for it (UNKNOWN_TOPIC_OR_PARTITION, ...).
    pub fn require_topic(&self, name: &str) -> Result<&TopicInfo> {
        let topic = self.topic(name).ok_or_else(|| {
            Error::kafka(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION.0, format!("topic {name}"), None)
        })?;
        KafkaCode::check(topic.error, || format!("topic {name}"))?;
        Ok(topic)
    }
}

/// A connected client; see the module header.
pub struct Client {
    config: ClientConfig,
    bootstrap: RefCell<Option<Rc<Connection>>>,
    brokers: RefCell<HashMap<i32, String>>,
    connections: RefCell<HashMap<String, Rc<Connection>>>,
}

impl Client {
    /// Connects to the first bootstrap broker that answers ApiVersions.
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        let client = Client {
            config,
            bootstrap: RefCell::new(None),
            brokers: RefCell::new(HashMap::new()),
            connections: RefCell::new(HashMap::new()),
        };
        client.any_broker().await?;
        Ok(client)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// A live connection to some broker (the bootstrap one, re-established if it broke).
    pub async fn any_broker(&self) -> Result<Rc<Connection>> {
        if let Some(c) = self.bootstrap.borrow().as_ref().filter(|c| !c.is_broken()) {
            return Ok(c.clone());
        }
        let mut last = None;
        for addr in &self.config.bootstrap {
            match self.connection_to(addr).await {
                Ok(c) => {
                    *self.bootstrap.borrow_mut() = Some(c.clone());
                    return Ok(c);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Invalid("no bootstrap broker".into())))
    }

    /// A connection to broker `node_id` (known from an earlier Metadata).
    pub async fn broker(&self, node_id: i32) -> Result<Rc<Connection>> {
        let addr = self.brokers.borrow().get(&node_id).cloned();
        let addr = match addr {
            Some(a) => a,
            None => {
                self.metadata(Some(&[]), false).await?;
                self.brokers.borrow().get(&node_id).cloned().ok_or_else(|| {
                    Error::Invalid(format!("broker {node_id} is not in the cluster metadata"))
                })?
            }
        };
        self.connection_to(&addr).await
    }

    /// A connection to `addr`, reused while it is healthy.
    pub async fn connection_to(&self, addr: &str) -> Result<Rc<Connection>> {
        if let Some(c) = self.connections.borrow().get(addr).filter(|c| !c.is_broken()) {
            return Ok(c.clone());
        }
        let connection = Rc::new(Connection::connect(addr, &self.config.connect).await?);
        self.connections.borrow_mut().insert(addr.to_string(), connection.clone());
        Ok(connection)
    }

    /// Metadata for `topics` (`None`: all topics). `allow_auto_create` asks the broker to
    /// create missing topics (Metadata v4+; older versions always let the broker decide).
    pub async fn metadata(&self, topics: Option<&[&str]>, allow_auto_create: bool) -> Result<Metadata> {
        let connection = self.any_broker().await?;
        let version = connection.version_for::<MetadataRequest>()?;
        let request = metadata_request(topics, allow_auto_create, version);
        let response = connection.send(&request).await?;
        let metadata = from_response(response);
        let mut brokers = self.brokers.borrow_mut();
        for b in &metadata.brokers {
            brokers.insert(b.node_id, broker_addr(&b.host, b.port));
        }
        Ok(metadata)
    }

    /// Metadata of one topic that must exist (never auto-created).
    pub async fn topic(&self, name: &str) -> Result<TopicInfo> {
        let metadata = self.metadata(Some(&[name]), false).await?;
        metadata.require_topic(name).cloned()
    }

    /// The connection to the leader of `topic`/`partition`.
    pub async fn leader(&self, topic: &TopicInfo, partition: i32) -> Result<Rc<Connection>> {
        let leader = topic.leader_of(partition).ok_or_else(|| {
            let exists = topic.partitions.iter().any(|p| p.partition == partition);
            let code = if exists {
                KafkaCode::LEADER_NOT_AVAILABLE.0
            } else {
                KafkaCode::UNKNOWN_TOPIC_OR_PARTITION.0
            };
            Error::kafka(code, format!("{}/{partition}", topic.name), None)
        })?;
        self.broker(leader).await
    }
}

fn metadata_request(topics: Option<&[&str]>, allow_auto_create: bool, version: i16) -> MetadataRequest {
    let topics = match topics {
        Some(names) => Some(
            names
                .iter()
                .map(|n| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(n.to_string()))))
                })
                .collect(),
        ),
        None if version == 0 => Some(Vec::new()), // v0: an empty list means all topics
        None => None,
    };
    let request = MetadataRequest::default().with_topics(topics);
    if version >= 4 {
        request.with_allow_auto_topic_creation(allow_auto_create)
    } else {
        request
    }
}

fn from_response(response: MetadataResponse) -> Metadata {
    let brokers = response
        .brokers
        .into_iter()
        .map(|b| BrokerInfo {
            node_id: b.node_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.map(|r| r.to_string()),
        })
        .collect();
    let topics = response
        .topics
        .into_iter()
        .map(|t| {
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    error: p.error_code,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.into_iter().map(|n| n.0).collect(),
                    isr: p.isr_nodes.into_iter().map(|n| n.0).collect(),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            TopicInfo {
                name: t.name.map(|n| n.0.to_string()).unwrap_or_default(),
                error: t.error_code,
                is_internal: t.is_internal,
                partitions,
            }
        })
        .collect();
    Metadata {
        cluster_id: response.cluster_id.map(|c| c.to_string()),
        controller_id: response.controller_id.0,
        brokers,
        topics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_lists_get_default_ports() {
        let c = ClientConfig::new("a, b:1234,[::1]:9,[::1]").expect("valid");
        assert_eq!(c.bootstrap, vec!["a:9092", "b:1234", "[::1]:9", "[::1]:9092"]);
        assert!(ClientConfig::new(" , ").is_err());
        assert_eq!(broker_addr("::1", 9092), "[::1]:9092");
        assert_eq!(broker_addr("localhost", 1), "localhost:1");
    }

    #[test]
    fn metadata_requests_fit_their_version() {
        use kafka_protocol::protocol::Encodable;
        for version in 0..=12 {
            for topics in [None, Some(&["t"][..])] {
                let request = metadata_request(topics, false, version);
                let mut buf = bytes::BytesMut::new();
                request.encode(&mut buf, version).expect("encodes at every version");
            }
        }
    }
}
