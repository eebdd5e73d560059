//! Principals of recently used API keys and write keys, held in memory so that a request on
//! PostgreSQL does not pay a database round trip to authenticate (docs/perf-history.md, issues 5 and 3).
//!
//! Revocation stays immediate for every server. The revoking server forgets the key at once; the
//! revocation also sends `NOTIFY voxtur_credentials` with the key's id in its transaction, and
//! every server listens and forgets the key when that arrives. While a server's listener is not
//! connected it caches nothing, so a missed notification cannot leave a revoked key usable, and
//! entries expire after [`TTL`] as a backstop. SQLite caches nothing: its lookup runs in process.
//!
//! Only keys found live are cached: unknown keys always go to the database, so random guesses
//! cannot fill memory.

use super::Principal;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

const TTL: Duration = Duration::from_secs(60);
/// Far more keys than a deployment uses at once; past it the cache starts over.
const CAPACITY: usize = 10_000;
const CHANNEL: &str = "voxtur_credentials";

#[derive(Default)]
pub struct PrincipalCache {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// By the key's secret hash.
    entries: HashMap<String, (Principal, Instant)>,
    /// Whether revocations made elsewhere reach this cache (see the module comment).
    live: bool,
    /// Bumped whenever something is forgotten: a principal read from the database before
    /// that is not cached after it, since the revocation may have come in between.
    epoch: u64,
}

/// When a database read began, for [`PrincipalCache::put`].
pub(crate) struct Epoch(u64);

impl PrincipalCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, secret_hash: &str) -> Result<Principal, Epoch> {
        let state = self.lock();
        match state.entries.get(secret_hash) {
            Some((principal, at)) if at.elapsed() < TTL => Ok(principal.clone()),
            _ => Err(Epoch(state.epoch)),
        }
    }

    /// Caches a principal read from the database since `read_from`, unless something was
    /// forgotten meanwhile.
    pub(crate) fn put(&self, secret_hash: String, principal: &Principal, read_from: Epoch) {
        let mut state = self.lock();
        if !state.live || state.epoch != read_from.0 {
            return;
        }
        if state.entries.len() >= CAPACITY {
            state.entries.clear();
        }
        state.entries.insert(secret_hash, (principal.clone(), Instant::now()));
    }

    /// Forgets the key with this id.
    pub fn forget(&self, key_id: Uuid) {
        let mut state = self.lock();
        state.epoch += 1;
        state
            .entries
            .retain(|_, (principal, _)| principal.credential.id() != key_id);
    }

    fn forget_all(&self, live: bool) {
        let mut state = self.lock();
        state.epoch += 1;
        state.entries.clear();
        state.live = live;
    }

    /// On PostgreSQL, follows revocations made by every server until the task is aborted, and
    /// caches while it does; elsewhere returns at once and the cache stays empty.
    pub async fn follow_revocations(self: Arc<Self>, db: DatabaseConnection) {
        if db.get_database_backend() != DatabaseBackend::Postgres {
            return;
        }
        let pool = db.get_postgres_connection_pool().clone();
        loop {
            let listener = async {
                let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await?;
                listener.listen(CHANNEL).await?;
                Ok::<_, sea_orm::sqlx::Error>(listener)
            };
            let mut listener = match listener.await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, "credential revocations not followed; API keys not cached");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            self.forget_all(true);
            // `try_recv` answers `None` when the connection was lost: notifications may have
            // been missed, so the cache empties and stops filling until listening again.
            while let Ok(Some(notification)) = listener.try_recv().await {
                match notification.payload().parse::<Uuid>() {
                    Ok(key_id) => self.forget(key_id),
                    // Not ours to read: forgetting everything is always safe.
                    Err(_) => self.forget_all(true),
                }
            }
            self.forget_all(false);
        }
    }
}

/// Tells every server that a key was revoked. Inside the revoking transaction, PostgreSQL
/// delivers the notification when it commits.
pub(crate) async fn announce_revocation(db: &impl ConnectionTrait, key_id: Uuid) -> Result<(), sea_orm::DbErr> {
    if db.get_database_backend() == DatabaseBackend::Postgres {
        db.execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [CHANNEL.into(), key_id.to_string().into()],
        ))
        .await?;
    }
    Ok(())
}
