//! [`PostgresStore`]: subscriptions in PostgreSQL, shared by every dispatcher instance
//! that points at the same database (feature `postgres`).
//!
//! ```no_run
//! # async fn run() -> Result<(), biot_notifications::Error> {
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
//! or unreachable, operations fail promptly with [`Error::Store`], whose message names
//! only the store (the driver's error is its [source](std::error::Error::source), for
//! logs). Broken connections are dropped from the pool, so the same store recovers by
//! itself once the database is back.
//!
//! # Runtime and TLS
//!
//! The store needs a tokio runtime (with the time driver) and speaks to PostgreSQL
//! without TLS ([`NoTls`]). Put the database on a network the host trusts, use a local
//! proxy that adds TLS, or bring a pool of your own with [`PostgresOptions::with_pool`].
//! The database must use the UTF8 encoding.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::tokio_postgres::error::SqlState;
use deadpool_postgres::tokio_postgres::types::ToSql;
use deadpool_postgres::tokio_postgres::{self, NoTls, Row, Statement};
use deadpool_postgres::{Manager, Object, Pool, Runtime};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::catalog::{Action, EntityType, EventType};
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::search::{Direction, FilterCondition, Page, SearchField, SearchRequest, SortField};
use crate::store::SubscriptionStore;
use crate::subscription::{SubscribeRequest, Subscription, SubscriptionKey};

/// The pool this store runs on, re-exported so a host builds its own pool
/// ([`PostgresOptions::with_pool`]) with the same version.
pub use deadpool_postgres;

/// The schema the tables live in unless [`PostgresOptions::schema`] says otherwise.
pub const DEFAULT_SCHEMA: &str = "biot_notifications";

/// How long one operation may take unless [`PostgresOptions::operation_timeout`] says
/// otherwise.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema version this crate creates and expects: the last migration's number.
pub const SCHEMA_VERSION: i32 = 1;

/// The store's name in [`Error::Store`].
const STORE: &str = "postgres";

/// The first key of the migration advisory lock ("biot"); the second is the schema's hash.
const MIGRATION_LOCK_CLASS: i32 = 0x6269_6f74;

/// The longest schema name PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_SCHEMA_NAME_LEN: usize = 63;

/// Every migration, in order. `{schema}` stands for the quoted schema name. A released
/// migration is never edited: a change is a new migration.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    r#"
CREATE TABLE {schema}.subscriptions (
    id uuid PRIMARY KEY,
    entity_type_name text NOT NULL,
    action_name text NOT NULL,
    endpoint text NOT NULL,
    template_name text CHECK (template_name <> ''),
    template_name_folded text,
    created_at timestamptz NOT NULL,
    CHECK ((template_name IS NULL) = (template_name_folded IS NULL))
);
CREATE UNIQUE INDEX subscriptions_identity ON {schema}.subscriptions
    (entity_type_name, action_name, endpoint, (coalesce(template_name, '')));
CREATE INDEX subscriptions_dispatch ON {schema}.subscriptions
    (entity_type_name, action_name, template_name);
CREATE INDEX subscriptions_newest ON {schema}.subscriptions (created_at DESC, id);
"#,
)];

/// The columns a subscription is read from, in the order [`subscription_from_row`] reads.
const COLUMNS: &str = "id, entity_type_name, action_name, endpoint, template_name, created_at";

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

/// The fixed statements, with the schema filled in once.
struct Statements {
    /// `"schema".subscriptions`, for the search queries built per request.
    table: String,
    insert: String,
    remove: String,
    get: String,
    matching: String,
    count: String,
}

impl Statements {
    fn new(schema: &str) -> Self {
        let table = format!("{}.subscriptions", quote_identifier(schema));
        Statements {
            insert: format!(
                "INSERT INTO {table} \
                 (id, entity_type_name, action_name, endpoint, template_name, template_name_folded, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (entity_type_name, action_name, endpoint, (coalesce(template_name, ''))) DO NOTHING"
            ),
            remove: format!(
                "DELETE FROM {table} WHERE entity_type_name = $1 AND action_name = $2 \
                 AND endpoint = $3 AND coalesce(template_name, '') = $4 RETURNING {COLUMNS}"
            ),
            get: format!("SELECT {COLUMNS} FROM {table} WHERE id = $1"),
            matching: format!(
                "SELECT {COLUMNS} FROM {table} WHERE entity_type_name = $1 AND action_name = $2 \
                 AND (template_name IS NULL OR template_name = $3)"
            ),
            count: format!("SELECT count(*) FROM {table}"),
            table,
        }
    }
}

impl PostgresStore {
    /// Connects a pool to the database at `url` (a `postgres://` URL or a libpq
    /// key-value string) with the default options, and migrates the schema.
    ///
    /// # Errors
    /// [`Error::Store`] when the URL is invalid, the database cannot be reached within
    /// the [`DEFAULT_OPERATION_TIMEOUT`], or the migration fails.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::options().connect(url).await
    }

    /// Uses a pool the host built, with the default options, and migrates the schema.
    ///
    /// # Errors
    /// [`Error::Store`] when no connection can be had or the migration fails.
    pub async fn from_pool(pool: Pool) -> Result<Self, Error> {
        Self::options().with_pool(pool).await
    }

    /// Options for a store: schema, operation timeout, pool size.
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

    /// How long one operation may take before it fails with [`Error::Store`].
    pub fn operation_timeout(&self) -> Duration {
        self.inner.operation_timeout
    }

    /// Runs `operation`, failing with [`Error::Store`] if it takes longer than the
    /// operation timeout.
    async fn within<T>(
        &self,
        operation: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let limit = self.inner.operation_timeout;
        match tokio::time::timeout(limit, operation).await {
            Ok(result) => result,
            Err(_) => Err(Error::store(STORE, TimedOut(limit))),
        }
    }

    async fn client(&self) -> Result<Object, Error> {
        self.inner.pool.get().await.map_err(store_error)
    }

    /// A pooled connection and `sql` prepared on it (cached per connection).
    async fn prepared(&self, sql: &str) -> Result<(Object, Statement), Error> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(store_error)?;
        Ok((client, statement))
    }

    /// Applies the migrations this schema lacks; see the module docs.
    async fn migrate(&self) -> Result<(), Error> {
        let schema = quote_identifier(&self.inner.schema);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(store_error)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&MIGRATION_LOCK_CLASS, &self.inner.schema],
        )
        .await
        .map_err(store_error)?;
        // Checked first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even
        // when the schema exists.
        let exists = tx
            .query_opt(
                "SELECT 1 FROM pg_namespace WHERE nspname = $1",
                &[&self.inner.schema],
            )
            .await
            .map_err(store_error)?
            .is_some();
        if !exists {
            tx.batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await
                .map_err(store_error)?;
        }
        let versions = tx
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("{schema}.schema_migrations")],
            )
            .await
            .map_err(store_error)?;
        let applied: i32 = if versions.get::<_, bool>(0) {
            tx.query_one(
                &format!("SELECT coalesce(max(version), 0) FROM {schema}.schema_migrations"),
                &[],
            )
            .await
            .map_err(store_error)?
            .get(0)
        } else {
            tx.batch_execute(&format!(
                "CREATE TABLE {schema}.schema_migrations (\
                     version integer PRIMARY KEY, \
                     applied_at timestamptz NOT NULL DEFAULT now())"
            ))
            .await
            .map_err(store_error)?;
            0
        };
        // A newer crate may have migrated further; its schema is a superset of ours.
        for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > applied) {
            tx.batch_execute(&sql.replace("{schema}", &schema))
                .await
                .map_err(store_error)?;
            tx.execute(
                &format!("INSERT INTO {schema}.schema_migrations (version) VALUES ($1)"),
                &[version],
            )
            .await
            .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
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

/// How to build a [`PostgresStore`]: start from [`PostgresStore::options`], finish
/// with [`connect`](Self::connect) or [`with_pool`](Self::with_pool).
///
/// ```no_run
/// # async fn run() -> Result<(), biot_notifications::Error> {
/// use std::time::Duration;
/// use biot_notifications::store::postgres::PostgresStore;
///
/// let store = PostgresStore::options()
///     .schema("dispatcher")
///     .operation_timeout(Duration::from_secs(2))
///     .max_connections(16)
///     .connect("postgres://dispatcher@db.internal/biot")
///     .await?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    schema: String,
    operation_timeout: Duration,
    max_connections: Option<usize>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl PostgresOptions {
    /// The defaults: schema [`DEFAULT_SCHEMA`], [`DEFAULT_OPERATION_TIMEOUT`], and
    /// deadpool's default pool size (four connections per CPU).
    pub fn new() -> Self {
        PostgresOptions {
            schema: DEFAULT_SCHEMA.to_owned(),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            max_connections: None,
        }
    }

    /// The schema the tables live in, created if absent: 1 to 63 lower-case ASCII
    /// letters, digits and `_`, not starting with a digit. Stores on different schemas
    /// of one database are independent (tests use one schema each).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// How long one operation (waiting for a connection included) may take before it
    /// fails with [`Error::Store`]. Also bounds connecting and migrating.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// The most connections the pool [`connect`](Self::connect) builds may hold.
    /// (A pool passed to [`with_pool`](Self::with_pool) keeps its own size.)
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max.max(1));
        self
    }

    /// Builds a pool for the database at `url` (a `postgres://` URL or a libpq
    /// key-value string, without TLS), then as [`with_pool`](Self::with_pool).
    ///
    /// Connecting, waiting for a connection and checking one out of the pool are each
    /// bounded by the operation timeout.
    ///
    /// # Errors
    /// [`Error::Store`] when the URL is invalid or as [`with_pool`](Self::with_pool).
    pub async fn connect(self, url: &str) -> Result<PostgresStore, Error> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(store_error)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.operation_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("biot-notifications");
        }
        let limit = Some(self.operation_timeout);
        let mut builder = Pool::builder(Manager::new(config, NoTls))
            .runtime(Runtime::Tokio1)
            .wait_timeout(limit)
            .create_timeout(limit)
            .recycle_timeout(limit);
        if let Some(max) = self.max_connections {
            builder = builder.max_size(max);
        }
        let pool = builder.build().map_err(store_error)?;
        self.with_pool(pool).await
    }

    /// Uses `pool` and migrates the schema.
    ///
    /// # Errors
    /// [`Error::Store`] when the schema name is not acceptable, no connection can be
    /// had within the operation timeout, or the migration fails.
    pub async fn with_pool(self, pool: Pool) -> Result<PostgresStore, Error> {
        if !is_schema_name(&self.schema) {
            return Err(Error::store(STORE, InvalidSchemaName(self.schema)));
        }
        let store = PostgresStore {
            inner: Arc::new(Inner {
                pool,
                sql: Statements::new(&self.schema),
                schema: self.schema,
                operation_timeout: self.operation_timeout,
            }),
        };
        store.within(store.migrate()).await?;
        Ok(store)
    }
}

#[async_trait]
impl SubscriptionStore for PostgresStore {
    async fn insert(&self, subscription: Subscription) -> Result<(), Error> {
        self.within(async {
            let key = subscription.key();
            let template = key.template_name().map(|t| t.as_str());
            let folded = template.map(str::to_lowercase);
            let (client, statement) = self.prepared(&self.inner.sql.insert).await?;
            let inserted = client
                .execute(
                    &statement,
                    &[
                        &subscription.id(),
                        &key.entity_type().as_str(),
                        &key.action().as_str(),
                        &key.endpoint().as_str(),
                        &template,
                        &folded,
                        &subscription.created_at(),
                    ],
                )
                .await
                .map_err(|e| match e.code() {
                    // Only without the identity index could a duplicate get here; a
                    // clash of ids is a store failure, not a duplicate.
                    Some(&SqlState::UNIQUE_VIOLATION)
                        if e.as_db_error().and_then(|d| d.constraint())
                            == Some("subscriptions_identity") =>
                    {
                        already_exists(key)
                    }
                    _ => store_error(e),
                })?;
            match inserted {
                0 => Err(already_exists(key)),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn remove(&self, key: &SubscriptionKey) -> Result<Subscription, Error> {
        self.within(async {
            let (client, statement) = self.prepared(&self.inner.sql.remove).await?;
            let row = client
                .query_opt(
                    &statement,
                    &[
                        &key.entity_type().as_str(),
                        &key.action().as_str(),
                        &key.endpoint().as_str(),
                        &key.template_name().map_or("", |t| t.as_str()),
                    ],
                )
                .await
                .map_err(store_error)?;
            match row {
                Some(row) => subscription_from_row(&row),
                None => Err(Error::NotFound {
                    subscription: Box::new(key.clone()),
                }),
            }
        })
        .await
    }

    async fn get(&self, id: Uuid) -> Result<Option<Subscription>, Error> {
        self.within(async {
            let (client, statement) = self.prepared(&self.inner.sql.get).await?;
            let row = client
                .query_opt(&statement, &[&id])
                .await
                .map_err(store_error)?;
            row.as_ref().map(subscription_from_row).transpose()
        })
        .await
    }

    async fn matching(
        &self,
        event_type: EventType,
        template: Option<&str>,
    ) -> Result<Vec<Arc<Subscription>>, Error> {
        self.within(async {
            let (client, statement) = self.prepared(&self.inner.sql.matching).await?;
            let rows = client
                .query(
                    &statement,
                    &[
                        &event_type.entity_type().as_str(),
                        &event_type.action().as_str(),
                        &template,
                    ],
                )
                .await
                .map_err(store_error)?;
            rows.iter()
                .map(|row| subscription_from_row(row).map(Arc::new))
                .collect()
        })
        .await
    }

    async fn search(&self, request: &SearchRequest) -> Result<Page<Subscription>, Error> {
        let empty = |total_results| Page {
            data: Vec::new(),
            total_results,
            page: request.page(),
            limit: request.limit(),
        };
        let Some(filter) = Filter::translate(request) else {
            // Some condition can match nothing: no need to ask.
            return Ok(empty(0));
        };
        let table = &self.inner.sql.table;
        let order = order_by(request);
        let (limit, offset) = (
            i64::from(request.limit()),
            // `page * limit` stays below 2^42.
            i64::try_from(request.offset()).unwrap_or(i64::MAX),
        );
        let limit_at = filter.params.len() + 1;
        let clause = filter.clause();
        // The total as an uncorrelated subquery, counted once: unlike `count(*) OVER ()`
        // it leaves the page free to come from an index in order.
        let page_sql = format!(
            "SELECT {COLUMNS}, (SELECT count(*) FROM {table} WHERE {clause}) FROM {table} \
             WHERE {clause} ORDER BY {order} LIMIT ${limit_at} OFFSET ${}",
            limit_at + 1,
        );
        self.within(async {
            let client = self.client().await?;
            let mut params = filter.params();
            params.push(&limit);
            params.push(&offset);
            let rows = client
                .query(page_sql.as_str(), &params)
                .await
                .map_err(store_error)?;
            let Some(first) = rows.first() else {
                if offset == 0 {
                    return Ok(empty(0));
                }
                // Past the last page: no row carries the total, so count.
                let count_sql = format!("SELECT count(*) FROM {table} WHERE {clause}");
                let total: i64 = client
                    .query_one(count_sql.as_str(), &params[..filter.params.len()])
                    .await
                    .map_err(store_error)?
                    .get(0);
                return Ok(empty(u64::try_from(total).unwrap_or_default()));
            };
            let total: i64 = first.try_get(6).map_err(store_error)?;
            Ok(Page {
                data: rows
                    .iter()
                    .map(subscription_from_row)
                    .collect::<Result<_, _>>()?,
                total_results: u64::try_from(total).unwrap_or_default(),
                page: request.page(),
                limit: request.limit(),
            })
        })
        .await
    }

    async fn count(&self) -> Result<u64, Error> {
        self.within(async {
            let (client, statement) = self.prepared(&self.inner.sql.count).await?;
            let count: i64 = client
                .query_one(&statement, &[])
                .await
                .map_err(store_error)?
                .get(0);
            Ok(u64::try_from(count).unwrap_or_default())
        })
        .await
    }
}

// ---------------------------------------------------------------------------------
// Search, translated to SQL with the evaluator's semantics (see `search::FilterCondition`).

/// A value bound to a query parameter.
type Param = Box<dyn ToSql + Sync + Send>;

/// The `WHERE` clause of a search: conditions (fixed fragments and `$n` placeholders)
/// combined with AND, and the values bound to the placeholders.
#[derive(Default)]
struct Filter {
    conditions: Vec<String>,
    params: Vec<Param>,
}

impl Filter {
    /// The filter and free text of `request`; `None` when they can match nothing.
    fn translate(request: &SearchRequest) -> Option<Filter> {
        let mut filter = Filter::default();
        for (&field, condition) in request.filter() {
            filter.condition(field, condition)?;
        }
        filter.free_text(request.free_text_terms())?;
        Some(filter)
    }

    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| &**p as &(dyn ToSql + Sync))
            .collect()
    }

    fn clause(&self) -> String {
        if self.conditions.is_empty() {
            "TRUE".to_owned()
        } else {
            self.conditions.join(" AND ")
        }
    }

    /// Adds the conditions on one field; `None` when one of them can match nothing.
    fn condition(&mut self, field: SearchField, condition: &FilterCondition) -> Option<()> {
        let column = column(field);
        if let Some(value) = &condition.eq {
            // A value that equals nothing makes the whole search match nothing.
            let key = Keys::parse(field, [value.as_str()]);
            let value = self.bind_first(key)?;
            self.conditions.push(format!("{column} = {value}"));
        }
        if let Some(value) = &condition.not {
            // A value that equals nothing is not equal to everything: no condition.
            if let Some(value) = self.bind_first(Keys::parse(field, [value.as_str()])) {
                self.conditions
                    .push(format!("{column} IS DISTINCT FROM {value}"));
            }
        }
        if let Some(values) = &condition.r#in {
            let values = self.bind_all(Keys::parse(field, values.iter().map(String::as_str)))?;
            self.conditions.push(format!("{column} = ANY({values})"));
        }
        if let Some(values) = &condition.not_in {
            if let Some(values) =
                self.bind_all(Keys::parse(field, values.iter().map(String::as_str)))
            {
                // A null field is in no list.
                self.conditions.push(format!(
                    "({column} IS NULL OR NOT ({column} = ANY({values})))"
                ));
            }
        }
        if let Some(text) = &condition.like {
            // No stored text holds a NUL, and PostgreSQL's text cannot carry one.
            if text.contains('\0') {
                return None;
            }
            let needle = self.bind(text.to_lowercase());
            self.conditions
                .push(format!("strpos({}, {needle}) > 0", folded(field)));
        }
        let wants_null = [condition.is_null, condition.is_not_null.map(|b| !b)];
        for wants_null in wants_null.into_iter().flatten() {
            self.conditions.push(format!(
                "{column} IS {}NULL",
                if wants_null { "" } else { "NOT " }
            ));
        }
        Some(())
    }

    /// Some term appears in some field; `None` when no term can appear anywhere.
    fn free_text<'a>(&mut self, terms: impl Iterator<Item = &'a str>) -> Option<()> {
        let mut any = false;
        let terms: Vec<String> = terms
            .inspect(|_| any = true)
            .filter(|term| !term.contains('\0'))
            .map(str::to_owned)
            .collect();
        if !any {
            return Some(());
        }
        if terms.is_empty() {
            return None;
        }
        let terms = self.bind(terms);
        let fields = [
            SearchField::Id,
            SearchField::EntityTypeName,
            SearchField::ActionName,
            SearchField::Endpoint,
            SearchField::TemplateName,
        ]
        .map(|field| format!("strpos({}, term) > 0", folded(field)))
        .join(" OR ");
        self.conditions.push(format!(
            "EXISTS (SELECT FROM unnest({terms}::text[]) AS terms(term) WHERE {fields})"
        ));
        Some(())
    }

    fn bind_first(&mut self, keys: Keys) -> Option<String> {
        match keys {
            Keys::Ids(ids) => ids.into_iter().next().map(|id| self.bind(id)),
            Keys::Texts(texts) => texts.into_iter().next().map(|text| self.bind(text)),
        }
    }

    fn bind_all(&mut self, keys: Keys) -> Option<String> {
        match keys {
            Keys::Ids(ids) if !ids.is_empty() => Some(self.bind(ids)),
            Keys::Texts(texts) if !texts.is_empty() => Some(self.bind(texts)),
            _ => None,
        }
    }
}

/// Filter values in the form their field's column stores, those that can equal a stored
/// value (the evaluator's canonical keys).
enum Keys {
    Ids(Vec<Uuid>),
    Texts(Vec<String>),
}

impl Keys {
    fn parse<'a>(field: SearchField, values: impl IntoIterator<Item = &'a str>) -> Keys {
        let values = values.into_iter();
        match field {
            SearchField::Id => Keys::Ids(values.filter_map(|v| Uuid::parse_str(v).ok()).collect()),
            field => Keys::Texts(values.filter_map(|v| text_key(field, v)).collect()),
        }
    }
}

/// `value` as the column of `field` stores it; `None` when it equals no stored value.
fn text_key(field: SearchField, value: &str) -> Option<String> {
    if value.contains('\0') {
        return None;
    }
    match field {
        SearchField::Id => Uuid::parse_str(value).ok().map(|id| id.to_string()),
        SearchField::EntityTypeName => EntityType::parse(value).ok().map(|e| e.as_str().to_owned()),
        SearchField::ActionName => Action::parse(value).ok().map(|a| a.as_str().to_owned()),
        SearchField::Endpoint => {
            Some(Endpoint::parse(value).map_or_else(|_| value.to_owned(), Endpoint::into_string))
        }
        SearchField::TemplateName => Some(value.to_owned()),
    }
}

/// The column of a field.
fn column(field: SearchField) -> &'static str {
    match field {
        SearchField::Id => "id",
        SearchField::EntityTypeName => "entity_type_name",
        SearchField::ActionName => "action_name",
        SearchField::Endpoint => "endpoint",
        SearchField::TemplateName => "template_name",
    }
}

/// A field's wire text, lower-cased as Rust's `to_lowercase` would. Names and endpoints
/// are ASCII (endpoints are normalised URLs), so folding ASCII under the "C" collation
/// is exact whatever the database's locale; template names may be any Unicode, so they
/// are folded in Rust when stored.
fn folded(field: SearchField) -> &'static str {
    match field {
        SearchField::Id => "id::text",
        SearchField::EntityTypeName => r#"lower(entity_type_name COLLATE "C")"#,
        SearchField::ActionName => r#"lower(action_name COLLATE "C")"#,
        SearchField::Endpoint => r#"lower(endpoint COLLATE "C")"#,
        SearchField::TemplateName => "template_name_folded",
    }
}

/// The search's order: its sort keys (byte order, as the evaluator compares names),
/// then newest first, then by id.
fn order_by(request: &SearchRequest) -> String {
    request
        .sort()
        .iter()
        .map(|key| {
            let column = match key.prop {
                SortField::EntityTypeName => "entity_type_name",
                SortField::ActionName => "action_name",
            };
            let direction = match key.order {
                Direction::Asc => "ASC",
                Direction::Desc => "DESC",
            };
            format!(r#"{column} COLLATE "C" {direction}, "#)
        })
        .chain(["created_at DESC, id ASC".to_owned()])
        .collect()
}

// ---------------------------------------------------------------------------------
// Rows and errors.

/// A stored row, validated back into a subscription.
fn subscription_from_row(row: &Row) -> Result<Subscription, Error> {
    let id: Uuid = row.try_get(0).map_err(store_error)?;
    let request = SubscribeRequest {
        entity_type_name: row.try_get(1).map_err(store_error)?,
        action_name: row.try_get(2).map_err(store_error)?,
        endpoint: row.try_get(3).map_err(store_error)?,
        template_name: row.try_get(4).map_err(store_error)?,
    };
    let created_at: OffsetDateTime = row.try_get(5).map_err(store_error)?;
    let key = request
        .key()
        .map_err(|source| Error::store(STORE, InvalidRow { id, source }))?;
    Ok(Subscription::from_parts(id, key, created_at))
}

fn store_error(error: impl Into<crate::error::BoxError>) -> Error {
    Error::store(STORE, error)
}

fn already_exists(key: &SubscriptionKey) -> Error {
    Error::AlreadyExists {
        subscription: Box::new(key.clone()),
    }
}

/// Whether `name` is a schema name this store accepts (and so may put in SQL text).
fn is_schema_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= MAX_SCHEMA_NAME_LEN
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `name` as a quoted SQL identifier; only ever called on names [`is_schema_name`] accepts.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An operation that did not finish within the operation timeout.
#[derive(Debug)]
struct TimedOut(Duration);

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the operation did not finish within {:?}", self.0)
    }
}

impl std::error::Error for TimedOut {}

/// A stored row that is not a valid subscription (written by something else).
#[derive(Debug)]
struct InvalidRow {
    id: Uuid,
    source: Error,
}

impl fmt::Display for InvalidRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the stored subscription {} is not valid", self.id)
    }
}

impl std::error::Error for InvalidRow {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A schema name that [`is_schema_name`] rejects.
#[derive(Debug)]
struct InvalidSchemaName(String);

impl fmt::Display for InvalidSchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a usable schema name: use 1 to {MAX_SCHEMA_NAME_LEN} lower-case ASCII \
             letters, digits and `_`, not starting with a digit",
            crate::error::echo(&self.0)
        )
    }
}

impl std::error::Error for InvalidSchemaName {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_lower_case_identifiers() {
        for good in ["biot_notifications", "_x", "t_0123abc", &"a".repeat(63)] {
            assert!(is_schema_name(good), "{good}");
        }
        for bad in [
            "",
            "0abc",
            "Biot",
            "a-b",
            "a\"b",
            "a;b",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!is_schema_name(bad), "{bad}");
        }
    }

    #[test]
    fn search_sql_holds_placeholders_never_values() {
        let hostile = "'; DROP TABLE subscriptions; --";
        let request = SearchRequest::new()
            .with_filter(
                SearchField::Endpoint,
                FilterCondition {
                    eq: Some(hostile.to_owned()),
                    not_in: Some(vec![hostile.to_owned()]),
                    ..FilterCondition::like(hostile)
                },
            )
            .with_filter(SearchField::TemplateName, FilterCondition::not(hostile))
            .with_free_text_search(hostile);
        let filter = Filter::translate(&request).expect("satisfiable");
        let clause = filter.clause();
        assert!(!clause.contains("DROP"), "{clause}");
        assert_eq!(filter.params.len(), 5, "{clause}");
    }

    #[test]
    fn values_that_equal_nothing_match_nothing_or_drop_the_condition() {
        let eq =
            SearchRequest::new().with_filter(SearchField::ActionName, FilterCondition::eq("_read"));
        assert!(Filter::translate(&eq).is_none());
        let in_ = SearchRequest::new().with_filter(SearchField::Id, FilterCondition::is_in(["x"]));
        assert!(Filter::translate(&in_).is_none());
        let not = SearchRequest::new().with_filter(SearchField::Id, FilterCondition::not("x"));
        assert_eq!(
            Filter::translate(&not).expect("satisfiable").clause(),
            "TRUE"
        );
        let nul = SearchRequest::new().with_free_text_search("a\0b");
        assert!(Filter::translate(&nul).is_none());
    }

    #[test]
    fn order_ends_with_newest_first_then_id() {
        use crate::search::SortOrder;
        let request = SearchRequest::new()
            .with_sort(SortOrder::asc(SortField::ActionName))
            .with_sort(SortOrder::desc(SortField::EntityTypeName));
        assert_eq!(
            order_by(&request),
            r#"action_name COLLATE "C" ASC, entity_type_name COLLATE "C" DESC, created_at DESC, id ASC"#
        );
        assert_eq!(order_by(&SearchRequest::new()), "created_at DESC, id ASC");
    }
}
