//! The background: jobs for admins (`jobs`, `jobRetry`, `jobCancel`) and the in-app
//! notifications (`notifications`, `notificationMarkRead`).

use crate::OrderDirection;
use crate::guards::ScopeGuard;
use crate::relay::{NodeId, NodeKind, connection, connection_cost, decode_as};
use crate::request;
use crate::user_error::{UserError, into_payload};
use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entities::{job, notification};
use sea_orm::{ColumnTrait, EntityTrait, IntoSimpleExpr, QueryFilter};
use voxtur_core::auth::Scope;
use voxtur_core::listing::{PageArgs, SortSpec, timestamp_key};

/// Where a job stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for its time (a timer, or a retry after a failed attempt).
    Scheduled,
    /// Due, waiting for a worker.
    Available,
    /// Held by a worker.
    Running,
    /// Done.
    Completed,
    /// Failed its last attempt, or failed in a way no attempt can get past; `jobRetry` runs it again.
    Discarded,
    /// Cancelled by an admin.
    Cancelled,
}

impl JobState {
    fn stored(self) -> voxtur_core::jobs::State {
        use voxtur_core::jobs::State;
        match self {
            JobState::Scheduled => State::Scheduled,
            JobState::Available => State::Available,
            JobState::Running => State::Running,
            JobState::Completed => State::Completed,
            JobState::Discarded => State::Discarded,
            JobState::Cancelled => State::Cancelled,
        }
    }

    fn of(stored: &str) -> JobState {
        use voxtur_core::jobs::State;
        match State::parse(stored) {
            Some(State::Scheduled) => JobState::Scheduled,
            Some(State::Available) => JobState::Available,
            Some(State::Completed) => JobState::Completed,
            Some(State::Discarded) => JobState::Discarded,
            Some(State::Cancelled) => JobState::Cancelled,
            Some(State::Running) | None => JobState::Running,
        }
    }
}

/// Which jobs to list.
#[derive(InputObject, Default)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this kind (`segments.export`, `contacts.import`, `write.follow_up`, ...).
    pub kind: Option<String>,
    /// Only jobs of this queue.
    pub queue: Option<String>,
}

pub struct Job(pub job::Model);

/// A failed attempt of a job.
#[derive(SimpleObject)]
pub struct JobAttemptError {
    /// Which attempt (1 for the first).
    pub attempt: i32,
    /// When it failed.
    pub at: Option<DateTime<Utc>>,
    /// Why.
    pub message: String,
}

/// A piece of background work of the workspace (an export, an import, the work that follows a
/// write), run at least once, retried with back-off.
#[Object]
impl Job {
    /// Global id.
    async fn id(&self) -> ID {
        NodeKind::Job.id(self.0.id)
    }

    /// What the job does (`segments.export`, `contacts.import`, `write.follow_up`, ...).
    async fn kind(&self) -> &str {
        &self.0.kind
    }

    /// The queue it waits in.
    async fn queue(&self) -> &str {
        &self.0.queue
    }

    /// Where it stands.
    async fn state(&self) -> JobState {
        JobState::of(&self.0.state)
    }

    /// 0 runs first, 3 last.
    async fn priority(&self) -> i32 {
        self.0.priority.into()
    }

    /// Attempts made so far.
    async fn attempt(&self) -> i32 {
        self.0.attempt
    }

    /// Attempts it gets before it is discarded.
    async fn max_attempts(&self) -> i32 {
        self.0.max_attempts
    }

    /// When it is (or was) due.
    async fn run_at(&self) -> DateTime<Utc> {
        self.0.run_at
    }

    /// When it was enqueued.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it completed, was discarded or was cancelled.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }

    /// What it was given.
    async fn args(&self) -> Json<serde_json::Value> {
        Json(self.0.args.clone())
    }

    /// Its failed attempts, the latest 20, oldest first.
    async fn errors(&self) -> Vec<JobAttemptError> {
        self.0
            .errors
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| JobAttemptError {
                        attempt: e["attempt"].as_i64().unwrap_or_default() as i32,
                        at: e["at"]
                            .as_str()
                            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                            .map(|t| t.to_utc()),
                        message: e["error"].as_str().unwrap_or_default().to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

connection!(JobConnection, JobEdge, Job, job::Model);

impl From<job::Model> for Job {
    fn from(model: job::Model) -> Job {
        Job(model)
    }
}

pub struct Notification(pub notification::Model);

/// Something that happened for people of the workspace to see.
#[Object]
impl Notification {
    /// Global id.
    async fn id(&self) -> ID {
        NodeKind::Notification.id(self.0.id)
    }

    /// What happened: `form_submitted`, ...
    async fn kind(&self) -> &str {
        &self.0.kind
    }

    /// Its details (a submitted form: `formId`, `formName`, `contactId`, `values`).
    async fn payload(&self) -> Json<serde_json::Value> {
        Json(self.0.payload.clone())
    }

    /// The member it is for (the contact's owner), if anyone in particular.
    async fn user_id(&self) -> Option<ID> {
        self.0.user_id.map(|id| NodeKind::User.id(id))
    }

    /// When it happened.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it was marked read; null while unread.
    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.0.read_at
    }
}

connection!(
    NotificationConnection,
    NotificationEdge,
    Notification,
    notification::Model
);

impl From<notification::Model> for Notification {
    fn from(model: notification::Model) -> Notification {
        Notification(model)
    }
}

#[derive(Default)]
pub struct JobQuery;

#[Object]
impl JobQuery {
    /// The workspace's jobs, newest first (finished ones are kept a day).
    #[graphql(
        guard = "ScopeGuard(Scope::WorkspaceAdmin)",
        complexity = "connection_cost(first, None, child_complexity)"
    )]
    async fn jobs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which jobs.")] filter: Option<JobFilter>,
        #[graphql(desc = "Page size (1 to 100, default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after.")] after: Option<String>,
    ) -> async_graphql::Result<JobConnection> {
        let r = request(ctx)?;
        let filter = filter.unwrap_or_default();
        let spec = SortSpec {
            list: "jobs",
            keys: vec![timestamp_key::<job::Model>(
                "createdAt",
                job::Column::CreatedAt.into_simple_expr(),
                OrderDirection::Desc.into(),
                |m| &m.created_at,
            )],
            id_expr: job::Column::Id.into_simple_expr(),
            id_of: |m| m.id,
        };
        let mut select = job::Entity::find().filter(job::Column::WorkspaceId.eq(r.principal.workspace_id));
        if let Some(state) = filter.state {
            select = select.filter(job::Column::State.eq(state.stored().as_str()));
        }
        if let Some(kind) = filter.kind {
            select = select.filter(job::Column::Kind.eq(kind));
        }
        if let Some(queue) = filter.queue {
            select = select.filter(job::Column::Queue.eq(queue));
        }
        let with_total = ctx.look_ahead().field("totalCount").exists();
        Ok(spec
            .fetch(r.db, select, &PageArgs::forward(first, after), with_total)
            .await?
            .into())
    }

    /// The workspace's notifications, newest first.
    #[graphql(
        guard = "ScopeGuard(Scope::ContactsRead)",
        complexity = "connection_cost(first, None, child_complexity)"
    )]
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only those not yet read.", default = false)] unread_only: bool,
        #[graphql(desc = "Page size (1 to 100, default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after.")] after: Option<String>,
    ) -> async_graphql::Result<NotificationConnection> {
        let r = request(ctx)?;
        let spec = SortSpec {
            list: "notifications",
            keys: vec![timestamp_key::<notification::Model>(
                "createdAt",
                notification::Column::CreatedAt.into_simple_expr(),
                OrderDirection::Desc.into(),
                |m| &m.created_at,
            )],
            id_expr: notification::Column::Id.into_simple_expr(),
            id_of: |m| m.id,
        };
        let mut select =
            notification::Entity::find().filter(notification::Column::WorkspaceId.eq(r.principal.workspace_id));
        if unread_only {
            select = select.filter(notification::Column::ReadAt.is_null());
        }
        let with_total = ctx.look_ahead().field("totalCount").exists();
        Ok(spec
            .fetch(r.db, select, &PageArgs::forward(first, after), with_total)
            .await?
            .into())
    }
}

/// A job after `jobRetry` or `jobCancel`.
#[derive(SimpleObject)]
pub struct JobPayload {
    /// The job as it now is; null when refused.
    pub job: Option<Job>,
    /// Why it was refused.
    pub user_errors: Vec<UserError>,
}

/// Notifications after `notificationMarkRead`.
#[derive(SimpleObject)]
pub struct NotificationMarkReadPayload {
    /// The notifications, read; none when refused.
    pub notifications: Vec<Notification>,
    /// Why it was refused.
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct JobMutation;

#[Object]
impl JobMutation {
    /// Runs a discarded or cancelled job again, from its first attempt.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn job_retry(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The job.")] id: ID,
    ) -> async_graphql::Result<JobPayload> {
        steer(ctx, &id, Steer::Retry).await
    }

    /// Cancels a job that has not finished (a running job's work is not interrupted, but its
    /// outcome is not recorded).
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn job_cancel(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The job.")] id: ID,
    ) -> async_graphql::Result<JobPayload> {
        steer(ctx, &id, Steer::Cancel).await
    }

    /// Marks notifications read (at most 100 at once).
    #[graphql(guard = "ScopeGuard(Scope::ContactsRead)")]
    async fn notification_mark_read(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The notifications, at most 100.")] ids: Vec<ID>,
    ) -> async_graphql::Result<NotificationMarkReadPayload> {
        let r = request(ctx)?;
        let mut uuids = Vec::with_capacity(ids.len());
        let mut user_errors = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match decode_as(id, NodeKind::Notification) {
                Some(uuid) => uuids.push(uuid),
                None => user_errors.push(UserError::new(
                    &["ids", &i.to_string()],
                    crate::user_error::UserErrorCode::NotFound,
                    "not a notification id",
                )),
            }
        }
        if !user_errors.is_empty() {
            return Ok(NotificationMarkReadPayload {
                notifications: Vec::new(),
                user_errors,
            });
        }
        let (marked, user_errors) =
            into_payload(voxtur_core::notifications::mark_read(r.db, r.principal.workspace_id, &uuids).await)?;
        Ok(NotificationMarkReadPayload {
            notifications: marked.unwrap_or_default().into_iter().map(Notification).collect(),
            user_errors,
        })
    }
}

/// What an admin does to a job.
enum Steer {
    Retry,
    Cancel,
}

async fn steer(ctx: &Context<'_>, id: &ID, action: Steer) -> async_graphql::Result<JobPayload> {
    let r = request(ctx)?;
    let Some(uuid) = decode_as(id, NodeKind::Job) else {
        return Ok(not_a_job());
    };
    let workspace_id = r.principal.workspace_id;
    let outcome = match action {
        Steer::Retry => voxtur_core::jobs::retry(r.db, workspace_id, uuid).await,
        Steer::Cancel => voxtur_core::jobs::cancel(r.db, workspace_id, uuid).await,
    };
    let (job, user_errors) = into_payload(outcome)?;
    Ok(JobPayload {
        job: job.map(Job),
        user_errors,
    })
}

fn not_a_job() -> JobPayload {
    JobPayload {
        job: None,
        user_errors: vec![UserError::new(
            &["id"],
            crate::user_error::UserErrorCode::NotFound,
            "not a job id",
        )],
    }
}
