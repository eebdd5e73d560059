//! Fixed-window rate limits: at most `max` hits of a key per window. On PostgreSQL the count
//! lives in the database (`rate_limit`), one upsert a hit, so every server behind a load
//! balancer shares it; SQLite's one process counts in memory. Keys over their limit are also
//! remembered here until their window ends, so a refused caller costs no database work.
//!
//! Written by hand: a fixed window per key is all that is needed, and the well-kept crates
//! (governor) count in one process only.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Whether a hit is allowed, and if not, for how long the key stays refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Limited { retry_after: Duration },
}

pub struct RateLimiter {
    db: DatabaseConnection,
    /// SQLite's counters: key -> (window start, hits).
    counts: Mutex<HashMap<String, (Instant, u32)>>,
    /// Keys refused until the instant given.
    refused: Mutex<HashMap<String, Instant>>,
}

/// Counters kept in memory before the stale ones are dropped.
const MAX_KEYS: usize = 100_000;

impl RateLimiter {
    pub fn new(db: DatabaseConnection) -> RateLimiter {
        RateLimiter {
            db,
            counts: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// How long `key` stays refused, if it is (known to this server; no database work).
    pub fn refused(&self, key: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut refused = self.refused.lock().ok()?;
        match refused.get(key) {
            Some(until) if *until > now => Some(*until - now),
            Some(_) => {
                refused.remove(key);
                None
            }
            None => None,
        }
    }

    /// Counts a hit of `key`. A failure to count allows the hit (and is logged): a limit is a
    /// guard, not a reason to refuse everyone.
    pub async fn hit(&self, key: &str, max: u32, window: Duration) -> Verdict {
        if let Some(retry_after) = self.refused(key) {
            return Verdict::Limited { retry_after };
        }
        let counted = match self.db.get_database_backend() {
            DbBackend::Postgres => self.hit_shared(key, window).await,
            _ => Ok(self.hit_local(key, window)),
        };
        let (hits, left) = match counted {
            Ok(counted) => counted,
            Err(error) => {
                tracing::warn!(%error, "rate limit not counted");
                return Verdict::Allowed;
            }
        };
        if hits <= max {
            return Verdict::Allowed;
        }
        if let Ok(mut refused) = self.refused.lock() {
            if refused.len() > MAX_KEYS {
                let now = Instant::now();
                refused.retain(|_, until| *until > now);
            }
            refused.insert(key.to_owned(), Instant::now() + left);
        }
        Verdict::Limited { retry_after: left }
    }

    /// Counts a hit of `key` in this process only, whatever the backend: for limits checked on
    /// every call of a busy path, where a database round trip a call would cost too much.
    pub fn hit_here(&self, key: &str, max: u32, window: Duration) -> Verdict {
        let (hits, left) = self.hit_local(key, window);
        if hits <= max {
            Verdict::Allowed
        } else {
            Verdict::Limited { retry_after: left }
        }
    }

    fn hit_local(&self, key: &str, window: Duration) -> (u32, Duration) {
        let now = Instant::now();
        let Ok(mut counts) = self.counts.lock() else {
            return (0, window);
        };
        if counts.len() > MAX_KEYS {
            counts.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = counts.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        (entry.1, window.saturating_sub(now.duration_since(entry.0)))
    }

    /// One statement: a new window, or one more hit in the current one; the hits and the time
    /// left in the window.
    async fn hit_shared(&self, key: &str, window: Duration) -> Result<(u32, Duration), sea_orm::DbErr> {
        let seconds = window.as_secs_f64();
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO rate_limit (key, window_start, hits) VALUES ($1, now(), 1)
                 ON CONFLICT (key) DO UPDATE SET
                   hits = CASE WHEN rate_limit.window_start <= now() - make_interval(secs => $2)
                               THEN 1 ELSE rate_limit.hits + 1 END,
                   window_start = CASE WHEN rate_limit.window_start <= now() - make_interval(secs => $2)
                                       THEN now() ELSE rate_limit.window_start END
                 RETURNING hits, EXTRACT(EPOCH FROM window_start + make_interval(secs => $2) - now())::float8 AS left",
                [key.into(), seconds.into()],
            ))
            .await?;
        let Some(row) = row else {
            return Ok((0, window));
        };
        let hits: i32 = row.try_get("", "hits")?;
        let left: f64 = row.try_get("", "left")?;
        // Now and then, drop the windows long over, so the table holds only recent callers.
        if rand_tick() {
            self.db
                .execute_unprepared("DELETE FROM rate_limit WHERE window_start < now() - interval '1 day'")
                .await?;
        }
        Ok((hits.max(0) as u32, Duration::from_secs_f64(left.max(0.0))))
    }
}

/// True about once in a thousand calls.
fn rand_tick() -> bool {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CALLS: AtomicU32 = AtomicU32::new(0);
    CALLS.fetch_add(1, Ordering::Relaxed) % 1_000 == 999
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_refused_past_its_limit_until_its_window_ends() {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        let limiter = RateLimiter::new(db);
        let window = Duration::from_millis(200);
        assert_eq!(limiter.hit("a", 2, window).await, Verdict::Allowed);
        assert_eq!(limiter.hit("a", 2, window).await, Verdict::Allowed);
        assert!(matches!(limiter.hit("a", 2, window).await, Verdict::Limited { .. }));
        assert_eq!(limiter.hit("b", 2, window).await, Verdict::Allowed, "keys count apart");
        assert!(limiter.refused("a").is_some());
        tokio::time::sleep(window).await;
        assert_eq!(limiter.refused("a"), None);
        assert_eq!(limiter.hit("a", 2, window).await, Verdict::Allowed);
    }
}
