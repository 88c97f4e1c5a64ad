//! What the benches share: the quick mode, criterion's settings, and realistic inputs.
//!
//! Not a bench target of its own: cargo only builds `benches/*.rs` files as benches.
// Each bench uses only part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use biot_notifications::store::{InMemoryStore, SubscriptionStore};
use biot_notifications::{Endpoint, EventType, Subscription, SubscriptionKey, TemplateName};
use criterion::Criterion;
use futures_util::FutureExt;

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
    let url = format!("https://p{n:012}.plugins.example-tenant.io/biot/hook/notify");
    debug_assert_eq!(url.len(), 60, "{url}");
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
