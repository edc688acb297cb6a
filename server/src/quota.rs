//! Client quotas (Kafka's client quotas, KIP-13 / KIP-55 / KIP-219): produce and fetch byte
//! rates per user, client id or both, set with AlterClientQuotas and kept in the metadata log.
//!
//! A client over its rate is answered with `throttle_time_ms` and its connection is not read
//! from for that long (KIP-219), which is how Kafka slows it down; its data is not refused.
//! Rates are measured per broker as Kafka measures them: `quota.window.num` samples (11) of
//! `quota.window.size.seconds` (1), the rate being the bytes of the samples over the time they
//! span but at least all samples but one (10 s), and the throttle the time that brings the
//! rate back to the quota (`(rate - quota) / quota * window`), at most the whole window.
//!
//! With no quota configured, a request pays one atomic load here.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use riptide_quorum::{ClientQuotas, QuotaEntity};

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// How rates are sampled (`quota.window.num` samples of `quota.window.size.seconds`).
#[derive(Clone, Copy, Debug)]
struct Window {
    samples: u32,
    sample: Duration,
}

impl Default for Window {
    fn default() -> Window {
        Window { samples: 11, sample: Duration::from_secs(1) }
    }
}

impl Window {
    fn whole(self) -> Duration {
        self.sample * self.samples
    }
}

/// What a quota limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Produce,
    Fetch,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Produce => PRODUCER_BYTE_RATE,
            Kind::Fetch => CONSUMER_BYTE_RATE,
        }
    }
}

/// How a quota key's value is typed (Kafka's `QuotaConfig`): whole numbers or any number.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Long,
    Int,
    Double,
}

/// The quota keys an entity of these types may have, with their types; `None` for an entity
/// Kafka does not accept (a type it does not know, a type twice, `ip` with another type).
pub fn keys_for(entity: &[(&str, Option<&str>)]) -> Result<&'static [(&'static str, ValueType)], String> {
    const CLIENT: &[(&str, ValueType)] = &[
        (PRODUCER_BYTE_RATE, ValueType::Long),
        (CONSUMER_BYTE_RATE, ValueType::Long),
        (REQUEST_PERCENTAGE, ValueType::Double),
        (CONTROLLER_MUTATION_RATE, ValueType::Double),
    ];
    const ADDRESS: &[(&str, ValueType)] = &[(CONNECTION_CREATION_RATE, ValueType::Int)];
    if entity.is_empty() {
        return Err("Invalid empty client quota entity".into());
    }
    let mut seen = Vec::with_capacity(entity.len());
    for (t, name) in entity {
        if ![USER, CLIENT_ID, IP].contains(t) {
            return Err(format!("Unhandled client quota entity type: {t}"));
        }
        if seen.contains(t) {
            return Err(format!("Duplicate {t} entity"));
        }
        if *t == IP {
            if let Some(addr) = name {
                if addr.parse::<std::net::IpAddr>().is_err() {
                    return Err(format!("{addr} is not a valid IP or resolvable host."));
                }
            }
        }
        seen.push(*t);
    }
    match (seen.contains(&IP), seen.len()) {
        (true, 1) => Ok(ADDRESS),
        (true, _) => {
            Err("Invalid quota entity combination, IP entity should not be combined with User or ClientId"
                .into())
        }
        (false, _) => Ok(CLIENT),
    }
}

/// A quota value Kafka would refuse for a key of this type, and why.
pub fn check_value(key: &str, t: ValueType, value: f64) -> Result<(), String> {
    if !value.is_finite() || value < 0.0 {
        return Err(format!("Quota {key} must be a non-negative number, not {value}"));
    }
    let (whole, max) = match t {
        ValueType::Long => (true, i64::MAX as f64),
        ValueType::Int => (true, i32::MAX as f64),
        ValueType::Double => (false, f64::MAX),
    };
    if whole && value.fract() != 0.0 {
        return Err(format!("Quota {key} must be a whole number, not {value}"));
    }
    if value > max {
        return Err(format!("Proposed value for {key} is out of range"));
    }
    Ok(())
}

/// The quotas in force and the clients' measured rates.
#[derive(Default)]
pub struct Quotas {
    /// Whether any byte-rate quota exists: requests skip the lock otherwise.
    active: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    window: Window,
    table: BTreeMap<QuotaEntity, BTreeMap<String, f64>>,
    /// Kafka keys a client's rate by the entity its quota came from: every client of a user
    /// shares a user quota, each client id has its own rate under a default quota.
    rates: HashMap<(Kind, String, String), Rate>,
}

impl Quotas {
    /// Sets the sampling (the broker's `quota.window.*`); rates measured so far start over.
    pub fn set_window(&self, samples: u32, sample_seconds: u32) {
        assert!(samples >= 2 && sample_seconds >= 1, "quota window checked by the config");
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.window = Window { samples, sample: Duration::from_secs(sample_seconds.into()) };
        state.rates.clear();
    }

    /// Takes the quotas of a newly applied metadata image.
    pub fn configure(&self, quotas: &[ClientQuotas]) {
        let table: BTreeMap<QuotaEntity, BTreeMap<String, f64>> = quotas
            .iter()
            .map(|q| (q.entity.clone(), q.quotas.iter().map(|(k, v)| (k.clone(), v.0)).collect()))
            .collect();
        let active =
            table.values().any(|q| q.contains_key(PRODUCER_BYTE_RATE) || q.contains_key(CONSUMER_BYTE_RATE));
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.table = table;
        state.rates.clear(); // a changed quota starts a fresh measurement, as Kafka's new sensors do
        self.active.store(active, Ordering::Release);
    }

    /// Whether any byte-rate quota is set at all.
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Records `bytes` moved for a client and returns how long to throttle it (zero: not).
    pub fn record(&self, kind: Kind, user: &str, client_id: &str, bytes: u64, now: Instant) -> Duration {
        self.with_rate(kind, user, client_id, now, |rate, bound| {
            rate.record(bytes as f64, now);
            rate.throttle(bound, now)
        })
    }

    /// How long a client is still to be throttled, recording nothing (a fetch checks before it
    /// reads, so that an answer it may not have is not read).
    pub fn owed(&self, kind: Kind, user: &str, client_id: &str, now: Instant) -> Duration {
        self.with_rate(kind, user, client_id, now, |rate, bound| rate.throttle(bound, now))
    }

    fn with_rate(
        &self,
        kind: Kind,
        user: &str,
        client_id: &str,
        now: Instant,
        f: impl FnOnce(&mut Rate, f64) -> Duration,
    ) -> Duration {
        if !self.active.load(Ordering::Acquire) {
            return Duration::ZERO;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some((bound, key_user, key_client)) = resolve(&state.table, kind.key(), user, client_id) else {
            return Duration::ZERO;
        };
        let key = (kind, key_user.to_string(), key_client.to_string());
        let window = state.window;
        let rate = state.rates.entry(key).or_insert_with(|| Rate::new(window, now));
        f(rate, bound)
    }
}

/// The quota `key` that applies to a client, in Kafka's order of precedence (the most
/// specific first), with the user and client id its rate is kept under.
fn resolve<'a>(
    table: &BTreeMap<QuotaEntity, BTreeMap<String, f64>>,
    key: &str,
    user: &'a str,
    client_id: &'a str,
) -> Option<(f64, &'a str, &'a str)> {
    let entity = |u: Option<Option<&str>>, c: Option<Option<&str>>| {
        let mut e = QuotaEntity::new();
        if let Some(u) = u {
            e.insert(USER.to_string(), u.map(str::to_string));
        }
        if let Some(c) = c {
            e.insert(CLIENT_ID.to_string(), c.map(str::to_string));
        }
        e
    };
    let candidates = [
        (entity(Some(Some(user)), Some(Some(client_id))), user, client_id),
        (entity(Some(Some(user)), Some(None)), user, client_id),
        (entity(Some(Some(user)), None), user, ""),
        (entity(Some(None), Some(Some(client_id))), user, client_id),
        (entity(Some(None), Some(None)), user, client_id),
        (entity(Some(None), None), user, ""),
        (entity(None, Some(Some(client_id))), "", client_id),
        (entity(None, Some(None)), "", client_id),
    ];
    candidates.into_iter().find_map(|(e, u, c)| table.get(&e)?.get(key).map(|bound| (*bound, u, c)))
}

/// Kafka's sampled rate: the samples' sum over the time they cover.
struct Rate {
    window: Window,
    /// (start, bytes) of each sample; `current` is being filled.
    samples: Vec<(Instant, f64)>,
    current: usize,
}

impl Rate {
    fn new(window: Window, now: Instant) -> Rate {
        Rate { window, samples: vec![(now, 0.0); window.samples as usize], current: 0 }
    }

    fn record(&mut self, value: f64, now: Instant) {
        self.purge(now);
        if now.duration_since(self.samples[self.current].0) >= self.window.sample {
            self.current = (self.current + 1) % self.samples.len();
            self.samples[self.current] = (now, 0.0);
        }
        self.samples[self.current].1 += value;
    }

    /// Samples that ended more than the whole window ago count nothing (Kafka's purge).
    fn purge(&mut self, now: Instant) {
        let horizon = self.window.whole();
        for s in &mut self.samples {
            if now.duration_since(s.0) >= horizon {
                *s = (now, 0.0);
            }
        }
    }

    /// The time the rate is measured over: since the oldest sample, at least all but one
    /// sample's window (so a new client's first burst is spread over 10 s, as in Kafka).
    fn span(&self, now: Instant) -> Duration {
        let oldest = self.samples.iter().map(|s| s.0).min().unwrap_or(now);
        now.duration_since(oldest).max(self.window.whole() - self.window.sample)
    }

    fn throttle(&mut self, bound: f64, now: Instant) -> Duration {
        self.purge(now);
        let span = self.span(now);
        let total: f64 = self.samples.iter().map(|s| s.1).sum();
        let most = self.window.whole();
        if bound <= 0.0 {
            return if total > 0.0 { most } else { Duration::ZERO };
        }
        let rate = total / span.as_secs_f64();
        if rate <= bound {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((rate - bound) / bound * span.as_secs_f64()).min(most)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use riptide_quorum::QuotaValue;

    /// An entity's (type, name) parts.
    type Parts<'a> = &'a [(&'a str, Option<&'a str>)];

    fn quotas(entries: &[(Parts<'_>, &str, f64)]) -> Quotas {
        let q = Quotas::default();
        let list: Vec<ClientQuotas> = entries
            .iter()
            .map(|(entity, key, value)| ClientQuotas {
                entity: entity.iter().map(|(t, n)| (t.to_string(), n.map(str::to_string))).collect(),
                quotas: [(key.to_string(), QuotaValue(*value))].into(),
            })
            .collect();
        q.configure(&list);
        q
    }

    #[test]
    fn a_shorter_window_forgets_a_burst_sooner() {
        let q = quotas(&[(&[(CLIENT_ID, Some("slow"))], PRODUCER_BYTE_RATE, 100_000.0)]);
        q.set_window(3, 1);
        let now = Instant::now();
        // 300 kB over the minimum 2 s window is 150 kB/s: 1 s more brings it to 100 kB/s.
        let t = q.record(Kind::Produce, "ANONYMOUS", "slow", 300_000, now);
        assert!((t.as_secs_f64() - 1.0).abs() < 0.01, "{t:?}");
        assert_eq!(q.owed(Kind::Produce, "ANONYMOUS", "slow", now + Duration::from_secs(3)), Duration::ZERO);
    }

    #[test]
    fn no_quota_never_throttles() {
        let q = Quotas::default();
        assert_eq!(q.record(Kind::Produce, "ANONYMOUS", "c", 1 << 30, Instant::now()), Duration::ZERO);
    }

    #[test]
    fn a_burst_is_throttled_until_the_rate_is_back_at_the_quota() {
        let q = quotas(&[(&[(CLIENT_ID, Some("slow"))], PRODUCER_BYTE_RATE, 100_000.0)]);
        let now = Instant::now();
        // 1.5 MB at once over the minimum 10 s window is 150 kB/s: 5 s more brings it to 100 kB/s.
        let t = q.record(Kind::Produce, "ANONYMOUS", "slow", 1_500_000, now);
        assert!((t.as_secs_f64() - 5.0).abs() < 0.01, "{t:?}");
        // Other clients and the other direction are not limited.
        assert_eq!(q.record(Kind::Produce, "ANONYMOUS", "fast", 1_500_000, now), Duration::ZERO);
        assert_eq!(q.record(Kind::Fetch, "ANONYMOUS", "slow", 1_500_000, now), Duration::ZERO);
        // What is owed shrinks as time passes, and is gone once the samples age out.
        let later = q.owed(Kind::Produce, "ANONYMOUS", "slow", now + Duration::from_secs(12));
        assert_eq!(later, Duration::ZERO);
        // A throttle is capped at the whole window.
        let huge = q.record(Kind::Produce, "ANONYMOUS", "slow", 1 << 40, now + Duration::from_secs(13));
        assert_eq!(huge, Duration::from_secs(11));
    }

    #[test]
    fn precedence_follows_kafka() {
        let q = quotas(&[
            (&[(USER, Some("alice")), (CLIENT_ID, Some("app"))], CONSUMER_BYTE_RATE, 1.0),
            (&[(USER, Some("alice"))], CONSUMER_BYTE_RATE, 2.0),
            (&[(USER, None)], CONSUMER_BYTE_RATE, 3.0),
            (&[(CLIENT_ID, Some("app"))], CONSUMER_BYTE_RATE, 4.0),
            (&[(CLIENT_ID, None)], CONSUMER_BYTE_RATE, 5.0),
        ]);
        let state = q.state.lock().unwrap();
        let r = |u, c| resolve(&state.table, CONSUMER_BYTE_RATE, u, c);
        assert_eq!(r("alice", "app"), Some((1.0, "alice", "app")));
        assert_eq!(r("alice", "other"), Some((2.0, "alice", "")));
        assert_eq!(r("bob", "app"), Some((3.0, "bob", "")));
        assert_eq!(resolve(&state.table, PRODUCER_BYTE_RATE, "bob", "app"), None);
        drop(state);
        let q = quotas(&[
            (&[(CLIENT_ID, Some("app"))], CONSUMER_BYTE_RATE, 4.0),
            (&[(CLIENT_ID, None)], CONSUMER_BYTE_RATE, 5.0),
        ]);
        let state = q.state.lock().unwrap();
        assert_eq!(resolve(&state.table, CONSUMER_BYTE_RATE, "bob", "app"), Some((4.0, "", "app")));
        assert_eq!(resolve(&state.table, CONSUMER_BYTE_RATE, "bob", "x"), Some((5.0, "", "x")));
    }

    #[test]
    fn entities_and_values_are_checked_as_kafka_does() {
        assert!(keys_for(&[]).is_err());
        assert!(keys_for(&[("group", Some("g"))]).is_err());
        assert!(keys_for(&[(USER, Some("a")), (USER, Some("b"))]).is_err());
        assert!(keys_for(&[(IP, Some("1.2.3.4")), (USER, Some("b"))]).is_err());
        assert!(keys_for(&[(IP, Some("not-an-ip"))]).is_err());
        assert_eq!(keys_for(&[(IP, None)]).unwrap()[0].0, CONNECTION_CREATION_RATE);
        assert_eq!(keys_for(&[(USER, None), (CLIENT_ID, Some("c"))]).unwrap().len(), 4);
        assert!(check_value(PRODUCER_BYTE_RATE, ValueType::Long, 1.5).is_err());
        assert!(check_value(PRODUCER_BYTE_RATE, ValueType::Long, -1.0).is_err());
        assert!(check_value(REQUEST_PERCENTAGE, ValueType::Double, 1.5).is_ok());
    }
}
