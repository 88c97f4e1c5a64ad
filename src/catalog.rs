//! BioT's catalog of notification events: entity types, actions and the valid pairs.
//!
//! Each enum is generated from one string table, which drives [`as_str`](EntityType::as_str),
//! [`Display`](fmt::Display), [`FromStr`] and serde, so the wire
//! form and the parsed form can never drift apart.
//!
//! Actions are written with a leading underscore on the wire (`_create`); BioT's
//! documentation prints them bare (`create`). Both are accepted on input, the underscore
//! form is always emitted:
//!
//! ```
//! use biot_notifications::{Action, EntityType, EventType};
//!
//! let action: Action = "create".parse()?;
//! assert_eq!(action.to_string(), "_create");
//!
//! let event = EventType::new(EntityType::UsageSession, Action::RemotePause)?;
//! assert_eq!(event.to_string(), "usage-session/_remotePause");
//!
//! // `_login` exists, but not for devices: the error lists what devices do support.
//! let err = EventType::parse("device", "_login").unwrap_err();
//! assert!(err.to_string().contains("_revokeCertificate"));
//! # Ok::<(), biot_notifications::catalog::CatalogError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Map, Value};

use crate::wire_error::{details_object, echo, BiotError};

/// Generates a fieldless enum from one `Variant => "wire-name"` table, with `ALL`,
/// `as_str` and the serde/Display/FromStr impls all reading that table.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* #[doc = concat!("`", $wire, "`")] $variant, )+
        }

        impl $name {
            /// Every variant, in the order of BioT's documentation table.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )+ ];

            /// The canonical wire name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $wire, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl FromStr for $name {
            type Err = CatalogError;

            fn from_str(s: &str) -> Result<Self, CatalogError> {
                Self::parse(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = CatalogError;

            fn try_from(s: &str) -> Result<Self, CatalogError> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct NameVisitor;

                impl serde::de::Visitor<'_> for NameVisitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }

                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::parse(v).map_err(E::custom)
                    }
                }

                deserializer.deserialize_str(NameVisitor)
            }
        }
    };
}

wire_enum! {
    /// A kind of BioT entity whose actions can be subscribed to (`entityTypeName`).
    pub enum EntityType ("a BioT entity type name") {
        Caregiver => "caregiver",
        Command => "command",
        Device => "device",
        DeviceAlert => "device-alert",
        GenericEntity => "generic-entity",
        Organization => "organization",
        OrganizationUser => "organization-user",
        Patient => "patient",
        PatientAlert => "patient-alert",
        RegistrationCode => "registration-code",
        UsageSession => "usage-session",
    }
}

wire_enum! {
    /// Something a BioT service did to an entity (`actionName`), canonically with a leading underscore.
    pub enum Action ("a BioT notification action name") {
        ActivateCertificate => "_activateCertificate",
        Clear => "_clear",
        Command => "_command",
        Create => "_create",
        Delete => "_delete",
        GenerateCertificate => "_generateCertificate",
        IncomingSms => "_incomingSms",
        Login => "_login",
        Logout => "_logout",
        RemotePause => "_remotePause",
        RemoteResume => "_remoteResume",
        RemoteStart => "_remoteStart",
        RemoteStop => "_remoteStop",
        RevokeCertificate => "_revokeCertificate",
        SaveMeasurement => "_saveMeasurement",
        SaveMeasurementBulk => "_saveMeasurementBulk",
        Start => "_start",
        Stop => "_stop",
        Update => "_update",
        UpdateAdmin => "_updateAdmin",
        UpdateEnabledState => "_updateEnabledState",
    }
}

/// Permission verbs that appear in BioT's OpenAPI enum of actions but are never notified.
const PERMISSION_VERBS: &[&str] = &[
    "_read", "_list", "_view", "_manage", "_assign", "_operate", "_monitor",
];

impl EntityType {
    /// Position of this variant in [`ALL`](Self::ALL): a dense index for tables.
    const fn index(self) -> usize {
        self as usize
    }

    /// Parses a wire name, with a "did you mean" hint in the error for near misses.
    pub fn parse(s: &str) -> Result<Self, CatalogError> {
        Self::ALL
            .iter()
            .copied()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| CatalogError::InvalidEntityType {
                value: echo(s),
                suggestion: closest(s, Self::ALL, |e| e.as_str()),
            })
    }

    /// The notification actions BioT emits for this entity type, in wire-name order.
    pub const fn actions(self) -> &'static [Action] {
        use Action::*;
        match self {
            EntityType::Caregiver | EntityType::OrganizationUser => &[
                Create,
                Delete,
                IncomingSms,
                Login,
                Logout,
                Update,
                UpdateEnabledState,
            ],
            EntityType::Command => &[Create, Delete, Start, Stop, Update],
            EntityType::Device => &[
                ActivateCertificate,
                Command,
                Create,
                Delete,
                GenerateCertificate,
                RevokeCertificate,
                Update,
            ],
            EntityType::DeviceAlert | EntityType::PatientAlert => &[Clear, Create, Delete, Update],
            EntityType::GenericEntity | EntityType::RegistrationCode => &[Create, Delete, Update],
            EntityType::Organization => &[Create, Delete, Update, UpdateAdmin],
            EntityType::Patient => &[
                Create,
                Delete,
                IncomingSms,
                Login,
                Logout,
                SaveMeasurement,
                SaveMeasurementBulk,
                Update,
                UpdateEnabledState,
            ],
            EntityType::UsageSession => &[
                Create,
                Delete,
                RemotePause,
                RemoteResume,
                RemoteStart,
                RemoteStop,
                Update,
            ],
        }
    }

    /// Whether BioT notifies `action` on this entity type.
    pub fn supports(self, action: Action) -> bool {
        self.actions().contains(&action)
    }
}

impl Action {
    /// Parses an action name in its canonical (`_create`) or bare (`create`) form.
    pub fn parse(s: &str) -> Result<Self, CatalogError> {
        Self::parse_for(s, None)
    }

    /// Parses an action name, naming `entity_type` in the error so it can list the
    /// actions valid for it.
    fn parse_for(s: &str, entity_type: Option<EntityType>) -> Result<Self, CatalogError> {
        let canonical_tail = s.strip_prefix('_').unwrap_or(s);
        Self::ALL
            .iter()
            .copied()
            .find(|a| &a.as_str()[1..] == canonical_tail)
            .ok_or_else(|| CatalogError::InvalidAction {
                value: echo(s),
                entity_type,
                suggestion: if is_permission_verb(s) {
                    None
                } else {
                    let candidates = entity_type.map_or(Self::ALL, EntityType::actions);
                    closest(s, candidates, |a| a.as_str())
                        .or_else(|| closest(&format!("_{s}"), candidates, |a| a.as_str()))
                },
            })
    }
}

fn is_permission_verb(s: &str) -> bool {
    let tail = s.strip_prefix('_').unwrap_or(s);
    PERMISSION_VERBS.iter().any(|v| &v[1..] == tail)
}

/// One of the 60 `(entity type, action)` pairs BioT sends notifications for.
///
/// The fields are private: an `EventType` can only be built through [`EventType::new`]
/// or [`EventType::parse`], so holding one proves the pair is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType {
    entity_type: EntityType,
    action: Action,
}

impl EventType {
    /// Checks that BioT notifies `action` on `entity_type`.
    ///
    /// # Errors
    /// [`CatalogError::InvalidAction`] naming the actions valid for `entity_type`.
    pub fn new(entity_type: EntityType, action: Action) -> Result<Self, CatalogError> {
        if entity_type.supports(action) {
            Ok(EventType {
                entity_type,
                action,
            })
        } else {
            Err(CatalogError::InvalidAction {
                value: action.as_str().to_owned(),
                entity_type: Some(entity_type),
                suggestion: None,
            })
        }
    }

    /// Parses a pair of wire names, as found in `entityTypeName` and `actionName`.
    ///
    /// # Errors
    /// [`CatalogError::InvalidEntityType`] or [`CatalogError::InvalidAction`], with hints.
    pub fn parse(entity_type: &str, action: &str) -> Result<Self, CatalogError> {
        let entity_type = EntityType::parse(entity_type)?;
        let parsed = Action::parse_for(action, Some(entity_type))?;
        // Report the caller's own spelling, not the canonical one.
        Self::new(entity_type, parsed).map_err(|_| CatalogError::InvalidAction {
            value: echo(action),
            entity_type: Some(entity_type),
            suggestion: None,
        })
    }

    /// Every valid pair, grouped by entity type.
    pub fn all() -> impl Iterator<Item = EventType> + Clone {
        EntityType::ALL.iter().flat_map(|&entity_type| {
            entity_type.actions().iter().map(move |&action| EventType {
                entity_type,
                action,
            })
        })
    }

    /// The entity type.
    pub const fn entity_type(self) -> EntityType {
        self.entity_type
    }

    /// The action.
    pub const fn action(self) -> Action {
        self.action
    }

    /// How many valid pairs exist: the length of [`all`](Self::all).
    pub const COUNT: usize = 60;

    /// Position of this pair in [`all`](Self::all), `0..COUNT`: a dense index for tables.
    pub(crate) fn index(self) -> usize {
        // Where each entity type's pairs start in `all()`, computed at compile time.
        const OFFSETS: [usize; 11] = {
            let mut offsets = [0; 11];
            let mut i = 1;
            while i < offsets.len() {
                offsets[i] = offsets[i - 1] + EntityType::ALL[i - 1].actions().len();
                i += 1;
            }
            offsets
        };
        let offset = OFFSETS[self.entity_type.index()];
        let position = self
            .entity_type
            .actions()
            .iter()
            .position(|&a| a == self.action)
            .expect("an EventType holds a valid pair");
        offset + position
    }
}

impl fmt::Display for EventType {
    /// `entity-type/_action`, e.g. `patient/_create`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.entity_type, self.action)
    }
}

impl From<EventType> for (EntityType, Action) {
    fn from(event: EventType) -> Self {
        (event.entity_type, event.action)
    }
}

impl TryFrom<(EntityType, Action)> for EventType {
    type Error = CatalogError;

    fn try_from((entity_type, action): (EntityType, Action)) -> Result<Self, CatalogError> {
        EventType::new(entity_type, action)
    }
}

/// A name that is not in BioT's catalog: the catalog layer's error.
///
/// Answered `400` with code `INVALID_ENTITY_TYPE_NAME` or `INVALID_ACTION_NAME`, and
/// details naming the valid names and, for a near miss, the likely meaning.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// `entityTypeName` is not one of BioT's entity types.
    #[error(
        "`{value}` is not a BioT entity type{}; valid entity types are: {}",
        hint(suggestion),
        join(EntityType::ALL)
    )]
    InvalidEntityType {
        /// The rejected input (truncated when long).
        value: String,
        /// The entity type a near miss most likely meant.
        suggestion: Option<EntityType>,
    },

    /// `actionName` is unknown, or not notified for the entity type.
    #[error("{}", action_message(value, *entity_type, suggestion))]
    InvalidAction {
        /// The rejected input (truncated when long).
        value: String,
        /// The entity type the action was given for, when known.
        entity_type: Option<EntityType>,
        /// The action a near miss most likely meant.
        suggestion: Option<Action>,
    },
}

impl BiotError for CatalogError {
    fn code(&self) -> &'static str {
        match self {
            CatalogError::InvalidEntityType { .. } => "INVALID_ENTITY_TYPE_NAME",
            CatalogError::InvalidAction { .. } => "INVALID_ACTION_NAME",
        }
    }

    fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    fn details(&self) -> Map<String, Value> {
        details_object(match self {
            CatalogError::InvalidEntityType { value, suggestion } => json!({
                "invalidEntityType": value,
                "validEntityTypes": EntityType::ALL,
                "suggestion": suggestion,
            }),
            CatalogError::InvalidAction {
                value,
                entity_type,
                suggestion,
            } => json!({
                "invalidActionName": value,
                "validActionNames": entity_type.map_or(Action::ALL, EntityType::actions),
                "entityTypeName": entity_type,
                "suggestion": suggestion,
            }),
        })
    }
}

fn hint<T: fmt::Display>(suggestion: &Option<T>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn action_message(
    value: &str,
    entity_type: Option<EntityType>,
    suggestion: &Option<Action>,
) -> String {
    match entity_type {
        Some(entity_type) => format!(
            "`{value}` is not a notification action of `{entity_type}`{}; valid actions are: {}",
            hint(suggestion),
            join(entity_type.actions())
        ),
        None => format!(
            "`{value}` is not a BioT notification action{}; valid actions are: {}",
            hint(suggestion),
            join(Action::ALL)
        ),
    }
}

/// The candidate a near miss most likely meant: same letters in another case or
/// punctuation (`usageSession`, `Usage_Session`), or within two edits.
fn closest<T: Copy>(input: &str, candidates: &[T], name: impl Fn(T) -> &'static str) -> Option<T> {
    // Inputs far longer than any name cannot be near misses; skip the quadratic work.
    if input.is_empty() || input.len() > 64 {
        return None;
    }
    let folded = fold(input);
    if let Some(&same) = candidates.iter().find(|&&c| fold(name(c)) == folded) {
        return Some(same);
    }
    candidates
        .iter()
        .map(|&c| (edit_distance(&folded, &fold(name(c))), c))
        .filter(|&(distance, _)| distance <= 2)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, c)| c)
}

/// Lower-cases and drops separators, so `usageSession`, `usage_session` and
/// `USAGE-SESSION` all fold to `usagesession`.
fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Levenshtein distance over chars; inputs are short wire names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_dense_positions_in_all() {
        for (i, e) in EntityType::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
    }

    #[test]
    fn event_type_indexes_are_dense_positions_in_all() {
        let all: Vec<EventType> = EventType::all().collect();
        assert_eq!(all.len(), EventType::COUNT);
        for (i, event) in all.iter().enumerate() {
            assert_eq!(event.index(), i);
        }
    }

    #[test]
    fn name_errors_are_400s_whose_details_list_the_valid_names() {
        let err = EntityType::parse("usageSession").unwrap_err();
        assert_eq!(err.code(), "INVALID_ENTITY_TYPE_NAME");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(err.details()["invalidEntityType"], "usageSession");
        assert_eq!(err.details()["suggestion"], "usage-session");
        assert_eq!(
            err.details()["validEntityTypes"].as_array().unwrap().len(),
            11
        );

        let err = EventType::parse("device", "_read").unwrap_err();
        assert_eq!(err.code(), "INVALID_ACTION_NAME");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let details = err.details();
        assert_eq!(details["invalidActionName"], "_read");
        assert_eq!(details["entityTypeName"], "device");
        assert_eq!(details["validActionNames"].as_array().unwrap().len(), 7);
        // No near miss: no `suggestion` member at all, rather than a `null`.
        assert!(!details.contains_key("suggestion"));
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("patient", "patient"), 0);
        assert_eq!(edit_distance("patinet", "patient"), 2);
        assert_eq!(edit_distance("devce", "device"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
