//! What the REST thread keeps: its Kafka client, a short-lived cache of topic metadata for
//! produce, and the v2 consumer instances.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use riptide_client::{Client, ClientConfig, TopicInfo};

use super::error::RestError;
use crate::instance::Instance;
use crate::RestConfig;

/// How long produce trusts cached partition leaders; a leader error drops the entry at once.
const TOPIC_CACHE_TTL: Duration = Duration::from_secs(5);

pub struct State {
    pub config: RestConfig,
    bootstrap: String,
    /// Leaked once per process: consumer instances borrow it for their whole life, and the
    /// REST thread lives as long as the process.
    client: Cell<Option<&'static Client>>,
    connecting: futures_util::lock::Mutex<()>,
    topics: RefCell<HashMap<String, (Instant, Rc<TopicInfo>)>>,
    pub instances: RefCell<HashMap<(String, String), Rc<Instance>>>,
    /// Spreads keyless records over partitions, one request's worth at a time.
    pub round_robin: Cell<u32>,
    pub next_instance: Cell<u64>,
    /// A cluster's id never changes: fetched once, not on every v3 request.
    cluster_id: RefCell<Option<String>>,
}

impl State {
    pub fn new(config: RestConfig, bootstrap: String) -> State {
        State {
            config,
            bootstrap,
            client: Cell::new(None),
            connecting: futures_util::lock::Mutex::new(()),
            topics: RefCell::new(HashMap::new()),
            instances: RefCell::new(HashMap::new()),
            round_robin: Cell::new(0),
            next_instance: Cell::new(0),
            cluster_id: RefCell::new(None),
        }
    }

    pub fn limit(&self) -> usize {
        self.config.max_request_bytes
    }

    /// The client, connected on first use (the broker's shards may still be starting when the
    /// REST listener opens).
    pub async fn client(&self) -> Result<&'static Client, RestError> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let _guard = self.connecting.lock().await;
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let config = ClientConfig::new(&self.bootstrap)?;
        let client: &'static Client = Box::leak(Box::new(Client::connect(config).await?));
        self.client.set(Some(client));
        Ok(client)
    }

    /// This cluster's id (from Metadata).
    pub async fn cluster_id(&self) -> Result<String, RestError> {
        if let Some(id) = self.cluster_id.borrow().clone() {
            return Ok(id);
        }
        let m = self.client().await?.metadata(Some(&[]), false).await?;
        let id = m.cluster_id.unwrap_or_default();
        if !id.is_empty() {
            *self.cluster_id.borrow_mut() = Some(id.clone());
        }
        Ok(id)
    }

    /// Checks the `{cluster_id}` of a v3 path.
    pub async fn check_cluster(&self, id: &str) -> Result<String, RestError> {
        let actual = self.cluster_id().await?;
        if actual == id {
            Ok(actual)
        } else {
            Err(RestError::UnknownCluster(id.to_string()))
        }
    }

    /// Metadata of an existing topic (never auto-created), cached for produce.
    pub async fn topic(&self, name: &str) -> Result<Rc<TopicInfo>, RestError> {
        if let Some((at, t)) = self.topics.borrow().get(name) {
            if at.elapsed() < TOPIC_CACHE_TTL {
                return Ok(t.clone());
            }
        }
        let metadata = self.client().await?.metadata(Some(&[name]), false).await?;
        let t = match metadata.topic(name) {
            Some(t) if t.error == 0 => Rc::new(t.clone()),
            _ => return Err(RestError::UnknownTopic(name.to_string())),
        };
        self.topics.borrow_mut().insert(name.to_string(), (Instant::now(), t.clone()));
        Ok(t)
    }

    pub fn forget_topic(&self, name: &str) {
        self.topics.borrow_mut().remove(name);
    }
}
