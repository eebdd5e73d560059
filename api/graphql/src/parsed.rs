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
use std::sync::{Arc, Mutex};

/// Documents kept, least recently used evicted first.
const CAPACITY: NonZeroUsize = NonZeroUsize::new(512).unwrap();
/// Longer query texts are parsed each time (a generated query is rarely sent twice).
const MAX_QUERY_BYTES: usize = 16 * 1024;

pub struct ParsedQueries(Mutex<LruCache<String, Arc<ExecutableDocument>>>);

/// A request's parsed document, and the requested cost of its operation.
pub struct Prepared {
    pub document: Arc<ExecutableDocument>,
    pub cost: Cost,
}

impl Default for ParsedQueries {
    fn default() -> Self {
        ParsedQueries(Mutex::new(LruCache::new(CAPACITY)))
    }
}

impl ParsedQueries {
    /// Gives `request` its parsed document, from the cache or parsed now and kept, and returns
    /// it with the operation's requested cost (`crate::cost`). A query that does not parse, or
    /// does not say which operation to run, is left to the schema, which reports the error.
    pub fn prepare(&self, request: &mut Request) -> Option<Prepared> {
        let document = if request.query.len() > MAX_QUERY_BYTES {
            // A generated query is rarely sent twice: not kept.
            Arc::new(request.parsed_query().ok()?.clone())
        } else {
            // A poisoned lock only means another request panicked while holding it; the cache
            // holds nothing that a panic could leave half-written.
            let cached = self
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(&request.query)
                .cloned();
            match cached {
                Some(document) => {
                    request.set_parsed_query((*document).clone());
                    document
                }
                None => {
                    let document = Arc::new(request.parsed_query().ok()?.clone());
                    self.0
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .put(request.query.clone(), document.clone());
                    document
                }
            }
        };
        let cost = crate::cost::of(&document, request.operation_name.as_deref(), &request.variables)?;
        Some(Prepared { document, cost })
    }
}
