//! `landing_page.frame_ancestors`: the sites that may show a page in a frame, as the CSP
//! `frame-ancestors` sources (`'self'` when null).

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
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
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
