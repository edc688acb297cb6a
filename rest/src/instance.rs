//! A v2 consumer instance's state, kept by the REST thread between HTTP calls (the handlers
//! are in `consumers`; the registry of instances in `state`).

use riptide_model::Offset;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Instant;

use futures_util::lock::Mutex;
use riptide_client::{GroupMember, OffsetSpec, TopicPartition};

use crate::records::Embedded;

pub struct Instance {
    pub group: String,
    pub name: String,
    pub(crate) format: Embedded,
    pub(crate) reset: OffsetSpec,
    pub(crate) auto_commit: bool,
    pub(crate) fetch_min_bytes: i32,
    pub(crate) request_timeout_ms: u64,
    pub(crate) last_used: std::cell::Cell<Instant>,
    /// Requests running on this instance now: an instance in use is not idle, however long
    /// its request (a first poll joins the group, which takes seconds).
    pub(crate) in_use: std::cell::Cell<u32>,
    pub(crate) inner: Mutex<Inner>,
}

/// An instance held by a running request; dropping it marks the instance used now.
pub struct InUse(pub(crate) Rc<Instance>);

impl std::ops::Deref for InUse {
    type Target = Instance;
    fn deref(&self) -> &Instance {
        &self.0
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        self.0.in_use.set(self.0.in_use.get() - 1);
        self.0.last_used.set(Instant::now());
    }
}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) topics: Vec<String>,
    pub(crate) pattern: Option<regex::Regex>,
    pub(crate) assigned: Vec<TopicPartition>,
    pub(crate) member: Option<GroupMember<'static>>,
    /// Next offset to fetch per owned partition.
    pub(crate) positions: BTreeMap<TopicPartition, Offset>,
}

impl Inner {
    pub(crate) fn subscribed(&self) -> bool {
        !self.topics.is_empty() || self.pattern.is_some()
    }
}

impl Instance {
    pub fn format(&self) -> Embedded {
        self.format
    }
}
