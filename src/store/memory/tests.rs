use super::tree::{Node, FANOUT};
use super::*;
use crate::catalog::{Action, EntityType};
use crate::subscription::TemplateName;
use futures_util::FutureExt;
use std::cmp::Ordering;

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
