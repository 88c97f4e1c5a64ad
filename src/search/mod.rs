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
//! use biot_notifications::{BiotError, SubscribeRequest, Subscription};
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

mod evaluate;
mod filter;
mod invalid;
mod names;
mod parse;
mod request;
mod response;

pub use filter::{FilterCondition, SortOrder};
pub use invalid::InvalidSearchRequest;
pub use names::{Direction, SearchField, SortField};
pub use request::SearchRequest;
pub use response::{Page, PageMetadata, SearchMetadata, SearchResponse};

/// The largest page a search may ask for.
pub const MAX_SEARCH_LIMIT: u32 = 1000;

/// The page size when a search does not say (BioT's default).
pub const DEFAULT_SEARCH_LIMIT: u32 = 100;

/// The query parameter that carries the url-encoded JSON search request.
pub const SEARCH_REQUEST_PARAMETER: &str = "searchRequest";
