//! The web pieces that capture contacts: forms, landing pages and tracked links, with their
//! public endpoints. Everything a visitor does is recorded through the same event pipeline as
//! the tracking API, keyed by an anonymous-visitor cookie.

pub mod forms;
pub mod graphql;
pub mod http;
pub mod links;
pub mod pages;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie that carries a visitor's anonymous id between pages, forms and links.
pub const VISITOR_COOKIE: &str = "vx_anon";

/// Submissions allowed per IP address per minute, per server process.
///
/// Written by hand: a fixed-window counter is all that is needed, and a per-process limit is
/// the intent (each instance behind a load balancer protects itself).
pub struct RateLimiter {
    max: u32,
    window: Duration,
    hits: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(max: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            max,
            window,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a hit; false when the address is over its limit in the current window.
    pub fn allow(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let Ok(mut hits) = self.hits.lock() else { return true };
        if hits.len() > 100_000 {
            hits.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = hits.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_counts_per_address() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(limiter.allow(a) && limiter.allow(a));
        assert!(!limiter.allow(a));
        assert!(limiter.allow(b));
    }
}
