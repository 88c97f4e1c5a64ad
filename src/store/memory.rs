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
//! A bucket is an immutable snapshot: a persistent B+tree of `Arc<Subscription>`s with
//! nodes of at most 32 entries (or, for the many buckets of one, just that one).
//! Writers (serialised by one lock) build the next snapshot off to the side and publish
//! it with a pointer swap, so a dispatch never waits behind a write for longer than that
//! swap, and a dispatch that is already running keeps the snapshot it started with. The
//! next snapshot shares every node of the current one but those on the path to the
//! changed entry, so a write costs O(log n) in the bucket's size: a bucket of 10,000
//! costs a write about as much as one of 100 (a flat copy-on-write array would copy all
//! 10,000, and filling one bucket would take quadratic time).
//!
//! A tree is ordered by a seeded hash of the endpoint, then the endpoint, so finding a
//! duplicate or the subscription to remove is O(log n) integer comparisons, not string
//! comparisons through two pointers each. Removals do not rebalance: after many of them
//! nodes may be less than half full, which costs a little memory, never correctness.
//! A shard map keys each template's bucket by its own copy of the name: finding the
//! name through the bucket's first subscription instead would save that copy, but cost
//! two more cache misses on every lookup of a bucket not in cache.
//!
//! [`matching`]: SubscriptionStore::matching

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::iter;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
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
            .field("subscriptions", &read(&self.inner.by_id).len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Every subscription by id. Its write lock also serialises writers, which makes
    /// the duplicate check and the publication of a bucket one atomic step.
    by_id: RwLock<HashSet<ById>>,
    /// The dispatch index, one slot per valid pair, indexed by `EventType::index`.
    slots: Box<[PairSlot]>,
    /// Seeds [`quick_hash`]; random per store.
    seed: u64,
}

impl Default for Inner {
    fn default() -> Self {
        let seed = RandomState::new().hash_one("InMemoryStore");
        Inner {
            by_id: RwLock::default(),
            slots: (0..EventType::COUNT).map(|_| PairSlot::default()).collect(),
            seed,
        }
    }
}

#[derive(Default)]
struct PairSlot {
    untemplated: OwnLine<RwLock<Option<Bucket>>>,
    templated: [OwnLine<RwLock<TemplateMap>>; TEMPLATE_SHARDS],
}

/// One shard of a pair's template buckets, by template name.
type TemplateMap = HashMap<Box<str>, Bucket>;

/// Keeps a lock on a cache line of its own, so a writer taking one shard's lock does not
/// slow down the readers of the shards next to it in memory.
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
                let shard = shard_of(template, self.inner.seed);
                Place::Templated(&slot.templated[shard].0, template)
            }
        }
    }

    fn hash_endpoint(&self, endpoint: &Endpoint) -> u64 {
        quick_hash(endpoint.as_str().as_bytes(), self.inner.seed)
    }
}

/// A template's shard: the top bits of its [`quick_hash`].
fn shard_of(template: &str, seed: u64) -> usize {
    const _: () = assert!(TEMPLATE_SHARDS.is_power_of_two());
    // Shifted below TEMPLATE_SHARDS, so the cast cannot truncate.
    (quick_hash(template.as_bytes(), seed) >> (64 - TEMPLATE_SHARDS.trailing_zeros())) as usize
}

/// A fast seeded hash, eight bytes at a time, for what needs a spread and not a defence:
/// picking a template's shard (the maps in the shards hash with SipHash), and ordering a
/// bucket's tree, where equal hashes only mean comparing the endpoints themselves, which
/// keeps every search O(log n) whatever the hashes. SipHash in these two places cost
/// about a fifth of a lookup and of an insertion.
fn quick_hash(bytes: &[u8], seed: u64) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let step = |hash: u64, word: u64| (hash ^ word).wrapping_mul(K).rotate_left(31);
    let mut chunks = bytes.chunks_exact(8);
    let mut hash = step(seed, bytes.len() as u64);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        hash = step(hash, u64::from_le_bytes(word));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0; 8];
        word[..rest.len()].copy_from_slice(rest);
        hash = step(hash, u64::from_le_bytes(word));
    }
    // splitmix64's finaliser, so every input bit reaches the top bits shards are cut from.
    let hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// Where one bucket lives: its pair's untemplated slot, or its template's shard map.
enum Place<'a> {
    Untemplated(&'a RwLock<Option<Bucket>>),
    Templated(&'a RwLock<TemplateMap>, &'a str),
}

impl Place<'_> {
    /// The current bucket, if any (a reference-count bump).
    fn bucket(&self) -> Option<Bucket> {
        match *self {
            Place::Untemplated(slot) => read(slot).clone(),
            Place::Templated(shard, template) => read(shard).get(template).cloned(),
        }
    }

    /// Publishes the next snapshot of the bucket; `None` drops the bucket.
    /// Callers hold the writer lock.
    fn publish(&self, next: Option<Bucket>) {
        let previous = match *self {
            Place::Untemplated(slot) => std::mem::replace(&mut *write(slot), next),
            Place::Templated(shard, template) => {
                let mut shard = write(shard);
                match next {
                    Some(next) => match shard.get_mut(template) {
                        Some(current) => Some(std::mem::replace(current, next)),
                        None => shard.insert(template.into(), next),
                    },
                    None => shard.remove(template),
                }
            }
        };
        // Dropping the old snapshot may release a subscription (after a removal) and the
        // nodes only it used: do that work after the shard's lock is gone.
        drop(previous);
    }
}

#[async_trait]
impl SubscriptionStore for InMemoryStore {
    async fn insert(&self, subscription: Subscription) -> Result<(), Error> {
        let mut by_id = write(&self.inner.by_id);
        let subscription = Arc::new(subscription);
        let key = subscription.key();
        let place = self.place(key.event_type(), key.template_name().map(|t| t.as_str()));
        let next = match place.bucket() {
            None => Bucket::One(Arc::clone(&subscription)),
            Some(current) => {
                let entry = Entry {
                    hash: self.hash_endpoint(key.endpoint()),
                    subscription: Arc::clone(&subscription),
                };
                current
                    .insert(entry, |e| self.hash_endpoint(e))
                    .ok_or_else(|| Error::AlreadyExists {
                        subscription: Box::new(key.clone()),
                    })?
            }
        };
        // Nothing is published yet, so a refused id leaves the store as it was.
        if !by_id.insert(ById(Arc::clone(&subscription))) {
            return Err(Error::Internal {
                source: format!("subscription id {} is already in use", subscription.id()).into(),
            });
        }
        place.publish(Some(next));
        Ok(())
    }

    async fn remove(&self, key: &SubscriptionKey) -> Result<Subscription, Error> {
        let mut by_id = write(&self.inner.by_id);
        let place = self.place(key.event_type(), key.template_name().map(|t| t.as_str()));
        let Some((next, removed)) = place.bucket().and_then(|current| {
            current.remove(Key {
                hash: self.hash_endpoint(key.endpoint()),
                endpoint: key.endpoint(),
            })
        }) else {
            return Err(Error::NotFound {
                subscription: Box::new(key.clone()),
            });
        };
        place.publish(next);
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
        let untemplated = self.place(event_type, None).bucket();
        let templated = template.and_then(|t| self.place(event_type, Some(t)).bucket());
        let mut matches =
            Vec::with_capacity(Bucket::len_of(&untemplated) + Bucket::len_of(&templated));
        for bucket in [templated, untemplated].iter().flatten() {
            bucket.extend_into(&mut matches);
        }
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

/// An immutable, non-empty set of subscriptions that share a pair and a template.
/// Cloning it is a reference-count bump.
#[derive(Clone)]
enum Bucket {
    /// The only subscription: no tree to allocate for the many buckets of one.
    One(Arc<Subscription>),
    Tree(Node),
}

/// A node of a bucket's B+tree. Never empty; entries, and children's entries, are in
/// strictly increasing [`Key`] order, and every leaf is at the same depth.
#[derive(Clone)]
enum Node {
    Leaf(Arc<[Entry]>),
    Branch(Arc<[Node]>),
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

/// What an insertion made of a node: the node, or two when it outgrew [`FANOUT`].
enum Grown {
    One(Node),
    Two(Node, Node),
}

impl Entry {
    fn cmp(&self, key: Key<'_>) -> Ordering {
        self.hash
            .cmp(&key.hash)
            .then_with(|| self.subscription.endpoint().cmp(key.endpoint))
    }
}

impl Bucket {
    fn len_of(bucket: &Option<Bucket>) -> usize {
        match bucket {
            None => 0,
            Some(Bucket::One(_)) => 1,
            Some(Bucket::Tree(root)) => root.len(),
        }
    }

    fn extend_into(&self, out: &mut Vec<Arc<Subscription>>) {
        match self {
            Bucket::One(only) => out.push(Arc::clone(only)),
            Bucket::Tree(root) => root.extend_into(out),
        }
    }

    /// The next snapshot, with `entry` added; `None` when its endpoint is taken.
    /// `hash` is how `entry.hash` was computed.
    fn insert(&self, entry: Entry, hash: impl Fn(&Endpoint) -> u64) -> Option<Bucket> {
        let grown = match self {
            Bucket::One(only) => {
                let only = Entry {
                    hash: hash(only.endpoint()),
                    subscription: Arc::clone(only),
                };
                let key = Key {
                    hash: entry.hash,
                    endpoint: entry.subscription.endpoint(),
                };
                let pair = match only.cmp(key) {
                    Ordering::Less => [only, entry],
                    Ordering::Greater => [entry, only],
                    Ordering::Equal => return None,
                };
                Grown::One(Node::Leaf(Arc::new(pair)))
            }
            Bucket::Tree(root) => root.insert(entry)?,
        };
        Some(Bucket::Tree(match grown {
            Grown::One(root) => root,
            Grown::Two(left, right) => Node::Branch(Arc::new([left, right])),
        }))
    }

    /// The next snapshot without the subscription at `key` (`None` when that was the
    /// last one), and that subscription; `None` when there is none.
    fn remove(&self, key: Key<'_>) -> Option<(Option<Bucket>, Arc<Subscription>)> {
        let (mut root, removed) = match self {
            Bucket::One(only) if only.endpoint() == key.endpoint => {
                return Some((None, Arc::clone(only)))
            }
            Bucket::One(_) => return None,
            Bucket::Tree(root) => root.remove(key)?,
        };
        // Keep the tree no taller than it needs: a branch with one child is that child,
        // and a leaf of one is that one.
        loop {
            match &root {
                Some(Node::Branch(children)) if children.len() == 1 => {
                    root = Some(children[0].clone());
                }
                Some(Node::Leaf(entries)) if entries.len() == 1 => {
                    let only = Arc::clone(&entries[0].subscription);
                    return Some((Some(Bucket::One(only)), removed));
                }
                _ => return Some((root.map(Bucket::Tree), removed)),
            }
        }
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

    fn insert(&self, entry: Entry) -> Option<Grown> {
        let key = Key {
            hash: entry.hash,
            endpoint: entry.subscription.endpoint(),
        };
        match self {
            Node::Leaf(entries) => {
                let at = entries.binary_search_by(|e| e.cmp(key)).err()?;
                Some(Node::rebuilt(
                    entries,
                    at..at,
                    iter::once(entry),
                    Node::Leaf,
                ))
            }
            Node::Branch(children) => {
                let at = Node::route(children, key);
                let (child, split_off) = match children[at].insert(entry)? {
                    Grown::One(child) => (child, None),
                    Grown::Two(left, right) => (left, Some(right)),
                };
                Some(Node::rebuilt(
                    children,
                    at..at + 1,
                    iter::once(child).chain(split_off),
                    Node::Branch,
                ))
            }
        }
    }

    /// This node without the entry at `key` (`None` when it held only that), and the
    /// entry's subscription; `None` when it has no such entry.
    fn remove(&self, key: Key<'_>) -> Option<(Option<Node>, Arc<Subscription>)> {
        match self {
            Node::Leaf(entries) => {
                let at = entries.binary_search_by(|e| e.cmp(key)).ok()?;
                let removed = Arc::clone(&entries[at].subscription);
                let rest = (entries.len() > 1)
                    .then(|| Node::Leaf(without(entries, at..at + 1, iter::empty())));
                Some((rest, removed))
            }
            Node::Branch(children) => {
                let at = Node::route(children, key);
                let (child, removed) = children[at].remove(key)?;
                let rest = (children.len() > 1 || child.is_some())
                    .then(|| Node::Branch(without(children, at..at + 1, child)));
                Some((rest, removed))
            }
        }
    }

    /// A copy of `entries` with `replaced` swapped for `with`, split in two halves if
    /// that makes it too large for one node.
    fn rebuilt<T: Clone>(
        entries: &Arc<[T]>,
        replaced: std::ops::Range<usize>,
        with: impl Iterator<Item = T>,
        node: fn(Arc<[T]>) -> Node,
    ) -> Grown {
        let copy = entries[..replaced.start]
            .iter()
            .cloned()
            .chain(with)
            .chain(entries[replaced.end..].iter().cloned());
        let (lower, upper) = copy.size_hint();
        if upper == Some(lower) && lower <= FANOUT {
            // The common case: one allocation, of the exact size.
            return Grown::One(node(copy.collect()));
        }
        let mut all: Vec<T> = copy.collect();
        if all.len() <= FANOUT {
            return Grown::One(node(all.into()));
        }
        let upper_half = all.split_off(all.len() / 2);
        Grown::Two(node(all.into()), node(upper_half.into()))
    }
}

/// A copy of `entries` with `replaced` swapped for `with` (at most one entry).
fn without<T: Clone>(
    entries: &[T],
    replaced: std::ops::Range<usize>,
    with: impl IntoIterator<Item = T>,
) -> Arc<[T]> {
    entries[..replaced.start]
        .iter()
        .cloned()
        .chain(with)
        .chain(entries[replaced.end..].iter().cloned())
        .collect()
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
                assert!(!entries.is_empty() && entries.len() <= FANOUT);
                assert_eq!(
                    *leaf_depth.get_or_insert(depth),
                    depth,
                    "leaves at one depth"
                );
                entries.to_vec()
            }
            Node::Branch(children) => {
                assert!(!children.is_empty() && children.len() <= FANOUT);
                children
                    .iter()
                    .flat_map(|c| entries(c, depth + 1, leaf_depth))
                    .collect()
            }
        }
    }

    /// Checks a bucket's invariants (strict order, every hash `hash` of its endpoint)
    /// and returns its endpoints, sorted.
    fn bucket_endpoints(bucket: Option<&Bucket>, hash: impl Fn(&Endpoint) -> u64) -> Vec<String> {
        let mut found: Vec<String> = match bucket {
            None => Vec::new(),
            Some(Bucket::One(only)) => vec![only.endpoint().to_string()],
            Some(Bucket::Tree(root)) => {
                let all = entries(root, 0, &mut None);
                assert!(all.len() > 1, "a bucket of one is not a tree");
                for pair in all.windows(2) {
                    let key = Key {
                        hash: pair[1].hash,
                        endpoint: pair[1].subscription.endpoint(),
                    };
                    assert_eq!(pair[0].cmp(key), Ordering::Less, "strictly ordered");
                }
                for e in &all {
                    assert_eq!(e.hash, hash(e.subscription.endpoint()));
                }
                all.iter()
                    .map(|e| e.subscription.endpoint().to_string())
                    .collect()
            }
        };
        found.sort();
        found
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
                let bucket = store.place(pair(), None).bucket();
                let found = bucket_endpoints(bucket.as_ref(), |e| store.hash_endpoint(e));
                assert_eq!(found, present.iter().cloned().collect::<Vec<_>>());
                assert_eq!(Bucket::len_of(&bucket), present.len());
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
                let bucket = store.place(pair(), None).bucket();
                let found = bucket_endpoints(bucket.as_ref(), |e| store.hash_endpoint(e));
                assert_eq!(found, present.iter().cloned().collect::<Vec<_>>());
            }
        }
        assert!(store.place(pair(), None).bucket().is_none());
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
            bucket = bucket.insert(entry(n), hash).expect("a new endpoint");
            assert!(bucket.insert(entry(n), hash).is_none(), "a duplicate");
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
            let (rest, removed) = bucket.remove(at).expect("present");
            assert_eq!(removed.endpoint(), &endpoint);
            if let Some(rest) = &rest {
                assert!(rest.remove(at).is_none(), "removed");
            }
            match rest {
                Some(rest) => bucket = rest,
                None => assert_eq!(n, 499),
            }
        }
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
        let seed = RandomState::new().hash_one("seed");
        let mut counts = [0usize; TEMPLATE_SHARDS];
        for n in 0..32_000 {
            counts[shard_of(&format!("template-{n:08}"), seed)] += 1;
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
