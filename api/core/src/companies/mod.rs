//! Companies: validation and writes.

pub mod filter;

use crate::Patch;
use crate::custom_fields::Definitions;
use crate::error::ApiResult;
use crate::errors::{MutationError, MutationResult, UserError, UserErrorCode};
use crate::ids::{NodeKind, decode_as};
use crate::writes::Changes;
use entities::enums::{CompanySize, ObjectType};
use entities::{app_user, company, contact};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, SqlErr, TransactionTrait,
};
use uuid::Uuid;

/// What a create or update asks to change; absent fields stay, `null` clears.
#[derive(Default, Debug, Clone)]
pub struct CompanyChanges {
    pub name: Option<String>,
    pub domain: Patch<String>,
    pub industry: Patch<String>,
    pub size: Patch<CompanySize>,
    pub owner_id: Patch<String>,
    pub custom_fields: Option<serde_json::Value>,
}

/// Normalises a web domain: no scheme, path or `www.`, lower-case, a plausible host name.
pub fn parse_domain(raw: &str) -> Result<String, String> {
    let mut domain = raw.trim().to_lowercase();
    for scheme in ["https://", "http://"] {
        if let Some(rest) = domain.strip_prefix(scheme) {
            domain = rest.to_owned();
        }
    }
    let domain = domain.split(['/', '?', '#']).next().unwrap_or_default();
    let domain = domain.strip_prefix("www.").unwrap_or(domain).to_owned();
    let valid = domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if valid {
        Ok(domain)
    } else {
        Err(format!("`{}` is not a valid domain", raw.trim()))
    }
}

fn not_found(id: &str) -> MutationError {
    UserError::argument(
        &["id"],
        UserErrorCode::NotFound,
        format!("no company with id `{}` in this workspace", id),
    )
    .into()
}

pub async fn find(db: &DatabaseConnection, workspace_id: Uuid, id: &str) -> ApiResult<Option<company::Model>> {
    let Some(uuid) = decode_as(id, NodeKind::Company) else {
        return Ok(None);
    };
    Ok(company::Entity::find_by_id(uuid)
        .filter(company::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?)
}

async fn apply(
    db: &DatabaseConnection,
    mut model: company::Model,
    changes: CompanyChanges,
) -> MutationResult<company::Model> {
    let mut errors = Vec::new();
    if let Some(name) = changes.name {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            errors.push(UserError::new(
                &["name"],
                UserErrorCode::Invalid,
                "name must be 1 to 200 characters",
            ));
        } else {
            model.name = name.to_owned();
        }
    }
    match changes.domain {
        Patch::Keep => {}
        Patch::Clear => model.domain = None,
        Patch::Set(raw) => match parse_domain(&raw) {
            Ok(domain) => model.domain = Some(domain),
            Err(message) => errors.push(UserError::new(&["domain"], UserErrorCode::Invalid, message)),
        },
    }
    match changes.industry {
        Patch::Keep => {}
        Patch::Clear => model.industry = None,
        Patch::Set(industry) => {
            let industry = industry.trim();
            if industry.chars().count() > 200 {
                errors.push(UserError::new(
                    &["industry"],
                    UserErrorCode::TooLong,
                    "industry is longer than 200 characters",
                ));
            } else {
                model.industry = (!industry.is_empty()).then(|| industry.to_owned());
            }
        }
    }
    match changes.size {
        Patch::Keep => {}
        Patch::Clear => model.size = None,
        Patch::Set(size) => model.size = Some(size),
    }
    match changes.owner_id {
        Patch::Keep => {}
        Patch::Clear => model.owner_id = None,
        Patch::Set(id) => {
            let owner = match decode_as(&id, NodeKind::User) {
                Some(uuid) => {
                    app_user::Entity::find_by_id(uuid)
                        .filter(app_user::Column::WorkspaceId.eq(model.workspace_id))
                        .one(db)
                        .await?
                }
                None => None,
            };
            match owner {
                Some(owner) => model.owner_id = Some(owner.id),
                None => errors.push(UserError::new(
                    &["ownerId"],
                    UserErrorCode::NotFound,
                    format!("no user with id `{}` in this workspace", id),
                )),
            }
        }
    }
    if let Some(values) = changes.custom_fields {
        let fields = Definitions::load(db, model.workspace_id, ObjectType::Company).await?;
        match fields.apply(&model.custom_fields, &values, &["customFields"]) {
            Ok(merged) => model.custom_fields = merged,
            Err(field_errors) => errors.extend(field_errors),
        }
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    if let Some(domain) = &model.domain {
        let clash = company::Entity::find()
            .filter(company::Column::WorkspaceId.eq(model.workspace_id))
            .filter(company::Column::Domain.eq(domain.clone()))
            .filter(company::Column::Id.ne(model.id))
            .one(db)
            .await?;
        if let Some(other) = clash {
            return Err(taken(domain, &other.name));
        }
    }
    Ok(model)
}

fn taken(domain: &str, other: &str) -> MutationError {
    UserError::new(
        &["domain"],
        UserErrorCode::Taken,
        format!("company `{other}` already has the domain `{domain}`"),
    )
    .into()
}

fn map_unique(error: sea_orm::DbErr, domain: Option<&str>) -> MutationError {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => taken(domain.unwrap_or_default(), "another company"),
        _ => error.into(),
    }
}

pub async fn create(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    changes: CompanyChanges,
) -> MutationResult<company::Model> {
    if changes.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(UserError::new(&["name"], UserErrorCode::Required, "name is required").into());
    }
    let now = crate::now();
    let blank = company::Model {
        id: Uuid::now_v7(),
        workspace_id,
        name: String::new(),
        domain: None,
        industry: None,
        size: None,
        owner_id: None,
        group_key: None,
        custom_fields: serde_json::json!({}),
        created_at: now,
        updated_at: now,
    };
    let model = apply(db, blank, changes).await?;
    let domain = model.domain.clone();
    let txn = db.begin().await?;
    let inserted = company::ActiveModel::from(model)
        .reset_all()
        .insert(&txn)
        .await
        .map_err(|e| map_unique(e, domain.as_deref()))?;
    let mut changes = Changes::new(workspace_id);
    changes.companies_changed.push(inserted.id);
    crate::writes::commit(db, txn, changes).await?;
    Ok(inserted)
}

pub async fn update(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    id: &str,
    changes: CompanyChanges,
) -> MutationResult<company::Model> {
    let existing = find(db, workspace_id, id).await?.ok_or_else(|| not_found(id))?;
    let mut model = apply(db, existing, changes).await?;
    model.updated_at = crate::now();
    let domain = model.domain.clone();
    let txn = db.begin().await?;
    let updated = company::ActiveModel::from(model)
        .reset_all()
        .update(&txn)
        .await
        .map_err(|e| map_unique(e, domain.as_deref()))?;
    let mut changes = Changes::new(workspace_id);
    changes.companies_changed.push(updated.id);
    crate::writes::commit(db, txn, changes).await?;
    Ok(updated)
}

/// Deletes a company; its contacts stay, without a company.
pub async fn delete(db: &DatabaseConnection, workspace_id: Uuid, id: &str) -> MutationResult<Uuid> {
    let uuid = decode_as(id, NodeKind::Company).ok_or_else(|| not_found(id))?;
    let txn = crate::db::begin_write(db).await?;
    // Its contacts lose their company (the key sets it null): company conditions may now
    // match them differently.
    let contacts: Vec<Uuid> = contact::Entity::find()
        .select_only()
        .column(contact::Column::Id)
        .filter(contact::Column::WorkspaceId.eq(workspace_id))
        .filter(contact::Column::CompanyId.eq(uuid))
        .into_tuple()
        .all(&txn)
        .await?;
    let result = company::Entity::delete_many()
        .filter(company::Column::Id.eq(uuid))
        .filter(company::Column::WorkspaceId.eq(workspace_id))
        .exec(&txn)
        .await?;
    if result.rows_affected == 0 {
        return Err(not_found(id));
    }
    let mut changes = Changes::new(workspace_id);
    changes.companies_deleted.push(uuid);
    changes.contacts_changed = contacts;
    crate::writes::commit(db, txn, changes).await?;
    Ok(uuid)
}
