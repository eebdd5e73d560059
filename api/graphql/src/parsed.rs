//! Parsed queries, kept by their text.
//!
//! Clients send the same few query texts again and again (a front end's queries are constants
//! with variables), and parsing one with async-graphql's grammar was 8% of the server's CPU for
//! a page of 50 contacts (docs/perf-history.md, issue 5). A parsed document holds only the query's
//! text, never data, so one cache serves every workspace; validation, limits and execution
//! still run on every request.

use crate::cost::Cost;
use async_graphql::Request;
use async_graphql::parser::types::ExecutableDocument;
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::Mutex;

/// Documents kept, least recently used evicted first.
const CAPACITY: NonZeroUsize = NonZeroUsize::new(512).unwrap();
/// Longer query texts are parsed each time (a generated query is rarely sent twice).
const MAX_QUERY_BYTES: usize = 16 * 1024;

pub struct ParsedQueries(Mutex<LruCache<String, ExecutableDocument>>);

impl Default for ParsedQueries {
    fn default() -> Self {
        ParsedQueries(Mutex::new(LruCache::new(CAPACITY)))
    }
}

impl ParsedQueries {
    /// Gives `request` its parsed document, from the cache or parsed now and kept, and returns
    /// the operation's cost (`crate::cost`). A query that does not parse is left to the schema,
    /// which reports the error (and costs nothing here).
    pub fn prepare(&self, request: &mut Request) -> Option<Cost> {
        let cost_of = |document: &ExecutableDocument, request: &Request| {
            crate::cost::of(document, request.operation_name.as_deref(), &request.variables)
        };
        if request.query.len() > MAX_QUERY_BYTES {
            let document = request.parsed_query().ok()?.clone();
            return cost_of(&document, request);
        }
        // A poisoned lock only means another request panicked while holding it; the cache
        // holds nothing that a panic could leave half-written.
        let mut documents = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(document) = documents.get(&request.query) {
            let document = document.clone();
            drop(documents);
            let cost = cost_of(&document, request);
            request.set_parsed_query(document);
            return cost;
        }
        drop(documents);
        let document = request.parsed_query().ok()?.clone();
        let cost = cost_of(&document, request);
        let query = request.query.clone();
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .put(query, document);
        cost
    }
}
