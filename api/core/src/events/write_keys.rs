//! Write keys authenticate tracking calls. As in Segment, the key is the HTTP basic-auth
//! username (password empty), or `writeKey` in the body. Stored hashed, shown once, rotatable.
//! A key may be limited to the browser origins (sites) allowed to send with it; by default any
//! site may, as with Segment, since a write key is public in every page that carries it.

use crate::auth::api_keys::hash;
use crate::auth::cache::announce_revocation;
use crate::auth::{Credential, Principal, PrincipalCache, ScopeSet};
use crate::error::ApiResult;
use crate::errors::{MutationResult, UserError, UserErrorCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entities::write_key;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter,
    Set, TransactionTrait,
};
use std::sync::Arc;
use uuid::Uuid;

const PREFIX: &str = "vwk_";
const MAX_ORIGINS: usize = 100;

/// The workspace a live write key sends to, and the sites it accepts calls from.
#[derive(Debug, Clone)]
pub struct WriteKeyGrant {
    pub key_id: Uuid,
    pub workspace_id: Uuid,
    pub allowed_origins: Option<Arc<[String]>>,
}

impl WriteKeyGrant {
    /// Whether a call with this `Origin` header may use the key. Calls without one come from
    /// servers (the SDKs), which no origin list concerns.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        match (origin, &self.allowed_origins) {
            (None, _) | (_, None) => true,
            (Some(origin), Some(allowed)) => allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)),
        }
    }
}

/// Validates a list of allowed origins (`https://shop.example`, `http://localhost:3000`): each
/// becomes its normalised origin; `*` anywhere in the list means any origin (`None`).
pub fn parse_origins(origins: &[String], field: &str) -> Result<Option<Vec<String>>, UserError> {
    if origins.iter().any(|o| o.trim() == "*") {
        return Ok(None);
    }
    if origins.len() > MAX_ORIGINS {
        return Err(UserError::argument(
            &[field],
            UserErrorCode::Invalid,
            format!("at most {MAX_ORIGINS} origins"),
        ));
    }
    let mut parsed = Vec::with_capacity(origins.len());
    for (index, text) in origins.iter().enumerate() {
        let origin = crate::values::parse_origin(text).map_err(|why| {
            UserError::argument(
                &[field, &index.to_string()],
                UserErrorCode::Invalid,
                format!("`{text}` is not an origin ({why}); write scheme://host[:port], e.g. https://shop.example"),
            )
        })?;
        if !parsed.contains(&origin) {
            parsed.push(origin);
        }
    }
    Ok(Some(parsed))
}

pub struct IssuedWriteKey {
    pub key: write_key::Model,
    pub secret: String,
}

pub async fn issue(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    name: &str,
    allowed_origins: Option<Vec<String>>,
) -> ApiResult<IssuedWriteKey> {
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
        allowed_origins: Set(allowed_origins.map(|list| serde_json::json!(list))),
    }
    .insert(db)
    .await?;
    Ok(IssuedWriteKey { key, secret })
}

/// Creates a key named `name` (1 to 200 characters), limited to `allowed_origins` when given.
pub async fn create(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    name: &str,
    allowed_origins: Option<&[String]>,
) -> MutationResult<IssuedWriteKey> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(UserError::argument(&["name"], UserErrorCode::Invalid, "name must be 1 to 200 characters").into());
    }
    let origins = match allowed_origins {
        Some(list) => parse_origins(list, "allowedOrigins")?,
        None => None,
    };
    Ok(issue(db, workspace_id, name, origins).await?)
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
    let origins = old.allowed_origins.as_ref().map(origins_of);
    let issued = issue(&txn, workspace_id, &old.name, origins).await?;
    txn.commit().await?;
    cache.forget(old.id);
    Ok(Some(issued))
}

/// Sets the origins a live key accepts (`None`: any), for every server at once.
pub async fn set_origins(
    db: &DatabaseConnection,
    cache: &PrincipalCache,
    workspace_id: Uuid,
    id: Uuid,
    allowed_origins: Option<Vec<String>>,
) -> MutationResult<write_key::Model> {
    let txn = db.begin().await?;
    let Some(key) = find(&txn, workspace_id, id).await?.filter(|k| k.revoked_at.is_none()) else {
        return Err(UserError::argument(&["id"], UserErrorCode::NotFound, "no live write key with this id").into());
    };
    let mut active: write_key::ActiveModel = key.into();
    active.allowed_origins = Set(allowed_origins.map(|list| serde_json::json!(list)));
    let key = active.update(&txn).await?;
    // Servers holding the key in their caches read it again, with its new origins.
    announce_revocation(&txn, id).await?;
    txn.commit().await?;
    cache.forget(id);
    Ok(key)
}

/// The stored origin list (a JSON array of strings).
pub fn origins_of(stored: &serde_json::Value) -> Vec<String> {
    stored
        .as_array()
        .map(|list| list.iter().filter_map(|o| o.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
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

/// The grant of a live write key. Tracking calls come one per page view from browsers, so live
/// keys are cached like API keys, with the same immediate revocation.
pub async fn grant_for(
    db: &DatabaseConnection,
    cache: &PrincipalCache,
    secret: &str,
) -> ApiResult<Option<WriteKeyGrant>> {
    if !secret.starts_with(PREFIX) {
        return Ok(None);
    }
    let secret_hash = hash(secret);
    let read_from = match cache.get(&secret_hash) {
        Ok(Principal {
            workspace_id,
            credential: Credential::WriteKey { id, origins },
            ..
        }) => {
            return Ok(Some(WriteKeyGrant {
                key_id: id,
                workspace_id,
                allowed_origins: origins,
            }));
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
    let origins: Option<Arc<[String]>> = key.allowed_origins.as_ref().map(|o| origins_of(o).into());
    let principal = Principal {
        workspace_id: key.workspace_id,
        scopes: ScopeSet::default(),
        credential: Credential::WriteKey {
            id: key.id,
            origins: origins.clone(),
        },
    };
    cache.put(secret_hash, &principal, read_from);
    Ok(Some(WriteKeyGrant {
        key_id: key.id,
        workspace_id: key.workspace_id,
        allowed_origins: origins,
    }))
}
