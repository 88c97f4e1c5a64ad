//! Loading many subscriptions into PostgreSQL at once, for the benches that need a large
//! table (feature `postgres`).

use biot_notifications::store::postgres::deadpool_postgres::GenericClient;
use biot_notifications::Subscription;
use time::OffsetDateTime;
use uuid::Uuid;

/// Rows per statement.
const BATCH: usize = 10_000;

/// Inserts `subscriptions` into `schema`'s table through `client` (a pooled connection
/// or a transaction on one), `BATCH` rows per `INSERT ... SELECT unnest(...)`.
pub async fn bulk_insert(
    client: &impl GenericClient,
    schema: &str,
    subscriptions: &[Subscription],
) {
    let insert = format!(
        "INSERT INTO {schema}.subscriptions \
         (id, entity_type_name, action_name, endpoint, template_name, template_name_folded, created_at) \
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[])"
    );
    for batch in subscriptions.chunks(BATCH) {
        let ids: Vec<Uuid> = batch.iter().map(Subscription::id).collect();
        let entities: Vec<&str> = batch
            .iter()
            .map(|s| s.event_type().entity_type().as_str())
            .collect();
        let actions: Vec<&str> = batch
            .iter()
            .map(|s| s.event_type().action().as_str())
            .collect();
        let endpoints: Vec<&str> = batch.iter().map(|s| s.endpoint().as_str()).collect();
        let templates: Vec<Option<&str>> = batch
            .iter()
            .map(|s| s.template_name().map(|t| t.as_str()))
            .collect();
        let folded: Vec<Option<String>> =
            templates.iter().map(|t| t.map(str::to_lowercase)).collect();
        let created: Vec<OffsetDateTime> = batch.iter().map(Subscription::created_at).collect();
        client
            .execute(
                &insert,
                &[
                    &ids, &entities, &actions, &endpoints, &templates, &folded, &created,
                ],
            )
            .await
            .expect("bulk insert");
    }
}
