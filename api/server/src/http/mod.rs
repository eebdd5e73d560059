//! The public HTTP endpoints besides GraphQL; each converts HTTP to the domain's calls.

pub mod events;
pub mod exports;
pub mod graphiql;
pub mod imports;
pub mod metrics;
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
    pub limits: crate::config::LimitSettings,
    pub limiter: Arc<voxtur_store::rate_limit::RateLimiter>,
    pub cost_buckets: voxtur_store::rate_limit::buckets::Buckets,
    pub metrics: metrics::MetricsSettings,
}

/// A minute, the window of every rate limit.
pub(crate) const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

/// The client's address, as the connection gives it (a proxy in front should pass on a
/// connection per client, or limits count the proxy).
pub(crate) fn client_address(req: &HttpRequest) -> String {
    req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default()
}

/// A 429 with `Retry-After`, for failures before GraphQL runs.
pub(crate) fn too_many(retry_after: std::time::Duration, message: &str) -> HttpResponse {
    let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, "THROTTLED", message);
    let seconds = retry_after.as_secs().max(1).to_string();
    if let Ok(value) = header::HeaderValue::from_str(&seconds) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Counts a failed authentication from the client's address; true when it is now over the
/// limit (the caller answers 429 rather than 401).
pub(crate) async fn count_failed_auth(req: &HttpRequest, state: &AppState) -> Option<std::time::Duration> {
    let max = state.limits.failed_auth_per_minute;
    if max == 0 {
        return None;
    }
    match state
        .limiter
        .hit(&format!("auth:{}", client_address(req)), max, MINUTE)
        .await
    {
        voxtur_store::rate_limit::Verdict::Allowed => None,
        voxtur_store::rate_limit::Verdict::Limited { retry_after } => Some(retry_after),
    }
}

/// How long the client's address stays refused for failed authentications, if it is.
pub(crate) fn auth_refused(req: &HttpRequest, state: &AppState) -> Option<std::time::Duration> {
    if state.limits.failed_auth_per_minute == 0 {
        return None;
    }
    state.limiter.refused(&format!("auth:{}", client_address(req)))
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
    if let Some(retry_after) = auth_refused(req, state) {
        return Err(too_many(
            retry_after,
            "too many failed authentications from this address",
        ));
    }
    let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let principal = match authenticate(&state.db, &state.principals, authorization).await {
        Ok(Some(principal)) => principal,
        Ok(None) | Err(ApiError::Unauthenticated) => {
            if let Some(retry_after) = count_failed_auth(req, state).await {
                return Err(too_many(
                    retry_after,
                    "too many failed authentications from this address",
                ));
            }
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
