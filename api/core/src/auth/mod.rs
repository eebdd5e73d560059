//! Who is calling and what they may do.
//!
//! Every request resolves to at most one [`Principal`]: a workspace plus scopes. Resolvers see only
//! the principal, never the credential, so OAuth access tokens plug in later as another
//! [`Credential`] variant recognised by its prefix in [`authenticate`].

pub(crate) mod api_keys;
pub(crate) mod cache;
mod scopes;

pub use api_keys::{IssuedApiKey, issue_api_key, revoke_api_key};
pub use cache::PrincipalCache;
pub use scopes::{Scope, ScopeSet};

use crate::error::{ApiError, ApiResult};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    ApiKey {
        id: Uuid,
    },
    /// Authenticates tracking calls only (`events::write_keys`); its principal has no scopes.
    WriteKey {
        id: Uuid,
        /// The browser origins it accepts calls from; `None` for any.
        origins: Option<std::sync::Arc<[String]>>,
    },
}

impl Credential {
    pub fn id(&self) -> Uuid {
        match self {
            Credential::ApiKey { id } | Credential::WriteKey { id, .. } => *id,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub workspace_id: Uuid,
    pub scopes: ScopeSet,
    pub credential: Credential,
}

impl Principal {
    pub fn require(&self, scope: Scope) -> ApiResult<()> {
        if self.scopes.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(scope.as_str()))
        }
    }
}

/// Resolves an `Authorization` header value. `Ok(None)` means no credentials were sent;
/// a credential that is sent but unknown, malformed or revoked is an error.
pub async fn authenticate(
    db: &DatabaseConnection,
    cache: &PrincipalCache,
    header: Option<&str>,
) -> ApiResult<Option<Principal>> {
    let Some(header) = header else { return Ok(None) };
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthenticated)?;
    if token.starts_with(api_keys::KEY_PREFIX) {
        return api_keys::principal_for_key(db, cache, token).await.map(Some);
    }
    Err(ApiError::Unauthenticated)
}
