//! Voxtur's domain: one folder per domain (its services, model types and rules), the one write
//! path (`writes`), global ids and validation errors. Nothing here knows GraphQL or HTTP: the
//! GraphQL layer and the HTTP endpoints convert at their edge and call these services, and so
//! can jobs, connectors and the command line.

pub mod auth;
pub mod companies;
pub mod contacts;
pub mod custom_fields;
pub mod errors;
pub mod events;
pub mod ids;
pub mod jobs;
pub mod names;
pub mod notifications;
pub mod patch;
pub mod segments;
pub mod values;
pub mod web;
pub mod webhooks;
pub mod workspaces;
pub mod writes;

// The storage layer's modules, under the names the domain has always used for them.
pub use patch::Patch;
pub use voxtur_store::{db, error, json, listing, now};
