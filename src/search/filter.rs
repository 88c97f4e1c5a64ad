//! The conditions on one field ([`FilterCondition`]) and one sort key ([`SortOrder`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::parse::{parse_condition, parse_sort_order};
use super::InvalidSearchRequest;
use super::{Direction, SortField};

/// The conditions on one field (BioT's `FilterV2`, restricted to what strings support).
///
/// Every condition given must hold (AND). Values compare the way the field is stored:
///
/// | field | `eq` / `not` / `in` / `notIn` compare |
/// |---|---|
/// | `id` | as UUIDs, in any case; a value that is not a UUID equals nothing |
/// | `entityTypeName`, `actionName` | canonical names, so `create` equals `_create`; an unknown name equals nothing |
/// | `endpoint` | the normalised URL when the value parses as one, else the raw string |
/// | `templateName` | exactly; a subscription without a template has a null `templateName` |
///
/// "Equals nothing" makes `eq`/`in` match no subscription and `not`/`notIn` match every
/// one. A null field equals no value, so `not`/`notIn` match it (SQL's `IS DISTINCT FROM`)
/// and `eq`/`in`/`like` do not. `like` is a case-insensitive, literal substring test
/// (no wildcards) on the field's wire form. Only `templateName` can be null.
///
/// ```
/// use biot_notifications::search::FilterCondition;
///
/// // Conditions combine by setting more than one field.
/// let mut not_internal = FilterCondition::like("example.com");
/// not_internal.not_in = Some(vec!["https://internal.example.com/hook".into()]);
/// assert_eq!(
///     serde_json::to_value(&not_internal).unwrap(),
///     serde_json::json!({"notIn": ["https://internal.example.com/hook"], "like": "example.com"}),
/// );
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "Value")]
#[non_exhaustive]
pub struct FilterCondition {
    /// The field equals this value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eq: Option<String>,
    /// The field does not equal this value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not: Option<String>,
    /// The field equals one of these values.
    #[serde(rename = "in", skip_serializing_if = "Option::is_none")]
    pub r#in: Option<Vec<String>>,
    /// The field equals none of these values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_in: Option<Vec<String>>,
    /// The field contains this text, ignoring case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub like: Option<String>,
    /// `true`: the field is null; `false`: it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_null: Option<bool>,
    /// `true`: the field is not null; `false`: it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_not_null: Option<bool>,
}

impl FilterCondition {
    /// The field equals `value`.
    pub fn eq(value: impl Into<String>) -> Self {
        FilterCondition {
            eq: Some(value.into()),
            ..Self::default()
        }
    }

    /// The field does not equal `value`.
    pub fn not(value: impl Into<String>) -> Self {
        FilterCondition {
            not: Some(value.into()),
            ..Self::default()
        }
    }

    /// The field equals one of `values` (BioT's `in`).
    pub fn is_in<I: IntoIterator<Item = S>, S: Into<String>>(values: I) -> Self {
        FilterCondition {
            r#in: Some(values.into_iter().map(Into::into).collect()),
            ..Self::default()
        }
    }

    /// The field equals none of `values` (BioT's `notIn`).
    pub fn not_in<I: IntoIterator<Item = S>, S: Into<String>>(values: I) -> Self {
        FilterCondition {
            not_in: Some(values.into_iter().map(Into::into).collect()),
            ..Self::default()
        }
    }

    /// The field contains `text`, ignoring case (BioT's `like`).
    pub fn like(text: impl Into<String>) -> Self {
        FilterCondition {
            like: Some(text.into()),
            ..Self::default()
        }
    }

    /// The field is null (BioT's `isNull: true`).
    pub fn is_null() -> Self {
        FilterCondition {
            is_null: Some(true),
            ..Self::default()
        }
    }

    /// The field is not null (BioT's `isNotNull: true`).
    pub fn is_not_null() -> Self {
        FilterCondition {
            is_not_null: Some(true),
            ..Self::default()
        }
    }
}

impl TryFrom<Value> for FilterCondition {
    type Error = InvalidSearchRequest;

    /// Validates a JSON condition object, as inside a search request's `filter`.
    fn try_from(value: Value) -> Result<Self, InvalidSearchRequest> {
        parse_condition(None, value)
    }
}

/// One sort key (BioT's `Order`): a property and a direction.
///
/// ```
/// use biot_notifications::search::{Direction, SortField, SortOrder};
///
/// let order: SortOrder = serde_json::from_str(r#"{"prop": "actionName"}"#).unwrap();
/// assert_eq!(order, SortOrder::new(SortField::ActionName, Direction::Desc));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Value")]
#[non_exhaustive]
pub struct SortOrder {
    /// The property sorted by.
    pub prop: SortField,
    /// The direction; BioT's default is descending.
    pub order: Direction,
}

impl SortOrder {
    /// A sort key.
    pub const fn new(prop: SortField, order: Direction) -> Self {
        SortOrder { prop, order }
    }

    /// An ascending sort key.
    pub const fn asc(prop: SortField) -> Self {
        Self::new(prop, Direction::Asc)
    }

    /// A descending sort key.
    pub const fn desc(prop: SortField) -> Self {
        Self::new(prop, Direction::Desc)
    }
}

impl TryFrom<Value> for SortOrder {
    type Error = InvalidSearchRequest;

    /// Validates a JSON `{"prop", "order"}` object, as inside a search request's `sort`.
    fn try_from(value: Value) -> Result<Self, InvalidSearchRequest> {
        parse_sort_order("the sort order", value)
    }
}
