//! When a segment's sliding windows were last brought up to date, so the minute task looks only
//! at the events that have left a window since, not at every contact.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("segment")
                    .add_column(timestamp_with_time_zone_null("windows_checked_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("segment")
                    .drop_column("windows_checked_at")
                    .to_owned(),
            )
            .await
    }
}
