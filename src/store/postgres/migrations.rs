//! The schema's migrations, applied under an advisory lock; their SQL is in
//! `migrations/`, one file each.

use super::rows::store_error;
use super::{quote_identifier, PostgresStore};
use crate::store::StoreError;

/// The first key of the migration advisory lock ("biot"); the second is the schema's hash.
const MIGRATION_LOCK_CLASS: i32 = 0x6269_6f74;

/// Every migration, in order. `{schema}` stands for the quoted schema name. A released
/// migration is never edited: a change is a new migration.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_subscriptions.sql")),
    (2, include_str!("migrations/0002_subscription_changes.sql")),
];

impl PostgresStore {
    /// Applies the migrations this schema lacks; see the module docs.
    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
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
