//! Rows and errors: a stored row back into a subscription, and the store's failures.

use std::fmt;
use std::time::Duration;

use deadpool_postgres::tokio_postgres::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use super::STORE;
use crate::store::StoreError;
use crate::subscription::{SubscribeRequest, Subscription, ValidationError};
use crate::wire_error::BoxError;

/// A stored row, validated back into a subscription.
pub(super) fn subscription_from_row(row: &Row) -> Result<Subscription, StoreError> {
    subscription_at(row, 0)
}

/// The subscription in the six columns of `row` from `first` on, in the order of
/// `id, entity_type_name, action_name, endpoint, template_name, created_at`.
pub(super) fn subscription_at(row: &Row, first: usize) -> Result<Subscription, StoreError> {
    let id: Uuid = row.try_get(first).map_err(store_error)?;
    let request = SubscribeRequest {
        entity_type_name: row.try_get(first + 1).map_err(store_error)?,
        action_name: row.try_get(first + 2).map_err(store_error)?,
        endpoint: row.try_get(first + 3).map_err(store_error)?,
        template_name: row.try_get(first + 4).map_err(store_error)?,
    };
    let created_at: OffsetDateTime = row.try_get(first + 5).map_err(store_error)?;
    let key = request
        .key()
        .map_err(|source| StoreError::backend(STORE, InvalidRow { id, source }))?;
    Ok(Subscription::from_parts(id, key, created_at))
}

pub(super) fn store_error(error: impl Into<BoxError>) -> StoreError {
    StoreError::backend(STORE, error)
}

/// An operation that did not finish within the operation timeout.
#[derive(Debug)]
pub(super) struct TimedOut(pub(super) Duration);

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
    source: ValidationError,
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
