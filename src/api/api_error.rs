//! The HTTP layer's error: [`ApiError`], what a request to the [`Api`](super::Api)
//! failed with.

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::AuthorizationError;
use crate::error::Error;
use crate::search::InvalidSearchRequest;
use crate::subscription::ValidationError;
use crate::wire_error::{details_object, BiotError, BoxError};

/// Why a request to the [`Api`](super::Api) failed: the HTTP layer's own failures
/// (routing, the authorizer, the body's type and size), or the operation's [`Error`].
///
/// Every failure is answered with BioT's `ErrorResponse`; the whole error, with its
/// sources, is kept in the response's [`ErrorReport`](super::ErrorReport).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No route has this path: `404`, `NOT_FOUND`, details `{"path"}`.
    #[error("no route matches `{path}`")]
    RouteNotFound {
        /// The path asked for (truncated when long).
        path: String,
    },

    /// The route exists but not for this method: `405`, `METHOD_NOT_ALLOWED`, details
    /// `{"method", "allowed"}`, and an `Allow` header.
    #[error("the method {method} is not allowed here; allowed: {allowed}")]
    MethodNotAllowed {
        /// The method used.
        method: Method,
        /// The methods allowed, as for an `Allow` header.
        allowed: &'static str,
    },

    /// The [`Authorizer`](super::Authorizer) refused the call (`401`, `403`) or failed
    /// (`500`, its error kept as the source).
    #[error(transparent)]
    Authorization(#[from] AuthorizationError),

    /// The request body is not declared as JSON: `415`, `UNSUPPORTED_MEDIA_TYPE`.
    #[error("the content type {} is not supported; send application/json", content_type.as_deref().map_or_else(|| "(none)".to_owned(), |c| format!("`{c}`")))]
    UnsupportedMediaType {
        /// The declared content type, if any (truncated when long).
        content_type: Option<String>,
    },

    /// The request body is larger than the configured limit: `413`, `PAYLOAD_TOO_LARGE`.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },

    /// The operation failed: validation, the store, ... with the [`Error`]'s own code,
    /// status and details.
    #[error(transparent)]
    Operation(#[from] Error),

    /// Something failed inside the service (a store or an authorizer panicked); the
    /// message never says what, the source does.
    #[error("an internal error occurred")]
    Internal {
        /// The underlying failure, for logs.
        #[source]
        source: BoxError,
    },
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        ApiError::Operation(error.into())
    }
}

impl From<InvalidSearchRequest> for ApiError {
    fn from(error: InvalidSearchRequest) -> Self {
        ApiError::Operation(error.into())
    }
}

impl BiotError for ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::RouteNotFound { .. } => "NOT_FOUND",
            ApiError::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            ApiError::Authorization(error) => error.code(),
            ApiError::UnsupportedMediaType { .. } => "UNSUPPORTED_MEDIA_TYPE",
            ApiError::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            ApiError::Operation(error) => error.code(),
            ApiError::Internal { .. } => "INTERNAL_SERVER_ERROR",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Authorization(error) => error.status(),
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Operation(error) => error.status(),
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            ApiError::RouteNotFound { path } => details_object(json!({ "path": path })),
            ApiError::MethodNotAllowed { method, allowed } => {
                details_object(json!({ "method": method.as_str(), "allowed": allowed }))
            }
            ApiError::Authorization(error) => error.details(),
            ApiError::UnsupportedMediaType { content_type } => details_object(
                json!({ "contentType": content_type, "supported": "application/json" }),
            ),
            ApiError::PayloadTooLarge { limit } => details_object(json!({ "maxBytes": limit })),
            ApiError::Operation(error) => error.details(),
            ApiError::Internal { .. } => Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_http_layer_error_has_its_code_status_and_details() {
        let cases = [
            (
                ApiError::RouteNotFound {
                    path: "/nowhere".into(),
                },
                "NOT_FOUND",
                StatusCode::NOT_FOUND,
                json!({"path": "/nowhere"}),
            ),
            (
                ApiError::MethodNotAllowed {
                    method: Method::PUT,
                    allowed: "GET, HEAD",
                },
                "METHOD_NOT_ALLOWED",
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"method": "PUT", "allowed": "GET, HEAD"}),
            ),
            (
                ApiError::UnsupportedMediaType { content_type: None },
                "UNSUPPORTED_MEDIA_TYPE",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"supported": "application/json"}),
            ),
            (
                ApiError::UnsupportedMediaType {
                    content_type: Some("text/plain".into()),
                },
                "UNSUPPORTED_MEDIA_TYPE",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"contentType": "text/plain", "supported": "application/json"}),
            ),
            (
                ApiError::PayloadTooLarge { limit: 1024 },
                "PAYLOAD_TOO_LARGE",
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"maxBytes": 1024}),
            ),
            (
                ApiError::Internal {
                    source: "a store panicked".into(),
                },
                "INTERNAL_SERVER_ERROR",
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({}),
            ),
            (
                ApiError::from(Error::ShuttingDown),
                "SERVICE_UNAVAILABLE",
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"reason": "shuttingDown"}),
            ),
            (
                ApiError::from(AuthorizationError::access_denied("no")),
                "ACCESS_DENIED",
                StatusCode::FORBIDDEN,
                json!({}),
            ),
        ];
        for (error, code, status, details) in cases {
            assert_eq!(error.code(), code);
            assert_eq!(error.status(), status, "{code}");
            assert_eq!(Value::Object(error.details()), details, "{code}");
        }
    }
}
