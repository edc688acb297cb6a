//! Which topic a partition directory belongs to: Kafka's `partition.metadata` file (KIP-516),
//! `version: 0` and the topic id in Kafka's base64 form. Directories are named by topic name,
//! and a name outlives its topic: a broker that was away while a topic was deleted and
//! re-created under the same name finds the old topic's log in the new topic's place. Without
//! the id it would serve that log as the new topic's (a follower's truncation only cuts back
//! to where the leader epochs disagree, and both topics start at epoch 0). With it the stale
//! copy is deleted and the replica fetches the new topic from the start.

use std::io::{self, Write};
use std::path::Path;

use base64::Engine;

pub const FILE: &str = "partition.metadata";

/// What a partition directory says about its topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// No directory yet.
    NoDirectory,
    /// A directory without the file (written before this file existed, or a crash between
    /// creating the log and recording the id).
    Unrecorded,
    /// The directory belongs to this topic id.
    Topic(u128),
}

/// Reads the topic id recorded in `dir`. An unreadable or malformed file is an error: the
/// caller must not guess whose data it is.
pub fn read(dir: &Path) -> io::Result<Recorded> {
    let text = match std::fs::read_to_string(dir.join(FILE)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(if dir.exists() { Recorded::Unrecorded } else { Recorded::NoDirectory });
        }
        Err(e) => return Err(e),
    };
    parse(&text).map(Recorded::Topic).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, format!("malformed {} in {}", FILE, dir.display()))
    })
}

/// Records `topic_id` in `dir` crash-safely (temp file, fsync, rename, directory fsync); a
/// crash leaves either no file or the whole one.
pub fn record(dir: &Path, topic_id: u128) -> io::Result<()> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(encode(topic_id).as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

fn encode(topic_id: u128) -> String {
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(topic_id.to_be_bytes());
    format!("version: 0\ntopic_id: {id}\n")
}

fn parse(text: &str) -> Option<u128> {
    let mut lines = text.lines().map(str::trim);
    if lines.next()? != "version: 0" {
        return None;
    }
    let id = lines.next()?.strip_prefix("topic_id:")?.trim();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id).ok()?;
    Some(u128::from_be_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_kafka_form() {
        let id = 0x0123_4567_89ab_cdef_0011_2233_4455_6677u128;
        let text = encode(id);
        // Kafka's Uuid.toString: URL-safe base64 of the 16 bytes, no padding (22 characters).
        assert_eq!(text, "version: 0\ntopic_id: ASNFZ4mrze8AESIzRFVmdw\n");
        assert_eq!(parse(&text), Some(id));
        assert_eq!(parse("version: 1\ntopic_id: ASNFZ4mrze8AESIzRFVmdw\n"), None);
        assert_eq!(parse("version: 0\ntopic_id: short\n"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn reads_what_it_records() {
        let dir = std::env::temp_dir().join(format!("riptide-topic-id-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(read(&dir).expect("read"), Recorded::NoDirectory);
        std::fs::create_dir_all(&dir).expect("mkdir");
        assert_eq!(read(&dir).expect("read"), Recorded::Unrecorded);
        record(&dir, 42).expect("record");
        assert_eq!(read(&dir).expect("read"), Recorded::Topic(42));
        std::fs::write(dir.join(FILE), "garbage").expect("corrupt");
        assert!(read(&dir).is_err(), "a malformed file is not guessed at");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
