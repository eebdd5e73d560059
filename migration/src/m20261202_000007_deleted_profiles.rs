//! Ids of deleted contacts. A tracked visitor's profile id derives from the id it was first seen
//! by (so concurrent batches meeting one new visitor make one profile); without this record, a
//! deleted visitor who came back would get the deleted contact's id again, and with it whatever
//! still names that id (segment history, merge records, ids kept by other systems).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("deleted_contact")
                    .col(pk_uuid("id"))
                    .col(uuid("workspace_id"))
                    .col(timestamp_with_time_zone("deleted_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("deleted_contact", "workspace_id")
                            .to("workspace", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("deleted_contact").to_owned())
            .await
    }
}
