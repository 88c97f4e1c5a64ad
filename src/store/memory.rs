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
//! [`matching`]: SubscriptionStore::matching

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use compact_str::CompactString;
use uuid::Uuid;

use crate::catalog::EventType;
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::search::{Page, SearchRequest};
use crate::store::SubscriptionStore;
use crate::subscription::{Subscription, SubscriptionKey};

/// Template buckets of one pair are spread over this many maps, so that growing one map
/// (a rehash, the only write that is not O(log n)) stalls few readers, briefly.
const TEMPLATE_SHARDS: usize = 32;

/// The most entries a bucket's leaf, or children a branch, holds. Small enough that
/// copying a node is cheap, large enough that reading a bucket is mostly slice copies.
const FANOUT: usize = 32;

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
}

/// A template's shard: the top bits of its quick hash.
fn shard_of(template: &str, quick_hash: &QuickHash) -> usize {
    const _: () = assert!(TEMPLATE_SHARDS.is_power_of_two());
    // Shifted below TEMPLATE_SHARDS, so the cast cannot truncate.
    (quick_hash.hash_one(template) >> (64 - TEMPLATE_SHARDS.trailing_zeros())) as usize
}

/// Where one bucket lives: its pair's untemplated slot, or its template's shard map.
enum Place<'a> {
    Untemplated(&'a RwLock<Option<Bucket>>),
    Templated(&'a RwLock<TemplateMap>, &'a str),
}

/// The bucket already holds a subscription at that endpoint.
#[derive(Debug)]
struct Taken;

impl Place<'_> {
    /// The current bucket, if any: a snapshot, for one reference count.
    fn snapshot(&self) -> Option<Bucket> {
        match *self {
            Place::Untemplated(slot) => read(slot).clone(),
            Place::Templated(shard, template) => read(shard).get(template).cloned(),
        }
    }

    /// Whether the bucket holds a subscription at `key`.
    fn contains(&self, key: Key<'_>) -> bool {
        match *self {
            Place::Untemplated(slot) => read(slot).as_ref().is_some_and(|b| b.contains(key)),
            Place::Templated(shard, template) => {
                read(shard).get(template).is_some_and(|b| b.contains(key))
            }
        }
    }

    /// Applies `edit` to the bucket; `None` when there is no bucket. Callers hold the
    /// writers' lock, so no other write happens meanwhile.
    ///
    /// When no reader holds a snapshot of the bucket (the usual case), the edit is made
    /// in place, under the bucket's lock: nothing is copied, and only the nodes on one
    /// path are touched. Otherwise the edit is made on a copy, outside the lock (sharing
    /// all but the copied path), and the copy is swapped in: readers then wait for no
    /// more than the swap, and the snapshots they hold stay as they were.
    fn edit<R>(&self, edit: impl FnOnce(&mut Bucket) -> R) -> Option<R> {
        match *self {
            Place::Untemplated(slot) => edit_bucket(slot, Option::as_mut, edit),
            Place::Templated(shard, template) => {
                edit_bucket(shard, |shard| shard.get_mut(template), edit)
            }
        }
    }

    /// Makes the bucket, of one subscription. Callers hold the writers' lock and found
    /// no bucket.
    fn create(&self, only: Arc<Subscription>) {
        match *self {
            Place::Untemplated(slot) => *write(slot) = Some(Bucket::One(only)),
            Place::Templated(shard, template) => {
                write(shard).insert(CompactString::new(template), Bucket::One(only));
            }
        }
    }

    /// Drops the bucket. Callers hold the writers' lock.
    fn drop_bucket(&self) {
        let dropped = match *self {
            Place::Untemplated(slot) => write(slot).take(),
            Place::Templated(shard, template) => write(shard).remove(template),
        };
        // After the lock is released.
        drop(dropped);
    }
}

/// [`Place::edit`], for a bucket that `locate` finds in what `lock` guards.
fn edit_bucket<T, R>(
    lock: &RwLock<T>,
    locate: impl Fn(&mut T) -> Option<&mut Bucket>,
    edit: impl FnOnce(&mut Bucket) -> R,
) -> Option<R> {
    let mut guard = write(lock);
    let bucket = locate(&mut guard)?;
    if !bucket.is_shared() {
        return Some(edit(bucket));
    }
    let mut next = bucket.clone();
    drop(guard);
    // An edit that finds nothing to do (a duplicate, a miss) may still have copied
    // nodes: the copy holds the same subscriptions, so swapping it in changes nothing.
    let result = edit(&mut next);
    let previous = locate(&mut write(lock)).map(|current| std::mem::replace(current, next));
    // Dropping the previous version may free the nodes only it used: not under the lock.
    drop(previous);
    Some(result)
}

#[async_trait]
impl SubscriptionStore for InMemoryStore {
    async fn insert(&self, subscription: Subscription) -> Result<(), Error> {
        let subscription = Arc::new(subscription);
        let key = subscription.key();
        let entry = Entry {
            hash: self.hash_endpoint(key.endpoint()),
            subscription: Arc::clone(&subscription),
        };
        let place = self.place(key.event_type(), key.template_name().map(|t| t.as_str()));
        let already_exists = || Error::AlreadyExists {
            subscription: Box::new(key.clone()),
        };
        let mut by_id = write(&self.inner.by_id.0);
        // Into the id index first, before any bucket's lock is taken (growing the index
        // can take a while); it is taken out again if the insert is refused. Nobody sees
        // the index meanwhile: readers of it wait for the writers' lock.
        if !by_id.insert(ById(Arc::clone(&subscription))) {
            // A taken identity is the more useful answer when both are taken.
            return Err(if place.contains(entry.key()) {
                already_exists()
            } else {
                Error::Internal {
                    source: format!("subscription id {} is already in use", subscription.id())
                        .into(),
                }
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

    async fn remove(&self, key: &SubscriptionKey) -> Result<Subscription, Error> {
        let at = Key {
            hash: self.hash_endpoint(key.endpoint()),
            endpoint: key.endpoint(),
        };
        let place = self.place(key.event_type(), key.template_name().map(|t| t.as_str()));
        let mut by_id = write(&self.inner.by_id.0);
        let Some((removed, emptied)) = place.edit(|bucket| bucket.remove(at)).flatten() else {
            return Err(Error::NotFound {
                subscription: Box::new(key.clone()),
            });
        };
        if emptied {
            place.drop_bucket();
        }
        by_id.remove(removed.id_ref());
        drop(by_id);
        // A dispatch may still hold the subscription; hand back a copy in that case.
        Ok(Arc::unwrap_or_clone(removed))
    }

    async fn get(&self, id: Uuid) -> Result<Option<Subscription>, Error> {
        Ok(read(&self.inner.by_id.0)
            .get(&id)
            .map(|s| Subscription::clone(&s.0)))
    }

    async fn matching(
        &self,
        event_type: EventType,
        template: Option<&str>,
    ) -> Result<Vec<Arc<Subscription>>, Error> {
        // Snapshots, each taken under its lock and read after it is released.
        let untemplated = self.place(event_type, None).snapshot();
        let templated = template.and_then(|t| self.place(event_type, Some(t)).snapshot());
        let buckets = [templated, untemplated];
        let mut matches = Vec::with_capacity(buckets.iter().flatten().map(Bucket::len).sum());
        for bucket in buckets.iter().flatten() {
            bucket.extend_into(&mut matches);
        }
        Ok(matches)
    }

    async fn search(&self, request: &SearchRequest) -> Result<Page<Subscription>, Error> {
        let by_id = read(&self.inner.by_id.0);
        Ok(request.evaluate(by_id.iter().map(|s| &*s.0)))
    }

    async fn count(&self) -> Result<u64, Error> {
        Ok(read(&self.inner.by_id.0).len() as u64)
    }
}

/// A non-empty set of subscriptions that share a pair and a template.
/// Cloning it is a reference-count bump: a snapshot.
#[derive(Clone)]
enum Bucket {
    /// The only subscription: no tree to allocate for the many buckets of one.
    One(Arc<Subscription>),
    /// Two or more. No count is kept beside the tree: a writer would update it on every
    /// write, on the cache line readers look the bucket up in.
    Tree(Node),
}

/// A node of a bucket's B+tree, shared by every version of the tree that still has it.
/// Never empty in a published tree; entries, and children's entries, are in strictly
/// increasing [`Key`] order, every leaf is at the same depth, and no node holds more
/// than [`FANOUT`] entries or children, nor has room for more.
#[derive(Clone)]
enum Node {
    Leaf(Arc<Vec<Entry>>),
    Branch(Arc<Vec<Node>>),
}

/// A subscription in a bucket's tree, with the hash of its endpoint.
#[derive(Clone)]
struct Entry {
    hash: u64,
    subscription: Arc<Subscription>,
}

/// What a bucket's tree is ordered by: the endpoint's hash, then the endpoint. Searching
/// by hash first turns nearly every comparison on the way down into an integer
/// comparison, where comparing endpoints would read two more allocations (the
/// subscription, then its endpoint) for each, mostly missing the cache.
#[derive(Clone, Copy)]
struct Key<'a> {
    hash: u64,
    endpoint: &'a Endpoint,
}

impl Entry {
    fn key(&self) -> Key<'_> {
        Key {
            hash: self.hash,
            endpoint: self.subscription.endpoint(),
        }
    }

    fn cmp(&self, key: Key<'_>) -> Ordering {
        self.hash
            .cmp(&key.hash)
            .then_with(|| self.subscription.endpoint().cmp(key.endpoint))
    }
}

impl Bucket {
    fn len(&self) -> usize {
        match self {
            Bucket::One(_) => 1,
            Bucket::Tree(root) => root.len(),
        }
    }

    fn extend_into(&self, out: &mut Vec<Arc<Subscription>>) {
        match self {
            Bucket::One(only) => out.push(Arc::clone(only)),
            Bucket::Tree(root) => root.extend_into(out),
        }
    }

    /// Whether a reader may hold a snapshot of this bucket's tree. A plain read of the
    /// root's count: writers check it under the bucket's lock, where no reader can take
    /// a new snapshot, and [`Arc::make_mut`] checks every node again on the way down.
    fn is_shared(&self) -> bool {
        match self {
            Bucket::One(_) => false,
            Bucket::Tree(Node::Leaf(entries)) => Arc::strong_count(entries) > 1,
            Bucket::Tree(Node::Branch(children)) => Arc::strong_count(children) > 1,
        }
    }

    fn contains(&self, key: Key<'_>) -> bool {
        match self {
            Bucket::One(only) => only.endpoint() == key.endpoint,
            Bucket::Tree(root) => root.contains(key),
        }
    }

    /// Adds `entry`, unless its endpoint is taken. `hash` is how `entry.hash` was
    /// computed.
    fn insert(&mut self, entry: Entry, hash: impl Fn(&Endpoint) -> u64) -> Result<(), Taken> {
        match self {
            Bucket::One(only) => {
                let only = Entry {
                    hash: hash(only.endpoint()),
                    subscription: Arc::clone(only),
                };
                let pair = match only.cmp(entry.key()) {
                    Ordering::Less => vec![only, entry],
                    Ordering::Greater => vec![entry, only],
                    Ordering::Equal => return Err(Taken),
                };
                *self = Bucket::Tree(Node::Leaf(Arc::new(pair)));
            }
            Bucket::Tree(root) => {
                if let Some(upper) = root.insert(entry)? {
                    // The root split: the tree grows a level.
                    *root = Node::Branch(Arc::new(vec![root.clone(), upper]));
                }
            }
        }
        Ok(())
    }

    /// Takes out the subscription at `key`, and says whether it was the bucket's last
    /// (the caller then drops the bucket); `None` when there is no such subscription.
    fn remove(&mut self, key: Key<'_>) -> Option<(Arc<Subscription>, bool)> {
        let (removed, only_left) = match self {
            Bucket::One(only) => {
                return (only.endpoint() == key.endpoint).then(|| (Arc::clone(only), true))
            }
            Bucket::Tree(root) => {
                let removed = root.remove(key)?;
                // Keep the tree no taller than it needs: a branch with one child is
                // that child, and a bucket of one needs no tree.
                while let Node::Branch(children) = root {
                    if children.len() > 1 {
                        break;
                    }
                    let only_child = children[0].clone();
                    *root = only_child;
                }
                let only_left = match root {
                    Node::Leaf(entries) if entries.len() == 1 => {
                        Some(Arc::clone(&entries[0].subscription))
                    }
                    _ => None,
                };
                (removed, only_left)
            }
        };
        if let Some(only) = only_left {
            *self = Bucket::One(only);
        }
        Some((removed, false))
    }
}

impl Node {
    /// The entry with the lowest key.
    fn first(&self) -> &Entry {
        let mut node = self;
        loop {
            match node {
                Node::Leaf(entries) => return &entries[0],
                Node::Branch(children) => node = &children[0],
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Node::Leaf(entries) => entries.len(),
            Node::Branch(children) => children.iter().map(Node::len).sum(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Node::Leaf(entries) => entries.is_empty(),
            Node::Branch(children) => children.is_empty(),
        }
    }

    fn extend_into(&self, out: &mut Vec<Arc<Subscription>>) {
        match self {
            Node::Leaf(entries) => out.extend(entries.iter().map(|e| Arc::clone(&e.subscription))),
            Node::Branch(children) => children.iter().for_each(|c| c.extend_into(out)),
        }
    }

    /// Which child holds `key`, or would: the last whose lowest key is not above it
    /// (the first child takes everything below the second).
    fn route(children: &[Node], key: Key<'_>) -> usize {
        children[1..].partition_point(|child| child.first().cmp(key) != Ordering::Greater)
    }

    fn contains(&self, key: Key<'_>) -> bool {
        match self {
            Node::Leaf(entries) => entries.binary_search_by(|e| e.cmp(key)).is_ok(),
            Node::Branch(children) => children[Node::route(children, key)].contains(key),
        }
    }

    /// Adds `entry`, in place where no other version of the tree shares the node (the
    /// usual case), on a copy of the node where one does ([`Arc::make_mut`]). When the
    /// node was full, its upper half is split off and returned, for the caller to add
    /// beside it.
    fn insert(&mut self, entry: Entry) -> Result<Option<Node>, Taken> {
        match self {
            Node::Leaf(entries) => {
                let Err(at) = entries.binary_search_by(|e| e.cmp(entry.key())) else {
                    return Err(Taken);
                };
                let upper = insert_or_split(Arc::make_mut(entries), at, entry);
                Ok(upper.map(|upper| Node::Leaf(Arc::new(upper))))
            }
            Node::Branch(children) => {
                let at = Node::route(children, entry.key());
                let children = Arc::make_mut(children);
                let Some(split_off) = children[at].insert(entry)? else {
                    return Ok(None);
                };
                let upper = insert_or_split(children, at + 1, split_off);
                Ok(upper.map(|upper| Node::Branch(Arc::new(upper))))
            }
        }
    }

    /// Takes out the subscription at `key` (in place, or on a copy of a shared node, as
    /// [`insert`](Self::insert)), leaving this node empty if it was its last; `None`
    /// when there is none. An emptied child is dropped from its branch.
    fn remove(&mut self, key: Key<'_>) -> Option<Arc<Subscription>> {
        match self {
            Node::Leaf(entries) => {
                let at = entries.binary_search_by(|e| e.cmp(key)).ok()?;
                Some(Arc::make_mut(entries).remove(at).subscription)
            }
            Node::Branch(children) => {
                // A miss may have copied the nodes on its way that a reader shared: the
                // copies hold the same entries, so the tree is unchanged.
                let at = Node::route(children, key);
                let children = Arc::make_mut(children);
                let removed = children[at].remove(key);
                if children[at].is_empty() {
                    children.remove(at);
                }
                removed
            }
        }
    }
}

/// Inserts `item` at `at`. A full node (of [`FANOUT`]) first gives up its upper half,
/// returned as a node of its own, so no node ever grows past `FANOUT` nor allocates room
/// beyond it.
fn insert_or_split<T>(items: &mut Vec<T>, at: usize, item: T) -> Option<Vec<T>> {
    if items.len() < FANOUT {
        if items.len() == items.capacity() {
            // Doubling, but never past FANOUT: the spare room of a full node is waste.
            let room = items.len().max(4).min(FANOUT - items.len());
            items.reserve_exact(room);
        }
        items.insert(at, item);
        return None;
    }
    let half = FANOUT / 2;
    let mut upper = items.split_off(half);
    if at <= half {
        items.insert(at, item);
    } else {
        upper.insert(at - half, item);
    }
    Some(upper)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Action, EntityType};
    use crate::subscription::TemplateName;
    use futures_util::FutureExt;

    fn pair() -> EventType {
        EventType::new(EntityType::Patient, Action::Update).unwrap()
    }

    fn key(n: u64, template: Option<&str>) -> SubscriptionKey {
        let endpoint = Endpoint::parse(&format!("https://h{n}.example.com/hook")).unwrap();
        let template = template.map(|t| TemplateName::new(t).unwrap());
        SubscriptionKey::new(pair(), endpoint, template)
    }

    fn ready<F: std::future::Future>(future: F) -> F::Output {
        future
            .now_or_never()
            .expect("the in-memory store never waits")
    }

    /// Checks a tree's invariants and returns its entries in order.
    fn entries(node: &Node, depth: usize, leaf_depth: &mut Option<usize>) -> Vec<Entry> {
        match node {
            Node::Leaf(entries) => {
                assert!(!entries.is_empty() && entries.capacity() <= FANOUT);
                assert_eq!(
                    *leaf_depth.get_or_insert(depth),
                    depth,
                    "leaves at one depth"
                );
                entries.to_vec()
            }
            Node::Branch(children) => {
                assert!(!children.is_empty() && children.capacity() <= FANOUT);
                children
                    .iter()
                    .flat_map(|c| entries(c, depth + 1, leaf_depth))
                    .collect()
            }
        }
    }

    /// Checks a tree's invariants (balanced, strictly ordered, every hash `hash` of its
    /// endpoint) and returns its endpoints, sorted.
    fn tree_endpoints(root: &Node, hash: impl Fn(&Endpoint) -> u64) -> Vec<String> {
        let all = entries(root, 0, &mut None);
        for pair in all.windows(2) {
            assert_eq!(
                pair[0].cmp(pair[1].key()),
                Ordering::Less,
                "strictly ordered"
            );
        }
        for e in &all {
            assert_eq!(e.hash, hash(e.subscription.endpoint()));
        }
        let mut found: Vec<String> = all
            .iter()
            .map(|e| e.subscription.endpoint().to_string())
            .collect();
        found.sort();
        found
    }

    /// Checks a bucket's invariants (those of its tree) and returns its endpoints, sorted.
    fn bucket_endpoints(bucket: Option<&Bucket>, hash: impl Fn(&Endpoint) -> u64) -> Vec<String> {
        match bucket {
            None => Vec::new(),
            Some(Bucket::One(only)) => vec![only.endpoint().to_string()],
            Some(Bucket::Tree(root)) => {
                let found = tree_endpoints(root, hash);
                assert!(found.len() > 1, "a bucket of one is not a tree");
                assert_eq!(root.len(), found.len());
                found
            }
        }
    }

    /// The endpoints in `store`'s untemplated bucket of [`pair`], its invariants checked.
    fn untemplated_endpoints(store: &InMemoryStore) -> Vec<String> {
        let slot = read(&store.slot(pair()).untemplated.0);
        bucket_endpoints(slot.as_ref(), |e| store.hash_endpoint(e))
    }

    #[test]
    fn a_large_bucket_stays_a_sorted_balanced_tree_through_inserts_and_removes() {
        let store = InMemoryStore::new();
        let mut present = std::collections::BTreeSet::new();
        // A fixed pseudo-random order, so splits happen everywhere in the tree.
        let order: Vec<u64> = (0..5_000u64).map(|i| i * 7_919 % 5_000).collect();
        for (step, &n) in order.iter().enumerate() {
            ready(store.insert(Subscription::new(key(n, None)))).unwrap();
            present.insert(key(n, None).endpoint().to_string());
            if step % 997 == 0 || step == order.len() - 1 {
                let expected: Vec<String> = present.iter().cloned().collect();
                assert_eq!(untemplated_endpoints(&store), expected);
            }
        }
        assert_eq!(ready(store.matching(pair(), None)).unwrap().len(), 5_000);
        for &n in &order {
            let err = ready(store.insert(Subscription::new(key(n, None)))).unwrap_err();
            assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
        }
        for (step, &n) in order.iter().rev().enumerate() {
            let removed = ready(store.remove(&key(n, None))).unwrap();
            assert_eq!(removed.key(), &key(n, None));
            present.remove(&removed.endpoint().to_string());
            assert!(ready(store.remove(&key(n, None))).is_err());
            if step % 499 == 0 {
                let expected: Vec<String> = present.iter().cloned().collect();
                assert_eq!(untemplated_endpoints(&store), expected);
            }
        }
        assert!(read(&store.slot(pair()).untemplated.0).is_none());
        assert_eq!(ready(store.count()).unwrap(), 0);
    }

    #[test]
    fn colliding_hashes_are_told_apart_by_endpoint() {
        // Three hash values for 500 endpoints: long runs of equal hashes, in and across leaves.
        let hash = |e: &Endpoint| e.as_str().len() as u64 % 3;
        let subscription = |n: u64| Arc::new(Subscription::new(key(n, None)));
        let entry = |n: u64| {
            let subscription = subscription(n);
            Entry {
                hash: hash(subscription.endpoint()),
                subscription,
            }
        };
        let mut bucket = Bucket::One(subscription(0));
        for n in (1..500).rev() {
            bucket.insert(entry(n), hash).expect("a new endpoint");
            assert!(bucket.insert(entry(n), hash).is_err(), "a duplicate");
        }
        let mut expected: Vec<String> = (0..500)
            .map(|n| key(n, None).endpoint().to_string())
            .collect();
        expected.sort();
        assert_eq!(bucket_endpoints(Some(&bucket), hash), expected);
        for n in 0..500 {
            let endpoint = key(n, None).endpoint().clone();
            let at = Key {
                hash: hash(&endpoint),
                endpoint: &endpoint,
            };
            assert!(bucket.contains(at));
            let (removed, emptied) = bucket.remove(at).expect("present");
            assert_eq!(removed.endpoint(), &endpoint);
            assert_eq!(
                emptied,
                n == 499,
                "only the last removal empties the bucket"
            );
            if !emptied {
                assert!(!bucket.contains(at), "removed");
                assert!(bucket.remove(at).is_none(), "removed");
            }
        }
    }

    #[test]
    fn a_reader_s_snapshot_is_untouched_by_later_writes() {
        let store = InMemoryStore::new();
        let hash = |e: &Endpoint| store.hash_endpoint(e);
        let entry = |n: u64| {
            let subscription = Arc::new(Subscription::new(key(n, None)));
            Entry {
                hash: hash(subscription.endpoint()),
                subscription,
            }
        };
        let mut bucket = Bucket::One(entry(0).subscription);
        for n in 1..2_000 {
            bucket.insert(entry(n), hash).unwrap();
        }
        let Bucket::Tree(snapshot) = bucket.clone() else {
            panic!("a bucket of 2,000 is a tree");
        };
        let before = tree_endpoints(&snapshot, hash);
        // Writes everywhere in the tree, on nodes the snapshot shares: each is copied.
        for n in (0..2_000).step_by(3) {
            let endpoint = key(n, None).endpoint().clone();
            let at = Key {
                hash: hash(&endpoint),
                endpoint: &endpoint,
            };
            bucket.remove(at).expect("present");
        }
        for n in 2_000..3_000 {
            bucket.insert(entry(n), hash).unwrap();
        }
        assert_eq!(tree_endpoints(&snapshot, hash), before);
        assert_eq!(
            bucket_endpoints(Some(&bucket), hash).len(),
            2_000 - 667 + 1_000
        );
        // With the snapshot gone, the same writes happen in place.
        drop(snapshot);
        for n in 3_000..3_100 {
            bucket.insert(entry(n), hash).unwrap();
        }
        assert_eq!(bucket_endpoints(Some(&bucket), hash).len(), 2_433);
    }

    #[test]
    fn a_store_write_leaves_a_held_snapshot_alone() {
        let store = InMemoryStore::new();
        let place = || store.place(pair(), None);
        let endpoints =
            |bucket: &Bucket| bucket_endpoints(Some(bucket), |e| store.hash_endpoint(e));
        for n in 0..100 {
            ready(store.insert(Subscription::new(key(n, None)))).unwrap();
        }
        let snapshot = place().snapshot().expect("a bucket");
        let before = endpoints(&snapshot);
        // Shared with the snapshot: edited on a copy, swapped in.
        ready(store.insert(Subscription::new(key(100, None)))).unwrap();
        ready(store.remove(&key(0, None))).unwrap();
        assert_eq!(endpoints(&snapshot), before);
        let now = untemplated_endpoints(&store);
        assert_eq!(now.len(), 100);
        assert!(now.contains(&key(100, None).endpoint().to_string()));
        drop(snapshot);
        // No snapshot left: edited in place.
        assert!(!read(&store.slot(pair()).untemplated.0)
            .as_ref()
            .unwrap()
            .is_shared());
        ready(store.insert(Subscription::new(key(0, None)))).unwrap();
        assert_eq!(untemplated_endpoints(&store).len(), 101);
    }

    #[test]
    fn a_clashing_id_is_refused_and_a_taken_identity_wins() {
        let store = InMemoryStore::new();
        let first = Subscription::new(key(1, None));
        ready(store.insert(first.clone())).unwrap();
        // The same subscription again: its identity is the useful answer.
        let err = ready(store.insert(first.clone())).unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
        // Another identity under a taken id: refused, and nothing changes.
        let clash = Subscription::from_parts(first.id(), key(2, None), first.created_at());
        let err = ready(store.insert(clash)).unwrap_err();
        assert!(matches!(err, Error::Internal { .. }), "{err:?}");
        assert_eq!(
            untemplated_endpoints(&store),
            [key(1, None).endpoint().to_string()]
        );
        assert_eq!(ready(store.count()).unwrap(), 1);
    }

    #[test]
    fn template_buckets_are_found_by_name_and_dropped_when_empty() {
        let store = InMemoryStore::new();
        for n in 0..100 {
            let template = format!("template{}", n % 10);
            ready(store.insert(Subscription::new(key(n, Some(&template))))).unwrap();
        }
        for t in 0..10 {
            let template = format!("template{t}");
            let found = ready(store.matching(pair(), Some(&template))).unwrap();
            assert_eq!(found.len(), 10);
            assert!(found
                .iter()
                .all(|s| s.template_name().unwrap().as_str() == template));
        }
        for n in 0..100 {
            let template = format!("template{}", n % 10);
            ready(store.remove(&key(n, Some(&template)))).unwrap();
        }
        let slot = store.slot(pair());
        assert!(slot.templated.iter().all(|shard| read(&shard.0).is_empty()));
    }

    #[test]
    fn template_names_spread_over_every_shard() {
        let quick_hash = QuickHash::default();
        let mut counts = [0usize; TEMPLATE_SHARDS];
        for n in 0..32_000 {
            counts[shard_of(&format!("template-{n:08}"), &quick_hash)] += 1;
        }
        // 1,000 each on average, give or take 32 (one standard deviation) for a fair spread.
        assert!(
            counts.iter().all(|&c| (800..1_250).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn debug_counts_instead_of_listing() {
        let store = InMemoryStore::new();
        ready(store.insert(Subscription::new(key(1, None)))).unwrap();
        assert_eq!(
            format!("{store:?}"),
            "InMemoryStore { subscriptions: 1, .. }"
        );
    }
}
