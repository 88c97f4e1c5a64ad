//! The [`Api`] as a [`tower_service::Service`] (feature `tower`), so that any hyper or
//! tower server mounts it as it is.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;

use super::Api;
use crate::error::BoxError;

/// The future an [`Api`] answers a request with as a `tower` service; `Send`, and
/// never fails (every failure is BioT's error response).
pub struct ApiFuture {
    responding: Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>,
}

impl fmt::Debug for ApiFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiFuture").finish_non_exhaustive()
    }
}

impl Future for ApiFuture {
    type Output = Result<Response<Full<Bytes>>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.responding.as_mut().poll(cx).map(Ok)
    }
}

/// Answers each request with [`Api::handle`]; always ready, never an `Err`.
///
/// The response body is a [`Full`] of the bytes `handle` answers, a body hyper and tower
/// servers send as it is. Mount it with hyper-util's `TowerToHyperService`, or under any
/// tower stack:
///
/// ```
/// # futures_util::FutureExt::now_or_never(async {
/// use biot_notifications::api::{AllowEveryone, Api};
/// use biot_notifications::notifier::DiscardingNotifier;
/// use biot_notifications::{Dispatcher, InMemoryStore};
/// use tower::ServiceExt;
///
/// let api = Api::builder(Dispatcher::new(InMemoryStore::new(), DiscardingNotifier))
///     .authorizer(AllowEveryone)
///     .build()?;
/// let health = http::Request::get("/dispatcher/system/healthCheck").body(String::new())?;
/// let response = api.oneshot(health).await?;
/// assert_eq!(response.status(), 200);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap().unwrap();
/// ```
impl<B> tower_service::Service<Request<B>> for Api
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ApiFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // No capacity of its own to wait for: the store and authorizer are called per
        // request, and back-pressure is the server's.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ApiFuture {
        let api = self.clone();
        ApiFuture {
            responding: Box::pin(async move { api.handle(request).await.map(Full::new) }),
        }
    }
}
