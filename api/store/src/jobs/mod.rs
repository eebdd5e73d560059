//! The durable job queue, in the database on both backends: jobs enqueued inside the caller's
//! transaction, timers from seconds to months ahead, retries with exponential back-off and
//! jitter up to a maximum of attempts (then `discarded`: kept, visible, retryable), unique keys,
//! leases that a worker extends while it runs a job (a job whose worker died runs again),
//! recurring schedules, and claims that take turns between workspaces.
//!
//! States: `scheduled` (a timer or a retry, due at `run_at`) -> `available` -> `running` (leased
//! to a worker until `locked_until`) -> `completed` | `scheduled` (retry) | `discarded`; and
//! `cancelled` from any unfinished state.
//!
//! Written here rather than taken from apalis 1.0 (the one well-kept Rust queue over sqlx 0.9):
//! its jobs cannot be enqueued inside a sea-orm transaction (sea-orm gives no access to its
//! sqlx transaction, so the outbox would have to write into apalis's private tables), its
//! queries are checked at build time against `DATABASE_URL`, its back-off lives in the worker's
//! memory rather than in the row, it rescues jobs by worker heartbeat rather than per-job
//! lease, and it has neither unique jobs nor per-workspace fairness. The design follows River
//! and Oban: one table, a partial index per state that is polled, `FOR UPDATE SKIP LOCKED`
//! claims on PostgreSQL, an `UPDATE ... RETURNING` claim under SQLite's one writer.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};
use std::sync::OnceLock;
use std::time::Duration;
use uuid::Uuid;

pub use entities::job::Model as Job;

pub mod queue;
pub mod schedule;

/// A job's state, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Scheduled,
    Available,
    Running,
    Completed,
    Discarded,
    Cancelled,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Scheduled,
        State::Available,
        State::Running,
        State::Completed,
        State::Discarded,
        State::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Scheduled => "scheduled",
            State::Available => "available",
            State::Running => "running",
            State::Completed => "completed",
            State::Discarded => "discarded",
            State::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// Not yet finished: a unique key holds only among these.
    pub fn is_unfinished(self) -> bool {
        matches!(self, State::Scheduled | State::Available | State::Running)
    }
}

/// The queue a job goes to unless it says otherwise.
pub const DEFAULT_QUEUE: &str = "default";
/// Attempts a job gets unless it says otherwise (about three days of back-off in all).
pub const DEFAULT_MAX_ATTEMPTS: i32 = 20;
/// The workspace of the system's own jobs (schedules, pruning).
pub const SYSTEM: Uuid = Uuid::nil();

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub args: serde_json::Value,
    pub workspace_id: Uuid,
    pub queue: String,
    /// 0 runs first; 3 last.
    pub priority: i16,
    /// When it is due; now if unset.
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: i32,
    /// At most one unfinished job holds a key: a second enqueue of it is dropped.
    pub unique_key: Option<String>,
    /// Enqueued already running, leased to this process (the outbox: the work runs right after
    /// the commit, and a worker runs it only if that lease expires).
    pub leased_here_for: Option<Duration>,
}

impl NewJob {
    pub fn new(kind: impl Into<String>, workspace_id: Uuid, args: serde_json::Value) -> NewJob {
        NewJob {
            kind: kind.into(),
            args,
            workspace_id,
            queue: DEFAULT_QUEUE.into(),
            priority: 2,
            run_at: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            unique_key: None,
            leased_here_for: None,
        }
    }

    pub fn at(mut self, run_at: DateTime<Utc>) -> NewJob {
        self.run_at = Some(run_at);
        self
    }

    pub fn queue(mut self, queue: impl Into<String>) -> NewJob {
        self.queue = queue.into();
        self
    }

    pub fn priority(mut self, priority: i16) -> NewJob {
        self.priority = priority.clamp(0, 3);
        self
    }

    pub fn max_attempts(mut self, attempts: i32) -> NewJob {
        self.max_attempts = attempts.max(1);
        self
    }

    pub fn unique(mut self, key: impl Into<String>) -> NewJob {
        self.unique_key = Some(key.into());
        self
    }

    pub fn leased_here_for(mut self, lease: Duration) -> NewJob {
        self.leased_here_for = Some(lease);
        self
    }
}

/// How long this process holds what it leases to itself when it enqueues (the outbox's
/// follow-ups): the workers' lease (`[jobs] lease_secs`), set once at start.
pub fn set_own_lease(lease: Duration) {
    OWN_LEASE_MS.store(lease.as_millis().max(1) as u64, std::sync::atomic::Ordering::Relaxed);
}

/// See [`set_own_lease`]; 60 s unless set.
pub fn own_lease() -> Duration {
    Duration::from_millis(OWN_LEASE_MS.load(std::sync::atomic::Ordering::Relaxed))
}

static OWN_LEASE_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(60_000);

/// This process's name as a worker: leases it takes carry it.
pub fn worker_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| format!("{}-{}", std::process::id(), Uuid::now_v7().simple()))
}

/// Enqueues `job` on `db`, which may be the caller's transaction (the job then exists only if
/// the transaction commits). Returns its id, or `None` when an unfinished job already holds its
/// unique key. Workers of this process hear of it through [`queue::wake`] (called by the write
/// path after its commit), those of other servers through PostgreSQL's `NOTIFY` (sent at commit).
pub async fn enqueue(db: &impl ConnectionTrait, job: NewJob) -> Result<Option<Uuid>, DbErr> {
    let now = crate::now();
    let id = Uuid::now_v7();
    let run_at = job.run_at.unwrap_or(now).max(now);
    let (state, locked_by, locked_until) = match job.leased_here_for {
        Some(lease) => (
            State::Running,
            Some(worker_id().to_owned()),
            Some(now + chrono::Duration::from_std(lease).unwrap_or_default()),
        ),
        None if run_at > now => (State::Scheduled, None, None),
        None => (State::Available, None, None),
    };
    let row = entities::job::ActiveModel {
        id: Set(id),
        workspace_id: Set(job.workspace_id),
        queue: Set(job.queue),
        kind: Set(job.kind),
        args: Set(job.args),
        state: Set(state.as_str().into()),
        priority: Set(job.priority),
        attempt: Set(i32::from(state == State::Running)),
        max_attempts: Set(job.max_attempts),
        run_at: Set(run_at),
        locked_by: Set(locked_by),
        locked_until: Set(locked_until),
        unique_key: Set(job.unique_key.clone()),
        errors: Set(serde_json::json!([])),
        created_at: Set(now),
        finished_at: Set(None),
    };
    let mut insert = entities::job::Entity::insert(row);
    if job.unique_key.is_some() {
        // The unique index is partial (unfinished jobs only): no conflict target names it on
        // both backends, so any conflict drops the insert; the id is the only other key.
        insert = insert.on_conflict(OnConflict::new().do_nothing().to_owned());
    }
    let inserted = insert.exec_without_returning(db).await?;
    if inserted == 0 {
        return Ok(None);
    }
    if state == State::Available && db.get_database_backend() == sea_orm::DbBackend::Postgres {
        db.execute_unprepared("NOTIFY voxtur_jobs").await?;
    }
    Ok(Some(id))
}
