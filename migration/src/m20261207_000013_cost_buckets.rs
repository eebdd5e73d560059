//! `cost_bucket`: the leaky bucket of query cost points of each API key, shared by every server
//! on PostgreSQL (`voxtur_store::rate_limit::buckets`); SQLite's one process keeps its buckets
//! in memory, and has the table only so both schemas are the same. On PostgreSQL it and
//! `rate_limit` are unlogged.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("cost_bucket")
                    .col(uuid("key").primary_key())
                    .col(double("level"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            // Levels and counts that live a minute need no write-ahead log: a crash forgets
            // them, and every hit costs no log flush.
            let db = manager.get_connection();
            db.execute_unprepared("ALTER TABLE cost_bucket SET UNLOGGED").await?;
            db.execute_unprepared("ALTER TABLE rate_limit SET UNLOGGED").await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("cost_bucket").to_owned()).await
    }
}
