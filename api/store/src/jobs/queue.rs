//! What workers do to the queue: promote due timers, claim (taking turns between workspaces),
//! complete, fail (retry with back-off, or discard), extend their leases, rescue the jobs of
//! workers that died, release their jobs on shutdown; and what admins do: retry and cancel.

use super::{Job, State, worker_id};
use chrono::{DateTime, Utc};
use entities::job::{self, Column as C};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect,
};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// Errors kept on a job (the latest ones).
const MAX_ERRORS_KEPT: usize = 20;
/// An error's text kept on a job, at most.
const MAX_ERROR_CHARS: usize = 2_000;

/// `state = '<state>'`, the state written into the SQL rather than bound: the indexes the
/// queue polls are partial (`WHERE state = 'available'`), and a planner can use a partial
/// index only when the query's condition says the same at planning time (a bound parameter
/// does not: measured, a claim on SQLite went from an index range to a 220 ms scan).
fn in_state(state: State) -> sea_orm::sea_query::SimpleExpr {
    Expr::col(C::State).eq(Expr::cust(format!("'{}'", state.as_str())))
}

fn later(now: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX)
}

/// Wakes this process's workers: a job is available (enqueued and committed).
pub fn wake() {
    woken().notify_one();
}

/// What this process's workers wait on between polls.
pub fn woken() -> &'static Notify {
    static NOTIFY: OnceLock<Notify> = OnceLock::new();
    NOTIFY.get_or_init(Notify::new)
}

/// Moves timers and retries that are due to `available`; how many moved.
pub async fn promote_due(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let result = job::Entity::update_many()
        .col_expr(C::State, Expr::val(State::Available.as_str()))
        .filter(in_state(State::Scheduled))
        .filter(C::RunAt.lte(crate::now()))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// When the next timer or retry is due, if any is waiting.
pub async fn next_due(db: &impl ConnectionTrait) -> Result<Option<DateTime<Utc>>, DbErr> {
    job::Entity::find()
        .select_only()
        .column(C::RunAt)
        .filter(in_state(State::Scheduled))
        .order_by(C::RunAt, Order::Asc)
        .limit(1)
        .into_tuple::<DateTime<Utc>>()
        .one(db)
        .await
}

/// The first workspace after `after` with available jobs in `queue`, wrapping around.
async fn next_workspace(db: &impl ConnectionTrait, queue: &str, after: Option<Uuid>) -> Result<Option<Uuid>, DbErr> {
    let first_after = |after: Option<Uuid>| {
        let mut select = job::Entity::find()
            .select_only()
            .column(C::WorkspaceId)
            .filter(in_state(State::Available))
            .filter(C::Queue.eq(queue))
            .order_by(C::WorkspaceId, Order::Asc)
            .limit(1);
        if let Some(after) = after {
            select = select.filter(C::WorkspaceId.gt(after));
        }
        select.into_tuple::<Uuid>().one(db)
    };
    match first_after(after).await? {
        Some(workspace) => Ok(Some(workspace)),
        None if after.is_some() => first_after(None).await,
        None => Ok(None),
    }
}

/// Claims up to `limit` available jobs of `queue` for this process, leased for `lease`, all of
/// one workspace: the next after `after_workspace` that has any. Workers pass the workspace
/// they served last, so a workspace with a million jobs queued takes turns with the others.
/// Returns the jobs (their attempt counted) and the workspace served.
pub async fn claim(
    db: &impl ConnectionTrait,
    queue: &str,
    limit: u64,
    lease: Duration,
    after_workspace: Option<Uuid>,
) -> Result<(Vec<Job>, Option<Uuid>), DbErr> {
    let Some(workspace) = next_workspace(db, queue, after_workspace).await? else {
        return Ok((Vec::new(), None));
    };
    let now = crate::now();
    let jobs = if db.get_database_backend() == DbBackend::Postgres {
        // A materialized CTE picks the rows once (River's claim): as an `IN` subquery, the
        // planner may run the pick again, and with SKIP LOCKED each run picks other rows.
        let statement = sea_orm::Statement::from_sql_and_values(
            DbBackend::Postgres,
            "WITH picked AS MATERIALIZED (
               SELECT id FROM job
               WHERE state = 'available' AND queue = $1 AND workspace_id = $2
               ORDER BY priority, run_at, id
               LIMIT $3
               FOR UPDATE SKIP LOCKED
             )
             UPDATE job SET state = 'running', attempt = job.attempt + 1, locked_by = $4, locked_until = $5
             FROM picked WHERE job.id = picked.id
             RETURNING job.*",
            [
                queue.into(),
                workspace.into(),
                (Ord::max(limit, 1) as i64).into(),
                worker_id().into(),
                later(now, lease).into(),
            ],
        );
        job::Entity::find().from_raw_sql(statement).all(db).await?
    } else {
        // SQLite's one writer: the pick and the update are one statement, run alone.
        let mut pick = Query::select();
        pick.column(C::Id)
            .from(job::Entity)
            .and_where(in_state(State::Available))
            .and_where(Expr::col(C::Queue).eq(queue))
            .and_where(Expr::col(C::WorkspaceId).eq(workspace))
            .order_by(C::Priority, Order::Asc)
            .order_by(C::RunAt, Order::Asc)
            .order_by(C::Id, Order::Asc)
            .limit(Ord::max(limit, 1));
        job::Entity::update_many()
            .col_expr(C::State, Expr::val(State::Running.as_str()))
            .col_expr(C::Attempt, Expr::col(C::Attempt).add(1))
            .col_expr(C::LockedBy, Expr::val(worker_id()))
            .col_expr(C::LockedUntil, Expr::val(later(now, lease)))
            .filter(C::Id.in_subquery(pick))
            .filter(in_state(State::Available))
            .exec_with_returning(db)
            .await?
    };
    Ok((jobs, Some(workspace)))
}

/// Marks jobs this process ran as completed (one statement for many). A job whose lease this
/// process lost meanwhile (rescued, cancelled) is left as it is.
pub async fn complete(db: &impl ConnectionTrait, ids: &[Uuid]) -> Result<u64, DbErr> {
    if ids.is_empty() {
        return Ok(0);
    }
    let result = job::Entity::update_many()
        .col_expr(C::State, Expr::val(State::Completed.as_str()))
        .col_expr(C::FinishedAt, Expr::val(crate::now()))
        .col_expr(C::LockedUntil, Expr::val(Option::<DateTime<Utc>>::None))
        .filter(C::Id.is_in(ids.iter().copied()))
        .filter(in_state(State::Running))
        .filter(C::LockedBy.eq(worker_id()))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// How long before attempt `attempt + 1` of a failed job: 15 s + attempt⁴ s (Oban's curve:
/// 16 s, 31 s, 96 s, 4.5 min, ... 1.8 days at the 19th), with up to 10% jitter so jobs that
/// failed together do not retry together.
pub fn backoff(attempt: i32) -> Duration {
    let attempt = attempt.clamp(1, 100) as f64;
    let base = 15.0 + attempt.powi(4);
    let jitter = rand::random::<f64>() * 0.1 * base;
    Duration::from_secs_f64(base + jitter)
}

/// What became of a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    RetryAt(DateTime<Utc>),
    Discarded,
    /// This process no longer held it (rescued, cancelled): nothing changed.
    NotHeld,
}

/// Records a failed attempt of `job` (claimed by this process): retried after [`backoff`], or
/// discarded when out of attempts or when `retry` is false (the error is permanent).
pub async fn fail(db: &impl ConnectionTrait, job: &Job, error: &str, retry: bool) -> Result<Failed, DbErr> {
    let now = crate::now();
    let errors = with_error(&job.errors, job.attempt, now, error);
    let outcome = if retry && job.attempt < job.max_attempts {
        Failed::RetryAt(later(now, backoff(job.attempt)))
    } else {
        Failed::Discarded
    };
    let mut update = job::Entity::update_many()
        .col_expr(C::Errors, Expr::val(errors))
        .col_expr(C::LockedUntil, Expr::val(Option::<DateTime<Utc>>::None))
        .filter(C::Id.eq(job.id))
        .filter(in_state(State::Running))
        .filter(C::LockedBy.eq(worker_id()));
    update = match outcome {
        Failed::RetryAt(at) => update
            .col_expr(C::State, Expr::val(State::Scheduled.as_str()))
            .col_expr(C::RunAt, Expr::val(at)),
        _ => update
            .col_expr(C::State, Expr::val(State::Discarded.as_str()))
            .col_expr(C::FinishedAt, Expr::val(now)),
    };
    let result = update.exec(db).await?;
    Ok(if result.rows_affected == 0 {
        Failed::NotHeld
    } else {
        outcome
    })
}

/// Deletes a job that finished inline (the outbox's follow-up, done right after its commit).
pub async fn forget(db: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
    job::Entity::delete_many().filter(C::Id.eq(id)).exec(db).await?;
    Ok(())
}

/// Hands a job this process holds to the workers after a failed attempt (the outbox's
/// follow-up, run inline and failed): retried after [`backoff`].
pub async fn retry_later(db: &impl ConnectionTrait, id: Uuid, error: &str) -> Result<Failed, DbErr> {
    match job::Entity::find_by_id(id).one(db).await? {
        Some(job) => fail(db, &job, error, true).await,
        None => Ok(Failed::NotHeld),
    }
}

/// `errors` with one more: `{attempt, at, error}`, the latest [`MAX_ERRORS_KEPT`] kept.
fn with_error(errors: &serde_json::Value, attempt: i32, at: DateTime<Utc>, error: &str) -> serde_json::Value {
    let mut list = errors.as_array().cloned().unwrap_or_default();
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    list.push(serde_json::json!({ "attempt": attempt, "at": at.to_rfc3339(), "error": error }));
    let skip = list.len().saturating_sub(MAX_ERRORS_KEPT);
    serde_json::Value::Array(list.into_iter().skip(skip).collect())
}

/// Extends the leases of every job this process is running (its heartbeat).
pub async fn extend_leases(db: &impl ConnectionTrait, lease: Duration) -> Result<u64, DbErr> {
    let result = job::Entity::update_many()
        .col_expr(C::LockedUntil, Expr::val(later(crate::now(), lease)))
        .filter(in_state(State::Running))
        .filter(C::LockedBy.eq(worker_id()))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Jobs whose lease expired (their worker died, or hung past its heartbeat) run again, or are
/// discarded when out of attempts; how many were rescued.
pub async fn rescue_expired(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let now = crate::now();
    let expired = job::Entity::find()
        .filter(in_state(State::Running))
        .filter(C::LockedUntil.lt(now))
        .order_by(C::LockedUntil, Order::Asc)
        .limit(500)
        .all(db)
        .await?;
    let mut rescued = 0;
    for job in expired {
        let error = format!(
            "the lease of {} expired",
            job.locked_by.as_deref().unwrap_or("a worker")
        );
        let errors = with_error(&job.errors, job.attempt, now, &error);
        let state = if job.attempt < job.max_attempts {
            State::Available
        } else {
            State::Discarded
        };
        // Compare-and-set on the lease seen: a worker extending it meanwhile keeps its job.
        let result = job::Entity::update_many()
            .col_expr(C::State, Expr::val(state.as_str()))
            .col_expr(C::Errors, Expr::val(errors))
            .col_expr(C::LockedBy, Expr::val(Option::<String>::None))
            .col_expr(C::LockedUntil, Expr::val(Option::<DateTime<Utc>>::None))
            .col_expr(C::FinishedAt, Expr::val((state == State::Discarded).then_some(now)))
            .filter(C::Id.eq(job.id))
            .filter(in_state(State::Running))
            .filter(C::LockedUntil.eq(job.locked_until))
            .exec(db)
            .await?;
        rescued += result.rows_affected;
    }
    Ok(rescued)
}

/// Gives back the jobs this process holds (a graceful shutdown past its patience): available
/// again, the attempt not counted.
pub async fn release(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let result = job::Entity::update_many()
        .col_expr(C::State, Expr::val(State::Available.as_str()))
        .col_expr(C::Attempt, Expr::col(C::Attempt).sub(1))
        .col_expr(C::LockedBy, Expr::val(Option::<String>::None))
        .col_expr(C::LockedUntil, Expr::val(Option::<DateTime<Utc>>::None))
        .filter(in_state(State::Running))
        .filter(C::LockedBy.eq(worker_id()))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Why an admin's change to a job was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    NotFound,
    WrongState(State),
}

/// Runs a discarded or cancelled job of `workspace_id` again, from its first attempt.
pub async fn retry(db: &impl ConnectionTrait, workspace_id: Uuid, id: Uuid) -> Result<Result<Job, Refused>, DbErr> {
    let updated = job::Entity::update_many()
        .col_expr(C::State, Expr::val(State::Available.as_str()))
        .col_expr(C::Attempt, Expr::val(0))
        .col_expr(C::RunAt, Expr::val(crate::now()))
        .col_expr(C::FinishedAt, Expr::val(Option::<DateTime<Utc>>::None))
        .filter(C::Id.eq(id))
        .filter(C::WorkspaceId.eq(workspace_id))
        .filter(C::State.is_in([State::Discarded.as_str(), State::Cancelled.as_str()]))
        .exec_with_returning(db)
        .await?;
    match updated.into_iter().next() {
        Some(job) => {
            wake();
            Ok(Ok(job))
        }
        None => refusal(db, workspace_id, id).await,
    }
}

/// Cancels an unfinished job of `workspace_id`. A running job's handler is not interrupted;
/// what it does after is not recorded as a completion.
pub async fn cancel(db: &impl ConnectionTrait, workspace_id: Uuid, id: Uuid) -> Result<Result<Job, Refused>, DbErr> {
    let updated = job::Entity::update_many()
        .col_expr(C::State, Expr::val(State::Cancelled.as_str()))
        .col_expr(C::FinishedAt, Expr::val(crate::now()))
        .col_expr(C::LockedUntil, Expr::val(Option::<DateTime<Utc>>::None))
        .filter(C::Id.eq(id))
        .filter(C::WorkspaceId.eq(workspace_id))
        .filter(
            C::State.is_in(
                State::ALL
                    .into_iter()
                    .filter(|state| state.is_unfinished())
                    .map(State::as_str),
            ),
        )
        .exec_with_returning(db)
        .await?;
    match updated.into_iter().next() {
        Some(job) => Ok(Ok(job)),
        None => refusal(db, workspace_id, id).await,
    }
}

async fn refusal(db: &impl ConnectionTrait, workspace_id: Uuid, id: Uuid) -> Result<Result<Job, Refused>, DbErr> {
    let found = job::Entity::find_by_id(id)
        .filter(C::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?;
    Ok(Err(match found {
        Some(job) => Refused::WrongState(State::parse(&job.state).unwrap_or(State::Running)),
        None => Refused::NotFound,
    }))
}

/// Deletes completed and cancelled jobs that finished before `before`; how many.
pub async fn prune(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = job::Entity::delete_many()
        .filter(C::State.is_in([State::Completed.as_str(), State::Cancelled.as_str()]))
        .filter(C::FinishedAt.lt(before))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_grows_as_the_fourth_power_with_a_little_jitter() {
        let first = backoff(1).as_secs_f64();
        assert!((16.0..=17.6).contains(&first), "{first}");
        let fifth = backoff(5).as_secs_f64();
        assert!((640.0..=704.0).contains(&fifth), "{fifth}");
    }

    #[test]
    fn a_job_keeps_its_latest_errors() {
        let mut errors = serde_json::json!([]);
        for attempt in 1..=25 {
            errors = with_error(&errors, attempt, crate::now(), &"x".repeat(5_000));
        }
        let list = errors.as_array().unwrap();
        assert_eq!(list.len(), MAX_ERRORS_KEPT);
        assert_eq!(list[0]["attempt"], 6);
        assert_eq!(list[19]["error"].as_str().unwrap().len(), MAX_ERROR_CHARS);
    }
}
