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
    // A database error a resolver passed up with `?`: its text (PostgreSQL's, with column
    // types and line numbers) is for the log, never for the client.
    if let Some(db) = error.source::<sea_orm::DbErr>() {
        tracing::error!(error = %db, "database error");
        error.message = "internal error".into();
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", "INTERNAL");
        return;
    }
    let Some(api) = error.source::<ApiError>() else { return };
    if let ApiError::Internal(source) = api {
        tracing::error!(error = %source, "internal error");
    }
    let code = api.code();
    error.extensions.get_or_insert_with(Default::default).set("code", code);
}
