//! Why a transaction-coordinator request failed, mapped to Kafka's error codes in one place.

use kafka_protocol::ResponseError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("this broker does not coordinate that transactional id")]
    NotCoordinator,
    #[error("the transaction coordinator is loading its state")]
    LoadInProgress,
    #[error("the transaction coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("the transaction is not in a state that allows this request")]
    InvalidTxnState,
    #[error("the producer id is not the one of this transactional id")]
    InvalidProducerIdMapping,
    #[error("transaction.timeout.ms is not positive or above transaction.max.timeout.ms")]
    InvalidTransactionTimeout,
    #[error("another operation on this transaction is in progress; retry")]
    ConcurrentTransactions,
    #[error("the producer's epoch is not the current one")]
    InvalidProducerEpoch,
    #[error("a newer producer with the same transactional id fenced this one")]
    ProducerFenced,
    #[error("the transactional id is not known")]
    TransactionalIdNotFound,
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("not attempted: another partition of the request failed")]
    OperationNotAttempted,
    #[error("not authorized for this transactional id")]
    TransactionalIdAuthorizationFailed,
    #[error("invalid request")]
    InvalidRequest,
}

impl TxnError {
    pub fn code(self) -> i16 {
        let e = match self {
            TxnError::NotCoordinator => ResponseError::NotCoordinator,
            TxnError::LoadInProgress => ResponseError::CoordinatorLoadInProgress,
            TxnError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
            TxnError::InvalidTxnState => ResponseError::InvalidTxnState,
            TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
            TxnError::InvalidTransactionTimeout => ResponseError::InvalidTransactionTimeout,
            TxnError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
            TxnError::InvalidProducerEpoch => ResponseError::InvalidProducerEpoch,
            TxnError::ProducerFenced => ResponseError::ProducerFenced,
            TxnError::TransactionalIdNotFound => ResponseError::TransactionalIdNotFound,
            TxnError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
            TxnError::OperationNotAttempted => ResponseError::OperationNotAttempted,
            TxnError::TransactionalIdAuthorizationFailed => ResponseError::TransactionalIdAuthorizationFailed,
            TxnError::InvalidRequest => ResponseError::InvalidRequest,
        };
        e.code()
    }

    /// A failed write of the coordinator's own log: the client retries (elsewhere, if
    /// leadership moved).
    pub fn from_write_error(e: &crate::partition::PartitionError) -> TxnError {
        match e {
            crate::partition::PartitionError::NotLeaderOrFollower
            | crate::partition::PartitionError::UnknownTopicOrPartition => TxnError::NotCoordinator,
            _ => TxnError::CoordinatorNotAvailable,
        }
    }
}
