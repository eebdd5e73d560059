//! Per contact and event type: how many events, and the times of the latest ten. Behaviour
//! conditions ("at least 3 page views in the last 30 days", "ever opened an email") read one
//! row per contact here instead of grouping the window's events by contact, which at a million
//! contacts was most of a segment's evaluation (docs/perf-history.md, issue 4).
//!
//! `recent` holds the latest occurrence times, newest first: a native array on PostgreSQL, a
//! JSON array of the timestamps as SQLite stores them on SQLite (text that sorts as time).
//! "At least N in the last D days" is then "the N-th latest is within D days". The window index
//! carries `recent`, so that question is answered from the index alone.
//!
//! No foreign key to the contact, as for events on PostgreSQL (migration 6): the writers that
//! delete or merge a contact remove or move its tallies themselves.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES: [&str; 3] = [
    "CREATE TABLE event_tally (
        contact_id uuid NOT NULL,
        event_type varchar(40) NOT NULL,
        workspace_id uuid NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
        total bigint NOT NULL,
        last_at timestamptz NOT NULL,
        recent timestamptz[] NOT NULL,
        PRIMARY KEY (contact_id, event_type))",
    "CREATE INDEX event_tally_window ON event_tally (workspace_id, event_type, last_at)
        INCLUDE (contact_id, recent, total)",
    "INSERT INTO event_tally (contact_id, event_type, workspace_id, total, last_at, recent)
        SELECT contact_id, event_type, workspace_id, count(*), max(occurred_at),
               (array_agg(occurred_at ORDER BY occurred_at DESC))[1:10]
        FROM event GROUP BY contact_id, event_type, workspace_id",
];

const SQLITE: [&str; 3] = [
    "CREATE TABLE event_tally (
        contact_id uuid_text NOT NULL,
        event_type varchar(40) NOT NULL,
        workspace_id uuid_text NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
        total bigint NOT NULL,
        last_at timestamp_with_timezone_text NOT NULL,
        recent json_text NOT NULL,
        PRIMARY KEY (contact_id, event_type))",
    "CREATE INDEX event_tally_window ON event_tally
        (workspace_id, event_type, last_at, contact_id, recent, total)",
    "INSERT INTO event_tally (contact_id, event_type, workspace_id, total, last_at, recent)
        SELECT contact_id, event_type, workspace_id, count(*), max(occurred_at),
               json_group_array(occurred_at ORDER BY occurred_at DESC) FILTER (WHERE latest <= 10)
        FROM (SELECT contact_id, event_type, workspace_id, occurred_at,
                     row_number() OVER (PARTITION BY contact_id, event_type ORDER BY occurred_at DESC) AS latest
              FROM event)
        GROUP BY contact_id, event_type, workspace_id",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements = match manager.get_database_backend() {
            DbBackend::Postgres => POSTGRES,
            _ => SQLITE,
        };
        let db = manager.get_connection();
        for sql in statements {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("event_tally").to_owned()).await
    }
}
