//! Delivery: the [`Notifier`] trait, which takes one notification to one endpoint.
//!
//! The dispatcher prepares a notification once per event
//! ([`PreparedNotification`]: body serialised, trace context chosen) and hands the same
//! one to the notifier for every subscribed endpoint. A notifier that speaks HTTP turns
//! it into a request with [`PreparedNotification::to_request`].
//!
//! ```
//! // Everything a transport needs is at the crate root (and in the prelude).
//! use biot_notifications::prelude::async_trait;
//! use biot_notifications::{DeliveryError, Endpoint, Notifier, PreparedNotification};
//!
//! /// Prints what each plugin would receive instead of sending it.
//! #[derive(Debug)]
//! struct PrintingNotifier;
//!
//! #[async_trait]
//! impl Notifier for PrintingNotifier {
//!     async fn notify(&self, endpoint: &Endpoint, notification: &PreparedNotification) -> Result<(), DeliveryError> {
//!         let request = notification.to_request(endpoint);
//!         println!("{} {} ({} bytes)", request.method(), request.uri(), request.body().len());
//!         Ok(())
//!     }
//! }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::StatusCode;

use crate::endpoint::{Endpoint, EndpointPolicy, EndpointRejection};
use crate::notification::PreparedNotification;
use crate::wire_error::BoxError;

#[cfg(feature = "http-notifier")]
pub mod http_notifier;
#[cfg(feature = "http-notifier")]
pub use self::http_notifier::HttpNotifier;

/// Delivers notifications to plugin endpoints.
///
/// Called concurrently, once per subscribed endpoint per event. The dispatcher never
/// retries (BioT does not); a notifier that wants retries does them inside `notify`.
/// A notifier must not assume it is awaited to completion: a host may drop a dispatch
/// (for example on a timeout), which cancels the deliveries still running.
#[async_trait]
pub trait Notifier: fmt::Debug + Send + Sync + 'static {
    /// Delivers `notification` to `endpoint`.
    ///
    /// # Errors
    /// A [`DeliveryError`] saying why the plugin did not get it; the dispatcher records
    /// it in the [`DispatchReport`](crate::dispatcher::DispatchReport).
    async fn notify(
        &self,
        endpoint: &Endpoint,
        notification: &PreparedNotification,
    ) -> Result<(), DeliveryError>;

    /// The endpoint policy this notifier vets endpoints with at delivery, if it has one.
    ///
    /// A notifier that checks endpoints (as `HttpNotifier` does)
    /// returns its policy here, and a dispatcher built with it takes that policy for
    /// validating subscriptions, so the policy is given once and the two cannot
    /// disagree. The default, `None`, says the notifier vets nothing.
    fn endpoint_policy(&self) -> Option<&EndpointPolicy> {
        None
    }
}

macro_rules! forward_notifier {
    ($($pointer:ident),+) => {$(
        #[async_trait]
        impl<T: Notifier + ?Sized> Notifier for $pointer<T> {
            async fn notify(
                &self,
                endpoint: &Endpoint,
                notification: &PreparedNotification,
            ) -> Result<(), DeliveryError> {
                (**self).notify(endpoint, notification).await
            }

            fn endpoint_policy(&self) -> Option<&EndpointPolicy> {
                (**self).endpoint_policy()
            }
        }
    )+};
}

forward_notifier!(Arc, Box);

/// A notifier that accepts every notification and sends nothing.
///
/// For tests of everything around delivery (the API, a store, the subscription
/// lifecycle), benchmarks of the dispatcher's own cost, and dry runs.
///
/// ```
/// use biot_notifications::notifier::DiscardingNotifier;
/// use biot_notifications::{Dispatcher, InMemoryStore};
///
/// let dispatcher = Dispatcher::new(InMemoryStore::new(), DiscardingNotifier);
/// # let _ = dispatcher;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct DiscardingNotifier;

#[async_trait]
impl Notifier for DiscardingNotifier {
    async fn notify(&self, _: &Endpoint, _: &PreparedNotification) -> Result<(), DeliveryError> {
        Ok(())
    }
}

/// Why a notification did not reach a plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The plugin answered with a status other than 2xx.
    ///
    /// A `429` or `503` that came with a `Retry-After` is [`DeliveryError::Throttled`]
    /// instead; [`status`](DeliveryError::status) reads the status of both.
    #[error("the endpoint answered {status}")]
    Status {
        /// The status it answered with.
        status: StatusCode,
    },

    /// The plugin answered `429 Too Many Requests` or `503 Service Unavailable` and said
    /// when to call again (`Retry-After`). BioT does not retry; the delivery engine's
    /// opt-in retries wait this long (clamped to their policy's longest backoff).
    #[error("the endpoint answered {status} and asked to be called again in {}s", retry_after.as_secs_f64())]
    Throttled {
        /// The status it answered with.
        status: StatusCode,
        /// How long after the answer it asked to wait, from its `Retry-After`.
        retry_after: Duration,
    },

    /// The endpoint, or an address its host resolved to, is refused by the endpoint policy.
    #[error("the endpoint was refused: {reason}")]
    Refused {
        /// Why.
        reason: EndpointRejection,
    },

    /// The plugin did not answer in time.
    #[error("the delivery timed out")]
    Timeout,

    /// The plugin could not be reached or the exchange failed; the source says how.
    #[error("the delivery failed")]
    Transport {
        /// The transport's own error.
        #[source]
        source: BoxError,
    },
}

impl DeliveryError {
    /// The plugin answered `status`, with no `Retry-After` to heed.
    pub fn from_status(status: StatusCode) -> Self {
        DeliveryError::Status { status }
    }

    /// The plugin answered `status` and asked to be called again after `retry_after`
    /// (its `Retry-After`, as a duration from now). Only `429` and `503` carry the wait
    /// ([`DeliveryError::Throttled`]); for any other status it is dropped, as HTTP gives
    /// `Retry-After` no retry meaning there.
    pub fn with_retry_after(status: StatusCode, retry_after: Duration) -> Self {
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            DeliveryError::Throttled {
                status,
                retry_after,
            }
        } else {
            DeliveryError::Status { status }
        }
    }

    /// The status the plugin answered with, when it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            DeliveryError::Status { status } | DeliveryError::Throttled { status, .. } => {
                Some(*status)
            }
            DeliveryError::Refused { .. }
            | DeliveryError::Timeout
            | DeliveryError::Transport { .. } => None,
        }
    }

    /// How long the plugin asked to be left alone (`Retry-After`), when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryError::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Wraps a transport's error.
    pub fn transport(source: impl Into<BoxError>) -> Self {
        DeliveryError::Transport {
            source: source.into(),
        }
    }
}
