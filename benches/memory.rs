//! Memory: bytes per subscription held by `InMemoryStore` at 1,000,000 subscriptions,
//! measured with a counting global allocator (and, as a cross-check that includes the
//! system allocator's own overhead, the change in resident memory).
//!
//! `cargo bench --bench memory` (`BIOT_BENCH_QUICK=1`: 100,000 subscriptions)
//!
//! Every subscription has its own 60-byte endpoint. Template distributions:
//! - `no-templates`: no subscription is narrowed to a template (the best case);
//! - `realistic`: pairs uniform over the 60; 30% without a template, 70% narrowed to one
//!   of 200 template names per entity type (17 bytes each), so about 12,000
//!   `(pair, template)` buckets of about 58 subscriptions;
//! - `distinct-templates`: every subscription narrowed to a template of its own (the
//!   worst case: one bucket, and one map entry, per subscription).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use biot_notifications::store::{InMemoryStore, SubscriptionStore};
use biot_notifications::{EntityType, EventType, TemplateName};

use common::{endpoint_60, pairs, quick, ready, subscription, template, Noise};

/// Counts the bytes and blocks live on the heap, then defers to the system allocator.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract;
// the counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Resident memory of this process, in bytes (Linux; 0 elsewhere).
fn resident_bytes() -> isize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<isize>().ok())
        .map_or(0, |pages| pages * 4096)
}

#[derive(Clone, Copy)]
enum Templates {
    None,
    Realistic,
    Distinct,
}

impl Templates {
    fn name(self) -> &'static str {
        match self {
            Templates::None => "no-templates",
            Templates::Realistic => "realistic",
            Templates::Distinct => "distinct-templates",
        }
    }
}

fn measure(templates: Templates, total: usize) {
    let pairs: Vec<EventType> = pairs();
    // Template names are drawn per entity type, as BioT's templates belong to one.
    let realistic: Vec<TemplateName> = (0..200).map(template).collect();
    let mut noise = Noise::new(0x6d656d);

    let (bytes_before, blocks_before) = (
        LIVE_BYTES.load(Ordering::SeqCst),
        LIVE_BLOCKS.load(Ordering::SeqCst),
    );
    let resident_before = resident_bytes();
    let started = Instant::now();
    let store = InMemoryStore::new();
    for n in 0..total {
        let pair = pairs[noise.below(pairs.len())];
        let template = match templates {
            Templates::None => None,
            Templates::Realistic => (noise.below(10) >= 3).then(|| {
                let entity = EntityType::ALL
                    .iter()
                    .position(|&e| e == pair.entity_type())
                    .expect("every entity type is in ALL");
                let name = &realistic[noise.below(realistic.len())];
                // 200 names per entity type: the same 17-byte shape, a per-type prefix.
                TemplateName::new(&format!("{entity:02}{}", &name.as_str()[2..]))
                    .expect("a valid template name")
            }),
            Templates::Distinct => Some(template(n)),
        };
        ready(store.insert(subscription(pair, endpoint_60(n as u64), template)))
            .expect("unique subscriptions");
    }
    let elapsed = started.elapsed();
    let bytes = LIVE_BYTES.load(Ordering::SeqCst) - bytes_before;
    let blocks = LIVE_BLOCKS.load(Ordering::SeqCst) - blocks_before;
    let resident = resident_bytes() - resident_before;
    assert_eq!(ready(store.count()).unwrap(), total as u64);
    println!(
        "memory/{:<20} {total:>9} subscriptions: {:>6.1} bytes/subscription allocated \
         ({:.2} blocks), {:>6.1} bytes/subscription resident (built in {:.1} s)",
        templates.name(),
        bytes as f64 / total as f64,
        blocks as f64 / total as f64,
        resident as f64 / total as f64,
        elapsed.as_secs_f64(),
    );
    drop(store);
}

fn main() {
    // `cargo bench -- <filter>`: run only when the filter names this bench.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !filters.is_empty()
        && !filters
            .iter()
            .any(|f| "memory".contains(f.as_str()) || f.contains("memory"))
    {
        return;
    }
    let total = if quick() { 100_000 } else { 1_000_000 };
    let all = [Templates::None, Templates::Realistic, Templates::Distinct];
    // Each distribution in a process of its own, so memory the system allocator kept
    // from an earlier one cannot hide growth in the resident set.
    if let Ok(name) = std::env::var(SCENARIO) {
        let templates = all
            .into_iter()
            .find(|t| t.name() == name)
            .expect("a known scenario");
        measure(templates, total);
        return;
    }
    println!(
        "(a 60-byte endpoint and a {}-byte template name each; allocated = bytes requested \
         from the allocator, resident = growth of the process's resident set)",
        template(0).as_str().len()
    );
    let me = std::env::current_exe().expect("the path of this bench");
    for templates in all {
        let status = std::process::Command::new(&me)
            .env(SCENARIO, templates.name())
            .status()
            .expect("the bench can run itself");
        assert!(status.success(), "{}: {status}", templates.name());
    }
}

/// Names the one distribution a child process measures.
const SCENARIO: &str = "BIOT_BENCH_MEMORY_SCENARIO";
