//! Tracked links: a short code that redirects (302) to an http(s) target and records the click.

use crate::error::ApiError;
use crate::errors::{MutationResult, UserError, UserErrorCode};
use crate::values::{check_text, limits};
use entities::tracked_link;
use rand::RngExt;
use sea_orm::{ActiveModelTrait, DatabaseConnection, SqlErr};
use uuid::Uuid;

/// Accepts only absolute http and https URLs with a host.
pub fn parse_target(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw.trim()).map_err(|_| format!("`{}` is not an absolute URL", raw.trim()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "only http and https targets are allowed, not `{}:`",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the target URL needs a host".into());
    }
    Ok(url)
}

/// A random 8-character code (62^8 possibilities); collisions are retried by the caller.
pub fn new_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The target with the link's UTM parameters added where the target does not set them.
pub fn with_utm(target: &str, utm: &[(&str, Option<&str>)]) -> String {
    let Ok(mut url) = url::Url::parse(target) else {
        return target.to_owned();
    };
    let present: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    let missing: Vec<(&str, &str)> = utm
        .iter()
        .filter_map(|(k, v)| v.map(|v| (*k, v)))
        .filter(|(k, _)| !present.iter().any(|p| p == k))
        .collect();
    if !missing.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in missing {
            pairs.append_pair(k, v);
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_targets() {
        assert!(parse_target("https://example.com/a?b=1").is_ok());
        assert!(parse_target("javascript:alert(1)").unwrap_err().contains("only http"));
        assert!(parse_target("ftp://x.com").is_err());
        assert!(parse_target("/relative").is_err());
    }

    #[test]
    fn utm_is_added_without_overriding() {
        let url = with_utm(
            "https://x.com/p?utm_source=own",
            &[("utm_source", Some("mail")), ("utm_campaign", Some("fall"))],
        );
        assert_eq!(url, "https://x.com/p?utm_source=own&utm_campaign=fall");
        assert_eq!(new_code().len(), 8);
    }
}

/// A tracked link to create.
#[derive(Debug, Clone)]
pub struct LinkTarget {
    /// http or https only.
    pub target_url: String,
    pub campaign: Option<String>,
    /// UTM parameters added to the target where it has none.
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
}

/// Creates a tracked link with a new short code.
pub async fn create(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    link: LinkTarget,
) -> MutationResult<tracked_link::Model> {
    check_text(&["targetUrl"], &link.target_url, limits::URL)?;
    let target =
        parse_target(&link.target_url).map_err(|m| UserError::new(&["targetUrl"], UserErrorCode::Invalid, m))?;
    for (path, value) in [
        ("campaign", &link.campaign),
        ("utmSource", &link.utm_source),
        ("utmMedium", &link.utm_medium),
        ("utmCampaign", &link.utm_campaign),
    ] {
        if let Some(value) = value {
            check_text(&[path], value, limits::SHORT)?;
        }
    }
    let trim = |v: &Option<String>| v.as_deref().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    for attempt in 0..5 {
        let model = tracked_link::Model {
            id: Uuid::now_v7(),
            workspace_id,
            code: new_code(),
            target_url: target.to_string(),
            campaign: trim(&link.campaign),
            utm_source: trim(&link.utm_source),
            utm_medium: trim(&link.utm_medium),
            utm_campaign: trim(&link.utm_campaign),
            created_at: crate::now(),
        };
        match tracked_link::ActiveModel::from(model).reset_all().insert(db).await {
            Ok(link) => return Ok(link),
            // A code collision (62^8 codes): draw another.
            Err(e) if attempt < 4 && matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Internal("could not draw a free link code".into()).into())
}
