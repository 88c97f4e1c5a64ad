use super::tree::{Node, FANOUT};
use super::*;
use crate::catalog::{Action, EntityType};
use crate::subscription::TemplateName;
use futures_util::FutureExt;
use std::cmp::Ordering;
use std::ops::Range;

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
        assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
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
    let endpoints = |bucket: &Bucket| bucket_endpoints(Some(bucket), |e| store.hash_endpoint(e));
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
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    // Another identity under a taken id: refused, and nothing changes.
    let clash = Subscription::from_parts(first.id(), key(2, None), first.created_at());
    let err = ready(store.insert(clash)).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Backend {
                store: "memory",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        format!("subscription id {} is already in use", first.id())
    );
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

#[test]
fn a_bucket_is_walked_whole_by_reference_at_every_size() {
    let store = InMemoryStore::new();
    let hash = |e: &Endpoint| store.hash_endpoint(e);
    let mut bucket = Bucket::One(Arc::new(Subscription::new(key(0, None))));
    // One, one leaf, a full leaf, a split, and three levels (32 * 32 < 2,000).
    for n in 1..2_000u64 {
        if [1, 2, 32, 33, 1_025, 1_999].contains(&n) {
            let mut walked: Vec<String> = bucket.iter().map(|s| s.endpoint().to_string()).collect();
            walked.sort();
            assert_eq!(
                walked,
                bucket_endpoints(Some(&bucket), hash),
                "{n} subscriptions"
            );
        }
        let subscription = Arc::new(Subscription::new(key(n, None)));
        let entry = Entry {
            hash: hash(subscription.endpoint()),
            subscription,
        };
        bucket.insert(entry, hash).unwrap();
    }
}

/// Ids of a search's hits, first page of up to 1,000, in the order found.
fn search_ids(page: &crate::search::Page<Subscription>) -> Vec<Uuid> {
    page.data.iter().map(Subscription::id).collect()
}

fn every_lock_is_free(store: &InMemoryStore) -> bool {
    store.inner.by_id.0.try_write().is_ok()
        && store.inner.slots.iter().all(|slot| {
            slot.untemplated.0.try_write().is_ok()
                && slot
                    .templated
                    .iter()
                    .all(|shard| shard.0.try_write().is_ok())
        })
}

#[test]
fn a_search_reads_its_snapshot_holding_no_lock_while_writes_go_on() {
    let store = InMemoryStore::new();
    let all = SearchRequest::new().with_limit(1_000);
    for n in 0..300 {
        let template = (n % 3 != 0).then(|| format!("template{}", n % 7));
        ready(store.insert(Subscription::new(key(n, template.as_deref())))).unwrap();
    }
    let before = ready(store.search(&all)).unwrap();

    // What `search` reads, taken; it holds reference counts, and no lock: every write
    // goes ahead, in the same thread (which a held lock would deadlock).
    let snapshot = store.snapshot();
    assert!(every_lock_is_free(&store));
    for n in 0..100 {
        let template = (n % 3 != 0).then(|| format!("template{}", n % 7));
        ready(store.remove(&key(n, template.as_deref()))).unwrap();
    }
    for n in 300..400 {
        ready(store.insert(Subscription::new(key(n, Some("template0"))))).unwrap();
    }
    assert!(every_lock_is_free(&store));

    // The search sees the store as it was when taken, each subscription once, whole.
    let seen = snapshot.search(&all);
    assert_eq!(seen.total_results, 300);
    assert_eq!(search_ids(&seen), search_ids(&before));
    assert_eq!(seen.data, before.data);
    // And a new search, the store as it is now.
    let now = ready(store.search(&all)).unwrap();
    assert_eq!(now.total_results, 300);
    let mut ids = search_ids(&now);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 300);
}

#[test]
fn an_id_moved_while_a_search_takes_its_buckets_is_seen_once() {
    let store = InMemoryStore::new();
    let all = SearchRequest::new().with_limit(1_000);
    // The first pair a search takes, and the last.
    let first = EventType::all().next().unwrap();
    let later = EventType::all().last().unwrap();
    let endpoint = |n: u64| Endpoint::parse(&format!("https://m{n}.example.com/hook")).unwrap();
    let moving = Subscription::new(SubscriptionKey::new(first, endpoint(0), None));
    let moved = Subscription::from_parts(
        moving.id(),
        SubscriptionKey::new(later, endpoint(1), None),
        moving.created_at(),
    );
    ready(store.insert(moving.clone())).unwrap();
    for n in 10..20 {
        ready(store.insert(Subscription::new(key(n, None)))).unwrap();
    }

    // The search takes the buckets up to `first`'s, then the subscription moves (same
    // id, another pair), then the search takes the rest, `later`'s among them.
    let take = |taking: &mut TakingSnapshot<'_>, pairs: Range<usize>| {
        for slot in &store.inner.slots[pairs] {
            taking.take(slot);
        }
    };
    let mut taking = TakingSnapshot::begin(&store.inner.removals.0);
    take(&mut taking, 0..first.index() + 1);
    ready(store.remove(moving.key())).unwrap();
    ready(store.insert(moved.clone())).unwrap();
    take(&mut taking, first.index() + 1..EventType::COUNT);
    let snapshot = taking.finish();

    // Both buckets hold the id; the search shows it once.
    assert_eq!(snapshot.subscriptions_taken(), 12);
    let seen = snapshot.search(&all);
    assert_eq!(seen.total_results, 11);
    let ids = search_ids(&seen);
    assert_eq!(ids.iter().filter(|&&id| id == moving.id()).count(), 1);
    // Without a removal while taking, nothing is filtered: all of it is the store's.
    let quiet = store.snapshot();
    assert_eq!(quiet.subscriptions_taken(), 11);
    assert_eq!(quiet.search(&all).total_results, 11);
}
