//! Segments: dynamic ones keep the contacts matching a stored contact filter, static ones
//! (marketing lists) the contacts added to them. Membership is materialized in
//! `segment_member`; every entry and exit is recorded in `segment_change` and on the contact's
//! timeline (`segment_entered` / `segment_exited`), so workflows can trigger on them.
//!
//! Evaluation is set-based SQL in one transaction: the filter compiles to one condition
//! (behaviour and membership conditions are subqueries), exits are `DELETE ... NOT IN`, entries
//! `INSERT ... SELECT ... NOT IN`. The same statements re-evaluate a few contacts (a scope), which
//! is how changes to contacts and arriving events keep membership current.

mod current;
pub mod export;
pub mod filter;
mod lists;

pub use current::{Touched, expire_windows, in_dependency_order, refresh_contacts};
pub use lists::{Members, add_members, import_emails, parse_email_csv, remove_members};

use crate::Patch;
use crate::contacts::filter::{ContactFilter, FilterContext};
use crate::error::{ApiError, ApiResult};
use crate::errors::{MutationResult, UserError, UserErrorCode};
use crate::ids::NodeKind;
use chrono::{DateTime, Utc};
use entities::{contact, event, segment, segment_change, segment_member};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, LockType, Query, SelectStatement};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect,
    TransactionSession, TransactionTrait,
};
use serde::Deserialize;
use std::collections::HashSet;
use uuid::Uuid;

pub const DYNAMIC: &str = "dynamic";
pub const STATIC: &str = "static";
/// Contacts per statement when adding or removing static members by id.
pub(crate) const MAX_MEMBERS_PER_CALL: usize = 1_000;

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
    if let Patch::Set(description) = &changes.description {
        crate::values::check_text(&["description"], description, crate::values::limits::TEXT)?;
    }
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
    if let Patch::Set(description) = &changes.description {
        crate::values::check_text(&["description"], description, crate::values::limits::TEXT)?;
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
    let whole = if scope.is_none() { "all" } else { "some" };
    metrics::counter!("voxtur_segment_evaluations_total", "contacts" => whole).increment(1);
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
pub(crate) fn change_time(segment: &segment::Model) -> DateTime<Utc> {
    let now = crate::now();
    segment
        .evaluated_at
        .map_or(now, |last| std::cmp::max(now, last + chrono::Duration::microseconds(1)))
}

/// Moves the cached count and the evaluation time (after evaluating every contact: recounts the
/// members, and moves the time its sliding windows are up to date).
pub(crate) async fn finish(
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

/// Tells the workspace's webhook endpoints who entered (or left) `segment` at `now`, in the
/// transaction that recorded it; reads the contacts only when an endpoint wants them.
async fn record_webhooks(
    db: &impl ConnectionTrait,
    segment: &segment::Model,
    entered: bool,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let event_type = if entered { "segment.entered" } else { "segment.exited" };
    if !crate::webhooks::wanted(db, segment.workspace_id, event_type).await? {
        return Ok(());
    }
    let contacts: Vec<Uuid> = segment_change::Entity::find()
        .select_only()
        .column(segment_change::Column::ContactId)
        .filter(segment_change::Column::SegmentId.eq(segment.id))
        .filter(segment_change::Column::At.eq(now))
        .filter(segment_change::Column::Entered.eq(entered))
        .into_tuple()
        .all(db)
        .await?;
    let data = serde_json::json!({ "segmentId": NodeKind::Segment.encode(segment.id) });
    let events: Vec<crate::webhooks::Event> = contacts
        .into_iter()
        .map(|contact| crate::webhooks::Event::about_contact(event_type, contact, data.clone()))
        .collect();
    crate::webhooks::record(db, segment.workspace_id, &events).await?;
    Ok(())
}

/// Records an entry or exit for every contact `contacts` selects (a select of one column,
/// `contact_id`): a `segment_change` row and a `segment_entered` / `segment_exited` event on the
/// contact's timeline. Returns how many.
pub(crate) async fn record_changes(
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
    record_webhooks(db, segment, entered, now).await?;
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
pub(crate) async fn insert_members(
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
