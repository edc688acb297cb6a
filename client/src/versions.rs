//! Version negotiation: the broker's ApiVersions ranges, intersected with what the
//! kafka-protocol crate can encode and what this client fills in correctly, and the highest
//! common version chosen. Newer versions of Produce, Fetch, OffsetCommit and OffsetFetch
//! name topics by id only; the client caps them below that so it works by name everywhere.

use std::collections::HashMap;

use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::Request;

/// The broker's supported range for each API key it advertised.
#[derive(Debug, Clone, Default)]
pub struct ApiVersions {
    ranges: HashMap<i16, (i16, i16)>,
    /// Finalized cluster features (`metadata.version`, ...) as `(name, max level)`, when
    /// the broker reports them (ApiVersions v3+).
    pub finalized_features: Vec<(String, i16)>,
}

impl ApiVersions {
    pub fn from_response(response: &ApiVersionsResponse) -> ApiVersions {
        let ranges = response.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        let finalized_features =
            response.finalized_features.iter().map(|f| (f.name.to_string(), f.max_version_level)).collect();
        ApiVersions { ranges, finalized_features }
    }

    pub fn from_ranges(ranges: &[(i16, i16, i16)]) -> ApiVersions {
        ApiVersions {
            ranges: ranges.iter().map(|(k, min, max)| (*k, (*min, *max))).collect(),
            finalized_features: Vec::new(),
        }
    }

    /// The broker's range for an API, if it advertised it.
    pub fn broker_range(&self, key: i16) -> Option<(i16, i16)> {
        self.ranges.get(&key).copied()
    }

    /// Every advertised `(api key, min, max)`, sorted by key.
    pub fn ranges(&self) -> Vec<(i16, i16, i16)> {
        let mut out: Vec<_> = self.ranges.iter().map(|(k, (min, max))| (*k, *min, *max)).collect();
        out.sort_unstable();
        out
    }

    /// Highest version in both the broker's range and `client_min..=client_max`.
    pub fn pick(&self, key: i16, client_min: i16, client_max: i16) -> Option<i16> {
        let (broker_min, broker_max) = self.broker_range(key)?;
        let version = broker_max.min(client_max);
        (version >= broker_min.max(client_min)).then_some(version)
    }

    /// The version to send request type `R` at, or `None` when there is no common version.
    pub fn version_for<R: Request>(&self) -> Option<i16> {
        let (min, max) = client_range::<R>();
        self.pick(R::KEY, min, max)
    }
}

/// What this client sends for `R`: the crate's range, capped where newer versions change
/// semantics the client does not implement (topic ids instead of names).
pub fn client_range<R: Request>() -> (i16, i16) {
    let crate_max = R::VERSIONS.max;
    let cap = match ApiKey::try_from(R::KEY) {
        Ok(ApiKey::Produce) => 12,
        Ok(ApiKey::Fetch) => 12,
        Ok(ApiKey::OffsetCommit) => 9,
        Ok(ApiKey::OffsetFetch) => 9,
        _ => crate_max,
    };
    (R::VERSIONS.min, crate_max.min(cap))
}

pub fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| format!("api {key}"), |k| format!("{k:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{FetchRequest, MetadataRequest, ProduceRequest};

    #[test]
    fn picks_the_highest_common_version() {
        let v = ApiVersions::from_ranges(&[(3, 0, 9), (0, 3, 11), (1, 4, 17)]);
        assert_eq!(v.pick(3, 4, 12), Some(9), "broker max below client max");
        assert_eq!(v.pick(3, 0, 5), Some(5), "client max below broker max");
        assert_eq!(v.pick(3, 10, 12), None, "disjoint ranges");
        assert_eq!(v.pick(42, 0, 5), None, "not advertised");
        assert_eq!(v.version_for::<MetadataRequest>(), Some(9));
        assert_eq!(v.version_for::<ProduceRequest>(), Some(11));
        assert_eq!(v.version_for::<FetchRequest>(), Some(12), "Fetch is capped below topic ids");
    }

    #[test]
    fn reads_an_api_versions_response() {
        let response = ApiVersionsResponse::default().with_api_keys(vec![ApiVersion::default()
            .with_api_key(18)
            .with_min_version(0)
            .with_max_version(4)]);
        let v = ApiVersions::from_response(&response);
        assert_eq!(v.broker_range(18), Some((0, 4)));
        assert_eq!(v.pick(18, 0, 3), Some(3));
        assert_eq!(client_range::<ProduceRequest>().1, 12);
    }
}
