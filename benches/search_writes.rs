//! Subscribe latency while searches run: parse + validate + insert into a store of
//! 100,000 (the `subscribe` bench's store: buckets of 10 on one pair), each subscribe
//! timed alone, with a second thread that is idle, busy without touching the store, or
//! running searches back to back (a first page of 100 with its total, so each search
//! reads every subscription). It prints p50, p90, p99, p99.9, p99.99, the maximum and
//! how many took over 1 ms for each, then what a search took, beside the subscribes
//! and with no write beside it.
//!
//! Subscribes are spaced out, one due every 20 µs (at once when late), rather than
//! each right after the previous one returned, and each is timed from its start, so
//! that the thread's losing its core to other work (frequent on the machine the figures
//! come from) is one slow sample, not one for each subscribe due meanwhile. One thread
//! subscribes, so while a search holds a lock the writers need, one subscribe waits
//! and those due after it start late, when it returns: a store whose searches held the
//! writers' lock showed here at p99.9, in the maximum and in the count over 1 ms (about
//! one per search), where a server, whose plugins subscribe concurrently, would keep
//! every subscribe that came during a search waiting.
//!
//! `cargo bench --bench search_writes` (`BIOT_BENCH_QUICK=1`: a store of 10,000 and
//! fewer subscribes). `cargo test --benches` runs it once, tiny, as a smoke test.
//!
//! Not a criterion bench: criterion times batches and reports their mean, where the
//! question here is the tail of single operations. The three conditions take turns,
//! round by round, against the same store, so that what the machine does over seconds
//! falls on all three alike. Each subscribe is timed alone (two clock reads, whose cost
//! is printed), and removed again off the clock, in chunks of 64, so the store keeps its
//! size; the 20 µs start again after each chunk's removals. The idle condition is the baseline: the target is the searching condition's
//! p99 within 2x of it. The busy one is the control: on two cores, a second thread
//! that never touches the store slows a subscribe down by itself whenever anything else
//! runs on the machine.

mod common;

use std::hint::black_box;
use std::ops::Range;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use biot_notifications::search::SearchRequest;
use biot_notifications::store::SubscriptionStore;
use biot_notifications::{EndpointPolicy, SubscribeRequest};

use common::{quick, ready, scaled, subscribe_into_store, SubscribeFixture};

/// The name a filter given to `cargo bench -- FILTER` is matched against.
const NAME: &str = "search-writes/subscribe-beside-searches";

/// What the second thread does while subscribes are timed.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Second {
    /// Sleeps: the baseline.
    Idle,
    /// Spins without touching the store: the control.
    Busy,
    /// Searches the store back to back.
    Searching,
    /// Returns.
    Stop,
}

impl Second {
    const MEASURED: [Second; 3] = [Second::Idle, Second::Busy, Second::Searching];

    fn name(self) -> &'static str {
        match self {
            Second::Idle => "no search (idle thread)",
            Second::Busy => "busy thread, no search",
            Second::Searching => "searches back to back",
            Second::Stop => "stopped",
        }
    }

    fn from_u8(value: u8) -> Self {
        [Second::Idle, Second::Busy, Second::Searching, Second::Stop][usize::from(value)]
    }
}

/// The second thread, told what to do through `wanted`; it says in `doing` what it
/// does, so that a condition's subscribes start only once the last search is over.
struct SecondThread {
    wanted: Arc<AtomicU8>,
    doing: Arc<AtomicU8>,
    searches: Arc<Mutex<Vec<Duration>>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl SecondThread {
    fn start(fixture: &SubscribeFixture, total: usize) -> Self {
        let wanted = Arc::new(AtomicU8::new(Second::Idle as u8));
        let doing = Arc::new(AtomicU8::new(Second::Idle as u8));
        let searches = Arc::new(Mutex::new(Vec::new()));
        let store = fixture.store.clone();
        let handle = thread::spawn({
            let (wanted, doing, searches) = (wanted.clone(), doing.clone(), searches.clone());
            move || {
                let request = SearchRequest::new().with_limit(100);
                loop {
                    let second = Second::from_u8(wanted.load(Ordering::Acquire));
                    doing.store(second as u8, Ordering::Release);
                    match second {
                        Second::Idle => thread::sleep(Duration::from_millis(1)),
                        Second::Busy => (0..10_000).for_each(|_| std::hint::spin_loop()),
                        Second::Searching => {
                            let started = Instant::now();
                            let page = ready(store.search(&request)).expect("a search");
                            let took = started.elapsed();
                            // The fixture, and at most the chunk being subscribed.
                            let found = page.total_results as usize;
                            assert!((total..=total + 64).contains(&found), "{found}");
                            assert_eq!(page.data.len(), 100);
                            searches.lock().expect("not poisoned").push(took);
                        }
                        Second::Stop => return,
                    }
                }
            }
        });
        SecondThread {
            wanted,
            doing,
            searches,
            handle: Some(handle),
        }
    }

    /// Tells the thread to do `second`, and waits until it does.
    fn switch(&self, second: Second) {
        self.wanted.store(second as u8, Ordering::Release);
        while self.doing.load(Ordering::Acquire) != second as u8 {
            thread::yield_now();
        }
    }
}

impl Drop for SecondThread {
    fn drop(&mut self) {
        self.wanted.store(Second::Stop as u8, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            handle.join().expect("the second thread does not panic");
        }
    }
}

/// How often a subscribe is due: 50,000 a second, a fraction of what one thread can do.
const ARRIVALS: Duration = Duration::from_micros(20);

/// Subscribes the bodies numbered `keys`, 64 at a time, each when it is due (every
/// [`ARRIVALS`]; at once when late), timing each into `samples`, and removes them again
/// off the clock.
fn time_subscribes(
    fixture: &SubscribeFixture,
    policy: &EndpointPolicy,
    keys: Range<u64>,
    samples: &mut Vec<Duration>,
) {
    let mut start = keys.start;
    while start < keys.end {
        let end = keys.end.min(start + 64);
        let bodies: Vec<Vec<u8>> = (start..end).map(|k| fixture.body(k)).collect();
        let mut due = Instant::now();
        for body in &bodies {
            due += ARRIVALS;
            while Instant::now() < due {
                std::hint::spin_loop();
            }
            let started = Instant::now();
            subscribe_into_store(&fixture.store, policy, body);
            samples.push(started.elapsed());
        }
        for body in &bodies {
            let key = SubscribeRequest::from_json(body)
                .and_then(|request| request.key())
                .expect("a valid request");
            ready(fixture.store.remove(&key)).expect("just subscribed");
        }
        start = end;
    }
}

/// What two clock reads in a row cost: the floor under every sample.
fn clock_reads() -> Duration {
    const READS: u32 = 100_000;
    let started = Instant::now();
    for _ in 0..READS {
        black_box(Instant::now());
    }
    started.elapsed() * 2 / READS
}

/// The sample below which `per_10_000` in 10,000 of `sorted` fall.
fn percentile(sorted: &[Duration], per_10_000: usize) -> Duration {
    sorted[(sorted.len() * per_10_000 / 10_000).min(sorted.len() - 1)]
}

fn micros(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then a tiny run.
    let benching = args.iter().any(|a| a == "--bench");
    if let Some(filter) = args.iter().find(|a| !a.starts_with('-')) {
        if !NAME.contains(filter.as_str()) {
            return;
        }
    }
    let total = if benching { scaled(100_000) } else { 1_000 };
    let (rounds, per_round) = match (benching, quick()) {
        (false, _) => (1, 256),
        (true, true) => (3, 2_048),
        (true, false) => (12, 5_120),
    };

    let fixture = SubscribeFixture::new(total);
    let policy = EndpointPolicy::default();
    let second = SecondThread::start(&fixture, total);
    let mut samples: Vec<Vec<Duration>> = Second::MEASURED
        .iter()
        .map(|_| Vec::with_capacity(rounds * per_round as usize))
        .collect();
    let mut next_key = 0u64;
    // A first round off the record, to warm the store and the code up.
    time_subscribes(&fixture, &policy, 0..per_round.min(2_048), &mut Vec::new());
    for round in 0..rounds {
        // Each condition goes first in turn.
        for turn in 0..Second::MEASURED.len() {
            let which = (round + turn) % Second::MEASURED.len();
            second.switch(Second::MEASURED[which]);
            let keys = next_key..next_key + per_round;
            next_key = keys.end;
            time_subscribes(&fixture, &policy, keys, &mut samples[which]);
        }
    }
    second.switch(Second::Idle);
    let searches = std::mem::take(&mut *second.searches.lock().expect("not poisoned"));
    drop(second);
    // What a search costs with no write beside it, for scale.
    let request = SearchRequest::new().with_limit(100);
    let mut alone: Vec<Duration> = (0..if benching { 20 } else { 2 })
        .map(|_| {
            let started = Instant::now();
            black_box(ready(fixture.store.search(&request)).expect("a search"));
            started.elapsed()
        })
        .collect();
    alone.sort_unstable();

    println!(
        "{NAME}/{total}: {} subscribes per condition, in {rounds} rounds; two clock reads: {} ns",
        rounds * per_round as usize,
        clock_reads().as_nanos()
    );
    println!(
        "  {:<26} {:>10} {:>10} {:>10} {:>10} {:>11} {:>11} {:>7}",
        "second thread", "p50", "p90", "p99", "p99.9", "p99.99", "max", "> 1 ms"
    );
    let mut p99 = Vec::new();
    for (which, samples) in Second::MEASURED.iter().zip(&mut samples) {
        samples.sort_unstable();
        p99.push(percentile(samples, 9_900));
        println!(
            "  {:<26} {:>10} {:>10} {:>10} {:>10} {:>11} {:>11} {:>7}",
            which.name(),
            micros(percentile(samples, 5_000)),
            micros(percentile(samples, 9_000)),
            micros(percentile(samples, 9_900)),
            micros(percentile(samples, 9_990)),
            micros(percentile(samples, 9_999)),
            micros(*samples.last().expect("samples")),
            samples
                .iter()
                .filter(|&&d| d > Duration::from_millis(1))
                .count(),
        );
    }
    let ratio = |d: Duration| d.as_secs_f64() / p99[0].as_secs_f64();
    println!(
        "  p99 beside searches: {:.2}x the idle thread's (target: within 2x), {:.2}x the busy thread's",
        ratio(p99[2]),
        p99[2].as_secs_f64() / p99[1].as_secs_f64()
    );
    let mut searches = searches;
    searches.sort_unstable();
    if !searches.is_empty() {
        println!(
            "  searches: {} run, each {} (median), {} (max)",
            searches.len(),
            micros(percentile(&searches, 5_000)),
            micros(*searches.last().expect("searches")),
        );
    }
    println!(
        "  a search with no write beside it: {} (median of {})",
        micros(percentile(&alone, 5_000)),
        alone.len()
    );
}
