//! Bringing the index up to the database: the change log read in order, or, when the log
//! cannot say what changed, a whole reload compared with the index.

use std::collections::HashSet;

use futures_util::TryStreamExt;

use deadpool_postgres::tokio_postgres::{Client, IsolationLevel, Row, Statement};
use uuid::Uuid;

use super::super::quote_identifier;
use super::super::rows::{store_error, subscription_at, TimedOut};
use super::Replica;
use crate::store::StoreError;
use crate::subscription::Subscription;
use crate::wire_error::ErrorChain;

/// How many changes one query reads from the log.
const CHANGES_PER_QUERY: i64 = 1_000;

/// The replicated store's statements, with the schema filled in once.
#[derive(Debug)]
pub(super) struct ChangeStatements {
    /// The head version (the database's change counter), in the writer's transaction.
    pub(super) head: String,
    /// The head version, and the changes from `$1` on in order, at most `$2`: one row
    /// with NULL change columns when there are none. The change at `$1` itself is the
    /// one the index applied last, read again to check it is the same change.
    changes_from: String,
    /// The head version and the change that made it, in a reload's snapshot.
    head_change: String,
    /// Every subscription, for a whole reload.
    all: String,
}

impl ChangeStatements {
    pub(super) fn new(schema: &str) -> Self {
        let schema = quote_identifier(schema);
        ChangeStatements {
            head: format!("SELECT version FROM {schema}.subscription_changes_head"),
            // The head as a scalar subquery, read once: joined as a table, its row count
            // multiplied the plan's estimated cost.
            changes_from: format!(
                "SELECT (SELECT version FROM {schema}.subscription_changes_head), c.version, \
                 c.operation, c.id, c.entity_type_name, c.action_name, c.endpoint, \
                 c.template_name, c.created_at \
                 FROM (VALUES (true)) AS always (x) LEFT JOIN LATERAL \
                 (SELECT * FROM {schema}.subscription_changes WHERE version >= $1 \
                  ORDER BY version LIMIT $2) c ON always.x ORDER BY c.version"
            ),
            head_change: format!(
                "SELECT h.version, c.operation, c.id FROM {schema}.subscription_changes_head h \
                 LEFT JOIN {schema}.subscription_changes c ON c.version = h.version"
            ),
            all: format!(
                "SELECT id, entity_type_name, action_name, endpoint, template_name, created_at \
                 FROM {schema}.subscriptions ORDER BY created_at, id"
            ),
        }
    }

    /// The statement the listening connection prepares once.
    pub(super) fn changes_from(&self) -> &str {
        &self.changes_from
    }
}

/// What the index applied last; kept under the index's lock, which serialises every
/// change to the index so that changes apply in version order.
#[derive(Debug, Default)]
pub(super) struct Applied {
    last: Option<Mark>,
}

/// Which change a version was: the same version with another change means the database
/// has another history than the one the index followed (a failover to a standby that
/// lacked the last changes, a restored backup), and the index must be reloaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Mark {
    version: u64,
    operation: i8,
    id: Option<Uuid>,
}

/// The operations in the log's `operation` column.
const INSERTED: i8 = b'I' as i8;
const REMOVED: i8 = b'D' as i8;

/// A change to apply to the index.
#[derive(Debug)]
pub(super) enum Change {
    /// The subscription was added.
    Insert(Subscription),
    /// A row was added that is not a valid subscription (written by something else than
    /// this crate, or by a newer version that knows names this one does not): not served.
    InsertInvalid { id: Option<Uuid>, error: StoreError },
    /// The subscription with this id was removed.
    Remove(Uuid),
    /// The table was emptied, or the change could not be read: reload everything.
    Reload,
}

impl Change {
    fn mark(&self, version: u64) -> Mark {
        let (operation, id) = match self {
            Change::Insert(subscription) => (INSERTED, Some(subscription.id())),
            Change::InsertInvalid { id, .. } => (INSERTED, *id),
            Change::Remove(id) => (REMOVED, Some(*id)),
            Change::Reload => (b'R' as i8, None),
        };
        Mark {
            version,
            operation,
            id,
        }
    }
}

/// Why the index cannot take a change in order: reload it whole.
#[derive(Debug)]
pub(super) struct Diverged;

/// What reading the change log found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum CaughtUp {
    /// The index holds every change up to the head.
    Current,
    /// The log cannot say what changed: the index must be reloaded whole.
    NeedsReload,
}

impl Replica {
    /// Applies the change of `version`, the one after the index's; [`Diverged`] when the
    /// index does not hold what the change expects (it must be reloaded).
    ///
    /// A row that cannot be served (not a valid subscription, or another row's identity
    /// once parsed) is left out with a warning, and its removal later is a no-op: the
    /// index then holds what it can of the table, and replication goes on.
    pub(super) fn apply(
        &self,
        applied: &mut Applied,
        version: u64,
        change: Change,
    ) -> Result<(), Diverged> {
        debug_assert_eq!(version, self.status.version() + 1);
        let mark = change.mark(version);
        match change {
            Change::Insert(subscription) => {
                let id = subscription.id();
                if self.index.get_now(id).is_some() {
                    return Err(Diverged);
                }
                if let Err(error) = self.index.insert_now(subscription) {
                    self.not_served(Some(id), &error);
                }
            }
            Change::InsertInvalid { id, error } => self.not_served(id, &error),
            Change::Remove(id) => {
                if let Some(held) = self.index.get_now(id) {
                    self.index.remove_now(held.key()).map_err(|_| Diverged)?;
                }
            }
            Change::Reload => return Err(Diverged),
        }
        applied.last = Some(mark);
        self.status.set_version(version);
        Ok(())
    }

    fn not_served(&self, id: Option<Uuid>, error: &StoreError) {
        tracing::warn!(
            schema = self.postgres.schema(),
            id = id.map(tracing::field::display),
            error = %ErrorChain(error),
            "a stored subscription cannot be served and is left out of the replicated index"
        );
    }

    /// Brings the index up to the database on `client`: the change log within the
    /// operation timeout, or, when the log cannot say what changed, a whole reload within
    /// the reload timeout. Call with the index's lock held (`applied`).
    pub(super) async fn bring_up_to_date(
        &self,
        applied: &mut Applied,
        client: &mut Client,
        changes_from: &Statement,
    ) -> Result<(), StoreError> {
        let caught_up = self.catch_up_within(applied, client, changes_from).await?;
        if caught_up == CaughtUp::NeedsReload {
            self.reload(applied, client).await?;
        }
        Ok(())
    }

    /// [`catch_up`](Self::catch_up), bounded by the operation timeout.
    pub(super) async fn catch_up_within(
        &self,
        applied: &mut Applied,
        client: &Client,
        changes_from: &Statement,
    ) -> Result<CaughtUp, StoreError> {
        self.postgres
            .within(self.catch_up(applied, client, changes_from))
            .await
    }

    /// Reads the change log from the index's version on `client` and applies it in
    /// order, until the head; says when the log cannot say what changed (changes pruned,
    /// a `TRUNCATE`, a database with another history than the index's).
    async fn catch_up(
        &self,
        applied: &mut Applied,
        client: &Client,
        changes_from: &Statement,
    ) -> Result<CaughtUp, StoreError> {
        loop {
            let from = self.status.version();
            let rows = client
                .query(changes_from, &[&version_param(from), &CHANGES_PER_QUERY])
                .await
                .map_err(store_error)?;
            let Some(first) = rows.first() else {
                return Err(store_error("the change log's head is missing"));
            };
            let head = version_of(first.try_get::<_, i64>(0).map_err(store_error)?);
            let mut changes = Vec::with_capacity(rows.len());
            for row in &rows {
                if let Some(version) = row.try_get::<_, Option<i64>>(1).map_err(store_error)? {
                    changes.push((version_of(version), row));
                }
            }
            // The change the index applied last, if the log still has it, must be the
            // same change: the same version with another one is another history.
            let mut pending = &changes[..];
            if let Some(((version, row), rest)) = changes.split_first() {
                if *version == from {
                    if applied
                        .last
                        .is_some_and(|last| last != mark_of(*version, row))
                    {
                        return Ok(CaughtUp::NeedsReload);
                    }
                    pending = rest;
                }
            }
            if head == from && pending.is_empty() {
                return Ok(CaughtUp::Current);
            }
            if head < from {
                return Ok(CaughtUp::NeedsReload);
            }
            for (version, row) in pending {
                if *version != self.status.version() + 1
                    || self.apply(applied, *version, change_from_row(row)).is_err()
                {
                    // A gap (changes pruned), or a change the index cannot take.
                    return Ok(CaughtUp::NeedsReload);
                }
            }
            if pending.is_empty() {
                // The head moved but the log has nothing after the index's version.
                return Ok(CaughtUp::NeedsReload);
            }
            if self.status.version() >= head {
                return Ok(CaughtUp::Current);
            }
        }
    }

    /// Reloads every subscription in one consistent read, within the reload timeout, and
    /// makes the index equal to it, changing only what differs (the index keeps serving
    /// meanwhile). Call with the index's lock held (`applied`).
    ///
    /// The rows are streamed, oldest first, and never held together: each is compared
    /// with the index as it arrives, and only those the index lacks are kept until the
    /// read is over (into an empty index, at start, they go straight in).
    pub(super) async fn reload(
        &self,
        applied: &mut Applied,
        client: &mut Client,
    ) -> Result<(), StoreError> {
        let limit = self.reload_timeout;
        let straight_in = self.index.count_now() == 0;
        let mut seen: HashSet<Uuid> = HashSet::new();
        let mut missing: Vec<Subscription> = Vec::new();
        let last = tokio::time::timeout(
            limit,
            self.read_everything(client, |subscription| {
                if straight_in {
                    self.insert_or_warn(subscription);
                } else if self.index.holds_now(&subscription) {
                    seen.insert(subscription.id());
                } else {
                    missing.push(subscription);
                }
            }),
        )
        .await
        .map_err(|_| store_error(TimedOut(limit)))??;
        if !straight_in {
            // What the index holds and the database does not, or holds differently,
            // first; then what it lacks, so that a changed identity never meets itself.
            for held in self.index.all_now() {
                if !seen.contains(held.id_ref()) {
                    let _ = self.index.remove_now(held.key());
                }
            }
            for subscription in missing {
                self.insert_or_warn(subscription);
            }
        }
        applied.last = last.id.map(|_| last);
        self.status.set_version(last.version);
        self.status.count_full_reload();
        Ok(())
    }

    /// Into the index; of two rows with one identity once parsed, the first one in (the
    /// older one, as when they arrive through the log) is served.
    fn insert_or_warn(&self, subscription: Subscription) {
        let id = subscription.id();
        if let Err(error) = self.index.insert_now(subscription) {
            self.not_served(Some(id), &error);
        }
    }

    /// Every subscription, oldest first, to `each`, and the head version they are as of
    /// with the change that made it, in one snapshot. A row that is not a valid
    /// subscription is left out with a warning.
    async fn read_everything(
        &self,
        client: &mut Client,
        mut each: impl FnMut(Subscription),
    ) -> Result<Mark, StoreError> {
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(store_error)?;
        let head = tx
            .query_one(&self.sql.head_change, &[])
            .await
            .map_err(store_error)?;
        let last = Mark {
            version: version_of(head.try_get(0).map_err(store_error)?),
            operation: head
                .try_get::<_, Option<i8>>(1)
                .map_err(store_error)?
                .unwrap_or_default(),
            id: head.try_get(2).map_err(store_error)?,
        };
        let rows = tx
            .query_raw(&self.sql.all, std::iter::empty::<i64>())
            .await
            .map_err(store_error)?;
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = rows.try_next().await.map_err(store_error)? {
            match subscription_at(&row, 0) {
                Ok(subscription) => each(subscription),
                Err(error) => self.not_served(row.try_get(0).ok(), &error),
            }
        }
        tx.commit().await.map_err(store_error)?;
        Ok(last)
    }
}

/// A logged change back into a [`Change`].
fn change_from_row(row: &Row) -> Change {
    let operation: Result<i8, _> = row.try_get(2);
    let id: Option<Uuid> = row.try_get(3).ok().flatten();
    match operation {
        Ok(INSERTED) => match subscription_at(row, 3) {
            Ok(subscription) => Change::Insert(subscription),
            Err(error) => Change::InsertInvalid { id, error },
        },
        Ok(REMOVED) => id.map_or(Change::Reload, Change::Remove),
        _ => Change::Reload,
    }
}

/// Which change a logged row is.
fn mark_of(version: u64, row: &Row) -> Mark {
    Mark {
        version,
        operation: row.try_get(2).unwrap_or_default(),
        id: row.try_get(3).ok().flatten(),
    }
}

/// The database's `bigint` counter as the index's version (it starts at zero and only
/// grows).
pub(super) fn version_of(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or_default()
}

fn version_param(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}
