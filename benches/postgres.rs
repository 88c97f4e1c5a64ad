//! `PostgresStore` with 100,000 subscriptions: the dispatch lookup (`matching`), the
//! subscribe path and a first search page, against a real PostgreSQL.
//!
//! ```text
//! source .ci/postgres.sh && cargo bench --features postgres --bench postgres; biot_pg_stop
//! ```
//!
//! Skipped, with a message, when `DATABASE_URL` is not set. Works in a schema of its own
//! (`biot_bench`), made afresh and dropped at the end.

mod common;

use std::hint::black_box;
use std::time::Duration;

use biot_notifications::search::SearchRequest;
use biot_notifications::store::postgres::PostgresStore;
use biot_notifications::store::SubscriptionStore;
use biot_notifications::{
    Action, EndpointPolicy, EntityType, EventType, SubscribeRequest, Subscription,
};
use criterion::{BatchSize, Criterion};
use time::OffsetDateTime;
use uuid::Uuid;

const SCHEMA: &str = "biot_bench";
const SUBSCRIPTIONS: usize = 100_000;

fn main() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("postgres bench skipped: set DATABASE_URL (e.g. `source .ci/postgres.sh`)");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let store = runtime.block_on(load(&url));

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let mut group = criterion.benchmark_group("postgres");

    // 100,000 subscriptions on patient/_create over 1,000 templates: 100 match.
    let patient_created = EventType::new(EntityType::Patient, Action::Create).unwrap();
    group.bench_function("matching/100-of-100k", |b| {
        b.iter(|| {
            let found = runtime
                .block_on(store.matching(patient_created, Some(black_box("template7"))))
                .unwrap();
            assert_eq!(found.len(), 100);
        })
    });
    // One subscription on device/_create, beside the 100,000.
    let device_created = EventType::new(EntityType::Device, Action::Create).unwrap();
    group.bench_function("matching/1-of-100k", |b| {
        b.iter(|| {
            let found = runtime
                .block_on(store.matching(device_created, Some(black_box("pump"))))
                .unwrap();
            assert_eq!(found.len(), 1);
        })
    });

    // The whole subscribe path (as the in-memory `subscribe` bench): parse, validate, insert.
    let policy = EndpointPolicy::default();
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
                runtime.block_on(store.insert(Subscription::new(key))).unwrap();
            },
            BatchSize::SmallInput,
        )
    });

    // Newest first, 100 per page, with the total: counts every subscription.
    let first_page = SearchRequest::new();
    group.sample_size(20);
    group.bench_function("search/first-page-of-100k", |b| {
        b.iter(|| {
            let page = runtime
                .block_on(store.search(black_box(&first_page)))
                .unwrap();
            assert_eq!(page.data.len(), 100);
        })
    });
    group.finish();
    criterion.final_summary();

    runtime.block_on(async {
        let client = store.pool().get().await.unwrap();
        client
            .batch_execute(&format!("DROP SCHEMA {SCHEMA} CASCADE"))
            .await
            .unwrap();
    });
}

/// A store in a fresh `biot_bench` schema holding the bench's subscriptions, loaded
/// with a few multi-row inserts.
async fn load(url: &str) -> PostgresStore {
    let store = PostgresStore::options()
        .schema(SCHEMA)
        .connect(url)
        .await
        .expect("connect");
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA {SCHEMA} CASCADE"))
        .await
        .unwrap();
    drop(client);
    let store = PostgresStore::options()
        .schema(SCHEMA)
        .connect(url)
        .await
        .expect("connect");

    let now = OffsetDateTime::now_utc();
    let mut subscriptions: Vec<Subscription> = (0..SUBSCRIPTIONS)
        .map(|i| {
            let key = SubscribeRequest::new(
                "patient",
                "_create",
                format!("https://p{i}.plugins.example.com/hook"),
            )
            .with_template(format!("template{}", i % 1000))
            .key()
            .unwrap();
            Subscription::from_parts(Uuid::new_v4(), key, now - time::Duration::seconds(i as i64))
        })
        .collect();
    let pump = SubscribeRequest::new(
        "device",
        "_create",
        "https://pumps.plugins.example.com/hook",
    )
    .with_template("pump")
    .key()
    .unwrap();
    subscriptions.push(Subscription::new(pump));

    let client = store.pool().get().await.unwrap();
    common::postgres::bulk_insert(&client, SCHEMA, &subscriptions).await;
    client
        .batch_execute(&format!("ANALYZE {SCHEMA}.subscriptions"))
        .await
        .unwrap();
    assert_eq!(store.count().await.unwrap(), SUBSCRIPTIONS as u64 + 1);
    store
}
