//! Produce over HTTP: v3's `POST /v3/clusters/{c}/topics/{t}/records` (one record, or a
//! stream of them answered record by record while the body is still arriving) and v2's
//! `POST /topics/{t}` (a list of records in an embedded format).
//!
//! Records of one request (or of one piece of a stream) are grouped into one batch per
//! partition and sent to the leaders at once, with acks=all as a Kafka producer's default.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use riptide_client::{partition_for_key, ProduceRecord, ProducerConfig, TopicInfo};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::RestError;
use super::http::{self, error_reply, json_reply, Reply, Req, V2_JSON, V3_JSON};
use super::records::{encode_v2, encode_v3, format_timestamp, Embedded, Encoded, V2Record, V3Record};
use super::state::State;

/// Leader changes are retried this many times (with a fresh metadata lookup each).
const ATTEMPTS: usize = 5;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Where each record goes: its partition, its key's murmur2 partition (as Kafka's default
/// partitioner), or one partition for all keyless records of the call (sticky, as Kafka's).
fn choose(
    state: &State,
    topic: &TopicInfo,
    wanted: Option<i32>,
    key: Option<&[u8]>,
) -> Result<i32, RestError> {
    let n = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    if n == 0 {
        return Err(RestError::Kafka(riptide_client::Error::kafka(5, format!("topic {}", topic.name), None)));
    }
    match (wanted, key) {
        (Some(p), _) if topic.partitions.iter().any(|x| x.partition == p) => Ok(p),
        (Some(p), _) => Err(RestError::UnknownPartition { topic: topic.name.clone(), partition: p }),
        (None, Some(k)) => Ok(partition_for_key(k, n)),
        (None, None) => Ok((state.round_robin.get() % n as u32) as i32),
    }
}

/// Sends the records (already placed), one batch per partition, all partitions at once;
/// answers `(partition, offset of each record)` in the records' order.
async fn send(
    state: &State,
    topic_name: &str,
    placed: Vec<(i32, ProduceRecord)>,
) -> Vec<Result<(i32, i64), RestError>> {
    let mut by_partition: BTreeMap<i32, (Vec<usize>, Vec<ProduceRecord>)> = BTreeMap::new();
    let total = placed.len();
    for (i, (p, r)) in placed.into_iter().enumerate() {
        let e = by_partition.entry(p).or_default();
        e.0.push(i);
        e.1.push(r);
    }
    let mut out: Vec<Option<Result<(i32, i64), RestError>>> = (0..total).map(|_| None).collect();
    let sends = by_partition.into_iter().map(|(p, (idx, recs))| async move {
        let r = send_partition(state, topic_name, p, &recs).await;
        (p, idx, r)
    });
    for (p, idx, r) in futures_util::future::join_all(sends).await {
        match r {
            Ok(base) => {
                for (k, i) in idx.into_iter().enumerate() {
                    out[i] = Some(Ok((p, if base < 0 { -1 } else { base + k as i64 })));
                }
            }
            Err(e) => {
                // One failed batch fails each of its records with the same answer.
                let (status, code) = e.codes();
                let message = e.to_string();
                for i in idx {
                    out[i] = Some(Err(RestError::Answered { status, code, message: message.clone() }));
                }
            }
        }
    }
    out.into_iter().map(|r| r.unwrap_or_else(|| Err(RestError::BadRequest("record lost".into())))).collect()
}

async fn send_partition(
    state: &State,
    topic: &str,
    partition: i32,
    records: &[ProduceRecord],
) -> Result<i64, RestError> {
    let client = state.client().await?;
    let config = ProducerConfig::default();
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        let info = state.topic(topic).await?;
        match client.send_batch(&info, partition, records, &config).await {
            Ok(d) => return Ok(d.base_offset.0),
            Err(e) if e.is_retriable() => {
                state.forget_topic(topic);
                last = Some(e);
                compio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.map_or_else(|| RestError::BadRequest("no attempt".into()), RestError::from))
}

/// `POST /v3/clusters/{c}/topics/{t}/records`.
pub async fn v3(state: &Rc<State>, mut req: Req, cluster: String, topic: String) -> Reply {
    if let Err(e) = req.check_content_type(&[V3_JSON]) {
        return error_reply(&e, V3_JSON);
    }
    let info = match state.topic(&topic).await {
        Ok(i) => i,
        Err(e) => return error_reply(&e, V3_JSON),
    };
    if !req.chunked {
        // The whole body is here: one record answers with its own status, several with a line each.
        let body = match req.bytes(state.limit()).await {
            Ok(b) => b,
            Err(e) => return error_reply(&e, V3_JSON),
        };
        let values = match split_values(&body) {
            Ok((v, rest)) if rest.iter().all(u8::is_ascii_whitespace) => v,
            Ok(_) | Err(_) => {
                return error_reply(
                    &RestError::BadRequest("Invalid JSON in the request body".into()),
                    V3_JSON,
                )
            }
        };
        if values.is_empty() {
            let e = RestError::BadRequest("The request body holds no record".into());
            return error_reply(&e, V3_JSON);
        }
        if values.len() == 1 {
            let mut answers = produce_values(state, &cluster, &info, values).await;
            let (status, v) = answers.pop().unwrap_or((400, json!({})));
            return json_reply(status, V3_JSON, &v);
        }
        let answers = produce_values(state, &cluster, &info, values).await;
        let mut out = Vec::new();
        for (_, v) in answers {
            out.extend_from_slice(&serde_json::to_vec(&v).unwrap_or_default());
            out.push(b'\n');
        }
        return http::bytes_reply(200, V3_JSON, Bytes::from(out));
    }
    // A stream: answer each piece of the body as it arrives, in order.
    let (tx, rx) = flume::unbounded::<Bytes>();
    let state = state.clone();
    compio::runtime::spawn(async move {
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let chunk = match req.next_chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(line(&e.body()));
                    return;
                }
            };
            pending.extend_from_slice(&chunk);
            let (values, consumed) = match split_values(&pending) {
                Ok((v, rest)) => {
                    let consumed = pending.len() - rest.len();
                    (v, consumed)
                }
                Err(e) => {
                    let _ = tx.send(line(&e.body()));
                    return;
                }
            };
            pending.drain(..consumed);
            if pending.len() > state.limit() {
                let _ = tx.send(line(&RestError::TooLarge(state.limit()).body()));
                return;
            }
            if values.is_empty() {
                continue;
            }
            for (_, v) in produce_values(&state, &cluster, &info, values).await {
                if tx.send(line(&v)).is_err() {
                    return;
                }
            }
        }
        if !pending.iter().all(u8::is_ascii_whitespace) {
            let _ = tx.send(line(
                &RestError::BadRequest("Invalid JSON: the stream ends inside a record".into()).body(),
            ));
        }
    })
    .detach();
    let stream = rx.into_stream().map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b)));
    let mut r = hyper::Response::new(StreamBody::new(stream).boxed_unsync());
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(V3_JSON));
    r
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// The complete JSON values at the start of `buf`, and what follows them (an incomplete value
/// still arriving). A syntax error is an error: the stream cannot be resynchronised.
fn split_values(buf: &[u8]) -> Result<(Vec<Value>, &[u8]), RestError> {
    let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<Value>();
    let mut values = Vec::new();
    let mut end = 0;
    loop {
        match it.next() {
            Some(Ok(v)) => {
                values.push(v);
                end = it.byte_offset();
            }
            Some(Err(e)) if e.is_eof() => break,
            Some(Err(e)) => return Err(RestError::BadRequest(format!("Invalid JSON: {e}"))),
            None => {
                end = buf.len();
                break;
            }
        }
    }
    Ok((values, &buf[end..]))
}

/// Produces the records and answers each with (status, REST Proxy's ProduceResponse or error).
async fn produce_values(
    state: &State,
    cluster: &str,
    topic: &TopicInfo,
    values: Vec<Value>,
) -> Vec<(u16, Value)> {
    let now = now_ms();
    state.round_robin.set(state.round_robin.get().wrapping_add(1));
    let mut answers: Vec<Option<(u16, Value)>> = Vec::with_capacity(values.len());
    let mut placed = Vec::new();
    let mut meta: Vec<(usize, Encoded)> = Vec::new();
    for v in values {
        let encoded = serde_json::from_value::<V3Record>(v)
            .map_err(|e| RestError::BadRequest(format!("Invalid record: {e}")))
            .and_then(|r| encode_v3(r, now));
        let placed_one = encoded.and_then(|e| {
            let p = choose(state, topic, e.partition, e.record.key.as_deref())?;
            Ok((p, e))
        });
        match placed_one {
            Ok((p, e)) => {
                placed.push((p, e.record.clone()));
                meta.push((answers.len(), e));
                answers.push(None);
            }
            Err(e) => answers.push(Some((e.codes().0, e.body()))),
        }
    }
    let results = send(state, &topic.name, placed).await;
    for ((i, e), r) in meta.into_iter().zip(results) {
        answers[i] = Some(match r {
            Ok((p, offset)) => (
                200,
                json!({
                    "error_code": 200,
                    "cluster_id": cluster,
                    "topic_name": topic.name,
                    "partition_id": p,
                    "offset": offset,
                    "timestamp": format_timestamp(e.record.timestamp_ms),
                    "key": e.key.map(|(t, size)| json!({"type": t.name(), "size": size})),
                    "value": e.value.map(|(t, size)| json!({"type": t.name(), "size": size})),
                }),
            ),
            Err(e) => (e.codes().0, e.body()),
        });
    }
    answers
        .into_iter()
        .map(|a| a.unwrap_or((500, json!({"error_code": 500, "message": "no answer"}))))
        .collect()
}

#[derive(Deserialize)]
struct V2Produce {
    records: Vec<V2Record>,
}

/// `POST /topics/{t}` (v2).
pub async fn v2(state: &State, mut req: Req, topic: String) -> Reply {
    let format = match req.content_type.as_deref() {
        Some(http::V2_BINARY) => Embedded::Binary,
        Some(http::V2_EMBEDDED_JSON) => Embedded::Json,
        other => {
            let e = RestError::UnsupportedMediaType(other.unwrap_or("none").to_string());
            return error_reply(&e, V2_JSON);
        }
    };
    let body: V2Produce = match req.json(state.limit()).await {
        Ok(b) => b,
        Err(e) => return error_reply(&e, V2_JSON),
    };
    let info = match state.topic(&topic).await {
        Ok(i) => i,
        Err(e) => return error_reply(&e, V2_JSON),
    };
    state.round_robin.set(state.round_robin.get().wrapping_add(1));
    let now = now_ms();
    let mut offsets: Vec<Option<Value>> = Vec::with_capacity(body.records.len());
    let mut placed = Vec::new();
    let mut slots = Vec::new();
    // A record of the wrong shape makes the request bad (400); a record the cluster cannot
    // place (unknown partition) fails alone, as REST Proxy answers per record.
    let mut encoded = Vec::with_capacity(body.records.len());
    for r in &body.records {
        match encode_v2(r, format, now) {
            Ok(e) => encoded.push(e),
            Err(e) => return error_reply(&e, V2_JSON),
        }
    }
    for (p, rec) in encoded {
        let one = choose(state, &info, p, rec.key.as_deref()).map(|p| (p, rec));
        match one {
            Ok(x) => {
                slots.push(offsets.len());
                offsets.push(None);
                placed.push(x);
            }
            Err(e) => offsets.push(Some(v2_error(&e))),
        }
    }
    for (slot, r) in slots.into_iter().zip(send(state, &topic, placed).await) {
        offsets[slot] = Some(match r {
            Ok((p, o)) => json!({"partition": p, "offset": o, "error_code": null, "error": null}),
            Err(e) => v2_error(&e),
        });
    }
    json_reply(200, V2_JSON, &json!({"key_schema_id": null, "value_schema_id": null, "offsets": offsets}))
}

fn v2_error(e: &RestError) -> Value {
    let (_, code) = e.codes();
    json!({"partition": null, "offset": null, "error_code": code, "error": e.to_string()})
}
