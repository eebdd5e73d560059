//! Marketing lists (static segments): members added and removed by hand, by id, by a filter
//! snapshot or from a CSV of e-mails.

use super::{MAX_MEMBERS_PER_CALL, STATIC, change_time, finish, insert_members, record_changes};
use crate::contacts::filter::{ContactFilter, FilterContext};
use crate::errors::{MutationResult, UserError, UserErrorCode};
use crate::ids::NodeKind;
use crate::writes::Changes;
use entities::{contact, segment, segment_member};
use sea_orm::sea_query::{LockType, Query, SelectStatement};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect, TransactionTrait};
use std::collections::HashSet;
use uuid::Uuid;

/// Which contacts a static-membership change is about.
pub enum Members {
    Ids(Vec<Uuid>),
    /// The contacts matching a filter now (a snapshot; later changes do not follow it).
    Filter(Box<ContactFilter>),
}

/// Locks a static segment for a membership change.
async fn lock_static(db: &impl ConnectionTrait, workspace_id: Uuid, id: Uuid) -> MutationResult<segment::Model> {
    let mut query = segment::Entity::find_by_id(id).filter(segment::Column::WorkspaceId.eq(workspace_id));
    if db.get_database_backend() == DbBackend::Postgres {
        query = query.lock(LockType::Update);
    }
    let segment = query.one(db).await?.ok_or_else(|| {
        UserError::argument(
            &["segmentId"],
            UserErrorCode::NotFound,
            format!("no segment {} in this workspace", NodeKind::Segment.encode(id)),
        )
    })?;
    if segment.kind != STATIC {
        return Err(UserError::argument(
            &["segmentId"],
            UserErrorCode::Invalid,
            "members of a dynamic segment follow its filter; add or remove them in a static segment",
        )
        .into());
    }
    Ok(segment)
}

/// The selected contacts of this workspace, as a select of their ids.
async fn select_members(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    members: &Members,
) -> MutationResult<SelectStatement> {
    let mut select = Query::select();
    select
        .column((contact::Entity, contact::Column::Id))
        .from(contact::Entity)
        .and_where(contact::Column::WorkspaceId.eq(workspace_id));
    match members {
        Members::Ids(ids) => {
            if ids.len() > MAX_MEMBERS_PER_CALL {
                return Err(UserError::argument(
                    &["contactIds"],
                    UserErrorCode::TooMany,
                    format!("at most {MAX_MEMBERS_PER_CALL} contacts per call (got {})", ids.len()),
                )
                .into());
            }
            let found: HashSet<Uuid> = contact::Entity::find()
                .select_only()
                .column(contact::Column::Id)
                .filter(contact::Column::WorkspaceId.eq(workspace_id))
                .filter(contact::Column::Id.is_in(ids.iter().copied()))
                .into_tuple::<Uuid>()
                .all(db)
                .await?
                .into_iter()
                .collect();
            let missing: Vec<UserError> = ids
                .iter()
                .enumerate()
                .filter(|(_, id)| !found.contains(id))
                .map(|(i, id)| {
                    UserError::argument(
                        &["contactIds", &i.to_string()],
                        UserErrorCode::NotFound,
                        format!("no contact {} in this workspace", NodeKind::Contact.encode(*id)),
                    )
                })
                .collect();
            if !missing.is_empty() {
                return Err(missing.into());
            }
            select.and_where(contact::Column::Id.is_in(ids.iter().copied()));
        }
        Members::Filter(filter) => {
            let filter = filter.as_ref();
            let invalid = |message: String| UserError::new(&["filter"], UserErrorCode::Invalid, message);
            let ctx = FilterContext::load(db, workspace_id, Some(filter))
                .await
                .map_err(|e| invalid(e.message()))?;
            select.cond_where(filter.condition(&ctx).map_err(|e| invalid(e.message()))?);
            if filter.anonymous.is_none() {
                select.and_where(contact::Column::Anonymous.eq(false));
            }
        }
    }
    Ok(select.to_owned())
}

/// Adds contacts to a static segment; members already in it stay as they are. Returns how
/// many entered.
pub async fn add_members<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    workspace_id: Uuid,
    id: Uuid,
    members: Members,
) -> MutationResult<u64> {
    let txn = crate::db::begin_write(db).await?;
    let segment = lock_static(&txn, workspace_id, id).await?;
    let entering = select_members(&txn, workspace_id, &members).await?;
    let now = change_time(&segment);
    let entered = insert_members(&txn, &segment, entering, now).await?;
    finish(&txn, &segment, entered, 0, now, false).await?;
    let mut changes = Changes::new(workspace_id);
    if entered > 0 {
        changes.lists_changed.push(id);
    }
    crate::writes::commit(db, txn, changes).await?;
    Ok(entered)
}

/// Removes contacts from a static segment. Returns how many left.
pub async fn remove_members<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    workspace_id: Uuid,
    id: Uuid,
    members: Members,
) -> MutationResult<u64> {
    let txn = crate::db::begin_write(db).await?;
    let segment = lock_static(&txn, workspace_id, id).await?;
    let selected = select_members(&txn, workspace_id, &members).await?;
    let now = change_time(&segment);
    let mut leaving = Query::select();
    leaving
        .column(segment_member::Column::ContactId)
        .from(segment_member::Entity)
        .and_where(segment_member::Column::SegmentId.eq(id))
        .and_where(segment_member::Column::ContactId.in_subquery(selected.clone()));
    let exited = record_changes(&txn, &segment, &leaving, false, now).await?;
    if exited > 0 {
        let delete = Query::delete()
            .from_table(segment_member::Entity)
            .and_where(segment_member::Column::SegmentId.eq(id))
            .and_where(segment_member::Column::ContactId.in_subquery(selected))
            .to_owned();
        txn.execute(&delete).await?;
    }
    finish(&txn, &segment, 0, exited, now, false).await?;
    let mut changes = Changes::new(workspace_id);
    if exited > 0 {
        changes.lists_changed.push(id);
    }
    crate::writes::commit(db, txn, changes).await?;
    Ok(exited)
}

/// Parses a CSV of e-mail addresses: one per row, in the column headed `email` when there is a
/// header, else the first column. Returns the addresses, or the rows that are not addresses.
pub fn parse_email_csv(text: &str) -> Result<Vec<String>, Vec<UserError>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut column = 0;
    let mut emails = Vec::new();
    let mut errors = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(UserError::argument(
                    &["csv", &(row + 1).to_string()],
                    UserErrorCode::Invalid,
                    e.to_string(),
                ));
                continue;
            }
        };
        if row == 0
            && let Some(i) = record
                .iter()
                .position(|h| h.eq_ignore_ascii_case("email") || h.eq_ignore_ascii_case("e-mail"))
        {
            column = i;
            continue;
        }
        let value = record.get(column).unwrap_or_default();
        if value.is_empty() {
            continue;
        }
        match crate::values::parse_email(value) {
            Ok(email) => emails.push(email),
            Err(message) => errors.push(UserError::argument(
                &["csv", &(row + 1).to_string()],
                UserErrorCode::InvalidEmail,
                format!("row {}: {message}", row + 1),
            )),
        }
    }
    if errors.is_empty() { Ok(emails) } else { Err(errors) }
}

/// Adds the contacts with these e-mails to a static segment. Returns how many entered and the
/// addresses no contact has (reported, never silently dropped).
pub async fn import_emails<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    workspace_id: Uuid,
    id: Uuid,
    csv_text: &str,
) -> MutationResult<(u64, Vec<String>)> {
    let emails = parse_email_csv(csv_text)?;
    if emails.len() > 100_000 {
        return Err(UserError::argument(&["csv"], UserErrorCode::TooMany, "at most 100,000 rows per import").into());
    }
    lock_static(db, workspace_id, id).await?;
    let mut ids = Vec::new();
    let mut known = HashSet::new();
    for chunk in emails.chunks(1_000) {
        for (contact_id, email) in contact::Entity::find()
            .select_only()
            .column(contact::Column::Id)
            .column(contact::Column::Email)
            .filter(contact::Column::WorkspaceId.eq(workspace_id))
            .filter(contact::Column::Email.is_in(chunk.iter().cloned()))
            .into_tuple::<(Uuid, String)>()
            .all(db)
            .await?
        {
            ids.push(contact_id);
            known.insert(email);
        }
    }
    let mut unknown: Vec<String> = emails.into_iter().filter(|e| !known.contains(e)).collect();
    unknown.dedup();
    let mut entered = 0;
    for chunk in ids.chunks(MAX_MEMBERS_PER_CALL) {
        entered += add_members(db, workspace_id, id, Members::Ids(chunk.to_vec())).await?;
    }
    Ok((entered, unknown))
}
