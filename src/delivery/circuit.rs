//! The circuit breaker each endpoint has: [`CircuitBreakerPolicy`] and its state machine.

use std::time::{Duration, Instant};

use crate::delivery::config::EngineBuildError;

/// When an endpoint's circuit opens, and for how long.
///
/// After [`failure_threshold`](Self::failure_threshold) consecutive failures of an
/// endpoint (timeouts, connection and transport errors, `5xx`, `429`), its circuit opens:
/// its deliveries are shed at once (outcome `shed_circuit_open`) instead of tying up
/// slots. After the cool-down, the next delivery is sent as the one probe (half-open);
/// the others are still shed while it runs. The probe's success closes the circuit; its
/// failure opens it again for twice as long, up to [`max_cool_down`](Self::max_cool_down).
///
/// Answers that show the plugin is up (`2xx`, `3xx`, any `4xx` but `429`) reset the
/// count; a refusal by the endpoint policy and a notifier's panic say nothing about the
/// plugin and leave it as it is.
///
/// ```
/// use std::time::Duration;
/// use biot_notifications::delivery::CircuitBreakerPolicy;
///
/// let policy = CircuitBreakerPolicy::new(3)
///     .cool_down(Duration::from_millis(500))
///     .max_cool_down(Duration::from_secs(30));
/// assert_eq!(policy.failure_threshold(), 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitBreakerPolicy {
    failure_threshold: u32,
    cool_down: Duration,
    max_cool_down: Duration,
}

impl CircuitBreakerPolicy {
    /// Consecutive failures that open a circuit unless configured otherwise: 5.
    pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;

    /// The first cool-down unless configured otherwise: 1 s.
    pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(1);

    /// The longest cool-down unless configured otherwise: 60 s.
    pub const DEFAULT_MAX_COOL_DOWN: Duration = Duration::from_secs(60);

    /// Opens after `failure_threshold` consecutive failures, with the default cool-downs.
    pub fn new(failure_threshold: u32) -> Self {
        CircuitBreakerPolicy {
            failure_threshold,
            cool_down: Self::DEFAULT_COOL_DOWN,
            max_cool_down: Self::DEFAULT_MAX_COOL_DOWN,
        }
    }

    /// How long a circuit stays open the first time; each failed probe doubles it.
    pub fn cool_down(mut self, cool_down: Duration) -> Self {
        self.cool_down = cool_down;
        self
    }

    /// The longest a circuit stays open.
    pub fn max_cool_down(mut self, max_cool_down: Duration) -> Self {
        self.max_cool_down = max_cool_down;
        self
    }

    /// Consecutive failures that open the circuit.
    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold
    }

    /// Checks the policy: a threshold of at least 1, a non-zero cool-down no longer
    /// than the longest.
    ///
    /// # Errors
    /// [`EngineBuildError`] naming the value that is wrong.
    pub fn validate(&self) -> Result<(), EngineBuildError> {
        if self.failure_threshold == 0 {
            return Err(EngineBuildError::Zero {
                option: "circuit_breaker.failure_threshold",
            });
        }
        if self.cool_down.is_zero() {
            return Err(EngineBuildError::Zero {
                option: "circuit_breaker.cool_down",
            });
        }
        if self.cool_down > self.max_cool_down {
            return Err(EngineBuildError::Invalid {
                option: "circuit_breaker.cool_down",
                reason: format!(
                    "the cool-down ({:?}) is longer than the max cool-down ({:?})",
                    self.cool_down, self.max_cool_down
                ),
            });
        }
        Ok(())
    }

    /// The cool-down after the `trip`-th opening in a row (from 1).
    fn cool_down_for(&self, trip: u32) -> Duration {
        self.cool_down
            .saturating_mul(1 << trip.saturating_sub(1).min(31))
            .min(self.max_cool_down)
    }
}

impl Default for CircuitBreakerPolicy {
    /// [`DEFAULT_FAILURE_THRESHOLD`](Self::DEFAULT_FAILURE_THRESHOLD) failures, cool-downs
    /// from [`DEFAULT_COOL_DOWN`](Self::DEFAULT_COOL_DOWN) to
    /// [`DEFAULT_MAX_COOL_DOWN`](Self::DEFAULT_MAX_COOL_DOWN).
    fn default() -> Self {
        Self::new(Self::DEFAULT_FAILURE_THRESHOLD)
    }
}

/// What one attempt says about the plugin behind an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Health {
    /// It answered (any status but `5xx` and `429`).
    Up,
    /// It timed out, could not be reached, or answered `5xx` or `429`.
    Down,
    /// Nothing is known: the policy refused the endpoint, the notifier panicked, the
    /// attempt was cancelled.
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed {
        consecutive_failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The probe is out; nothing else passes.
    HalfOpen,
}

/// Whether a delivery may start now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The circuit is closed.
    Pass,
    /// The cool-down is over: this delivery is the probe.
    Probe,
    /// The circuit is open, or its probe is out.
    Shed,
}

/// How a result changed the circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    Unchanged,
    /// It opened (was closed), for this long.
    Opened(Duration),
    /// The probe failed: open again, for this long.
    Reopened(Duration),
    /// The probe succeeded.
    Closed,
}

/// One endpoint's breaker. Time is passed in, so the machine is tested without sleeping.
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    state: State,
    /// Openings in a row without a successful probe; picks the cool-down.
    trips: u32,
}

impl CircuitBreaker {
    pub(crate) fn new() -> Self {
        CircuitBreaker {
            state: State::Closed {
                consecutive_failures: 0,
            },
            trips: 0,
        }
    }

    /// Open or half-open.
    pub(crate) fn is_open(&self) -> bool {
        !matches!(self.state, State::Closed { .. })
    }

    /// Closed with no failure counted: nothing worth keeping.
    pub(crate) fn is_pristine(&self) -> bool {
        matches!(
            self.state,
            State::Closed {
                consecutive_failures: 0
            }
        )
    }

    /// Whether a delivery may start at `now`; a [`Admission::Probe`] puts the breaker
    /// half-open, so exactly one delivery gets it.
    pub(crate) fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            State::Closed { .. } => Admission::Pass,
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen;
                Admission::Probe
            }
            State::Open { .. } | State::HalfOpen => Admission::Shed,
        }
    }

    /// Whether a delivery would get [`Admission::Probe`] at `now`, without taking it.
    pub(crate) fn probe_due(&self, now: Instant) -> bool {
        matches!(self.state, State::Open { until } if now >= until)
    }

    /// Takes in one attempt's result. Only the probe's result counts while the circuit
    /// is not closed: the others were sent before it opened.
    pub(crate) fn record(
        &mut self,
        policy: &CircuitBreakerPolicy,
        health: Health,
        probe: bool,
        now: Instant,
    ) -> Transition {
        match (self.state, probe) {
            (State::HalfOpen, true) => {
                if health == Health::Down {
                    self.trips = self.trips.saturating_add(1);
                    let cool_down = policy.cool_down_for(self.trips);
                    self.state = State::Open {
                        until: now + cool_down,
                    };
                    Transition::Reopened(cool_down)
                } else {
                    self.trips = 0;
                    self.state = State::Closed {
                        consecutive_failures: 0,
                    };
                    Transition::Closed
                }
            }
            (
                State::Closed {
                    consecutive_failures,
                },
                _,
            ) => match health {
                Health::Down if consecutive_failures + 1 >= policy.failure_threshold => {
                    self.trips = self.trips.saturating_add(1);
                    let cool_down = policy.cool_down_for(self.trips);
                    self.state = State::Open {
                        until: now + cool_down,
                    };
                    Transition::Opened(cool_down)
                }
                Health::Down => {
                    self.state = State::Closed {
                        consecutive_failures: consecutive_failures + 1,
                    };
                    Transition::Unchanged
                }
                Health::Up => {
                    self.state = State::Closed {
                        consecutive_failures: 0,
                    };
                    Transition::Unchanged
                }
                Health::Unknown => Transition::Unchanged,
            },
            _ => Transition::Unchanged,
        }
    }

    /// A probe that ended without a result (cancelled): back to open, due at once, so
    /// the next delivery probes.
    pub(crate) fn probe_lost(&mut self, now: Instant) {
        if self.state == State::HalfOpen {
            self.state = State::Open { until: now };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn opens_after_the_threshold_probes_once_and_closes_on_success() {
        let policy = CircuitBreakerPolicy::new(3);
        let mut breaker = CircuitBreaker::new();
        let t0 = Instant::now();
        for _ in 0..2 {
            assert_eq!(
                breaker.record(&policy, Health::Down, false, t0),
                Transition::Unchanged
            );
        }
        assert_eq!(breaker.admit(t0), Admission::Pass);
        assert_eq!(
            breaker.record(&policy, Health::Down, false, t0),
            Transition::Opened(SECOND)
        );
        assert!(breaker.is_open());
        assert_eq!(breaker.admit(t0 + SECOND / 2), Admission::Shed);
        assert!(breaker.probe_due(t0 + SECOND));
        assert_eq!(breaker.admit(t0 + SECOND), Admission::Probe);
        assert_eq!(
            breaker.admit(t0 + SECOND),
            Admission::Shed,
            "exactly one probe"
        );
        // A straggler sent before the circuit opened does not decide anything.
        assert_eq!(
            breaker.record(&policy, Health::Up, false, t0 + SECOND),
            Transition::Unchanged
        );
        assert_eq!(
            breaker.record(&policy, Health::Up, true, t0 + SECOND),
            Transition::Closed
        );
        assert!(!breaker.is_open());
        assert!(breaker.is_pristine());
    }

    #[test]
    fn failed_probes_double_the_cool_down_up_to_the_cap() {
        let policy = CircuitBreakerPolicy::new(1).max_cool_down(5 * SECOND);
        let mut breaker = CircuitBreaker::new();
        let mut now = Instant::now();
        assert_eq!(
            breaker.record(&policy, Health::Down, false, now),
            Transition::Opened(SECOND)
        );
        let mut cool_downs = Vec::new();
        for _ in 0..4 {
            now += 10 * SECOND;
            assert_eq!(breaker.admit(now), Admission::Probe);
            match breaker.record(&policy, Health::Down, true, now) {
                Transition::Reopened(cool_down) => cool_downs.push(cool_down.as_secs()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(cool_downs, [2, 4, 5, 5]);
        now += 10 * SECOND;
        assert_eq!(breaker.admit(now), Admission::Probe);
        assert_eq!(
            breaker.record(&policy, Health::Up, true, now),
            Transition::Closed
        );
        // Closed again, the next trip starts from the first cool-down.
        assert_eq!(
            breaker.record(&policy, Health::Down, false, now),
            Transition::Opened(SECOND)
        );
    }

    #[test]
    fn answers_reset_the_count_and_unknowns_leave_it() {
        let policy = CircuitBreakerPolicy::new(2);
        let mut breaker = CircuitBreaker::new();
        let now = Instant::now();
        breaker.record(&policy, Health::Down, false, now);
        breaker.record(&policy, Health::Up, false, now);
        assert_eq!(
            breaker.record(&policy, Health::Down, false, now),
            Transition::Unchanged
        );
        assert_eq!(
            breaker.record(&policy, Health::Unknown, false, now),
            Transition::Unchanged
        );
        assert_eq!(
            breaker.record(&policy, Health::Down, false, now),
            Transition::Opened(SECOND)
        );
    }

    #[test]
    fn a_lost_probe_lets_the_next_delivery_probe() {
        let policy = CircuitBreakerPolicy::new(1);
        let mut breaker = CircuitBreaker::new();
        let now = Instant::now();
        breaker.record(&policy, Health::Down, false, now);
        assert_eq!(breaker.admit(now + SECOND), Admission::Probe);
        breaker.probe_lost(now + SECOND);
        assert_eq!(breaker.admit(now + SECOND), Admission::Probe);
    }

    #[test]
    fn validation_names_the_wrong_value() {
        assert!(CircuitBreakerPolicy::default().validate().is_ok());
        let err = CircuitBreakerPolicy::new(0).validate().unwrap_err();
        assert!(err.to_string().contains("failure_threshold"), "{err}");
        let err = CircuitBreakerPolicy::new(1)
            .cool_down(Duration::from_secs(120))
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("max cool-down"), "{err}");
    }
}
