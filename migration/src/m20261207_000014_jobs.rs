//! The durable backbone's tables:
//! - `job`: the queue (jobs, timers, retries, and the outbox of work that follows a write),
//!   one table for every kind; states `scheduled` (a timer or a retry, due at `run_at`),
//!   `available`, `running` (leased to a worker until `locked_until`), `completed`,
//!   `discarded` (out of attempts, kept and retryable), `cancelled`. Partial indexes keep the
//!   claim, the promotion of due timers and the rescue of expired leases to the rows they need;
//!   a unique key is unique among unfinished jobs only.
//! - `job_schedule`: recurring jobs by cron expression; `next_run_at` advances by
//!   compare-and-set, so a tick fires once whatever the number of workers.
//! - `notification.read_at`: in-app notifications are read or not.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("job")
                    .col(pk_uuid("id"))
                    // Nil for the system's own jobs (schedules, pruning).
                    .col(uuid("workspace_id"))
                    .col(string_len("queue", 50))
                    .col(string_len("kind", 100))
                    .col(json_binary("args"))
                    .col(string_len("state", 20))
                    .col(small_integer("priority"))
                    .col(integer("attempt"))
                    .col(integer("max_attempts"))
                    .col(timestamp_with_time_zone("run_at"))
                    .col(string_len_null("locked_by", 100))
                    .col(timestamp_with_time_zone_null("locked_until"))
                    .col(string_len_null("unique_key", 300))
                    .col(json_binary("errors"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for statement in [
            "CREATE INDEX job_available ON job (queue, workspace_id, priority, run_at) WHERE state = 'available'",
            "CREATE INDEX job_scheduled ON job (run_at) WHERE state = 'scheduled'",
            "CREATE INDEX job_running ON job (locked_until) WHERE state = 'running'",
            "CREATE INDEX job_finished ON job (finished_at) WHERE state IN ('completed', 'cancelled')",
            "CREATE INDEX job_listing ON job (workspace_id, id)",
            "CREATE UNIQUE INDEX job_unique ON job (unique_key) \
             WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'available', 'running')",
        ] {
            db.execute_unprepared(statement).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("job_schedule")
                    .col(string_len("name", 100).primary_key())
                    .col(string_len("cron", 100))
                    .col(string_len("kind", 100))
                    .col(json_binary("args"))
                    .col(string_len("queue", 50))
                    .col(timestamp_with_time_zone("next_run_at"))
                    .col(timestamp_with_time_zone_null("last_run_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("notification")
                    .add_column(timestamp_with_time_zone_null("read_at"))
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared("CREATE INDEX notification_inbox ON notification (workspace_id, id)")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX notification_inbox").await?;
        manager
            .alter_table(Table::alter().table("notification").drop_column("read_at").to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table("job_schedule").to_owned())
            .await?;
        manager.drop_table(Table::drop().table("job").to_owned()).await
    }
}
