//! Contact imports from CSV: a file staged with `POST /imports/contacts`, then
//! `contactImportStart` with a column mapping; `contactImport(id)` shows progress and problems.

use crate::guards::ScopeGuard;
use crate::relay::{NodeId, NodeKind, decode_as};
use crate::request;
use crate::user_error::{UserError, into_payload};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entities::contact_import;
use voxtur_core::auth::Scope;
use voxtur_core::contacts::import::{self, OnDuplicate};
use voxtur_core::custom_fields::Definitions;

/// Where an import stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ContactImportStatus {
    /// Uploaded and read; waiting for `contactImportStart`.
    Staged,
    /// Importing.
    Running,
    /// Every row was read (see the counts and `errors`).
    Done,
    /// Stopped by an error (see `error`); it may be started again.
    Failed,
}

/// What a row whose e-mail is already a contact's does.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "voxtur_core::contacts::import::OnDuplicate")]
pub enum ContactImportOnDuplicate {
    /// The row's non-empty cells update the contact.
    Update,
    /// The row is skipped; the contact stays as it is.
    Skip,
}

/// A column of the file and the field it fills.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "ContactImportColumnInput")]
pub struct ContactImportColumn {
    /// The column's name in the file's header.
    pub column: String,
    /// `email`, `firstName`, `lastName`, `phone`, `company` (by name; made when missing),
    /// `lifecycleStage`, `tags`, `source`, `consent:<email|sms|phone|letter|visit>` or
    /// `custom:<field key>`.
    pub field: String,
}

/// One problem in one row of the file.
#[derive(SimpleObject)]
pub struct ContactImportProblem {
    /// The row, 1 for the first after the header.
    pub row: i32,
    /// The column at fault; null for the row as a whole.
    pub column: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// A CSV file of contacts and its import.
pub struct ContactImport(pub contact_import::Model);

/// A CSV file of contacts and its import.
#[Object(guard = "ScopeGuard(Scope::ContactsWrite)")]
impl ContactImport {
    /// Global id.
    async fn id(&self) -> ID {
        NodeKind::ContactImport.id(self.0.id)
    }
    /// Where it stands.
    async fn status(&self) -> ContactImportStatus {
        match self.0.status.as_str() {
            import::RUNNING => ContactImportStatus::Running,
            import::DONE => ContactImportStatus::Done,
            import::FAILED => ContactImportStatus::Failed,
            _ => ContactImportStatus::Staged,
        }
    }
    /// The uploaded file's name.
    async fn file_name(&self) -> Option<&str> {
        self.0.file_name.as_deref()
    }
    /// The delimiter found in the header: `,`, `;` or a tab.
    async fn delimiter(&self) -> &str {
        &self.0.delimiter
    }
    /// The header's columns, in order.
    async fn columns(&self) -> Vec<String> {
        import::columns_of(&self.0)
    }
    /// The fields the column names suggest (English, German and French names, and the
    /// workspace's custom fields' keys and labels): a mapping to start from.
    async fn suggested_mapping(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ContactImportColumn>> {
        let r = request(ctx)?;
        let fields = Definitions::load(r.db, r.principal.workspace_id, entities::enums::ObjectType::Contact).await?;
        Ok(import::suggest(&import::columns_of(&self.0), &fields)
            .into_iter()
            .map(|(column, target)| ContactImportColumn {
                column,
                field: target.name(),
            })
            .collect())
    }
    /// The mapping it runs (or ran) with.
    async fn mapping(&self) -> Vec<ContactImportColumn> {
        import::mapping_of(&self.0)
            .into_iter()
            .map(|(column, target)| ContactImportColumn {
                column,
                field: target.name(),
            })
            .collect()
    }
    /// A row whose e-mail is known: updated or skipped.
    async fn on_duplicate(&self) -> ContactImportOnDuplicate {
        if self.0.on_duplicate == OnDuplicate::Skip.as_str() {
            ContactImportOnDuplicate::Skip
        } else {
            ContactImportOnDuplicate::Update
        }
    }
    /// A dry run: every row checked and counted as it would be imported, nothing saved.
    async fn dry_run(&self) -> bool {
        self.0.dry_run
    }
    /// Rows in the file (after the header).
    async fn total_rows(&self) -> i64 {
        self.0.total_rows
    }
    /// Rows read so far.
    async fn processed(&self) -> i64 {
        self.0.processed
    }
    /// Share done, 0 to 1.
    async fn progress(&self) -> f64 {
        if self.0.total_rows == 0 {
            0.0
        } else {
            (self.0.processed as f64 / self.0.total_rows as f64).min(1.0)
        }
    }
    /// Contacts created (for a dry run: that would be).
    async fn created(&self) -> i64 {
        self.0.created
    }
    /// Contacts updated (for a dry run: that would be).
    async fn updated(&self) -> i64 {
        self.0.updated
    }
    /// Rows skipped because their e-mail is known (with `onDuplicate: SKIP`).
    async fn skipped(&self) -> i64 {
        self.0.skipped
    }
    /// Rows not imported for a problem (see `errors`).
    async fn failed(&self) -> i64 {
        self.0.failed
    }
    /// The problems found, by row (the first 10,000 are kept).
    async fn errors(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many, at most 1000.", default = 100)] first: i32,
        #[graphql(desc = "Only rows after this one.")] after_row: Option<i32>,
    ) -> async_graphql::Result<Vec<ContactImportProblem>> {
        let r = request(ctx)?;
        let rows = import::problems(r.db, self.0.id, after_row.unwrap_or(0), first.clamp(0, 1000) as u64).await?;
        Ok(rows
            .into_iter()
            .map(|e| ContactImportProblem {
                row: e.row_number,
                column: e.column_name,
                message: e.message,
            })
            .collect())
    }
    /// Why it failed.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// When the file was staged.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When the last run started.
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    /// When the last run ended.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

#[derive(Default)]
pub struct ImportQuery;

#[Object]
impl ImportQuery {
    /// A contact import by id; null when it does not exist in this workspace.
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn contact_import(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The import's id.")] id: ID,
    ) -> async_graphql::Result<Option<ContactImport>> {
        let r = request(ctx)?;
        let Some(id) = decode_as(&id, NodeKind::ContactImport) else {
            return Ok(None);
        };
        Ok(import::find(r.db, r.principal.workspace_id, id)
            .await?
            .map(ContactImport))
    }
}

/// Starts importing a staged file.
#[derive(InputObject)]
pub struct ContactImportStartInput {
    /// The id `POST /imports/contacts` answered with.
    pub import_id: ID,
    /// Which column fills which field; one column must fill `email` (contacts are matched on
    /// it). Columns not named are left out.
    pub mapping: Vec<ContactImportColumn>,
    /// A row whose e-mail is known: update the contact (default) or skip the row.
    #[graphql(default_with = "ContactImportOnDuplicate::Update")]
    pub on_duplicate: ContactImportOnDuplicate,
    /// Check and count every row as it would be imported, and save nothing.
    #[graphql(default = false)]
    pub dry_run: bool,
}

/// Result of `contactImportStart`.
#[derive(SimpleObject)]
pub struct ContactImportPayload {
    /// The import, running; poll `contactImport(id)` for its progress.
    pub import: Option<ContactImport>,
    /// Why it did not start.
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct ImportMutation;

#[Object]
impl ImportMutation {
    /// Starts importing a staged CSV file in the background. A finished import may be started
    /// again (for real after a dry run, or with another mapping); rows already imported are
    /// matched on e-mail, not duplicated.
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn contact_import_start(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The import and its mapping.")] input: ContactImportStartInput,
    ) -> async_graphql::Result<ContactImportPayload> {
        let r = request(ctx)?;
        let mapping: Vec<(String, String)> = input.mapping.into_iter().map(|m| (m.column, m.field)).collect();
        let prepared = match decode_as(&input.import_id, NodeKind::ContactImport) {
            Some(id) => {
                import::prepare(
                    r.db,
                    r.principal.workspace_id,
                    id,
                    &mapping,
                    input.on_duplicate.into(),
                    input.dry_run,
                )
                .await
            }
            None => Err(voxtur_core::errors::UserError::new(
                &["importId"],
                voxtur_core::errors::UserErrorCode::NotFound,
                "no such import in this workspace",
            )
            .into()),
        };
        let (prepared, user_errors) = into_payload(prepared)?;
        if let Some(prepared) = &prepared {
            import::enqueue(r.db, prepared).await?;
        }
        Ok(ContactImportPayload {
            import: prepared.map(ContactImport),
            user_errors,
        })
    }
}
