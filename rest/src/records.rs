//! Records as JSON: REST Proxy's v3 produce records (`{"type": "BINARY", "data": ...}`) and
//! the v2 embedded formats (binary: base64 strings; json: any JSON value).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use riptide_client::{ConsumedRecord, ProduceRecord};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::RestError;

/// One record of `POST /v3/clusters/{c}/topics/{t}/records`.
#[derive(Deserialize, Debug, Default)]
pub struct V3Record {
    pub partition_id: Option<i32>,
    #[serde(default)]
    pub headers: Vec<V3Header>,
    pub key: Option<V3Data>,
    pub value: Option<V3Data>,
    pub timestamp: Option<String>,
}

#[derive(Deserialize, Debug)]
pub struct V3Header {
    pub name: String,
    /// Base64, or null for a header without a value.
    pub value: Option<String>,
}

#[derive(Deserialize, Debug)]
pub struct V3Data {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub data: Value,
    pub subject: Option<String>,
    pub schema_id: Option<i64>,
    pub schema_version: Option<i64>,
}

/// A data type of v3 produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    Binary,
    Json,
    String,
}

impl DataType {
    pub fn name(self) -> &'static str {
        match self {
            DataType::Binary => "BINARY",
            DataType::Json => "JSON",
            DataType::String => "STRING",
        }
    }
}

/// A record ready to send plus what the answer reports about it.
pub struct Encoded {
    pub partition: Option<i32>,
    pub record: ProduceRecord,
    pub key: Option<(DataType, usize)>,
    pub value: Option<(DataType, usize)>,
}

fn data_bytes(d: &V3Data, what: &str) -> Result<(DataType, Option<Bytes>), RestError> {
    if d.subject.is_some() || d.schema_id.is_some() || d.schema_version.is_some() {
        return Err(RestError::BadRequest(format!(
            "{what}: schemas (subject, schema_id, schema_version) need a schema registry, which this broker does not have"
        )));
    }
    let kind = match d.kind.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("JSON") => DataType::Json,
        Some("BINARY") => DataType::Binary,
        Some("STRING") => DataType::String,
        Some(other @ ("AVRO" | "PROTOBUF" | "JSONSCHEMA")) => {
            return Err(RestError::BadRequest(format!(
                "{what}: type {other} needs a schema registry, which this broker does not have"
            )))
        }
        Some(other) => {
            return Err(RestError::BadRequest(format!(
                "{what}: type must be BINARY, JSON or STRING, not {other:?}"
            )))
        }
    };
    let bytes = match (&d.data, kind) {
        (Value::Null, DataType::Binary | DataType::String) => None,
        (Value::String(s), DataType::Binary) => Some(decode_base64(s, what)?),
        (Value::String(s), DataType::String) => Some(Bytes::from(s.clone().into_bytes())),
        (_, DataType::Binary | DataType::String) => {
            return Err(RestError::BadRequest(format!(
                "{what}: data of type {} must be a string",
                kind.name()
            )))
        }
        (v, DataType::Json) => Some(Bytes::from(serde_json::to_vec(v).unwrap_or_default())),
    };
    Ok((kind, bytes))
}

fn decode_base64(s: &str, what: &str) -> Result<Bytes, RestError> {
    B64.decode(s)
        .map(Bytes::from)
        .map_err(|e| RestError::BadRequest(format!("{what}: data is not valid base64: {e}")))
}

pub fn encode_v3(r: V3Record, now_ms: i64) -> Result<Encoded, RestError> {
    if r.partition_id.is_some_and(|p| p < 0) {
        return Err(RestError::BadRequest("partition_id must not be negative".into()));
    }
    let (key_type, key) = match &r.key {
        Some(d) => {
            let (t, b) = data_bytes(d, "key")?;
            (Some(t), b)
        }
        None => (None, None),
    };
    let (value_type, value) = match &r.value {
        Some(d) => {
            let (t, b) = data_bytes(d, "value")?;
            (Some(t), b)
        }
        None => (None, None),
    };
    let timestamp_ms = match &r.timestamp {
        Some(t) => parse_timestamp(t)?,
        None => now_ms,
    };
    let mut headers = Vec::with_capacity(r.headers.len());
    for h in &r.headers {
        let v = match &h.value {
            Some(v) => Some(decode_base64(v, &format!("header {}", h.name))?),
            None => None,
        };
        headers.push((h.name.clone(), v));
    }
    Ok(Encoded {
        partition: r.partition_id,
        key: key_type.map(|t| (t, key.as_ref().map_or(0, Bytes::len))),
        value: value_type.map(|t| (t, value.as_ref().map_or(0, Bytes::len))),
        record: ProduceRecord { key, value, headers, timestamp_ms },
    })
}

pub fn parse_timestamp(t: &str) -> Result<i64, RestError> {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp_millis())
        .map_err(|e| RestError::BadRequest(format!("timestamp {t:?} is not RFC 3339: {e}")))
}

pub fn format_timestamp(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The v2 embedded formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Embedded {
    Binary,
    Json,
}

impl Embedded {
    pub fn name(self) -> &'static str {
        match self {
            Embedded::Binary => "binary",
            Embedded::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Embedded::Binary => super::http::V2_BINARY,
            Embedded::Json => super::http::V2_EMBEDDED_JSON,
        }
    }
}

/// One record of v2's `POST /topics/{t}`.
#[derive(Deserialize, Debug)]
pub struct V2Record {
    #[serde(default)]
    pub key: Value,
    #[serde(default)]
    pub value: Value,
    pub partition: Option<i32>,
}

pub fn encode_v2(
    r: &V2Record,
    format: Embedded,
    now_ms: i64,
) -> Result<(Option<i32>, ProduceRecord), RestError> {
    let field = |v: &Value, what: &str| -> Result<Option<Bytes>, RestError> {
        match (v, format) {
            (Value::Null, _) => Ok(None),
            (Value::String(s), Embedded::Binary) => decode_base64(s, what).map(Some),
            (_, Embedded::Binary) => {
                Err(RestError::BadRequest(format!("{what}: binary data must be a base64 string")))
            }
            (v, Embedded::Json) => Ok(Some(Bytes::from(serde_json::to_vec(v).unwrap_or_default()))),
        }
    };
    if r.partition.is_some_and(|p| p < 0) {
        return Err(RestError::BadRequest("partition must not be negative".into()));
    }
    Ok((
        r.partition,
        ProduceRecord {
            key: field(&r.key, "key")?,
            value: field(&r.value, "value")?,
            headers: Vec::new(),
            timestamp_ms: now_ms,
        },
    ))
}

/// A consumed record in v2's shape. Bytes that are not JSON in the json format come back as a
/// JSON string of their (lossy) UTF-8, so that one odd record does not fail a whole poll.
pub fn decode_v2(topic: &str, partition: i32, r: &ConsumedRecord, format: Embedded) -> Value {
    let field = |b: &Option<Bytes>| -> Value {
        match (b, format) {
            (None, _) => Value::Null,
            (Some(b), Embedded::Binary) => Value::String(B64.encode(b)),
            (Some(b), Embedded::Json) => serde_json::from_slice(b)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned())),
        }
    };
    json!({
        "topic": topic,
        "key": field(&r.key),
        "value": field(&r.value),
        "partition": partition,
        "offset": r.offset,
        "timestamp": r.timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(kind: Option<&str>, data: Value) -> V3Data {
        V3Data { kind: kind.map(str::to_string), data, subject: None, schema_id: None, schema_version: None }
    }

    #[test]
    fn v3_types_encode_as_rest_proxy_does() {
        let r = V3Record {
            key: Some(data(Some("STRING"), json!("k1"))),
            value: Some(data(None, json!({"a": [1, 2]}))),
            headers: vec![V3Header { name: "h".into(), value: Some(B64.encode(b"\x00\x01")) }],
            timestamp: Some("2026-12-02T10:00:00.250Z".into()),
            ..Default::default()
        };
        let e = encode_v3(r, 0).expect("encodes");
        assert_eq!(e.record.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(e.record.value.as_deref(), Some(&br#"{"a":[1,2]}"#[..]));
        assert_eq!(e.record.headers[0].1.as_deref(), Some(&b"\x00\x01"[..]));
        assert_eq!(e.key, Some((DataType::String, 2)));
        assert_eq!(format_timestamp(e.record.timestamp_ms), "2026-12-02T10:00:00.250Z");
        let bin =
            encode_v3(V3Record { value: Some(data(Some("binary"), json!("AAE="))), ..Default::default() }, 7)
                .expect("binary");
        assert_eq!(bin.record.value.as_deref(), Some(&b"\x00\x01"[..]));
        assert_eq!(bin.record.timestamp_ms, 7);
    }

    #[test]
    fn v3_bad_data_is_refused_with_a_reason() {
        for (d, want) in [
            (data(Some("BINARY"), json!("%%%")), "base64"),
            (data(Some("BINARY"), json!(5)), "must be a string"),
            (data(Some("AVRO"), json!({})), "schema registry"),
            (data(Some("XML"), json!("x")), "BINARY, JSON or STRING"),
        ] {
            let e = encode_v3(V3Record { value: Some(d), ..Default::default() }, 0).err().expect("refused");
            assert!(e.to_string().contains(want), "{e}");
        }
        let e = encode_v3(V3Record { timestamp: Some("yesterday".into()), ..Default::default() }, 0);
        assert!(e.is_err());
    }

    #[test]
    fn v2_formats_round_trip() {
        let r = V2Record { key: json!("a2V5"), value: Value::Null, partition: Some(1) };
        let (p, rec) = encode_v2(&r, Embedded::Binary, 0).expect("binary");
        assert_eq!((p, rec.key.as_deref(), rec.value), (Some(1), Some(&b"key"[..]), None));
        let consumed = ConsumedRecord {
            offset: riptide_model::Offset(3),
            timestamp_ms: 0,
            log_append_time: false,
            key: rec.key,
            value: Some(Bytes::from_static(b"not json")),
            headers: Vec::new(),
        };
        let v = decode_v2("t", 1, &consumed, Embedded::Binary);
        assert_eq!(v["key"], "a2V5");
        let v = decode_v2("t", 1, &consumed, Embedded::Json);
        assert_eq!(v["value"], "not json");
        assert_eq!(v["offset"], 3);
    }
}
