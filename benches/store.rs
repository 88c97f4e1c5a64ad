//! `InMemoryStore`: insert and remove, `matching` against a naive scan as the store grows,
//! and `matching` while another thread keeps writing.
//!
//! `cargo bench --bench store` (`BIOT_BENCH_QUICK=1` for a smoke run: stores a tenth the size)
//!
//! Every store here has the shape the dispatch hot path must not care about: most
//! subscriptions share the looked-up `(entity, action)` pair under other template names,
//! so an index on the pair alone would not help.

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use biot_notifications::store::{InMemoryStore, SubscriptionStore};
use biot_notifications::{
    Action, EntityType, EventType, Subscription, SubscriptionKey, TemplateName,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use time::OffsetDateTime;
use uuid::Uuid;

use common::{endpoint_60, in_chunks, insert, pairs, ready, scaled, subscription, template, Noise};

/// How many subscriptions an event of the looked-up pair and template reaches.
const MATCHES: usize = 10;
/// Of those, how many have no template (the rest have the looked-up one).
const UNTEMPLATED_MATCHES: usize = 2;
/// Subscriptions per template bucket among the others.
const PER_TEMPLATE: usize = 10;

fn looked_up_pair() -> EventType {
    EventType::new(EntityType::Patient, Action::Update).expect("a valid pair")
}

fn looked_up_template() -> TemplateName {
    TemplateName::new("adultPatientV2").expect("a valid template name")
}

/// A store of `total` subscriptions, of which exactly [`MATCHES`] reach
/// `(looked_up_pair, looked_up_template)`; 90% of the others are on the same pair under
/// other templates (buckets of [`PER_TEMPLATE`]), the rest spread over the other 59
/// pairs, in the order they are to be inserted.
fn population(total: usize) -> Vec<Subscription> {
    let pair = looked_up_pair();
    let others: Vec<EventType> = pairs().into_iter().filter(|&p| p != pair).collect();
    let mut noise = Noise::new(0x5eed);
    let mut next_endpoint = 0u64;
    let mut endpoint = || {
        next_endpoint += 1;
        endpoint_60(next_endpoint)
    };
    let mut all = Vec::with_capacity(total);
    for i in 0..MATCHES {
        let template = (i >= UNTEMPLATED_MATCHES).then(looked_up_template);
        all.push(subscription(pair, endpoint(), template));
    }
    let rest = total - MATCHES;
    let same_pair = rest * 9 / 10;
    for j in 0..same_pair {
        all.push(subscription(
            pair,
            endpoint(),
            Some(template(j / PER_TEMPLATE)),
        ));
    }
    for _ in same_pair..rest {
        let other = others[noise.below(others.len())];
        let template = (noise.below(4) != 0).then(|| template(noise.below(1_000)));
        all.push(subscription(other, endpoint(), template));
    }
    all
}

fn store_of(subscriptions: impl IntoIterator<Item = Subscription>) -> InMemoryStore {
    let store = InMemoryStore::new();
    for s in subscriptions {
        insert(&store, s);
    }
    store
}

/// The baseline: every subscription in a `Vec`, scanned with `Subscription::matches`.
fn naive_matching<'a>(
    all: &'a [Subscription],
    pair: EventType,
    template: Option<&str>,
) -> Vec<&'a Subscription> {
    all.iter().filter(|s| s.matches(pair, template)).collect()
}

fn matching(c: &mut Criterion) {
    let pair = looked_up_pair();
    let template = looked_up_template();
    let template = Some(template.as_str());
    let mut group = c.benchmark_group("matching");
    for total in [1_000, 100_000, 1_000_000].map(scaled) {
        let all = population(total);
        let store = store_of(all.iter().cloned());
        assert_eq!(
            ready(store.matching(pair, template)).unwrap().len(),
            MATCHES
        );
        assert_eq!(naive_matching(&all, pair, template).len(), MATCHES);

        group.sampling_mode(SamplingMode::Auto);
        group.bench_with_input(BenchmarkId::new("InMemoryStore", total), &total, |b, _| {
            b.iter(|| ready(store.matching(black_box(pair), black_box(template))).unwrap())
        });
        // A scan of a million takes milliseconds: sample it flat, and less often.
        if total >= 100_000 {
            group.sampling_mode(SamplingMode::Flat);
        }
        group.bench_with_input(BenchmarkId::new("naive-vec-scan", total), &total, |b, _| {
            b.iter(|| naive_matching(black_box(&all), black_box(pair), black_box(template)))
        });
    }
    group.finish();
}

/// Inserts and removes, each timed alone (the other is done off the clock, in chunks,
/// so the store stays at its size), into buckets of several sizes.
fn insert_remove(c: &mut Criterion) {
    let total = scaled(100_000);
    let store = store_of(population(total));
    let pair = looked_up_pair();
    let big_pair = EventType::new(EntityType::Device, Action::Update).expect("a valid pair");
    let big_template = TemplateName::new("bigBucket").expect("a valid template name");
    for n in 0..10_000 {
        insert(
            &store,
            subscription(
                big_pair,
                endpoint_60(1 << 32 | n),
                Some(big_template.clone()),
            ),
        );
    }
    for n in 0..1_000 {
        insert(
            &store,
            subscription(big_pair, endpoint_60(2 << 32 | n), None),
        );
    }
    let templates_on_pair = (total - MATCHES) * 9 / 10 / PER_TEMPLATE;

    // Each case: the bucket size the new subscription joins, and how to make the k-th one.
    type Make = Box<dyn Fn(u64) -> SubscriptionKey>;
    let cases: Vec<(&str, Make)> = vec![
        (
            "new-bucket",
            Box::new(move |k| {
                let template = TemplateName::new(&format!("fresh-{k}")).unwrap();
                SubscriptionKey::new(pair, endpoint_60(3 << 32 | k), Some(template))
            }),
        ),
        (
            "bucket-of-10",
            Box::new(move |k| {
                let template = template(k as usize % templates_on_pair);
                SubscriptionKey::new(pair, endpoint_60(3 << 32 | k), Some(template))
            }),
        ),
        (
            "bucket-of-1000",
            Box::new(move |k| SubscriptionKey::new(big_pair, endpoint_60(3 << 32 | k), None)),
        ),
        (
            "bucket-of-10000",
            Box::new(move |k| {
                SubscriptionKey::new(
                    big_pair,
                    endpoint_60(3 << 32 | k),
                    Some(big_template.clone()),
                )
            }),
        ),
    ];

    // Ids drawn off the clock: `Subscription::new` is measured in the subscribe bench.
    let created = OffsetDateTime::now_utc();
    let next_id = AtomicU64::new(1);
    let fresh = |key: SubscriptionKey| {
        let id = Uuid::from_u64_pair(0xb107, next_id.fetch_add(1, Ordering::Relaxed));
        Subscription::from_parts(id, key, created)
    };

    let mut group = c.benchmark_group("store");
    for (name, make) in &cases {
        group.bench_function(BenchmarkId::new("insert", name), |b| {
            b.iter_custom(|iters| {
                in_chunks(iters, |ks| {
                    let keys: Vec<SubscriptionKey> = ks.map(make).collect();
                    let subscriptions: Vec<Subscription> =
                        keys.iter().cloned().map(&fresh).collect();
                    let started = Instant::now();
                    for s in subscriptions {
                        ready(store.insert(s)).unwrap();
                    }
                    let elapsed = started.elapsed();
                    for key in &keys {
                        ready(store.remove(key)).unwrap();
                    }
                    elapsed
                })
            })
        });
        group.bench_function(BenchmarkId::new("remove", name), |b| {
            b.iter_custom(|iters| {
                in_chunks(iters, |ks| {
                    let keys: Vec<SubscriptionKey> = ks.map(make).collect();
                    for key in &keys {
                        ready(store.insert(fresh(key.clone()))).unwrap();
                    }
                    let started = Instant::now();
                    for key in &keys {
                        black_box(ready(store.remove(key)).unwrap());
                    }
                    started.elapsed()
                })
            })
        });
    }
    group.finish();
}

/// What the second thread of [`matching_under_writes`] does.
#[derive(Clone, Copy)]
enum Writes {
    /// Nothing with the store: it only keeps a core busy. The control for the others,
    /// since on two cores a busy second thread slows the reader down by itself
    /// whenever anything else runs on the machine.
    None,
    /// Other templates of the looked-up pair: the same shard maps, other buckets.
    OtherTemplates,
    /// The very bucket being read: every write replaces the reader's snapshot.
    SameBucket,
}

/// A second thread, busy as fast as it can (writing, or not) until dropped.
struct Background {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<u64>>,
    started: Instant,
}

impl Background {
    fn start(store: &InMemoryStore, writes: Writes, templates_on_pair: usize) -> Self {
        let store = store.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let pair = looked_up_pair();
        let keys: Vec<SubscriptionKey> = (0..256u64)
            .map(|k| {
                let template = match writes {
                    Writes::None | Writes::OtherTemplates => {
                        template(k as usize * 7919 % templates_on_pair)
                    }
                    Writes::SameBucket => looked_up_template(),
                };
                SubscriptionKey::new(pair, endpoint_60(4 << 32 | k), Some(template))
            })
            .collect();
        let handle = thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                let created = OffsetDateTime::now_utc();
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for key in &keys {
                        let id = Uuid::from_u64_pair(0x3417e, done);
                        let s = Subscription::from_parts(id, key.clone(), created);
                        if let Writes::None = writes {
                            // The same work as a writer's, minus the store.
                            black_box(s);
                        } else {
                            ready(store.insert(s)).unwrap();
                            ready(store.remove(key)).unwrap();
                        }
                        done += 2;
                    }
                }
                done
            }
        });
        Background {
            stop,
            handle: Some(handle),
            started: Instant::now(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let writes = handle.join().expect("the second thread does not panic");
            let rate = writes as f64 / self.started.elapsed().as_secs_f64();
            println!("  (second thread: {writes} writes or stand-ins, {rate:.0}/s)");
        }
    }
}

/// How long a cache line takes to go from one core to the other: two threads pass a
/// counter back and forth on one line, and each pass is one trip. On this machine's two
/// vCPUs a trip takes 15-40 ns at times and 110-170 ns at others, and every figure of
/// [`matching_under_writes`] in which the threads share data moves with it; the group
/// prints it around each of its benchmarks, so that a run can be read against it.
fn line_trip() -> Duration {
    #[repr(align(64))]
    struct Line(AtomicU64);
    const PASSES: u64 = 200_000;
    let line = Arc::new(Line(AtomicU64::new(0)));
    let echo = thread::spawn({
        let line = Arc::clone(&line);
        move || {
            for pass in 0..PASSES {
                while line.0.load(Ordering::Acquire) != 2 * pass + 1 {
                    std::hint::spin_loop();
                }
                line.0.store(2 * pass + 2, Ordering::Release);
            }
        }
    });
    let started = Instant::now();
    for pass in 0..PASSES {
        line.0.store(2 * pass + 1, Ordering::Release);
        while line.0.load(Ordering::Acquire) != 2 * pass + 2 {
            std::hint::spin_loop();
        }
    }
    let elapsed = started.elapsed();
    echo.join().expect("the echoing thread does not panic");
    elapsed / (2 * PASSES as u32)
}

fn matching_under_writes(c: &mut Criterion) {
    let total = scaled(1_000_000);
    let store = store_of(population(total));
    let templates_on_pair = (total - MATCHES) * 9 / 10 / PER_TEMPLATE;
    let pair = looked_up_pair();
    let template = looked_up_template();
    let template = Some(template.as_str());

    let mut group = c.benchmark_group("matching-under-writes");
    let mut lookup = |name: &str, writes: Option<Writes>| {
        let trip_before = line_trip();
        let background = writes.map(|w| Background::start(&store, w, templates_on_pair));
        group.bench_function(BenchmarkId::new(name, total), |b| {
            b.iter(|| ready(store.matching(black_box(pair), black_box(template))).unwrap())
        });
        drop(background);
        println!(
            "  (a cache line from one core to the other: {} ns before, {} ns after)",
            trip_before.as_nanos(),
            line_trip().as_nanos()
        );
    };
    lookup("no-writer", None);
    lookup("busy-thread-no-writes", Some(Writes::None));
    lookup("writer-other-templates", Some(Writes::OtherTemplates));
    lookup("writer-same-bucket", Some(Writes::SameBucket));
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = matching, insert_remove, matching_under_writes
}
criterion_main!(benches);
