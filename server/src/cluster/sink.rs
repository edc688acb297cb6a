//! Applied metadata into the broker: the catalog (topics with their partition states, the
//! registered brokers) is updated under its lock, then the changes that need the shards
//! (a deleted topic's logs, new topic configs) are queued for the shard-0 task that
//! broadcasts them.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use riptide_quorum::{Change, ImageSink, MetadataImage};

use crate::catalog::{Catalog, TopicMeta};
use crate::metrics::Metrics;

pub struct CatalogSink {
    catalog: Arc<RwLock<Catalog>>,
    events: flume::Sender<Change>,
    metrics: Arc<Metrics>,
}

impl CatalogSink {
    pub fn new(
        catalog: Arc<RwLock<Catalog>>,
        events: flume::Sender<Change>,
        metrics: Arc<Metrics>,
    ) -> CatalogSink {
        CatalogSink { catalog, events, metrics }
    }
}

impl ImageSink for CatalogSink {
    fn applied(&self, image: &MetadataImage, changes: &[Change]) {
        let mut touched = BTreeSet::new();
        {
            let mut cat = self.catalog.write().unwrap_or_else(|e| e.into_inner());
            // The image only moves forward (its own assertions, `riptide_quorum::image`); a
            // catalog going back would hand the shards roles the metadata already took away.
            debug_assert!(
                image.applied >= cat.applied,
                "metadata applied index went back from {} to {}",
                cat.applied,
                image.applied
            );
            cat.applied = image.applied;
            for ch in changes {
                match ch {
                    Change::TopicCreated(n) | Change::PartitionsAdded(n) | Change::TopicConfigsChanged(n) => {
                        touched.insert(n.clone());
                    }
                    Change::LeaderChanged { topic, .. } => {
                        touched.insert(topic.clone());
                    }
                    Change::TopicDeleted { name, .. } => {
                        cat.remove(name);
                    }
                    Change::BrokersChanged => cat.brokers = image.brokers.clone(),
                    Change::BrokerConfigsChanged => cat.broker_configs = image.broker_configs.clone(),
                    Change::GroupConfigsChanged => cat.group_configs = image.group_configs.clone(),
                    Change::ClientMetricsChanged => {
                        cat.client_metrics = image.client_metrics.clone();
                        self.metrics.telemetry.configure(&image.client_metrics);
                    }
                    Change::ClientQuotasChanged => {
                        cat.client_quotas = image.client_quotas.clone();
                        cat.quotas.configure(&image.client_quotas);
                    }
                    Change::SecurityChanged => {
                        cat.scram = Arc::new(image.scram.clone());
                        cat.acls = Arc::new(crate::security::acl::AclIndex::new(&image.acls));
                    }
                }
            }
            for name in &touched {
                match image.topics.get(name) {
                    Some(t) => {
                        let meta = TopicMeta::from_record(t);
                        debug_assert!(
                            cat.get(name)
                                .filter(|old| old.id == meta.id)
                                .is_none_or(|old| epochs_forward(&old, &meta)),
                            "{name}: a partition's epochs went back in the catalog"
                        );
                        cat.put(meta)
                    }
                    None => {
                        cat.remove(name);
                    }
                }
            }
            if cat.cluster_id.is_none() {
                cat.cluster_id = image.cluster_id.clone();
            }
        }
        self.metrics.set_metadata_applied(image.applied);
        for ch in changes {
            if !matches!(
                ch,
                Change::BrokersChanged
                    | Change::SecurityChanged
                    | Change::ClientQuotasChanged
                    | Change::ClientMetricsChanged
                    | Change::GroupConfigsChanged
            ) {
                let _ = self.events.send(ch.clone());
            }
        }
    }
}

/// Every partition of the same topic at the same or later (leader epoch, partition epoch).
fn epochs_forward(old: &TopicMeta, new: &TopicMeta) -> bool {
    old.states
        .iter()
        .zip(&new.states)
        .all(|(a, b)| (b.leader_epoch, b.partition_epoch) >= (a.leader_epoch, a.partition_epoch))
}
