//! Events no longer carry a unique index on `(workspace_id, message_id)`. A message's event id
//! now derives from the workspace, its `messageId` and the timestamp its sender stamped on it
//! (`events::event_id`), so a retried message meets its first copy on the primary key instead. The index
//! was one of the event table's two indexes with random keys: each insert wrote a page of it
//! that no other event of the batch shared (docs/perf-history.md, issue 3, thirteenth session).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "event_workspace_message";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table("event").to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table("event")
                    .col("workspace_id")
                    .col("message_id")
                    .unique()
                    .to_owned(),
            )
            .await
    }
}
