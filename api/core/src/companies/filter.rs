//! `CompanyFilter` (also used as the to-one `company` condition of `ContactFilter`) and
//! `IdFilter`.

use crate::custom_fields::{CustomFieldFilter, Definitions, FieldSql};
use crate::error::ApiResult;
use crate::ids::{NodeKind, decode_as};
use crate::listing::filters::{DateTimeFilter, StringFilter, check_depth, check_list};

use entities::company;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, DbBackend};

use entities::enums::CompanySize;

/// Conditions on a reference to a record. Ids of another type or workspace match nothing.
#[derive(serde::Serialize, serde::Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct IdFilter {
    /// Equal to.
    pub eq: Option<String>,
    /// One of (at most 1,000 ids).
    #[serde(rename = "in")]
    #[serde(default, deserialize_with = "voxtur_store::json::one_or_many")]
    pub in_list: Option<Vec<String>>,
    /// `true`: no reference; `false`: has one.
    pub is_null: Option<bool>,
}

fn nothing() -> Expr {
    Expr::cust("1 = 0")
}

impl IdFilter {
    pub fn condition(&self, field: &str, expr: Expr, kind: NodeKind) -> ApiResult<Condition> {
        let mut all = Condition::all();
        if let Some(id) = &self.eq {
            all = all.add(match decode_as(id, kind) {
                Some(uuid) => expr.clone().eq(uuid),
                None => nothing(),
            });
        }
        if let Some(ids) = &self.in_list {
            check_list(field, ids)?;
            let uuids: Vec<_> = ids.iter().filter_map(|id| decode_as(id, kind)).collect();
            all = all.add(if uuids.is_empty() {
                nothing()
            } else {
                expr.clone().is_in(uuids)
            });
        }
        if let Some(is_null) = self.is_null {
            all = all.add(if is_null { expr.is_null() } else { expr.is_not_null() });
        }
        Ok(all)
    }
}

/// Conditions on companies. All given fields must hold; combine with `and`, `or`, `not`.
#[derive(serde::Serialize, serde::Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct CompanyFilter {
    /// All of these filters hold.
    #[serde(default, deserialize_with = "voxtur_store::json::one_or_many")]
    pub and: Option<Vec<CompanyFilter>>,
    /// At least one of these filters holds.
    #[serde(default, deserialize_with = "voxtur_store::json::one_or_many")]
    pub or: Option<Vec<CompanyFilter>>,
    /// This filter does not hold.
    pub not: Option<Box<CompanyFilter>>,
    /// The company's id.
    pub id: Option<IdFilter>,
    /// Name.
    pub name: Option<StringFilter>,
    /// Web domain (stored lower-cased).
    pub domain: Option<StringFilter>,
    /// Industry.
    pub industry: Option<StringFilter>,
    /// Size band is one of these.
    #[serde(default, with = "crate::names::option_list")]
    pub size: Option<Vec<CompanySize>>,
    /// The owning user's id.
    pub owner_id: Option<IdFilter>,
    /// When the company was created.
    pub created_at: Option<DateTimeFilter>,
    /// When the company last changed.
    pub updated_at: Option<DateTimeFilter>,
    /// Custom field conditions; every entry must hold.
    #[serde(default, deserialize_with = "voxtur_store::json::one_or_many")]
    pub custom_fields: Option<Vec<CustomFieldFilter>>,
}

impl CompanyFilter {
    pub fn uses_custom_fields(&self) -> bool {
        self.custom_fields.is_some()
            || self.and.iter().flatten().any(|f| f.uses_custom_fields())
            || self.or.iter().flatten().any(|f| f.uses_custom_fields())
            || self.not.as_ref().is_some_and(|f| f.uses_custom_fields())
    }

    pub fn condition(&self, fields: &Definitions, backend: DbBackend) -> ApiResult<Condition> {
        self.compile(fields, backend, 0)
    }

    fn compile(&self, fields: &Definitions, backend: DbBackend, depth: usize) -> ApiResult<Condition> {
        check_depth(depth)?;
        let mut all = Condition::all();
        if let Some(filters) = &self.and {
            check_list("and", filters)?;
            for f in filters {
                all = all.add(f.compile(fields, backend, depth + 1)?);
            }
        }
        if let Some(filters) = &self.or {
            check_list("or", filters)?;
            let mut any = Condition::any();
            for f in filters {
                any = any.add(f.compile(fields, backend, depth + 1)?);
            }
            all = all.add(any);
        }
        if let Some(f) = &self.not {
            all = all.add(f.compile(fields, backend, depth + 1)?.not());
        }
        if let Some(f) = &self.id {
            all = all.add(f.condition("id", company::Column::Id.into_expr(), NodeKind::Company)?);
        }
        if let Some(f) = &self.name {
            all = all.add(f.condition("name", company::Column::Name.into_expr())?);
        }
        if let Some(f) = &self.domain {
            all = all.add(f.condition_with("domain", company::Column::Domain.into_expr(), |d| {
                d.trim().to_lowercase()
            })?);
        }
        if let Some(f) = &self.industry {
            all = all.add(f.condition("industry", company::Column::Industry.into_expr())?);
        }
        if let Some(sizes) = &self.size {
            all = all.add(company::Column::Size.is_in(sizes.iter().copied()));
        }
        if let Some(f) = &self.owner_id {
            all = all.add(f.condition("ownerId", company::Column::OwnerId.into_expr(), NodeKind::User)?);
        }
        if let Some(f) = &self.created_at {
            all = all.add(f.condition(company::Column::CreatedAt.into_expr()));
        }
        if let Some(f) = &self.updated_at {
            all = all.add(f.condition(company::Column::UpdatedAt.into_expr()));
        }
        if let Some(filters) = &self.custom_fields {
            check_list("customFields", filters)?;
            let sql = FieldSql::custom_fields(backend, "company");
            for f in filters {
                all = all.add(f.condition(fields, sql)?);
            }
        }
        Ok(all)
    }
}
