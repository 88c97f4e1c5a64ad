//! BioT's tokens both ways (feature `jwt`): verify them, sign them, guard the API with
//! them, and check what a plugin receives.
//!
//! Every BioT notification carries a `jwt`: an RS512 token of the platform's service,
//! whose `scopes` claim contains `ACTION_NOTIFICATION`. BioT's plugins verify it against
//! the platform's public key and refuse the notification otherwise (the same tokens,
//! with other permissions, guard BioT's APIs).
//!
//! ```text
//! dispatcher side:  SigningKey (PEM) --> SigningTokenProvider --> each notification's jwt
//!                   PublicKey --> TokenVerifier --> TokenAuthorizer --> Api (Bearer tokens)
//! plugin side:      PublicKey (PEM or bare base64) --> TokenVerifier
//!                   --> NotificationVerifier: headers + body --> VerifiedNotification
//! ```
//!
//! - [`TokenVerifier`]: RS512 only, one or several keys (by `kid`), `exp` and `nbf`
//!   within a leeway, a required permission in `scopes`; refusals are typed
//!   ([`TokenRefusal`]) and the token is never logged.
//! - [`SigningTokenProvider`]: the dispatcher's [`TokenProvider`](crate::TokenProvider);
//!   signs a short-lived token once and reuses it until shortly before it expires.
//! - [`TokenAuthorizer`]: the API's [`Authorizer`](crate::api::Authorizer) on bearer
//!   tokens, one permission per operation, answering BioT's 401 and 403.
//! - [`NotificationVerifier`]: the plugin kit; [`VerifiedNotification`] is also an axum
//!   extractor when the `axum` feature is on.
//!
//! Cryptography: `jsonwebtoken` over `ring` (already built for the HTTP notifier's
//! rustls), RS512 only; no OpenSSL. `jsonwebtoken` 10 takes its backend from one
//! process-wide `CryptoProvider`: the first key loaded here installs this crate's
//! RS512-only provider unless one is installed already. A host that also uses
//! `jsonwebtoken` 10 for other algorithms installs its own provider (e.g.
//! `jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default()`) before
//! loading a key here; any complete provider verifies RS512 too.

mod authorizer;
mod claims;
mod keys;
mod plugin;
mod refusal;
mod ring_backend;
mod signing;
mod verifier;

pub use authorizer::TokenAuthorizer;
pub use claims::Claims;
pub use keys::{KeyError, PublicKey, SigningError, SigningKey};
pub use plugin::{NotificationRefusal, NotificationVerifier, VerifiedNotification};
pub use refusal::TokenRefusal;
pub use signing::{SigningTokenProvider, DEFAULT_REFRESH_AHEAD, DEFAULT_TOKEN_LIFETIME};
pub use verifier::{TokenVerifier, DEFAULT_LEEWAY};

/// The permission a notification's token carries in `scopes`: `ACTION_NOTIFICATION`.
pub const ACTION_NOTIFICATION: &str = "ACTION_NOTIFICATION";
