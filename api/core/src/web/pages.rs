//! Landing pages: HTML sanitized on save (ammonia: no scripts, event handlers or `javascript:`
//! URLs), rendered with an optional embedded form.

use super::forms::{FieldKind, HONEYPOT, consents_of, fields_of};
use crate::errors::{MutationResult, UserError, UserErrorCode};
use crate::ids::{NodeKind, decode_as};
use entities::{form, landing_page};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, SqlErr};
use uuid::Uuid;

/// Cleans author HTML for publishing.
pub fn sanitize(html: &str) -> String {
    ammonia::clean(html)
}

/// Checks a slug: lower-case letters, digits and dashes, 1 to 100 characters.
pub fn valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 100
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.starts_with('-')
}

/// Escapes text for HTML content and double-quoted attributes.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The HTML of an embedded form, posting to the public submission endpoint.
pub fn render_form(form: &form::Model, return_to: &str) -> String {
    let mut html = format!(r#"<form class="vx-form" method="post" action="/forms/{}">"#, form.id);
    for field in fields_of(form) {
        let name = esc(&field.key);
        let label = esc(&field.label);
        let required = if field.required { " required" } else { "" };
        let input = match field.kind {
            FieldKind::Textarea => format!(r#"<textarea name="{name}"{required}></textarea>"#),
            FieldKind::Select => {
                let options: String = field
                    .options
                    .iter()
                    .map(|o| format!(r#"<option value="{0}">{0}</option>"#, esc(o)))
                    .collect();
                format!(r#"<select name="{name}"{required}>{options}</select>"#)
            }
            FieldKind::Checkbox => format!(r#"<input type="checkbox" name="{name}" value="true"{required}>"#),
            kind => {
                let input_type = match kind {
                    FieldKind::Email => "email",
                    FieldKind::Phone => "tel",
                    FieldKind::Number => "number",
                    FieldKind::Date => "date",
                    _ => "text",
                };
                format!(r#"<input type="{input_type}" name="{name}"{required}>"#)
            }
        };
        html.push_str(&format!("<label>{label} {input}</label>"));
    }
    for consent in consents_of(form) {
        let required = if consent.required { " required" } else { "" };
        html.push_str(&format!(
            r#"<label><input type="checkbox" name="consent_{}" value="true"{required}> {}</label>"#,
            esc(&consent.channel),
            esc(&consent.label)
        ));
    }
    html.push_str(&format!(
        r#"<input type="text" name="{HONEYPOT}" value="" tabindex="-1" autocomplete="off" style="position:absolute;left:-10000px" aria-hidden="true"><input type="hidden" name="_page" value="{}"><button type="submit">Send</button></form>"#,
        esc(return_to)
    ));
    html
}

pub fn render_page(page: &landing_page::Model, form: Option<&form::Model>, path: &str) -> String {
    let form_html = form.map(|f| render_form(f, path)).unwrap_or_default();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title></head><body><main>{}{}</main></body></html>",
        esc(&page.title),
        page.body_html,
        form_html
    )
}

pub fn not_found_page(what: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Not found</title></head><body><h1>Not found</h1><p>{}</p></body></html>",
        esc(what)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_handlers_and_javascript_urls_are_stripped() {
        let clean = sanitize(
            r#"<h1 onclick="steal()">Hi</h1><script>alert(1)</script><a href="javascript:alert(1)">x</a><img src="https://x.com/a.png">"#,
        );
        assert!(!clean.contains("script"));
        assert!(!clean.contains("onclick"));
        assert!(!clean.contains("javascript:"));
        assert!(clean.contains("<h1>Hi</h1>"));
        assert!(clean.contains(r#"src="https://x.com/a.png""#));
    }

    #[test]
    fn slugs() {
        assert!(valid_slug("spring-sale-2026"));
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert!(!valid_slug("Spring Sale"));
        assert!(!valid_slug(""));
        assert!(!valid_slug("-x"));
    }
}

/// A landing page as a create or update gives it.
#[derive(Debug, Clone)]
pub struct PageContent {
    pub slug: String,
    pub title: String,
    /// Sanitized before it is stored.
    pub body_html: String,
    /// The global id of a form to embed.
    pub form_id: Option<String>,
    pub published: bool,
}

const MAX_TITLE_LEN: usize = 300;
const MAX_BODY_BYTES: usize = 512 * 1024;

/// Creates a landing page (`id` none) or replaces one's content.
pub async fn save(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    id: Option<&str>,
    content: PageContent,
) -> MutationResult<landing_page::Model> {
    let slug = content.slug.trim().to_owned();
    if !valid_slug(&slug) {
        return Err(UserError::new(
            &["slug"],
            UserErrorCode::Invalid,
            "slug uses lower-case letters, digits and dashes (1 to 100)",
        )
        .into());
    }
    let title = content.title.trim().to_owned();
    if title.is_empty() || title.chars().count() > MAX_TITLE_LEN {
        return Err(UserError::new(
            &["title"],
            UserErrorCode::Invalid,
            format!("title must be 1 to {MAX_TITLE_LEN} characters"),
        )
        .into());
    }
    if content.body_html.len() > MAX_BODY_BYTES {
        return Err(UserError::new(&["bodyHtml"], UserErrorCode::TooLong, "body is larger than 512 KB").into());
    }
    let form_id = match &content.form_id {
        Some(form_id) => Some(
            super::forms::find(db, workspace_id, form_id)
                .await?
                .ok_or_else(|| UserError::new(&["formId"], UserErrorCode::NotFound, "no such form in this workspace"))?
                .id,
        ),
        None => None,
    };
    let existing = match id.and_then(|id| decode_as(id, NodeKind::LandingPage)) {
        Some(uuid) => {
            landing_page::Entity::find_by_id(uuid)
                .filter(landing_page::Column::WorkspaceId.eq(workspace_id))
                .one(db)
                .await?
        }
        None => None,
    };
    if id.is_some() && existing.is_none() {
        return Err(UserError::argument(
            &["id"],
            UserErrorCode::NotFound,
            "no such landing page in this workspace",
        )
        .into());
    }
    let now = crate::now();
    let model = landing_page::Model {
        id: existing.as_ref().map_or_else(Uuid::now_v7, |e| e.id),
        workspace_id,
        slug: slug.clone(),
        title,
        body_html: sanitize(&content.body_html),
        form_id,
        published: content.published,
        created_at: existing.as_ref().map_or(now, |e| e.created_at),
        updated_at: now,
    };
    let active = landing_page::ActiveModel::from(model).reset_all();
    let saved = if existing.is_some() {
        active.update(db).await
    } else {
        active.insert(db).await
    };
    match saved {
        Ok(page) => Ok(page),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Err(UserError::new(
            &["slug"],
            UserErrorCode::Taken,
            format!("another page already uses the slug `{slug}`"),
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}
