//! A public page: sanitized HTML plus an optional embedded form.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "landing_page")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub slug: String,
    pub title: String,
    /// Already sanitized when stored.
    pub body_html: String,
    pub form_id: Option<Uuid>,
    pub published: bool,
    /// The page's own CSS, after the default stylesheet.
    pub css: Option<String>,
    /// The CSP `frame-ancestors` sources: who may show the page in a frame (`'self'` if none).
    pub frame_ancestors: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
