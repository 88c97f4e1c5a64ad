//! `InMemoryStore::search` beside writes on other threads: every write completes while
//! searches run back to back, and every search shows each subscription at most once,
//! whole, with everything that stayed in the store throughout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use biot_notifications::search::{SearchRequest, MAX_SEARCH_LIMIT};
use biot_notifications::store::{InMemoryStore, SubscriptionStore};
use biot_notifications::{Endpoint, EventType, Subscription, SubscriptionKey, TemplateName};
use futures_util::FutureExt;
use uuid::Uuid;

/// Subscriptions that stay put.
const STAYING: usize = 400;
/// Subscriptions that move, each keeping its id, from pair to pair.
const MOVING: usize = 16;
/// How many times each moving subscription moves.
const MOVES: usize = 200;

fn ready<F: std::future::Future>(future: F) -> F::Output {
    future
        .now_or_never()
        .expect("the in-memory store never waits")
}

/// The `step`-th key of moving subscription `m`: every pair in turn, with a template
/// every other step, a new endpoint each time.
fn moving_key(m: usize, step: usize) -> SubscriptionKey {
    let pairs: Vec<EventType> = EventType::all().collect();
    let pair = pairs[(m * 7 + step) % pairs.len()];
    let endpoint = Endpoint::parse(&format!("https://m{m}-{step}.example.com/hook")).unwrap();
    let template = (step % 2 == 1).then(|| TemplateName::new(&format!("moving{m}")).unwrap());
    SubscriptionKey::new(pair, endpoint, template)
}

#[test]
fn searches_beside_writes_show_each_subscription_once_and_writes_all_complete() {
    let store = InMemoryStore::new();
    let pairs: Vec<EventType> = EventType::all().collect();
    let mut staying = HashMap::new();
    for n in 0..STAYING {
        let endpoint = Endpoint::parse(&format!("https://s{n}.example.com/hook")).unwrap();
        let template = (n % 2 == 0).then(|| TemplateName::new(&format!("t{}", n % 9)).unwrap());
        let s = Subscription::new(SubscriptionKey::new(
            pairs[n % pairs.len()],
            endpoint,
            template,
        ));
        staying.insert(s.id(), s.clone());
        ready(store.insert(s)).unwrap();
    }
    let moving: Vec<Subscription> = (0..MOVING)
        .map(|m| Subscription::new(moving_key(m, 0)))
        .collect();
    for s in &moving {
        ready(store.insert(s.clone())).unwrap();
    }
    let moving_ids: HashMap<Uuid, usize> = moving
        .iter()
        .enumerate()
        .map(|(m, s)| (s.id(), m))
        .collect();

    let writing = Arc::new(AtomicBool::new(true));
    let searcher = thread::spawn({
        let store = store.clone();
        let writing = Arc::clone(&writing);
        move || {
            let all = SearchRequest::new().with_limit(MAX_SEARCH_LIMIT);
            let mut searches = 0;
            loop {
                let still_writing = writing.load(Ordering::Acquire);
                let page = ready(store.search(&all)).unwrap();
                searches += 1;
                assert_eq!(page.total_results as usize, page.data.len());
                let mut seen = HashMap::new();
                for s in &page.data {
                    assert!(seen.insert(s.id(), s).is_none(), "{} twice", s.id());
                }
                // Everything that stayed is there, as it was inserted.
                for (id, s) in &staying {
                    assert_eq!(seen.get(id), Some(&s), "a staying subscription");
                }
                // The rest are moving ones, each at one of the places it moves through.
                for s in &page.data {
                    if staying.contains_key(&s.id()) {
                        continue;
                    }
                    let m = moving_ids[&s.id()];
                    assert!(
                        (0..=MOVES).any(|step| s.key() == &moving_key(m, step)),
                        "{s:?} is whole"
                    );
                }
                if !still_writing {
                    return searches;
                }
            }
        }
    });

    // Every write completes, searches or not.
    for step in 1..=MOVES {
        for (m, first) in moving.iter().enumerate() {
            ready(store.remove(&moving_key(m, step - 1))).unwrap();
            let next =
                Subscription::from_parts(first.id(), moving_key(m, step), first.created_at());
            ready(store.insert(next)).unwrap();
        }
    }
    writing.store(false, Ordering::Release);
    let searches = searcher.join().expect("every search's answer holds");
    assert!(searches >= 1);
    let page = ready(store.search(&SearchRequest::new().with_limit(MAX_SEARCH_LIMIT))).unwrap();
    assert_eq!(page.total_results as usize, STAYING + MOVING);
}
