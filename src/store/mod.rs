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
//! Failures of the backend itself are reported with [`Error::store`], which keeps the
//! backend's error as the source and never shows it to API callers.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::{Arc, Mutex};
//!
//! use async_trait::async_trait;
//! use biot_notifications::search::{Page, SearchRequest};
//! use biot_notifications::store::SubscriptionStore;
//! use biot_notifications::{Error, EventType, Subscription, SubscriptionKey};
//! use uuid::Uuid;
//!
//! /// Subscriptions in a sorted map; a stand-in for a real database.
//! #[derive(Debug, Default)]
//! struct MapStore {
//!     subscriptions: Mutex<BTreeMap<SubscriptionKey, Arc<Subscription>>>,
//! }
//!
//! impl MapStore {
//!     fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<SubscriptionKey, Arc<Subscription>>>, Error> {
//!         // A poisoned lock is this backend's failure mode; report it as a store error.
//!         self.subscriptions.lock().map_err(|e| Error::store("map", e.to_string()))
//!     }
//! }
//!
//! #[async_trait]
//! impl SubscriptionStore for MapStore {
//!     async fn insert(&self, subscription: Subscription) -> Result<(), Error> {
//!         let mut map = self.lock()?;
//!         if map.contains_key(subscription.key()) {
//!             return Err(Error::AlreadyExists { subscription: Box::new(subscription.key().clone()) });
//!         }
//!         map.insert(subscription.key().clone(), Arc::new(subscription));
//!         Ok(())
//!     }
//!
//!     async fn remove(&self, key: &SubscriptionKey) -> Result<Subscription, Error> {
//!         let removed = self.lock()?.remove(key);
//!         removed
//!             .map(Arc::unwrap_or_clone)
//!             .ok_or_else(|| Error::NotFound { subscription: Box::new(key.clone()) })
//!     }
//!
//!     async fn get(&self, id: Uuid) -> Result<Option<Subscription>, Error> {
//!         Ok(self.lock()?.values().find(|s| s.id() == id).map(|s| Subscription::clone(s)))
//!     }
//!
//!     async fn matching(&self, event_type: EventType, template: Option<&str>) -> Result<Vec<Arc<Subscription>>, Error> {
//!         Ok(self.lock()?.values().filter(|s| s.matches(event_type, template)).cloned().collect())
//!     }
//!
//!     async fn search(&self, request: &SearchRequest) -> Result<Page<Subscription>, Error> {
//!         Ok(request.evaluate(self.lock()?.values().map(|s| &**s)))
//!     }
//!
//!     async fn count(&self) -> Result<u64, Error> {
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
use crate::error::Error;
use crate::search::{Page, SearchRequest};
use crate::subscription::{Subscription, SubscriptionKey};

pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;

pub use memory::InMemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;

/// A place that keeps subscriptions, shared by every dispatcher that uses it.
///
/// Implementations must be safe to call concurrently from many tasks. Every method is
/// fallible: a backend's own failures are reported as [`Error::Store`] (build one with
/// [`Error::store`]); the other errors each method may return are listed on it.
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
    /// [`Error::AlreadyExists`] when a subscription with the same
    /// [`key`](Subscription::key) is already stored.
    async fn insert(&self, subscription: Subscription) -> Result<(), Error>;

    /// Removes the subscription with this identity and returns it.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no subscription has this identity.
    async fn remove(&self, key: &SubscriptionKey) -> Result<Subscription, Error>;

    /// The subscription with this id, if any.
    async fn get(&self, id: Uuid) -> Result<Option<Subscription>, Error>;

    /// Every subscription an event of `event_type` on an entity of `template` reaches:
    /// those subscribed to exactly that template, and those with no template.
    ///
    /// This is the dispatch hot path: its cost should not grow with the number of
    /// subscriptions that do not match. The order is unspecified.
    async fn matching(
        &self,
        event_type: EventType,
        template: Option<&str>,
    ) -> Result<Vec<Arc<Subscription>>, Error>;

    /// One page of the subscriptions that satisfy a BioT search request, with the total.
    async fn search(&self, request: &SearchRequest) -> Result<Page<Subscription>, Error>;

    /// How many subscriptions are stored.
    async fn count(&self) -> Result<u64, Error>;
}

macro_rules! forward_store {
    ($($pointer:ident),+) => {$(
        #[async_trait]
        impl<T: SubscriptionStore + ?Sized> SubscriptionStore for $pointer<T> {
            async fn insert(&self, subscription: Subscription) -> Result<(), Error> {
                (**self).insert(subscription).await
            }

            async fn remove(&self, key: &SubscriptionKey) -> Result<Subscription, Error> {
                (**self).remove(key).await
            }

            async fn get(&self, id: Uuid) -> Result<Option<Subscription>, Error> {
                (**self).get(id).await
            }

            async fn matching(
                &self,
                event_type: EventType,
                template: Option<&str>,
            ) -> Result<Vec<Arc<Subscription>>, Error> {
                (**self).matching(event_type, template).await
            }

            async fn search(&self, request: &SearchRequest) -> Result<Page<Subscription>, Error> {
                (**self).search(request).await
            }

            async fn count(&self) -> Result<u64, Error> {
                (**self).count().await
            }
        }
    )+};
}

forward_store!(Arc, Box);
