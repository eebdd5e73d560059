//! In-app notifications of a workspace (a form submitted to a form that notifies its owner,
//! and more as features come): listed newest first, marked read. They are written in the
//! transaction of their cause; e-mail delivery joins once a channel exists (`delivered_at`).

use crate::errors::{MutationResult, UserError, UserErrorCode};
use entities::notification;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

/// Marks the workspace's notifications `ids` read (those read already keep their time); all
/// of them, or none when one is not the workspace's.
pub async fn mark_read(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    ids: &[Uuid],
) -> MutationResult<Vec<notification::Model>> {
    if ids.len() > 100 {
        return Err(UserError::argument(&["ids"], UserErrorCode::TooMany, "at most 100 notifications at once").into());
    }
    let found = notification::Entity::find()
        .filter(notification::Column::WorkspaceId.eq(workspace_id))
        .filter(notification::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?;
    let missing: Vec<UserError> = ids
        .iter()
        .enumerate()
        .filter(|(_, id)| !found.iter().any(|n| n.id == **id))
        .map(|(i, _)| {
            UserError::argument(
                &["ids", &i.to_string()],
                UserErrorCode::NotFound,
                "no such notification in this workspace",
            )
        })
        .collect();
    if !missing.is_empty() {
        return Err(crate::errors::MutationError::Invalid(missing));
    }
    let now = crate::now();
    notification::Entity::update_many()
        .col_expr(notification::Column::ReadAt, Expr::val(now))
        .filter(notification::Column::WorkspaceId.eq(workspace_id))
        .filter(notification::Column::Id.is_in(ids.iter().copied()))
        .filter(notification::Column::ReadAt.is_null())
        .exec(db)
        .await?;
    Ok(found
        .into_iter()
        .map(|mut n| {
            n.read_at.get_or_insert(now);
            n
        })
        .collect())
}
