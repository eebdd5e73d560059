//! Public endpoints: `POST /forms/{id}` (JSON or urlencoded), `GET /p/{workspace}/{slug}`
//! (landing pages), `GET /l/{code}` (tracked links).

// Handlers short-circuit with the finished error response; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use super::AppState;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use entities::{form, landing_page, tracked_link};
use futures_util::StreamExt;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Map, Value as Json, json};
use uuid::Uuid;
use voxtur_core::events::ingest::{Ingestor, Kind, parse};
use voxtur_core::web::forms::{FieldErrors, SubmitError, Submitted, submit};
use voxtur_core::web::pages::{
    FormState, content_security_policy, message_page, not_found_page, render_form_page, render_page,
};
use voxtur_store::rate_limit::Verdict;

const MAX_FORM_BYTES: usize = 64 * 1024;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/forms/{id}", web::post().to(form_submit))
        .route("/p/{workspace}/{slug}", web::get().to(landing_page_view))
        .route("/l/{code}", web::get().to(link_click));
}

/// The visitor's anonymous id from the cookie, or a new one to set.
fn visitor(req: &HttpRequest) -> (String, bool) {
    let existing = req
        .headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|cookies| {
            cookies
                .split(';')
                .find_map(|c| c.trim().strip_prefix(&format!("{VISITOR_COOKIE}=")).map(str::to_owned))
        })
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    match existing {
        Some(id) => (id, false),
        None => (Uuid::new_v4().to_string(), true),
    }
}

fn visitor_cookie(id: &str) -> String {
    format!("{VISITOR_COOKIE}={id}; Path=/; Max-Age=63072000; HttpOnly; SameSite=Lax")
}

/// A public page with no form and no page CSS of its own (not found, a refusal).
fn html(status: StatusCode, body: String) -> HttpResponse {
    html_with(status, body, &content_security_policy(None, None, "'none'"))
}

/// A public page under its `Content-Security-Policy` (see `pages::content_security_policy`).
fn html_with(status: StatusCode, body: String, csp: &str) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    secured(&mut response, csp);
    response.content_type("text/html; charset=utf-8").body(body)
}

/// The headers every public answer carries: no type sniffing, the referrer's origin only to
/// other sites, and the page's CSP.
fn secured(response: &mut actix_web::HttpResponseBuilder, csp: &str) {
    response
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "strict-origin-when-cross-origin"));
    if let Ok(value) = header::HeaderValue::from_str(csp) {
        response.insert_header((header::CONTENT_SECURITY_POLICY, value));
    }
}

/// The CSP of a landing page with its form.
fn page_policy(page: &landing_page::Model, form: Option<&form::Model>) -> String {
    content_security_policy(
        page.css.as_deref(),
        form.and_then(|f| f.redirect_url.as_deref()),
        page.frame_ancestors.as_deref().unwrap_or("'self'"),
    )
}

fn utm_from_query(req: &HttpRequest) -> Map<String, Json> {
    let mut utm = Map::new();
    for (key, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        if key.starts_with("utm_") && value.len() <= 300 && !value.contains('\0') {
            utm.insert(key.into_owned(), Json::String(value.into_owned()));
        }
    }
    utm
}

/// Records one page or link message through the tracking pipeline (same identity resolution).
async fn record(ingestor: &Ingestor, workspace_id: Uuid, message: Json, kind: Kind, source: &str) {
    match parse(message, Some(kind), voxtur_core::now(), None) {
        Ok(message) => {
            if let Err(error) = ingestor.ingest(workspace_id, &[message], source).await {
                tracing::error!(%error, "could not record a {source} event");
            }
        }
        Err(error) => tracing::error!(%error, "could not build a {source} event"),
    }
}

fn campaign_context(utm: &Map<String, Json>) -> Json {
    json!({
        "source": utm.get("utm_source"),
        "medium": utm.get("utm_medium"),
        "name": utm.get("utm_campaign"),
        "term": utm.get("utm_term"),
        "content": utm.get("utm_content"),
    })
}

async fn landing_page_view(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    ingestor: web::Data<Ingestor>,
) -> HttpResponse {
    let (workspace, slug) = path.into_inner();
    let missing = || {
        html(
            StatusCode::NOT_FOUND,
            not_found_page("There is no page at this address."),
        )
    };
    let Ok(workspace_id) = Uuid::parse_str(&workspace) else {
        return missing();
    };
    if !voxtur_core::web::pages::valid_slug(&slug) {
        return missing();
    }
    let page = landing_page::Entity::find()
        .filter(landing_page::Column::WorkspaceId.eq(workspace_id))
        .filter(landing_page::Column::Slug.eq(slug.clone()))
        .filter(landing_page::Column::Published.eq(true))
        .one(&state.db)
        .await;
    let page = match page {
        Ok(Some(page)) => page,
        Ok(None) => return missing(),
        Err(error) => {
            tracing::error!(%error, "landing page lookup failed");
            return html(StatusCode::INTERNAL_SERVER_ERROR, not_found_page("Please try again."));
        }
    };
    let form = match page.form_id {
        Some(id) => form::Entity::find_by_id(id).one(&state.db).await.ok().flatten(),
        None => None,
    };
    let (visitor_id, new_visitor) = visitor(&req);
    let utm = utm_from_query(&req);
    let message = json!({
        "anonymousId": visitor_id,
        "name": page.title,
        "properties": { "path": req.path(), "slug": page.slug, "landingPageId": page.id.to_string(), "referrer": req.headers().get(header::REFERER).and_then(|v| v.to_str().ok()) },
        "context": { "campaign": campaign_context(&utm) },
    });
    record(&ingestor, workspace_id, message, Kind::Page, "landing_page").await;
    let mut response = HttpResponse::Ok();
    secured(&mut response, &page_policy(&page, form.as_ref()));
    response.content_type("text/html; charset=utf-8");
    if new_visitor {
        response.insert_header((header::SET_COOKIE, visitor_cookie(&visitor_id)));
    }
    let full_path = match req.query_string() {
        "" => req.path().to_owned(),
        query => format!("{}?{query}", req.path()),
    };
    response.body(render_page(&page, form.as_ref(), &full_path, None))
}

async fn link_click(
    req: HttpRequest,
    code: web::Path<String>,
    state: web::Data<AppState>,
    ingestor: web::Data<Ingestor>,
) -> HttpResponse {
    let missing = || html(StatusCode::NOT_FOUND, not_found_page("This link does not exist."));
    let code = code.into_inner();
    if code.len() > 32 || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
        return missing();
    }
    let link = match tracked_link::Entity::find()
        .filter(tracked_link::Column::Code.eq(code))
        .one(&state.db)
        .await
    {
        Ok(Some(link)) => link,
        Ok(None) => return missing(),
        Err(error) => {
            tracing::error!(%error, "link lookup failed");
            return html(StatusCode::INTERNAL_SERVER_ERROR, not_found_page("Please try again."));
        }
    };
    let (visitor_id, new_visitor) = visitor(&req);
    let target = voxtur_core::web::links::with_utm(
        &link.target_url,
        &[
            ("utm_source", link.utm_source.as_deref()),
            ("utm_medium", link.utm_medium.as_deref()),
            ("utm_campaign", link.utm_campaign.as_deref()),
        ],
    );
    let message = json!({
        "anonymousId": visitor_id,
        "event": "link_clicked",
        "properties": { "code": link.code, "target": target, "linkId": link.id.to_string() },
        "context": { "campaign": { "source": link.utm_source, "medium": link.utm_medium, "name": link.campaign.clone().or(link.utm_campaign.clone()) } },
    });
    record(&ingestor, link.workspace_id, message, Kind::Track, "link").await;
    let mut response = HttpResponse::Found();
    secured(&mut response, "default-src 'none'");
    response.insert_header((header::LOCATION, target));
    if new_visitor {
        response.insert_header((header::SET_COOKIE, visitor_cookie(&visitor_id)));
    }
    response.finish()
}

/// Whether to answer a submission with a page: a browser posting the form (urlencoded, or
/// asking for HTML) gets one; a program sending JSON, or asking for it, keeps JSON.
fn wants_html(req: &HttpRequest, urlencoded: bool) -> bool {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    accept.contains("text/html") || (urlencoded && !accept.contains("application/json"))
}

/// A failure before the form could be read, as a page or as JSON.
fn refusal(browser: bool, status: StatusCode, message: &str) -> HttpResponse {
    if browser {
        let title = if status == StatusCode::NOT_FOUND {
            "Not found"
        } else {
            "Not sent"
        };
        html(status, message_page(title, message, None, None))
    } else {
        HttpResponse::build(status).json(json!({ "success": false, "message": message }))
    }
}

async fn read_body(mut payload: web::Payload, browser: bool) -> Result<web::Bytes, HttpResponse> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| refusal(browser, StatusCode::BAD_REQUEST, "could not read the submission"))?;
        if body.len() + chunk.len() > MAX_FORM_BYTES {
            return Err(refusal(
                browser,
                StatusCode::PAYLOAD_TOO_LARGE,
                "the submission is too large",
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

async fn form_submit(
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
    ingestor: web::Data<Ingestor>,
) -> HttpResponse {
    let urlencoded = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let browser = wants_html(&req, urlencoded);
    let result = async {
        let not_found = || refusal(browser, StatusCode::NOT_FOUND, "There is no such form.");
        let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
        let max = state.limits.form_submissions_per_minute;
        if max > 0
            && let Verdict::Limited { retry_after } = state
                .limiter
                .hit(&format!("form:{}", super::client_address(&req)), max, super::MINUTE)
                .await
        {
            let mut response = refusal(
                browser,
                StatusCode::TOO_MANY_REQUESTS,
                "too many submissions from this address; try again in a minute",
            );
            if let Ok(value) = header::HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return Err(response);
        }
        let form = form::Entity::find_by_id(id).one(&state.db).await.map_err(|error| {
            tracing::error!(%error, "form lookup failed");
            refusal(
                browser,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; please try again",
            )
        })?;
        let form = form.ok_or_else(not_found)?;
        let body = read_body(payload, browser).await?;
        let values: Map<String, Json> = if urlencoded {
            url::form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), Json::String(v.into_owned())))
                .collect()
        } else {
            match serde_json::from_slice::<Json>(&body) {
                Ok(Json::Object(values)) => values,
                _ => {
                    return Err(refusal(
                        browser,
                        StatusCode::BAD_REQUEST,
                        "send a JSON object of field values, or a urlencoded form",
                    ));
                }
            }
        };
        if values
            .iter()
            .any(|(key, value)| key.contains('\0') || voxtur_core::values::contains_nul(value))
        {
            return Err(refusal(
                browser,
                StatusCode::BAD_REQUEST,
                "the submission contains a NUL character",
            ));
        }
        let (visitor_id, _) = visitor(&req);
        let page_utm = values
            .get("_page")
            .and_then(Json::as_str)
            .and_then(|p| p.split_once('?'))
            .map(|(_, q)| {
                url::form_urlencoded::parse(q.as_bytes())
                    .filter(|(k, _)| k.starts_with("utm_"))
                    .map(|(k, v)| (k.into_owned(), Json::String(v.into_owned())))
                    .collect::<Map<_, _>>()
            })
            .unwrap_or_default();
        let mut page = Json::Object(page_utm);
        if let (Some(path), Some(object)) = (values.get("_page"), page.as_object_mut()) {
            object.insert("path".into(), path.clone());
        }
        let _writer = ingestor.exclusive().await;
        match submit(&state.db, &form, &values, Some(&visitor_id), page).await {
            Ok(Submitted::Saved { .. }) | Ok(Submitted::Ignored) => Ok((form, values)),
            Err(SubmitError::Invalid(errors)) if browser => Err(form_again(&state, &form, &values, &errors).await),
            Err(SubmitError::Invalid(errors)) => Err(HttpResponse::UnprocessableEntity()
                .json(json!({ "success": false, "message": "some fields need attention", "errors": errors }))),
            Err(SubmitError::Db(error)) => {
                tracing::error!(%error, "form submission failed");
                Err(refusal(
                    browser,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; please try again",
                ))
            }
        }
    }
    .await;
    let (form, values) = match result {
        Ok(saved) => saved,
        Err(response) => return response,
    };
    let message = form.success_message.clone().unwrap_or_else(|| "Thank you!".into());
    match (&form.redirect_url, browser) {
        // A browser posting the form goes on to the configured page.
        (Some(target), true) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, target.clone()))
            .finish(),
        (None, true) => {
            let back = values.get("_page").and_then(Json::as_str);
            // Thanked in the look of the landing page the form was on, under its title.
            let page = landing_page_of(&state, &form, back.unwrap_or_default()).await;
            let title = page.as_ref().map_or(form.name.as_str(), |p| p.title.as_str());
            let css = page.as_ref().and_then(|p| p.css.as_deref());
            let policy = match &page {
                Some(page) => page_policy(page, None),
                None => content_security_policy(None, None, "'none'"),
            };
            html_with(StatusCode::OK, message_page(title, &message, back, css), &policy)
        }
        _ => HttpResponse::Ok().json(json!({
            "success": true,
            "message": message,
            "redirectUrl": form.redirect_url,
        })),
    }
}

/// A browser's invalid submission: the landing page it came from (or the form on a page of its
/// own), the form holding the values sent and each problem next to its field.
async fn form_again(
    state: &AppState,
    form: &form::Model,
    values: &Map<String, Json>,
    errors: &FieldErrors,
) -> HttpResponse {
    let return_to = values.get("_page").and_then(Json::as_str).unwrap_or_default();
    let form_state = FormState { values, errors };
    let page = landing_page_of(state, form, return_to).await;
    let body = match page {
        Some(page) => (
            render_page(&page, Some(form), return_to, Some(&form_state)),
            page_policy(&page, Some(form)),
        ),
        None => (
            render_form_page(form, return_to, &form_state),
            content_security_policy(None, form.redirect_url.as_deref(), "'none'"),
        ),
    };
    html_with(StatusCode::UNPROCESSABLE_ENTITY, body.0, &body.1)
}

/// The published landing page at `path` (as a form's `_page` gives it) that embeds `form`.
async fn landing_page_of(state: &AppState, form: &form::Model, path: &str) -> Option<landing_page::Model> {
    let slug = landing_page_slug(path, form.workspace_id)?;
    landing_page::Entity::find()
        .filter(landing_page::Column::WorkspaceId.eq(form.workspace_id))
        .filter(landing_page::Column::Slug.eq(slug))
        .filter(landing_page::Column::Published.eq(true))
        .filter(landing_page::Column::FormId.eq(form.id))
        .one(&state.db)
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "landing page lookup failed; answering without it");
            None
        })
}

/// The slug of `/p/{workspace}/{slug}[?query]` when the path is a landing page of `workspace_id`.
fn landing_page_slug(path: &str, workspace_id: Uuid) -> Option<&str> {
    let path = path.split(['?', '#']).next()?;
    let rest = path.strip_prefix("/p/")?;
    let (workspace, slug) = rest.split_once('/')?;
    (Uuid::parse_str(workspace).ok()? == workspace_id).then_some(slug)
}

/// The cookie that carries a visitor's anonymous id between pages, forms and links.
pub const VISITOR_COOKIE: &str = "vx_anon";
