//! Which partition a record goes to, as the Java client decides it: keyed records by Kafka's
//! murmur2 (`Utils.murmur2`, then `toPositive(hash) % partitions`), so a key lands where a Java
//! producer would put it; keyless records stick to one partition per batch and move on
//! round-robin when the batch is closed (the Java client's "uniform sticky" idea without its
//! byte accounting), which keeps batches large and still spreads load.

/// Kafka's murmur2 (32-bit, seed 0x9747b28c), bit for bit: wrapping `i32` arithmetic and
/// logical shifts, like the Java code.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len() as u32;
    let mut h: u32 = SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java client's default partitioner picks for a key.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// Chooses partitions for one topic: murmur2 for keys, sticky round-robin for the rest.
#[derive(Debug, Clone)]
pub struct Partitioner {
    partitions: i32,
    sticky: i32,
}

impl Partitioner {
    /// `start` spreads several producers over different first partitions (e.g. a random seed).
    pub fn new(partitions: i32, start: u32) -> Partitioner {
        assert!(partitions > 0, "a topic has at least one partition");
        Partitioner { partitions, sticky: (start % partitions as u32) as i32 }
    }

    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    pub fn partition(&self, key: Option<&[u8]>) -> i32 {
        match key {
            Some(k) => partition_for_key(k, self.partitions),
            None => self.sticky,
        }
    }

    /// Called when the keyless batch being filled is closed: the next one goes elsewhere.
    pub fn batch_closed(&mut self) {
        self.sticky = (self.sticky + 1) % self.partitions;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From apache/kafka `clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java`,
    /// `testMurmur2`.
    #[test]
    fn murmur2_matches_java() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ];
        for (input, want) in cases {
            assert_eq!(murmur2(input), want, "murmur2({})", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn keys_hash_to_the_java_partition() {
        // toPositive(-790332482) = 1357151166; 1357151166 % 10 = 6.
        assert_eq!(partition_for_key(b"foobar", 10), 6);
        // 479470107 % 7 = 2.
        assert_eq!(partition_for_key(b"abc", 7), 479_470_107 % 7);
        assert_eq!(partition_for_key(b"anything", 1), 0);
    }

    #[test]
    fn keyless_records_stick_then_rotate() {
        let mut p = Partitioner::new(3, 5);
        assert_eq!(p.partition(None), 2);
        assert_eq!(p.partition(None), 2);
        p.batch_closed();
        assert_eq!(p.partition(None), 0);
        p.batch_closed();
        p.batch_closed();
        assert_eq!(p.partition(None), 2);
        assert_eq!(p.partition(Some(b"foobar")), partition_for_key(b"foobar", 3));
    }
}
