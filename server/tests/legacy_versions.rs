//! The versions Kafka 3.9 served and 4.0 removed (KIP-896), on the wire as an old client sends
//! them (hand-encoded: the reference codec no longer has them): topics created and deleted,
//! message format 0 produced, fetched back in formats 0 and 1 and listed, offsets committed
//! the v0 and v1 way and fetched the v0 way, configs described the v0 way.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::Client;
use kafka_protocol::messages::ApiKey;

/// Old wire fields, appended.
#[derive(Default)]
struct W(BytesMut);

impl W {
    fn i8(mut self, v: i8) -> W {
        self.0.put_i8(v);
        self
    }
    fn i16(mut self, v: i16) -> W {
        self.0.put_i16(v);
        self
    }
    fn i32(mut self, v: i32) -> W {
        self.0.put_i32(v);
        self
    }
    fn i64(mut self, v: i64) -> W {
        self.0.put_i64(v);
        self
    }
    fn s(mut self, v: &str) -> W {
        self.0.put_i16(v.len() as i16);
        self.0.put_slice(v.as_bytes());
        self
    }
    fn raw(mut self, b: &[u8]) -> W {
        self.0.put_slice(b);
        self
    }
    fn done(self) -> Vec<u8> {
        self.0.to_vec()
    }
}

/// Reads old wire fields.
struct R(Bytes);

impl R {
    fn i8(&mut self) -> i8 {
        let v = self.0[0] as i8;
        self.0 = self.0.slice(1..);
        v
    }
    fn i16(&mut self) -> i16 {
        let v = i16::from_be_bytes([self.0[0], self.0[1]]);
        self.0 = self.0.slice(2..);
        v
    }
    fn i32(&mut self) -> i32 {
        let v = i32::from_be_bytes(self.0[..4].try_into().expect("i32"));
        self.0 = self.0.slice(4..);
        v
    }
    fn i64(&mut self) -> i64 {
        let v = i64::from_be_bytes(self.0[..8].try_into().expect("i64"));
        self.0 = self.0.slice(8..);
        v
    }
    fn s(&mut self) -> Option<String> {
        let len = self.i16();
        if len < 0 {
            return None;
        }
        let v = String::from_utf8(self.0[..len as usize].to_vec()).expect("utf-8");
        self.0 = self.0.slice(len as usize..);
        Some(v)
    }
}

/// One magic-0 message (no timestamp), CRC-32 over magic..value.
fn message_v0(key: Option<&[u8]>, value: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8, 0u8]; // magic 0, attributes 0
    match key {
        Some(k) => {
            body.extend_from_slice(&(k.len() as i32).to_be_bytes());
            body.extend_from_slice(k);
        }
        None => body.extend_from_slice(&(-1i32).to_be_bytes()),
    }
    body.extend_from_slice(&(value.len() as i32).to_be_bytes());
    body.extend_from_slice(value);
    let crc = crc32fast::hash(&body);
    W::default().i64(0).i32(body.len() as i32 + 4).raw(&crc.to_be_bytes()).raw(&body).done()
}

const TOPIC: &str = "old-formats";

#[test]
fn old_versions_on_the_wire() {
    let (config, dir) = common::single_node("legacy-versions");
    let running = riptide_server::server::start(config).expect("start");
    let mut c = Client::connect(running.addr);

    // CreateTopics v0: [name, partitions, replication factor, assignments, configs], timeout.
    let create = W::default().i32(1).s(TOPIC).i32(1).i16(1).i32(0).i32(0).i32(10_000).done();
    let mut r = R(c.call_raw(ApiKey::CreateTopics, 0, &create));
    assert_eq!((r.i32(), r.s().as_deref(), r.i16()), (1, Some(TOPIC), 0));

    // Produce v0, message format 0: [acks, timeout, [topic, [partition, message set]]].
    let set = [message_v0(Some(b"k"), b"one"), message_v0(None, b"two")].concat();
    let produce =
        W::default().i16(-1).i32(10_000).i32(1).s(TOPIC).i32(1).i32(0).i32(set.len() as i32).raw(&set).done();
    let mut r = R(c.call_raw(ApiKey::Produce, 0, &produce));
    assert_eq!((r.i32(), r.s().as_deref(), r.i32()), (1, Some(TOPIC), 1));
    assert_eq!((r.i32(), r.i16(), r.i64()), (0, 0, 0), "partition 0, no error, base offset 0");
    assert!(r.0.is_empty(), "v0 has no throttle time");

    // A damaged message is refused with CORRUPT_MESSAGE (2) and appends nothing.
    let mut bad = message_v0(None, b"bad");
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let produce =
        W::default().i16(1).i32(10_000).i32(1).s(TOPIC).i32(1).i32(0).i32(bad.len() as i32).raw(&bad).done();
    let mut r = R(c.call_raw(ApiKey::Produce, 1, &produce));
    assert_eq!((r.i32(), r.s().as_deref(), r.i32(), r.i32(), r.i16()), (1, Some(TOPIC), 1, 0, 2));

    // Fetch v0-1 (message format 0) and v2-3 (format 1) from offset 0: the two messages, keys
    // and values as produced, each with its offset and a valid CRC-32.
    for version in 0i16..=3 {
        let w = W::default().i32(-1).i32(100).i32(1);
        let w = if version == 3 { w.i32(1 << 20) } else { w };
        let fetch = w.i32(1).s(TOPIC).i32(1).i32(0).i64(0).i32(1 << 20).done();
        let mut r = R(c.call_raw(ApiKey::Fetch, version, &fetch));
        if version >= 1 {
            r.i32(); // throttle
        }
        assert_eq!((r.i32(), r.s().as_deref(), r.i32()), (1, Some(TOPIC), 1));
        assert_eq!((r.i32(), r.i16(), r.i64()), (0, 0, 2), "partition 0, no error, high watermark 2");
        let len = r.i32() as usize;
        let mut set = R(r.0.slice(..len));
        let magic = if version <= 1 { 0 } else { 1 };
        let mut got = Vec::new();
        while !set.0.is_empty() {
            let offset = set.i64();
            let size = set.i32() as usize;
            let body = set.0.slice(..size);
            set.0 = set.0.slice(size..);
            let crc = u32::from_be_bytes(body[..4].try_into().expect("crc"));
            assert_eq!(crc, crc32fast::hash(&body[4..]), "CRC-32 of message {offset}");
            let mut m = R(body.slice(4..));
            assert_eq!(m.i8(), magic);
            m.i8(); // attributes
            if magic == 1 {
                assert_eq!(m.i64(), -1, "format 0 had no timestamp");
            }
            let key_len = m.i32();
            let key = (key_len >= 0).then(|| m.0.slice(..key_len as usize).to_vec());
            m.0 = m.0.slice(key_len.max(0) as usize..);
            let value_len = m.i32() as usize;
            got.push((offset, key, m.0.slice(..value_len).to_vec()));
        }
        assert_eq!(
            got,
            vec![(0, Some(b"k".to_vec()), b"one".to_vec()), (1, None, b"two".to_vec())],
            "Fetch v{version}"
        );
    }

    // ListOffsets v0, latest, up to 5 offsets: [offset 2].
    let list = W::default().i32(-1).i32(1).s(TOPIC).i32(1).i32(0).i64(-1).i32(5).done();
    let mut r = R(c.call_raw(ApiKey::ListOffsets, 0, &list));
    assert_eq!((r.i32(), r.s().as_deref(), r.i32(), r.i32(), r.i16()), (1, Some(TOPIC), 1, 0, 0));
    assert_eq!((r.i32(), r.i64()), (1, 2));

    // GroupCoordinator (FindCoordinator v0) until the coordinator is ready.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let code = R(c.call_raw(ApiKey::FindCoordinator, 0, &W::default().s("old-group").done())).i16();
        if code == 0 {
            break;
        }
        assert!(code == 15 && std::time::Instant::now() < deadline, "FindCoordinator: {code}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // OffsetCommit v0 (no generation: a simple commit), then v1 with a generation of -1 and
    // a commit timestamp; each read back with OffsetFetch v0.
    for (version, offset) in [(0i16, 1i64), (1, 2)] {
        let w = W::default().s("old-group");
        let w = if version == 1 { w.i32(-1).s("") } else { w };
        let w = w.i32(1).s(TOPIC).i32(1).i32(0).i64(offset);
        let w = if version == 1 { w.i64(-1) } else { w };
        let commit = w.s("meta").done();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let mut r = R(c.call_raw(ApiKey::OffsetCommit, version, &commit));
            assert_eq!((r.i32(), r.s().as_deref(), r.i32(), r.i32()), (1, Some(TOPIC), 1, 0));
            let code = r.i16();
            // The coordinator loads its partition first (COORDINATOR_LOAD_IN_PROGRESS).
            if code == 14 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
            assert_eq!(code, 0, "OffsetCommit v{version}");
            break;
        }
        let fetch = W::default().s("old-group").i32(1).s(TOPIC).i32(1).i32(0).done();
        let mut r = R(c.call_raw(ApiKey::OffsetFetch, 0, &fetch));
        assert_eq!((r.i32(), r.s().as_deref(), r.i32(), r.i32()), (1, Some(TOPIC), 1, 0));
        assert_eq!((r.i64(), r.s().as_deref(), r.i16()), (offset, Some("meta"), 0), "after v{version}");
    }

    // DescribeConfigs v0: [type, name, keys (null: all)]; entries carry is_default.
    let describe = W::default().i32(1).i8(2).s(TOPIC).i32(-1).done();
    let mut r = R(c.call_raw(ApiKey::DescribeConfigs, 0, &describe));
    r.i32(); // throttle
    assert_eq!((r.i32(), r.i16()), (1, 0));
    r.s();
    assert_eq!((r.i8(), r.s().as_deref()), (2, Some(TOPIC)));
    let mut entries = Vec::new();
    for _ in 0..r.i32() {
        let (name, value, read_only, is_default, sensitive) = (r.s(), r.s(), r.i8(), r.i8(), r.i8());
        entries.push((name.expect("name"), value, read_only, is_default, sensitive));
    }
    assert!(r.0.is_empty(), "v0 entries have no synonyms");
    let cleanup = entries.iter().find(|e| e.0 == "cleanup.policy").expect("cleanup.policy");
    assert_eq!((cleanup.1.as_deref(), cleanup.3), (Some("delete"), 1), "a default");

    // WriteTxnMarkers v0 (broker to broker; v1 is its flexible form): a COMMIT marker for a
    // producer this partition never saw is written; the answer names the partition.
    let markers = W::default().i32(1).i64(99).i16(0).i8(1).i32(1).s(TOPIC).i32(1).i32(0).i32(0).done();
    let mut r = R(c.call_raw(ApiKey::WriteTxnMarkers, 0, &markers));
    assert_eq!(
        (r.i32(), r.i64(), r.i32(), r.s().as_deref(), r.i32(), r.i32()),
        (1, 99, 1, Some(TOPIC), 1, 0)
    );
    let code = r.i16();
    assert!(r.0.is_empty() && code >= 0, "error code {code}, nothing after it");

    // DeleteTopics v0: [names], timeout; the answer has no throttle time.
    let delete = W::default().i32(1).s(TOPIC).i32(10_000).done();
    let mut r = R(c.call_raw(ApiKey::DeleteTopics, 0, &delete));
    assert_eq!((r.i32(), r.s().as_deref(), r.i16()), (1, Some(TOPIC), 0));
    assert!(r.0.is_empty());

    running.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
