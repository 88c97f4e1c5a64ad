//! The wire names of what a search filters and sorts on, each enum generated from one table.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::parse::{invalid, join};
use super::InvalidSearchRequest;
use crate::wire_error::echo;

/// Generates a fieldless enum whose wire names come from one table, with `ALL`,
/// `as_str`, `parse` and the Display/FromStr/serde impls all reading that table.
macro_rules! search_name {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal, $plural:literal) {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* #[doc = concat!("`", $wire, "`")] $variant, )+
        }

        impl $name {
            /// Every variant, in wire-name table order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )+ ];

            /// The wire name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $wire, )+
                }
            }

            /// Parses a wire name (exact, case-sensitive).
            ///
            /// # Errors
            /// [`InvalidSearchRequest`] naming the input and the valid names.
            pub fn parse(s: &str) -> Result<Self, InvalidSearchRequest> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| {
                        invalid(format!(
                            concat!("`{}` is not ", $what, "; ", $plural, " are: {}"),
                            echo(s),
                            join(Self::ALL.iter().map(|v| v.as_str())),
                        ))
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = InvalidSearchRequest;

            fn from_str(s: &str) -> Result<Self, InvalidSearchRequest> {
                Self::parse(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidSearchRequest;

            fn try_from(s: &str) -> Result<Self, InvalidSearchRequest> {
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

search_name! {
    /// A subscription field a search can filter on (a key of `filter`).
    #[non_exhaustive]
    pub enum SearchField ("a filterable field", "filterable fields") {
        Id => "id",
        EntityTypeName => "entityTypeName",
        ActionName => "actionName",
        Endpoint => "endpoint",
        TemplateName => "templateName",
    }
}

search_name! {
    /// A subscription field a search can sort by (`sort[].prop`).
    #[non_exhaustive]
    pub enum SortField ("a sortable property", "sortable properties") {
        EntityTypeName => "entityTypeName",
        ActionName => "actionName",
    }
}

search_name! {
    /// A sort direction (`sort[].order`); BioT's default is [`Desc`](Direction::Desc).
    #[derive(Default)]
    pub enum Direction ("a sort direction", "sort directions") {
        Asc => "ASC",
        #[default]
        Desc => "DESC",
    }
}
