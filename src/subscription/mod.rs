//! Subscriptions: the wire requests plugins send, and the validated [`Subscription`].
//!
//! ```text
//! bytes --SubscribeRequest::from_json--> SubscribeRequest --validate(policy)--> SubscriptionKey --> Subscription::new
//! ```
//!
//! A [`Subscription`] can only be built from a [`SubscriptionKey`], and a key only
//! through validation, also when deserialised, so a store can never hand back an
//! invalid one.
//!
//! ```
//! use biot_notifications::{EndpointPolicy, SubscribeRequest, Subscription};
//!
//! let request = SubscribeRequest::from_json(br#"{
//!     "entityTypeName": "patient",
//!     "actionName": "create",
//!     "endpoint": "https://Plugins.Example.com:443/on-patient",
//!     "templateName": "adultPatient"
//! }"#)?;
//! let key = request.validate(&EndpointPolicy::default())?;
//! let subscription = Subscription::new(key);
//!
//! // The wire form is BioT's `SubscribeResponse`: canonical names, normalised endpoint, an id.
//! let json = serde_json::to_value(&subscription).unwrap();
//! assert_eq!(json["actionName"], "_create");
//! assert_eq!(json["endpoint"], "https://plugins.example.com/on-patient");
//! assert!(json["id"].is_string());
//! # Ok::<(), biot_notifications::Error>(())
//! ```

mod json;
mod key;
mod model;
mod request;
mod rfc3339;
mod validation_error;

pub use key::{SubscriptionKey, TemplateName};
pub use model::Subscription;
pub use request::{SubscribeRequest, UnsubscribeRequest};
pub use validation_error::ValidationError;

pub(crate) use request::malformed_reason;
pub(crate) use rfc3339::rfc3339_on_the_stack;

/// The longest template name accepted, in bytes. BioT template names are short
/// identifiers; anything longer is a mistake or an attack.
pub const MAX_TEMPLATE_NAME_LEN: usize = 256;
