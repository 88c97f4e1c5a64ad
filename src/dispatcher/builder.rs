//! [`DispatcherBuilder`]: a dispatcher's options, with their defaults, checked at `build`.

use std::sync::Arc;

use super::shared::into_shared;
use super::{Dispatcher, Inner, TokenProvider, DEFAULT_MAX_IN_FLIGHT};
use crate::endpoint::EndpointPolicy;
use crate::notifier::Notifier;
use crate::store::SubscriptionStore;

/// Why a [`DispatcherBuilder`] could not build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatcherBuildError {
    /// A count that must be at least 1 is zero.
    #[error("the dispatcher option `{option}` must be greater than zero")]
    Zero {
        /// The option, as the builder method is named.
        option: &'static str,
    },

    /// The builder was given an endpoint policy that differs from the one its notifier
    /// vets deliveries with: subscriptions the dispatcher accepts would then fail at
    /// every delivery, or ones it refuses would be deliverable.
    #[error(
        "the dispatcher was given an endpoint policy that differs from its notifier's; \
         give the policy once, to the notifier: the dispatcher takes the notifier's"
    )]
    ConflictingEndpointPolicy {
        /// The policy given to the dispatcher's builder.
        dispatcher: Box<EndpointPolicy>,
        /// The policy the notifier enforces at delivery.
        notifier: Box<EndpointPolicy>,
    },
}

/// Options for a [`Dispatcher`]; from [`Dispatcher::builder`]. Every value is checked by
/// [`build`](Self::build).
///
/// ```
/// use biot_notifications::dispatcher::DispatcherBuildError;
/// use biot_notifications::notifier::DiscardingNotifier;
/// use biot_notifications::{Dispatcher, EndpointPolicy, InMemoryStore};
///
/// let dispatcher = Dispatcher::builder(InMemoryStore::new(), DiscardingNotifier)
///     .endpoint_policy(EndpointPolicy::default().allow_host("hooks.internal.example"))
///     .max_in_flight(16)
///     .build()?;
///
/// let err = Dispatcher::builder(InMemoryStore::new(), DiscardingNotifier)
///     .max_in_flight(0)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.to_string(), "the dispatcher option `max_in_flight` must be greater than zero");
/// # Ok::<(), DispatcherBuildError>(())
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct DispatcherBuilder {
    store: Arc<dyn SubscriptionStore>,
    notifier: Arc<dyn Notifier>,
    policy: Option<EndpointPolicy>,
    max_in_flight: usize,
    token_provider: Option<Arc<dyn TokenProvider>>,
}

impl DispatcherBuilder {
    pub(super) fn new(store: impl SubscriptionStore, notifier: impl Notifier) -> Self {
        DispatcherBuilder {
            store: into_shared(store, |store| Arc::new(store) as Arc<dyn SubscriptionStore>),
            notifier: into_shared(notifier, |notifier| Arc::new(notifier) as Arc<dyn Notifier>),
            policy: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            token_provider: None,
        }
    }

    /// Which endpoints subscriptions may name.
    ///
    /// Needed only when the notifier has no policy of its own
    /// ([`Notifier::endpoint_policy`] is `None`): otherwise the dispatcher takes the
    /// notifier's, and [`build`](Self::build) refuses a different one. Default: the
    /// notifier's policy, or [`EndpointPolicy::default`] (strict) when it has none.
    pub fn endpoint_policy(mut self, policy: EndpointPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// How many deliveries of one event may run at once (default
    /// [`DEFAULT_MAX_IN_FLIGHT`]); at least 1.
    pub fn max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight;
        self
    }

    /// Where the `jwt` of each notification comes from (default: none is sent, and
    /// [`build`](Self::build) warns, since BioT's plugins refuse a notification without
    /// one; with the `jwt` feature, `token::SigningTokenProvider` signs BioT's tokens).
    /// An `Arc<dyn TokenProvider>` is used as it is.
    pub fn token_provider(mut self, provider: impl TokenProvider) -> Self {
        self.token_provider = Some(into_shared(provider, |provider| {
            Arc::new(provider) as Arc<dyn TokenProvider>
        }));
        self
    }

    /// Checks the options and builds the dispatcher. Logs a warning when it has no
    /// token provider.
    ///
    /// # Errors
    /// [`DispatcherBuildError::Zero`] for a `max_in_flight` of 0;
    /// [`DispatcherBuildError::ConflictingEndpointPolicy`] when the builder was given
    /// an endpoint policy other than the notifier's.
    pub fn build(self) -> Result<Dispatcher, DispatcherBuildError> {
        if self.max_in_flight == 0 {
            return Err(DispatcherBuildError::Zero {
                option: "max_in_flight",
            });
        }
        let policy = match (self.policy, self.notifier.endpoint_policy()) {
            (Some(given), Some(notifiers)) if given != *notifiers => {
                return Err(DispatcherBuildError::ConflictingEndpointPolicy {
                    dispatcher: Box::new(given),
                    notifier: Box::new(notifiers.clone()),
                });
            }
            (Some(given), _) => given,
            (None, Some(notifiers)) => notifiers.clone(),
            (None, None) => EndpointPolicy::default(),
        };
        if self.token_provider.is_none() {
            tracing::warn!(
                "this dispatcher has no token provider: its notifications carry no `jwt`, \
                 which BioT's plugins refuse (set one with DispatcherBuilder::token_provider)"
            );
        }
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                store: self.store,
                notifier: self.notifier,
                policy,
                max_in_flight: self.max_in_flight,
                token_provider: self.token_provider,
            }),
        })
    }
}
