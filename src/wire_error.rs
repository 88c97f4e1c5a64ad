//! How an error reads on BioT's wire: the [`BiotError`] trait every layer's error
//! implements, so one function renders any of them as BioT's `ErrorResponse`.
//!
//! This module sits at the bottom of the crate and imports nothing from it, so every
//! layer (`catalog`, `endpoint`, `subscription`, `search`, `store`, `api`) can own its
//! errors and implement [`BiotError`] for them without importing a layer above it.

use http::StatusCode;
use serde_json::{Map, Value};

/// A boxed error from a backend (a store, a notifier, a token provider, an authorizer).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error and its sources, `: `-separated, for logs: a driver's top-level message
/// ("db error") rarely says why, its sources do.
#[cfg(feature = "postgres")]
pub(crate) struct ErrorChain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

#[cfg(feature = "postgres")]
impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(next) = source {
            write!(f, ": {next}")?;
            source = next.source();
        }
        Ok(())
    }
}

/// Values echoed back in errors are cut to this many characters, so a hostile request
/// cannot make the error larger than the request.
const ECHO_LIMIT: usize = 256;

/// An error that knows how BioT answers it: its error code, its HTTP status and the
/// `details` object of BioT's `ErrorResponse`.
///
/// Every error of this crate that can reach a caller of BioT's API implements it: the
/// validation errors ([`CatalogError`](crate::catalog::CatalogError),
/// [`InvalidEndpoint`](crate::endpoint::InvalidEndpoint),
/// [`ValidationError`](crate::subscription::ValidationError),
/// [`InvalidSearchRequest`](crate::search::InvalidSearchRequest)), the store's
/// [`StoreError`](crate::store::StoreError), the crate's [`Error`](crate::Error), and
/// the HTTP layer's [`ApiError`](crate::api::ApiError) and
/// [`AuthorizationError`](crate::api::AuthorizationError).
/// [`ErrorResponse::from_error`](crate::api::ErrorResponse::from_error) turns any of
/// them into BioT's error body. The status is the `http` crate's [`StatusCode`], on
/// purpose: the crate's HTTP surface is written against `http`'s types.
///
/// The `Display` message is a sentence for people; the code, status and details are for
/// machines. A source error is kept (see [`std::error::Error::source`]) but never
/// repeated in the message. Errors with a 5xx status carry empty details: nothing
/// internal leaks.
///
/// ```
/// use biot_notifications::{BiotError, EntityType};
///
/// let err = EntityType::parse("usageSession").unwrap_err();
/// assert_eq!(err.code(), "INVALID_ENTITY_TYPE_NAME");
/// assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
/// assert_eq!(err.details()["suggestion"], "usage-session");
/// ```
pub trait BiotError: std::error::Error + Send + Sync + 'static {
    /// BioT's error code, as in an `ErrorResponse`'s `code`, e.g. `INVALID_ACTION_NAME`.
    fn code(&self) -> &'static str;

    /// The HTTP status BioT answers this error with.
    fn status(&self) -> StatusCode;

    /// The `details` object of BioT's `ErrorResponse`; empty unless the error says more.
    fn details(&self) -> Map<String, Value> {
        Map::new()
    }

    /// Whether this error is the caller's fault (a 4xx status) rather than the service's.
    fn is_client_error(&self) -> bool {
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

/// `details` as a JSON object, without its `null` members: they carry nothing, and
/// BioT omits them.
pub(crate) fn details_object(details: Value) -> Map<String, Value> {
    match details {
        Value::Object(mut map) => {
            map.retain(|_, v| !v.is_null());
            map
        }
        _ => Map::new(),
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
    fn details_drop_null_members() {
        let details = details_object(serde_json::json!({"a": 1, "b": null}));
        assert_eq!(Value::Object(details), serde_json::json!({"a": 1}));
        assert!(details_object(Value::Null).is_empty());
    }
}
