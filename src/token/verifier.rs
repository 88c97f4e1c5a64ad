//! [`TokenVerifier`]: checks a BioT token the way BioT's plugin templates do.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::{Claims, PublicKey, TokenRefusal};

/// The clock skew allowed on `exp` and `nbf` unless configured otherwise.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Tokens longer than this are refused unread: BioT's are well under 4 KiB.
const MAX_TOKEN_LENGTH: usize = 16 * 1024;

/// Verifies BioT tokens: an RS512 signature by one of the configured keys, `exp` and
/// `nbf` within a small leeway, and the call's permission in `scopes`.
///
/// - Only RS512 is accepted: a token naming `none`, an HMAC algorithm or anything else
///   is refused from its header, whatever key it would match.
/// - Several keys may be configured (rotation). A token whose header names a `kid` is
///   checked against the keys with that id, else against the keys without one; a token
///   without `kid` against every key.
/// - Claims are parsed strictly: an `exp` or `nbf` of the wrong type is malformed, not
///   absent. A token without `exp` does not expire, as in BioT's templates.
///
/// Every refusal is a [`TokenRefusal`]; nothing is logged, least of all the token.
///
/// ```
/// use biot_notifications::token::{TokenRefusal, TokenVerifier, PublicKey, ACTION_NOTIFICATION};
///
/// # let pem = include_str!("../../tests/fixtures/keys/test-only-a.public.pem");
/// let verifier = TokenVerifier::new(PublicKey::from_pem_or_base64(pem)?);
/// assert_eq!(
///     verifier.verify("not.a.token", ACTION_NOTIFICATION).unwrap_err(),
///     TokenRefusal::Malformed
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct TokenVerifier {
    keys: Vec<PublicKey>,
    leeway: Duration,
}

/// The header members the choice of key depends on.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

impl TokenVerifier {
    /// A verifier of tokens signed by `key`, with the [`DEFAULT_LEEWAY`].
    pub fn new(key: PublicKey) -> TokenVerifier {
        TokenVerifier {
            keys: vec![key],
            leeway: DEFAULT_LEEWAY,
        }
    }

    /// Also accepts tokens signed by `key` (key rotation).
    #[must_use]
    pub fn with_key(mut self, key: PublicKey) -> TokenVerifier {
        self.keys.push(key);
        self
    }

    /// The clock skew allowed on `exp` and `nbf` (default [`DEFAULT_LEEWAY`]).
    #[must_use]
    pub fn with_leeway(mut self, leeway: Duration) -> TokenVerifier {
        self.leeway = leeway;
        self
    }

    /// The configured keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Verifies `token` for a call that needs `permission`; its claims if accepted.
    ///
    /// # Errors
    /// The [`TokenRefusal`] that says why the token is not accepted.
    pub fn verify(&self, token: &str, permission: &str) -> Result<Claims, TokenRefusal> {
        self.verify_at(token, permission, SystemTime::now())
    }

    /// [`verify`](Self::verify) as if the time were `now`.
    ///
    /// # Errors
    /// As for [`verify`](Self::verify).
    pub fn verify_at(
        &self,
        token: &str,
        permission: &str,
        now: SystemTime,
    ) -> Result<Claims, TokenRefusal> {
        let claims = self.verify_signature(token)?;
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let leeway = self.leeway.as_secs();
        if claims
            .exp
            .is_some_and(|exp| now >= exp.saturating_add(leeway))
        {
            return Err(TokenRefusal::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(leeway))
        {
            return Err(TokenRefusal::NotYetValid);
        }
        if !claims.has_scope(permission) {
            return Err(TokenRefusal::MissingPermission {
                required: permission.to_owned(),
            });
        }
        Ok(claims)
    }

    /// The claims of a token signed by one of the keys, in RS512; times not checked.
    fn verify_signature(&self, token: &str) -> Result<Claims, TokenRefusal> {
        if token.len() > MAX_TOKEN_LENGTH {
            return Err(TokenRefusal::Malformed);
        }
        let mut segments = token.split('.');
        let (Some(header), Some(_), Some(_), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(TokenRefusal::Malformed);
        };
        let header: RawHeader = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(TokenRefusal::Malformed)?;
        if header.alg != "RS512" {
            return Err(TokenRefusal::UnsupportedAlgorithm {
                algorithm: header.alg.chars().take(16).collect(),
            });
        }
        let mut candidates: Vec<&PublicKey> = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(|key| key.kid.as_deref() == Some(kid.as_str()))
                .collect(),
            None => self.keys.iter().collect(),
        };
        if candidates.is_empty() {
            candidates = self.keys.iter().filter(|key| key.kid.is_none()).collect();
        }
        if candidates.is_empty() {
            return Err(TokenRefusal::UnknownKey);
        }
        let validation = signature_only();
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(error) => match error.kind() {
                    ErrorKind::InvalidSignature => continue,
                    _ => return Err(TokenRefusal::Malformed),
                },
            }
        }
        Err(TokenRefusal::BadSignature)
    }
}

/// RS512 signatures, and nothing of the claims: those are checked here, typed.
fn signature_only() -> Validation {
    let mut validation = Validation::new(Algorithm::RS512);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation
}
