//! The host's [`Event`]: what a BioT service did to an entity, and how it is prepared
//! for delivery.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::{EventStatus, Initiator, Notification, PreparedNotification, TraceParent};
use crate::catalog::EventType;

/// Something a BioT service did to an entity, as the host reports it to the dispatcher.
///
/// Built with [`Event::new`] and refined with the `with_*` builders. Unless told
/// otherwise, an event succeeded (`SUCCESS`), started and ended when it was built, has
/// no initiator and no incoming trace context.
///
/// Times are kept in UTC, as BioT sends them, and within the years 0000 to 9999 that
/// RFC 3339 can write (a time outside is clamped to the nearest end). That is what lets
/// [`prepare`](Event::prepare) never fail.
///
/// ```
/// use biot_notifications::notification::{Event, EventStatus};
/// use biot_notifications::{Action, EntityType, EventType};
/// use serde_json::json;
///
/// let event = Event::new(
///     EventType::new(EntityType::Device, Action::RevokeCertificate)?,
///     json!({"_id": "dev-17", "_template": {"name": "bloodPressureCuff"}}),
/// )
/// .with_status(EventStatus::FAILURE);
/// assert_eq!(event.template_name(), Some("bloodPressureCuff"));
///
/// // A host that knows better names the template itself.
/// let event = event.with_template_name("cuffV2");
/// assert_eq!(event.template_name(), Some("cuffV2"));
/// # Ok::<(), biot_notifications::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Event {
    pub(super) event_type: EventType,
    pub(super) entity: Value,
    pub(super) additional_data: Option<Value>,
    pub(super) status: EventStatus,
    pub(super) start_time: OffsetDateTime,
    pub(super) end_time: OffsetDateTime,
    pub(super) initiator: Option<Initiator>,
    pub(super) traceparent: Option<TraceParent>,
    pub(super) template_name: Option<String>,
}

impl Event {
    /// An event of `event_type` on `entity` (the entity as BioT's API returns it).
    pub fn new(event_type: EventType, entity: Value) -> Self {
        let now = OffsetDateTime::now_utc();
        Event {
            event_type,
            entity,
            additional_data: None,
            status: EventStatus::SUCCESS,
            start_time: now,
            end_time: now,
            initiator: None,
            traceparent: None,
            template_name: None,
        }
    }

    /// Sets `data.additionalData`, replacing what was there (including an `oldEntity`).
    pub fn with_additional_data(mut self, additional_data: Value) -> Self {
        self.additional_data = Some(additional_data);
        self
    }

    /// Sets `data.additionalData.oldEntity`: the entity as it was before an update.
    ///
    /// Other members of the additional data are kept. Additional data that is not a
    /// JSON object has no place for an `oldEntity` and is replaced.
    pub fn with_old_entity(mut self, old_entity: Value) -> Self {
        match &mut self.additional_data {
            Some(Value::Object(members)) => {
                members.insert("oldEntity".to_owned(), old_entity);
            }
            other => {
                let mut members = Map::new();
                members.insert("oldEntity".to_owned(), old_entity);
                *other = Some(Value::Object(members));
            }
        }
        self
    }

    /// Sets the status (`SUCCESS` unless told otherwise).
    pub fn with_status(mut self, status: EventStatus) -> Self {
        self.status = status;
        self
    }

    /// Sets when the action started and ended (both "when the event was built" unless
    /// told otherwise). Times are converted to UTC and clamped to the years 0000 to 9999.
    pub fn with_times(mut self, start: OffsetDateTime, end: OffsetDateTime) -> Self {
        self.start_time = rfc3339_utc(start);
        self.end_time = rfc3339_utc(end);
        self
    }

    /// Sets who caused the action.
    pub fn with_initiator(mut self, initiator: Initiator) -> Self {
        self.initiator = Some(initiator);
        self
    }

    /// Sets the trace context of the call that caused the action; notifications
    /// continue that trace (see [`prepare`](Event::prepare)).
    pub fn with_traceparent(mut self, traceparent: TraceParent) -> Self {
        self.traceparent = Some(traceparent);
        self
    }

    /// Names the entity's template explicitly, for when the entity has no
    /// `_template.name`. It decides which template-narrowed subscriptions match; the
    /// body sent is unchanged.
    pub fn with_template_name(mut self, template_name: impl Into<String>) -> Self {
        self.template_name = Some(template_name.into());
        self
    }

    /// The `(entity type, action)` pair.
    pub fn event_type(&self) -> EventType {
        self.event_type
    }

    /// The entity.
    pub fn entity(&self) -> &Value {
        &self.entity
    }

    /// The additional data (`{"oldEntity": ...}` after an update), if any.
    pub fn additional_data(&self) -> Option<&Value> {
        self.additional_data.as_ref()
    }

    /// The status.
    pub fn status(&self) -> &EventStatus {
        &self.status
    }

    /// When the action started.
    pub fn start_time(&self) -> OffsetDateTime {
        self.start_time
    }

    /// When the action ended.
    pub fn end_time(&self) -> OffsetDateTime {
        self.end_time
    }

    /// Who caused the action, if known.
    pub fn initiator(&self) -> Option<&Initiator> {
        self.initiator.as_ref()
    }

    /// The incoming trace context, if any.
    pub fn traceparent(&self) -> Option<TraceParent> {
        self.traceparent
    }

    /// The entity's template name, matched against subscriptions' `templateName`: the
    /// one set with [`with_template_name`](Event::with_template_name), else the entity's
    /// `_template.name` when it is a string.
    pub fn template_name(&self) -> Option<&str> {
        self.template_name
            .as_deref()
            .or_else(|| entity_template_name(&self.entity))
    }

    /// Renders this event for delivery: the notification body serialised once, and the
    /// trace context to send (a child of the event's trace context when it has one, so
    /// the plugin's work joins the caller's trace; a fresh trace otherwise).
    ///
    /// `jwt` is the platform's service token for the body; `None` omits it.
    pub fn prepare(&self, jwt: Option<String>) -> PreparedNotification {
        let traceparent = self
            .traceparent
            .map_or_else(TraceParent::generate, |parent| parent.child());
        // Every part of a notification built from an event serialises: JSON values and
        // strings always do, and the times were brought into RFC 3339's range when set.
        PreparedNotification::new(Notification::from_event(self, jwt), traceparent)
            .expect("a notification built from an event always serialises")
    }
}

/// The latest instant RFC 3339 can write: its years have four digits.
const RFC3339_MAX: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59.999999999 UTC);
/// The earliest instant RFC 3339 can write.
const RFC3339_MIN: OffsetDateTime = time::macros::datetime!(0000-01-01 0:00 UTC);

/// `time` in UTC and within RFC 3339's years, so that serialising it cannot fail.
fn rfc3339_utc(time: OffsetDateTime) -> OffsetDateTime {
    // Converting fails only beyond the ends of `time`'s own range, which lie outside
    // RFC 3339's, so the side it failed on says which end to clamp to.
    match time.checked_to_offset(time::UtcOffset::UTC) {
        Some(utc) => utc.clamp(RFC3339_MIN, RFC3339_MAX),
        None if time < RFC3339_MIN => RFC3339_MIN,
        None => RFC3339_MAX,
    }
}

pub(super) fn entity_template_name(entity: &Value) -> Option<&str> {
    entity.get("_template")?.get("name")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Action, EntityType};
    use serde_json::json;
    use time::macros::datetime;

    fn event() -> Event {
        Event::new(
            EventType::new(EntityType::Patient, Action::Create).unwrap(),
            json!({"_id": "p-1"}),
        )
    }

    #[test]
    fn times_rfc3339_cannot_write_are_clamped_so_prepare_cannot_fail() {
        let cases = [
            (datetime!(-0001-06-01 12:00 UTC), RFC3339_MIN),
            (datetime!(-9999-01-01 0:00 +01:00), RFC3339_MIN),
            (datetime!(9999-12-31 23:00 -05:00), RFC3339_MAX),
            (
                datetime!(2026-01-05 09:00:00.5 +01:00:30),
                datetime!(2026-01-05 07:59:30.5 UTC),
            ),
        ];
        for (given, expected) in cases {
            assert_eq!(rfc3339_utc(given), expected, "{given}");
            let event = event().with_times(given, given);
            let body: Value = serde_json::from_slice(event.prepare(None).body()).unwrap();
            assert!(body["metadata"]["startTime"].is_string(), "{given}");
        }
    }

    #[test]
    fn prepared_notification_new_rejects_times_rfc3339_cannot_write() {
        let mut notification = Notification::from_event(&event(), None);
        notification.metadata.start_time = datetime!(-0001-06-01 12:00 UTC);
        assert!(PreparedNotification::new(notification, TraceParent::generate()).is_err());
    }

    #[test]
    fn debug_redacts_the_jwt() {
        let prepared = event().prepare(Some("eyJhbGciOiJSUzUxMiJ9.secret".to_owned()));
        let debug = format!("{prepared:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }
}
