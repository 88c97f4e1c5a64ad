//! The delivery engine (feature `engine`): bounded, isolated, fire-and-forget delivery.
//!
//! BioT hands an event to the dispatcher and moves on; it does not watch what the
//! plugins do with it. [`Dispatcher::dispatch`](crate::Dispatcher::dispatch) awaits every
//! delivery of an event, so a host that spawns it per event grows without bound behind
//! one hanging plugin. A [`DeliveryEngine`] takes the event instead and delivers it in
//! the background, within fixed bounds, so that one bad plugin costs the others nothing.
//!
//! ```text
//! try_submit(event) --bounded queue--> lookup (store, token, prepare once)
//!     --> per endpoint: lane [backlog | in flight <= N | circuit breaker]
//!     --> global slots (one per running Notifier::notify) --> outcome, counted once
//! ```
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use biot_notifications::delivery::DeliveryEngine;
//! use biot_notifications::notifier::DiscardingNotifier;
//! use biot_notifications::{Action, Dispatcher, EntityType, Event, EventType, InMemoryStore, SubscribeRequest};
//!
//! // A real host delivers over HTTP (`notifier::http_notifier::HttpNotifier`).
//! let dispatcher = Dispatcher::new(InMemoryStore::new(), DiscardingNotifier);
//! dispatcher
//!     .subscribe(&SubscribeRequest::new("patient", "_create", "https://plugin.example.com/hook"))
//!     .await?;
//! // Spawns its tasks on the current tokio runtime.
//! let engine = DeliveryEngine::builder(dispatcher).build()?;
//!
//! let created = EventType::new(EntityType::Patient, Action::Create)?;
//! // Returns at once: queued, or refused (overloaded / shutting down, a 503 for the caller).
//! let submitted = engine.try_submit(Event::new(created, serde_json::json!({"_id": "p-1"})))?;
//! println!("accepted, traceId {}", submitted.trace_id_hex());
//!
//! // On the way out: finish what can be finished in 5 s, abandon the rest, say what happened.
//! let report = engine.shutdown(Duration::from_secs(5)).await;
//! assert_eq!(report.delivered, 1);
//! assert_eq!(report.matched, report.delivered + report.failed + report.shed + report.abandoned);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! ## What it guarantees
//!
//! - **Hand-off without waiting.** [`try_submit`](DeliveryEngine::try_submit) is
//!   synchronous: one bounded channel send, no I/O, no store lookup. A full queue is an
//!   error at once ([`SubmitError::Overloaded`], which converts into
//!   [`Error::Overloaded`](crate::Error::Overloaded): `503`, code `SERVICE_UNAVAILABLE`),
//!   never growth; after shutdown began it is [`SubmitError::ShuttingDown`].
//! - **Bounded memory and sockets.** Queued events, events being looked up, deliveries
//!   waiting per endpoint, deliveries under way per endpoint and notifier calls in all
//!   are each capped. An endpoint's lane is forgotten once it has been idle for
//!   [`idle_endpoint_timeout`](DeliveryEngineBuilder::idle_endpoint_timeout), so memory
//!   follows the endpoints in use.
//! - **Isolation.** A hanging or failing plugin holds at most its own per-endpoint slots
//!   (for at most the notifier's timeout), fills only its own backlog, and has only its
//!   own deliveries shed. After [`CircuitBreakerPolicy::failure_threshold`] consecutive
//!   failures its circuit opens and its deliveries are shed at once until a probe
//!   succeeds.
//! - **Nothing lost silently.** Every (event, matched endpoint) pair ends in exactly one
//!   counted [`TerminalOutcome`]: delivered, failed (by [`FailureClass`]), shed (by
//!   [`ShedReason`]), or abandoned at shutdown; `410 Gone` is its own class (the engine
//!   does not unsubscribe; the host may). Events whose store lookup or token failed match
//!   no endpoint and are counted apart ([`EngineStats::events_failed`]).
//! - **Observable.** [`DeliveryEngine::stats`] is a snapshot of queues, slots, open
//!   circuits and totals; every attempt is traced (endpoint, attempt, outcome, duration;
//!   never a body or token); with the `metrics` feature, the [`metrics`] listed there.
//! - **Graceful shutdown.** [`DeliveryEngine::shutdown`] stops intake, lets queued and
//!   running work finish until its deadline, then cancels and counts the rest.
//!
//! ## What it does not guarantee
//!
//! - **Nothing survives a crash or restart**: queues and backlogs live in memory.
//! - **At most once** unless retries are on: a delivery is attempted once, as in BioT.
//!   With a [`RetryPolicy`] a plugin may receive an event more than once (a timeout
//!   does not tell whether the plugin got it), so plugins should be idempotent.
//! - **No ordering** between events, not even for one endpoint once there are several
//!   slots per endpoint or retries.
//! - **Dropping** the last clone of the engine without `shutdown` stops it at once: intake
//!   closes, running notifier calls are cancelled, queued and waiting work is dropped.
//!   Those deliveries are counted abandoned (in metrics), but nobody gets a report.
//!
//! ## Defaults and tuning
//!
//! | option | default | raise it when | lower it when |
//! |--------|---------|---------------|---------------|
//! | [`events_queued`](DeliveryEngineBuilder::events_queued) | [`DEFAULT_EVENTS_QUEUED`] (10,000) | bursts are refused with `503` though the engine keeps up on average | memory is tight; callers should feel back-pressure sooner |
//! | [`events_prepared_at_once`](DeliveryEngineBuilder::events_prepared_at_once) | [`DEFAULT_EVENTS_PREPARED_AT_ONCE`] (16) | the store or token provider is slow but scales | the store is a small shared database pool |
//! | [`deliveries_in_flight`](DeliveryEngineBuilder::deliveries_in_flight) | [`DEFAULT_DELIVERIES_IN_FLIGHT`] (256) | many endpoints are slow at once; keep it above per-endpoint × endpoints expected to hang together | sockets or file descriptors are scarce |
//! | [`deliveries_in_flight_per_endpoint`](DeliveryEngineBuilder::deliveries_in_flight_per_endpoint) | [`DEFAULT_DELIVERIES_IN_FLIGHT_PER_ENDPOINT`] (8) | one busy plugin is healthy and slow | plugins are small; a hanging one should hold fewer slots |
//! | [`deliveries_waiting_per_endpoint`](DeliveryEngineBuilder::deliveries_waiting_per_endpoint) | [`DEFAULT_DELIVERIES_WAITING_PER_ENDPOINT`] (1,000) | a busy plugin's bursts are shed | memory per endpoint matters more than bursts |
//! | [`circuit_breaker`](DeliveryEngineBuilder::circuit_breaker) | 5 failures, 1 s cool-down doubling to 60 s | plugins fail transiently and should not be shed | a dead plugin should cost less, sooner |
//! | [`retry_policy`](DeliveryEngineBuilder::retry_policy) | none (BioT does not retry) | at-least-once matters more than duplicates | |
//! | [`idle_endpoint_timeout`](DeliveryEngineBuilder::idle_endpoint_timeout) | [`DEFAULT_IDLE_ENDPOINT_TIMEOUT`] (5 min) | | endpoints churn a lot |
//!
//! The notifier's own timeout (`HttpNotifier`: 10 s) bounds how long a hanging plugin
//! holds a slot; shorten it for plugins that are expected to answer fast.
mod circuit;
mod config;
mod endpoint_lane;
mod engine;
pub mod metrics;
mod outcome;
mod retry;
mod stats;

pub use circuit::CircuitBreakerPolicy;
pub use config::{
    DeliveryEngineBuilder, EngineBuildError, DEFAULT_DELIVERIES_IN_FLIGHT,
    DEFAULT_DELIVERIES_IN_FLIGHT_PER_ENDPOINT, DEFAULT_DELIVERIES_WAITING_PER_ENDPOINT,
    DEFAULT_EVENTS_PREPARED_AT_ONCE, DEFAULT_EVENTS_QUEUED, DEFAULT_IDLE_ENDPOINT_TIMEOUT,
};
pub use engine::{DeliveryEngine, SubmitError, Submitted};
pub use outcome::{FailureClass, OutcomeCounts, ShedReason, TerminalOutcome};
pub use retry::{Jitter, RetryPolicy};
pub use stats::{EngineStats, ShutdownReport};
