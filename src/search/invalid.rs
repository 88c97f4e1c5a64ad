//! The search layer's error: [`InvalidSearchRequest`].

use http::StatusCode;
use serde_json::{json, Map, Value};

use crate::wire_error::{details_object, BiotError};

/// A `searchRequest` that is not a valid BioT search request, or is given twice.
///
/// Answered `400` with code `INVALID_SEARCH_REQUEST` and details `{"reason"}`.
///
/// ```
/// use biot_notifications::{BiotError, SearchRequest};
///
/// let err = SearchRequest::from_json(br#"{"limit": 0}"#).unwrap_err();
/// assert_eq!(err.code(), "INVALID_SEARCH_REQUEST");
/// assert!(err.reason().contains("limit"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the search request is invalid: {reason}")]
pub struct InvalidSearchRequest {
    reason: String,
}

impl InvalidSearchRequest {
    /// A search request refused for `reason`, a sentence saying what is wrong.
    pub fn new(reason: impl Into<String>) -> Self {
        InvalidSearchRequest {
            reason: reason.into(),
        }
    }

    /// What is wrong with the request.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl BiotError for InvalidSearchRequest {
    fn code(&self) -> &'static str {
        "INVALID_SEARCH_REQUEST"
    }

    fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    fn details(&self) -> Map<String, Value> {
        details_object(json!({ "reason": self.reason }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_search_request_is_a_400_with_its_reason() {
        let err = InvalidSearchRequest::new("`limit` must be at least 1");
        assert_eq!(err.code(), "INVALID_SEARCH_REQUEST");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            Value::Object(err.details()),
            json!({"reason": "`limit` must be at least 1"})
        );
        assert_eq!(
            err.to_string(),
            "the search request is invalid: `limit` must be at least 1"
        );
    }
}
