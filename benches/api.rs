//! BioT's HTTP handler, [`Api::handle`], beside the direct calls it wraps: subscribe into
//! stores of 1,000 and 100,000 subscriptions, and a search page of 100 among 100,000.
//!
//! `cargo bench --bench api` (`BIOT_BENCH_QUICK=1` for a smoke run: stores a tenth the size)
//!
//! Requests are built off the clock, as a server hands them over; the handler consumes
//! them, so dropping them is timed, as is dropping each response (and, on the direct
//! side, each result). What the handler adds to the direct call: a trace id (fresh for a
//! request without `traceparent`), routing, its tracing span (disabled here: no
//! subscriber is installed, so a host logging at info level pays more) and panic guard,
//! the boxed route future, and serialising the response with its headers. For
//! subscribe, also the content-type and size checks and collecting the body; for
//! search, nothing else: both sides parse the same query string. Writing a search page
//! is also timed alone, since the searches themselves are noisy by more than it costs.

mod common;

use biot_notifications::api::{AllowEveryone, Api};
use biot_notifications::notifier::DiscardingNotifier;
use biot_notifications::search::{FilterCondition, SearchField, SearchRequest, SearchResponse};
use biot_notifications::store::InMemoryStore;
use biot_notifications::Dispatcher;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use http::{Request, StatusCode};
use http_body_util::Full;

use common::{endpoint_60, insert, pairs, ready, scaled, subscription, template, Noise};
use common::{subscribe_direct, subscribe_handled, subscribe_request, SubscribeFixture};

const SEARCH_URI: &str = "/dispatcher/v1/hooks/notifications";

fn subscribe(c: &mut Criterion) {
    let mut group = c.benchmark_group("api/subscribe");
    for total in [1_000, scaled(100_000)] {
        let fixture = SubscribeFixture::new(total);
        let dispatcher = Dispatcher::new(fixture.store.clone(), DiscardingNotifier);
        let api = Api::builder(dispatcher.clone())
            .authorizer(AllowEveryone)
            .build()
            .unwrap();
        group.bench_function(
            BenchmarkId::new("parse+Dispatcher::subscribe", total),
            |b| {
                b.iter_custom(|iters| {
                    fixture.time(iters, <[u8]>::to_vec, |body| {
                        subscribe_direct(&dispatcher, &body)
                    })
                })
            },
        );
        group.bench_function(BenchmarkId::new("Api::handle", total), |b| {
            b.iter_custom(|iters| {
                fixture.time(iters, subscribe_request, |request| {
                    subscribe_handled(&api, request)
                })
            })
        });
    }
    group.finish();
}

fn search(c: &mut Criterion) {
    let total = scaled(100_000);
    // Every pair, 70% of subscriptions narrowed to one of 200 templates.
    let store = InMemoryStore::new();
    let pairs = pairs();
    let mut noise = Noise::new(0x5ea2c4);
    for n in 0..total {
        let pair = pairs[n % pairs.len()];
        let narrowed_to = (noise.below(10) < 7).then(|| template(noise.below(200)));
        insert(
            &store,
            subscription(pair, endpoint_60(n as u64), narrowed_to),
        );
    }
    let dispatcher = Dispatcher::new(store, DiscardingNotifier);
    let api = Api::builder(dispatcher.clone())
        .authorizer(AllowEveryone)
        .build()
        .unwrap();

    let cases = [
        ("first-page", SearchRequest::new().with_limit(100)),
        (
            "patients-page-3",
            SearchRequest::new()
                .with_filter(SearchField::EntityTypeName, FilterCondition::eq("patient"))
                .with_limit(100)
                .with_page(2),
        ),
    ];
    let mut group = c.benchmark_group("api/search");
    for (name, request) in &cases {
        let query = request.to_query();
        let uri = format!("{SEARCH_URI}?{query}");
        let get = || {
            Request::get(uri.as_str())
                .body(Full::new(Bytes::new()))
                .unwrap()
        };
        // Off the clock: both sides answer the same full page.
        let page = ready(dispatcher.search(request)).unwrap();
        assert_eq!(page.data.len(), 100, "{name}: a full page");
        let response = ready(api.handle(get()));
        let answered: SearchResponse = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(
            answered.into_page().data,
            page.data,
            "{name}: the same page"
        );

        group.bench_function(BenchmarkId::new("parse+Dispatcher::search", name), |b| {
            b.iter(|| {
                let request = SearchRequest::from_query(Some(&query)).unwrap();
                ready(dispatcher.search(&request)).unwrap();
            })
        });
        // What the handler adds on top of the search, alone: writing the page. The two
        // searches above take milliseconds and move with the machine's load by more
        // than this from one to the other, so their ratio alone says little.
        group.bench_function(BenchmarkId::new("response-json-only", name), |b| {
            b.iter_batched(
                || page.clone(),
                |page| serde_json::to_vec(&SearchResponse::new(request, page)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(BenchmarkId::new("Api::handle", name), |b| {
            b.iter_batched(
                get,
                |request| {
                    let response = ready(api.handle(request));
                    assert_eq!(response.status(), StatusCode::OK, "{response:?}");
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = subscribe, search
}
criterion_main!(benches);
