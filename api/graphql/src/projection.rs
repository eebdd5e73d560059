//! Reading only the columns a query asks for.
//!
//! A page of 50 contacts asking for names and the company's name needs 8 of the contact's 35
//! columns and 2 of the company's 10. Reading whole rows (sea-orm formats each column's name and
//! looks it up by name, then decodes it) was over a third of the server's CPU for that page, and
//! PostgreSQL sent every column (docs/perf-history.md, issue 5). A type whose lists read only what they
//! need implements [`Projectable`] next to its resolvers: the columns each of its GraphQL fields
//! reads, and how to build its model from those alone, by position.

use async_graphql::SelectionField;
use sea_orm::sea_query::{Expr, IntoIden};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, IdenStatic, Iterable, QueryResult, QuerySelect, Select};
use uuid::Uuid;

/// An entity whose GraphQL type can be resolved from some of its columns.
pub trait Projectable: EntityTrait {
    /// The id, which every projection reads first (a left-joined row is absent when it is NULL).
    const ID: Self::Column;
    /// The workspace, which joins match on. Projections do not read it: every statement that
    /// projects is scoped to one workspace, which the projection carries instead.
    const WORKSPACE: Self::Column;

    /// The columns a GraphQL field of the type reads; `None` for a field not listed here, which
    /// makes the projection read every column (a new field is never resolved from a blank).
    fn columns_of(field: &str) -> Option<&'static [Self::Column]>;

    /// The model from the projected columns of `row` and the projection's workspace; the fields
    /// of other columns are blank.
    fn decode(row: &QueryResult, projection: &Projection<Self>) -> Result<Self::Model, DbErr>;
}

/// Columns of `E` a statement selects, in order, from position `offset` of its rows, all of
/// them of rows of `workspace`.
pub struct Projection<E: EntityTrait> {
    columns: Vec<E::Column>,
    offset: usize,
    workspace: Uuid,
}

impl<E: Projectable> Projection<E> {
    /// The columns read by `fields` (a selection set, fragments flattened) and `extra`, of
    /// rows of `workspace`.
    pub fn of<'a>(
        fields: impl IntoIterator<Item = SelectionField<'a>>,
        extra: &[E::Column],
        workspace: Uuid,
    ) -> Projection<E> {
        let mut projection = Projection::with(extra, workspace);
        for field in fields {
            match E::columns_of(field.name()) {
                Some(columns) => projection.add(columns),
                None => return Projection::all(workspace),
            }
        }
        projection
    }

    /// Every column.
    pub fn all(workspace: Uuid) -> Projection<E> {
        Projection::with(&E::Column::iter().collect::<Vec<_>>(), workspace)
    }

    /// The id, then `columns`.
    fn with(columns: &[E::Column], workspace: Uuid) -> Projection<E> {
        let mut projection = Projection {
            columns: Vec::new(),
            offset: 0,
            workspace,
        };
        projection.add(&[E::ID]);
        projection.add(columns);
        projection
    }

    /// The workspace of every row read.
    pub fn workspace(&self) -> Uuid {
        self.workspace
    }

    fn add(&mut self, columns: &[E::Column]) {
        for column in columns {
            if !self.columns.iter().any(|c| c.as_str() == column.as_str()) {
                self.columns.push(*column);
            }
        }
    }

    /// The projection placed after `offset` columns of the statement's select list.
    pub fn at(mut self, offset: usize) -> Projection<E> {
        self.offset = offset;
        self
    }

    /// Appends the columns, of `table` (a table name or an alias), to `select`'s list, which
    /// must hold [`offset`](Self::at) columns before them.
    pub fn select<Q: EntityTrait>(&self, mut select: Select<Q>, table: impl IntoIden + Clone) -> Select<Q> {
        for column in &self.columns {
            select = select.expr(column.select_as(Expr::col((table.clone(), *column))));
        }
        select
    }

    /// The position after the projected columns.
    pub fn end(&self) -> usize {
        self.offset + self.columns.len()
    }

    /// The model of a row (see [`Projectable::decode`]).
    pub fn decode(&self, row: &QueryResult) -> Result<E::Model, DbErr> {
        E::decode(row, self)
    }

    /// The model of a left-joined row: `None` when the join found none (its id is NULL).
    pub fn decode_joined(&self, row: &QueryResult) -> Result<Option<E::Model>, DbErr> {
        let id: Option<uuid::Uuid> = cell(row, self.offset)?;
        id.map(|_| E::decode(row, self)).transpose()
    }

    /// Each projected column with its position in the row.
    pub fn positions(&self) -> impl Iterator<Item = (usize, E::Column)> + '_ {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, column)| (self.offset + i, *column))
    }
}

/// Column `index` of a projected row. On PostgreSQL it skips sqlx's check that the column's
/// type suits `T`: a projection's select list is written from the entity's own columns, so the
/// types are the schema's, and the check (comparing type descriptions cell by cell) was two
/// thirds of decoding a page, about 8% of the server's instructions for a list of 50 contacts
/// (docs/perf-history.md, issue 5, ninth session). A value that does not decode is still an error.
/// Enum columns go through sea-orm's `TryGetable`, which parses their text.
pub fn cell<T>(row: &QueryResult, index: usize) -> Result<T, DbErr>
where
    T: sea_orm::TryGetable + for<'r> sea_orm::sqlx::Decode<'r, sea_orm::sqlx::Postgres>,
{
    match row.try_as_pg_row() {
        Some(pg) => sea_orm::sqlx::Row::try_get_unchecked(pg, index).map_err(|e| DbErr::Type(e.to_string())),
        None => row.try_get_by_index(index),
    }
}

/// The selection sets of a connection's nodes, through `nodes` and through `edges { node }`.
pub fn connection_nodes<'a>(look_ahead: &async_graphql::Lookahead<'a>) -> Vec<SelectionField<'a>> {
    let mut nodes = look_ahead.field("nodes").selection_fields();
    nodes.extend(look_ahead.field("edges").field("node").selection_fields());
    nodes
}

/// The fields asked of a child object `name` of each of `parents` (e.g. each contact's
/// `company`); `None` when no parent asks for it.
pub fn child_fields<'a>(parents: &[SelectionField<'a>], name: &str) -> Option<Vec<SelectionField<'a>>> {
    let children: Vec<SelectionField<'a>> = parents
        .iter()
        .flat_map(|parent| parent.selection_set())
        .filter(|field| field.name() == name)
        .collect();
    if children.is_empty() {
        return None;
    }
    Some(children.iter().flat_map(|child| child.selection_set()).collect())
}

/// The fields of the parents' selection sets.
pub fn fields<'a>(parents: &[SelectionField<'a>]) -> Vec<SelectionField<'a>> {
    parents.iter().flat_map(|parent| parent.selection_set()).collect()
}
