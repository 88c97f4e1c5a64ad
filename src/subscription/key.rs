//! What identifies a subscription: its [`SubscriptionKey`], and the [`TemplateName`]
//! in it.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{SubscribeRequest, ValidationError, MAX_TEMPLATE_NAME_LEN};
use crate::catalog::{Action, EntityType, EventType};
use crate::endpoint::Endpoint;

/// A template name: non-empty, at most [`MAX_TEMPLATE_NAME_LEN`] bytes, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateName(Box<str>);

impl TemplateName {
    /// Validates a template name.
    ///
    /// # Errors
    /// [`ValidationError::InvalidAttribute`] for `templateName`, saying why.
    pub fn new(name: &str) -> Result<Self, ValidationError> {
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
        Err(ValidationError::InvalidAttribute {
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
    pub(super) event_type: EventType,
    pub(super) endpoint: Endpoint,
    pub(super) template_name: Option<TemplateName>,
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
    type Error = ValidationError;

    /// Structural validation, as [`SubscribeRequest::key`].
    fn try_from(request: SubscribeRequest) -> Result<Self, ValidationError> {
        request.key()
    }
}
