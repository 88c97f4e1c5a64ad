//! A conformance suite for [`SubscriptionStore`] implementations (feature `testkit`).
//!
//! Every check is a plain async function over `&dyn SubscriptionStore` that panics with
//! a message saying what the store got wrong. A backend written outside this crate
//! enables the feature in its dev-dependencies and calls the suite from its own tests:
//!
//! ```toml
//! [dev-dependencies]
//! biot-notifications = { version = "0.1", features = ["testkit"] }
//! ```
//!
//! ```
//! # futures_util::FutureExt::now_or_never(async {
//! use biot_notifications::store::InMemoryStore;
//!
//! biot_notifications::testkit::run_all(&InMemoryStore::new()).await;
//! # }).unwrap();
//! ```
//!
//! The checks work in a namespace of their own (endpoints on a random host name) and
//! remove what they insert, so the store may already hold other data, and the suite
//! may run again on the same store. Which entry point to call depends on who else
//! writes to the store while the suite runs:
//!
//! - nobody (a fresh store, a schema or database of the test's own): [`run_all`], every
//!   check, including [`check_count`], whose exact counts another writer would upset;
//! - other writers at the same time (a database shared with other tests or services):
//!   [`run_on_shared_store`], every check except [`check_count`].

use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::future::join_all;
use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::catalog::{Action, EntityType, EventType};

use crate::search::{Page, SearchRequest};
use crate::store::{StoreError, SubscriptionStore};
use crate::subscription::{SubscribeRequest, Subscription, SubscriptionKey};

/// Runs every check of this module against `store`.
///
/// The store may hold other data, but nothing else may write to it during the run:
/// [`check_count`] expects the count to change by exactly what it does. For a store
/// others write to meanwhile, use [`run_on_shared_store`].
///
/// # Panics
/// On the first check the store fails, saying what it got wrong.
pub async fn run_all(store: &dyn SubscriptionStore) {
    run_on_shared_store(store).await;
    check_count(store).await;
}

/// Runs every check of this module that holds while others write to `store` at the same
/// time: all but [`check_count`]. Each check looks only at the subscriptions it made.
///
/// # Panics
/// On the first check the store fails, saying what it got wrong.
pub async fn run_on_shared_store(store: &dyn SubscriptionStore) {
    check_insert_and_get(store).await;
    check_duplicate_insert(store).await;
    check_racing_inserts(store).await;
    check_remove(store).await;
    check_matching(store).await;
    check_matching_templates(store).await;
    check_search_filters(store).await;
    check_search_sort_and_paging(store).await;
    check_concurrent_use(store).await;
}

/// A random host name, so one run's subscriptions are told apart from everything else.
#[derive(Debug)]
struct Namespace {
    host: String,
}

impl Namespace {
    fn new() -> Self {
        Namespace {
            host: format!("t{}.testkit.example", Uuid::new_v4().simple()),
        }
    }

    fn key(
        &self,
        entity: &str,
        action: &str,
        path: &str,
        template: Option<&str>,
    ) -> SubscriptionKey {
        let mut request =
            SubscribeRequest::new(entity, action, format!("https://{}/{path}", self.host));
        request.template_name = template.map(str::to_owned);
        request
            .key()
            .expect("the testkit builds valid subscriptions")
    }

    /// A search restricted to this namespace, plus `extra` members.
    fn search(&self, extra: serde_json::Value) -> SearchRequest {
        let mut request = json!({ "filter": { "endpoint": { "like": self.host } } });
        let (Some(request), Some(extra)) = (request.as_object_mut(), extra.as_object()) else {
            unreachable!("both are JSON objects")
        };
        for (name, value) in extra {
            if name == "filter" {
                let filter = request["filter"].as_object_mut().expect("an object");
                filter.extend(value.as_object().expect("filter is an object").clone());
            } else {
                request.insert(name.clone(), value.clone());
            }
        }
        SearchRequest::from_json(&serde_json::to_vec(request).expect("serialisable"))
            .expect("the testkit builds valid search requests")
    }

    fn owns(&self, subscription: &Subscription) -> bool {
        subscription
            .endpoint()
            .url()
            .host_str()
            .is_some_and(|h| h == self.host)
    }
}

async fn insert_new(store: &dyn SubscriptionStore, key: SubscriptionKey) -> Subscription {
    let subscription = Subscription::new(key);
    store
        .insert(subscription.clone())
        .await
        .unwrap_or_else(|e| panic!("insert of {} failed: {e:?}", subscription.key()));
    subscription
}

async fn remove_all(store: &dyn SubscriptionStore, subscriptions: &[Subscription]) {
    for subscription in subscriptions {
        // Already-removed subscriptions are fine; anything else is a store failure.
        match store.remove(subscription.key()).await {
            Ok(_) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => panic!("cleanup remove of {} failed: {e:?}", subscription.key()),
        }
    }
}

fn pair(entity: EntityType, action: Action) -> EventType {
    EventType::new(entity, action).expect("the testkit uses valid pairs")
}

/// An inserted subscription comes back from `get` equal to what was inserted (id,
/// identity, and creation time to the microsecond); an unknown id is `None`.
pub async fn check_insert_and_get(store: &dyn SubscriptionStore) {
    let ns = Namespace::new();
    let subscription = insert_new(store, ns.key("patient", "_create", "get", Some("adult"))).await;
    let fetched = store
        .get(subscription.id())
        .await
        .expect("get failed")
        .expect("an inserted subscription is found by id");
    assert_eq!(fetched.id(), subscription.id(), "get returned another id");
    assert_eq!(
        fetched.key(),
        subscription.key(),
        "get changed the identity"
    );
    let drift = (fetched.created_at() - subscription.created_at()).abs();
    assert!(
        drift < Duration::milliseconds(1),
        "creation time drifted by {drift}"
    );
    assert!(
        store
            .get(Uuid::new_v4())
            .await
            .expect("get failed")
            .is_none(),
        "an unknown id must give None"
    );
    remove_all(store, &[subscription]).await;
}

/// A second insert of the same identity, even with another id, is `AlreadyExists` and
/// changes nothing; identities differing only by template or endpoint are distinct.
pub async fn check_duplicate_insert(store: &dyn SubscriptionStore) {
    let ns = Namespace::new();
    let first = insert_new(store, ns.key("device", "_update", "dup", None)).await;
    let again = Subscription::new(first.key().clone());
    match store.insert(again.clone()).await {
        Err(StoreError::AlreadyExists { subscription }) => assert_eq!(*subscription, *first.key()),
        other => panic!("a duplicate insert must be AlreadyExists, got {other:?}"),
    }
    assert!(
        store.get(again.id()).await.expect("get failed").is_none(),
        "a rejected duplicate must not be stored"
    );
    let with_template = insert_new(store, ns.key("device", "_update", "dup", Some("pump"))).await;
    let other_endpoint = insert_new(store, ns.key("device", "_update", "dup2", None)).await;
    let other_action = insert_new(store, ns.key("device", "_create", "dup", None)).await;
    remove_all(store, &[first, with_template, other_endpoint, other_action]).await;
}

/// Concurrent inserts of one identity: exactly one succeeds, the rest are `AlreadyExists`.
pub async fn check_racing_inserts(store: &dyn SubscriptionStore) {
    let ns = Namespace::new();
    let key = ns.key("usage-session", "_remoteStart", "race", None);
    let contenders: Vec<Subscription> = (0..16).map(|_| Subscription::new(key.clone())).collect();
    let results = join_all(contenders.iter().map(|s| store.insert(s.clone()))).await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        winners, 1,
        "exactly one racing insert must win: {results:?}"
    );
    for result in &results {
        assert!(
            matches!(result, Ok(()) | Err(StoreError::AlreadyExists { .. })),
            "a losing insert must be AlreadyExists, got {result:?}"
        );
    }
    let found = store
        .matching(key.event_type(), None)
        .await
        .expect("matching failed");
    let ours = found.iter().filter(|s| s.key() == &key).count();
    assert_eq!(ours, 1, "the race must leave one subscription");
    remove_all(store, &contenders).await;
}

/// `remove` returns the removed subscription, after which it is gone; removing it again
/// (or anything never inserted) is `NotFound`.
pub async fn check_remove(store: &dyn SubscriptionStore) {
    let ns = Namespace::new();
    let subscription = insert_new(store, ns.key("caregiver", "_login", "rm", Some("nurse"))).await;
    let removed = store
        .remove(subscription.key())
        .await
        .expect("remove of a stored subscription failed");
    assert_eq!(
        removed.id(),
        subscription.id(),
        "remove returned another subscription"
    );
    assert!(store
        .get(subscription.id())
        .await
        .expect("get failed")
        .is_none());
    match store.remove(subscription.key()).await {
        Err(StoreError::NotFound { subscription: key }) => assert_eq!(*key, *subscription.key()),
        other => panic!("removing twice must be NotFound, got {other:?}"),
    }
    // Same pair and endpoint but no template is another identity: not found either.
    let untemplated = ns.key("caregiver", "_login", "rm", None);
    assert!(matches!(
        store.remove(&untemplated).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// `matching` returns the subscriptions of exactly the event's pair, none of other pairs.
pub async fn check_matching(store: &dyn SubscriptionStore) {
    let ns = Namespace::new();
    let wanted = pair(EntityType::Device, Action::RevokeCertificate);
    let mut inserted = Vec::new();
    for path in ["a", "b", "c"] {
        inserted.push(insert_new(store, ns.key("device", "_revokeCertificate", path, None)).await);
    }
    // Same entity other action, same action other entity.
    inserted.push(insert_new(store, ns.key("device", "_activateCertificate", "a", None)).await);
    inserted.push(insert_new(store, ns.key("patient", "_update", "a", None)).await);

    let found = ours(
        &ns,
        store.matching(wanted, None).await.expect("matching failed"),
    );
    let expected: BTreeSet<String> = ["a", "b", "c"]
        .iter()
        .map(|p| format!("https://{}/{p}", ns.host))
        .collect();
    assert_eq!(
        found, expected,
        "matching({wanted}) returned the wrong endpoints"
    );
    remove_all(store, &inserted).await;
    let after = ours(
        &ns,
        store.matching(wanted, None).await.expect("matching failed"),
    );
    assert!(
        after.is_empty(),
        "removed subscriptions still match: {after:?}"
    );
}

/// Templates: a subscription with a template matches only events of that template; one
/// without matches every template, and events whose entity has no template.
pub async fn check_matching_templates(store: &dyn SubscriptionStore) {
    let ns = Namespace::new();
    let event = pair(EntityType::Patient, Action::Create);
    let inserted = vec![
        insert_new(store, ns.key("patient", "_create", "all", None)).await,
        insert_new(
            store,
            ns.key("patient", "_create", "adult", Some("adultPatient")),
        )
        .await,
        insert_new(
            store,
            ns.key("patient", "_create", "child", Some("childPatient")),
        )
        .await,
        // One endpoint may subscribe both with and without a template.
        insert_new(
            store,
            ns.key("patient", "_create", "all", Some("adultPatient")),
        )
        .await,
    ];
    let endpoint = |path: &str| format!("https://{}/{path}", ns.host);
    let count = |found: &[Arc<Subscription>], path: &str| {
        found
            .iter()
            .filter(|s| s.endpoint().as_str() == endpoint(path))
            .count()
    };

    let adult = store
        .matching(event, Some("adultPatient"))
        .await
        .expect("matching failed");
    assert_eq!(
        count(&adult, "all"),
        2,
        "both `all` subscriptions match an adult patient"
    );
    assert_eq!(count(&adult, "adult"), 1);
    assert_eq!(
        count(&adult, "child"),
        0,
        "a childPatient subscription matched an adultPatient event"
    );

    let other = store
        .matching(event, Some("elderPatient"))
        .await
        .expect("matching failed");
    assert_eq!(
        ours(&ns, other),
        BTreeSet::from([endpoint("all")]),
        "only untemplated subscriptions match an unsubscribed template"
    );

    let none = store.matching(event, None).await.expect("matching failed");
    assert_eq!(
        count(&none, "all"),
        1,
        "an entity without template reaches untemplated subscriptions only"
    );
    assert_eq!(count(&none, "adult") + count(&none, "child"), 0);

    let case = store
        .matching(event, Some("AdultPatient"))
        .await
        .expect("matching failed");
    assert_eq!(
        count(&case, "adult"),
        0,
        "template names are case-sensitive"
    );
    remove_all(store, &inserted).await;
}

/// Search filters: every operator on every field, AND-combined, with the total.
pub async fn check_search_filters(store: &dyn SubscriptionStore) {
    let ns = Namespace::new();
    let inserted = vec![
        insert_new(store, ns.key("patient", "_create", "one", Some("adult"))).await,
        insert_new(store, ns.key("patient", "_update", "two", None)).await,
        insert_new(store, ns.key("device", "_create", "three", Some("pump"))).await,
        insert_new(store, ns.key("device", "_delete", "four", None)).await,
    ];
    let paths = |page: Page<Subscription>| -> BTreeSet<String> {
        page.data
            .iter()
            .map(|s| s.endpoint().url().path().trim_start_matches('/').to_owned())
            .collect()
    };
    let cases: Vec<(serde_json::Value, &[&str])> = vec![
        (json!({}), &["one", "two", "three", "four"]),
        (
            json!({"filter": {"entityTypeName": {"eq": "patient"}}}),
            &["one", "two"],
        ),
        (
            json!({"filter": {"entityTypeName": {"not": "patient"}}}),
            &["three", "four"],
        ),
        (
            json!({"filter": {"actionName": {"eq": "_create"}}}),
            &["one", "three"],
        ),
        (
            json!({"filter": {"actionName": {"eq": "create"}}}),
            &["one", "three"],
        ),
        (
            json!({"filter": {"actionName": {"in": ["_update", "_delete"]}}}),
            &["two", "four"],
        ),
        (
            json!({"filter": {"actionName": {"notIn": ["_update", "_delete"]}}}),
            &["one", "three"],
        ),
        (
            json!({"filter": {"templateName": {"isNull": true}}}),
            &["two", "four"],
        ),
        (
            json!({"filter": {"templateName": {"isNotNull": true}}}),
            &["one", "three"],
        ),
        (
            json!({"filter": {"templateName": {"eq": "pump"}}}),
            &["three"],
        ),
        (
            json!({"filter": {"id": {"eq": inserted[1].id().to_string()}}}),
            &["two"],
        ),
        (
            json!({"filter": {"endpoint": {"eq": format!("https://{}/four", ns.host)}}}),
            &["four"],
        ),
        (
            json!({"filter": {"entityTypeName": {"eq": "device"}, "templateName": {"isNull": true}}}),
            &["four"],
        ),
        (json!({"freeTextSearch": "pump adult"}), &["one", "three"]),
    ];
    for (extra, expected) in cases {
        let page = store
            .search(&ns.search(extra.clone()))
            .await
            .expect("search failed");
        let total = page.total_results;
        let found = paths(page);
        let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(
            found, expected,
            "search {extra} returned the wrong subscriptions"
        );
        assert_eq!(
            total,
            expected.len() as u64,
            "search {extra} reported the wrong total"
        );
    }
    remove_all(store, &inserted).await;
}

/// Search order and pages: newest first by default, `sort` by entity type and action in
/// both directions, pages of `limit` from page 0 with the total on every page.
pub async fn check_search_sort_and_paging(store: &dyn SubscriptionStore) {
    let ns = Namespace::new();
    let base = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("valid")
        - Duration::hours(1);
    let spec = [
        ("patient", "_create"),
        ("device", "_update"),
        ("command", "_start"),
        ("organization", "_delete"),
        ("caregiver", "_login"),
    ];
    let mut inserted = Vec::new();
    for (i, (entity, action)) in spec.iter().enumerate() {
        let key = ns.key(entity, action, &format!("s{i}"), None);
        // Distinct creation times, one minute apart, oldest first.
        let subscription =
            Subscription::from_parts(Uuid::new_v4(), key, base + Duration::minutes(i as i64));
        store
            .insert(subscription.clone())
            .await
            .expect("insert failed");
        inserted.push(subscription);
    }
    let order = |page: &Page<Subscription>| -> Vec<String> {
        page.data
            .iter()
            .map(|s| s.event_type().entity_type().to_string())
            .collect()
    };

    let newest_first = store
        .search(&ns.search(json!({})))
        .await
        .expect("search failed");
    assert_eq!(
        order(&newest_first),
        ["caregiver", "organization", "command", "device", "patient"],
        "without sort, results must be newest first"
    );

    let ascending = store
        .search(&ns.search(json!({"sort": [{"prop": "entityTypeName", "order": "ASC"}]})))
        .await
        .expect("search failed");
    assert_eq!(
        order(&ascending),
        ["caregiver", "command", "device", "organization", "patient"]
    );
    let descending = store
        .search(&ns.search(json!({"sort": [{"prop": "entityTypeName"}]})))
        .await
        .expect("search failed");
    assert_eq!(
        order(&descending),
        ["patient", "organization", "device", "command", "caregiver"],
        "sort order defaults to DESC"
    );
    let by_action = store
        .search(&ns.search(json!({"sort": [{"prop": "actionName", "order": "ASC"}]})))
        .await
        .expect("search failed");
    let actions: Vec<String> = by_action
        .data
        .iter()
        .map(|s| s.event_type().action().to_string())
        .collect();
    assert_eq!(
        actions,
        ["_create", "_delete", "_login", "_start", "_update"]
    );

    let mut seen = Vec::new();
    for page in 0..3 {
        let result = store
            .search(&ns.search(json!({"limit": 2, "page": page})))
            .await
            .expect("search failed");
        assert_eq!(result.total_results, 5, "every page carries the total");
        assert_eq!(result.page, page, "the page number is echoed");
        assert_eq!(result.limit, 2, "the limit is echoed");
        assert_eq!(
            result.data.len(),
            if page < 2 { 2 } else { 1 },
            "page {page} size"
        );
        seen.extend(order(&result));
    }
    assert_eq!(
        seen,
        order(&newest_first),
        "pages must partition the newest-first order"
    );
    let beyond = store
        .search(&ns.search(json!({"limit": 2, "page": 7})))
        .await
        .expect("search failed");
    assert!(beyond.data.is_empty(), "a page past the end is empty");
    assert_eq!(beyond.total_results, 5);
    remove_all(store, &inserted).await;
}

/// `count` follows inserts and removes exactly: it rises and falls by what the check
/// inserts and removes, and a rejected duplicate is not counted.
///
/// Other data in the store is fine (the check measures changes from the count it
/// finds), but another writer during the check is not: it would change the count too.
/// [`run_all`] runs this check; [`run_on_shared_store`] leaves it out.
pub async fn check_count(store: &dyn SubscriptionStore) {
    let ns = Namespace::new();
    let before = store.count().await.expect("count failed");
    let mut inserted = Vec::new();
    for i in 0..5 {
        inserted.push(
            insert_new(
                store,
                ns.key("registration-code", "_create", &format!("c{i}"), None),
            )
            .await,
        );
    }
    assert_eq!(store.count().await.expect("count failed"), before + 5);
    let _ = store
        .insert(Subscription::new(inserted[0].key().clone()))
        .await;
    assert_eq!(
        store.count().await.expect("count failed"),
        before + 5,
        "a rejected duplicate must not be counted"
    );
    remove_all(store, &inserted[..2]).await;
    assert_eq!(store.count().await.expect("count failed"), before + 3);
    remove_all(store, &inserted).await;
    assert_eq!(store.count().await.expect("count failed"), before);
}

/// Many concurrent inserts, matches and removes on overlapping identities leave the
/// store consistent: every identity ends up stored at most once, and a final state that
/// agrees between `matching`, `get` and `search`.
pub async fn check_concurrent_use(store: &dyn SubscriptionStore) {
    let ns = Namespace::new();
    let event = pair(EntityType::PatientAlert, Action::Create);
    let keys: Vec<SubscriptionKey> = (0..8)
        .map(|i| ns.key("patient-alert", "_create", &format!("k{i}"), None))
        .collect();
    // Each identity: inserted by three contenders, then removed once.
    let inserts = keys
        .iter()
        .flat_map(|k| (0..3).map(move |_| Subscription::new(k.clone())))
        .map(|s| async move { store.insert(s).await });
    let lookups = (0..8).map(|_| async { store.matching(event, None).await.map(|_| ()) });
    let (inserted, looked_up) =
        futures_util::future::join(join_all(inserts), join_all(lookups)).await;
    assert!(
        looked_up.iter().all(Result::is_ok),
        "matching failed under load"
    );
    let wins = inserted.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        wins,
        keys.len(),
        "each identity must be inserted exactly once"
    );

    let found = store.matching(event, None).await.expect("matching failed");
    assert_eq!(ours(&ns, found).len(), keys.len());

    let removals = join_all(keys.iter().map(|k| store.remove(k))).await;
    assert!(
        removals.iter().all(Result::is_ok),
        "removal failed: {removals:?}"
    );
    let left = store
        .search(&ns.search(json!({})))
        .await
        .expect("search failed");
    assert_eq!(
        left.total_results, 0,
        "removed subscriptions are still found by search"
    );
}

fn ours(ns: &Namespace, found: Vec<Arc<Subscription>>) -> BTreeSet<String> {
    found
        .into_iter()
        .filter(|s| ns.owns(s))
        .map(|s| s.endpoint().as_str().to_owned())
        .collect()
}
