//! Concurrency stress: many tasks on a multi-threaded runtime subscribing, unsubscribing
//! and dispatching at random over a small pool of overlapping identities. Afterwards the
//! store holds exactly the identities whose last successful call was a subscribe, and
//! every dispatch reached each endpoint at most once, only endpoints subscribed while it
//! ran, and every endpoint subscribed throughout it.
//!
//! "Last" and "while" need an order. Calls on one identity are serialised (a
//! `tokio::sync::Mutex` per identity, held across the call), so each identity has a
//! well-defined history; calls on different identities, and all dispatches, run
//! concurrently. A global logical clock is read just before and just after every call,
//! so each call happened inside its `[started, finished]` window, and windows can be
//! compared across tasks.
//!
//! The body is [`stress`], generic over `Arc<dyn SubscriptionStore>`: it runs here on
//! `InMemoryStore`, and on PostgreSQL where the tests have a database:
//!
//! ```text
//! source .ci/postgres.sh
//! cargo test --features postgres --test stress -- --include-ignored
//! biot_pg_stop
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use biot_notifications::dispatcher::DeliveryOutcome;
use biot_notifications::notification::Event;
use biot_notifications::search::SearchRequest;
use biot_notifications::store::SubscriptionStore;
use biot_notifications::{
    Dispatcher, Error, EventType, InMemoryStore, StoreError, SubscribeRequest, Subscription,
};
use serde_json::json;
use uuid::Uuid;

mod common;
use common::RecordingNotifier;

/// Identities in the pool: one pair, one endpoint each, spread over the templates.
const IDENTITIES: usize = 16;
/// Concurrent tasks, each doing [`OPS_PER_TASK`] calls.
const TASKS: usize = 8;
const OPS_PER_TASK: usize = 1_000;

/// The template of identity `i` is `TEMPLATES[i % 3]`.
const TEMPLATES: [Option<&str>; 3] = [None, Some("adultPatient"), Some("childPatient")];
/// What dispatched entities are templated as; the last matches only untemplated ones.
const EVENT_TEMPLATES: [Option<&str>; 4] = [
    None,
    Some("adultPatient"),
    Some("childPatient"),
    Some("neonatePatient"),
];

/// A small xorshift generator: deterministic per seed, and no dependency for it.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // Never zero, and seeds 1, 2, 3... start far apart.
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// One identity of the pool and the spellings its endpoint is sent in.
struct Identity {
    template: Option<&'static str>,
    /// The normalised endpoint, as the notifier sees it.
    endpoint: String,
    /// Equivalent spellings: every call uses one at random, so the dispatcher's
    /// normalisation is part of what is stressed.
    spellings: [String; 2],
}

fn identities() -> Vec<Identity> {
    (0..IDENTITIES)
        .map(|i| Identity {
            template: TEMPLATES[i % TEMPLATES.len()],
            endpoint: format!("https://plugin-{i}.example.com/hook"),
            spellings: [
                format!("https://plugin-{i}.example.com/hook"),
                format!("HTTPS://Plugin-{i}.EXAMPLE.com:443/hook"),
            ],
        })
        .collect()
}

impl Identity {
    fn request(&self, spelling: usize) -> SubscribeRequest {
        let mut request =
            SubscribeRequest::new("patient", "update", self.spellings[spelling].as_str());
        request.template_name = self.template.map(str::to_owned);
        request
    }

    /// Whether an event on an entity of `template` reaches this identity.
    fn reached_by(&self, template: Option<&str>) -> bool {
        self.template.is_none() || self.template == template
    }
}

/// A logical clock shared by all tasks.
#[derive(Default)]
struct Clock(AtomicU64);

impl Clock {
    fn tick(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

/// One stored life of an identity: from a successful subscribe to the successful
/// unsubscribe that ended it, if any. The subscription existed in the store at most
/// during `[subscribe_started, unsubscribe_finished]`, and at least during
/// `[subscribe_finished, unsubscribe_started]`.
#[derive(Clone, Debug)]
struct Life {
    identity: usize,
    id: Uuid,
    subscribe_started: u64,
    subscribe_finished: u64,
    unsubscribe_started: Option<u64>,
    unsubscribe_finished: Option<u64>,
}

/// An identity's history; its lock is held across every call on the identity.
#[derive(Default)]
struct History {
    /// The id of the stored subscription, if the last successful call subscribed.
    current: Option<Uuid>,
    lives: Vec<Life>,
}

/// What one dispatch did, as its report says.
#[derive(Debug)]
struct Dispatched {
    number: u64,
    template: Option<&'static str>,
    started: u64,
    finished: u64,
    /// `(subscription id, endpoint)` per delivery in the report.
    deliveries: Vec<(Uuid, String)>,
}

/// Everything the tasks share.
struct Shared {
    dispatcher: Dispatcher,
    identities: Vec<Identity>,
    histories: Vec<tokio::sync::Mutex<History>>,
    clock: Clock,
    dispatches: AtomicU64,
    dispatched: Mutex<Vec<Dispatched>>,
}

/// Runs the stress on `store`, which must be empty, and checks everything the module
/// docs promise. Panics with a description of the first violation.
async fn stress(store: Arc<dyn SubscriptionStore>) {
    assert_eq!(
        store.count().await.unwrap(),
        0,
        "the stress needs an empty store"
    );
    // Lets other tasks run mid-delivery, so dispatches overlap with writes.
    let notifier = Arc::new(RecordingNotifier::yielding());
    let shared = Arc::new(Shared {
        dispatcher: Dispatcher::new(Arc::clone(&store), notifier.clone()),
        identities: identities(),
        histories: (0..IDENTITIES).map(|_| Default::default()).collect(),
        clock: Clock::default(),
        dispatches: AtomicU64::new(0),
        dispatched: Mutex::new(Vec::new()),
    });

    let began = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(run_task(Arc::clone(&shared), task as u64 + 1)))
        .collect();
    let mut counts = OpCounts::default();
    for task in tasks {
        counts.add(task.await.expect("a stress task failed"));
    }
    let took = began.elapsed();
    assert!(counts.total() >= 8_000, "only {} calls", counts.total());
    // Each kind of call succeeded and failed often enough for the checks to mean something.
    assert!(
        counts.subscribed > 500 && counts.duplicates > 100,
        "{counts:?}"
    );
    assert!(
        counts.unsubscribed > 500 && counts.not_found > 100,
        "{counts:?}"
    );
    assert!(counts.dispatches > 1_000, "{counts:?}");

    let histories: Vec<History> = Arc::try_unwrap(shared)
        .ok()
        .map(|shared| {
            let dispatched = shared.dispatched.into_inner().unwrap();
            let histories: Vec<History> = shared
                .histories
                .into_iter()
                .map(tokio::sync::Mutex::into_inner)
                .collect();
            check_dispatches(&dispatched, &histories, &identities(), &notifier);
            histories
        })
        .expect("every task has ended");

    check_final_state(&*store, &histories).await;
    eprintln!("stress on {store:?}: {counts:?} in {took:?}");
}

#[derive(Debug, Default)]
struct OpCounts {
    subscribed: usize,
    duplicates: usize,
    unsubscribed: usize,
    not_found: usize,
    dispatches: usize,
    deliveries: usize,
}

impl OpCounts {
    fn add(&mut self, other: OpCounts) {
        self.subscribed += other.subscribed;
        self.duplicates += other.duplicates;
        self.unsubscribed += other.unsubscribed;
        self.not_found += other.not_found;
        self.dispatches += other.dispatches;
        self.deliveries += other.deliveries;
    }

    fn total(&self) -> usize {
        self.subscribed + self.duplicates + self.unsubscribed + self.not_found + self.dispatches
    }
}

/// One task's random calls: 40% subscribe, 35% unsubscribe, 25% dispatch.
async fn run_task(shared: Arc<Shared>, seed: u64) -> OpCounts {
    let mut rng = Rng::new(seed);
    let mut counts = OpCounts::default();
    for _ in 0..OPS_PER_TASK {
        let roll = rng.below(100);
        let i = rng.below(IDENTITIES);
        let request = shared.identities[i].request(rng.below(2));
        if roll < 40 {
            let mut history = shared.histories[i].lock().await;
            let started = shared.clock.tick();
            let result = shared.dispatcher.subscribe(&request).await;
            let finished = shared.clock.tick();
            match (result, history.current) {
                (Ok(subscription), None) => {
                    assert_identity(&subscription, &shared.identities[i]);
                    history.current = Some(subscription.id());
                    history.lives.push(Life {
                        identity: i,
                        id: subscription.id(),
                        subscribe_started: started,
                        subscribe_finished: finished,
                        unsubscribe_started: None,
                        unsubscribe_finished: None,
                    });
                    counts.subscribed += 1;
                }
                (Err(Error::Store(StoreError::AlreadyExists { .. })), Some(_)) => {
                    counts.duplicates += 1
                }
                (result, current) => {
                    panic!("subscribe of identity {i} (stored: {current:?}) answered {result:?}")
                }
            }
        } else if roll < 75 {
            let mut history = shared.histories[i].lock().await;
            let started = shared.clock.tick();
            let result = shared.dispatcher.unsubscribe(&request).await;
            let finished = shared.clock.tick();
            match (result, history.current) {
                (Ok(removed), Some(id)) => {
                    assert_eq!(
                        removed.id(),
                        id,
                        "unsubscribe of identity {i} removed another subscription"
                    );
                    let life = history.lives.last_mut().expect("a life is open");
                    life.unsubscribe_started = Some(started);
                    life.unsubscribe_finished = Some(finished);
                    history.current = None;
                    counts.unsubscribed += 1;
                }
                (Err(Error::Store(StoreError::NotFound { .. })), None) => counts.not_found += 1,
                (result, current) => {
                    panic!("unsubscribe of identity {i} (stored: {current:?}) answered {result:?}")
                }
            }
        } else {
            let template = EVENT_TEMPLATES[rng.below(EVENT_TEMPLATES.len())];
            let number = shared.dispatches.fetch_add(1, Ordering::SeqCst);
            let event = event(number, template);
            let started = shared.clock.tick();
            let report = shared
                .dispatcher
                .dispatch(&event)
                .await
                .unwrap_or_else(|e| panic!("dispatch {number} failed: {e:?}"));
            let finished = shared.clock.tick();
            let deliveries = report
                .deliveries()
                .iter()
                .map(|delivery| {
                    assert!(
                        matches!(delivery.outcome(), DeliveryOutcome::Delivered),
                        "dispatch {number}: {}",
                        delivery.outcome()
                    );
                    let subscription = delivery.subscription();
                    (
                        subscription.id(),
                        subscription.endpoint().as_str().to_owned(),
                    )
                })
                .collect::<Vec<_>>();
            counts.dispatches += 1;
            counts.deliveries += deliveries.len();
            shared.dispatched.lock().unwrap().push(Dispatched {
                number,
                template,
                started,
                finished,
                deliveries,
            });
        }
    }
    counts
}

fn event(number: u64, template: Option<&str>) -> Event {
    let mut entity = json!({"_id": number});
    if let Some(template) = template {
        entity["_template"] = json!({"name": template});
    }
    Event::new(EventType::parse("patient", "_update").unwrap(), entity)
}

#[track_caller]
fn assert_identity(subscription: &Subscription, identity: &Identity) {
    assert_eq!(subscription.endpoint().as_str(), identity.endpoint);
    assert_eq!(
        subscription.template_name().map(|t| t.as_str()),
        identity.template
    );
    assert_eq!(subscription.event_type().to_string(), "patient/_update");
}

/// Every dispatch reached each endpoint at most once, only endpoints subscribed while it
/// ran, every endpoint subscribed throughout it, and its report and the notifier agree.
fn check_dispatches(
    dispatched: &[Dispatched],
    histories: &[History],
    identities: &[Identity],
    notifier: &RecordingNotifier,
) {
    let lives: HashMap<Uuid, &Life> = histories
        .iter()
        .flat_map(|h| &h.lives)
        .map(|life| (life.id, life))
        .collect();
    let mut notified: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for delivery in notifier.received().iter() {
        // Which dispatch it was: stress events carry their number as the entity's `_id`.
        let number = delivery.notification.data.entity["_id"]
            .as_u64()
            .expect("stress events carry their number as `_id`");
        notified
            .entry(number)
            .or_default()
            .push(delivery.endpoint.clone());
    }

    for dispatch in dispatched {
        let number = dispatch.number;
        let mut endpoints = notified.remove(&number).unwrap_or_default();
        endpoints.sort();
        let unique: BTreeSet<&String> = endpoints.iter().collect();
        assert_eq!(
            unique.len(),
            endpoints.len(),
            "dispatch {number} delivered twice to one endpoint: {endpoints:?}"
        );
        let reported: BTreeSet<&String> = dispatch.deliveries.iter().map(|(_, e)| e).collect();
        assert_eq!(
            reported, unique,
            "dispatch {number}: the report and the notifier disagree"
        );

        for (id, endpoint) in &dispatch.deliveries {
            let life = lives.get(id).unwrap_or_else(|| {
                panic!("dispatch {number} reached {endpoint} through subscription {id}, which no successful subscribe created")
            });
            let identity = &identities[life.identity];
            assert_eq!(*endpoint, identity.endpoint);
            assert!(
                identity.reached_by(dispatch.template),
                "dispatch {number} (template {:?}) reached {endpoint}, subscribed for {:?}",
                dispatch.template,
                identity.template
            );
            assert!(
                life.subscribe_started < dispatch.finished,
                "dispatch {number} reached {endpoint} before it was subscribed: {life:?} vs {dispatch:?}"
            );
            assert!(
                open_or_after(life.unsubscribe_finished, dispatch.started),
                "dispatch {number} reached {endpoint} after it was unsubscribed: {life:?} vs {dispatch:?}"
            );
        }

        // Nothing subscribed throughout the dispatch was missed.
        let reached: BTreeSet<Uuid> = dispatch.deliveries.iter().map(|(id, _)| *id).collect();
        for life in lives.values() {
            let throughout = life.subscribe_finished < dispatch.started
                && open_or_after(life.unsubscribe_started, dispatch.finished);
            if throughout && identities[life.identity].reached_by(dispatch.template) {
                assert!(
                    reached.contains(&life.id),
                    "dispatch {number} missed {}, subscribed throughout it: {life:?} vs {dispatch:?}",
                    identities[life.identity].endpoint
                );
            }
        }
    }
    assert!(
        notified.is_empty(),
        "notifications from dispatches that never reported: {:?}",
        notified.keys().collect::<Vec<_>>()
    );
}

/// Whether an end `time` is `None` (still open) or after `after`.
fn open_or_after(time: Option<u64>, after: u64) -> bool {
    time.into_iter().all(|t| t > after)
}

/// The store holds exactly the identities whose last successful call was a subscribe,
/// with the ids those calls returned, and answers dispatch lookups accordingly.
async fn check_final_state(store: &dyn SubscriptionStore, histories: &[History]) {
    let identities = identities();
    let expected: BTreeMap<Uuid, usize> = histories
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.current.map(|id| (id, i)))
        .collect();

    assert_eq!(store.count().await.unwrap(), expected.len() as u64);
    let page = store
        .search(&SearchRequest::new().with_limit(1000))
        .await
        .unwrap();
    assert_eq!(page.total_results, expected.len() as u64);
    let stored: BTreeMap<Uuid, &Subscription> = page.data.iter().map(|s| (s.id(), s)).collect();
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the store does not hold exactly the identities last subscribed"
    );
    for (id, &i) in &expected {
        assert_identity(stored[id], &identities[i]);
        assert_eq!(store.get(*id).await.unwrap().as_ref(), Some(stored[id]));
    }

    let pair = EventType::parse("patient", "_update").unwrap();
    for template in EVENT_TEMPLATES {
        let mut matching: Vec<Uuid> = store
            .matching(pair, template)
            .await
            .unwrap()
            .iter()
            .map(|s| s.id())
            .collect();
        matching.sort();
        let wanted: Vec<Uuid> = expected
            .iter()
            .filter(|(_, &i)| identities[i].reached_by(template))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(matching, wanted, "matching for template {template:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_subscribe_unsubscribe_and_dispatch_keep_the_in_memory_store_exact() {
    stress(Arc::new(InMemoryStore::new())).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn concurrent_subscribe_unsubscribe_and_dispatch_keep_the_postgres_store_exact() {
    use biot_notifications::store::postgres::PostgresStore;
    use futures_util::FutureExt;

    let url = common::database_url();
    // A fresh schema of its own, dropped afterwards whatever happens.
    let schema = format!("stress_{}", Uuid::new_v4().simple());
    let store = PostgresStore::options()
        .schema(schema.as_str())
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connecting to DATABASE_URL failed: {e:?}"));
    let outcome = std::panic::AssertUnwindSafe(stress(Arc::new(store.clone())))
        .catch_unwind()
        .await;
    let client = store.pool().get().await.expect("a connection");
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .expect("dropping the test schema");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
