//! `ReplicatedStore` (feature `postgres`) against a real PostgreSQL, beside
//! `InMemoryStore` and `PostgresStore` with the same subscriptions, in the same run:
//!
//! - `replicated/matching/*`: the dispatch lookup at 100,000 subscriptions (100 of them
//!   match, and 1 of them), for the three stores (criterion), and the replicated store's
//!   time over the in-memory store's as a ratio taken in pairs: chunks of 1,000 lookups
//!   of each, one after the other, whichever goes first alternating, the ratio of each
//!   pair's times printed as a median with quartiles (`replicated/matching/paired`);
//! - `replicated/subscribe/*`: a fresh subscription inserted and removed again, through
//!   `PostgresStore` and through the replicated store, whose writes are a transaction
//!   that also reads the change counter, then applied to its own index (criterion);
//! - `replicated/propagation`: two replicated instances on the same schema (each its own
//!   pool and listening connection). A inserts a fresh subscription; from A's `insert`
//!   returning until B's `get` finds it, polled in a `yield_now` loop on a worker of the
//!   runtime; then the same for A's `remove`. Printed as p50 / p90 / p99 / max (not
//!   criterion, which reports means of batches), with what the two parts of a
//!   propagation cost alone, measured the same way: a bare `NOTIFY` from a pooled
//!   connection until a listening connection hears it, and the round trip of the query
//!   an instance runs on hearing one (the log after a version, one change);
//! - `replicated/memory`: bytes per subscription held by the replicated store (its
//!   index, plus what its connections keep) against `InMemoryStore` with the same
//!   subscriptions, each counted in a process of its own by a counting global allocator
//!   (as `memory.rs`), with the growth of the resident set beside it.
//!
//! ```text
//! source .ci/postgres.sh && cargo bench --features postgres --bench replicated; biot_pg_stop
//! ```
//!
//! `BIOT_BENCH_QUICK=1`: 10,000 subscriptions and fewer propagations; `cargo test
//! --benches` runs it once with 1,000, as a smoke test. Skipped, with a message, when
//! `DATABASE_URL` is not set. Works in two schemas of its own (`biot_bench_replicated`,
//! and `biot_bench_replicated_empty` for the memory baseline), made afresh and dropped at
//! the end.
//!
//! The subscriptions are loaded into PostgreSQL with the change trigger disabled, in one
//! transaction: a replicated store loads its index whole when it connects, so the log of
//! those changes would never be read, and the trigger writes the counter and the log for
//! every row, which would make the load several times longer. Then the
//! subscriptions are `ANALYZE`d, as autovacuum would after such a load.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::poll_fn;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use biot_notifications::store::postgres::{PostgresStore, ReplicatedStore};
use biot_notifications::store::{InMemoryStore, SubscriptionStore};
use biot_notifications::{Action, EntityType, EventType, SubscribeRequest, Subscription};
use time::OffsetDateTime;
use tokio_postgres::{AsyncMessage, NoTls};
use uuid::Uuid;

use common::{endpoint_60, quick, ready, scaled};

const NAME: &str = "replicated";
const SCHEMA: &str = "biot_bench_replicated";
/// A schema with no subscription: what a replicated store costs before its index.
const EMPTY_SCHEMA: &str = "biot_bench_replicated_empty";
/// Subscriptions on `patient/_create` per template: what `matching` finds.
const PER_TEMPLATE: usize = 100;
/// How long B may take to see a change before the bench gives up on that one.
const GIVE_UP: Duration = Duration::from_secs(5);
/// Lookups per side in one pair of the paired ratio.
const PAIR_CHUNK: usize = 1_000;
/// Endpoint numbers above the loaded ones, one range per use, so no write collides.
const PROPAGATED_ENDPOINTS: u64 = 1_000_000_000;
const SUBSCRIBED_ENDPOINTS: u64 = 2_000_000_000;

/// Names the one memory measurement a child process runs, and the sizes it needs.
const MEMORY_SCENARIO: &str = "BIOT_BENCH_REPLICATED_MEMORY";
const MEMORY_SIZE: &str = "BIOT_BENCH_REPLICATED_SIZE";

// The counting allocator of `memory.rs`, off unless a memory child turns it on, so the
// timed parts of this bench pay one relaxed load per allocation and nothing else.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static PEAK_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

fn count(bytes: isize, blocks: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        let live = LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
        PEAK_BYTES.fetch_max(live, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_add(blocks, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract;
// the counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize, 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize, 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize, 0);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// How big this run is.
struct Sizes {
    /// Subscriptions on `patient/_create`, besides the one on `device/_create`.
    subscriptions: usize,
    /// Inserts (and as many removes) propagated from A to B.
    propagations: usize,
    /// Pairs of chunks in each paired ratio.
    pairs: usize,
}

impl Sizes {
    fn label(&self) -> String {
        format!("{}k", self.subscriptions / 1_000)
    }
}

fn main() {
    if let Ok(scenario) = std::env::var(MEMORY_SCENARIO) {
        measure_memory_child(&scenario);
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then a tiny run.
    let benching = args.iter().any(|a| a == "--bench");
    let filter = args.iter().find(|a| !a.starts_with('-')).cloned();
    let wanted = |part: &str| {
        filter
            .as_deref()
            .is_none_or(|f| format!("{NAME}/{part}").contains(f) || NAME.contains(f))
    };
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("replicated bench skipped: set DATABASE_URL (e.g. `source .ci/postgres.sh`)");
        return;
    };
    let sizes = match (benching, quick()) {
        (false, _) => Sizes {
            subscriptions: 1_000,
            propagations: 20,
            pairs: 4,
        },
        (true, true) => Sizes {
            subscriptions: scaled(100_000),
            propagations: 200,
            pairs: 40,
        },
        (true, false) => Sizes {
            subscriptions: 100_000,
            propagations: 1_000,
            pairs: 200,
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");

    let started = Instant::now();
    let (postgres, subscriptions) = runtime.block_on(load(&url, sizes.subscriptions));
    println!(
        "{NAME}: {} subscriptions loaded into PostgreSQL in {:.1} s",
        subscriptions.len(),
        started.elapsed().as_secs_f64()
    );

    if wanted("memory") {
        measure_memory(sizes.subscriptions);
    }

    let started = Instant::now();
    let replicated = runtime
        .block_on(connect(&url, SCHEMA))
        .expect("the replicated store connects");
    println!(
        "{NAME}: a replicated store connected and loaded its index in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let in_memory = InMemoryStore::new();
    for subscription in &subscriptions {
        ready(in_memory.insert(subscription.clone())).expect("unique subscriptions");
    }
    let total = subscriptions.len() as u64;
    assert_eq!(ready(replicated.count()).unwrap(), total);
    assert_eq!(ready(in_memory.count()).unwrap(), total);

    let mut criterion = common::criterion();
    if wanted("matching") || wanted("subscribe") {
        let mut group = criterion.benchmark_group(NAME);
        bench_matching(
            &mut group,
            &sizes,
            &runtime,
            &in_memory,
            &replicated,
            &postgres,
        );
        bench_subscribe(&mut group, &runtime, &replicated, &postgres);
        group.finish();
    }
    if wanted("matching") {
        paired_matching(&sizes, benching, &in_memory, &replicated);
    }
    if wanted("propagation") {
        let second = runtime
            .block_on(connect(&url, SCHEMA))
            .expect("a second replicated store connects");
        propagation(&sizes, benching, &runtime, &url, &replicated, &second);
    }
    criterion.final_summary();

    drop(replicated);
    drop(in_memory);
    runtime.block_on(async {
        // Let the dropped stores' listening connections close first.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let client = postgres.pool().get().await.unwrap();
        client
            .batch_execute(&format!(
                "DROP SCHEMA {SCHEMA} CASCADE; DROP SCHEMA {EMPTY_SCHEMA} CASCADE"
            ))
            .await
            .unwrap();
    });
}

async fn connect(url: &str, schema: &str) -> Result<ReplicatedStore, impl std::fmt::Debug> {
    ReplicatedStore::options()
        .postgres(PostgresStore::options().schema(schema))
        .connect(url)
        .await
}

/// The `i`-th subscription: on `patient/_create` in one of `subscriptions / 100`
/// templates with a 60-byte endpoint of its own (the last: the one on `device/_create`).
fn subscription_at(i: usize, subscriptions: usize, now: OffsetDateTime) -> Subscription {
    let key = if i < subscriptions {
        SubscribeRequest::new("patient", "_create", endpoint_60(i as u64).as_str())
            .with_template(format!("template{}", i % (subscriptions / PER_TEMPLATE)))
    } else {
        SubscribeRequest::new(
            "device",
            "_create",
            "https://pumps.plugins.example.com/hook",
        )
        .with_template("pump")
    }
    .key()
    .expect("a valid request");
    // Whole microseconds, as PostgreSQL keeps them.
    let created_at = now - time::Duration::microseconds(i as i64);
    Subscription::from_parts(Uuid::new_v4(), key, created_at)
}

/// A `PostgresStore` on a fresh schema holding the bench's subscriptions (and a fresh
/// empty schema beside it), and those subscriptions.
async fn load(url: &str, subscriptions: usize) -> (PostgresStore, Vec<Subscription>) {
    let store = PostgresStore::options()
        .schema(SCHEMA)
        .connect(url)
        .await
        .expect("connect");
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(&format!(
            "DROP SCHEMA {SCHEMA} CASCADE; DROP SCHEMA IF EXISTS {EMPTY_SCHEMA} CASCADE"
        ))
        .await
        .unwrap();
    drop(client);
    // Made by connecting: every migration applied, nothing in it.
    PostgresStore::options()
        .schema(EMPTY_SCHEMA)
        .connect(url)
        .await
        .expect("connect");
    let store = PostgresStore::options()
        .schema(SCHEMA)
        .connect(url)
        .await
        .expect("connect");

    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let all: Vec<Subscription> = (0..=subscriptions)
        .map(|i| subscription_at(i, subscriptions, now))
        .collect();
    let mut client = store.pool().get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(&format!(
        "ALTER TABLE {SCHEMA}.subscriptions DISABLE TRIGGER subscription_changes_row"
    ))
    .await
    .unwrap();
    common::postgres::bulk_insert(&tx, SCHEMA, &all).await;
    tx.batch_execute(&format!(
        "ALTER TABLE {SCHEMA}.subscriptions ENABLE TRIGGER subscription_changes_row"
    ))
    .await
    .unwrap();
    tx.commit().await.unwrap();
    client
        .batch_execute(&format!("ANALYZE {SCHEMA}.subscriptions"))
        .await
        .unwrap();
    drop(client);
    assert_eq!(store.count().await.unwrap(), all.len() as u64);
    (store, all)
}

/// `matching` with 100 and 1 results, on each store; the in-memory and replicated
/// stores never wait, so their futures are polled once, with no runtime around them.
fn bench_matching(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    sizes: &Sizes,
    runtime: &tokio::runtime::Runtime,
    in_memory: &InMemoryStore,
    replicated: &ReplicatedStore,
    postgres: &PostgresStore,
) {
    let label = sizes.label();
    for (lookup, (event_type, template, found)) in [
        ("100-of", (patient_created(), "template7", PER_TEMPLATE)),
        ("1-of", (device_created(), "pump", 1)),
    ] {
        group.bench_function(format!("matching/{lookup}-{label}/in-memory"), |b| {
            b.iter(|| {
                let matches = ready(in_memory.matching(event_type, Some(black_box(template))));
                assert_eq!(matches.unwrap().len(), found);
            })
        });
        group.bench_function(format!("matching/{lookup}-{label}/replicated"), |b| {
            b.iter(|| {
                let matches = ready(replicated.matching(event_type, Some(black_box(template))));
                assert_eq!(matches.unwrap().len(), found);
            })
        });
        group.bench_function(format!("matching/{lookup}-{label}/postgres"), |b| {
            b.iter(|| {
                let matches =
                    runtime.block_on(postgres.matching(event_type, Some(black_box(template))));
                assert_eq!(matches.unwrap().len(), found);
            })
        });
    }
}

/// A fresh subscription inserted and removed again, so the stores keep their size.
fn bench_subscribe(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    replicated: &ReplicatedStore,
    postgres: &PostgresStore,
) {
    let mut n = SUBSCRIBED_ENDPOINTS;
    let mut fresh = move || {
        n += 1;
        Subscription::new(
            SubscribeRequest::new("patient", "_create", endpoint_60(n).as_str())
                .with_template("template7")
                .key()
                .expect("a valid request"),
        )
    };
    let stores: [(&str, &dyn SubscriptionStore); 2] =
        [("postgres", postgres), ("replicated", replicated)];
    for (name, store) in stores {
        group.bench_function(format!("subscribe/insert+remove/{name}"), |b| {
            b.iter_batched(
                &mut fresh,
                |subscription| {
                    runtime.block_on(async {
                        let key = subscription.key().clone();
                        store.insert(subscription).await.unwrap();
                        store.remove(&key).await.unwrap();
                    })
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
}

/// The replicated store's `matching` over the in-memory store's, in alternating pairs
/// of chunks, a fraction of a millisecond apart.
fn paired_matching(
    sizes: &Sizes,
    benching: bool,
    in_memory: &InMemoryStore,
    replicated: &ReplicatedStore,
) {
    for (lookup, (event_type, template)) in [
        ("100-of", (patient_created(), "template7")),
        ("1-of", (device_created(), "pump")),
    ] {
        let time = |store: &dyn SubscriptionStore| {
            let started = Instant::now();
            for _ in 0..PAIR_CHUNK {
                black_box(ready(store.matching(event_type, Some(black_box(template)))).unwrap());
            }
            started.elapsed()
        };
        let mut ratios: Vec<f64> = (0..sizes.pairs)
            .map(|pair| {
                let (memory, replica) = if pair % 2 == 0 {
                    let memory = time(in_memory);
                    (memory, time(replicated))
                } else {
                    let replica = time(replicated);
                    (time(in_memory), replica)
                };
                replica.as_secs_f64() / memory.as_secs_f64()
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        let name = format!("{NAME}/matching/paired/{lookup}-{}", sizes.label());
        if benching {
            let at = |q: usize| ratios[(ratios.len() * q / 4).min(ratios.len() - 1)];
            println!(
                "{name}: replicated / in-memory {:.3}x median ({:.3}-{:.3}x quartiles) over {} pairs \
                 of {PAIR_CHUNK} lookups (target: within 1.5x)",
                at(2),
                at(1),
                at(3),
                ratios.len()
            );
        } else {
            println!("{name}: ran (test mode: no figures)");
        }
    }
}

/// Latencies of `rounds` events, sorted.
struct Latencies {
    name: &'static str,
    sorted: Vec<Duration>,
    gave_up: usize,
}

impl Latencies {
    fn new(name: &'static str, mut samples: Vec<Duration>, gave_up: usize) -> Self {
        samples.sort_unstable();
        Latencies {
            name,
            sorted: samples,
            gave_up,
        }
    }

    /// The sample below which `per_1_000` in 1,000 fall.
    fn percentile(&self, per_1_000: usize) -> Duration {
        self.sorted[(self.sorted.len() * per_1_000 / 1_000).min(self.sorted.len() - 1)]
    }

    fn print(&self) {
        let millis = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1e3);
        println!(
            "  {:<44} {:>10} {:>10} {:>10} {:>10} {:>8}",
            self.name,
            millis(self.percentile(500)),
            millis(self.percentile(900)),
            millis(self.percentile(990)),
            millis(*self.sorted.last().expect("samples")),
            self.gave_up,
        );
    }
}

/// Polls `seen` on this task, yielding to the runtime between polls, until it holds or
/// [`GIVE_UP`] has passed since `from`; when it held, or `None`.
async fn wait_until(from: Instant, mut seen: impl FnMut() -> bool) -> Option<Instant> {
    loop {
        if seen() {
            return Some(Instant::now());
        }
        if from.elapsed() > GIVE_UP {
            return None;
        }
        tokio::task::yield_now().await;
    }
}

/// From A's write returning until B sees it, for inserts and removes in turn; then the
/// two parts of it alone: a notification's delivery and the log query.
fn propagation(
    sizes: &Sizes,
    benching: bool,
    runtime: &tokio::runtime::Runtime,
    url: &str,
    a: &ReplicatedStore,
    b: &ReplicatedStore,
) {
    let rounds = sizes.propagations;
    let (a, b, url) = (a.clone(), b.clone(), url.to_owned());
    // On a worker of the runtime, like a request handler; B's follower and the
    // connections' drivers run on the runtime's workers too.
    let results = runtime.block_on(runtime.spawn(async move {
        let mut inserted = Vec::with_capacity(rounds);
        let mut removed = Vec::with_capacity(rounds);
        let mut insert_calls = Vec::with_capacity(rounds);
        let mut remove_calls = Vec::with_capacity(rounds);
        let (mut insert_gave_up, mut remove_gave_up) = (0, 0);
        for k in 0..rounds {
            let subscription = Subscription::new(
                SubscribeRequest::new(
                    "patient",
                    "_create",
                    endpoint_60(PROPAGATED_ENDPOINTS + k as u64).as_str(),
                )
                .with_template(format!("template{}", k % 7))
                .key()
                .expect("a valid request"),
            );
            let (id, key) = (subscription.id(), subscription.key().clone());

            let called = Instant::now();
            a.insert(subscription).await.expect("insert");
            let returned = Instant::now();
            insert_calls.push(returned - called);
            match wait_until(returned, || ready(b.get(id)).unwrap().is_some()).await {
                Some(seen) => inserted.push(seen - returned),
                None => insert_gave_up += 1,
            }

            let called = Instant::now();
            a.remove(&key).await.expect("remove");
            let returned = Instant::now();
            remove_calls.push(returned - called);
            match wait_until(returned, || ready(b.get(id)).unwrap().is_none()).await {
                Some(seen) => removed.push(seen - returned),
                None => remove_gave_up += 1,
            }
        }
        let (notified, notify_calls) = notification_delivery(&url, &a, rounds).await;
        let log_queries = log_query(&a, rounds).await;
        [
            Latencies::new(
                "A inserts, until B's get finds it",
                inserted,
                insert_gave_up,
            ),
            Latencies::new(
                "A removes, until B's get misses it",
                removed,
                remove_gave_up,
            ),
            Latencies::new("A's insert itself", insert_calls, 0),
            Latencies::new("A's remove itself", remove_calls, 0),
            Latencies::new("alone: a NOTIFY, until a listener hears it", notified, 0),
            Latencies::new("alone: the NOTIFY statement itself", notify_calls, 0),
            Latencies::new("alone: the log query for one change", log_queries, 0),
        ]
    }));
    let results = results.expect("the propagation task");
    let name = format!("{NAME}/propagation/{}", sizes.label());
    if !benching {
        println!("{name}: ran (test mode: no figures)");
        return;
    }
    println!("{name}: {rounds} inserts and {rounds} removes from A, B polling `get`");
    println!(
        "  {:<44} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "", "p50", "p90", "p99", "max", "gave up"
    );
    for latencies in &results {
        latencies.print();
    }
    println!(
        "  propagation p99 (inserts): {:.3} ms (target: under 50 ms on loopback)",
        results[0].percentile(990).as_secs_f64() * 1e3
    );
}

/// A bare `NOTIFY` from one of `store`'s pooled connections until a listening connection
/// of its own hears it: how long the measured time until B sees a write, without the
/// replicated store.
async fn notification_delivery(
    url: &str,
    store: &ReplicatedStore,
    rounds: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let (listener, mut connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("a listening connection");
    let heard = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&heard);
    let driver = tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            if let Ok(AsyncMessage::Notification(_)) = message {
                counter.fetch_add(1, Ordering::Release);
            }
        }
    });
    listener
        .batch_execute("LISTEN biot_bench_probe")
        .await
        .expect("LISTEN");
    let client = store
        .postgres()
        .pool()
        .get()
        .await
        .expect("a pooled client");
    let notify = client
        .prepare("SELECT pg_notify('biot_bench_probe', $1)")
        .await
        .expect("prepare");
    let mut delivered = Vec::with_capacity(rounds);
    let mut calls = Vec::with_capacity(rounds);
    for k in 0..rounds {
        let before = heard.load(Ordering::Acquire);
        let called = Instant::now();
        client
            .execute(&notify, &[&k.to_string()])
            .await
            .expect("NOTIFY");
        let returned = Instant::now();
        calls.push(returned - called);
        let seen = wait_until(returned, || heard.load(Ordering::Acquire) > before)
            .await
            .expect("the listener hears the notification");
        delivered.push(seen - returned);
    }
    drop(listener);
    driver.abort();
    (delivered, calls)
}

/// The round trip of the query an instance runs on hearing of a change: the log from the
/// version before the last, with the head (a copy of the store's text, which is private:
/// keep the two the same).
async fn log_query(store: &ReplicatedStore, rounds: usize) -> Vec<Duration> {
    let client = store
        .postgres()
        .pool()
        .get()
        .await
        .expect("a pooled client");
    let query = client
        .prepare(&format!(
            "SELECT (SELECT version FROM {SCHEMA}.subscription_changes_head), c.version, \
             c.operation, c.id, c.entity_type_name, c.action_name, c.endpoint, \
             c.template_name, c.created_at \
             FROM (VALUES (true)) AS always (x) LEFT JOIN LATERAL \
             (SELECT * FROM {SCHEMA}.subscription_changes WHERE version >= $1 \
              ORDER BY version LIMIT $2) c ON always.x ORDER BY c.version"
        ))
        .await
        .expect("prepare");
    let head = store.status().version as i64;
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let rows = client
            .query(&query, &[&(head - 1), &1_000i64])
            .await
            .expect("the log query");
        samples.push(started.elapsed());
        assert_eq!(
            rows.len(),
            2,
            "the change at the version before the head (read again, as the store does to \
             check it) and the one after it"
        );
    }
    samples
}

fn patient_created() -> EventType {
    EventType::new(EntityType::Patient, Action::Create).expect("a valid pair")
}

fn device_created() -> EventType {
    EventType::new(EntityType::Device, Action::Create).expect("a valid pair")
}

/// Resident memory of this process, in bytes (Linux; 0 elsewhere).
fn resident_bytes() -> isize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<isize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Runs the two memory measurements, each in a process of its own (so memory one kept
/// in the system allocator cannot hide the other's growth in the resident set).
fn measure_memory(subscriptions: usize) {
    let me = std::env::current_exe().expect("the path of this bench");
    for scenario in ["in-memory", "replicated"] {
        let status = std::process::Command::new(&me)
            .env(MEMORY_SCENARIO, scenario)
            .env(MEMORY_SIZE, subscriptions.to_string())
            .status()
            .expect("the bench can run itself");
        assert!(status.success(), "memory/{scenario}: {status}");
    }
}

/// In a child process: what one store holds with the bench's subscriptions.
fn measure_memory_child(scenario: &str) {
    COUNTING.store(true, Ordering::SeqCst);
    let subscriptions: usize = std::env::var(MEMORY_SIZE)
        .expect("the parent says how many")
        .parse()
        .expect("a number");
    let total = subscriptions + 1;
    let per = |bytes: isize| bytes as f64 / total as f64;
    let name = format!("{NAME}/memory/{scenario}");
    match scenario {
        "in-memory" => {
            let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
            let (bytes, blocks) = live();
            let resident = resident_bytes();
            let store = InMemoryStore::new();
            for i in 0..total {
                ready(store.insert(subscription_at(i, subscriptions, now)))
                    .expect("unique subscriptions");
            }
            let (grown, grown_blocks) = since((bytes, blocks));
            println!(
                "{name:<30} {total:>7} subscriptions: {:>6.1} bytes/subscription allocated \
                 ({:.2} blocks), {:>6.1} resident",
                per(grown),
                grown_blocks as f64 / total as f64,
                per(resident_bytes() - resident),
            );
            drop(store);
        }
        "replicated" => {
            let url = std::env::var("DATABASE_URL").expect("the parent had it");
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            // First on an empty schema: what a replicated store holds besides its index
            // (pool, listening connection, tasks); this also warms up what a process
            // allocates once (the runtime's and the driver's first buffers).
            let before = live();
            let empty = runtime
                .block_on(connect(&url, EMPTY_SCHEMA))
                .expect("connect");
            let (fixed, _) = since(before);
            drop(empty);
            runtime.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });

            let before = live();
            PEAK_BYTES.store(before.0, Ordering::SeqCst);
            let resident = resident_bytes();
            let store = runtime.block_on(connect(&url, SCHEMA)).expect("connect");
            // The follower settles (its first heartbeat is a second away).
            runtime.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
            let (grown, grown_blocks) = since(before);
            let peak = PEAK_BYTES.load(Ordering::SeqCst) - before.0;
            assert_eq!(ready(store.count()).unwrap(), total as u64);
            println!(
                "{name:<30} {total:>7} subscriptions: {:>6.1} bytes/subscription allocated \
                 ({:.2} blocks), {:>6.1} without the {:.0} KiB an empty store holds; \
                 {:>6.1} resident; {:>6.1} at the peak of loading",
                per(grown),
                grown_blocks as f64 / total as f64,
                per(grown - fixed),
                fixed as f64 / 1024.0,
                per(resident_bytes() - resident),
                per(peak),
            );
            drop(store);
        }
        other => panic!("unknown memory scenario {other}"),
    }
}

/// Bytes and blocks live now.
fn live() -> (isize, isize) {
    (
        LIVE_BYTES.load(Ordering::SeqCst),
        LIVE_BLOCKS.load(Ordering::SeqCst),
    )
}

/// Bytes and blocks allocated since `before` and still live.
fn since(before: (isize, isize)) -> (isize, isize) {
    let (bytes, blocks) = live();
    (bytes - before.0, blocks - before.1)
}
