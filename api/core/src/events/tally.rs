//! Event tallies: per contact and event type, how many events and when the latest `RECENT`
//! happened (table `event_tally`, migration 8). Kept in step with the event table inside the
//! writer's transaction, so behaviour conditions read one row per contact instead of grouping
//! every event of a window (`filter::EventCondition`).
//!
//! Every write is an upsert that merges in SQL (sum the totals, keep the latest times), so
//! concurrent writers to one row need no lock of their own and no read before the write.

use crate::db::sqlite_time;
use chrono::{DateTime, Utc};
use entities::event;
use sea_orm::sea_query::{Alias, Expr, Order, Query, SelectStatement, Value};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, TransactionSession, TransactionTrait};
use uuid::Uuid;

/// How many latest occurrence times a tally keeps: counts up to this many in a sliding window
/// are read from tallies; larger ones count events.
pub const RECENT: i64 = 10;

/// The head of every statement that writes tallies (followed by rows and, but for a rebuild,
/// `fold`).
const INSERT: &str = "INSERT INTO event_tally (contact_id, event_type, workspace_id, total, last_at, recent)";

/// The `ON CONFLICT` clause that folds an incoming tally (`excluded`) into the stored one.
fn fold(backend: DbBackend) -> String {
    let recent = match backend {
        // Events mostly arrive newer than every stored one: then the incoming times go in
        // front as they are, without sorting both lists in a subquery for every row.
        DbBackend::Postgres => format!(
            "CASE WHEN excluded.recent[cardinality(excluded.recent)] >= event_tally.recent[1] \
               THEN (excluded.recent || event_tally.recent)[1:{RECENT}] \
               ELSE ARRAY(SELECT m FROM unnest(event_tally.recent || excluded.recent) AS m \
                          ORDER BY m DESC LIMIT {RECENT}) END"
        ),
        // The same, for the usual single new time: it goes in front as text (JSON arrays of
        // times as `json_group_array` writes them), and the eleventh, if any, is cut.
        _ => format!(
            "CASE WHEN excluded.total = 1 AND excluded.last_at >= event_tally.last_at AND event_tally.recent <> '[]' \
               THEN json_remove('[' || json_quote(excluded.last_at) || ',' || substr(event_tally.recent, 2), \
                                '$[{RECENT}]') \
               ELSE (SELECT json_group_array(m ORDER BY m DESC) FROM \
                      (SELECT value AS m FROM json_each(event_tally.recent) \
                       UNION ALL SELECT value FROM json_each(excluded.recent) ORDER BY m DESC LIMIT {RECENT})) END"
        ),
    };
    let greatest = if backend == DbBackend::Postgres {
        "GREATEST"
    } else {
        "MAX"
    };
    format!(
        "ON CONFLICT (contact_id, event_type) DO UPDATE SET \
           total = event_tally.total + excluded.total, \
           last_at = {greatest}(event_tally.last_at, excluded.last_at), \
           recent = {recent}"
    )
}

/// The aggregate of a group's latest `RECENT` times of `column`, newest first. On SQLite the
/// group's rows must carry their rank by time as `latest` (a window function).
fn latest_times(backend: DbBackend, column: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("(array_agg({column} ORDER BY {column} DESC))[1:{RECENT}]"),
        _ => format!("json_group_array({column} ORDER BY {column} DESC) FILTER (WHERE latest <= {RECENT})"),
    }
}

/// Writers of a workspace's tallies hold this lock shared until they commit, and a rebuild of
/// that workspace holds it alone: a rebuild waits for that workspace's writers only, and they
/// for it. Taken before a writer's first tally write: events it stored earlier in the same
/// transaction are invisible to a rebuild that got in first, and are added on top of the
/// rebuilt tallies once it commits. PostgreSQL only; SQLite has one writer anyway.
async fn lock_workspace(db: &impl ConnectionTrait, workspace_id: Uuid, alone: bool) -> Result<(), DbErr> {
    crate::db::lock_for_transaction(db, LOCK_CLASS, &[workspace_lock_key(workspace_id)], !alone).await
}

/// The advisory lock space of tally writers (the two-key form's first key; "tal" in ASCII).
const LOCK_CLASS: i32 = 0x74616c;

/// A workspace's key in `LOCK_CLASS`. Two workspaces sharing a key only wait for each other.
fn workspace_lock_key(workspace_id: Uuid) -> i32 {
    let bytes = workspace_id.as_bytes();
    i32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]])
}

/// What a set of events adds to one tally: how many, and their latest `RECENT` times, newest
/// first.
struct Increment<'a> {
    contact_id: Uuid,
    event_type: &'a str,
    workspace_id: Uuid,
    total: i64,
    recent: Vec<DateTime<Utc>>,
}

/// The events' increments, one for each contact and event type, in key order. Grouped here
/// rather than in SQL: PostgreSQL set up a sort for every group's ordered `array_agg`, and
/// SQLite numbered every event with a window function, where almost every group holds one event.
fn increments(events: &[event::Model]) -> Vec<Increment<'_>> {
    let mut sorted: Vec<&event::Model> = events.iter().collect();
    sorted.sort_unstable_by(|a, b| {
        (a.contact_id, &a.event_type)
            .cmp(&(b.contact_id, &b.event_type))
            .then(b.occurred_at.cmp(&a.occurred_at))
    });
    let mut rows: Vec<Increment> = Vec::with_capacity(sorted.len());
    for e in sorted {
        match rows.last_mut() {
            Some(row) if row.contact_id == e.contact_id && row.event_type == e.event_type => {
                row.total += 1;
                if row.recent.len() < RECENT as usize {
                    row.recent.push(e.occurred_at);
                }
            }
            _ => rows.push(Increment {
                contact_id: e.contact_id,
                event_type: &e.event_type,
                workspace_id: e.workspace_id,
                total: 1,
                recent: vec![e.occurred_at],
            }),
        }
    }
    rows
}

/// Adds newly stored events to their contacts' tallies: one statement, rows in key order so
/// concurrent writers take row locks in one order. Pass only events actually stored (not the
/// duplicates an idempotent insert skipped), with their final contact.
pub async fn add(db: &impl ConnectionTrait, events: &[event::Model]) -> Result<(), DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    let mut workspaces: Vec<Uuid> = events.iter().map(|e| e.workspace_id).collect();
    workspaces.sort();
    workspaces.dedup();
    for workspace_id in workspaces {
        lock_workspace(db, workspace_id, false).await?;
    }
    let rows = increments(events);
    let backend = db.get_database_backend();
    // A single time (the usual increment) makes the list in SQL; longer lists go as text.
    let (select, values) = if backend == DbBackend::Postgres {
        let select = "SELECT c, t, w, n, at, CASE WHEN r = '' THEN ARRAY[at] ELSE r::timestamptz[] END \
             FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::int8[], $5::timestamptz[], $6::text[]) \
                  AS v(c, t, w, n, at, r) \
             ORDER BY c, t";
        let longer = |row: &Increment| match row.recent.len() {
            1 => String::new(),
            _ => {
                let times: Vec<String> = row.recent.iter().map(|t| t.to_rfc3339()).collect();
                format!("{{{}}}", times.join(","))
            }
        };
        let values = vec![
            Value::from(rows.iter().map(|r| r.contact_id).collect::<Vec<_>>()),
            Value::from(rows.iter().map(|r| r.event_type.to_owned()).collect::<Vec<_>>()),
            Value::from(rows.iter().map(|r| r.workspace_id).collect::<Vec<_>>()),
            Value::from(rows.iter().map(|r| r.total).collect::<Vec<_>>()),
            Value::from(rows.iter().map(|r| r.recent[0]).collect::<Vec<_>>()),
            Value::from(rows.iter().map(longer).collect::<Vec<String>>()),
        ];
        (select, values)
    } else {
        // `recent` as `json_group_array` writes it (the fold relies on that text).
        let select = "SELECT unhex(value ->> 0), value ->> 1, unhex(value ->> 2), value ->> 3, value ->> 4, \
                    coalesce(value ->> 5, json_array(value ->> 4)) \
             FROM json_each(?) WHERE true";
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let longer = (r.recent.len() > 1).then(|| {
                    let times: Vec<String> = r.recent.iter().map(|t| sqlite_time(*t)).collect();
                    serde_json::Value::from(times).to_string()
                });
                serde_json::json!([
                    r.contact_id.simple().to_string(),
                    r.event_type,
                    r.workspace_id.simple().to_string(),
                    r.total,
                    sqlite_time(r.recent[0]),
                    longer,
                ])
            })
            .collect();
        (select, vec![Value::from(serde_json::Value::Array(list).to_string())])
    };
    let sql = format!("{INSERT} {select} {}", fold(backend));
    db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    Ok(())
}

/// Adds one event of `event_type` at `at` to the tally of each contact `contacts` selects (a
/// select of `contact_id` and `workspace_id`, one row a contact), as recording the same event
/// for each of them in one `INSERT ... SELECT` does to the event table.
pub async fn add_each(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    contacts: SelectStatement,
    event_type: &str,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    lock_workspace(db, workspace_id, false).await?;
    let backend = db.get_database_backend();
    let recent = match backend {
        // (Not `ARRAY[$1]`: sea-query reads brackets as a quoted name and drops the value.)
        DbBackend::Postgres => Expr::cust_with_values("ARRAY(SELECT $1::timestamptz)", [at]),
        _ => Expr::cust_with_values("json_array(?)", [at]),
    };
    let c = Alias::new("c");
    let rows = Query::select()
        .column((c.clone(), Alias::new("contact_id")))
        .expr(Expr::val(event_type))
        .column((c.clone(), Alias::new("workspace_id")))
        .expr(Expr::val(1i64))
        .expr(Expr::val(at))
        .expr(recent)
        .from_subquery(contacts, c.clone())
        // SQLite reads `ON` after a bare `FROM` as a join constraint: a WHERE settles it.
        .and_where(Expr::cust("1 = 1"))
        .order_by((c, Alias::new("contact_id")), Order::Asc)
        .to_owned();
    let mut statement = backend.build(&rows);
    statement.sql = format!("{INSERT} {} {}", statement.sql, fold(backend));
    db.execute_raw(statement).await?;
    Ok(())
}

/// Moves the loser's tallies onto the winner of a merge, whose events it took.
pub async fn merge(db: &impl ConnectionTrait, workspace_id: Uuid, winner: Uuid, loser: Uuid) -> Result<(), DbErr> {
    lock_workspace(db, workspace_id, false).await?;
    let backend = db.get_database_backend();
    let (w, l) = match backend {
        DbBackend::Postgres => ("$1", "$2"),
        _ => ("?", "?"),
    };
    let sql = format!(
        "{INSERT} SELECT {w}, event_type, workspace_id, total, last_at, recent FROM event_tally \
         WHERE contact_id = {l} ORDER BY event_type {}",
        fold(backend)
    );
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [winner.into(), loser.into()],
    ))
    .await?;
    forget(db, workspace_id, loser).await
}

/// Removes a contact's tallies (it is being deleted, or merged away).
pub async fn forget(db: &impl ConnectionTrait, workspace_id: Uuid, contact_id: Uuid) -> Result<(), DbErr> {
    lock_workspace(db, workspace_id, false).await?;
    let backend = db.get_database_backend();
    let p = if backend == DbBackend::Postgres { "$1" } else { "?" };
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        format!("DELETE FROM event_tally WHERE contact_id = {p}"),
        [contact_id.into()],
    ))
    .await?;
    Ok(())
}

/// Computes a workspace's tallies again from its events: after a bulk load that wrote events
/// directly, or to repair. One transaction that holds the workspace's tally writers off until
/// it commits (`lock_workspace`; on SQLite its write lock), so no event falls between the
/// events it reads and the tallies it writes, and readers never see the tallies half made.
/// Other workspaces keep writing.
pub async fn rebuild<C: ConnectionTrait + TransactionTrait>(db: &C, workspace_id: Uuid) -> Result<(), DbErr> {
    let txn = crate::db::begin_write(db).await?;
    rebuild_in(&txn, workspace_id).await?;
    txn.commit().await
}

/// `rebuild` inside the caller's write transaction (see `db::begin_write`); the workspace's
/// tally writers wait until it ends.
pub async fn rebuild_in(txn: &impl ConnectionTrait, workspace_id: Uuid) -> Result<(), DbErr> {
    let backend = txn.get_database_backend();
    lock_workspace(txn, workspace_id, true).await?;
    let p = if backend == DbBackend::Postgres { "$1" } else { "?" };
    let events = match backend {
        DbBackend::Postgres => format!("event WHERE workspace_id = {p}"),
        _ => format!(
            "(SELECT contact_id, event_type, workspace_id, occurred_at, \
                     row_number() OVER (PARTITION BY contact_id, event_type ORDER BY occurred_at DESC) AS latest \
              FROM event WHERE workspace_id = {p})"
        ),
    };
    let delete = format!("DELETE FROM event_tally WHERE workspace_id = {p}");
    let insert = format!(
        "{INSERT} SELECT contact_id, event_type, workspace_id, count(*), max(occurred_at), {} \
         FROM {events} GROUP BY contact_id, event_type, workspace_id",
        latest_times(backend, "occurred_at")
    );
    for sql in [delete, insert] {
        txn.execute_raw(Statement::from_sql_and_values(backend, sql, [workspace_id.into()]))
            .await?;
    }
    Ok(())
}
