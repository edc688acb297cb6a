//! The client's errors. Three families, so a caller can react without parsing text:
//! the network (unreachable, lost, timed out), the broker's answer (a Kafka error code, with
//! where it came from), and the caller's own input or a broker that cannot talk to us
//! (unsupported versions, malformed responses).

use std::fmt;

use kafka_protocol::ResponseError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Kafka error code as it travels on the wire (`Errors.java`), never 0 inside an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KafkaCode(pub i16);

/// The codes this client acts on, by name, from the codec crate's table (the one source).
impl KafkaCode {
    pub const NONE: KafkaCode = KafkaCode(0);
    pub const OFFSET_OUT_OF_RANGE: KafkaCode = KafkaCode(ResponseError::OffsetOutOfRange.code());
    pub const UNKNOWN_TOPIC_OR_PARTITION: KafkaCode =
        KafkaCode(ResponseError::UnknownTopicOrPartition.code());
    pub const LEADER_NOT_AVAILABLE: KafkaCode = KafkaCode(ResponseError::LeaderNotAvailable.code());
    pub const NOT_LEADER_OR_FOLLOWER: KafkaCode = KafkaCode(ResponseError::NotLeaderOrFollower.code());
    pub const COORDINATOR_LOAD_IN_PROGRESS: KafkaCode =
        KafkaCode(ResponseError::CoordinatorLoadInProgress.code());
    pub const COORDINATOR_NOT_AVAILABLE: KafkaCode = KafkaCode(ResponseError::CoordinatorNotAvailable.code());
    pub const NOT_COORDINATOR: KafkaCode = KafkaCode(ResponseError::NotCoordinator.code());
    pub const ILLEGAL_GENERATION: KafkaCode = KafkaCode(ResponseError::IllegalGeneration.code());
    pub const UNKNOWN_MEMBER_ID: KafkaCode = KafkaCode(ResponseError::UnknownMemberId.code());
    pub const REBALANCE_IN_PROGRESS: KafkaCode = KafkaCode(ResponseError::RebalanceInProgress.code());
    pub const UNSUPPORTED_VERSION: KafkaCode = KafkaCode(ResponseError::UnsupportedVersion.code());
    pub const TOPIC_ALREADY_EXISTS: KafkaCode = KafkaCode(ResponseError::TopicAlreadyExists.code());
    pub const INVALID_CONFIG: KafkaCode = KafkaCode(ResponseError::InvalidConfig.code());
    pub const NON_EMPTY_GROUP: KafkaCode = KafkaCode(ResponseError::NonEmptyGroup.code());
    pub const GROUP_ID_NOT_FOUND: KafkaCode = KafkaCode(ResponseError::GroupIdNotFound.code());
    pub const MEMBER_ID_REQUIRED: KafkaCode = KafkaCode(ResponseError::MemberIdRequired.code());
    pub const FENCED_INSTANCE_ID: KafkaCode = KafkaCode(ResponseError::FencedInstanceId.code());
    pub const UNKNOWN_TOPIC_ID: KafkaCode = KafkaCode(ResponseError::UnknownTopicId.code());

    /// Kafka's name for the code, e.g. `UNKNOWN_TOPIC_OR_PARTITION`.
    pub fn name(self) -> String {
        match ResponseError::try_from_code(self.0) {
            None => "NONE".to_string(),
            Some(ResponseError::Unknown(_)) => "UNKNOWN".to_string(),
            Some(e) => screaming_snake(&format!("{e:?}")),
        }
    }

    /// Whether the protocol says a retry may succeed (leader moved, coordinator loading, ...).
    pub fn is_retriable(self) -> bool {
        ResponseError::try_from_code(self.0).is_some_and(|e| e.is_retriable())
    }

    /// `Ok(())` for 0, the error otherwise, with `context` saying what was asked.
    pub fn check(code: i16, context: impl FnOnce() -> String) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        Err(Error::Kafka { code: KafkaCode(code), context: context(), message: None })
    }
}

impl fmt::Display for KafkaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// `UnknownTopicOrPartition` -> `UNKNOWN_TOPIC_OR_PARTITION`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No TCP connection could be made (refused, no route, DNS).
    #[error("cannot connect to {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    /// The connection broke while requests were in flight, or was closed by the broker.
    #[error("connection to {addr} lost: {reason}")]
    Disconnected { addr: String, reason: String },
    /// No answer within the request timeout.
    #[error("{api} request to {addr} timed out after {timeout_ms} ms")]
    Timeout { api: String, addr: String, timeout_ms: u64 },
    /// The broker answered with a Kafka error code.
    #[error("{context}: {code}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka { code: KafkaCode, context: String, message: Option<String> },
    /// No version of an API that both sides speak.
    #[error("{addr} does not support {api} (broker {broker}, client {client})")]
    UnsupportedVersion { api: String, addr: String, broker: String, client: String },
    /// A response that does not decode, or that answers something we did not ask.
    #[error("protocol error from {addr}: {reason}")]
    Protocol { addr: String, reason: String },
    /// The caller's input cannot be sent (bad name, empty batch, unknown partition, ...).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// The Kafka error code, when the broker sent one.
    pub fn code(&self) -> Option<KafkaCode> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Builds a Kafka error from a response's code and optional message.
    pub fn kafka(code: i16, context: impl Into<String>, message: Option<&str>) -> Error {
        Error::Kafka {
            code: KafkaCode(code),
            context: context.into(),
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        }
    }

    /// Network errors and retriable Kafka codes: worth a fresh metadata lookup and a retry.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Disconnected { .. } | Error::Timeout { .. } => true,
            Error::Kafka { code, .. } => code.is_retriable(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_kafka_names() {
        assert_eq!(KafkaCode(3).name(), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(KafkaCode(36).name(), "TOPIC_ALREADY_EXISTS");
        assert_eq!(KafkaCode(79).name(), "MEMBER_ID_REQUIRED");
        assert_eq!(KafkaCode(-1).name(), "UNKNOWN_SERVER_ERROR");
        assert!(KafkaCode(6).is_retriable());
        assert!(!KafkaCode(36).is_retriable());
        let e = Error::kafka(3, "topic nope", None);
        assert_eq!(e.to_string(), "topic nope: UNKNOWN_TOPIC_OR_PARTITION (3)");
    }
}
