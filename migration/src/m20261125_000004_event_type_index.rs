//! Behaviour conditions ("did T at least N times in the last D days") group a window's events of
//! one type by contact. With the contact in the type/time index the database reads the window
//! from the index alone (an index-only scan on PostgreSQL, a covering index on SQLite) instead
//! of fetching every event row: the same number of indexes to maintain at ingestion.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const OLD: &str = "event_workspace_type_time";
const NEW: &str = "event_workspace_type_time_contact";

fn create(name: &'static str, columns: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table("event");
    for column in columns {
        index.col(*column);
    }
    index.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(create(
                NEW,
                &["workspace_id", "event_type", "occurred_at", "contact_id"],
            ))
            .await?;
        manager
            .drop_index(Index::drop().name(OLD).table("event").to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(create(OLD, &["workspace_id", "event_type", "occurred_at"]))
            .await?;
        manager
            .drop_index(Index::drop().name(NEW).table("event").to_owned())
            .await
    }
}
