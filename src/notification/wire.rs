//! The wire [`Notification`]: exactly the JSON body a plugin receives.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::event::entity_template_name;
use super::{Event, EventStatus, Initiator};
use crate::catalog::{Action, CatalogError, EntityType, EventType};

/// Exactly the JSON body a plugin receives.
///
/// ```json
/// {"metadata": {"entityTypeName": "patient", "actionName": "_update", "status": "SUCCESS",
///               "startTime": "...", "endTime": "...", "initiator": {...}},
///  "data": {"entity": {...}, "additionalData": {"oldEntity": {...}}},
///  "jwt": "..."}
/// ```
///
/// Plugin authors can parse what they receive with `serde_json::from_slice::<Notification>`.
/// Bare action names (`update`) are accepted, the underscore form is written. Members
/// this crate does not know, in `metadata`, `data`, the initiator and its subject, are
/// kept (in their `extra`) and written back; unknown top-level members are not kept.
///
/// `Debug` shows the `jwt` as `<redacted>`, so logging a notification does not leak the
/// platform's token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Notification {
    /// What happened, when and by whom.
    pub metadata: NotificationMetadata,
    /// The entity it happened to.
    pub data: NotificationData,
    /// The platform's service token (RS512, scope `ACTION_NOTIFICATION`), which plugins
    /// verify against the platform's public key; omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
}

impl Notification {
    /// The body a plugin receives for `event`, carrying `jwt`.
    ///
    /// `metadata.traceId` is left out: today's platform sends the trace context only in
    /// the `traceparent` header.
    pub fn from_event(event: &Event, jwt: Option<String>) -> Notification {
        Notification {
            metadata: NotificationMetadata {
                entity_type_name: event.event_type.entity_type(),
                action_name: event.event_type.action(),
                status: event.status.clone(),
                start_time: event.start_time,
                end_time: event.end_time,
                initiator: event.initiator.clone(),
                trace_id: None,
                extra: Map::new(),
            },
            data: NotificationData {
                entity: event.entity.clone(),
                additional_data: event.additional_data.clone(),
                extra: Map::new(),
            },
            jwt,
        }
    }

    /// The `(entity type, action)` pair, checked.
    ///
    /// # Errors
    /// [`CatalogError::InvalidAction`] when BioT does not notify this action on this
    /// entity type.
    pub fn event_type(&self) -> Result<EventType, CatalogError> {
        EventType::new(self.metadata.entity_type_name, self.metadata.action_name)
    }

    /// The entity's template name (`data.entity._template.name`), when it is a string.
    pub fn template_name(&self) -> Option<&str> {
        entity_template_name(&self.data.entity)
    }
}

impl fmt::Debug for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notification")
            .field("metadata", &self.metadata)
            .field("data", &self.data)
            .field("jwt", &self.jwt.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A notification's `metadata`: what happened, when and by whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct NotificationMetadata {
    /// The entity type, e.g. `patient`.
    pub entity_type_name: EntityType,
    /// The action, e.g. `_update`.
    pub action_name: Action,
    /// How the action ended.
    pub status: EventStatus,
    /// When the action started (RFC 3339, nanoseconds kept).
    #[serde(
        serialize_with = "crate::subscription::rfc3339_on_the_stack",
        deserialize_with = "time::serde::rfc3339::deserialize"
    )]
    pub start_time: OffsetDateTime,
    /// When the action ended (RFC 3339, nanoseconds kept).
    #[serde(
        serialize_with = "crate::subscription::rfc3339_on_the_stack",
        deserialize_with = "time::serde::rfc3339::deserialize"
    )]
    pub end_time: OffsetDateTime,
    /// Who caused the action, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator: Option<Initiator>,
    /// The trace id, as older platform versions sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Any other members, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A notification's `data`: the entity the action happened to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct NotificationData {
    /// The entity, as BioT's API returns it.
    pub entity: Value,
    /// Context of the action, e.g. `{"oldEntity": ...}` after an update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_data: Option<Value>,
    /// Any other members, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
