use crate::enums::{ConsentStatus, LifecycleStage};
use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "contact")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// Trimmed and lower-cased, so uniqueness per workspace is case-insensitive on every backend.
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub company_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
    pub lifecycle_stage: LifecycleStage,
    pub consent_email: ConsentStatus,
    pub consent_sms: ConsentStatus,
    pub consent_phone: ConsentStatus,
    pub consent_letter: ConsentStatus,
    pub consent_visit: ConsentStatus,
    pub dnc_email: bool,
    pub dnc_sms: bool,
    pub dnc_phone: bool,
    pub dnc_letter: bool,
    pub dnc_visit: bool,
    pub source: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    /// Values of custom fields, keyed by field key, validated against `custom_field`.
    pub custom_fields: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// An anonymous visitor's profile (no email or user id yet); hidden from contact lists.
    pub anonymous: bool,
    pub first_seen_at: Option<DateTimeUtc>,
    pub last_activity_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
