//! CSV export of a segment's members, a page at a time in contact-id order (keyset on the
//! membership's primary key), so no export holds the whole segment in memory. The CLI writes the
//! pages to a file; a GraphQL-started job stores them as chunks that `GET /exports/{id}` streams.

use crate::error::{ApiError, ApiResult};
use crate::errors::{MutationResult, UserError, UserErrorCode};
use crate::ids::NodeKind;
use entities::enums::ObjectType;
use entities::{company, contact, contact_tag, export_chunk, export_job, segment_member};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use std::collections::HashMap;
use uuid::Uuid;

/// Members per page (and per stored chunk).
pub const PAGE: u64 = 5_000;
pub const RUNNING: &str = "running";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";

/// The fixed columns; one per custom field follows, headed by its key. The names are the ones
/// an import suggests for them, so an export imports back as it is.
const HEADER: [&str; 16] = [
    "id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "lifecycle_stage",
    "company",
    "owner_id",
    "tags",
    "consent_email",
    "consent_sms",
    "consent_phone",
    "consent_letter",
    "consent_visit",
    "created_at",
    "last_activity_at",
];

/// How an export is written.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Custom field keys, one column each, in key order.
    pub custom_fields: Vec<String>,
    /// Start the file with a UTF-8 byte-order mark, by which Excel knows the file is UTF-8
    /// (without it, Excel reads accents as another encoding's).
    pub bom: bool,
}

impl ExportOptions {
    pub async fn load(db: &DatabaseConnection, workspace_id: Uuid, bom: bool) -> ApiResult<ExportOptions> {
        let definitions = crate::custom_fields::Definitions::load(db, workspace_id, ObjectType::Contact).await?;
        let mut custom_fields: Vec<String> = definitions.iter().map(|d| d.key.clone()).collect();
        custom_fields.sort();
        Ok(ExportOptions { custom_fields, bom })
    }
}

/// A custom field's value as a cell: lists joined by `; `.
fn custom_cell(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(text)) => spreadsheet_safe(text),
        Some(serde_json::Value::Array(items)) => spreadsheet_safe(
            &items
                .iter()
                .map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Some(other) => other.to_string(),
    }
}

/// One page of members as CSV rows (the header first when `after` is `None`), the last contact
/// id written (to continue after), and how many rows.
pub async fn page(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    segment_id: Uuid,
    after: Option<Uuid>,
    options: &ExportOptions,
) -> ApiResult<(String, Option<Uuid>, u64)> {
    let mut ids = segment_member::Entity::find()
        .select_only()
        .column(segment_member::Column::ContactId)
        .filter(segment_member::Column::SegmentId.eq(segment_id))
        .filter(segment_member::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(segment_member::Column::ContactId)
        .limit(PAGE);
    if let Some(after) = after {
        ids = ids.filter(segment_member::Column::ContactId.gt(after));
    }
    let ids: Vec<Uuid> = ids.into_tuple().all(db).await?;
    let contacts = contact::Entity::find()
        .filter(contact::Column::WorkspaceId.eq(workspace_id))
        .filter(contact::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(contact::Column::Id)
        .all(db)
        .await?;
    let company_ids: Vec<Uuid> = contacts.iter().filter_map(|c| c.company_id).collect();
    let companies: HashMap<Uuid, String> = if company_ids.is_empty() {
        HashMap::new()
    } else {
        company::Entity::find()
            .select_only()
            .column(company::Column::Id)
            .column(company::Column::Name)
            .filter(company::Column::Id.is_in(company_ids))
            .into_tuple::<(Uuid, String)>()
            .all(db)
            .await?
            .into_iter()
            .collect()
    };
    let mut tags: HashMap<Uuid, Vec<String>> = HashMap::new();
    if !contacts.is_empty() {
        let rows: Vec<(Uuid, String)> = contact_tag::Entity::find()
            .select_only()
            .column(contact_tag::Column::ContactId)
            .column(contact_tag::Column::Tag)
            .filter(contact_tag::Column::WorkspaceId.eq(workspace_id))
            .filter(contact_tag::Column::ContactId.is_in(ids.iter().copied()))
            .order_by_asc(contact_tag::Column::Tag)
            .into_tuple()
            .all(db)
            .await?;
        for (contact_id, tag) in rows {
            tags.entry(contact_id).or_default().push(tag);
        }
    }
    let mut out = csv::Writer::from_writer(Vec::new());
    let csv_error = |e: csv::Error| ApiError::Internal(e.to_string().into());
    if after.is_none() {
        let header = HEADER
            .iter()
            .map(|h| h.to_string())
            .chain(options.custom_fields.iter().cloned());
        out.write_record(header).map_err(csv_error)?;
    }
    let text = |value: Option<&String>| value.map_or_else(String::new, |v| spreadsheet_safe(v));
    for c in &contacts {
        let fixed = [
            NodeKind::Contact.encode(c.id),
            text(c.email.as_ref()),
            text(c.first_name.as_ref()),
            text(c.last_name.as_ref()),
            text(c.phone.as_ref()),
            c.lifecycle_stage.to_value(),
            text(c.company_id.and_then(|id| companies.get(&id))),
            c.owner_id.map(|id| NodeKind::User.encode(id)).unwrap_or_default(),
            text(tags.get(&c.id).map(|t| t.join("; ")).as_ref()),
            c.consent_email.to_value(),
            c.consent_sms.to_value(),
            c.consent_phone.to_value(),
            c.consent_letter.to_value(),
            c.consent_visit.to_value(),
            c.created_at.to_rfc3339(),
            c.last_activity_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
        ];
        let custom = options
            .custom_fields
            .iter()
            .map(|key| custom_cell(c.custom_fields.get(key)));
        out.write_record(fixed.into_iter().chain(custom)).map_err(csv_error)?;
    }
    let bytes = out.into_inner().map_err(|e| ApiError::Internal(e.to_string().into()))?;
    let mut text = String::from_utf8(bytes).map_err(|e| ApiError::Internal(e.to_string().into()))?;
    if after.is_none() && options.bom {
        text.insert(0, '\u{feff}');
    }
    Ok((text, ids.last().copied(), contacts.len() as u64))
}

/// Starts an export job of a segment's members; it runs in the background of this server.
pub async fn start(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    segment_id: Uuid,
    bom: bool,
) -> MutationResult<export_job::Model> {
    let Some(segment) = super::find(db, workspace_id, segment_id).await? else {
        return Err(UserError::argument(
            &["segmentId"],
            UserErrorCode::NotFound,
            "no such segment in this workspace",
        )
        .into());
    };
    let job = export_job::ActiveModel::from(export_job::Model {
        id: Uuid::now_v7(),
        workspace_id,
        segment_id,
        status: RUNNING.into(),
        processed: 0,
        total: segment.member_count,
        error: None,
        created_at: crate::now(),
        finished_at: None,
    })
    .reset_all()
    .insert(db)
    .await?;
    let args = serde_json::json!({ "exportId": job.id.to_string(), "bom": bom });
    let queued = crate::jobs::NewJob::new(crate::jobs::EXPORT, workspace_id, args).max_attempts(EXPORT_ATTEMPTS);
    crate::jobs::enqueue(db, queued).await?;
    crate::jobs::queue::wake();
    Ok(job)
}

/// Attempts an export gets before it is marked failed.
const EXPORT_ATTEMPTS: i32 = 3;

/// The export job: writes the CSV's chunks from the first (those of an attempt that died are
/// replaced), then marks the export done; failed once out of attempts.
pub async fn run_job(db: DatabaseConnection, job: crate::jobs::Job) -> Result<(), crate::jobs::JobError> {
    use crate::jobs::JobError;
    let id = crate::jobs::id_arg(&job, "exportId")?;
    let bom = job
        .args
        .get("bom")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let Some(export) = export_job::Entity::find_by_id(id).one(&db).await? else {
        return Err(JobError::Discard("the export is gone".into()));
    };
    let outcome = async {
        export_chunk::Entity::delete_many()
            .filter(export_chunk::Column::JobId.eq(id))
            .exec(&db)
            .await?;
        let options = ExportOptions::load(&db, export.workspace_id, bom).await?;
        run(&db, export.workspace_id, export.segment_id, id, &options).await
    }
    .await;
    let last_attempt = job.attempt >= job.max_attempts;
    let (status, error) = match &outcome {
        Ok(()) => (DONE, None),
        Err(e) if last_attempt => {
            tracing::error!(error = %e.for_operator(), export = %id, "export failed");
            (FAILED, Some(e.message()))
        }
        Err(e) => return Err(JobError::Retry(e.for_operator())),
    };
    export_job::Entity::update_many()
        .col_expr(export_job::Column::Status, Expr::val(status))
        .col_expr(export_job::Column::Error, Expr::val(error))
        .col_expr(export_job::Column::FinishedAt, Expr::val(crate::now()))
        .filter(export_job::Column::Id.eq(id))
        .exec(&db)
        .await?;
    match outcome {
        Ok(()) => Ok(()),
        Err(e) => Err(JobError::Discard(e.for_operator())),
    }
}

async fn run(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    segment_id: Uuid,
    job_id: Uuid,
    options: &ExportOptions,
) -> ApiResult<()> {
    let mut after = None;
    let mut processed = 0i64;
    for seq in 0.. {
        let (data, last, rows) = page(db, workspace_id, segment_id, after, options).await?;
        if rows == 0 && seq > 0 {
            break;
        }
        export_chunk::ActiveModel::from(export_chunk::Model { job_id, seq, data })
            .reset_all()
            .insert(db)
            .await?;
        processed += rows as i64;
        export_job::Entity::update_many()
            .col_expr(export_job::Column::Processed, Expr::val(processed))
            .filter(export_job::Column::Id.eq(job_id))
            .exec(db)
            .await?;
        if rows < PAGE {
            break;
        }
        after = last;
    }
    Ok(())
}

/// A text cell a spreadsheet will not run as a formula (OWASP's CSV injection advice): a cell
/// starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, except a
/// number or a phone number that only starts with `+` or `-` (`+49 30 1234`, `-5`), which no
/// spreadsheet reads as a formula and which the quote would spoil.
pub fn spreadsheet_safe(cell: &str) -> String {
    let Some(first) = cell.chars().next() else {
        return String::new();
    };
    let number_like = matches!(first, '+' | '-')
        && cell.len() > 1
        && cell[1..].chars().all(|c| c.is_ascii_digit() || " ().-".contains(c))
        && cell[1..].chars().any(|c| c.is_ascii_digit());
    if matches!(first, '=' | '+' | '-' | '@' | '\t' | '\r') && !number_like {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::spreadsheet_safe;

    #[test]
    fn formulas_are_quoted_and_numbers_left_alone() {
        for (cell, expected) in [
            (
                "=HYPERLINK(\"http://evil\", \"x\")",
                "'=HYPERLINK(\"http://evil\", \"x\")",
            ),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("+49 (30) 1234-56", "+49 (30) 1234-56"),
            ("-5", "-5"),
            ("-", "'-"),
            ("Ann", "Ann"),
            ("", ""),
        ] {
            assert_eq!(spreadsheet_safe(cell), expected, "{cell:?}");
        }
    }
}
