//! The plugin kit: a received request in, a verified [`Notification`] out.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::{Claims, TokenRefusal, TokenVerifier, ACTION_NOTIFICATION};
use crate::notification::{Notification, HOOKTYPE, HOOKTYPE_NOTIFICATION};

/// Checks what a plugin receives: the `hooktype` header, the body, and the body's `jwt`
/// (RS512 by the platform's key, `ACTION_NOTIFICATION` in `scopes`), as BioT's plugin
/// templates do before acting.
///
/// ```
/// use biot_notifications::token::{NotificationRefusal, NotificationVerifier, PublicKey, TokenVerifier};
///
/// # let platform_key = include_str!("../../tests/fixtures/keys/test-only-a.public.base64");
/// // BIOT_PUBLIC_KEY: the bare base64 BioT gives plugins.
/// let plugin = NotificationVerifier::new(TokenVerifier::new(PublicKey::from_pem_or_base64(platform_key)?));
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("hooktype", http::HeaderValue::from_static("NOTIFICATION"));
/// let refusal = plugin.verify(&headers, br#"{"metadata": {}, "data": {}}"#).unwrap_err();
/// assert!(matches!(refusal, NotificationRefusal::MalformedBody { .. }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct NotificationVerifier {
    tokens: TokenVerifier,
}

/// A notification whose token was verified, with the token's claims.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VerifiedNotification {
    /// The notification, as received (its `jwt` included; `Debug` redacts it).
    pub notification: Notification,
    /// What its token says.
    pub claims: Claims,
}

/// Why a received request is not a notification to act on. Messages never contain
/// the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotificationRefusal {
    /// The `hooktype` header is missing or is not `NOTIFICATION`.
    #[error("the request is not a notification (hooktype header missing or not NOTIFICATION)")]
    NotANotification,
    /// The body is not a BioT notification.
    #[error("the body is not a BioT notification: {reason}")]
    MalformedBody {
        /// What is wrong with it.
        reason: String,
    },
    /// The body has no `jwt`, or a null one.
    #[error("the notification carries no jwt")]
    MissingToken,
    /// The `jwt` was refused.
    #[error("the notification's jwt was refused: {0}")]
    Token(#[from] TokenRefusal),
}

impl NotificationRefusal {
    /// The status to answer with: 400 for a request that is not a notification, 401
    /// for a missing or refused token.
    pub fn status(&self) -> StatusCode {
        match self {
            NotificationRefusal::NotANotification | NotificationRefusal::MalformedBody { .. } => {
                StatusCode::BAD_REQUEST
            }
            NotificationRefusal::MissingToken | NotificationRefusal::Token(_) => {
                StatusCode::UNAUTHORIZED
            }
        }
    }

    /// A code for the answer's body: `JWT_ERROR` for a missing or refused token (as
    /// BioT's plugin templates say), `INVALID_NOTIFICATION` otherwise.
    pub fn code(&self) -> &'static str {
        match self {
            NotificationRefusal::NotANotification | NotificationRefusal::MalformedBody { .. } => {
                "INVALID_NOTIFICATION"
            }
            NotificationRefusal::MissingToken | NotificationRefusal::Token(_) => "JWT_ERROR",
        }
    }
}

impl NotificationVerifier {
    /// Verifies notifications' tokens with `tokens`.
    pub fn new(tokens: TokenVerifier) -> NotificationVerifier {
        NotificationVerifier { tokens }
    }

    /// The token verifier.
    pub fn token_verifier(&self) -> &TokenVerifier {
        &self.tokens
    }

    /// Turns a received request's headers and body into a verified notification.
    ///
    /// # Errors
    /// The [`NotificationRefusal`] that says why not.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<VerifiedNotification, NotificationRefusal> {
        if headers.get(HOOKTYPE) != Some(&HOOKTYPE_NOTIFICATION) {
            return Err(NotificationRefusal::NotANotification);
        }
        let notification: Notification =
            serde_json::from_slice(body).map_err(|error| NotificationRefusal::MalformedBody {
                reason: error.to_string(),
            })?;
        let token = notification
            .jwt
            .as_deref()
            .ok_or(NotificationRefusal::MissingToken)?;
        let claims = self.tokens.verify(token, ACTION_NOTIFICATION)?;
        Ok(VerifiedNotification {
            notification,
            claims,
        })
    }

    /// [`verify`](Self::verify) on an `http::Request`.
    ///
    /// # Errors
    /// As for [`verify`](Self::verify).
    pub fn verify_request(
        &self,
        request: &http::Request<Bytes>,
    ) -> Result<VerifiedNotification, NotificationRefusal> {
        self.verify(request.headers(), request.body())
    }
}

#[cfg(feature = "axum")]
mod axum_extractor {
    use ::axum::extract::{FromRef, FromRequest, Request};
    use ::axum::response::{IntoResponse, Response};
    use bytes::Bytes;

    use super::{NotificationRefusal, NotificationVerifier, VerifiedNotification};

    /// An axum extractor (feature `axum`): the handler runs only for a verified
    /// notification; any other request is answered with the refusal. The
    /// [`NotificationVerifier`] comes from the router's state (`FromRef`), the body
    /// within axum's body limit.
    ///
    /// ```
    /// use axum::routing::post;
    /// use biot_notifications::token::{NotificationVerifier, PublicKey, TokenVerifier, VerifiedNotification};
    ///
    /// async fn on_notification(verified: VerifiedNotification) {
    ///     println!("{:?}", verified.notification.event_type());
    /// }
    ///
    /// # let key = include_str!("../../tests/fixtures/keys/test-only-a.public.pem");
    /// let plugin = NotificationVerifier::new(TokenVerifier::new(PublicKey::from_pem_or_base64(key)?));
    /// let app: axum::Router = axum::Router::new()
    ///     .route("/notification", post(on_notification))
    ///     .with_state(plugin);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    impl<S> FromRequest<S> for VerifiedNotification
    where
        NotificationVerifier: FromRef<S>,
        S: Send + Sync,
    {
        type Rejection = Response;

        async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
            let verifier = NotificationVerifier::from_ref(state);
            let headers = request.headers().clone();
            let body = Bytes::from_request(request, state)
                .await
                .map_err(IntoResponse::into_response)?;
            verifier
                .verify(&headers, &body)
                .map_err(IntoResponse::into_response)
        }
    }

    /// `{"code": ..., "message": ...}` with the refusal's status.
    impl IntoResponse for NotificationRefusal {
        fn into_response(self) -> Response {
            let body = serde_json::json!({"code": self.code(), "message": self.to_string()});
            (
                self.status(),
                [(http::header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        }
    }
}
