//! The [`Api`] as an axum [`Router`](::axum::Router) (feature `axum`).

use ::axum::body::Body;
use ::axum::extract::Request;
use ::axum::Router;

use super::Api;

/// An axum [`Router`] that answers every request with `api`, so a host serves BioT's
/// routes in one line and adds its own around them.
///
/// The API is the router's fallback, not a set of routes: it matches paths itself
/// (under its [base path](Api::base_path)) and answers every other path with BioT's 404.
/// So:
/// - `.merge()` it into the host's router: the host's routes win, everything else
///   reaches the API. (axum refuses to merge two routers that both have a fallback.)
/// - `.nest("/prefix", ...)` it: axum strips the prefix before the API sees the path, so
///   build the API with `.base_path("")` to serve `/prefix/v1/hooks/...`.
///
/// Serving needs axum's `tokio` and `http1` features in the host (this crate needs
/// neither).
///
/// ```
/// use axum::routing::get;
/// use biot_notifications::notifier::DiscardingNotifier;
/// use biot_notifications::api::{self, AllowEveryone, Api};
/// use biot_notifications::{Dispatcher, InMemoryStore};
///
/// let dispatcher = Dispatcher::new(InMemoryStore::new(), DiscardingNotifier);
/// let api = Api::builder(dispatcher.clone()).authorizer(AllowEveryone).build()?;
///
/// // BioT's routes under /dispatcher, next to the host's own.
/// let app = axum::Router::new()
///     .route("/ready", get(|| async { "ok" }))
///     .merge(api::router(api));
///
/// // Or under a prefix of the host's choosing.
/// let at_root = Api::builder(dispatcher).authorizer(AllowEveryone).base_path("").build()?;
/// let nested = axum::Router::new().nest("/hooks", api::router(at_root));
/// # let _ = (app, nested);
/// # Ok::<(), biot_notifications::api::ApiBuildError>(())
/// ```
pub fn router(api: Api) -> Router {
    Router::new().fallback(move |request: Request| {
        let api = api.clone();
        async move { api.handle(request).await.map(Body::from) }
    })
}
