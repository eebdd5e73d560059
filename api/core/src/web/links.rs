//! Tracked links: a short code that redirects (302) to an http(s) target and records the click.

use rand::RngExt;

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
