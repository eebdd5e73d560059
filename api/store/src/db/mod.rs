//! Database connection for both backends, migrations, and a statement counter.

use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::{Expr, ExprTrait, Func, Query};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub mod sqlite_deadline;
pub mod sqlite_memory;

/// Where the database is and how many connections to keep.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://FILE?mode=rwc` (embedded default) or `postgres://USER@HOST/DB`.
    pub url: String,
    /// PostgreSQL only: the schema to use (search_path); lets several deployments share a database.
    pub schema: Option<String>,
    /// Pool size. sqlx pings every connection as it returns to the pool (a round trip), so a
    /// connection stays taken a while after its statement; at 10, with 16 requests in flight,
    /// requests queued for one while the cores idled (docs/perf-history.md, issue 5, ninth session).
    pub max_connections: u32,
    /// Statements running longer are cancelled (PostgreSQL's `statement_timeout`; on SQLite,
    /// [`sqlite_deadline`]). Set by the server from its request deadline (a statement of a
    /// request past it is work nobody awaits); not a setting of its own, and unset for the
    /// command line's long repairs.
    #[serde(skip)]
    pub statement_timeout: Option<Duration>,
}

/// Counts every SQL statement the server runs. Tests use it to prove a page costs a constant
/// number of statements (no N+1); operators can read it as a cheap load signal.
#[derive(Clone, Default, Debug)]
pub struct StatementCounter(Arc<AtomicU64>);

impl StatementCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

const SLOW_STATEMENT: Duration = Duration::from_millis(200);

#[tracing::instrument(skip_all, fields(backend))]
pub async fn connect(settings: &DatabaseSettings) -> Result<(DatabaseConnection, StatementCounter), DbErr> {
    let statement_timeout = settings.statement_timeout;
    if settings.url.starts_with("sqlite:") {
        sqlite_memory::configure();
    }
    let mut options = ConnectOptions::new(settings.url.clone());
    options
        .max_connections(settings.max_connections)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        // A connection dropped by the server or the network shows once it has sat idle; a busy
        // one was just used. Pinging every checkout cost each request a round trip: 4% of a
        // contacts list's CPU on PostgreSQL (docs/perf-history.md, issue 5, eighth session).
        .test_before_acquire_if_idle_for(Duration::from_secs(5))
        // WAL lets readers run beside the one writer; NORMAL sync is durable across crashes of
        // the process (not of the OS), the usual trade for an embedded server.
        .map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // LIKE is case-sensitive on PostgreSQL; make SQLite agree (ILIKE-style
                // matching is `ilike`, compiled as lower() LIKE lower() on both).
                .pragma("case_sensitive_like", "ON")
                // Statement journals (every multi-row insert inside a transaction keeps one)
                // stay in memory instead of spilling to a temporary file past 64 KB.
                .pragma("temp_store", "MEMORY")
                // The writer no longer copies the WAL back into the database after its commit
                // (1,000 pages by default): `checkpoint_continuously` does it beside it. This is
                // only the backstop, should that task fall behind.
                .pragma("wal_autocheckpoint", WAL_BACKSTOP_PAGES)
        })
        // Segment and report queries group hundreds of thousands of events by contact; with
        // PostgreSQL's default 4 MB they sort on disk instead of hashing in memory. Per sort or
        // hash node, so a pool of N connections bounds it at a few N x 32 MB in the worst case.
        // No parallel plans: the server runs many statements at once, and for the hash joins
        // behaviour conditions make, every parallel worker builds the same hash table again
        // (measured: 1.26 s in parallel, 0.78 s without, for a segment at a million contacts).
        //
        // No Memoize nodes: PostgreSQL sizes a Memoize cache by the distinct keys of the whole
        // table it looks into and builds it at every execution, so a contacts page joining its 50
        // companies set up a cache for 50,000 at each call. Measured on the list of issue 5: 0.13
        // ms of PostgreSQL CPU a request, a quarter of it (docs/perf-history.md, eighth session); the
        // segment benchmark's plans did not get slower without it.
        .map_sqlx_postgres_opts(move |opts| {
            let opts = opts.options([
                ("work_mem", "32MB"),
                ("max_parallel_workers_per_gather", "0"),
                ("enable_memoize", "off"),
            ]);
            match statement_timeout {
                Some(timeout) => opts.options([("statement_timeout", format!("{}ms", timeout.as_millis().max(1)))]),
                None => opts,
            }
        });
    if let Some(timeout) = statement_timeout {
        options.map_sqlx_sqlite_pool_opts(move |pool| {
            pool.after_connect(move |connection, _| Box::pin(sqlite_deadline::install(connection, timeout)))
        });
    }
    if let Some(schema) = &settings.schema {
        options.set_schema_search_path(schema.clone());
    }
    let mut db = Database::connect(options).await?;
    if let Some(schema) = &settings.schema
        && db.get_database_backend() == DbBackend::Postgres
    {
        // A schema named in the settings is made when missing; otherwise the first migration
        // fails with PostgreSQL's "no schema has been selected to create in".
        let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
        db.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))
            .await?;
    }
    let counter = StatementCounter::default();
    let count = counter.0.clone();
    db.set_metric_callback(move |info| {
        count.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(target: "voxtur::sql", elapsed_us = info.elapsed.as_micros() as u64, sql = %info.statement.sql);
        if info.elapsed > SLOW_STATEMENT {
            // The start names the statement; a 500-row INSERT in full would flood the log.
            let sql = &info.statement.sql;
            let head = &sql[..sql.floor_char_boundary(300)];
            tracing::warn!(elapsed_ms = info.elapsed.as_millis() as u64, sql = %head, "slow statement");
        }
    });
    tracing::Span::current().record("backend", tracing::field::debug(db.get_database_backend()));
    Ok((db, counter))
}

/// Begins a transaction that reads, then writes what it read. On SQLite it takes the write lock
/// at once (`BEGIN IMMEDIATE`, waiting up to the busy timeout), so a writer committing between
/// its read and its write cannot fail it; PostgreSQL ignores the mode.
pub async fn begin_write<C: TransactionTrait>(db: &C) -> Result<C::Transaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Takes PostgreSQL advisory locks `(class, key)` for the rest of the transaction, in key order
/// so that writers locking several keys never deadlock; `shared` ones only exclude a holder
/// that is not shared. A no-op on SQLite, whose writers are serial anyway.
pub async fn lock_for_transaction(
    db: &impl ConnectionTrait,
    class: i32,
    keys: &[i32],
    shared: bool,
) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres || keys.is_empty() {
        return Ok(());
    }
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    let function = if shared {
        "pg_advisory_xact_lock_shared"
    } else {
        "pg_advisory_xact_lock"
    };
    // `unnest` yields the array in order, and the calls run row by row.
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("SELECT {function}($1, key) FROM unnest($2::int4[]) AS key"),
        [class.into(), keys.into()],
    ))
    .await?;
    Ok(())
}

/// A statement stopped at its deadline: PostgreSQL's `statement_timeout` (57014) or SQLite's
/// interruption by [`sqlite_deadline`].
pub fn is_past_deadline(error: &dyn std::fmt::Display) -> bool {
    let text = error.to_string();
    text.contains("canceling statement due to statement timeout") || text.contains("(code: 9) interrupted")
}

/// Errors that a fresh attempt of the same transaction can succeed past: lock conflicts, and on
/// SQLite a writer that committed since this transaction read.
pub fn is_transient(error: &DbErr) -> bool {
    let text = error.to_string();
    [
        "deadlock detected",
        "could not serialize",
        "database is locked",
        "(code: 5)",
        "(code: 517)",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// Runs a write transaction again, up to five times in all, while it fails in a way a fresh
/// attempt can get past (`is_transient`). A writer that locks a contact and then its journey
/// (a delete, a merge) can deadlock with an ingestion batch that wrote to that journey first
/// and locks the contact last; PostgreSQL then aborts one of the two.
pub async fn retry_transient<T, E, F, Fut>(mut transaction: F) -> Result<T, E>
where
    E: MaybeTransient,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match transaction().await {
            Err(error) if attempt < 5 && error.is_transient() => {
                tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
            }
            outcome => return outcome,
        }
    }
}

/// Errors that may carry a database error `retry_transient` can run again past.
pub trait MaybeTransient {
    fn is_transient(&self) -> bool;
}

impl MaybeTransient for DbErr {
    fn is_transient(&self) -> bool {
        is_transient(self)
    }
}

impl MaybeTransient for crate::error::ApiError {
    fn is_transient(&self) -> bool {
        matches!(self, crate::error::ApiError::Internal(e) if e.downcast_ref::<DbErr>().is_some_and(is_transient))
    }
}

/// See `checkpoint_continuously`.
const WAL_BACKSTOP_PAGES: &str = "20000";
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// On SQLite, copies committed WAL pages back into the database file every 250 ms, off the
/// writer's path. SQLite's own automatic checkpoint runs inside the commit of whichever write
/// crosses the threshold, and SQLite has one writer: measured on ingestion, that copy was a
/// tenth of the writer's time. A passive checkpoint waits for nobody and blocks nobody.
pub async fn checkpoint_continuously(db: DatabaseConnection) {
    if db.get_database_backend() != DbBackend::Sqlite {
        return;
    }
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = db.execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)").await {
            tracing::warn!(%error, "WAL checkpoint failed");
        }
    }
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// True when every migration is applied; `serve` refuses to start on a stale schema otherwise.
pub async fn pending_migrations(db: &DatabaseConnection) -> Result<usize, DbErr> {
    Ok(Migrator::get_pending_migrations(db).await?.len())
}

pub async fn ping(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.execute_unprepared("SELECT 1").await.map(|_| ())
}

/// A time as SQLite stores it (sqlx's encoding of `DateTime<Utc>`), for times passed inside a
/// JSON parameter: the text compares with stored times and bound parameters, and sorts as time.
pub fn sqlite_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

pub fn is_postgres(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == DbBackend::Postgres
}

/// `column IN (values)`. On PostgreSQL the values go as one array parameter, `column IN (SELECT
/// unnest($1))`: one statement text whatever the list's length (prepared once, where every
/// length of an `IN` list is its own prepared statement), and a plan that cannot go quadratic.
/// With an `IN` list, a generic plan cached while a table was small filtered every row of the
/// workspace against every value (the identity lookup: 200 ms a batch at 20,000 identities,
/// growing with the table); the subquery is an index lookup per value, or at worst one hash join.
pub fn any_of<C, T>(backend: DbBackend, column: C, values: Vec<T>) -> Expr
where
    C: ColumnTrait,
    T: Into<sea_orm::Value> + sea_orm::sea_query::ValueType + sea_orm::sea_query::value::postgres_array::NotU8,
{
    match backend {
        DbBackend::Postgres => Expr::col(column.as_column_ref()).in_subquery(
            Query::select()
                .expr(Func::cust("unnest").arg(Expr::val(values)))
                .to_owned(),
        ),
        DbBackend::Sqlite => {
            // On SQLite the same idea, one JSON array parameter read by `json_each`: each length
            // of an `IN` list was a statement of its own to parse and plan, about once a batch.
            let values: Vec<sea_orm::Value> = values.into_iter().map(Into::into).collect();
            let mut element = "value";
            let mut items = Vec::with_capacity(values.len());
            for value in &values {
                match value {
                    sea_orm::Value::String(Some(text)) => items.push(serde_json::Value::from(text.as_str())),
                    // Uuids are 16-byte blobs on SQLite; JSON carries them as hex.
                    sea_orm::Value::Uuid(Some(id)) => {
                        element = "unhex(value)";
                        items.push(serde_json::Value::from(id.simple().to_string()));
                    }
                    _ => return column.is_in(values),
                }
            }
            let list = serde_json::Value::Array(items).to_string();
            Expr::col(column.as_column_ref()).in_subquery(
                Query::select()
                    .expr(Expr::cust(element))
                    .from_function(
                        Func::cust("json_each").arg(list),
                        sea_orm::sea_query::Alias::new("list"),
                    )
                    .to_owned(),
            )
        }
        _ => column.is_in(values),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn sqlite_times_sort_as_time() {
        let base = DateTime::parse_from_rfc3339("2026-12-02T10:00:05Z").unwrap().to_utc();
        let times = [
            base,
            base + chrono::Duration::microseconds(1),
            base + chrono::Duration::milliseconds(100),
            base + chrono::Duration::milliseconds(120),
            base + chrono::Duration::seconds(1),
        ];
        let texts: Vec<String> = times.iter().map(|t| sqlite_time(*t)).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
        assert_eq!(texts[0], "2026-12-02T10:00:05+00:00");
    }
}
