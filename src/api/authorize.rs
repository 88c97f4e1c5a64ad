//! Authorisation: the [`Permission`] each call needs, the host's [`Authorizer`] that
//! checks it, and [`AllowEveryone`], the named choice to check nothing.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use http::request::Parts;

use super::Api;
use crate::dispatcher::shared::into_shared;
use crate::error::Error;

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

/// The authorizer that allows every call: anyone who can reach the API may subscribe,
/// unsubscribe and search. For local development and tests only.
///
/// There is no default authorizer: an [`Api`] is built with the host's token check or
/// with this one, by name, so that an open API is always a visible choice.
///
/// ```
/// use biot_notifications::api::{AllowEveryone, Api};
/// use biot_notifications::notifier::DiscardingNotifier;
/// use biot_notifications::{Dispatcher, InMemoryStore};
///
/// let api = Api::builder(Dispatcher::new(InMemoryStore::new(), DiscardingNotifier))
///     .authorizer(AllowEveryone)
///     .build()?;
/// # let _ = api;
/// # Ok::<(), biot_notifications::api::ApiBuildError>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowEveryone;

#[async_trait]
impl Authorizer for AllowEveryone {
    async fn authorize(&self, _: &Parts, _: Permission) -> Result<(), Error> {
        Ok(())
    }
}

/// How an [`Api`] checks callers: not at all, as chosen with [`AllowEveryone`], or
/// through the host's authorizer.
#[derive(Clone, Debug)]
pub(super) enum Authorization {
    /// [`AllowEveryone`]: nothing to call (and no future to box per request).
    Everyone,
    /// The host's authorizer.
    Checked(Arc<dyn Authorizer>),
}

impl Authorization {
    pub(super) fn of<A: Authorizer>(authorizer: A) -> Self {
        if (&authorizer as &dyn Any).is::<AllowEveryone>() {
            Authorization::Everyone
        } else {
            Authorization::Checked(into_shared(authorizer, |authorizer| {
                Arc::new(authorizer) as Arc<dyn Authorizer>
            }))
        }
    }
}

impl Api {
    pub(super) async fn authorize(
        &self,
        parts: &Parts,
        permission: Permission,
    ) -> Result<(), Error> {
        // Through the trait object, not the `Arc`'s forwarding implementation, which
        // would box a second future around the authorizer's.
        let authorizer = match &self.inner.authorization {
            Authorization::Everyone => return Ok(()),
            Authorization::Checked(authorizer) => &**authorizer,
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
}
