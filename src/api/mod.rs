//! BioT's dispatcher HTTP surface on plain [`http`] types, with no web framework.
//!
//! [`Api::handle`] takes any `http::Request` whose body is an [`http_body::Body`] and
//! always answers with an `http::Response<Bytes>`: every failure is BioT's
//! `ErrorResponse`, never an `Err` and never a panic. A host mounts it under any server
//! (hyper, axum, a Lambda adapter) in a few lines; with the `axum` feature,
//! `router` (below) does it in one.
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
//! - The default [`environment`](Api::environment) is `""`: an unconfigured service
//!   says nothing rather than claim to be `production`.
//! - Paths match exactly: no trailing slash, no case folding, no percent-decoding.
//! - Checks run cheapest and least revealing first: route and method, then the
//!   [`Authorizer`], then the content type, then the body's size, then its contents. The
//!   body is never read before the caller is authorized, and never past the limit.
//! - An internal failure (a store error, a panic in a store or an authorizer) is a 500
//!   `INTERNAL_SERVER_ERROR` with a fixed message and empty details: the cause is for
//!   the host's logs, not the caller. Every error response carries an [`ErrorReport`]
//!   in its extensions, with the full error, for those logs.

use std::error::Error as StdError;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::{Buf, Bytes};
use futures_util::FutureExt;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE,
};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::Instrument;

use crate::dispatcher::Dispatcher;
use crate::error::{echo, BoxError, Error};
use crate::notification::TraceParent;
use crate::search::{SearchRequest, SearchResponse};
use crate::subscription::SubscribeRequest;

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

/// The message of every 5xx error response; the cause goes to the host's logs only.
const INTERNAL_MESSAGE: &str = "an internal error occurred";

/// What replaces the caller's credentials if an authorizer echoes them in a message.
const REDACTED: &str = "[redacted]";

const SUBSCRIBE_PATH: &str = "/v1/hooks/notifications/subscribe";
const UNSUBSCRIBE_PATH: &str = "/v1/hooks/notifications/unsubscribe";
const SEARCH_PATH: &str = "/v1/hooks/notifications";
const HEALTH_CHECK_PATH: &str = "/system/healthCheck";

/// A BioT permission a subscription call requires; what an [`Authorizer`] is asked about.
///
/// ```
/// use biot_notifications::api::Permission;
///
/// assert_eq!(Permission::Subscribe.as_str(), "DISPATCHER_SUBSCRIPTIONS_SUBSCRIBE");
/// assert_eq!(Permission::Search.to_string(), "DISPATCHER_SUBSCRIPTIONS_SEARCH");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Permission {
    /// `DISPATCHER_SUBSCRIPTIONS_SUBSCRIBE`: `POST .../subscribe`.
    Subscribe,
    /// `DISPATCHER_SUBSCRIPTIONS_UNSUBSCRIBE`: `POST .../unsubscribe`.
    Unsubscribe,
    /// `DISPATCHER_SUBSCRIPTIONS_SEARCH`: `GET .../notifications`.
    Search,
}

impl Permission {
    /// Every permission, in route order.
    pub const ALL: &'static [Permission] = &[
        Permission::Subscribe,
        Permission::Unsubscribe,
        Permission::Search,
    ];

    /// BioT's name for the permission, as in its tokens and its spec.
    pub const fn as_str(self) -> &'static str {
        match self {
            Permission::Subscribe => "DISPATCHER_SUBSCRIPTIONS_SUBSCRIBE",
            Permission::Unsubscribe => "DISPATCHER_SUBSCRIPTIONS_UNSUBSCRIBE",
            Permission::Search => "DISPATCHER_SUBSCRIPTIONS_SEARCH",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decides whether a request may make a subscription call; the host's token check.
///
/// BioT calls need a bearer token carrying the route's [`Permission`]; verifying it
/// (signature, expiry, permissions) is the host's job, plugged in here. The authorizer
/// sees the request's method, URI and headers, never its body: it runs before the body
/// is read. It is not consulted for the public health check.
///
/// Refuse with [`Error::Unauthenticated`] (answered 401 `TOKEN_NOT_VALID`) or
/// [`Error::AccessDenied`] (403 `ACCESS_DENIED`); the reason becomes the error
/// message, so it must not contain the token (the `Authorization` header's value is
/// redacted from it anyway). Any other error is answered as an internal error (500).
///
/// ```
/// use async_trait::async_trait;
/// use biot_notifications::api::{Authorizer, Permission};
/// use biot_notifications::Error;
///
/// /// Lets through requests bearing one fixed token: enough for a local setup.
/// #[derive(Debug)]
/// struct StaticToken(String);
///
/// #[async_trait]
/// impl Authorizer for StaticToken {
///     async fn authorize(&self, request: &http::request::Parts, _: Permission) -> Result<(), Error> {
///         let token = request
///             .headers
///             .get(http::header::AUTHORIZATION)
///             .and_then(|value| value.to_str().ok())
///             .and_then(|value| value.strip_prefix("Bearer "));
///         match token {
///             Some(token) if token == self.0 => Ok(()),
///             Some(_) => Err(Error::Unauthenticated { reason: "unknown token".into() }),
///             None => Err(Error::Unauthenticated { reason: "no bearer token".into() }),
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait Authorizer: fmt::Debug + Send + Sync + 'static {
    /// Allows the request, or refuses it.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] or [`Error::AccessDenied`] to refuse; anything else
    /// is taken as the authorizer's own failure.
    async fn authorize(&self, request: &Parts, permission: Permission) -> Result<(), Error>;
}

macro_rules! forward_authorizer {
    ($($pointer:ident),+) => {$(
        #[async_trait]
        impl<T: Authorizer + ?Sized> Authorizer for $pointer<T> {
            async fn authorize(&self, request: &Parts, permission: Permission) -> Result<(), Error> {
                (**self).authorize(request, permission).await
            }
        }
    )+};
}

forward_authorizer!(Arc, Box);

/// BioT's error body, as every failed call answers it.
///
/// `{"code", "message", "serviceName", "traceId", "environment", "details"}`; clients
/// may deserialise error responses into it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponse {
    /// BioT's error code, e.g. `INVALID_ACTION_NAME`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// The service that answered (see [`Api::service_name`]).
    pub service_name: String,
    /// The request's trace id: from its `traceparent`, or generated.
    pub trace_id: String,
    /// The deployment (see [`Api::environment`]).
    pub environment: String,
    /// Machine-readable particulars of the error; empty for internal errors.
    #[serde(default)]
    pub details: Map<String, Value>,
}

/// The health check's body (BioT's `VersionResponse`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionResponse<'a> {
    version: &'a str,
    trace_id: &'a str,
}

/// What went wrong, attached to the extensions of every error response for the host's
/// logs and metrics.
///
/// The body of a 5xx says only "an internal error occurred"; the report keeps the
/// [`Error`] with its source (the store's own error, the panic's message), so a host
/// middleware can log it next to the trace id the caller was given.
///
/// ```
/// # futures_util::FutureExt::now_or_never(async {
/// # use biot_notifications::notifier::DiscardingNotifier;
/// # use biot_notifications::{Dispatcher, InMemoryStore};
/// use biot_notifications::api::{Api, ErrorReport};
///
/// let api = Api::new(Dispatcher::new(InMemoryStore::new(), DiscardingNotifier));
/// let response = api.handle(http::Request::get("/nowhere").body(String::new())?).await;
/// let report = response.extensions().get::<ErrorReport>().expect("every error has a report");
/// assert_eq!(report.error().code(), "NOT_FOUND");
/// assert_eq!(report.trace_id().len(), 32);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap().unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct ErrorReport {
    error: Arc<Error>,
    trace_id: Arc<str>,
}

impl ErrorReport {
    /// The error, with its [source](std::error::Error::source) chain.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The trace id the error response carries.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }
}

/// The dispatcher's HTTP surface; see the [module docs](self) for the routes.
///
/// Cheap to clone (one reference count): clones share the dispatcher and options.
/// Configure it before sharing it; each option method returns the changed `Api`.
///
/// ```
/// use std::sync::Arc;
/// use biot_notifications::api::Api;
/// use biot_notifications::notifier::DiscardingNotifier;
/// use biot_notifications::{Dispatcher, InMemoryStore};
///
/// let api = Api::new(Dispatcher::new(InMemoryStore::new(), DiscardingNotifier))
///     .base_path("/notifications/")   // served at /notifications/v1/hooks/...
///     .max_body_bytes(16 * 1024)
///     .service_name("notification-dispatcher")
///     .environment("staging");
/// ```
#[derive(Clone, Debug)]
pub struct Api {
    inner: Arc<Options>,
}

#[derive(Clone, Debug)]
struct Options {
    dispatcher: Dispatcher,
    base_path: String,
    max_body_bytes: usize,
    service_name: String,
    environment: String,
    authorizer: Option<Arc<dyn Authorizer>>,
}

impl Api {
    /// The surface of `dispatcher`, with the defaults: base path [`DEFAULT_BASE_PATH`],
    /// body limit [`DEFAULT_MAX_BODY_BYTES`], service name [`DEFAULT_SERVICE_NAME`],
    /// environment [`DEFAULT_ENVIRONMENT`], and no authorizer (every call is allowed).
    pub fn new(dispatcher: Dispatcher) -> Self {
        Api {
            inner: Arc::new(Options {
                dispatcher,
                base_path: DEFAULT_BASE_PATH.to_owned(),
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                service_name: DEFAULT_SERVICE_NAME.to_owned(),
                environment: DEFAULT_ENVIRONMENT.to_owned(),
                authorizer: None,
            }),
        }
    }

    /// Serves the routes under `base_path` instead of [`DEFAULT_BASE_PATH`].
    ///
    /// Trailing slashes are dropped and a missing leading slash is added, so
    /// `"dispatcher/"` is `"/dispatcher"`; `""` (or `"/"`) serves the routes at the root,
    /// as when a router strips the prefix itself.
    #[must_use]
    pub fn base_path(mut self, base_path: impl Into<String>) -> Self {
        let base_path = base_path.into();
        let trimmed = base_path.trim_end_matches('/');
        let normalised = if trimmed.is_empty() || trimmed.starts_with('/') {
            trimmed.to_owned()
        } else {
            format!("/{trimmed}")
        };
        Arc::make_mut(&mut self.inner).base_path = normalised;
        self
    }

    /// Answers bodies longer than `max_body_bytes` with 413, reading no further.
    #[must_use]
    pub fn max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        Arc::make_mut(&mut self.inner).max_body_bytes = max_body_bytes;
        self
    }

    /// The `serviceName` put in error responses.
    #[must_use]
    pub fn service_name(mut self, service_name: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.inner).service_name = service_name.into();
        self
    }

    /// The `environment` put in error responses, e.g. `production` or `develop`.
    #[must_use]
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.inner).environment = environment.into();
        self
    }

    /// Checks every subscription call with `authorizer` (the health check stays public).
    #[must_use]
    pub fn authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        Arc::make_mut(&mut self.inner).authorizer = Some(authorizer);
        self
    }

    /// The dispatcher behind the surface.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.inner.dispatcher
    }

    /// Answers one request.
    ///
    /// Never fails and never panics: every failure, including a panic in the store or
    /// the authorizer, is answered with BioT's [`ErrorResponse`] and the matching
    /// status. The returned future is `Send` when the body is.
    ///
    /// ```
    /// # futures_util::FutureExt::now_or_never(async {
    /// use biot_notifications::api::Api;
    /// use biot_notifications::notifier::DiscardingNotifier;
    /// use biot_notifications::{Dispatcher, InMemoryStore};
    ///
    /// let api = Api::new(Dispatcher::new(InMemoryStore::new(), DiscardingNotifier));
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
            Ok(Err(error)) => self.error_response(error, trace_id.as_str(), authorization.as_ref()),
            Err(panic) => {
                let error = Error::Internal {
                    source: panic_message(panic.as_ref()).into(),
                };
                self.error_response(error, trace_id.as_str(), None)
            }
        });
        if is_head {
            without_body(response)
        } else {
            response
        }
    }

    async fn respond<B>(
        &self,
        request: Request<B>,
        body_headers: &BodyHeaders,
        trace_id: &TraceId,
    ) -> Result<Response<Bytes>, Error>
    where
        B: Body + Send,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let dispatcher = &self.inner.dispatcher;
        match self.route(&parts)? {
            Route::Subscribe => {
                self.authorize(&parts, Permission::Subscribe).await?;
                let body = self.read_body(body_headers, body).await?;
                let request = SubscribeRequest::from_json(&body)?;
                let subscription = dispatcher.subscribe(&request).await?;
                json_response_with(StatusCode::CREATED, |out| subscription.write_json(out))
            }
            Route::Unsubscribe => {
                self.authorize(&parts, Permission::Unsubscribe).await?;
                let body = self.read_body(body_headers, body).await?;
                let request = SubscribeRequest::from_json(&body)?;
                dispatcher.unsubscribe(&request).await?;
                let mut response = Response::new(Bytes::new());
                *response.status_mut() = StatusCode::NO_CONTENT;
                Ok(response)
            }
            Route::Search => {
                self.authorize(&parts, Permission::Search).await?;
                let request = SearchRequest::from_query(parts.uri.query())?;
                let page = dispatcher.search(&request).await?;
                json_response(StatusCode::OK, &SearchResponse::new(&request, page))
            }
            // Public: load balancers probe it without a token.
            Route::HealthCheck => {
                let version = VersionResponse {
                    version: env!("CARGO_PKG_VERSION"),
                    trace_id: trace_id.as_str(),
                };
                json_response(StatusCode::OK, &version)
            }
        }
    }

    /// The route a request names, or why none: 404 for an unknown path, 405 for a
    /// known path with the wrong method.
    fn route(&self, parts: &Parts) -> Result<Route, Error> {
        let path = parts.uri.path();
        let route = path
            .strip_prefix(self.inner.base_path.as_str())
            .and_then(Route::from_path)
            .ok_or_else(|| Error::RouteNotFound { path: echo(path) })?;
        if route.allows(&parts.method) {
            Ok(route)
        } else {
            Err(Error::MethodNotAllowed {
                method: parts.method.clone(),
                allowed: route.allow_header(),
            })
        }
    }

    async fn authorize(&self, parts: &Parts, permission: Permission) -> Result<(), Error> {
        // Through the trait object, not the `Arc`'s forwarding implementation, which
        // would box a second future around the authorizer's.
        let Some(authorizer) = self.inner.authorizer.as_deref() else {
            return Ok(());
        };
        match authorizer.authorize(parts, permission).await {
            Ok(()) => Ok(()),
            Err(refusal @ (Error::Unauthenticated { .. } | Error::AccessDenied { .. })) => {
                Err(refusal)
            }
            // An authorizer that fails otherwise is broken, not refusing: the caller is
            // not at fault, and its error's details are not the caller's business.
            Err(other) => Err(Error::Internal {
                source: Box::new(other),
            }),
        }
    }

    /// Reads a JSON request body of at most the configured size.
    async fn read_body<B>(&self, headers: &BodyHeaders, body: B) -> Result<Bytes, Error>
    where
        B: Body + Send,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        if let Err(content_type) = &headers.content_type {
            return Err(Error::UnsupportedMediaType {
                content_type: content_type
                    .as_ref()
                    .map(|value| echo(&String::from_utf8_lossy(value.as_bytes()))),
            });
        }
        let limit = self.inner.max_body_bytes;
        let too_large = || Error::PayloadTooLarge { limit };
        // Refuse what is declared too large before reading a byte of it.
        let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
        let declared_too_large = headers
            .longest_declared_length
            .is_some_and(|length| length > limit_u64);
        if declared_too_large || body.size_hint().lower() > limit_u64 {
            return Err(too_large());
        }
        // Undeclared lengths (chunked bodies) are cut off at the limit while reading.
        match data_of(Limited::new(body, limit)).await {
            Ok(data) => Ok(data),
            Err(error) if is_length_limit(&*error) => Err(too_large()),
            Err(_) => Err(Error::MalformedBody {
                reason: "the request body could not be read".to_owned(),
            }),
        }
    }

    fn error_response(
        &self,
        error: Error,
        trace_id: &str,
        authorization: Option<&HeaderValue>,
    ) -> Response<Bytes> {
        let status = error.status();
        let (message, details) = if status.is_client_error() {
            (redact(error.to_string(), authorization), error.details())
        } else {
            tracing::error!(
                code = error.code(),
                error = &error as &(dyn std::error::Error + 'static),
                "request failed inside the service"
            );
            // Whatever went wrong inside stays inside: a store's name, a source error's
            // text or a panic message could tell an attacker about the deployment.
            (INTERNAL_MESSAGE.to_owned(), Map::new())
        };
        let body = ErrorResponse {
            code: error.code().to_owned(),
            message,
            service_name: self.inner.service_name.clone(),
            trace_id: trace_id.to_owned(),
            environment: self.inner.environment.clone(),
            details,
        };
        let mut response = json_response(status, &body).unwrap_or_else(|_| {
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
        if let Error::MethodNotAllowed { allowed, .. } = &error {
            if let Ok(allowed) = HeaderValue::from_str(allowed) {
                response.headers_mut().insert(ALLOW, allowed);
            }
        }
        response.extensions_mut().insert(ErrorReport {
            error: Arc::new(error),
            trace_id: trace_id.into(),
        });
        response
    }
}

/// The routes, by path after the base path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Subscribe,
    Unsubscribe,
    Search,
    HealthCheck,
}

impl Route {
    fn from_path(path: &str) -> Option<Route> {
        match path {
            SUBSCRIBE_PATH => Some(Route::Subscribe),
            UNSUBSCRIBE_PATH => Some(Route::Unsubscribe),
            SEARCH_PATH => Some(Route::Search),
            HEALTH_CHECK_PATH => Some(Route::HealthCheck),
            _ => None,
        }
    }

    fn allows(self, method: &Method) -> bool {
        match self {
            Route::Subscribe | Route::Unsubscribe => method == Method::POST,
            Route::Search | Route::HealthCheck => method == Method::GET || method == Method::HEAD,
        }
    }

    fn allow_header(self) -> &'static str {
        match self {
            Route::Subscribe | Route::Unsubscribe => "POST",
            Route::Search | Route::HealthCheck => "GET, HEAD",
        }
    }
}

/// A body's data: its only data frame as it is, or the frames joined; trailers are
/// ignored. What `BodyExt::collect` gives, without the queue of frames it keeps first,
/// which cost more than the rest of reading a body of one frame (the usual case).
async fn data_of<B: Body>(body: B) -> Result<Bytes, B::Error> {
    let mut body = std::pin::pin!(body);
    let mut first = Bytes::new();
    let mut joined: Option<Vec<u8>> = None;
    while let Some(frame) = body.frame().await {
        let Ok(mut data) = frame?.into_data() else {
            continue;
        };
        let chunk = data.copy_to_bytes(data.remaining());
        match &mut joined {
            Some(joined) => joined.extend_from_slice(&chunk),
            None if first.is_empty() => first = chunk,
            None => joined = Some([&first[..], &chunk[..]].concat()),
        }
    }
    Ok(joined.map_or(first, Bytes::from))
}

/// W3C Trace Context's header, named once: looking a header up by a `&str` parses the
/// name on every request.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The length of a trace id: 32 lower-case hex digits.
const TRACE_ID_LEN: usize = uuid::fmt::Simple::LENGTH;

/// What the handler reads of a request's headers, found in one pass over them, which
/// compares names (mostly one-byte codes) where four lookups hashed one name each.
/// Where a header has several values, the first counts, as `HeaderMap::get` reads it,
/// except `Content-Length`, of which every value is held to the limit.
struct ReadHeaders {
    /// From the first `traceparent`.
    trace_id: TraceId,
    /// The first `Authorization`, kept only to scrub it from error messages (a clone:
    /// the request is handed on whole).
    authorization: Option<HeaderValue>,
    body_headers: BodyHeaders,
}

/// What the headers say of the body, for the routes that read one. Lent, not moved, to
/// the route's future, which must stay below the size where an allocation of it costs
/// more (~1 KB).
struct BodyHeaders {
    /// `Ok` when the first `Content-Type` is JSON; else that value (a clone), if any, for
    /// the error that reading the body raises.
    content_type: Result<(), Option<HeaderValue>>,
    /// The longest of the `Content-Length`s that parse as a number.
    longest_declared_length: Option<u64>,
}

impl ReadHeaders {
    fn of(headers: &HeaderMap) -> Self {
        let (mut traceparent, mut authorization, mut content_type) = (None, None, None);
        let mut longest_declared_length = None;
        for (name, value) in headers {
            if name == CONTENT_TYPE {
                content_type.get_or_insert(value);
            } else if name == CONTENT_LENGTH {
                let length = value
                    .to_str()
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
                longest_declared_length = longest_declared_length.max(length);
            } else if name == AUTHORIZATION {
                authorization.get_or_insert(value);
            } else if name == TRACEPARENT {
                traceparent.get_or_insert(value);
            }
        }
        ReadHeaders {
            trace_id: TraceId::of(traceparent),
            authorization: authorization.cloned(),
            body_headers: BodyHeaders {
                content_type: match content_type {
                    Some(value) if is_json_content_type(value) => Ok(()),
                    other => Err(other.cloned()),
                },
                longest_declared_length,
            },
        }
    }
}

/// A request's trace id: that of its `traceparent` when it is valid, else a fresh one,
/// so that every error a caller reports can be found in the logs. Made when first
/// written, and then kept: most requests are answered without an error and without
/// anyone listening to their span, and never need one (a fresh one costs ~200
/// instructions: a random number and 32 hex digits).
struct TraceId {
    /// The valid `traceparent`'s trace id.
    from_traceparent: Option<[u8; 16]>,
    /// The id as 32 lower-case hex digits, once asked for.
    text: OnceLock<[u8; TRACE_ID_LEN]>,
}

impl TraceId {
    fn of(traceparent: Option<&HeaderValue>) -> Self {
        TraceId {
            from_traceparent: traceparent
                .and_then(|value| value.to_str().ok())
                .and_then(|value| TraceParent::parse(value).ok())
                .map(|traceparent| traceparent.trace_id()),
            text: OnceLock::new(),
        }
    }

    fn as_str(&self) -> &str {
        let text = self.text.get_or_init(|| {
            // A trace id is not a UUID, but 16 bytes that uuid writes as the same 32 hex
            // digits.
            let id = self
                .from_traceparent
                .map_or_else(uuid::Uuid::new_v4, uuid::Uuid::from_bytes);
            let mut text = [0; TRACE_ID_LEN];
            id.simple().encode_lower(&mut text);
            text
        });
        std::str::from_utf8(text).expect("hex digits are ASCII")
    }
}

/// Writes the id, making it first if it is not made yet.
impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Accepts `application/json` and `application/*+json`, in any case, with parameters;
/// a `charset` other than UTF-8 is refused, since JSON is UTF-8 (RFC 8259).
fn is_json_content_type(value: &HeaderValue) -> bool {
    // The usual value first, without taking it apart.
    value.as_bytes().eq_ignore_ascii_case(b"application/json") || value.to_str().is_ok_and(is_json)
}

fn is_json(content_type: &str) -> bool {
    let mut pieces = content_type.split(';');
    let essence = pieces.next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.as_bytes();
    let json_subtype = subtype.eq_ignore_ascii_case(b"json")
        || (subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case(b"+json"));
    let utf8 = pieces.all(|parameter| match parameter.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let charset = value.trim().trim_matches('"');
            charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    });
    kind.eq_ignore_ascii_case("application") && json_subtype && utf8
}

/// The message a panic was raised with, for the [`ErrorReport`] (never the response).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    format!("a request handler panicked: {message}")
}

/// Whether a body error is, or was caused by, hitting a length limit (ours, or one a
/// host's middleware put on the body before us).
fn is_length_limit(error: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<LengthLimitError>() {
            return true;
        }
        current = error.source();
    }
    false
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

fn json_response<T: Serialize + ?Sized>(
    status: StatusCode,
    body: &T,
) -> Result<Response<Bytes>, Error> {
    json_response_with(status, |out| serde_json::to_writer(out, body))
}

/// A JSON response whose body `write` appends to an empty buffer.
fn json_response_with(
    status: StatusCode,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
) -> Result<Response<Bytes>, Error> {
    // Room for a subscription or an error up front, where `to_vec` grows from 128 bytes.
    let mut buffer = Vec::with_capacity(512);
    write(&mut buffer).map_err(|error| Error::Internal {
        source: Box::new(error),
    })?;
    let mut response = Response::new(Bytes::from(buffer));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised_with_parameters_and_any_case() {
        for accepted in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/vnd.biot+json",
            "application/problem+JSON; charset=utf-8",
        ] {
            assert!(is_json(accepted), "{accepted}");
        }
        for refused in [
            "text/plain",
            "text/json",
            "application/jsonx",
            "application/+json",
            "application/x-www-form-urlencoded",
            "json",
            "application/json; charset=latin1",
            "",
        ] {
            assert!(!is_json(refused), "{refused}");
        }
    }

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

    #[test]
    fn base_paths_are_normalised() {
        fn base(path: &str) -> String {
            let dispatcher = crate::Dispatcher::new(crate::InMemoryStore::new(), NoNotifier);
            Api::new(dispatcher).base_path(path).inner.base_path.clone()
        }
        assert_eq!(base("/dispatcher/"), "/dispatcher");
        assert_eq!(base("dispatcher"), "/dispatcher");
        assert_eq!(base("/"), "");
        assert_eq!(base(""), "");
        assert_eq!(base("/a/b//"), "/a/b");
    }

    #[derive(Debug)]
    struct NoNotifier;

    #[async_trait]
    impl crate::Notifier for NoNotifier {
        async fn notify(
            &self,
            _: &crate::Endpoint,
            _: &crate::notification::PreparedNotification,
        ) -> Result<(), crate::notifier::DeliveryError> {
            Ok(())
        }
    }
}
