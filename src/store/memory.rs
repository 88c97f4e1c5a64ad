//! [`InMemoryStore`]: the embedded default store, for one process.
//!
//! # How it is built
//!
//! Dispatch asks one question, "who subscribed to this pair, for this template or for
//! none?", so subscriptions are indexed by exactly that: one slot per valid
//! [`EventType`] (a dense array), and inside it one bucket for subscriptions without a
//! template plus a sharded map from template name to bucket. [`matching`] is two
//! lookups and costs O(matches), however many other subscriptions there are.
//!
//! A bucket is an immutable `Arc<[Arc<Subscription>]>` snapshot. Writers (serialised
//! by one lock) build the next snapshot off to the side and publish it with a pointer
//! swap, so a dispatch never waits behind a write for longer than that swap, and a
//! dispatch that is already running keeps the snapshot it started with. The price is
//! that a write copies its bucket: O(subscriptions of that pair and template).
//!
//! [`matching`]: SubscriptionStore::matching

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};
use std::iter;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use uuid::Uuid;

use crate::catalog::EventType;
use crate::error::Error;
use crate::search::{Page, SearchRequest};
use crate::store::SubscriptionStore;
use crate::subscription::{Subscription, SubscriptionKey};

/// Template buckets of one pair are spread over this many maps, so that growing one map
/// (a rehash, the only write that is not O(1)) stalls few readers, briefly.
const TEMPLATE_SHARDS: usize = 32;

/// An immutable list of subscriptions sharing a pair and a template.
type Bucket = Arc<[Arc<Subscription>]>;

/// The embedded, in-process [`SubscriptionStore`].
///
/// Cheap to clone: clones share the same subscriptions.
///
/// ```
/// # tokio_test_block_on(async {
/// use biot_notifications::store::{InMemoryStore, SubscriptionStore};
/// use biot_notifications::{Action, EntityType, EventType, SubscribeRequest, Subscription};
///
/// let store = InMemoryStore::new();
/// let key = SubscribeRequest::new("patient", "_create", "https://plugin.example.com/hook")
///     .with_template("adultPatient")
///     .key()?;
/// store.insert(Subscription::new(key)).await?;
///
/// let created = EventType::new(EntityType::Patient, Action::Create)?;
/// assert_eq!(store.matching(created, Some("adultPatient")).await?.len(), 1);
/// assert_eq!(store.matching(created, Some("childPatient")).await?.len(), 0);
/// # Ok::<(), biot_notifications::Error>(())
/// # }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     futures_util::FutureExt::now_or_never(f).expect("the in-memory store never waits")
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct InMemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Every subscription by id. Its write lock also serialises writers, which makes
    /// the duplicate check and the publication of a bucket one atomic step.
    by_id: RwLock<HashSet<ById>>,
    /// The dispatch index, one slot per valid pair, indexed by `EventType::index`.
    slots: Box<[PairSlot]>,
    /// Picks a template's shard; fixed per store, random across stores.
    shard_hasher: std::collections::hash_map::RandomState,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            by_id: RwLock::default(),
            slots: (0..EventType::COUNT).map(|_| PairSlot::default()).collect(),
            shard_hasher: Default::default(),
        }
    }
}

#[derive(Debug, Default)]
struct PairSlot {
    untemplated: RwLock<Option<Bucket>>,
    templated: [RwLock<HashMap<Box<str>, Bucket>>; TEMPLATE_SHARDS],
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(&self, event_type: EventType) -> &PairSlot {
        &self.inner.slots[event_type.index()]
    }

    fn shard(&self, template: &str) -> usize {
        // The modulo keeps the result below TEMPLATE_SHARDS, so the cast cannot truncate.
        (self.inner.shard_hasher.hash_one(template) % TEMPLATE_SHARDS as u64) as usize
    }

    /// The current bucket for a pair and template, if any (a reference-count bump).
    fn bucket(&self, event_type: EventType, template: Option<&str>) -> Option<Bucket> {
        let slot = self.slot(event_type);
        match template {
            None => read(&slot.untemplated).clone(),
            Some(template) => {
                let shard = &slot.templated[self.shard(template)];
                read(shard).get(template).cloned()
            }
        }
    }

    /// Publishes the next snapshot of a bucket; `None` drops the bucket.
    /// Callers hold the writer lock.
    fn publish(&self, event_type: EventType, template: Option<&str>, next: Option<Bucket>) {
        let slot = self.slot(event_type);
        let previous = match template {
            None => std::mem::replace(&mut *write(&slot.untemplated), next),
            Some(template) => {
                let mut shard = write(&slot.templated[self.shard(template)]);
                match next {
                    Some(next) => match shard.get_mut(template) {
                        Some(bucket) => Some(std::mem::replace(bucket, next)),
                        None => shard.insert(template.into(), next),
                    },
                    None => shard.remove(template),
                }
            }
        };
        // Dropping the old snapshot may release every subscription in it: do that work
        // after the shard's lock is gone.
        drop(previous);
    }
}

#[async_trait]
impl SubscriptionStore for InMemoryStore {
    async fn insert(&self, subscription: Subscription) -> Result<(), Error> {
        let mut by_id = write(&self.inner.by_id);
        let key = subscription.key();
        let template = key.template_name().map(|t| t.as_str());
        let current = self.bucket(key.event_type(), template);
        let current = current.as_deref().unwrap_or_default();
        if current.iter().any(|s| s.endpoint() == key.endpoint()) {
            return Err(Error::AlreadyExists {
                subscription: Box::new(key.clone()),
            });
        }
        if by_id.contains(&subscription.id()) {
            return Err(Error::Internal {
                source: format!("subscription id {} is already in use", subscription.id()).into(),
            });
        }
        let subscription = Arc::new(subscription);
        let next: Bucket = current
            .iter()
            .cloned()
            .chain(iter::once(Arc::clone(&subscription)))
            .collect();
        let key = subscription.key();
        self.publish(
            key.event_type(),
            key.template_name().map(|t| t.as_str()),
            Some(next),
        );
        by_id.insert(ById(subscription));
        Ok(())
    }

    async fn remove(&self, key: &SubscriptionKey) -> Result<Subscription, Error> {
        let mut by_id = write(&self.inner.by_id);
        let template = key.template_name().map(|t| t.as_str());
        let current = self.bucket(key.event_type(), template);
        let current = current.as_deref().unwrap_or_default();
        let Some(position) = current.iter().position(|s| s.endpoint() == key.endpoint()) else {
            return Err(Error::NotFound {
                subscription: Box::new(key.clone()),
            });
        };
        let removed = Arc::clone(&current[position]);
        let next = (current.len() > 1).then(|| {
            current
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != position)
                .map(|(_, s)| Arc::clone(s))
                .collect::<Bucket>()
        });
        self.publish(key.event_type(), template, next);
        by_id.remove(&removed.id());
        drop(by_id);
        // Readers may still hold the old snapshot; hand back a copy in that case.
        Ok(Arc::unwrap_or_clone(removed))
    }

    async fn get(&self, id: Uuid) -> Result<Option<Subscription>, Error> {
        Ok(read(&self.inner.by_id)
            .get(&id)
            .map(|s| Subscription::clone(&s.0)))
    }

    async fn matching(
        &self,
        event_type: EventType,
        template: Option<&str>,
    ) -> Result<Vec<Arc<Subscription>>, Error> {
        let untemplated = self.bucket(event_type, None);
        let templated = template.and_then(|t| self.bucket(event_type, Some(t)));
        let untemplated = untemplated.as_deref().unwrap_or_default();
        let templated = templated.as_deref().unwrap_or_default();
        let mut matches = Vec::with_capacity(untemplated.len() + templated.len());
        matches.extend(templated.iter().cloned());
        matches.extend(untemplated.iter().cloned());
        Ok(matches)
    }

    async fn search(&self, request: &SearchRequest) -> Result<Page<Subscription>, Error> {
        let by_id = read(&self.inner.by_id);
        Ok(request.evaluate(by_id.iter().map(|s| &*s.0)))
    }

    async fn count(&self) -> Result<u64, Error> {
        Ok(read(&self.inner.by_id).len() as u64)
    }
}

/// A subscription in the id index, hashed and compared by id alone, so the set can be
/// looked up with a bare `Uuid` and holds no second copy of it.
#[derive(Debug)]
struct ById(Arc<Subscription>);

impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id().hash(state);
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id() == other.0.id()
    }
}

impl Eq for ById {}

impl Borrow<Uuid> for ById {
    fn borrow(&self) -> &Uuid {
        self.0.id_ref()
    }
}

// Lock poisoning needs a panic while a lock is held; no code here panics under a lock
// (short of allocation failure, which aborts), so a poisoned lock still holds
// consistent data and is used as is.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
