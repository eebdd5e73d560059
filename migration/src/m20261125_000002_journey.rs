//! The contact journey: events, identities (anonymous and user ids), merges, write keys,
//! forms, landing pages, tracked links and the notification outbox.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn workspace_fk(table: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, "workspace_id")
        .to("workspace", "id")
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn index(table: &'static str, name: &'static str, columns: &[&'static str], unique: bool) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for column in columns {
        index.col(*column);
    }
    if unique {
        index.unique();
    }
    index.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Anonymous visitors are profiles too (rows of `contact`), hidden from contact lists
        // until identified; first/last activity are kept on the row for cheap sorting.
        for column in [
            ColumnDef::new("anonymous")
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
            timestamp_with_time_zone_null("first_seen_at"),
            timestamp_with_time_zone_null("last_activity_at"),
        ] {
            manager
                .alter_table(Table::alter().table("contact").add_column(column).to_owned())
                .await?;
        }
        // Event batches update each active contact's activity times. Free space on every page
        // lets PostgreSQL keep those updates on the page (HOT) and prune old versions in place,
        // without touching any index; full pages turn each update into index writes.
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE contact SET (fillfactor = 80)")
                .await?;
        }
        // `last_activity_at` is deliberately not indexed: every event batch moves it, and an
        // index on it would turn each of those updates into a write to every contact index
        // (no HOT update on PostgreSQL). Sorting by it scans the workspace's contacts.

        manager
            .create_table(
                Table::create()
                    .table("contact_identity")
                    .col(uuid("workspace_id"))
                    // `anon:<anonymousId>` or `user:<userId>`: one key column keeps the batch
                    // lookup a single `IN (...)` on both backends.
                    .col(string_len("key", 300))
                    .col(uuid("contact_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("workspace_id").col("key"))
                    // No workspace foreign key: the contact's implies it (and cascades), and
                    // every avoided check counts at ingestion rates.
                    .foreign_key(
                        &mut ForeignKey::create()
                            .from("contact_identity", "contact_id")
                            .to("contact", "id")
                            .on_delete(ForeignKeyAction::Cascade)
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "contact_identity",
                "contact_identity_contact",
                &["contact_id"],
                false,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("event")
                    .col(pk_uuid("id"))
                    .col(uuid("workspace_id"))
                    .col(uuid("contact_id"))
                    .col(string_len("event_type", 40))
                    .col(string_len_null("name", 300))
                    .col(timestamp_with_time_zone("occurred_at"))
                    .col(timestamp_with_time_zone("received_at"))
                    .col(string_len("source", 40))
                    .col(string_len_null("channel", 20))
                    .col(string_len_null("campaign", 300))
                    .col(string_len_null("utm_source", 300))
                    .col(string_len_null("utm_medium", 300))
                    .col(string_len_null("utm_campaign", 300))
                    .col(string_len_null("utm_term", 300))
                    .col(string_len_null("utm_content", 300))
                    .col(json_binary("properties"))
                    .col(string_len_null("message_id", 200))
                    // As for identities, the contact's foreign key covers the workspace.
                    .foreign_key(
                        &mut ForeignKey::create()
                            .from("event", "contact_id")
                            .to("contact", "id")
                            .on_delete(ForeignKeyAction::Cascade)
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        for statement in [
            // The timeline: events of one contact, newest first.
            index(
                "event",
                "event_contact_time",
                &["contact_id", "occurred_at", "id"],
                false,
            ),
            // Analysts and segments: events of a type in a time window.
            index(
                "event",
                "event_workspace_type_time",
                &["workspace_id", "event_type", "occurred_at"],
                false,
            ),
            index(
                "event",
                "event_workspace_time",
                &["workspace_id", "occurred_at", "id"],
                false,
            ),
            // Idempotency: a retried message is stored once.
            index(
                "event",
                "event_workspace_message",
                &["workspace_id", "message_id"],
                true,
            ),
        ] {
            manager.create_index(statement).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table("contact_merge")
                    .col(pk_uuid("id"))
                    .col(uuid("workspace_id"))
                    .col(uuid("winner_id"))
                    // No foreign key: the merged-away contact no longer exists.
                    .col(uuid("loser_id"))
                    .col(string_len("reason", 40))
                    .col(json_binary("loser_snapshot"))
                    .col(integer("events_moved"))
                    .col(timestamp_with_time_zone("merged_at"))
                    .foreign_key(&mut workspace_fk("contact_merge"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "contact_merge",
                "contact_merge_winner",
                &["workspace_id", "winner_id"],
                false,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("write_key")
                    .col(pk_uuid("id"))
                    .col(uuid("workspace_id"))
                    .col(string("name"))
                    .col(string_len("prefix", 32))
                    .col(string_len_uniq("secret_hash", 64))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .foreign_key(&mut workspace_fk("write_key"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("form")
                    .col(pk_uuid("id"))
                    .col(uuid("workspace_id"))
                    .col(string("name"))
                    .col(json_binary("fields"))
                    .col(json_binary("consents"))
                    .col(text_null("success_message"))
                    .col(string_len_null("redirect_url", 2000))
                    .col(boolean("notify_owner").default(false))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(&mut workspace_fk("form"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("landing_page")
                    .col(pk_uuid("id"))
                    .col(uuid("workspace_id"))
                    .col(string_len("slug", 100))
                    .col(string("title"))
                    .col(text("body_html"))
                    .col(uuid_null("form_id"))
                    .col(boolean("published").default(true))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(&mut workspace_fk("landing_page"))
                    .foreign_key(
                        &mut ForeignKey::create()
                            .from("landing_page", "form_id")
                            .to("form", "id")
                            .on_delete(ForeignKeyAction::SetNull)
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "landing_page",
                "landing_page_workspace_slug",
                &["workspace_id", "slug"],
                true,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("tracked_link")
                    .col(pk_uuid("id"))
                    .col(uuid("workspace_id"))
                    .col(string_len_uniq("code", 32))
                    .col(string_len("target_url", 2000))
                    .col(string_len_null("campaign", 300))
                    .col(string_len_null("utm_source", 300))
                    .col(string_len_null("utm_medium", 300))
                    .col(string_len_null("utm_campaign", 300))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut workspace_fk("tracked_link"))
                    .to_owned(),
            )
            .await?;

        // Work for other parts of the system (e.g. telling an owner about a form submission),
        // written in the same transaction as its cause and delivered by a later worker.
        manager
            .create_table(
                Table::create()
                    .table("notification")
                    .col(pk_uuid("id"))
                    .col(uuid("workspace_id"))
                    .col(uuid_null("user_id"))
                    .col(string_len("kind", 60))
                    .col(json_binary("payload"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("delivered_at"))
                    .foreign_key(&mut workspace_fk("notification"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "notification",
                "notification_pending",
                &["delivered_at", "created_at"],
                false,
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "notification",
            "tracked_link",
            "landing_page",
            "form",
            "write_key",
            "contact_merge",
            "event",
            "contact_identity",
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        for column in ["last_activity_at", "first_seen_at", "anonymous"] {
            manager
                .alter_table(Table::alter().table("contact").drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
