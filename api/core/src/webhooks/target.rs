//! Where webhooks may go: http(s) URLs whose host resolves to public addresses only, unless
//! configuration allows private ones (`[webhooks] allow_private_targets`, for self-hosters and
//! tests). Checked when an endpoint is saved and again, by the transport, before each request
//! (a name may resolve elsewhere by then).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

static ALLOW_PRIVATE: AtomicBool = AtomicBool::new(false);

/// Allows (or not) private, loopback and link-local targets in this process.
pub fn allow_private(allowed: bool) {
    ALLOW_PRIVATE.store(allowed, Ordering::Relaxed);
}

pub fn private_allowed() -> bool {
    ALLOW_PRIVATE.load(Ordering::Relaxed)
}

/// An address no webhook may reach unless private targets are allowed: loopback, private,
/// link-local, carrier-grade NAT, unspecified, multicast, broadcast, unique local.
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The URL, normalised, if webhooks may go there; why not, else.
pub async fn check(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text.trim()).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("the scheme must be http or https, not `{}`", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials do not belong in the URL; verify the signature instead".into());
    }
    let Some(host) = url.host_str() else {
        return Err("the URL has no host".into());
    };
    if !private_allowed() {
        let port = url.port_or_known_default().unwrap_or(443);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| format!("`{host}` does not resolve: {e}"))?
                .map(|address| address.ip())
                .collect(),
        };
        if let Some(ip) = addresses.into_iter().find(|ip| forbidden(*ip)) {
            return Err(format!(
                "`{host}` is a private, loopback or link-local address ({ip}); webhooks go to public addresses"
            ));
        }
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"] {
            assert!(!forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn only_http_urls_to_public_addresses() {
        assert!(check("ftp://example.com/x").await.unwrap_err().contains("scheme"));
        assert!(check("not a url").await.unwrap_err().contains("not a URL"));
        assert!(
            check("http://127.0.0.1:9000/hook")
                .await
                .unwrap_err()
                .contains("private")
        );
        assert!(check("http://[::1]/hook").await.unwrap_err().contains("private"));
        assert!(
            check("https://user:pw@93.184.216.34/")
                .await
                .unwrap_err()
                .contains("credentials")
        );
        assert_eq!(
            check("https://93.184.216.34/hook").await.unwrap(),
            "https://93.184.216.34/hook"
        );
    }
}
