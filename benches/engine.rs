//! The delivery engine against what it is built on, each pair measured in the same run:
//!
//! - `engine-hand-off`: `DeliveryEngine::try_submit` of an event, against a bare bounded
//!   `tokio::sync::mpsc::Sender::try_send` of the same event into a channel of the same
//!   capacity, whose consumer receives and drops. Both consumers (the engine's own tasks,
//!   with one subscriber and a discarding notifier) live on a current-thread runtime
//!   that is driven only between batches: each batch of 256 sends is timed from the
//!   bench thread with nothing else running, then drained off the clock, so the queue
//!   never fills and neither side is timed doing the other's work.
//!   After the criterion benchmarks, the ratio is also taken in alternating pairs of
//!   batches and printed (`engine-hand-off/paired`).
//! - `engine-deliveries`: deliveries per second to 4 loopback HTTP receivers (axum,
//!   answering `200` at once, on a runtime of their own): through the engine (defaults,
//!   `HttpNotifier`, each event to all 4), against a plain reqwest loop posting the same
//!   notification bytes and headers, with the engine's concurrency (8 requests at a
//!   time per receiver). Timed from the first hand-off until the last answer. After
//!   the criterion pair, the ratio is also taken in alternating pairs of batches and
//!   printed (`engine-deliveries/paired`).
//!
//! `cargo bench --bench engine --all-features` (`BIOT_BENCH_QUICK=1` for a smoke run).
//! Throughput is per element: events handed off, or deliveries.

mod common;

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use biot_notifications::delivery::{DeliveryEngine, DEFAULT_EVENTS_QUEUED};
use biot_notifications::notification::{Event, PreparedNotification, TraceParent};
use biot_notifications::notifier::{DeliveryError, DiscardingNotifier, Notifier};
use biot_notifications::HttpNotifier;
use biot_notifications::{
    Action, Dispatcher, Endpoint, EndpointPolicy, EntityType, EventType, InMemoryStore,
    SubscribeRequest,
};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use serde_json::json;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, Notify};

use common::quick;

/// Whether criterion measures (`cargo bench`), rather than runs each benchmark once as a
/// test (`cargo test --benches`, unoptimised): the paired ratios are printed only then.
fn measuring() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// `pairs` runs of `first` and `second` side by side, whichever goes first alternating;
/// the ratios of their times (`first` over `second`), sorted.
fn alternating_time_ratios(
    pairs: usize,
    mut first: impl FnMut() -> Duration,
    mut second: impl FnMut() -> Duration,
) -> Vec<f64> {
    let mut ratios: Vec<f64> = (0..pairs)
        .map(|pair| {
            let (first_time, second_time) = if pair % 2 == 0 {
                let first_time = first();
                (first_time, second())
            } else {
                let second_time = second();
                (first(), second_time)
            };
            first_time.as_secs_f64() / second_time.as_secs_f64()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios
}

/// Prints a paired ratio's line, or, in test mode, that the pairs ran.
fn print_paired(name: &str, figures: String) {
    if measuring() {
        println!("{name}: {figures}");
    } else {
        println!("{name}: ran (test mode: no figures)");
    }
}

/// Sends timed together; the consumer drains between batches, off the clock.
const HAND_OFF_BATCH: usize = 256;

/// Loopback receivers, and requests to each at once (the engine's default per endpoint).
const RECEIVERS: usize = 4;
const IN_FLIGHT_PER_RECEIVER: usize = 8;

fn patient_created(n: usize) -> Event {
    Event::new(
        EventType::new(EntityType::Patient, Action::Create).expect("a valid pair"),
        json!({
            "_id": format!("8f6b1c62-3d7e-4f0a-9a51-{n:012}"),
            "_template": {"name": "adultPatient", "id": "0b5e9c1e-5f55-4e4c-8d0c-2a3f8c1d9e77"},
            "_name": "Jane Doe",
            "_ownerOrganization": {"id": "00000000-0000-0000-0000-000000000000"},
            "weight": 71,
        }),
    )
}

/// The runtime the engine (or the baseline's consumer) runs on: two workers, as on
/// this two-core machine `#[tokio::main]` would build.
fn host_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Times `send` over `iters` events made by `make`, in batches, running `drain` between
/// them.
fn time_batches(
    iters: u64,
    make: fn(usize) -> Event,
    mut send: impl FnMut(Event),
    mut drain: impl FnMut(),
) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut done = 0u64;
    while done < iters {
        let batch = (iters - done).min(HAND_OFF_BATCH as u64) as usize;
        let events: Vec<Event> = (0..batch).map(make).collect();
        let started = Instant::now();
        for event in events {
            send(event);
        }
        elapsed += started.elapsed();
        done += batch as u64;
        drain();
    }
    elapsed
}

fn hand_off(c: &mut Criterion) {
    // One thread, driven only between batches: while a batch is timed nothing else
    // runs, so each side pays for its own call and for waking its consumer once per
    // batch, not for the consumer's work on the other core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    let drain = |idle: &dyn Fn() -> bool| {
        runtime.block_on(async {
            while !idle() {
                tokio::task::yield_now().await;
            }
        })
    };

    let dispatcher = Dispatcher::new(InMemoryStore::new(), DiscardingNotifier);
    runtime
        .block_on(dispatcher.subscribe(&SubscribeRequest::new(
            "patient",
            "_create",
            "https://plugin.example.com/biot/notify",
        )))
        .expect("a valid subscription");
    let engine = DeliveryEngine::builder(dispatcher)
        .build()
        .expect("default options");
    let engine_idle = || {
        let stats = engine.stats();
        stats.events_queued == 0
            && stats.events_accepted == stats.events_expanded
            && stats.matched == stats.outcomes.total()
    };

    let (sender, mut receiver) = mpsc::channel::<Event>(DEFAULT_EVENTS_QUEUED);
    runtime.spawn(async move {
        while let Some(event) = receiver.recv().await {
            drop(black_box(event));
        }
    });
    let channel_empty = || sender.capacity() == sender.max_capacity();

    let mut group = c.benchmark_group("engine-hand-off");
    group.throughput(Throughput::Elements(1));
    // The consumers take 10-50x as long as the sends they drain: keep the measured time
    // short, or the wall time is minutes.
    if quick() {
        group
            .warm_up_time(Duration::from_millis(50))
            .measurement_time(Duration::from_millis(100));
    } else {
        group
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(500));
    }
    group.bench_function("try_submit", |b| {
        b.iter_custom(|iters| {
            time_batches(
                iters,
                patient_created,
                |event| {
                    black_box(engine.try_submit(event).expect("the queue never fills"));
                },
                || drain(&engine_idle),
            )
        })
    });
    // The caller sent a trace context: `try_submit` has none to draw.
    group.bench_function("try_submit/with-traceparent", |b| {
        b.iter_custom(|iters| {
            time_batches(
                iters,
                |n| patient_created(n).with_traceparent(TraceParent::generate()),
                |event| {
                    black_box(engine.try_submit(event).expect("the queue never fills"));
                },
                || drain(&engine_idle),
            )
        })
    });
    group.bench_function("baseline/mpsc-try_send", |b| {
        b.iter_custom(|iters| {
            time_batches(
                iters,
                patient_created,
                |event| sender.try_send(event).expect("the queue never fills"),
                || drain(&channel_empty),
            )
        })
    });
    group.finish();

    // The benchmarks above run a second apart, and this machine's speed moves over
    // seconds: the ratio is also taken batch against batch, alternately.
    let rounds = if quick() { 4 } else { 2_000 };
    let submit = || {
        time_batches(
            HAND_OFF_BATCH as u64,
            patient_created,
            |event| {
                black_box(engine.try_submit(event).expect("the queue never fills"));
            },
            || drain(&engine_idle),
        )
    };
    let send = || {
        time_batches(
            HAND_OFF_BATCH as u64,
            patient_created,
            |event| sender.try_send(event).expect("the queue never fills"),
            || drain(&channel_empty),
        )
    };
    let ratios = alternating_time_ratios(rounds, submit, send);
    print_paired(
        "engine-hand-off/paired",
        format!(
            "try_submit against mpsc try_send: median {:.2}x, quartiles {:.2}-{:.2}x \
             over {rounds} alternating pairs of {HAND_OFF_BATCH}-send batches",
            ratios[rounds / 2],
            ratios[rounds / 4],
            ratios[rounds * 3 / 4]
        ),
    );
    let report = runtime.block_on(engine.shutdown(Duration::from_secs(5)));
    assert!(report.drained, "{report:?}");
    assert_eq!(report.matched, report.delivered, "{report:?}");
}

// --- Deliveries to loopback receivers -------------------------------------------------

/// A receiver: counts what it gets, answers `200` with no body.
async fn receive(State(received): State<Arc<AtomicUsize>>, body: Bytes) -> StatusCode {
    black_box(body);
    received.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}

/// Starts `RECEIVERS` receivers on `runtime`; their addresses and their common count.
fn start_receivers(runtime: &Runtime) -> (Vec<SocketAddr>, Arc<AtomicUsize>) {
    let received = Arc::new(AtomicUsize::new(0));
    let addresses = (0..RECEIVERS)
        .map(|_| {
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("a loopback port");
                let address = listener.local_addr().expect("bound");
                let app = Router::new()
                    .route("/hook", post(receive))
                    .with_state(Arc::clone(&received));
                tokio::spawn(async move {
                    axum::serve(listener, app).await.expect("serving");
                });
                address
            })
        })
        .collect();
    (addresses, received)
}

/// The engine's notifier, telling the bench when the batch's last delivery ended.
#[derive(Debug)]
struct Completing {
    inner: HttpNotifier,
    ended: AtomicUsize,
    expected: AtomicUsize,
    all_ended: Notify,
}

#[async_trait]
impl Notifier for Completing {
    async fn notify(
        &self,
        endpoint: &Endpoint,
        notification: &PreparedNotification,
    ) -> Result<(), DeliveryError> {
        let result = self.inner.notify(endpoint, notification).await;
        if self.ended.fetch_add(1, Ordering::AcqRel) + 1 == self.expected.load(Ordering::Acquire) {
            self.all_ended.notify_one();
        }
        result
    }
}

fn deliveries(c: &mut Criterion) {
    let events = if quick() { 50 } else { 1_000 };
    let deliveries = events * RECEIVERS;
    let receivers_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let (addresses, received) = start_receivers(&receivers_runtime);
    let urls: Vec<String> = addresses
        .iter()
        .map(|address| format!("http://{address}/hook"))
        .collect();

    let runtime = host_runtime();
    let _entered = runtime.enter();
    let policy = EndpointPolicy::local_development();
    let completing = Arc::new(Completing {
        inner: HttpNotifier::builder()
            .endpoint_policy(policy.clone())
            .build()
            .expect("an HTTP client"),
        ended: AtomicUsize::new(0),
        expected: AtomicUsize::new(usize::MAX),
        all_ended: Notify::new(),
    });
    let dispatcher = Dispatcher::builder(
        Arc::new(InMemoryStore::new()),
        Arc::clone(&completing) as Arc<dyn Notifier>,
    )
    .endpoint_policy(policy.clone())
    .build()
    .expect("dispatcher options");
    for url in &urls {
        runtime
            .block_on(dispatcher.subscribe(&SubscribeRequest::new("patient", "_create", url)))
            .expect("a loopback subscription");
    }
    let engine = DeliveryEngine::builder(dispatcher)
        .build()
        .expect("default options");

    // The baseline's requests: the same bytes and headers as the engine's.
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let endpoints: Vec<Endpoint> = urls
        .iter()
        .map(|url| policy.validate(url).expect("a loopback endpoint"))
        .collect();
    let prepared = Arc::new(patient_created(0).prepare(None));

    // One batch each way, timed from the first hand-off (or post) to the last answer.
    let through_engine = || {
        let batch: Vec<Event> = (0..events).map(patient_created).collect();
        completing.ended.store(0, Ordering::Release);
        completing.expected.store(deliveries, Ordering::Release);
        let before = received.load(Ordering::Relaxed);
        let started = Instant::now();
        for event in batch {
            engine.try_submit(event).expect("the queue holds the batch");
        }
        runtime.block_on(completing.all_ended.notified());
        let elapsed = started.elapsed();
        assert_eq!(received.load(Ordering::Relaxed) - before, deliveries);
        elapsed
    };
    let through_reqwest = || {
        let before = received.load(Ordering::Relaxed);
        let started = Instant::now();
        runtime.block_on(post_all(&client, &endpoints, &prepared, events));
        let elapsed = started.elapsed();
        assert_eq!(received.load(Ordering::Relaxed) - before, deliveries);
        elapsed
    };

    let mut group = c.benchmark_group("engine-deliveries");
    group
        .throughput(Throughput::Elements(deliveries as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1));
    if !quick() {
        group.measurement_time(Duration::from_secs(6));
    }
    group.bench_function(format!("engine/{RECEIVERS}-receivers"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| through_engine()).sum())
    });
    group.bench_function(format!("baseline/reqwest-{RECEIVERS}-receivers"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| through_reqwest()).sum())
    });
    group.finish();

    // The two benchmarks above run seconds apart, and this machine's speed moves over
    // seconds: the ratio is also taken batch against batch, alternately, each pair a
    // fraction of a second apart, whichever goes first alternating.
    let pairs = if quick() { 2 } else { 30 };
    // Time over time, inverted: the engine's deliveries per second over reqwest's.
    let ratios = alternating_time_ratios(pairs, through_reqwest, through_engine);
    print_paired(
        "engine-deliveries/paired",
        format!(
            "the engine's deliveries per second, against plain reqwest's: median {:.3}x, \
             range {:.3}-{:.3}x over {pairs} alternating pairs of {deliveries}",
            ratios[pairs / 2],
            ratios[0],
            ratios[pairs - 1]
        ),
    );
    let report = runtime.block_on(engine.shutdown(Duration::from_secs(5)));
    assert_eq!(report.matched, report.delivered, "{report:?}");
}

/// `events` posts to every endpoint, `IN_FLIGHT_PER_RECEIVER` at a time to each.
async fn post_all(
    client: &reqwest::Client,
    endpoints: &[Endpoint],
    prepared: &Arc<PreparedNotification>,
    events: usize,
) {
    let mut tasks = Vec::with_capacity(endpoints.len() * IN_FLIGHT_PER_RECEIVER);
    for endpoint in endpoints {
        for lane in 0..IN_FLIGHT_PER_RECEIVER {
            let client = client.clone();
            let endpoint = endpoint.clone();
            let prepared = Arc::clone(prepared);
            // This lane's share of the events: every IN_FLIGHT_PER_RECEIVER-th.
            let posts = (lane..events).step_by(IN_FLIGHT_PER_RECEIVER).count();
            tasks.push(tokio::spawn(async move {
                for _ in 0..posts {
                    let request = reqwest::Request::try_from(prepared.to_request(&endpoint))
                        .expect("a valid request");
                    let response = client.execute(request).await.expect("delivered");
                    assert!(response.status().is_success());
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("no panic");
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = hand_off, deliveries
}
criterion_main!(benches);
