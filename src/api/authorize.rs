//! Authorisation: the [`Permission`] each call needs, the host's [`Authorizer`] that
//! checks it, the [`AuthorizationError`] it refuses or fails with, and [`AllowEveryone`],
//! the named choice to check nothing.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use http::request::Parts;
use http::StatusCode;

use super::{Api, ApiError};
use crate::dispatcher::shared::into_shared;
use crate::wire_error::{BiotError, BoxError};

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
/// Refuse with [`AuthorizationError::Unauthenticated`] (answered 401 `TOKEN_NOT_VALID`)
/// or [`AuthorizationError::AccessDenied`] (403 `ACCESS_DENIED`); the reason becomes the
/// error message, so it must not contain the token (the `Authorization` header's value
/// is redacted from it anyway). An authorizer that cannot decide (its key service is
/// down) fails with [`AuthorizationError::failed`], answered as an internal error (500)
/// with its error kept as the source for the host's logs.
///
/// ```
/// use async_trait::async_trait;
/// use biot_notifications::{AuthorizationError, Authorizer, Permission};
///
/// /// Lets through requests bearing one fixed token: enough for a local setup.
/// #[derive(Debug)]
/// struct StaticToken(String);
///
/// #[async_trait]
/// impl Authorizer for StaticToken {
///     async fn authorize(&self, request: &http::request::Parts, _: Permission) -> Result<(), AuthorizationError> {
///         let token = request
///             .headers
///             .get(http::header::AUTHORIZATION)
///             .and_then(|value| value.to_str().ok())
///             .and_then(|value| value.strip_prefix("Bearer "));
///         match token {
///             Some(token) if token == self.0 => Ok(()),
///             Some(_) => Err(AuthorizationError::unauthenticated("unknown token")),
///             None => Err(AuthorizationError::unauthenticated("no bearer token")),
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait Authorizer: fmt::Debug + Send + Sync + 'static {
    /// Allows the request, or refuses it.
    ///
    /// # Errors
    /// [`AuthorizationError::Unauthenticated`] or [`AuthorizationError::AccessDenied`]
    /// to refuse; [`AuthorizationError::Failed`] for the authorizer's own failure.
    async fn authorize(
        &self,
        request: &Parts,
        permission: Permission,
    ) -> Result<(), AuthorizationError>;
}

macro_rules! forward_authorizer {
    ($($pointer:ident),+) => {$(
        #[async_trait]
        impl<T: Authorizer + ?Sized> Authorizer for $pointer<T> {
            async fn authorize(
                &self,
                request: &Parts,
                permission: Permission,
            ) -> Result<(), AuthorizationError> {
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
    async fn authorize(&self, _: &Parts, _: Permission) -> Result<(), AuthorizationError> {
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
    ) -> Result<(), ApiError> {
        // Through the trait object, not the `Arc`'s forwarding implementation, which
        // would box a second future around the authorizer's.
        let authorizer = match &self.inner.authorization {
            Authorization::Everyone => return Ok(()),
            Authorization::Checked(authorizer) => &**authorizer,
        };
        Ok(authorizer.authorize(parts, permission).await?)
    }
}

/// Why an [`Authorizer`] did not allow a call: it refused the caller, or it failed.
///
/// A refusal's reason becomes the error message (redacted of the caller's credentials);
/// a failure's error is kept as the [source](std::error::Error::source), for the host's
/// logs, and never shown to the caller.
///
/// ```
/// use biot_notifications::{AuthorizationError, BiotError};
///
/// let refused = AuthorizationError::access_denied("DISPATCHER_SUBSCRIPTIONS_SEARCH is missing");
/// assert_eq!((refused.code(), refused.status().as_u16()), ("ACCESS_DENIED", 403));
///
/// let failed = AuthorizationError::failed(std::io::Error::other("the key service is down"));
/// assert_eq!((failed.code(), failed.status().as_u16()), ("INTERNAL_SERVER_ERROR", 500));
/// assert_eq!(std::error::Error::source(&failed).unwrap().to_string(), "the key service is down");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorizationError {
    /// The caller's token is missing or not valid: `401`, `TOKEN_NOT_VALID`.
    #[error("the request's token is not valid: {reason}")]
    Unauthenticated {
        /// Why (never the token itself).
        reason: String,
    },

    /// The caller is authenticated but may not make this call: `403`, `ACCESS_DENIED`.
    #[error("access denied: {reason}")]
    AccessDenied {
        /// Why.
        reason: String,
    },

    /// The authorizer could not decide (its key service is down, ...): `500`,
    /// `INTERNAL_SERVER_ERROR`; the caller is not at fault.
    #[error("the authorizer failed")]
    Failed {
        /// The authorizer's own error.
        #[source]
        source: BoxError,
    },
}

impl AuthorizationError {
    /// An [`AuthorizationError::Unauthenticated`] saying why.
    pub fn unauthenticated(reason: impl Into<String>) -> Self {
        AuthorizationError::Unauthenticated {
            reason: reason.into(),
        }
    }

    /// An [`AuthorizationError::AccessDenied`] saying why.
    pub fn access_denied(reason: impl Into<String>) -> Self {
        AuthorizationError::AccessDenied {
            reason: reason.into(),
        }
    }

    /// An [`AuthorizationError::Failed`]: the authorizer's own failure.
    pub fn failed(source: impl Into<BoxError>) -> Self {
        AuthorizationError::Failed {
            source: source.into(),
        }
    }
}

impl BiotError for AuthorizationError {
    fn code(&self) -> &'static str {
        match self {
            AuthorizationError::Unauthenticated { .. } => "TOKEN_NOT_VALID",
            AuthorizationError::AccessDenied { .. } => "ACCESS_DENIED",
            AuthorizationError::Failed { .. } => "INTERNAL_SERVER_ERROR",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            AuthorizationError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            AuthorizationError::AccessDenied { .. } => StatusCode::FORBIDDEN,
            AuthorizationError::Failed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_401_and_403_and_a_failure_is_a_500_with_its_source() {
        let unauthenticated = AuthorizationError::unauthenticated("no bearer token");
        assert_eq!(unauthenticated.code(), "TOKEN_NOT_VALID");
        assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
        assert!(unauthenticated.details().is_empty());
        assert_eq!(
            unauthenticated.to_string(),
            "the request's token is not valid: no bearer token"
        );
        let denied = AuthorizationError::access_denied("not an admin");
        assert_eq!(denied.code(), "ACCESS_DENIED");
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);
        assert!(denied.details().is_empty());
        let failed = AuthorizationError::failed("the key service is down");
        assert_eq!(failed.code(), "INTERNAL_SERVER_ERROR");
        assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(failed.details().is_empty());
        assert_eq!(
            std::error::Error::source(&failed).unwrap().to_string(),
            "the key service is down"
        );
    }
}
