//! [`TokenAuthorizer`]: the API's [`Authorizer`] on BioT bearer tokens.

use std::collections::BTreeMap;

use async_trait::async_trait;
use http::header::AUTHORIZATION;
use http::request::Parts;

use super::{Claims, TokenRefusal, TokenVerifier};
use crate::api::{AuthorizationError, Authorizer, Permission};

/// Authorizes the API's calls with BioT tokens: `Authorization: Bearer <token>`, verified
/// by a [`TokenVerifier`], whose `scopes` must contain the operation's permission
/// (`DISPATCHER_SUBSCRIPTIONS_SUBSCRIBE`, `..._UNSUBSCRIBE`, `..._SEARCH` unless
/// configured otherwise).
///
/// A missing, malformed, badly signed, expired or not-yet-valid token is answered 401
/// `TOKEN_NOT_VALID`; a valid token without the permission 403 `ACCESS_DENIED`, as
/// BioT does. The answer says why, never with the token.
///
/// ```
/// use biot_notifications::api::{Api, Permission};
/// use biot_notifications::token::{PublicKey, TokenAuthorizer, TokenVerifier};
/// use biot_notifications::{notifier::DiscardingNotifier, Dispatcher, InMemoryStore};
///
/// # let pem = include_str!("../../tests/fixtures/keys/test-only-a.public.pem");
/// let authorizer = TokenAuthorizer::new(TokenVerifier::new(PublicKey::from_pem_or_base64(pem)?))
///     .with_permission(Permission::Search, "MY_SEARCH_PERMISSION");
/// let api = Api::builder(Dispatcher::new(InMemoryStore::new(), DiscardingNotifier))
///     .authorizer(authorizer)
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct TokenAuthorizer {
    verifier: TokenVerifier,
    permissions: BTreeMap<Permission, String>,
}

impl TokenAuthorizer {
    /// Checks tokens with `verifier`, for BioT's permission names.
    pub fn new(verifier: TokenVerifier) -> TokenAuthorizer {
        TokenAuthorizer {
            verifier,
            permissions: BTreeMap::new(),
        }
    }

    /// Requires `scope` instead of BioT's name for `operation`'s permission.
    #[must_use]
    pub fn with_permission(mut self, operation: Permission, scope: impl Into<String>) -> Self {
        self.permissions.insert(operation, scope.into());
        self
    }

    /// The scope a token needs for `operation`.
    pub fn required_scope(&self, operation: Permission) -> &str {
        self.permissions
            .get(&operation)
            .map_or(operation.as_str(), String::as_str)
    }

    /// The request's bearer token, verified for `operation`: its claims.
    ///
    /// # Errors
    /// [`AuthorizationError::Unauthenticated`] when the request has no single bearer
    /// token or the token is refused; [`AuthorizationError::AccessDenied`] when it lacks
    /// the permission.
    pub fn check(
        &self,
        request: &Parts,
        operation: Permission,
    ) -> Result<Claims, AuthorizationError> {
        let token = bearer_token(request)?;
        self.verifier
            .verify(token, self.required_scope(operation))
            .map_err(|refusal| match refusal {
                TokenRefusal::MissingPermission { required } => AuthorizationError::access_denied(
                    format!("the token lacks the permission {required}"),
                ),
                other => AuthorizationError::unauthenticated(other.to_string()),
            })
    }
}

/// The token of the request's one `Authorization: Bearer` header.
fn bearer_token(request: &Parts) -> Result<&str, AuthorizationError> {
    let unauthenticated = AuthorizationError::unauthenticated;
    let mut values = request.headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(unauthenticated(
            "the request needs one Authorization header with a bearer token",
        ));
    };
    let value = value
        .to_str()
        .map_err(|_| unauthenticated("the Authorization header is not text"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(unauthenticated(
            "the Authorization header is not a bearer token",
        )),
    }
}

#[async_trait]
impl Authorizer for TokenAuthorizer {
    async fn authorize(
        &self,
        request: &Parts,
        permission: Permission,
    ) -> Result<(), AuthorizationError> {
        self.check(request, permission).map(drop)
    }
}
