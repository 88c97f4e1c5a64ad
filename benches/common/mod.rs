//! What the benches share: the quick mode, criterion's settings, and realistic inputs.
//!
//! Not a bench target of its own: cargo only builds `benches/*.rs` files as benches.
// Each bench uses only part of this module.
#![allow(dead_code)]

#[cfg(feature = "postgres")]
pub mod postgres;

use std::future::Future;
use std::ops::Range;
use std::time::{Duration, Instant};

use biot_notifications::api::Api;
use biot_notifications::store::{InMemoryStore, SubscriptionStore};
use biot_notifications::{
    Dispatcher, Endpoint, EndpointPolicy, EventType, SubscribeRequest, Subscription,
    SubscriptionKey, TemplateName,
};
use bytes::Bytes;
use criterion::Criterion;
use futures_util::FutureExt;
use http::header::CONTENT_TYPE;
use http::{Request, StatusCode};
use http_body_util::Full;

/// `BIOT_BENCH_QUICK=1`: smaller stores and shorter measurements, for a smoke run.
pub fn quick() -> bool {
    std::env::var_os("BIOT_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Criterion's settings for every group: modest times so a full `cargo bench` stays
/// within minutes on two cores, shorter still in quick mode.
pub fn criterion() -> Criterion {
    let c = Criterion::default().configure_from_args();
    if quick() {
        c.warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
            .sample_size(20)
    } else {
        c.warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .sample_size(60)
    }
}

/// `size` in a full run; in quick mode, a tenth of it (at least 1,000), so the largest
/// stores still take a moment to build but keep their shape.
pub fn scaled(size: usize) -> usize {
    if quick() && size > 10_000 {
        (size / 10).max(1_000)
    } else {
        size
    }
}

/// Runs a store future to completion: `InMemoryStore` never waits, so no runtime is
/// needed, and none is measured.
pub fn ready<F: Future>(future: F) -> F::Output {
    future
        .now_or_never()
        .expect("the in-memory store and the no-op notifier never wait")
}

/// A realistic plugin endpoint of exactly 60 bytes, distinct for every `n` below 10^12.
pub fn endpoint_60(n: u64) -> Endpoint {
    let url = format!("https://p{n:012}.plugins.example-tenants.io/biot/notify");
    // Checked in every build: benches run optimised, where a debug assertion is not.
    assert_eq!(url.len(), 60, "{url}");
    Endpoint::parse(&url).expect("a valid endpoint")
}

/// Every valid pair, in a fixed order.
pub fn pairs() -> Vec<EventType> {
    EventType::all().collect()
}

/// A template name like BioT's (`bloodPressureCuff`, `adultPatient`): 17 bytes.
pub fn template(n: usize) -> TemplateName {
    TemplateName::new(&format!("template-{n:08}")).expect("a valid template name")
}

/// A new subscription of `pair` to `endpoint`, narrowed to `template` if given.
pub fn subscription(
    pair: EventType,
    endpoint: Endpoint,
    template: Option<TemplateName>,
) -> Subscription {
    Subscription::new(SubscriptionKey::new(pair, endpoint, template))
}

/// Inserts, panicking on failure (bench inputs are built to be unique).
pub fn insert(store: &InMemoryStore, subscription: Subscription) {
    ready(store.insert(subscription)).expect("bench subscriptions are unique");
}

/// Runs `iters` iterations in chunks of at most 64, each given the range of iteration
/// numbers it covers and returning how long its timed part took; the sum is the time
/// for criterion's `iter_custom`. Chunks let the untimed preparation and clean-up of a
/// batch happen off the clock, in memory small enough to stay in cache.
pub fn in_chunks(iters: u64, mut chunk: impl FnMut(Range<u64>) -> Duration) -> Duration {
    const CHUNK: u64 = 64;
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let end = iters.min(done + CHUNK);
        elapsed += chunk(done..end);
        done = end;
    }
    elapsed
}

/// A small deterministic generator (xorshift64*), so runs build identical stores.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Noise(seed | 1)
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

/// What the subscribe benches (direct and through the HTTP handler) run against: a
/// store of `total` subscriptions to `patient/_create` in template buckets of 10, and
/// fresh subscribe bodies, each joining one of those buckets.
pub struct SubscribeFixture {
    pub store: InMemoryStore,
    templates: usize,
}

impl SubscribeFixture {
    pub fn new(total: usize) -> Self {
        assert!(total >= 10, "at least one bucket of 10");
        let store = InMemoryStore::new();
        let templates = total / 10;
        for i in 0..total {
            let key = SubscribeRequest::new("patient", "_create", endpoint_60(i as u64).as_str())
                .with_template(format!("template{}", i % templates))
                .key()
                .expect("a valid request");
            insert(&store, Subscription::new(key));
        }
        SubscribeFixture { store, templates }
    }

    /// The `k`-th fresh subscribe body: a new endpoint, an existing template.
    pub fn body(&self, k: u64) -> Vec<u8> {
        format!(
            r#"{{"entityTypeName":"patient","actionName":"_create","endpoint":"https://n{k}.plugins.example.com/biot/notifications/patient-created","templateName":"template{}"}}"#,
            k % self.templates as u64
        )
        .into_bytes()
    }

    /// Times `timed` on `iters` fresh bodies, 64 at a time (see [`Self::time_chunk`]).
    pub fn time<T>(
        &self,
        iters: u64,
        prepare: impl Fn(&[u8]) -> T,
        mut timed: impl FnMut(T),
    ) -> Duration {
        in_chunks(iters, |keys| self.time_chunk(keys, &prepare, &mut timed))
    }

    /// Times `timed` on the bodies numbered `keys`, each made ready by `prepare` off the
    /// clock (`timed` consumes what `prepare` made, so dropping it is timed); what was
    /// subscribed is removed off the clock, so the store keeps its size.
    pub fn time_chunk<T>(
        &self,
        keys: Range<u64>,
        prepare: impl Fn(&[u8]) -> T,
        mut timed: impl FnMut(T),
    ) -> Duration {
        let bodies: Vec<Vec<u8>> = keys.map(|k| self.body(k)).collect();
        let inputs: Vec<T> = bodies.iter().map(|body| prepare(body)).collect();
        let started = Instant::now();
        for input in inputs {
            timed(input);
        }
        let elapsed = started.elapsed();
        for body in &bodies {
            let key = SubscribeRequest::from_json(body)
                .and_then(|request| request.key())
                .expect("a valid request");
            ready(self.store.remove(&key)).expect("subscribed by `timed`");
        }
        elapsed
    }
}

/// A subscribe as a server hands it to the handler.
pub fn subscribe_request(body: &[u8]) -> Request<Full<Bytes>> {
    Request::post("/dispatcher/v1/hooks/notifications/subscribe")
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("a valid request")
}

/// A subscribe straight into the store: parse the body, validate it, insert.
pub fn subscribe_into_store(store: &InMemoryStore, policy: &EndpointPolicy, body: &[u8]) {
    let key = SubscribeRequest::from_json(body)
        .expect("a valid body")
        .validate(policy)
        .expect("a valid request");
    insert(store, Subscription::new(key));
}

/// A subscribe the direct way, what the handler wraps: parse the body, then
/// `Dispatcher::subscribe`.
pub fn subscribe_direct(dispatcher: &Dispatcher, body: &[u8]) {
    let request = SubscribeRequest::from_json(body).expect("a valid body");
    ready(dispatcher.subscribe(&request)).expect("a fresh subscription");
}

/// A subscribe through the HTTP handler, which must answer 201 Created.
pub fn subscribe_handled(api: &Api, request: Request<Full<Bytes>>) {
    let response = ready(api.handle(request));
    assert_eq!(response.status(), StatusCode::CREATED, "{response:?}");
}
