//! Bulk loading of entity rows for generated datasets: `COPY ... FROM STDIN` on PostgreSQL,
//! multi-row INSERTs in large transactions on SQLite. Written here because sea-orm has no COPY;
//! sqlx gives only the raw stream, so the text encoding of a row is ours.

use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::postgres::{PgCopyIn, PgPoolCopyExt, Postgres};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, EntityTrait, IdenStatic, Iterable,
    ModelTrait, Statement, TransactionTrait, Value,
};
use std::fmt::Write as _;

/// Bytes buffered before a COPY send.
const COPY_BUFFER: usize = 1 << 20;
/// SQLite: bound values per INSERT (its limit is 32,766) and rows per transaction.
const SQLITE_VALUES: usize = 30_000;
const SQLITE_ROWS_PER_COMMIT: usize = 100_000;

/// Streams rows of one entity into its table. Call [`BulkWriter::finish`]: rows still buffered
/// are written then, and on PostgreSQL nothing is visible before it.
pub struct BulkWriter<E: EntityTrait> {
    columns: Vec<E::Column>,
    sink: Sink,
    written: u64,
}

enum Sink {
    Copy {
        copy: PgCopyIn<PoolConnection<Postgres>>,
        buffer: String,
    },
    Insert {
        db: DatabaseConnection,
        transaction: Option<DatabaseTransaction>,
        table: String,
        list: String,
        sql: String,
        rows_per_statement: usize,
        values: Vec<Value>,
        uncommitted: usize,
    },
}

impl<E: EntityTrait> BulkWriter<E> {
    pub async fn begin(db: &DatabaseConnection) -> Result<Self, DbErr> {
        let columns: Vec<E::Column> = E::Column::iter().collect();
        let list = columns
            .iter()
            .map(|c| format!("\"{}\"", c.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let table = E::default().table_name().to_owned();
        let sink = match db.get_database_backend() {
            DbBackend::Postgres => {
                let statement = format!("COPY \"{table}\" ({list}) FROM STDIN");
                let copy = db
                    .get_postgres_connection_pool()
                    .copy_in_raw(&statement)
                    .await
                    .map_err(|e| DbErr::Custom(format!("COPY into {table}: {e}")))?;
                Sink::Copy {
                    copy,
                    buffer: String::with_capacity(COPY_BUFFER + 4096),
                }
            }
            _ => {
                let rows_per_statement = SQLITE_VALUES / columns.len();
                Sink::Insert {
                    db: db.clone(),
                    transaction: None,
                    sql: insert_sql(&table, &list, columns.len(), rows_per_statement),
                    table,
                    list,
                    rows_per_statement,
                    values: Vec::with_capacity(SQLITE_VALUES),
                    uncommitted: 0,
                }
            }
        };
        Ok(Self {
            columns,
            sink,
            written: 0,
        })
    }

    pub async fn push(&mut self, row: &E::Model) -> Result<(), DbErr>
    where
        E::Model: ModelTrait<Entity = E>,
    {
        self.written += 1;
        match &mut self.sink {
            Sink::Copy { copy, buffer } => {
                for (i, column) in self.columns.iter().enumerate() {
                    if i > 0 {
                        buffer.push('\t');
                    }
                    push_copy_text(buffer, row.get(*column))?;
                }
                buffer.push('\n');
                if buffer.len() >= COPY_BUFFER {
                    copy.send(buffer.as_bytes()).await.map_err(copy_error)?;
                    buffer.clear();
                }
            }
            Sink::Insert {
                db,
                transaction,
                sql,
                rows_per_statement,
                values,
                uncommitted,
                ..
            } => {
                values.extend(self.columns.iter().map(|c| row.get(*c)));
                if values.len() == *rows_per_statement * self.columns.len() {
                    let tx = match transaction {
                        Some(tx) => tx,
                        None => transaction.insert(db.begin().await?),
                    };
                    let statement = Statement::from_sql_and_values(DbBackend::Sqlite, sql.as_str(), values.drain(..));
                    tx.execute_raw(statement).await?;
                    *uncommitted += *rows_per_statement;
                    if *uncommitted >= SQLITE_ROWS_PER_COMMIT
                        && let Some(tx) = transaction.take()
                    {
                        tx.commit().await?;
                        *uncommitted = 0;
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes what is buffered and ends the load. Returns the number of rows written.
    pub async fn finish(self) -> Result<u64, DbErr> {
        match self.sink {
            Sink::Copy { mut copy, buffer } => {
                if !buffer.is_empty() {
                    copy.send(buffer.as_bytes()).await.map_err(copy_error)?;
                }
                copy.finish().await.map_err(copy_error)?;
            }
            Sink::Insert {
                db,
                transaction,
                table,
                list,
                values,
                ..
            } => {
                let tx = match transaction {
                    Some(tx) => tx,
                    None => db.begin().await?,
                };
                if !values.is_empty() {
                    let sql = insert_sql(&table, &list, self.columns.len(), values.len() / self.columns.len());
                    tx.execute_raw(Statement::from_sql_and_values(DbBackend::Sqlite, sql, values))
                        .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(self.written)
    }
}

fn insert_sql(table: &str, list: &str, columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    format!(
        "INSERT INTO \"{table}\" ({list}) VALUES {}",
        vec![row.as_str(); rows].join(", ")
    )
}

fn copy_error(error: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Custom(format!("COPY: {error}"))
}

/// One value in COPY's text format: `\N` for NULL, backslash escapes for the separators.
fn push_copy_text(out: &mut String, value: Value) -> Result<(), DbErr> {
    match value {
        Value::Bool(Some(b)) => out.push(if b { 't' } else { 'f' }),
        Value::SmallInt(Some(v)) => write!(out, "{v}").unwrap_or(()),
        Value::Int(Some(v)) => write!(out, "{v}").unwrap_or(()),
        Value::BigInt(Some(v)) => write!(out, "{v}").unwrap_or(()),
        Value::Double(Some(v)) => write!(out, "{v}").unwrap_or(()),
        Value::Uuid(Some(v)) => write!(out, "{v}").unwrap_or(()),
        Value::ChronoDateTimeUtc(Some(v)) => write!(out, "{}", v.format("%Y-%m-%d %H:%M:%S%.6f+00")).unwrap_or(()),
        Value::String(Some(v)) => escape_copy_text(out, &v),
        Value::Json(Some(v)) => escape_copy_text(out, &v.to_string()),
        Value::Bool(None)
        | Value::SmallInt(None)
        | Value::Int(None)
        | Value::BigInt(None)
        | Value::Double(None)
        | Value::Uuid(None)
        | Value::ChronoDateTimeUtc(None)
        | Value::String(None)
        | Value::Json(None) => out.push_str("\\N"),
        other => return Err(DbErr::Custom(format!("bulk load cannot encode {other:?}"))),
    }
    Ok(())
}

fn escape_copy_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_separators_and_encodes_nulls() {
        let mut out = String::new();
        push_copy_text(&mut out, Value::String(Some("a\tb\\c\nd".into()))).unwrap();
        out.push('|');
        push_copy_text(&mut out, Value::String(None)).unwrap();
        out.push('|');
        push_copy_text(&mut out, Value::Json(Some(Box::new(serde_json::json!({"k": "x\ty"}))))).unwrap();
        out.push('|');
        push_copy_text(&mut out, Value::Bool(Some(false))).unwrap();
        assert_eq!(out, "a\\tb\\\\c\\nd|\\N|{\"k\":\"x\\\\ty\"}|f");
        assert!(push_copy_text(&mut out, Value::Bytes(Some(vec![1]))).is_err());
    }
}
