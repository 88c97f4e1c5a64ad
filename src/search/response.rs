//! What a search answers: a [`Page`] of results, and the [`SearchResponse`] body that
//! echoes the request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{FilterCondition, SearchField, SearchRequest, SortOrder};
use crate::subscription::Subscription;

/// One page of search results, and how many results there are in all.
///
/// Stores return `Page<Subscription>`; a store that pushes the search down to its
/// database fills it from [`SearchRequest::page`], [`SearchRequest::limit`] and its
/// own count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
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
    /// A page: its results, how many results there are over all pages, its number
    /// (from 0) and the page size asked for. A store that searches in its own database
    /// fills it from [`SearchRequest::page`], [`SearchRequest::limit`] and its count.
    pub fn new(data: Vec<T>, total_results: u64, page: u32, limit: u32) -> Self {
        Page {
            data,
            total_results,
            page,
            limit,
        }
    }

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
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
pub struct PageMetadata {
    /// How many subscriptions match the search, over all pages.
    pub total_results: u64,
    /// This page's number, from 0.
    pub page: u32,
    /// The page size.
    pub limit: u32,
}
