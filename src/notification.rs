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

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Method, Request};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::catalog::{Action, EntityType, EventType};
use crate::endpoint::Endpoint;
use crate::error::Error;

/// The header that tells a plugin what kind of hook is calling: `hooktype`.
pub const HOOKTYPE: HeaderName = HeaderName::from_static("hooktype");

/// The [`HOOKTYPE`] value of a notification: `NOTIFICATION`.
pub const HOOKTYPE_NOTIFICATION: HeaderValue = HeaderValue::from_static("NOTIFICATION");

/// The W3C trace context header: `traceparent`.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The `content-type` of every notification: `application/json`.
pub const CONTENT_TYPE_JSON: HeaderValue = HeaderValue::from_static("application/json");

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
    event_type: EventType,
    entity: Value,
    additional_data: Option<Value>,
    status: EventStatus,
    start_time: OffsetDateTime,
    end_time: OffsetDateTime,
    initiator: Option<Initiator>,
    traceparent: Option<TraceParent>,
    template_name: Option<String>,
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

fn entity_template_name(entity: &Value) -> Option<&str> {
    entity.get("_template")?.get("name")?.as_str()
}

/// How the action ended, as BioT reports it in `metadata.status`.
///
/// BioT sends `SUCCESS`; other values (such as `FAILURE`) are kept as they are, so a
/// status this crate does not know still round-trips. Serialises as the plain string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventStatus(Cow<'static, str>);

impl EventStatus {
    /// The action succeeded: `SUCCESS`.
    pub const SUCCESS: EventStatus = EventStatus(Cow::Borrowed("SUCCESS"));

    /// The action failed: `FAILURE`.
    pub const FAILURE: EventStatus = EventStatus(Cow::Borrowed("FAILURE"));

    /// A status as BioT writes it.
    pub fn new(status: impl Into<String>) -> Self {
        EventStatus(Cow::Owned(status.into()))
    }

    /// The status as written on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is [`SUCCESS`](Self::SUCCESS).
    pub fn is_success(&self) -> bool {
        *self == Self::SUCCESS
    }
}

impl Default for EventStatus {
    /// [`SUCCESS`](Self::SUCCESS), what BioT sends.
    fn default() -> Self {
        Self::SUCCESS
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for EventStatus {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for EventStatus {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Infallible> {
        Ok(EventStatus::new(s))
    }
}

impl From<&str> for EventStatus {
    fn from(status: &str) -> Self {
        EventStatus::new(status)
    }
}

impl From<String> for EventStatus {
    fn from(status: String) -> Self {
        EventStatus::new(status)
    }
}

impl Serialize for EventStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EventStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(EventStatus::new)
    }
}

/// Who caused the action (`metadata.initiator`).
///
/// Members this crate does not know are kept in [`extra`](Initiator::extra) and
/// written back, so a notification round-trips.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Initiator {
    /// The user or service that acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    /// The caller's address as BioT saw it, e.g. `198.51.100.7:50123`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip_address: Option<String>,
    /// Any other members, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Initiator {
    /// An initiator with nothing known about it yet.
    pub fn new() -> Self {
        Initiator::default()
    }

    /// Sets the subject that acted.
    pub fn with_subject(mut self, subject: Subject) -> Self {
        self.subject = Some(subject);
        self
    }

    /// Sets the caller's address.
    pub fn with_source_ip_address(mut self, source_ip_address: impl Into<String>) -> Self {
        self.source_ip_address = Some(source_ip_address.into());
        self
    }
}

/// The user or service behind an action (`metadata.initiator.subject`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Subject {
    /// The subject's id, a UUID in BioT.
    pub id: String,
    /// Any other members, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Subject {
    /// The subject with this id.
    pub fn new(id: impl Into<String>) -> Self {
        Subject {
            id: id.into(),
            extra: Map::new(),
        }
    }
}

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
    /// [`Error::InvalidAction`] when BioT does not notify this action on this entity type.
    pub fn event_type(&self) -> Result<EventType, Error> {
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

/// A W3C trace context (`traceparent`): which trace a request belongs to, and which
/// call made it.
///
/// Parsed per the [W3C Trace Context](https://www.w3.org/TR/trace-context/#traceparent-header)
/// rules: lower-case hex only, ids that are not all zero, version `ff` refused, version
/// `00` exactly 55 characters. A later version is read as the specification asks (its
/// first four fields, the sampled flag only) and written back as version `00`, the
/// only version this crate writes.
///
/// ```
/// use biot_notifications::notification::TraceParent;
///
/// let incoming: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse()?;
/// let outgoing = incoming.child();
/// assert_eq!(outgoing.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_ne!(outgoing.parent_id(), incoming.parent_id());
/// assert!(outgoing.is_sampled());
///
/// assert!("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01".parse::<TraceParent>().is_err());
/// # Ok::<(), biot_notifications::notification::InvalidTraceParent>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

/// Length of a version `00` traceparent: `00-` + 32 + `-` + 16 + `-` + 2.
const TRACEPARENT_LEN: usize = 55;

impl TraceParent {
    /// The `sampled` trace flag: the caller may have recorded its part of the trace.
    pub const FLAG_SAMPLED: u8 = 0x01;

    /// A trace context from its parts.
    ///
    /// # Errors
    /// [`InvalidTraceParent::TraceId`] or [`InvalidTraceParent::ParentId`] when an id is
    /// all zeros, which the specification reserves as invalid.
    pub fn new(
        trace_id: [u8; 16],
        parent_id: [u8; 8],
        flags: u8,
    ) -> Result<Self, InvalidTraceParent> {
        if trace_id == [0; 16] {
            return Err(InvalidTraceParent::TraceId);
        }
        if parent_id == [0; 8] {
            return Err(InvalidTraceParent::ParentId);
        }
        Ok(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// Parses a `traceparent` header value.
    ///
    /// # Errors
    /// An [`InvalidTraceParent`] saying which part is wrong.
    pub fn parse(s: &str) -> Result<Self, InvalidTraceParent> {
        let b = s.as_bytes();
        if b.len() < TRACEPARENT_LEN {
            return Err(InvalidTraceParent::Length);
        }
        let version = hex_array::<1>(&b[0..2]).ok_or(InvalidTraceParent::Version)?[0];
        if version == 0xff {
            return Err(InvalidTraceParent::Version);
        }
        if version == 0 && b.len() != TRACEPARENT_LEN {
            return Err(InvalidTraceParent::Length);
        }
        // Later versions may append fields, but only after another dash.
        let trailer_ok = b.len() == TRACEPARENT_LEN || b[TRACEPARENT_LEN] == b'-';
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' || !trailer_ok {
            return Err(InvalidTraceParent::Delimiter);
        }
        let trace_id = hex_array::<16>(&b[3..35]).ok_or(InvalidTraceParent::TraceId)?;
        let parent_id = hex_array::<8>(&b[36..52]).ok_or(InvalidTraceParent::ParentId)?;
        let flags = hex_array::<1>(&b[53..55]).ok_or(InvalidTraceParent::Flags)?[0];
        // Only `sampled` means the same in every version; a later version's other flags
        // could mean anything in version 00, which is what we write.
        let flags = if version == 0 {
            flags
        } else {
            flags & Self::FLAG_SAMPLED
        };
        Self::new(trace_id, parent_id, flags)
    }

    /// A new trace: random ids, sampled.
    pub fn generate() -> Self {
        loop {
            let [a, b] = [random_bytes(), random_bytes()];
            let mut trace_id = [0; 16];
            trace_id[..14].copy_from_slice(&a);
            trace_id[14..].copy_from_slice(&b[..2]);
            let mut parent_id = [0; 8];
            parent_id.copy_from_slice(&b[2..10]);
            // All-zero ids are invalid; drawing one is a 2^-64 chance, but a MUST.
            if let Ok(traceparent) = Self::new(trace_id, parent_id, Self::FLAG_SAMPLED) {
                return traceparent;
            }
        }
    }

    /// The context for a call made on behalf of this one: the same trace and flags, a
    /// new random parent-id.
    pub fn child(&self) -> Self {
        loop {
            let mut parent_id = [0; 8];
            parent_id.copy_from_slice(&random_bytes()[..8]);
            if let Ok(child) = Self::new(self.trace_id, parent_id, self.flags) {
                return child;
            }
        }
    }

    /// The trace-id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The trace-id as 32 lower-case hex digits, as in the header (and in logs).
    pub fn trace_id_hex(&self) -> String {
        let mut hex = String::with_capacity(32);
        push_hex(&mut hex, &self.trace_id);
        hex
    }

    /// The parent-id: the id of the call that made the request.
    pub fn parent_id(&self) -> [u8; 8] {
        self.parent_id
    }

    /// The trace flags.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the `sampled` flag is set.
    pub fn is_sampled(&self) -> bool {
        self.flags & Self::FLAG_SAMPLED != 0
    }

    /// The header value, `00-<trace-id>-<parent-id>-<flags>`.
    pub fn to_header_value(&self) -> HeaderValue {
        HeaderValue::try_from(self.to_string())
            .expect("hex digits and dashes are a valid header value")
    }
}

impl fmt::Display for TraceParent {
    /// `00-<32 hex>-<16 hex>-<2 hex>`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(TRACEPARENT_LEN);
        s.push_str("00-");
        push_hex(&mut s, &self.trace_id);
        s.push('-');
        push_hex(&mut s, &self.parent_id);
        s.push('-');
        push_hex(&mut s, &[self.flags]);
        f.write_str(&s)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

impl FromStr for TraceParent {
    type Err = InvalidTraceParent;

    fn from_str(s: &str) -> Result<Self, InvalidTraceParent> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for TraceParent {
    type Error = InvalidTraceParent;

    fn try_from(s: &str) -> Result<Self, InvalidTraceParent> {
        Self::parse(s)
    }
}

/// 14 random bytes: a v4 UUID's 16 less the two that carry its version and variant bits.
fn random_bytes() -> [u8; 14] {
    let u = *Uuid::new_v4().as_bytes();
    [
        u[0], u[1], u[2], u[3], u[4], u[5], u[7], u[9], u[10], u[11], u[12], u[13], u[14], u[15],
    ]
}

/// Decodes exactly `2 * N` lower-case hex digits.
fn hex_array<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    fn nibble(digit: u8) -> Option<u8> {
        match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'a'..=b'f' => Some(digit - b'a' + 10),
            _ => None,
        }
    }
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

/// Why a `traceparent` value is not a valid W3C trace context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidTraceParent {
    /// Shorter than 55 characters, or a version `00` value longer than that.
    #[error("invalid traceparent: {}", self.reason())]
    Length,
    /// The version is not two lower-case hex digits, or is the reserved `ff`.
    #[error("invalid traceparent: {}", self.reason())]
    Version,
    /// The fields are not separated by single dashes.
    #[error("invalid traceparent: {}", self.reason())]
    Delimiter,
    /// The trace-id is not 32 lower-case hex digits, or is all zeros.
    #[error("invalid traceparent: {}", self.reason())]
    TraceId,
    /// The parent-id is not 16 lower-case hex digits, or is all zeros.
    #[error("invalid traceparent: {}", self.reason())]
    ParentId,
    /// The trace flags are not two lower-case hex digits.
    #[error("invalid traceparent: {}", self.reason())]
    Flags,
}

impl InvalidTraceParent {
    fn reason(self) -> &'static str {
        match self {
            InvalidTraceParent::Length => {
                "it must be 55 characters long (version 00) or longer (later versions)"
            }
            InvalidTraceParent::Version => {
                "its version must be two lower-case hex digits other than `ff`"
            }
            InvalidTraceParent::Delimiter => "its fields must be separated by single dashes",
            InvalidTraceParent::TraceId => {
                "its trace-id must be 32 lower-case hex digits, not all zeros"
            }
            InvalidTraceParent::ParentId => {
                "its parent-id must be 16 lower-case hex digits, not all zeros"
            }
            InvalidTraceParent::Flags => "its trace flags must be two lower-case hex digits",
        }
    }
}

impl From<InvalidTraceParent> for Error {
    /// An [`Error::InvalidAttribute`] for `traceparent`, for hosts that read the header
    /// from an incoming request.
    fn from(invalid: InvalidTraceParent) -> Self {
        Error::InvalidAttribute {
            attribute: "traceparent",
            reason: invalid.reason().to_owned(),
        }
    }
}

/// One event rendered for delivery, shared by every subscribed endpoint.
///
/// Holds the [`Notification`], its body serialised once, and the [`TraceParent`] sent
/// with it. Cloning is two reference-count increments; turning it into a request for an
/// endpoint ([`to_request`](Self::to_request)) copies no body bytes.
#[derive(Clone)]
pub struct PreparedNotification {
    shared: Arc<Shared>,
    body: Bytes,
}

/// What every request for one event has in common, built once.
struct Shared {
    notification: Notification,
    traceparent: TraceParent,
    headers: HeaderMap,
}

impl PreparedNotification {
    /// Serialises `notification`, to be sent with `traceparent`.
    ///
    /// [`Event::prepare`] is the usual way to get one.
    ///
    /// # Errors
    /// When the notification does not serialise: only a time outside the years 0000 to
    /// 9999 or with an offset in seconds, which RFC 3339 cannot write.
    pub fn new(
        notification: Notification,
        traceparent: TraceParent,
    ) -> Result<Self, serde_json::Error> {
        let body = Bytes::from(serde_json::to_vec(&notification)?);
        let mut headers = HeaderMap::with_capacity(3);
        headers.insert(CONTENT_TYPE, CONTENT_TYPE_JSON);
        headers.insert(HOOKTYPE, HOOKTYPE_NOTIFICATION);
        headers.insert(TRACEPARENT, traceparent.to_header_value());
        Ok(PreparedNotification {
            shared: Arc::new(Shared {
                notification,
                traceparent,
                headers,
            }),
            body,
        })
    }

    /// The notification.
    pub fn notification(&self) -> &Notification {
        &self.shared.notification
    }

    /// The serialised body, the same allocation for every endpoint.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The trace context sent in the `traceparent` header.
    pub fn traceparent(&self) -> TraceParent {
        self.shared.traceparent
    }

    /// The request BioT makes to `endpoint`: `POST`, with `content-type:
    /// application/json`, `hooktype: NOTIFICATION` and `traceparent`, and no
    /// `Authorization` (the token travels in the body).
    pub fn to_request(&self, endpoint: &Endpoint) -> Request<Bytes> {
        let mut request = Request::new(self.body.clone());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = endpoint.to_uri();
        *request.headers_mut() = self.shared.headers.clone();
        request
    }
}

impl fmt::Debug for PreparedNotification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedNotification")
            .field("notification", &self.shared.notification)
            .field("traceparent", &self.shared.traceparent)
            .field("body_len", &self.body.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn a_later_version_keeps_only_the_sampled_flag_and_is_written_as_00() {
        let traceparent = TraceParent::parse(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff-what-comes-next",
        )
        .unwrap();
        assert_eq!(traceparent.flags(), TraceParent::FLAG_SAMPLED);
        assert_eq!(
            traceparent.to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
    }

    #[test]
    fn random_bytes_skip_the_uuid_version_and_variant() {
        // Bytes 6 and 8 of a v4 UUID always start with 0100 and 10; if they leaked in,
        // some position would never vary in those bits across draws.
        let mut seen_or = [0u8; 14];
        let mut seen_and = [0xffu8; 14];
        for _ in 0..64 {
            for (i, byte) in random_bytes().into_iter().enumerate() {
                seen_or[i] |= byte;
                seen_and[i] &= byte;
            }
        }
        assert!(seen_or.iter().all(|&b| b == 0xff));
        assert!(seen_and.iter().all(|&b| b == 0));
    }

    #[test]
    fn debug_redacts_the_jwt() {
        let prepared = event().prepare(Some("eyJhbGciOiJSUzUxMiJ9.secret".to_owned()));
        let debug = format!("{prepared:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn invalid_traceparent_becomes_an_invalid_attribute_error() {
        let err = Error::from(InvalidTraceParent::TraceId);
        assert_eq!(err.code(), "INVALID_ATTRIBUTE");
        assert_eq!(
            err.to_string(),
            "the attribute `traceparent` is invalid: its trace-id must be 32 lower-case hex digits, not all zeros"
        );
    }
}
