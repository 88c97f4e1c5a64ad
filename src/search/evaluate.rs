//! Evaluation: filter values parsed once per request, cheap tests per subscription.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use uuid::Uuid;

use super::{FilterCondition, SearchField};
use crate::catalog::{Action, EntityType};
use crate::endpoint::Endpoint;
use crate::subscription::Subscription;

/// The filter and free text of a request, parsed for testing subscriptions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Compiled {
    /// Every test a subscription must pass.
    tests: Vec<Test>,
    /// Some condition can match nothing (e.g. `eq` with an unknown action), so no
    /// subscription matches.
    pub(super) unsatisfiable: bool,
    /// Lower-cased free-text terms; one must appear in some field. Empty: no constraint.
    pub(super) terms: Vec<Box<str>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Test {
    field: SearchField,
    kind: TestKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum TestKind {
    Equals(Key),
    NotEquals(Key),
    /// Sorted and deduplicated, for binary search.
    In(Vec<Key>),
    /// Sorted and deduplicated, for binary search.
    NotIn(Vec<Key>),
    /// Lower-cased.
    Contains(Box<str>),
    Null,
    NotNull,
}

/// A filter value in the canonical form of its field.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Id(Uuid),
    Text(Box<str>),
}

/// A subscription's field value, comparable with a [`Key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum FieldValue<'a> {
    Id(Uuid),
    Text(&'a str),
}

impl Key {
    /// `value` in the canonical form of `field`; `None` when it cannot equal any value
    /// of the field (not a UUID, not an entity type, not an action).
    fn parse(field: SearchField, value: &str) -> Option<Key> {
        match field {
            SearchField::Id => Uuid::parse_str(value).ok().map(Key::Id),
            SearchField::EntityTypeName => EntityType::parse(value)
                .ok()
                .map(|e| Key::Text(e.as_str().into())),
            SearchField::ActionName => Action::parse(value)
                .ok()
                .map(|a| Key::Text(a.as_str().into())),
            SearchField::Endpoint => Some(Key::Text(match Endpoint::parse(value) {
                Ok(endpoint) => endpoint.as_str().into(),
                Err(_) => value.into(),
            })),
            SearchField::TemplateName => Some(Key::Text(value.into())),
        }
    }

    fn as_value(&self) -> FieldValue<'_> {
        match self {
            Key::Id(id) => FieldValue::Id(*id),
            Key::Text(text) => FieldValue::Text(text),
        }
    }
}

/// The canonical value of `field` in `subscription`; `None` for null.
fn field_value(subscription: &Subscription, field: SearchField) -> Option<FieldValue<'_>> {
    match field {
        SearchField::Id => Some(FieldValue::Id(subscription.id())),
        other => field_text(subscription, other).map(FieldValue::Text),
    }
}

/// The wire text of a string-typed `field` (all but `id`); `None` for null.
fn field_text(subscription: &Subscription, field: SearchField) -> Option<&str> {
    match field {
        SearchField::EntityTypeName => Some(subscription.event_type().entity_type().as_str()),
        SearchField::ActionName => Some(subscription.event_type().action().as_str()),
        SearchField::Endpoint => Some(subscription.endpoint().as_str()),
        SearchField::TemplateName => subscription.template_name().map(|t| t.as_str()),
        SearchField::Id => None,
    }
}

fn sorted_keys(field: SearchField, values: &[String]) -> Vec<Key> {
    let mut keys: Vec<Key> = values.iter().filter_map(|v| Key::parse(field, v)).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

impl Compiled {
    pub(super) fn new(
        filter: &BTreeMap<SearchField, FilterCondition>,
        free_text: Option<&str>,
    ) -> Self {
        let mut tests = Vec::new();
        let mut unsatisfiable = false;
        for (&field, condition) in filter {
            let mut push = |kind| tests.push(Test { field, kind });
            if let Some(value) = &condition.eq {
                match Key::parse(field, value) {
                    Some(key) => push(TestKind::Equals(key)),
                    None => unsatisfiable = true,
                }
            }
            // A value that equals nothing is not equal to everything: no test.
            if let Some(key) = condition.not.as_deref().and_then(|v| Key::parse(field, v)) {
                push(TestKind::NotEquals(key));
            }
            if let Some(values) = &condition.r#in {
                let keys = sorted_keys(field, values);
                if keys.is_empty() {
                    unsatisfiable = true;
                } else {
                    push(TestKind::In(keys));
                }
            }
            if let Some(values) = &condition.not_in {
                let keys = sorted_keys(field, values);
                if !keys.is_empty() {
                    push(TestKind::NotIn(keys));
                }
            }
            if let Some(text) = &condition.like {
                push(TestKind::Contains(text.to_lowercase().into()));
            }
            for wants_null in [condition.is_null, condition.is_not_null.map(|b| !b)]
                .into_iter()
                .flatten()
            {
                push(if wants_null {
                    TestKind::Null
                } else {
                    TestKind::NotNull
                });
            }
        }
        let mut terms: Vec<Box<str>> = free_text
            .unwrap_or_default()
            .split_whitespace()
            .map(|term| term.to_lowercase().into())
            .collect();
        terms.sort_unstable();
        terms.dedup();
        Compiled {
            tests,
            unsatisfiable,
            terms,
        }
    }

    pub(super) fn matches(&self, subscription: &Subscription) -> bool {
        !self.unsatisfiable
            && self.tests.iter().all(|test| test.passes(subscription))
            && self.free_text_matches(subscription)
    }

    fn free_text_matches(&self, subscription: &Subscription) -> bool {
        if self.terms.is_empty() {
            return true;
        }
        let mut buffer = Uuid::encode_buffer();
        let id: &str = subscription.id().hyphenated().encode_lower(&mut buffer);
        let texts = [
            Some(id),
            field_text(subscription, SearchField::EntityTypeName),
            field_text(subscription, SearchField::ActionName),
            field_text(subscription, SearchField::Endpoint),
            field_text(subscription, SearchField::TemplateName),
        ];
        self.terms.iter().any(|term| {
            texts
                .iter()
                .flatten()
                .any(|text| contains_folded(text, term))
        })
    }
}

impl Test {
    fn passes(&self, subscription: &Subscription) -> bool {
        let in_keys = |keys: &[Key]| {
            field_value(subscription, self.field).is_some_and(|value| {
                keys.binary_search_by(|key| key.as_value().cmp(&value))
                    .is_ok()
            })
        };
        match &self.kind {
            TestKind::Equals(key) => field_value(subscription, self.field) == Some(key.as_value()),
            TestKind::NotEquals(key) => {
                field_value(subscription, self.field) != Some(key.as_value())
            }
            TestKind::In(keys) => in_keys(keys),
            TestKind::NotIn(keys) => !in_keys(keys),
            TestKind::Contains(needle) => match self.field {
                SearchField::Id => {
                    let mut buffer = Uuid::encode_buffer();
                    contains_folded(
                        subscription.id().hyphenated().encode_lower(&mut buffer),
                        needle,
                    )
                }
                field => field_text(subscription, field)
                    .is_some_and(|text| contains_folded(text, needle)),
            },
            TestKind::Null => field_value(subscription, self.field).is_none(),
            TestKind::NotNull => field_value(subscription, self.field).is_some(),
        }
    }
}

/// Whether `haystack`, lower-cased, contains `needle` (already lower-cased).
fn contains_folded(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if haystack.is_ascii() {
        // ASCII lower-cases to ASCII, so a non-ASCII needle cannot be in it.
        needle.is_ascii()
            && haystack
                .as_bytes()
                .windows(needle.len())
                .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
    } else {
        haystack.to_lowercase().contains(needle)
    }
}

/// Puts the items of ranks `offset..offset + limit` under `compare` in order and returns
/// them, without sorting the rest.
pub(super) fn select_page<T>(
    items: &mut [T],
    offset: u64,
    limit: u32,
    mut compare: impl FnMut(&T, &T) -> Ordering,
) -> &[T] {
    let len = items.len();
    let start = match usize::try_from(offset) {
        Ok(start) if start < len && limit > 0 => start,
        _ => return &[],
    };
    let end = start
        .saturating_add(usize::try_from(limit).unwrap_or(usize::MAX))
        .min(len);
    if end < len {
        // The `end` first items by rank, in some order.
        items.select_nth_unstable_by(end, &mut compare);
    }
    let first = &mut items[..end];
    if start > 0 {
        first.select_nth_unstable_by(start, &mut compare);
    }
    let window = &mut first[start..];
    window.sort_unstable_by(&mut compare);
    window
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::SearchRequest;

    #[test]
    fn select_page_agrees_with_a_full_sort_on_every_page() {
        // A deterministic shuffle with duplicates.
        let items: Vec<u32> = (0..200u32).map(|i| (i * 7919) % 97).collect();
        let mut sorted = items.clone();
        sorted.sort_unstable();
        for limit in [1u32, 3, 10, 97, 200, 1000] {
            for page in 0..=(200 / limit + 1) {
                let offset = u64::from(page) * u64::from(limit);
                let mut scratch = items.clone();
                let got = select_page(&mut scratch, offset, limit, u32::cmp).to_vec();
                let start = (offset as usize).min(sorted.len());
                let end = (start + limit as usize).min(sorted.len());
                assert_eq!(got, sorted[start..end], "limit {limit}, page {page}");
            }
        }
    }

    #[test]
    fn select_page_past_the_end_or_at_huge_offsets_is_empty() {
        let mut items = vec![3, 1, 2];
        assert!(select_page(&mut items, 3, 10, i32::cmp).is_empty());
        assert!(select_page(&mut items, u64::MAX, u32::MAX, i32::cmp).is_empty());
        assert!(select_page(&mut items, 0, 0, i32::cmp).is_empty());
        assert_eq!(select_page(&mut items, 0, u32::MAX, i32::cmp), &[1, 2, 3]);
    }

    #[test]
    fn contains_folded_ignores_case_including_beyond_ascii() {
        assert!(contains_folded(
            "https://Example.com/Hook",
            "example.com/hook"
        ));
        assert!(contains_folded("_incomingSms", "sms"));
        assert!(!contains_folded("abc", "abcd"));
        assert!(contains_folded("Ünïcode", "ünï"));
        assert!(!contains_folded("unicode", "ü"));
        assert!(contains_folded("anything", ""));
    }

    #[test]
    fn values_that_equal_nothing_make_eq_unsatisfiable_and_not_vacuous() {
        let eq =
            SearchRequest::new().with_filter(SearchField::ActionName, FilterCondition::eq("_read"));
        assert!(eq.compiled.unsatisfiable);
        let not =
            SearchRequest::new().with_filter(SearchField::Id, FilterCondition::not("not-a-uuid"));
        assert!(!not.compiled.unsatisfiable);
        assert!(not.compiled.tests.is_empty());
    }

    #[test]
    fn parsed_and_built_requests_compile_the_same() {
        let built = SearchRequest::new()
            .with_filter(
                SearchField::ActionName,
                FilterCondition::is_in(["create", "_update"]),
            )
            .with_free_text_search("Foo  bar foo");
        let parsed = SearchRequest::from_json(
            br#"{"filter": {"actionName": {"in": ["create", "_update"]}}, "freeTextSearch": "Foo  bar foo"}"#,
        )
        .unwrap();
        assert_eq!(parsed, built);
        assert_eq!(parsed.free_text_terms().collect::<Vec<_>>(), ["bar", "foo"]);
    }
}
