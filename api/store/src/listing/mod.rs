//! Keyset pagination over any entity: a sort specification, opaque cursors that encode the sort
//! values plus the id, and one SQL statement per page (plus one COUNT when `totalCount` is asked, or the count
//! in the page's statement when the filter is costly to evaluate).
//! Never OFFSET: page 10,000 costs what page 1 costs.

pub mod filters;

use crate::error::{ApiError, ApiResult};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{
    Alias, CommonTableExpression, Expr, ExprTrait, NullOrdering, Order, Query, Value, WithClause,
};
use sea_orm::{
    Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QueryResult, QuerySelect,
    QueryTrait, Select,
};
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::sync::Arc;
use uuid::Uuid;

pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const MAX_PAGE_SIZE: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

impl Direction {
    fn reversed(self) -> Direction {
        match self {
            Direction::Asc => Direction::Desc,
            Direction::Desc => Direction::Asc,
        }
    }

    fn order(self) -> Order {
        match self {
            Direction::Asc => Order::Asc,
            Direction::Desc => Order::Desc,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Direction::Asc => "asc",
            Direction::Desc => "desc",
        }
    }
}

/// How a sort value travels through a cursor and back into a bound SQL parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Timestamp,
    Text,
    Number,
    Boolean,
    /// A PostgreSQL `jsonb` value (custom fields), bound as jsonb so comparisons stay typed.
    Json,
}

impl ValueKind {
    fn to_sql(self, value: &serde_json::Value) -> Option<Value> {
        use serde_json::Value as J;
        match (self, value) {
            (ValueKind::Timestamp, J::String(text)) => DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| Value::from(t.with_timezone(&Utc))),
            (ValueKind::Text, J::String(text)) => Some(Value::from(text.clone())),
            (ValueKind::Number, J::Number(n)) => n.as_f64().map(Value::from),
            (ValueKind::Boolean, J::Bool(b)) => Some(Value::from(*b)),
            (ValueKind::Json, other) => Some(Value::from(other.clone())),
            _ => None,
        }
    }
}

pub type Extract<M> = Arc<dyn Fn(&M) -> serde_json::Value + Send + Sync>;

/// One key of an `ORDER BY`: the SQL expression, its direction, and how to read the key's value
/// back from a loaded row to build the cursor.
pub struct SortKey<M> {
    pub name: String,
    pub expr: Expr,
    pub direction: Direction,
    pub kind: ValueKind,
    pub nullable: bool,
    pub extract: Extract<M>,
}

/// A complete ordering: the keys, then `id` as the final tie-breaker in the last key's direction.
pub struct SortSpec<M> {
    /// Names the list the cursors belong to, so a cursor from another list is refused.
    pub list: &'static str,
    pub keys: Vec<SortKey<M>>,
    pub id_expr: Expr,
    pub id_of: fn(&M) -> Uuid,
}

impl<M> SortSpec<M> {
    fn fingerprint(&self) -> String {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|k| format!("{}:{}", k.name, k.direction.suffix()))
            .collect();
        format!("{}|{}", self.list, keys.join(","))
    }

    fn id_direction(&self) -> Direction {
        self.keys.last().map_or(Direction::Asc, |k| k.direction)
    }
}

#[derive(Serialize, Deserialize)]
struct CursorData {
    /// The ordering fingerprint.
    o: String,
    /// The sort key values of the row.
    v: Vec<serde_json::Value>,
    /// The row id.
    i: Uuid,
}

/// A validated page request: `first`/`after` pages forward, `last`/`before` backward.
#[derive(Debug, Clone, Default)]
pub struct PageArgs {
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

impl PageArgs {
    /// Forward paging only (`first` / `after`), for lists that do not page backward.
    pub fn forward(first: Option<i32>, after: Option<String>) -> PageArgs {
        PageArgs {
            first,
            after,
            ..Default::default()
        }
    }

    /// Checks the arguments without running anything.
    pub fn validate(&self) -> ApiResult<()> {
        self.size().map(|_| ())
    }

    fn size(&self) -> ApiResult<(usize, bool)> {
        let check = |name: &str, n: i32| {
            if (1..=MAX_PAGE_SIZE as i32).contains(&n) {
                Ok(n as usize)
            } else {
                Err(ApiError::bad_input(format!(
                    "`{name}` must be between 1 and {MAX_PAGE_SIZE} (got {n}); use a bulk export for larger reads"
                )))
            }
        };
        if self.first.is_some() && self.last.is_some() {
            return Err(ApiError::bad_input("pass either `first` or `last`, not both"));
        }
        if self.after.is_some() && self.last.is_some() {
            return Err(ApiError::bad_input(
                "`after` pages forward: use it with `first`, not `last`",
            ));
        }
        if self.before.is_some() && self.last.is_none() {
            return Err(ApiError::bad_input(
                "`before` pages backward: use it with `last`, not `first`",
            ));
        }
        match (self.first, self.last) {
            (_, Some(last)) => Ok((check("last", last)?, true)),
            (Some(first), None) => Ok((check("first", first)?, false)),
            (None, None) => Ok((DEFAULT_PAGE_SIZE, false)),
        }
    }
}

/// Whether and how a page counts the whole list (`totalCount`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    /// Not asked for.
    Skip,
    /// A `COUNT` beside the page: for filters an index answers.
    Count,
    /// In the page's own statement (`COUNT(*) OVER ()`), so a filter whose evaluation is the
    /// cost (grouping events by contact, say) is evaluated once, not once per statement.
    InPage,
    /// The count alone: the query asks for no rows and no page info.
    Alone,
}

/// The column carrying the list's total in a page's own statement ([`Total::InPage`]).
const TOTAL_COLUMN: &str = "voxtur_total_count";

/// How a page reads its rows: `project` takes the page's statement last (it may choose its
/// columns and join tables) and `decode` reads each row. A row's cursor is written only when
/// asked for: `every_cursor` when the query asks for the edges' cursors, else only the first
/// and last rows' (`pageInfo`); the others are left empty, since nothing reads them.
pub struct Projected<P, D> {
    pub project: P,
    pub decode: D,
    pub every_cursor: bool,
}

pub struct Page<M> {
    pub rows: Vec<(String, M)>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub total_count: Option<u64>,
}

impl<M> SortSpec<M> {
    /// A page's rows with their cursors: every row's when `every` (the query asks for the
    /// edges' cursors), else only the first's and the last's (`pageInfo`), the rest empty.
    pub fn with_cursors<R: std::borrow::Borrow<M>>(&self, rows: Vec<R>, every: bool) -> Vec<(String, R)> {
        let last = rows.len().saturating_sub(1);
        rows.into_iter()
            .enumerate()
            .map(|(i, row)| {
                let asked = every || i == 0 || i == last;
                let cursor = if asked {
                    self.cursor(row.borrow())
                } else {
                    String::new()
                };
                (cursor, row)
            })
            .collect()
    }

    fn cursor(&self, row: &M) -> String {
        let data = CursorData {
            o: self.fingerprint(),
            v: self.keys.iter().map(|k| (k.extract)(row)).collect(),
            i: (self.id_of)(row),
        };
        // Serializing a struct of strings and JSON values cannot fail.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&data).unwrap_or_default())
    }

    fn decode(&self, cursor: &str) -> ApiResult<(Vec<Option<Value>>, Uuid)> {
        let invalid = || ApiError::bad_input("invalid cursor: pass a cursor exactly as this list returned it");
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
        let data: CursorData = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if data.o != self.fingerprint() {
            return Err(ApiError::bad_input(
                "this cursor belongs to another list or ordering; cursors only work with the query that produced them",
            ));
        }
        if data.v.len() != self.keys.len() {
            return Err(invalid());
        }
        let mut values = Vec::with_capacity(self.keys.len());
        for (key, value) in self.keys.iter().zip(&data.v) {
            if value.is_null() {
                if !key.nullable {
                    return Err(invalid());
                }
                values.push(None);
            } else {
                values.push(Some(key.kind.to_sql(value).ok_or_else(invalid)?));
            }
        }
        Ok((values, data.i))
    }

    /// Rows strictly after the cursor position in the effective ordering:
    /// `k1 > v1 OR (k1 = v1 AND k2 > v2) OR ... OR (all equal AND id > cursor_id)`,
    /// with NULLs placed last going forward (first going backward).
    fn after(&self, values: &[Option<Value>], id: Uuid, backward: bool) -> Condition {
        let effective = |d: Direction| if backward { d.reversed() } else { d };
        let nulls_first = backward;
        let mut any = Condition::any();
        let mut prefix = Condition::all();
        for (key, value) in self.keys.iter().zip(values) {
            let expr = key.expr.clone();
            let strictly_after = match value {
                None if nulls_first => Some(Condition::all().add(expr.clone().is_not_null())),
                None => None,
                Some(v) => {
                    let cmp = match effective(key.direction) {
                        Direction::Asc => expr.clone().gt(v.clone()),
                        Direction::Desc => expr.clone().lt(v.clone()),
                    };
                    if key.nullable && !nulls_first {
                        Some(Condition::any().add(cmp).add(expr.clone().is_null()))
                    } else {
                        Some(Condition::all().add(cmp))
                    }
                }
            };
            if let Some(strictly_after) = strictly_after {
                any = any.add(prefix.clone().add(strictly_after));
            }
            prefix = prefix.add(match value {
                None => expr.is_null(),
                Some(v) => expr.eq(v.clone()),
            });
        }
        let id_cmp = match effective(self.id_direction()) {
            Direction::Asc => self.id_expr.clone().gt(id),
            Direction::Desc => self.id_expr.clone().lt(id),
        };
        let mut condition = Condition::all().add(any.add(prefix.add(id_cmp)));
        // A redundant bound on the first key lets the database seek its index to the cursor
        // instead of scanning from the start of the list and filtering.
        if let (Some(key), Some(Some(v))) = (self.keys.first(), values.first())
            && !key.nullable
        {
            condition = condition.add(match effective(key.direction) {
                Direction::Asc => key.expr.clone().gte(v.clone()),
                Direction::Desc => key.expr.clone().lte(v.clone()),
            });
        }
        condition
    }

    /// The `ORDER BY` of a page: each key's expression (`expr(i)` for the i-th key, `id` for the
    /// tie-breaker), its order, and its NULL placement. Only nullable keys name one: on a NOT NULL
    /// column an explicit NULLS clause can stop PostgreSQL from using the index order.
    fn ordering(
        &self,
        backward: bool,
        expr: impl Fn(usize, &SortKey<M>) -> Expr,
        id: Expr,
    ) -> Vec<(Expr, Order, Option<NullOrdering>)> {
        let effective = |d: Direction| if backward { d.reversed() } else { d };
        let nulls = if backward {
            NullOrdering::First
        } else {
            NullOrdering::Last
        };
        self.keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                (
                    expr(i, key),
                    effective(key.direction).order(),
                    key.nullable.then_some(nulls),
                )
            })
            .chain([(id, effective(self.id_direction()).order(), None)])
            .collect()
    }

    fn order<E: EntityTrait>(&self, mut select: Select<E>, backward: bool) -> Select<E> {
        for (expr, order, nulls) in self.ordering(backward, |_, key| key.expr.clone(), self.id_expr.clone()) {
            select = match nulls {
                Some(nulls) => select.order_by_with_nulls(expr, order, nulls),
                None => select.order_by(expr, order),
            };
        }
        select
    }

    /// Fetches one page of `select` (already filtered and scoped to a workspace).
    pub async fn fetch<E, C>(&self, db: &C, select: Select<E>, args: &PageArgs, with_total: bool) -> ApiResult<Page<M>>
    where
        E: EntityTrait<Model = M>,
        M: sea_orm::FromQueryResult + Send + Sync,
        C: ConnectionTrait,
    {
        let total = if with_total { Total::Count } else { Total::Skip };
        self.fetch_with(db, select, args, total).await
    }

    /// [`fetch`](Self::fetch), choosing how the total is counted.
    pub async fn fetch_with<E, C>(&self, db: &C, select: Select<E>, args: &PageArgs, total: Total) -> ApiResult<Page<M>>
    where
        E: EntityTrait<Model = M>,
        M: sea_orm::FromQueryResult + Send + Sync,
        C: ConnectionTrait,
    {
        let decode = |row: &QueryResult| M::from_query_result(row, "");
        let whole = Projected {
            project: |select| select,
            decode,
            every_cursor: true,
        };
        self.fetch_projected(db, select, args, total, whole).await
    }

    /// [`fetch_with`](Self::fetch_with), with rows of type `R` read as `projected` says.
    pub async fn fetch_projected<E, C, R, P, D>(
        &self,
        db: &C,
        select: Select<E>,
        args: &PageArgs,
        total: Total,
        projected: Projected<P, D>,
    ) -> ApiResult<Page<R>>
    where
        E: EntityTrait<Model = M>,
        M: sea_orm::FromQueryResult + Send + Sync,
        R: Borrow<M> + Send + Sync,
        C: ConnectionTrait,
        P: Fn(Select<E>) -> Select<E>,
        D: Fn(&QueryResult) -> Result<R, sea_orm::DbErr>,
    {
        let (size, backward) = args.size()?;
        if total == Total::Alone {
            return Ok(Page {
                rows: Vec::new(),
                has_next_page: false,
                has_previous_page: false,
                total_count: Some(select.count(db).await?),
            });
        }
        let cursor = if backward { &args.before } else { &args.after };
        let position = cursor.as_deref().map(|c| self.decode(c)).transpose()?;
        let (total_count, rows) = if total == Total::InPage && position.is_none() {
            let (count, rows) = self
                .fetch_counted(db, select, size, backward, &projected.project)
                .await?;
            (Some(count), rows)
        } else {
            let count = select.clone().count(db);
            let mut query = select;
            if let Some((values, id)) = &position {
                query = query.filter(self.after(values, *id, backward));
            }
            let page = (projected.project)(self.order(query, backward)).into_query();
            let page = db.query_all_raw(limited(db, &page, size + 1));
            match total {
                Total::Skip => (None, page.await?),
                // (`Alone` returned above.)
                Total::Count | Total::InPage | Total::Alone => {
                    // Side by side, on two pooled connections (a transaction takes them in turn).
                    let (count, rows) = tokio::try_join!(count, page)?;
                    (Some(count), rows)
                }
            }
        };
        let mut rows = rows.iter().map(&projected.decode).collect::<Result<Vec<R>, _>>()?;
        let has_more = rows.len() > size;
        rows.truncate(size);
        if backward {
            rows.reverse();
        }
        let rows = self.with_cursors(rows, projected.every_cursor);
        let (has_next_page, has_previous_page) = if backward {
            (position.is_some(), has_more)
        } else {
            (has_more, position.is_some())
        };
        Ok(Page {
            rows,
            has_next_page,
            has_previous_page,
            total_count,
        })
    }

    /// The first page and the total in one statement: the filtered ids once, with their sort
    /// keys, in a materialized CTE that both the count and the page read. The page is the CTE's
    /// first `size + 1` in order, so only those rows are read again for their columns, not every
    /// match. (A `COUNT(*) OVER ()` beside `LIMIT` leads PostgreSQL to plan for stopping early,
    /// which a whole-list count never does.) Returns the total and up to `size + 1` rows in page
    /// order.
    async fn fetch_counted<E, C>(
        &self,
        db: &C,
        select: Select<E>,
        size: usize,
        backward: bool,
        project: impl Fn(Select<E>) -> Select<E>,
    ) -> ApiResult<(u64, Vec<QueryResult>)>
    where
        E: EntityTrait<Model = M>,
        C: ConnectionTrait,
    {
        let matching = Alias::new("matching");
        let key_name = |i: usize| format!("voxtur_key_{i}");
        let mut ids = select.select_only().column_as(self.id_expr.clone(), "id");
        for (i, key) in self.keys.iter().enumerate() {
            ids = ids.column_as(key.expr.clone(), key_name(i));
        }
        let mut first = Query::select();
        first.column(Alias::new("id")).from(matching.clone());
        let by_alias = |i: usize, _: &SortKey<M>| Expr::col(Alias::new(key_name(i)));
        for (expr, order, nulls) in self.ordering(backward, by_alias, Expr::col(Alias::new("id"))) {
            match nulls {
                Some(nulls) => first.order_by_expr_with_nulls(expr, order, nulls),
                None => first.order_by_expr(expr, order),
            };
        }
        first.limit(size as u64 + 1);
        let listed = E::find().filter(self.id_expr.clone().in_subquery(first));
        let page = project(self.order(listed, backward))
            .column_as(Expr::cust("(SELECT COUNT(*) FROM matching)"), TOTAL_COLUMN)
            .into_query()
            .with(
                WithClause::new()
                    .cte(
                        CommonTableExpression::new()
                            .query(ids.into_query())
                            .table_name(matching)
                            .materialized(true)
                            .to_owned(),
                    )
                    .to_owned(),
            );
        let rows = db.query_all_raw(limited(db, &page, size + 1)).await?;
        let total = match rows.first() {
            Some(row) => u64::try_from(row.try_get::<i64>("", TOTAL_COLUMN)?).unwrap_or(0),
            None => 0,
        };
        Ok((total, rows))
    }
}

/// A page's statement with its row limit written into the SQL, not bound. PostgreSQL costs a
/// generic plan with a bound `LIMIT $n` as if it returned a tenth of the table, so it planned
/// every page statement again on every call (0.26 ms of a contacts page, 0.57 ms with its
/// company and owner joined); with the number in the text it keeps one plan. The number is the
/// server's own, never the caller's text.
fn limited(db: &impl ConnectionTrait, query: &impl sea_orm::StatementBuilder, limit: usize) -> sea_orm::Statement {
    let mut statement = db.get_database_backend().build(query);
    statement.sql.push_str(&format!(" LIMIT {limit}"));
    statement
}

/// Helpers for declaring sort keys on plain columns.
pub fn key<M>(
    name: &str,
    expr: impl Into<Expr>,
    direction: Direction,
    kind: ValueKind,
    nullable: bool,
    extract: impl Fn(&M) -> serde_json::Value + Send + Sync + 'static,
) -> SortKey<M> {
    SortKey {
        name: name.to_owned(),
        expr: expr.into(),
        direction,
        kind,
        nullable,
        extract: Arc::new(extract),
    }
}

/// A sort key on a NOT NULL timestamp column.
pub fn timestamp_key<M: 'static>(
    name: &str,
    expr: Expr,
    direction: Direction,
    value: fn(&M) -> &DateTime<Utc>,
) -> SortKey<M> {
    key(name, expr, direction, ValueKind::Timestamp, false, move |m: &M| {
        timestamp_json(value(m))
    })
}

/// A sort key on a text column; `nullable` columns sort their NULLs last.
pub fn text_key<M: 'static>(
    name: &str,
    expr: Expr,
    direction: Direction,
    nullable: bool,
    value: fn(&M) -> Option<&str>,
) -> SortKey<M> {
    key(name, expr, direction, ValueKind::Text, nullable, move |m: &M| {
        value(m).map_or(serde_json::Value::Null, |t| serde_json::Value::String(t.to_owned()))
    })
}

pub fn timestamp_json(t: &DateTime<Utc>) -> serde_json::Value {
    serde_json::Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}
