//! End to end on loopback (features `jwt`, `axum`, `http-notifier`): a dispatcher whose
//! notifications carry a token from the signing provider, delivered over HTTP by the
//! HTTP notifier to plugins built with the plugin kit's axum extractor. The plugin that
//! holds the platform's public key verifies every notification; one holding another
//! key refuses them all.
//!
//! Keys: `tests/fixtures/keys/`, generated for the tests only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{FromRef, State};
use axum::routing::post;
use biot_notifications::token::{
    NotificationVerifier, PublicKey, SigningKey, SigningTokenProvider, TokenVerifier,
    VerifiedNotification, ACTION_NOTIFICATION,
};
use biot_notifications::{
    Action, Dispatcher, EndpointPolicy, EntityType, Event, EventType, HttpNotifier, InMemoryStore,
    SubscribeRequest,
};
use serde_json::json;

const PLATFORM_PRIVATE: &str = include_str!("fixtures/keys/test-only-a.private.pem");
const PLATFORM_PUBLIC_BARE: &str = include_str!("fixtures/keys/test-only-a.public.base64");
const OTHER_PUBLIC: &str = include_str!("fixtures/keys/test-only-b.public.pem");

#[derive(Clone)]
struct Plugin {
    verifier: NotificationVerifier,
    received: Arc<Mutex<Vec<VerifiedNotification>>>,
}

impl FromRef<Plugin> for NotificationVerifier {
    fn from_ref(plugin: &Plugin) -> NotificationVerifier {
        plugin.verifier.clone()
    }
}

async fn on_notification(State(plugin): State<Plugin>, verified: VerifiedNotification) {
    plugin.received.lock().unwrap().push(verified);
}

/// A plugin that trusts `public_key`, on an ephemeral loopback port: its hook's URL and
/// what it accepted.
async fn plugin(public_key: &str) -> (String, Arc<Mutex<Vec<VerifiedNotification>>>) {
    let received = Arc::default();
    let state = Plugin {
        verifier: NotificationVerifier::new(TokenVerifier::new(
            PublicKey::from_pem_or_base64(public_key).unwrap(),
        )),
        received: Arc::clone(&received),
    };
    let app = axum::Router::new()
        .route("/notification", post(on_notification))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/notification", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (hook, received)
}

fn signing_dispatcher() -> Dispatcher {
    let notifier = HttpNotifier::builder()
        .endpoint_policy(EndpointPolicy::local_development())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let provider = SigningTokenProvider::new(SigningKey::from_pem(PLATFORM_PRIVATE).unwrap());
    Dispatcher::builder(InMemoryStore::new(), notifier)
        .token_provider(provider)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platforms_plugin_verifies_every_notification_and_another_refuses_them() {
    let (trusting, accepted) = plugin(PLATFORM_PUBLIC_BARE).await;
    let (mistrusting, refused) = plugin(OTHER_PUBLIC).await;
    let dispatcher = signing_dispatcher();
    for hook in [&trusting, &mistrusting] {
        dispatcher
            .subscribe(&SubscribeRequest::new("patient", "_create", hook.as_str()))
            .await
            .unwrap();
    }

    let events = 5;
    for n in 0..events {
        let event = Event::new(
            EventType::new(EntityType::Patient, Action::Create).unwrap(),
            json!({"_id": format!("p-{n}"), "_template": {"name": "adultPatient"}}),
        );
        let report = dispatcher.dispatch(&event).await.unwrap();
        assert_eq!(report.matched(), 2);
        assert_eq!(report.delivered(), 1, "only the trusting plugin says 2xx");
        let failure = report.failures().next().unwrap();
        assert_eq!(failure.subscription().endpoint().as_str(), mistrusting);
        assert!(
            failure.outcome().to_string().contains("401"),
            "{}",
            failure.outcome()
        );
    }

    let accepted = accepted.lock().unwrap();
    assert_eq!(accepted.len(), events);
    for (n, verified) in accepted.iter().enumerate() {
        assert_eq!(verified.notification.data.entity["_id"], format!("p-{n}"));
        assert!(verified.claims.has_scope(ACTION_NOTIFICATION));
    }
    // One token for all five events: signed once, reused.
    let first = accepted[0].notification.jwt.as_deref();
    assert!(accepted
        .iter()
        .all(|v| v.notification.jwt.as_deref() == first));
    assert!(refused.lock().unwrap().is_empty());
}
