//! What the HTTP handler adds to a subscribe, as a ratio measured in pairs: the target
//! is the handler within 1.5x of the direct call it wraps (`parse + Dispatcher::subscribe`).
//!
//! `cargo bench --bench handler_ratio` (`BIOT_BENCH_QUICK=1`: fewer rounds, a smaller store)
//!
//! `benches/api.rs` times both sides with criterion, one after the other. On this
//! project's shared 2-core machine the two can land in different spells of the machine,
//! seconds apart: their ratio swung from 1.3x to 1.95x within an hour, far more than
//! the target leaves. Here the two sides run in alternating rounds of 640
//! subscribes each, against the same store, and the ratio is taken per round: a round and
//! its pair are a few milliseconds apart, so what the machine does over seconds cancels
//! out. Which side goes first alternates too. The report is the median of the rounds'
//! ratios, with its quartiles, and each side's median time per subscribe.
//!
//! Not a criterion bench: criterion times one function at a time. Like criterion, it
//! takes the arguments after `--` as filters and runs only when one of them is part of
//! its name, `api/subscribe/handler-ratio` (so `cargo bench -- api/subscribe` runs it).

mod common;

use std::time::Duration;

use biot_notifications::api::Api;
use biot_notifications::notifier::DiscardingNotifier;
use biot_notifications::Dispatcher;

use common::SubscribeFixture;
use common::{quick, scaled, subscribe_direct, subscribe_handled, subscribe_request};

const NAME: &str = "api/subscribe/handler-ratio";

/// Subscribes each way in a round: ten of the fixture's chunks of 64, ~1 ms.
const SUBSCRIBES_PER_ROUND: u64 = 640;

fn main() {
    // `cargo bench` passes `--bench`; anything else is a filter.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| NAME.contains(f.as_str())) {
        return;
    }
    let (warm_up, rounds) = if quick() { (5, 40) } else { (20, 400) };
    for total in [1_000, scaled(100_000)] {
        let fixture = SubscribeFixture::new(total);
        let dispatcher = Dispatcher::new(fixture.store.clone(), DiscardingNotifier);
        let api = Api::new(dispatcher.clone());
        let direct = || {
            fixture.time(SUBSCRIBES_PER_ROUND, <[u8]>::to_vec, |body| {
                subscribe_direct(&dispatcher, &body)
            })
        };
        let handled = || {
            fixture.time(SUBSCRIBES_PER_ROUND, subscribe_request, |request| {
                subscribe_handled(&api, request)
            })
        };
        for _ in 0..warm_up {
            direct();
            handled();
        }
        let pairs: Vec<Pair> = (0..rounds)
            .map(|round| {
                if round % 2 == 0 {
                    let direct = direct();
                    Pair {
                        direct,
                        handled: handled(),
                    }
                } else {
                    let handled = handled();
                    Pair {
                        direct: direct(),
                        handled,
                    }
                }
            })
            .collect();
        report(total, &pairs);
    }
}

/// One round: the same number of subscribes each way, a few milliseconds apart.
struct Pair {
    direct: Duration,
    handled: Duration,
}

fn report(total: usize, pairs: &[Pair]) {
    let per_subscribe = |time: Duration| time.as_secs_f64() * 1e9 / SUBSCRIBES_PER_ROUND as f64;
    let ratios = quartiles(
        pairs
            .iter()
            .map(|p| p.handled.as_secs_f64() / p.direct.as_secs_f64()),
    );
    let direct = quartiles(pairs.iter().map(|p| per_subscribe(p.direct)));
    let handled = quartiles(pairs.iter().map(|p| per_subscribe(p.handled)));
    println!(
        "{NAME}/{total}: handler/direct {:.3}x (quartiles {:.3}-{:.3}x) over {} rounds \
         of {SUBSCRIBES_PER_ROUND}; per subscribe, direct {:.0} ns, handler {:.0} ns (medians)",
        ratios[1],
        ratios[0],
        ratios[2],
        pairs.len(),
        direct[1],
        handled[1],
    );
}

/// The lower quartile, median and upper quartile.
fn quartiles(values: impl Iterator<Item = f64>) -> [f64; 3] {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    let at = |q: usize| values[(values.len() - 1) * q / 4];
    [at(1), at(2), at(3)]
}
