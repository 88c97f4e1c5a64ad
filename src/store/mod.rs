//! Where subscriptions live: the [`SubscriptionStore`] trait and its backends.
//!
//! The dispatcher talks to any store through `Arc<dyn SubscriptionStore>`.
//! [`InMemoryStore`] is the embedded default; a service that runs
//! several dispatcher instances brings a shared backend, its own or one of this crate's
//! feature-gated ones.
//!
//! # Implementing a custom store
//!
//! A store keeps subscriptions unique by identity ([`SubscriptionKey`]) and answers the
//! dispatcher's lookups. Search can be pushed down to the backend (SQL), or, as here,
//! evaluated in memory by the shared evaluator [`SearchRequest::evaluate`] in one line.
//! Every method returns the store layer's own [`StoreError`]: a taken or unknown
//! identity, or the backend's failure ([`StoreError::backend`]), which keeps the
//! backend's error as the source and never shows it to API callers. Everything a store
//! needs is at the crate root (or in [`prelude`](crate::prelude)).
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::{Arc, Mutex};
//!
//! use async_trait::async_trait;
//! use biot_notifications::{
//!     EventType, Page, SearchRequest, StoreError, Subscription, SubscriptionKey, SubscriptionStore,
//! };
//! use uuid::Uuid;
//!
//! /// Subscriptions in a sorted map; a stand-in for a real database.
//! #[derive(Debug, Default)]
//! struct MapStore {
//!     subscriptions: Mutex<BTreeMap<SubscriptionKey, Arc<Subscription>>>,
//! }
//!
//! impl MapStore {
//!     fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<SubscriptionKey, Arc<Subscription>>>, StoreError> {
//!         // A poisoned lock is this backend's failure mode; report it as a store error.
//!         self.subscriptions.lock().map_err(|e| StoreError::backend("map", e.to_string()))
//!     }
//! }
//!
//! #[async_trait]
//! impl SubscriptionStore for MapStore {
//!     async fn insert(&self, subscription: Subscription) -> Result<(), StoreError> {
//!         let mut map = self.lock()?;
//!         if map.contains_key(subscription.key()) {
//!             return Err(StoreError::already_exists(subscription.key()));
//!         }
//!         map.insert(subscription.key().clone(), Arc::new(subscription));
//!         Ok(())
//!     }
//!
//!     async fn remove(&self, key: &SubscriptionKey) -> Result<Subscription, StoreError> {
//!         let removed = self.lock()?.remove(key);
//!         removed.map(Arc::unwrap_or_clone).ok_or_else(|| StoreError::not_found(key))
//!     }
//!
//!     async fn get(&self, id: Uuid) -> Result<Option<Subscription>, StoreError> {
//!         Ok(self.lock()?.values().find(|s| s.id() == id).map(|s| Subscription::clone(s)))
//!     }
//!
//!     async fn matching(&self, event_type: EventType, template: Option<&str>) -> Result<Vec<Arc<Subscription>>, StoreError> {
//!         Ok(self.lock()?.values().filter(|s| s.matches(event_type, template)).cloned().collect())
//!     }
//!
//!     async fn search(&self, request: &SearchRequest) -> Result<Page<Subscription>, StoreError> {
//!         Ok(request.evaluate(self.lock()?.values().map(|s| &**s)))
//!     }
//!
//!     async fn count(&self) -> Result<u64, StoreError> {
//!         Ok(self.lock()?.len() as u64)
//!     }
//! }
//!
//! # let store: Arc<dyn SubscriptionStore> = Arc::new(MapStore::default());
//! ```
//!
//! With the `testkit` feature, `biot_notifications::testkit::run_all(&store).await`
//! checks such a store against everything the dispatcher relies on.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::catalog::EventType;
use crate::search::{Page, SearchRequest};
use crate::subscription::{Subscription, SubscriptionKey};

pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
mod store_error;

pub use memory::InMemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use store_error::StoreError;

/// A place that keeps subscriptions, shared by every dispatcher that uses it.
///
/// Implementations must be safe to call concurrently from many tasks. Every method is
/// fallible: a backend's own failures are reported as [`StoreError::Backend`] (build one
/// with [`StoreError::backend`]); the other errors each method may return are listed on
/// it.
///
/// # Growing this trait
///
/// Backends live outside this crate, so the trait grows without breaking them: a method
/// added in a minor release always comes with a default implementation (built on the
/// methods already here, or answering that the backend does not support it), and the
/// forwarding implementations for `Arc` and `Box` forward it. A backend that wants the
/// new behaviour overrides the default when it is ready; one that does nothing keeps
/// compiling and keeps its meaning. Removing a method, or changing a signature, waits
/// for a major release.
#[async_trait]
pub trait SubscriptionStore: fmt::Debug + Send + Sync + 'static {
    /// Adds a subscription.
    ///
    /// Atomic: of two concurrent inserts of one identity, exactly one succeeds.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] when a subscription with the same
    /// [`key`](Subscription::key) is already stored.
    async fn insert(&self, subscription: Subscription) -> Result<(), StoreError>;

    /// Removes the subscription with this identity and returns it.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when no subscription has this identity.
    async fn remove(&self, key: &SubscriptionKey) -> Result<Subscription, StoreError>;

    /// The subscription with this id, if any.
    async fn get(&self, id: Uuid) -> Result<Option<Subscription>, StoreError>;

    /// Every subscription an event of `event_type` on an entity of `template` reaches:
    /// those subscribed to exactly that template, and those with no template.
    ///
    /// This is the dispatch hot path: its cost should not grow with the number of
    /// subscriptions that do not match. The order is unspecified.
    async fn matching(
        &self,
        event_type: EventType,
        template: Option<&str>,
    ) -> Result<Vec<Arc<Subscription>>, StoreError>;

    /// One page of the subscriptions that satisfy a BioT search request, with the total.
    async fn search(&self, request: &SearchRequest) -> Result<Page<Subscription>, StoreError>;

    /// How many subscriptions are stored.
    async fn count(&self) -> Result<u64, StoreError>;
}

macro_rules! forward_store {
    ($($pointer:ident),+) => {$(
        #[async_trait]
        impl<T: SubscriptionStore + ?Sized> SubscriptionStore for $pointer<T> {
            async fn insert(&self, subscription: Subscription) -> Result<(), StoreError> {
                (**self).insert(subscription).await
            }

            async fn remove(&self, key: &SubscriptionKey) -> Result<Subscription, StoreError> {
                (**self).remove(key).await
            }

            async fn get(&self, id: Uuid) -> Result<Option<Subscription>, StoreError> {
                (**self).get(id).await
            }

            async fn matching(
                &self,
                event_type: EventType,
                template: Option<&str>,
            ) -> Result<Vec<Arc<Subscription>>, StoreError> {
                (**self).matching(event_type, template).await
            }

            async fn search(&self, request: &SearchRequest) -> Result<Page<Subscription>, StoreError> {
                (**self).search(request).await
            }

            async fn count(&self) -> Result<u64, StoreError> {
                (**self).count().await
            }
        }
    )+};
}

forward_store!(Arc, Box);
