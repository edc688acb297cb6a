//! Produce: each partition's record set goes to its owner shard (`route_produce`), all
//! partitions of a request concurrently; the answer is assembled in request order. acks=0
//! gets no answer at all, as in Kafka.

use std::sync::Arc;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use crate::shard::mailbox::{ProduceCall, ProduceOutcome};
use crate::shard::{route_produce, Ctx};

const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUIRED_ACKS: i16 = 21;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;

pub async fn handle(ctx: &Ctx, version: i16, request: ProduceRequest) -> Option<ProduceResponse> {
    let acks = request.acks;
    let refuse_all = if !matches!(acks, -1..=1) {
        Some((INVALID_REQUIRED_ACKS, "acks must be -1, 0 or 1"))
    } else if request.transactional_id.is_some() {
        Some((TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "transactions are not supported yet"))
    } else {
        None
    };
    let mut pending = Vec::new();
    for topic in &request.topic_data {
        let name: Arc<str> = Arc::from(topic.name.0.as_str());
        let exists = ctx.broker.topic(&name).is_some();
        for p in &topic.partition_data {
            let outcome = match (&refuse_all, exists, &p.records) {
                (Some((code, msg)), _, _) => Err(ProduceOutcome::error(*code, Some((*msg).to_string()))),
                (None, false, _) => Err(ProduceOutcome::error(UNKNOWN_TOPIC_OR_PARTITION, None)),
                (None, true, None) => {
                    Err(ProduceOutcome::error(CORRUPT_MESSAGE, Some("null record set".into())))
                }
                (None, true, Some(records)) => {
                    let call = ProduceCall {
                        topic: name.clone(),
                        partition: p.index,
                        records: records.clone(),
                        acks,
                    };
                    let ctx = ctx.clone();
                    Ok(compio::runtime::spawn(async move { route_produce(&ctx, call).await }))
                }
            };
            pending.push(outcome);
        }
    }
    let mut outcomes = Vec::with_capacity(pending.len());
    for p in pending {
        outcomes.push(match p {
            Err(o) => o,
            Ok(task) => {
                task.await.unwrap_or_else(|_| ProduceOutcome::error(-1, Some("internal error".into())))
            }
        });
    }
    if acks == 0 {
        return None;
    }
    let mut outcomes = outcomes.into_iter();
    let responses = request
        .topic_data
        .iter()
        .map(|topic| {
            let partitions = topic
                .partition_data
                .iter()
                .map(|p| {
                    let o = outcomes.next().unwrap_or_default();
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(o.error_code)
                        .with_base_offset(o.base_offset)
                        .with_log_append_time_ms(o.log_append_time_ms)
                        .with_log_start_offset(if version >= 5 { o.log_start_offset } else { -1 })
                        .with_error_message(
                            o.error_message.filter(|_| version >= 8).map(StrBytes::from_string),
                        )
                })
                .collect();
            TopicProduceResponse::default().with_name(topic.name.clone()).with_partition_responses(partitions)
        })
        .collect();
    Some(ProduceResponse::default().with_responses(responses))
}
