//! [`ReplicationStatus`]: whether an instance's index follows the database, and since
//! when it may be stale; the tracing events that report each change of state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::wire_error::{BoxError, ErrorChain};

/// Whether a [`ReplicatedStore`](super::ReplicatedStore)'s index follows the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicationState {
    /// The listening connection is up and the index has every change the database
    /// announced: another instance's write reaches it within a notification and one
    /// query, and a lost notification within one heartbeat.
    Following,
    /// The listening connection is down (or was never up since the last failure): the
    /// index serves what it last knew, and the store is reconnecting. Changes made
    /// meanwhile are applied, all of them, before it is [`Following`](Self::Following)
    /// again.
    Reconnecting,
}

/// A snapshot of a [`ReplicatedStore`](super::ReplicatedStore)'s replication, from
/// [`ReplicatedStore::status`](super::ReplicatedStore::status).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReplicationStatus {
    /// Following the database, or reconnecting.
    pub state: ReplicationState,
    /// The database's change counter as of the index: the last change it holds.
    pub version: u64,
    /// When the index stopped following the database; `None` while it follows.
    pub stale_since: Option<Instant>,
    /// How many times the listening connection was lost and made again.
    pub reconnects: u64,
    /// How many times the index was reloaded whole (at start, after a gap the change log
    /// no longer covers, after a `TRUNCATE`, or when it disagreed with the log).
    pub full_reloads: u64,
}

impl ReplicationStatus {
    /// Whether the index follows the database now.
    pub fn is_following(&self) -> bool {
        self.state == ReplicationState::Following
    }

    /// How long the index has been stale, if it is.
    pub fn staleness(&self) -> Option<Duration> {
        self.stale_since.map(|since| since.elapsed())
    }
}

/// The live status, shared by the store's handles and its follower task.
#[derive(Debug)]
pub(super) struct StatusCell {
    /// The version the index is at, readable without the lock (own writes check it).
    version: AtomicU64,
    status: Mutex<ReplicationStatus>,
}

impl StatusCell {
    pub(super) fn new() -> Self {
        StatusCell {
            version: AtomicU64::new(0),
            status: Mutex::new(ReplicationStatus {
                state: ReplicationState::Reconnecting,
                version: 0,
                stale_since: Some(Instant::now()),
                reconnects: 0,
                full_reloads: 0,
            }),
        }
    }

    pub(super) fn snapshot(&self) -> ReplicationStatus {
        let mut status = self.lock().clone();
        status.version = self.version();
        status
    }

    pub(super) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Records the version the index has reached; called with the index's lock held.
    pub(super) fn set_version(&self, version: u64) {
        self.version.store(version, Ordering::Release);
    }

    pub(super) fn count_full_reload(&self) {
        self.lock().full_reloads += 1;
    }

    /// The index is current and followed again; reports how long it was stale.
    pub(super) fn following(&self, schema: &str) {
        let mut status = self.lock();
        if status.state == ReplicationState::Following {
            return;
        }
        let stale_for = status.stale_since.take().map(|since| since.elapsed());
        status.state = ReplicationState::Following;
        let version = self.version();
        // The first time is the start, not a recovery.
        if status.reconnects == 0 {
            tracing::info!(schema, version, "the replicated store follows the database");
        } else {
            tracing::info!(
                schema,
                version,
                stale_for_ms = stale_for.map_or(0, |d| d.as_millis() as u64),
                reconnects = status.reconnects,
                "the replicated store resynchronised its index and follows the database again"
            );
        }
    }

    /// The listening connection is lost: the index is stale from now on.
    pub(super) fn lost(&self, schema: &str, why: &BoxError) {
        let mut status = self.lock();
        if status.state == ReplicationState::Following {
            status.state = ReplicationState::Reconnecting;
            status.stale_since = Some(Instant::now());
            tracing::warn!(
                schema,
                version = self.version(),
                error = %ErrorChain(why.as_ref()),
                "the replicated store stopped following the database (its connection was lost \
                 or a read failed); matching serves the last known subscriptions until it \
                 reconnects and resynchronises"
            );
        }
    }

    /// The listening connection was made again after a loss.
    pub(super) fn count_reconnect(&self) {
        self.lock().reconnects += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReplicationStatus> {
        // Nothing panics under this lock; a poisoned one holds consistent data.
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
