//! The validated [`SearchRequest`]: built in code or parsed from the wire, and answered
//! over any collection of subscriptions.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::evaluate::{select_page, Compiled};
use super::parse::{invalid, parse_request};
use super::InvalidSearchRequest;
use super::{
    Direction, FilterCondition, Page, SearchField, SortField, SortOrder, DEFAULT_SEARCH_LIMIT,
    MAX_SEARCH_LIMIT, SEARCH_REQUEST_PARAMETER,
};
use crate::subscription::{malformed_reason, Subscription};

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
    pub(super) filter: BTreeMap<SearchField, FilterCondition>,
    pub(super) sort: Vec<SortOrder>,
    pub(super) free_text_search: Option<String>,
    pub(super) limit: u32,
    pub(super) page: u32,
    /// Derived from `filter` and `free_text_search`, so equal requests compile equally.
    pub(super) compiled: Compiled,
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
    /// [`InvalidSearchRequest`] saying what is wrong: bad JSON, an unknown
    /// attribute, field, operator or sort property, an unsupported operator, a value of
    /// the wrong type, a `limit` outside 1..=[`MAX_SEARCH_LIMIT`] or a negative `page`.
    pub fn from_json(json: &[u8]) -> Result<Self, InvalidSearchRequest> {
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
    pub fn from_query(query: Option<&str>) -> Result<Self, InvalidSearchRequest> {
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

    pub(super) fn recompile(mut self) -> Self {
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
    type Error = InvalidSearchRequest;

    /// Validates a JSON search request; [`from_json`](SearchRequest::from_json) on a value.
    fn try_from(value: Value) -> Result<Self, InvalidSearchRequest> {
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
