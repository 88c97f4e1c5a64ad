//! Subscribe path: parse + validate a request from JSON bytes, then insert it.
//!
//! `cargo bench --bench subscribe`

use std::hint::black_box;

use biot_notifications::store::{InMemoryStore, SubscriptionStore};
use biot_notifications::{EndpointPolicy, SubscribeRequest, Subscription};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use futures_util::FutureExt;

const BODY: &[u8] = br#"{"entityTypeName":"patient","actionName":"_create","endpoint":"https://plugins.example.com/biot/notifications/patient-created","templateName":"adultPatient"}"#;

fn parse_and_validate(c: &mut Criterion) {
    let policy = EndpointPolicy::default();
    let mut group = c.benchmark_group("subscribe");
    group.bench_function("parse", |b| {
        b.iter(|| SubscribeRequest::from_json(black_box(BODY)).unwrap())
    });
    group.bench_function("parse+validate", |b| {
        b.iter(|| {
            SubscribeRequest::from_json(black_box(BODY))
                .unwrap()
                .validate(&policy)
                .unwrap()
        })
    });
    // Baseline: plain serde into the same struct, no validation at all.
    group.bench_function("baseline/serde-only", |b| {
        b.iter(|| serde_json::from_slice::<SubscribeRequest>(black_box(BODY)).unwrap())
    });

    // The full subscribe path into a store that already holds 100,000 subscriptions.
    let store = InMemoryStore::new();
    for i in 0..100_000 {
        let key = SubscribeRequest::new(
            "patient",
            "_create",
            format!("https://p{i}.plugins.example.com/hook"),
        )
        .with_template(format!("template{}", i % 1000))
        .key()
        .unwrap();
        store
            .insert(Subscription::new(key))
            .now_or_never()
            .unwrap()
            .unwrap();
    }
    let mut n = 0u64;
    group.bench_function("parse+validate+insert", |b| {
        b.iter_batched(
            || {
                n += 1;
                format!(
                    r#"{{"entityTypeName":"patient","actionName":"_create","endpoint":"https://n{n}.plugins.example.com/biot/notifications/patient-created","templateName":"fresh{n}"}}"#
                )
                .into_bytes()
            },
            |body| {
                let key = SubscribeRequest::from_json(&body).unwrap().validate(&policy).unwrap();
                store.insert(Subscription::new(key)).now_or_never().unwrap().unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, parse_and_validate);
criterion_main!(benches);
