//! Fixed-window rate limits: at most `max` hits of a key per window. On PostgreSQL the count
//! lives in the database (`rate_limit`), one upsert a hit, so every server behind a load
//! balancer shares it; SQLite's one process counts in memory. Keys over their limit are also
//! remembered here until their window ends, so a refused caller costs no database work.
//!
//! Written by hand: a fixed window per key is all that is needed, and the well-kept crates
//! (governor) count in one process only. [`buckets`] meters GraphQL cost the same way.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub mod buckets;

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
    /// [`RateLimiter::hit_batched`]'s counts: key -> what this server knows and has not told.
    batched: Mutex<HashMap<String, Batch>>,
}

/// A busy key's count on this server: the shared count last read, the hits since, and when
/// they were last added to the shared count.
#[derive(Debug, Clone, Copy)]
struct Batch {
    window_start: Instant,
    shared: u32,
    unsent: u32,
    /// None until the first hit is sent, which is at once.
    sent_at: Option<Instant>,
}

/// A busy key's hits are added to the shared count at least this often...
const BATCH_EVERY: Duration = Duration::from_secs(1);
/// ...or once this many have gathered.
const BATCH_HITS: u32 = 100;

/// Counters kept in memory before the stale ones are dropped.
const MAX_KEYS: usize = 100_000;

impl RateLimiter {
    pub fn new(db: DatabaseConnection) -> RateLimiter {
        RateLimiter {
            db,
            counts: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
            batched: Mutex::new(HashMap::new()),
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
            DbBackend::Postgres => self.count_shared(key, 1, window).await,
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
        self.refuse(key, left);
        Verdict::Limited { retry_after: left }
    }

    /// Counts a hit of `key` on a path too busy for a database round trip a call (the tracking
    /// API): counted here, and on PostgreSQL added to the shared count about once a second or
    /// every [`BATCH_HITS`] hits, so every server sees the others' hits within that lag.
    pub async fn hit_batched(&self, key: &str, max: u32, window: Duration) -> Verdict {
        if let Some(retry_after) = self.refused(key) {
            return Verdict::Limited { retry_after };
        }
        let shared = self.db.get_database_backend() == DbBackend::Postgres;
        let now = Instant::now();
        let (estimate, send) = {
            let Ok(mut batched) = self.batched.lock() else {
                return Verdict::Allowed;
            };
            if batched.len() > MAX_KEYS {
                batched.retain(|_, batch| now.duration_since(batch.window_start) < window);
            }
            let batch = batched.entry(key.to_owned()).or_insert(Batch {
                window_start: now,
                shared: 0,
                unsent: 0,
                sent_at: None,
            });
            if now.duration_since(batch.window_start) >= window {
                *batch = Batch {
                    window_start: now,
                    shared: 0,
                    unsent: 0,
                    sent_at: batch.sent_at,
                };
            }
            batch.unsent += 1;
            let due = shared
                && (batch.unsent >= BATCH_HITS
                    || batch.sent_at.is_none_or(|sent| now.duration_since(sent) >= BATCH_EVERY));
            let send = due.then_some(batch.unsent);
            if due {
                // Sent now: another call meanwhile does not send them again.
                batch.shared += batch.unsent;
                batch.unsent = 0;
                batch.sent_at = Some(now);
            }
            (batch.shared + batch.unsent, send)
        };
        let (hits, left) = match send {
            Some(hits) => match self.count_shared(key, hits, window).await {
                Ok((total, left)) => {
                    if let Ok(mut batched) = self.batched.lock()
                        && let Some(batch) = batched.get_mut(key)
                    {
                        batch.shared = total;
                        batch.window_start = (Instant::now() + left)
                            .checked_sub(window)
                            .unwrap_or(batch.window_start);
                    }
                    (total, left)
                }
                Err(error) => {
                    tracing::warn!(%error, "rate limit not shared");
                    (estimate, window)
                }
            },
            None => (estimate, window),
        };
        if hits <= max {
            return Verdict::Allowed;
        }
        let left = self
            .batched
            .lock()
            .ok()
            .and_then(|batched| {
                batched
                    .get(key)
                    .map(|b| window.saturating_sub(b.window_start.elapsed()))
            })
            .unwrap_or(left);
        self.refuse(key, left);
        Verdict::Limited { retry_after: left }
    }

    fn refuse(&self, key: &str, left: Duration) {
        if let Ok(mut refused) = self.refused.lock() {
            if refused.len() > MAX_KEYS {
                let now = Instant::now();
                refused.retain(|_, until| *until > now);
            }
            refused.insert(key.to_owned(), Instant::now() + left);
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

    /// One statement: a new window, or `hits` more in the current one; the hits and the time
    /// left in the window.
    async fn count_shared(&self, key: &str, hits: u32, window: Duration) -> Result<(u32, Duration), sea_orm::DbErr> {
        let seconds = window.as_secs_f64();
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO rate_limit (key, window_start, hits) VALUES ($1, now(), $3)
                 ON CONFLICT (key) DO UPDATE SET
                   hits = CASE WHEN rate_limit.window_start <= now() - make_interval(secs => $2)
                               THEN $3 ELSE rate_limit.hits + $3 END,
                   window_start = CASE WHEN rate_limit.window_start <= now() - make_interval(secs => $2)
                                       THEN now() ELSE rate_limit.window_start END
                 RETURNING hits, EXTRACT(EPOCH FROM window_start + make_interval(secs => $2) - now())::float8 AS left",
                [key.into(), seconds.into(), (hits.min(i32::MAX as u32) as i32).into()],
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
pub(crate) fn rand_tick() -> bool {
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
