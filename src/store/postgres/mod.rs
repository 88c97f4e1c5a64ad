//! [`PostgresStore`]: subscriptions in PostgreSQL, shared by every dispatcher instance
//! that points at the same database (feature `postgres`), and [`ReplicatedStore`], the
//! same tables with every subscription also held in each instance's memory
//! ([`replicated`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use biot_notifications::store::postgres::PostgresStore;
//! use biot_notifications::store::SubscriptionStore;
//! use biot_notifications::{Action, EntityType, EventType, SubscribeRequest, Subscription};
//!
//! // Connects a pool and creates or upgrades the tables (schema `biot_notifications`).
//! let store = PostgresStore::options()
//!     .operation_timeout(Duration::from_secs(2))
//!     .connect("postgres://dispatcher@db.internal:5432/biot")
//!     .await?;
//!
//! let key = SubscribeRequest::new("patient", "_create", "https://plugin.example.com/hook").key()?;
//! store.insert(Subscription::new(key)).await?;
//!
//! let created = EventType::new(EntityType::Patient, Action::Create)?;
//! assert_eq!(store.matching(created, None).await?.len(), 1);
//!
//! // The dispatcher takes it like any other store.
//! let store: Arc<dyn SubscriptionStore> = Arc::new(store);
//! # let _ = store;
//! # Ok(())
//! # }
//! ```
//!
//! # Tables and migrations
//!
//! Everything lives in one schema, [`DEFAULT_SCHEMA`] unless
//! [`PostgresOptions::schema`] says otherwise, so the store never collides with the
//! host's own tables:
//!
//! - `subscriptions(id uuid primary key, entity_type_name, action_name, endpoint,
//!   template_name, template_name_folded, created_at timestamptz)`, with a unique index
//!   on the identity `(entity_type_name, action_name, endpoint, coalesce(template_name, ''))`
//!   (a missing template counts as one value; `''` is never a valid template name), an
//!   index `(entity_type_name, action_name, template_name)` that makes
//!   [`matching`](SubscriptionStore::matching) an index lookup whatever the table's
//!   size, and one on `(created_at DESC, id)` for search's default order.
//!   `template_name_folded` is the template name lower-cased by Rust's Unicode rules,
//!   so that case-insensitive search does not depend on the database's locale.
//! - `subscription_changes_head(version)`, one row: the change counter, and
//!   `subscription_changes(version, operation, the row's columns, changed_at)`: the last
//!   10,000 changes. Triggers on `subscriptions` number and log every change inside
//!   the writing transaction and announce it with `NOTIFY` on a channel named after the
//!   schema (see [`replicated`]); they cost a write an update of the counter's row, which
//!   serialises writers from the statement to the commit.
//! - `schema_migrations(version, applied_at)`: the migrations applied.
//!
//! [`PostgresOptions::connect`] and [`PostgresOptions::with_pool`] apply the missing
//! migrations, in one transaction that holds a `pg_advisory_xact_lock` for the schema,
//! so instances that start together migrate once and never see a half-made schema. An
//! up-to-date schema needs no DDL privilege: the dispatcher can run as a role that may
//! only read and write the tables.
//!
//! # Search
//!
//! [`search`](SubscriptionStore::search) runs as one SQL query (two when the page is
//! past the last one), with the semantics of the shared evaluator
//! [`SearchRequest::evaluate`]: filters, free text, order, paging and total are all
//! computed by the database. The SQL text is put together from fixed fragments only;
//! every value from the request is a bound parameter. `like` and free text are
//! literal, case-insensitive substring tests (`strpos` on lower-cased text), so `%`,
//! `_` and `\` match themselves.
//!
//! # Failures
//!
//! Every operation, including waiting for a pooled connection, is bounded by the
//! [operation timeout](PostgresOptions::operation_timeout): while the database is down
//! or unreachable, operations fail promptly with [`StoreError::Backend`], whose message names
//! only the store (the driver's error is its [source](std::error::Error::source), for
//! logs). Broken connections are dropped from the pool, so the same store recovers by
//! itself once the database is back.
//!
//! # Runtime and TLS
//!
//! The store needs a tokio runtime (with the time driver). It speaks TLS with rustls
//! (on `ring`; no OpenSSL), as the URL's `sslmode` says, with libpq's meanings, in
//! either URL form (`postgres://...?sslmode=verify-full` or `host=... sslmode=verify-full`):
//!
//! | `sslmode` | TLS | the server's certificate |
//! | --- | --- | --- |
//! | `disable` | never | - |
//! | `prefer` (the default) | if the server offers it, else plain (a failed handshake fails the connection, where libpq would retry in plain) | not checked* |
//! | `require` | always | not checked* |
//! | `verify-ca` | always | chains to a root; any host name |
//! | `verify-full` | always | chains to a root and is for the URL's `host` |
//!
//! The roots come from `sslrootcert=<path to a PEM file>` in the URL, or from
//! [`PostgresOptions::tls_root_certificates`] (PEM given in code; not both), or are the
//! operating system's store (`sslrootcert=system`, or no roots named). *As in libpq,
//! named roots make `prefer` and `require` check the chain too, and
//! `sslrootcert=system` makes `verify-full` the default and refuses weaker modes.
//! libpq's `allow` is not supported. The name checked is `host`; to connect to an
//! address other than the one `host` resolves to, add `hostaddr`. Managed databases
//! (RDS, Cloud SQL, Azure) want `sslmode=verify-full` with their provider's CA bundle
//! as the roots.
//!
//! SCRAM-SHA-256-PLUS channel binding (`tls-server-end-point`) is used over TLS when the
//! server offers it; `channel_binding=require` in the URL insists on it.
//!
//! A pool of your own ([`PostgresOptions::with_pool`]) keeps its own TLS settings.
//! The database must use the UTF8 encoding.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::tokio_postgres::Statement;
use deadpool_postgres::{Object, Pool};

use crate::store::StoreError;

// Named in the docs only.
#[cfg(doc)]
use crate::{search::SearchRequest, store::SubscriptionStore};

mod connection;
mod migrations;
mod options;
mod queries;
pub mod replicated;
mod rows;
mod search;

pub use options::{PostgresOptions, PostgresSetupError};
pub use replicated::ReplicatedStore;

use options::quote_identifier;
use queries::Statements;
use rows::{store_error, TimedOut};

/// The pool this store runs on, re-exported so a host builds its own pool
/// ([`PostgresOptions::with_pool`]) with the same version.
pub use deadpool_postgres;

/// The schema the tables live in unless [`PostgresOptions::schema`] says otherwise.
pub const DEFAULT_SCHEMA: &str = "biot_notifications";

/// How long one operation may take unless [`PostgresOptions::operation_timeout`] says
/// otherwise.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema version this crate creates and expects: the last migration's number.
pub const SCHEMA_VERSION: i32 = 2;

/// The store's name in [`StoreError::Backend`].
const STORE: &str = "postgres";

/// A [`SubscriptionStore`] in PostgreSQL, for dispatchers that run as several instances.
///
/// Cheap to clone: clones share the pool. Build one with [`PostgresStore::connect`] or
/// [`PostgresStore::from_pool`], or with other options through
/// [`PostgresStore::options`]; see the [module docs](self) for the tables, the search
/// translation and failure handling.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    schema: String,
    operation_timeout: Duration,
    sql: Statements,
}

impl PostgresStore {
    /// Connects a pool to the database at `url` (a `postgres://` URL or a libpq
    /// key-value string) with the default options, and migrates the schema.
    ///
    /// # Errors
    /// [`PostgresSetupError`]: the URL is invalid, or the database cannot be reached
    /// within the [`DEFAULT_OPERATION_TIMEOUT`], or the migration fails.
    pub async fn connect(url: &str) -> Result<Self, PostgresSetupError> {
        Self::options().connect(url).await
    }

    /// Uses a pool the host built, with the default options, and migrates the schema.
    ///
    /// # Errors
    /// [`PostgresSetupError::Store`] when no connection can be had or the migration
    /// fails.
    pub async fn from_pool(pool: Pool) -> Result<Self, PostgresSetupError> {
        Self::options().with_pool(pool).await
    }

    /// Options for a store: schema, operation timeout, pool size, TLS roots.
    pub fn options() -> PostgresOptions {
        PostgresOptions::new()
    }

    /// The connection pool.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The schema the tables live in.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// How long one operation may take before it fails with [`StoreError::Backend`].
    pub fn operation_timeout(&self) -> Duration {
        self.inner.operation_timeout
    }

    /// Runs `operation`, failing with [`StoreError::Backend`] if it takes longer than the
    /// operation timeout.
    async fn within<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let limit = self.inner.operation_timeout;
        match tokio::time::timeout(limit, operation).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::backend(STORE, TimedOut(limit))),
        }
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.inner.pool.get().await.map_err(store_error)
    }

    /// A pooled connection and `sql` prepared on it (cached per connection).
    async fn prepared(&self, sql: &str) -> Result<(Object, Statement), StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(store_error)?;
        Ok((client, statement))
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.inner.pool.status();
        f.debug_struct("PostgresStore")
            .field("schema", &self.inner.schema)
            .field("operation_timeout", &self.inner.operation_timeout)
            .field("pool_size", &status.size)
            .field("pool_max_size", &status.max_size)
            .finish_non_exhaustive()
    }
}
