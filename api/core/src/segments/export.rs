//! CSV export of a segment's members, a page at a time in contact-id order (keyset on the
//! membership's primary key), so no export holds the whole segment in memory. The CLI writes the
//! pages to a file; a GraphQL-started job stores them as chunks that `GET /exports/{id}` streams.

use crate::error::{ApiError, ApiResult};
use crate::errors::{MutationResult, UserError, UserErrorCode};
use crate::ids::NodeKind;
use entities::{company, contact, export_chunk, export_job, segment_member};
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

const HEADER: [&str; 10] = [
    "id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "lifecycle_stage",
    "company",
    "owner_id",
    "created_at",
    "last_activity_at",
];

/// One page of members as CSV rows (the header first when `after` is `None`), the last contact
/// id written (to continue after), and how many rows.
pub async fn page(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    segment_id: Uuid,
    after: Option<Uuid>,
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
    let mut out = csv::Writer::from_writer(Vec::new());
    let csv_error = |e: csv::Error| ApiError::Internal(e.to_string().into());
    if after.is_none() {
        out.write_record(HEADER).map_err(csv_error)?;
    }
    let text = |value: Option<&String>| value.map_or_else(String::new, |v| spreadsheet_safe(v));
    for c in &contacts {
        out.write_record([
            NodeKind::Contact.encode(c.id),
            text(c.email.as_ref()),
            text(c.first_name.as_ref()),
            text(c.last_name.as_ref()),
            text(c.phone.as_ref()),
            c.lifecycle_stage.to_value(),
            text(c.company_id.and_then(|id| companies.get(&id))),
            c.owner_id.map(|id| NodeKind::User.encode(id)).unwrap_or_default(),
            c.created_at.to_rfc3339(),
            c.last_activity_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
        ])
        .map_err(csv_error)?;
    }
    let bytes = out.into_inner().map_err(|e| ApiError::Internal(e.to_string().into()))?;
    let text = String::from_utf8(bytes).map_err(|e| ApiError::Internal(e.to_string().into()))?;
    Ok((text, ids.last().copied(), contacts.len() as u64))
}

/// Starts an export job of a segment's members; it runs in the background of this server.
pub async fn start(db: &DatabaseConnection, workspace_id: Uuid, segment_id: Uuid) -> MutationResult<export_job::Model> {
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
    let (db, id) = (db.clone(), job.id);
    tokio::spawn(async move {
        let outcome = run(&db, workspace_id, segment_id, id).await;
        let (status, error) = match &outcome {
            Ok(()) => (DONE, None),
            Err(e) => {
                tracing::error!(error = %e.for_operator(), job = %id, "export failed");
                (FAILED, Some(e.message()))
            }
        };
        let finished = export_job::Entity::update_many()
            .col_expr(export_job::Column::Status, Expr::val(status))
            .col_expr(export_job::Column::Error, Expr::val(error))
            .col_expr(export_job::Column::FinishedAt, Expr::val(crate::now()))
            .filter(export_job::Column::Id.eq(id))
            .exec(&db)
            .await;
        if let Err(e) = finished {
            tracing::error!(error = %e, job = %id, "export status not saved");
        }
    });
    Ok(job)
}

async fn run(db: &DatabaseConnection, workspace_id: Uuid, segment_id: Uuid, job_id: Uuid) -> ApiResult<()> {
    let mut after = None;
    let mut processed = 0i64;
    for seq in 0.. {
        let (data, last, rows) = page(db, workspace_id, segment_id, after).await?;
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
