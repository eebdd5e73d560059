//! Write keys authenticate tracking calls. As in Segment, the key is the HTTP basic-auth
//! username (password empty), or `writeKey` in the body. Stored hashed, shown once, rotatable.

use crate::auth::api_keys::hash;
use crate::auth::cache::announce_revocation;
use crate::auth::{Credential, Principal, PrincipalCache, ScopeSet};
use crate::error::ApiResult;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entities::write_key;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter,
    Set, TransactionTrait,
};
use uuid::Uuid;

const PREFIX: &str = "vwk_";

pub struct IssuedWriteKey {
    pub key: write_key::Model,
    pub secret: String,
}

pub async fn issue(db: &impl ConnectionTrait, workspace_id: Uuid, name: &str) -> ApiResult<IssuedWriteKey> {
    let random: [u8; 24] = rand::random();
    let secret = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
    let key = write_key::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(workspace_id),
        name: Set(name.to_owned()),
        prefix: Set(secret[..12].to_owned()),
        secret_hash: Set(hash(&secret)),
        created_at: Set(crate::now()),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(IssuedWriteKey { key, secret })
}

async fn find(db: &impl ConnectionTrait, workspace_id: Uuid, id: Uuid) -> ApiResult<Option<write_key::Model>> {
    Ok(write_key::Entity::find_by_id(id)
        .filter(write_key::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?)
}

/// Marks a key revoked and tells every server to forget it (see [`PrincipalCache`]) once the
/// transaction commits.
async fn mark_revoked(db: &impl ConnectionTrait, workspace_id: Uuid, id: Uuid) -> ApiResult<Option<write_key::Model>> {
    let Some(key) = find(db, workspace_id, id).await? else {
        return Ok(None);
    };
    if key.revoked_at.is_some() {
        return Ok(Some(key));
    }
    let mut active: write_key::ActiveModel = key.into();
    active.revoked_at = Set(Some(crate::now()));
    let key = active.update(db).await?;
    announce_revocation(db, id).await?;
    Ok(Some(key))
}

/// Replaces a key: a new secret under the same name, the old one revoked at once.
pub async fn rotate(
    db: &DatabaseConnection,
    cache: &PrincipalCache,
    workspace_id: Uuid,
    id: Uuid,
) -> ApiResult<Option<IssuedWriteKey>> {
    let txn: DatabaseTransaction = db.begin().await?;
    let Some(old) = find(&txn, workspace_id, id).await?.filter(|k| k.revoked_at.is_none()) else {
        return Ok(None);
    };
    mark_revoked(&txn, workspace_id, old.id).await?;
    let issued = issue(&txn, workspace_id, &old.name).await?;
    txn.commit().await?;
    cache.forget(old.id);
    Ok(Some(issued))
}

/// Revokes a key of this workspace, for every server at once; `Ok(None)` when it has no such key.
pub async fn revoke(
    db: &DatabaseConnection,
    cache: &PrincipalCache,
    workspace_id: Uuid,
    id: Uuid,
) -> ApiResult<Option<write_key::Model>> {
    let txn = db.begin().await?;
    let revoked = mark_revoked(&txn, workspace_id, id).await?;
    txn.commit().await?;
    cache.forget(id);
    Ok(revoked)
}

/// The workspace of a live write key. Tracking calls come one per page view from browsers, so
/// live keys are cached like API keys, with the same immediate revocation.
pub async fn workspace_for(db: &DatabaseConnection, cache: &PrincipalCache, secret: &str) -> ApiResult<Option<Uuid>> {
    if !secret.starts_with(PREFIX) {
        return Ok(None);
    }
    let secret_hash = hash(secret);
    let read_from = match cache.get(&secret_hash) {
        Ok(principal) if matches!(principal.credential, Credential::WriteKey { .. }) => {
            return Ok(Some(principal.workspace_id));
        }
        Ok(_) => return Ok(None),
        Err(epoch) => epoch,
    };
    let Some(key) = write_key::Entity::find()
        .filter(write_key::Column::SecretHash.eq(secret_hash.as_str()))
        .filter(write_key::Column::RevokedAt.is_null())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let principal = Principal {
        workspace_id: key.workspace_id,
        scopes: ScopeSet::default(),
        credential: Credential::WriteKey { id: key.id },
    };
    cache.put(secret_hash, &principal, read_from);
    Ok(Some(key.workspace_id))
}
