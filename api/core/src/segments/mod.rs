//! Segments: dynamic ones keep the contacts matching a stored contact filter, static ones
//! (marketing lists) the contacts added to them. Membership is materialized in
//! `segment_member`; every entry and exit is recorded in `segment_change` and on the contact's
//! timeline (`segment_entered` / `segment_exited`), so workflows can trigger on them.
//!
//! Evaluation is set-based SQL in one transaction: the filter compiles to one condition
//! (behaviour and membership conditions are subqueries), exits are `DELETE ... NOT IN`, entries
//! `INSERT ... SELECT ... NOT IN`. The same statements re-evaluate a few contacts (a scope), which
//! is how changes to contacts and arriving events keep membership current.

pub mod export;
pub mod filter;

use crate::Patch;
use crate::contacts::filter::{ContactFilter, FilterContext};
use crate::error::{ApiError, ApiResult};
use crate::errors::{MutationResult, UserError, UserErrorCode};
use crate::ids::NodeKind;
use crate::writes::Changes;
use chrono::{DateTime, Utc};
use entities::{contact, event, segment, segment_change, segment_member};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, LockType, Query, SelectStatement};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect,
    TransactionSession, TransactionTrait,
};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

pub const DYNAMIC: &str = "dynamic";
pub const STATIC: &str = "static";
/// Contacts per statement when adding or removing static members by id.
const MAX_MEMBERS_PER_CALL: usize = 1_000;

/// What a create or update sets; `None` leaves a field as it is.
#[derive(Default)]
pub struct SegmentChanges {
    pub name: Option<String>,
    pub description: Patch<String>,
    /// Dynamic segments only: the filter (stored in its serde form, see [`stored_filter`]).
    pub filter: Option<ContactFilter>,
}

/// How many contacts entered and left in one evaluation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    pub entered: u64,
    pub exited: u64,
}

/// A filter as stored: its serde form without the fields it leaves out (`null`s).
fn filter_json(filter: &ContactFilter) -> ApiResult<serde_json::Value> {
    fn without_nulls(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => map
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
            serde_json::Value::Array(items) => items.into_iter().map(without_nulls).collect(),
            other => other,
        }
    }
    serde_json::to_value(filter)
        .map(without_nulls)
        .map_err(|e| ApiError::Internal(Box::new(e)))
}

/// The stored filter of a dynamic segment: a `ContactFilter` in its serde form, whose names are
/// the API's (so filters stored as the client's GraphQL input, before this format, load too).
pub fn stored_filter(segment: &segment::Model) -> ApiResult<Option<ContactFilter>> {
    let Some(json) = &segment.filter else { return Ok(None) };
    ContactFilter::deserialize(json)
        .map(Some)
        .map_err(|e| ApiError::Internal(format!("segment {} filter: {e}", segment.id).into()))
}

pub async fn find(db: &impl ConnectionTrait, workspace_id: Uuid, id: Uuid) -> ApiResult<Option<segment::Model>> {
    Ok(segment::Entity::find_by_id(id)
        .filter(segment::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?)
}

async fn require(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    id: Uuid,
    field: &[&str],
) -> MutationResult<segment::Model> {
    find(db, workspace_id, id).await?.ok_or_else(|| {
        UserError::argument(
            field,
            UserErrorCode::NotFound,
            format!("no segment {} in this workspace", NodeKind::Segment.encode(id)),
        )
        .into()
    })
}

/// Checks a filter before it is saved: it compiles, every segment it names exists in this
/// workspace, and following those references never leads back to `own_id`.
async fn check_filter(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    own_id: Option<Uuid>,
    filter: &ContactFilter,
) -> MutationResult<()> {
    let invalid = |message: String| UserError::new(&["filter"], UserErrorCode::Invalid, message);
    let ctx = FilterContext::load(db, workspace_id, Some(filter))
        .await
        .map_err(|e| invalid(e.message()))?;
    filter.condition(&ctx).map_err(|e| match e {
        ApiError::BadUserInput(message) | ApiError::NotFound(message) => invalid(message).into(),
        other => crate::errors::MutationError::Api(other),
    })?;
    // Walk the references through stored filters, one query per level.
    let mut seen: HashSet<Uuid> = HashSet::new();
    let mut frontier: Vec<Uuid> = filter.segment_ids().map_err(|e| invalid(e.message()))?;
    let mut first_level = true;
    while !frontier.is_empty() {
        if let Some(own) = own_id
            && frontier.contains(&own)
        {
            return Err(UserError::new(
                &["filter", "segments"],
                UserErrorCode::Cycle,
                "this filter would make the segment contain itself through segment membership",
            )
            .into());
        }
        let rows = segment::Entity::find()
            .filter(segment::Column::WorkspaceId.eq(workspace_id))
            .filter(segment::Column::Id.is_in(frontier.clone()))
            .all(db)
            .await?;
        if first_level {
            let found: HashSet<Uuid> = rows.iter().map(|r| r.id).collect();
            if let Some(missing) = frontier.iter().find(|id| !found.contains(id)) {
                return Err(UserError::new(
                    &["filter", "segments"],
                    UserErrorCode::NotFound,
                    format!("no segment {} in this workspace", NodeKind::Segment.encode(*missing)),
                )
                .into());
            }
            first_level = false;
        }
        seen.extend(frontier.iter().copied());
        let mut next = Vec::new();
        for row in rows {
            if let Some(f) = stored_filter(&row)? {
                next.extend(f.segment_ids()?.into_iter().filter(|id| !seen.contains(id)));
            }
        }
        frontier = next;
    }
    Ok(())
}

fn check_name(name: &str) -> MutationResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(UserError::new(&["name"], UserErrorCode::Required, "a segment needs a name").into());
    }
    if name.chars().count() > 200 {
        return Err(UserError::new(&["name"], UserErrorCode::TooLong, "at most 200 characters").into());
    }
    Ok(name.to_owned())
}

async fn check_name_free(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    name: &str,
    own_id: Option<Uuid>,
) -> MutationResult<()> {
    let mut query = segment::Entity::find()
        .filter(segment::Column::WorkspaceId.eq(workspace_id))
        .filter(segment::Column::Name.eq(name));
    if let Some(id) = own_id {
        query = query.filter(segment::Column::Id.ne(id));
    }
    if query.one(db).await?.is_some() {
        return Err(UserError::new(
            &["name"],
            UserErrorCode::Taken,
            format!("a segment named \"{name}\" already exists"),
        )
        .into());
    }
    Ok(())
}

/// Creates a segment; a dynamic one is evaluated at once, so its members are there on return.
pub async fn create<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    workspace_id: Uuid,
    dynamic: bool,
    changes: SegmentChanges,
) -> MutationResult<segment::Model> {
    let name = check_name(changes.name.as_deref().unwrap_or_default())?;
    let filter = match (dynamic, changes.filter) {
        (true, Some(filter)) => Some(filter),
        (true, None) => {
            return Err(
                UserError::new(&["filter"], UserErrorCode::Required, "a dynamic segment needs a filter").into(),
            );
        }
        (false, Some(_)) => {
            return Err(UserError::new(
                &["filter"],
                UserErrorCode::Invalid,
                "a static segment (marketing list) has no filter; add members instead",
            )
            .into());
        }
        (false, None) => None,
    };
    if let Some(f) = &filter {
        check_filter(db, workspace_id, None, f).await?;
    }
    check_name_free(db, workspace_id, &name, None).await?;
    let now = crate::now();
    let model = segment::Model {
        id: Uuid::now_v7(),
        workspace_id,
        name,
        description: match changes.description {
            Patch::Set(d) => Some(d).filter(|d| !d.trim().is_empty()),
            Patch::Keep | Patch::Clear => None,
        },
        kind: if dynamic { DYNAMIC } else { STATIC }.to_owned(),
        filter: filter.as_ref().map(filter_json).transpose()?,
        member_count: 0,
        evaluated_at: None,
        windows_checked_at: None,
        created_at: now,
        updated_at: now,
    };
    let saved = segment::ActiveModel::from(model).reset_all().insert(db).await?;
    if dynamic {
        evaluate(db, saved.id, workspace_id, None).await?;
        return require(db, workspace_id, saved.id, &["id"]).await;
    }
    Ok(saved)
}

pub async fn update<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    workspace_id: Uuid,
    id: Uuid,
    changes: SegmentChanges,
) -> MutationResult<segment::Model> {
    let current = require(db, workspace_id, id, &["id"]).await?;
    let mut model = current.clone();
    if let Some(name) = &changes.name {
        model.name = check_name(name)?;
        check_name_free(db, workspace_id, &model.name, Some(id)).await?;
    }
    match changes.description {
        Patch::Set(d) => model.description = Some(d).filter(|d| !d.trim().is_empty()),
        Patch::Clear => model.description = None,
        Patch::Keep => {}
    }
    let refilter = changes.filter.is_some();
    if let Some(filter) = changes.filter {
        if model.kind != DYNAMIC {
            return Err(UserError::new(
                &["filter"],
                UserErrorCode::Invalid,
                "a static segment (marketing list) has no filter; add members instead",
            )
            .into());
        }
        check_filter(db, workspace_id, Some(id), &filter).await?;
        model.filter = Some(filter_json(&filter)?);
    }
    model.updated_at = crate::now();
    let saved = segment::ActiveModel::from(model).reset_all().update(db).await?;
    if refilter {
        evaluate(db, id, workspace_id, None).await?;
        return require(db, workspace_id, id, &["id"]).await;
    }
    Ok(saved)
}

/// Deletes a segment. Refused while another segment's filter names it.
pub async fn delete(db: &impl ConnectionTrait, workspace_id: Uuid, id: Uuid) -> MutationResult<Uuid> {
    require(db, workspace_id, id, &["id"]).await?;
    for other in segment::Entity::find()
        .filter(segment::Column::WorkspaceId.eq(workspace_id))
        .filter(segment::Column::Kind.eq(DYNAMIC))
        .filter(segment::Column::Id.ne(id))
        .all(db)
        .await?
    {
        if stored_filter(&other)?.is_some_and(|f| f.segment_ids().unwrap_or_default().contains(&id)) {
            return Err(UserError::argument(
                &["id"],
                UserErrorCode::Invalid,
                format!("segment \"{}\" refers to this one; change its filter first", other.name),
            )
            .into());
        }
    }
    segment::Entity::delete_by_id(id).exec(db).await?;
    Ok(id)
}

/// The contacts matching a dynamic segment's filter (identified contacts unless the filter
/// asks for anonymous ones), optionally among `scope`.
fn matching(filter: &ContactFilter, ctx: &FilterContext) -> ApiResult<SelectStatement> {
    let mut select = Query::select();
    select
        .column((contact::Entity, contact::Column::Id))
        .from(contact::Entity)
        .and_where(contact::Column::WorkspaceId.eq(ctx.workspace_id))
        .cond_where(filter.condition(ctx)?);
    if filter.anonymous.is_none() {
        select.and_where(contact::Column::Anonymous.eq(false));
    }
    if let Some(ids) = &ctx.scope {
        select.and_where(contact::Column::Id.is_in(ids.iter().copied()));
    }
    Ok(select.to_owned())
}

/// Re-evaluates a dynamic segment for every contact (`scope: None`) or some, in its own
/// transaction, and records who entered and left. Evaluations of one segment run one at a time
/// (its row is locked), so their records never interleave.
pub async fn evaluate<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    id: Uuid,
    workspace_id: Uuid,
    scope: Option<Vec<Uuid>>,
) -> ApiResult<Evaluation> {
    let txn = crate::db::begin_write(db).await?;
    let mut query = segment::Entity::find_by_id(id).filter(segment::Column::WorkspaceId.eq(workspace_id));
    if txn.get_database_backend() == DbBackend::Postgres {
        query = query.lock(LockType::Update);
    }
    let Some(segment) = query.one(&txn).await? else {
        return Err(ApiError::NotFound(format!(
            "no segment {}",
            NodeKind::Segment.encode(id)
        )));
    };
    let Some(filter) = stored_filter(&segment)? else {
        return Ok(Evaluation::default());
    };
    let mut ctx = FilterContext::load(&txn, workspace_id, Some(&filter)).await?;
    let now = change_time(&segment);
    ctx.now = now;
    ctx.scope = scope;
    let mut matching = matching(&filter, &ctx)?;
    if ctx.scope.is_none() {
        // A full evaluation computes the matching set once, into a temporary table, instead of
        // once for exits and again for entries.
        let backend = txn.get_database_backend();
        let create = match backend {
            DbBackend::Postgres => {
                "CREATE TEMP TABLE IF NOT EXISTS segment_eval (id uuid PRIMARY KEY) ON COMMIT DELETE ROWS"
            }
            _ => "CREATE TEMP TABLE IF NOT EXISTS segment_eval (id BLOB PRIMARY KEY)",
        };
        txn.execute_unprepared(create).await?;
        txn.execute_unprepared("DELETE FROM segment_eval").await?;
        let fill = Query::insert()
            .into_table(Alias::new("segment_eval"))
            .columns([Alias::new("id")])
            .select_from(matching.clone())
            .map_err(|e| ApiError::Internal(e.to_string().into()))?
            .to_owned();
        txn.execute(&fill).await?;
        if backend == DbBackend::Postgres {
            // Fresh statistics for the planner: it picks hash joins over a large set.
            txn.execute_unprepared("ANALYZE segment_eval").await?;
        }
        matching = Query::select()
            .expr_as(
                Expr::col((Alias::new("segment_eval"), Alias::new("id"))),
                Alias::new("id"),
            )
            .from(Alias::new("segment_eval"))
            .to_owned();
    }
    let members_in_scope = |select: &mut SelectStatement| {
        if let Some(ids) = &ctx.scope {
            select.and_where(segment_member::Column::ContactId.is_in(ids.iter().copied()));
        }
    };
    // "Matches" and "is a member" are correlated existence tests: anti-joins that scale to
    // millions of members (a large `NOT IN` list that does not fit in memory is scanned per row).
    let matches = |contact: Expr| {
        let c = Alias::new("x");
        Expr::exists(
            Query::select()
                .expr(Expr::val(1))
                .from_subquery(matching.clone(), c.clone())
                .and_where(Expr::col((c, Alias::new("id"))).eq(contact))
                .to_owned(),
        )
    };
    let member_id = || Expr::col((segment_member::Entity, segment_member::Column::ContactId));

    // Exits: members that no longer match.
    let mut leaving = Query::select();
    leaving
        .column(segment_member::Column::ContactId)
        .from(segment_member::Entity)
        .and_where(segment_member::Column::SegmentId.eq(id))
        .and_where(matches(member_id()).not());
    members_in_scope(&mut leaving);
    let exited = record_changes(&txn, &segment, &leaving, false, now).await?;
    if exited > 0 {
        let mut delete = Query::delete();
        delete
            .from_table(segment_member::Entity)
            .and_where(segment_member::Column::SegmentId.eq(id))
            .and_where(matches(member_id()).not());
        if let Some(ids) = &ctx.scope {
            delete.and_where(segment_member::Column::ContactId.is_in(ids.iter().copied()));
        }
        txn.execute(&delete).await?;
    }

    // Entries: matching contacts not yet members, stamped with this evaluation's time.
    let entered = insert_members(&txn, &segment, matching, now).await?;
    finish(&txn, &segment, entered, exited, now, ctx.scope.is_none()).await?;
    txn.commit().await?;
    Ok(Evaluation { entered, exited })
}

/// The time of a membership change: now, but strictly after the segment's last change, since
/// a change's entries are told apart by it (changes of one segment take turns on its row).
fn change_time(segment: &segment::Model) -> DateTime<Utc> {
    let now = crate::now();
    segment
        .evaluated_at
        .map_or(now, |last| std::cmp::max(now, last + chrono::Duration::microseconds(1)))
}

/// Moves the cached count and the evaluation time (after evaluating every contact: recounts the
/// members, and moves the time its sliding windows are up to date).
async fn finish(
    db: &impl ConnectionTrait,
    segment: &segment::Model,
    entered: u64,
    exited: u64,
    now: DateTime<Utc>,
    full: bool,
) -> ApiResult<()> {
    let mut update = segment::Entity::update_many().col_expr(segment::Column::EvaluatedAt, Expr::val(now));
    if full {
        // Having looked at everyone, count the members themselves: a repair after membership
        // was damaged behind the API's back must not carry the damage on in the cached count.
        let members = Query::select()
            .expr(Expr::cust("COUNT(*)"))
            .from(segment_member::Entity)
            .and_where(segment_member::Column::SegmentId.eq(segment.id))
            .to_owned();
        update = update
            .col_expr(segment::Column::WindowsCheckedAt, Expr::val(now))
            .col_expr(
                segment::Column::MemberCount,
                Expr::SubQuery(None, Box::new(members.into())),
            );
    } else {
        let delta = entered as i64 - exited as i64;
        update = update.col_expr(
            segment::Column::MemberCount,
            Expr::col(segment::Column::MemberCount).add(delta),
        );
    }
    update.filter(segment::Column::Id.eq(segment.id)).exec(db).await?;
    Ok(())
}

/// Records an entry or exit for every contact `contacts` selects (a select of one column,
/// `contact_id`): a `segment_change` row and a `segment_entered` / `segment_exited` event on the
/// contact's timeline. Returns how many.
async fn record_changes(
    db: &impl ConnectionTrait,
    segment: &segment::Model,
    contacts: &SelectStatement,
    entered: bool,
    now: DateTime<Utc>,
) -> ApiResult<u64> {
    let backend = db.get_database_backend();
    let new_id = || match backend {
        DbBackend::Postgres => Expr::cust("gen_random_uuid()"),
        _ => Expr::cust("randomblob(16)"),
    };
    let c = Alias::new("c");
    let rows = Query::select()
        .expr(new_id())
        .expr(Expr::val(segment.workspace_id))
        .expr(Expr::val(segment.id))
        .column((c.clone(), segment_member::Column::ContactId))
        .expr(Expr::val(entered))
        .expr(Expr::val(now))
        .from_subquery(contacts.clone(), c)
        .to_owned();
    let insert = Query::insert()
        .into_table(segment_change::Entity)
        .columns([
            segment_change::Column::Id,
            segment_change::Column::WorkspaceId,
            segment_change::Column::SegmentId,
            segment_change::Column::ContactId,
            segment_change::Column::Entered,
            segment_change::Column::At,
        ])
        .select_from(rows)
        .map_err(|e| ApiError::Internal(e.to_string().into()))?
        .to_owned();
    let count = db.execute(&insert).await?.rows_affected();
    if count == 0 {
        return Ok(0);
    }
    let reference = [
        sea_orm::Value::from(NodeKind::Segment.encode(segment.id)),
        sea_orm::Value::from(segment.name.clone()),
    ];
    let properties = match backend {
        DbBackend::Postgres => Expr::cust_with_values(
            "jsonb_build_object('segmentId', $1::text, 'segment', $2::text)",
            reference,
        ),
        _ => Expr::cust_with_values("json_object('segmentId', ?, 'segment', ?)", reference),
    };
    let kind = if entered { "segment_entered" } else { "segment_exited" };
    let events = Query::select()
        .expr(new_id())
        .column(segment_change::Column::WorkspaceId)
        .column(segment_change::Column::ContactId)
        .expr(Expr::val(kind))
        .expr(Expr::val(now))
        .expr(Expr::val(now))
        .expr(Expr::val("segments"))
        .expr(properties)
        .from(segment_change::Entity)
        .and_where(segment_change::Column::SegmentId.eq(segment.id))
        .and_where(segment_change::Column::At.eq(now))
        .and_where(segment_change::Column::Entered.eq(entered))
        .to_owned();
    let insert = Query::insert()
        .into_table(event::Entity)
        .columns([
            event::Column::Id,
            event::Column::WorkspaceId,
            event::Column::ContactId,
            event::Column::EventType,
            event::Column::OccurredAt,
            event::Column::ReceivedAt,
            event::Column::Source,
            event::Column::Properties,
        ])
        .select_from(events)
        .map_err(|e| ApiError::Internal(e.to_string().into()))?
        .to_owned();
    db.execute(&insert).await?;
    let recorded = Query::select()
        .columns([segment_change::Column::ContactId, segment_change::Column::WorkspaceId])
        .from(segment_change::Entity)
        .and_where(segment_change::Column::SegmentId.eq(segment.id))
        .and_where(segment_change::Column::At.eq(now))
        .and_where(segment_change::Column::Entered.eq(entered))
        .to_owned();
    crate::events::tally::add_each(db, segment.workspace_id, recorded, kind, now).await?;
    Ok(count)
}

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

/// A correlated test: `contact` is a member of the segment (an index probe per row).
fn is_member(segment_id: Uuid, contact: Expr) -> Expr {
    let m = Alias::new("m");
    Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from_as(segment_member::Entity, m.clone())
            .and_where(Expr::col((m.clone(), segment_member::Column::SegmentId)).eq(segment_id))
            .and_where(Expr::col((m, segment_member::Column::ContactId)).eq(contact))
            .to_owned(),
    )
}

/// Makes members, entered at `now`, of the contacts `candidates` selects (one column, `id`)
/// that are not members yet, and records their entries. Returns how many entered.
async fn insert_members(
    db: &impl ConnectionTrait,
    segment: &segment::Model,
    candidates: SelectStatement,
    now: DateTime<Utc>,
) -> ApiResult<u64> {
    let x = Alias::new("x");
    let entering = Query::select()
        .expr(Expr::val(segment.id))
        .column((x.clone(), Alias::new("id")))
        .expr(Expr::val(segment.workspace_id))
        .expr(Expr::val(now))
        .from_subquery(candidates, x.clone())
        .and_where(is_member(segment.id, Expr::col((x, Alias::new("id")))).not())
        .to_owned();
    let insert = Query::insert()
        .into_table(segment_member::Entity)
        .columns([
            segment_member::Column::SegmentId,
            segment_member::Column::ContactId,
            segment_member::Column::WorkspaceId,
            segment_member::Column::EnteredAt,
        ])
        .select_from(entering)
        .map_err(|e| ApiError::Internal(e.to_string().into()))?
        .to_owned();
    let entered = db.execute(&insert).await?.rows_affected();
    if entered > 0 {
        let new_members = Query::select()
            .column(segment_member::Column::ContactId)
            .from(segment_member::Entity)
            .and_where(segment_member::Column::SegmentId.eq(segment.id))
            .and_where(segment_member::Column::EnteredAt.eq(now))
            .to_owned();
        record_changes(db, segment, &new_members, true, now).await?;
    }
    Ok(entered)
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

/// Takes a contact about to be deleted (or merged away) out of every segment it is in:
/// records the exits and keeps the member counts true (the membership rows would otherwise
/// go silently with the contact). Call inside the deleting transaction, before the delete.
pub async fn leave_all(db: &impl ConnectionTrait, contact_id: Uuid) -> ApiResult<()> {
    let memberships: Vec<(segment_member::Model, Option<segment::Model>)> = segment_member::Entity::find()
        .find_also_related(segment::Entity)
        .filter(segment_member::Column::ContactId.eq(contact_id))
        .all(db)
        .await?;
    for (_, segment) in memberships {
        let Some(segment) = segment else { continue };
        let now = change_time(&segment);
        let leaving = Query::select()
            .column(segment_member::Column::ContactId)
            .from(segment_member::Entity)
            .and_where(segment_member::Column::SegmentId.eq(segment.id))
            .and_where(segment_member::Column::ContactId.eq(contact_id))
            .to_owned();
        let exited = record_changes(db, &segment, &leaving, false, now).await?;
        segment_member::Entity::delete_many()
            .filter(segment_member::Column::SegmentId.eq(segment.id))
            .filter(segment_member::Column::ContactId.eq(contact_id))
            .exec(db)
            .await?;
        finish(db, &segment, 0, exited, now, false).await?;
    }
    Ok(())
}

/// What a saved write did to contacts, to tell which segments it can move.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Touched {
    /// Contacts created, changed (fields, tags, company) or merged into: any segment may move
    /// them.
    pub changed: Vec<Uuid>,
    /// Contacts that gained events, with each event's type: only segments that count events of
    /// that type (or read activity times, or other segments) may move them.
    pub events: Vec<(Uuid, String)>,
    /// Static lists whose members changed: the segments naming them are evaluated in full.
    pub lists: Vec<Uuid>,
}

impl Touched {
    pub fn changed(ids: Vec<Uuid>) -> Touched {
        Touched {
            changed: ids,
            events: Vec::new(),
            lists: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.events.is_empty() && self.lists.is_empty()
    }

    /// The contacts a segment with this filter must re-evaluate.
    fn scope_for(&self, filter: &ContactFilter) -> ApiResult<Vec<Uuid>> {
        let everything = !filter.segment_ids()?.is_empty() || filter.uses_activity_times();
        let types = filter.event_types();
        let mut ids: Vec<Uuid> = self
            .changed
            .iter()
            .copied()
            .chain(
                self.events
                    .iter()
                    .filter(|(_, t)| everything || types.contains(t.as_str()))
                    .map(|(id, _)| *id),
            )
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}

/// Re-evaluates the workspace's dynamic segments for the contacts a write touched, each segment
/// only for the contacts it can concern. Segments that name others come after them.
pub async fn refresh_contacts<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    workspace_id: Uuid,
    touched: &Touched,
) -> ApiResult<()> {
    if touched.is_empty() {
        return Ok(());
    }
    // Lists changed, and the segments evaluated in full because they name one.
    let mut moved: HashSet<Uuid> = touched.lists.iter().copied().collect();
    for (segment, filter) in in_dependency_order(db, workspace_id).await? {
        if !moved.is_empty() && filter.segment_ids()?.iter().any(|named| moved.contains(named)) {
            evaluate(db, segment.id, workspace_id, None).await?;
            moved.insert(segment.id);
            continue;
        }
        let scope = touched.scope_for(&filter)?;
        for chunk in scope.chunks(MAX_MEMBERS_PER_CALL) {
            evaluate(db, segment.id, workspace_id, Some(chunk.to_vec())).await?;
        }
    }
    Ok(())
}

/// The workspace's dynamic segments, each after every segment its filter names.
pub async fn in_dependency_order(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
) -> ApiResult<Vec<(segment::Model, ContactFilter)>> {
    let segments = segment::Entity::find()
        .filter(segment::Column::WorkspaceId.eq(workspace_id))
        .filter(segment::Column::Kind.eq(DYNAMIC))
        .all(db)
        .await?;
    // Each filter is parsed once here and handed on with its segment.
    let mut pending: Vec<(segment::Model, ContactFilter, Vec<Uuid>)> = Vec::with_capacity(segments.len());
    for s in segments {
        if let Some(filter) = stored_filter(&s)? {
            let refs = filter.segment_ids()?;
            pending.push((s, filter, refs));
        }
    }
    let dynamic: HashSet<Uuid> = pending.iter().map(|(s, _, _)| s.id).collect();
    let mut done: HashSet<Uuid> = HashSet::new();
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let before = pending.len();
        let (ready, rest): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|(_, _, refs)| refs.iter().all(|r| done.contains(r) || !dynamic.contains(r)));
        pending = rest;
        for (s, filter, _) in ready {
            done.insert(s.id);
            ordered.push((s, filter));
        }
        if pending.len() == before {
            // Saving refuses cycles; should one exist anyway, evaluate the rest as they come.
            ordered.extend(pending.drain(..).map(|(s, filter, _)| (s, filter)));
        }
    }
    Ok(ordered)
}

/// Beyond this many contacts to look at, the minute task evaluates a segment in full.
const WINDOW_SCOPE_LIMIT: usize = 5_000;

/// Brings sliding windows up to date, so contacts leave (or, under `atMost`, enter) as events
/// age out of a window. Run by the server every minute. Only the contacts with events that
/// left a window since the segment's last check are evaluated (a minute's worth of events from
/// D days ago), then the segments naming a changed one, for the same contacts; a segment never
/// checked is evaluated in full. Returns how many segment evaluations ran.
pub async fn expire_windows<C: ConnectionTrait + TransactionTrait>(db: &C) -> ApiResult<u64> {
    let mut evaluated = 0;
    let workspaces: Vec<Uuid> = segment::Entity::find()
        .select_only()
        .column(segment::Column::WorkspaceId)
        .distinct()
        .filter(segment::Column::Kind.eq(DYNAMIC))
        .into_tuple::<Uuid>()
        .all(db)
        .await?;
    for workspace_id in workspaces {
        // The contacts each evaluated segment looked at (`None`: all of them).
        let mut moved: HashMap<Uuid, Option<HashSet<Uuid>>> = HashMap::new();
        for (segment, filter) in in_dependency_order(db, workspace_id).await? {
            let mut concerned = false;
            let mut scope: Option<HashSet<Uuid>> = Some(HashSet::new());
            for named in filter.segment_ids()? {
                if let Some(looked_at) = moved.get(&named) {
                    concerned = true;
                    match (looked_at, &mut scope) {
                        (Some(ids), Some(scope)) => scope.extend(ids),
                        _ => scope = None,
                    }
                }
            }
            let windows = filter.windowed_events();
            let checked = crate::now();
            if !windows.is_empty() {
                concerned = true;
                match (segment.windows_checked_at, &mut scope) {
                    (Some(from), Some(scope)) => {
                        for window in windows {
                            if let Some(left) = window.left_window(workspace_id, from, checked) {
                                let rows = db.query_all(&left).await?;
                                for row in rows {
                                    scope.insert(row.try_get_by_index::<Uuid>(0)?);
                                }
                            }
                        }
                    }
                    _ => scope = None,
                }
            }
            if !concerned {
                continue;
            }
            if scope.as_ref().is_some_and(|s| s.len() > WINDOW_SCOPE_LIMIT) {
                scope = None;
            }
            match &scope {
                Some(ids) if ids.is_empty() => {}
                _ => {
                    evaluate(
                        db,
                        segment.id,
                        workspace_id,
                        scope.clone().map(|s| s.into_iter().collect()),
                    )
                    .await?;
                    evaluated += 1;
                }
            }
            if scope.is_some() && segment.windows_checked_at.is_some() {
                segment::Entity::update_many()
                    .col_expr(segment::Column::WindowsCheckedAt, Expr::val(checked))
                    .filter(segment::Column::Id.eq(segment.id))
                    .exec(db)
                    .await?;
            }
            moved.insert(segment.id, scope);
        }
    }
    Ok(evaluated)
}
