//! One interaction of a contact with the company. Append-only.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "event")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub contact_id: Uuid,
    /// A standard type (`page_viewed`, `email_opened`, ...) or `custom`.
    pub event_type: String,
    /// The custom event name, or the page name.
    pub name: Option<String>,
    pub occurred_at: DateTimeUtc,
    pub received_at: DateTimeUtc,
    /// Where it came from: `segment`, `form`, `landing_page`, `link`, `backoffice`.
    pub source: String,
    pub channel: Option<String>,
    pub campaign: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    pub properties: Json,
    /// The sender's message id; unique per workspace, so retries are stored once.
    pub message_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
