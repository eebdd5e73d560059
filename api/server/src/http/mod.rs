//! The public HTTP endpoints besides GraphQL; each converts HTTP to the domain's calls.

pub mod events;
pub mod exports;
pub mod graphiql;
pub mod imports;
pub mod web;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};
use sea_orm::DatabaseConnection;
use std::sync::Arc;
use voxtur_core::auth::{Principal, PrincipalCache, Scope, authenticate};
use voxtur_core::error::ApiError;
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

/// The principal of an `Authorization: Bearer <api key>` request holding `scope`, or the
/// response that refuses it.
pub(crate) async fn require_key(req: &HttpRequest, state: &AppState, scope: Scope) -> Result<Principal, HttpResponse> {
    let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let principal = match authenticate(&state.db, &state.principals, authorization).await {
        Ok(Some(principal)) => principal,
        Ok(None) | Err(ApiError::Unauthenticated) => {
            return Err(error_response(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "send `Authorization: Bearer <api key>`",
            ));
        }
        Err(error) => {
            tracing::error!(error = %error.for_operator(), "authentication failed");
            return Err(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "internal error",
            ));
        }
    };
    if !principal.scopes.allows(scope) {
        return Err(error_response(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            &format!("these credentials lack the `{}` scope", scope.as_str()),
        ));
    }
    Ok(principal)
}
