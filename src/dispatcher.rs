//! The [`Dispatcher`]: subscribe, unsubscribe, search, and fan events out to plugins.
//!
//! ```text
//! dispatch: Event --> store.matching(pair, template)
//!                 --> one PreparedNotification (token, body serialised once)
//!                 --> Notifier::notify per endpoint, at most `max_in_flight` at once
//!                 --> DispatchReport (delivered / failed / panicked, per endpoint)
//! ```
//!
//! Delivery is fire-and-forget, as in BioT: a plugin that fails, hangs or panics never
//! affects the others, and nothing is retried. The report says what happened. The
//! futures are `Send`, so a host can spawn a dispatch and move on; dropping a dispatch
//! future cancels the deliveries it has not finished.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use tracing::Instrument;

use crate::catalog::EventType;
use crate::endpoint::{EndpointPolicy, InvalidEndpoint};
use crate::error::{BoxError, Error};
use crate::notification::{Event, PreparedNotification};
use crate::notifier::{DeliveryError, Notifier};
use crate::search::{Page, SearchRequest};
use crate::store::SubscriptionStore;
use crate::subscription::{SubscribeRequest, Subscription, SubscriptionKey, UnsubscribeRequest};

pub(crate) mod attempt;
mod builder;
pub(crate) mod shared;

pub use builder::{DispatcherBuildError, DispatcherBuilder};

/// How many deliveries of one event run at once unless configured otherwise.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

/// Supplies the `jwt` put in each event's notification: BioT sends a service token
/// with scope `ACTION_NOTIFICATION`, which plugins verify against the platform's key.
///
/// Called once per dispatched event that has at least one subscriber.
#[async_trait]
pub trait TokenProvider: fmt::Debug + Send + Sync + 'static {
    /// The token for the notification of `event`.
    ///
    /// # Errors
    /// Any failure; the dispatch then fails with [`Error::TokenProvider`] before
    /// anything is sent.
    async fn token(&self, event: &Event) -> Result<String, BoxError>;
}

macro_rules! forward_token_provider {
    ($($pointer:ident),+) => {$(
        #[async_trait]
        impl<T: TokenProvider + ?Sized> TokenProvider for $pointer<T> {
            async fn token(&self, event: &Event) -> Result<String, BoxError> {
                (**self).token(event).await
            }
        }
    )+};
}

forward_token_provider!(Arc, Box);

/// The notification dispatcher. Cheap to clone: clones share the store, notifier and options.
///
/// ```
/// # futures_util::FutureExt::now_or_never(async {
/// use biot_notifications::notification::Event;
/// use biot_notifications::notifier::DiscardingNotifier;
/// use biot_notifications::store::InMemoryStore;
/// use biot_notifications::{Action, Dispatcher, EntityType, EventType, SubscribeRequest};
///
/// // A real dispatcher delivers over HTTP (`notifier::http_notifier::HttpNotifier`).
/// let dispatcher = Dispatcher::new(InMemoryStore::new(), DiscardingNotifier);
/// dispatcher
///     .subscribe(&SubscribeRequest::new("patient", "_create", "https://plugin.example.com/hook"))
///     .await?;
///
/// let created = EventType::new(EntityType::Patient, Action::Create)?;
/// let report = dispatcher.dispatch(&Event::new(created, serde_json::json!({"_id": "p-1"}))).await?;
/// assert_eq!(report.delivered(), 1);
/// # Ok::<(), biot_notifications::Error>(())
/// # }).unwrap().unwrap();
/// ```
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn SubscriptionStore>,
    notifier: Arc<dyn Notifier>,
    policy: EndpointPolicy,
    max_in_flight: usize,
    token_provider: Option<Arc<dyn TokenProvider>>,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("store", &self.inner.store)
            .field("notifier", &self.inner.notifier)
            .field("policy", &self.inner.policy)
            .field("max_in_flight", &self.inner.max_in_flight)
            .field("token_provider", &self.inner.token_provider)
            .finish()
    }
}

impl Dispatcher {
    /// A dispatcher with the default options: the notifier's endpoint policy (strict
    /// when it has none), [`DEFAULT_MAX_IN_FLIGHT`] deliveries at once, no token.
    ///
    /// The store and the notifier are taken by value, as by [`builder`](Self::builder):
    /// the store itself (`InMemoryStore::new()`), or, to share one the host also uses,
    /// an `Arc<dyn SubscriptionStore>`, which is kept as it is (not wrapped again); the
    /// same for the notifier.
    ///
    /// Without a token provider, notifications carry no `jwt`, and BioT's plugins
    /// refuse them: building such a dispatcher logs a warning. Give it one with
    /// [`DispatcherBuilder::token_provider`] (feature `jwt`: `token::SigningTokenProvider`).
    pub fn new(store: impl SubscriptionStore, notifier: impl Notifier) -> Self {
        Self::builder(store, notifier)
            .build()
            .expect("the default options are valid and the policy is the notifier's")
    }

    /// A builder for a dispatcher with other options; see [`new`](Self::new) for how the
    /// store and the notifier are passed.
    pub fn builder(store: impl SubscriptionStore, notifier: impl Notifier) -> DispatcherBuilder {
        DispatcherBuilder::new(store, notifier)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SubscriptionStore> {
        &self.inner.store
    }

    /// The notifier deliveries go through.
    pub fn notifier(&self) -> &Arc<dyn Notifier> {
        &self.inner.notifier
    }

    /// The store, to be called through its trait object. Called on the `Arc`, a method
    /// would go through the `Arc`'s own implementation of the trait, an `async_trait`
    /// that boxes a future of its own around the store's: an allocation more per call.
    fn store_object(&self) -> &dyn SubscriptionStore {
        &*self.inner.store
    }

    /// The endpoint policy subscriptions are checked against.
    pub fn endpoint_policy(&self) -> &EndpointPolicy {
        &self.inner.policy
    }

    /// Validates and stores a subscription; returns it with its new id.
    ///
    /// # Errors
    /// [`Error::Validation`] (names, endpoint, template), [`Error::Store`] with
    /// [`StoreError::AlreadyExists`](crate::StoreError::AlreadyExists), or the store's
    /// failure.
    pub async fn subscribe(&self, request: &SubscribeRequest) -> Result<Subscription, Error> {
        self.store_new(|| Ok(request.validate(&self.inner.policy)?))
            .await
    }

    /// Stores a subscription to `key`, already typed (no string round trip); returns it
    /// with its new id.
    ///
    /// The key's endpoint is held to the endpoint policy, as [`subscribe`](Self::subscribe)
    /// holds a request's: a typed [`Endpoint`](crate::Endpoint) is well formed, not
    /// necessarily acceptable to this dispatcher.
    ///
    /// ```
    /// # futures_util::FutureExt::now_or_never(async {
    /// use biot_notifications::notifier::DiscardingNotifier;
    /// use biot_notifications::{Action, Dispatcher, Endpoint, EntityType, EventType, InMemoryStore};
    /// use biot_notifications::{SubscriptionKey, TemplateName};
    ///
    /// let dispatcher = Dispatcher::new(InMemoryStore::new(), DiscardingNotifier);
    /// let key = SubscriptionKey::new(
    ///     EventType::new(EntityType::Patient, Action::Create)?,
    ///     Endpoint::parse("https://plugin.example.com/hook")?,
    ///     Some(TemplateName::new("adultPatient")?),
    /// );
    /// let subscription = dispatcher.subscribe_key(key.clone()).await?;
    /// assert_eq!(subscription.key(), &key);
    /// assert_eq!(dispatcher.unsubscribe_key(&key).await?.id(), subscription.id());
    ///
    /// // Still held to the (strict) policy.
    /// let internal = SubscriptionKey::new(key.event_type(), Endpoint::parse("http://10.0.0.7/")?, None);
    /// assert_eq!(dispatcher.subscribe_key(internal).await.unwrap_err().code(), "INVALID_ENDPOINT");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap().unwrap();
    /// ```
    ///
    /// # Errors
    /// [`Error::Validation`] when the policy refuses the endpoint, [`Error::Store`] with
    /// [`StoreError::AlreadyExists`](crate::StoreError::AlreadyExists), or the store's
    /// failure.
    pub async fn subscribe_key(&self, key: SubscriptionKey) -> Result<Subscription, Error> {
        self.store_new(|| {
            self.inner
                .policy
                .check(key.endpoint())
                .map_err(|reason| InvalidEndpoint::new(key.endpoint().as_str(), reason))?;
            Ok(key)
        })
        .await
    }

    /// Stores a subscription to the key `checked` gives, when it gives one.
    async fn store_new(
        &self,
        checked: impl FnOnce() -> Result<SubscriptionKey, Error>,
    ) -> Result<Subscription, Error> {
        async {
            let result = async {
                let subscription = Subscription::new(checked()?);
                self.store_object().insert(subscription.clone()).await?;
                Ok(subscription)
            }
            .await;
            trace_outcome("subscribe", &result, |subscription| {
                tracing::info!(id = %subscription.id(), subscription = %subscription.key(), "subscribed");
            });
            result
        }
        .instrument(tracing::info_span!("subscribe"))
        .await
    }

    /// Removes the subscription the request names; returns it.
    ///
    /// The endpoint is normalised but not held to the endpoint policy, so a
    /// subscription stays removable after the policy is tightened.
    ///
    /// # Errors
    /// [`Error::Validation`], [`Error::Store`] with
    /// [`StoreError::NotFound`](crate::StoreError::NotFound), or the store's failure.
    pub async fn unsubscribe(&self, request: &UnsubscribeRequest) -> Result<Subscription, Error> {
        self.remove(request.key().map_err(Error::from)).await
    }

    /// Removes the subscription to `key`, already typed (no string round trip); returns
    /// it. As with [`unsubscribe`](Self::unsubscribe), the endpoint policy is not
    /// consulted.
    ///
    /// # Errors
    /// [`Error::Store`] with [`StoreError::NotFound`](crate::StoreError::NotFound), or the
    /// store's failure.
    pub async fn unsubscribe_key(&self, key: &SubscriptionKey) -> Result<Subscription, Error> {
        self.remove(Ok(key)).await
    }

    async fn remove<K: std::borrow::Borrow<SubscriptionKey>>(
        &self,
        key: Result<K, Error>,
    ) -> Result<Subscription, Error> {
        async {
            let result = match key {
                Ok(key) => self.store_object().remove(key.borrow()).await.map_err(Error::from),
                Err(error) => Err(error),
            };
            trace_outcome("unsubscribe", &result, |subscription| {
                tracing::info!(id = %subscription.id(), subscription = %subscription.key(), "unsubscribed");
            });
            result
        }
        .instrument(tracing::info_span!("unsubscribe"))
        .await
    }

    /// One page of the subscriptions matching a BioT search request.
    ///
    /// # Errors
    /// The store's failure.
    pub async fn search(&self, request: &SearchRequest) -> Result<Page<Subscription>, Error> {
        async {
            let result = self
                .store_object()
                .search(request)
                .await
                .map_err(Error::from);
            trace_outcome("search", &result, |page| {
                tracing::debug!(
                    total = page.total_results,
                    returned = page.data.len(),
                    "searched"
                );
            });
            result
        }
        .instrument(tracing::info_span!(
            "search",
            page = request.page(),
            limit = request.limit()
        ))
        .await
    }

    /// Notifies every plugin subscribed to the event, and reports what happened.
    ///
    /// One notification is built and serialised for the event and shared by all
    /// deliveries. Failed, hanging or panicking deliveries are recorded in the report;
    /// they are not errors of the dispatch.
    ///
    /// # Errors
    /// Only when nothing could be sent: the store's lookup failed, or the token
    /// provider did ([`Error::TokenProvider`]).
    pub async fn dispatch(&self, event: &Event) -> Result<DispatchReport, Error> {
        let span = tracing::info_span!(
            "dispatch",
            event = %event.event_type(),
            template = event.template_name(),
        );
        async {
            let result = self.dispatch_in_span(event).await;
            trace_outcome("dispatch", &result, |report| {
                tracing::info!(
                    matched = report.matched(),
                    delivered = report.delivered(),
                    "dispatched"
                );
            });
            result
        }
        .instrument(span)
        .await
    }

    async fn dispatch_in_span(&self, event: &Event) -> Result<DispatchReport, Error> {
        let event_type = event.event_type();
        let deliveries = match self.prepare(event).await? {
            Some((subscriptions, notification)) => {
                self.deliver_all(subscriptions, &notification).await
            }
            None => Vec::new(),
        };
        Ok(DispatchReport {
            event_type,
            deliveries,
        })
    }

    /// The subscriptions `event` reaches and its notification, rendered once; `None`
    /// when nobody subscribed (then no token is asked for). The step before delivery,
    /// shared with the delivery engine.
    pub(crate) async fn prepare(
        &self,
        event: &Event,
    ) -> Result<Option<(Vec<Arc<Subscription>>, PreparedNotification)>, Error> {
        let subscriptions = self
            .store_object()
            .matching(event.event_type(), event.template_name())
            .await?;
        if subscriptions.is_empty() {
            return Ok(None);
        }
        let jwt = match &self.inner.token_provider {
            Some(provider) => Some(
                provider
                    .token(event)
                    .await
                    .map_err(|source| Error::TokenProvider { source })?,
            ),
            None => None,
        };
        Ok(Some((subscriptions, event.prepare(jwt))))
    }

    async fn deliver_all(
        &self,
        subscriptions: Vec<Arc<Subscription>>,
        notification: &PreparedNotification,
    ) -> Vec<Delivery> {
        let notifier = &*self.inner.notifier;
        futures_util::stream::iter(subscriptions)
            .map(|subscription| async move {
                let attempt::Attempt { outcome, duration } =
                    attempt::deliver_once(notifier, subscription.endpoint(), notification, 1).await;
                Delivery {
                    subscription,
                    outcome,
                    duration,
                }
            })
            .buffer_unordered(self.inner.max_in_flight)
            .collect()
            .await
    }
}

/// Logs how an operation ended: `on_success` for a result, the error's code otherwise
/// (a warning for the caller's mistakes, an error with the source for the service's).
fn trace_outcome<T>(operation: &str, result: &Result<T, Error>, on_success: impl FnOnce(&T)) {
    match result {
        Ok(value) => on_success(value),
        Err(error) if error.is_client_error() => {
            // Only the code: the message echoes parts of the request.
            tracing::info!(operation, code = error.code(), "{operation} refused");
        }
        Err(error) => {
            tracing::error!(
                operation,
                code = error.code(),
                error = error as &(dyn std::error::Error + 'static),
                "{operation} failed"
            );
        }
    }
}

/// What happened to one event: one [`Delivery`] per subscribed endpoint.
///
/// Serialises (for logs and the example server) as
/// `{"entityTypeName", "actionName", "matched", "delivered", "failed", "deliveries": [...]}`.
#[derive(Debug)]
pub struct DispatchReport {
    event_type: EventType,
    deliveries: Vec<Delivery>,
}

impl DispatchReport {
    /// The event's pair.
    pub fn event_type(&self) -> EventType {
        self.event_type
    }

    /// Every delivery, in the order they finished.
    pub fn deliveries(&self) -> &[Delivery] {
        &self.deliveries
    }

    /// How many subscriptions matched the event.
    pub fn matched(&self) -> usize {
        self.deliveries.len()
    }

    /// How many deliveries succeeded.
    pub fn delivered(&self) -> usize {
        self.deliveries.iter().filter(|d| d.is_delivered()).count()
    }

    /// The deliveries that did not succeed (failed or panicked).
    pub fn failures(&self) -> impl Iterator<Item = &Delivery> {
        self.deliveries.iter().filter(|d| !d.is_delivered())
    }
}

impl Serialize for DispatchReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut report = serializer.serialize_struct("DispatchReport", 6)?;
        report.serialize_field("entityTypeName", &self.event_type.entity_type())?;
        report.serialize_field("actionName", &self.event_type.action())?;
        report.serialize_field("matched", &self.matched())?;
        report.serialize_field("delivered", &self.delivered())?;
        report.serialize_field("failed", &(self.matched() - self.delivered()))?;
        report.serialize_field("deliveries", &self.deliveries)?;
        report.end()
    }
}

/// One attempt to notify one subscribed endpoint.
#[derive(Debug)]
pub struct Delivery {
    subscription: Arc<Subscription>,
    outcome: DeliveryOutcome,
    duration: Duration,
}

impl Delivery {
    /// The subscription the notification was for.
    pub fn subscription(&self) -> &Subscription {
        &self.subscription
    }

    /// What happened.
    pub fn outcome(&self) -> &DeliveryOutcome {
        &self.outcome
    }

    /// How long the notifier took.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Whether the plugin got the notification.
    pub fn is_delivered(&self) -> bool {
        matches!(self.outcome, DeliveryOutcome::Delivered)
    }
}

impl Serialize for Delivery {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (outcome, error) = match &self.outcome {
            DeliveryOutcome::Delivered => ("delivered", None),
            DeliveryOutcome::Failed(error) => ("failed", Some(error.to_string())),
            DeliveryOutcome::Panicked(message) => ("panicked", Some(message.clone())),
        };
        let mut delivery = serializer.serialize_struct("Delivery", 5)?;
        delivery.serialize_field("subscriptionId", &self.subscription.id())?;
        delivery.serialize_field("endpoint", self.subscription.endpoint())?;
        delivery.serialize_field("outcome", outcome)?;
        if let Some(error) = error {
            delivery.serialize_field("error", &error)?;
        } else {
            delivery.skip_field("error")?;
        }
        delivery.serialize_field("durationMs", &(self.duration.as_secs_f64() * 1000.0))?;
        delivery.end()
    }
}

/// The outcome of one delivery.
#[derive(Debug)]
#[non_exhaustive]
pub enum DeliveryOutcome {
    /// The notifier reported success.
    Delivered,
    /// The notifier reported a failure.
    Failed(DeliveryError),
    /// The notifier panicked; the panic's message, when it had one.
    Panicked(String),
}

impl fmt::Display for DeliveryOutcome {
    /// `delivered`, `failed: <why>` or `panicked: <message>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryOutcome::Delivered => f.write_str("delivered"),
            DeliveryOutcome::Failed(error) => write!(f, "failed: {error}"),
            DeliveryOutcome::Panicked(message) => write!(f, "panicked: {message}"),
        }
    }
}
