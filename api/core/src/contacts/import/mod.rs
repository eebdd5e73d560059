//! Contacts from a CSV file. Staging reads the file once (its encoding, delimiter, header and
//! row count) and keeps it; an import then maps its columns to fields and writes the rows in
//! chunks through the same upsert as `contactsUpsert`, one transaction a chunk, so progress
//! shows as it goes, segments move as for any write, and a dry run is the same work rolled back.
//!
//! Cells: empty cells leave a field as it is (an import never blanks what a contact has);
//! tags and multi-select values are split on `,`, `;` or `|`; consent cells read
//! yes/no words (`granted`, `yes`, `true`, `1`, `opt-in` / `withdrawn`, `no`, `false`, `0`,
//! `opt-out`); numbers may use a decimal comma; dates are `YYYY-MM-DD`.

mod file;
mod row;

pub use file::{Inspected, detect_delimiter, inspect, suggest};
pub use row::{TARGETS_HELP, Target};

use super::{ContactChanges, UpsertOutcome, upsert_in};
use crate::custom_fields::Definitions;
use crate::error::{ApiError, ApiResult};
use crate::errors::{MutationResult, UserError, UserErrorCode};
use crate::ids::NodeKind;
use crate::patch::Patch;
use entities::enums::ObjectType;
use entities::{company, contact, contact_import, contact_import_error};
use file::{reader, text_of};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

pub const MAX_FILE_BYTES: usize = 50 * 1024 * 1024;
/// Rows a transaction; within `contactsUpsert`'s limit.
const CHUNK: usize = 500;
/// Problems kept per import; beyond them rows are still counted as failed.
const MAX_ERRORS: i64 = 10_000;

pub const STAGED: &str = "staged";
pub const RUNNING: &str = "running";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";

/// What a row whose e-mail is already a contact's does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDuplicate {
    Update,
    Skip,
}

impl OnDuplicate {
    pub fn as_str(self) -> &'static str {
        match self {
            OnDuplicate::Update => "update",
            OnDuplicate::Skip => "skip",
        }
    }
}

/// Stages a file for import (nothing is imported yet).
pub async fn stage(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    file_name: Option<&str>,
    data: Vec<u8>,
) -> MutationResult<contact_import::Model> {
    if data.len() > MAX_FILE_BYTES {
        return Err(UserError::argument(
            &["file"],
            UserErrorCode::TooLong,
            format!("the file is larger than {} MB", MAX_FILE_BYTES / 1024 / 1024),
        )
        .into());
    }
    let inspected =
        inspect(&data).map_err(|message| UserError::argument(&["file"], UserErrorCode::Invalid, message))?;
    let model = contact_import::Model {
        id: Uuid::now_v7(),
        workspace_id,
        status: STAGED.into(),
        file_name: file_name.map(|n| n.chars().take(300).collect()),
        data,
        delimiter: (inspected.delimiter as char).to_string(),
        columns: json!(inspected.columns),
        mapping: None,
        on_duplicate: OnDuplicate::Update.as_str().into(),
        dry_run: false,
        total_rows: inspected.rows as i64,
        processed: 0,
        created: 0,
        updated: 0,
        skipped: 0,
        failed: 0,
        error: None,
        created_at: crate::now(),
        started_at: None,
        finished_at: None,
    };
    Ok(contact_import::ActiveModel::from(model).reset_all().insert(db).await?)
}

pub async fn find(db: &impl ConnectionTrait, workspace_id: Uuid, id: Uuid) -> ApiResult<Option<contact_import::Model>> {
    Ok(contact_import::Entity::find_by_id(id)
        .filter(contact_import::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?)
}

pub fn columns_of(import: &contact_import::Model) -> Vec<String> {
    serde_json::from_value(import.columns.clone()).unwrap_or_default()
}

/// The mapping an import ran (or runs) with: column name -> target.
pub fn mapping_of(import: &contact_import::Model) -> Vec<(String, Target)> {
    let pairs: Vec<(String, String)> = import
        .mapping
        .as_ref()
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default();
    pairs
        .into_iter()
        .filter_map(|(column, target)| Some((column, Target::parse(&target)?)))
        .collect()
}

/// Checks a mapping against the file and the workspace's fields, and marks the import running
/// with it; the caller then runs it ([`run`]). A finished or failed import may run again, e.g.
/// for real after a dry run.
pub async fn prepare(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    import_id: Uuid,
    mapping: &[(String, String)],
    on_duplicate: OnDuplicate,
    dry_run: bool,
) -> MutationResult<contact_import::Model> {
    let Some(import) = find(db, workspace_id, import_id).await? else {
        return Err(UserError::new(
            &["importId"],
            UserErrorCode::NotFound,
            "no such import in this workspace",
        )
        .into());
    };
    if import.status == RUNNING {
        return Err(UserError::new(
            &["importId"],
            UserErrorCode::Invalid,
            "this import is running; wait for it to end",
        )
        .into());
    }
    let columns = columns_of(&import);
    let fields = Definitions::load(db, workspace_id, ObjectType::Contact).await?;
    let mut targets: Vec<Target> = Vec::new();
    let mut stored = Vec::new();
    for (index, (column, target)) in mapping.iter().enumerate() {
        let at = |part: &str| vec!["mapping".to_owned(), index.to_string(), part.to_owned()];
        let fail = |part: &str, code, message: String| -> crate::errors::MutationError {
            let path = at(part);
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            UserError::new(&path, code, message).into()
        };
        if !columns.iter().any(|c| c == column) {
            return Err(fail(
                "column",
                UserErrorCode::NotFound,
                format!("the file has no column `{column}` (it has: {})", columns.join(", ")),
            ));
        }
        let Some(parsed) = Target::parse(target) else {
            return Err(fail(
                "field",
                UserErrorCode::Invalid,
                format!("`{target}` is not a field; use {TARGETS_HELP}"),
            ));
        };
        if let Target::Custom(key) = &parsed
            && fields.get(key).is_none()
        {
            return Err(fail(
                "field",
                UserErrorCode::UnknownField,
                format!("no custom field `{key}` is defined; define it with customFieldDefine first"),
            ));
        }
        if targets.contains(&parsed) {
            return Err(fail(
                "field",
                UserErrorCode::Invalid,
                format!("two columns map to `{target}`"),
            ));
        }
        targets.push(parsed);
        stored.push((column.clone(), target.trim().to_owned()));
    }
    if !targets.contains(&Target::Email) {
        return Err(UserError::new(
            &["mapping"],
            UserErrorCode::Required,
            "map a column to `email`: contacts are matched on their e-mail",
        )
        .into());
    }
    contact_import_error::Entity::delete_many()
        .filter(contact_import_error::Column::ImportId.eq(import.id))
        .exec(db)
        .await?;
    let mut active: contact_import::ActiveModel = import.into();
    active.status = sea_orm::Set(RUNNING.into());
    active.mapping = sea_orm::Set(Some(json!(stored)));
    active.on_duplicate = sea_orm::Set(on_duplicate.as_str().into());
    active.dry_run = sea_orm::Set(dry_run);
    for counter in [
        &mut active.processed,
        &mut active.created,
        &mut active.updated,
        &mut active.skipped,
        &mut active.failed,
    ] {
        *counter = sea_orm::Set(0);
    }
    active.error = sea_orm::Set(None);
    active.started_at = sea_orm::Set(Some(crate::now()));
    active.finished_at = sea_orm::Set(None);
    Ok(active.update(db).await?)
}

/// The problems an import found, in row order: up to `limit` of those after row `after_row`.
pub async fn problems(
    db: &impl ConnectionTrait,
    import_id: Uuid,
    after_row: i32,
    limit: u64,
) -> ApiResult<Vec<contact_import_error::Model>> {
    Ok(contact_import_error::Entity::find()
        .filter(contact_import_error::Column::ImportId.eq(import_id))
        .filter(contact_import_error::Column::RowNumber.gt(after_row))
        .order_by_asc(contact_import_error::Column::RowNumber)
        .order_by_asc(contact_import_error::Column::Seq)
        .limit(limit)
        .all(db)
        .await?)
}

/// How far an import has come.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub processed: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
}

/// One row's problem, for the report.
struct RowError {
    row: i32,
    column: Option<String>,
    message: String,
}

/// Runs a prepared import to its end, reporting progress after each chunk; marks it done, or
/// failed with the reason.
pub async fn run(
    db: &DatabaseConnection,
    import: &contact_import::Model,
    mut on_progress: impl FnMut(&Progress),
) -> ApiResult<Progress> {
    let outcome = run_rows(db, import, &mut on_progress).await;
    let (status, error) = match &outcome {
        Ok(_) => (DONE, None),
        Err(e) => {
            tracing::error!(error = %e.for_operator(), import = %import.id, "contact import failed");
            (FAILED, Some(e.message()))
        }
    };
    contact_import::Entity::update_many()
        .col_expr(contact_import::Column::Status, Expr::val(status))
        .col_expr(contact_import::Column::Error, Expr::val(error))
        .col_expr(contact_import::Column::FinishedAt, Expr::val(crate::now()))
        .filter(contact_import::Column::Id.eq(import.id))
        .exec(db)
        .await?;
    outcome
}

/// Queues a prepared import for the workers.
pub async fn enqueue(db: &DatabaseConnection, import: &contact_import::Model) -> ApiResult<()> {
    let args = json!({ "importId": import.id.to_string() });
    let job = crate::jobs::NewJob::new(crate::jobs::IMPORT, import.workspace_id, args).max_attempts(IMPORT_ATTEMPTS);
    crate::jobs::enqueue(db, job).await?;
    crate::jobs::queue::wake();
    Ok(())
}

/// Attempts an import gets before it is marked failed (a row's own problems are reported, not
/// retried: only faults of the database end an attempt).
const IMPORT_ATTEMPTS: i32 = 3;

/// The import job. An attempt after one that died starts over: rows already saved are matched
/// by e-mail and saved again (counted as updated), the problems found are reported once.
pub async fn run_job(db: DatabaseConnection, job: crate::jobs::Job) -> Result<(), crate::jobs::JobError> {
    use crate::jobs::JobError;
    let id = crate::jobs::id_arg(&job, "importId")?;
    let Some(import) = contact_import::Entity::find_by_id(id).one(&db).await? else {
        return Err(JobError::Discard("the import is gone".into()));
    };
    if import.status != RUNNING {
        return Err(JobError::Discard(format!(
            "the import is {}, not running",
            import.status
        )));
    }
    if job.attempt > 1 {
        contact_import_error::Entity::delete_many()
            .filter(contact_import_error::Column::ImportId.eq(id))
            .exec(&db)
            .await?;
    }
    let outcome = run_rows(&db, &import, &mut |_| {}).await;
    let last_attempt = job.attempt >= job.max_attempts;
    let (status, error) = match &outcome {
        Ok(_) => (DONE, None),
        Err(e) if last_attempt || !matches!(e, ApiError::Internal(_)) => {
            tracing::error!(error = %e.for_operator(), import = %id, "contact import failed");
            (FAILED, Some(e.message()))
        }
        Err(e) => return Err(JobError::Retry(e.for_operator())),
    };
    contact_import::Entity::update_many()
        .col_expr(contact_import::Column::Status, Expr::val(status))
        .col_expr(contact_import::Column::Error, Expr::val(error))
        .col_expr(contact_import::Column::FinishedAt, Expr::val(crate::now()))
        .filter(contact_import::Column::Id.eq(id))
        .exec(&db)
        .await?;
    match outcome {
        Ok(_) => Ok(()),
        Err(e) => Err(JobError::Discard(e.for_operator())),
    }
}

async fn run_rows(
    db: &DatabaseConnection,
    import: &contact_import::Model,
    on_progress: &mut impl FnMut(&Progress),
) -> ApiResult<Progress> {
    let text = text_of(&import.data).map_err(ApiError::bad_input)?;
    let delimiter = import.delimiter.bytes().next().unwrap_or(b',');
    let columns = columns_of(import);
    let mapping: Vec<(usize, Target)> = mapping_of(import)
        .into_iter()
        .filter_map(|(column, target)| Some((columns.iter().position(|c| *c == column)?, target)))
        .collect();
    let fields = Definitions::load(db, import.workspace_id, ObjectType::Contact).await?;
    let skip_known = import.on_duplicate == OnDuplicate::Skip.as_str();
    let mut progress = Progress::default();
    let mut stored_errors = 0i64;
    let mut csv = reader(text, delimiter);
    let mut records = csv.records();
    let mut row = 0i32;
    loop {
        let mut chunk: Vec<(i32, row::Row)> = Vec::with_capacity(CHUNK);
        let mut errors: Vec<RowError> = Vec::new();
        for record in records.by_ref().take(CHUNK) {
            row += 1;
            let record = record.map_err(|e| ApiError::bad_input(format!("row {row}: {e}")))?;
            if record.len() > columns.len() {
                errors.push(RowError {
                    row,
                    column: None,
                    message: format!("the row has {} cells and the header {}", record.len(), columns.len()),
                });
                continue;
            }
            match row::read(&record, &mapping, &columns, &fields) {
                Ok(parsed) => chunk.push((row, parsed)),
                Err(cell_errors) => errors.extend(cell_errors.into_iter().map(|(column, message)| RowError {
                    row,
                    column: Some(column),
                    message,
                })),
            }
        }
        let rows_read = chunk.len() + errors.iter().map(|e| e.row).collect::<HashSet<_>>().len();
        if rows_read == 0 {
            break;
        }
        progress.failed += (rows_read - chunk.len()) as i64;
        if skip_known {
            let known = known_emails(
                db,
                import.workspace_id,
                chunk.iter().filter_map(|(_, r)| r.email.as_deref()),
            )
            .await?;
            let before = chunk.len();
            chunk.retain(|(_, r)| r.email.as_ref().is_none_or(|e| !known.contains(e)));
            progress.skipped += (before - chunk.len()) as i64;
        }
        if !chunk.is_empty() {
            write_chunk(db, import, &mapping, &columns, chunk, &mut progress, &mut errors).await?;
        }
        progress.processed += rows_read as i64;
        stored_errors += store_errors(db, import.id, &errors, MAX_ERRORS - stored_errors).await?;
        contact_import::Entity::update_many()
            .col_expr(contact_import::Column::Processed, Expr::val(progress.processed))
            .col_expr(contact_import::Column::Created, Expr::val(progress.created))
            .col_expr(contact_import::Column::Updated, Expr::val(progress.updated))
            .col_expr(contact_import::Column::Skipped, Expr::val(progress.skipped))
            .col_expr(contact_import::Column::Failed, Expr::val(progress.failed))
            .filter(contact_import::Column::Id.eq(import.id))
            .exec(db)
            .await?;
        on_progress(&progress);
    }
    Ok(progress)
}

/// Upserts one chunk in one transaction (rolled back for a dry run), counting the outcomes and
/// turning the upsert's problems into row errors at the column they came from.
async fn write_chunk(
    db: &DatabaseConnection,
    import: &contact_import::Model,
    mapping: &[(usize, Target)],
    columns: &[String],
    chunk: Vec<(i32, row::Row)>,
    progress: &mut Progress,
    errors: &mut Vec<RowError>,
) -> ApiResult<()> {
    let txn = crate::db::begin_write(db).await?;
    let company_ids = companies_by_name(
        &txn,
        import.workspace_id,
        chunk.iter().filter_map(|(_, r)| r.company.as_deref()),
    )
    .await?;
    let (rows, items): (Vec<i32>, Vec<ContactChanges>) = chunk
        .into_iter()
        .map(|(row, parsed)| {
            let mut changes = parsed.changes;
            if let Some(id) = parsed.company.and_then(|name| company_ids.get(&name).copied()) {
                changes.company_id = Patch::Set(NodeKind::Company.encode(id));
            }
            (row, changes)
        })
        .unzip();
    let (outcomes, changes) = upsert_in(&txn, import.workspace_id, items).await.map_err(|e| match e {
        crate::errors::MutationError::Invalid(problems) => {
            ApiError::bad_input(problems.into_iter().map(|p| p.message).collect::<Vec<_>>().join("; "))
        }
        crate::errors::MutationError::Api(e) => e,
    })?;
    let column_of = |path: &[String]| {
        mapping
            .iter()
            .find(|(_, target)| {
                let head = target.error_path();
                path.len() >= head.len() && path[..head.len()] == head[..]
            })
            .map(|(index, _)| columns[*index].clone())
    };
    for (row, outcome) in rows.into_iter().zip(outcomes) {
        match outcome {
            UpsertOutcome::Created(_) => progress.created += 1,
            UpsertOutcome::Updated(_) => progress.updated += 1,
            UpsertOutcome::Failed(problems) => {
                progress.failed += 1;
                errors.extend(problems.into_iter().map(|p| RowError {
                    row,
                    column: column_of(&p.field),
                    message: p.message,
                }));
            }
        }
    }
    if import.dry_run {
        txn.rollback().await?;
    } else {
        crate::writes::commit(db, txn, changes).await?;
    }
    Ok(())
}

async fn known_emails<'a>(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    emails: impl Iterator<Item = &'a str>,
) -> ApiResult<HashSet<String>> {
    let emails: Vec<String> = emails.map(str::to_owned).collect();
    if emails.is_empty() {
        return Ok(HashSet::new());
    }
    let found: Vec<Option<String>> = contact::Entity::find()
        .select_only()
        .column(contact::Column::Email)
        .filter(contact::Column::WorkspaceId.eq(workspace_id))
        .filter(contact::Column::Email.is_in(emails))
        .into_tuple()
        .all(db)
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// The ids of companies named in a chunk: the workspace's company of each name (the oldest, if
/// two share it), else a new one.
async fn companies_by_name<'a>(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    names: impl Iterator<Item = &'a str>,
) -> ApiResult<HashMap<String, Uuid>> {
    let names: HashSet<String> = names.map(str::to_owned).collect();
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    let mut found: HashMap<String, Uuid> = HashMap::new();
    let rows: Vec<(Uuid, String)> = company::Entity::find()
        .select_only()
        .column(company::Column::Id)
        .column(company::Column::Name)
        .filter(company::Column::WorkspaceId.eq(workspace_id))
        .filter(company::Column::Name.is_in(names.iter().cloned()))
        .into_tuple()
        .all(db)
        .await?;
    for (id, name) in rows {
        let entry = found.entry(name).or_insert(id);
        *entry = (*entry).min(id);
    }
    let now = crate::now();
    let missing: Vec<String> = names.into_iter().filter(|n| !found.contains_key(n)).collect();
    for name in missing {
        let model = company::Model {
            id: Uuid::now_v7(),
            workspace_id,
            name: name.clone(),
            domain: None,
            industry: None,
            size: None,
            owner_id: None,
            group_key: None,
            custom_fields: json!({}),
            created_at: now,
            updated_at: now,
        };
        let made = company::ActiveModel::from(model).reset_all().insert(db).await?;
        found.insert(name, made.id);
    }
    Ok(found)
}

/// Stores up to `room` row errors; returns how many it stored.
async fn store_errors(db: &DatabaseConnection, import_id: Uuid, errors: &[RowError], room: i64) -> ApiResult<i64> {
    let take = errors.len().min(room.max(0) as usize);
    if take == 0 {
        return Ok(0);
    }
    let mut seq_of_row: HashMap<i32, i32> = HashMap::new();
    let rows: Vec<contact_import_error::ActiveModel> = errors[..take]
        .iter()
        .map(|e| {
            let seq = seq_of_row.entry(e.row).or_insert(0);
            *seq += 1;
            contact_import_error::ActiveModel::from(contact_import_error::Model {
                import_id,
                row_number: e.row,
                seq: *seq,
                column_name: e.column.clone(),
                message: e.message.chars().take(1_000).collect(),
            })
            .reset_all()
        })
        .collect();
    for batch in rows.chunks(1_000) {
        contact_import_error::Entity::insert_many(batch.to_vec())
            .exec_without_returning(db)
            .await?;
    }
    Ok(take as i64)
}
