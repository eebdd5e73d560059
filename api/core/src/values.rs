//! The rules for values that several domains take in (a contact's email, a member's email, a
//! form's email field, an identify call's traits): one parser each, so they cannot drift.

/// The longest phone number kept.
pub const MAX_PHONE_LEN: usize = 50;

/// Normalises an email address: trimmed, lower-cased, and checked.
pub fn parse_email(raw: &str) -> Result<String, String> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && email_address::EmailAddress::is_valid(&email)
        && email.rsplit_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        });
    if valid {
        Ok(email)
    } else if raw.contains('\0') {
        Err("the email address contains a NUL character".into())
    } else if email.len() > 254 {
        // Not echoed: the answer would be as long as the input.
        Err("an email address has at most 254 characters".into())
    } else {
        Err(format!("`{}` is not a valid email address", raw.trim()))
    }
}

/// Why a phone number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneError {
    Invalid,
    TooLong,
}

impl std::fmt::Display for PhoneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PhoneError::Invalid => f.write_str("phone may hold only digits, spaces and + - ( ) ."),
            PhoneError::TooLong => write!(f, "phone is longer than {MAX_PHONE_LEN} characters"),
        }
    }
}

/// A phone number as people write it: trimmed; digits, spaces and `+ - ( ) .` only; at most
/// 50 characters.
pub fn parse_phone(raw: &str) -> Result<String, PhoneError> {
    let phone = raw.trim();
    if phone.chars().count() > MAX_PHONE_LEN {
        return Err(PhoneError::TooLong);
    }
    if phone.is_empty() || !phone.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
        return Err(PhoneError::Invalid);
    }
    Ok(phone.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_or_refused() {
        assert_eq!(parse_email("  Ann@Example.COM ").as_deref(), Ok("ann@example.com"));
        for bad in [
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "ann@.example.com",
            "ann@example.com.",
        ] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_keep_their_punctuation_and_refuse_words() {
        assert_eq!(parse_phone(" +49 (30) 123-45.6 ").as_deref(), Ok("+49 (30) 123-45.6"));
        assert!(parse_phone("call me").is_err());
        assert!(parse_phone("").is_err());
        assert_eq!(parse_phone(&"1".repeat(51)), Err(PhoneError::TooLong));
    }
}

/// The longest texts inputs take, by kind (the README lists them; inputs' descriptions name
/// theirs). Enforced here, in the domain, so every entry point gets them.
pub mod limits {
    /// Names and labels: a contact's, a form's, a segment's, a field's.
    pub const NAME: usize = 200;
    /// Campaigns, UTM values, event names, page titles.
    pub const SHORT: usize = 300;
    /// URLs: redirect and link targets.
    pub const URL: usize = 2_000;
    /// Descriptions, success messages, consent wording.
    pub const TEXT: usize = 2_000;
    /// A property bag (an event's properties) as JSON, as the tracking API takes a message.
    pub const PROPERTIES_BYTES: usize = 32 * 1024;
}

/// A text input within its limit: at most `max` characters and no NUL character (which
/// PostgreSQL cannot store). The message names the limit.
pub fn text_within(value: &str, max: usize) -> Result<(), (crate::errors::UserErrorCode, String)> {
    use crate::errors::UserErrorCode;
    if value.contains('\0') {
        return Err((UserErrorCode::Invalid, "contains a NUL character".into()));
    }
    if value.chars().count() > max {
        return Err((UserErrorCode::TooLong, format!("is longer than {max} characters")));
    }
    Ok(())
}

/// [`text_within`] as a user error at `path`.
pub fn check_text(path: &[&str], value: &str, max: usize) -> Result<(), crate::errors::UserError> {
    text_within(value, max).map_err(|(code, message)| {
        let field = path.last().copied().unwrap_or("value");
        crate::errors::UserError::new(path, code, format!("{field} {message}"))
    })
}

/// A property bag within its limit: at most [`limits::PROPERTIES_BYTES`] as JSON, and no NUL
/// character in any of its texts.
pub fn check_properties(path: &[&str], value: &serde_json::Value) -> Result<(), crate::errors::UserError> {
    use crate::errors::{UserError, UserErrorCode};
    let json = serde_json::to_string(value).unwrap_or_default();
    if json.len() > limits::PROPERTIES_BYTES {
        return Err(UserError::new(
            path,
            UserErrorCode::TooLong,
            format!("{} bytes as JSON; at most {}", json.len(), limits::PROPERTIES_BYTES),
        ));
    }
    if contains_nul(value) {
        return Err(UserError::new(path, UserErrorCode::Invalid, "contains a NUL character"));
    }
    Ok(())
}

/// Whether any text in a JSON value (keys included) holds a NUL character.
pub fn contains_nul(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(object) => object
            .iter()
            .any(|(key, value)| key.contains('\0') || contains_nul(value)),
        _ => false,
    }
}

/// A web origin (`https://shop.example`, `http://localhost:3000`), normalised; why not, else.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text.trim()).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("the scheme must be http or https".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err("an origin has no path, query or user".into());
    }
    Ok(url.origin().ascii_serialization())
}
