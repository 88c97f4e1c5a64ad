//! # biot-notifications
//!
//! The core of BioT's notification-plugin dispatcher, as a library.
//!
//! When a BioT service acts on an entity (a patient is created, a device certificate
//! is revoked, a usage session is paused remotely), every plugin that subscribed to
//! that `(entity type, action)` pair is notified: the dispatcher POSTs a notification
//! to the plugin's endpoint and does not wait on the result. This crate owns that
//! domain: typed [`EntityType`] / [`Action`] names, validated [`Subscription`]s, the
//! endpoint policy that keeps plugins from pointing the dispatcher at internal
//! networks, and BioT's wire formats. Transport and persistence plug in through traits.
//!
//! ```
//! use biot_notifications::{BiotError, EndpointPolicy, SubscribeRequest, Subscription};
//!
//! let body = br#"{"entityTypeName":"device","actionName":"_revokeCertificate",
//!                 "endpoint":"https://plugin.example.com/certs"}"#;
//! let key = SubscribeRequest::from_json(body)?.validate(&EndpointPolicy::default())?;
//! let subscription = Subscription::new(key);
//! assert_eq!(subscription.endpoint().as_str(), "https://plugin.example.com/certs");
//!
//! // Mistakes come back as BioT error codes with hints.
//! let err = SubscribeRequest::new("usageSession", "_create", "https://plugin.example.com/")
//!     .validate(&EndpointPolicy::default())
//!     .unwrap_err();
//! assert_eq!(err.code(), "INVALID_ENTITY_TYPE_NAME");
//! assert!(err.to_string().contains("did you mean `usage-session`?"));
//! # Ok::<(), biot_notifications::Error>(())
//! ```
//!
//! ## Errors, in layers
//!
//! Each layer owns its errors: [`CatalogError`] (names), [`InvalidEndpoint`],
//! [`ValidationError`] (a request that is not a valid subscription),
//! [`InvalidSearchRequest`], [`StoreError`] (what every store returns, a backend's own
//! failure kept as its source), [`AuthorizationError`] (what an [`Authorizer`] returns)
//! and [`ApiError`] (routing, body type and size). [`Error`], what the [`Dispatcher`]
//! returns, wraps the lower layers' errors; `?` converts them. Every one implements
//! [`BiotError`]: its BioT code, HTTP status and `details`, so
//! [`ErrorResponse::from_error`] turns any of them into BioT's error body.
//!
//! ## Writing a store, a transport or an authorizer
//!
//! The traits ([`SubscriptionStore`], [`Notifier`], [`TokenProvider`], [`Authorizer`])
//! and every type in their signatures are at the crate root, and in
//! [`prelude`] for a one-line import. See [`store`] and [`notifier`] for examples.
//!
//! ## Features
//!
//! | feature   | what it adds |
//! |-----------|--------------|
//! | `testkit` | a public conformance suite for [`SubscriptionStore`] backends |
//! | `axum`    | `api::router`: BioT's HTTP surface ([`api::Api`]) as an axum 0.8 `Router` |
//! | `tower`   | [`api::Api`] as a `tower_service::Service`, so any hyper or tower server mounts it |
//! | `http-notifier` | `notifier::http_notifier::HttpNotifier` (also at the root): delivery over HTTP(S) with reqwest and rustls, resolved addresses vetted against the endpoint policy |
//! | `postgres` | subscriptions in PostgreSQL, shared by dispatcher instances: `store::postgres::ReplicatedStore` (matched from each instance's memory, kept current through `LISTEN`/`NOTIFY`) and `store::postgres::PostgresStore` (a query per lookup) (tokio-postgres + deadpool; TLS by libpq's `sslmode`, rustls on ring) |
//! | `engine` | `delivery::DeliveryEngine`: bounded, isolated, fire-and-forget delivery on the host's tokio runtime (per-endpoint backlogs and circuit breakers, opt-in retries, graceful shutdown) |
//! | `metrics` | the engine's counters, gauges and histogram through the `metrics` facade (implies `engine`) |
//! | `jwt` | [`token`]: BioT's RS512 tokens: a verifier, a signing token provider, an API authorizer, the plugin kit (on `jsonwebtoken` and `ring`, no OpenSSL) |
//!
//! No feature is on by default: a host that brings its own transport compiles no
//! HTTP client, server or database driver.
//!
//! ## Other crates in this API
//!
//! The public API names types of other crates only where they are the lingua franca a
//! host already uses; a new major version of one of these is a breaking change here too.
//! Deliberately:
//!
//! - [`http`] 1: requests, responses, [`StatusCode`](http::StatusCode), methods,
//!   header values, and [`request::Parts`](http::request::Parts) (what an
//!   [`Authorizer`] sees); [`http_body`] 1's `Body` as the bound on
//!   request bodies; [`bytes::Bytes`] for bodies; `http_body_util::Full` as the `tower`
//!   service's response body.
//! - [`serde_json::Value`] and `serde_json::Map` for entities, additional data, extra
//!   wire members and error `details`; serde's `Serialize` / `Deserialize` on the wire
//!   types.
//! - [`uuid::Uuid`] for subscription ids; [`time::OffsetDateTime`] for a notification's
//!   and a subscription's times; [`std::time::Duration`] for every timeout.
//! - `url::Url` from [`Endpoint::url`]; `ipnet::IpNet` for
//!   [`EndpointPolicy::allow_network`].
//! - `async_trait`: the store, notifier, token provider, authorizer and resolver traits
//!   are implemented with `#[async_trait]`.
//! - Behind features: axum 0.8's `Router` (`axum`), `tower_service::Service` 0.3
//!   (`tower`), and `store::postgres::deadpool_postgres`, re-exported so a host builds
//!   a pool of the version the store runs on (`postgres`). The HTTP client, the
//!   database driver's own types and the metrics recorder stay out of the API (a
//!   client's or driver's failure is carried as a boxed source).
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod api;
pub mod catalog;
#[cfg(feature = "engine")]
pub mod delivery;
pub mod dispatcher;
pub mod endpoint;
pub mod error;
pub mod notification;
pub mod notifier;
pub mod prelude;
pub mod search;
pub mod store;
pub mod subscription;
#[cfg(feature = "testkit")]
pub mod testkit;
#[cfg(feature = "jwt")]
pub mod token;
mod wire_error;

pub use api::{
    AllowEveryone, Api, ApiBuildError, ApiBuilder, ApiError, AuthorizationError, Authorizer,
    ErrorReport, ErrorResponse, Permission,
};
pub use catalog::{Action, CatalogError, EntityType, EventType};
#[cfg(feature = "engine")]
pub use delivery::{
    CircuitBreakerPolicy, DeliveryEngine, DeliveryEngineBuilder, EngineBuildError, RetryPolicy,
    ShutdownReport, SubmitError, Submitted,
};
pub use dispatcher::{
    Delivery, DeliveryOutcome, DispatchReport, Dispatcher, DispatcherBuildError, DispatcherBuilder,
    TokenProvider,
};
pub use endpoint::{
    non_public_range, AddressRange, Endpoint, EndpointPolicy, EndpointRejection, InvalidEndpoint,
};
pub use error::{Error, Result};
pub use notification::{Event, Notification, PreparedNotification, TraceParent};
#[cfg(feature = "http-notifier")]
pub use notifier::HttpNotifier;
pub use notifier::{DeliveryError, DiscardingNotifier, Notifier};
pub use search::{InvalidSearchRequest, Page, SearchRequest};
#[cfg(feature = "postgres")]
pub use store::PostgresStore;
pub use store::{InMemoryStore, StoreError, SubscriptionStore};
pub use subscription::{
    SubscribeRequest, Subscription, SubscriptionKey, TemplateName, UnsubscribeRequest,
    ValidationError,
};
pub use wire_error::{BiotError, BoxError};

// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
