//! What the in-process protocol tests share: a single-node broker on an ephemeral loopback
//! port, with no metrics or REST listener, its data in a fresh temporary directory, and a
//! blocking client that sends one request at a time, encoded with the reference codec.

// Each test crate includes this module and uses a part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use riptide_server::config::{KafkaListener, RestConfig, ServerConfig};

/// The config of such a broker with its data in `<tmp>/riptide-<name>-<pid>` (emptied first);
/// the directory, for the test to remove when done.
pub fn single_node(name: &str) -> (ServerConfig, PathBuf) {
    let dir = std::env::temp_dir().join(format!("riptide-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = ServerConfig {
        data_dir: dir.clone(),
        listeners: vec![KafkaListener::plaintext("127.0.0.1:0".parse().expect("addr"))],
        metrics_listen: None,
        rest: RestConfig { listen: None, ..Default::default() },
        shards: 2,
        pin_shards: false,
        ..ServerConfig::default()
    };
    (config, dir)
}

/// One connection to the broker under test; every call waits for its answer.
pub struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        Client { stream, correlation_id: 0 }
    }

    /// Sends `request` at `version` and decodes the answer (panics on a closed connection or
    /// an answer the reference codec refuses: either is the broker's bug).
    pub fn call_once(&mut self, key: ApiKey, version: i16, request: RequestKind) -> ResponseKind {
        self.correlation_id += 1;
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("riptide-tests")))
            .encode(&mut buf, key.request_header_version(version))
            .expect("header");
        request.encode(&mut buf, version).expect("request");
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&buf).expect("send");
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).expect("an answer");
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).expect("whole answer");
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version)).expect("header");
        assert_eq!(header.correlation_id, self.correlation_id, "answers come in request order");
        ResponseKind::decode(key, &mut body, version).expect("response")
    }
}
