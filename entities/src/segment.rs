//! A segment: `dynamic` (membership follows the stored contact filter, kept as the GraphQL
//! input's JSON) or `static` (a marketing list, members added and removed explicitly).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "segment")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub kind: String,
    pub filter: Option<Json>,
    pub member_count: i64,
    pub evaluated_at: Option<DateTimeUtc>,
    /// Sliding windows (`withinLastDays`) are up to date as of this time: events older than it
    /// minus a window have been taken out of that window's counts.
    pub windows_checked_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
