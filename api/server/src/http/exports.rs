//! `GET /exports/{id}`: an export job's CSV, streamed chunk by chunk, to the same credentials
//! (an API key of the workspace with `contacts:read`).

use super::{AppState, error_response, require_key};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use entities::{export_chunk, export_job};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use voxtur_core::auth::Scope;
use voxtur_core::ids::{NodeKind, decode_as};

pub fn routes(config: &mut web::ServiceConfig) {
    config.route("/exports/{id}", web::get().to(download));
}

async fn download(req: HttpRequest, path: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    let principal = match require_key(&req, &state, Scope::ContactsRead).await {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    let not_found = || error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such export in this workspace");
    let Some(id) = decode_as(&path, NodeKind::ExportJob) else {
        return not_found();
    };
    let job = match export_job::Entity::find_by_id(id)
        .filter(export_job::Column::WorkspaceId.eq(principal.workspace_id))
        .one(&state.db)
        .await
    {
        Ok(Some(job)) => job,
        Ok(None) => return not_found(),
        Err(error) => {
            tracing::error!(%error, "export lookup failed");
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "internal error");
        }
    };
    if job.status != voxtur_core::segments::export::DONE {
        return error_response(
            StatusCode::CONFLICT,
            "NOT_READY",
            &format!("the export is {}; download it when exportJob says DONE", job.status),
        );
    }
    // One chunk in memory at a time, however large the export.
    let db = state.db.clone();
    let chunks = futures_util::stream::unfold(0i32, move |seq| {
        let db = db.clone();
        async move {
            match export_chunk::Entity::find_by_id((id, seq)).one(&db).await {
                Ok(Some(chunk)) => Some((Ok::<_, actix_web::Error>(web::Bytes::from(chunk.data)), seq + 1)),
                Ok(None) => None,
                Err(error) => {
                    tracing::error!(%error, "export chunk read failed");
                    Some((
                        Err(actix_web::error::ErrorInternalServerError("export read failed")),
                        i32::MAX,
                    ))
                }
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"segment-export-{}.csv\"", job.id),
        ))
        .streaming(chunks)
}
