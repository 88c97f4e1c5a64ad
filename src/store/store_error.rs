//! The store layer's error: [`StoreError`], what every [`SubscriptionStore`] returns.
//!
//! [`SubscriptionStore`]: super::SubscriptionStore

use http::StatusCode;
use serde_json::{Map, Value};

use crate::subscription::SubscriptionKey;
use crate::wire_error::{details_object, BiotError, BoxError};

/// Why a [`SubscriptionStore`](super::SubscriptionStore) call failed.
///
/// A store written outside this crate returns it too: a taken identity is
/// [`already_exists`](Self::already_exists) (answered `409`), an unknown one
/// [`not_found`](Self::not_found) (`404`), and the backend's own failure
/// [`backend`](Self::backend), which keeps the backend's error as its
/// [source](std::error::Error::source) and is answered `500` with nothing of it on the
/// wire.
///
/// ```
/// use biot_notifications::{BiotError, StoreError};
///
/// let err = StoreError::backend("redis", std::io::Error::other("connection reset"));
/// assert_eq!(err.to_string(), "the redis subscription store failed");
/// assert_eq!(std::error::Error::source(&err).unwrap().to_string(), "connection reset");
/// assert_eq!(err.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
/// assert!(err.details().is_empty());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A subscription with the same identity already exists: `409`,
    /// `SUBSCRIPTION_ALREADY_EXISTS`.
    #[error("a subscription of {subscription} already exists")]
    AlreadyExists {
        /// The identity that is taken.
        subscription: Box<SubscriptionKey>,
    },

    /// No subscription has this identity: `404`, `SUBSCRIBER_NOT_FOUND`.
    #[error("no subscription of {subscription} exists")]
    NotFound {
        /// The identity that was looked up.
        subscription: Box<SubscriptionKey>,
    },

    /// The store's backend failed; its error is the source: `500`,
    /// `INTERNAL_SERVER_ERROR`.
    #[error("the {store} subscription store failed")]
    Backend {
        /// The store's name, e.g. `postgres`.
        store: &'static str,
        /// The backend's own error.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// A [`StoreError::AlreadyExists`] for `key`.
    pub fn already_exists(key: &SubscriptionKey) -> Self {
        StoreError::AlreadyExists {
            subscription: Box::new(key.clone()),
        }
    }

    /// A [`StoreError::NotFound`] for `key`.
    pub fn not_found(key: &SubscriptionKey) -> Self {
        StoreError::NotFound {
            subscription: Box::new(key.clone()),
        }
    }

    /// A [`StoreError::Backend`]: the store named `store` failed with `source`.
    pub fn backend(store: &'static str, source: impl Into<BoxError>) -> Self {
        StoreError::Backend {
            store,
            source: source.into(),
        }
    }
}

impl BiotError for StoreError {
    fn code(&self) -> &'static str {
        match self {
            StoreError::AlreadyExists { .. } => "SUBSCRIPTION_ALREADY_EXISTS",
            StoreError::NotFound { .. } => "SUBSCRIBER_NOT_FOUND",
            StoreError::Backend { .. } => "INTERNAL_SERVER_ERROR",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            StoreError::AlreadyExists { .. } => StatusCode::CONFLICT,
            StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            StoreError::Backend { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            StoreError::AlreadyExists { subscription } | StoreError::NotFound { subscription } => {
                let mut details =
                    details_object(serde_json::to_value(subscription).unwrap_or_default());
                // BioT names all four identity fields for these, `templateName` even
                // when unset.
                details.entry("templateName").or_insert(Value::Null);
                details
            }
            // Nothing of the backend reaches the caller.
            StoreError::Backend { .. } => Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::endpoint::EndpointPolicy;
    use crate::subscription::SubscribeRequest;

    fn key() -> SubscriptionKey {
        SubscribeRequest::new("patient", "create", "https://plugin.example.com/hook")
            .validate(&EndpointPolicy::default())
            .unwrap()
    }

    #[test]
    fn identity_errors_name_all_four_fields() {
        let expected = json!({
            "entityTypeName": "patient",
            "actionName": "_create",
            "endpoint": "https://plugin.example.com/hook",
            "templateName": null,
        });
        let taken = StoreError::already_exists(&key());
        assert_eq!(taken.code(), "SUBSCRIPTION_ALREADY_EXISTS");
        assert_eq!(taken.status(), StatusCode::CONFLICT);
        assert_eq!(Value::Object(taken.details()), expected);
        let unknown = StoreError::not_found(&key());
        assert_eq!(unknown.code(), "SUBSCRIBER_NOT_FOUND");
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        assert_eq!(Value::Object(unknown.details()), expected);
    }

    #[test]
    fn backend_errors_keep_the_source_out_of_the_message_and_details() {
        let err = StoreError::backend("memory", std::io::Error::other("disk on fire"));
        assert_eq!(err.to_string(), "the memory subscription store failed");
        assert_eq!(
            std::error::Error::source(&err).unwrap().to_string(),
            "disk on fire"
        );
        assert_eq!(err.code(), "INTERNAL_SERVER_ERROR");
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(err.details().is_empty());
        assert!(!err.is_client_error());
    }
}
