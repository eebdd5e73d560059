//! A CSV file of contacts: `staged` (uploaded, columns read), then `running`, `done` or `failed`,
//! with its progress. The file stays with the import so a dry run can be followed by the real one.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "contact_import")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub status: String,
    pub file_name: Option<String>,
    pub data: Vec<u8>,
    /// `,`, `;` or a tab, as detected from the header line.
    pub delimiter: String,
    /// The header's column names, in order (a JSON array).
    pub columns: Json,
    /// Column name -> field, as given when the import started (a JSON object).
    pub mapping: Option<Json>,
    /// `update` or `skip`: what a row whose e-mail is already a contact's does.
    pub on_duplicate: String,
    pub dry_run: bool,
    pub total_rows: i64,
    pub processed: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
