//! A record of one contact merged into another (the loser is deleted; its snapshot stays here).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "contact_merge")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub winner_id: Uuid,
    pub loser_id: Uuid,
    /// `identify`, `alias` or `manual`.
    pub reason: String,
    pub loser_snapshot: Json,
    pub events_moved: i32,
    pub merged_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
