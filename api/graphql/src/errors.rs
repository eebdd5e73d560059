//! Domain errors reaching the GraphQL response get their `extensions.code` here, in one place:
//! resolvers return `voxtur_core::error::ApiError` with `?`, which async-graphql turns into an
//! error carrying the client-safe message and the original as its source. Internal faults are
//! logged here, inside the request's span, so the request id ties the log to the response.

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::{Response, ServerError};
use std::sync::Arc;
use voxtur_core::error::ApiError;

pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        for error in &mut response.errors {
            code(error);
        }
        response
    }
}

fn code(error: &mut ServerError) {
    let Some(api) = error.source::<ApiError>() else { return };
    if let ApiError::Internal(source) = api {
        tracing::error!(error = %source, "internal error");
    }
    let code = api.code();
    error.extensions.get_or_insert_with(Default::default).set("code", code);
}
