//! Leaky buckets of query cost points, one per API key (as GitHub and Shopify meter their
//! GraphQL APIs): a request's requested cost must fit in what the bucket has left; once the
//! request has run, the bucket is settled to its actual cost. A bucket drains `per_second`
//! points a second, up to `capacity` in all.
//!
//! Each server decides from its own view of a bucket. On PostgreSQL that view is shared through
//! `cost_bucket`: a server adds what its requests cost to the shared level, and reads the level
//! the other servers made, on a key's first request and then at least once a second (or once a
//! tenth of the capacity has gathered), so metering costs no round trip a request. SQLite's one
//! process has nothing to share.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub struct Buckets {
    db: DatabaseConnection,
    per_second: f64,
    capacity: f64,
    buckets: Mutex<HashMap<Uuid, Bucket>>,
}

/// This server's view of a key's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Points in the bucket as of `at`, this server's unsent points included.
    level: f64,
    at: Instant,
    /// Points charged (or settled back) here and not yet added to the shared level.
    unsent: f64,
    /// When the level was last exchanged with the shared one; None before the first time.
    synced_at: Option<Instant>,
}

/// A bucket after a request was charged, or how long until the request would fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Charge {
    Charged { remaining: u64, empty_in: Duration },
    Refused { wait: Duration, remaining: u64 },
}

/// Buckets kept in memory before the empty ones are dropped.
const MAX_KEYS: usize = 100_000;
/// The longest wait a refusal names.
const MAX_WAIT: Duration = Duration::from_secs(3_600);
/// How often, at least, a busy key's level is exchanged with the shared one.
const SYNC_EVERY: Duration = Duration::from_secs(1);

impl Buckets {
    pub fn new(db: DatabaseConnection, per_second: u64, capacity: u64) -> Buckets {
        Buckets {
            db,
            per_second: per_second.max(1) as f64,
            capacity: capacity.max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Charges `points` to `key`'s bucket if they fit. A failure to reach the shared level is
    /// logged and the local view decides: metering is a guard, not a reason to refuse.
    pub async fn charge(&self, key: Uuid, points: u64) -> Charge {
        if self.sync_due(key) {
            self.sync(key).await;
        }
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Charge::Charged {
                remaining: self.capacity as u64,
                empty_in: Duration::ZERO,
            };
        };
        if buckets.len() > MAX_KEYS {
            buckets.retain(|_, bucket| bucket.unsent != 0.0 || self.drained(bucket, now) > 0.0);
        }
        let bucket = buckets.entry(key).or_insert_with(|| self.empty(now));
        let level = self.drained(bucket, now);
        bucket.level = level;
        bucket.at = now;
        let points = points as f64;
        if level + points > self.capacity {
            let wait = (level + points - self.capacity) / self.per_second;
            return Charge::Refused {
                wait: Duration::from_secs_f64(wait.clamp(0.0, MAX_WAIT.as_secs_f64())),
                remaining: (self.capacity - level).max(0.0) as u64,
            };
        }
        bucket.level += points;
        bucket.unsent += points;
        Charge::Charged {
            remaining: (self.capacity - bucket.level).max(0.0) as u64,
            empty_in: self.empty_in(bucket.level),
        }
    }

    /// Settles a charged request to what it actually cost; what the bucket then has left, and
    /// how long until it is empty.
    pub fn settle(&self, key: Uuid, requested: u64, actual: u64) -> (u64, Duration) {
        let difference = actual as f64 - requested as f64;
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return (self.capacity as u64, Duration::ZERO);
        };
        let bucket = buckets.entry(key).or_insert_with(|| self.empty(now));
        bucket.level = (self.drained(bucket, now) + difference).max(0.0);
        bucket.at = now;
        bucket.unsent += difference;
        (
            (self.capacity - bucket.level).max(0.0) as u64,
            self.empty_in(bucket.level),
        )
    }

    fn empty(&self, now: Instant) -> Bucket {
        Bucket {
            level: 0.0,
            at: now,
            unsent: 0.0,
            synced_at: None,
        }
    }

    fn drained(&self, bucket: &Bucket, now: Instant) -> f64 {
        (bucket.level - now.duration_since(bucket.at).as_secs_f64() * self.per_second).max(0.0)
    }

    fn empty_in(&self, level: f64) -> Duration {
        Duration::from_secs_f64((level / self.per_second).clamp(0.0, MAX_WAIT.as_secs_f64()))
    }

    fn sync_due(&self, key: Uuid) -> bool {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return false;
        }
        let Ok(buckets) = self.buckets.lock() else {
            return false;
        };
        buckets.get(&key).is_none_or(|bucket| {
            bucket.unsent.abs() >= self.capacity / 10.0 || bucket.synced_at.is_none_or(|at| at.elapsed() >= SYNC_EVERY)
        })
    }

    /// Adds this server's unsent points to the shared level and takes the shared level as its
    /// own (one statement).
    async fn sync(&self, key: Uuid) {
        let unsent = {
            let Ok(mut buckets) = self.buckets.lock() else { return };
            let bucket = buckets.entry(key).or_insert_with(|| self.empty(Instant::now()));
            // Marked now, so requests meanwhile do not sync again; what they charge stays unsent.
            bucket.synced_at = Some(Instant::now());
            std::mem::take(&mut bucket.unsent)
        };
        match self.add_shared(key, unsent).await {
            Ok(shared) => {
                if let Ok(mut buckets) = self.buckets.lock()
                    && let Some(bucket) = buckets.get_mut(&key)
                {
                    // What was charged here while the statement ran is not in `shared` yet.
                    bucket.level = shared + bucket.unsent.max(0.0);
                    bucket.at = Instant::now();
                }
            }
            Err(error) => {
                tracing::warn!(%error, "query cost not shared");
                if let Ok(mut buckets) = self.buckets.lock()
                    && let Some(bucket) = buckets.get_mut(&key)
                {
                    bucket.unsent += unsent;
                }
            }
        }
    }

    async fn add_shared(&self, key: Uuid, points: f64) -> Result<f64, sea_orm::DbErr> {
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO cost_bucket AS b (key, level, updated_at) VALUES ($1, GREATEST($2, 0), now())
                 ON CONFLICT (key) DO UPDATE SET
                   level = GREATEST(GREATEST(b.level - $3 * EXTRACT(EPOCH FROM now() - b.updated_at)::float8, 0) + $2, 0),
                   updated_at = now()
                 RETURNING level",
                [key.into(), points.into(), self.per_second.into()],
            ))
            .await?;
        if super::rand_tick() {
            self.db
                .execute_unprepared("DELETE FROM cost_bucket WHERE updated_at < now() - interval '1 day'")
                .await?;
        }
        match row {
            Some(row) => row.try_get("", "level"),
            None => Ok(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bucket_refuses_what_would_overflow_drains_over_time_and_settles_to_the_actual_cost() {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        let buckets = Buckets::new(db, 1_000, 2_000);
        let key = Uuid::nil();
        let charged = buckets.charge(key, 1_500).await;
        assert!(matches!(charged, Charge::Charged { remaining: 500, .. }), "{charged:?}");
        let Charge::Refused { wait, .. } = buckets.charge(key, 1_000).await else {
            panic!("overflow allowed")
        };
        assert!(wait.as_millis() > 400 && wait.as_millis() <= 500, "{wait:?}");
        assert!(
            matches!(buckets.charge(Uuid::max(), 2_000).await, Charge::Charged { .. }),
            "keys apart"
        );
        std::thread::sleep(Duration::from_millis(520));
        let charged = buckets.charge(key, 1_000).await;
        assert!(matches!(charged, Charge::Charged { .. }), "{charged:?}");
        // About 20 left; the request asked for 1,000 and cost 100: 900 come back.
        let (remaining, _) = buckets.settle(key, 1_000, 100);
        assert!((900..=980).contains(&remaining), "{remaining}");
    }
}
