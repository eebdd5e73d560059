//! The process's outbound HTTP for webhooks (`voxtur_core::webhooks::Transport`): reqwest with
//! rustls, no redirects followed, a timeout per attempt, and the target's addresses checked
//! again at each request (a name may resolve to a private address by now) unless configuration
//! allows private targets.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;
use voxtur_core::webhooks::{Answer, Outgoing, Transport, target};

/// `[webhooks]` in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Seconds an attempt may take, answer included.
    pub timeout_secs: u64,
    /// Whether endpoints may be private, loopback or link-local addresses (self-hosted
    /// receivers on the same network; tests).
    pub allow_private_targets: bool,
}

impl Default for WebhookSettings {
    fn default() -> WebhookSettings {
        WebhookSettings {
            timeout_secs: 10,
            allow_private_targets: false,
        }
    }
}

/// The response body kept, at most.
const BODY_KEPT: usize = 1_000;

pub struct HttpTransport {
    client: reqwest::Client,
    timeout: Duration,
}

/// Resolves webhook hosts, refusing private addresses unless they are allowed: checked where
/// the connection is made, so no later resolution can point it elsewhere.
struct CheckedResolver;

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !target::private_allowed()
                && let Some(address) = addresses.iter().find(|a| target::forbidden(a.ip()))
            {
                let refused = format!("`{host}` resolves to a private address ({})", address.ip());
                return Err(refused.into());
            }
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

impl HttpTransport {
    /// Installs the transport and the target policy for this process.
    pub fn install(settings: &WebhookSettings) {
        target::allow_private(settings.allow_private_targets);
        let timeout = Duration::from_secs(settings.timeout_secs.max(1));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Voxtur-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(std::sync::Arc::new(CheckedResolver))
            .build();
        match client {
            Ok(client) => voxtur_core::webhooks::set_transport(std::sync::Arc::new(HttpTransport { client, timeout })),
            Err(error) => tracing::error!(%error, "no HTTP client: webhooks will not be delivered"),
        }
    }

    async fn send(&self, request: Outgoing) -> Result<Answer, String> {
        let url = url::Url::parse(&request.url).map_err(|e| format!("not a URL: {e}"))?;
        // A literal address does not go through the resolver: checked here.
        if let Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) = url.host()
            && !target::private_allowed()
        {
            let ip: std::net::IpAddr = url
                .host_str()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| "the URL's address does not read".to_owned())?;
            if target::forbidden(ip) {
                return Err(format!("{ip} is a private address"));
            }
        }
        let mut builder = self.client.post(url).body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let response = builder.send().await.map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {} s", self.timeout.as_secs())
            } else if e.is_connect() {
                format!(
                    "could not connect: {}",
                    std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string())
                )
            } else {
                e.to_string()
            }
        })?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        Ok(Answer {
            status,
            body: body.chars().take(BODY_KEPT).collect(),
        })
    }
}

impl Transport for HttpTransport {
    fn post(
        &self,
        request: Outgoing,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Answer, String>> + Send + '_>> {
        Box::pin(self.send(request))
    }
}
