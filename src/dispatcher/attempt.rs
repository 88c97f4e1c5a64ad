//! One delivery attempt, the step [`Dispatcher::dispatch`](super::Dispatcher::dispatch)
//! and the delivery engine share: call the notifier, catch its panic, say what happened,
//! trace it.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use super::DeliveryOutcome;
use crate::endpoint::Endpoint;
use crate::notification::PreparedNotification;
use crate::notifier::Notifier;

/// What one call of [`Notifier::notify`] came to.
#[derive(Debug)]
pub(crate) struct Attempt {
    /// Delivered, failed or panicked.
    pub(crate) outcome: DeliveryOutcome,
    /// How long the notifier took.
    pub(crate) duration: Duration,
}

/// Notifies `endpoint` once; a panic in the notifier becomes
/// [`DeliveryOutcome::Panicked`] instead of unwinding into the caller. `attempt` counts
/// from 1 and is only traced.
///
/// Traces one event: endpoint, attempt, outcome and duration, never the body or token.
pub(crate) async fn deliver_once(
    notifier: &dyn Notifier,
    endpoint: &Endpoint,
    notification: &PreparedNotification,
    attempt: u32,
) -> Attempt {
    let started = Instant::now();
    let result = AssertUnwindSafe(notifier.notify(endpoint, notification))
        .catch_unwind()
        .await;
    let outcome = match result {
        Ok(Ok(())) => DeliveryOutcome::Delivered,
        Ok(Err(error)) => DeliveryOutcome::Failed(error),
        Err(panic) => DeliveryOutcome::Panicked(panic_message(panic.as_ref())),
    };
    let duration = started.elapsed();
    trace(endpoint, &outcome, duration, attempt);
    Attempt { outcome, duration }
}

/// One event per attempt: endpoint, attempt, outcome and duration; never the body or token.
fn trace(endpoint: &Endpoint, outcome: &DeliveryOutcome, duration: Duration, attempt: u32) {
    let endpoint = endpoint.as_str();
    let duration_ms = duration.as_secs_f64() * 1000.0;
    match outcome {
        DeliveryOutcome::Delivered => {
            tracing::debug!(
                endpoint,
                attempt,
                duration_ms,
                outcome = "delivered",
                "delivered"
            );
        }
        DeliveryOutcome::Failed(error) => {
            tracing::warn!(
                endpoint,
                attempt,
                duration_ms,
                outcome = "failed",
                error = error as &(dyn std::error::Error + 'static),
                "delivery failed"
            );
        }
        DeliveryOutcome::Panicked(message) => {
            tracing::error!(
                endpoint,
                attempt,
                duration_ms,
                outcome = "panicked",
                panic = %message,
                "notifier panicked"
            );
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the notifier panicked".to_owned())
}
