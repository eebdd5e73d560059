//! Voxtur: a marketing-CRM GraphQL API over SQLite or PostgreSQL.
//!
//! The map of modules is in `docs/ARCHITECTURE.md`.

// mimalloc: under many threads glibc's malloc spent a quarter of ingestion CPU (perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod auth;
pub mod cli;
pub mod companies;
pub mod config;
pub mod contacts;
pub mod custom_fields;
pub mod db;
pub mod demo;
pub mod error;
pub mod events;
pub mod graphql;
pub mod listing;
pub mod segments;
pub mod server;
pub mod telemetry;
pub mod web;
pub mod workspaces;
pub mod writes;

/// Current time truncated to microseconds: PostgreSQL stores microseconds, so truncating here
/// makes a value read back from either backend equal to the one written (cursors rely on it).
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}
