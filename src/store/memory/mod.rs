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
//! A bucket is a B+tree of `Arc<Subscription>`s with nodes of at most 32 entries (or,
//! for the many buckets of one, just that one), whose nodes are shared through `Arc`s.
//! A dispatch takes a snapshot of each bucket it needs under the bucket's read lock (one
//! reference count) and reads it after releasing the lock, so a dispatch holds a lock
//! only for that count, and a write never changes what a running dispatch sees.
//!
//! Writers are serialised by one lock. A writer edits a bucket in place, under its write
//! lock, when no dispatch holds a snapshot of it, which is nearly always (even beside a
//! dispatch that reads the very bucket without pause, about four writes in five): it
//! touches the nodes on one path and nothing else (copying a node would bump the
//! reference count of every subscription in it, each a cache miss in a large store), so
//! a dispatch that comes by waits for at most that one edit. When a dispatch does hold a
//! snapshot, the writer edits a copy outside the lock instead, copying only the nodes on
//! its path ([`Arc::make_mut`]: the copy shares every other node), and swaps it in.
//! Either way a write costs O(log n) in the bucket's size: a bucket of 10,000 costs a
//! write about as much as one of 100 (a flat copy-on-write array would copy all 10,000,
//! and filling one bucket would take quadratic time).
//!
//! A tree is ordered by a seeded hash of the endpoint, then the endpoint, so finding a
//! duplicate or the subscription to remove is O(log n) integer comparisons, not string
//! comparisons through two pointers each. Removals do not rebalance: after many of them
//! nodes may be less than half full, which costs a little memory, never correctness.
//! A shard map keys each template's bucket by its own copy of the name: finding the
//! name through the bucket's first subscription instead would save that copy, but cost
//! two more cache misses on every lookup of a bucket not in cache. A name of up to 24
//! bytes (BioT's template names are mostly far shorter) is kept inline in the map's
//! slot ([`CompactString`]), so finding it reads no allocation of its own: one cache
//! miss less per subscribe or dispatch in a large store.
//!
//! A search reads snapshots too, so that it keeps no writer waiting while it reads
//! every subscription (milliseconds, in a store of 100,000): it takes every bucket,
//! pair by pair and shard by shard, each shard under its own read lock for one
//! reference count per bucket in it, and evaluates the request once every lock is
//! released. A writer waits, at most, for the snapshot of the one shard it writes to;
//! while the search reads, writes to the buckets it holds are made on copies of their
//! paths, as beside a dispatch. The buckets are taken one after another, not at one
//! instant, so a search sees each subscription at most once; every subscription that
//! was in the store throughout the search; none removed before it began; and a
//! subscription inserted or removed while it runs, or not. (Each bucket is seen whole,
//! as it was when taken. An id can be in two buckets taken at different moments only if
//! a removal ran meanwhile: the store counts removals, and a search that saw one keeps
//! the first of each id.)
//!
//! [`matching`]: SubscriptionStore::matching

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use compact_str::CompactString;
use uuid::Uuid;

use crate::catalog::EventType;
use crate::endpoint::Endpoint;
use crate::search::{Page, SearchRequest};
use crate::store::{StoreError, SubscriptionStore};
use crate::subscription::{Subscription, SubscriptionKey};

mod place;
mod snapshot;
mod tree;

use place::Place;
use snapshot::{StoreSnapshot, TakingSnapshot};
use tree::{Bucket, Entry, Key, Taken};

/// Template buckets of one pair are spread over this many maps, so that growing one map
/// (a rehash, the only write that is not O(log n)) stalls few readers, briefly.
const TEMPLATE_SHARDS: usize = 32;

/// The store's name in [`StoreError::Backend`].
const STORE: &str = "memory";

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
#[derive(Clone, Default)]
pub struct InMemoryStore {
    inner: Arc<Inner>,
}

/// Says how many subscriptions there are, not what they are: a store may hold millions.
impl fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryStore")
            .field("subscriptions", &read(&self.inner.by_id.0).len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Every subscription by id. Its write lock also serialises writers, which makes
    /// the duplicate check and the publication of a bucket one atomic step.
    ///
    /// Hashed with foldhash, not SipHash: ids are drawn at random by the store's users,
    /// not chosen by the plugins that subscribe.
    ///
    /// On a cache line of its own: every write changes the set's count, and a dispatch
    /// reads the fields beside it (`slots`, `quick_hash`) on every lookup. Sharing their
    /// line, a dispatch running beside a busy writer missed the cache on most lookups,
    /// whatever buckets the writer was writing to.
    by_id: OwnLine<RwLock<HashSet<ById, QuickHash>>>,
    /// How many subscriptions were ever removed, counted under the writers' lock. A
    /// search that sees it change while it takes its snapshot knows an id may be in two
    /// of the buckets it took. Apart from the fields a dispatch reads.
    removals: OwnLine<AtomicU64>,
    /// The dispatch index, one slot per valid pair, indexed by `EventType::index`.
    slots: Box<[PairSlot]>,
    /// Picks template shards and orders bucket trees; randomly seeded per store.
    quick_hash: QuickHash,
}

/// A fast hash (foldhash), for what needs a spread and not a defence against chosen
/// keys: the id index, picking a template's shard (the maps in the shards hash the
/// names, which plugins choose, with SipHash), and ordering a bucket's tree, where
/// equal hashes only mean comparing the endpoints themselves, which keeps every search
/// O(log n) whatever the hashes. SipHash in these places cost about a fifth of a lookup
/// and of an insertion.
type QuickHash = foldhash::fast::RandomState;

impl Default for Inner {
    fn default() -> Self {
        Inner {
            by_id: OwnLine::default(),
            removals: OwnLine::default(),
            slots: (0..EventType::COUNT).map(|_| PairSlot::default()).collect(),
            quick_hash: QuickHash::default(),
        }
    }
}

#[derive(Default)]
struct PairSlot {
    untemplated: OwnLine<RwLock<Option<Bucket>>>,
    templated: [OwnLine<RwLock<TemplateMap>>; TEMPLATE_SHARDS],
}

/// One shard of a pair's template buckets, by template name (inline when short).
type TemplateMap = HashMap<CompactString, Bucket>;

/// Keeps a lock, and what it guards inline, on a cache line of its own, so that a writer
/// taking one lock does not slow down the readers of whatever sits next to it in memory:
/// the neighbouring shards, or the fields every dispatch reads beside the id index.
#[derive(Default)]
#[repr(align(64))]
struct OwnLine<T>(T);

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(&self, event_type: EventType) -> &PairSlot {
        &self.inner.slots[event_type.index()]
    }

    /// Where the bucket for a pair and template lives, found once per operation.
    fn place<'a>(&'a self, event_type: EventType, template: Option<&'a str>) -> Place<'a> {
        let slot = self.slot(event_type);
        match template {
            None => Place::Untemplated(&slot.untemplated.0),
            Some(template) => {
                let shard = shard_of(template, &self.inner.quick_hash);
                Place::Templated(&slot.templated[shard].0, template)
            }
        }
    }

    fn hash_endpoint(&self, endpoint: &Endpoint) -> u64 {
        self.inner.quick_hash.hash_one(endpoint.as_str())
    }

    /// Every bucket, for a search: see the module's documentation for what it holds.
    fn snapshot(&self) -> StoreSnapshot {
        let mut taking = TakingSnapshot::begin(&self.inner.removals.0);
        for slot in self.inner.slots.iter() {
            taking.take(slot);
        }
        taking.finish()
    }
}

/// A template's shard: the top bits of its quick hash.
fn shard_of(template: &str, quick_hash: &QuickHash) -> usize {
    const _: () = assert!(TEMPLATE_SHARDS.is_power_of_two());
    // Shifted below TEMPLATE_SHARDS, so the cast cannot truncate.
    (quick_hash.hash_one(template) >> (64 - TEMPLATE_SHARDS.trailing_zeros())) as usize
}

// The store never waits: each operation is a plain function, which the trait's futures
// call, and which the replicated PostgreSQL store calls on its index without a second
// boxed future per lookup.
impl InMemoryStore {
    pub(crate) fn insert_now(&self, subscription: Subscription) -> Result<(), StoreError> {
        let subscription = Arc::new(subscription);
        let key = subscription.key();
        let entry = Entry {
            hash: self.hash_endpoint(key.endpoint()),
            subscription: Arc::clone(&subscription),
        };
        let place = self.place(key.event_type(), key.template_name().map(|t| t.as_str()));
        let already_exists = || StoreError::already_exists(key);
        let mut by_id = write(&self.inner.by_id.0);
        // Into the id index first, before any bucket's lock is taken (growing the index
        // can take a while); it is taken out again if the insert is refused. Nobody sees
        // the index meanwhile: readers of it wait for the writers' lock.
        if !by_id.insert(ById(Arc::clone(&subscription))) {
            // A taken identity is the more useful answer when both are taken.
            return Err(if place.contains(entry.key()) {
                already_exists()
            } else {
                StoreError::backend(STORE, IdInUse(subscription.id()))
            });
        }
        match place.edit(|bucket| bucket.insert(entry, |e| self.hash_endpoint(e))) {
            Some(Ok(())) => Ok(()),
            Some(Err(Taken)) => {
                by_id.remove(subscription.id_ref());
                Err(already_exists())
            }
            None => {
                place.create(Arc::clone(&subscription));
                Ok(())
            }
        }
    }

    pub(crate) fn remove_now(&self, key: &SubscriptionKey) -> Result<Subscription, StoreError> {
        let at = Key {
            hash: self.hash_endpoint(key.endpoint()),
            endpoint: key.endpoint(),
        };
        let place = self.place(key.event_type(), key.template_name().map(|t| t.as_str()));
        let mut by_id = write(&self.inner.by_id.0);
        let Some((removed, emptied)) = place.edit(|bucket| bucket.remove(at)).flatten() else {
            return Err(StoreError::not_found(key));
        };
        if emptied {
            place.drop_bucket();
        }
        by_id.remove(removed.id_ref());
        // Release, after the bucket is written: see `TakingSnapshot`.
        self.inner.removals.0.fetch_add(1, Ordering::Release);
        drop(by_id);
        // A dispatch may still hold the subscription; hand back a copy in that case.
        Ok(Arc::unwrap_or_clone(removed))
    }

    pub(crate) fn get_now(&self, id: Uuid) -> Option<Subscription> {
        read(&self.inner.by_id.0)
            .get(&id)
            .map(|s| Subscription::clone(&s.0))
    }

    pub(crate) fn matching_now(
        &self,
        event_type: EventType,
        template: Option<&str>,
    ) -> Vec<Arc<Subscription>> {
        // Snapshots, each taken under its lock and read after it is released.
        let untemplated = self.place(event_type, None).snapshot();
        let templated = template.and_then(|t| self.place(event_type, Some(t)).snapshot());
        let buckets = [templated, untemplated];
        let mut matches = Vec::with_capacity(buckets.iter().flatten().map(Bucket::len).sum());
        for bucket in buckets.iter().flatten() {
            bucket.extend_into(&mut matches);
        }
        matches
    }

    pub(crate) fn search_now(&self, request: &SearchRequest) -> Page<Subscription> {
        // Not under the id index's lock, which every writer takes: see the module's
        // documentation.
        self.snapshot().search(request)
    }

    pub(crate) fn count_now(&self) -> u64 {
        read(&self.inner.by_id.0).len() as u64
    }

    /// Whether the store holds exactly `subscription` (same id, identity and creation
    /// time), without copying it.
    #[cfg(feature = "postgres")]
    pub(crate) fn holds_now(&self, subscription: &Subscription) -> bool {
        read(&self.inner.by_id.0)
            .get(subscription.id_ref())
            .is_some_and(|held| *held.0 == *subscription)
    }

    /// Every subscription, in no order: what a resynchronisation compares with the
    /// database. Holds the id index's read lock (writers wait) while it copies the
    /// pointers.
    #[cfg(feature = "postgres")]
    pub(crate) fn all_now(&self) -> Vec<Arc<Subscription>> {
        read(&self.inner.by_id.0)
            .iter()
            .map(|s| Arc::clone(&s.0))
            .collect()
    }
}

#[async_trait]
impl SubscriptionStore for InMemoryStore {
    async fn insert(&self, subscription: Subscription) -> Result<(), StoreError> {
        self.insert_now(subscription)
    }

    async fn remove(&self, key: &SubscriptionKey) -> Result<Subscription, StoreError> {
        self.remove_now(key)
    }

    async fn get(&self, id: Uuid) -> Result<Option<Subscription>, StoreError> {
        Ok(self.get_now(id))
    }

    async fn matching(
        &self,
        event_type: EventType,
        template: Option<&str>,
    ) -> Result<Vec<Arc<Subscription>>, StoreError> {
        Ok(self.matching_now(event_type, template))
    }

    async fn search(&self, request: &SearchRequest) -> Result<Page<Subscription>, StoreError> {
        Ok(self.search_now(request))
    }

    async fn count(&self) -> Result<u64, StoreError> {
        Ok(self.count_now())
    }
}

/// A subscription in the id index, hashed and compared by id alone, so the set can be
/// looked up with a bare `Uuid` and holds no second copy of it.
#[derive(Debug)]
struct ById(Arc<Subscription>);

/// A subscription whose id another subscription already has: the store's own failure
/// (ids are random), not the caller's.
#[derive(Debug)]
struct IdInUse(Uuid);

impl fmt::Display for IdInUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "subscription id {} is already in use", self.0)
    }
}

impl std::error::Error for IdInUse {}

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

#[cfg(test)]
mod tests;
