//! Produce batches received straight into the stage's memory (issue 18): a large Produce
//! request for one partition has its record bytes read from the socket into a landing buffer
//! (`riptide_engine::io::direct::LandingBuf`), placed at the block phase the partition's direct
//! stage ends at, which the stage then takes over instead of copying the batch.
//!
//! The reader sees a frame's start, finds where its records begin (`plan`, a parser of the
//! request's fields up to them, nothing more), reads the records into the landing buffer and
//! the few bytes after them into its ordinary buffer. The request is then decoded from a
//! frame with an empty record set in their place (`frame_without_records`, a copy of the
//! header only) and the landed bytes are put back in (`api::handle`).
//!
//! Where the records go is a hint: the append position each partition's owner published
//! after its last append (`metrics::LandingHints`), moved past the connection's own requests
//! the owner has not done with yet (`net::connection`'s `Track`, counted by
//! `metrics::LandingMark`). If it is stale, the stage copies the batch as it would any other.
//!
//! Only a request for one partition lands; one for several (a producer writing many
//! partitions of this broker) is read and copied as before.

use bytes::{Bytes, BytesMut};

/// Frames smaller than this are read as usual: landing costs an extra read or two per
/// request, which pays only when the copy it saves is large.
pub const LANDING_MIN_BYTES: usize = 128 * 1024;

/// The topic of a planned request: by name up to v12 (where in the frame's bytes it is, so
/// that following every request allocates nothing), by id from v13.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicRef {
    Name(std::ops::Range<usize>),
    Id([u8; 16]),
}

impl TopicRef {
    /// The name's bytes in `frame` (the bytes `plan` read), or the id's.
    pub fn bytes<'a>(&'a self, frame: &'a [u8]) -> &'a [u8] {
        match self {
            TopicRef::Name(range) => &frame[range.clone()],
            TopicRef::Id(id) => id,
        }
    }
}

/// Where the records of a one-partition Produce frame are (offsets into the frame, after its
/// size prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub topic: TopicRef,
    pub partition: i32,
    /// The record set's length field.
    pub len_at: usize,
    /// The record set's first byte.
    pub records_at: usize,
    pub records_len: usize,
    /// Compact (flexible-version) encodings.
    flexible: bool,
}

impl Plan {
    /// Where the record set ends.
    pub fn records_end(&self) -> usize {
        self.records_at + self.records_len
    }
}

/// A cursor over the frame's first bytes; every read fails past them.
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.buf.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn uvarint(&mut self) -> Option<u32> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let b = *self.take(1)?.first()?;
            value |= u32::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// A string or nullable string: int16 length, or compact (length + 1, 0 = null).
    fn string(&mut self, flexible: bool) -> Option<Option<&[u8]>> {
        let len = if flexible {
            match self.uvarint()? {
                0 => return Some(None),
                n => n as usize - 1,
            }
        } else {
            match self.i16()? {
                -1 => return Some(None),
                n if n < 0 => return None,
                n => n as usize,
            }
        };
        self.take(len).map(Some)
    }

    fn array_len(&mut self, flexible: bool) -> Option<i64> {
        if flexible {
            self.uvarint().map(|n| i64::from(n) - 1)
        } else {
            self.i32().map(i64::from)
        }
    }

    fn skip_tagged_fields(&mut self) -> Option<()> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Some(())
    }
}

/// The records of a Produce frame of `size` bytes whose first bytes are `head`, if it is a
/// request (v3 to v13) for exactly one partition whose record set ends the frame but for its
/// tagged fields, and `head` holds everything up to the record set. `None` for anything else,
/// malformed frames included: those are read and refused as usual.
pub fn plan(head: &[u8], size: usize) -> Option<Plan> {
    let mut c = Cursor { buf: head, at: 0 };
    let (key, version) = (c.i16()?, c.i16()?);
    if key != 0 || !(3..=13).contains(&version) {
        return None;
    }
    let flexible = version >= 9;
    c.i32()?; // correlation id
    c.string(false)?; // client id: never compact
    if flexible {
        c.skip_tagged_fields()?;
    }
    c.string(flexible)?; // transactional id
    c.i16()?; // acks
    c.i32()?; // timeout
    if c.array_len(flexible)? != 1 {
        return None;
    }
    let topic = if version >= 13 {
        let id: [u8; 16] = c.take(16)?.try_into().ok()?;
        TopicRef::Id(id)
    } else {
        let len = std::str::from_utf8(c.string(flexible)??).ok()?.len();
        TopicRef::Name(c.at - len..c.at)
    };
    if c.array_len(flexible)? != 1 {
        return None;
    }
    let partition = c.i32()?;
    let len_at = c.at;
    let records_len =
        if flexible { (c.uvarint()? as usize).checked_sub(1)? } else { usize::try_from(c.i32()?).ok()? };
    let records_at = c.at;
    // After the records only tagged fields (partition, topic, request) may follow.
    let trailing = size.checked_sub(records_at)?.checked_sub(records_len)?;
    if trailing > if flexible { 64 } else { 0 } {
        return None;
    }
    Some(Plan { topic, partition, len_at, records_at, records_len, flexible })
}

/// The frame with an empty record set in place of the records: `head` is the frame up to
/// the record set, `tail` what follows it. Decoded as usual; the landed bytes go back in.
pub fn frame_without_records(plan: &Plan, head: &[u8], tail: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(plan.len_at + 4 + tail.len());
    out.extend_from_slice(&head[..plan.len_at]);
    if plan.flexible {
        out.extend_from_slice(&[1]); // compact bytes: length + 1
    } else {
        out.extend_from_slice(&0i32.to_be_bytes());
    }
    out.extend_from_slice(tail);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, RequestHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn frame(version: i16, topics: usize, partitions: usize, records: &[u8]) -> Vec<u8> {
        let header = RequestHeader::default()
            .with_request_api_key(0)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("landing-test")));
        let topic_data = (0..topics)
            .map(|t| {
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(format!("topic-{t}"))))
                    .with_topic_id(uuid::Uuid::from_bytes([t as u8 + 1; 16]))
                    .with_partition_data(
                        (0..partitions)
                            .map(|p| {
                                PartitionProduceData::default()
                                    .with_index(p as i32 + 3)
                                    .with_records(Some(Bytes::copy_from_slice(records)))
                            })
                            .collect(),
                    )
            })
            .collect();
        let request = ProduceRequest::default()
            .with_transactional_id(Some(kafka_protocol::messages::TransactionalId(
                StrBytes::from_static_str("tx"),
            )))
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(topic_data);
        let header_version = if version >= 9 { 2 } else { 1 };
        let mut out = BytesMut::new();
        header.encode(&mut out, header_version).unwrap();
        request.encode(&mut out, version).unwrap();
        out.to_vec()
    }

    #[test]
    fn finds_the_records_of_every_version_and_refuses_the_rest() {
        let records: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        for version in 3..=13 {
            let f = frame(version, 1, 1, &records);
            let plan = plan(&f, f.len()).unwrap_or_else(|| panic!("v{version}"));
            assert_eq!(&f[plan.records_at..plan.records_end()], &records[..], "v{version}");
            assert_eq!(plan.partition, 3);
            let want: &[u8] = if version >= 13 { &[1; 16] } else { b"topic-0" };
            assert_eq!(plan.topic.bytes(&f), want);
            // Only the head is needed, and any shorter head is refused, never misread.
            assert_eq!(super::plan(&f[..plan.records_at], f.len()).as_ref(), Some(&plan));
            for cut in 0..plan.records_at {
                assert_eq!(super::plan(&f[..cut], f.len()), None, "v{version} cut {cut}");
            }
            // The frame without its records decodes to the same request with an empty set.
            let tail = &f[plan.records_end()..];
            let mut without = frame_without_records(&plan, &f, tail);
            let hv = if version >= 9 { 2 } else { 1 };
            use kafka_protocol::protocol::Decodable;
            RequestHeader::decode(&mut without, hv).unwrap();
            let r = ProduceRequest::decode(&mut without, version).unwrap();
            assert!(without.is_empty(), "v{version}: nothing left over");
            assert_eq!(r.topic_data.len(), 1);
            let p = &r.topic_data[0].partition_data[0];
            assert_eq!((p.index, p.records.as_deref()), (3, Some(&[][..])));
            // Two partitions or two topics: not planned.
            let two = frame(version, 1, 2, &records);
            assert_eq!(super::plan(&two, two.len()), None);
            let two = frame(version, 2, 1, &records);
            assert_eq!(super::plan(&two, two.len()), None);
            // A size that disagrees with the record set: not planned.
            assert_eq!(super::plan(&f, f.len() + 100), None);
            assert_eq!(super::plan(&f, plan.records_end() - 1), None);
        }
        let mut legacy = frame(3, 1, 1, &records);
        legacy[3] = 2;
        assert_eq!(plan(&legacy, legacy.len()), None, "legacy versions go the usual way");
        let mut fetch = frame(3, 1, 1, &records);
        fetch[1] = 1;
        assert_eq!(plan(&fetch, fetch.len()), None, "only Produce");
    }
}
