//! On PostgreSQL, events and identities no longer carry a foreign key to their contact.
//!
//! Each checked row took a key-share lock on its contact until commit. Concurrent ingestion
//! batches sharing a contact then deadlocked with any of them that had to lock it for update (a
//! merge deleting it, an identify setting its unique email), each deadlock costing a second of
//! detection; and the check itself was a per-row trigger on the hottest insert path. The
//! integrity the keys gave is kept by the lock protocol instead: a batch locks every contact it
//! adds events or identities to before it commits, and finding one gone starts it again, while
//! deleting or merging a contact locks it for update first and removes (or moves) its events
//! and identities itself. SQLite keeps the keys: it has one writer, so none of this arises.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE event DROP CONSTRAINT IF EXISTS event_contact_id_fkey")
            .await?;
        db.execute_unprepared(
            "ALTER TABLE contact_identity DROP CONSTRAINT IF EXISTS contact_identity_contact_id_fkey",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for (table, name) in [
            ("event", "event_contact_id_fkey"),
            ("contact_identity", "contact_identity_contact_id_fkey"),
        ] {
            db.execute_unprepared(&format!(
                "ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY (contact_id) \
                 REFERENCES contact(id) ON DELETE CASCADE"
            ))
            .await?;
        }
        Ok(())
    }
}
