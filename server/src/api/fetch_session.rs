//! Fetch sessions (KIP-227): the broker remembers what a fetcher asked for, so that the
//! fetcher's next requests name only the partitions whose position changed (incremental
//! requests) and the answers carry only the partitions with something new.
//!
//! Kafka's rules, as `FetchSession.scala` / `FetchSessionCache` apply them:
//! - a request with epoch 0 (INITIAL) is full: it closes the session it names, if any, and
//!   opens a new one when answered, if the cache has room or may evict (below); epoch -1
//!   (FINAL) closes the named session and fetches without one (session id 0).
//! - any other epoch is incremental: the session must exist (else FETCH_SESSION_ID_NOT_FOUND),
//!   expect exactly this epoch (else INVALID_FETCH_SESSION_EPOCH) and use topic ids exactly
//!   when the request version does, v13+ (else FETCH_SESSION_TOPIC_ID_ERROR). Its partitions
//!   are added or updated, its forgotten partitions removed; a session left empty is closed and
//!   the request is answered without one. The session's epoch moves on (wrapping to 1).
//! - an incremental answer holds a partition only when it has records, an error, a diverging
//!   epoch, or a high watermark or log start other than the one last sent; a partition that
//!   returned records moves to the end of the session's order, so the next fetch starts with
//!   the others (the response size limit then favours them).
//! - the cache holds at most `max.incremental.fetch.session.cache.slots` sessions. When full,
//!   a new session may evict the least recently used one if that was idle for more than
//!   `EVICTION_MS`; otherwise the smallest evictable session by (privileged, partitions, id),
//!   when the new one is not smaller: a follower's (privileged) session may evict any
//!   consumer's, and any session may evict one created more than `EVICTION_MS` ago. When none
//!   may go, the fetch is answered without a session (id 0) and the fetcher keeps sending
//!   full requests.
//!
//! Sessions are not tied to a connection (a client may reconnect to another shard), so the
//! cache is one per broker behind a mutex, held only to look up and update a session, never
//! across a read. Kafka's broker locks its cache the same way.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use kafka_protocol::ResponseError;

/// Kafka's `MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS`: how long a session is safe from
/// eviction by a bigger one after its creation, and how long it may stay idle before any new
/// session may take its place.
pub const EVICTION_MS: i64 = 120_000;

/// The session id of "no session".
pub const NO_SESSION: i32 = 0;
/// The epoch of a full request that opens a session.
const INITIAL_EPOCH: i32 = 0;
/// The epoch of a request that closes its session and wants none.
const FINAL_EPOCH: i32 = -1;

/// A session's topic as its requests name it: by name before v13, by id from v13.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Name(Arc<str>),
    Id(u128),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub topic: TopicKey,
    pub partition: i32,
}

/// What a fetcher asks of one partition (kept in the session between requests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchParams {
    pub fetch_offset: i64,
    pub max_bytes: i32,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
    /// A follower's own log start (consumers send -1).
    pub log_start_offset: i64,
}

/// What the answer for one partition said, as far as a session compares answers.
#[derive(Clone, Copy, Debug, Default)]
pub struct AnswerSummary {
    pub error: bool,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub has_records: bool,
    pub diverging: bool,
}

/// Why an incremental request is refused as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("fetch session not found")]
    IdNotFound,
    #[error("wrong fetch session epoch")]
    InvalidEpoch,
    #[error("fetch session and request disagree about topic ids")]
    TopicIdError,
}

impl SessionError {
    pub fn kafka(self) -> ResponseError {
        match self {
            SessionError::IdNotFound => ResponseError::FetchSessionIdNotFound,
            SessionError::InvalidEpoch => ResponseError::InvalidFetchSessionEpoch,
            SessionError::TopicIdError => ResponseError::FetchSessionTopicIdError,
        }
    }
}

/// How a request is answered, decided before its partitions are read.
#[derive(Debug)]
pub enum Context {
    /// Every partition of the request, session id 0.
    Sessionless,
    /// Every partition of the request; a session is opened for them when answered.
    Full { privileged: bool, uses_topic_ids: bool },
    /// The session's partitions, in its order; the answer holds the ones with news. `sent` is
    /// what the session last sent for each (high watermark, log start), in the same order.
    Incremental { id: i32, sent: Vec<(i64, i64)> },
}

/// One partition of a session.
#[derive(Clone, Debug)]
struct Cached {
    params: FetchParams,
    /// The high watermark last sent (-1: none yet, or the last answer was an error).
    high_watermark: i64,
    /// The log start offset last sent.
    log_start_offset: i64,
    /// Position in the session's order (`Session::order`).
    seq: u64,
}

struct Session {
    privileged: bool,
    uses_topic_ids: bool,
    /// The epoch the next incremental request must carry.
    epoch: i32,
    created_ms: i64,
    last_used_ms: i64,
    partitions: HashMap<PartitionKey, Cached>,
    /// The session's order: sequence number → partition.
    order: BTreeMap<u64, PartitionKey>,
    next_seq: u64,
}

impl Session {
    fn push(&mut self, key: PartitionKey, params: FetchParams) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, key.clone());
        self.partitions.insert(key, Cached { params, high_watermark: -1, log_start_offset: -1, seq });
    }

    fn move_to_end(&mut self, key: &PartitionKey) {
        let seq = self.next_seq;
        if let Some(c) = self.partitions.get_mut(key) {
            self.order.remove(&c.seq);
            c.seq = seq;
            self.order.insert(seq, key.clone());
            self.next_seq += 1;
        }
    }

    fn remove(&mut self, key: &PartitionKey) {
        if let Some(c) = self.partitions.remove(key) {
            self.order.remove(&c.seq);
        }
        debug_assert_eq!(self.order.len(), self.partitions.len());
    }

    /// (privileged, partitions, id): the smaller goes first (Kafka's `EvictableKey`).
    fn evictable_key(&self, id: i32) -> (bool, usize, i32) {
        (self.privileged, self.partitions.len(), id)
    }
}

struct Inner {
    sessions: HashMap<i32, Session>,
    /// A xorshift state for session ids (never 0).
    rng: u64,
    evictions: u64,
}

/// The broker's fetch sessions.
pub struct FetchSessionCache {
    slots_max: usize,
    inner: Mutex<Inner>,
}

impl FetchSessionCache {
    pub fn new(slots_max: usize, seed: u64) -> FetchSessionCache {
        let inner = Inner { sessions: HashMap::new(), rng: seed | 1, evictions: 0 };
        FetchSessionCache { slots_max, inner: Mutex::new(inner) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many sessions are cached, and how many were evicted since start.
    pub fn stats(&self) -> (usize, u64) {
        let inner = self.lock();
        (inner.sessions.len(), inner.evictions)
    }

    /// Decides how a request is answered and returns the partitions to read, in order:
    /// the request's own for a full or sessionless one, the session's for an incremental one
    /// (after its additions, updates and forgotten partitions are applied).
    #[allow(clippy::too_many_arguments)]
    pub fn new_context(
        &self,
        session_id: i32,
        epoch: i32,
        uses_topic_ids: bool,
        privileged: bool,
        requested: Vec<(PartitionKey, FetchParams)>,
        forgotten: &[PartitionKey],
        now_ms: i64,
    ) -> Result<(Context, Vec<(PartitionKey, FetchParams)>), SessionError> {
        let mut inner = self.lock();
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            if session_id != NO_SESSION {
                inner.sessions.remove(&session_id);
            }
            let context = if epoch == FINAL_EPOCH {
                Context::Sessionless
            } else {
                Context::Full { privileged, uses_topic_ids }
            };
            return Ok((context, requested));
        }
        let session = inner.sessions.get_mut(&session_id).ok_or(SessionError::IdNotFound)?;
        if session.epoch != epoch {
            return Err(SessionError::InvalidEpoch);
        }
        if session.uses_topic_ids != uses_topic_ids {
            return Err(SessionError::TopicIdError);
        }
        for (key, params) in requested {
            match session.partitions.get_mut(&key) {
                Some(c) => c.params = params,
                None => session.push(key, params),
            }
        }
        for key in forgotten {
            session.remove(key);
        }
        if session.partitions.is_empty() {
            inner.sessions.remove(&session_id);
            return Ok((Context::Sessionless, Vec::new()));
        }
        session.last_used_ms = now_ms;
        session.epoch = next_epoch(session.epoch);
        let mut sent = Vec::with_capacity(session.order.len());
        let mut targets = Vec::with_capacity(session.order.len());
        for key in session.order.values() {
            let c = &session.partitions[key];
            sent.push((c.high_watermark, c.log_start_offset));
            targets.push((key.clone(), c.params));
        }
        Ok((Context::Incremental { id: session_id, sent }, targets))
    }

    /// Once the partitions are read: the session id to answer with, and which partitions the
    /// answer holds (`answers` in the order `new_context` returned). Opens the session of a
    /// full request (if there is room), updates an incremental one.
    pub fn finish(
        &self,
        context: Context,
        targets: &[(PartitionKey, FetchParams)],
        answers: &[AnswerSummary],
        now_ms: i64,
    ) -> (i32, Vec<bool>) {
        assert_eq!(targets.len(), answers.len());
        match context {
            Context::Sessionless => (NO_SESSION, vec![true; answers.len()]),
            Context::Full { privileged, uses_topic_ids } => {
                let id = self.open(privileged, uses_topic_ids, targets, answers, now_ms);
                (id, vec![true; answers.len()])
            }
            Context::Incremental { id, sent } => {
                assert_eq!(sent.len(), answers.len());
                let include: Vec<bool> =
                    sent.iter().zip(answers).map(|(&(hw, start), a)| must_respond(hw, start, a)).collect();
                let mut inner = self.lock();
                // The session may have been closed or evicted meanwhile: the answer stands.
                if let Some(session) = inner.sessions.get_mut(&id) {
                    for ((key, _), a) in targets.iter().zip(answers) {
                        if let Some(c) = session.partitions.get_mut(key) {
                            c.high_watermark = if a.error { -1 } else { a.high_watermark };
                            c.log_start_offset = a.log_start_offset;
                        }
                        if a.has_records {
                            session.move_to_end(key);
                        }
                    }
                }
                (id, include)
            }
        }
    }

    fn open(
        &self,
        privileged: bool,
        uses_topic_ids: bool,
        targets: &[(PartitionKey, FetchParams)],
        answers: &[AnswerSummary],
        now_ms: i64,
    ) -> i32 {
        let mut inner = self.lock();
        if inner.sessions.len() >= self.slots_max && !inner.try_evict(privileged, targets.len(), now_ms) {
            return NO_SESSION;
        }
        let id = inner.new_id();
        let mut session = Session {
            privileged,
            uses_topic_ids,
            epoch: next_epoch(INITIAL_EPOCH),
            created_ms: now_ms,
            last_used_ms: now_ms,
            partitions: HashMap::with_capacity(targets.len()),
            order: BTreeMap::new(),
            next_seq: 0,
        };
        for ((key, params), a) in targets.iter().zip(answers) {
            // A partition named twice is kept once, as Kafka's map does.
            if session.partitions.contains_key(key) {
                continue;
            }
            session.push(key.clone(), *params);
            if let Some(c) = session.partitions.get_mut(key) {
                c.high_watermark = if a.error { -1 } else { a.high_watermark };
                c.log_start_offset = a.log_start_offset;
            }
        }
        inner.sessions.insert(id, session);
        assert!(inner.sessions.len() <= self.slots_max.max(1));
        id
    }
}

impl Inner {
    fn new_id(&mut self) -> i32 {
        loop {
            // xorshift64
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let id = (self.rng >> 33) as i32 & i32::MAX;
            if id != NO_SESSION && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Kafka's `tryEvict`: a stale session first, else the smallest evictable one if the new
    /// session (`privileged`, `size` partitions) is not smaller.
    fn try_evict(&mut self, privileged: bool, size: usize, now_ms: i64) -> bool {
        let stale = self.sessions.iter().min_by_key(|(id, s)| (s.last_used_ms, **id)).map(|(id, s)| (*id, s));
        let Some((lru, lru_session)) = stale else { return false };
        if now_ms - lru_session.last_used_ms > EVICTION_MS {
            self.sessions.remove(&lru);
            self.evictions += 1;
            return true;
        }
        let old_enough = |s: &Session| now_ms - s.created_ms > EVICTION_MS;
        let candidate = self
            .sessions
            .iter()
            .filter(|(_, s)| old_enough(s) || (privileged && !s.privileged))
            .map(|(id, s)| s.evictable_key(*id))
            .min();
        match candidate {
            // Kafka compares (privileged, size, 0) with the candidate's key: an equal one stays.
            Some(key) if (privileged, size, 0) >= key => {
                self.sessions.remove(&key.2);
                self.evictions += 1;
                true
            }
            _ => false,
        }
    }
}

/// Kafka's `FetchMetadata.nextEpoch`: after the largest epoch comes 1.
fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        FINAL_EPOCH
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// Kafka's `CachedPartition.maybeUpdateResponseData`: whether an incremental answer must hold
/// this partition.
fn must_respond(sent_hw: i64, sent_start: i64, a: &AnswerSummary) -> bool {
    a.has_records || a.error || a.diverging || a.high_watermark != sent_hw || a.log_start_offset != sent_start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> PartitionKey {
        PartitionKey { topic: TopicKey::Id(7), partition: p }
    }

    fn params(offset: i64) -> FetchParams {
        FetchParams {
            fetch_offset: offset,
            max_bytes: 1 << 20,
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
            log_start_offset: -1,
        }
    }

    fn answer(hw: i64, records: bool) -> AnswerSummary {
        AnswerSummary { high_watermark: hw, log_start_offset: 0, has_records: records, ..Default::default() }
    }

    /// Opens a session over partitions 0..n (all at high watermark 5): its id.
    fn open(cache: &FetchSessionCache, n: i32, privileged: bool, now_ms: i64) -> i32 {
        let req: Vec<_> = (0..n).map(|p| (key(p), params(0))).collect();
        let (ctx, targets) = cache.new_context(0, 0, true, privileged, req, &[], now_ms).expect("full");
        let answers = vec![answer(5, false); targets.len()];
        cache.finish(ctx, &targets, &answers, now_ms).0
    }

    #[test]
    fn incremental_answers_hold_only_news_and_data_moves_to_the_end() {
        let cache = FetchSessionCache::new(10, 42);
        let id = open(&cache, 3, false, 0);
        assert_ne!(id, NO_SESSION);
        let (ctx, targets) = cache.new_context(id, 1, true, false, Vec::new(), &[], 1).expect("incremental");
        assert_eq!(targets.iter().map(|t| t.0.partition).collect::<Vec<_>>(), vec![0, 1, 2]);
        // Partition 1 has records, 2 a new high watermark, 0 nothing new.
        let answers = [answer(5, false), answer(6, true), answer(6, false)];
        let (same, include) = cache.finish(ctx, &targets, &answers, 1);
        assert_eq!((same, include), (id, vec![false, true, true]));
        // Epoch 2 now; partition 1 went to the end; nothing new anywhere: an empty answer.
        assert_eq!(
            cache.new_context(id, 1, true, false, Vec::new(), &[], 2).unwrap_err(),
            SessionError::InvalidEpoch
        );
        let (ctx, targets) =
            cache.new_context(id, 2, true, false, Vec::new(), &[key(0)], 2).expect("forget 0");
        assert_eq!(targets.iter().map(|t| t.0.partition).collect::<Vec<_>>(), vec![2, 1]);
        let (_, include) = cache.finish(ctx, &targets, &[answer(6, false), answer(6, false)], 2);
        assert_eq!(include, vec![false, false]);
        // Versions disagreeing about ids, and an unknown session.
        assert_eq!(
            cache.new_context(id, 3, false, false, Vec::new(), &[], 3).unwrap_err(),
            SessionError::TopicIdError
        );
        assert_eq!(
            cache.new_context(id + 1, 3, true, false, Vec::new(), &[], 3).unwrap_err(),
            SessionError::IdNotFound
        );
        // Forgetting every partition closes the session.
        let (ctx, _) =
            cache.new_context(id, 3, true, false, Vec::new(), &[key(1), key(2)], 3).expect("empty");
        assert!(matches!(ctx, Context::Sessionless));
        assert_eq!(cache.stats().0, 0);
    }

    #[test]
    fn eviction_follows_kafkas_rule() {
        let cache = FetchSessionCache::new(2, 7);
        let small = open(&cache, 1, false, 0);
        let big = open(&cache, 5, false, 0);
        // Full: a consumer's new session may not evict young ones, however big it is.
        assert_eq!(open(&cache, 9, false, 10), NO_SESSION);
        // A follower's may evict the smallest consumer session.
        let follower = open(&cache, 1, true, 10);
        assert_ne!(follower, NO_SESSION);
        assert_eq!(
            cache.new_context(small, 1, true, false, Vec::new(), &[], 11).unwrap_err(),
            SessionError::IdNotFound
        );
        // Past EVICTION_MS since creation, a bigger consumer session evicts a smaller one,
        // never one of its own size or bigger... unless idle that long (stale): LRU first.
        let (ctx, t) =
            cache.new_context(big, 1, true, false, Vec::new(), &[], EVICTION_MS).expect("touch big");
        let n = t.len();
        cache.finish(ctx, &t, &vec![answer(5, false); n], EVICTION_MS);
        let newer = open(&cache, 1, false, EVICTION_MS + 20);
        assert_ne!(newer, NO_SESSION, "the follower's session was idle > EVICTION_MS");
        assert_eq!(cache.stats(), (2, 2));
        // Now: `big` (5, used at EVICTION_MS) and `newer` (1): a 3-partition consumer session
        // may evict neither yet (big is bigger, newer is young).
        assert_eq!(open(&cache, 3, false, EVICTION_MS + 30), NO_SESSION);
        // A 6-partition one evicts `big`, older than EVICTION_MS and smaller.
        assert_ne!(open(&cache, 6, false, EVICTION_MS + 30), NO_SESSION);
        let gone = cache.new_context(big, 2, true, false, Vec::new(), &[], EVICTION_MS + 31);
        assert_eq!(gone.unwrap_err(), SessionError::IdNotFound);
        assert_eq!(cache.stats(), (2, 3));
    }
}
