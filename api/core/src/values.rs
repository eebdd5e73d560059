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
