//! The `voxtur` server: settings, telemetry, the command line, and the HTTP application (the
//! GraphQL endpoint and the public endpoints for tracking, forms, landing pages, links and
//! exports). The map of crates is in `docs/ARCHITECTURE.md`.

pub mod cli;
pub mod config;
pub mod http;
pub mod outbound;
pub mod server;
pub mod telemetry;
