//! The validated [`Subscription`], and its serde shapes.

use serde::{Deserialize, Serialize, Serializer};
use time::OffsetDateTime;
use uuid::Uuid;

use super::rfc3339::rfc3339_on_the_stack;
use super::{SubscribeRequest, SubscriptionKey, TemplateName, ValidationError};
use crate::catalog::EventType;
use crate::endpoint::Endpoint;

/// A validated subscription, as kept by a store and returned by the API.
///
/// Serialises as BioT's `SubscribeResponse`:
/// `{id, entityTypeName, actionName, endpoint, templateName?}`, plus `creationTime`
/// (RFC 3339), which stores need for BioT's default newest-first order.
/// Deserialising validates every field (structure only: the endpoint policy is the
/// dispatcher's business at subscribe time, and the transport's at delivery).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SubscriptionWire")]
pub struct Subscription {
    pub(super) id: Uuid,
    pub(super) key: SubscriptionKey,
    pub(super) created_at: OffsetDateTime,
}

impl Subscription {
    /// A new subscription for `key`, with a fresh random id, created now.
    pub fn new(key: SubscriptionKey) -> Self {
        Subscription {
            id: Uuid::new_v4(),
            key,
            created_at: OffsetDateTime::now_utc(),
        }
    }

    /// A subscription restored from storage, with its original id and creation time.
    pub fn from_parts(id: Uuid, key: SubscriptionKey, created_at: OffsetDateTime) -> Self {
        Subscription {
            id,
            key,
            created_at,
        }
    }

    /// The subscription's id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The id by reference, for indexes keyed by id.
    pub(crate) fn id_ref(&self) -> &Uuid {
        &self.id
    }

    /// The identity of this subscription.
    pub fn key(&self) -> &SubscriptionKey {
        &self.key
    }

    /// The `(entity type, action)` pair.
    pub fn event_type(&self) -> EventType {
        self.key.event_type
    }

    /// The normalised endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.key.endpoint
    }

    /// The template the subscription is narrowed to, if any.
    pub fn template_name(&self) -> Option<&TemplateName> {
        self.key.template_name.as_ref()
    }

    /// When the subscription was created.
    pub fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }

    /// Whether an event of `event_type` on an entity of `template` reaches this subscription.
    pub fn matches(&self, event_type: EventType, template: Option<&str>) -> bool {
        self.key.event_type == event_type
            && match &self.key.template_name {
                None => true,
                Some(wanted) => template == Some(wanted.as_str()),
            }
    }
}

// Serialises from borrowed fields: serde's `into` would clone the subscription, every
// string in it, for each response and each row written.
impl Serialize for Subscription {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SubscriptionWireRef {
            entity_type_name: self.key.entity_type().as_str(),
            action_name: self.key.action().as_str(),
            endpoint: self.key.endpoint.as_str(),
            template_name: self.key.template_name.as_ref().map(TemplateName::as_str),
            id: self.id,
            creation_time: self.created_at,
        }
        .serialize(serializer)
    }
}

/// The serde shape of a [`Subscription`], written: [`SubscriptionWire`] borrowed.
#[derive(Serialize)]
#[serde(rename = "Subscription", rename_all = "camelCase")]
struct SubscriptionWireRef<'a> {
    entity_type_name: &'static str,
    action_name: &'static str,
    endpoint: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    template_name: Option<&'a str>,
    id: Uuid,
    #[serde(serialize_with = "rfc3339_on_the_stack")]
    creation_time: OffsetDateTime,
}

/// The serde shape of a [`Subscription`], read.
#[derive(Deserialize)]
#[serde(rename = "Subscription", rename_all = "camelCase")]
struct SubscriptionWire {
    entity_type_name: String,
    action_name: String,
    endpoint: String,
    #[serde(default)]
    template_name: Option<String>,
    id: Uuid,
    /// Absent in BioT's own `SubscribeResponse`; such a subscription counts as oldest.
    #[serde(default = "unknown_creation_time", with = "time::serde::rfc3339")]
    creation_time: OffsetDateTime,
}

fn unknown_creation_time() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH
}

impl TryFrom<SubscriptionWire> for Subscription {
    type Error = ValidationError;

    fn try_from(wire: SubscriptionWire) -> Result<Self, ValidationError> {
        let key = SubscribeRequest {
            entity_type_name: wire.entity_type_name,
            action_name: wire.action_name,
            endpoint: wire.endpoint,
            template_name: wire.template_name,
        }
        .key()?;
        Ok(Subscription::from_parts(wire.id, key, wire.creation_time))
    }
}
