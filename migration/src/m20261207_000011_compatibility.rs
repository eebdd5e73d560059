//! What working with clients users already have needs:
//! - `write_key.allowed_origins`: the browser origins a write key accepts calls from (a JSON
//!   array; null accepts any origin, as Segment does);
//! - `company.group_key`: the `groupId` of tracking `group` calls, unique per workspace, so a
//!   call naming only its group finds (or makes) one company, named when traits arrive;
//! - `landing_page.css`: a page's own stylesheet, after the default one;
//! - `contact_import` and `contact_import_error`: a CSV file staged for import, the job that
//!   imports it with its progress, and one row per problem found in the file.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn cascade(table: &'static str, column: &'static str, to: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(to, "id")
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("write_key")
                    .add_column(json_null("allowed_origins"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("company")
                    .add_column(string_len_null("group_key", 200))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("company_workspace_group_key")
                    .table("company")
                    .col("workspace_id")
                    .col("group_key")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("landing_page")
                    .add_column(text_null("css"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("contact_import")
                    .col(pk_uuid("id"))
                    .col(uuid("workspace_id"))
                    .col(string_len("status", 16))
                    .col(string_len_null("file_name", 300))
                    .col(blob("data"))
                    .col(string_len("delimiter", 1))
                    .col(json("columns"))
                    .col(json_null("mapping"))
                    .col(string_len("on_duplicate", 16).default("update"))
                    .col(boolean("dry_run").default(false))
                    .col(big_integer("total_rows"))
                    .col(big_integer("processed").default(0))
                    .col(big_integer("created").default(0))
                    .col(big_integer("updated").default(0))
                    .col(big_integer("skipped").default(0))
                    .col(big_integer("failed").default(0))
                    .col(text_null("error"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("started_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .foreign_key(&mut cascade("contact_import", "workspace_id", "workspace"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("contact_import_workspace_created")
                    .table("contact_import")
                    .col("workspace_id")
                    .col("created_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("contact_import_error")
                    .col(uuid("import_id"))
                    .col(integer("row_number"))
                    .col(integer("seq"))
                    .col(string_len_null("column_name", 300))
                    .col(text("message"))
                    .primary_key(Index::create().col("import_id").col("row_number").col("seq"))
                    .foreign_key(&mut cascade("contact_import_error", "import_id", "contact_import"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("contact_import_error").to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table("contact_import").to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("company_workspace_group_key")
                    .table("company")
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table("company").drop_column("group_key").to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("write_key")
                    .drop_column("allowed_origins")
                    .to_owned(),
            )
            .await
    }
}
