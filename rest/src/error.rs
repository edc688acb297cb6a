//! Errors as REST Proxy answers them: an HTTP status and a JSON body
//! `{"error_code": N, "message": "..."}`, where `error_code` is the status or one of REST
//! Proxy's finer codes (40403: no such topic, 40902: consumer instance exists, ...).

use riptide_client::{Error as ClientError, KafkaCode};

#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("{0}")]
    BadRequest(String),
    /// A v2 consumer config REST Proxy cannot use (422 / 42204).
    #[error("{0}")]
    InvalidConsumerConfig(String),
    #[error("HTTP {status} Not Found")]
    NoRoute { status: u16 },
    /// The path exists for these methods (the `Allow` header), not for the one asked.
    #[error("HTTP 405 Method Not Allowed (allowed: {0})")]
    MethodNotAllowed(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("Cluster {0} not found.")]
    UnknownCluster(String),
    #[error("This server does not host this topic-partition.")]
    UnknownTopic(String),
    #[error("Partition {partition} of topic {topic} not found.")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("Consumer instance not found.")]
    UnknownInstance,
    #[error("Consumer with specified consumer ID already exists in the specified consumer group.")]
    InstanceExists,
    #[error("Topic '{0}' already exists.")]
    TopicExists(String),
    #[error("Content-Type {0:?} is not supported here")]
    UnsupportedMediaType(String),
    #[error("Request body larger than rest.max.request.bytes ({0})")]
    TooLarge(usize),
    #[error("The requested embedded data format does not match the deserializer for this consumer instance")]
    FormatMismatch,
    #[error("{0}")]
    Kafka(#[from] ClientError),
    /// An answer already decided (one failed batch repeated for each of its records).
    #[error("{message}")]
    Answered { status: u16, code: u32, message: String },
}

impl RestError {
    /// (HTTP status, REST Proxy error code).
    pub fn codes(&self) -> (u16, u32) {
        match self {
            RestError::BadRequest(_) => (400, 400),
            RestError::InvalidConsumerConfig(_) => (422, 42204),
            RestError::NoRoute { status } => (*status, u32::from(*status)),
            RestError::MethodNotAllowed(_) => (405, 405),
            RestError::NotFound(_) => (404, 404),
            RestError::UnknownCluster(_) => (404, 404),
            RestError::UnknownTopic(_) => (404, 40403),
            RestError::UnknownPartition { .. } => (404, 40402),
            RestError::UnknownInstance => (404, 40403),
            RestError::InstanceExists => (409, 40902),
            RestError::TopicExists(_) => (400, 40002),
            RestError::UnsupportedMediaType(_) => (415, 415),
            RestError::TooLarge(_) => (413, 413),
            RestError::FormatMismatch => (406, 40601),
            RestError::Kafka(e) => kafka_codes(e),
            RestError::Answered { status, code, .. } => (*status, *code),
        }
    }

    pub fn body(&self) -> serde_json::Value {
        let (_, code) = self.codes();
        serde_json::json!({ "error_code": code, "message": self.to_string() })
    }
}

/// Kafka errors that mean "the caller asked for something wrong" get 4xx, as REST Proxy maps
/// them; the rest are the cluster's trouble (5xx), 50002 when a retry may succeed.
fn kafka_codes(e: &ClientError) -> (u16, u32) {
    match e.code() {
        Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION) => (404, 40403),
        Some(KafkaCode::TOPIC_ALREADY_EXISTS) => (400, 40002),
        Some(c) if is_callers_mistake(c) => (400, 400),
        Some(KafkaCode::GROUP_ID_NOT_FOUND) => (404, 404),
        Some(c) if c.is_retriable() => (500, 50002),
        Some(_) => (500, 50001),
        None if e.is_retriable() => (500, 50002),
        None => match e {
            ClientError::Invalid(_) => (400, 400),
            _ => (500, 50001),
        },
    }
}

/// The Kafka errors that say the request itself was wrong.
fn is_callers_mistake(c: KafkaCode) -> bool {
    use kafka_protocol::ResponseError as E;
    matches!(
        E::try_from_code(c.0),
        Some(
            E::InvalidTopicException
                | E::InvalidPartitions
                | E::InvalidReplicationFactor
                | E::InvalidReplicaAssignment
                | E::InvalidConfig
                | E::InvalidRequest
                | E::PolicyViolation
                | E::MessageTooLarge
                | E::InvalidRecord
                | E::RecordListTooLarge
        )
    )
}
