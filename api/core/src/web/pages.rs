//! Landing pages: HTML sanitized on save (ammonia: no scripts, event handlers or `javascript:`
//! URLs), rendered with an optional embedded form.

use super::forms::{FieldErrors, FieldKind, HONEYPOT, consents_of, fields_of};
use crate::errors::{MutationResult, UserError, UserErrorCode};
use crate::ids::{NodeKind, decode_as};
use entities::{form, landing_page};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, SqlErr};
use serde_json::{Map, Value as Json};
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

/// The default look of public pages: readable type, one field per row with its label above it,
/// a visible button, and nothing wider than a phone's screen. A page's own CSS comes after it
/// and so overrides it.
pub const DEFAULT_STYLESHEET: &str = "\
*,*::before,*::after{box-sizing:border-box}\
html{-webkit-text-size-adjust:100%}\
body{margin:0;background:#f6f7f9;color:#1d2430;font:17px/1.55 system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif}\
main{max-width:40rem;margin:0 auto;padding:2rem 1.25rem 3rem;background:#fff;min-height:100vh}\
h1,h2,h3{line-height:1.25;margin:1.5rem 0 .75rem}h1{font-size:2rem;margin-top:0}\
img,video,iframe{max-width:100%;height:auto}a{color:#1f5fd6}\
p,ul,ol{margin:0 0 1rem}\
.vx-form{margin-top:2rem;display:flex;flex-direction:column;gap:1.1rem}\
.vx-field{display:flex;flex-direction:column;gap:.35rem}\
.vx-field>label{font-weight:600}\
.vx-field input,.vx-field select,.vx-field textarea{width:100%;min-height:2.75rem;padding:.55rem .75rem;font:inherit;color:inherit;background:#fff;border:1px solid #9aa3b2;border-radius:6px}\
.vx-field textarea{min-height:7rem;resize:vertical}\
.vx-field input:focus,.vx-field select:focus,.vx-field textarea:focus{outline:3px solid #9cc0ff;border-color:#1f5fd6}\
.vx-field>.vx-check{display:flex;gap:.6rem;align-items:flex-start;font-weight:400}\
.vx-check input{width:1.25rem;height:1.25rem;min-height:0;margin:.2rem 0 0;flex:none}\
.vx-field [aria-invalid=true]{border-color:#c62828;background:#fff6f6}\
.vx-error{margin:0;color:#b71c1c;font-size:.95rem}\
.vx-errors{padding:.75rem 1rem;border-left:4px solid #c62828;background:#fff6f6}.vx-errors p{margin:0}\
.vx-form button{align-self:flex-start;min-height:2.9rem;padding:.7rem 1.6rem;font:inherit;font-weight:600;color:#fff;background:#1f5fd6;border:0;border-radius:6px;cursor:pointer}\
.vx-form button:hover{background:#184db0}\
.vx-message{font-size:1.15rem}\
.vx-hp{position:absolute;left:-10000px}\
@media (max-width:30rem){main{padding:1.25rem 1rem 2rem}.vx-form button{align-self:stretch}}";

/// An API message for people: the API quotes values in backticks, a page in quotation marks.
fn for_people(message: &str) -> String {
    esc(&message.replace('`', "\""))
}

/// What a submission that failed sends back to the form: the values as sent and the problems
/// found, each shown next to its field.
pub struct FormState<'a> {
    pub values: &'a Map<String, Json>,
    pub errors: &'a FieldErrors,
}

impl FormState<'_> {
    fn value(&self, key: &str) -> String {
        match self.values.get(key) {
            Some(Json::String(s)) => s.clone(),
            Some(Json::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    }

    fn checked(&self, key: &str) -> bool {
        matches!(self.values.get(key), Some(Json::Bool(true)))
            || matches!(
                self.values.get(key).and_then(Json::as_str),
                Some("true" | "on" | "1" | "yes")
            )
    }
}

/// The HTML of an embedded form, posting to the public submission endpoint; with `state`, the
/// values a visitor sent and the problems found in them.
pub fn render_form(form: &form::Model, return_to: &str, state: Option<&FormState>) -> String {
    let mut html = format!(r#"<form class="vx-form" method="post" action="/forms/{}">"#, form.id);
    let fields = fields_of(form);
    let consents = consents_of(form);
    let error_of = |key: &str| state.and_then(|s| s.errors.get(key));
    // Problems no field shows (none today, but a form's fields may change between its render
    // and its submission): listed above the fields rather than lost.
    if let Some(state) = state {
        let known = |key: &String| {
            fields.iter().any(|f| &f.key == key) || consents.iter().any(|c| *key == format!("consent_{}", c.channel))
        };
        html.push_str(r#"<div class="vx-errors" role="alert"><p>Some fields need attention.</p>"#);
        for (key, message) in state.errors.iter().filter(|(key, _)| !known(key)) {
            html.push_str(&format!(
                r#"<p class="vx-error">{}: {}</p>"#,
                esc(key),
                for_people(message)
            ));
        }
        html.push_str("</div>");
    }
    for field in &fields {
        let id = format!("vx-{}", esc(&field.key));
        let name = esc(&field.key);
        let value = state.map(|s| s.value(&field.key)).unwrap_or_default();
        let error = error_of(&field.key);
        let mut attributes = String::new();
        if field.required {
            attributes.push_str(" required");
        }
        if error.is_some() {
            attributes.push_str(&format!(r#" aria-invalid="true" aria-describedby="{id}-error""#));
        }
        let input = match field.kind {
            FieldKind::Textarea => format!(
                r#"<textarea id="{id}" name="{name}"{attributes}>{}</textarea>"#,
                esc(&value)
            ),
            FieldKind::Select => {
                let options: String = field
                    .options
                    .iter()
                    .map(|o| {
                        let selected = if *o == value { " selected" } else { "" };
                        format!(r#"<option value="{0}"{selected}>{0}</option>"#, esc(o))
                    })
                    .collect();
                format!(r#"<select id="{id}" name="{name}"{attributes}>{options}</select>"#)
            }
            FieldKind::Checkbox => {
                let checked = if state.is_some_and(|s| s.checked(&field.key)) {
                    " checked"
                } else {
                    ""
                };
                format!(r#"<input id="{id}" type="checkbox" name="{name}" value="true"{checked}{attributes}>"#)
            }
            kind => {
                let (input_type, autocomplete) = match kind {
                    FieldKind::Email => ("email", r#" autocomplete="email""#),
                    FieldKind::Phone => ("tel", r#" autocomplete="tel""#),
                    FieldKind::Number => ("number", ""),
                    FieldKind::Date => ("date", ""),
                    _ => ("text", ""),
                };
                format!(
                    r#"<input id="{id}" type="{input_type}" name="{name}" value="{}"{autocomplete}{attributes}>"#,
                    esc(&value)
                )
            }
        };
        let label = esc(&field.label);
        if field.kind == FieldKind::Checkbox {
            html.push_str(&format!(
                r#"<div class="vx-field"><label class="vx-check" for="{id}">{input} {label}</label>"#
            ));
        } else {
            html.push_str(&format!(
                r#"<div class="vx-field"><label for="{id}">{label}</label>{input}"#
            ));
        }
        if let Some(error) = error {
            html.push_str(&format!(
                r#"<p class="vx-error" id="{id}-error">{}</p>"#,
                for_people(error)
            ));
        }
        html.push_str("</div>");
    }
    for consent in &consents {
        let key = format!("consent_{}", consent.channel);
        let id = format!("vx-{}", esc(&key));
        let error = error_of(&key);
        let mut attributes = String::new();
        if consent.required {
            attributes.push_str(" required");
        }
        if state.is_some_and(|s| s.checked(&key)) {
            attributes.push_str(" checked");
        }
        if error.is_some() {
            attributes.push_str(&format!(r#" aria-invalid="true" aria-describedby="{id}-error""#));
        }
        html.push_str(&format!(
            r#"<div class="vx-field"><label class="vx-check" for="{id}"><input id="{id}" type="checkbox" name="{}" value="true"{attributes}> {}</label>"#,
            esc(&key),
            esc(&consent.label)
        ));
        if let Some(error) = error {
            html.push_str(&format!(
                r#"<p class="vx-error" id="{id}-error">{}</p>"#,
                for_people(error)
            ));
        }
        html.push_str("</div>");
    }
    html.push_str(&format!(
        r#"<input class="vx-hp" type="text" name="{HONEYPOT}" value="" tabindex="-1" autocomplete="off" aria-hidden="true"><input type="hidden" name="_page" value="{}"><button type="submit">Send</button></form>"#,
        esc(return_to)
    ));
    html
}

/// A whole public page: the default stylesheet, then the page's own CSS.
fn document(title: &str, css: Option<&str>, main: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{DEFAULT_STYLESHEET}</style>{}</head><body><main>{main}</main></body></html>",
        esc(title),
        css.map(|css| format!("<style>{css}</style>")).unwrap_or_default(),
    )
}

/// A landing page with its form; with `state`, the form as a failed submission left it.
pub fn render_page(
    page: &landing_page::Model,
    form: Option<&form::Model>,
    path: &str,
    state: Option<&FormState>,
) -> String {
    let form_html = form.map(|f| render_form(f, path, state)).unwrap_or_default();
    document(
        &page.title,
        page.css.as_deref(),
        &format!("{}{form_html}", page.body_html),
    )
}

/// A form on a page of its own, for a failed submission that came from no landing page.
pub fn render_form_page(form: &form::Model, return_to: &str, state: &FormState) -> String {
    let main = format!(
        "<h1>{}</h1>{}",
        esc(&form.name),
        render_form(form, return_to, Some(state))
    );
    document(&form.name, None, &main)
}

/// A short message on a page of its own (a form's thanks, an error), with a link back to
/// `back` when it is a path on this server, in the look of the page it answers (`css`).
pub fn message_page(title: &str, message: &str, back: Option<&str>, css: Option<&str>) -> String {
    let back = back
        .filter(|path| path.starts_with('/') && !path.starts_with("//") && !path.starts_with("/\\"))
        .map(|path| format!(r#"<p><a href="{}">Back</a></p>"#, esc(path)))
        .unwrap_or_default();
    let main = format!(
        r#"<h1>{}</h1><p class="vx-message" role="status">{}</p>{back}"#,
        esc(title),
        esc(message)
    );
    document(title, css, &main)
}

pub fn not_found_page(what: &str) -> String {
    message_page("Not found", what, None, None)
}

/// The `Content-Security-Policy` of a public page: nothing runs (no script at all), styles
/// only from this page's own `<style>` elements (by their hashes), images from anywhere secure,
/// the form posted only here (and redirected to `form_target`'s origin), the page framed only by
/// `frame_ancestors` (CSP sources, e.g. `'self'` or `https://shop.example`).
pub fn content_security_policy(css: Option<&str>, form_target: Option<&str>, frame_ancestors: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let hash = |text: &str| {
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
        )
    };
    let mut styles = hash(DEFAULT_STYLESHEET);
    if let Some(css) = css {
        styles = format!("{styles} {}", hash(css));
    }
    let mut form_action = "'self'".to_owned();
    if let Some(origin) = form_target
        .and_then(|t| url::Url::parse(t).ok())
        .map(|u| u.origin().ascii_serialization())
    {
        form_action = format!("{form_action} {origin}");
    }
    format!(
        "default-src 'none'; style-src {styles}; img-src https: data:; form-action {form_action}; \
         frame-ancestors {frame_ancestors}; base-uri 'none'"
    )
}

/// The CSP sources of a page's `frameAncestors`: `self`, `none` (alone) or origins.
fn frame_sources(list: &[String]) -> Result<String, UserError> {
    let invalid = |index: usize, message: String| {
        UserError::new(&["frameAncestors", &index.to_string()], UserErrorCode::Invalid, message)
    };
    if list.len() > 50 {
        return Err(UserError::new(
            &["frameAncestors"],
            UserErrorCode::TooMany,
            "at most 50 sources",
        ));
    }
    let mut sources = Vec::with_capacity(list.len());
    for (index, entry) in list.iter().enumerate() {
        let source = match entry.trim() {
            "self" => "'self'".to_owned(),
            "none" if list.len() == 1 => "'none'".to_owned(),
            "none" => return Err(invalid(index, "`none` stands alone".into())),
            origin => crate::values::parse_origin(origin)
                .map_err(|why| invalid(index, format!("`{origin}` is not `self`, `none` or an origin ({why})")))?,
        };
        if !sources.contains(&source) {
            sources.push(source);
        }
    }
    if sources.is_empty() {
        return Err(UserError::new(
            &["frameAncestors"],
            UserErrorCode::Required,
            "name `none`, `self` or origins",
        ));
    }
    Ok(sources.join(" "))
}

/// Checks a page's own CSS: it goes inside a `<style>` element, so it may not close it (no `<`).
pub fn valid_css(css: &str) -> Result<(), &'static str> {
    if css.len() > MAX_CSS_BYTES {
        return Err("css is larger than 64 KB");
    }
    if css.contains('<') || css.contains('\0') {
        return Err("css may not contain `<` or a NUL character");
    }
    Ok(())
}

const MAX_CSS_BYTES: usize = 64 * 1024;

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
    /// CSS after the default stylesheet (so it overrides it); `None` for none.
    pub css: Option<String>,
    /// Who may show the page in a frame: `self`, `none` or origins; `None` for this site only.
    pub frame_ancestors: Option<Vec<String>>,
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
    if let Some(css) = &content.css
        && let Err(message) = valid_css(css)
    {
        return Err(UserError::new(&["css"], UserErrorCode::Invalid, message).into());
    }
    let frame_ancestors = match &content.frame_ancestors {
        Some(list) => Some(frame_sources(list)?),
        None => None,
    };
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
        css: content.css.filter(|css| !css.trim().is_empty()),
        frame_ancestors,
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
