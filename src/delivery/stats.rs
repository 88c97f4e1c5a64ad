//! What the engine reports: [`EngineStats`] while it runs, [`ShutdownReport`] at the end.

use std::time::Duration;

use serde::Serialize;

use crate::delivery::outcome::OutcomeCounts;

/// A snapshot of the engine, from [`DeliveryEngine::stats`](crate::delivery::DeliveryEngine::stats).
///
/// Gauges (`*_queued`, `*_waiting`, `*_in_flight`, `open_circuits`) are as of the call;
/// the other fields count since the engine was built. While the engine is idle,
/// `matched == outcomes.total()` and
/// `events_accepted == events_expanded + events_failed + events_abandoned`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct EngineStats {
    /// Events submitted and not yet taken for lookup.
    pub events_queued: usize,
    /// Events taken by `try_submit`.
    pub events_accepted: u64,
    /// Events refused by `try_submit` because the queue was full.
    pub events_overloaded: u64,
    /// Events refused by `try_submit` because the engine was shutting down.
    pub events_refused_shutting_down: u64,
    /// Events looked up and fanned out to their subscribers (zero subscribers included).
    pub events_expanded: u64,
    /// Events dropped because the store lookup or the token provider failed: no
    /// endpoint was matched, so they have no delivery outcome.
    pub events_failed: u64,
    /// Events not yet looked up when the engine stopped.
    pub events_abandoned: u64,
    /// (event, endpoint) pairs matched: deliveries begun.
    pub matched: u64,
    /// Deliveries waiting: in endpoint backlogs, on retry timers, or for a global slot.
    pub deliveries_waiting: usize,
    /// Notifier calls running now.
    pub deliveries_in_flight: usize,
    /// Retries scheduled (each also ends in an outcome, later).
    pub retries: u64,
    /// How the deliveries that ended, ended.
    pub outcomes: OutcomeCounts,
    /// The endpoints whose circuit is open or half-open.
    pub open_circuits: Vec<String>,
}

/// What [`DeliveryEngine::shutdown`](crate::delivery::DeliveryEngine::shutdown) found.
/// Counts are since the engine was built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Whether everything finished before the deadline (nothing was abandoned).
    pub drained: bool,
    /// How long the shutdown took.
    #[serde(serialize_with = "as_millis", rename = "elapsedMs")]
    pub elapsed: Duration,
    /// Deliveries that reached their plugin.
    pub delivered: u64,
    /// Deliveries that failed, of every class (see `outcomes`).
    pub failed: u64,
    /// Deliveries shed (backlog full, circuit open).
    pub shed: u64,
    /// Deliveries cancelled or never started because the deadline passed.
    pub abandoned: u64,
    /// Events never looked up because the deadline passed (their deliveries are unknown).
    pub events_abandoned: u64,
    /// Events whose lookup or token failed.
    pub events_failed: u64,
    /// (event, endpoint) pairs matched; equal to `delivered + failed + shed + abandoned`.
    pub matched: u64,
    /// Every outcome, by class.
    pub outcomes: OutcomeCounts,
}

fn as_millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1000.0)
}
