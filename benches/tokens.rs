//! BioT tokens (feature `jwt`): verifying one token, and what a notification's `jwt`
//! costs per event: the signing provider's reused token beside signing every event.
//!
//! `cargo bench --features jwt --bench tokens` (`BIOT_BENCH_QUICK=1` for a smoke run)
//!
//! Keys: the 2048-bit test-only pair in `tests/fixtures/keys/`. RSA-2048 with SHA-512,
//! on `ring`. The provider's per-event path is a read lock, a clock read and a copy of
//! the token into the `String` the `TokenProvider` trait returns; it signs once per
//! token lifetime (five minutes by default), which the per-event figure leaves out: that
//! one signature is the "sign every event" figure divided by the events in a lifetime.

mod common;

use biot_notifications::notification::Event;
use biot_notifications::token::{
    Claims, PublicKey, SigningKey, SigningTokenProvider, TokenVerifier, ACTION_NOTIFICATION,
};
use biot_notifications::{Action, EntityType, EventType, TokenProvider};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;

use common::ready;

const PRIVATE_KEY: &str = include_str!("../tests/fixtures/keys/test-only-a.private.pem");
const PUBLIC_KEY: &str = include_str!("../tests/fixtures/keys/test-only-a.public.base64");

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn tokens(c: &mut Criterion) {
    let key = SigningKey::from_pem(PRIVATE_KEY).unwrap();
    let verifier = TokenVerifier::new(PublicKey::from_pem_or_base64(PUBLIC_KEY).unwrap());
    let provider = SigningTokenProvider::new(key.clone());
    let token = provider.current_token().unwrap();
    let event = Event::new(
        EventType::new(EntityType::Patient, Action::Create).unwrap(),
        json!({"_id": "p-1"}),
    );

    let mut group = c.benchmark_group("tokens");
    group.bench_function("verify", |b| {
        b.iter(|| {
            verifier
                .verify(black_box(&token), ACTION_NOTIFICATION)
                .unwrap()
        })
    });
    group.bench_function("per-event/sign-every-event", |b| {
        b.iter(|| {
            key.sign(&Claims::new([ACTION_NOTIFICATION], now(), 300))
                .unwrap()
        })
    });
    group.bench_function("per-event/provider-reused", |b| {
        b.iter(|| ready(provider.token(black_box(&event))).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = tokens
}
criterion_main!(benches);
