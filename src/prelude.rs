//! What a backend or transport author imports in one line: the traits to implement and
//! the types in their signatures.
//!
//! ```
//! use biot_notifications::prelude::*;
//!
//! /// Counts deliveries instead of making them.
//! #[derive(Debug, Default)]
//! struct CountingNotifier(std::sync::atomic::AtomicUsize);
//!
//! #[async_trait]
//! impl Notifier for CountingNotifier {
//!     async fn notify(&self, _: &Endpoint, _: &PreparedNotification) -> Result<(), DeliveryError> {
//!         self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!         Ok(())
//!     }
//! }
//! ```
//!
//! [`async_trait`](macro@async_trait) is re-exported on purpose: the traits are `async_trait` traits, and
//! implementing one with the same macro version this crate uses is what compiles.

pub use async_trait::async_trait;

pub use crate::api::{AuthorizationError, Authorizer, Permission};
pub use crate::catalog::EventType;
pub use crate::dispatcher::{Dispatcher, TokenProvider};
pub use crate::endpoint::Endpoint;
pub use crate::error::Error;
pub use crate::notification::{Event, PreparedNotification};
pub use crate::notifier::{DeliveryError, Notifier};
pub use crate::search::{Page, SearchRequest};
pub use crate::store::{StoreError, SubscriptionStore};
pub use crate::subscription::{Subscription, SubscriptionKey};
pub use crate::wire_error::{BiotError, BoxError};
