//! [`DeliveryEngine`]: the intake queue, the tasks that look events up and deliver them,
//! and the accounting that ends every delivery in exactly one outcome.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::{self, Either};
use futures_util::FutureExt;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};

use crate::delivery::circuit::Transition;
use crate::delivery::config::{DeliveryEngineBuilder, Limits};
use crate::delivery::endpoint_lane::{EndpointLane, Job, Offer};
use crate::delivery::metrics;
use crate::delivery::outcome::{
    health_of, FailureClass, OutcomeCounters, ShedReason, TerminalOutcome,
};
use crate::delivery::retry::{is_retryable, unit_random};
use crate::delivery::stats::{EngineStats, ShutdownReport};
use crate::dispatcher::attempt::{deliver_once, Attempt};
use crate::dispatcher::{DeliveryOutcome, Dispatcher};
use crate::error::Error;
use crate::notification::{Event, TraceParent};
use crate::wire_error::BiotError;

/// How long [`DeliveryEngine::shutdown`] waits, past its deadline, for cancelled work
/// to count itself (cancellation is immediate; this only covers scheduling).
const CANCELLATION_GRACE: Duration = Duration::from_secs(1);

/// The bounded, isolated, fire-and-forget delivery engine; see the
/// [module docs](crate::delivery) for what it guarantees.
///
/// Cheap to clone: clones share one engine. When the last clone is dropped without
/// [`shutdown`](Self::shutdown), the engine stops at once (see the module docs).
#[derive(Clone)]
pub struct DeliveryEngine {
    handle: Arc<Handle>,
}

/// What the host's clones share; dropping it stops the engine.
struct Handle {
    shared: Arc<Shared>,
    intake: mpsc::Sender<Event>,
    report: tokio::sync::Mutex<Option<ShutdownReport>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

/// What the engine's tasks share.
struct Shared {
    dispatcher: Dispatcher,
    limits: Limits,
    runtime: tokio::runtime::Handle,
    lanes: Mutex<HashMap<String, EndpointLane>>,
    /// One permit per running notifier call.
    delivery_slots: Semaphore,
    lifecycle: watch::Sender<Lifecycle>,
    /// `false` once shutdown began: `try_submit` refuses without touching the queue.
    accepting: AtomicBool,
    counters: Counters,
    /// Accepted events not yet fanned out, plus deliveries without an outcome yet.
    outstanding: AtomicUsize,
    /// Woken when `outstanding` drops to zero.
    idle: Notify,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Lifecycle {
    Running,
    /// No new events; queued and running work goes on.
    Draining,
    /// Everything left is abandoned.
    Stopping,
}

#[derive(Debug, Default)]
struct Counters {
    events_accepted: AtomicU64,
    events_overloaded: AtomicU64,
    events_refused_shutting_down: AtomicU64,
    events_expanded: AtomicU64,
    events_failed: AtomicU64,
    events_abandoned: AtomicU64,
    matched: AtomicU64,
    retries: AtomicU64,
    in_flight: AtomicUsize,
    awaiting_slot: AtomicUsize,
    open_circuits: AtomicUsize,
    outcomes: OutcomeCounters,
}

/// An event taken by [`DeliveryEngine::try_submit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Submitted {
    traceparent: TraceParent,
}

impl Submitted {
    /// The event's trace context: its own, or one generated for it. Every notification
    /// of the event continues this trace.
    pub fn traceparent(&self) -> TraceParent {
        self.traceparent
    }

    /// The trace id, as 32 lower-case hex digits: what a host answers as `traceId`.
    pub fn trace_id_hex(&self) -> String {
        self.traceparent.trace_id_hex()
    }
}

/// Why [`DeliveryEngine::try_submit`] did not take an event. The event comes back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The intake queue is full. Answer `503` (see [`Error::Overloaded`]) or try later.
    #[error("the delivery engine is overloaded: {queue_capacity} events are already queued")]
    Overloaded {
        /// The event, not taken.
        event: Box<Event>,
        /// How many events the queue holds.
        queue_capacity: usize,
    },

    /// Shutdown has begun; no event is taken any more.
    #[error("the delivery engine is shutting down")]
    ShuttingDown {
        /// The event, not taken.
        event: Box<Event>,
    },
}

impl SubmitError {
    /// The event that was not taken.
    pub fn event(&self) -> &Event {
        match self {
            SubmitError::Overloaded { event, .. } | SubmitError::ShuttingDown { event } => event,
        }
    }

    /// The event back, to keep or try again.
    pub fn into_event(self) -> Event {
        match self {
            SubmitError::Overloaded { event, .. } | SubmitError::ShuttingDown { event } => *event,
        }
    }
}

impl From<SubmitError> for Error {
    /// [`Error::Overloaded`] or [`Error::ShuttingDown`]: `503` with BioT's error body.
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::Overloaded { queue_capacity, .. } => Error::Overloaded { queue_capacity },
            SubmitError::ShuttingDown { .. } => Error::ShuttingDown,
        }
    }
}

impl SubmitError {
    /// The [`Error`] this refusal converts into, without the event.
    fn as_error(&self) -> Error {
        match self {
            SubmitError::Overloaded { queue_capacity, .. } => Error::Overloaded {
                queue_capacity: *queue_capacity,
            },
            SubmitError::ShuttingDown { .. } => Error::ShuttingDown,
        }
    }
}

/// As the [`Error`] it converts into: `503`, code `SERVICE_UNAVAILABLE`, with the
/// reason (and the queue's capacity) in the details.
impl BiotError for SubmitError {
    fn code(&self) -> &'static str {
        self.as_error().code()
    }

    fn status(&self) -> http::StatusCode {
        self.as_error().status()
    }

    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        self.as_error().details()
    }
}

impl fmt::Debug for DeliveryEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryEngine")
            .field("dispatcher", &self.handle.shared.dispatcher)
            .field("limits", &self.handle.shared.limits)
            .field("lifecycle", &*self.handle.shared.lifecycle.borrow())
            .finish_non_exhaustive()
    }
}

impl DeliveryEngine {
    /// A builder for an engine delivering through `dispatcher`'s store, token provider
    /// and notifier. Nothing runs until [`build`](DeliveryEngineBuilder::build).
    pub fn builder(dispatcher: Dispatcher) -> DeliveryEngineBuilder {
        DeliveryEngineBuilder::new(dispatcher)
    }

    /// Spawns the intake and housekeeping tasks on `runtime`.
    pub(crate) fn start(
        dispatcher: Dispatcher,
        limits: Limits,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        metrics::describe();
        let (intake, queue) = mpsc::channel(limits.events_queued);
        let shared = Arc::new(Shared {
            dispatcher,
            delivery_slots: Semaphore::new(limits.deliveries_in_flight),
            limits,
            runtime,
            lanes: Mutex::new(HashMap::new()),
            lifecycle: watch::Sender::new(Lifecycle::Running),
            accepting: AtomicBool::new(true),
            counters: Counters::default(),
            outstanding: AtomicUsize::new(0),
            idle: Notify::new(),
        });
        shared.runtime.spawn(run_intake(Arc::clone(&shared), queue));
        shared.runtime.spawn(forget_idle_lanes(Arc::clone(&shared)));
        DeliveryEngine {
            handle: Arc::new(Handle {
                shared,
                intake,
                report: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// The dispatcher the engine delivers through.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.handle.shared.dispatcher
    }

    /// Hands an event over without waiting: it is queued, and looked up and delivered
    /// in the background. Synchronous, no I/O, no lock: one bounded channel send.
    ///
    /// An event without a trace context is given a new one here, so the returned
    /// [`Submitted::trace_id_hex`] is the trace every notification of it carries.
    ///
    /// # Errors
    /// [`SubmitError::Overloaded`] at once when the intake queue is full;
    /// [`SubmitError::ShuttingDown`] once [`shutdown`](Self::shutdown) began. Both give
    /// the event back; both convert into the crate's [`Error`] (`503`).
    pub fn try_submit(&self, event: Event) -> Result<Submitted, SubmitError> {
        let shared = &self.handle.shared;
        if !shared.accepting.load(Ordering::Acquire) {
            return Err(shared.refuse_shutting_down(event));
        }
        let (event, traceparent) = match event.traceparent() {
            Some(traceparent) => (event, traceparent),
            None => {
                let traceparent = TraceParent::generate();
                (event.with_traceparent(traceparent), traceparent)
            }
        };
        // Counted before it is visible to the intake task, which may finish it at once.
        shared.outstanding.fetch_add(1, Ordering::SeqCst);
        match self.handle.intake.try_send(event) {
            Ok(()) => {
                shared
                    .counters
                    .events_accepted
                    .fetch_add(1, Ordering::Relaxed);
                metrics::event("accepted");
                metrics::queue_depth(self.events_queued());
                Ok(Submitted { traceparent })
            }
            Err(TrySendError::Full(event)) => {
                shared.work_done(1);
                shared
                    .counters
                    .events_overloaded
                    .fetch_add(1, Ordering::Relaxed);
                metrics::event("overloaded");
                tracing::debug!(
                    queue_capacity = shared.limits.events_queued,
                    "event refused: the queue is full"
                );
                Err(SubmitError::Overloaded {
                    event: Box::new(event),
                    queue_capacity: shared.limits.events_queued,
                })
            }
            Err(TrySendError::Closed(event)) => {
                shared.work_done(1);
                Err(shared.refuse_shutting_down(event))
            }
        }
    }

    fn events_queued(&self) -> usize {
        let intake = &self.handle.intake;
        intake.max_capacity() - intake.capacity()
    }

    /// A snapshot of the engine's queues, slots, circuits and counts.
    pub fn stats(&self) -> EngineStats {
        let shared = &self.handle.shared;
        let (waiting, open_circuits) = {
            let lanes = shared.lanes();
            let waiting: usize = lanes.values().map(EndpointLane::waiting).sum();
            let open: Vec<String> = lanes
                .iter()
                .filter(|(_, lane)| lane.circuit_is_open())
                .map(|(endpoint, _)| endpoint.clone())
                .collect();
            (waiting, open)
        };
        let counters = &shared.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        EngineStats {
            events_queued: self.events_queued(),
            events_accepted: load(&counters.events_accepted),
            events_overloaded: load(&counters.events_overloaded),
            events_refused_shutting_down: load(&counters.events_refused_shutting_down),
            events_expanded: load(&counters.events_expanded),
            events_failed: load(&counters.events_failed),
            events_abandoned: load(&counters.events_abandoned),
            matched: load(&counters.matched),
            deliveries_waiting: waiting + counters.awaiting_slot.load(Ordering::Relaxed),
            deliveries_in_flight: counters.in_flight.load(Ordering::Relaxed),
            retries: load(&counters.retries),
            outcomes: counters.outcomes.snapshot(),
            open_circuits,
        }
    }

    /// Stops taking events, lets queued and running work finish until `deadline` has
    /// passed, then abandons the rest: running notifier calls are cancelled, waiting
    /// deliveries and retries dropped, queued events never looked up. Each is counted.
    ///
    /// Returns by `deadline` plus the moment cancelled tasks take to count themselves
    /// (at most a second more). Calling it again returns the first report.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        let mut cached = self.handle.report.lock().await;
        if let Some(report) = &*cached {
            return report.clone();
        }
        let started = Instant::now();
        let shared = &self.handle.shared;
        shared.accepting.store(false, Ordering::Release);
        shared.lifecycle.send_if_modified(|lifecycle| {
            let running = *lifecycle == Lifecycle::Running;
            if running {
                *lifecycle = Lifecycle::Draining;
            }
            running
        });
        tracing::info!(
            deadline_ms = deadline.as_secs_f64() * 1000.0,
            "delivery engine shutting down"
        );
        let drained = tokio::time::timeout(deadline, shared.until_idle())
            .await
            .is_ok();
        shared.stop();
        let _ = tokio::time::timeout(CANCELLATION_GRACE, shared.until_idle()).await;
        let report = shared.report(drained, started.elapsed());
        tracing::info!(
            drained = report.drained,
            delivered = report.delivered,
            failed = report.failed,
            shed = report.shed,
            abandoned = report.abandoned,
            events_abandoned = report.events_abandoned,
            "delivery engine stopped"
        );
        *cached = Some(report.clone());
        report
    }
}

impl Shared {
    fn lanes(&self) -> MutexGuard<'_, HashMap<String, EndpointLane>> {
        // Nothing panics under this lock; were it poisoned, the map is still consistent.
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lifecycle(&self) -> Lifecycle {
        *self.lifecycle.borrow()
    }

    fn refuse_shutting_down(&self, event: Event) -> SubmitError {
        self.counters
            .events_refused_shutting_down
            .fetch_add(1, Ordering::Relaxed);
        metrics::event("shutting_down");
        SubmitError::ShuttingDown {
            event: Box::new(event),
        }
    }

    /// `n` events or deliveries finished; wakes shutdown when nothing is left.
    fn work_done(&self, n: usize) {
        if self.outstanding.fetch_sub(n, Ordering::SeqCst) == n {
            self.idle.notify_waiters();
        }
    }

    async fn until_idle(&self) {
        loop {
            // Registered before the check, so a wake-up in between is not missed.
            let idle = self.idle.notified();
            if self.outstanding.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }

    async fn until(&self, lifecycle: Lifecycle) {
        let mut changes = self.lifecycle.subscribe();
        // The sender lives as long as `self`, so this only ends by the condition.
        let _ = changes.wait_for(|now| *now >= lifecycle).await;
    }

    /// `work`'s output, or `None` when the engine stops first (then `work` is dropped,
    /// which cancels it). A stopped engine starts no work at all.
    async fn unless_stopped<F: Future>(&self, work: F) -> Option<F::Output> {
        match future::select(pin!(self.until(Lifecycle::Stopping)), pin!(work)).await {
            Either::Left(_) => None,
            Either::Right((output, _)) => Some(output),
        }
    }

    /// Abandons everything: running work is cancelled (each task counts itself), the
    /// backlogs are emptied and counted here.
    fn stop(&self) {
        self.accepting.store(false, Ordering::Release);
        self.lifecycle.send_replace(Lifecycle::Stopping);
        let abandoned: Vec<Job> = {
            let mut lanes = self.lanes();
            lanes
                .values_mut()
                .flat_map(|lane| lane.drain_backlog().collect::<Vec<_>>())
                .collect()
        };
        for job in &abandoned {
            self.end(job, TerminalOutcome::Abandoned);
        }
    }

    fn report(&self, drained: bool, elapsed: Duration) -> ShutdownReport {
        let outcomes = self.counters.outcomes.snapshot();
        ShutdownReport {
            drained,
            elapsed,
            delivered: outcomes.delivered,
            failed: outcomes.failed(),
            shed: outcomes.shed(),
            abandoned: outcomes.abandoned,
            events_abandoned: self.counters.events_abandoned.load(Ordering::Relaxed),
            events_failed: self.counters.events_failed.load(Ordering::Relaxed),
            matched: self.counters.matched.load(Ordering::Relaxed),
            outcomes,
        }
    }

    /// Puts a job in its endpoint's lane (creating the lane), then starts or sheds it
    /// as the lane decides. `returning_retry`: the job held a retry's waiting place.
    fn offer(self: &Arc<Self>, job: Job, returning_retry: bool) {
        let now = Instant::now();
        let offer = {
            let mut lanes = self.lanes();
            if !lanes.contains_key(job.lane_key()) {
                lanes.insert(job.lane_key().to_owned(), EndpointLane::new(now));
            }
            let lane = lanes
                .get_mut(job.lane_key())
                .expect("the lane was just made");
            if returning_retry {
                lane.release_retry(now);
            }
            // Checked under the lock `stop` empties the backlogs under: a job offered
            // after that is abandoned here, never left in a backlog.
            if self.lifecycle() == Lifecycle::Stopping {
                Err(job)
            } else {
                Ok(lane.offer(
                    job,
                    self.limits.in_flight_per_endpoint,
                    self.limits.waiting_per_endpoint,
                    now,
                ))
            }
        };
        match offer {
            Ok(Offer::Start(job)) => self.start(job),
            Ok(Offer::Queued) => {}
            Ok(Offer::Shed(job, reason)) => self.end(&job, TerminalOutcome::Shed(reason)),
            Err(job) => self.end(&job, TerminalOutcome::Abandoned),
        }
    }

    /// Runs a job that holds one of its lane's slots.
    fn start(self: &Arc<Self>, job: Job) {
        self.counters.awaiting_slot.fetch_add(1, Ordering::Relaxed);
        self.runtime.spawn(run_delivery(Arc::clone(self), job));
    }

    /// The attempt ended (`None`: cancelled): frees the lane's slot, feeds the breaker,
    /// then retries the job or gives it its outcome.
    fn settle(self: &Arc<Self>, job: Job, attempt: Option<Attempt>) {
        let now = Instant::now();
        let (outcome, health, retry_in) = match &attempt {
            None => (TerminalOutcome::Abandoned, None, None),
            Some(attempt) => {
                metrics::delivery_duration(attempt.duration);
                let retry_in = match (&attempt.outcome, &self.limits.retry) {
                    (DeliveryOutcome::Failed(error), Some(policy))
                        if is_retryable(error)
                            && job.attempt < policy.max_attempts()
                            && self.lifecycle() == Lifecycle::Running =>
                    {
                        Some(policy.delay(job.attempt, error, unit_random()))
                    }
                    _ => None,
                };
                (
                    TerminalOutcome::of_attempt(&attempt.outcome),
                    Some(health_of(&attempt.outcome)),
                    retry_in,
                )
            }
        };
        let (settled, retry_in) = {
            let mut lanes = self.lanes();
            let lane = lanes
                .get_mut(job.lane_key())
                .expect("a lane with a delivery under way is never forgotten");
            let settled = lane.settle(
                job.probe,
                health,
                &self.limits.circuit_breaker,
                self.limits.in_flight_per_endpoint,
                now,
            );
            let retry_in =
                retry_in.filter(|_| lane.reserve_retry(self.limits.waiting_per_endpoint));
            (settled, retry_in)
        };
        if let Some(transition) = settled.transition {
            self.circuit_changed(job.lane_key(), transition);
        }
        for next in settled.start {
            self.start(next);
        }
        for shed in &settled.shed {
            self.end(shed, TerminalOutcome::Shed(ShedReason::CircuitOpen));
        }
        match retry_in {
            Some(delay) => self.retry_later(job, delay),
            None => self.end(&job, outcome),
        }
    }

    /// Offers the job again after `delay`, holding no slot meanwhile.
    fn retry_later(self: &Arc<Self>, job: Job, delay: Duration) {
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        metrics::retry_scheduled();
        tracing::debug!(
            endpoint = job.lane_key(),
            attempt = job.attempt,
            delay_ms = delay.as_secs_f64() * 1000.0,
            "delivery failed; retrying later"
        );
        let shared = Arc::clone(self);
        self.runtime.spawn(async move {
            // Stopped or not, `offer` gives the waiting place back; a stopped engine
            // abandons the job there.
            shared.unless_stopped(tokio::time::sleep(delay)).await;
            let next = Job {
                attempt: job.attempt + 1,
                probe: false,
                ..job
            };
            shared.offer(next, true);
        });
    }

    /// Counts a job's outcome: the one place every delivery ends.
    fn end(&self, job: &Job, outcome: TerminalOutcome) {
        self.counters.outcomes.add(outcome);
        metrics::delivery_ended(outcome);
        let endpoint = job.lane_key();
        match outcome {
            TerminalOutcome::Shed(_) => {
                tracing::debug!(
                    endpoint,
                    attempt = job.attempt,
                    outcome = outcome.label(),
                    "delivery shed"
                );
            }
            TerminalOutcome::Abandoned => {
                tracing::debug!(
                    endpoint,
                    attempt = job.attempt,
                    outcome = outcome.label(),
                    "delivery abandoned"
                );
            }
            TerminalOutcome::Failed(FailureClass::Gone) => {
                tracing::info!(
                    endpoint,
                    outcome = outcome.label(),
                    "the plugin answered 410 Gone; its subscriptions may be removed"
                );
            }
            _ => {}
        }
        self.work_done(1);
    }

    fn circuit_changed(&self, endpoint: &str, transition: Transition) {
        let open = &self.counters.open_circuits;
        match transition {
            Transition::Opened(cool_down) => {
                let now_open = open.fetch_add(1, Ordering::Relaxed) + 1;
                metrics::open_circuits(now_open);
                tracing::warn!(
                    endpoint,
                    cool_down_ms = cool_down.as_secs_f64() * 1000.0,
                    "circuit opened: the endpoint's deliveries are shed until a probe succeeds"
                );
            }
            Transition::Reopened(cool_down) => {
                tracing::warn!(
                    endpoint,
                    cool_down_ms = cool_down.as_secs_f64() * 1000.0,
                    "probe failed: circuit open again"
                );
            }
            Transition::Closed => {
                let now_open = open.fetch_sub(1, Ordering::Relaxed) - 1;
                metrics::open_circuits(now_open);
                tracing::info!(endpoint, "probe succeeded: circuit closed");
            }
            Transition::Unchanged => {}
        }
    }
}

/// Takes events off the queue, at most `events_prepared_at_once` being looked up at once.
async fn run_intake(shared: Arc<Shared>, mut queue: mpsc::Receiver<Event>) {
    let preparing = Arc::new(Semaphore::new(shared.limits.events_prepared_at_once));
    let mut closed = false;
    loop {
        let Some(Ok(permit)) = shared
            .unless_stopped(Arc::clone(&preparing).acquire_owned())
            .await
        else {
            break;
        };
        let received = if closed {
            shared.unless_stopped(queue.recv()).await.flatten()
        } else {
            let next =
                match future::select(pin!(queue.recv()), pin!(shared.until(Lifecycle::Draining)))
                    .await
                {
                    Either::Left((event, _)) => Some(event),
                    Either::Right(_) => None,
                };
            match next {
                Some(event) => event,
                None => {
                    // Draining: refuse new events, but take what is queued.
                    queue.close();
                    closed = true;
                    continue;
                }
            }
        };
        let Some(event) = received else {
            break;
        };
        metrics::queue_depth(queue.len());
        shared
            .runtime
            .spawn(expand(Arc::clone(&shared), event, permit));
    }
    // Stopped (or every handle dropped): what is still queued was never looked up.
    queue.close();
    while queue.try_recv().is_ok() {
        shared
            .counters
            .events_abandoned
            .fetch_add(1, Ordering::Relaxed);
        metrics::event("abandoned");
        shared.work_done(1);
    }
    metrics::queue_depth(0);
}

/// Looks an event's subscribers up, renders its notification once, and offers one job
/// per subscribed endpoint to that endpoint's lane.
async fn expand(shared: Arc<Shared>, event: Event, permit: OwnedSemaphorePermit) {
    let lookup = AssertUnwindSafe(shared.dispatcher.prepare(&event)).catch_unwind();
    let looked_up = shared.unless_stopped(lookup).await;
    drop(permit);
    let counters = &shared.counters;
    match looked_up {
        None => {
            counters.events_abandoned.fetch_add(1, Ordering::Relaxed);
            metrics::event("abandoned");
        }
        Some(Err(_panic)) => {
            counters.events_failed.fetch_add(1, Ordering::Relaxed);
            metrics::event("failed");
            tracing::error!(
                event = %event.event_type(),
                "event dropped: the store or token provider panicked"
            );
        }
        Some(Ok(Err(error))) => {
            counters.events_failed.fetch_add(1, Ordering::Relaxed);
            metrics::event("failed");
            tracing::error!(
                event = %event.event_type(),
                code = error.code(),
                error = &error as &(dyn std::error::Error + 'static),
                "event dropped: its subscribers could not be looked up"
            );
        }
        Some(Ok(Ok(None))) => {
            counters.events_expanded.fetch_add(1, Ordering::Relaxed);
        }
        Some(Ok(Ok(Some((subscriptions, notification))))) => {
            counters.events_expanded.fetch_add(1, Ordering::Relaxed);
            counters
                .matched
                .fetch_add(subscriptions.len() as u64, Ordering::Relaxed);
            shared
                .outstanding
                .fetch_add(subscriptions.len(), Ordering::SeqCst);
            let notification = Arc::new(notification);
            for subscription in subscriptions {
                let job = Job {
                    subscription,
                    notification: Arc::clone(&notification),
                    attempt: 1,
                    probe: false,
                };
                shared.offer(job, false);
            }
        }
    }
    shared.work_done(1);
}

/// One attempt of a job that holds a lane slot: waits for a global slot, calls the
/// notifier, settles.
async fn run_delivery(shared: Arc<Shared>, job: Job) {
    // Moved into the attempt, so it is released however the attempt ends, even unpolled.
    let awaiting = GaugeGuard::entered(&shared.counters.awaiting_slot, None);
    let attempt = shared
        .unless_stopped(async {
            let _slot = shared
                .delivery_slots
                .acquire()
                .await
                .expect("the engine never closes its semaphore");
            drop(awaiting);
            let _running = GaugeGuard::entered(
                &shared.counters.in_flight,
                Some(metrics::deliveries_in_flight),
            );
            let notifier = &**shared.dispatcher.notifier();
            deliver_once(
                notifier,
                job.subscription.endpoint(),
                &job.notification,
                job.attempt,
            )
            .await
        })
        .await;
    shared.settle(job, attempt);
}

/// Keeps a gauge right however its future ends: decrements it when dropped.
struct GaugeGuard<'a> {
    gauge: &'a AtomicUsize,
    report: Option<fn(usize)>,
}

impl<'a> GaugeGuard<'a> {
    /// Counts one more in `gauge` and reports it, or, without `report`, takes over
    /// one already counted (`awaiting_slot` is counted by [`Shared::start`] before its
    /// task exists).
    fn entered(gauge: &'a AtomicUsize, report: Option<fn(usize)>) -> Self {
        if let Some(report) = report {
            report(gauge.fetch_add(1, Ordering::Relaxed) + 1);
        }
        GaugeGuard { gauge, report }
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        let now = self.gauge.fetch_sub(1, Ordering::Relaxed) - 1;
        if let Some(report) = self.report {
            report(now);
        }
    }
}

/// Forgets lanes idle for `idle_endpoint_timeout`, so memory follows live endpoints.
async fn forget_idle_lanes(shared: Arc<Shared>) {
    let timeout = shared.limits.idle_endpoint_timeout;
    let period = (timeout / 2).max(Duration::from_millis(50));
    while shared
        .unless_stopped(tokio::time::sleep(period))
        .await
        .is_some()
    {
        let Some(cutoff) = Instant::now().checked_sub(timeout) else {
            continue;
        };
        let mut lanes = shared.lanes();
        lanes.retain(|_, lane| !lane.is_idle_since(cutoff));
        if lanes.capacity() > 64 && lanes.capacity() > 4 * lanes.len() {
            lanes.shrink_to_fit();
        }
    }
}
