//! How every delivery ends: [`TerminalOutcome`], and the count of each.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::delivery::circuit::Health;
use crate::dispatcher::DeliveryOutcome;
use crate::notifier::DeliveryError;

/// How one (event, matched endpoint) delivery ended. Each ends in exactly one, counted
/// once in [`OutcomeCounts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TerminalOutcome {
    /// The plugin answered `2xx`.
    Delivered,
    /// The last attempt failed, and no retry followed.
    Failed(FailureClass),
    /// Never sent (or not again): the engine dropped it to protect the others.
    Shed(ShedReason),
    /// Unfinished when the engine shut down (or was dropped): cancelled or never started.
    Abandoned,
}

/// Why a delivery failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureClass {
    /// A status below 400 but not `2xx`: in practice a redirect, which is not followed.
    Redirection,
    /// A `4xx` other than `410` (`429` included).
    ClientError,
    /// `410 Gone`: the plugin says the hook is gone for good. The engine does not
    /// unsubscribe it; the host may.
    Gone,
    /// A `5xx`.
    ServerError,
    /// The plugin did not answer in time.
    Timeout,
    /// The plugin could not be reached, or the exchange failed.
    Transport,
    /// The endpoint policy refused the endpoint or every address it resolved to.
    Refused,
    /// The notifier panicked.
    Panicked,
}

/// Why a delivery was shed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ShedReason {
    /// Its endpoint already had as many deliveries waiting as allowed.
    BacklogFull,
    /// Its endpoint's circuit was open.
    CircuitOpen,
}

impl TerminalOutcome {
    /// Every outcome, in the order of [`label`](Self::label)s in metrics and reports.
    pub const ALL: [TerminalOutcome; 12] = [
        TerminalOutcome::Delivered,
        TerminalOutcome::Failed(FailureClass::Redirection),
        TerminalOutcome::Failed(FailureClass::ClientError),
        TerminalOutcome::Failed(FailureClass::Gone),
        TerminalOutcome::Failed(FailureClass::ServerError),
        TerminalOutcome::Failed(FailureClass::Timeout),
        TerminalOutcome::Failed(FailureClass::Transport),
        TerminalOutcome::Failed(FailureClass::Refused),
        TerminalOutcome::Failed(FailureClass::Panicked),
        TerminalOutcome::Shed(ShedReason::BacklogFull),
        TerminalOutcome::Shed(ShedReason::CircuitOpen),
        TerminalOutcome::Abandoned,
    ];

    /// A stable snake_case name: the `outcome` label of
    /// `biot_notifications_deliveries_total` and the field in traces.
    pub fn label(self) -> &'static str {
        match self {
            TerminalOutcome::Delivered => "delivered",
            TerminalOutcome::Failed(FailureClass::Redirection) => "status_3xx",
            TerminalOutcome::Failed(FailureClass::ClientError) => "status_4xx",
            TerminalOutcome::Failed(FailureClass::Gone) => "gone",
            TerminalOutcome::Failed(FailureClass::ServerError) => "status_5xx",
            TerminalOutcome::Failed(FailureClass::Timeout) => "timeout",
            TerminalOutcome::Failed(FailureClass::Transport) => "transport",
            TerminalOutcome::Failed(FailureClass::Refused) => "refused",
            TerminalOutcome::Failed(FailureClass::Panicked) => "panicked",
            TerminalOutcome::Shed(ShedReason::BacklogFull) => "shed_backlog_full",
            TerminalOutcome::Shed(ShedReason::CircuitOpen) => "shed_circuit_open",
            TerminalOutcome::Abandoned => "abandoned",
        }
    }

    /// The index of this outcome in [`ALL`](Self::ALL).
    fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|outcome| *outcome == self)
            .expect("ALL lists every outcome")
    }

    /// The outcome of one attempt, were it the last.
    pub(crate) fn of_attempt(outcome: &DeliveryOutcome) -> Self {
        match outcome {
            DeliveryOutcome::Delivered => TerminalOutcome::Delivered,
            DeliveryOutcome::Failed(error) => TerminalOutcome::Failed(FailureClass::of(error)),
            DeliveryOutcome::Panicked(_) => TerminalOutcome::Failed(FailureClass::Panicked),
        }
    }
}

impl fmt::Display for TerminalOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl FailureClass {
    /// The class of a notifier's error.
    pub fn of(error: &DeliveryError) -> Self {
        match error {
            DeliveryError::Timeout => FailureClass::Timeout,
            DeliveryError::Transport { .. } => FailureClass::Transport,
            DeliveryError::Refused { .. } => FailureClass::Refused,
            DeliveryError::Status { status } | DeliveryError::Throttled { status, .. } => {
                if *status == http::StatusCode::GONE {
                    FailureClass::Gone
                } else if status.is_server_error() {
                    FailureClass::ServerError
                } else if status.is_client_error() {
                    FailureClass::ClientError
                } else {
                    FailureClass::Redirection
                }
            }
        }
    }
}

/// What one attempt says about the endpoint, for its circuit breaker.
pub(crate) fn health_of(outcome: &DeliveryOutcome) -> Health {
    match outcome {
        DeliveryOutcome::Delivered => Health::Up,
        DeliveryOutcome::Failed(DeliveryError::Refused { .. }) | DeliveryOutcome::Panicked(_) => {
            Health::Unknown
        }
        DeliveryOutcome::Failed(error) => match error.status() {
            Some(status)
                if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS =>
            {
                Health::Down
            }
            Some(_) => Health::Up,
            None => Health::Down,
        },
    }
}

/// How many deliveries ended each way. Every field counts since the engine was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OutcomeCounts {
    /// The plugin answered `2xx`.
    pub delivered: u64,
    /// Failed with a non-`2xx` status below 400 (redirects).
    pub status_3xx: u64,
    /// Failed with a `4xx` other than `410`.
    pub status_4xx: u64,
    /// Failed with `410 Gone`.
    pub gone: u64,
    /// Failed with a `5xx`.
    pub status_5xx: u64,
    /// Failed: timed out.
    pub timeout: u64,
    /// Failed: could not connect, or the exchange broke.
    pub transport: u64,
    /// Failed: refused by the endpoint policy.
    pub refused: u64,
    /// Failed: the notifier panicked.
    pub panicked: u64,
    /// Shed: the endpoint's backlog was full.
    pub shed_backlog_full: u64,
    /// Shed: the endpoint's circuit was open.
    pub shed_circuit_open: u64,
    /// Unfinished at shutdown.
    pub abandoned: u64,
}

impl OutcomeCounts {
    /// How many ended with `outcome`.
    pub fn get(&self, outcome: TerminalOutcome) -> u64 {
        self.as_array()[outcome.index()]
    }

    /// Failed, of every class.
    pub fn failed(&self) -> u64 {
        self.status_3xx
            + self.status_4xx
            + self.gone
            + self.status_5xx
            + self.timeout
            + self.transport
            + self.refused
            + self.panicked
    }

    /// Shed, for either reason.
    pub fn shed(&self) -> u64 {
        self.shed_backlog_full + self.shed_circuit_open
    }

    /// Every delivery that ended, however: once the engine is idle, equal to the number
    /// of (event, endpoint) pairs matched.
    pub fn total(&self) -> u64 {
        self.delivered + self.failed() + self.shed() + self.abandoned
    }

    fn as_array(&self) -> [u64; 12] {
        [
            self.delivered,
            self.status_3xx,
            self.status_4xx,
            self.gone,
            self.status_5xx,
            self.timeout,
            self.transport,
            self.refused,
            self.panicked,
            self.shed_backlog_full,
            self.shed_circuit_open,
            self.abandoned,
        ]
    }

    fn from_array(counts: [u64; 12]) -> Self {
        let [delivered, status_3xx, status_4xx, gone, status_5xx, timeout, transport, refused, panicked, shed_backlog_full, shed_circuit_open, abandoned] =
            counts;
        OutcomeCounts {
            delivered,
            status_3xx,
            status_4xx,
            gone,
            status_5xx,
            timeout,
            transport,
            refused,
            panicked,
            shed_backlog_full,
            shed_circuit_open,
            abandoned,
        }
    }
}

/// The engine's live counters, one per outcome.
#[derive(Debug, Default)]
pub(crate) struct OutcomeCounters([AtomicU64; 12]);

impl OutcomeCounters {
    pub(crate) fn add(&self, outcome: TerminalOutcome) {
        self.0[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> OutcomeCounts {
        OutcomeCounts::from_array(std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn labels_are_unique_and_counts_line_up_with_them() {
        let counters = OutcomeCounters::default();
        for (n, outcome) in TerminalOutcome::ALL.into_iter().enumerate() {
            for _ in 0..=n {
                counters.add(outcome);
            }
        }
        let counts = counters.snapshot();
        for (n, outcome) in TerminalOutcome::ALL.into_iter().enumerate() {
            assert_eq!(counts.get(outcome), n as u64 + 1, "{outcome}");
        }
        assert_eq!(counts.total(), (1..=12).sum::<u64>());
        let labels: std::collections::BTreeSet<_> =
            TerminalOutcome::ALL.iter().map(|o| o.label()).collect();
        assert_eq!(labels.len(), 12);
        let json = serde_json::to_value(counts).unwrap();
        assert_eq!(json["shedCircuitOpen"], 11);
    }

    #[test]
    fn statuses_are_classed_and_410_is_its_own() {
        let class = |status: u16| {
            FailureClass::of(&DeliveryError::from_status(
                StatusCode::from_u16(status).unwrap(),
            ))
        };
        assert_eq!(class(410), FailureClass::Gone);
        assert_eq!(class(404), FailureClass::ClientError);
        assert_eq!(class(429), FailureClass::ClientError);
        assert_eq!(class(503), FailureClass::ServerError);
        assert_eq!(class(302), FailureClass::Redirection);
    }

    #[test]
    fn only_unreachable_or_overloaded_plugins_count_against_the_endpoint() {
        let failed = |status: u16| {
            DeliveryOutcome::Failed(DeliveryError::from_status(
                StatusCode::from_u16(status).unwrap(),
            ))
        };
        assert_eq!(health_of(&failed(500)), Health::Down);
        assert_eq!(health_of(&failed(429)), Health::Down);
        assert_eq!(health_of(&failed(404)), Health::Up);
        assert_eq!(health_of(&failed(301)), Health::Up);
        assert_eq!(
            health_of(&DeliveryOutcome::Failed(DeliveryError::Timeout)),
            Health::Down
        );
        assert_eq!(
            health_of(&DeliveryOutcome::Panicked(String::new())),
            Health::Unknown
        );
    }
}
