//! `InMemoryStore` against the conformance suite, in every shape a host holds it, beside
//! other data and another writer, and under real multi-threaded contention.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use biot_notifications::store::{InMemoryStore, SubscriptionStore};
use biot_notifications::{
    testkit, Action, EntityType, EventType, StoreError, SubscribeRequest, Subscription,
};
use futures_util::FutureExt;

mod common;
use common::StoreWithAnotherWriter;

#[tokio::test]
async fn in_memory_store_passes_the_testkit_directly() {
    testkit::run_all(&InMemoryStore::new()).await;
}

#[tokio::test]
async fn in_memory_store_passes_the_testkit_boxed() {
    let store: Box<dyn SubscriptionStore> = Box::new(InMemoryStore::new());
    testkit::run_all(&store).await;
    testkit::run_all(store.as_ref()).await;
}

#[tokio::test]
async fn in_memory_store_passes_the_testkit_behind_an_arc() {
    let store: Arc<dyn SubscriptionStore> = Arc::new(InMemoryStore::new());
    testkit::run_all(&store).await;
    testkit::run_all(&*store).await;
}

#[tokio::test]
async fn in_memory_store_passes_the_testkit_beside_data_it_leaves_alone() {
    let store = InMemoryStore::new();
    let mut others = Vec::new();
    for i in 0..3 {
        let key = SubscribeRequest::new("patient", "_create", format!("https://o{i}.example.com/"))
            .key()
            .unwrap();
        let subscription = Subscription::new(key);
        store.insert(subscription.clone()).await.unwrap();
        others.push(subscription);
    }
    testkit::run_all(&store).await;
    assert_eq!(store.count().await.unwrap(), 3);
    for other in &others {
        let kept = store.get(other.id()).await.unwrap();
        assert_eq!(kept.as_ref().map(Subscription::key), Some(other.key()));
    }
}

#[tokio::test]
async fn in_memory_store_passes_the_shared_store_suite_while_another_writer_adds_data() {
    let store: Arc<dyn SubscriptionStore> = Arc::new(InMemoryStore::new());
    let shared = StoreWithAnotherWriter::new(Arc::clone(&store), Arc::clone(&store));
    testkit::run_on_shared_store(&shared).await;
    assert!(shared.writes() > 0);
    assert_eq!(store.count().await.unwrap(), shared.writes() as u64);
}

/// Why `run_on_shared_store` leaves `check_count` out.
#[tokio::test]
async fn check_count_fails_while_another_writer_adds_data() {
    let store: Arc<dyn SubscriptionStore> = Arc::new(InMemoryStore::new());
    let shared = StoreWithAnotherWriter::new(Arc::clone(&store), store);
    let outcome = AssertUnwindSafe(testkit::check_count(&shared))
        .catch_unwind()
        .await;
    assert!(
        outcome.is_err(),
        "check_count cannot hold while others write"
    );
}

#[tokio::test]
async fn clones_share_their_subscriptions() {
    let store = InMemoryStore::new();
    let clone = store.clone();
    let key = SubscribeRequest::new("patient", "_create", "https://a.example.com/")
        .key()
        .unwrap();
    store.insert(Subscription::new(key)).await.unwrap();
    assert_eq!(clone.count().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_inserts_on_threads_have_exactly_one_winner() {
    let store = InMemoryStore::new();
    for round in 0..50 {
        let key = SubscribeRequest::new(
            "device",
            "_update",
            format!("https://r{round}.example.com/"),
        )
        .key()
        .unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                let subscription = Subscription::new(key.clone());
                tokio::spawn(async move { store.insert(subscription).await })
            })
            .collect();
        let mut wins = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => wins += 1,
                Err(StoreError::AlreadyExists { .. }) => {}
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(wins, 1, "round {round}");
    }
    assert_eq!(store.count().await.unwrap(), 50);
}

/// A bucket of one node (edited in place while no reader holds it), one whose root
/// splits as the churn takes it past a node's 32, and one of several nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_see_whole_snapshots_while_writers_churn() {
    for stable in [10, 28, 100] {
        churn_beside(stable).await;
    }
}

async fn churn_beside(stable: usize) {
    let store = InMemoryStore::new();
    let event = EventType::new(EntityType::Patient, Action::Update).unwrap();
    // A stable population that must be visible in every read.
    for i in 0..stable {
        let key = SubscribeRequest::new(
            "patient",
            "_update",
            format!("https://stable{i}.example.com/"),
        )
        .key()
        .unwrap();
        store.insert(Subscription::new(key)).await.unwrap();
    }
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..2_000 {
                let key = SubscribeRequest::new(
                    "patient",
                    "_update",
                    format!("https://churn{}.example.com/", i % 10),
                )
                .key()
                .unwrap();
                if store.insert(Subscription::new(key.clone())).await.is_err() {
                    store.remove(&key).await.unwrap();
                }
            }
        })
    };
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..2_000 {
                    let found = store.matching(event, None).await.unwrap();
                    let found_stable = found
                        .iter()
                        .filter(|s| s.endpoint().as_str().starts_with("https://stable"))
                        .count();
                    assert_eq!(found_stable, stable);
                    assert!(found.len() <= stable + 10);
                }
            })
        })
        .collect();
    writer.await.unwrap();
    for reader in readers {
        reader.await.unwrap();
    }
}

#[tokio::test]
async fn removing_the_last_subscription_of_a_template_drops_its_bucket() {
    let store = InMemoryStore::new();
    let event = EventType::new(EntityType::Device, Action::Create).unwrap();
    let key = SubscribeRequest::new("device", "_create", "https://a.example.com/")
        .with_template("pump")
        .key()
        .unwrap();
    store.insert(Subscription::new(key.clone())).await.unwrap();
    assert_eq!(store.matching(event, Some("pump")).await.unwrap().len(), 1);
    let removed = store.remove(&key).await.unwrap();
    assert_eq!(removed.key(), &key);
    assert!(store
        .matching(event, Some("pump"))
        .await
        .unwrap()
        .is_empty());
    // And the identity can be subscribed again.
    store.insert(Subscription::new(key)).await.unwrap();
}
