//! The workers of one process: a loop that claims jobs while it has free slots and runs each
//! in a task of its own, and around it the queue's housekeeping, which every worker process
//! does (it is idempotent): timers and retries promoted when due, schedules fired once per
//! tick, leases extended (the heartbeat), expired leases rescued, finished jobs recorded in
//! batches. Woken by enqueues in this process ([`queue::wake`]) and, on PostgreSQL, by
//! `NOTIFY voxtur_jobs` from any server; otherwise it polls.

use super::{Job, JobError, Kind, kinds, queue, schedule};
use sea_orm::{DatabaseConnection, DbBackend};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How a process's workers run (`[jobs]` in the configuration).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Jobs run at once.
    pub concurrency: usize,
    /// The queues served, in turn.
    pub queues: Vec<String>,
    /// How long a claimed job is held without a heartbeat; a worker extends it every third.
    pub lease_secs: u64,
    /// How often the queue is looked at when nothing woke the workers.
    pub poll_ms: u64,
}

impl Default for WorkerSettings {
    fn default() -> WorkerSettings {
        WorkerSettings {
            concurrency: 16,
            queues: vec![super::DEFAULT_QUEUE.into(), super::WEBHOOKS_QUEUE.into()],
            lease_secs: 60,
            poll_ms: 1_000,
        }
    }
}

impl WorkerSettings {
    fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs.max(1))
    }
}

/// How often expired leases are looked for.
const RESCUE_EVERY: Duration = Duration::from_secs(5);
/// How often schedules are looked at.
const SCHEDULES_EVERY: Duration = Duration::from_secs(1);
/// Completions recorded in one statement, at most.
const COMPLETION_BATCH: usize = 1_000;

/// The running workers of this process.
pub struct Workers {
    stop: CancellationToken,
    main: tokio::task::JoinHandle<()>,
}

impl Workers {
    /// Starts the workers on `db`.
    pub fn start(db: DatabaseConnection, settings: WorkerSettings) -> Workers {
        super::set_own_lease(settings.lease());
        let stop = CancellationToken::new();
        if db.get_database_backend() == DbBackend::Postgres {
            tokio::spawn(listen(db.clone(), stop.clone()));
        }
        let main = tokio::spawn(run(db, settings, stop.clone()));
        Workers { stop, main }
    }

    /// Stops claiming, lets running jobs finish for up to `patience`, and gives back to the
    /// queue those still running then.
    pub async fn stop(self, patience: Duration) {
        self.stop.cancel();
        let main = self.main;
        tokio::pin!(main);
        if tokio::time::timeout(patience, &mut main).await.is_err() {
            main.abort();
        }
    }
}

async fn run(db: DatabaseConnection, settings: WorkerSettings, stop: CancellationToken) {
    let kinds: Arc<HashMap<&'static str, &'static Kind>> = Arc::new(kinds().iter().map(|k| (k.name, k)).collect());
    if let Err(error) = schedule::ensure(&db, &super::schedules()).await {
        tracing::error!(%error, "schedules not stored");
    }
    let lease = settings.lease();
    let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let slot_freed = Arc::new(Notify::new());
    let (completed_tx, completed_rx) = mpsc::unbounded_channel();
    let recorder = tokio::spawn(record_completions(db.clone(), completed_rx));
    let mut running = JoinSet::new();
    let mut served_last: HashMap<String, uuid::Uuid> = HashMap::new();
    let mut last_rescue = Instant::now() - RESCUE_EVERY;
    let mut last_schedules = Instant::now() - SCHEDULES_EVERY;
    let mut last_heartbeat = Instant::now();
    let poll = Duration::from_millis(settings.poll_ms.max(10));

    while !stop.is_cancelled() {
        // Housekeeping, each at its pace.
        if last_heartbeat.elapsed() >= lease / 3 {
            last_heartbeat = Instant::now();
            if let Err(error) = queue::extend_leases(&db, lease).await {
                tracing::warn!(%error, "leases not extended");
            }
        }
        if last_rescue.elapsed() >= RESCUE_EVERY {
            last_rescue = Instant::now();
            match queue::rescue_expired(&db).await {
                Ok(0) => {}
                Ok(rescued) => tracing::warn!(rescued, "jobs whose lease expired run again"),
                Err(error) => tracing::warn!(%error, "expired leases not rescued"),
            }
        }
        if last_schedules.elapsed() >= SCHEDULES_EVERY {
            last_schedules = Instant::now();
            if let Err(error) = schedule::fire_due(&db).await {
                tracing::warn!(%error, "schedules not fired");
            }
        }
        if let Err(error) = queue::promote_due(&db).await {
            tracing::warn!(%error, "due jobs not promoted");
        }

        // Claim while there are free slots and jobs to take.
        let mut claimed_any = false;
        for queue_name in &settings.queues {
            let free = slots.available_permits();
            if free == 0 {
                break;
            }
            let after = served_last.get(queue_name).copied();
            match queue::claim(&db, queue_name, free as u64, lease, after).await {
                Ok((jobs, workspace)) => {
                    if let Some(workspace) = workspace {
                        served_last.insert(queue_name.clone(), workspace);
                    }
                    for job in jobs {
                        claimed_any = true;
                        let Ok(permit) = slots.clone().try_acquire_owned() else {
                            // Cannot happen (claimed no more than the free slots); give it back.
                            let _ = queue::fail(&db, &job, "no free slot", true).await;
                            continue;
                        };
                        let (db, kinds, done, freed) =
                            (db.clone(), kinds.clone(), completed_tx.clone(), slot_freed.clone());
                        running.spawn(async move {
                            execute(&db, &kinds, job, &done).await;
                            drop(permit);
                            freed.notify_one();
                        });
                    }
                }
                Err(error) => tracing::warn!(%error, queue = %queue_name, "jobs not claimed"),
            }
        }
        while running.try_join_next().is_some() {}
        if claimed_any {
            // More may be waiting; the next pass claims as slots free up.
            if slots.available_permits() == 0 {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = slot_freed.notified() => {}
                }
            }
            continue;
        }

        // Sleep until woken, a slot frees up, the next timer is due, or the poll interval.
        let next_due = match queue::next_due(&db).await {
            Ok(Some(at)) => (at - voxtur_store::now()).to_std().unwrap_or(Duration::ZERO),
            _ => poll,
        };
        let nap = poll.min(next_due).min(SCHEDULES_EVERY);
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = queue::woken().notified() => {}
            // A job that finished before this wait still wakes it (the notification is kept).
            _ = slot_freed.notified() => {}
            _ = tokio::time::sleep(nap) => {}
        }
    }

    // Shutting down: running jobs finish (the caller bounds how long), completions are
    // recorded, and whatever is still held is given back.
    while running.join_next().await.is_some() {}
    drop(completed_tx);
    let _ = recorder.await;
    if let Err(error) = queue::release(&db).await {
        tracing::warn!(%error, "jobs not given back");
    }
}

/// Runs one job and records a failure; completions go to the recorder.
async fn execute(
    db: &DatabaseConnection,
    kinds: &HashMap<&'static str, &'static Kind>,
    job: Job,
    done: &mpsc::UnboundedSender<uuid::Uuid>,
) {
    let Some(kind) = kinds.get(job.kind.as_str()) else {
        let reason = format!("no kind of job is called `{}`", job.kind);
        if let Err(error) = queue::fail(db, &job, &reason, false).await {
            tracing::error!(%error, job = %job.id, "failure not recorded");
        }
        return;
    };
    let started = Instant::now();
    let outcome = match tokio::time::timeout(kind.timeout, (kind.run)(db.clone(), job.clone())).await {
        Ok(outcome) => outcome,
        Err(_) => Err(JobError::Retry(format!(
            "the attempt ran longer than {} s",
            kind.timeout.as_secs()
        ))),
    };
    match outcome {
        Ok(()) => {
            tracing::debug!(job = %job.id, kind = %job.kind, ms = started.elapsed().as_millis() as u64, "job completed");
            metrics::counter!("voxtur_jobs_completed_total", "kind" => job.kind.clone()).increment(1);
            let _ = done.send(job.id);
        }
        Err(failure) => {
            let (message, retry) = match &failure {
                JobError::Retry(message) => (message.as_str(), true),
                JobError::Discard(message) => (message.as_str(), false),
            };
            let outcome = if retry { "retry" } else { "discard" };
            metrics::counter!("voxtur_jobs_failed_total", "kind" => job.kind.clone(), "outcome" => outcome)
                .increment(1);
            match queue::fail(db, &job, message, retry).await {
                Ok(outcome) => {
                    tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempt, error = %message, ?outcome, "job failed")
                }
                Err(error) => tracing::error!(%error, job = %job.id, "failure not recorded"),
            }
        }
    }
}

/// Records completions in batches: one statement for all that finished meanwhile.
async fn record_completions(db: DatabaseConnection, mut completed: mpsc::UnboundedReceiver<uuid::Uuid>) {
    let mut batch = Vec::with_capacity(COMPLETION_BATCH);
    while completed.recv_many(&mut batch, COMPLETION_BATCH).await > 0 {
        for attempt in 0..3 {
            match queue::complete(&db, &batch).await {
                Ok(_) => break,
                Err(error) => {
                    // Not recorded, the jobs run again once their lease expires (at least once).
                    tracing::warn!(%error, attempt, "completions not recorded");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
            }
        }
        batch.clear();
    }
}

/// PostgreSQL: wakes this process's workers on every `NOTIFY voxtur_jobs` (sent at the commit
/// of an enqueue on any server); reconnects after a failure.
async fn listen(db: DatabaseConnection, stop: CancellationToken) {
    let pool = db.get_postgres_connection_pool().clone();
    while !stop.is_cancelled() {
        let listener = async {
            let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen("voxtur_jobs").await?;
            loop {
                listener.recv().await?;
                queue::wake();
            }
            #[allow(unreachable_code)]
            Ok::<(), sea_orm::sqlx::Error>(())
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            result = listener => {
                if let Err(error) = result {
                    tracing::warn!(%error, "job notifications lost; listening again");
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
