//! API keys: `vxk_` + 43 characters of URL-safe base64 (256 random bits). Only the SHA-256 of the
//! key is stored: a key this random cannot be brute-forced, so a slow password hash would only
//! add latency to every request (the same choice GitHub and crates.io make for tokens).

use super::{Credential, Principal, PrincipalCache, ScopeSet};
use crate::error::{ApiError, ApiResult};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entities::api_key;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set, TransactionTrait,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub(super) const KEY_PREFIX: &str = "vxk_";
const DISPLAY_PREFIX_LEN: usize = 12;

pub struct IssuedApiKey {
    pub key: api_key::Model,
    /// The full secret; shown to the caller once and never stored.
    pub secret: String,
}

pub(crate) fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub async fn issue_api_key(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    name: &str,
    scopes: &ScopeSet,
) -> ApiResult<IssuedApiKey> {
    let random: [u8; 32] = rand::random();
    let secret = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
    let key = api_key::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(workspace_id),
        name: Set(name.to_owned()),
        prefix: Set(secret[..DISPLAY_PREFIX_LEN].to_owned()),
        secret_hash: Set(hash(&secret)),
        scopes: Set(scopes.to_text()),
        created_at: Set(crate::now()),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(IssuedApiKey { key, secret })
}

/// Revokes a key of this workspace, for every server at once (see [`PrincipalCache`]);
/// `Ok(None)` when no such key exists in it.
pub async fn revoke_api_key(
    db: &DatabaseConnection,
    cache: &PrincipalCache,
    workspace_id: Uuid,
    id: Uuid,
) -> ApiResult<Option<api_key::Model>> {
    let Some(key) = api_key::Entity::find_by_id(id)
        .filter(api_key::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if key.revoked_at.is_some() {
        return Ok(Some(key));
    }
    let mut active: api_key::ActiveModel = key.into();
    active.revoked_at = Set(Some(crate::now()));
    let txn = db.begin().await?;
    let key = active.update(&txn).await?;
    super::cache::announce_revocation(&txn, id).await?;
    txn.commit().await?;
    cache.forget(id);
    Ok(Some(key))
}

pub(super) async fn principal_for_key(
    db: &DatabaseConnection,
    cache: &PrincipalCache,
    secret: &str,
) -> ApiResult<Principal> {
    let secret_hash = hash(secret);
    let read_from = match cache.get(&secret_hash) {
        Ok(principal) if matches!(principal.credential, Credential::ApiKey { .. }) => return Ok(principal),
        Ok(_) => return Err(ApiError::Unauthenticated),
        Err(epoch) => epoch,
    };
    let key = api_key::Entity::find()
        .filter(api_key::Column::SecretHash.eq(secret_hash.as_str()))
        .one(db)
        .await?
        .filter(|key| key.revoked_at.is_none())
        .ok_or(ApiError::Unauthenticated)?;
    // Scopes were validated when the key was issued; an unparsable row is a server fault.
    let scopes = ScopeSet::parse(&key.scopes).map_err(|e| ApiError::Internal(e.into()))?;
    let principal = Principal {
        workspace_id: key.workspace_id,
        scopes,
        credential: Credential::ApiKey { id: key.id },
    };
    cache.put(secret_hash, &principal, read_from);
    Ok(principal)
}
