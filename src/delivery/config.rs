//! [`DeliveryEngineBuilder`]: the engine's bounds, with their defaults, checked at `build`.

use std::time::Duration;

use crate::delivery::circuit::CircuitBreakerPolicy;
use crate::delivery::engine::DeliveryEngine;
use crate::delivery::retry::RetryPolicy;
use crate::dispatcher::Dispatcher;

/// Events [`try_submit`](DeliveryEngine::try_submit) queues before it answers
/// "overloaded", unless configured otherwise.
pub const DEFAULT_EVENTS_QUEUED: usize = 10_000;

/// Events whose subscribers are looked up (store, token provider) at once, unless
/// configured otherwise.
pub const DEFAULT_EVENTS_PREPARED_AT_ONCE: usize = 16;

/// Notifier calls running at once across every endpoint, unless configured otherwise.
pub const DEFAULT_DELIVERIES_IN_FLIGHT: usize = 256;

/// Notifier calls running at once to one endpoint, unless configured otherwise.
pub const DEFAULT_DELIVERIES_IN_FLIGHT_PER_ENDPOINT: usize = 8;

/// Deliveries waiting for one endpoint (its backlog, retries included) before more are
/// shed, unless configured otherwise.
pub const DEFAULT_DELIVERIES_WAITING_PER_ENDPOINT: usize = 1_000;

/// How long an endpoint with nothing waiting, nothing in flight and a closed circuit is
/// remembered, unless configured otherwise.
pub const DEFAULT_IDLE_ENDPOINT_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a [`DeliveryEngineBuilder`] could not build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineBuildError {
    /// A count or duration that must be at least 1 is zero.
    #[error("the delivery engine option `{option}` must be greater than zero")]
    Zero {
        /// The option, as the builder method (or policy field) is named.
        option: &'static str,
    },

    /// Values that contradict each other.
    #[error("the delivery engine option `{option}` is invalid: {reason}")]
    Invalid {
        /// The option, as the builder method (or policy field) is named.
        option: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// `build` was called outside a tokio runtime; the engine spawns its tasks on the
    /// current one.
    #[error("the delivery engine must be built inside a tokio runtime: it spawns its tasks on the current one")]
    NoRuntime,
}

/// The checked options an engine runs with.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) events_queued: usize,
    pub(crate) events_prepared_at_once: usize,
    pub(crate) deliveries_in_flight: usize,
    pub(crate) in_flight_per_endpoint: usize,
    pub(crate) waiting_per_endpoint: usize,
    pub(crate) idle_endpoint_timeout: Duration,
    pub(crate) circuit_breaker: CircuitBreakerPolicy,
    pub(crate) retry: Option<RetryPolicy>,
}

/// Options for a [`DeliveryEngine`]; from [`DeliveryEngine::builder`]. Every value is
/// checked by [`build`](Self::build).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use biot_notifications::delivery::{CircuitBreakerPolicy, DeliveryEngine, RetryPolicy};
/// use biot_notifications::notifier::DiscardingNotifier;
/// use biot_notifications::{Dispatcher, InMemoryStore};
///
/// let dispatcher = Dispatcher::new(InMemoryStore::new(), DiscardingNotifier);
/// let engine = DeliveryEngine::builder(dispatcher)
///     .events_queued(50_000)
///     .deliveries_in_flight(512)
///     .deliveries_in_flight_per_endpoint(4)
///     .circuit_breaker(CircuitBreakerPolicy::new(3))
///     .retry_policy(RetryPolicy::new(3).max_backoff(Duration::from_secs(10)))
///     .build()?;
///
/// let err = DeliveryEngine::builder(engine.dispatcher().clone())
///     .deliveries_in_flight(0)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.to_string(), "the delivery engine option `deliveries_in_flight` must be greater than zero");
/// # Ok::<(), biot_notifications::delivery::EngineBuildError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct DeliveryEngineBuilder {
    pub(crate) dispatcher: Dispatcher,
    pub(crate) limits: Limits,
}

impl DeliveryEngineBuilder {
    pub(crate) fn new(dispatcher: Dispatcher) -> Self {
        DeliveryEngineBuilder {
            dispatcher,
            limits: Limits {
                events_queued: DEFAULT_EVENTS_QUEUED,
                events_prepared_at_once: DEFAULT_EVENTS_PREPARED_AT_ONCE,
                deliveries_in_flight: DEFAULT_DELIVERIES_IN_FLIGHT,
                in_flight_per_endpoint: DEFAULT_DELIVERIES_IN_FLIGHT_PER_ENDPOINT,
                waiting_per_endpoint: DEFAULT_DELIVERIES_WAITING_PER_ENDPOINT,
                idle_endpoint_timeout: DEFAULT_IDLE_ENDPOINT_TIMEOUT,
                circuit_breaker: CircuitBreakerPolicy::default(),
                retry: None,
            },
        }
    }

    /// How many submitted events may wait to be looked up (default
    /// [`DEFAULT_EVENTS_QUEUED`]); past that, `try_submit` answers
    /// [`SubmitError::Overloaded`](crate::delivery::SubmitError::Overloaded).
    pub fn events_queued(mut self, events: usize) -> Self {
        self.limits.events_queued = events;
        self
    }

    /// How many events are looked up in the store and given a token at once (default
    /// [`DEFAULT_EVENTS_PREPARED_AT_ONCE`]). A store that hangs holds up at most this
    /// many events; the others wait in the queue.
    pub fn events_prepared_at_once(mut self, events: usize) -> Self {
        self.limits.events_prepared_at_once = events;
        self
    }

    /// How many notifier calls run at once, across every endpoint (default
    /// [`DEFAULT_DELIVERIES_IN_FLIGHT`]). A hard cap: a slot is held for exactly one
    /// `Notifier::notify` call, never while a delivery waits or backs off.
    pub fn deliveries_in_flight(mut self, deliveries: usize) -> Self {
        self.limits.deliveries_in_flight = deliveries;
        self
    }

    /// How many deliveries to one endpoint are under way at once (default
    /// [`DEFAULT_DELIVERIES_IN_FLIGHT_PER_ENDPOINT`]): a hanging plugin ties up at most
    /// this many of the global slots.
    pub fn deliveries_in_flight_per_endpoint(mut self, deliveries: usize) -> Self {
        self.limits.in_flight_per_endpoint = deliveries;
        self
    }

    /// How many deliveries to one endpoint may wait, retries included (default
    /// [`DEFAULT_DELIVERIES_WAITING_PER_ENDPOINT`]); more are shed, for that endpoint
    /// only.
    pub fn deliveries_waiting_per_endpoint(mut self, deliveries: usize) -> Self {
        self.limits.waiting_per_endpoint = deliveries;
        self
    }

    /// How long an idle endpoint's lane (backlog, counters, closed circuit) is kept
    /// (default [`DEFAULT_IDLE_ENDPOINT_TIMEOUT`]). Lanes with work or an open circuit
    /// are never dropped.
    pub fn idle_endpoint_timeout(mut self, timeout: Duration) -> Self {
        self.limits.idle_endpoint_timeout = timeout;
        self
    }

    /// When an endpoint's circuit opens (default [`CircuitBreakerPolicy::default`]).
    pub fn circuit_breaker(mut self, policy: CircuitBreakerPolicy) -> Self {
        self.limits.circuit_breaker = policy;
        self
    }

    /// Retries failed deliveries (default: never, as BioT).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.limits.retry = Some(policy);
        self
    }

    /// Checks the options and starts the engine: its tasks are spawned on the current
    /// tokio runtime, of either flavour, which must have its time driver enabled
    /// (`enable_all` or `enable_time`; `#[tokio::main]` does): backoffs, cool-downs and
    /// the shutdown deadline are timers.
    ///
    /// # Errors
    /// [`EngineBuildError::Zero`] or [`EngineBuildError::Invalid`] naming the option
    /// that is wrong; [`EngineBuildError::NoRuntime`] outside a tokio runtime.
    pub fn build(self) -> Result<DeliveryEngine, EngineBuildError> {
        self.limits.validate()?;
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| EngineBuildError::NoRuntime)?;
        Ok(DeliveryEngine::start(self.dispatcher, self.limits, runtime))
    }
}

impl Limits {
    fn validate(&self) -> Result<(), EngineBuildError> {
        let counts = [
            ("events_queued", self.events_queued),
            ("events_prepared_at_once", self.events_prepared_at_once),
            ("deliveries_in_flight", self.deliveries_in_flight),
            (
                "deliveries_in_flight_per_endpoint",
                self.in_flight_per_endpoint,
            ),
            ("deliveries_waiting_per_endpoint", self.waiting_per_endpoint),
        ];
        if let Some((option, _)) = counts.into_iter().find(|(_, value)| *value == 0) {
            return Err(EngineBuildError::Zero { option });
        }
        let limit = tokio::sync::Semaphore::MAX_PERMITS;
        for (option, value) in [
            ("events_queued", self.events_queued),
            ("deliveries_in_flight", self.deliveries_in_flight),
        ] {
            if value > limit {
                return Err(EngineBuildError::Invalid {
                    option,
                    reason: format!("{value} is more than the most tokio allows, {limit}"),
                });
            }
        }
        if self.idle_endpoint_timeout.is_zero() {
            return Err(EngineBuildError::Zero {
                option: "idle_endpoint_timeout",
            });
        }
        self.circuit_breaker.validate()?;
        if let Some(retry) = &self.retry {
            retry.validate()?;
        }
        Ok(())
    }
}
