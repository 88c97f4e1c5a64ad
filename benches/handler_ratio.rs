//! What the HTTP handler adds to a subscribe, as a ratio measured in pairs: the target
//! is the handler within 1.5x of parse + validate + insert. Measured against that
//! (`vs-insert`) and against the direct call the handler wraps, `parse +
//! Dispatcher::subscribe` (`vs-dispatcher`), which adds the dispatcher's own work
//! (its tracing span, and a copy of the subscription to hand back).
//!
//! `cargo bench --bench handler_ratio` (`BIOT_BENCH_QUICK=1`: shorter, a smaller store)
//!
//! `benches/api.rs` times both sides, one after the other. On this project's shared
//! 2-core machine the two can land in different spells of the machine, seconds apart:
//! their ratio swung from 1.3x to 1.95x within an hour, far more than the target leaves.
//! Here every sample runs both sides, in alternating chunks of 64 subscribes against the
//! same store, a fraction of a millisecond apart, and its value is the ratio of the two
//! sides' times: what the machine does over seconds cancels out. Which side goes first
//! alternates from chunk to chunk, since the second finds the first's template buckets
//! in cache.
//!
//! The ratio is criterion's measured value (a custom [`Measurement`]), so criterion's
//! statistics, filters, baselines and test mode all apply. Criterion still labels it
//! `time:`; the figures are ratios, printed with an `x`.

mod common;

use std::cell::Cell;
use std::time::Duration;

use biot_notifications::api::{AllowEveryone, Api};
use biot_notifications::notifier::DiscardingNotifier;
use biot_notifications::{Dispatcher, EndpointPolicy};
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use common::{in_chunks, scaled, subscribe_direct, subscribe_handled, subscribe_into_store};
use common::{subscribe_request, SubscribeFixture};

fn handler_ratio(c: &mut Criterion<Ratio>) {
    let mut group = c.benchmark_group("api/subscribe/handler-ratio");
    let policy = EndpointPolicy::default();
    for total in [1_000, scaled(100_000)] {
        let fixture = SubscribeFixture::new(total);
        let dispatcher = Dispatcher::new(fixture.store.clone(), DiscardingNotifier);
        let api = Api::builder(dispatcher.clone())
            .authorizer(AllowEveryone)
            .build()
            .unwrap();
        // Which side goes first in the next chunk, carried from sample to sample so that
        // neither side opens more samples than the other.
        let handler_first = Cell::new(false);
        // Against the call the handler wraps.
        group.bench_function(BenchmarkId::new("vs-dispatcher", total), |b| {
            b.iter_custom(|iters| {
                paired(&fixture, &api, &handler_first, iters, |body| {
                    subscribe_direct(&dispatcher, body)
                })
            })
        });
        // Against the target's own terms: parse + validate + insert, no dispatcher.
        group.bench_function(BenchmarkId::new("vs-insert", total), |b| {
            b.iter_custom(|iters| {
                paired(&fixture, &api, &handler_first, iters, |body| {
                    subscribe_into_store(&fixture.store, &policy, body)
                })
            })
        });
    }
    group.finish();
}

/// A sample's value: `iters` subscribes through the handler and `iters` the direct way,
/// in alternating chunks, the handler's time over the direct time (times `iters`, since
/// criterion divides a sample's value by its iterations).
fn paired(
    fixture: &SubscribeFixture,
    api: &Api,
    handler_first: &Cell<bool>,
    iters: u64,
    direct_once: impl Fn(&[u8]),
) -> f64 {
    let mut direct = Duration::ZERO;
    let handled = in_chunks(iters, |keys| {
        let time_direct =
            || fixture.time_chunk(keys.clone(), <[u8]>::to_vec, |body| direct_once(&body));
        let time_handled = || {
            fixture.time_chunk(keys.clone(), subscribe_request, |request| {
                subscribe_handled(api, request)
            })
        };
        handler_first.set(!handler_first.get());
        if handler_first.get() {
            let handled = time_handled();
            direct += time_direct();
            handled
        } else {
            direct += time_direct();
            time_handled()
        }
    });
    handled.as_secs_f64() / direct.as_secs_f64() * iters as f64
}

/// A measurement whose value is how many times as long as the direct call the handler
/// took. Only [`iter_custom`](criterion::Bencher::iter_custom) produces it.
struct Ratio;

impl Measurement for Ratio {
    type Intermediate = ();
    type Value = f64;

    fn start(&self) {
        unreachable!("a ratio is only measured through iter_custom")
    }

    fn end(&self, _: ()) -> f64 {
        unreachable!("a ratio is only measured through iter_custom")
    }

    fn add(&self, v1: &f64, v2: &f64) -> f64 {
        v1 + v2
    }

    fn zero(&self) -> f64 {
        0.0
    }

    fn to_f64(&self, value: &f64) -> f64 {
        *value
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &RatioFormatter
    }
}

/// Ratios as they are, with an `x`.
struct RatioFormatter;

impl ValueFormatter for RatioFormatter {
    fn format_value(&self, value: f64) -> String {
        format!("{value:.3}x")
    }

    fn scale_values(&self, _typical: f64, _values: &mut [f64]) -> &'static str {
        "x"
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        _: &Throughput,
        _values: &mut [f64],
    ) -> &'static str {
        "x"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ratio"
    }
}

criterion_group! {
    name = benches;
    config = common::criterion().with_measurement(Ratio);
    targets = handler_ratio
}
criterion_main!(benches);
