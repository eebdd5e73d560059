//! The Segment HTTP Tracking API: `POST /v1/{track,identify,page,screen,group,alias,batch}`, and
//! analytics.js's short paths (`/v1/t`, `/v1/p`, `/v1/i`, `/v1/g`, `/v1/a`, `/v1/b`), open to
//! browsers on any origin (CORS).
//! 200 `{"success": true}` when accepted; 400 with a reason for oversized or malformed calls;
//! 401 for a missing, wrong or revoked write key. A batch stores its valid messages and lists
//! the rejected ones by index.

// Handlers short-circuit with the finished error response; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use super::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use serde_json::{Value as Json, json};
use uuid::Uuid;
use voxtur_core::events::ingest::{Ingestor, Kind, MAX_BATCH_BYTES, MAX_CALL_BYTES, Message, parse};
use voxtur_core::events::write_keys::grant_for;
use voxtur_store::rate_limit::Verdict;

pub fn routes(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/v1")
            .wrap(from_fn(cors))
            .route("/batch", web::post().to(batch))
            .route("/import", web::post().to(batch))
            // analytics.js's short paths: /v1/t, /v1/p, /v1/i, /v1/g, /v1/a and /v1/b.
            .route("/b", web::post().to(batch))
            .route("/{kind}", web::post().to(single))
            .route("/{kind}", web::method(Method::OPTIONS).to(preflight)),
    );
}

/// Browsers on any site send here (analytics.js posts `text/plain`, a simple request, with the
/// write key in the body), as they do to Segment: every answer allows the calling origin, and a
/// key limited to some sites refuses the others' calls when it reads the key (`authenticate`).
async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut response = next.call(req).await?;
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        origin.unwrap_or_else(|| HeaderValue::from_static("*")),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    Ok(response)
}

/// The preflight of a cross-origin call that sends JSON or an `Authorization` header.
async fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST, OPTIONS"))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Authorization, Content-Type, Content-Encoding",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
        .finish()
}

/// A call's kind from its path, the long names and analytics.js's one-letter ones.
fn kind_of(path: &str) -> Option<Kind> {
    let long = match path {
        "t" => "track",
        "p" => "page",
        "i" => "identify",
        "g" => "group",
        "a" => "alias",
        other => other,
    };
    Kind::parse(long)
}

/// A 429 in the tracking API's shape, with `Retry-After` (Segment's libraries back off on it).
fn throttled(retry_after: std::time::Duration, message: &str) -> HttpResponse {
    let mut response = failure(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
    if let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn failure(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "success": false, "code": code, "message": message.into() }))
}

/// Reads the body up to `limit` bytes; over it is a 400, as Segment answers. A body sent with
/// `Content-Encoding: gzip` or `deflate` (RudderStack's SDKs gzip by default; Segment's may) is
/// inflated as it streams in, and the limit counts inflated bytes: a small body that inflates
/// past it is refused once it has, never inflated whole.
async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    what: &str,
) -> Result<web::Bytes, HttpResponse> {
    let mut payload = actix_web::dev::Decompress::from_headers(payload, req.headers());
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| {
            tracing::debug!(%error, "request body unreadable");
            failure(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("could not read the request body: {error}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(failure(
                StatusCode::BAD_REQUEST,
                "payload_too_large",
                format!("{what} exceeds the {} KB limit", limit / 1024),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn parse_json(body: &[u8]) -> Result<Json, HttpResponse> {
    serde_json::from_slice(body).map_err(|e| {
        failure(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("body is not valid JSON: {e}"),
        )
    })
}

/// The write key from basic auth (username) or from `writeKey` in the body, and whether the
/// calling site (its `Origin`) may use it.
async fn authenticate(req: &HttpRequest, body_key: Option<&str>, state: &AppState) -> Result<Uuid, HttpResponse> {
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(|userpass| userpass.split(':').next().unwrap_or_default().to_owned())
        .filter(|key| !key.is_empty());
    let key = from_header.or_else(|| body_key.map(str::to_owned));
    let unauthorized = || {
        failure(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing, unknown or revoked write key",
        )
    };
    if let Some(retry_after) = super::auth_refused(req, state) {
        return Err(throttled(
            retry_after,
            "too many failed authentications from this address",
        ));
    }
    let refuse = || async {
        match super::count_failed_auth(req, state).await {
            Some(retry_after) => throttled(retry_after, "too many failed authentications from this address"),
            None => unauthorized(),
        }
    };
    let Some(key) = key else { return Err(refuse().await) };
    match grant_for(&state.db, &state.principals, &key).await {
        Ok(Some(grant)) => {
            let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
            let max = state.limits.tracking_calls_per_minute;
            if max > 0
                && let Verdict::Limited { retry_after } = state
                    .limiter
                    .hit_batched(&format!("v1:{}", grant.key_id), max, super::MINUTE)
                    .await
            {
                Err(throttled(
                    retry_after,
                    &format!("this write key is over its {max} calls a minute"),
                ))
            } else if grant.allows(origin) {
                Ok(grant.workspace_id)
            } else {
                Err(failure(
                    StatusCode::FORBIDDEN,
                    "origin_not_allowed",
                    format!(
                        "this write key does not accept calls from {}",
                        origin.unwrap_or_default()
                    ),
                ))
            }
        }
        Ok(None) => Err(refuse().await),
        Err(error) => {
            tracing::error!(?error, "write key lookup failed");
            Err(failure(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"))
        }
    }
}

async fn store(ingestor: &Ingestor, workspace: Uuid, messages: &[Message]) -> Result<u64, HttpResponse> {
    ingestor
        .ingest(workspace, messages, "segment")
        .await
        .map(|o| o.stored)
        .map_err(|error| {
            tracing::error!(%error, "ingestion failed");
            failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; retry the call",
            )
        })
}

async fn single(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
    ingestor: web::Data<Ingestor>,
) -> HttpResponse {
    let Some(kind) = kind_of(&path) else {
        return failure(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no endpoint /v1/{path}; use track, identify, page, screen, group, alias or batch"),
        );
    };
    let result = async {
        let body = read_body(&req, payload, MAX_CALL_BYTES, "a call").await?;
        let raw = parse_json(&body)?;
        let body_key = raw.get("writeKey").and_then(Json::as_str).map(str::to_owned);
        let workspace = authenticate(&req, body_key.as_deref(), &state).await?;
        let message = parse(raw, Some(kind), voxtur_core::now(), None)
            .map_err(|e| failure(StatusCode::BAD_REQUEST, "invalid_message", e))?;
        store(&ingestor, workspace, &[message]).await?;
        Ok::<_, HttpResponse>(HttpResponse::Ok().json(json!({ "success": true })))
    }
    .await;
    result.unwrap_or_else(|response| response)
}

#[derive(serde::Deserialize)]
struct BatchBody<'a> {
    #[serde(borrow)]
    batch: Option<Vec<&'a serde_json::value::RawValue>>,
    #[serde(rename = "sentAt")]
    sent_at: Option<String>,
    #[serde(rename = "writeKey")]
    write_key: Option<String>,
}

async fn batch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    ingestor: web::Data<Ingestor>,
) -> HttpResponse {
    let result = async {
        let body = read_body(&req, payload, MAX_BATCH_BYTES, "a batch").await?;
        // Raw messages: their exact sizes come free, and each is parsed once.
        let raw: BatchBody = serde_json::from_slice(&body)
            .map_err(|e| failure(StatusCode::BAD_REQUEST, "invalid_json", format!("body is not a JSON batch: {e}")))?;
        let workspace = authenticate(&req, raw.write_key.as_deref(), &state).await?;
        let Some(items) = raw.batch else {
            return Err(failure(StatusCode::BAD_REQUEST, "invalid_batch", "body needs a `batch` array of messages"));
        };
        let received_at = voxtur_core::now();
        let sent_at = raw
            .sent_at
            .as_deref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        let mut messages = Vec::with_capacity(items.len());
        let mut rejected = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let parsed = if item.get().len() > MAX_CALL_BYTES {
                Err(format!("message exceeds the {} KB per-message limit", MAX_CALL_BYTES / 1024))
            } else {
                serde_json::from_str::<Json>(item.get()).map_err(|e| e.to_string()).and_then(|value| parse(value, None, received_at, sent_at))
            };
            match parsed {
                Ok(message) => messages.push(message),
                Err(error) => {
                    let message_id = serde_json::from_str::<Json>(item.get()).ok().and_then(|v| v.get("messageId").cloned());
                    rejected.push(json!({ "index": index, "messageId": message_id, "error": error }));
                }
            }
        }
        if messages.is_empty() && !rejected.is_empty() {
            return Err(HttpResponse::BadRequest().json(json!({ "success": false, "code": "invalid_message", "message": "no valid message in the batch", "rejected": rejected })));
        }
        let stored = store(&ingestor, workspace, &messages).await?;
        Ok(HttpResponse::Ok().json(json!({ "success": true, "accepted": messages.len(), "stored": stored, "rejected": rejected })))
    }
    .await;
    result.unwrap_or_else(|response| response)
}
