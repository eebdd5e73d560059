use crate::enums::{CustomFieldType, ObjectType};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "custom_field")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub object_type: ObjectType,
    /// Machine name (`[a-z][a-z0-9_]*`), the key in the record's `custom_fields` JSON.
    pub key: String,
    pub label: String,
    pub field_type: CustomFieldType,
    /// Allowed values (a JSON array of strings) for select fields; `[]` otherwise.
    pub options: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
