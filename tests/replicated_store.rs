//! `ReplicatedStore` against a real PostgreSQL: the conformance suite, and two instances
//! (two stores, each with its own pool and listening connection) on one database, through
//! writes, races, a killed listening connection and a server restart.
//!
//! Every test is `#[ignore]`d and needs the environment of `.ci/postgres.sh`; run them
//! with:
//!
//! ```text
//! source .ci/postgres.sh
//! cargo test --features postgres,testkit --test replicated_store -- --include-ignored
//! biot_pg_stop
//! ```
//!
//! Waiting for another instance to see a change is bounded by a generous deadline, as a
//! failure report, never as a measurement: propagation times are measured by
//! `benches/replicated.rs`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use biot_notifications::store::postgres::replicated::ReplicationState;
use biot_notifications::store::postgres::{PostgresSetupError, PostgresStore, ReplicatedStore};
use biot_notifications::store::SubscriptionStore;
use biot_notifications::{
    Action, EntityType, EventType, SearchRequest, StoreError, SubscribeRequest, Subscription,
    SubscriptionKey,
};
use futures_util::future::join_all;
use tokio::sync::RwLock;
use uuid::Uuid;

mod common;

use common::Captured;

/// Tests that use the server share it (read); the one that stops it has it alone (write).
static SERVER: RwLock<()> = RwLock::const_new(());

/// How long another instance may take to see a change before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);

/// The process's tracing output, captured once for every test in this file (the store's
/// follower logs from the runtime's worker threads, so a thread-local subscriber would
/// miss it); each test looks for its own schema in it.
fn tracing_output() -> &'static Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        captured
    })
}

/// The lines of the captured output that name `schema`.
fn logged_about(schema: &str) -> Vec<String> {
    tracing_output()
        .text()
        .lines()
        .filter(|line| line.contains(schema))
        .map(str::to_owned)
        .collect()
}

fn fresh_schema() -> String {
    format!("r_{}", Uuid::new_v4().simple())
}

/// The database URL with an `application_name` that names this instance, so a test can
/// find (and kill) its connections.
fn url_named(name: &str) -> String {
    let url = common::database_url();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={name}")
}

async fn instance(schema: &str, name: &str) -> ReplicatedStore {
    ReplicatedStore::options()
        .postgres(
            PostgresStore::options()
                .schema(schema)
                .operation_timeout(Duration::from_secs(3)),
        )
        .heartbeat(Duration::from_millis(200))
        .max_reconnect_delay(Duration::from_millis(500))
        .connect(&url_named(name))
        .await
        .unwrap_or_else(|e| panic!("connecting to DATABASE_URL failed: {e:?}"))
}

/// Two instances on one fresh schema.
async fn two_instances() -> (ReplicatedStore, ReplicatedStore, String) {
    let schema = fresh_schema();
    let a = instance(&schema, &format!("{schema}_a")).await;
    let b = instance(&schema, &format!("{schema}_b")).await;
    (a, b, schema)
}

async fn drop_schema(store: &ReplicatedStore) {
    let client = store.postgres().pool().get().await.expect("a connection");
    client
        .batch_execute(&format!(
            "DROP SCHEMA \"{}\" CASCADE",
            store.postgres().schema()
        ))
        .await
        .expect("drop the test schema");
}

/// Runs `sql` on the database as an operator would, `{schema}` standing for the quoted
/// schema.
async fn operator_sql(store: &ReplicatedStore, sql: &str) {
    let client = store.postgres().pool().get().await.expect("a connection");
    let schema = format!("\"{}\"", store.postgres().schema());
    client
        .batch_execute(&sql.replace("{schema}", &schema))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

fn key(endpoint: &str, template: Option<&str>) -> SubscriptionKey {
    let mut request = SubscribeRequest::new("patient", "_create", endpoint);
    request.template_name = template.map(str::to_owned);
    request.key().expect("a valid subscription")
}

fn created() -> EventType {
    EventType::new(EntityType::Patient, Action::Create).unwrap()
}

/// The endpoints `store` matches for a created patient of template `adult`, sorted.
async fn matched(store: &ReplicatedStore) -> Vec<String> {
    let mut endpoints: Vec<String> = store
        .matching(created(), Some("adult"))
        .await
        .expect("matching never fails on the replicated store")
        .iter()
        .map(|s| s.endpoint().as_str().to_owned())
        .collect();
    endpoints.sort();
    endpoints
}

/// Waits until `condition` holds, failing the test with `what` after the deadline.
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(start.elapsed() < DEADLINE, "{what}: not after {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Kills every connection of the instance named `name` (its pool's and its listener's)
/// from another session, as a network failure or an administrator would.
async fn kill_connections_of(admin: &PostgresStore, name: &str) -> u64 {
    let client = admin.pool().get().await.expect("a connection");
    client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .await
        .expect("pg_terminate_backend")
        .len() as u64
}

/// Kills the connections of the instance named `name` every few milliseconds, through
/// `admin`, until the returned task is aborted: the instance stays cut off even when it
/// reconnects in between.
fn keep_cutting_off(admin: &ReplicatedStore, name: &str) -> tokio::task::JoinHandle<()> {
    let (admin, name) = (admin.clone(), name.to_owned());
    tokio::spawn(async move {
        loop {
            kill_connections_of(admin.postgres(), &name).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

// ---------------------------------------------------------------------------------
// One instance.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn replicated_store_passes_the_testkit() {
    let _server = SERVER.read().await;
    let schema = fresh_schema();
    let store = instance(&schema, &schema).await;
    biot_notifications::testkit::run_all(&store).await;
    // Every write the suite made is in the database too, and every removal.
    assert_eq!(
        store.count().await.unwrap(),
        store.postgres().count().await.unwrap()
    );
    let store_arc: Arc<dyn SubscriptionStore> = Arc::new(store.clone());
    biot_notifications::testkit::run_all(&store_arc).await;
    drop_schema(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn an_instance_reads_its_own_writes_at_once() {
    let _server = SERVER.read().await;
    let (a, _b, _) = two_instances().await;
    for i in 0..50 {
        let endpoint = format!("https://own-{i}.example.com/");
        let subscription = Subscription::new(key(&endpoint, None));
        a.insert(subscription.clone()).await.unwrap();
        // No waiting: the index has it when insert returns.
        assert!(matched(&a).await.contains(&endpoint), "insert {i}");
        assert!(a.get(subscription.id()).await.unwrap().is_some());
        a.remove(subscription.key()).await.unwrap();
        assert!(!matched(&a).await.contains(&endpoint), "remove {i}");
        assert_eq!(a.get(subscription.id()).await.unwrap(), None);
    }
    drop_schema(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn the_index_loads_what_the_database_held_before_the_instance_started() {
    let _server = SERVER.read().await;
    let schema = fresh_schema();
    // Written by the plain store, before any replicated instance exists.
    let plain = PostgresStore::options()
        .schema(&schema)
        .connect(&common::database_url())
        .await
        .unwrap();
    let mut stored = Vec::new();
    for i in 0..30 {
        let subscription = Subscription::new(key(&format!("https://pre-{i}.example.com/"), None));
        plain.insert(subscription.clone()).await.unwrap();
        stored.push(subscription);
    }
    let replica = instance(&schema, &schema).await;
    assert_eq!(replica.count().await.unwrap(), 30);
    // The same answers as the database, field by field (creation times included).
    for subscription in &stored {
        assert_eq!(
            replica.get(subscription.id()).await.unwrap(),
            plain.get(subscription.id()).await.unwrap()
        );
    }
    let request: SearchRequest = serde_json::from_value(serde_json::json!({
        "limit": 7, "page": 1,
        "freeTextSearch": "pre-1",
    }))
    .unwrap();
    assert_eq!(
        replica.search(&request).await.unwrap(),
        plain.search(&request).await.unwrap()
    );
    // The plain store's writes reach the replica too: the trigger logs every writer.
    let later = Subscription::new(key("https://plain-later.example.com/", Some("adult")));
    plain.insert(later.clone()).await.unwrap();
    eventually("a plain store's write reaches the replica", || async {
        replica.get(later.id()).await.unwrap().is_some()
    })
    .await;
    drop_schema(&replica).await;
}

#[tokio::test]
async fn zero_durations_are_refused_before_anything_connects() {
    // An unreachable address: the checks must answer before any connection is tried.
    let url = "postgres://nobody@127.0.0.1:1/none";
    for (options, option) in [
        (
            ReplicatedStore::options().heartbeat(Duration::ZERO),
            "heartbeat",
        ),
        (
            ReplicatedStore::options().max_reconnect_delay(Duration::ZERO),
            "max_reconnect_delay",
        ),
        (
            ReplicatedStore::options().reload_timeout(Duration::ZERO),
            "reload_timeout",
        ),
    ] {
        let err = options.connect(url).await.unwrap_err();
        assert!(
            matches!(err, PostgresSetupError::Zero { option: refused } if refused == option),
            "{option}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn an_instance_reads_its_own_writes_at_once_while_another_writes() {
    let _server = SERVER.read().await;
    let (a, b, _) = two_instances().await;
    // B writes without pause, so that A's writes often land after changes A has not
    // applied yet: A must read those from the log before it returns.
    let b_writes = {
        let b = b.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let subscription =
                    Subscription::new(key(&format!("https://b-{i}.example.com/"), None));
                b.insert(subscription.clone()).await.unwrap();
                b.remove(subscription.key()).await.unwrap();
            }
        })
    };
    for i in 0..100 {
        let endpoint = format!("https://own-{i}.example.com/");
        let subscription = Subscription::new(key(&endpoint, None));
        a.insert(subscription.clone()).await.unwrap();
        assert!(
            a.get(subscription.id()).await.unwrap().is_some(),
            "insert {i}"
        );
        a.remove(subscription.key()).await.unwrap();
        assert_eq!(a.get(subscription.id()).await.unwrap(), None, "remove {i}");
    }
    b_writes.abort();
    // All of it from the log, in order: no instance needed a whole reload.
    assert_eq!(a.status().full_reloads, 1);
    assert_eq!(b.status().full_reloads, 1);
    drop_schema(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn the_index_keeps_the_creation_time_the_database_gives_back() {
    let _server = SERVER.read().await;
    let (a, b, _) = two_instances().await;
    // Finer than microseconds, before 2000 and not in UTC: PostgreSQL keeps whole
    // microseconds from 2000-01-01, in UTC.
    let created_at = time::macros::datetime!(1999-12-31 23:59:59.999_999_999 +02:00);
    let subscription = Subscription::from_parts(
        Uuid::new_v4(),
        key("https://old.example.com/", None),
        created_at,
    );
    a.insert(subscription.clone()).await.unwrap();
    let stored = a.postgres().get(subscription.id()).await.unwrap().unwrap();
    let own = a.get(subscription.id()).await.unwrap().unwrap();
    assert_eq!(own, stored);
    assert_eq!(
        serde_json::to_string(&own).unwrap(),
        serde_json::to_string(&stored).unwrap()
    );
    eventually("B has it", || async {
        b.get(subscription.id()).await.unwrap().as_ref() == Some(&stored)
    })
    .await;
    drop_schema(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn dropping_a_store_closes_its_connections() {
    let _server = SERVER.read().await;
    let schema = fresh_schema();
    let name = format!("{schema}_gone");
    let observer = instance(&schema, &format!("{schema}_observer")).await;
    let store = instance(&schema, &name).await;
    let connections_of = |name: String| {
        let observer = observer.clone();
        async move {
            let client = observer.postgres().pool().get().await.unwrap();
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                    &[&name],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0)
        }
    };
    assert!(
        connections_of(name.clone()).await >= 2,
        "a pool and a listener"
    );
    drop(store);
    eventually("the dropped store's listener and pool close", || {
        let count = connections_of(name.clone());
        async move { count.await == 0 }
    })
    .await;
    drop_schema(&observer).await;
}

// ---------------------------------------------------------------------------------
// What others write to the table: an operator's SQL.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn an_operators_update_truncate_and_unservable_rows_are_followed() {
    let _server = SERVER.read().await;
    tracing_output();
    let (a, b, schema) = two_instances().await;
    let kept = Subscription::new(key("https://kept.example.com/", Some("adult")));
    a.insert(kept.clone()).await.unwrap();
    eventually("B has the first subscription", || async {
        matched(&b).await == ["https://kept.example.com/"]
    })
    .await;

    // An UPDATE that changes the identity: a removal and an insertion, in order.
    operator_sql(
        &a,
        "UPDATE {schema}.subscriptions SET endpoint = 'https://moved.example.com/'",
    )
    .await;
    for (name, store) in [("A", &a), ("B", &b)] {
        eventually(&format!("{name} follows the UPDATE"), || async {
            matched(store).await == ["https://moved.example.com/"]
        })
        .await;
    }

    // Rows this crate cannot serve: a name it does not know (a newer version's), and a
    // second row with the same identity once parsed (`create` is `_create`). They are
    // left out with a warning; replication goes on.
    operator_sql(
        &a,
        "INSERT INTO {schema}.subscriptions \
         (id, entity_type_name, action_name, endpoint, template_name, template_name_folded, \
          created_at) VALUES \
         (gen_random_uuid(), 'patient', '_teleport', 'https://future.example.com/', NULL, NULL, \
          now()), \
         (gen_random_uuid(), 'patient', 'create', 'https://moved.example.com/', 'adult', \
          'adult', now())",
    )
    .await;
    let after = Subscription::new(key("https://after.example.com/", None));
    a.insert(after.clone()).await.unwrap();
    for (name, store) in [("A", &a), ("B", &b)] {
        eventually(
            &format!("{name} goes on past the unservable rows"),
            || async { store.get(after.id()).await.unwrap().is_some() },
        )
        .await;
        assert_eq!(
            matched(store).await,
            ["https://after.example.com/", "https://moved.example.com/"]
        );
        assert!(store.status().is_following());
        assert_eq!(store.status().full_reloads, 1, "{name} needed no reload");
    }
    assert_eq!(a.postgres().count().await.unwrap(), 4);
    assert_eq!(b.count().await.unwrap(), 2);
    // A new instance starts on the same rows.
    let c = instance(&schema, &format!("{schema}_c")).await;
    assert_eq!(c.count().await.unwrap(), 2);
    assert!(logged_about(&schema)
        .iter()
        .any(|line| line.contains("WARN") && line.contains("cannot be served")));

    // TRUNCATE empties every index.
    operator_sql(&a, "TRUNCATE {schema}.subscriptions").await;
    for (name, store) in [("A", &a), ("B", &b), ("C", &c)] {
        eventually(&format!("{name} follows the TRUNCATE"), || async {
            store.count().await.unwrap() == 0 && store.status().is_following()
        })
        .await;
    }
    drop_schema(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn a_lost_notification_is_made_up_for_at_the_next_heartbeat() {
    let _server = SERVER.read().await;
    let (a, b, _) = two_instances().await;
    // No NOTIFY for this write: B learns of it only by reading the counter.
    operator_sql(
        &a,
        "ALTER TABLE {schema}.subscriptions DISABLE TRIGGER subscription_changes_announce",
    )
    .await;
    let quiet = Subscription::new(key("https://quiet.example.com/", Some("adult")));
    a.insert(quiet.clone()).await.unwrap();
    operator_sql(
        &a,
        "ALTER TABLE {schema}.subscriptions ENABLE TRIGGER subscription_changes_announce",
    )
    .await;
    eventually("B finds the change at a heartbeat", || async {
        matched(&b).await == ["https://quiet.example.com/"]
    })
    .await;
    assert_eq!(b.status().full_reloads, 1);
    drop_schema(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn a_database_with_another_history_is_reloaded() {
    let _server = SERVER.read().await;
    let (a, b, _) = two_instances().await;
    let lost = Subscription::new(key("https://lost.example.com/", Some("adult")));
    a.insert(lost.clone()).await.unwrap();
    eventually("B has the write the database will lose", || async {
        matched(&b).await == ["https://lost.example.com/"]
    })
    .await;
    // As a failover to a standby that never got the last change: the row, its logged
    // change and its number gone (triggers off, as replication applies them).
    operator_sql(
        &a,
        "SET session_replication_role = replica; \
         DELETE FROM {schema}.subscriptions; \
         DELETE FROM {schema}.subscription_changes \
             WHERE version = (SELECT version FROM {schema}.subscription_changes_head); \
         UPDATE {schema}.subscription_changes_head SET version = version - 1; \
         SET session_replication_role = origin;",
    )
    .await;
    // The next write takes the lost change's number.
    let new = Subscription::new(key("https://new.example.com/", Some("adult")));
    a.insert(new.clone()).await.unwrap();
    for (name, store) in [("A", &a), ("B", &b)] {
        eventually(&format!("{name} reloads the other history"), || async {
            matched(store).await == ["https://new.example.com/"]
        })
        .await;
        assert_eq!(store.status().full_reloads, 2, "{name}");
    }
    drop_schema(&a).await;
}

// ---------------------------------------------------------------------------------
// Two instances on one database.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn a_subscription_made_on_one_instance_is_matched_on_the_other_and_so_is_its_removal() {
    let _server = SERVER.read().await;
    let (a, b, _) = two_instances().await;
    let subscription = Subscription::new(key("https://a.example.com/", Some("adult")));
    a.insert(subscription.clone()).await.unwrap();
    eventually("B matches A's subscription", || async {
        matched(&b).await == ["https://a.example.com/"]
    })
    .await;
    // What B holds is what the database holds.
    assert_eq!(
        b.get(subscription.id()).await.unwrap(),
        b.postgres().get(subscription.id()).await.unwrap()
    );
    assert_eq!(b.count().await.unwrap(), 1);

    a.remove(subscription.key()).await.unwrap();
    eventually("B stops matching A's removed subscription", || async {
        matched(&b).await.is_empty()
    })
    .await;
    assert_eq!(b.get(subscription.id()).await.unwrap(), None);
    assert_eq!(b.count().await.unwrap(), 0);
    assert!(a.status().is_following() && b.status().is_following());
    assert_eq!(a.status().version, b.status().version);
    drop_schema(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn racing_subscribes_on_two_instances_have_exactly_one_winner() {
    let _server = SERVER.read().await;
    let (a, b, _) = two_instances().await;
    for round in 0..20 {
        let endpoint = format!("https://race-{round}.example.com/");
        let from_a = Subscription::new(key(&endpoint, Some("adult")));
        let from_b = Subscription::new(key(&endpoint, Some("adult")));
        let (on_a, on_b) = tokio::join!(a.insert(from_a.clone()), b.insert(from_b.clone()));
        let winner = match (on_a, on_b) {
            (Ok(()), Err(StoreError::AlreadyExists { .. })) => from_a.id(),
            (Err(StoreError::AlreadyExists { .. }), Ok(())) => from_b.id(),
            other => panic!("round {round}: expected one success and one conflict, got {other:?}"),
        };
        // Both instances end with the winner, and only it.
        for (name, store) in [("A", &a), ("B", &b)] {
            eventually(&format!("{name} holds round {round}'s winner"), || async {
                let held = store.matching(created(), Some("adult")).await.unwrap();
                held.iter()
                    .filter(|s| s.endpoint().as_str() == endpoint)
                    .count()
                    == 1
                    && held.iter().any(|s| s.id() == winner)
            })
            .await;
        }
    }
    assert_eq!(a.count().await.unwrap(), 20);
    eventually("B counts every winner", || async {
        b.count().await.unwrap() == 20
    })
    .await;
    // Every change applied from the log, in order: no reload healed anything.
    assert_eq!(a.status().full_reloads, 1);
    assert_eq!(b.status().full_reloads, 1);
    drop_schema(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn many_writers_on_both_instances_leave_both_indexes_equal_to_the_database() {
    let _server = SERVER.read().await;
    let (a, b, _) = two_instances().await;
    let writes = |store: ReplicatedStore, side: &'static str| async move {
        for i in 0..40 {
            let subscription =
                Subscription::new(key(&format!("https://{side}-{i}.example.com/"), None));
            store.insert(subscription.clone()).await.unwrap();
            if i % 3 == 0 {
                store.remove(subscription.key()).await.unwrap();
            }
        }
    };
    join_all([
        tokio::spawn(writes(a.clone(), "a")),
        tokio::spawn(writes(b.clone(), "b")),
    ])
    .await;
    let everything: SearchRequest =
        serde_json::from_value(serde_json::json!({"limit": 1000})).unwrap();
    let in_database = a.postgres().search(&everything).await.unwrap();
    assert_eq!(in_database.total_results, 2 * 26);
    for (name, store) in [("A", &a), ("B", &b)] {
        eventually(&format!("{name}'s index equals the database"), || async {
            store.search(&everything).await.unwrap() == in_database
        })
        .await;
        assert_eq!(store.status().full_reloads, 1, "{name} needed no reload");
    }
    drop_schema(&a).await;
}

// ---------------------------------------------------------------------------------
// Outages.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn changes_made_while_an_instance_is_cut_off_all_reach_it_after_it_reconnects() {
    let _server = SERVER.read().await;
    tracing_output();
    let (a, b, schema) = two_instances().await;
    let b_name = format!("{schema}_b");
    let gone = Subscription::new(key("https://gone.example.com/", Some("adult")));
    a.insert(gone.clone()).await.unwrap();
    eventually("B matches the first subscription", || async {
        matched(&b).await == ["https://gone.example.com/"]
    })
    .await;
    let reconnects_before = b.status().reconnects;

    // Cut B off, and keep it cut off while A writes: its listener is killed again as
    // soon as it comes back.
    assert!(kill_connections_of(a.postgres(), &b_name).await >= 1);
    eventually("B notices it lost its connection", || async {
        b.status().state == ReplicationState::Reconnecting
    })
    .await;
    let keep_cut = keep_cutting_off(&a, &b_name);
    // While cut off, B serves the last index it knew.
    assert_eq!(matched(&b).await, ["https://gone.example.com/"]);
    let made: Vec<Subscription> = (0..5)
        .map(|i| Subscription::new(key(&format!("https://while-cut-{i}.example.com/"), None)))
        .collect();
    for subscription in &made {
        a.insert(subscription.clone()).await.unwrap();
    }
    a.remove(gone.key()).await.unwrap();
    keep_cut.abort();
    let _ = keep_cut.await;

    let expected: Vec<String> = (0..5)
        .map(|i| format!("https://while-cut-{i}.example.com/"))
        .collect();
    eventually(
        "B reconnects and has every change made meanwhile",
        || async {
            let status = b.status();
            status.is_following()
                && status.reconnects > reconnects_before
                && matched(&b).await == expected
        },
    )
    .await;
    assert_eq!(
        b.get(gone.id()).await.unwrap(),
        None,
        "the removal reached B"
    );
    assert_eq!(b.status().staleness(), None);
    assert_eq!(b.status().version, a.status().version);
    // The outage and the recovery were each reported.
    let logged = logged_about(&schema);
    assert!(
        logged
            .iter()
            .any(|line| line.contains("WARN") && line.contains("stopped following the database")),
        "no WARN for the lost connection: {logged:#?}"
    );
    assert!(
        logged
            .iter()
            .any(|line| line.contains("INFO") && line.contains("follows the database again")),
        "no INFO for the resynchronisation: {logged:#?}"
    );
    drop_schema(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh` sets DATABASE_URL"]
async fn an_instance_further_behind_than_the_change_log_reloads_when_it_reconnects() {
    let _server = SERVER.read().await;
    let (a, b, schema) = two_instances().await;
    let b_name = format!("{schema}_b");
    let keep_cut = keep_cutting_off(&a, &b_name);
    eventually("B notices it lost its connection", || async {
        !b.status().is_following()
    })
    .await;
    // More changes than the log keeps, in one statement.
    operator_sql(
        &a,
        "INSERT INTO {schema}.subscriptions \
         (id, entity_type_name, action_name, endpoint, created_at) \
         SELECT gen_random_uuid(), 'patient', '_create', \
                'https://bulk-' || i || '.example.com/', now() \
         FROM generate_series(1, 10050) AS i",
    )
    .await;
    keep_cut.abort();
    let _ = keep_cut.await;
    eventually("B reloads everything once it is back", || async {
        b.status().is_following() && b.count().await.unwrap() == 10_050
    })
    .await;
    assert_eq!(b.status().full_reloads, 2);
    assert_eq!(b.status().version, a.postgres().count().await.unwrap());
    drop_schema(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and its pg_ctl: `source .ci/postgres.sh` sets DATABASE_URL and BIOT_PG_CTL"]
async fn changes_made_around_a_server_restart_all_reach_the_other_instance() {
    let mut server = common::ServerControl::from_env();
    let _exclusive = SERVER.write().await;
    let (a, b, _) = two_instances().await;
    let gone = Subscription::new(key("https://gone.example.com/", Some("adult")));
    let kept = Subscription::new(key("https://kept.example.com/", None));
    a.insert(gone.clone()).await.unwrap();
    a.insert(kept.clone()).await.unwrap();
    eventually("B matches both subscriptions", || async {
        matched(&b).await.len() == 2
    })
    .await;

    server.stop();
    eventually("B notices the server is gone", || async {
        !b.status().is_following()
    })
    .await;
    // The last known index is served meanwhile; writes fail.
    assert_eq!(
        matched(&b).await,
        ["https://gone.example.com/", "https://kept.example.com/"]
    );
    assert!(matches!(
        a.insert(Subscription::new(key("https://never.example.com/", None)))
            .await,
        Err(StoreError::Backend { .. })
    ));
    server.start();

    // A writes as soon as its pool gets a connection again; B may still be waiting to
    // reconnect.
    let added = Subscription::new(key("https://after-restart.example.com/", Some("adult")));
    let start = Instant::now();
    loop {
        match a.insert(added.clone()).await {
            Ok(()) => break,
            Err(StoreError::Backend { .. }) if start.elapsed() < DEADLINE => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("A cannot write after the restart: {e}"),
        }
    }
    a.remove(gone.key()).await.unwrap();

    eventually("B follows again with both changes", || async {
        b.status().is_following()
            && matched(&b).await
                == [
                    "https://after-restart.example.com/",
                    "https://kept.example.com/",
                ]
    })
    .await;
    assert_eq!(b.get(gone.id()).await.unwrap(), None);
    assert!(b.status().reconnects >= 1, "B reconnected");
    drop_schema(&a).await;
}
