//! BioT's "search v2" for subscriptions: the request, the response, and an in-memory
//! evaluator any store may reuse.
//!
//! ```text
//! ?searchRequest=<url-encoded JSON> --SearchRequest::from_query--> SearchRequest
//!     --SubscriptionStore::search (or SearchRequest::evaluate)--> Page<Subscription>
//!     --SearchResponse::new--> {"data": [...], "metadata": {...}}
//! ```
//!
//! A [`SearchRequest`] filters on the subscription fields ([`SearchField`]) with the
//! conditions of a [`FilterCondition`] (`eq`, `not`, `in`, `notIn`, `like`, `isNull`,
//! `isNotNull`, all combined with AND), sorts by [`SortField`]s, narrows by free text
//! and pages. Every request is validated when it is parsed, so a store is only ever
//! handed a well-formed one; BioT's other operators (`gt`, `from`, `$OR`, ...) mean
//! nothing for subscriptions and are rejected rather than ignored.
//!
//! ```
//! use biot_notifications::search::{SearchRequest, SearchResponse};
//! use biot_notifications::{SubscribeRequest, Subscription};
//!
//! let subscriptions = [
//!     SubscribeRequest::new("patient", "_create", "https://plugin.example.com/patients"),
//!     SubscribeRequest::new("patient", "_delete", "https://plugin.example.com/patients"),
//!     SubscribeRequest::new("device", "_create", "https://other.example.com/devices"),
//! ]
//! .into_iter()
//! .map(|request| Ok(Subscription::new(request.key()?)))
//! .collect::<Result<Vec<_>, biot_notifications::Error>>()?;
//!
//! // GET /dispatcher/v1/hooks/notifications?searchRequest=...
//! // {"filter": {"actionName": {"eq": "create"}}, "sort": [{"prop": "entityTypeName", "order": "ASC"}]}
//! let query = "searchRequest=%7B%22filter%22%3A%7B%22actionName%22%3A%7B%22eq%22%3A%22create%22%7D%7D%2C\
//!              %22sort%22%3A%5B%7B%22prop%22%3A%22entityTypeName%22%2C%22order%22%3A%22ASC%22%7D%5D%7D";
//! let request = SearchRequest::from_query(Some(query))?;
//!
//! // A store without a query language of its own evaluates in memory.
//! let page = request.evaluate(&subscriptions);
//! assert_eq!(page.total_results, 2);
//! assert_eq!(page.data[0].event_type().to_string(), "device/_create");
//! assert_eq!(page.data[1].event_type().to_string(), "patient/_create");
//!
//! let body = serde_json::to_value(SearchResponse::new(&request, page)).unwrap();
//! assert_eq!(body["metadata"]["page"]["totalResults"], 2);
//! assert_eq!(body["metadata"]["sort"][0]["order"], "ASC");
//!
//! // Mistakes are `INVALID_SEARCH_REQUEST`, saying what is allowed.
//! let err = SearchRequest::from_json(br#"{"sort": [{"prop": "endpoint"}]}"#).unwrap_err();
//! assert_eq!(err.code(), "INVALID_SEARCH_REQUEST");
//! assert!(err.to_string().contains("entityTypeName, actionName"));
//! # Ok::<(), biot_notifications::Error>(())
//! ```

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

use crate::catalog::{Action, EntityType};
use crate::endpoint::Endpoint;
use crate::error::{echo, Error};
use crate::subscription::{malformed_reason, Subscription};

/// The largest page a search may ask for.
pub const MAX_SEARCH_LIMIT: u32 = 1000;

/// The page size when a search does not say (BioT's default).
pub const DEFAULT_SEARCH_LIMIT: u32 = 100;

/// The query parameter that carries the url-encoded JSON search request.
pub const SEARCH_REQUEST_PARAMETER: &str = "searchRequest";

/// The attributes of a search request, for error messages.
const REQUEST_ATTRIBUTES: &[&str] = &["filter", "sort", "freeTextSearch", "limit", "page"];

/// The [`FilterCondition`] operators, for error messages.
const SUPPORTED_OPERATORS: &[&str] = &["eq", "not", "in", "notIn", "like", "isNull", "isNotNull"];

/// BioT's `FilterV2` operators that have no meaning on subscription fields (all strings).
const UNSUPPORTED_OPERATORS: &[&str] = &["lt", "lte", "gt", "gte", "from", "to", "filter"];

/// BioT's logical filter keys; subscriptions combine fields with AND only.
const LOGICAL_OPERATORS: &[&str] = &["$AND", "$OR", "$NOT"];

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
            /// [`Error::InvalidSearchRequest`] naming the input and the valid names.
            pub fn parse(s: &str) -> Result<Self, Error> {
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
/// let not_internal = FilterCondition {
///     not_in: Some(vec!["https://internal.example.com/hook".into()]),
///     ..FilterCondition::like("example.com")
/// };
/// assert_eq!(
///     serde_json::to_value(&not_internal).unwrap(),
///     serde_json::json!({"notIn": ["https://internal.example.com/hook"], "like": "example.com"}),
/// );
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "Value")]
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
    type Error = Error;

    /// Validates a JSON condition object, as inside a search request's `filter`.
    fn try_from(value: Value) -> Result<Self, Error> {
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
    type Error = Error;

    /// Validates a JSON `{"prop", "order"}` object, as inside a search request's `sort`.
    fn try_from(value: Value) -> Result<Self, Error> {
        parse_sort_order("the sort order", value)
    }
}

/// A validated search for subscriptions (BioT's `SearchRequestV2`).
///
/// Parse one from the wire with [`from_query`](Self::from_query) or
/// [`from_json`](Self::from_json) (serde goes through the same validation), or build
/// one with the `with_*` methods. The [`Default`] request matches everything, newest
/// first, page 0 of [`DEFAULT_SEARCH_LIMIT`].
///
/// Filter values are parsed once, when the request is built, so
/// [`matches`](Self::matches) costs little per subscription; [`evaluate`](Self::evaluate)
/// answers the whole search over any collection of subscriptions.
///
/// ```
/// use biot_notifications::search::{FilterCondition, SearchField, SearchRequest, SortField, SortOrder};
///
/// let request = SearchRequest::new()
///     .with_filter(SearchField::EntityTypeName, FilterCondition::eq("patient"))
///     .with_sort(SortOrder::asc(SortField::ActionName))
///     .with_limit(10)
///     .with_page(2);
/// assert_eq!(request.offset(), 20);
///
/// // The same request, as a client puts it on the wire.
/// assert_eq!(SearchRequest::from_query(Some(&request.to_query()))?, request);
/// # Ok::<(), biot_notifications::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub struct SearchRequest {
    filter: BTreeMap<SearchField, FilterCondition>,
    sort: Vec<SortOrder>,
    free_text_search: Option<String>,
    limit: u32,
    page: u32,
    /// Derived from `filter` and `free_text_search`, so equal requests compile equally.
    compiled: Compiled,
}

impl SearchRequest {
    /// The request that matches everything: newest first, page 0 of [`DEFAULT_SEARCH_LIMIT`].
    pub fn new() -> Self {
        SearchRequest {
            filter: BTreeMap::new(),
            sort: Vec::new(),
            free_text_search: None,
            limit: DEFAULT_SEARCH_LIMIT,
            page: 0,
            compiled: Compiled::default(),
        }
    }

    /// Parses a JSON search request, as found in the `searchRequest` parameter.
    ///
    /// # Errors
    /// [`Error::InvalidSearchRequest`] saying what is wrong: bad JSON, an unknown
    /// attribute, field, operator or sort property, an unsupported operator, a value of
    /// the wrong type, a `limit` outside 1..=[`MAX_SEARCH_LIMIT`] or a negative `page`.
    pub fn from_json(json: &[u8]) -> Result<Self, Error> {
        let value: Value =
            serde_json::from_slice(json).map_err(|e| invalid(malformed_reason(&e)))?;
        Self::try_from(value)
    }

    /// Parses the search request in a URI's raw query string (`uri.query()`), from its
    /// url-encoded [`searchRequest`](SEARCH_REQUEST_PARAMETER) parameter.
    ///
    /// No query, no `searchRequest` parameter or a blank one is the [`Default`] request.
    /// Other parameters are ignored.
    ///
    /// # Errors
    /// As [`from_json`](Self::from_json), and when `searchRequest` is given twice.
    pub fn from_query(query: Option<&str>) -> Result<Self, Error> {
        let Some(query) = query else {
            return Ok(Self::default());
        };
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut found = None;
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if name == SEARCH_REQUEST_PARAMETER {
                if found.is_some() {
                    return Err(invalid(format!(
                        "the `{SEARCH_REQUEST_PARAMETER}` parameter is given more than once"
                    )));
                }
                found = Some(value);
            }
        }
        match found {
            Some(json) if !json.trim().is_empty() => Self::from_json(json.as_bytes()),
            _ => Ok(Self::default()),
        }
    }

    /// The query string a client sends for this request: `searchRequest=<url-encoded JSON>`.
    pub fn to_query(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair(SEARCH_REQUEST_PARAMETER, &json)
            .finish()
    }

    /// The same request with `condition` on `field`, replacing any condition already on it.
    pub fn with_filter(mut self, field: SearchField, condition: FilterCondition) -> Self {
        self.filter.insert(field, condition);
        self.recompile()
    }

    /// The same request with one more sort key, after those already given.
    pub fn with_sort(mut self, order: SortOrder) -> Self {
        self.sort.push(order);
        self
    }

    /// The same request with this free text (whitespace-separated terms, any of which
    /// must appear in one of a subscription's fields).
    pub fn with_free_text_search(mut self, text: impl Into<String>) -> Self {
        self.free_text_search = Some(text.into());
        self.recompile()
    }

    /// The same request with this page size, clamped to 1..=[`MAX_SEARCH_LIMIT`].
    ///
    /// Only requests built in code are clamped; a parsed request with a `limit` out of
    /// range is rejected.
    pub fn with_limit(mut self, limit: u32) -> Self {
        self.limit = limit.clamp(1, MAX_SEARCH_LIMIT);
        self
    }

    /// The same request for this page (from 0).
    pub fn with_page(mut self, page: u32) -> Self {
        self.page = page;
        self
    }

    /// The conditions, by field (all combined with AND).
    pub fn filter(&self) -> &BTreeMap<SearchField, FilterCondition> {
        &self.filter
    }

    /// The sort keys, primary first. Empty means newest first.
    pub fn sort(&self) -> &[SortOrder] {
        &self.sort
    }

    /// The free text, as given.
    pub fn free_text_search(&self) -> Option<&str> {
        self.free_text_search.as_deref()
    }

    /// The free-text terms, lower-cased and deduplicated (empty: no constraint).
    pub fn free_text_terms(&self) -> impl Iterator<Item = &str> + '_ {
        self.compiled.terms.iter().map(|t| &**t)
    }

    /// The page size, within 1..=[`MAX_SEARCH_LIMIT`].
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The page number, from 0.
    pub fn page(&self) -> u32 {
        self.page
    }

    /// How many matching subscriptions precede this page (`page * limit`, which cannot
    /// overflow a `u64`).
    pub fn offset(&self) -> u64 {
        u64::from(self.page) * u64::from(self.limit)
    }

    /// Whether `subscription` satisfies every filter and the free text.
    pub fn matches(&self, subscription: &Subscription) -> bool {
        self.compiled.matches(subscription)
    }

    /// The order of this search: the sort keys in turn, then newest first, then by id,
    /// so that every page of a search is stable.
    pub fn compare(&self, a: &Subscription, b: &Subscription) -> Ordering {
        self.sort
            .iter()
            .map(|key| {
                let ordering = match key.prop {
                    SortField::EntityTypeName => a
                        .event_type()
                        .entity_type()
                        .as_str()
                        .cmp(b.event_type().entity_type().as_str()),
                    SortField::ActionName => a
                        .event_type()
                        .action()
                        .as_str()
                        .cmp(b.event_type().action().as_str()),
                };
                match key.order {
                    Direction::Asc => ordering,
                    Direction::Desc => ordering.reverse(),
                }
            })
            .find(|ordering| ordering.is_ne())
            .unwrap_or_else(|| {
                b.created_at()
                    .cmp(&a.created_at())
                    .then_with(|| a.id().cmp(&b.id()))
            })
    }

    /// Answers the search over `subscriptions`: the matching ones, ordered, this page of them.
    ///
    /// Only the page's subscriptions are cloned, and only they are fully sorted, so a
    /// small page out of many subscriptions is cheap. A page past the last is empty,
    /// with the true total.
    pub fn evaluate<'a, I>(&self, subscriptions: I) -> Page<Subscription>
    where
        I: IntoIterator<Item = &'a Subscription>,
    {
        let mut hits: Vec<&Subscription> = if self.compiled.unsatisfiable {
            Vec::new()
        } else {
            subscriptions
                .into_iter()
                .filter(|s| self.matches(s))
                .collect()
        };
        let total_results = hits.len() as u64;
        let data = select_page(&mut hits, self.offset(), self.limit, |a, b| {
            self.compare(a, b)
        })
        .iter()
        .map(|&s| s.clone())
        .collect();
        Page {
            data,
            total_results,
            page: self.page,
            limit: self.limit,
        }
    }

    fn recompile(mut self) -> Self {
        self.compiled = Compiled::new(&self.filter, self.free_text_search.as_deref());
        self
    }
}

impl Default for SearchRequest {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SearchRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchRequest")
            .field("filter", &self.filter)
            .field("sort", &self.sort)
            .field("free_text_search", &self.free_text_search)
            .field("limit", &self.limit)
            .field("page", &self.page)
            .finish_non_exhaustive()
    }
}

impl TryFrom<Value> for SearchRequest {
    type Error = Error;

    /// Validates a JSON search request; [`from_json`](SearchRequest::from_json) on a value.
    fn try_from(value: Value) -> Result<Self, Error> {
        parse_request(value)
    }
}

impl Serialize for SearchRequest {
    /// The wire form; empty `filter` and `sort` and an absent `freeTextSearch` are left out.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            filter: &'a BTreeMap<SearchField, FilterCondition>,
            #[serde(skip_serializing_if = "<[SortOrder]>::is_empty")]
            sort: &'a [SortOrder],
            #[serde(skip_serializing_if = "Option::is_none")]
            free_text_search: Option<&'a str>,
            limit: u32,
            page: u32,
        }

        Wire {
            filter: &self.filter,
            sort: &self.sort,
            free_text_search: self.free_text_search.as_deref(),
            limit: self.limit,
            page: self.page,
        }
        .serialize(serializer)
    }
}

/// One page of search results, and how many results there are in all.
///
/// Stores return `Page<Subscription>`; a store that pushes the search down to its
/// database fills it from [`SearchRequest::page`], [`SearchRequest::limit`] and its
/// own count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The results on this page, in the search's order.
    pub data: Vec<T>,
    /// How many results match the search, over all pages.
    pub total_results: u64,
    /// This page's number, from 0.
    pub page: u32,
    /// The page size asked for (the last page may hold fewer).
    pub limit: u32,
}

impl<T> Page<T> {
    /// The same page with each result converted by `f`.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            total_results: self.total_results,
            page: self.page,
            limit: self.limit,
        }
    }
}

/// The body of a successful search (BioT's `SearchResponseSubscribeResponse`):
/// `{"data": [...], "metadata": {"sort", "filter", "page": {...}, "freeTextSearch"?}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResponse {
    /// The subscriptions on this page.
    pub data: Vec<Subscription>,
    /// What was searched for, and where this page is.
    pub metadata: SearchMetadata,
}

impl SearchResponse {
    /// The response to `request` with the results in `page`.
    pub fn new(request: &SearchRequest, page: Page<Subscription>) -> Self {
        SearchResponse {
            data: page.data,
            metadata: SearchMetadata {
                sort: request.sort.clone(),
                filter: request.filter.clone(),
                page: PageMetadata {
                    total_results: page.total_results,
                    page: page.page,
                    limit: page.limit,
                },
                free_text_search: request.free_text_search.clone(),
            },
        }
    }

    /// The results as a [`Page`], for clients.
    pub fn into_page(self) -> Page<Subscription> {
        Page {
            data: self.data,
            total_results: self.metadata.page.total_results,
            page: self.metadata.page.page,
            limit: self.metadata.page.limit,
        }
    }
}

/// The echo of a search request in its response (BioT's `Metadata`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchMetadata {
    /// The sort keys the request gave, with default directions filled in.
    #[serde(default)]
    pub sort: Vec<SortOrder>,
    /// The filter the request gave.
    #[serde(default)]
    pub filter: BTreeMap<SearchField, FilterCondition>,
    /// Where this page is.
    pub page: PageMetadata,
    /// The free text the request gave, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_text_search: Option<String>,
}

/// Paging information in a search response (BioT's `PageMetadata`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageMetadata {
    /// How many subscriptions match the search, over all pages.
    pub total_results: u64,
    /// This page's number, from 0.
    pub page: u32,
    /// The page size.
    pub limit: u32,
}

// ---------------------------------------------------------------------------------
// Parsing: one path from JSON values, with errors that say what is allowed.

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidSearchRequest {
        reason: reason.into(),
    }
}

fn join<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
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

fn parse_request(value: Value) -> Result<SearchRequest, Error> {
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

fn parse_integer(name: &str, value: &Value, min: u32, max: u32) -> Result<u32, Error> {
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

fn parse_filter(value: Value) -> Result<BTreeMap<SearchField, FilterCondition>, Error> {
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

fn logical_operator_error(name: &str) -> Error {
    invalid(format!(
        "the logical filter `{}` is not supported for subscriptions; conditions are always combined with AND",
        echo(name)
    ))
}

/// Parses a `FilterV2` object; `field` (when known) is named in errors.
fn parse_condition(field: Option<SearchField>, value: Value) -> Result<FilterCondition, Error> {
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
    fn string(self) -> Result<Option<String>, Error> {
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

    fn strings(self) -> Result<Option<Vec<String>>, Error> {
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

    fn boolean(self) -> Result<Option<bool>, Error> {
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

fn parse_sort(value: Value) -> Result<Vec<SortOrder>, Error> {
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
fn parse_sort_order(what: &str, value: Value) -> Result<SortOrder, Error> {
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

// ---------------------------------------------------------------------------------
// Evaluation: filter values parsed once per request, cheap tests per subscription.

/// The filter and free text of a request, parsed for testing subscriptions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Compiled {
    /// Every test a subscription must pass.
    tests: Vec<Test>,
    /// Some condition can match nothing (e.g. `eq` with an unknown action), so no
    /// subscription matches.
    unsatisfiable: bool,
    /// Lower-cased free-text terms; one must appear in some field. Empty: no constraint.
    terms: Vec<Box<str>>,
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
    fn new(filter: &BTreeMap<SearchField, FilterCondition>, free_text: Option<&str>) -> Self {
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

    fn matches(&self, subscription: &Subscription) -> bool {
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
fn select_page<T>(
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
