//! One endpoint's lane: its backlog, its deliveries under way, its circuit breaker.
//!
//! A lane is plain data, changed under the engine's lock; it decides, the engine acts
//! (spawns, counts, traces) after the lock is released.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::delivery::circuit::{
    Admission, CircuitBreaker, CircuitBreakerPolicy, Health, Transition,
};
use crate::delivery::outcome::ShedReason;
use crate::notification::PreparedNotification;
use crate::subscription::Subscription;

/// One delivery of one event to one endpoint, through its attempts.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) subscription: Arc<Subscription>,
    pub(crate) notification: Arc<PreparedNotification>,
    /// The attempt about to be made, from 1.
    pub(crate) attempt: u32,
    /// Whether this attempt is its circuit's half-open probe.
    pub(crate) probe: bool,
}

impl Job {
    /// The lane this job belongs to: its endpoint, normalised.
    pub(crate) fn lane_key(&self) -> &str {
        self.subscription.endpoint().as_str()
    }
}

/// What became of a job offered to a lane.
#[derive(Debug)]
pub(crate) enum Offer {
    /// Start it now: it holds one of the lane's in-flight slots.
    Start(Job),
    /// It waits in the backlog.
    Queued,
    /// Dropped.
    Shed(Job, ShedReason),
}

/// What finishing an attempt set in motion.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    /// Backlogged jobs that now hold in-flight slots.
    pub(crate) start: Vec<Job>,
    /// Backlogged jobs shed because the circuit opened.
    pub(crate) shed: Vec<Job>,
    /// How the circuit changed, if it did.
    pub(crate) transition: Option<Transition>,
}

#[derive(Debug)]
pub(crate) struct EndpointLane {
    backlog: VecDeque<Job>,
    /// Jobs holding one of this lane's in-flight slots (running, or waiting for a global one).
    in_flight: usize,
    /// Jobs waiting on a retry timer.
    retries_waiting: usize,
    circuit: CircuitBreaker,
    last_active: Instant,
}

impl EndpointLane {
    pub(crate) fn new(now: Instant) -> Self {
        EndpointLane {
            backlog: VecDeque::new(),
            in_flight: 0,
            retries_waiting: 0,
            circuit: CircuitBreaker::new(),
            last_active: now,
        }
    }

    /// Deliveries waiting: the backlog and the retries on timers.
    pub(crate) fn waiting(&self) -> usize {
        self.backlog.len() + self.retries_waiting
    }

    pub(crate) fn circuit_is_open(&self) -> bool {
        self.circuit.is_open()
    }

    /// Nothing waiting or under way, the circuit closed and clean, since before `cutoff`.
    pub(crate) fn is_idle_since(&self, cutoff: Instant) -> bool {
        self.backlog.is_empty()
            && self.in_flight == 0
            && self.retries_waiting == 0
            && self.circuit.is_pristine()
            && self.last_active <= cutoff
    }

    /// Takes a job: starts it if a slot is free and the circuit lets it, queues it if
    /// the backlog has room, sheds it otherwise.
    pub(crate) fn offer(
        &mut self,
        mut job: Job,
        in_flight_cap: usize,
        waiting_cap: usize,
        now: Instant,
    ) -> Offer {
        self.last_active = now;
        if self.circuit.is_open() {
            // Only the probe passes, and only into a free slot.
            if self.in_flight < in_flight_cap && self.circuit.probe_due(now) {
                let admission = self.circuit.admit(now);
                debug_assert_eq!(admission, Admission::Probe);
                job.probe = true;
                self.in_flight += 1;
                return Offer::Start(job);
            }
            return Offer::Shed(job, ShedReason::CircuitOpen);
        }
        job.probe = false;
        if self.in_flight < in_flight_cap && self.backlog.is_empty() {
            self.in_flight += 1;
            Offer::Start(job)
        } else if self.waiting() < waiting_cap {
            self.backlog.push_back(job);
            Offer::Queued
        } else {
            Offer::Shed(job, ShedReason::BacklogFull)
        }
    }

    /// An attempt holding a slot ended with `health` (`None`: cancelled). Frees the
    /// slot, tells the breaker, and hands back what to start (or shed) next.
    pub(crate) fn settle(
        &mut self,
        probe: bool,
        health: Option<Health>,
        policy: &CircuitBreakerPolicy,
        in_flight_cap: usize,
        now: Instant,
    ) -> Settled {
        self.last_active = now;
        self.in_flight -= 1;
        let mut settled = Settled::default();
        match health {
            Some(health) => {
                let transition = self.circuit.record(policy, health, probe, now);
                if transition != Transition::Unchanged {
                    settled.transition = Some(transition);
                }
            }
            None if probe => self.circuit.probe_lost(now),
            None => {}
        }
        if self.circuit.is_open() {
            // What waited was sent for an endpoint now known down: shed it rather than
            // hold it through the cool-down.
            settled.shed.extend(self.backlog.drain(..));
        } else {
            while self.in_flight < in_flight_cap {
                let Some(job) = self.backlog.pop_front() else {
                    break;
                };
                self.in_flight += 1;
                settled.start.push(job);
            }
        }
        settled
    }

    /// Reserves a waiting place for a retry; `false` when the backlog is full.
    pub(crate) fn reserve_retry(&mut self, waiting_cap: usize) -> bool {
        if self.waiting() < waiting_cap {
            self.retries_waiting += 1;
            true
        } else {
            false
        }
    }

    /// A retry's timer fired (or was cancelled): it gives its waiting place back.
    pub(crate) fn release_retry(&mut self, now: Instant) {
        self.last_active = now;
        self.retries_waiting -= 1;
    }

    /// Everything in the backlog, for abandoning at shutdown.
    pub(crate) fn drain_backlog(&mut self) -> impl Iterator<Item = Job> + '_ {
        self.backlog.drain(..)
    }
}
