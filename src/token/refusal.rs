//! [`TokenRefusal`]: why a token was not accepted.

/// Why a token was refused. Messages name the reason, never the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRefusal {
    /// Not a JWS in compact form with a JSON header and claims of the expected types
    /// (truncated, not base64url, not JSON, a claim of the wrong type, ...).
    #[error("the token is malformed")]
    Malformed,
    /// The header names an algorithm other than RS512 (`none`, HS512, RS256, ...).
    /// Refused before any key is looked at.
    #[error("the token's algorithm {algorithm} is not accepted (RS512 only)")]
    UnsupportedAlgorithm {
        /// The algorithm the header names, as written (cut to 16 characters).
        algorithm: String,
    },
    /// The header names a key id that no configured key has.
    #[error("the token names a key id no configured key has")]
    UnknownKey,
    /// The signature does not match any configured key.
    #[error("the token's signature is not valid")]
    BadSignature,
    /// `exp` is past, beyond the leeway.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is still ahead, beyond the leeway.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The `scopes` claim is missing or lacks the permission the call needs.
    #[error("the token lacks the permission {required}")]
    MissingPermission {
        /// The permission that was required, e.g. `ACTION_NOTIFICATION`.
        required: String,
    },
}
