//! Transactions as an admin sees them: ListTransactions on every broker (each answers for the
//! transactional ids it coordinates) and DescribeTransactions on an id's coordinator (found
//! with FindCoordinator key type 1).

use std::time::Duration;

use kafka_protocol::messages::{
    DescribeTransactionsRequest, FindCoordinatorRequest, ListTransactionsRequest, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::{broker_addr, Client};
use crate::error::{Error, KafkaCode, Result};

/// One transactional id as ListTransactions reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionListing {
    pub transactional_id: String,
    pub producer_id: i64,
    /// Kafka's state name (Empty, Ongoing, PrepareCommit, CompleteCommit, ...).
    pub state: String,
    pub coordinator: i32,
}

/// One transactional id as its coordinator describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionDescription {
    pub transactional_id: String,
    pub coordinator: i32,
    pub state: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    /// When the ongoing transaction started (-1: none).
    pub start_time_ms: i64,
    pub partitions: Vec<(String, i32)>,
}

const COORDINATOR_ATTEMPTS_MAX: u32 = 20;

impl Client {
    /// Every transactional id of every broker, sorted by id.
    pub async fn list_transactions(&self) -> Result<Vec<TransactionListing>> {
        let metadata = self.metadata(Some(&[]), false).await?;
        let mut out = Vec::new();
        for broker in &metadata.brokers {
            let connection = self.broker(broker.node_id).await?;
            let response =
                connection.send(&ListTransactionsRequest::default().with_duration_filter(-1)).await?;
            KafkaCode::check(response.error_code, || {
                format!("list transactions on broker {}", broker.node_id)
            })?;
            out.extend(response.transaction_states.into_iter().map(|t| TransactionListing {
                transactional_id: t.transactional_id.0.to_string(),
                producer_id: t.producer_id.0,
                state: t.transaction_state.to_string(),
                coordinator: broker.node_id,
            }));
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }

    /// The state of one transactional id, from its coordinator.
    pub async fn describe_transaction(&self, transactional_id: &str) -> Result<TransactionDescription> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.describe_transaction_once(transactional_id).await {
                Err(e) if e.is_retriable() && attempt < COORDINATOR_ATTEMPTS_MAX => {
                    compio::time::sleep(Duration::from_millis(250)).await;
                }
                r => return r,
            }
        }
    }

    async fn describe_transaction_once(&self, transactional_id: &str) -> Result<TransactionDescription> {
        let context = || format!("transactional id {transactional_id}");
        let any = self.any_broker().await?;
        let request = FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![StrBytes::from_string(transactional_id.to_string())]);
        let found = any.send(&request).await?;
        let c = found.coordinators.first().ok_or_else(|| Error::Invalid(context()))?;
        if c.error_code != 0 {
            return Err(Error::kafka(c.error_code, context(), c.error_message.as_deref()));
        }
        let coordinator = c.node_id.0;
        let connection = self.connection_to(&broker_addr(&c.host, c.port)).await?;
        let id = TransactionalId(StrBytes::from_string(transactional_id.to_string()));
        let response =
            connection.send(&DescribeTransactionsRequest::default().with_transactional_ids(vec![id])).await?;
        let t = response.transaction_states.into_iter().next().ok_or_else(|| Error::Invalid(context()))?;
        KafkaCode::check(t.error_code, context)?;
        Ok(TransactionDescription {
            transactional_id: transactional_id.to_string(),
            coordinator,
            state: t.transaction_state.to_string(),
            producer_id: t.producer_id.0,
            producer_epoch: t.producer_epoch,
            timeout_ms: t.transaction_timeout_ms,
            start_time_ms: t.transaction_start_time_ms,
            partitions: t
                .topics
                .into_iter()
                .flat_map(|topic| {
                    let name = topic.topic.0.to_string();
                    topic.partitions.into_iter().map(move |p| (name.clone(), p))
                })
                .collect(),
        })
    }
}
