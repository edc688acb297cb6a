//! Admin APIs on `Client`: topics (CreateTopics, DeleteTopics, CreatePartitions), configs
//! (DescribeConfigs, IncrementalAlterConfigs) and the cluster (DescribeCluster, falling back
//! to Metadata on brokers without it). Each per-resource outcome is its own `Result`, so a
//! caller creating three topics learns which one failed and why.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{
    add_raft_voter_request, describe_quorum_request, describe_quorum_response, AddRaftVoterRequest, BrokerId,
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, DescribeQuorumRequest, IncrementalAlterConfigsRequest, RemoveRaftVoterRequest,
    TopicName, UnregisterBrokerRequest,
};
use kafka_protocol::protocol::StrBytes;

use riptide_model::TopicPartition;

use crate::client::{BrokerInfo, Client};
use crate::error::{Error, Result};

const ADMIN_TIMEOUT_MS: i32 = 30_000;

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

/// A topic to create. `partitions`/`replication_factor` of -1 take the broker's defaults.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// What DescribeConfigs / IncrementalAlterConfigs talk about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigResource {
    Topic,
    Broker,
}

impl ConfigResource {
    fn code(self) -> i8 {
        match self {
            ConfigResource::Topic => 2,
            ConfigResource::Broker => 4,
        }
    }
}

/// One config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    pub sensitive: bool,
    /// Kafka's ConfigSource: 1 topic, 4 static broker, 5 default, ... (-1 unknown).
    pub source: i8,
}

impl ConfigEntry {
    /// Kafka's name for the source, as `kafka-configs.sh` prints it.
    pub fn source_name(&self) -> &'static str {
        match self.source {
            1 => "DYNAMIC_TOPIC_CONFIG",
            2 => "DYNAMIC_BROKER_CONFIG",
            3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            4 => "STATIC_BROKER_CONFIG",
            5 => "DEFAULT_CONFIG",
            6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
            7 => "CLIENT_METRICS_CONFIG",
            8 => "GROUP_CONFIG",
            _ => "UNKNOWN",
        }
    }
}

/// An IncrementalAlterConfigs operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfig {
    Set(String, String),
    Delete(String),
}

/// The cluster's identity and members.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: Vec<BrokerInfo>,
}

impl Client {
    /// Creates topics; one result per requested topic, in request order.
    pub async fn create_topics(&self, topics: &[NewTopic], validate_only: bool) -> Result<Vec<Result<()>>> {
        let connection = self.any_broker().await?;
        let creatable = topics
            .iter()
            .map(|t| {
                CreatableTopic::default()
                    .with_name(topic_name(&t.name))
                    .with_num_partitions(t.partitions)
                    .with_replication_factor(t.replication_factor)
                    .with_configs(
                        t.configs
                            .iter()
                            .map(|(k, v)| {
                                CreatableTopicConfig::default()
                                    .with_name(str_bytes(k))
                                    .with_value(Some(str_bytes(v)))
                            })
                            .collect(),
                    )
            })
            .collect();
        let request = CreateTopicsRequest::default()
            .with_topics(creatable)
            .with_timeout_ms(ADMIN_TIMEOUT_MS)
            .with_validate_only(validate_only);
        let response = connection.send(&request).await?;
        Ok(topics
            .iter()
            .map(|t| match response.topics.iter().find(|r| r.name.0.as_str() == t.name) {
                Some(r) if r.error_code == 0 => Ok(()),
                Some(r) => {
                    Err(Error::kafka(r.error_code, format!("topic {}", t.name), r.error_message.as_deref()))
                }
                None => Err(Error::Invalid(format!("topic {}: no answer from the broker", t.name))),
            })
            .collect())
    }

    /// Deletes topics by name; one result per name.
    pub async fn delete_topics(&self, names: &[&str]) -> Result<Vec<Result<()>>> {
        let connection = self.any_broker().await?;
        let version = connection.version_for::<DeleteTopicsRequest>()?;
        let request = if version >= 6 {
            DeleteTopicsRequest::default().with_topics(
                names.iter().map(|n| DeleteTopicState::default().with_name(Some(topic_name(n)))).collect(),
            )
        } else {
            DeleteTopicsRequest::default().with_topic_names(names.iter().map(|n| topic_name(n)).collect())
        }
        .with_timeout_ms(ADMIN_TIMEOUT_MS);
        let response = connection.send(&request).await?;
        Ok(names
            .iter()
            .map(|n| {
                match response.responses.iter().find(|r| r.name.as_ref().is_some_and(|x| x.0.as_str() == *n))
                {
                    Some(r) if r.error_code == 0 => Ok(()),
                    Some(r) => {
                        Err(Error::kafka(r.error_code, format!("topic {n}"), r.error_message.as_deref()))
                    }
                    None => Err(Error::Invalid(format!("topic {n}: no answer from the broker"))),
                }
            })
            .collect())
    }

    /// Grows `topic` to `total` partitions.
    pub async fn create_partitions(&self, topic: &str, total: i32) -> Result<()> {
        let connection = self.any_broker().await?;
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(total)])
            .with_timeout_ms(ADMIN_TIMEOUT_MS);
        let response = connection.send(&request).await?;
        let result = response
            .results
            .iter()
            .find(|r| r.name.0.as_str() == topic)
            .ok_or_else(|| Error::Invalid(format!("topic {topic}: no answer from the broker")))?;
        if result.error_code != 0 {
            return Err(Error::kafka(
                result.error_code,
                format!("topic {topic}"),
                result.error_message.as_deref(),
            ));
        }
        Ok(())
    }

    /// Configs of a topic or broker (`keys`: only these names; `None`: all).
    pub async fn describe_configs(
        &self,
        resource: ConfigResource,
        name: &str,
        keys: Option<&[&str]>,
    ) -> Result<Vec<ConfigEntry>> {
        let connection = match resource {
            ConfigResource::Broker => match name.parse::<i32>() {
                Ok(id) => self.broker(id).await?,
                Err(_) => return Err(Error::Invalid(format!("broker id {name:?} is not a number"))),
            },
            ConfigResource::Topic => self.any_broker().await?,
        };
        let request =
            DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(resource.code())
                .with_resource_name(str_bytes(name))
                .with_configuration_keys(keys.map(|k| k.iter().map(|s| str_bytes(s)).collect()))]);
        let response = connection.send(&request).await?;
        let result = response
            .results
            .into_iter()
            .next()
            .ok_or_else(|| Error::Invalid(format!("{name}: no answer from the broker")))?;
        if result.error_code != 0 {
            let what = match resource {
                ConfigResource::Topic => format!("topic {name}"),
                ConfigResource::Broker => format!("broker {name}"),
            };
            return Err(Error::kafka(result.error_code, what, result.error_message.as_deref()));
        }
        let mut entries: Vec<ConfigEntry> = result
            .configs
            .into_iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
                source: c.config_source,
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Applies config changes to one topic or broker atomically (per Kafka's semantics).
    pub async fn alter_configs(
        &self,
        resource: ConfigResource,
        name: &str,
        changes: &[AlterConfig],
    ) -> Result<()> {
        let connection = match resource {
            ConfigResource::Broker => match name.parse::<i32>() {
                Ok(id) => self.broker(id).await?,
                Err(_) => return Err(Error::Invalid(format!("broker id {name:?} is not a number"))),
            },
            ConfigResource::Topic => self.any_broker().await?,
        };
        let configs = changes
            .iter()
            .map(|c| match c {
                AlterConfig::Set(k, v) => AlterableConfig::default()
                    .with_name(str_bytes(k))
                    .with_config_operation(0)
                    .with_value(Some(str_bytes(v))),
                AlterConfig::Delete(k) => {
                    AlterableConfig::default().with_name(str_bytes(k)).with_config_operation(1)
                }
            })
            .collect();
        let request =
            IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(resource.code())
                .with_resource_name(str_bytes(name))
                .with_configs(configs)]);
        let response = connection.send(&request).await?;
        for r in &response.responses {
            if r.error_code != 0 {
                return Err(Error::kafka(
                    r.error_code,
                    format!("config of {name}"),
                    r.error_message.as_deref(),
                ));
            }
        }
        Ok(())
    }

    /// Cluster id, controller and brokers: DescribeCluster where the broker has it, else
    /// Metadata.
    pub async fn describe_cluster(&self) -> Result<ClusterInfo> {
        let connection = self.any_broker().await?;
        if connection.version_for::<DescribeClusterRequest>().is_err() {
            let m = self.metadata(Some(&[]), false).await?;
            return Ok(ClusterInfo {
                cluster_id: m.cluster_id,
                controller_id: m.controller_id,
                brokers: m.brokers,
            });
        }
        let response = connection.send(&DescribeClusterRequest::default()).await?;
        if response.error_code != 0 {
            return Err(Error::kafka(
                response.error_code,
                "DescribeCluster",
                response.error_message.as_deref(),
            ));
        }
        let mut brokers: Vec<BrokerInfo> = response
            .brokers
            .into_iter()
            .map(|b| BrokerInfo {
                node_id: b.broker_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.map(|r| r.to_string()),
            })
            .collect();
        brokers.sort_by_key(|b| b.node_id);
        Ok(ClusterInfo {
            cluster_id: Some(response.cluster_id.to_string()).filter(|s| !s.is_empty()),
            controller_id: response.controller_id.0,
            brokers,
        })
    }
}

/// A registered broker and whether the controller has fenced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerStatus {
    pub broker: BrokerInfo,
    pub fenced: bool,
}

/// The metadata quorum as DescribeQuorum reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    /// (node id, log end offset, -1 when unknown)
    pub voters: Vec<(i32, i64)>,
    pub observers: Vec<(i32, i64)>,
    /// (node id, host:port of its controller listener), from v2.
    pub controller_addrs: Vec<(i32, String)>,
}

/// One replica's log on a broker, as DescribeLogDirs reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaLog {
    pub size_bytes: i64,
    /// Records behind the high watermark the broker knows (a count, not an offset).
    pub offset_lag: i64,
}

impl Client {
    /// The replicas broker `node_id` holds, with their size and lag, from DescribeLogDirs.
    pub async fn describe_log_dirs(
        &self,
        node_id: i32,
    ) -> Result<std::collections::BTreeMap<TopicPartition, ReplicaLog>> {
        let connection = self.broker(node_id).await?;
        let response = connection
            .send(&kafka_protocol::messages::DescribeLogDirsRequest::default().with_topics(None))
            .await?;
        if response.error_code != 0 {
            return Err(Error::kafka(response.error_code, "DescribeLogDirs", None));
        }
        let mut out = std::collections::BTreeMap::new();
        for dir in response.results {
            for t in dir.topics {
                for p in t.partitions {
                    out.insert(
                        TopicPartition::new(t.name.0.to_string(), p.partition_index),
                        ReplicaLog { size_bytes: p.partition_size, offset_lag: p.offset_lag },
                    );
                }
            }
        }
        Ok(out)
    }

    /// Every registered broker, fenced ones included where the broker can say (DescribeCluster
    /// v2, KIP-1073); otherwise the live ones.
    pub async fn describe_brokers(&self) -> Result<Vec<BrokerStatus>> {
        let connection = self.any_broker().await?;
        let version = connection.version_for::<DescribeClusterRequest>()?;
        let request = DescribeClusterRequest::default().with_include_fenced_brokers(version >= 2);
        let response = connection.send_at(&request, version, std::time::Duration::from_secs(10)).await?;
        if response.error_code != 0 {
            return Err(Error::kafka(
                response.error_code,
                "DescribeCluster",
                response.error_message.as_deref(),
            ));
        }
        let mut out: Vec<BrokerStatus> = response
            .brokers
            .into_iter()
            .map(|b| BrokerStatus {
                broker: BrokerInfo {
                    node_id: b.broker_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.map(|r| r.to_string()),
                },
                fenced: b.is_fenced,
            })
            .collect();
        out.sort_by_key(|b| b.broker.node_id);
        Ok(out)
    }

    /// The metadata quorum: leader, epoch, high watermark, voters and observers.
    pub async fn describe_quorum(&self) -> Result<QuorumStatus> {
        let connection = self.any_broker().await?;
        let request =
            DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
                .with_partitions(vec![
                    describe_quorum_request::PartitionData::default().with_partition_index(0)
                ])]);
        let response = connection.send(&request).await?;
        if response.error_code != 0 {
            return Err(Error::kafka(
                response.error_code,
                "DescribeQuorum",
                response.error_message.as_deref(),
            ));
        }
        let p = response
            .topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .next()
            .ok_or_else(|| Error::kafka(-1, "DescribeQuorum", Some("no partition in the answer")))?;
        if p.error_code != 0 {
            return Err(Error::kafka(p.error_code, "DescribeQuorum", p.error_message.as_deref()));
        }
        let states = |v: Vec<describe_quorum_response::ReplicaState>| {
            v.into_iter().map(|r| (r.replica_id.0, r.log_end_offset)).collect::<Vec<_>>()
        };
        let controller_addrs = response
            .nodes
            .iter()
            .filter_map(|n| n.listeners.first().map(|l| (n.node_id.0, format!("{}:{}", l.host, l.port))))
            .collect();
        Ok(QuorumStatus {
            leader_id: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            high_watermark: p.high_watermark,
            voters: states(p.current_voters),
            observers: states(p.observers),
            controller_addrs,
        })
    }

    /// Adds a controller (started with `controller.quorum.bootstrap.servers`) to the quorum
    /// as a voter (AddRaftVoter, KIP-853).
    pub async fn add_controller(&self, id: i32, host: &str, port: u16) -> Result<()> {
        let connection = self.any_broker().await?;
        let request = AddRaftVoterRequest::default()
            .with_voter_id(id)
            .with_timeout_ms(30_000)
            .with_listeners(vec![add_raft_voter_request::Listener::default()
                .with_name(StrBytes::from_static_str("CONTROLLER"))
                .with_host(StrBytes::from_string(host.to_string()))
                .with_port(port)]);
        let r = connection.send_with_extra_time(&request, std::time::Duration::from_secs(35)).await?;
        if r.error_code != 0 {
            return Err(Error::kafka(r.error_code, "AddRaftVoter", r.error_message.as_deref()));
        }
        Ok(())
    }

    /// Forgets a broker that is gone for good (UnregisterBroker).
    pub async fn unregister_broker(&self, id: i32) -> Result<()> {
        let connection = self.any_broker().await?;
        let request = UnregisterBrokerRequest::default().with_broker_id(BrokerId(id));
        let r = connection.send_with_extra_time(&request, std::time::Duration::from_secs(35)).await?;
        if r.error_code != 0 {
            return Err(Error::kafka(r.error_code, "UnregisterBroker", r.error_message.as_deref()));
        }
        Ok(())
    }

    /// Removes a voter from the quorum (RemoveRaftVoter, KIP-853).
    pub async fn remove_controller(&self, id: i32) -> Result<()> {
        let connection = self.any_broker().await?;
        let request = RemoveRaftVoterRequest::default().with_voter_id(id);
        let r = connection.send_with_extra_time(&request, std::time::Duration::from_secs(35)).await?;
        if r.error_code != 0 {
            return Err(Error::kafka(r.error_code, "RemoveRaftVoter", r.error_message.as_deref()));
        }
        Ok(())
    }
}
