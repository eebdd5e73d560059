//! Landing pages: HTML sanitized on save (ammonia: no scripts, event handlers or `javascript:`
//! URLs), rendered with an optional embedded form.

use super::forms::{FieldKind, HONEYPOT, consents_of, fields_of};
use entities::{form, landing_page};

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
