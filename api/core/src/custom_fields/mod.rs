//! Custom fields: typed definitions per workspace and object, validation of values against
//! them, and the SQL expressions that filter and sort on them on each backend.
//!
//! Values live in the record's `custom_fields` JSON column. PostgreSQL compares `jsonb` values
//! (typed: numbers numerically, strings as text); SQLite compares what `json_extract` returns.

use crate::error::{ApiError, ApiResult};
use crate::errors::{MutationResult, UserError, UserErrorCode};
use crate::listing::filters::{Compare, MAX_LIST, escape_like};
use entities::custom_field;
use entities::enums::{CustomFieldType, ObjectType};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, Value};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, Set,
};
use serde_json::Value as Json;
use std::collections::HashMap;
use uuid::Uuid;

pub const MAX_DEFINITIONS_PER_OBJECT: usize = 500;
const MAX_OPTIONS: usize = 500;
const MAX_OPTION_LEN: usize = 100;
const MAX_TEXT_LEN: usize = 10_000;

/// The definitions of one object type in one workspace, by key.
#[derive(Debug, Default, Clone)]
pub struct Definitions(HashMap<String, custom_field::Model>);

impl Definitions {
    pub async fn load(db: &impl ConnectionTrait, workspace_id: Uuid, object: ObjectType) -> ApiResult<Definitions> {
        let rows = custom_field::Entity::find()
            .filter(custom_field::Column::WorkspaceId.eq(workspace_id))
            .filter(custom_field::Column::ObjectType.eq(object))
            .all(db)
            .await?;
        Ok(Definitions(rows.into_iter().map(|d| (d.key.clone(), d)).collect()))
    }

    pub fn get(&self, key: &str) -> Option<&custom_field::Model> {
        self.0.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &custom_field::Model> {
        self.0.values()
    }

    /// The definition for a key used in a filter or sort, or a clear error.
    pub fn require(&self, key: &str) -> ApiResult<&custom_field::Model> {
        self.get(key)
            .ok_or_else(|| ApiError::bad_input(format!("no custom field `{key}` is defined for this object")))
    }

    /// Merges `input` (a JSON object; `null` removes a value) into `existing`, validating every
    /// value. Errors carry the path `[.., "customFields", key]`.
    pub fn apply(&self, existing: &Json, input: &Json, path: &[&str]) -> Result<Json, Vec<UserError>> {
        let mut merged = existing.as_object().cloned().unwrap_or_default();
        let Some(input) = input.as_object() else {
            return Err(vec![UserError::new(
                path,
                UserErrorCode::WrongType,
                "customFields must be an object of field key to value",
            )]);
        };
        let mut errors = Vec::new();
        for (key, value) in input {
            let mut field_path = path.to_vec();
            field_path.push(key);
            let Some(definition) = self.get(key) else {
                errors.push(UserError::new(
                    &field_path,
                    UserErrorCode::UnknownField,
                    format!("no custom field `{key}` is defined; define it with customFieldDefine first"),
                ));
                continue;
            };
            if value.is_null() {
                merged.remove(key);
                continue;
            }
            match normalize_value(definition, value) {
                Ok(value) => {
                    merged.insert(key.clone(), value);
                }
                Err((code, message)) => errors.push(UserError::new(&field_path, code, message)),
            }
        }
        if errors.is_empty() {
            Ok(Json::Object(merged))
        } else {
            Err(errors)
        }
    }
}

fn options_of(definition: &custom_field::Model) -> Vec<String> {
    serde_json::from_value(definition.options.clone()).unwrap_or_default()
}

/// Checks a value against its definition and returns its stored form.
pub fn normalize_value(definition: &custom_field::Model, value: &Json) -> Result<Json, (UserErrorCode, String)> {
    let key = &definition.key;
    let wrong = |expected: &str| {
        (
            UserErrorCode::WrongType,
            format!("`{key}` expects {expected}, got {value}"),
        )
    };
    match definition.field_type {
        CustomFieldType::Text => {
            let text = value.as_str().ok_or_else(|| wrong("text"))?;
            if text.contains('\0') {
                return Err((UserErrorCode::Invalid, format!("`{key}` contains a NUL character")));
            }
            if text.chars().count() > MAX_TEXT_LEN {
                return Err((
                    UserErrorCode::TooLong,
                    format!("`{key}` is longer than {MAX_TEXT_LEN} characters"),
                ));
            }
            Ok(value.clone())
        }
        CustomFieldType::Number => match value.as_f64() {
            Some(n) if n.is_finite() => Ok(value.clone()),
            _ => Err(wrong("a number")),
        },
        CustomFieldType::Boolean => value.as_bool().map(Json::Bool).ok_or_else(|| wrong("true or false")),
        CustomFieldType::Date => {
            let text = value.as_str().ok_or_else(|| wrong("a date as YYYY-MM-DD"))?;
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| Json::String(d.format("%Y-%m-%d").to_string()))
                .map_err(|_| wrong("a date as YYYY-MM-DD"))
        }
        CustomFieldType::SingleSelect => {
            let choice = value.as_str().ok_or_else(|| wrong("one of its options as text"))?;
            check_option(definition, choice)?;
            Ok(value.clone())
        }
        CustomFieldType::MultiSelect => {
            let items = value.as_array().ok_or_else(|| wrong("a list of its options"))?;
            let mut chosen: Vec<String> = Vec::with_capacity(items.len());
            for item in items {
                let choice = item.as_str().ok_or_else(|| wrong("a list of its options"))?;
                check_option(definition, choice)?;
                if !chosen.iter().any(|c| c == choice) {
                    chosen.push(choice.to_owned());
                }
            }
            Ok(Json::from(chosen))
        }
    }
}

fn check_option(definition: &custom_field::Model, choice: &str) -> Result<(), (UserErrorCode, String)> {
    let options = options_of(definition);
    if options.iter().any(|o| o == choice) {
        Ok(())
    } else {
        Err((
            UserErrorCode::NotAnOption,
            format!(
                "`{choice}` is not an option of `{}` (options: {})",
                definition.key,
                options.join(", ")
            ),
        ))
    }
}

/// SQL expressions over one record table's `custom_fields` column.
#[derive(Clone, Copy)]
pub struct FieldSql {
    pub backend: DbBackend,
    pub table: &'static str,
    /// The JSON object column: `custom_fields`, or an event's `properties`.
    pub column: &'static str,
}

impl FieldSql {
    pub fn custom_fields(backend: DbBackend, table: &'static str) -> FieldSql {
        FieldSql {
            backend,
            table,
            column: "custom_fields",
        }
    }

    /// The value, typed: `jsonb` on PostgreSQL, the SQL value `json_extract` returns on SQLite.
    pub fn value(&self, key: &str) -> Expr {
        let (table, column) = (self.table, self.column);
        match self.backend {
            DbBackend::Postgres => Expr::cust_with_values(format!(r#"("{table}"."{column}" -> $1)"#), [key]),
            _ => Expr::cust_with_values(format!(r#"json_extract("{table}"."{column}", ?)"#), [json_path(key)]),
        }
    }

    /// The value as text, for pattern matching.
    fn text(&self, key: &str) -> Expr {
        let (table, column) = (self.table, self.column);
        match self.backend {
            DbBackend::Postgres => Expr::cust_with_values(format!(r#"("{table}"."{column}" ->> $1)"#), [key]),
            _ => self.value(key),
        }
    }

    /// A JSON value bound so it compares with [`value`](Self::value) on this backend.
    pub fn bind(&self, value: &Json) -> Value {
        match self.backend {
            DbBackend::Postgres => Value::from(value.clone()),
            _ => match value {
                Json::Bool(b) => Value::from(*b),
                Json::Number(n) => Value::from(n.as_f64().unwrap_or_default()),
                Json::String(s) => Value::from(s.clone()),
                other => Value::from(other.to_string()),
            },
        }
    }

    /// The multi-select field holds this option.
    fn has_option(&self, key: &str, option: &str) -> Expr {
        let (table, column) = (self.table, self.column);
        match self.backend {
            DbBackend::Postgres => Expr::cust_with_values(
                format!(r#"("{table}"."{column}" -> $1) @> $2"#),
                [Value::from(key), Value::from(Json::from(vec![option]))],
            ),
            _ => Expr::cust_with_values(
                format!(r#"EXISTS (SELECT 1 FROM json_each("{table}"."{column}", ?) WHERE value = ?)"#),
                [json_path(key), option.to_owned()],
            ),
        }
    }

    /// Any record of this workspace holds `option` in select field `key`.
    pub async fn option_in_use(
        &self,
        db: &impl ConnectionTrait,
        workspace_id: Uuid,
        definition: &custom_field::Model,
        option: &str,
    ) -> ApiResult<bool> {
        let condition = match definition.field_type {
            CustomFieldType::MultiSelect => self.has_option(&definition.key, option),
            _ => self.value(&definition.key).eq(self.bind(&Json::from(option))),
        };
        let table = self.table;
        let stmt = sea_orm::sea_query::Query::select()
            .expr(Expr::val(1))
            .from(table)
            .and_where(Expr::col((table, "workspace_id")).eq(workspace_id))
            .and_where(condition)
            .limit(1)
            .to_owned();
        let found = db.query_one(&stmt).await?;
        Ok(found.is_some())
    }
}

fn json_path(key: &str) -> String {
    // Keys are validated as `[a-z][a-z0-9_]*`, so they need no quoting in a JSON path.
    format!("$.{key}")
}

/// A condition on one custom field. Values are JSON typed by the field's definition.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct CustomFieldFilter {
    /// The custom field's key.
    pub key: String,
    /// Equal to.
    pub eq: Option<Json>,
    /// Not equal to (records without a value do not match).
    pub neq: Option<Json>,
    /// Greater than (numbers, dates, text).
    pub gt: Option<Json>,
    /// Greater than or equal to.
    pub gte: Option<Json>,
    /// Less than.
    pub lt: Option<Json>,
    /// Less than or equal to.
    pub lte: Option<Json>,
    /// Equal to one of (at most 1,000 values).
    #[serde(rename = "in")]
    #[serde(default, deserialize_with = "voxtur_store::json::one_or_many")]
    pub in_list: Option<Vec<Json>>,
    /// Text fields: contains this text, case-insensitive.
    pub contains: Option<String>,
    /// Multi-select fields: holds at least one of these options.
    #[serde(default, deserialize_with = "voxtur_store::json::one_or_many")]
    pub has_any: Option<Vec<String>>,
    /// Multi-select fields: holds all of these options.
    #[serde(default, deserialize_with = "voxtur_store::json::one_or_many")]
    pub has_all: Option<Vec<String>>,
    /// `true`: no value; `false`: has a value.
    pub is_null: Option<bool>,
}

impl CustomFieldFilter {
    pub fn condition(&self, definitions: &Definitions, sql: FieldSql) -> ApiResult<Condition> {
        let definition = definitions.require(&self.key)?;
        let key = &definition.key;
        let field_type = definition.field_type;
        let multi = field_type == CustomFieldType::MultiSelect;
        let typed = |op: &str, value: &Json| -> ApiResult<Value> {
            if multi {
                return Err(ApiError::bad_input(format!(
                    "`{op}` does not apply to multi-select field `{key}`; use hasAny or hasAll"
                )));
            }
            let value = normalize_value(definition, value)
                .map_err(|(_, message)| ApiError::bad_input(format!("customFields filter `{op}`: {message}")))?;
            Ok(sql.bind(&value))
        };
        let ordered = |op: &str| -> ApiResult<()> {
            match field_type {
                CustomFieldType::Boolean | CustomFieldType::MultiSelect => Err(ApiError::bad_input(format!(
                    "`{op}` does not apply to field `{key}` of type {field_type:?}"
                ))),
                _ => Ok(()),
            }
        };
        let expr = sql.value(key);
        let mut all = Condition::all();
        if let Some(v) = &self.eq {
            all = all.add(expr.clone().eq(typed("eq", v)?));
        }
        if let Some(v) = &self.neq {
            all = all.add(expr.clone().ne(typed("neq", v)?));
        }
        let comparisons: [(&str, &Option<Json>, Compare); 4] = [
            ("gt", &self.gt, |e, v| e.gt(v)),
            ("gte", &self.gte, |e, v| e.gte(v)),
            ("lt", &self.lt, |e, v| e.lt(v)),
            ("lte", &self.lte, |e, v| e.lte(v)),
        ];
        for (op, value, compare) in comparisons {
            if let Some(v) = value {
                ordered(op)?;
                all = all.add(compare(expr.clone(), typed(op, v)?));
            }
        }
        if let Some(list) = &self.in_list {
            crate::listing::filters::check_list("customFields.in", list)?;
            let values = list.iter().map(|v| typed("in", v)).collect::<ApiResult<Vec<_>>>()?;
            all = all.add(expr.clone().is_in(values));
        }
        if let Some(part) = &self.contains {
            if field_type != CustomFieldType::Text {
                return Err(ApiError::bad_input(format!(
                    "`contains` applies to text fields; `{key}` is {field_type:?}"
                )));
            }
            let pattern = format!("%{}%", escape_like(&part.to_lowercase()));
            all = all.add(Expr::from(Func::lower(sql.text(key))).like(LikeExpr::new(pattern).escape('\\')));
        }
        for (op, list, any) in [("hasAny", &self.has_any, true), ("hasAll", &self.has_all, false)] {
            let Some(list) = list else { continue };
            if !multi {
                return Err(ApiError::bad_input(format!(
                    "`{op}` applies to multi-select fields; `{key}` is {field_type:?}"
                )));
            }
            if list.len() > MAX_LIST {
                return Err(ApiError::bad_input(format!(
                    "`{op}` lists more than {MAX_LIST} options"
                )));
            }
            let mut group = if any { Condition::any() } else { Condition::all() };
            for option in list {
                check_option(definition, option).map_err(|(_, message)| ApiError::bad_input(message))?;
                group = group.add(sql.has_option(key, option));
            }
            all = all.add(group);
        }
        if let Some(is_null) = self.is_null {
            all = all.add(if is_null { expr.is_null() } else { expr.is_not_null() });
        }
        Ok(all)
    }
}

/// Creates a definition, or updates the label and options of an existing one.
pub async fn define(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    input: DefineInput,
    sql: FieldSql,
) -> MutationResult<custom_field::Model> {
    let mut errors = Vec::new();
    let key = input.key.trim().to_owned();
    let key_ok = key.len() <= 63
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !key_ok {
        errors.push(UserError::new(
            &["key"],
            UserErrorCode::Invalid,
            "key must start with a lower-case letter and use only a-z, 0-9 and _ (at most 63 characters)",
        ));
    }
    let label = input.label.trim().to_owned();
    if label.is_empty() || label.chars().count() > 200 {
        errors.push(UserError::new(
            &["label"],
            UserErrorCode::Invalid,
            "label must be 1 to 200 characters",
        ));
    }
    let is_select = matches!(
        input.field_type,
        CustomFieldType::SingleSelect | CustomFieldType::MultiSelect
    );
    let mut options: Vec<String> = Vec::new();
    for option in input.options.unwrap_or_default() {
        let option = option.trim().to_owned();
        if option.is_empty() || option.chars().count() > MAX_OPTION_LEN {
            errors.push(UserError::new(
                &["options"],
                UserErrorCode::Invalid,
                format!("each option must be 1 to {MAX_OPTION_LEN} characters"),
            ));
        } else if options.contains(&option) {
            errors.push(UserError::new(
                &["options"],
                UserErrorCode::Invalid,
                format!("option `{option}` is listed twice"),
            ));
        } else {
            options.push(option);
        }
    }
    if options.len() > MAX_OPTIONS {
        errors.push(UserError::new(
            &["options"],
            UserErrorCode::TooMany,
            format!("at most {MAX_OPTIONS} options"),
        ));
    }
    if is_select && options.is_empty() {
        errors.push(UserError::new(
            &["options"],
            UserErrorCode::Required,
            "select fields need at least one option",
        ));
    }
    if !is_select && !options.is_empty() {
        errors.push(UserError::new(
            &["options"],
            UserErrorCode::Invalid,
            "only select fields take options",
        ));
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }

    let existing = custom_field::Entity::find()
        .filter(custom_field::Column::WorkspaceId.eq(workspace_id))
        .filter(custom_field::Column::ObjectType.eq(input.object_type))
        .filter(custom_field::Column::Key.eq(key.clone()))
        .one(db)
        .await?;
    let now = crate::now();
    match existing {
        Some(existing) => {
            if existing.field_type != input.field_type {
                return Err(UserError::new(
                    &["type"],
                    UserErrorCode::Immutable,
                    format!(
                        "`{key}` is already a {:?} field; a field's type cannot change (define a new key instead)",
                        existing.field_type
                    ),
                )
                .into());
            }
            for removed in options_of(&existing).iter().filter(|o| !options.contains(o)) {
                if sql.option_in_use(db, workspace_id, &existing, removed).await? {
                    return Err(UserError::new(
                        &["options"],
                        UserErrorCode::Invalid,
                        format!("option `{removed}` is still used by some records; change them before removing it"),
                    )
                    .into());
                }
            }
            let mut active: custom_field::ActiveModel = existing.into();
            active.label = Set(label);
            active.options = Set(Json::from(options));
            active.updated_at = Set(now);
            Ok(active.update(db).await?)
        }
        None => {
            let count = custom_field::Entity::find()
                .filter(custom_field::Column::WorkspaceId.eq(workspace_id))
                .filter(custom_field::Column::ObjectType.eq(input.object_type))
                .count(db)
                .await?;
            if count >= MAX_DEFINITIONS_PER_OBJECT as u64 {
                return Err(UserError::new(
                    &["key"],
                    UserErrorCode::TooMany,
                    format!("at most {MAX_DEFINITIONS_PER_OBJECT} custom fields per object"),
                )
                .into());
            }
            let model = custom_field::ActiveModel {
                id: Set(Uuid::now_v7()),
                workspace_id: Set(workspace_id),
                object_type: Set(input.object_type),
                key: Set(key),
                label: Set(label),
                field_type: Set(input.field_type),
                options: Set(Json::from(options)),
                created_at: Set(now),
                updated_at: Set(now),
            };
            Ok(model.insert(db).await?)
        }
    }
}

pub struct DefineInput {
    pub object_type: ObjectType,
    pub key: String,
    pub label: String,
    pub field_type: CustomFieldType,
    pub options: Option<Vec<String>>,
}

/// Sort key over a custom field (missing values sort last).
pub fn sort_key<M: 'static>(
    definitions: &Definitions,
    sql: FieldSql,
    key: &str,
    direction: crate::listing::Direction,
    values_of: fn(&M) -> &Json,
) -> ApiResult<crate::listing::SortKey<M>> {
    let definition = definitions.require(key)?;
    if definition.field_type == CustomFieldType::MultiSelect {
        return Err(ApiError::bad_input(format!(
            "multi-select field `{key}` cannot be sorted on"
        )));
    }
    let kind = match (sql.backend, definition.field_type) {
        (DbBackend::Postgres, _) => crate::listing::ValueKind::Json,
        (_, CustomFieldType::Number) => crate::listing::ValueKind::Number,
        (_, CustomFieldType::Boolean) => crate::listing::ValueKind::Boolean,
        _ => crate::listing::ValueKind::Text,
    };
    let owned_key = key.to_owned();
    Ok(crate::listing::key(
        &format!("customField.{key}"),
        sql.value(key),
        direction,
        kind,
        true,
        move |row: &M| values_of(row).get(&owned_key).cloned().unwrap_or(Json::Null),
    ))
}
