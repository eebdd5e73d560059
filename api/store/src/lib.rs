//! Voxtur's storage layer: connecting to SQLite or PostgreSQL and what differs between them,
//! migrations, advisory locks, retries of transient conflicts, and keyset listing. It knows the
//! entities and nothing of the domain, GraphQL or HTTP.

pub mod db;
pub mod error;
pub mod jobs;
pub mod json;
pub mod listing;
pub mod rate_limit;

/// Current time truncated to microseconds: PostgreSQL stores microseconds, so truncating here
/// makes a value read back from either backend equal to the one written (cursors rely on it).
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}
