//! Outbound webhooks (Standard Webhooks):
//! - `webhook_endpoint`: a workspace's receiver: its URL, the event types it takes, its signing
//!   secret (and the previous one, valid a day after a rotation), whether it is enabled (and why
//!   not), and the lease of the one job delivering to it at a time;
//! - `webhook_delivery`: one event for one endpoint, recorded in the transaction of its cause,
//!   delivered in order per contact, retried for about three days;
//! - `webhook_attempt`: each attempt: status, latency, error, the start of the response body.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("webhook_endpoint")
                    .col(pk_uuid("id"))
                    .col(uuid("workspace_id"))
                    .col(string_len("url", 2000))
                    .col(string_len_null("description", 2000))
                    .col(json_binary("event_types"))
                    .col(string_len("secret", 100))
                    .col(string_len_null("previous_secret", 100))
                    .col(timestamp_with_time_zone_null("previous_secret_until"))
                    .col(boolean("enabled"))
                    .col(string_len_null("disabled_reason", 2000))
                    .col(timestamp_with_time_zone_null("draining_until"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("webhook_endpoint", "workspace_id")
                            .to("workspace", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_delivery")
                    .col(pk_uuid("id"))
                    .col(uuid("workspace_id"))
                    .col(uuid("endpoint_id"))
                    .col(string_len("event_type", 60))
                    .col(uuid_null("contact_id"))
                    .col(json_binary("payload"))
                    .col(string_len("state", 20))
                    .col(integer("attempts"))
                    .col(timestamp_with_time_zone("next_attempt_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("delivered_at"))
                    .col(integer_null("last_status"))
                    .col(string_len_null("last_error", 2000))
                    .foreign_key(
                        ForeignKey::create()
                            .from("webhook_delivery", "endpoint_id")
                            .to("webhook_endpoint", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_attempt")
                    .col(pk_uuid("id"))
                    .col(uuid("delivery_id"))
                    .col(timestamp_with_time_zone("attempted_at"))
                    .col(integer_null("status_code"))
                    .col(integer("latency_ms"))
                    .col(string_len_null("error", 2000))
                    .col(string_len_null("response_body", 2000))
                    .foreign_key(
                        ForeignKey::create()
                            .from("webhook_attempt", "delivery_id")
                            .to("webhook_delivery", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for statement in [
            "CREATE INDEX webhook_endpoint_workspace ON webhook_endpoint (workspace_id, created_at)",
            "CREATE INDEX webhook_delivery_pending ON webhook_delivery (endpoint_id, created_at, id) WHERE state = 'pending'",
            "CREATE INDEX webhook_delivery_listing ON webhook_delivery (endpoint_id, created_at)",
            "CREATE INDEX webhook_attempt_delivery ON webhook_attempt (delivery_id, attempted_at)",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["webhook_attempt", "webhook_delivery", "webhook_endpoint"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
