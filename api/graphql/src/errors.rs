//! Domain errors reaching the GraphQL response get their `extensions.code` here, in one place:
//! resolvers return `voxtur_core::error::ApiError` with `?`, which async-graphql turns into an
//! error carrying the client-safe message and the original as its source. Internal faults are
//! logged here, inside the request's span, so the request id ties the log to the response.
//!
//! A function over the response, called by whoever executes the schema, rather than a schema
//! extension: with any extension installed async-graphql resolves every field through the
//! extension chain, which cost a contacts page a third more CPU.

use async_graphql::{Response, ServerError};
use voxtur_core::error::ApiError;

/// Codes the response's errors that came from the domain.
pub fn set_codes(response: &mut Response) {
    for error in &mut response.errors {
        code(error);
    }
}

fn code(error: &mut ServerError) {
    let code = if let Some(db) = error.source::<sea_orm::DbErr>() {
        // A database error a resolver passed up with `?`: its text (PostgreSQL's, with column
        // types and line numbers) is for the log, never for the client.
        if past_deadline(db) {
            "TIMEOUT"
        } else {
            tracing::error!(error = %db, "database error");
            "INTERNAL"
        }
    } else if let Some(api) = error.source::<ApiError>() {
        match api {
            ApiError::Internal(source) if past_deadline(source) => "TIMEOUT",
            ApiError::Internal(source) => {
                tracing::error!(error = %source, "internal error");
                "INTERNAL"
            }
            other => other.code(),
        }
    } else {
        return;
    };
    match code {
        "TIMEOUT" => {
            error.message = "the request ran past its deadline; ask for less (smaller pages, fewer fields)".into()
        }
        "INTERNAL" => error.message = "internal error".into(),
        _ => {}
    }
    error.extensions.get_or_insert_with(Default::default).set("code", code);
}

/// A statement of this request stopped at the request's deadline.
fn past_deadline(error: &dyn std::fmt::Display) -> bool {
    voxtur_store::db::is_past_deadline(error)
}
