//! Leaky buckets of query cost points, one per API key (as GitHub and Shopify meter their
//! GraphQL APIs): a request's requested cost must fit in what the bucket has left; once the
//! request has run, the bucket is settled to its actual cost. A bucket drains `per_second`
//! points a second, up to `capacity` in all.
//!
//! On PostgreSQL the level lives in `cost_bucket`, so every server draws on the same bucket:
//! one statement a request, which also applies the settlement of the key's previous request
//! (kept here meanwhile, so settling costs no round trip of its own). SQLite's one process
//! keeps its buckets in memory. A key refused is remembered here until it may try again, so a
//! client hammering a spent bucket costs no database work.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub struct Buckets {
    db: DatabaseConnection,
    per_second: f64,
    capacity: f64,
    /// SQLite's buckets: key -> (level, when last drained).
    levels: Mutex<HashMap<Uuid, (f64, Instant)>>,
    /// PostgreSQL: settlements not yet written (actual - requested), by key.
    unsettled: Mutex<HashMap<Uuid, f64>>,
    /// Keys refused, until when, and what they had left.
    refused: Mutex<HashMap<Uuid, (Instant, u64)>>,
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

impl Buckets {
    pub fn new(db: DatabaseConnection, per_second: u64, capacity: u64) -> Buckets {
        Buckets {
            db,
            per_second: per_second.max(1) as f64,
            capacity: capacity.max(1) as f64,
            levels: Mutex::new(HashMap::new()),
            unsettled: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// Charges `points` to `key`'s bucket if they fit. A failure to reach the shared bucket
    /// lets the request through (and is logged): metering is a guard, not a reason to refuse.
    pub async fn charge(&self, key: Uuid, points: u64) -> Charge {
        if let Some(refusal) = self.still_refused(key) {
            return refusal;
        }
        let charge = match self.db.get_database_backend() {
            DbBackend::Postgres => match self.charge_shared(key, points).await {
                Ok(charge) => charge,
                Err(error) => {
                    tracing::warn!(%error, "query cost not metered");
                    self.full()
                }
            },
            _ => self.charge_here(key, points),
        };
        if let Charge::Refused { wait, remaining } = charge
            && let Ok(mut refused) = self.refused.lock()
        {
            let now = Instant::now();
            if refused.len() > MAX_KEYS {
                refused.retain(|_, (until, _)| *until > now);
            }
            refused.insert(key, (now + wait, remaining));
        }
        charge
    }

    /// Settles a charged request to what it actually cost; what the bucket then has left, and
    /// how long until it is empty. `charged` is what [`Buckets::charge`] answered.
    pub fn settle(&self, key: Uuid, charged: Charge, requested: u64, actual: u64) -> (u64, Duration) {
        let difference = actual as f64 - requested as f64;
        if self.db.get_database_backend() == DbBackend::Postgres {
            if let Ok(mut unsettled) = self.unsettled.lock() {
                *unsettled.entry(key).or_default() += difference;
            }
            let remaining = match charged {
                Charge::Charged { remaining, .. } | Charge::Refused { remaining, .. } => remaining as f64,
            };
            let remaining = (remaining - difference).clamp(0.0, self.capacity);
            return (remaining as u64, self.empty_in(self.capacity - remaining));
        }
        let Ok(mut levels) = self.levels.lock() else {
            return (self.capacity as u64, Duration::ZERO);
        };
        let now = Instant::now();
        let (level, at) = levels.entry(key).or_insert((0.0, now));
        *level = (self.drained(*level, *at, now) + difference).max(0.0);
        *at = now;
        ((self.capacity - *level).max(0.0) as u64, self.empty_in(*level))
    }

    fn full(&self) -> Charge {
        Charge::Charged {
            remaining: self.capacity as u64,
            empty_in: Duration::ZERO,
        }
    }

    fn still_refused(&self, key: Uuid) -> Option<Charge> {
        let mut refused = self.refused.lock().ok()?;
        let now = Instant::now();
        match refused.get(&key) {
            Some((until, remaining)) if *until > now => Some(Charge::Refused {
                wait: *until - now,
                remaining: *remaining,
            }),
            Some(_) => {
                refused.remove(&key);
                None
            }
            None => None,
        }
    }

    fn drained(&self, level: f64, at: Instant, now: Instant) -> f64 {
        (level - now.duration_since(at).as_secs_f64() * self.per_second).max(0.0)
    }

    fn empty_in(&self, level: f64) -> Duration {
        Duration::from_secs_f64((level / self.per_second).clamp(0.0, MAX_WAIT.as_secs_f64()))
    }

    /// The charge, or the refusal, for a bucket at `level` once drained.
    fn verdict(&self, level: f64, points: u64, charged: bool) -> Charge {
        if charged {
            Charge::Charged {
                remaining: (self.capacity - level).max(0.0) as u64,
                empty_in: self.empty_in(level),
            }
        } else {
            let wait = (level + points as f64 - self.capacity) / self.per_second;
            Charge::Refused {
                wait: Duration::from_secs_f64(wait.clamp(0.0, MAX_WAIT.as_secs_f64())),
                remaining: (self.capacity - level).max(0.0) as u64,
            }
        }
    }

    fn charge_here(&self, key: Uuid, points: u64) -> Charge {
        let now = Instant::now();
        let Ok(mut levels) = self.levels.lock() else {
            return self.full();
        };
        if levels.len() > MAX_KEYS {
            levels.retain(|_, (level, at)| self.drained(*level, *at, now) > 0.0);
        }
        let (level, at) = levels.entry(key).or_insert((0.0, now));
        let drained = self.drained(*level, *at, now);
        let fits = drained + points as f64 <= self.capacity;
        *level = drained + if fits { points as f64 } else { 0.0 };
        *at = now;
        self.verdict(*level, points, fits)
    }

    /// One statement: drain the shared bucket, apply this server's unsettled difference for
    /// the key, and add `points` if they fit.
    async fn charge_shared(&self, key: Uuid, points: u64) -> Result<Charge, sea_orm::DbErr> {
        let unsettled = self
            .unsettled
            .lock()
            .ok()
            .and_then(|mut unsettled| unsettled.remove(&key))
            .unwrap_or(0.0);
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO cost_bucket AS b (key, level, updated_at, charged)
                 VALUES ($1, CASE WHEN $2 <= $4 THEN $2 ELSE 0 END, now(), $2 <= $4)
                 ON CONFLICT (key) DO UPDATE SET
                   level = GREATEST(b.level + $3 - $5 * EXTRACT(EPOCH FROM now() - b.updated_at)::float8, 0)
                           + CASE WHEN GREATEST(b.level + $3 - $5 * EXTRACT(EPOCH FROM now() - b.updated_at)::float8, 0)
                                       + $2 <= $4
                                  THEN $2 ELSE 0 END,
                   charged = GREATEST(b.level + $3 - $5 * EXTRACT(EPOCH FROM now() - b.updated_at)::float8, 0)
                             + $2 <= $4,
                   updated_at = now()
                 RETURNING level, charged",
                [
                    key.into(),
                    (points as f64).into(),
                    unsettled.into(),
                    self.capacity.into(),
                    self.per_second.into(),
                ],
            ))
            .await?;
        let Some(row) = row else {
            return Ok(self.full());
        };
        let level: f64 = row.try_get("", "level")?;
        let charged: bool = row.try_get("", "charged")?;
        if super::rand_tick() {
            self.db
                .execute_unprepared("DELETE FROM cost_bucket WHERE updated_at < now() - interval '1 day'")
                .await?;
        }
        Ok(self.verdict(level, points, charged))
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
        let (remaining, _) = buckets.settle(key, charged, 1_000, 100);
        assert!((900..=980).contains(&remaining), "{remaining}");
    }
}
