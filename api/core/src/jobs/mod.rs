//! The jobs the product runs in the background, and the workers that run them
//! ([`worker`]). The queue itself (states, claims, leases, retries, schedules) is
//! `voxtur_store::jobs`; this module names the kinds of job and what each does.
//!
//! A handler gets the job's row and a connection, and answers `Ok` (completed), a
//! [`JobError::Retry`] (retried with back-off until out of attempts) or a
//! [`JobError::Discard`] (a permanent failure: discarded at once). Handlers are idempotent: a
//! job runs at least once, and again if its worker dies before recording the outcome.

use crate::errors::{MutationResult, UserError, UserErrorCode};
use sea_orm::{DatabaseConnection, DbErr};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use voxtur_store::error::ApiError;
pub use voxtur_store::jobs::{
    DEFAULT_QUEUE, Job, NewJob, SYSTEM as SYSTEM_WORKSPACE, State, enqueue, own_lease, queue, schedule,
    schedule::Schedule, set_own_lease, worker_id,
};

pub mod worker;

/// The work that follows a committed write (`crate::writes`): the outbox.
pub const FOLLOW_UP: &str = "write.follow_up";
/// Sliding segment windows ("in the last 30 days") re-evaluated, every minute.
pub const EXPIRE_WINDOWS: &str = "segments.expire_windows";
/// A segment's CSV export.
pub const EXPORT: &str = "segments.export";
/// A contact import's rows.
pub const IMPORT: &str = "contacts.import";
/// Finished jobs deleted after a day, every hour.
pub const PRUNE: &str = "jobs.prune";
/// A job that does nothing: the queue's own benchmark and tests.
pub const NOOP: &str = "jobs.noop";
/// An endpoint's due webhook deliveries sent.
pub const WEBHOOKS_DELIVER: &str = "webhooks.deliver";
/// Endpoints with due deliveries and no job delivering them get one, every minute.
pub const WEBHOOKS_SWEEP: &str = "webhooks.sweep";
/// The queue of webhook deliveries: a slow receiver takes its slots, not the others'.
pub const WEBHOOKS_QUEUE: &str = "webhooks";

/// How a job failed.
#[derive(Debug)]
pub enum JobError {
    /// Worth another attempt (a database hiccup, a timeout).
    Retry(String),
    /// Another attempt would fail the same way (the export's segment is gone).
    Discard(String),
}

impl From<DbErr> for JobError {
    fn from(error: DbErr) -> JobError {
        JobError::Retry(error.to_string())
    }
}

impl From<ApiError> for JobError {
    fn from(error: ApiError) -> JobError {
        JobError::Retry(error.for_operator())
    }
}

type Outcome = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;

/// A kind of job: its name, what runs it, and how long an attempt may take.
pub struct Kind {
    pub name: &'static str,
    pub run: fn(DatabaseConnection, Job) -> Outcome,
    pub timeout: Duration,
}

/// Every kind of job there is. A job of a kind not here is discarded with the reason.
pub fn kinds() -> &'static [Kind] {
    KINDS
}

static KINDS: &[Kind] = &[
    Kind {
        name: FOLLOW_UP,
        run: |db, job| Box::pin(crate::writes::follow_up(db, job)),
        timeout: Duration::from_secs(10 * 60),
    },
    Kind {
        name: EXPIRE_WINDOWS,
        run: |db, _| {
            Box::pin(async move {
                crate::segments::expire_windows(&db).await?;
                Ok(())
            })
        },
        timeout: Duration::from_secs(30 * 60),
    },
    Kind {
        name: EXPORT,
        run: |db, job| Box::pin(crate::segments::export::run_job(db, job)),
        timeout: Duration::from_secs(60 * 60),
    },
    Kind {
        name: IMPORT,
        run: |db, job| Box::pin(crate::contacts::import::run_job(db, job)),
        timeout: Duration::from_secs(60 * 60),
    },
    Kind {
        name: PRUNE,
        run: |db, _| {
            Box::pin(async move {
                let day_ago = crate::now() - chrono::Duration::days(1);
                let pruned = queue::prune(&db, day_ago).await?;
                tracing::info!(pruned, "finished jobs pruned");
                Ok(())
            })
        },
        timeout: Duration::from_secs(10 * 60),
    },
    Kind {
        name: WEBHOOKS_DELIVER,
        run: |db, job| Box::pin(crate::webhooks::delivery::run_job(db, job)),
        timeout: Duration::from_secs(30 * 60),
    },
    Kind {
        name: WEBHOOKS_SWEEP,
        run: |db, _| Box::pin(crate::webhooks::delivery::sweep(db)),
        timeout: Duration::from_secs(5 * 60),
    },
    Kind {
        name: NOOP,
        run: |_, _| Box::pin(async { Ok(()) }),
        timeout: Duration::from_secs(60),
    },
];

/// The system's recurring jobs, which every worker keeps in the schedule table.
pub fn schedules() -> Vec<Schedule> {
    let system = |name: &str, cron: &str, kind: &str| Schedule {
        name: name.into(),
        cron: cron.into(),
        kind: kind.into(),
        args: serde_json::json!({}),
        queue: DEFAULT_QUEUE.into(),
    };
    vec![
        system("segment-windows", "* * * * *", EXPIRE_WINDOWS),
        system("prune-jobs", "17 * * * *", PRUNE),
        system("webhook-sweep", "* * * * *", WEBHOOKS_SWEEP),
    ]
}

/// The id a job's arguments name under `key`; a discard when they do not (a job written by
/// another version, or by hand).
pub fn id_arg(job: &Job, key: &str) -> Result<uuid::Uuid, JobError> {
    job.args
        .get(key)
        .and_then(serde_json::Value::as_str)
        .and_then(|text| uuid::Uuid::parse_str(text).ok())
        .ok_or_else(|| JobError::Discard(format!("the job's arguments have no `{key}` id")))
}

/// Runs a discarded or cancelled job of the workspace again, from its first attempt.
pub async fn retry(db: &DatabaseConnection, workspace_id: uuid::Uuid, id: uuid::Uuid) -> MutationResult<Job> {
    admin_outcome(
        queue::retry(db, workspace_id, id).await?,
        "retried",
        "discarded or cancelled",
    )
}

/// Cancels a job of the workspace that has not finished.
pub async fn cancel(db: &DatabaseConnection, workspace_id: uuid::Uuid, id: uuid::Uuid) -> MutationResult<Job> {
    admin_outcome(
        queue::cancel(db, workspace_id, id).await?,
        "cancelled",
        "scheduled, available or running",
    )
}

fn admin_outcome(outcome: Result<Job, queue::Refused>, done: &str, allowed: &str) -> MutationResult<Job> {
    match outcome {
        Ok(job) => Ok(job),
        Err(queue::Refused::NotFound) => {
            Err(UserError::argument(&["id"], UserErrorCode::NotFound, "no such job in this workspace").into())
        }
        Err(queue::Refused::WrongState(state)) => Err(UserError::argument(
            &["id"],
            UserErrorCode::WrongState,
            format!(
                "the job is {}; only a job that is {allowed} can be {done}",
                state.as_str()
            ),
        )
        .into()),
    }
}
