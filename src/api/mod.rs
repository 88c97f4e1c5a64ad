//! BioT's dispatcher HTTP surface on plain [`http`] types, with no web framework.
//!
//! [`Api::handle`] takes any `http::Request` whose body is an [`http_body::Body`] and
//! always answers with an `http::Response<Bytes>`: every failure is BioT's
//! `ErrorResponse`, never an `Err` and never a panic. A host mounts it under any server
//! (hyper, axum, a Lambda adapter) in a few lines; with the `axum` feature,
//! `router` (below) does it in one, and with the `tower` feature the `Api` is a
//! `tower::Service` any hyper or tower server takes as it is.
//!
//! Building an `Api` takes an explicit choice of [`Authorizer`]: the host's token check,
//! or [`AllowEveryone`], named, for local development and tests. There is no default
//! that lets every caller in.
//!
//! | method | path (after the base path, default `/dispatcher`) | success |
//! |---|---|---|
//! | `POST` | `/v1/hooks/notifications/subscribe` | 201, the subscription |
//! | `POST` | `/v1/hooks/notifications/unsubscribe` | 204, no body |
//! | `GET`, `HEAD` | `/v1/hooks/notifications?searchRequest=<url-encoded JSON>` | 200, `{data, metadata}` |
//! | `GET`, `HEAD` | `/system/healthCheck` (public) | 200, `{version, traceId}` |
//!
//! Besides the statuses BioT's spec declares (400, 401, 403, 404 for unsubscribe, 500),
//! the surface answers 404 `NOT_FOUND` for an unknown path, 405 `METHOD_NOT_ALLOWED`
//! (with an `Allow` header) for a wrong method, 409 for a duplicate subscription, 413
//! `PAYLOAD_TOO_LARGE` and 415 `UNSUPPORTED_MEDIA_TYPE`.
//!
//! ## Choices where BioT is silent
//! - `HEAD` is served on the `GET` routes, as HTTP asks of a server: the same status and
//!   headers as `GET` (including `content-length`), with an empty body. It needs the
//!   same permission as the `GET`.
//! - The default [`environment`](ApiBuilder::environment) is `""`: an unconfigured service
//!   says nothing rather than claim to be `production`.
//! - Paths match exactly: no trailing slash, no case folding, no percent-decoding.
//! - Checks run cheapest and least revealing first: route and method, then the
//!   [`Authorizer`], then the content type, then the body's size, then its contents. The
//!   body is never read before the caller is authorized, and never past the limit.
//! - An internal failure (a store error, a panic in a store or an authorizer) is a 500
//!   `INTERNAL_SERVER_ERROR` with a fixed message and empty details: the cause is for
//!   the host's logs, not the caller. Every error response carries an [`ErrorReport`]
//!   in its extensions, with the full error, for those logs.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use http::header::{HeaderValue, CONTENT_LENGTH};
use http::{Method, Request, Response};
use http_body::Body;
use tracing::Instrument;

use crate::dispatcher::Dispatcher;
use crate::wire_error::BoxError;

mod api_error;
mod authorize;
mod builder;
mod error_response;
mod read;
mod route;
#[cfg(feature = "tower")]
mod tower;

#[cfg(feature = "tower")]
pub use self::tower::ApiFuture;
pub use api_error::ApiError;
pub use authorize::{AllowEveryone, AuthorizationError, Authorizer, Permission};
pub use builder::{ApiBuildError, ApiBuilder};
pub use error_response::{ErrorReport, ErrorResponse};

use authorize::Authorization;

use error_response::panic_message;
use read::ReadHeaders;

#[cfg(feature = "axum")]
mod axum;
#[cfg(feature = "axum")]
pub use self::axum::router;

/// The base path BioT serves the dispatcher under (the spec's server URL).
pub const DEFAULT_BASE_PATH: &str = "/dispatcher";

/// The largest request body read unless configured otherwise: 64 KiB, far above any
/// real subscription request (a few hundred bytes).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// The `serviceName` of error responses unless configured otherwise.
pub const DEFAULT_SERVICE_NAME: &str = "dispatcher";

/// The `environment` of error responses unless configured otherwise: empty, because
/// naming an environment the host did not configure would mislead whoever reads it.
pub const DEFAULT_ENVIRONMENT: &str = "";

/// The dispatcher's HTTP surface; see the [module docs](self) for the routes.
///
/// Built once with [`Api::builder`], which needs an [`Authorizer`]; cheap to clone (one
/// reference count), and clones share the dispatcher and the options, which cannot
/// change after [`build`](ApiBuilder::build).
///
/// ```
/// use biot_notifications::api::{AllowEveryone, Api};
/// use biot_notifications::notifier::DiscardingNotifier;
/// use biot_notifications::{Dispatcher, InMemoryStore};
///
/// let api = Api::builder(Dispatcher::new(InMemoryStore::new(), DiscardingNotifier))
///     .authorizer(AllowEveryone) // local development and tests only
///     .build()?;
/// # let _ = api;
/// # Ok::<(), biot_notifications::api::ApiBuildError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Api {
    inner: Arc<Options>,
}

#[derive(Debug)]
struct Options {
    dispatcher: Dispatcher,
    base_path: String,
    max_body_bytes: usize,
    service_name: String,
    environment: String,
    authorization: Authorization,
}

impl Api {
    /// A builder for the surface of `dispatcher`: choose an [`Authorizer`] (required),
    /// and, if the defaults do not suit, the base path ([`DEFAULT_BASE_PATH`]), the body
    /// limit ([`DEFAULT_MAX_BODY_BYTES`]), the service name ([`DEFAULT_SERVICE_NAME`])
    /// and the environment ([`DEFAULT_ENVIRONMENT`]).
    pub fn builder(dispatcher: Dispatcher) -> ApiBuilder {
        ApiBuilder::new(dispatcher)
    }

    /// The dispatcher behind the surface.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.inner.dispatcher
    }

    /// The base path the routes are served under, normalised (`""` for the root).
    pub fn base_path(&self) -> &str {
        &self.inner.base_path
    }

    /// The largest request body read.
    pub fn max_body_bytes(&self) -> usize {
        self.inner.max_body_bytes
    }

    /// The `serviceName` of error responses.
    pub fn service_name(&self) -> &str {
        &self.inner.service_name
    }

    /// The `environment` of error responses.
    pub fn environment(&self) -> &str {
        &self.inner.environment
    }

    /// Answers one request.
    ///
    /// Never fails and never panics: every failure, including a panic in the store or
    /// the authorizer, is answered with BioT's [`ErrorResponse`] and the matching
    /// status. The returned future is `Send` when the body is.
    ///
    /// ```
    /// # futures_util::FutureExt::now_or_never(async {
    /// use biot_notifications::api::{AllowEveryone, Api};
    /// use biot_notifications::notifier::DiscardingNotifier;
    /// use biot_notifications::{Dispatcher, InMemoryStore};
    ///
    /// let api = Api::builder(Dispatcher::new(InMemoryStore::new(), DiscardingNotifier))
    ///     .authorizer(AllowEveryone)
    ///     .build()?;
    ///
    /// let subscribe = http::Request::post("/dispatcher/v1/hooks/notifications/subscribe")
    ///     .header("content-type", "application/json")
    ///     .body(String::from(
    ///         r#"{"entityTypeName": "patient", "actionName": "_create", "endpoint": "https://plugin.example.com/hook"}"#,
    ///     ))?;
    /// let response = api.handle(subscribe).await;
    /// assert_eq!(response.status(), 201);
    /// let created: serde_json::Value = serde_json::from_slice(response.body())?;
    /// assert_eq!(created["actionName"], "_create");
    ///
    /// // Errors are BioT's ErrorResponse, with the trace id of the caller's traceparent.
    /// let unknown = http::Request::post("/dispatcher/v1/hooks/notifications/subscribe")
    ///     .header("content-type", "application/json")
    ///     .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    ///     .body(String::from(
    ///         r#"{"entityTypeName": "patient", "actionName": "_read", "endpoint": "https://plugin.example.com/hook"}"#,
    ///     ))?;
    /// let response = api.handle(unknown).await;
    /// assert_eq!(response.status(), 400);
    /// let error: serde_json::Value = serde_json::from_slice(response.body())?;
    /// assert_eq!(error["code"], "INVALID_ACTION_NAME");
    /// assert_eq!(error["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).expect("the in-memory store never waits").unwrap();
    /// ```
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Bytes>
    where
        B: Body + Send,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let ReadHeaders {
            trace_id,
            authorization,
            body_headers,
        } = ReadHeaders::of(request.headers());
        let is_head = request.method() == Method::HEAD;
        // The path and method, never the query, headers or body (they may carry tokens).
        // The trace id is a field from the start, so that every event of the request
        // carries the id its caller will see in an error; it is made when a subscriber
        // (or a `log` logger) formats the field, not for a span nobody listens to.
        let span = tracing::info_span!(
            "request",
            method = %request.method(),
            path = request.uri().path(),
            trace_id = %trace_id,
        );
        // A panicking store or authorizer must cost one 500, not the connection (or the
        // host's task); nothing of the panic's message reaches the caller.
        // Boxed: the routes' futures make this one nearly 1 KB, which the wrappers
        // below would otherwise copy about on every request.
        let responding = self.respond(request, &body_headers, &trace_id);
        let outcome = AssertUnwindSafe(Box::pin(responding))
            .catch_unwind()
            .instrument(span.clone())
            .await;
        let response = span.in_scope(|| match outcome {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => self.answer_error(error, trace_id.as_str(), authorization.as_ref()),
            Err(panic) => {
                let error = ApiError::Internal {
                    source: panic_message(panic.as_ref()).into(),
                };
                self.answer_error(error, trace_id.as_str(), None)
            }
        });
        if is_head {
            without_body(response)
        } else {
            response
        }
    }
}

/// The answer to a `HEAD`: the `GET`'s status and headers, its length, and no body.
fn without_body(mut response: Response<Bytes>) -> Response<Bytes> {
    let length = std::mem::take(response.body_mut()).len();
    if length > 0 {
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    response
}
