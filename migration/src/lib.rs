//! Schema migrations. One migration list runs unchanged on SQLite and PostgreSQL; foreign keys
//! are declared inline because SQLite cannot add them to an existing table.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_foundation;
mod m20261125_000002_journey;
mod m20261125_000003_segments;
mod m20261125_000004_event_type_index;
mod m20261125_000005_segment_windows;
mod m20261202_000006_event_contact_keys;
mod m20261202_000007_deleted_profiles;
mod m20261202_000008_event_tally;
mod m20261203_000009_event_ids_from_messages;
mod m20261203_000010_dense_tallies;
mod m20261207_000011_compatibility;
mod m20261207_000012_hardening;
mod m20261207_000013_cost_buckets;
mod m20261207_000014_jobs;
mod m20261207_000015_webhooks;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_foundation::Migration),
            Box::new(m20261125_000002_journey::Migration),
            Box::new(m20261125_000003_segments::Migration),
            Box::new(m20261125_000004_event_type_index::Migration),
            Box::new(m20261125_000005_segment_windows::Migration),
            Box::new(m20261202_000006_event_contact_keys::Migration),
            Box::new(m20261202_000007_deleted_profiles::Migration),
            Box::new(m20261202_000008_event_tally::Migration),
            Box::new(m20261203_000009_event_ids_from_messages::Migration),
            Box::new(m20261203_000010_dense_tallies::Migration),
            Box::new(m20261207_000011_compatibility::Migration),
            Box::new(m20261207_000012_hardening::Migration),
            Box::new(m20261207_000013_cost_buckets::Migration),
            Box::new(m20261207_000014_jobs::Migration),
            Box::new(m20261207_000015_webhooks::Migration),
        ]
    }
}
