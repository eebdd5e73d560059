//! `cost_bucket`: the leaky bucket of query cost points of each API key, shared by every server
//! on PostgreSQL (`voxtur_store::rate_limit::buckets`); SQLite's one process keeps its buckets
//! in memory, and has the table only so both schemas are the same.

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
                    // Whether the last request was charged (false: refused, the bucket only drained).
                    .col(boolean("charged"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("cost_bucket").to_owned()).await
    }
}
