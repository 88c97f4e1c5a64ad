//! Parsing: one path from JSON values, with errors that say what is allowed.

use std::collections::BTreeMap;

use serde_json::Value;

use super::InvalidSearchRequest;
use super::{
    Direction, FilterCondition, SearchField, SearchRequest, SortField, SortOrder, MAX_SEARCH_LIMIT,
};
use crate::wire_error::echo;

/// The attributes of a search request, for error messages.
const REQUEST_ATTRIBUTES: &[&str] = &["filter", "sort", "freeTextSearch", "limit", "page"];

/// The [`FilterCondition`] operators, for error messages.
const SUPPORTED_OPERATORS: &[&str] = &["eq", "not", "in", "notIn", "like", "isNull", "isNotNull"];

/// BioT's `FilterV2` operators that have no meaning on subscription fields (all strings).
const UNSUPPORTED_OPERATORS: &[&str] = &["lt", "lte", "gt", "gte", "from", "to", "filter"];

/// BioT's logical filter keys; subscriptions combine fields with AND only.
const LOGICAL_OPERATORS: &[&str] = &["$AND", "$OR", "$NOT"];

pub(super) fn invalid(reason: impl Into<String>) -> InvalidSearchRequest {
    InvalidSearchRequest::new(reason)
}

pub(super) fn join<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names.into_iter().collect::<Vec<_>>().join(", ")
}

/// The JSON type of `value`, for "must be X, not Y" messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn parse_request(value: Value) -> Result<SearchRequest, InvalidSearchRequest> {
    let Value::Object(attributes) = value else {
        return Err(invalid(format!(
            "it must be a JSON object, not {}",
            kind(&value)
        )));
    };
    let mut request = SearchRequest::new();
    for (name, value) in attributes {
        if !REQUEST_ATTRIBUTES.contains(&name.as_str()) {
            return Err(invalid(format!(
                "`{}` is not a search request attribute; the attributes are: {}",
                echo(&name),
                join(REQUEST_ATTRIBUTES.iter().copied())
            )));
        }
        // JSON clients often send `null` for "not given".
        if value.is_null() {
            continue;
        }
        match name.as_str() {
            "filter" => request.filter = parse_filter(value)?,
            "sort" => request.sort = parse_sort(value)?,
            "freeTextSearch" => match value {
                Value::String(text) => request.free_text_search = Some(text),
                other => {
                    return Err(invalid(format!(
                        "`freeTextSearch` must be a string, not {}",
                        kind(&other)
                    )))
                }
            },
            "limit" => request.limit = parse_integer("limit", &value, 1, MAX_SEARCH_LIMIT)?,
            _ => request.page = parse_integer("page", &value, 0, u32::MAX)?,
        }
    }
    Ok(request.recompile())
}

fn parse_integer(
    name: &str,
    value: &Value,
    min: u32,
    max: u32,
) -> Result<u32, InvalidSearchRequest> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            let given = match value {
                Value::Number(n) => echo(&n.to_string()),
                other => kind(other).to_owned(),
            };
            invalid(format!(
                "`{name}` must be an integer from {min} to {max}, not {given}"
            ))
        })
}

fn parse_filter(
    value: Value,
) -> Result<BTreeMap<SearchField, FilterCondition>, InvalidSearchRequest> {
    let Value::Object(fields) = value else {
        return Err(invalid(format!(
            "`filter` must be an object of fields and their conditions, not {}",
            kind(&value)
        )));
    };
    let mut filter = BTreeMap::new();
    for (name, condition) in fields {
        if is_logical_operator(&name) {
            return Err(logical_operator_error(&name));
        }
        let field = SearchField::parse(&name)?;
        filter.insert(field, parse_condition(Some(field), condition)?);
    }
    Ok(filter)
}

fn is_logical_operator(name: &str) -> bool {
    LOGICAL_OPERATORS
        .iter()
        .any(|op| op.eq_ignore_ascii_case(name))
}

fn logical_operator_error(name: &str) -> InvalidSearchRequest {
    invalid(format!(
        "the logical filter `{}` is not supported for subscriptions; conditions are always combined with AND",
        echo(name)
    ))
}

/// Parses a `FilterV2` object; `field` (when known) is named in errors.
pub(super) fn parse_condition(
    field: Option<SearchField>,
    value: Value,
) -> Result<FilterCondition, InvalidSearchRequest> {
    let on = field.map(|f| format!(" on `{f}`")).unwrap_or_default();
    let Value::Object(operators) = value else {
        return Err(invalid(format!(
            "the filter{on} must be an object of conditions ({}), not {}",
            join(SUPPORTED_OPERATORS.iter().copied()),
            kind(&value)
        )));
    };
    let mut condition = FilterCondition::default();
    for (operator, operand) in operators {
        let operand = Operand {
            operator: &operator,
            on: &on,
            value: operand,
        };
        match operator.as_str() {
            "eq" => condition.eq = operand.string()?,
            "not" => condition.not = operand.string()?,
            "in" => condition.r#in = operand.strings()?,
            "notIn" => condition.not_in = operand.strings()?,
            "like" => condition.like = operand.string()?,
            "isNull" => condition.is_null = operand.boolean()?,
            "isNotNull" => condition.is_not_null = operand.boolean()?,
            other if UNSUPPORTED_OPERATORS.contains(&other) => {
                return Err(invalid(format!(
                    "the operator `{other}`{on} is not supported for subscriptions, whose fields are strings; \
                     supported operators are: {}",
                    join(SUPPORTED_OPERATORS.iter().copied())
                )))
            }
            other if is_logical_operator(other) => return Err(logical_operator_error(other)),
            other => {
                return Err(invalid(format!(
                    "`{}`{on} is not a filter operator; supported operators are: {}",
                    echo(other),
                    join(SUPPORTED_OPERATORS.iter().copied())
                )))
            }
        }
    }
    Ok(condition)
}

/// One operator's operand, with what error messages need to name it.
struct Operand<'a> {
    operator: &'a str,
    on: &'a str,
    value: Value,
}

impl Operand<'_> {
    fn string(self) -> Result<Option<String>, InvalidSearchRequest> {
        match self.value {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            other => Err(invalid(format!(
                "`{}`{} must be a string, not {} (every subscription field is a string)",
                self.operator,
                self.on,
                kind(&other)
            ))),
        }
    }

    fn strings(self) -> Result<Option<Vec<String>>, InvalidSearchRequest> {
        match self.value {
            Value::Null => Ok(None),
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s),
                    other => Err(invalid(format!(
                        "`{}`{} must be an array of strings, but element {i} is {}",
                        self.operator,
                        self.on,
                        kind(&other)
                    ))),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            other => Err(invalid(format!(
                "`{}`{} must be an array of strings, not {}",
                self.operator,
                self.on,
                kind(&other)
            ))),
        }
    }

    fn boolean(self) -> Result<Option<bool>, InvalidSearchRequest> {
        match self.value {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(b)),
            other => Err(invalid(format!(
                "`{}`{} must be a boolean, not {}",
                self.operator,
                self.on,
                kind(&other)
            ))),
        }
    }
}

fn parse_sort(value: Value) -> Result<Vec<SortOrder>, InvalidSearchRequest> {
    let Value::Array(items) = value else {
        return Err(invalid(format!(
            "`sort` must be an array of {{\"prop\", \"order\"}} objects, not {}",
            kind(&value)
        )));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| parse_sort_order(&format!("`sort[{i}]`"), item))
        .collect()
}

/// Parses an `Order` object; `what` names it in errors.
pub(super) fn parse_sort_order(
    what: &str,
    value: Value,
) -> Result<SortOrder, InvalidSearchRequest> {
    let Value::Object(attributes) = value else {
        return Err(invalid(format!(
            "{what} must be an object with `prop` and `order`, not {}",
            kind(&value)
        )));
    };
    let mut prop = None;
    let mut order = Direction::default();
    for (name, value) in attributes {
        match (name.as_str(), value) {
            ("prop", Value::String(s)) => prop = Some(SortField::parse(&s)?),
            ("order", Value::String(s)) => order = Direction::parse(&s)?,
            ("order", Value::Null) => {}
            ("prop" | "order", other) => {
                return Err(invalid(format!(
                    "the `{name}` of {what} must be a string, not {}",
                    kind(&other)
                )))
            }
            (other, _) => {
                return Err(invalid(format!(
                    "`{}` is not an attribute of {what}; its attributes are: prop, order",
                    echo(other)
                )))
            }
        }
    }
    let prop = prop.ok_or_else(|| invalid(format!("the `prop` of {what} is mandatory")))?;
    Ok(SortOrder { prop, order })
}
