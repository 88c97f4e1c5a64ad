//! Subscribe path: parse + validate a request from JSON bytes, then insert it.
//!
//! `cargo bench --bench subscribe` (`BIOT_BENCH_QUICK=1` for a smoke run)

mod common;

use std::hint::black_box;

use biot_notifications::{EndpointPolicy, SubscribeRequest, Subscription};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};

use common::{scaled, subscribe_into_store, SubscribeFixture};

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
    // The parts of validation, one by one.
    let request = SubscribeRequest::from_json(BODY).unwrap();
    group.bench_function("part/endpoint-policy-validate", |b| {
        b.iter(|| policy.validate(black_box(&request.endpoint)).unwrap())
    });
    group.bench_function("part/url-parse-only", |b| {
        b.iter(|| url::Url::parse(black_box(&request.endpoint)).unwrap())
    });
    let key = request.validate(&policy).unwrap();
    group.bench_function("part/Subscription::new", |b| {
        b.iter(|| Subscription::new(black_box(&key).clone()))
    });
    group.bench_function("part/uuid-v4", |b| b.iter(uuid::Uuid::new_v4));

    // The full subscribe path into a store that already holds 1,000 subscriptions (all
    // in cache), then 100,000 (mostly not: each request reaches memory the previous
    // ones did not touch). The store's subscriptions are in buckets of 10 on the
    // request's pair, and each new one joins such a bucket. Each is removed again off
    // the clock, so the store keeps its size.
    for total in [1_000, scaled(100_000)] {
        subscribe_into_store_of(&mut group, &policy, total);
    }
    group.finish();
}

fn subscribe_into_store_of(
    group: &mut BenchmarkGroup<'_, WallTime>,
    policy: &EndpointPolicy,
    total: usize,
) {
    let fixture = SubscribeFixture::new(total);
    let store = &fixture.store;
    group.bench_function(BenchmarkId::new("parse+validate+insert", total), |b| {
        b.iter_custom(|iters| {
            fixture.time(iters, <[u8]>::to_vec, |body| {
                subscribe_into_store(store, policy, &body)
            })
        })
    });
    // Through the dispatcher and the HTTP handler: `benches/api.rs`.
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = parse_and_validate
}
criterion_main!(benches);
