//! Dispatch: fan-out to exactly the matching endpoints, failures and panics isolated,
//! the concurrency cap honoured, the token in every notification.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use biot_notifications::dispatcher::DeliveryOutcome;
use biot_notifications::notification::{Event, PreparedNotification};
use biot_notifications::notifier::{DeliveryError, Notifier};
use biot_notifications::store::{InMemoryStore, SubscriptionStore};
use biot_notifications::{
    Action, BoxError, Dispatcher, Endpoint, EntityType, Error, EventType, SubscribeRequest,
    TokenProvider,
};
use serde_json::json;

mod common;
use common::{assert_clone, assert_send, assert_send_sync, RecordingNotifier};

async fn subscribe(
    dispatcher: &Dispatcher,
    entity: &str,
    action: &str,
    endpoint: &str,
    template: Option<&str>,
) {
    let mut request = SubscribeRequest::new(entity, action, endpoint);
    request.template_name = template.map(str::to_owned);
    dispatcher.subscribe(&request).await.unwrap();
}

fn patient_created(template: Option<&str>) -> Event {
    let mut entity = json!({"_id": "8f6b1c62-3d7e-4f0a-9a51-0c2f2f3b7d10", "_name": "Ada"});
    if let Some(template) = template {
        entity["_template"] = json!({"name": template, "displayName": template});
    }
    Event::new(
        EventType::new(EntityType::Patient, Action::Create).unwrap(),
        entity,
    )
}

fn dispatcher_with(notifier: Arc<RecordingNotifier>) -> Dispatcher {
    Dispatcher::builder(InMemoryStore::new(), notifier)
        .build()
        .unwrap()
}

#[tokio::test]
async fn fans_out_to_exactly_the_matching_endpoints_with_and_without_templates() {
    let notifier = Arc::new(RecordingNotifier::default());
    let dispatcher = dispatcher_with(notifier.clone());
    subscribe(
        &dispatcher,
        "patient",
        "_create",
        "https://all.example.com/",
        None,
    )
    .await;
    subscribe(
        &dispatcher,
        "patient",
        "_create",
        "https://adult.example.com/",
        Some("adult"),
    )
    .await;
    subscribe(
        &dispatcher,
        "patient",
        "_create",
        "https://child.example.com/",
        Some("child"),
    )
    .await;
    subscribe(
        &dispatcher,
        "patient",
        "_update",
        "https://updates.example.com/",
        None,
    )
    .await;
    subscribe(
        &dispatcher,
        "device",
        "_create",
        "https://devices.example.com/",
        None,
    )
    .await;

    let report = dispatcher
        .dispatch(&patient_created(Some("adult")))
        .await
        .unwrap();
    assert_eq!(report.matched(), 2);
    assert_eq!(report.delivered(), 2);
    assert_eq!(
        notifier.endpoints(),
        BTreeSet::from([
            "https://all.example.com/".to_owned(),
            "https://adult.example.com/".to_owned()
        ])
    );

    notifier.clear();
    let report = dispatcher.dispatch(&patient_created(None)).await.unwrap();
    assert_eq!(
        report.matched(),
        1,
        "an entity without template reaches untemplated subscriptions only"
    );
    assert_eq!(
        notifier.endpoints(),
        BTreeSet::from(["https://all.example.com/".to_owned()])
    );

    notifier.clear();
    let report = dispatcher
        .dispatch(&patient_created(Some("adult")).with_template_name("child"))
        .await
        .unwrap();
    assert_eq!(
        report.matched(),
        2,
        "an explicit template name wins over the entity's"
    );
    assert!(notifier.endpoints().contains("https://child.example.com/"));
}

#[tokio::test]
async fn nothing_is_sent_for_an_event_nobody_subscribed_to() {
    let notifier = Arc::new(RecordingNotifier::default());
    let dispatcher = dispatcher_with(notifier.clone());
    subscribe(
        &dispatcher,
        "patient",
        "_create",
        "https://all.example.com/",
        None,
    )
    .await;
    let event = Event::new(
        EventType::new(EntityType::Patient, Action::Delete).unwrap(),
        json!({}),
    );
    let report = dispatcher.dispatch(&event).await.unwrap();
    assert_eq!(report.matched(), 0);
    assert!(notifier.endpoints().is_empty());
}

#[tokio::test]
async fn failing_and_panicking_notifiers_do_not_stop_the_healthy_ones() {
    let notifier = Arc::new(RecordingNotifier::default());
    let dispatcher = dispatcher_with(notifier.clone());
    for endpoint in [
        "https://a.example.com/ok",
        "https://b.example.com/fail",
        "https://c.example.com/panic",
        "https://d.example.com/ok",
    ] {
        subscribe(&dispatcher, "patient", "_create", endpoint, None).await;
    }
    let report = dispatcher.dispatch(&patient_created(None)).await.unwrap();
    assert_eq!(report.matched(), 4);
    assert_eq!(report.delivered(), 2);
    assert_eq!(
        notifier.endpoints(),
        BTreeSet::from([
            "https://a.example.com/ok".to_owned(),
            "https://d.example.com/ok".to_owned()
        ])
    );
    for failure in report.failures() {
        match (
            failure.subscription().endpoint().as_str(),
            failure.outcome(),
        ) {
            (
                "https://b.example.com/fail",
                DeliveryOutcome::Failed(DeliveryError::Status { status }),
            ) => {
                assert_eq!(*status, http::StatusCode::BAD_GATEWAY)
            }
            ("https://c.example.com/panic", DeliveryOutcome::Panicked(message)) => {
                assert_eq!(message, "plugin client exploded")
            }
            other => panic!("unexpected failure {other:?}"),
        }
    }
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["matched"], 4);
    assert_eq!(json["delivered"], 2);
    assert_eq!(json["failed"], 2);
    assert_eq!(json["entityTypeName"], "patient");
    assert_eq!(json["actionName"], "_create");
    // The dispatcher keeps working after a panic.
    let again = dispatcher.dispatch(&patient_created(None)).await.unwrap();
    assert_eq!(again.delivered(), 2);
}

#[tokio::test]
async fn a_hanging_plugin_does_not_hold_up_the_others_and_the_host_can_bound_it() {
    let notifier = Arc::new(RecordingNotifier::default());
    let dispatcher = dispatcher_with(notifier.clone());
    subscribe(
        &dispatcher,
        "patient",
        "_create",
        "https://a.example.com/hang",
        None,
    )
    .await;
    subscribe(
        &dispatcher,
        "patient",
        "_create",
        "https://b.example.com/ok",
        None,
    )
    .await;
    let result = tokio::time::timeout(
        Duration::from_millis(200),
        dispatcher.dispatch(&patient_created(None)),
    )
    .await;
    assert!(
        result.is_err(),
        "the dispatch waits for the hanging plugin until the host's timeout"
    );
    assert_eq!(
        notifier.endpoints(),
        BTreeSet::from(["https://b.example.com/ok".to_owned()])
    );
}

#[tokio::test]
async fn the_concurrency_cap_is_honoured() {
    let notifier = Arc::new(RecordingNotifier::slowed_by(Duration::from_millis(5)));
    let dispatcher = Dispatcher::builder(InMemoryStore::new(), notifier.clone())
        .max_in_flight(3)
        .build()
        .unwrap();
    for i in 0..20 {
        subscribe(
            &dispatcher,
            "patient",
            "_create",
            &format!("https://p{i}.example.com/"),
            None,
        )
        .await;
    }
    let report = dispatcher.dispatch(&patient_created(None)).await.unwrap();
    assert_eq!(report.delivered(), 20);
    assert_eq!(
        notifier.max_in_flight(),
        3,
        "at most 3 at once, and the cap is used"
    );
}

#[derive(Debug)]
struct CountingToken(AtomicUsize);

#[async_trait]
impl TokenProvider for CountingToken {
    async fn token(&self, event: &Event) -> Result<String, BoxError> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        Ok(format!("token-{n}-{}", event.event_type()))
    }
}

#[tokio::test]
async fn the_token_is_in_every_notification_and_fetched_once_per_event() {
    let notifier = Arc::new(RecordingNotifier::default());
    let tokens = Arc::new(CountingToken(AtomicUsize::new(0)));
    let dispatcher = Dispatcher::builder(InMemoryStore::new(), notifier.clone())
        .token_provider(tokens.clone())
        .build()
        .unwrap();
    for i in 0..5 {
        subscribe(
            &dispatcher,
            "patient",
            "_create",
            &format!("https://p{i}.example.com/"),
            None,
        )
        .await;
    }
    dispatcher.dispatch(&patient_created(None)).await.unwrap();
    let received = notifier.received();
    assert_eq!(received.len(), 5);
    for delivery in received.iter() {
        assert_eq!(
            delivery.notification.jwt.as_deref(),
            Some("token-0-patient/_create")
        );
        let json: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(json["jwt"], "token-0-patient/_create");
        assert_eq!(json["metadata"]["entityTypeName"], "patient");
        assert_eq!(json["metadata"]["actionName"], "_create");
    }
    assert_eq!(tokens.0.load(Ordering::SeqCst), 1, "one token per event");
}

#[derive(Debug)]
struct FailingToken;

#[async_trait]
impl TokenProvider for FailingToken {
    async fn token(&self, _: &Event) -> Result<String, BoxError> {
        Err("issuer unreachable".into())
    }
}

#[tokio::test]
async fn a_failing_token_provider_fails_the_dispatch_before_sending() {
    let notifier = Arc::new(RecordingNotifier::default());
    let dispatcher = Dispatcher::builder(InMemoryStore::new(), notifier.clone())
        .token_provider(FailingToken)
        .build()
        .unwrap();
    subscribe(
        &dispatcher,
        "patient",
        "_create",
        "https://a.example.com/",
        None,
    )
    .await;
    let err = dispatcher
        .dispatch(&patient_created(None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TokenProvider { .. }));
    assert_eq!(err.code(), "INTERNAL_SERVER_ERROR");
    assert!(notifier.endpoints().is_empty());
}

#[tokio::test]
async fn the_body_is_serialised_once_and_shared_by_every_delivery() {
    #[derive(Debug, Default)]
    struct BodyPointers(Mutex<BTreeSet<usize>>);

    #[async_trait]
    impl Notifier for BodyPointers {
        async fn notify(
            &self,
            _: &Endpoint,
            notification: &PreparedNotification,
        ) -> Result<(), DeliveryError> {
            self.0
                .lock()
                .unwrap()
                .insert(notification.body().as_ptr() as usize);
            Ok(())
        }
    }

    let notifier = Arc::new(BodyPointers::default());
    let dispatcher = Dispatcher::builder(InMemoryStore::new(), notifier.clone())
        .build()
        .unwrap();
    for i in 0..10 {
        subscribe(
            &dispatcher,
            "patient",
            "_create",
            &format!("https://p{i}.example.com/"),
            None,
        )
        .await;
    }
    dispatcher.dispatch(&patient_created(None)).await.unwrap();
    assert_eq!(
        notifier.0.lock().unwrap().len(),
        1,
        "all deliveries share one body"
    );
}

#[tokio::test]
async fn subscribe_and_unsubscribe_go_through_validation_and_the_store() {
    let store = InMemoryStore::new();
    let dispatcher = Dispatcher::new(store.clone(), RecordingNotifier::default());
    let request = SubscribeRequest::new(
        "device",
        "revokeCertificate",
        "https://Plugin.Example.com:443/certs",
    );
    let subscription = dispatcher.subscribe(&request).await.unwrap();
    assert_eq!(
        subscription.endpoint().as_str(),
        "https://plugin.example.com/certs"
    );
    assert_eq!(store.count().await.unwrap(), 1);

    let err = dispatcher.subscribe(&request).await.unwrap_err();
    assert_eq!(err.code(), "SUBSCRIPTION_ALREADY_EXISTS");
    assert_eq!(err.status(), http::StatusCode::CONFLICT);

    let err = dispatcher
        .subscribe(&SubscribeRequest::new(
            "device",
            "_create",
            "https://10.0.0.7/",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ENDPOINT");
    assert_eq!(store.count().await.unwrap(), 1);

    let removed = dispatcher
        .unsubscribe(&SubscribeRequest::new(
            "device",
            "_revokeCertificate",
            "https://plugin.example.com/certs",
        ))
        .await
        .unwrap();
    assert_eq!(removed.id(), subscription.id());
    let err = dispatcher.unsubscribe(&request).await.unwrap_err();
    assert_eq!(err.code(), "SUBSCRIBER_NOT_FOUND");
    assert_eq!(
        err.details()["endpoint"],
        "https://plugin.example.com/certs"
    );
    assert_eq!(store.count().await.unwrap(), 0);
}

#[test]
fn dispatch_futures_are_send_so_a_host_can_spawn_them() {
    let dispatcher = Dispatcher::new(InMemoryStore::new(), RecordingNotifier::default());
    let event = patient_created(None);
    assert_send(&dispatcher.dispatch(&event));
    assert_send(&dispatcher.subscribe(&SubscribeRequest::new("a", "b", "c")));
    assert_send_sync::<Dispatcher>();
    assert_send_sync::<InMemoryStore>();
    assert_clone::<Dispatcher>();
    assert_clone::<InMemoryStore>();
}

#[tokio::test]
async fn a_spawned_dispatch_runs_to_completion_on_its_own() {
    let notifier = Arc::new(RecordingNotifier::default());
    let dispatcher = dispatcher_with(notifier.clone());
    subscribe(
        &dispatcher,
        "patient",
        "_create",
        "https://a.example.com/",
        None,
    )
    .await;
    let handle = tokio::spawn({
        let dispatcher = dispatcher.clone();
        async move { dispatcher.dispatch(&patient_created(None)).await }
    });
    let report = handle.await.unwrap().unwrap();
    assert_eq!(report.delivered(), 1);
    assert_eq!(dispatcher.store().count().await.unwrap(), 1);
}
