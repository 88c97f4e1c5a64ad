//! Error responses: BioT's [`ErrorResponse`] body, and the [`ErrorReport`] kept for the
//! host's logs.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::route::json_response;
use super::{Api, ApiError};
use crate::wire_error::BiotError;

/// The message of every 5xx error response; the cause goes to the host's logs only.
const INTERNAL_MESSAGE: &str = "an internal error occurred";

/// What replaces the caller's credentials if an authorizer echoes them in a message.
const REDACTED: &str = "[redacted]";

/// BioT's error body, as every failed call answers it.
///
/// `{"code", "message", "serviceName", "traceId", "environment", "details"}`; clients
/// may deserialise error responses into it. [`ErrorResponse::from_error`] makes one from
/// any of the crate's errors (anything that implements [`BiotError`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ErrorResponse {
    /// BioT's error code, e.g. `INVALID_ACTION_NAME`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// The service that answered (see [`ApiBuilder::service_name`](super::ApiBuilder::service_name)).
    pub service_name: String,
    /// The request's trace id: from its `traceparent`, or generated.
    pub trace_id: String,
    /// The deployment (see [`ApiBuilder::environment`](super::ApiBuilder::environment)).
    pub environment: String,
    /// Machine-readable particulars of the error; empty for internal errors.
    #[serde(default)]
    pub details: Map<String, Value>,
}

impl ErrorResponse {
    /// An error body with `code`, `message` and `trace_id`, the default service name
    /// ([`DEFAULT_SERVICE_NAME`](super::DEFAULT_SERVICE_NAME)) and environment
    /// ([`DEFAULT_ENVIRONMENT`](super::DEFAULT_ENVIRONMENT)), and no details; for a host
    /// answering BioT's way on routes of its own.
    pub fn new(
        code: impl Into<String>,
        message: impl Into<String>,
        trace_id: impl Into<String>,
    ) -> Self {
        ErrorResponse {
            code: code.into(),
            message: message.into(),
            service_name: super::DEFAULT_SERVICE_NAME.to_owned(),
            trace_id: trace_id.into(),
            environment: super::DEFAULT_ENVIRONMENT.to_owned(),
            details: Map::new(),
        }
    }

    /// The same body with another `serviceName`.
    #[must_use]
    pub fn with_service_name(mut self, service_name: impl Into<String>) -> Self {
        self.service_name = service_name.into();
        self
    }

    /// The same body with another `environment`.
    #[must_use]
    pub fn with_environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = environment.into();
        self
    }

    /// The same body with these `details`.
    #[must_use]
    pub fn with_details(mut self, details: Map<String, Value>) -> Self {
        self.details = details;
        self
    }
}

/// What went wrong, attached to the extensions of every error response for the host's
/// logs and metrics.
///
/// The body of a 5xx says only "an internal error occurred"; the report keeps the
/// [`ApiError`] with its sources (the store's own error, the authorizer's, the panic's
/// message), so a host middleware can log it next to the trace id the caller was given.
///
/// ```
/// # futures_util::FutureExt::now_or_never(async {
/// # use biot_notifications::notifier::DiscardingNotifier;
/// # use biot_notifications::{Dispatcher, InMemoryStore};
/// use biot_notifications::api::{AllowEveryone, Api, ErrorReport};
/// use biot_notifications::BiotError;
///
/// let api = Api::builder(Dispatcher::new(InMemoryStore::new(), DiscardingNotifier))
///     .authorizer(AllowEveryone)
///     .build()?;
/// let response = api.handle(http::Request::get("/nowhere").body(String::new())?).await;
/// let report = response.extensions().get::<ErrorReport>().expect("every error has a report");
/// assert_eq!(report.error().code(), "NOT_FOUND");
/// assert_eq!(report.trace_id().len(), 32);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap().unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct ErrorReport {
    error: Arc<ApiError>,
    trace_id: Arc<str>,
}

impl ErrorReport {
    /// The error, with its [source](std::error::Error::source) chain.
    pub fn error(&self) -> &ApiError {
        &self.error
    }

    /// The trace id the error response carries.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }
}

impl ErrorResponse {
    /// BioT's error body for `error`, as the service named `service_name` in
    /// `environment` answers it, for the call traced as `trace_id`.
    ///
    /// A `500` says only "an internal error occurred", with empty details: whatever
    /// went wrong inside (a store's name, a source error's text, a panic message) could
    /// tell an attacker about the deployment, so it stays in the host's logs. Other
    /// statuses (a `503` when the delivery engine is overloaded) carry their message
    /// and details.
    ///
    /// ```
    /// use biot_notifications::api::ErrorResponse;
    /// use biot_notifications::EventType;
    ///
    /// let err = EventType::parse("patient", "_read").unwrap_err();
    /// let body = ErrorResponse::from_error(&err, "dispatcher", "staging", "4bf92f3577b34da6a3ce929d0e0e4736");
    /// assert_eq!(body.code, "INVALID_ACTION_NAME");
    /// assert_eq!(body.details["invalidActionName"], "_read");
    /// assert_eq!(body.environment, "staging");
    /// ```
    pub fn from_error<E: BiotError + ?Sized>(
        error: &E,
        service_name: &str,
        environment: &str,
        trace_id: &str,
    ) -> ErrorResponse {
        let (message, details) = if error.status() == StatusCode::INTERNAL_SERVER_ERROR {
            (INTERNAL_MESSAGE.to_owned(), Map::new())
        } else {
            (error.to_string(), error.details())
        };
        ErrorResponse {
            code: error.code().to_owned(),
            message,
            service_name: service_name.to_owned(),
            trace_id: trace_id.to_owned(),
            environment: environment.to_owned(),
            details,
        }
    }
}

impl Api {
    /// The HTTP response BioT answers `error` with, under this API's service name and
    /// environment: its status, BioT's [`ErrorResponse`] as JSON (see
    /// [`ErrorResponse::from_error`]), and an `Allow` header for a 405.
    ///
    /// For a host's own routes beside the API (an event intake, say), so that their
    /// errors read like the API's.
    pub fn error_response<E: BiotError + ?Sized>(
        &self,
        error: &E,
        trace_id: &str,
    ) -> Response<Bytes> {
        let body = ErrorResponse::from_error(
            error,
            &self.inner.service_name,
            &self.inner.environment,
            trace_id,
        );
        render(error, &body)
    }

    /// Answers a failed request: BioT's error body (a refusal's message redacted of the
    /// caller's credentials), with the [`ErrorReport`] in the extensions.
    pub(super) fn answer_error(
        &self,
        error: ApiError,
        trace_id: &str,
        authorization: Option<&HeaderValue>,
    ) -> Response<Bytes> {
        let mut body = ErrorResponse::from_error(
            &error,
            &self.inner.service_name,
            &self.inner.environment,
            trace_id,
        );
        if error.status().is_client_error() {
            body.message = redact(body.message, authorization);
        } else {
            tracing::error!(
                code = error.code(),
                error = &error as &(dyn std::error::Error + 'static),
                "request failed inside the service"
            );
        }
        let mut response = render(&error, &body);
        response.extensions_mut().insert(ErrorReport {
            error: Arc::new(error),
            trace_id: trace_id.into(),
        });
        response
    }
}

/// `body` as the response to `error`: its status, the JSON, and an `Allow` header for
/// a 405.
fn render<E: BiotError + ?Sized>(error: &E, body: &ErrorResponse) -> Response<Bytes> {
    let status = error.status();
    let mut response = json_response(status, body).unwrap_or_else(|_| {
        // Unreachable in practice (strings and a JSON map always serialise), but this
        // is the path that must not fail.
        let mut response = Response::new(Bytes::from_static(
            br#"{"code":"INTERNAL_SERVER_ERROR","message":"an internal error occurred","details":{}}"#,
        ));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    });
    if status == StatusCode::METHOD_NOT_ALLOWED {
        let allowed = body
            .details
            .get("allowed")
            .and_then(|allowed| allowed.as_str());
        if let Some(allowed) = allowed.and_then(|allowed| HeaderValue::from_str(allowed).ok()) {
            response.headers_mut().insert(ALLOW, allowed);
        }
    }
    response
}

/// The message a panic was raised with, for the [`ErrorReport`] (never the response).
pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    format!("a request handler panicked: {message}")
}

/// Removes the caller's credentials from `message`, in case an authorizer quoted them.
fn redact(message: String, authorization: Option<&HeaderValue>) -> String {
    let Some(value) = authorization.and_then(|value| value.to_str().ok()) else {
        return message;
    };
    let value = value.trim();
    // The credentials proper, without a scheme such as `Bearer`.
    let credentials = value
        .split_once(' ')
        .map_or(value, |(_, credentials)| credentials.trim());
    let mut message = message;
    for secret in [value, credentials] {
        // Very short values would redact ordinary words; real tokens are long.
        if secret.len() >= 8 && message.contains(secret) {
            message = message.replace(secret, REDACTED);
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_quoted_by_an_authorizer_are_redacted() {
        let header = HeaderValue::from_static("Bearer eyJhbGciOiJSUzUxMiJ9.secret");
        let message = "token eyJhbGciOiJSUzUxMiJ9.secret has expired".to_owned();
        assert_eq!(
            redact(message, Some(&header)),
            "token [redacted] has expired"
        );
        assert_eq!(redact("no token".to_owned(), None), "no token");
        // A short header value would redact ordinary words; it is left alone.
        let short = HeaderValue::from_static("x");
        assert_eq!(redact("x marks".to_owned(), Some(&short)), "x marks");
    }
}
