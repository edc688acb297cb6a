//! Message bodies. Each message is the producer's template (random bytes, zeros, or a payload
//! file cut or repeated to `messageSize`) with its first 16 bytes replaced by a stamp: the run
//! tag (8 bytes, random per run, so messages left in a topic by another run are never
//! mistaken for ours) and the intended send time (8 bytes, ns on the process clock,
//! little-endian). Consumers read the stamp back for end-to-end latency.

use std::path::Path;

use bytes::{BufMut, BytesMut};

use crate::error::{Error, Result};
pub use crate::rng::SplitMix64;
use crate::workload::Payload;

pub const STAMP_BYTES: usize = 16;

/// A tag that differs between runs (time and process id mixed).
pub fn run_tag() -> u64 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    SplitMix64::new(nanos ^ (u64::from(std::process::id()) << 32)).next_u64() | 1
}

/// The body every message of one producer starts from.
pub fn template(payload: &Payload, message_bytes: usize, seed: u64) -> Result<Vec<u8>> {
    assert!(message_bytes >= STAMP_BYTES, "messages carry a {STAMP_BYTES}-byte stamp");
    match payload {
        Payload::Zeros => Ok(vec![0; message_bytes]),
        Payload::Random => Ok(random_then_zeros(message_bytes, message_bytes, seed)),
        Payload::PartlyRandom(ratio) => {
            Ok(random_then_zeros(message_bytes, (message_bytes as f64 * ratio) as usize, seed))
        }
        Payload::File(path) => from_file(path, message_bytes),
    }
}

fn random_then_zeros(message_bytes: usize, random_bytes: usize, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(message_bytes + 8);
    while out.len() < random_bytes {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(random_bytes);
    out.resize(message_bytes, 0);
    out
}

fn from_file(path: &Path, message_bytes: usize) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, e))?;
    if bytes.is_empty() {
        return Err(Error::Invalid(format!("payload file {} is empty", path.display())));
    }
    Ok(bytes.iter().copied().cycle().take(message_bytes).collect())
}

/// Appends one message body: the stamp, then the template after its first 16 bytes.
pub fn put_message(out: &mut BytesMut, template: &[u8], run_tag: u64, intended_ns: u64) {
    debug_assert!(template.len() >= STAMP_BYTES);
    out.put_u64_le(run_tag);
    out.put_u64_le(intended_ns);
    out.put_slice(&template[STAMP_BYTES..]);
}

/// The intended send time stamped in `value`, if it is a message of run `run_tag`.
pub fn read_stamp(value: &[u8], run_tag: u64) -> Option<u64> {
    let tag = u64::from_le_bytes(value.get(0..8)?.try_into().ok()?);
    if tag != run_tag {
        return None;
    }
    Some(u64::from_le_bytes(value.get(8..16)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_foreign_messages_are_ignored() {
        let t = template(&Payload::Random, 100, 7).expect("random");
        let mut out = BytesMut::new();
        put_message(&mut out, &t, 42, 123_456_789);
        assert_eq!(out.len(), 100);
        assert_eq!(&out[16..], &t[16..]);
        assert_eq!(read_stamp(&out, 42), Some(123_456_789));
        assert_eq!(read_stamp(&out, 43), None, "another run's message");
        assert_eq!(read_stamp(&out[..10], 42), None, "too short");
    }

    #[test]
    fn templates_have_the_size_asked() {
        assert_eq!(template(&Payload::Zeros, 64, 0).expect("zeros"), vec![0; 64]);
        let a = template(&Payload::Random, 1000, 1).expect("random");
        let b = template(&Payload::Random, 1000, 2).expect("random");
        assert_eq!(a.len(), 1000);
        assert_ne!(a, b, "seeds differ");
        let half = template(&Payload::PartlyRandom(0.5), 1000, 1).expect("partly random");
        assert_eq!((&half[..500], &half[500..]), (&a[..500], &[0u8; 500][..]));
        let dir = std::env::temp_dir().join(format!("rb-payload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let file = dir.join("p.data");
        std::fs::write(&file, b"abc").expect("write");
        let t = template(&Payload::File(file.clone()), 20, 0).expect("file");
        assert_eq!(&t, b"abcabcabcabcabcabcab");
        std::fs::write(&file, b"").expect("write");
        assert!(template(&Payload::File(file), 20, 0).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
