//! The crate's one error type, and how each error reads on BioT's wire.
//!
//! Every [`Error`] knows its BioT error [`code`](Error::code), its HTTP
//! [`status`](Error::status) and the [`details`](Error::details) object BioT puts in an
//! `ErrorResponse`, so the HTTP surface renders errors without a lookup table of its own.

use std::fmt;

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::catalog::{Action, EntityType};
use crate::endpoint::EndpointRejection;
use crate::subscription::SubscriptionKey;

/// A boxed error from a backend (a store, a notifier, a token provider).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Values echoed back in errors are cut to this many characters, so a hostile request
/// cannot make the error larger than the request.
const ECHO_LIMIT: usize = 256;

/// Everything that can go wrong in this crate.
///
/// Display messages are sentences for people; [`code`](Error::code),
/// [`status`](Error::status) and [`details`](Error::details) are for machines. A source
/// error is kept (see [`std::error::Error::source`]) but never repeated in the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `entityTypeName` is not one of BioT's entity types.
    #[error(
        "`{value}` is not a BioT entity type{}; valid entity types are: {}",
        hint(suggestion),
        join(EntityType::ALL)
    )]
    InvalidEntityType {
        /// The rejected input (truncated when long).
        value: String,
        /// The entity type a near miss most likely meant.
        suggestion: Option<EntityType>,
    },

    /// `actionName` is unknown, or not notified for the entity type.
    #[error("{}", action_message(value, *entity_type, suggestion))]
    InvalidAction {
        /// The rejected input (truncated when long).
        value: String,
        /// The entity type the action was given for, when known.
        entity_type: Option<EntityType>,
        /// The action a near miss most likely meant.
        suggestion: Option<Action>,
    },

    /// The endpoint is not a URL the endpoint policy accepts.
    #[error("`{endpoint}` is not an acceptable endpoint: {reason}")]
    InvalidEndpoint {
        /// The rejected input (truncated when long).
        endpoint: String,
        /// Why it was rejected.
        reason: EndpointRejection,
    },

    /// A mandatory attribute is missing, null or empty.
    #[error("the attribute `{attribute}` is mandatory")]
    MissingAttribute {
        /// The attribute's wire name, e.g. `endpoint`.
        attribute: &'static str,
    },

    /// An attribute is present but unacceptable (wrong type, too long, ...).
    #[error("the attribute `{attribute}` is invalid: {reason}")]
    InvalidAttribute {
        /// The attribute's wire name, e.g. `templateName`.
        attribute: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// The request body is not the JSON object the call expects.
    #[error("the request body is malformed: {reason}")]
    MalformedBody {
        /// What is wrong with it.
        reason: String,
    },

    /// The `searchRequest` is not a valid BioT search request.
    #[error("the search request is invalid: {reason}")]
    InvalidSearchRequest {
        /// What is wrong with it.
        reason: String,
    },

    /// A subscription with the same identity already exists.
    #[error("a subscription of {subscription} already exists")]
    AlreadyExists {
        /// The identity that is taken.
        subscription: Box<SubscriptionKey>,
    },

    /// No subscription has this identity.
    #[error("no subscription of {subscription} exists")]
    NotFound {
        /// The identity that was looked up.
        subscription: Box<SubscriptionKey>,
    },

    /// The caller's token is missing or not valid.
    #[error("the request's token is not valid: {reason}")]
    Unauthenticated {
        /// Why (never echoes the token).
        reason: String,
    },

    /// The caller is authenticated but may not make this call.
    #[error("access denied: {reason}")]
    AccessDenied {
        /// Why.
        reason: String,
    },

    /// A subscription store failed; the backend's error is the source.
    #[error("the {store} subscription store failed")]
    Store {
        /// The store's name, e.g. `postgres`.
        store: &'static str,
        /// The backend's own error.
        #[source]
        source: BoxError,
    },

    /// The token provider failed to supply a token for a notification.
    #[error("the notification token provider failed")]
    TokenProvider {
        /// The provider's own error.
        #[source]
        source: BoxError,
    },

    /// The request body is larger than the configured limit.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },

    /// The request body is not declared as JSON.
    #[error("the content type {} is not supported; send application/json", content_type.as_deref().map_or_else(|| "(none)".to_owned(), |c| format!("`{c}`")))]
    UnsupportedMediaType {
        /// The declared content type, if any (truncated when long).
        content_type: Option<String>,
    },

    /// The route exists but not for this method.
    #[error("the method {method} is not allowed here; allowed: {allowed}")]
    MethodNotAllowed {
        /// The method used.
        method: Method,
        /// The methods allowed, as for an `Allow` header.
        allowed: &'static str,
    },

    /// No route has this path.
    #[error("no route matches `{path}`")]
    RouteNotFound {
        /// The path asked for (truncated when long).
        path: String,
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

    /// Something failed inside the service; the message never says what, the source does.
    #[error("an internal error occurred")]
    Internal {
        /// The underlying failure, for logs.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// BioT's error code, as in an `ErrorResponse`'s `code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidEntityType { .. } => "INVALID_ENTITY_TYPE_NAME",
            Error::InvalidAction { .. } => "INVALID_ACTION_NAME",
            Error::InvalidEndpoint { .. } => "INVALID_ENDPOINT",
            Error::MissingAttribute { .. } => "ATTRIBUTE_IS_MANDATORY",
            Error::InvalidAttribute { .. } => "INVALID_ATTRIBUTE",
            Error::MalformedBody { .. } => "MALFORMED_REQUEST_BODY",
            Error::InvalidSearchRequest { .. } => "INVALID_SEARCH_REQUEST",
            Error::AlreadyExists { .. } => "SUBSCRIPTION_ALREADY_EXISTS",
            Error::NotFound { .. } => "SUBSCRIBER_NOT_FOUND",
            Error::Unauthenticated { .. } => "TOKEN_NOT_VALID",
            Error::AccessDenied { .. } => "ACCESS_DENIED",
            Error::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Error::UnsupportedMediaType { .. } => "UNSUPPORTED_MEDIA_TYPE",
            Error::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            Error::RouteNotFound { .. } => "NOT_FOUND",
            Error::Overloaded { .. } | Error::ShuttingDown => "SERVICE_UNAVAILABLE",
            Error::Store { .. } | Error::TokenProvider { .. } | Error::Internal { .. } => {
                "INTERNAL_SERVER_ERROR"
            }
        }
    }

    /// The HTTP status BioT answers this error with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidEntityType { .. }
            | Error::InvalidAction { .. }
            | Error::InvalidEndpoint { .. }
            | Error::MissingAttribute { .. }
            | Error::InvalidAttribute { .. }
            | Error::MalformedBody { .. }
            | Error::InvalidSearchRequest { .. } => StatusCode::BAD_REQUEST,
            Error::AlreadyExists { .. } => StatusCode::CONFLICT,
            Error::NotFound { .. } | Error::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            Error::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Error::AccessDenied { .. } => StatusCode::FORBIDDEN,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::Overloaded { .. } | Error::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Error::Store { .. } | Error::TokenProvider { .. } | Error::Internal { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The `details` object of BioT's `ErrorResponse` for this error.
    ///
    /// Server-side failures have empty details: nothing internal leaks.
    pub fn details(&self) -> Map<String, Value> {
        let details = match self {
            Error::InvalidEntityType { value, suggestion } => json!({
                "invalidEntityType": value,
                "validEntityTypes": EntityType::ALL,
                "suggestion": suggestion,
            }),
            Error::InvalidAction {
                value,
                entity_type,
                suggestion,
            } => json!({
                "invalidActionName": value,
                "validActionNames": entity_type.map_or(Action::ALL, EntityType::actions),
                "entityTypeName": entity_type,
                "suggestion": suggestion,
            }),
            Error::InvalidEndpoint { endpoint, reason } => json!({
                "invalidEndpoint": endpoint,
                "reason": reason.to_string(),
            }),
            Error::MissingAttribute { attribute } => json!({ "attributeName": attribute }),
            Error::InvalidAttribute { attribute, reason } => {
                json!({ "attributeName": attribute, "reason": reason })
            }
            Error::MalformedBody { reason } | Error::InvalidSearchRequest { reason } => {
                json!({ "reason": reason })
            }
            Error::AlreadyExists { subscription } | Error::NotFound { subscription } => {
                serde_json::to_value(subscription).unwrap_or_default()
            }
            Error::PayloadTooLarge { limit } => json!({ "maxBytes": limit }),
            Error::UnsupportedMediaType { content_type } => {
                json!({ "contentType": content_type, "supported": "application/json" })
            }
            Error::MethodNotAllowed { method, allowed } => {
                json!({ "method": method.as_str(), "allowed": allowed })
            }
            Error::RouteNotFound { path } => json!({ "path": path }),
            Error::Overloaded { queue_capacity } => {
                json!({ "reason": "overloaded", "queueCapacity": queue_capacity })
            }
            Error::ShuttingDown => json!({ "reason": "shuttingDown" }),
            Error::Unauthenticated { .. }
            | Error::AccessDenied { .. }
            | Error::Store { .. }
            | Error::TokenProvider { .. }
            | Error::Internal { .. } => json!({}),
        };
        let mut details = match details {
            Value::Object(mut map) => {
                // `null` members carry nothing; BioT omits them.
                map.retain(|_, v| !v.is_null());
                map
            }
            _ => Map::new(),
        };
        // BioT names all four identity fields for these, `templateName` even when unset.
        if matches!(self, Error::AlreadyExists { .. } | Error::NotFound { .. }) {
            details.entry("templateName").or_insert(Value::Null);
        }
        details
    }

    /// Wraps a store backend's error.
    pub fn store(store: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Store {
            store,
            source: source.into(),
        }
    }

    /// An [`Error::InvalidEndpoint`], echoing at most a bounded prefix of the input.
    pub fn invalid_endpoint(endpoint: &str, reason: EndpointRejection) -> Self {
        Error::InvalidEndpoint {
            endpoint: echo(endpoint),
            reason,
        }
    }

    /// Whether this error is the caller's fault (a 4xx status) rather than the service's.
    pub fn is_client_error(&self) -> bool {
        self.status().is_client_error()
    }
}

/// A bounded copy of user input for error messages and details.
pub(crate) fn echo(input: &str) -> String {
    match input.char_indices().nth(ECHO_LIMIT) {
        Some((cut, _)) => format!("{}...", &input[..cut]),
        None => input.to_owned(),
    }
}

fn hint<T: fmt::Display>(suggestion: &Option<T>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn action_message(
    value: &str,
    entity_type: Option<EntityType>,
    suggestion: &Option<Action>,
) -> String {
    match entity_type {
        Some(entity_type) => format!(
            "`{value}` is not a notification action of `{entity_type}`{}; valid actions are: {}",
            hint(suggestion),
            join(entity_type.actions())
        ),
        None => format!(
            "`{value}` is not a BioT notification action{}; valid actions are: {}",
            hint(suggestion),
            join(Action::ALL)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_truncates_long_input_on_a_char_boundary() {
        let long = "é".repeat(1000);
        let echoed = echo(&long);
        assert_eq!(echoed.chars().count(), ECHO_LIMIT + 3);
        assert_eq!(echo("short"), "short");
    }

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
    fn store_errors_keep_the_source_out_of_the_message() {
        let err = Error::store("memory", std::io::Error::other("disk on fire"));
        assert_eq!(err.to_string(), "the memory subscription store failed");
        assert_eq!(
            std::error::Error::source(&err).unwrap().to_string(),
            "disk on fire"
        );
        assert!(err.details().is_empty());
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
