//! The public HTTP endpoints besides GraphQL; each converts HTTP to the domain's calls.

pub mod events;
pub mod exports;
pub mod web;
