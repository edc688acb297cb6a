//! API versions Kafka 3.9 served and 4.0 removed (KIP-896), still sent by older clients
//! (sarama before 1.40 commits offsets with OffsetCommit v1 and asks DescribeConfigs v0;
//! kafka-python with an old `api_version` produces with v0–2 in message format 0/1).
//!
//! The protocol codec knows only Kafka 4's versions, so each old version is *bridged* to the
//! oldest version it does know: the request's bytes are rewritten into the bridge version's
//! (fields the old version lacks get the value that means what the old version meant), the
//! handler runs as for the bridge version, and the answer's bytes are rewritten back (fields
//! the old version lacks are dropped). Old message formats are converted separately
//! (`message_set`): up on Produce, down on Fetch.

pub mod message_set;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

use super::RequestError;

/// (api, oldest version served, bridge version): versions from the oldest up to the bridge
/// (exclusive) are rewritten to and from the bridge version.
pub const BRIDGED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 3),
    (ApiKey::Fetch, 0, 4),
    (ApiKey::ListOffsets, 0, 1),
    (ApiKey::OffsetForLeaderEpoch, 0, 2),
    (ApiKey::DescribeLogDirs, 0, 1),
    (ApiKey::CreateTopics, 0, 2),
    (ApiKey::DeleteTopics, 0, 1),
    (ApiKey::DescribeConfigs, 0, 1),
    (ApiKey::OffsetCommit, 0, 2),
    (ApiKey::OffsetFetch, 0, 1),
    (ApiKey::CreateAcls, 0, 1),
    (ApiKey::DescribeAcls, 0, 1),
    (ApiKey::DeleteAcls, 0, 1),
    (ApiKey::WriteTxnMarkers, 0, 1),
];

/// The version whose codec and handler serve `version` of `api`, when it is an old one.
pub fn bridge(api: ApiKey, version: i16) -> Option<i16> {
    BRIDGED
        .iter()
        .find(|(k, min, bridge)| *k == api && version >= *min && version < *bridge)
        .map(|(_, _, b)| *b)
}

/// The request header version of a bridged (old) version: every one of them predates flexible
/// versions (KIP-482), so header v1 (the codec only knows its own versions' headers: for an API
/// flexible in all of them it answers v2 whatever the version).
pub const REQUEST_HEADER_VERSION: i16 = 1;
/// The response header version of a bridged version: v0, for the same reason.
pub const RESPONSE_HEADER_VERSION: i16 = 0;

/// The oldest version of `api` served, bridged or not.
pub fn oldest(api: ApiKey) -> Option<i16> {
    BRIDGED.iter().find(|(k, _, _)| *k == api).map(|(_, min, _)| *min)
}

const LITERAL: i8 = 3; // PatternType.LITERAL: the only pattern ACL requests v0 know

fn malformed(api: ApiKey, version: i16) -> impl Fn(Short) -> RequestError {
    move |_| RequestError::Malformed(format!("{api:?} v{version}: truncated"))
}

/// The request body of an old `version` rewritten as the bridge version's.
pub fn upgrade_request(api: ApiKey, version: i16, body: Bytes) -> Result<Bytes, RequestError> {
    let mut r = Reader::new(&body);
    let mut w = BytesMut::with_capacity(body.len() + 16);
    let bad = malformed(api, version);
    match api {
        // v3 added the transactional id in front.
        ApiKey::Produce => {
            w.put_i16(-1);
            w.put_slice(&body);
        }
        // Fetch v0–2 lack v3's response size limit; v3 lacks v4's isolation level (v4 adds it
        // after max_bytes): read_uncommitted is what they meant.
        ApiKey::Fetch => {
            w.put_slice(r.take(12).map_err(&bad)?); // replica_id, max_wait_ms, min_bytes
            if version >= 3 {
                w.put_i32(r.i32().map_err(&bad)?);
            } else {
                w.put_i32(i32::MAX);
            }
            w.put_i8(0);
            w.put_slice(r.rest());
        }
        // v0 asked for up to max_num_offsets offsets; v1 answers one.
        ApiKey::ListOffsets => {
            w.put_i32(r.i32().map_err(&bad)?); // replica_id
            r.array(&mut w, |r, w| {
                r.copy_string(w)?;
                r.array(w, |r, w| {
                    w.put_slice(r.take(12)?); // partition, timestamp
                    r.take(4)?; // max_num_offsets
                    Ok(())
                })
            })
            .map_err(&bad)?;
        }
        // v2 added the current leader epoch per partition (unknown: -1).
        ApiKey::OffsetForLeaderEpoch => {
            r.array(&mut w, |r, w| {
                r.copy_string(w)?;
                r.array(w, |r, w| {
                    w.put_slice(r.take(4)?); // partition
                    w.put_i32(-1);
                    w.put_slice(r.take(4)?); // leader_epoch
                    Ok(())
                })
            })
            .map_err(&bad)?;
        }
        // v1 added validate_only at the end.
        ApiKey::CreateTopics if version == 0 => {
            w.put_slice(&body);
            w.put_i8(0);
        }
        // v1 added include_synonyms at the end.
        ApiKey::DescribeConfigs => {
            w.put_slice(&body);
            w.put_i8(0);
        }
        // v0: no generation (a simple commit); v1 has one and a commit timestamp per partition;
        // v2 replaced the timestamps with one retention time (-1: the broker's).
        ApiKey::OffsetCommit => {
            r.copy_string(&mut w).map_err(&bad)?; // group_id
            if version == 0 {
                w.put_i32(-1);
                w.put_i16(0); // member_id ""
            } else {
                w.put_slice(r.take(4).map_err(&bad)?); // generation_id
                r.copy_string(&mut w).map_err(&bad)?; // member_id
            }
            w.put_i64(-1);
            r.array(&mut w, |r, w| {
                r.copy_string(w)?;
                r.array(w, |r, w| {
                    w.put_slice(r.take(12)?); // partition, offset
                    if version == 1 {
                        r.take(8)?; // commit_timestamp
                    }
                    r.copy_string(w) // metadata
                })
            })
            .map_err(&bad)?;
        }
        // v1 added the resource pattern type after the resource name.
        ApiKey::CreateAcls => {
            r.array(&mut w, |r, w| {
                w.put_slice(r.take(1)?);
                r.copy_string(w)?;
                w.put_i8(LITERAL);
                r.copy_string(w)?; // principal
                r.copy_string(w)?; // host
                w.put_slice(r.take(2)?); // operation, permission
                Ok(())
            })
            .map_err(&bad)?;
        }
        ApiKey::DescribeAcls => {
            acl_filter(&mut r, &mut w).map_err(&bad)?;
        }
        ApiKey::DeleteAcls => {
            r.array(&mut w, acl_filter).map_err(&bad)?;
        }
        // v1 is the same fields in the flexible encoding (compact arrays and strings, tags).
        ApiKey::WriteTxnMarkers => {
            r.compact_array(&mut w, |r, w| {
                w.put_slice(r.take(11)?); // producer_id, producer_epoch, transaction_result
                r.compact_array(w, |r, w| {
                    r.compact_string(w)?;
                    r.compact_array(w, |r, w| {
                        w.put_slice(r.take(4)?);
                        Ok(())
                    })?;
                    w.put_u8(0); // tagged fields
                    Ok(())
                })?;
                w.put_slice(r.take(4)?); // coordinator_epoch
                w.put_u8(0);
                Ok(())
            })
            .map_err(&bad)?;
            w.put_u8(0);
        }
        // Same bytes as the bridge version.
        ApiKey::DescribeLogDirs | ApiKey::DeleteTopics | ApiKey::OffsetFetch | ApiKey::CreateTopics => {
            w.put_slice(&body);
        }
        _ => return Err(RequestError::UnsupportedVersion(api as i16, version)),
    }
    Ok(w.freeze())
}

fn acl_filter(r: &mut Reader<'_>, w: &mut BytesMut) -> Result<(), Short> {
    w.put_slice(r.take(1)?); // resource type
    r.copy_string(w)?; // resource name (nullable)
    w.put_i8(LITERAL);
    r.copy_string(w)?; // principal
    r.copy_string(w)?; // host
    w.put_slice(r.take(2)?); // operation, permission
    Ok(())
}

/// The answer's body, encoded at the bridge version, rewritten as `version`'s.
pub fn downgrade_response(api: ApiKey, version: i16, body: &[u8]) -> Result<Bytes, String> {
    let mut r = Reader::new(body);
    let mut w = BytesMut::with_capacity(body.len());
    let short = |_| format!("{api:?} v{version}: short answer");
    match api {
        // v0 has no throttle time (v1 appended it); v0–1 no log append time (v2 added it).
        ApiKey::Produce => {
            r.array(&mut w, |r, w| {
                r.copy_string(w)?;
                r.array(w, |r, w| {
                    w.put_slice(r.take(14)?); // partition, error_code, base_offset
                    let log_append_time = r.take(8)?;
                    if version >= 2 {
                        w.put_slice(log_append_time);
                    }
                    Ok(())
                })
            })
            .map_err(short)?;
            let throttle = r.take(4).map_err(short)?;
            if version >= 1 {
                w.put_slice(throttle);
            }
        }
        // v0 answered a list of offsets: the one offset, unless there is none.
        ApiKey::ListOffsets => {
            r.array(&mut w, |r, w| {
                r.copy_string(w)?;
                r.array(w, |r, w| {
                    w.put_slice(r.take(6)?); // partition, error_code
                    r.take(8)?; // timestamp
                    let offset = r.i64()?;
                    if offset >= 0 {
                        w.put_i32(1);
                        w.put_i64(offset);
                    } else {
                        w.put_i32(0);
                    }
                    Ok(())
                })
            })
            .map_err(short)?;
        }
        // v2 added the throttle time in front; v1 added the leader epoch.
        ApiKey::OffsetForLeaderEpoch => {
            r.take(4).map_err(short)?;
            r.array(&mut w, |r, w| {
                r.copy_string(w)?;
                r.array(w, |r, w| {
                    w.put_slice(r.take(6)?); // error_code, partition
                    let epoch = r.take(4)?;
                    if version >= 1 {
                        w.put_slice(epoch);
                    }
                    w.put_slice(r.take(8)?); // end_offset
                    Ok(())
                })
            })
            .map_err(short)?;
        }
        // v2 added the throttle time in front; v1 the error message.
        ApiKey::CreateTopics => {
            r.take(4).map_err(short)?;
            r.array(&mut w, |r, w| {
                r.copy_string(w)?;
                w.put_slice(r.take(2)?);
                if version >= 1 {
                    r.copy_string(w)
                } else {
                    r.skip_string()
                }
            })
            .map_err(short)?;
        }
        // v1 added the throttle time in front.
        ApiKey::DeleteTopics => {
            r.take(4).map_err(short)?;
            w.put_slice(r.rest());
        }
        // v1 replaced is_default by the config source, and added synonyms.
        ApiKey::DescribeConfigs => {
            w.put_slice(r.take(4).map_err(short)?); // throttle
            r.array(&mut w, |r, w| {
                w.put_slice(r.take(2)?); // error_code
                r.copy_string(w)?; // error_message
                w.put_slice(r.take(1)?); // resource_type
                r.copy_string(w)?; // resource_name
                r.array(w, |r, w| {
                    r.copy_string(w)?; // name
                    r.copy_string(w)?; // value
                    w.put_slice(r.take(1)?); // read_only
                    let source = r.take(1)?[0] as i8;
                    w.put_i8(i8::from(source == 5)); // DEFAULT_CONFIG
                    w.put_slice(r.take(1)?); // is_sensitive
                    r.array(&mut BytesMut::new(), |r, _| {
                        r.skip_string()?;
                        r.skip_string()?;
                        r.take(1).map(drop)
                    })
                })
            })
            .map_err(short)?;
        }
        // v1 added the resource pattern type.
        ApiKey::DescribeAcls => {
            w.put_slice(r.take(6).map_err(short)?); // throttle, error_code
            r.copy_string(&mut w).map_err(short)?;
            r.array(&mut w, |r, w| {
                w.put_slice(r.take(1)?);
                r.copy_string(w)?;
                r.take(1)?; // pattern type
                r.array(w, |r, w| {
                    r.copy_string(w)?;
                    r.copy_string(w)?;
                    w.put_slice(r.take(2)?);
                    Ok(())
                })
            })
            .map_err(short)?;
        }
        ApiKey::DeleteAcls => {
            w.put_slice(r.take(4).map_err(short)?); // throttle
            r.array(&mut w, |r, w| {
                w.put_slice(r.take(2)?);
                r.copy_string(w)?;
                r.array(w, |r, w| {
                    w.put_slice(r.take(2)?);
                    r.copy_string(w)?; // error_message
                    w.put_slice(r.take(1)?); // resource type
                    r.copy_string(w)?; // resource name
                    r.take(1)?; // pattern type
                    r.copy_string(w)?; // principal
                    r.copy_string(w)?; // host
                    w.put_slice(r.take(2)?);
                    Ok(())
                })
            })
            .map_err(short)?;
        }
        // v1 is flexible: compact arrays and strings, tagged fields to drop.
        ApiKey::WriteTxnMarkers => {
            r.uncompact_array(&mut w, |r, w| {
                w.put_slice(r.take(8)?); // producer_id
                r.uncompact_array(w, |r, w| {
                    r.uncompact_string(w)?;
                    r.uncompact_array(w, |r, w| {
                        w.put_slice(r.take(6)?); // partition_index, error_code
                        r.skip_tags()
                    })?;
                    r.skip_tags()
                })?;
                r.skip_tags()
            })
            .map_err(short)?;
            r.skip_tags().map_err(short)?;
        }
        // Same bytes as the bridge version.
        ApiKey::DescribeLogDirs | ApiKey::OffsetCommit | ApiKey::OffsetFetch | ApiKey::CreateAcls => {
            return Ok(Bytes::copy_from_slice(body));
        }
        _ => return Err(format!("{api:?} v{version} has no bridge")),
    }
    if !r.done() {
        return Err(format!("{api:?} v{version}: {} bytes left over", r.remaining()));
    }
    Ok(w.freeze())
}

/// The input ran out.
#[derive(Debug)]
pub struct Short;

fn put_uvarint(w: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        w.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    w.put_u8(v as u8);
}

/// A cursor over non-flexible wire fields.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Short> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or(Short)?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn i32(&mut self) -> Result<i32, Short> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Result<i64, Short> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// A (nullable) string: i16 length, -1 for null.
    fn string(&mut self) -> Result<&'a [u8], Short> {
        let at = self.pos;
        let b = self.take(2)?;
        let len = i16::from_be_bytes([b[0], b[1]]);
        if len > 0 {
            self.take(len as usize)?;
        }
        Ok(&self.buf[at..self.pos])
    }

    fn copy_string(&mut self, w: &mut BytesMut) -> Result<(), Short> {
        w.put_slice(self.string()?);
        Ok(())
    }

    fn skip_string(&mut self) -> Result<(), Short> {
        self.string().map(drop)
    }

    /// An array (i32 count, -1 for null): the count is copied, then `item` runs per element.
    fn array(
        &mut self,
        w: &mut BytesMut,
        mut item: impl FnMut(&mut Reader<'a>, &mut BytesMut) -> Result<(), Short>,
    ) -> Result<(), Short> {
        let count = self.i32()?;
        w.put_i32(count);
        // Each element is at least a byte: a count past what is left is malformed, not a loop.
        if count > 0 && count as usize > self.remaining() {
            return Err(Short);
        }
        for _ in 0..count.max(0) {
            item(self, w)?;
        }
        Ok(())
    }

    fn uvarint(&mut self) -> Result<u64, Short> {
        let mut v = 0u64;
        for shift in (0..35).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Short)
    }

    /// A non-flexible array (i32 count) written as a compact one (uvarint count + 1).
    fn compact_array(
        &mut self,
        w: &mut BytesMut,
        mut item: impl FnMut(&mut Reader<'a>, &mut BytesMut) -> Result<(), Short>,
    ) -> Result<(), Short> {
        let count = self.i32()?;
        if count > 0 && count as usize > self.remaining() {
            return Err(Short);
        }
        put_uvarint(w, if count < 0 { 0 } else { count as u64 + 1 });
        for _ in 0..count.max(0) {
            item(self, w)?;
        }
        Ok(())
    }

    /// A non-flexible string written as a compact one.
    fn compact_string(&mut self, w: &mut BytesMut) -> Result<(), Short> {
        let b = self.take(2)?;
        let len = i16::from_be_bytes([b[0], b[1]]);
        if len < 0 {
            put_uvarint(w, 0);
            return Ok(());
        }
        put_uvarint(w, len as u64 + 1);
        w.put_slice(self.take(len as usize)?);
        Ok(())
    }

    /// A compact array written as a non-flexible one.
    fn uncompact_array(
        &mut self,
        w: &mut BytesMut,
        mut item: impl FnMut(&mut Reader<'a>, &mut BytesMut) -> Result<(), Short>,
    ) -> Result<(), Short> {
        let n = self.uvarint()?;
        let count = i64::try_from(n).map_err(|_| Short)? - 1;
        if count > self.remaining() as i64 {
            return Err(Short);
        }
        w.put_i32(count as i32);
        for _ in 0..count.max(0) {
            item(self, w)?;
        }
        Ok(())
    }

    /// A compact string written as a non-flexible one.
    fn uncompact_string(&mut self, w: &mut BytesMut) -> Result<(), Short> {
        let n = self.uvarint()?;
        if n == 0 {
            w.put_i16(-1);
            return Ok(());
        }
        let len = usize::try_from(n - 1).map_err(|_| Short)?;
        let s = self.take(len)?;
        w.put_i16(i16::try_from(len).map_err(|_| Short)?);
        w.put_slice(s);
        Ok(())
    }

    /// Tagged fields: skipped (the old version has none).
    fn skip_tags(&mut self) -> Result<(), Short> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let len = usize::try_from(self.uvarint()?).map_err(|_| Short)?;
            self.take(len)?;
        }
        Ok(())
    }

    fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

    use super::*;

    /// Builds old wire bytes.
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
        fn bytes(self) -> Bytes {
            self.0.freeze()
        }
    }

    fn upgraded<T: Decodable>(api: ApiKey, version: i16, body: Bytes) -> T {
        let bridge = bridge(api, version).expect("bridged");
        let mut b = upgrade_request(api, version, body).expect("upgrades");
        let decoded = T::decode(&mut b, bridge).expect("decodes at the bridge version");
        assert!(b.is_empty(), "{api:?} v{version}: {} bytes not decoded", b.len());
        decoded
    }

    fn downgraded<T: Encodable>(api: ApiKey, version: i16, response: &T) -> Bytes {
        let mut b = BytesMut::new();
        response.encode(&mut b, bridge(api, version).expect("bridged")).expect("encodes");
        downgrade_response(api, version, &b).expect("downgrades")
    }

    fn name(s: &'static str) -> TopicName {
        TopicName(StrBytes::from_static_str(s))
    }

    #[test]
    fn bridges_cover_kafka_3_9_minimums_and_no_current_version() {
        for (api, min, bridge) in BRIDGED {
            assert!(min < bridge, "{api:?}");
            let (advertised_min, _) = crate::api::versions::supported(*api as i16).expect("advertised");
            assert_eq!(advertised_min, *min, "{api:?}");
            assert_eq!(super::bridge(*api, *bridge), None);
        }
    }

    #[test]
    fn produce_v0_to_v2() {
        for version in 0..3 {
            let body = W::default().i16(-1).i32(500).i32(1).s("t").i32(1).i32(2).i32(3).bytes();
            let mut body = body.to_vec();
            body.extend_from_slice(b"abc");
            let r: ProduceRequest = upgraded(ApiKey::Produce, version, Bytes::from(body));
            assert_eq!((r.transactional_id, r.acks, r.timeout_ms), (None, -1, 500));
            let p = &r.topic_data[0].partition_data[0];
            assert_eq!((p.index, p.records.as_deref()), (2, Some(&b"abc"[..])));
        }
        let response = ProduceResponse::default().with_throttle_time_ms(9).with_responses(vec![
            produce_response::TopicProduceResponse::default().with_name(name("t")).with_partition_responses(
                vec![produce_response::PartitionProduceResponse::default()
                    .with_index(2)
                    .with_base_offset(40)
                    .with_log_append_time_ms(77)],
            ),
        ]);
        let part = W::default().i32(1).s("t").i32(1).i32(2).i16(0).i64(40);
        assert_eq!(downgraded(ApiKey::Produce, 0, &response), part.bytes());
        let part = W::default().i32(1).s("t").i32(1).i32(2).i16(0).i64(40);
        assert_eq!(downgraded(ApiKey::Produce, 1, &response), part.i32(9).bytes());
        let part = W::default().i32(1).s("t").i32(1).i32(2).i16(0).i64(40).i64(77);
        assert_eq!(downgraded(ApiKey::Produce, 2, &response), part.i32(9).bytes());
    }

    #[test]
    fn list_offsets_v0() {
        let body = W::default().i32(-1).i32(1).s("t").i32(1).i32(0).i64(-1).i32(5).bytes();
        let r: ListOffsetsRequest = upgraded(ApiKey::ListOffsets, 0, body);
        assert_eq!(r.topics[0].partitions[0].timestamp, -1);
        let answer = |offset| {
            ListOffsetsResponse::default().with_topics(vec![
                list_offsets_response::ListOffsetsTopicResponse::default()
                    .with_name(name("t"))
                    .with_partitions(vec![list_offsets_response::ListOffsetsPartitionResponse::default()
                        .with_partition_index(0)
                        .with_offset(offset)]),
            ])
        };
        let head = || W::default().i32(1).s("t").i32(1).i32(0).i16(0);
        assert_eq!(downgraded(ApiKey::ListOffsets, 0, &answer(42)), head().i32(1).i64(42).bytes());
        assert_eq!(downgraded(ApiKey::ListOffsets, 0, &answer(-1)), head().i32(0).bytes());
    }

    #[test]
    fn offset_for_leader_epoch_v0_v1() {
        for version in 0..2 {
            let body = W::default().i32(1).s("t").i32(1).i32(3).i32(7).bytes();
            let r: OffsetForLeaderEpochRequest = upgraded(ApiKey::OffsetForLeaderEpoch, version, body);
            let p = &r.topics[0].partitions[0];
            assert_eq!((p.partition, p.current_leader_epoch, p.leader_epoch), (3, -1, 7));
            let response = OffsetForLeaderEpochResponse::default().with_topics(vec![
                offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default()
                    .with_topic(name("t"))
                    .with_partitions(vec![offset_for_leader_epoch_response::EpochEndOffset::default()
                        .with_partition(3)
                        .with_leader_epoch(7)
                        .with_end_offset(100)]),
            ]);
            let w = W::default().i32(1).s("t").i32(1).i16(0).i32(3);
            let w = if version == 1 { w.i32(7) } else { w };
            assert_eq!(downgraded(ApiKey::OffsetForLeaderEpoch, version, &response), w.i64(100).bytes());
        }
    }

    #[test]
    fn create_and_delete_topics_v0() {
        let topic = |w: W| w.i32(1).s("t").i32(3).i16(1).i32(0).i32(0).i32(1000);
        let r: CreateTopicsRequest = upgraded(ApiKey::CreateTopics, 0, topic(W::default()).bytes());
        assert_eq!((r.topics[0].num_partitions, r.validate_only, r.timeout_ms), (3, false, 1000));
        let r: CreateTopicsRequest = upgraded(ApiKey::CreateTopics, 1, topic(W::default()).i8(1).bytes());
        assert!(r.validate_only);
        let response = CreateTopicsResponse::default().with_throttle_time_ms(5).with_topics(vec![
            create_topics_response::CreatableTopicResult::default()
                .with_name(name("t"))
                .with_error_code(36)
                .with_error_message(Some(StrBytes::from_static_str("exists"))),
        ]);
        assert_eq!(
            downgraded(ApiKey::CreateTopics, 0, &response),
            W::default().i32(1).s("t").i16(36).bytes()
        );
        let v1 = W::default().i32(1).s("t").i16(36).s("exists").bytes();
        assert_eq!(downgraded(ApiKey::CreateTopics, 1, &response), v1);
        let r: DeleteTopicsRequest =
            upgraded(ApiKey::DeleteTopics, 0, W::default().i32(1).s("t").i32(100).bytes());
        assert_eq!(r.topic_names[0].0.as_str(), "t");
        let response = DeleteTopicsResponse::default().with_throttle_time_ms(5).with_responses(vec![
            delete_topics_response::DeletableTopicResult::default().with_name(Some(name("t"))),
        ]);
        assert_eq!(downgraded(ApiKey::DeleteTopics, 0, &response), W::default().i32(1).s("t").i16(0).bytes());
    }

    #[test]
    fn describe_configs_v0() {
        let body = W::default().i32(1).i8(2).s("t").i32(-1).bytes();
        let r: DescribeConfigsRequest = upgraded(ApiKey::DescribeConfigs, 0, body);
        assert!(!r.include_synonyms && r.resources[0].configuration_keys.is_none());
        let config = |key: &'static str, source: i8| {
            describe_configs_response::DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_static_str(key))
                .with_value(Some(StrBytes::from_static_str("1")))
                .with_config_source(source)
                .with_synonyms(vec![describe_configs_response::DescribeConfigsSynonym::default()])
        };
        let response = DescribeConfigsResponse::default().with_results(vec![
            describe_configs_response::DescribeConfigsResult::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("t"))
                .with_configs(vec![config("a", 5), config("b", 1)]),
        ]);
        let entry = |w: W, key: &str, default: i8| w.s(key).s("1").i8(0).i8(default).i8(0);
        let w = W::default().i32(0).i32(1).i16(0).s("").i8(2).s("t").i32(2);
        let expected = entry(entry(w, "a", 1), "b", 0).bytes();
        assert_eq!(downgraded(ApiKey::DescribeConfigs, 0, &response), expected);
    }

    #[test]
    fn offset_commit_v0_v1_and_offset_fetch_v0() {
        let v0 = W::default().s("g").i32(1).s("t").i32(1).i32(0).i64(48).s("m").bytes();
        let r: OffsetCommitRequest = upgraded(ApiKey::OffsetCommit, 0, v0);
        assert_eq!((r.generation_id_or_member_epoch, r.member_id.as_str()), (-1, ""));
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.committed_offset, p.committed_metadata.as_deref()), (48, Some("m")));
        let v1 =
            W::default().s("g").i32(4).s("member").i32(1).s("t").i32(1).i32(0).i64(48).i64(-1).s("").bytes();
        let r: OffsetCommitRequest = upgraded(ApiKey::OffsetCommit, 1, v1);
        assert_eq!((r.generation_id_or_member_epoch, r.member_id.as_str()), (4, "member"));
        assert_eq!(r.topics[0].partitions[0].committed_offset, 48);
        let r: OffsetFetchRequest = upgraded(ApiKey::OffsetFetch, 0, W::default().s("g").i32(-1).bytes());
        assert_eq!(r.group_id.0.as_str(), "g");
    }

    #[test]
    fn write_txn_markers_v0() {
        let body = W::default().i32(1).i64(7).i16(2).i8(1).i32(1).s("t").i32(2).i32(0).i32(3).i32(5).bytes();
        let r: WriteTxnMarkersRequest = upgraded(ApiKey::WriteTxnMarkers, 0, body);
        let m = &r.markers[0];
        assert_eq!(
            (m.producer_id.0, m.producer_epoch, m.transaction_result, m.coordinator_epoch),
            (7, 2, true, 5)
        );
        assert_eq!((m.topics[0].name.0.as_str(), m.topics[0].partition_indexes.clone()), ("t", vec![0, 3]));
        let response = WriteTxnMarkersResponse::default().with_markers(vec![
            write_txn_markers_response::WritableTxnMarkerResult::default()
                .with_producer_id(ProducerId(7))
                .with_topics(vec![write_txn_markers_response::WritableTxnMarkerTopicResult::default()
                    .with_name(name("t"))
                    .with_partitions(vec![
                        write_txn_markers_response::WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(3)
                            .with_error_code(47),
                    ])]),
        ]);
        let expected = W::default().i32(1).i64(7).i32(1).s("t").i32(1).i32(3).i16(47).bytes();
        assert_eq!(downgraded(ApiKey::WriteTxnMarkers, 0, &response), expected);
    }

    /// The header of an old version is the non-flexible one, even where the codec (knowing
    /// only flexible versions of the API) would say otherwise: WriteTxnMarkers v0.
    #[test]
    fn old_versions_have_non_flexible_headers() {
        let body = W::default().i32(1).i64(99).i16(0).i8(1).i32(1).s("t").i32(1).i32(0).i32(0).bytes();
        let frame = W::default().i16(27).i16(0).i32(1).i16(-1).bytes();
        let frame = [&frame[..], &body[..]].concat();
        let r = crate::api::decode::decode_frame(Bytes::from(frame));
        assert!(r.is_ok(), "{r:?}");
    }

    #[test]
    fn acls_v0() {
        let creation = W::default().i32(1).i8(2).s("t").s("User:a").s("*").i8(3).i8(3).bytes();
        let r: CreateAclsRequest = upgraded(ApiKey::CreateAcls, 0, creation);
        assert_eq!(r.creations[0].resource_pattern_type, LITERAL);
        let filter = || W::default().i8(2).s("t").s("User:a").s("*").i8(3).i8(3);
        let r: DescribeAclsRequest = upgraded(ApiKey::DescribeAcls, 0, filter().bytes());
        assert_eq!(r.pattern_type_filter, LITERAL);
        let mut many = W::default().i32(1).bytes().to_vec();
        many.extend_from_slice(&filter().bytes());
        let r: DeleteAclsRequest = upgraded(ApiKey::DeleteAcls, 0, Bytes::from(many));
        assert_eq!(r.filters[0].pattern_type_filter, LITERAL);
        let response = DescribeAclsResponse::default().with_resources(vec![
            describe_acls_response::DescribeAclsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("t"))
                .with_pattern_type(3)
                .with_acls(vec![describe_acls_response::AclDescription::default()
                    .with_principal(StrBytes::from_static_str("User:a"))
                    .with_host(StrBytes::from_static_str("*"))
                    .with_operation(3)
                    .with_permission_type(3)]),
        ]);
        let expected = W::default()
            .i32(0)
            .i16(0)
            .s("")
            .i32(1)
            .i8(2)
            .s("t")
            .i32(1)
            .s("User:a")
            .s("*")
            .i8(3)
            .i8(3)
            .bytes();
        assert_eq!(downgraded(ApiKey::DescribeAcls, 0, &response), expected);
    }

    /// Random bytes as every bridged request, and as an answer to rewrite: errors, never a
    /// panic (the broker's bounded fuzzing reaches these through `decode_frame` too).
    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for (api, min, bridge) in BRIDGED {
            for version in *min..*bridge {
                for _ in 0..300 {
                    let len = (next() % 64) as usize;
                    let bytes: Vec<u8> = (0..len).map(|_| (next() % 7) as u8).collect();
                    let _ = upgrade_request(*api, version, Bytes::from(bytes.clone()));
                    let _ = downgrade_response(*api, version, &bytes);
                    let _ = message_set::up_convert(&bytes);
                    let _ = message_set::down_convert(&bytes, (version % 2) as i8);
                }
            }
        }
    }

    #[test]
    fn truncated_old_requests_are_malformed_not_panics() {
        for (api, min, bridge) in BRIDGED {
            for version in *min..*bridge {
                for cut in [&[][..], &[0, 0, 0, 9][..], &[0xff, 0xff, 0xff, 0xff, 0, 1][..]] {
                    let r = upgrade_request(*api, version, Bytes::copy_from_slice(cut));
                    if let Ok(mut b) = r {
                        // Passed through as is: the codec must refuse it instead.
                        let _ = ProduceRequest::decode(&mut b, 3);
                    }
                }
            }
        }
    }
}
