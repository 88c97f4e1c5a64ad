//! The crate's top-level [`Error`]: what the [`Dispatcher`](crate::Dispatcher)'s
//! operations return.
//!
//! Each layer owns its errors: [`CatalogError`] (names), [`InvalidEndpoint`],
//! [`ValidationError`] (a request that is not a valid subscription),
//! [`InvalidSearchRequest`], [`StoreError`]; the HTTP layer has its own
//! [`ApiError`](crate::api::ApiError). [`Error`] wraps the lower layers' errors, in one
//! direction: this module imports them, none of them imports it. Every one of them
//! implements [`BiotError`], so each knows its BioT code, HTTP status and `details`.

use http::StatusCode;
use serde_json::{json, Map, Value};

use crate::catalog::CatalogError;
use crate::endpoint::InvalidEndpoint;
use crate::notification::InvalidTraceParent;
use crate::search::InvalidSearchRequest;
use crate::store::StoreError;
use crate::subscription::ValidationError;
use crate::wire_error::details_object;
pub use crate::wire_error::{BiotError, BoxError};

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the dispatcher's operations (subscribe, unsubscribe, search, dispatch) can fail
/// with: a lower layer's error, wrapped, or the dispatcher's own.
///
/// Display messages are sentences for people; [`code`](Error::code),
/// [`status`](Error::status) and [`details`](Error::details) are for machines (also
/// through [`BiotError`]). A source error is kept (see [`std::error::Error::source`])
/// but never repeated in the message.
///
/// ```
/// use biot_notifications::subscription::ValidationError;
/// use biot_notifications::{EndpointPolicy, Error, SubscribeRequest};
///
/// fn key(body: &[u8]) -> Result<(), Error> {
///     // Each layer's error converts into `Error` with `?`.
///     SubscribeRequest::from_json(body)?.validate(&EndpointPolicy::default())?;
///     Ok(())
/// }
///
/// let err = key(br#"{"entityTypeName": "patient", "actionName": "_create"}"#).unwrap_err();
/// assert!(matches!(err, Error::Validation(ValidationError::MissingAttribute { .. })));
/// assert_eq!(err.code(), "ATTRIBUTE_IS_MANDATORY");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is not a valid subscription (names, endpoint, attributes, body).
    #[error(transparent)]
    Validation(#[from] ValidationError),

    /// The `searchRequest` is not a valid BioT search request.
    #[error(transparent)]
    Search(#[from] InvalidSearchRequest),

    /// The store refused (a taken or unknown identity) or failed.
    #[error(transparent)]
    Store(#[from] StoreError),

    /// The token provider failed to supply a token for a notification.
    #[error("the notification token provider failed")]
    TokenProvider {
        /// The provider's own error.
        #[source]
        source: BoxError,
    },

    /// The delivery engine's intake queue is full: the event was not taken. Answered
    /// `503 Service Unavailable` with code `SERVICE_UNAVAILABLE` and details
    /// `{"reason": "overloaded", "queueCapacity": n}`; the caller may try again later.
    #[error("the dispatcher is overloaded: {queue_capacity} events are already waiting; try again later")]
    Overloaded {
        /// How many events the intake queue holds.
        queue_capacity: usize,
    },

    /// The delivery engine is shutting down and takes no more events. Answered
    /// `503 Service Unavailable` with code `SERVICE_UNAVAILABLE` and details
    /// `{"reason": "shuttingDown"}`.
    #[error("the dispatcher is shutting down and takes no more events")]
    ShuttingDown,
}

impl Error {
    /// BioT's error code, as in an `ErrorResponse`'s `code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation(error) => error.code(),
            Error::Search(error) => error.code(),
            Error::Store(error) => error.code(),
            Error::TokenProvider { .. } => "INTERNAL_SERVER_ERROR",
            Error::Overloaded { .. } | Error::ShuttingDown => "SERVICE_UNAVAILABLE",
        }
    }

    /// The HTTP status BioT answers this error with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Validation(error) => error.status(),
            Error::Search(error) => error.status(),
            Error::Store(error) => error.status(),
            Error::TokenProvider { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Overloaded { .. } | Error::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `details` object of BioT's `ErrorResponse` for this error.
    ///
    /// Server-side failures have empty details: nothing internal leaks.
    pub fn details(&self) -> Map<String, Value> {
        match self {
            Error::Validation(error) => error.details(),
            Error::Search(error) => error.details(),
            Error::Store(error) => error.details(),
            Error::TokenProvider { .. } => Map::new(),
            Error::Overloaded { queue_capacity } => {
                details_object(json!({ "reason": "overloaded", "queueCapacity": queue_capacity }))
            }
            Error::ShuttingDown => details_object(json!({ "reason": "shuttingDown" })),
        }
    }

    /// Whether this error is the caller's fault (a 4xx status) rather than the service's.
    pub fn is_client_error(&self) -> bool {
        self.status().is_client_error()
    }
}

impl BiotError for Error {
    fn code(&self) -> &'static str {
        Error::code(self)
    }

    fn status(&self) -> StatusCode {
        Error::status(self)
    }

    fn details(&self) -> Map<String, Value> {
        Error::details(self)
    }
}

impl From<CatalogError> for Error {
    fn from(error: CatalogError) -> Self {
        Error::Validation(error.into())
    }
}

impl From<InvalidEndpoint> for Error {
    fn from(error: InvalidEndpoint) -> Self {
        Error::Validation(error.into())
    }
}

impl From<InvalidTraceParent> for Error {
    /// An invalid `traceparent` attribute, for hosts that read the header from an
    /// incoming request.
    fn from(error: InvalidTraceParent) -> Self {
        Error::Validation(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_and_shutdown_are_service_unavailable_with_a_reason() {
        let overloaded = Error::Overloaded { queue_capacity: 8 };
        assert_eq!(overloaded.code(), "SERVICE_UNAVAILABLE");
        assert_eq!(overloaded.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            Value::Object(overloaded.details()),
            json!({"reason": "overloaded", "queueCapacity": 8})
        );
        assert!(!overloaded.is_client_error());
        let shutting_down = Error::ShuttingDown;
        assert_eq!(shutting_down.code(), "SERVICE_UNAVAILABLE");
        assert_eq!(shutting_down.details()["reason"], "shuttingDown");
    }

    #[test]
    fn a_token_provider_failure_is_internal_and_keeps_its_source() {
        let err = Error::TokenProvider {
            source: "the key service is down".into(),
        };
        assert_eq!(err.code(), "INTERNAL_SERVER_ERROR");
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(err.details().is_empty());
        assert_eq!(err.to_string(), "the notification token provider failed");
        assert_eq!(
            std::error::Error::source(&err).unwrap().to_string(),
            "the key service is down"
        );
    }

    #[test]
    fn wrapped_errors_keep_their_wire_form_and_their_source() {
        let store = StoreError::backend("memory", std::io::Error::other("disk on fire"));
        let (code, status, details) = (store.code(), store.status(), store.details());
        let err = Error::from(store);
        assert_eq!(
            (err.code(), err.status(), err.details()),
            (code, status, details)
        );
        // Transparent: the store's message, and the backend's error as the source.
        assert_eq!(err.to_string(), "the memory subscription store failed");
        assert_eq!(
            std::error::Error::source(&err).unwrap().to_string(),
            "disk on fire"
        );

        let name = CatalogError::InvalidEntityType {
            value: "nope".into(),
            suggestion: None,
        };
        let err = Error::from(name.clone());
        assert!(matches!(&err, Error::Validation(ValidationError::Name(inner)) if *inner == name));
        assert_eq!(err.code(), "INVALID_ENTITY_TYPE_NAME");
        assert_eq!(err.details(), name.details());

        let search = InvalidSearchRequest::new("bad");
        assert_eq!(Error::from(search.clone()).details(), search.details());
    }
}
