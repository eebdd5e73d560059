//! Segments (dynamic, from a stored contact filter) and marketing lists (static), their
//! materialized membership and its history of entries and exits.

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
            .create_table(
                Table::create()
                    .table("segment")
                    .col(pk_uuid("id"))
                    .col(uuid("workspace_id"))
                    .col(string_len("name", 200))
                    .col(text_null("description"))
                    // `dynamic` (membership follows `filter`) or `static` (a marketing list).
                    .col(string_len("kind", 16))
                    .col(json_binary_null("filter"))
                    // Kept with every membership change, so counts never scan members.
                    .col(big_integer("member_count").default(0))
                    .col(timestamp_with_time_zone_null("evaluated_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(&mut cascade("segment", "workspace_id", "workspace"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("segment_workspace_name")
                    .table("segment")
                    .col("workspace_id")
                    .col("name")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("segment_member")
                    .col(uuid("segment_id"))
                    .col(uuid("contact_id"))
                    .col(uuid("workspace_id"))
                    .col(timestamp_with_time_zone("entered_at"))
                    .primary_key(Index::create().col("segment_id").col("contact_id"))
                    .foreign_key(&mut cascade("segment_member", "segment_id", "segment"))
                    .foreign_key(&mut cascade("segment_member", "contact_id", "contact"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("segment_member_contact")
                    .table("segment_member")
                    .col("contact_id")
                    .to_owned(),
            )
            .await?;
        // Entries and exits, kept after the contact is gone (no contact foreign key): workflows
        // and reports read them as facts.
        manager
            .create_table(
                Table::create()
                    .table("segment_change")
                    .col(pk_uuid("id"))
                    .col(uuid("workspace_id"))
                    .col(uuid("segment_id"))
                    .col(uuid("contact_id"))
                    .col(boolean("entered"))
                    .col(timestamp_with_time_zone("at"))
                    .foreign_key(&mut cascade("segment_change", "segment_id", "segment"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("segment_change_segment_at")
                    .table("segment_change")
                    .col("segment_id")
                    .col("at")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        // CSV exports of a segment's members: the job's progress, and its output in chunks (kept
        // in the database so any server behind the load balancer can serve the download).
        manager
            .create_table(
                Table::create()
                    .table("export_job")
                    .col(pk_uuid("id"))
                    .col(uuid("workspace_id"))
                    .col(uuid("segment_id"))
                    .col(string_len("status", 16))
                    .col(big_integer("processed").default(0))
                    .col(big_integer("total").default(0))
                    .col(text_null("error"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .foreign_key(&mut cascade("export_job", "workspace_id", "workspace"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("export_chunk")
                    .col(uuid("job_id"))
                    .col(integer("seq"))
                    .col(text("data"))
                    .primary_key(Index::create().col("job_id").col("seq"))
                    .foreign_key(&mut cascade("export_chunk", "job_id", "export_job"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "export_chunk",
            "export_job",
            "segment_change",
            "segment_member",
            "segment",
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
