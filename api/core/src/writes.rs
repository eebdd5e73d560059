//! The one write path. Every write records what it did in [`Changes`] and ends through
//! [`commit`], which commits its transaction and then runs [`after_commit`]: the only place
//! where the work that follows a write starts (segment membership today; scoring, workflows and
//! webhooks hook in here). The follow-up runs before `commit` returns, so a caller reads its
//! own writes.
//!
//! The follow-up is also recorded in the write's own transaction, as a job leased to this
//! process (the transactional outbox): done inline, the job is deleted; should the process die
//! between the commit and the end of the follow-up, or the follow-up fail, the lease expires or
//! the job is retried, and a worker runs it. The follow-up is idempotent (it re-evaluates the
//! contacts it names), so running it twice does no harm.
//!
//! Rules: a function that owns its transaction ends it with [`commit`]; a function that writes
//! inside its caller's transaction returns (or adds to) the caller's `Changes` instead.

use crate::jobs::{self, Job, JobError, NewJob};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect, TransactionSession,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a committed write did, in one workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    pub workspace_id: Uuid,
    pub contacts_created: Vec<Uuid>,
    /// Fields, tags, company, consent or list membership changed.
    pub contacts_changed: Vec<Uuid>,
    pub contacts_merged: Vec<Merge>,
    pub contacts_deleted: Vec<Uuid>,
    /// Companies created or changed: their contacts may match company conditions differently.
    pub companies_changed: Vec<Uuid>,
    pub companies_deleted: Vec<Uuid>,
    /// Static lists whose members were added or removed by hand.
    pub lists_changed: Vec<Uuid>,
    /// Events stored (not retries of stored ones), by contact and type.
    pub events: Vec<StoredEvent>,
}

/// `from` was merged into `into` and is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merge {
    pub into: Uuid,
    pub from: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StoredEvent {
    pub contact_id: Uuid,
    pub event_type: String,
}

impl Changes {
    pub fn new(workspace_id: Uuid) -> Changes {
        Changes {
            workspace_id,
            contacts_created: Vec::new(),
            contacts_changed: Vec::new(),
            contacts_merged: Vec::new(),
            contacts_deleted: Vec::new(),
            companies_changed: Vec::new(),
            companies_deleted: Vec::new(),
            lists_changed: Vec::new(),
            events: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.contacts_created.is_empty()
            && self.contacts_changed.is_empty()
            && self.contacts_merged.is_empty()
            && self.contacts_deleted.is_empty()
            && self.companies_changed.is_empty()
            && self.companies_deleted.is_empty()
            && self.lists_changed.is_empty()
            && self.events.is_empty()
    }

    /// Adds what another part of the same write did.
    pub fn absorb(&mut self, other: Changes) {
        debug_assert_eq!(self.workspace_id, other.workspace_id);
        self.contacts_created.extend(other.contacts_created);
        self.contacts_changed.extend(other.contacts_changed);
        self.contacts_merged.extend(other.contacts_merged);
        self.contacts_deleted.extend(other.contacts_deleted);
        self.companies_changed.extend(other.companies_changed);
        self.companies_deleted.extend(other.companies_deleted);
        self.lists_changed.extend(other.lists_changed);
        self.events.extend(other.events);
    }

    pub fn event(&mut self, contact_id: Uuid, event_type: impl Into<String>) {
        self.events.push(StoredEvent {
            contact_id,
            event_type: event_type.into(),
        });
    }

    /// The contacts still there whose state (not only their events) changed.
    fn contacts_to_reevaluate(&self) -> Vec<Uuid> {
        let gone: std::collections::HashSet<Uuid> = self
            .contacts_deleted
            .iter()
            .copied()
            .chain(self.contacts_merged.iter().map(|m| m.from))
            .collect();
        let mut ids: Vec<Uuid> = self
            .contacts_created
            .iter()
            .chain(&self.contacts_changed)
            .copied()
            .chain(self.contacts_merged.iter().map(|m| m.into))
            .filter(|id| !gone.contains(id))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Commits a write's (outermost) transaction, with the record of what follows it, then runs
/// what follows it.
pub async fn commit<C, T>(db: &C, txn: T, changes: Changes) -> Result<Changes, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
    T: TransactionSession + ConnectionTrait,
{
    let follow_up = if changes.is_empty() {
        None
    } else {
        let args = serde_json::to_value(&changes).map_err(|e| DbErr::Custom(e.to_string()))?;
        // Leased to this process for the workers' lease: a worker takes it over only once that
        // expires (the heartbeat extends it while this process runs workers).
        let job = NewJob::new(jobs::FOLLOW_UP, changes.workspace_id, args).leased_here_for(jobs::own_lease());
        crate::webhooks::record(&txn, changes.workspace_id, &webhook_events(&changes)).await?;
        jobs::enqueue(&txn, job).await?
    };
    txn.commit().await?;
    fault::after_commit();
    let Some(follow_up) = follow_up else {
        return Ok(changes);
    };
    match after_commit(db, &changes).await {
        Ok(()) => {
            if let Err(error) = jobs::queue::forget(db, follow_up).await {
                // It runs once more when its lease expires: harmless, it is idempotent.
                tracing::warn!(%error, job = %follow_up, "finished follow-up not deleted");
            }
        }
        Err(error) => {
            tracing::error!(%error, workspace_id = %changes.workspace_id, "follow-up of a write failed; a worker retries it");
            if let Err(error) = jobs::queue::retry_later(db, follow_up, &error.to_string()).await {
                tracing::error!(%error, job = %follow_up, "follow-up not handed to the workers; it runs when its lease expires");
            }
        }
    }
    Ok(changes)
}

/// What a write tells webhook endpoints about its contacts (segment and form events are
/// recorded where they happen).
fn webhook_events(changes: &Changes) -> Vec<crate::webhooks::Event> {
    use crate::webhooks::Event;
    let created: std::collections::HashSet<Uuid> = changes.contacts_created.iter().copied().collect();
    let mut events: Vec<Event> = changes
        .contacts_created
        .iter()
        .map(|id| Event::about_contact("contact.created", *id, serde_json::json!({})))
        .collect();
    let mut changed: Vec<Uuid> = changes
        .contacts_changed
        .iter()
        .copied()
        .filter(|id| !created.contains(id))
        .collect();
    changed.sort();
    changed.dedup();
    events.extend(
        changed
            .into_iter()
            .map(|id| Event::about_contact("contact.updated", id, serde_json::json!({}))),
    );
    events.extend(changes.contacts_merged.iter().map(|merge| {
        Event::about_contact(
            "contact.merged",
            merge.into,
            serde_json::json!({ "mergedContactId": crate::ids::NodeKind::Contact.encode(merge.from) }),
        )
    }));
    events.extend(
        changes
            .contacts_deleted
            .iter()
            .map(|id| Event::about_contact("contact.deleted", *id, serde_json::json!({}))),
    );
    events
}

/// The outbox's job: what follows a write whose inline follow-up did not finish.
pub async fn follow_up(db: DatabaseConnection, job: Job) -> Result<(), JobError> {
    let changes: Changes = serde_json::from_value(job.args.clone())
        .map_err(|e| JobError::Discard(format!("the job's changes do not read: {e}")))?;
    after_commit(&db, &changes).await?;
    Ok(())
}

/// What follows a committed write. The write stands whatever happens here; a failure is
/// retried by the workers.
async fn after_commit<C: ConnectionTrait + TransactionTrait>(db: &C, changes: &Changes) -> Result<(), DbErr> {
    if changes.is_empty() {
        return Ok(());
    }
    let workspace_id = changes.workspace_id;
    let mut changed = changes.contacts_to_reevaluate();
    if !changes.companies_changed.is_empty() {
        changed.extend(contacts_of(db, workspace_id, &changes.companies_changed).await?);
        changed.sort();
        changed.dedup();
    }
    let mut events: Vec<(Uuid, String)> = changes
        .events
        .iter()
        .map(|e| (e.contact_id, e.event_type.clone()))
        .collect();
    events.sort();
    events.dedup();
    let touched = crate::segments::Touched {
        changed,
        events,
        lists: changes.lists_changed.clone(),
    };
    crate::segments::refresh_contacts(db, workspace_id, &touched)
        .await
        .map_err(|error| DbErr::Custom(error.for_operator()))?;
    Ok(())
}

/// Faults injected by tests that kill the process at a chosen point (never set otherwise).
mod fault {
    use std::sync::OnceLock;

    /// `VOXTUR_FAULT=exit-after-commit`: the process exits right after a write's commit,
    /// before its follow-up, as a `kill -9` there would.
    pub fn after_commit() {
        static EXIT: OnceLock<bool> = OnceLock::new();
        if *EXIT.get_or_init(|| std::env::var("VOXTUR_FAULT").is_ok_and(|f| f == "exit-after-commit")) {
            tracing::warn!("fault injected: exiting after a commit");
            std::process::exit(86);
        }
    }
}

async fn contacts_of(db: &impl ConnectionTrait, workspace_id: Uuid, companies: &[Uuid]) -> Result<Vec<Uuid>, DbErr> {
    use entities::contact;
    contact::Entity::find()
        .select_only()
        .column(contact::Column::Id)
        .filter(contact::Column::WorkspaceId.eq(workspace_id))
        .filter(contact::Column::CompanyId.is_in(companies.iter().copied()))
        .into_tuple::<Uuid>()
        .all(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_merged_away_or_deleted_are_not_reevaluated() {
        let id = |n: u128| Uuid::from_u128(n);
        let mut changes = Changes::new(id(100));
        changes.contacts_created.push(id(1));
        changes.contacts_changed.extend([id(2), id(3), id(1)]);
        changes.contacts_merged.push(Merge {
            into: id(4),
            from: id(2),
        });
        changes.contacts_deleted.push(id(3));
        assert_eq!(changes.contacts_to_reevaluate(), vec![id(1), id(4)]);
    }
}
