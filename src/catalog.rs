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
//! # Ok::<(), biot_notifications::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{echo, Error};

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
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                Self::parse(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;

            fn try_from(s: &str) -> Result<Self, Error> {
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
    pub fn parse(s: &str) -> Result<Self, Error> {
        Self::ALL
            .iter()
            .copied()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| Error::InvalidEntityType {
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
    pub fn parse(s: &str) -> Result<Self, Error> {
        Self::parse_for(s, None)
    }

    /// Parses an action name, naming `entity_type` in the error so it can list the
    /// actions valid for it.
    fn parse_for(s: &str, entity_type: Option<EntityType>) -> Result<Self, Error> {
        let canonical_tail = s.strip_prefix('_').unwrap_or(s);
        Self::ALL
            .iter()
            .copied()
            .find(|a| &a.as_str()[1..] == canonical_tail)
            .ok_or_else(|| Error::InvalidAction {
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
    /// [`Error::InvalidAction`] naming the actions valid for `entity_type`.
    pub fn new(entity_type: EntityType, action: Action) -> Result<Self, Error> {
        if entity_type.supports(action) {
            Ok(EventType {
                entity_type,
                action,
            })
        } else {
            Err(Error::InvalidAction {
                value: action.as_str().to_owned(),
                entity_type: Some(entity_type),
                suggestion: None,
            })
        }
    }

    /// Parses a pair of wire names, as found in `entityTypeName` and `actionName`.
    ///
    /// # Errors
    /// [`Error::InvalidEntityType`] or [`Error::InvalidAction`], with hints.
    pub fn parse(entity_type: &str, action: &str) -> Result<Self, Error> {
        let entity_type = EntityType::parse(entity_type)?;
        let parsed = Action::parse_for(action, Some(entity_type))?;
        // Report the caller's own spelling, not the canonical one.
        Self::new(entity_type, parsed).map_err(|_| Error::InvalidAction {
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
    type Error = Error;

    fn try_from((entity_type, action): (EntityType, Action)) -> Result<Self, Error> {
        EventType::new(entity_type, action)
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
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("patient", "patient"), 0);
        assert_eq!(edit_distance("patinet", "patient"), 2);
        assert_eq!(edit_distance("devce", "device"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
