//! `POST /imports/contacts`: stages a CSV file of contacts for `contactImportStart` (an API key
//! with `contacts:write`). The body is the file itself (gzip or deflate accepted), up to 50 MB;
//! `?fileName=` names it. The answer is the import's id, the header's columns, the delimiter
//! found, the row count and a suggested mapping.

use super::{AppState, error_response, require_key};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::json;
use voxtur_core::auth::Scope;
use voxtur_core::contacts::import;
use voxtur_core::custom_fields::Definitions;
use voxtur_core::errors::MutationError;
use voxtur_core::ids::NodeKind;

pub fn routes(config: &mut web::ServiceConfig) {
    config.route("/imports/contacts", web::post().to(stage));
}

#[derive(serde::Deserialize)]
struct StageQuery {
    #[serde(rename = "fileName")]
    file_name: Option<String>,
}

async fn stage(
    req: HttpRequest,
    payload: web::Payload,
    query: web::Query<StageQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let principal = match require_key(&req, &state, Scope::ContactsWrite).await {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    let mut payload = actix_web::dev::Decompress::from_headers(payload, req.headers());
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return error_response(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", "could not read the file");
        };
        if body.len() + chunk.len() > import::MAX_FILE_BYTES {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                &format!("the file is larger than {} MB", import::MAX_FILE_BYTES / 1024 / 1024),
            );
        }
        body.extend_from_slice(&chunk);
    }
    let staged = import::stage(&state.db, principal.workspace_id, query.file_name.as_deref(), body).await;
    let staged = match staged {
        Ok(staged) => staged,
        Err(MutationError::Invalid(problems)) => {
            let message = problems.into_iter().map(|p| p.message).collect::<Vec<_>>().join("; ");
            return error_response(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", &message);
        }
        Err(MutationError::Api(error)) => {
            tracing::error!(error = %error.for_operator(), "import staging failed");
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "internal error");
        }
    };
    let columns = import::columns_of(&staged);
    let suggested =
        match Definitions::load(&state.db, principal.workspace_id, entities::enums::ObjectType::Contact).await {
            Ok(fields) => import::suggest(&columns, &fields),
            Err(_) => Vec::new(),
        };
    HttpResponse::Created().json(json!({
        "id": NodeKind::ContactImport.encode(staged.id),
        "fileName": staged.file_name,
        "columns": columns,
        "delimiter": staged.delimiter,
        "rows": staged.total_rows,
        "suggestedMapping": suggested.into_iter().map(|(column, target)| json!({ "column": column, "field": target.name() })).collect::<Vec<_>>(),
    }))
}
