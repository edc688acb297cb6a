//! Request and response plumbing: bounded body reading, content types, JSON replies.

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde::de::DeserializeOwned;

use super::error::RestError;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;
pub type Reply = Response<Body>;

pub const V3_JSON: &str = "application/json";
pub const V2_JSON: &str = "application/vnd.kafka.v2+json";
pub const V2_BINARY: &str = "application/vnd.kafka.binary.v2+json";
pub const V2_EMBEDDED_JSON: &str = "application/vnd.kafka.json.v2+json";

/// A parsed request: what the handlers need, with the body still unread.
pub struct Req {
    pub method: hyper::Method,
    /// Path segments, percent-decoded (`/v3/clusters/x` → `["v3", "clusters", "x"]`).
    pub path: Vec<String>,
    pub query: HashMap<String, String>,
    /// `http://<Host header>`: the prefix of the absolute URLs in `metadata.self`.
    pub base: String,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub chunked: bool,
    pub body: Incoming,
}

impl Req {
    pub fn new(req: Request<Incoming>) -> Req {
        let (parts, body) = req.into_parts();
        let header = |name: hyper::header::HeaderName| {
            parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
        };
        let host = header(hyper::header::HOST).unwrap_or_else(|| "localhost".into());
        let media =
            |v: Option<String>| v.map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        let chunked = parts.headers.get(hyper::header::CONTENT_LENGTH).is_none()
            && parts
                .headers
                .get(hyper::header::TRANSFER_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        Req {
            method: parts.method,
            path: parts.uri.path().split('/').filter(|s| !s.is_empty()).map(percent_decode).collect(),
            query: parts.uri.query().map(parse_query).unwrap_or_default(),
            base: format!("http://{host}"),
            content_type: media(header(CONTENT_TYPE)),
            accept: header(hyper::header::ACCEPT),
            chunked,
            body,
        }
    }

    /// Refuses a body whose Content-Type is not one of `allowed` (a missing type is taken
    /// as the first, as curl without `-H` sends form encoding only when asked to).
    pub fn check_content_type(&self, allowed: &[&str]) -> Result<(), RestError> {
        match &self.content_type {
            None => Ok(()),
            Some(t) if allowed.contains(&t.as_str()) => Ok(()),
            Some(t) => Err(RestError::UnsupportedMediaType(t.clone())),
        }
    }

    /// The whole body, at most `limit` bytes.
    pub async fn bytes(&mut self, limit: usize) -> Result<Bytes, RestError> {
        let mut buf = BytesMut::new();
        while let Some(frame) = self.body.frame().await {
            let frame = frame.map_err(|e| RestError::BadRequest(format!("reading the request body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(RestError::TooLarge(limit));
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    }

    /// The next piece of a streamed body (`None` at its end).
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, RestError> {
        while let Some(frame) = self.body.frame().await {
            let frame = frame.map_err(|e| RestError::BadRequest(format!("reading the request body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }

    /// The body as JSON (`T`), at most `limit` bytes; an empty body is `null`, so optional
    /// bodies deserialize into `Option`/`#[serde(default)]` types.
    pub async fn json<T: DeserializeOwned>(&mut self, limit: usize) -> Result<T, RestError> {
        let bytes = self.bytes(limit).await?;
        parse_json(&bytes)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RestError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"null" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| RestError::BadRequest(format!("Invalid JSON: {e}")))
}

pub fn json_reply(status: u16, content_type: &str, value: &serde_json::Value) -> Reply {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    bytes_reply(status, content_type, Bytes::from(body))
}

pub fn bytes_reply(status: u16, content_type: &str, body: Bytes) -> Reply {
    let mut r = Response::new(Full::new(body).boxed_unsync());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

pub fn no_content() -> Reply {
    let mut r = Response::new(Full::new(Bytes::new()).boxed_unsync());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

pub fn error_reply(e: &RestError, content_type: &str) -> Reply {
    let (status, _) = e.codes();
    if status >= 500 {
        tracing::warn!("REST: {e}");
    }
    let mut r = json_reply(status, content_type, &e.body());
    if let RestError::MethodNotAllowed(methods) = e {
        r.headers_mut().insert(hyper::header::ALLOW, HeaderValue::from_static(methods));
    }
    r
}

fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

/// `%XX` escapes decoded; a malformed escape is kept as written (it then names nothing).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a path segment for the URLs we hand out.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(encode_segment("g 1/x"), "g%201%2Fx");
    }
}
