//! The wire requests plugins send: [`SubscribeRequest`] (also the unsubscribe body),
//! parsed with errors that name the offending attribute.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use super::ValidationError;
use super::{SubscriptionKey, TemplateName};
use crate::catalog::EventType;
use crate::endpoint::InvalidEndpoint;
use crate::endpoint::{Endpoint, EndpointPolicy};
use crate::wire_error::echo;

/// The body of `POST .../subscribe`, as a plugin sends it.
///
/// Fields hold the raw strings; nothing is checked until [`validate`](Self::validate).
/// Use [`from_json`](Self::from_json) to parse a body with errors that name the
/// offending attribute (plain serde works too, with serde's own messages).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
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
    /// [`ValidationError::MalformedBody`] for bytes that are not one JSON object,
    /// [`ValidationError::MissingAttribute`] and [`ValidationError::InvalidAttribute`]
    /// for bad fields.
    pub fn from_json(body: &[u8]) -> Result<Self, ValidationError> {
        // serde would also read a struct from a JSON array; BioT's bodies are objects.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ValidationError::MalformedBody {
                reason: "the body must be a JSON object".to_owned(),
            });
        }
        // serde_json checks UTF-8 only in what it decodes, not in members it skips.
        let body = std::str::from_utf8(body).map_err(|e| ValidationError::MalformedBody {
            reason: format!(
                "the body is not UTF-8 (invalid byte at {})",
                e.valid_up_to()
            ),
        })?;
        let raw: RawRequest<'_> =
            serde_json::from_str(body).map_err(|e| ValidationError::MalformedBody {
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
    pub fn validate(&self, policy: &EndpointPolicy) -> Result<SubscriptionKey, ValidationError> {
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
    pub fn key(&self) -> Result<SubscriptionKey, ValidationError> {
        let event_type = EventType::parse(&self.entity_type_name, &self.action_name)?;
        let endpoint = Endpoint::parse(&self.endpoint)
            .map_err(|reason| InvalidEndpoint::new(&self.endpoint, reason))?;
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
    fn mandatory(self, attribute: &'static str) -> Result<String, ValidationError> {
        match self {
            RawField::Absent | RawField::Null => {
                Err(ValidationError::MissingAttribute { attribute })
            }
            RawField::Text(text) if text.chars().all(char::is_whitespace) => {
                Err(ValidationError::MissingAttribute { attribute })
            }
            RawField::Text(text) => Ok(text.into_owned()),
            RawField::Other(kind) => Err(not_a_string(attribute, kind)),
        }
    }

    fn optional(self, attribute: &'static str) -> Result<Option<String>, ValidationError> {
        match self {
            RawField::Absent | RawField::Null => Ok(None),
            RawField::Text(text) => Ok(Some(text.into_owned())),
            RawField::Other(kind) => Err(not_a_string(attribute, kind)),
        }
    }
}

fn not_a_string(attribute: &'static str, kind: &str) -> ValidationError {
    ValidationError::InvalidAttribute {
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
