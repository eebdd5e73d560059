//! Field guards: the scopes a field needs, checked before it resolves.

use async_graphql::{Context, Guard};
use voxtur_core::auth::{Principal, Scope};
use voxtur_core::error::ApiError;

/// Field-level guard: `#[graphql(guard = "ScopeGuard(Scope::ContactsRead)")]`.
pub struct ScopeGuard(pub Scope);

impl Guard for ScopeGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let principal = ctx.data_opt::<Principal>().ok_or(ApiError::Unauthenticated)?;
        principal.require(self.0)?;
        Ok(())
    }
}
