//! The GraphQL face of custom field definitions.

use crate::guards::ScopeGuard;
use crate::relay::NodeId;
use crate::relay::NodeKind;
use crate::user_error::{UserError, into_payload};
use crate::{OrderDirection, request};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entities::custom_field;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use voxtur_core::auth::Scope;
use voxtur_core::custom_fields::{DefineInput, FieldSql};

/// The kinds of record that carry custom fields.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "entities::enums::ObjectType")]
pub enum ObjectType {
    /// Contacts.
    Contact,
    /// Companies.
    Company,
}

/// The value type of a custom field.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "entities::enums::CustomFieldType")]
pub enum CustomFieldType {
    /// Free text (up to 10,000 characters).
    Text,
    /// A number.
    Number,
    /// True or false.
    Boolean,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// One of the field's options.
    SingleSelect,
    /// Any set of the field's options, as a list.
    MultiSelect,
}

/// Sort by a custom field.
#[derive(InputObject, Clone, Debug)]
pub struct CustomFieldOrder {
    /// The custom field's key.
    pub key: String,
    /// Direction.
    pub direction: OrderDirection,
}

/// A typed field a workspace adds to contacts or companies.
pub struct CustomField(pub custom_field::Model);

/// A typed field a workspace adds to contacts or companies.
#[Object(guard = "ScopeGuard(Scope::ContactsRead)")]
impl CustomField {
    /// Global id.
    pub async fn id(&self) -> ID {
        NodeKind::CustomField.id(self.0.id)
    }
    /// The kind of record this field belongs to.
    async fn object_type(&self) -> ObjectType {
        self.0.object_type.into()
    }
    /// Machine name, the key in `customFields` objects.
    async fn key(&self) -> &str {
        &self.0.key
    }
    /// Name shown to people.
    async fn label(&self) -> &str {
        &self.0.label
    }
    /// Value type.
    #[graphql(name = "type")]
    async fn field_type(&self) -> CustomFieldType {
        self.0.field_type.into()
    }
    /// Allowed values of select fields; empty for other types.
    async fn options(&self) -> Vec<String> {
        serde_json::from_value(self.0.options.clone()).unwrap_or_default()
    }
    /// When the field was defined.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When the definition last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

#[derive(Default)]
pub struct CustomFieldQuery;

#[Object]
impl CustomFieldQuery {
    /// Custom field definitions, by object type then key (at most 500 per object type).
    #[graphql(guard = "ScopeGuard(Scope::ContactsRead)")]
    async fn custom_fields(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only fields of this object type.")] object_type: Option<ObjectType>,
    ) -> async_graphql::Result<Vec<CustomField>> {
        let r = request(ctx)?;
        let mut select =
            custom_field::Entity::find().filter(custom_field::Column::WorkspaceId.eq(r.principal.workspace_id));
        if let Some(object_type) = object_type {
            select = select.filter(custom_field::Column::ObjectType.eq(entities::enums::ObjectType::from(object_type)));
        }
        let rows = select
            .order_by_asc(custom_field::Column::ObjectType)
            .order_by_asc(custom_field::Column::Key)
            .all(r.db)
            .await?;
        Ok(rows.into_iter().map(CustomField).collect())
    }
}

/// A custom field to define, or the new label and options of an existing one.
#[derive(InputObject, Clone, Debug)]
pub struct CustomFieldDefineInput {
    /// The kind of record the field belongs to.
    pub object_type: ObjectType,
    /// Machine name: a lower-case letter, then a-z, 0-9 or _ (at most 63). Identifies the field.
    pub key: String,
    /// Name shown to people.
    pub label: String,
    /// Value type; cannot change once defined.
    #[graphql(name = "type")]
    pub field_type: CustomFieldType,
    /// Allowed values, for select fields (required for them, refused for others). Options in
    /// use by some record cannot be removed.
    pub options: Option<Vec<String>>,
}

/// Result of `customFieldDefine`.
#[derive(SimpleObject)]
pub struct CustomFieldDefinePayload {
    /// The definition as saved.
    pub custom_field: Option<CustomField>,
    /// Validation failures; nothing was saved when this is not empty.
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct CustomFieldMutation;

#[Object]
impl CustomFieldMutation {
    /// Defines a custom field, or updates the label and options of an existing one (matched on
    /// object type and key).
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn custom_field_define(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The definition.")] input: CustomFieldDefineInput,
    ) -> async_graphql::Result<CustomFieldDefinePayload> {
        let r = request(ctx)?;
        let table = match input.object_type {
            ObjectType::Contact => "contact",
            ObjectType::Company => "company",
        };
        let sql = FieldSql::custom_fields(r.db.get_database_backend(), table);
        let define = DefineInput {
            object_type: input.object_type.into(),
            key: input.key,
            label: input.label,
            field_type: input.field_type.into(),
            options: input.options,
        };
        let (field, user_errors) =
            into_payload(voxtur_core::custom_fields::define(r.db, r.principal.workspace_id, define, sql).await)?;
        Ok(CustomFieldDefinePayload {
            custom_field: field.map(CustomField),
            user_errors,
        })
    }
}
