//! [`Claims`]: what a BioT token says.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The claims of a BioT token. Times are seconds since the Unix epoch.
///
/// Parsed strictly: a registered claim of the wrong type (an `exp` given as a string,
/// `scopes` not a list of strings) makes the token malformed, never absent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Claims {
    /// The permissions the token grants, e.g. `["ACTION_NOTIFICATION"]`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Expiry (`exp`): refused from this instant on, beyond the leeway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Not before (`nbf`): refused until this instant, within the leeway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at (`iat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// The subject (`sub`): in BioT, the user or service the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Every other claim, as in the token.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Claims {
    /// Claims granting `scopes`, valid from `now` for `lifetime_seconds`.
    pub fn new(
        scopes: impl IntoIterator<Item = impl Into<String>>,
        now: u64,
        lifetime_seconds: u64,
    ) -> Claims {
        Claims {
            scopes: scopes.into_iter().map(Into::into).collect(),
            exp: Some(now.saturating_add(lifetime_seconds)),
            nbf: Some(now),
            iat: Some(now),
            sub: None,
            extra: Map::new(),
        }
    }

    /// Whether the token grants `permission`.
    pub fn has_scope(&self, permission: &str) -> bool {
        self.scopes.iter().any(|scope| scope == permission)
    }
}
