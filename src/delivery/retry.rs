//! Opt-in retries: [`RetryPolicy`] and the waits it computes.

use std::time::Duration;

use crate::delivery::config::EngineBuildError;
use crate::notifier::DeliveryError;

/// How a backoff is randomised, so that deliveries failed together do not retry together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Jitter {
    /// Exactly the exponential backoff.
    None,
    /// Anywhere from zero to the backoff ("full jitter"): spreads retries the most.
    #[default]
    Full,
    /// Half the backoff plus anywhere up to the other half ("equal jitter"): never
    /// retries sooner than half the backoff.
    Equal,
}

/// When a failed delivery is tried again. Off unless given to
/// [`DeliveryEngineBuilder::retry_policy`](crate::delivery::DeliveryEngineBuilder::retry_policy):
/// BioT itself never retries.
///
/// Only failures that may pass by themselves are retried: connection and transport
/// errors, timeouts, `5xx`, and `429 Too Many Requests`. A `Retry-After` the plugin sent
/// ([`DeliveryError::Throttled`]) is honoured, clamped to [`max_backoff`](Self::max_backoff);
/// otherwise retry `n` (from 1) waits `base_backoff * 2^(n-1)`, capped at `max_backoff`,
/// then jittered. A `3xx`, `410 Gone`, any other `4xx`, a refusal by the endpoint policy
/// and a panicking notifier are never retried.
///
/// A waiting retry holds no in-flight slot, global or per endpoint: it sits on a timer,
/// counted among its endpoint's waiting deliveries (and shed like any other when that
/// endpoint's backlog is full).
///
/// ```
/// use std::time::Duration;
/// use biot_notifications::delivery::{Jitter, RetryPolicy};
///
/// // Up to 4 attempts in all: waits of about 1 s, 2 s, 4 s (equal jitter), at most 10 s.
/// let policy = RetryPolicy::new(4)
///     .base_backoff(Duration::from_secs(1))
///     .max_backoff(Duration::from_secs(10))
///     .jitter(Jitter::Equal);
/// assert_eq!(policy.max_attempts(), 4);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    base_backoff: Duration,
    max_backoff: Duration,
    jitter: Jitter,
}

impl RetryPolicy {
    /// The first retry's backoff unless configured otherwise: 500 ms.
    pub const DEFAULT_BASE_BACKOFF: Duration = Duration::from_millis(500);

    /// The longest wait unless configured otherwise: 30 s.
    pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);

    /// Up to `max_attempts` attempts in all (the first included, so `1` never retries),
    /// with [`DEFAULT_BASE_BACKOFF`](Self::DEFAULT_BASE_BACKOFF),
    /// [`DEFAULT_MAX_BACKOFF`](Self::DEFAULT_MAX_BACKOFF) and [`Jitter::Full`].
    pub fn new(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts,
            base_backoff: Self::DEFAULT_BASE_BACKOFF,
            max_backoff: Self::DEFAULT_MAX_BACKOFF,
            jitter: Jitter::Full,
        }
    }

    /// The backoff before the first retry; later ones double it.
    pub fn base_backoff(mut self, base_backoff: Duration) -> Self {
        self.base_backoff = base_backoff;
        self
    }

    /// The longest any retry waits, a `Retry-After` included.
    pub fn max_backoff(mut self, max_backoff: Duration) -> Self {
        self.max_backoff = max_backoff;
        self
    }

    /// How backoffs are randomised.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// How many attempts a delivery gets in all.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Checks the policy: at least one attempt, a non-zero base backoff no longer than
    /// the longest.
    ///
    /// # Errors
    /// [`EngineBuildError`] naming the value that is wrong.
    pub fn validate(&self) -> Result<(), EngineBuildError> {
        if self.max_attempts == 0 {
            return Err(EngineBuildError::Zero {
                option: "retry_policy.max_attempts",
            });
        }
        if self.base_backoff.is_zero() {
            return Err(EngineBuildError::Zero {
                option: "retry_policy.base_backoff",
            });
        }
        if self.base_backoff > self.max_backoff {
            return Err(EngineBuildError::Invalid {
                option: "retry_policy.base_backoff",
                reason: format!(
                    "the base backoff ({:?}) is longer than the max backoff ({:?})",
                    self.base_backoff, self.max_backoff
                ),
            });
        }
        Ok(())
    }

    /// How long to wait before retry number `retry` (from 1) after `error`;
    /// `unit_random` is uniform in `[0, 1)`.
    pub(crate) fn delay(&self, retry: u32, error: &DeliveryError, unit_random: f64) -> Duration {
        if let Some(retry_after) = error.retry_after() {
            return retry_after.min(self.max_backoff);
        }
        let doublings = retry.saturating_sub(1).min(31);
        let backoff = self
            .base_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff);
        match self.jitter {
            Jitter::None => backoff,
            Jitter::Full => backoff.mul_f64(unit_random),
            Jitter::Equal => backoff / 2 + (backoff / 2).mul_f64(unit_random),
        }
    }
}

/// Whether `error` may pass by itself: connection and transport errors, timeouts, `5xx`
/// and `429`.
pub(crate) fn is_retryable(error: &DeliveryError) -> bool {
    match error {
        DeliveryError::Timeout | DeliveryError::Transport { .. } => true,
        DeliveryError::Status { status } | DeliveryError::Throttled { status, .. } => {
            status.is_server_error() || *status == http::StatusCode::TOO_MANY_REQUESTS
        }
        _ => false,
    }
}

/// A number uniform in `[0, 1)`, from the random bits of a v4 UUID (the crate's one
/// random source; jitter needs no more).
pub(crate) fn unit_random() -> f64 {
    let (high, _) = uuid::Uuid::new_v4().as_u64_pair();
    // 53 random bits: the precision of an f64 in [0, 1).
    (high >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn unavailable() -> DeliveryError {
        DeliveryError::from_status(StatusCode::SERVICE_UNAVAILABLE)
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_inside_it() {
        let policy = RetryPolicy::new(10)
            .base_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(700))
            .jitter(Jitter::None);
        let waits: Vec<_> = (1..=5)
            .map(|retry| policy.delay(retry, &unavailable(), 0.5).as_millis())
            .collect();
        assert_eq!(waits, [100, 200, 400, 700, 700]);
        let full = policy.jitter(Jitter::Full);
        assert_eq!(full.delay(3, &unavailable(), 0.0), Duration::ZERO);
        assert_eq!(full.delay(3, &unavailable(), 0.5).as_millis(), 200);
        let equal = policy.jitter(Jitter::Equal);
        assert_eq!(equal.delay(3, &unavailable(), 0.0).as_millis(), 200);
        assert!(equal.delay(3, &unavailable(), 0.999).as_millis() < 400);
        assert_eq!(
            policy.delay(1000, &unavailable(), 0.5).as_millis(),
            700,
            "no overflow"
        );
    }

    #[test]
    fn retry_after_wins_but_is_clamped_to_the_max() {
        let policy = RetryPolicy::new(3).max_backoff(Duration::from_secs(5));
        let throttled = |secs| {
            DeliveryError::with_retry_after(
                StatusCode::TOO_MANY_REQUESTS,
                Duration::from_secs(secs),
            )
        };
        assert_eq!(policy.delay(1, &throttled(2), 0.0), Duration::from_secs(2));
        assert_eq!(
            policy.delay(1, &throttled(3600), 0.0),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn only_failures_that_may_pass_are_retried() {
        for status in [500, 502, 503, 504, 429] {
            let error = DeliveryError::from_status(StatusCode::from_u16(status).unwrap());
            assert!(is_retryable(&error), "{status}");
        }
        for status in [301, 302, 400, 401, 404, 410, 422] {
            let error = DeliveryError::from_status(StatusCode::from_u16(status).unwrap());
            assert!(!is_retryable(&error), "{status}");
        }
        assert!(is_retryable(&DeliveryError::Timeout));
        assert!(is_retryable(&DeliveryError::transport(
            "connection refused"
        )));
    }

    #[test]
    fn validation_names_the_wrong_value() {
        assert!(RetryPolicy::new(3).validate().is_ok());
        let err = RetryPolicy::new(0).validate().unwrap_err();
        assert!(
            err.to_string().contains("retry_policy.max_attempts"),
            "{err}"
        );
        let err = RetryPolicy::new(3)
            .base_backoff(Duration::from_secs(10))
            .max_backoff(Duration::from_secs(1))
            .validate()
            .unwrap_err();
        assert!(
            err.to_string().contains("longer than the max backoff"),
            "{err}"
        );
    }

    #[test]
    fn unit_random_is_in_the_unit_interval() {
        for _ in 0..1000 {
            let x = unit_random();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
