//! Database connections: what a connection returning to the pool must have finished
//! (`vendor/README.md`: sqlx-core is patched to flush there instead of pinging), and SQLite's heap.

use crate::support::TestApp;
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};

/// A transaction dropped without commit (a request cancelled mid-way) is rolled back as its
/// connection returns to the pool, not when that connection is next used: until then its locks
/// would stall every other writer of the same rows.
#[tokio::test]
async fn a_dropped_transaction_releases_its_locks_at_once() {
    let app = TestApp::spawn().await;
    let backend = app.db.get_database_backend();
    let rename = |name: &str| {
        let sql = match backend {
            DbBackend::Postgres => "UPDATE workspace SET name = $1 WHERE id = $2",
            _ => "UPDATE workspace SET name = ? WHERE id = ?",
        };
        Statement::from_sql_and_values(backend, sql, [name.into(), app.workspace_id.into()])
    };
    let txn = app.db.begin().await.unwrap();
    txn.execute_raw(rename("never committed")).await.unwrap();
    drop(txn);

    // Another pool: a connection the dropped transaction's pool could not hand back to us.
    let (other, _) = voxtur_store::db::connect(&app.database).await.unwrap();
    let txn = other.begin().await.unwrap();
    if backend == DbBackend::Postgres {
        txn.execute_unprepared("SET LOCAL lock_timeout = '3s'").await.unwrap();
    }
    txn.execute_raw(rename("Renamed"))
        .await
        .expect("the row is still locked");
    txn.commit().await.unwrap();

    let name = other
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            match backend {
                DbBackend::Postgres => "SELECT name FROM workspace WHERE id = $1",
                _ => "SELECT name FROM workspace WHERE id = ?",
            },
            [app.workspace_id.into()],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<String>(0)
        .unwrap();
    assert_eq!(name, "Renamed");
}

/// SQLite allocates through mimalloc (`db::sqlite_memory`): the server configured SQLite before
/// anything in the process initialised it, and the server's statements run on that heap.
#[tokio::test]
async fn sqlite_allocates_through_mimalloc() {
    let app = TestApp::spawn().await;
    if app.db.get_database_backend() != DbBackend::Sqlite {
        return;
    }
    assert!(voxtur_store::db::sqlite_memory::configured());
    // A statement that allocates well beyond SQLite's small-allocation buffers.
    let row = app
        .db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT length(group_concat(hex(randomblob(1000)))) FROM json_each('[1,2,3,4,5,6,7,8]')",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 8 * 2000 + 7);
}
