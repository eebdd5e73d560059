//! Workspaces (tenants), their members and teams.

use crate::error::ApiResult;
use crate::errors::{MutationResult, UserError, UserErrorCode};
use crate::ids::{NodeKind, decode_as};
use crate::values::parse_email;
use entities::enums::Role;
use entities::{app_user, team, team_member, workspace};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set, TransactionTrait,
};
use std::collections::HashSet;
use uuid::Uuid;

pub async fn create_workspace(db: &impl ConnectionTrait, name: &str) -> ApiResult<workspace::Model> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(crate::error::ApiError::bad_input(
            "workspace name must be 1 to 200 characters",
        ));
    }
    Ok(workspace::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name.to_owned()),
        created_at: Set(crate::now()),
    }
    .insert(db)
    .await?)
}

fn check_name(name: &str, errors: &mut Vec<UserError>) -> String {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(UserError::new(
            &["name"],
            UserErrorCode::Invalid,
            "name must be 1 to 200 characters",
        ));
    }
    name.to_owned()
}

pub async fn create_user(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    email: &str,
    name: &str,
    role: Role,
) -> MutationResult<app_user::Model> {
    let mut errors = Vec::new();
    let name = check_name(name, &mut errors);
    let email = match parse_email(email) {
        Ok(email) => email,
        Err(message) => {
            errors.push(UserError::new(&["email"], UserErrorCode::InvalidEmail, message));
            String::new()
        }
    };
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let clash = app_user::Entity::find()
        .filter(app_user::Column::WorkspaceId.eq(workspace_id))
        .filter(app_user::Column::Email.eq(email.clone()))
        .one(db)
        .await?;
    if clash.is_some() {
        return Err(UserError::new(
            &["email"],
            UserErrorCode::Taken,
            format!("a member with `{email}` already exists"),
        )
        .into());
    }
    let now = crate::now();
    Ok(app_user::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(workspace_id),
        email: Set(email),
        name: Set(name),
        role: Set(role),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?)
}

pub async fn update_user(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    id: &str,
    name: Option<String>,
    role: Option<Role>,
) -> MutationResult<app_user::Model> {
    let user = match decode_as(id, NodeKind::User) {
        Some(uuid) => {
            app_user::Entity::find_by_id(uuid)
                .filter(app_user::Column::WorkspaceId.eq(workspace_id))
                .one(db)
                .await?
        }
        None => None,
    };
    let user =
        user.ok_or_else(|| UserError::argument(&["id"], UserErrorCode::NotFound, "no such user in this workspace"))?;
    let mut errors = Vec::new();
    let mut active: app_user::ActiveModel = user.into();
    if let Some(name) = name {
        active.name = Set(check_name(&name, &mut errors));
    }
    if let Some(role) = role {
        active.role = Set(role);
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    active.updated_at = Set(crate::now());
    Ok(active.update(db).await?)
}

/// Resolves member ids to users of this workspace; unknown ids are errors at `["memberIds", i]` of the input.
async fn members(db: &DatabaseConnection, workspace_id: Uuid, ids: &[String]) -> MutationResult<Vec<Uuid>> {
    let wanted: Vec<Option<Uuid>> = ids.iter().map(|id| decode_as(id, NodeKind::User)).collect();
    let found: HashSet<Uuid> = app_user::Entity::find()
        .filter(app_user::Column::WorkspaceId.eq(workspace_id))
        .filter(app_user::Column::Id.is_in(wanted.iter().flatten().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    let mut errors = Vec::new();
    let mut result = Vec::new();
    for (index, uuid) in wanted.into_iter().enumerate() {
        match uuid.filter(|u| found.contains(u)) {
            Some(u) if !result.contains(&u) => result.push(u),
            Some(_) => {}
            None => errors.push(UserError::new(
                &["memberIds", &index.to_string()],
                UserErrorCode::NotFound,
                "no such user in this workspace",
            )),
        }
    }
    if errors.is_empty() {
        Ok(result)
    } else {
        Err(errors.into())
    }
}

/// Creates a team, or with `id` renames it and replaces its members.
pub async fn save_team(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    id: Option<&str>,
    name: &str,
    member_ids: &[String],
) -> MutationResult<team::Model> {
    let mut errors = Vec::new();
    let name = check_name(name, &mut errors);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let members = members(db, workspace_id, member_ids).await?;
    let existing = match id {
        Some(id) => {
            let found = match decode_as(id, NodeKind::Team) {
                Some(uuid) => {
                    team::Entity::find_by_id(uuid)
                        .filter(team::Column::WorkspaceId.eq(workspace_id))
                        .one(db)
                        .await?
                }
                None => None,
            };
            Some(found.ok_or_else(|| {
                UserError::argument(&["id"], UserErrorCode::NotFound, "no such team in this workspace")
            })?)
        }
        None => None,
    };
    let clash = team::Entity::find()
        .filter(team::Column::WorkspaceId.eq(workspace_id))
        .filter(team::Column::Name.eq(name.clone()))
        .one(db)
        .await?;
    if clash.is_some_and(|t| Some(t.id) != existing.as_ref().map(|e| e.id)) {
        return Err(UserError::new(
            &["name"],
            UserErrorCode::Taken,
            format!("a team named `{name}` already exists"),
        )
        .into());
    }
    let txn = db.begin().await?;
    let saved = match existing {
        Some(team) => {
            let mut active: team::ActiveModel = team.into();
            active.name = Set(name);
            let saved = active.update(&txn).await?;
            team_member::Entity::delete_many()
                .filter(team_member::Column::TeamId.eq(saved.id))
                .exec(&txn)
                .await?;
            saved
        }
        None => {
            team::ActiveModel {
                id: Set(Uuid::now_v7()),
                workspace_id: Set(workspace_id),
                name: Set(name),
                created_at: Set(crate::now()),
            }
            .insert(&txn)
            .await?
        }
    };
    if !members.is_empty() {
        let rows = members.into_iter().map(|user_id| team_member::ActiveModel {
            team_id: Set(saved.id),
            user_id: Set(user_id),
            workspace_id: Set(workspace_id),
        });
        team_member::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(saved)
}
