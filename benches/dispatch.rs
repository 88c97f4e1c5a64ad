//! `Dispatcher::dispatch` fan-out with a notifier that does nothing, against the
//! notifier's own cost, so the dispatcher's overhead per endpoint is the difference.
//!
//! `cargo bench --bench dispatch` (`BIOT_BENCH_QUICK=1` for a smoke run)
//!
//! Reported per endpoint (`Throughput::Elements`): criterion's "thrpt" line is endpoints
//! per second, and time / endpoints is the cost of one.

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use biot_notifications::notification::{Event, PreparedNotification};
use biot_notifications::notifier::{DeliveryError, Notifier};
use biot_notifications::store::{InMemoryStore, SubscriptionStore};
use biot_notifications::{Action, Dispatcher, Endpoint, EntityType, EventType, TemplateName};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;

use common::{endpoint_60, insert, ready, subscription, template};

/// Accepts every notification and does nothing else.
#[derive(Debug)]
struct Noop;

#[async_trait]
impl Notifier for Noop {
    async fn notify(
        &self,
        endpoint: &Endpoint,
        _: &PreparedNotification,
    ) -> Result<(), DeliveryError> {
        black_box(endpoint);
        Ok(())
    }
}

/// Counts the notifications it gets, and proves each saw the one shared body.
#[derive(Debug, Default)]
struct Counting {
    calls: AtomicUsize,
    body_ptr: AtomicUsize,
}

#[async_trait]
impl Notifier for Counting {
    async fn notify(&self, _: &Endpoint, n: &PreparedNotification) -> Result<(), DeliveryError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let ptr = n.body().as_ptr() as usize;
        let seen = self.body_ptr.swap(ptr, Ordering::Relaxed);
        assert!(
            seen == 0 || seen == ptr,
            "the body was serialised more than once"
        );
        Ok(())
    }
}

fn event(pair: EventType) -> Event {
    Event::new(
        pair,
        json!({
            "_id": "8f6b1c62-3d7e-4f0a-9a51-0c2f2f3b7d10",
            "_template": {"name": "adultPatient", "id": "0b5e9c1e-5f55-4e4c-8d0c-2a3f8c1d9e77"},
            "_name": "Jane Doe",
            "_email": "jane.doe@example.com",
            "_ownerOrganization": {"id": "00000000-0000-0000-0000-000000000000"},
            "weight": 71,
        }),
    )
}

fn fan_out(c: &mut Criterion) {
    let pair = EventType::new(EntityType::Patient, Action::Create).expect("a valid pair");
    let event = event(pair);
    let mut group = c.benchmark_group("dispatch");
    for endpoints in [1u64, 100, 10_000] {
        // Half of the subscribers narrowed to the event's template, half not; plus
        // as many again that do not match (other templates), which the lookup skips.
        let store = InMemoryStore::new();
        let narrowed = TemplateName::new("adultPatient").expect("a valid template name");
        for n in 0..endpoints {
            let matching_template = (n % 2 == 1).then(|| narrowed.clone());
            insert(
                &store,
                subscription(pair, endpoint_60(n), matching_template),
            );
            insert(
                &store,
                subscription(pair, endpoint_60(n), Some(template(1))),
            );
        }
        let subscribers: Vec<Endpoint> = ready(store.matching(pair, event.template_name()))
            .unwrap()
            .iter()
            .map(|s| s.endpoint().clone())
            .collect();
        assert_eq!(subscribers.len() as u64, endpoints);

        // Sanity, off the clock: one body for all, everyone reached.
        let counting = Arc::new(Counting::default());
        let checked = Dispatcher::new(store.clone(), Arc::clone(&counting));
        let report = ready(checked.dispatch(&event)).unwrap();
        assert_eq!(report.delivered() as u64, endpoints);
        assert_eq!(counting.calls.load(Ordering::Relaxed) as u64, endpoints);

        let dispatcher = Dispatcher::new(store, Noop);
        group.throughput(Throughput::Elements(endpoints));
        group.bench_with_input(
            BenchmarkId::new("dispatch", endpoints),
            &endpoints,
            |b, _| b.iter(|| ready(dispatcher.dispatch(black_box(&event))).unwrap()),
        );
        // The notifier's own work: the same calls, the same notification, in a plain loop.
        let prepared = event.prepare(None);
        let notifier: Arc<dyn Notifier> = Arc::new(Noop);
        group.bench_with_input(
            BenchmarkId::new("baseline/notifier-only", endpoints),
            &endpoints,
            |b, _| {
                b.iter(|| {
                    for endpoint in &subscribers {
                        ready(notifier.notify(endpoint, black_box(&prepared))).unwrap();
                    }
                })
            },
        );
    }
    group.finish();

    // The fixed cost per event, paid once however many endpoints: the notification
    // built and serialised, and its trace context drawn.
    let mut group = c.benchmark_group("dispatch-per-event");
    group.bench_function("event.prepare", |b| {
        b.iter(|| black_box(&event).prepare(None))
    });
    let empty = Dispatcher::new(InMemoryStore::new(), Noop);
    group.bench_function("dispatch/no-subscribers", |b| {
        b.iter(|| ready(empty.dispatch(black_box(&event))).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = fan_out
}
criterion_main!(benches);
