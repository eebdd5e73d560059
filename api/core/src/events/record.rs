//! Writes of single events and merges by hand (the back office): validated here, saved through
//! the same store and write path as ingestion.

use super::identity::{Merged, merge};
use super::{EventType, insert_events, lock_contacts, record_activity};
use crate::contacts::Channel;
use crate::errors::{MutationResult, UserError, UserErrorCode};
use crate::ids::{NodeKind, decode_as};
use crate::values::{check_properties, check_text, limits};
use crate::writes::{self, Changes, Merge};
use chrono::{DateTime, SubsecRound, Utc};
use entities::{contact, event};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

/// A back-office event: a logged call, visit, letter...
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub contact_id: String,
    pub event_type: EventType,
    /// Required for custom events.
    pub name: Option<String>,
    /// Default now; not more than a day ahead.
    pub occurred_at: Option<DateTime<Utc>>,
    pub channel: Option<Channel>,
    pub campaign: Option<String>,
    /// A JSON object.
    pub properties: Option<serde_json::Value>,
}

const MAX_NAME_LEN: usize = 300;

/// Records an event on a contact's timeline; returns it as stored.
pub async fn record(db: &DatabaseConnection, workspace_id: Uuid, input: EventRecord) -> MutationResult<event::Model> {
    let no_contact = || {
        UserError::new(
            &["contactId"],
            UserErrorCode::NotFound,
            "no such contact in this workspace",
        )
    };
    let Some(contact) = crate::contacts::find(db, workspace_id, &input.contact_id).await? else {
        return Err(no_contact().into());
    };
    let name = input.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if input.event_type == EventType::Custom && name.is_none() {
        return Err(UserError::new(&["name"], UserErrorCode::Required, "custom events need a name").into());
    }
    if name.as_ref().is_some_and(|n| n.chars().count() > MAX_NAME_LEN) {
        return Err(UserError::new(
            &["name"],
            UserErrorCode::TooLong,
            format!("name is longer than {MAX_NAME_LEN} characters"),
        )
        .into());
    }
    let now = crate::now();
    let occurred_at = input.occurred_at.unwrap_or(now);
    if occurred_at > now + chrono::Duration::days(1) {
        return Err(UserError::new(
            &["occurredAt"],
            UserErrorCode::Invalid,
            "occurredAt is more than a day in the future",
        )
        .into());
    }
    if let Some(campaign) = &input.campaign {
        check_text(&["campaign"], campaign, limits::SHORT)?;
    }
    let properties = input.properties.unwrap_or_else(|| serde_json::json!({}));
    check_properties(&["properties"], &properties)?;
    if !properties.is_object() {
        return Err(UserError::new(
            &["properties"],
            UserErrorCode::WrongType,
            "properties must be an object",
        )
        .into());
    }
    let model = event::Model {
        id: Uuid::now_v7(),
        workspace_id,
        contact_id: contact.id,
        event_type: input.event_type.as_str().to_owned(),
        name,
        occurred_at: occurred_at.trunc_subsecs(6),
        received_at: now,
        source: "backoffice".into(),
        channel: input.channel.map(|c| c.as_str().to_owned()),
        campaign: input.campaign,
        utm_source: None,
        utm_medium: None,
        utm_campaign: None,
        utm_term: None,
        utm_content: None,
        properties,
        message_id: None,
    };
    let txn = crate::db::begin_write(db).await?;
    // Locked as ingestion locks it, so a contact deleted or merged away meanwhile is not
    // given an event (no foreign key checks that on PostgreSQL; see migration 6).
    if !lock_contacts(&txn, &[contact.id], &Default::default()).await? {
        return Err(no_contact().into());
    }
    let stored = insert_events(&txn, vec![model.clone()]).await?;
    record_activity(&txn, &stored).await?;
    let mut changes = Changes::new(workspace_id);
    for event in &stored {
        changes.event(event.contact_id, event.event_type.clone());
    }
    writes::commit(db, txn, changes).await?;
    Ok(model)
}

/// Merges the contact `loser_id` into `winner_id` by hand: events, identities and tags move to
/// the winner, the loser is deleted and the merge recorded. Run again when PostgreSQL aborts it
/// in a deadlock with an ingestion batch (see `db::retry_transient`).
pub async fn merge_contacts(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    winner_id: &str,
    loser_id: &str,
) -> MutationResult<Merged> {
    crate::db::retry_transient(|| merge_once(db, workspace_id, winner_id, loser_id))
        .await?
        .map_err(Into::into)
}

async fn merge_once(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    winner_id: &str,
    loser_id: &str,
) -> Result<Result<Merged, UserError>, DbErr> {
    let txn = crate::db::begin_write(db).await?;
    // Both rows locked for update (in id order, as every writer locks contacts) and read
    // under the lock: a concurrent batch may have merged either away or changed it.
    let ids: Vec<Uuid> = [winner_id, loser_id]
        .into_iter()
        .filter_map(|id| decode_as(id, NodeKind::Contact))
        .collect();
    let mut query = contact::Entity::find()
        .filter(contact::Column::WorkspaceId.eq(workspace_id))
        .filter(contact::Column::Id.is_in(ids))
        .order_by_asc(contact::Column::Id);
    if txn.get_database_backend() == DbBackend::Postgres {
        query = query.lock(sea_orm::sea_query::LockType::Update);
    }
    let rows = query.all(&txn).await?;
    let row = |id: &str| decode_as(id, NodeKind::Contact).and_then(|uuid| rows.iter().find(|r| r.id == uuid).cloned());
    let (Some(winner), Some(loser)) = (row(winner_id), row(loser_id)) else {
        let argument = if row(winner_id).is_none() {
            "winnerId"
        } else {
            "loserId"
        };
        return Ok(Err(UserError::argument(
            &[argument],
            UserErrorCode::NotFound,
            "no such contact in this workspace",
        )));
    };
    if winner.id == loser.id {
        return Ok(Err(UserError::argument(
            &["loserId"],
            UserErrorCode::Invalid,
            "a contact cannot be merged into itself",
        )));
    }
    let merged = merge(&txn, &winner, &loser, "manual").await?;
    let mut changes = Changes::new(workspace_id);
    changes.contacts_merged.push(Merge {
        into: winner.id,
        from: loser.id,
    });
    writes::commit(db, txn, changes).await?;
    Ok(Ok(merged))
}
