//! Keeping dynamic segments current: after a write, for the contacts it touched; and every
//! minute, for the contacts whose events left a sliding window.

use super::{DYNAMIC, MAX_MEMBERS_PER_CALL, evaluate, stored_filter};
use crate::contacts::filter::ContactFilter;
use crate::error::ApiResult;
use entities::segment;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, TransactionTrait};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

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
