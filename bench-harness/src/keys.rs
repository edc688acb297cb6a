//! Record keys in the manner of the OpenMessaging Benchmark's key distributors, and the
//! partition each key lands on. OMB draws keys from a fixed pool of 10,000 random 7-byte
//! values written in unpadded base64url (10 characters); `KEY_ROUND_ROBIN` walks the pool in
//! order, `RANDOM_NANO` picks from it at random (OMB indexes by `System.nanoTime()`, which is
//! a random pick in effect; here a seeded generator, so runs repeat), and `NO_KEY` sends
//! keyless records, partitioned sticky (one partition per batch) as a Kafka producer does.
//! A keyed record goes to `murmur2(key) mod partitions`, the Java client's default
//! partitioner, so a broker sees the same per-partition batches an OMB run would give it, and
//! a compacted topic sees 10,000 distinct keys per producer pool.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use riptide_client::partition_for_key;

use crate::rng::SplitMix64;

/// Distinct keys in the pool (OMB's `UNIQUE_COUNT`).
pub const KEYS_UNIQUE: usize = 10_000;
/// Random bytes behind each key (OMB's `KEY_BYTE_SIZE`); the key is their base64url text.
const KEY_RANDOM_BYTES: usize = 7;
/// base64url of 7 bytes without padding.
pub const KEY_BYTES: usize = 10;

/// OMB's `keyDistributor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDistributor {
    NoKey,
    KeyRoundRobin,
    RandomNano,
}

impl KeyDistributor {
    pub fn parse(name: &str) -> Option<KeyDistributor> {
        match name {
            "NO_KEY" => Some(KeyDistributor::NoKey),
            "KEY_ROUND_ROBIN" => Some(KeyDistributor::KeyRoundRobin),
            "RANDOM_NANO" => Some(KeyDistributor::RandomNano),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KeyDistributor::NoKey => "NO_KEY",
            KeyDistributor::KeyRoundRobin => "KEY_ROUND_ROBIN",
            KeyDistributor::RandomNano => "RANDOM_NANO",
        }
    }

    pub fn is_keyed(self) -> bool {
        self != KeyDistributor::NoKey
    }
}

/// The keys of a run with each key's partition for one partition count.
#[derive(Debug)]
struct KeyPool {
    /// `KEYS_UNIQUE` keys of `KEY_BYTES` each, back to back.
    keys: Vec<u8>,
    /// Partition index (into the topic's partition list) of each key.
    partition_of: Vec<u32>,
}

impl KeyPool {
    fn new(seed: u64, partitions: usize) -> KeyPool {
        let mut rng = SplitMix64::new(seed);
        let mut keys = Vec::with_capacity(KEYS_UNIQUE * KEY_BYTES);
        let mut partition_of = Vec::with_capacity(KEYS_UNIQUE);
        for _ in 0..KEYS_UNIQUE {
            let raw = rng.next_u64().to_le_bytes();
            let start = keys.len();
            base64url(&raw[..KEY_RANDOM_BYTES], &mut keys);
            debug_assert_eq!(keys.len() - start, KEY_BYTES);
            partition_of.push(partition_for_key(&keys[start..], partitions as i32) as u32);
        }
        KeyPool { keys, partition_of }
    }

    /// The pool for (`seed`, `partitions`), built once per thread: thousands of producers on
    /// a thread (100 topics × 50 producers) would otherwise hold 140 KB each.
    fn shared(seed: u64, partitions: usize) -> Rc<KeyPool> {
        thread_local! {
            static POOLS: RefCell<HashMap<(u64, usize), Rc<KeyPool>>> = RefCell::new(HashMap::new());
        }
        POOLS.with(|pools| {
            pools
                .borrow_mut()
                .entry((seed, partitions))
                .or_insert_with(|| Rc::new(KeyPool::new(seed, partitions)))
                .clone()
        })
    }
}

/// One producer's cursor over the run's key pool.
#[derive(Debug, Clone)]
pub struct Keys {
    distributor: KeyDistributor,
    pool: Rc<KeyPool>,
    rng: SplitMix64,
    /// Pool index of the next message's key.
    next: usize,
}

impl Keys {
    /// A cursor over the pool seeded by `seed` (the same seed gives the same keys: producers
    /// of one run share it, as OMB's producers share one static pool) over `partitions`
    /// partitions; the cursor is seeded by `cursor_seed`.
    pub fn new(distributor: KeyDistributor, seed: u64, cursor_seed: u64, partitions: usize) -> Keys {
        assert!(partitions > 0, "a topic has at least one partition");
        let pool = KeyPool::shared(seed, partitions);
        let mut keys = Keys { distributor, pool, rng: SplitMix64::new(cursor_seed), next: 0 };
        keys.next = keys.draw();
        keys
    }

    fn draw(&mut self) -> usize {
        match self.distributor {
            KeyDistributor::NoKey => 0,
            // OMB increments before reading: its first key is index 1. The start does not
            // matter, but a cursor seeded per producer keeps producers out of lockstep.
            KeyDistributor::KeyRoundRobin => (self.next + 1) % KEYS_UNIQUE,
            KeyDistributor::RandomNano => (self.rng.next_u64() % KEYS_UNIQUE as u64) as usize,
        }
    }

    /// The partition index the next message goes to (`None`: keyless, the producer's choice).
    pub fn next_partition(&self) -> Option<usize> {
        self.distributor.is_keyed().then(|| self.pool.partition_of[self.next] as usize)
    }

    /// The next message's key (`None`: keyless); the cursor moves on.
    pub fn take(&mut self) -> Option<&[u8]> {
        if !self.distributor.is_keyed() {
            return None;
        }
        let index = self.next;
        self.next = self.draw();
        Some(&self.pool.keys[index * KEY_BYTES..(index + 1) * KEY_BYTES])
    }

    /// Starts the round-robin walk at `index` (producers of a topic start apart).
    pub fn start_at(&mut self, index: usize) {
        if self.distributor == KeyDistributor::KeyRoundRobin {
            self.next = index % KEYS_UNIQUE;
        }
    }
}

fn base64url(bytes: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_omb_shaped_and_land_where_the_java_partitioner_puts_them() {
        let mut out = Vec::new();
        base64url(b"\xfb\xff\x00abc\x01", &mut out);
        assert_eq!(out, b"-_8AYWJjAQ", "7 bytes: 10 characters, url alphabet, no padding");
        let mut k = Keys::new(KeyDistributor::KeyRoundRobin, 5, 0, 16);
        let first = k.next_partition().expect("keyed");
        let key = k.take().expect("keyed").to_vec();
        assert_eq!(key.len(), KEY_BYTES);
        assert!(key.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_'));
        assert_eq!(first as i32, partition_for_key(&key, 16));
        // The same seed gives the same pool (producers of a run share the keys), built once
        // per thread; another partition count maps the same keys anew.
        let again = Keys::new(KeyDistributor::RandomNano, 5, 99, 16);
        assert!(Rc::ptr_eq(&again.pool, &k.pool));
        let other = Keys::new(KeyDistributor::RandomNano, 5, 99, 7);
        assert!(!Rc::ptr_eq(&other.pool, &k.pool) && other.pool.keys == k.pool.keys);
        assert_eq!(KeyPool::new(5, 16).keys, k.pool.keys);
    }

    #[test]
    fn round_robin_walks_the_pool_and_random_spreads_over_it() {
        let mut rr = Keys::new(KeyDistributor::KeyRoundRobin, 1, 0, 8);
        rr.start_at(KEYS_UNIQUE - 1);
        let a = rr.take().expect("keyed").to_vec();
        let b = rr.take().expect("keyed").to_vec();
        assert_eq!(a, rr.pool.keys[(KEYS_UNIQUE - 1) * KEY_BYTES..].to_vec());
        assert_eq!(b, rr.pool.keys[..KEY_BYTES].to_vec(), "wraps around");
        // Over a whole walk every partition of 8 gets about an eighth of the keys.
        let mut counts = [0u32; 8];
        for _ in 0..KEYS_UNIQUE {
            counts[rr.next_partition().expect("keyed")] += 1;
            rr.take();
        }
        assert!(counts.iter().all(|c| (1_000..1_500).contains(c)), "{counts:?}");
        let mut random = Keys::new(KeyDistributor::RandomNano, 1, 7, 8);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            seen.insert(random.take().expect("keyed").to_vec());
        }
        assert!(seen.len() > 900, "random picks rarely repeat in 1,000 of 10,000: {}", seen.len());
        let mut none = Keys::new(KeyDistributor::NoKey, 1, 7, 8);
        assert_eq!((none.next_partition(), none.take()), (None, None));
    }

    #[test]
    fn distributor_names_are_omb_s() {
        for d in [KeyDistributor::NoKey, KeyDistributor::KeyRoundRobin, KeyDistributor::RandomNano] {
            assert_eq!(KeyDistributor::parse(d.name()), Some(d));
        }
        assert_eq!(KeyDistributor::parse("key_round_robin"), None);
    }
}
