//! [`SigningTokenProvider`]: the dispatcher's notification `jwt`, signed once and reused.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::{Claims, SigningError, SigningKey, ACTION_NOTIFICATION};
use crate::dispatcher::TokenProvider;
use crate::error::BoxError;
use crate::notification::Event;

/// How long a notification token is valid unless configured otherwise.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// How long before its expiry a token is replaced unless configured otherwise.
pub const DEFAULT_REFRESH_AHEAD: Duration = Duration::from_secs(60);

/// A [`TokenProvider`] that signs BioT notification tokens: RS512 with the service's
/// private key, `scopes: ["ACTION_NOTIFICATION"]`, a short `exp`.
///
/// RSA signing costs on the order of a millisecond, so a token is signed once and
/// handed to every event until [`refresh_ahead`](Self::with_refresh_ahead) before it
/// expires: then the first event to notice signs the next one (the others keep using
/// the current token meanwhile, or wait for the first token at start). An event costs
/// a read lock and a copy of the token.
///
/// ```
/// use std::sync::Arc;
/// use biot_notifications::token::{SigningKey, SigningTokenProvider};
/// use biot_notifications::{notifier::DiscardingNotifier, Dispatcher, InMemoryStore};
///
/// # let pem = include_str!("../../tests/fixtures/keys/test-only-a.private.pem");
/// let provider = SigningTokenProvider::new(SigningKey::from_pem(pem)?).with_subject("dispatcher");
/// let dispatcher = Dispatcher::builder(Arc::new(InMemoryStore::new()), Arc::new(DiscardingNotifier))
///     .token_provider(Arc::new(provider))
///     .build();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SigningTokenProvider {
    key: SigningKey,
    subject: Option<String>,
    scopes: Vec<String>,
    lifetime: Duration,
    refresh_ahead: Duration,
    current: RwLock<Option<CurrentToken>>,
    /// Held while signing, so that one caller signs and the others do not pile up.
    signing: Mutex<()>,
}

#[derive(Clone, Debug)]
struct CurrentToken {
    token: Arc<str>,
    /// When to sign the next one (seconds since the epoch).
    refresh_at: u64,
}

impl SigningTokenProvider {
    /// Signs with `key`, granting `ACTION_NOTIFICATION`, for [`DEFAULT_TOKEN_LIFETIME`],
    /// replaced [`DEFAULT_REFRESH_AHEAD`] before expiry.
    pub fn new(key: SigningKey) -> SigningTokenProvider {
        SigningTokenProvider {
            key,
            subject: None,
            scopes: vec![ACTION_NOTIFICATION.to_owned()],
            lifetime: DEFAULT_TOKEN_LIFETIME,
            refresh_ahead: DEFAULT_REFRESH_AHEAD,
            current: RwLock::new(None),
            signing: Mutex::new(()),
        }
    }

    /// The `sub` claim: the service the tokens speak for (default: none).
    #[must_use]
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// The `scopes` claim (default: `["ACTION_NOTIFICATION"]`).
    #[must_use]
    pub fn with_scopes(mut self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// How long each token is valid (default [`DEFAULT_TOKEN_LIFETIME`]; at least a second).
    #[must_use]
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime.max(Duration::from_secs(1));
        self
    }

    /// How long before expiry a token is replaced (default [`DEFAULT_REFRESH_AHEAD`];
    /// at most half the lifetime).
    #[must_use]
    pub fn with_refresh_ahead(mut self, refresh_ahead: Duration) -> Self {
        self.refresh_ahead = refresh_ahead;
        self
    }

    /// The token to send now: the current one, or a new one when it is due.
    ///
    /// # Errors
    /// Signing failed.
    pub fn current_token(&self) -> Result<Arc<str>, SigningError> {
        let now = seconds_since_epoch(SystemTime::now());
        if let Some(current) = self.fresh(now) {
            return Ok(current);
        }
        let _signing = self
            .signing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Another caller may have signed while this one waited.
        if let Some(current) = self.fresh(now) {
            return Ok(current);
        }
        let token: Arc<str> = self.sign_at(now)?.into();
        let refresh_ahead = self.refresh_ahead.min(self.lifetime / 2).as_secs();
        let refresh_at = now + self.lifetime.as_secs() - refresh_ahead;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(CurrentToken {
            token: Arc::clone(&token),
            refresh_at,
        });
        Ok(token)
    }

    /// A freshly signed token valid from `now` (seconds since the epoch), not cached.
    ///
    /// # Errors
    /// Signing failed.
    pub fn sign_at(&self, now: u64) -> Result<String, SigningError> {
        let mut claims = Claims::new(self.scopes.iter().cloned(), now, self.lifetime.as_secs());
        claims.sub.clone_from(&self.subject);
        self.key.sign(&claims)
    }

    fn fresh(&self, now: u64) -> Option<Arc<str>> {
        let current = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        current
            .as_ref()
            .filter(|current| now < current.refresh_at)
            .map(|current| Arc::clone(&current.token))
    }
}

#[async_trait]
impl TokenProvider for SigningTokenProvider {
    async fn token(&self, _event: &Event) -> Result<String, BoxError> {
        Ok(self.current_token()?.to_string())
    }
}

fn seconds_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
