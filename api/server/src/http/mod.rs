//! The public HTTP endpoints besides GraphQL; each converts HTTP to the domain's calls.

pub mod events;
pub mod exports;
pub mod graphiql;
pub mod web;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use sea_orm::DatabaseConnection;
use std::sync::Arc;
use voxtur_core::auth::PrincipalCache;
use voxtur_graphql::Schemas;

/// What every handler may read: built once per server, shared by its workers.
pub struct AppState {
    pub schemas: Schemas,
    pub db: DatabaseConnection,
    pub principals: Arc<PrincipalCache>,
    pub parsed: voxtur_graphql::parsed::ParsedQueries,
    pub max_body_bytes: usize,
}

/// A GraphQL-shaped error body for failures before the schema runs.
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    }))
}
