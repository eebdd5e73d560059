//! Workspaces, members, teams, API keys, companies, contacts, tags and custom field definitions.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `workspace_id` plus a cascading foreign key: deleting a workspace removes everything in it.
fn tenant_table(name: &'static str) -> TableCreateStatement {
    Table::create()
        .table(name)
        .col(pk_uuid("id"))
        .col(uuid("workspace_id"))
        .foreign_key(
            ForeignKey::create()
                .from(name, "workspace_id")
                .to("workspace", "id")
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

fn set_null_fk(from: &'static str, column: &'static str, to: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from, column)
        .to(to, "id")
        .on_delete(ForeignKeyAction::SetNull)
        .to_owned()
}

fn cascade_fk(from: &'static str, column: &'static str, to: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from, column)
        .to(to, "id")
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn index(table: &'static str, name: &'static str, columns: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for column in columns {
        index.col(*column);
    }
    index.to_owned()
}

fn unique_index(table: &'static str, name: &'static str, columns: &[&'static str]) -> IndexCreateStatement {
    index(table, name, columns).unique().to_owned()
}

fn timestamps(table: &mut TableCreateStatement) -> &mut TableCreateStatement {
    table
        .col(timestamp_with_time_zone("created_at"))
        .col(timestamp_with_time_zone("updated_at"))
}

fn consent_columns(table: &mut TableCreateStatement) -> &mut TableCreateStatement {
    const CHANNELS: [(&str, &str); 5] = [
        ("consent_email", "dnc_email"),
        ("consent_sms", "dnc_sms"),
        ("consent_phone", "dnc_phone"),
        ("consent_letter", "dnc_letter"),
        ("consent_visit", "dnc_visit"),
    ];
    for (consent, do_not_contact) in CHANNELS {
        table
            .col(string_len(consent, 32).default("unknown"))
            .col(boolean(do_not_contact).default(false));
    }
    table
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("workspace")
                    .col(pk_uuid("id"))
                    .col(string("name"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;

        let mut app_user = tenant_table("app_user");
        app_user
            .col(string("email"))
            .col(string("name"))
            .col(string_len("role", 32));
        manager.create_table(timestamps(&mut app_user).to_owned()).await?;
        manager
            .create_index(unique_index(
                "app_user",
                "app_user_workspace_email",
                &["workspace_id", "email"],
            ))
            .await?;

        let mut team = tenant_table("team");
        team.col(string("name")).col(timestamp_with_time_zone("created_at"));
        manager.create_table(team).await?;
        manager
            .create_index(unique_index("team", "team_workspace_name", &["workspace_id", "name"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("team_member")
                    .col(uuid("team_id"))
                    .col(uuid("user_id"))
                    .col(uuid("workspace_id"))
                    .primary_key(Index::create().col("team_id").col("user_id"))
                    .foreign_key(&mut cascade_fk("team_member", "team_id", "team"))
                    .foreign_key(&mut cascade_fk("team_member", "user_id", "app_user"))
                    .foreign_key(&mut cascade_fk("team_member", "workspace_id", "workspace"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("team_member", "team_member_user", &["user_id"]))
            .await?;

        let mut api_key = tenant_table("api_key");
        api_key
            .col(string("name"))
            .col(string_len("prefix", 32))
            .col(string_len_uniq("secret_hash", 64))
            .col(text("scopes"))
            .col(timestamp_with_time_zone("created_at"))
            .col(timestamp_with_time_zone_null("revoked_at"));
        manager.create_table(api_key).await?;
        manager
            .create_index(index("api_key", "api_key_workspace", &["workspace_id", "created_at"]))
            .await?;

        let mut company = tenant_table("company");
        company
            .col(string("name"))
            .col(string_null("domain"))
            .col(string_null("industry"))
            .col(string_len_null("size", 32))
            .col(uuid_null("owner_id"))
            .col(json_binary("custom_fields"))
            .foreign_key(&mut set_null_fk("company", "owner_id", "app_user"));
        manager.create_table(timestamps(&mut company).to_owned()).await?;
        for statement in [
            unique_index("company", "company_workspace_domain", &["workspace_id", "domain"]),
            index(
                "company",
                "company_workspace_created",
                &["workspace_id", "created_at", "id"],
            ),
            index("company", "company_workspace_name", &["workspace_id", "name", "id"]),
            index("company", "company_owner", &["owner_id"]),
        ] {
            manager.create_index(statement).await?;
        }

        let mut contact = tenant_table("contact");
        contact
            .col(string_null("email"))
            .col(string_null("first_name"))
            .col(string_null("last_name"))
            .col(string_null("phone"))
            .col(uuid_null("company_id"))
            .col(uuid_null("owner_id"))
            .col(string_len("lifecycle_stage", 32).default("subscriber"));
        consent_columns(&mut contact);
        for column in [
            "source",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_term",
            "utm_content",
        ] {
            contact.col(string_null(column));
        }
        contact
            .col(json_binary("custom_fields"))
            .foreign_key(&mut set_null_fk("contact", "company_id", "company"))
            .foreign_key(&mut set_null_fk("contact", "owner_id", "app_user"));
        manager.create_table(timestamps(&mut contact).to_owned()).await?;
        for statement in [
            unique_index("contact", "contact_workspace_email", &["workspace_id", "email"]),
            index(
                "contact",
                "contact_workspace_created",
                &["workspace_id", "created_at", "id"],
            ),
            index(
                "contact",
                "contact_workspace_updated",
                &["workspace_id", "updated_at", "id"],
            ),
            index(
                "contact",
                "contact_workspace_stage_created",
                &["workspace_id", "lifecycle_stage", "created_at", "id"],
            ),
            index(
                "contact",
                "contact_workspace_last_name",
                &["workspace_id", "last_name", "id"],
            ),
            index("contact", "contact_company", &["company_id", "created_at", "id"]),
            index("contact", "contact_owner", &["owner_id"]),
        ] {
            manager.create_index(statement).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table("contact_tag")
                    .col(uuid("contact_id"))
                    .col(string_len("tag", 100))
                    .col(uuid("workspace_id"))
                    .primary_key(Index::create().col("contact_id").col("tag"))
                    .foreign_key(&mut cascade_fk("contact_tag", "contact_id", "contact"))
                    .foreign_key(&mut cascade_fk("contact_tag", "workspace_id", "workspace"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "contact_tag",
                "contact_tag_workspace_tag",
                &["workspace_id", "tag", "contact_id"],
            ))
            .await?;

        let mut custom_field = tenant_table("custom_field");
        custom_field
            .col(string_len("object_type", 32))
            .col(string_len("key", 63))
            .col(string("label"))
            .col(string_len("field_type", 32))
            .col(json_binary("options"));
        manager.create_table(timestamps(&mut custom_field).to_owned()).await?;
        manager
            .create_index(unique_index(
                "custom_field",
                "custom_field_workspace_object_key",
                &["workspace_id", "object_type", "key"],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "custom_field",
            "contact_tag",
            "contact",
            "company",
            "api_key",
            "team_member",
            "team",
            "app_user",
            "workspace",
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
