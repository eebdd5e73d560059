//! Segment-compatible messages (track, page, screen, identify, group, alias) and the batch
//! pipeline that resolves identities and stores events.
//!
//! Per batch: one identity lookup, one email lookup, one contact load, then resolution in
//! memory in message order (new profiles get ids in memory; merges between stored contacts are
//! decided in memory and carried out in SQL at the end), then multi-row inserts, the row locks,
//! the merges and one activity update. The whole batch is one transaction, retried when a
//! concurrent batch created the same identity first or merged a profile away under it.

mod group;
mod parse;
mod persist;
mod resolve;

pub use parse::{Kind, MAX_BATCH_BYTES, MAX_CALL_BYTES, Message, parse};

use crate::writes::Changes;
use resolve::Batch;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, SqlErr, TransactionTrait};
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Events written (retries and duplicates are not written again).
    pub stored: u64,
    /// Messages applied, including identity-only ones.
    pub applied: usize,
    /// The profiles the batch made, changed or merged, and the events it recorded.
    pub changes: Changes,
}

/// Serialises ingestion on SQLite (one writer anyway) and retries on conflicts everywhere.
#[derive(Clone)]
pub struct Ingestor {
    db: DatabaseConnection,
    sqlite_writer: Arc<tokio::sync::Mutex<()>>,
}

/// Tries of one batch before it fails (the client retries later, as Segment's libraries do).
const MAX_ATTEMPTS: u32 = 10;

/// A profile read at the start of the batch was merged away, or made, by a concurrent batch.
pub(super) const PROFILE_GONE: &str = "a profile changed concurrently";

fn retryable(error: &DbErr) -> bool {
    // Unique keys: a concurrent batch created the same profile. Foreign keys and vanished rows:
    // it merged away (or the API deleted) a profile this batch read. A fresh attempt sees both.
    if matches!(
        error.sql_err(),
        Some(SqlErr::UniqueConstraintViolation(_) | SqlErr::ForeignKeyConstraintViolation(_))
    ) || matches!(error, DbErr::RecordNotUpdated)
        || error.to_string().contains(PROFILE_GONE)
    {
        return true;
    }
    crate::db::is_transient(error)
}

impl Ingestor {
    pub fn new(db: DatabaseConnection) -> Ingestor {
        Ingestor {
            db,
            sqlite_writer: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Holds SQLite's single writer for a read-then-write transaction outside ingestion (a
    /// form submission), so it never fails on a snapshot taken before another write.
    pub async fn exclusive(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.db.get_database_backend() {
            DbBackend::Sqlite => Some(self.sqlite_writer.lock().await),
            _ => None,
        }
    }

    pub async fn ingest(&self, workspace_id: Uuid, messages: &[Message], source: &str) -> Result<Outcome, DbErr> {
        let _writer = self.exclusive().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = async {
                let txn = self.db.begin().await?;
                let mut outcome = Batch::new(workspace_id, source).run(&txn, messages).await?;
                outcome.changes = crate::writes::commit(&self.db, txn, outcome.changes).await?;
                Ok::<_, DbErr>(outcome)
            }
            .await;
            match result {
                Ok(outcome) => {
                    metrics::counter!("voxtur_ingested_messages_total", "source" => source.to_owned())
                        .increment(messages.len() as u64);
                    return Ok(outcome);
                }
                Err(error) if attempt < MAX_ATTEMPTS && retryable(&error) => {
                    tracing::debug!(%error, attempt, "ingestion conflict; retrying");
                    // Growing and jittered, so batches that collided do not collide again in step.
                    let ceiling = 5u64 << attempt.min(6);
                    let pause = ceiling / 2 + rand::random::<u64>() % (ceiling / 2 + 1);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
                other => return other,
            }
        }
    }
}

impl Batch {
    /// Loads what the messages name, resolves them in order, and saves the outcome.
    async fn run(mut self, db: &impl ConnectionTrait, messages: &[Message]) -> Result<Outcome, DbErr> {
        self.lock_company_names(db, messages).await?;
        self.load(db, messages).await?;
        for message in messages {
            // A group call may create its company, the one step of resolution that writes.
            if message.kind == Kind::Group {
                self.group(db, message).await?;
            } else {
                self.apply(message)?;
            }
        }
        self.save(db, messages.len()).await
    }
}
