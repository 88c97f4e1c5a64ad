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

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::catalog::{Action, EntityType, EventType};
use crate::endpoint::{Endpoint, EndpointPolicy};
use crate::error::{echo, Error};

/// The longest template name accepted, in bytes. BioT template names are short
/// identifiers; anything longer is a mistake or an attack.
pub const MAX_TEMPLATE_NAME_LEN: usize = 256;

/// The body of `POST .../subscribe`, as a plugin sends it.
///
/// Fields hold the raw strings; nothing is checked until [`validate`](Self::validate).
/// Use [`from_json`](Self::from_json) to parse a body with errors that name the
/// offending attribute (plain serde works too, with serde's own messages).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeRequest {
    /// The entity type, e.g. `patient`.
    pub entity_type_name: String,
    /// The action, e.g. `_create` (or bare `create`).
    pub action_name: String,
    /// Where notifications are POSTed.
    pub endpoint: String,
    /// Narrows the subscription to entities of this template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_name: Option<String>,
}

/// The body of `POST .../unsubscribe`: the same fields as [`SubscribeRequest`],
/// naming the subscription to remove.
pub type UnsubscribeRequest = SubscribeRequest;

impl SubscribeRequest {
    /// A request for the given names, with no template.
    pub fn new(
        entity_type_name: impl Into<String>,
        action_name: impl Into<String>,
        endpoint: impl Into<String>,
    ) -> Self {
        SubscribeRequest {
            entity_type_name: entity_type_name.into(),
            action_name: action_name.into(),
            endpoint: endpoint.into(),
            template_name: None,
        }
    }

    /// The same request narrowed to entities of `template_name`.
    pub fn with_template(mut self, template_name: impl Into<String>) -> Self {
        self.template_name = Some(template_name.into());
        self
    }

    /// Parses a JSON body, reporting a missing, null, empty or wrongly typed
    /// attribute by name.
    ///
    /// # Errors
    /// [`Error::MalformedBody`] for bytes that are not one JSON object,
    /// [`Error::MissingAttribute`] and [`Error::InvalidAttribute`] for bad fields.
    pub fn from_json(body: &[u8]) -> Result<Self, Error> {
        // serde would also read a struct from a JSON array; BioT's bodies are objects.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Error::MalformedBody {
                reason: "the body must be a JSON object".to_owned(),
            });
        }
        // serde_json checks UTF-8 only in what it decodes, not in members it skips.
        let body = std::str::from_utf8(body).map_err(|e| Error::MalformedBody {
            reason: format!(
                "the body is not UTF-8 (invalid byte at {})",
                e.valid_up_to()
            ),
        })?;
        let raw: RawRequest<'_> = serde_json::from_str(body).map_err(|e| Error::MalformedBody {
            reason: malformed_reason(&e),
        })?;
        Ok(SubscribeRequest {
            entity_type_name: raw.entity_type_name.mandatory("entityTypeName")?,
            action_name: raw.action_name.mandatory("actionName")?,
            endpoint: raw.endpoint.mandatory("endpoint")?,
            template_name: raw.template_name.optional("templateName")?,
        })
    }

    /// Validates the request for subscribing: names, endpoint under `policy`, template.
    ///
    /// # Errors
    /// The first problem found, checking entity type, action, endpoint, then template.
    pub fn validate(&self, policy: &EndpointPolicy) -> Result<SubscriptionKey, Error> {
        let event_type = EventType::parse(&self.entity_type_name, &self.action_name)?;
        let endpoint = policy.validate(&self.endpoint)?;
        let template_name = self
            .template_name
            .as_deref()
            .map(TemplateName::new)
            .transpose()?;
        Ok(SubscriptionKey {
            event_type,
            endpoint,
            template_name,
        })
    }

    /// The identity this request names, checking structure only (no endpoint policy).
    ///
    /// Unsubscribing uses this, so a subscription stays removable even after the
    /// policy was tightened.
    ///
    /// # Errors
    /// As [`validate`](Self::validate), without the policy's checks.
    pub fn key(&self) -> Result<SubscriptionKey, Error> {
        let event_type = EventType::parse(&self.entity_type_name, &self.action_name)?;
        let endpoint = Endpoint::parse(&self.endpoint)
            .map_err(|reason| Error::invalid_endpoint(&self.endpoint, reason))?;
        let template_name = self
            .template_name
            .as_deref()
            .map(TemplateName::new)
            .transpose()?;
        Ok(SubscriptionKey {
            event_type,
            endpoint,
            template_name,
        })
    }
}

/// A template name: non-empty, at most [`MAX_TEMPLATE_NAME_LEN`] bytes, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateName(Box<str>);

impl TemplateName {
    /// Validates a template name.
    ///
    /// # Errors
    /// [`Error::InvalidAttribute`] for `templateName`, saying why.
    pub fn new(name: &str) -> Result<Self, Error> {
        // Whitespace is looked for only where it matters: `all` stops at the first other
        // character, and the ends are looked at directly (`trim` would walk both, twice).
        let reason = if name.chars().all(char::is_whitespace) {
            "it must not be empty"
        } else if name.len() > MAX_TEMPLATE_NAME_LEN {
            "it is longer than 256 bytes"
        } else if name.chars().any(char::is_control) {
            "it contains control characters"
        } else if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
            "it has leading or trailing whitespace"
        } else {
            return Ok(TemplateName(name.into()));
        };
        Err(Error::InvalidAttribute {
            attribute: "templateName",
            reason: reason.to_owned(),
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TemplateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TemplateName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for TemplateName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TemplateName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = Cow::<'de, str>::deserialize(deserializer)?;
        TemplateName::new(&name).map_err(serde::de::Error::custom)
    }
}

/// What identifies a subscription: `(entityTypeName, actionName, endpoint, templateName)`,
/// with the endpoint normalised, so two spellings of one URL are one key.
///
/// Serialises as the request shape (BioT's `SUBSCRIBER_NOT_FOUND` details).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "SubscribeRequest", into = "SubscribeRequest")]
pub struct SubscriptionKey {
    event_type: EventType,
    endpoint: Endpoint,
    template_name: Option<TemplateName>,
}

impl SubscriptionKey {
    /// A key from already-validated parts.
    pub fn new(
        event_type: EventType,
        endpoint: Endpoint,
        template_name: Option<TemplateName>,
    ) -> Self {
        SubscriptionKey {
            event_type,
            endpoint,
            template_name,
        }
    }

    /// The `(entity type, action)` pair.
    pub fn event_type(&self) -> EventType {
        self.event_type
    }

    /// The entity type.
    pub fn entity_type(&self) -> EntityType {
        self.event_type.entity_type()
    }

    /// The action.
    pub fn action(&self) -> Action {
        self.event_type.action()
    }

    /// The normalised endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The template the subscription is narrowed to, if any.
    pub fn template_name(&self) -> Option<&TemplateName> {
        self.template_name.as_ref()
    }
}

impl fmt::Display for SubscriptionKey {
    /// `patient/_create -> https://plugin.example/hook [template adultPatient]`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.event_type, self.endpoint)?;
        if let Some(template) = &self.template_name {
            write!(f, " [template {template}]")?;
        }
        Ok(())
    }
}

impl From<SubscriptionKey> for SubscribeRequest {
    fn from(key: SubscriptionKey) -> Self {
        SubscribeRequest {
            entity_type_name: key.entity_type().as_str().to_owned(),
            action_name: key.action().as_str().to_owned(),
            endpoint: key.endpoint.into_string(),
            template_name: key.template_name.map(|t| t.0.into()),
        }
    }
}

impl TryFrom<SubscribeRequest> for SubscriptionKey {
    type Error = Error;

    /// Structural validation, as [`SubscribeRequest::key`].
    fn try_from(request: SubscribeRequest) -> Result<Self, Error> {
        request.key()
    }
}

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
    id: Uuid,
    key: SubscriptionKey,
    created_at: OffsetDateTime,
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

    /// Appends this subscription's JSON to `out`: byte for byte what its [`Serialize`]
    /// writes through serde_json, in about half the instructions. The keys, the catalog's
    /// names, the id and the creation time are ASCII that JSON never escapes, so they are
    /// copied as they are; the endpoint and the template name are written by
    /// [`write_json_string`]. The handler writes every subscribe response this way.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.extend_from_slice(br#"{"entityTypeName":""#);
        out.extend_from_slice(self.key.entity_type().as_str().as_bytes());
        out.extend_from_slice(br#"","actionName":""#);
        out.extend_from_slice(self.key.action().as_str().as_bytes());
        out.extend_from_slice(br#"","endpoint":"#);
        write_json_string(out, self.key.endpoint.as_str())?;
        if let Some(template) = &self.key.template_name {
            out.extend_from_slice(br#","templateName":"#);
            write_json_string(out, template.as_str())?;
        }
        out.extend_from_slice(br#","id":""#);
        let mut id = Uuid::encode_buffer();
        out.extend_from_slice(self.id.hyphenated().encode_lower(&mut id).as_bytes());
        out.extend_from_slice(br#"","creationTime":""#);
        let mut time = [0; RFC3339_ROOM];
        out.extend_from_slice(
            rfc3339(&self.created_at, &mut time).map_err(serde::ser::Error::custom)?,
        );
        out.extend_from_slice(br#""}"#);
        Ok(())
    }
}

/// Appends `text` as a JSON string, byte for byte as serde_json writes it. serde_json
/// escapes only `"`, `\` and the control characters below U+0020; an endpoint (which
/// the `url` crate has percent-encoded) and a template name almost never hold one, so
/// such text is copied between quotes after one scan, where serde_json's writer looks
/// each byte up in its escape table (~800 instructions per subscribe response, ~10 a
/// byte). Text that needs escaping still goes through serde_json.
fn write_json_string(out: &mut Vec<u8>, text: &str) -> Result<(), serde_json::Error> {
    // A fold, not `any`: without the early exit the loop vectorises.
    let needs_escaping = text.bytes().fold(false, |found, b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if needs_escaping {
        return serde_json::to_writer(&mut *out, text);
    }
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
    Ok(())
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

/// Writes `time` as `time::serde::rfc3339` does, without allocating the `String` that
/// does: every subscription written (one per response, a hundred per search page) has
/// a creation time, and every notification a start and an end time.
pub(crate) fn rfc3339_on_the_stack<S: Serializer>(
    time: &OffsetDateTime,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut buffer = [0; RFC3339_ROOM];
    let written = rfc3339(time, &mut buffer).map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(std::str::from_utf8(written).map_err(serde::ser::Error::custom)?)
}

/// Room for RFC 3339 as `time` writes it: at most 35 bytes
/// (`9999-12-31T23:59:59.999999999+23:59`).
const RFC3339_ROOM: usize = 40;

/// Writes `time` in RFC 3339 into `buffer` (ASCII, so valid UTF-8), byte for byte as
/// `time::serde::rfc3339` does (a test compares them over years, fractions and
/// offsets), failing where that fails, in the same order and with the same error: a
/// year RFC 3339 cannot write, an offset of more than 23 hours, an offset with seconds.
/// Written out here rather than through `time`'s general formatter, which took ~770
/// instructions a timestamp, where this takes under 300: the difference was a tenth of
/// what the HTTP handler adds to a subscribe.
fn rfc3339<'b>(
    time: &OffsetDateTime,
    buffer: &'b mut [u8; RFC3339_ROOM],
) -> Result<&'b [u8], time::error::Format> {
    use time::error::Format::InvalidComponent;
    let (year, month, day) = time.to_calendar_date();
    let year = u16::try_from(year)
        .ok()
        .filter(|&year| year < 10_000)
        .ok_or(InvalidComponent("year"))?;
    let offset = time.offset();
    let (offset_hours, offset_minutes, offset_seconds) = offset.as_hms();
    if offset_hours.unsigned_abs() > 23 {
        return Err(InvalidComponent("offset_hour"));
    }
    if offset_seconds != 0 {
        return Err(InvalidComponent("offset_second"));
    }
    // Each below 100, so `n / 10` is one digit.
    let two_digits = |n: u8| [b'0' + n / 10, b'0' + n % 10];
    // Below 10,000, so both halves are below 100 and fit a u8.
    let [y1, y2] = two_digits((year / 100) as u8);
    let [y3, y4] = two_digits((year % 100) as u8);
    let [mo1, mo2] = two_digits(u8::from(month));
    let [d1, d2] = two_digits(day);
    let (hour, minute, second, nanosecond) = time.to_hms_nano();
    let [h1, h2] = two_digits(hour);
    let [mi1, mi2] = two_digits(minute);
    let [s1, s2] = two_digits(second);
    let date_and_time = [
        y1, y2, y3, y4, b'-', mo1, mo2, b'-', d1, d2, b'T', h1, h2, b':', mi1, mi2, b':', s1, s2,
    ];
    buffer[..date_and_time.len()].copy_from_slice(&date_and_time);
    let mut written = date_and_time.len();
    if nanosecond != 0 {
        // Nine digits, without the zeros they end with (at least one digit is not zero).
        let mut digits = [b'0'; 9];
        let mut rest = nanosecond;
        for digit in digits.iter_mut().rev() {
            // Below ten, so the cast cannot truncate.
            *digit = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let kept = 9 - digits.iter().rev().take_while(|&&d| d == b'0').count();
        buffer[written] = b'.';
        // All nine, since there is room: a copy of known length is a few moves, not a
        // call. What follows the kept digits is written over or left out.
        buffer[written + 1..written + 10].copy_from_slice(&digits);
        written += 1 + kept;
    }
    if offset.is_utc() {
        buffer[written] = b'Z';
        written += 1;
    } else {
        let sign = if offset.is_negative() { b'-' } else { b'+' };
        let [oh1, oh2] = two_digits(offset_hours.unsigned_abs());
        let [om1, om2] = two_digits(offset_minutes.unsigned_abs());
        buffer[written..written + 6].copy_from_slice(&[sign, oh1, oh2, b':', om1, om2]);
        written += 6;
    }
    Ok(&buffer[..written])
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
    type Error = Error;

    fn try_from(wire: SubscriptionWire) -> Result<Self, Error> {
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

/// The body as plugins send it, with each field kept loose so a wrong type or a null
/// is reported by name instead of as a serde position.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequest<'a> {
    #[serde(default, borrow)]
    entity_type_name: RawField<'a>,
    #[serde(default, borrow)]
    action_name: RawField<'a>,
    #[serde(default, borrow)]
    endpoint: RawField<'a>,
    #[serde(default, borrow)]
    template_name: RawField<'a>,
}

#[derive(Default)]
enum RawField<'a> {
    #[default]
    Absent,
    Null,
    Text(Cow<'a, str>),
    /// Any other JSON type; the name says which, for the error message.
    Other(&'static str),
}

impl RawField<'_> {
    fn mandatory(self, attribute: &'static str) -> Result<String, Error> {
        match self {
            RawField::Absent | RawField::Null => Err(Error::MissingAttribute { attribute }),
            RawField::Text(text) if text.chars().all(char::is_whitespace) => {
                Err(Error::MissingAttribute { attribute })
            }
            RawField::Text(text) => Ok(text.into_owned()),
            RawField::Other(kind) => Err(not_a_string(attribute, kind)),
        }
    }

    fn optional(self, attribute: &'static str) -> Result<Option<String>, Error> {
        match self {
            RawField::Absent | RawField::Null => Ok(None),
            RawField::Text(text) => Ok(Some(text.into_owned())),
            RawField::Other(kind) => Err(not_a_string(attribute, kind)),
        }
    }
}

fn not_a_string(attribute: &'static str, kind: &str) -> Error {
    Error::InvalidAttribute {
        attribute,
        reason: format!("it must be a string, not {kind}"),
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawField<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;

        impl<'de> serde::de::Visitor<'de> for FieldVisitor {
            type Value = RawField<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawField::Text(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawField::Text(Cow::Owned(v.to_owned())))
            }

            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(RawField::Null)
            }

            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(RawField::Null)
            }

            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(RawField::Other("a boolean"))
            }

            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(RawField::Other("a number"))
            }

            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(RawField::Other("a number"))
            }

            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(RawField::Other("a number"))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(RawField::Other("an array"))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(RawField::Other("an object"))
            }
        }

        deserializer.deserialize_any(FieldVisitor)
    }
}

/// A short, safe description of why a body is not the JSON object expected.
pub(crate) fn malformed_reason(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match error.classify() {
        Category::Eof => "the JSON ends too early".to_owned(),
        Category::Syntax => format!(
            "invalid JSON at line {} column {}",
            error.line(),
            error.column()
        ),
        // Data errors (e.g. an array where an object belongs, a duplicate field) carry
        // serde's description, which names types and fields but never echoes values
        // beyond what `echo` bounds.
        Category::Data | Category::Io => echo(&error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path of `write_json_string` must not skip anything serde_json escapes.
    #[test]
    fn json_strings_are_written_as_serde_json_writes_them() {
        let specials = ["", "\u{7f}", "é", "\u{2028}", "😀", "/", "'", "<"];
        let every_ascii = (0u8..0x80).map(|b| char::from(b).to_string());
        for piece in every_ascii.chain(specials.iter().map(|s| s.to_string())) {
            for text in [
                piece.clone(),
                format!("https://a.example/p?{piece}x"),
                format!("{piece}{piece}"),
            ] {
                let mut written = b"prefix".to_vec();
                write_json_string(&mut written, &text).unwrap();
                let mut expected = b"prefix".to_vec();
                expected.extend(serde_json::to_vec(&text).unwrap());
                assert_eq!(written, expected, "{text:?}");
            }
        }
    }

    /// `rfc3339` spells out what `time`'s `Rfc3339` format writes: the same text, or the
    /// same error, at the edges of every part (and of their errors' order) and over
    /// 20,000 random values across the whole range of dates `time` holds.
    #[test]
    fn creation_times_are_written_as_time_writes_them() {
        use time::format_description::well_known::Rfc3339;
        use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

        let check = |at: OffsetDateTime| {
            let mut buffer = [0; RFC3339_ROOM];
            let ours = rfc3339(&at, &mut buffer)
                .map(|written| String::from_utf8(written.to_vec()).unwrap())
                .map_err(|e| e.to_string());
            let theirs = at.format(&Rfc3339).map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{at:?}");
            ours.is_ok()
        };
        let offset = |h, m, s| UtcOffset::from_hms(h, m, s).unwrap();
        let offsets = [
            UtcOffset::UTC,
            offset(0, 1, 0),
            offset(0, -1, 0),
            offset(0, -30, 0),
            offset(5, 30, 0),
            offset(-8, 0, 0),
            offset(23, 59, 0),
            offset(-23, -59, 0),
            // No RFC 3339 form: more than 23 hours, or seconds, or both (the hours are
            // named first).
            offset(24, 0, 0),
            offset(-25, 0, 0),
            offset(1, 0, 30),
            offset(0, 0, -1),
            offset(24, 0, 1),
            offset(-25, -59, -59),
        ];
        let nanoseconds = [
            0,
            1,
            9,
            10,
            100,
            1_000,
            1_000_000,
            100_000_000,
            120_000_000,
            123_456_789,
            500_000_000,
            987_654_320,
            999_999_999,
        ];
        let dates = [
            (0, Month::January, 1),
            (1, Month::February, 28),
            (9, Month::March, 9),
        ]
        .into_iter()
        .chain([
            (10, Month::April, 30),
            (99, Month::May, 31),
            (100, Month::June, 1),
        ])
        .chain([(999, Month::September, 9), (1000, Month::October, 10)])
        .chain([(1970, Month::January, 1), (2024, Month::February, 29)])
        .chain([(9999, Month::December, 31), (-1, Month::December, 31)])
        .chain([(-9999, Month::January, 1)])
        .map(|(y, m, d)| Date::from_calendar_date(y, m, d).unwrap());
        let times = [(0, 0, 0), (23, 59, 59), (12, 34, 56), (9, 5, 1)];
        let mut written = 0;
        for date in dates {
            for (h, m, s) in times {
                for (n, &nanosecond) in nanoseconds.iter().enumerate() {
                    let time = Time::from_hms_nano(h, m, s, nanosecond).unwrap();
                    let at = PrimitiveDateTime::new(date, time);
                    for offset in [offsets[n % offsets.len()], UtcOffset::UTC] {
                        written += usize::from(check(at.assume_offset(offset)));
                    }
                }
            }
        }
        // A sweep: dates across time's whole range, fractions with 0-9 digits.
        let (first, last) = (Date::MIN.to_julian_day(), Date::MAX.to_julian_day());
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            state >> 33
        };
        for _ in 0..20_000 {
            let day = first + (next() % (last - first + 1) as u64) as i32;
            let seconds = (next() % 86_400) as u32;
            let zeros = 10u32.pow((next() % 10) as u32);
            let nanosecond = (next() % 1_000_000_000) as u32 / zeros * zeros;
            let time = Time::from_hms_nano(
                (seconds / 3600) as u8,
                (seconds / 60 % 60) as u8,
                (seconds % 60) as u8,
                nanosecond,
            )
            .unwrap();
            let offset = offsets[next() as usize % offsets.len()];
            let date = Date::from_julian_day(day).unwrap();
            written += usize::from(check(
                PrimitiveDateTime::new(date, time).assume_offset(offset),
            ));
        }
        assert!(written > 5_000, "{written} written");
    }

    /// `write_json` is a faster spelling of `Serialize`: it must write the same bytes
    /// for every pair, for templates and endpoints that need escaping, for every offset,
    /// and fail where serialising fails.
    #[test]
    fn write_json_writes_what_serialize_writes() {
        let endpoints = [
            "https://plugin.example.com/hook",
            "https://example.com/p?a\\b\"c",
            "https://Bücher.example:8443/a%20b/{c}?x={y}|z^`",
            "http://[::1]:8080/",
        ];
        let templates = [
            None,
            Some("adultPatient"),
            Some("adult \"A\""),
            Some("back\\slash/and/slash"),
            Some("ünïcödé \u{2028} 😀"),
            Some("</script>"),
        ];
        let times = [
            OffsetDateTime::UNIX_EPOCH,
            time::macros::datetime!(2026-11-27 23:30:08.891736509 +05:30),
            time::macros::datetime!(9999-12-31 23:59:59.999999999 -23:59),
            // No RFC 3339 form: an offset with seconds.
            time::macros::datetime!(2026-11-27 23:30:08 +01:00:30),
        ];
        let (mut written, mut refused) = (0, 0);
        for (n, event_type) in EventType::all().enumerate() {
            let endpoint = Endpoint::parse(endpoints[n % endpoints.len()]).unwrap();
            for template in templates {
                let key = SubscriptionKey {
                    event_type,
                    endpoint: endpoint.clone(),
                    template_name: template.map(|t| TemplateName::new(t).unwrap()),
                };
                let time = times[(n + written + refused) % times.len()];
                let subscription = Subscription::from_parts(Uuid::from_u128(n as u128), key, time);
                let mut fast = Vec::new();
                match serde_json::to_vec(&subscription) {
                    Ok(reference) => {
                        subscription.write_json(&mut fast).unwrap();
                        assert_eq!(
                            String::from_utf8(fast).unwrap(),
                            String::from_utf8(reference).unwrap()
                        );
                        written += 1;
                    }
                    Err(_) => {
                        assert!(subscription.write_json(&mut fast).is_err(), "{time}");
                        refused += 1;
                    }
                }
            }
        }
        assert!(
            written > 150 && refused > 0,
            "{written} written, {refused} refused"
        );
    }
}
