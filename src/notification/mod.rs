//! Events and notifications: what a host hands in, and exactly what a plugin receives.
//!
//! ```text
//! Event --prepare(jwt)--> PreparedNotification (body serialised once) --to_request(endpoint)--> http::Request, per endpoint
//! ```
//!
//! - An [`Event`] is what a host hands the dispatcher when a BioT service has acted on an
//!   entity: the checked `(entity type, action)` pair, the entity, and the context
//!   (status, times, initiator, trace context).
//! - A [`Notification`] is exactly the JSON body a plugin receives: `metadata`, `data`
//!   and the platform's `jwt`. It serialises to BioT's wire shape and deserialises from
//!   it, keeping the metadata and data members it does not know, so plugin authors can
//!   parse what they receive with it too.
//! - A [`PreparedNotification`] is one event rendered for delivery: the body serialised
//!   once and the [`TraceParent`] to send, shared by every subscribed endpoint.
//!
//! ```
//! use biot_notifications::notification::{Event, Initiator, Notification, Subject, HOOKTYPE};
//! use biot_notifications::{Action, Endpoint, EntityType, EventType};
//! use serde_json::json;
//!
//! // The host: a patient was updated.
//! let event = Event::new(
//!     EventType::new(EntityType::Patient, Action::Update)?,
//!     json!({"_id": "8f6b1c62-3d7e-4f0a-9a51-0c2f2f3b7d10", "_template": {"name": "adultPatient"}}),
//! )
//! .with_old_entity(json!({"_id": "8f6b1c62-3d7e-4f0a-9a51-0c2f2f3b7d10", "weight": 71}))
//! .with_initiator(Initiator::new().with_subject(Subject::new("0b5e9c1e-5f55-4e4c-8d0c-2a3f8c1d9e77")));
//! assert_eq!(event.template_name(), Some("adultPatient"));
//!
//! // Rendered once, then turned into one request per subscribed endpoint.
//! let prepared = event.prepare(Some("<service token>".to_owned()));
//! let request = prepared.to_request(&Endpoint::parse("https://plugin.example.com/on-patient")?);
//! assert_eq!(request.headers()[HOOKTYPE], "NOTIFICATION");
//!
//! // The plugin: the body parses back into a `Notification`.
//! let received: Notification = serde_json::from_slice(request.body())?;
//! assert_eq!(received.event_type()?, event.event_type());
//! assert_eq!(received.template_name(), Some("adultPatient"));
//! assert_eq!(received.data.additional_data.unwrap()["oldEntity"]["weight"], 71);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use http::header::{HeaderName, HeaderValue};

mod context;
mod event;
mod prepared;
mod trace_parent;
mod wire;

pub use context::{EventStatus, Initiator, Subject};
pub use event::Event;
pub use prepared::PreparedNotification;
pub use trace_parent::{InvalidTraceParent, TraceParent};
pub use wire::{Notification, NotificationData, NotificationMetadata};

/// The header that tells a plugin what kind of hook is calling: `hooktype`.
pub const HOOKTYPE: HeaderName = HeaderName::from_static("hooktype");

/// The [`HOOKTYPE`] value of a notification: `NOTIFICATION`.
pub const HOOKTYPE_NOTIFICATION: HeaderValue = HeaderValue::from_static("NOTIFICATION");

/// The W3C trace context header: `traceparent`.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The `content-type` of every notification: `application/json`.
pub const CONTENT_TYPE_JSON: HeaderValue = HeaderValue::from_static("application/json");
