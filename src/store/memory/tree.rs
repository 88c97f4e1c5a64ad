//! The persistent B+tree a bucket keeps its subscriptions in, its nodes shared between
//! versions through `Arc`s.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::endpoint::Endpoint;
use crate::subscription::Subscription;

/// The most entries a bucket's leaf, or children a branch, holds. Small enough that
/// copying a node is cheap, large enough that reading a bucket is mostly slice copies.
pub(super) const FANOUT: usize = 32;

/// The bucket already holds a subscription at that endpoint.
#[derive(Debug)]
pub(super) struct Taken;

/// A non-empty set of subscriptions that share a pair and a template.
/// Cloning it is a reference-count bump: a snapshot.
#[derive(Clone)]
pub(super) enum Bucket {
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
pub(super) enum Node {
    Leaf(Arc<Vec<Entry>>),
    Branch(Arc<Vec<Node>>),
}

/// A subscription in a bucket's tree, with the hash of its endpoint.
#[derive(Clone)]
pub(super) struct Entry {
    pub(super) hash: u64,
    pub(super) subscription: Arc<Subscription>,
}

/// What a bucket's tree is ordered by: the endpoint's hash, then the endpoint. Searching
/// by hash first turns nearly every comparison on the way down into an integer
/// comparison, where comparing endpoints would read two more allocations (the
/// subscription, then its endpoint) for each, mostly missing the cache.
#[derive(Clone, Copy)]
pub(super) struct Key<'a> {
    pub(super) hash: u64,
    pub(super) endpoint: &'a Endpoint,
}

impl Entry {
    pub(super) fn key(&self) -> Key<'_> {
        Key {
            hash: self.hash,
            endpoint: self.subscription.endpoint(),
        }
    }

    pub(super) fn cmp(&self, key: Key<'_>) -> Ordering {
        self.hash
            .cmp(&key.hash)
            .then_with(|| self.subscription.endpoint().cmp(key.endpoint))
    }
}

impl Bucket {
    pub(super) fn len(&self) -> usize {
        match self {
            Bucket::One(_) => 1,
            Bucket::Tree(root) => root.len(),
        }
    }

    pub(super) fn extend_into(&self, out: &mut Vec<Arc<Subscription>>) {
        match self {
            Bucket::One(only) => out.push(Arc::clone(only)),
            Bucket::Tree(root) => root.extend_into(out),
        }
    }

    /// Every subscription in the bucket, by reference: reading a snapshot this way
    /// touches no reference count, where [`extend_into`](Self::extend_into) bumps one
    /// per subscription.
    pub(super) fn iter(&self) -> Subscriptions<'_> {
        let mut subscriptions = Subscriptions {
            one: None,
            leaf: [].iter(),
            branches: Vec::new(),
        };
        match self {
            Bucket::One(only) => subscriptions.one = Some(only),
            Bucket::Tree(Node::Leaf(entries)) => subscriptions.leaf = entries.iter(),
            Bucket::Tree(Node::Branch(children)) => subscriptions.branches.push(children.iter()),
        }
        subscriptions
    }

    /// Whether a reader may hold a snapshot of this bucket's tree. A plain read of the
    /// root's count: writers check it under the bucket's lock, where no reader can take
    /// a new snapshot, and [`Arc::make_mut`] checks every node again on the way down.
    pub(super) fn is_shared(&self) -> bool {
        match self {
            Bucket::One(_) => false,
            Bucket::Tree(Node::Leaf(entries)) => Arc::strong_count(entries) > 1,
            Bucket::Tree(Node::Branch(children)) => Arc::strong_count(children) > 1,
        }
    }

    pub(super) fn contains(&self, key: Key<'_>) -> bool {
        match self {
            Bucket::One(only) => only.endpoint() == key.endpoint,
            Bucket::Tree(root) => root.contains(key),
        }
    }

    /// Adds `entry`, unless its endpoint is taken. `hash` is how `entry.hash` was
    /// computed.
    pub(super) fn insert(
        &mut self,
        entry: Entry,
        hash: impl Fn(&Endpoint) -> u64,
    ) -> Result<(), Taken> {
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
    pub(super) fn remove(&mut self, key: Key<'_>) -> Option<(Arc<Subscription>, bool)> {
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

    pub(super) fn len(&self) -> usize {
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

/// What [`Bucket::iter`] returns: a walk of the tree, leaf by leaf, in key order.
pub(super) struct Subscriptions<'a> {
    /// A bucket of one.
    one: Option<&'a Subscription>,
    /// What is left of the current leaf.
    leaf: std::slice::Iter<'a, Entry>,
    /// What is left of each branch on the way down to it, the root's first.
    branches: Vec<std::slice::Iter<'a, Node>>,
}

impl<'a> Iterator for Subscriptions<'a> {
    type Item = &'a Subscription;

    fn next(&mut self) -> Option<&'a Subscription> {
        if let Some(only) = self.one.take() {
            return Some(only);
        }
        loop {
            if let Some(entry) = self.leaf.next() {
                return Some(&entry.subscription);
            }
            // The current leaf is done: down to the next one, up as far as needed first.
            match self.branches.last_mut()?.next() {
                None => {
                    self.branches.pop();
                }
                Some(Node::Leaf(entries)) => self.leaf = entries.iter(),
                Some(Node::Branch(children)) => self.branches.push(children.iter()),
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
