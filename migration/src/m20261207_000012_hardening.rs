//! - `landing_page.frame_ancestors`: the sites that may show a page in a frame, as the CSP
//!   `frame-ancestors` sources (`'self'` when null);
//! - `rate_limit`: fixed-window counters shared by every server on PostgreSQL (form posts and
//!   failed sign-ins per address); SQLite's one process counts in memory.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("landing_page")
                    .add_column(text_null("frame_ancestors"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("rate_limit")
                    .col(string_len("key", 200).primary_key())
                    .col(timestamp_with_time_zone("window_start"))
                    .col(integer("hits"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("rate_limit").to_owned()).await?;
        manager
            .alter_table(
                Table::alter()
                    .table("landing_page")
                    .drop_column("frame_ancestors")
                    .to_owned(),
            )
            .await
    }
}
