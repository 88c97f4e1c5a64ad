//! The engine's metrics through the `metrics` facade (feature `metrics`); without the
//! feature every function here is empty and compiles away.
//!
//! | name | kind | labels |
//! |------|------|--------|
//! | `biot_notifications_deliveries_total` | counter | `outcome`: a [`TerminalOutcome::label`] |
//! | `biot_notifications_events_total` | counter | `result`: `accepted`, `overloaded`, `shutting_down`, `failed`, `abandoned` |
//! | `biot_notifications_delivery_duration_seconds` | histogram | none: one notifier call |
//! | `biot_notifications_retries_total` | counter | none |
//! | `biot_notifications_queue_depth` | gauge | none: events queued |
//! | `biot_notifications_deliveries_in_flight` | gauge | none: notifier calls running |
//! | `biot_notifications_open_circuits` | gauge | none: endpoints whose circuit is open |

use std::time::Duration;

use crate::delivery::outcome::TerminalOutcome;

/// `biot_notifications_deliveries_total`
pub const DELIVERIES_TOTAL: &str = "biot_notifications_deliveries_total";
/// `biot_notifications_events_total`
pub const EVENTS_TOTAL: &str = "biot_notifications_events_total";
/// `biot_notifications_delivery_duration_seconds`
pub const DELIVERY_DURATION_SECONDS: &str = "biot_notifications_delivery_duration_seconds";
/// `biot_notifications_retries_total`
pub const RETRIES_TOTAL: &str = "biot_notifications_retries_total";
/// `biot_notifications_queue_depth`
pub const QUEUE_DEPTH: &str = "biot_notifications_queue_depth";
/// `biot_notifications_deliveries_in_flight`
pub const DELIVERIES_IN_FLIGHT: &str = "biot_notifications_deliveries_in_flight";
/// `biot_notifications_open_circuits`
pub const OPEN_CIRCUITS: &str = "biot_notifications_open_circuits";

/// Describes every metric to the installed recorder (units and help texts).
pub(crate) fn describe() {
    #[cfg(feature = "metrics")]
    {
        use metrics::Unit;
        metrics::describe_counter!(
            DELIVERIES_TOTAL,
            "Deliveries ended, by outcome: each (event, endpoint) pair once."
        );
        metrics::describe_counter!(EVENTS_TOTAL, "Events submitted, by result.");
        metrics::describe_histogram!(
            DELIVERY_DURATION_SECONDS,
            Unit::Seconds,
            "How long one notifier call took."
        );
        metrics::describe_counter!(RETRIES_TOTAL, "Retries scheduled.");
        metrics::describe_gauge!(QUEUE_DEPTH, "Events queued, not yet looked up.");
        metrics::describe_gauge!(DELIVERIES_IN_FLIGHT, "Notifier calls running.");
        metrics::describe_gauge!(OPEN_CIRCUITS, "Endpoints whose circuit is open.");
    }
}

pub(crate) fn delivery_ended(outcome: TerminalOutcome) {
    #[cfg(feature = "metrics")]
    metrics::counter!(DELIVERIES_TOTAL, "outcome" => outcome.label()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = outcome;
}

pub(crate) fn event(result: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(EVENTS_TOTAL, "result" => result).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = result;
}

pub(crate) fn delivery_duration(duration: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(DELIVERY_DURATION_SECONDS).record(duration.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = duration;
}

pub(crate) fn retry_scheduled() {
    #[cfg(feature = "metrics")]
    metrics::counter!(RETRIES_TOTAL).increment(1);
}

pub(crate) fn queue_depth(events: usize) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(QUEUE_DEPTH).set(events as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = events;
}

pub(crate) fn deliveries_in_flight(deliveries: usize) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(DELIVERIES_IN_FLIGHT).set(deliveries as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = deliveries;
}

pub(crate) fn open_circuits(endpoints: usize) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(OPEN_CIRCUITS).set(endpoints as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = endpoints;
}
