//! Configuration: builders take plain values and refuse bad ones at `build` with a
//! clear error; the endpoint policy is given once; typed entry points.

use std::sync::Arc;

use biot_notifications::dispatcher::DispatcherBuildError;
use biot_notifications::notifier::{DiscardingNotifier, Notifier};
use biot_notifications::store::SubscriptionStore;
use biot_notifications::{
    Action, Dispatcher, Endpoint, EndpointPolicy, EntityType, EventType, InMemoryStore,
    SubscribeRequest, SubscriptionKey, TemplateName,
};

fn patient_created() -> EventType {
    EventType::new(EntityType::Patient, Action::Create).unwrap()
}

#[test]
fn a_zero_max_in_flight_is_refused_by_name() {
    let err = Dispatcher::builder(InMemoryStore::new(), DiscardingNotifier)
        .max_in_flight(0)
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        DispatcherBuildError::Zero {
            option: "max_in_flight"
        }
    ));
    assert_eq!(
        err.to_string(),
        "the dispatcher option `max_in_flight` must be greater than zero"
    );
}

#[test]
fn a_notifier_without_a_policy_leaves_the_dispatchers_in_force() {
    let policy = EndpointPolicy::default().allow_host("hooks.internal.example");
    let dispatcher = Dispatcher::builder(InMemoryStore::new(), DiscardingNotifier)
        .endpoint_policy(policy.clone())
        .build()
        .unwrap();
    assert_eq!(dispatcher.endpoint_policy(), &policy);
    // And with no policy anywhere, the strict default.
    let dispatcher = Dispatcher::new(InMemoryStore::new(), DiscardingNotifier);
    assert_eq!(dispatcher.endpoint_policy(), &EndpointPolicy::default());
}

#[test]
fn a_shared_store_is_passed_as_it_is() {
    let store: Arc<dyn SubscriptionStore> = Arc::new(InMemoryStore::new());
    let notifier: Arc<dyn Notifier> = Arc::new(DiscardingNotifier);
    let dispatcher = Dispatcher::new(Arc::clone(&store), Arc::clone(&notifier));
    // Not wrapped in a second `Arc`: the dispatcher holds the host's own.
    assert!(Arc::ptr_eq(dispatcher.store(), &store));
    assert!(Arc::ptr_eq(dispatcher.notifier(), &notifier));
}

#[tokio::test]
async fn typed_subscriptions_need_no_strings_and_are_held_to_the_policy() {
    let store = InMemoryStore::new();
    let dispatcher = Dispatcher::new(store.clone(), DiscardingNotifier);
    let key = SubscriptionKey::new(
        patient_created(),
        Endpoint::parse("https://plugin.example.com/hook").unwrap(),
        Some(TemplateName::new("adultPatient").unwrap()),
    );
    let subscription = dispatcher.subscribe_key(key.clone()).await.unwrap();
    assert_eq!(subscription.key(), &key);
    assert_eq!(store.count().await.unwrap(), 1);

    // The same identity through the wire entry point is the same subscription.
    let wire = SubscribeRequest::new("patient", "_create", "https://plugin.example.com/hook")
        .with_template("adultPatient");
    assert_eq!(
        dispatcher.subscribe(&wire).await.unwrap_err().code(),
        "SUBSCRIPTION_ALREADY_EXISTS"
    );

    // A well-formed endpoint the strict policy refuses is refused as at the wire.
    for refused in ["http://plugin.example.com/hook", "https://127.0.0.1/hook"] {
        let key = SubscriptionKey::new(patient_created(), Endpoint::parse(refused).unwrap(), None);
        let err = dispatcher.subscribe_key(key).await.unwrap_err();
        assert_eq!(err.code(), "INVALID_ENDPOINT", "{refused}");
    }
    assert_eq!(store.count().await.unwrap(), 1);

    let removed = dispatcher.unsubscribe_key(&key).await.unwrap();
    assert_eq!(removed.id(), subscription.id());
    assert_eq!(
        dispatcher.unsubscribe_key(&key).await.unwrap_err().code(),
        "SUBSCRIBER_NOT_FOUND"
    );
}

#[cfg(feature = "http-notifier")]
mod http_notifier {
    use std::time::Duration;

    use biot_notifications::notifier::http_notifier::HttpNotifierBuildError;
    use biot_notifications::HttpNotifier;

    use super::*;

    #[tokio::test]
    async fn the_dispatcher_takes_the_notifiers_policy() {
        let policy = EndpointPolicy::local_development();
        let notifier = HttpNotifier::builder()
            .endpoint_policy(policy.clone())
            .build()
            .unwrap();
        let dispatcher = Dispatcher::new(InMemoryStore::new(), notifier);
        assert_eq!(dispatcher.endpoint_policy(), &policy);
        // So a loopback plugin, which this policy allows at delivery, is accepted here.
        dispatcher
            .subscribe(&SubscribeRequest::new(
                "patient",
                "_create",
                "http://127.0.0.1:9/hook",
            ))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_dispatcher_and_its_notifier_cannot_disagree_on_the_policy() {
        let notifier = HttpNotifier::new().unwrap(); // strict
        let err = Dispatcher::builder(InMemoryStore::new(), notifier.clone())
            .endpoint_policy(EndpointPolicy::local_development())
            .build()
            .unwrap_err();
        assert!(matches!(
            err,
            DispatcherBuildError::ConflictingEndpointPolicy { .. }
        ));
        assert!(err
            .to_string()
            .contains("give the policy once, to the notifier"));

        // Also through a shared trait object.
        let shared: Arc<dyn Notifier> = Arc::new(notifier.clone());
        assert!(Dispatcher::builder(InMemoryStore::new(), shared)
            .endpoint_policy(EndpointPolicy::local_development())
            .build()
            .is_err());

        // The same policy given to both is no disagreement; hosts allowed in another
        // order are the same policy.
        let notifier = HttpNotifier::builder()
            .endpoint_policy(
                EndpointPolicy::default()
                    .allow_host("a.example")
                    .allow_host("b.example"),
            )
            .build()
            .unwrap();
        Dispatcher::builder(InMemoryStore::new(), notifier)
            .endpoint_policy(
                EndpointPolicy::default()
                    .allow_host("b.example")
                    .allow_host("a.example"),
            )
            .build()
            .unwrap();
    }

    #[tokio::test]
    async fn zero_timeouts_are_refused_by_name() {
        for (builder, option) in [
            (HttpNotifier::builder().timeout(Duration::ZERO), "timeout"),
            (
                HttpNotifier::builder().connect_timeout(Duration::ZERO),
                "connect_timeout",
            ),
        ] {
            match builder.build() {
                Err(HttpNotifierBuildError::Zero { option: named }) => assert_eq!(named, option),
                other => panic!("{option}: {other:?}"),
            }
        }
    }
}
