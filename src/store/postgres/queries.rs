//! The fixed statements, and the store's operations on them.

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::tokio_postgres::error::SqlState;
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::rows::{store_error, subscription_from_row};
use super::search::{order_by, Filter};
use super::{quote_identifier, PostgresStore};
use crate::catalog::EventType;
use crate::search::{Page, SearchRequest};
use crate::store::{StoreError, SubscriptionStore};
use crate::subscription::{Subscription, SubscriptionKey};

/// The columns a subscription is read from, in the order [`subscription_from_row`] reads.
const COLUMNS: &str = "id, entity_type_name, action_name, endpoint, template_name, created_at";

/// The fixed statements, with the schema filled in once.
pub(super) struct Statements {
    /// `"schema".subscriptions`, for the search queries built per request.
    table: String,
    insert: String,
    remove: String,
    get: String,
    matching: String,
    count: String,
}

impl Statements {
    pub(super) fn new(schema: &str) -> Self {
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

#[async_trait]
impl SubscriptionStore for PostgresStore {
    async fn insert(&self, subscription: Subscription) -> Result<(), StoreError> {
        self.within(async { self.insert_on(&self.client().await?, &subscription).await })
            .await
    }

    async fn remove(&self, key: &SubscriptionKey) -> Result<Subscription, StoreError> {
        self.within(async { self.remove_on(&self.client().await?, key).await })
            .await
    }

    async fn get(&self, id: Uuid) -> Result<Option<Subscription>, StoreError> {
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
    ) -> Result<Vec<Arc<Subscription>>, StoreError> {
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

    async fn search(&self, request: &SearchRequest) -> Result<Page<Subscription>, StoreError> {
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

    async fn count(&self) -> Result<u64, StoreError> {
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

// The writes, on a pooled connection or a transaction on one (the replicated store
// writes and reads the change version in one transaction).
impl PostgresStore {
    /// Inserts `subscription` through `client`.
    pub(super) async fn insert_on(
        &self,
        client: &impl GenericClient,
        subscription: &Subscription,
    ) -> Result<(), StoreError> {
        let key = subscription.key();
        let template = key.template_name().map(|t| t.as_str());
        let folded = template.map(str::to_lowercase);
        let statement = client
            .prepare_cached(&self.inner.sql.insert)
            .await
            .map_err(store_error)?;
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
                    StoreError::already_exists(key)
                }
                _ => store_error(e),
            })?;
        match inserted {
            0 => Err(StoreError::already_exists(key)),
            _ => Ok(()),
        }
    }

    /// Removes the subscription with identity `key` through `client`, and returns it as
    /// it was stored.
    pub(super) async fn remove_on(
        &self,
        client: &impl GenericClient,
        key: &SubscriptionKey,
    ) -> Result<Subscription, StoreError> {
        let statement = client
            .prepare_cached(&self.inner.sql.remove)
            .await
            .map_err(store_error)?;
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
            None => Err(StoreError::not_found(key)),
        }
    }
}
