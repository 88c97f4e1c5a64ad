//! Bringing the index up to the database: the change log read in order, or, when the log
//! cannot say what changed, a whole reload compared with the index.

use std::collections::HashMap;

use deadpool_postgres::tokio_postgres::{Client, IsolationLevel, Row, Statement};
use uuid::Uuid;

use super::super::quote_identifier;
use super::super::rows::{store_error, subscription_at, TimedOut};
use super::Replica;
use crate::store::StoreError;
use crate::subscription::Subscription;

/// How many changes one query reads from the log.
const CHANGES_PER_QUERY: i64 = 1_000;

/// The replicated store's statements, with the schema filled in once.
#[derive(Debug)]
pub(super) struct ChangeStatements {
    /// The head version (the database's change counter), in the writer's transaction.
    pub(super) head: String,
    /// The head version, and the changes after `$1` in order, at most `$2`: one row with
    /// NULL change columns when there are none.
    changes_after: String,
    /// Every subscription, for a whole reload.
    all: String,
}

impl ChangeStatements {
    pub(super) fn changes_after(&self) -> &str {
        &self.changes_after
    }

    pub(super) fn new(schema: &str) -> Self {
        let schema = quote_identifier(schema);
        ChangeStatements {
            head: format!("SELECT version FROM {schema}.subscription_changes_head"),
            changes_after: format!(
                "SELECT h.version, c.version, c.operation, c.id, c.entity_type_name, \
                 c.action_name, c.endpoint, c.template_name, c.created_at \
                 FROM {schema}.subscription_changes_head h LEFT JOIN LATERAL \
                 (SELECT * FROM {schema}.subscription_changes WHERE version > $1 \
                  ORDER BY version LIMIT $2) c ON true ORDER BY c.version"
            ),
            all: format!(
                "SELECT id, entity_type_name, action_name, endpoint, template_name, created_at \
                 FROM {schema}.subscriptions"
            ),
        }
    }
}

/// A change to apply to the index.
#[derive(Debug)]
pub(super) enum Change {
    /// The subscription was added.
    Insert(Subscription),
    /// The subscription (as stored) was removed.
    Remove(Subscription),
    /// The table was emptied, or the change could not be read: reload everything.
    Reload,
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
    pub(super) fn apply(&self, version: u64, change: Change) -> Result<(), Diverged> {
        debug_assert_eq!(version, self.status.version() + 1);
        match change {
            Change::Insert(subscription) => {
                self.index.insert_now(subscription).map_err(|_| Diverged)?;
            }
            Change::Remove(subscription) => {
                let removed = self
                    .index
                    .remove_now(subscription.key())
                    .map_err(|_| Diverged)?;
                if removed.id() != subscription.id() {
                    // Another subscription had that identity here: put it back, reload.
                    let _ = self.index.insert_now(removed);
                    return Err(Diverged);
                }
            }
            Change::Reload => return Err(Diverged),
        }
        self.status.set_version(version);
        Ok(())
    }

    /// Brings the index up to the database on `client`: the change log within the
    /// operation timeout, or, when the log cannot say what changed, a whole reload within
    /// the reload timeout. Call with the index's lock held.
    pub(super) async fn bring_up_to_date(
        &self,
        client: &mut Client,
        changes_after: &Statement,
    ) -> Result<(), StoreError> {
        let caught_up = self
            .postgres
            .within(self.catch_up(client, changes_after))
            .await?;
        if caught_up == CaughtUp::NeedsReload {
            self.reload(client).await?;
        }
        Ok(())
    }

    /// Reads the change log after the index's version on `client` and applies it in
    /// order, until the head; says when the log has a gap it cannot fill (changes pruned,
    /// a `TRUNCATE`, a database restored to an older state).
    async fn catch_up(
        &self,
        client: &Client,
        changes_after: &Statement,
    ) -> Result<CaughtUp, StoreError> {
        loop {
            let from = self.status.version();
            let rows = client
                .query(changes_after, &[&version_param(from), &CHANGES_PER_QUERY])
                .await
                .map_err(store_error)?;
            let Some(first) = rows.first() else {
                return Err(store_error("the change log's head is missing"));
            };
            let head = version_of(first.try_get::<_, i64>(0).map_err(store_error)?);
            let changes = rows
                .iter()
                .map(|row| Ok((row.try_get::<_, Option<i64>>(1)?, row)))
                .filter_map(
                    |r: Result<_, deadpool_postgres::tokio_postgres::Error>| match r {
                        Ok((Some(version), row)) => Some(Ok((version_of(version), row))),
                        Ok((None, _)) => None,
                        Err(e) => Some(Err(store_error(e))),
                    },
                )
                .collect::<Result<Vec<_>, StoreError>>()?;
            if head == from && changes.is_empty() {
                return Ok(CaughtUp::Current);
            }
            let mut applied = 0;
            for (version, row) in &changes {
                if *version != self.status.version() + 1 {
                    break;
                }
                if self.apply(*version, change_from_row(row)).is_err() {
                    break;
                }
                applied += 1;
            }
            if applied < changes.len() || changes.is_empty() {
                // A gap, a change the index cannot take, or a head that moved without a
                // logged change after ours (pruned, or a database older than the index).
                return Ok(CaughtUp::NeedsReload);
            }
            if changes.len() < CHANGES_PER_QUERY as usize && self.status.version() >= head {
                return Ok(CaughtUp::Current);
            }
        }
    }

    /// Reloads every subscription in one consistent read, within the reload timeout, and
    /// makes the index equal to it, changing only what differs (the index keeps serving
    /// meanwhile). Call with the index's lock held.
    pub(super) async fn reload(&self, client: &mut Client) -> Result<(), StoreError> {
        let limit = self.reload_timeout;
        let (head, rows) = tokio::time::timeout(limit, self.read_everything(client))
            .await
            .map_err(|_| store_error(TimedOut(limit)))??;
        let mut stored: HashMap<Uuid, Subscription> = HashMap::with_capacity(rows.len());
        for row in &rows {
            let subscription = subscription_at(row, 0)?;
            stored.insert(subscription.id(), subscription);
        }
        drop(rows);
        // What the index holds and the database does not, or holds differently, first;
        // then what it lacks, so that a changed identity never meets itself.
        for held in self.index.all_now() {
            match stored.get(&held.id()) {
                Some(same) if same == &*held => {
                    stored.remove(&held.id());
                }
                _ => {
                    let _ = self.index.remove_now(held.key());
                }
            }
        }
        for (_, subscription) in stored {
            self.index.insert_now(subscription)?;
        }
        self.status.set_version(head);
        self.status.count_full_reload();
        Ok(())
    }

    /// Every subscription row and the head version they are as of.
    async fn read_everything(&self, client: &mut Client) -> Result<(u64, Vec<Row>), StoreError> {
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(store_error)?;
        let head = tx
            .query_one(&self.sql.head, &[])
            .await
            .map_err(store_error)?;
        let head = version_of(head.try_get(0).map_err(store_error)?);
        let rows = tx.query(&self.sql.all, &[]).await.map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok((head, rows))
    }
}

/// A logged change back into a [`Change`]; one it cannot read asks for a reload.
fn change_from_row(row: &Row) -> Change {
    let operation: Result<i8, _> = row.try_get(2);
    match operation {
        Ok(op) if op == b'I' as i8 => {
            subscription_at(row, 3).map_or(Change::Reload, Change::Insert)
        }
        Ok(op) if op == b'D' as i8 => {
            subscription_at(row, 3).map_or(Change::Reload, Change::Remove)
        }
        _ => Change::Reload,
    }
}

/// The database's `bigint` counter as the index's version (it never goes below zero).
pub(super) fn version_of(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or_default()
}

fn version_param(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}
