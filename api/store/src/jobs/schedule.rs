//! Recurring jobs: a schedule enqueues its job at each tick of a cron expression (five fields,
//! minutes to weekdays, or six with seconds first; UTC). Every worker looks for due schedules;
//! a tick fires once whatever their number, because the schedule's `next_run_at` advances by
//! compare-and-set in the transaction that enqueues the job.

use super::NewJob;
use chrono::{DateTime, Utc};
use entities::job_schedule::{self, Column as C};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, TransactionTrait};
use std::str::FromStr;

/// A recurring job.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub name: String,
    pub cron: String,
    pub kind: String,
    pub args: serde_json::Value,
    pub queue: String,
}

/// A cron expression, parsed; why not, else.
pub fn parse(cron: &str) -> Result<croner::Cron, String> {
    croner::Cron::from_str(cron.trim()).map_err(|error| format!("`{cron}` is not a cron expression: {error}"))
}

/// The first tick of `cron` after `after`.
pub fn next_tick(cron: &croner::Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after, false).ok()
}

/// Makes the stored schedules named like `schedules` say what they say (added, or changed with
/// their next tick recomputed); others are left alone. Run by every worker at start.
pub async fn ensure(db: &impl ConnectionTrait, schedules: &[Schedule]) -> Result<(), DbErr> {
    let now = crate::now();
    for schedule in schedules {
        let cron = parse(&schedule.cron).map_err(DbErr::Custom)?;
        let next = next_tick(&cron, now).ok_or_else(|| DbErr::Custom(format!("`{}` never fires", schedule.cron)))?;
        let stored = job_schedule::Entity::find_by_id(schedule.name.clone()).one(db).await?;
        let unchanged = stored.as_ref().is_some_and(|stored| {
            stored.cron == schedule.cron
                && stored.kind == schedule.kind
                && stored.args == schedule.args
                && stored.queue == schedule.queue
        });
        if unchanged {
            continue;
        }
        let row = job_schedule::ActiveModel {
            name: Set(schedule.name.clone()),
            cron: Set(schedule.cron.clone()),
            kind: Set(schedule.kind.clone()),
            args: Set(schedule.args.clone()),
            queue: Set(schedule.queue.clone()),
            next_run_at: Set(next),
            last_run_at: Set(None),
        };
        job_schedule::Entity::insert(row)
            .on_conflict(
                OnConflict::column(C::Name)
                    .update_columns([C::Cron, C::Kind, C::Args, C::Queue, C::NextRunAt])
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Enqueues the job of every schedule whose tick has come, once per tick across all workers;
/// how many fired. A tick missed while no worker ran fires once, late; the ticks between are
/// skipped; so is a tick whose job of an earlier tick has not finished (no pile-up).
pub async fn fire_due(db: &sea_orm::DatabaseConnection) -> Result<u64, DbErr> {
    let now = crate::now();
    let due = job_schedule::Entity::find()
        .filter(C::NextRunAt.lte(now))
        .all(db)
        .await?;
    let mut fired = 0;
    for schedule in due {
        let Some(next) = parse(&schedule.cron).ok().and_then(|cron| next_tick(&cron, now)) else {
            tracing::error!(schedule = %schedule.name, cron = %schedule.cron, "schedule does not parse; skipped");
            continue;
        };
        let txn = db.begin().await?;
        let advanced = job_schedule::Entity::update_many()
            .col_expr(C::NextRunAt, Expr::val(next))
            .col_expr(C::LastRunAt, Expr::val(schedule.next_run_at))
            .filter(C::Name.eq(schedule.name.as_str()))
            .filter(C::NextRunAt.eq(schedule.next_run_at))
            .exec(&txn)
            .await?;
        if advanced.rows_affected == 1 {
            let job = NewJob::new(schedule.kind.clone(), super::SYSTEM, schedule.args.clone())
                .queue(schedule.queue.clone())
                .unique(format!("schedule:{}", schedule.name));
            // A tick whose job of the tick before has not finished adds none (its unique key).
            if super::enqueue(&txn, job).await?.is_some() {
                fired += 1;
            }
        }
        txn.commit().await?;
    }
    if fired > 0 {
        super::queue::wake();
    }
    Ok(fired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_expressions_parse_and_tick() {
        let every_minute = parse("* * * * *").unwrap();
        let at = DateTime::parse_from_rfc3339("2026-12-07T10:15:30Z").unwrap().to_utc();
        assert_eq!(
            next_tick(&every_minute, at).unwrap().to_rfc3339(),
            "2026-12-07T10:16:00+00:00"
        );
        let hourly = parse("@hourly").unwrap();
        assert_eq!(
            next_tick(&hourly, at).unwrap().to_rfc3339(),
            "2026-12-07T11:00:00+00:00"
        );
        assert!(parse("every day at noon").is_err());
        assert!(parse("61 * * * *").unwrap_err().contains("not a cron expression"));
    }
}
