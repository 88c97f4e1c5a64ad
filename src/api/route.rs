//! Routing: which route a request names, and what each route answers.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use serde::Serialize;

use super::read::{BodyHeaders, TraceId};
use super::{Api, ApiError, Permission};
use crate::search::{SearchRequest, SearchResponse};
use crate::subscription::SubscribeRequest;
use crate::wire_error::{echo, BoxError};

const SUBSCRIBE_PATH: &str = "/v1/hooks/notifications/subscribe";
const UNSUBSCRIBE_PATH: &str = "/v1/hooks/notifications/unsubscribe";
const SEARCH_PATH: &str = "/v1/hooks/notifications";
const HEALTH_CHECK_PATH: &str = "/system/healthCheck";

/// The health check's body (BioT's `VersionResponse`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionResponse<'a> {
    version: &'a str,
    trace_id: &'a str,
}

impl Api {
    pub(super) async fn respond<B>(
        &self,
        request: Request<B>,
        body_headers: &BodyHeaders,
        trace_id: &TraceId,
    ) -> Result<Response<Bytes>, ApiError>
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
    fn route(&self, parts: &Parts) -> Result<Route, ApiError> {
        let path = parts.uri.path();
        let route = path
            .strip_prefix(self.inner.base_path.as_str())
            .and_then(Route::from_path)
            .ok_or_else(|| ApiError::RouteNotFound { path: echo(path) })?;
        if route.allows(&parts.method) {
            Ok(route)
        } else {
            Err(ApiError::MethodNotAllowed {
                method: parts.method.clone(),
                allowed: route.allow_header(),
            })
        }
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

pub(super) fn json_response<T: Serialize + ?Sized>(
    status: StatusCode,
    body: &T,
) -> Result<Response<Bytes>, ApiError> {
    json_response_with(status, |out| serde_json::to_writer(out, body))
}

/// A JSON response whose body `write` appends to an empty buffer.
fn json_response_with(
    status: StatusCode,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
) -> Result<Response<Bytes>, ApiError> {
    // Room for a subscription or an error up front, where `to_vec` grows from 128 bytes.
    let mut buffer = Vec::with_capacity(512);
    write(&mut buffer).map_err(|error| ApiError::Internal {
        source: Box::new(error),
    })?;
    let mut response = Response::new(Bytes::from(buffer));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}
