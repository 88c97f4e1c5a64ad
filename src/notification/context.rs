//! The context of an action: how it ended ([`EventStatus`]) and who caused it
//! ([`Initiator`], [`Subject`]).

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

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
