//! [`ReplicatedStore`]: subscriptions kept in PostgreSQL and matched from memory, for
//! many dispatcher instances on one database (feature `postgres`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use biot_notifications::store::postgres::ReplicatedStore;
//! use biot_notifications::store::SubscriptionStore;
//! use biot_notifications::{Action, EntityType, EventType, SubscribeRequest, Subscription};
//!
//! // Connects a pool and a listening connection, migrates the schema, loads the index.
//! let store = ReplicatedStore::connect("postgres://dispatcher@db.internal:5432/biot").await?;
//!
//! let key = SubscribeRequest::new("patient", "_create", "https://plugin.example.com/hook").key()?;
//! store.insert(Subscription::new(key)).await?; // in PostgreSQL, then in this index
//!
//! // From memory: no query per event.
//! let created = EventType::new(EntityType::Patient, Action::Create)?;
//! assert_eq!(store.matching(created, None).await?.len(), 1);
//! assert!(store.status().is_following());
//!
//! let store: Arc<dyn SubscriptionStore> = Arc::new(store);
//! # let _ = store;
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! The database is the one authority: every write ([`insert`](SubscriptionStore::insert),
//! [`remove`](SubscriptionStore::remove)) is a statement on the same tables as
//! [`PostgresStore`]'s, so the unique identity index still decides a race (of two
//! instances subscribing the same identity, one succeeds and the other gets
//! [`StoreError::AlreadyExists`]). Each instance keeps an index of every subscription in
//! memory, an [`InMemoryStore`], and answers [`matching`](SubscriptionStore::matching),
//! [`get`](SubscriptionStore::get), [`search`](SubscriptionStore::search) and
//! [`count`](SubscriptionStore::count) from it, without a query.
//!
//! Triggers on the subscriptions table (schema migration 2) number every change, made by
//! whatever writes to the table (this store, [`PostgresStore`], an operator's SQL), with
//! the next value of a change counter, inside the writing transaction. Each statement
//! locks the counter's row before anything else and keeps it locked until commit, so
//! versions are gapless and in commit order, and writers never deadlock on it. Each change
//! is logged with its row (the last 10,000 changes are kept), and each statement's last
//! version is announced with `NOTIFY` on a channel named after the schema, delivered at
//! commit.
//!
//! Each instance holds one connection of its own (outside the pool) that `LISTEN`s on
//! that channel. On a notification it reads the log after the version its index holds
//! and applies the changes in order; the counter says when one is missing. It also reads
//! the change it applied last again, and when that version now holds another change, the
//! database has another history than the one the index followed (a failover to a standby
//! that lacked the last changes, a restored backup). When the log cannot say what changed
//! (that, more than 10,000 changes behind, or a `TRUNCATE`), it reloads every
//! subscription in one consistent read and changes in the index only what differs, so the
//! index never empties meanwhile (a subscription that changed is absent for the moment
//! between its removal and its insertion).
//!
//! A row that cannot be served (not a valid subscription, such as a name a newer version
//! of this crate knows and this one does not, or a second row with the identity of
//! another once parsed) is left out of the index with a `WARN` event, and replication goes
//! on; the database keeps it, so [`PostgresStore`] and a newer instance still see it.
//!
//! # Consistency
//!
//! - **Own writes** are seen at once: when `insert` or `remove` returns, this instance's
//!   index has the change (it learns the change's version in the writing transaction and
//!   applies it, with any changes before it it lacks, read from the log on the same
//!   connection, before returning). Waiting for the index and reading the log are each
//!   bounded by the operation timeout; if either fails after the commit, the write still
//!   succeeds, a `WARN` event says that this index shows it only once the store catches
//!   up, and the follower does within a heartbeat. The same holds in the rare case that
//!   the log cannot say what came before (the follower then reloads).
//! - **Other instances' writes** reach this index after their commit, one notification
//!   and one query later: about a millisecond on a local network (see the README's
//!   figures). A notification that never arrives is made up for at the next heartbeat
//!   ([`ReplicatedOptions::heartbeat`], 1 s unless set), which reads the counter.
//! - **While the database cannot be reached**, the index keeps serving what it last
//!   knew: `matching` never waits on the database and never fails. The store reports it:
//!   [`ReplicatedStore::status`] turns [`Reconnecting`](ReplicationState::Reconnecting)
//!   with the time it became stale, and a `WARN` tracing event says so. The loss is
//!   noticed at once when the connection closes, and within one heartbeat plus the
//!   operation timeout when it hangs (during a reload, within the
//!   [reload timeout](ReplicatedOptions::reload_timeout)). The store reconnects after
//!   100 ms, each failure doubling the wait up to
//!   [`ReplicatedOptions::max_reconnect_delay`] (5 s unless set; from then on a `WARN`
//!   repeats the reason); a session that fails soon after it opened keeps the waits
//!   growing rather than starting them over. It `LISTEN`s again first, then applies
//!   every change made meanwhile, including removals, before it reports itself
//!   [`Following`](ReplicationState::Following) again (an `INFO` event). So an instance
//!   is stale for at most as long as it cannot reach the database, plus the time to
//!   notice (at once when the connection closes; one heartbeat and one operation timeout
//!   when it hangs), one reconnect delay and the time to catch up.
//! - Writes need the database: while it is down they fail with
//!   [`StoreError::Backend`], as on [`PostgresStore`].
//!
//! # Cost
//!
//! Memory: the index is an [`InMemoryStore`], with its cost per subscription; nothing is
//! kept per subscription besides it (a reload holds every row read, and a map of them,
//! for as long as it compares them with the index). A write costs a few round trips more
//! than [`PostgresStore`]'s (a transaction that also reads the counter) and serialises
//! with the other writes on the database from its statement to its commit. Every instance
//! reads each change once from the log (and, with each read, the change it applied last
//! again, to check it), and the counter once a heartbeat.
//!
//! # Privileges
//!
//! The triggers' functions run as their owner (the role that migrated the schema), so a
//! role that writes subscriptions needs no privilege on the log or the counter. The
//! replicated store's role also reads them (`SELECT` on `subscription_changes` and
//! `subscription_changes_head`), and `LISTEN`s, which needs none.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Client as PooledClient, Transaction as PooledTransaction};
use futures_util::FutureExt;
use time::{OffsetDateTime, UtcOffset};
use tokio::task::AbortHandle;
use uuid::Uuid;

use super::rows::{store_error, TimedOut};
use super::{PostgresOptions, PostgresSetupError, PostgresStore};
use crate::catalog::EventType;
use crate::search::{Page, SearchRequest};
use crate::store::{InMemoryStore, StoreError, SubscriptionStore};
use crate::subscription::{Subscription, SubscriptionKey};
use crate::wire_error::{BoxError, ErrorChain};

mod changes;
mod follower;
mod status;

pub use status::{ReplicationState, ReplicationStatus};

use changes::{version_of, Applied, CaughtUp, Change, ChangeStatements};
use follower::Listener;
use status::StatusCell;

/// How often a following instance reads the change counter unless
/// [`ReplicatedOptions::heartbeat`] says otherwise.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);

/// The longest wait between two attempts to reconnect unless
/// [`ReplicatedOptions::max_reconnect_delay`] says otherwise.
pub const DEFAULT_MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// How long loading every subscription may take unless
/// [`ReplicatedOptions::reload_timeout`] says otherwise.
pub const DEFAULT_RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// The first wait before reconnecting (doubled after each failed attempt).
const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// A [`SubscriptionStore`] in PostgreSQL, with every subscription also indexed in this
/// process's memory and kept current through `LISTEN`/`NOTIFY`: matching at
/// [`InMemoryStore`]'s speed, for dispatchers that run as several instances.
///
/// Cheap to clone: clones share the pool, the listening connection and the index. When
/// the last clone is dropped, the listening connection closes. See the
/// [module docs](self) for how it works and how stale an index may be.
#[derive(Clone)]
pub struct ReplicatedStore {
    inner: Arc<Handle>,
}

/// What the store's clones share; dropping it stops the follower.
struct Handle {
    /// The index, here too, one pointer closer to `matching`.
    index: InMemoryStore,
    replica: Arc<Replica>,
    follower: AbortHandle,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// What the store's handles and its follower task share.
struct Replica {
    postgres: PostgresStore,
    index: InMemoryStore,
    /// Serialises every change to the index, so changes apply in version order, and
    /// keeps what was applied last.
    applying: tokio::sync::Mutex<Applied>,
    status: StatusCell,
    sql: ChangeStatements,
    listener: Listener,
    heartbeat: Duration,
    max_reconnect_delay: Duration,
    reload_timeout: Duration,
}

impl ReplicatedStore {
    /// Connects to the database at `url` (a `postgres://` URL or a libpq key-value
    /// string) with the default options: a pool, a listening connection, the schema
    /// migrated, the index loaded.
    ///
    /// # Errors
    /// As [`ReplicatedOptions::connect`].
    pub async fn connect(url: &str) -> Result<Self, PostgresSetupError> {
        Self::options().connect(url).await
    }

    /// Options: the PostgreSQL ones (schema, operation timeout, pool size, TLS roots), the
    /// heartbeat, the reconnect delay and the reload timeout.
    pub fn options() -> ReplicatedOptions {
        ReplicatedOptions::new()
    }

    /// Whether the index follows the database, its version, and since when it is stale
    /// if it is. Cheap: for health checks and metrics.
    pub fn status(&self) -> ReplicationStatus {
        self.inner.replica.status.snapshot()
    }

    /// The [`PostgresStore`] this store writes through, on the same pool and schema:
    /// for reading straight from the database.
    pub fn postgres(&self) -> &PostgresStore {
        &self.inner.replica.postgres
    }
}

impl fmt::Debug for ReplicatedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.status();
        f.debug_struct("ReplicatedStore")
            .field("schema", &self.inner.replica.postgres.schema())
            .field("state", &status.state)
            .field("version", &status.version)
            .field("index", &self.inner.index)
            .finish_non_exhaustive()
    }
}

/// How to build a [`ReplicatedStore`]: start from [`ReplicatedStore::options`], finish
/// with [`connect`](Self::connect).
///
/// ```no_run
/// # async fn run() -> Result<(), biot_notifications::store::postgres::PostgresSetupError> {
/// use std::time::Duration;
/// use biot_notifications::store::postgres::{PostgresStore, ReplicatedStore};
///
/// let store = ReplicatedStore::options()
///     .postgres(PostgresStore::options().schema("dispatcher").max_connections(8))
///     .heartbeat(Duration::from_millis(500))
///     .connect("postgres://dispatcher@db.internal/biot")
///     .await?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ReplicatedOptions {
    postgres: PostgresOptions,
    heartbeat: Duration,
    max_reconnect_delay: Duration,
    reload_timeout: Duration,
}

impl Default for ReplicatedOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplicatedOptions {
    /// The defaults: [`PostgresOptions::new`], [`DEFAULT_HEARTBEAT`],
    /// [`DEFAULT_MAX_RECONNECT_DELAY`], [`DEFAULT_RELOAD_TIMEOUT`].
    pub fn new() -> Self {
        ReplicatedOptions {
            postgres: PostgresOptions::new(),
            heartbeat: DEFAULT_HEARTBEAT,
            max_reconnect_delay: DEFAULT_MAX_RECONNECT_DELAY,
            reload_timeout: DEFAULT_RELOAD_TIMEOUT,
        }
    }

    /// The PostgreSQL options: schema, operation timeout (which also bounds each query
    /// of the listening connection), pool size, TLS roots.
    pub fn postgres(mut self, options: PostgresOptions) -> Self {
        self.postgres = options;
        self
    }

    /// How often a following instance reads the change counter, to make up for a lost
    /// notification and to notice a connection that hangs; zero is refused.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// The longest wait between two attempts to reconnect (the first waits 100 ms or
    /// this, whichever is shorter, and each failure doubles the wait); zero is refused.
    pub fn max_reconnect_delay(mut self, delay: Duration) -> Self {
        self.max_reconnect_delay = delay;
        self
    }

    /// How long reading every subscription, to load the index whole, may take (the
    /// operation timeout bounds everything else); zero is refused. At start and whenever
    /// the change log cannot say what changed. A reload that times out is tried again
    /// at the next reconnect; meanwhile the index keeps what it had.
    pub fn reload_timeout(mut self, timeout: Duration) -> Self {
        self.reload_timeout = timeout;
        self
    }

    /// Connects to the database at `url`: the pool and the schema as
    /// [`PostgresOptions::connect`], then the listening connection, then the index,
    /// loaded whole.
    ///
    /// # Errors
    /// As [`PostgresOptions::connect`]; [`PostgresSetupError::Zero`] for a zero
    /// heartbeat, reconnect delay or reload timeout; [`PostgresSetupError::Store`] when
    /// the listening connection cannot be made within the operation timeout, or the index
    /// cannot be loaded within the reload timeout.
    pub async fn connect(self, url: &str) -> Result<ReplicatedStore, PostgresSetupError> {
        for (value, option) in [
            (self.heartbeat, "heartbeat"),
            (self.max_reconnect_delay, "max_reconnect_delay"),
            (self.reload_timeout, "reload_timeout"),
        ] {
            if value.is_zero() {
                return Err(PostgresSetupError::Zero { option });
            }
        }
        let listener = Listener::new(self.postgres.connection_settings(url)?);
        let postgres = self.postgres.connect(url).await?;
        let index = InMemoryStore::new();
        let replica = Arc::new(Replica {
            sql: ChangeStatements::new(postgres.schema()),
            postgres,
            index: index.clone(),
            applying: tokio::sync::Mutex::new(Applied::default()),
            status: StatusCell::new(),
            listener,
            heartbeat: self.heartbeat,
            max_reconnect_delay: self.max_reconnect_delay,
            reload_timeout: self.reload_timeout,
        });
        let session = replica
            .open_session()
            .await
            .map_err(PostgresSetupError::Store)?;
        replica.status.following(replica.postgres.schema());
        let follower = tokio::spawn(Arc::clone(&replica).supervise(session)).abort_handle();
        Ok(ReplicatedStore {
            inner: Arc::new(Handle {
                index,
                replica,
                follower,
            }),
        })
    }
}

impl Replica {
    /// Runs the follower; should it ever panic (a bug), the index is reported stale for
    /// good, so that a health check sees it, rather than silently frozen.
    async fn supervise(self: Arc<Self>, session: follower::Session) {
        let followed = AssertUnwindSafe(Arc::clone(&self).follow(session))
            .catch_unwind()
            .await;
        if followed.is_err() {
            let why: BoxError = "the follower task panicked; the index no longer follows the \
                                 database (a bug: please report it)"
                .into();
            tracing::error!(schema = self.postgres.schema(), "{why}");
            self.status.lost(self.postgres.schema(), &why);
        }
    }

    /// Commits a write, first reading the version the triggers gave it: the counter's
    /// row is this transaction's own until the commit, so no other write can share it.
    async fn commit_counted(&self, tx: PooledTransaction<'_>) -> Result<u64, StoreError> {
        let head = tx
            .query_one(&self.sql.head, &[])
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(version_of(head.try_get(0).map_err(store_error)?))
    }

    /// Applies the change this instance just committed as `version`, and whatever
    /// changes before it the index lacks (read from the log on the writer's own
    /// connection), so that the caller reads its own write. Waiting for the index's lock
    /// and reading the log are each bounded by the operation timeout.
    async fn apply_own(&self, version: u64, change: Change, client: &PooledClient) {
        if self.status.version() >= version {
            return; // The follower was faster.
        }
        let limit = self.postgres.operation_timeout();
        let applied = async {
            let mut applied = tokio::time::timeout(limit, self.applying.lock())
                .await
                .map_err(|_| store_error(TimedOut(limit)))?;
            let at = self.status.version();
            if at >= version
                || (at + 1 == version && self.apply(&mut applied, version, change).is_ok())
            {
                return Ok(());
            }
            // Changes from other instances came between: read them (and ours) from the log.
            let statement = self
                .postgres
                .within(async {
                    client
                        .prepare_cached(self.sql.changes_from())
                        .await
                        .map_err(store_error)
                })
                .await?;
            match self
                .catch_up_within(&mut applied, client, &statement)
                .await?
            {
                CaughtUp::Current => Ok(()),
                // Rare (the index was more than the log's length behind, or the table was
                // truncated): the follower reloads the index within a heartbeat.
                CaughtUp::NeedsReload => Err(store_error(
                    "the change log cannot say what changed before this write",
                )),
            }
        }
        .await;
        if let Err(error) = applied {
            // The write is committed; the follower brings it into the index once it
            // catches up. Until then this instance does not see its own write.
            tracing::warn!(
                schema = self.postgres.schema(),
                version,
                error = %ErrorChain(&error),
                "the replicated store committed a write but could not bring its index up to it \
                 at once; the index shows the write once the store catches up"
            );
        }
    }
}

/// A subscription as PostgreSQL gives it back, so that this instance's index holds what
/// the others load: `timestamptz` is in UTC and counts whole microseconds from
/// 2000-01-01, the driver cutting what is finer towards that instant.
fn as_stored(subscription: Subscription) -> Subscription {
    let created_at = subscription.created_at().to_offset(UtcOffset::UTC);
    let finer = Duration::from_nanos(u64::from(created_at.nanosecond() % 1_000));
    let cut = if created_at >= POSTGRES_EPOCH {
        created_at - finer
    } else if finer.is_zero() {
        created_at
    } else {
        created_at - finer + Duration::from_micros(1)
    };
    Subscription::from_parts(subscription.id(), subscription.key().clone(), cut)
}

/// PostgreSQL's timestamps count from here.
const POSTGRES_EPOCH: OffsetDateTime = time::macros::datetime!(2000-01-01 0:00 UTC);

#[async_trait]
impl SubscriptionStore for ReplicatedStore {
    async fn insert(&self, subscription: Subscription) -> Result<(), StoreError> {
        let replica = &self.inner.replica;
        let subscription = as_stored(subscription);
        let (version, client) = replica
            .postgres
            .within(async {
                let mut client = replica.postgres.client().await?;
                let tx = client.transaction().await.map_err(store_error)?;
                replica.postgres.insert_on(&tx, &subscription).await?;
                let version = replica.commit_counted(tx).await?;
                Ok((version, client))
            })
            .await?;
        replica
            .apply_own(version, Change::Insert(subscription), &client)
            .await;
        Ok(())
    }

    async fn remove(&self, key: &SubscriptionKey) -> Result<Subscription, StoreError> {
        let replica = &self.inner.replica;
        let (removed, version, client) = replica
            .postgres
            .within(async {
                let mut client = replica.postgres.client().await?;
                let tx = client.transaction().await.map_err(store_error)?;
                let removed = replica.postgres.remove_on(&tx, key).await?;
                let version = replica.commit_counted(tx).await?;
                Ok((removed, version, client))
            })
            .await?;
        replica
            .apply_own(version, Change::Remove(removed.id()), &client)
            .await;
        Ok(removed)
    }

    async fn get(&self, id: Uuid) -> Result<Option<Subscription>, StoreError> {
        Ok(self.inner.index.get_now(id))
    }

    async fn matching(
        &self,
        event_type: EventType,
        template: Option<&str>,
    ) -> Result<Vec<Arc<Subscription>>, StoreError> {
        Ok(self.inner.index.matching_now(event_type, template))
    }

    async fn search(&self, request: &SearchRequest) -> Result<Page<Subscription>, StoreError> {
        Ok(self.inner.index.search_now(request))
    }

    async fn count(&self) -> Result<u64, StoreError> {
        Ok(self.inner.index.count_now())
    }
}
