//! `PostgresStore` against a real PostgreSQL: the conformance suite, two instances on
//! one database, search pushed down to SQL agreeing with the shared evaluator, hostile
//! search values, and a database that goes away and comes back.
//!
//! The tests that need a server are `#[ignore]`d so that a plain `cargo test` passes
//! without one. Run explicitly (`--ignored`, `--include-ignored`), each fails, saying
//! what is missing, when its environment is not there. To run them:
//!
//! ```text
//! source .ci/postgres.sh   # starts a throwaway server, exports DATABASE_URL and more
//! cargo test --features postgres,testkit --test postgres_store -- --include-ignored
//! biot_pg_stop
//! ```
//!
//! Each test works in a fresh schema of its own and drops it at the end.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use biot_notifications::notification::Event;
use biot_notifications::notifier::DiscardingNotifier;
use biot_notifications::search::{Page, SearchRequest};
use biot_notifications::store::postgres::deadpool_postgres::tokio_postgres::{self, NoTls};
use biot_notifications::store::postgres::deadpool_postgres::{Manager, Pool, Runtime};
use biot_notifications::store::postgres::{PostgresSetupError, PostgresStore};
use biot_notifications::store::SubscriptionStore;
use biot_notifications::{
    Action, Dispatcher, EntityType, Error, EventType, StoreError, SubscribeRequest, Subscription,
};
use futures_util::future::join_all;
use http::StatusCode;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::RwLock;
use uuid::Uuid;

mod common;

/// Tests that use the server share it (read); the one that stops it has it alone (write).
static SERVER: RwLock<()> = RwLock::const_new(());

fn fresh_schema() -> String {
    format!("t_{}", Uuid::new_v4().simple())
}

async fn store_on(schema: &str) -> PostgresStore {
    PostgresStore::options()
        .schema(schema)
        .connect(&common::database_url())
        .await
        .unwrap_or_else(|e| panic!("connecting to DATABASE_URL failed: {e:?}"))
}

async fn fresh_store() -> PostgresStore {
    store_on(&fresh_schema()).await
}

async fn drop_schema(store: &PostgresStore) {
    let client = store.pool().get().await.expect("a connection");
    client
        .batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", store.schema()))
        .await
        .expect("drop the test schema");
}

fn key(
    entity: &str,
    action: &str,
    endpoint: &str,
    template: Option<&str>,
) -> biot_notifications::SubscriptionKey {
    let mut request = SubscribeRequest::new(entity, action, endpoint);
    request.template_name = template.map(str::to_owned);
    request.key().expect("a valid subscription")
}

/// A creation time PostgreSQL keeps exactly (whole microseconds).
fn micros(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(at.nanosecond() / 1000 * 1000)
        .expect("a valid nanosecond")
}

// ---------------------------------------------------------------------------------
// Without a server.

#[tokio::test]
async fn connecting_to_a_server_that_never_answers_fails_within_the_timeout() {
    // Accepts connections and never says a word.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let result = PostgresStore::options()
        .operation_timeout(timeout)
        .connect(&format!("postgres://nobody@{address}/nothing"))
        .await;
    let elapsed = started.elapsed();
    silent.abort();
    let err = result.expect_err("nobody answered");
    assert!(
        matches!(
            err,
            PostgresSetupError::Store(StoreError::Backend {
                store: "postgres",
                ..
            })
        ),
        "{err:?}"
    );
    assert!(
        elapsed < timeout + Duration::from_millis(500),
        "took {elapsed:?}"
    );
}

#[tokio::test]
async fn bad_urls_and_schema_names_are_setup_errors_not_store_failures() {
    let err = PostgresStore::connect("postgres://[not-a-host")
        .await
        .unwrap_err();
    assert!(
        matches!(err, PostgresSetupError::InvalidUrl { .. }),
        "{err:?}"
    );
    assert!(std::error::Error::source(&err).is_some(), "{err:?}");
    for schema in ["", "Robert'); DROP TABLE students;--", "has space", "1st"] {
        let err = PostgresStore::options()
            .schema(schema)
            .connect("postgres://nobody@127.0.0.1:1/nothing")
            .await
            .unwrap_err();
        assert!(
            matches!(err, PostgresSetupError::InvalidSchemaName { .. }),
            "{schema}: {err:?}"
        );
        assert!(err.to_string().contains("schema name"), "{schema}: {err}");
    }
}

// ---------------------------------------------------------------------------------
// The conformance suite.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn postgres_store_passes_the_testkit() {
    let _server = SERVER.read().await;
    let store = fresh_store().await;
    biot_notifications::testkit::run_all(&store).await;
    // Twice: the suite cleans up after itself and works on a store that holds data.
    biot_notifications::testkit::run_all(&store).await;
    drop_schema(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn postgres_store_passes_the_testkit_behind_an_arc_dyn() {
    let _server = SERVER.read().await;
    let store = fresh_store().await;
    let shared: Arc<dyn SubscriptionStore> = Arc::new(store.clone());
    biot_notifications::testkit::run_all(&shared).await;
    biot_notifications::testkit::run_all(&*shared).await;
    drop_schema(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn postgres_store_passes_the_shared_store_suite_while_another_instance_writes() {
    let _server = SERVER.read().await;
    let schema = fresh_schema();
    let (store, other) = (store_on(&schema).await, store_on(&schema).await);
    let shared = common::StoreWithAnotherWriter::new(Arc::new(store.clone()), Arc::new(other));
    biot_notifications::testkit::run_on_shared_store(&shared).await;
    assert!(shared.writes() > 0);
    assert_eq!(store.count().await.unwrap(), shared.writes() as u64);
    drop_schema(&store).await;
}

// ---------------------------------------------------------------------------------
// Schema and migrations.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn instances_starting_together_migrate_once() {
    let _server = SERVER.read().await;
    let schema = fresh_schema();
    let stores = join_all((0..4).map(|_| store_on(&schema))).await;
    let again = store_on(&schema).await;
    let client = again.pool().get().await.unwrap();
    let versions: Vec<i32> = client
        .query(
            &format!("SELECT version FROM \"{schema}\".schema_migrations ORDER BY version"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    // Each migration applied once, in order.
    assert_eq!(
        versions,
        (1..=biot_notifications::store::postgres::SCHEMA_VERSION).collect::<Vec<_>>()
    );
    for store in &stores {
        assert_eq!(store.count().await.unwrap(), 0);
    }
    drop_schema(&again).await;
}

// ---------------------------------------------------------------------------------
// Two instances on one database.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn two_instances_see_each_others_subscriptions() {
    let _server = SERVER.read().await;
    let schema = fresh_schema();
    let (one, other) = (store_on(&schema).await, store_on(&schema).await);
    let subscription = Subscription::new(key(
        "device",
        "_revokeCertificate",
        "https://plugin.example.com/certs",
        Some("pump"),
    ));
    one.insert(subscription.clone()).await.unwrap();

    let event = EventType::new(EntityType::Device, Action::RevokeCertificate).unwrap();
    let found = other.matching(event, Some("pump")).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id(), subscription.id());
    assert_eq!(found[0].key(), subscription.key());

    let removed = other.remove(subscription.key()).await.unwrap();
    assert_eq!(removed.id(), subscription.id());
    assert!(one.get(subscription.id()).await.unwrap().is_none());
    drop_schema(&one).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn racing_subscribes_on_two_instances_have_exactly_one_winner() {
    let _server = SERVER.read().await;
    let schema = fresh_schema();
    let one = Dispatcher::new(store_on(&schema).await, DiscardingNotifier);
    let other = Dispatcher::new(store_on(&schema).await, DiscardingNotifier);
    for round in 0..25 {
        let request = SubscribeRequest::new(
            "usage-session",
            "remoteStart",
            format!("https://plugin{round}.example.com/sessions"),
        );
        let (a, b) = {
            let (one, other, request) = (one.clone(), other.clone(), request.clone());
            let a = tokio::spawn({
                let request = request.clone();
                async move { one.subscribe(&request).await }
            });
            let b = tokio::spawn(async move { other.subscribe(&request).await });
            (a.await.unwrap(), b.await.unwrap())
        };
        let (winner, loser) = match (a, b) {
            (Ok(winner), Err(loser)) | (Err(loser), Ok(winner)) => (winner, loser),
            other => panic!("round {round}: exactly one subscribe must win: {other:?}"),
        };
        assert!(
            matches!(loser, Error::Store(StoreError::AlreadyExists { .. })),
            "round {round}: {loser:?}"
        );
        assert_eq!(loser.status(), StatusCode::CONFLICT);
        assert_eq!(winner.event_type().action(), Action::RemoteStart);
    }
    assert_eq!(one.store().count().await.unwrap(), 25);
    drop_schema_of(&schema).await;
}

async fn drop_schema_of(schema: &str) {
    drop_schema(&store_on(schema).await).await;
}

// ---------------------------------------------------------------------------------
// Search: SQL agrees with the shared evaluator.

/// Template names that stress case folding and SQL's special characters.
const TEMPLATES: &[Option<&str>] = &[
    None,
    Some("adult"),
    Some("Adult"),
    Some("pump_1"),
    Some("50%"),
    Some("a_b"),
    Some("it's"),
    Some(r"back\slash"),
    Some("Ünïcode"),
    Some("İstanbul"),
    Some("ΣΑΣ"),
    Some("\u{212A}elvin"),
    Some("'; DROP TABLE subscriptions; --"),
];

/// Subscriptions over many pairs, endpoints and templates, created in groups of three
/// that share a creation time (so order ties fall to the id).
fn corpus() -> Vec<Subscription> {
    let base = micros(OffsetDateTime::now_utc()) - time::Duration::hours(1);
    let pairs: Vec<EventType> = EventType::all().collect();
    (0..90)
        .map(|i| {
            let pair = pairs[(i * 7) % pairs.len()];
            let endpoint = match i % 5 {
                0 => format!("https://h{}.example.com/p{i}", i % 4),
                1 => format!("https://H{}.Example.com:443/Hook/{i}", i % 4),
                2 => format!("https://h{}.example.com/a%25b/{i}?q=x_y", i % 4),
                3 => format!("http://[::1]:8080/{i}"),
                _ => format!("https://plugins.example.org/ünï/{i}"),
            };
            let template = TEMPLATES[i % TEMPLATES.len()];
            let key = key(
                pair.entity_type().as_str(),
                pair.action().as_str(),
                &endpoint,
                template,
            );
            let created = base + time::Duration::seconds((i / 3) as i64);
            Subscription::from_parts(Uuid::new_v4(), key, created)
        })
        .collect()
}

fn filters(corpus: &[Subscription]) -> Vec<String> {
    let id = corpus[4].id();
    let other_id = corpus[11].id();
    let upper = id.to_string().to_uppercase();
    let fragment = &id.simple().to_string()[..6];
    let mut filters: Vec<String> = [
        r#"{}"#,
        r#"{"entityTypeName": {"eq": "patient"}}"#,
        r#"{"entityTypeName": {"eq": "Patient"}}"#,
        r#"{"entityTypeName": {"not": "device"}}"#,
        r#"{"entityTypeName": {"not": "nope"}}"#,
        r#"{"entityTypeName": {"in": ["patient", "device", "nope"]}}"#,
        r#"{"entityTypeName": {"in": ["nope"]}}"#,
        r#"{"entityTypeName": {"notIn": ["patient", "nope"]}}"#,
        r#"{"entityTypeName": {"notIn": ["nope"]}}"#,
        r#"{"entityTypeName": {"like": "ALERT"}}"#,
        r#"{"entityTypeName": {"isNull": true}}"#,
        r#"{"entityTypeName": {"isNotNull": true}}"#,
        r#"{"actionName": {"eq": "create"}}"#,
        r#"{"actionName": {"eq": "_create"}}"#,
        r#"{"actionName": {"eq": "_read"}}"#,
        r#"{"actionName": {"in": ["create", "_update", "bogus"]}}"#,
        r#"{"actionName": {"notIn": ["_create", "bogus"]}}"#,
        r#"{"actionName": {"not": "delete"}}"#,
        r#"{"actionName": {"like": "_C"}}"#,
        r#"{"actionName": {"like": "%"}}"#,
        r#"{"actionName": {"like": "SMS"}}"#,
        r#"{"id": {"eq": "not-a-uuid"}}"#,
        r#"{"id": {"not": "not-a-uuid"}}"#,
        r#"{"id": {"like": "-4"}}"#,
        r#"{"endpoint": {"eq": "HTTPS://H1.EXAMPLE.COM:443/p5"}}"#,
        r#"{"endpoint": {"eq": "not a url"}}"#,
        r#"{"endpoint": {"not": "https://h1.example.com/p5"}}"#,
        r#"{"endpoint": {"like": "EXAMPLE.com/HOOK"}}"#,
        r#"{"endpoint": {"like": "%25"}}"#,
        r#"{"endpoint": {"like": "%"}}"#,
        r#"{"endpoint": {"like": "x_y"}}"#,
        r#"{"endpoint": {"like": "ünï"}}"#,
        r#"{"endpoint": {"like": "[::1]"}}"#,
        r#"{"endpoint": {"in": ["https://h0.example.com/p0", "http://[0:0::1]:8080/3", "junk"]}}"#,
        r#"{"endpoint": {"notIn": ["https://h0.example.com/p0"]}}"#,
        r#"{"templateName": {"eq": "adult"}}"#,
        r#"{"templateName": {"eq": "Adult"}}"#,
        r#"{"templateName": {"eq": "'; DROP TABLE subscriptions; --"}}"#,
        r#"{"templateName": {"not": "adult"}}"#,
        r#"{"templateName": {"isNull": true}}"#,
        r#"{"templateName": {"isNull": false}}"#,
        r#"{"templateName": {"isNotNull": true}}"#,
        r#"{"templateName": {"isNotNull": false}}"#,
        r#"{"templateName": {"isNull": true, "isNotNull": true}}"#,
        r#"{"templateName": {"like": "ADULT"}}"#,
        r#"{"templateName": {"like": ""}}"#,
        r#"{"templateName": {"like": "%"}}"#,
        r#"{"templateName": {"like": "_"}}"#,
        r#"{"templateName": {"like": "'"}}"#,
        r#"{"templateName": {"like": "\\"}}"#,
        r#"{"templateName": {"like": "'; DROP TABLE subscriptions; --"}}"#,
        r#"{"templateName": {"like": "ü"}}"#,
        r#"{"templateName": {"like": "Ü"}}"#,
        r#"{"templateName": {"like": "i"}}"#,
        r#"{"templateName": {"like": "İ"}}"#,
        r#"{"templateName": {"like": "σ"}}"#,
        r#"{"templateName": {"like": "ς"}}"#,
        r#"{"templateName": {"like": "k"}}"#,
        r#"{"templateName": {"like": "a\u0000b"}}"#,
        r#"{"templateName": {"in": ["adult", "50%", "%", "a\u0000b"]}}"#,
        r#"{"templateName": {"notIn": ["adult", "50%"]}}"#,
        r#"{"templateName": {"notIn": ["a\u0000b"]}}"#,
        r#"{"templateName": {"not": "a\u0000b"}}"#,
        r#"{"templateName": {"eq": "a\u0000b"}}"#,
        r#"{"entityTypeName": {"in": ["patient", "device"]}, "templateName": {"isNull": false, "like": "a"}}"#,
        r#"{"actionName": {"eq": "create", "not": "_create"}}"#,
        r#"{"actionName": {"in": ["_create", "_update"], "notIn": ["_update"], "like": "eat"}}"#,
    ]
    .iter()
    .map(|filter| filter.to_string())
    .collect();
    filters.extend([
        format!(r#"{{"id": {{"eq": "{upper}"}}}}"#),
        format!(r#"{{"id": {{"not": "{id}"}}}}"#),
        format!(r#"{{"id": {{"in": ["{upper}", "{other_id}", "x"]}}}}"#),
        format!(r#"{{"id": {{"notIn": ["{id}"]}}}}"#),
        format!(r#"{{"id": {{"like": "{}"}}}}"#, &upper[..8]),
        format!(r#"{{"id": {{"like": "{fragment}"}}}}"#),
    ]);
    filters
}

const FREE_TEXTS: &[&str] = &[
    "pump",
    "PUMP adult",
    "h1.example",
    "_create",
    "%",
    "_",
    "\\",
    "'",
    "nothing-here",
    "σ ü",
    "   ",
    "a\u{0}b",
    "a\u{0}b pump",
];

const SORTS: &[&str] = &[
    r#"[]"#,
    r#"[{"prop": "entityTypeName", "order": "ASC"}]"#,
    r#"[{"prop": "actionName"}, {"prop": "entityTypeName", "order": "ASC"}]"#,
    r#"[{"prop": "actionName", "order": "ASC"}, {"prop": "actionName", "order": "DESC"}]"#,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn search_agrees_with_the_shared_evaluator() {
    let _server = SERVER.read().await;
    let store = fresh_store().await;
    let corpus = corpus();
    for subscription in &corpus {
        store.insert(subscription.clone()).await.unwrap();
    }
    let mut requests = Vec::new();
    for filter in filters(&corpus) {
        for sort in SORTS {
            for (limit, page) in [(100, 0), (7, 0), (7, 2), (7, 40)] {
                requests.push(format!(
                    r#"{{"filter": {filter}, "sort": {sort}, "limit": {limit}, "page": {page}}}"#
                ));
            }
        }
    }
    for text in FREE_TEXTS {
        let text = serde_json::to_string(text).unwrap();
        for sort in SORTS {
            requests.push(format!(
                r#"{{"freeTextSearch": {text}, "sort": {sort}, "limit": 9, "page": 1}}"#
            ));
        }
        requests.push(format!(
            r#"{{"freeTextSearch": {text}, "filter": {{"templateName": {{"isNotNull": true}}}}}}"#
        ));
    }
    let mut nonempty = 0;
    for json in &requests {
        let request = SearchRequest::from_json(json.as_bytes())
            .unwrap_or_else(|e| panic!("{json} is not a valid request: {e}"));
        let expected: Page<Subscription> = request.evaluate(&corpus);
        let got = store
            .search(&request)
            .await
            .unwrap_or_else(|e| panic!("search {json} failed: {e:?}"));
        assert_eq!(got.total_results, expected.total_results, "total of {json}");
        let ids =
            |page: &Page<Subscription>| page.data.iter().map(Subscription::id).collect::<Vec<_>>();
        assert_eq!(ids(&got), ids(&expected), "order of {json}");
        assert_eq!(got, expected, "results of {json}");
        nonempty += usize::from(!got.data.is_empty());
    }
    // The cases are not vacuous.
    assert!(
        nonempty > requests.len() / 2,
        "{nonempty} of {}",
        requests.len()
    );
    drop_schema(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn hostile_search_values_match_literally_and_harm_nothing() {
    let _server = SERVER.read().await;
    // A table the classic injection would drop if it reached SQL text.
    let canary = format!("canary_{}", Uuid::new_v4().simple());
    let store = fresh_store().await;
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(&format!(
            "CREATE TABLE \"{}\".{canary} (x int)",
            store.schema()
        ))
        .await
        .unwrap();
    let templates = [
        "50%",
        "50x",
        "a_b",
        "axb",
        "it's",
        r"back\slash",
        "'; DROP TABLE subscriptions; --",
    ];
    for template in templates {
        let key = key(
            "patient",
            "_create",
            "https://plugin.example.com/a%25b",
            Some(template),
        );
        store.insert(Subscription::new(key)).await.unwrap();
    }
    store
        .insert(Subscription::new(key(
            "patient",
            "_create",
            "https://plugin.example.com/plain",
            None,
        )))
        .await
        .unwrap();

    let found = |json: serde_json::Value| {
        let store = store.clone();
        async move {
            let request = SearchRequest::from_json(json.to_string().as_bytes()).unwrap();
            let mut names: Vec<String> = store
                .search(&request)
                .await
                .unwrap_or_else(|e| panic!("{json}: {e:?}"))
                .data
                .iter()
                .map(|s| s.template_name().map_or("-".to_owned(), |t| t.to_string()))
                .collect();
            names.sort();
            names
        }
    };
    let drop = "'; DROP TABLE subscriptions; --";
    let like = |v: &str| serde_json::json!({"filter": {"templateName": {"like": v}}});
    assert_eq!(found(like("%")).await, ["50%"]);
    assert_eq!(found(like("_")).await, ["a_b"]);
    assert_eq!(found(like("'")).await, [drop, "it's"]);
    assert_eq!(found(like(r"\")).await, [r"back\slash"]);
    assert_eq!(found(like(r"k\s")).await, [r"back\slash"]);
    assert_eq!(found(like(drop)).await, [drop]);
    assert_eq!(
        found(serde_json::json!({"filter": {"templateName": {"eq": drop}}})).await,
        [drop]
    );
    assert_eq!(
        found(serde_json::json!({"filter": {"templateName": {"eq": "%"}}})).await,
        Vec::<String>::new()
    );
    assert_eq!(
        found(serde_json::json!({"filter": {"templateName": {"in": ["%", "_", "a%b", drop]}}}))
            .await,
        [drop]
    );
    assert_eq!(
        found(serde_json::json!({"filter": {"endpoint": {"eq": drop}}})).await,
        Vec::<String>::new()
    );
    assert_eq!(
        found(serde_json::json!({"filter": {"endpoint": {"like": "%"}}}))
            .await
            .len(),
        templates.len(),
        "only endpoints with a literal % match"
    );
    assert_eq!(
        found(serde_json::json!({"freeTextSearch": "50% a_b"})).await,
        ["50%", "a_b"]
    );

    // The store and the canary are intact.
    assert_eq!(store.count().await.unwrap(), templates.len() as u64 + 1);
    client
        .batch_execute(&format!("SELECT * FROM \"{}\".{canary}", store.schema()))
        .await
        .expect("the canary table is still there");
    drop_schema(&store).await;
}

// ---------------------------------------------------------------------------------
// Failures: the database stops, or stops answering; then comes back.

/// Runs every store operation (and the dispatcher paths over them) once, checking each
/// fails with `StoreError::Backend` within `limit`, rendered as a bare 500.
async fn assert_every_operation_fails_fast(
    store: &PostgresStore,
    kept: &Subscription,
    limit: Duration,
) {
    let event = EventType::new(EntityType::Patient, Action::Create).unwrap();
    let dispatcher = Dispatcher::new(store.clone(), DiscardingNotifier);
    let fresh = Subscription::new(key("patient", "_create", "https://down.example.com/", None));
    let subscribe = SubscribeRequest::new("patient", "_create", "https://down2.example.com/");
    let search = SearchRequest::from_json(
        br#"{"filter": {"templateName": {"like": "a"}}, "sort": [{"prop": "actionName"}]}"#,
    )
    .unwrap();
    let operations: Vec<(&str, futures_util::future::BoxFuture<'_, Result<(), Error>>)> = vec![
        (
            "insert",
            Box::pin(async { Ok(store.insert(fresh.clone()).await?) }),
        ),
        (
            "remove",
            Box::pin(async { Ok(store.remove(kept.key()).await.map(drop)?) }),
        ),
        (
            "get",
            Box::pin(async { Ok(store.get(kept.id()).await.map(drop)?) }),
        ),
        (
            "matching",
            Box::pin(async { Ok(store.matching(event, Some("adult")).await.map(drop)?) }),
        ),
        (
            "search",
            Box::pin(async { Ok(store.search(&search).await.map(drop)?) }),
        ),
        (
            "count",
            Box::pin(async { Ok(store.count().await.map(drop)?) }),
        ),
        (
            "subscribe",
            Box::pin(async { dispatcher.subscribe(&subscribe).await.map(drop) }),
        ),
        (
            "dispatch",
            Box::pin(async {
                dispatcher
                    .dispatch(&Event::new(event, serde_json::json!({"_id": "p-1"})))
                    .await
                    .map(drop)
            }),
        ),
    ];
    for (name, operation) in operations {
        let started = Instant::now();
        let result = operation.await;
        let elapsed = started.elapsed();
        let err = result.expect_err(name);
        assert!(
            matches!(
                err,
                Error::Store(StoreError::Backend {
                    store: "postgres",
                    ..
                })
            ),
            "{name}: {err:?}"
        );
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR, "{name}");
        assert_eq!(err.code(), "INTERNAL_SERVER_ERROR", "{name}");
        assert_eq!(
            err.to_string(),
            "the postgres subscription store failed",
            "{name}"
        );
        assert!(err.details().is_empty(), "{name}");
        assert!(
            std::error::Error::source(&err).is_some(),
            "{name}: the cause is kept for logs"
        );
        assert!(
            elapsed <= limit + Duration::from_millis(500),
            "{name} took {elapsed:?}, more than the {limit:?} timeout"
        );
    }
}

/// Checks the store answers again, with its data.
async fn assert_store_works(store: &PostgresStore, kept: &Subscription) {
    assert_eq!(store.count().await.expect("count after recovery"), 1);
    let fetched = store.get(kept.id()).await.expect("get after recovery");
    assert_eq!(fetched.map(|s| s.id()), Some(kept.id()));
    let event = EventType::new(EntityType::Patient, Action::Create).unwrap();
    assert_eq!(
        store
            .matching(event, Some("adult"))
            .await
            .expect("matching")
            .len(),
        1
    );
    let another = Subscription::new(key(
        "patient",
        "_create",
        "https://again.example.com/",
        None,
    ));
    store
        .insert(another.clone())
        .await
        .expect("insert after recovery");
    store
        .remove(another.key())
        .await
        .expect("remove after recovery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and its pg_ctl: `source .ci/postgres.sh` sets DATABASE_URL and BIOT_PG_CTL"]
async fn operations_fail_fast_while_the_server_is_down_and_the_same_store_recovers() {
    let mut server = common::ServerControl::from_env();
    let _exclusive = SERVER.write().await;
    let limit = Duration::from_secs(2);
    let store = PostgresStore::options()
        .schema(fresh_schema())
        .operation_timeout(limit)
        .connect(&common::database_url())
        .await
        .unwrap();
    let kept = Subscription::new(key(
        "patient",
        "_create",
        "https://kept.example.com/",
        Some("adult"),
    ));
    store.insert(kept.clone()).await.unwrap();
    // Fill the pool with connections that the shutdown will break.
    join_all((0..4).map(|_| store.count())).await;

    server.stop();
    assert_every_operation_fails_fast(&store, &kept, limit).await;
    // A second round: the pool's state after failures is no better or worse.
    assert_every_operation_fails_fast(&store, &kept, limit).await;
    server.start();

    assert_store_works(&store, &kept).await;
    drop_schema(&store).await;
}

/// A TCP proxy to the database that can freeze: bytes sent while frozen are swallowed,
/// as by a network that drops packets (the database neither answers nor closes), and
/// their connections are dropped once it thaws.
struct FreezingProxy {
    address: SocketAddr,
    frozen: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl FreezingProxy {
    async fn start(target: (String, u16)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let frozen = Arc::clone(&frozen);
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    let Ok(outbound) = TcpStream::connect((target.0.as_str(), target.1)).await
                    else {
                        continue;
                    };
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    tokio::spawn(Self::pipe(in_read, out_write, Arc::clone(&frozen)));
                    tokio::spawn(Self::pipe(out_read, in_write, Arc::clone(&frozen)));
                }
            }
        });
        FreezingProxy {
            address,
            frozen,
            task,
        }
    }

    async fn pipe(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        frozen: Arc<AtomicBool>,
    ) {
        let mut buffer = vec![0; 16 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buffer).await {
            if frozen.load(Ordering::SeqCst) {
                // Swallow the bytes, like a dead network, until the test thaws the proxy;
                // then drop the connection, like a reset. (Bounded: at most a minute.)
                for _ in 0..6000 {
                    if !frozen.load(Ordering::SeqCst) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                break;
            }
            if to.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
    }
}

impl Drop for FreezingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn operations_time_out_while_the_database_is_unresponsive_and_the_same_store_recovers() {
    let _server = SERVER.read().await;
    let config: tokio_postgres::Config =
        common::database_url().parse().expect("DATABASE_URL parses");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        other => panic!("this test needs a TCP DATABASE_URL, not {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let proxy = FreezingProxy::start((host, port)).await;

    // A pool of the host's own making, without deadpool timeouts: the store's timeout
    // alone must bound every operation.
    let mut through_proxy = tokio_postgres::Config::new();
    through_proxy
        .host("127.0.0.1")
        .port(proxy.address.port())
        .user(config.get_user().unwrap_or("postgres"))
        .dbname(config.get_dbname().unwrap_or("postgres"));
    if let Some(password) = config.get_password() {
        through_proxy.password(password);
    }
    let pool = Pool::builder(Manager::new(through_proxy, NoTls))
        .runtime(Runtime::Tokio1)
        .max_size(4)
        .build()
        .unwrap();
    let limit = Duration::from_secs(1);
    let store = PostgresStore::options()
        .schema(fresh_schema())
        .operation_timeout(limit)
        .with_pool(pool)
        .await
        .unwrap();
    let kept = Subscription::new(key(
        "patient",
        "_create",
        "https://kept.example.com/",
        Some("adult"),
    ));
    store.insert(kept.clone()).await.unwrap();

    proxy.frozen.store(true, Ordering::SeqCst);
    assert_every_operation_fails_fast(&store, &kept, limit).await;
    proxy.frozen.store(false, Ordering::SeqCst);
    // Let the proxy reset the connections whose bytes it swallowed (it looks every 10 ms),
    // as a broken network's connections are reset: the pool then drops them on checkout.
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_store_works(&store, &kept).await;
    drop_schema(&store).await;
}
