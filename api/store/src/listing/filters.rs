//! Filter inputs for scalar fields (the Twenty / Hasura shape) and their compilation to SQL
//! conditions with bound parameters. Every operator given must hold (they are ANDed).

use crate::error::{ApiError, ApiResult};
use chrono::{DateTime, Utc};
use sea_orm::Condition;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, Value};

/// A binary comparison, e.g. `|e, v| e.gt(v)`.
pub type Compare = fn(Expr, Value) -> Expr;

/// Largest `in` / `notIn` list a filter accepts.
pub const MAX_LIST: usize = 1_000;
/// Deepest nesting of `and` / `or` / `not` a filter accepts.
pub const MAX_FILTER_DEPTH: usize = 8;

pub fn check_list<T>(field: &str, values: &[T]) -> ApiResult<()> {
    if values.len() > MAX_LIST {
        return Err(ApiError::bad_input(format!(
            "filter `{field}` lists {} values; at most {MAX_LIST} are allowed",
            values.len()
        )));
    }
    Ok(())
}

pub fn check_depth(depth: usize) -> ApiResult<()> {
    if depth > MAX_FILTER_DEPTH {
        return Err(ApiError::bad_input(format!(
            "filter is nested more than {MAX_FILTER_DEPTH} levels deep"
        )));
    }
    Ok(())
}

/// Escapes LIKE wildcards so user text matches literally (used with `ESCAPE '\'`).
pub fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn values<T: Clone + Into<Value>>(list: &[T]) -> Vec<Value> {
    list.iter().cloned().map(Into::into).collect()
}

/// Conditions on a text field.
#[derive(serde::Serialize, serde::Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct StringFilter {
    /// Equal to.
    pub eq: Option<String>,
    /// Not equal to (rows where the field is null do not match).
    pub neq: Option<String>,
    /// Equal to one of (at most 1,000 values).
    #[serde(rename = "in")]
    #[serde(default, deserialize_with = "crate::json::one_or_many")]
    pub in_list: Option<Vec<String>>,
    /// Equal to none of (at most 1,000 values).
    #[serde(default, deserialize_with = "crate::json::one_or_many")]
    pub not_in: Option<Vec<String>>,
    /// SQL LIKE pattern, case-sensitive: `%` any run of characters, `_` one character (at most
    /// 1,000 characters, as for every pattern).
    pub like: Option<String>,
    /// SQL LIKE pattern, case-insensitive.
    pub ilike: Option<String>,
    /// Starts with this text, case-insensitive (wildcards match literally).
    pub starts_with: Option<String>,
    /// Contains this text, case-insensitive (wildcards match literally).
    pub contains: Option<String>,
    /// `true`: the field is empty; `false`: it has a value.
    pub is_null: Option<bool>,
}

/// The longest text a pattern filter takes: matching costs the pattern's length at every row
/// (and SQLite refuses patterns past 50,000 bytes).
pub const MAX_PATTERN_LEN: usize = 1_000;

impl StringFilter {
    pub fn condition(&self, field: &str, expr: Expr) -> ApiResult<Condition> {
        self.condition_with(field, expr, |s| s.to_owned())
    }

    /// As [`condition`](Self::condition), normalising compared values first (e.g. lower-cased
    /// email addresses, which are stored lower-cased).
    pub fn condition_with(&self, field: &str, expr: Expr, normalize: impl Fn(&str) -> String) -> ApiResult<Condition> {
        for (operator, pattern) in [
            ("like", &self.like),
            ("ilike", &self.ilike),
            ("startsWith", &self.starts_with),
            ("contains", &self.contains),
        ] {
            if pattern.as_ref().is_some_and(|p| p.chars().count() > MAX_PATTERN_LEN) {
                return Err(ApiError::bad_input(format!(
                    "`{field}.{operator}` is longer than {MAX_PATTERN_LEN} characters"
                )));
            }
        }
        let mut all = Condition::all();
        if let Some(v) = &self.eq {
            all = all.add(expr.clone().eq(normalize(v)));
        }
        if let Some(v) = &self.neq {
            all = all.add(expr.clone().ne(normalize(v)));
        }
        if let Some(list) = &self.in_list {
            check_list(field, list)?;
            let list: Vec<String> = list.iter().map(|v| normalize(v)).collect();
            all = all.add(expr.clone().is_in(values(&list)));
        }
        if let Some(list) = &self.not_in {
            check_list(field, list)?;
            let list: Vec<String> = list.iter().map(|v| normalize(v)).collect();
            all = all.add(expr.clone().is_not_in(values(&list)));
        }
        if let Some(pattern) = &self.like {
            all = all.add(expr.clone().like(LikeExpr::new(pattern.clone()).escape('\\')));
        }
        let lower = |e: Expr| Expr::from(Func::lower(e));
        if let Some(pattern) = &self.ilike {
            all = all.add(lower(expr.clone()).like(LikeExpr::new(pattern.to_lowercase()).escape('\\')));
        }
        if let Some(prefix) = &self.starts_with {
            let pattern = format!("{}%", escape_like(&prefix.to_lowercase()));
            all = all.add(lower(expr.clone()).like(LikeExpr::new(pattern).escape('\\')));
        }
        if let Some(part) = &self.contains {
            let pattern = format!("%{}%", escape_like(&part.to_lowercase()));
            all = all.add(lower(expr.clone()).like(LikeExpr::new(pattern).escape('\\')));
        }
        if let Some(is_null) = self.is_null {
            all = all.add(if is_null { expr.is_null() } else { expr.is_not_null() });
        }
        Ok(all)
    }
}

/// Conditions on a point in time.
#[derive(serde::Serialize, serde::Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct DateTimeFilter {
    /// Equal to.
    pub eq: Option<DateTime<Utc>>,
    /// Strictly after.
    pub gt: Option<DateTime<Utc>>,
    /// At or after.
    pub gte: Option<DateTime<Utc>>,
    /// Strictly before.
    pub lt: Option<DateTime<Utc>>,
    /// At or before.
    pub lte: Option<DateTime<Utc>>,
    /// `true`: the field is empty; `false`: it has a value.
    pub is_null: Option<bool>,
}

impl DateTimeFilter {
    pub fn condition(&self, expr: Expr) -> Condition {
        let mut all = Condition::all();
        let ops: [(Option<DateTime<Utc>>, Compare); 5] = [
            (self.eq, |e, v| e.eq(v)),
            (self.gt, |e, v| e.gt(v)),
            (self.gte, |e, v| e.gte(v)),
            (self.lt, |e, v| e.lt(v)),
            (self.lte, |e, v| e.lte(v)),
        ];
        for (value, op) in ops {
            if let Some(value) = value {
                all = all.add(op(expr.clone(), Value::from(value)));
            }
        }
        if let Some(is_null) = self.is_null {
            all = all.add(if is_null { expr.is_null() } else { expr.is_not_null() });
        }
        all
    }
}

/// Conditions on a true/false field.
#[derive(serde::Serialize, serde::Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct BooleanFilter {
    /// Equal to.
    pub eq: Option<bool>,
}

impl BooleanFilter {
    pub fn condition(&self, expr: Expr) -> Condition {
        let mut all = Condition::all();
        if let Some(v) = self.eq {
            all = all.add(expr.eq(v));
        }
        all
    }
}
