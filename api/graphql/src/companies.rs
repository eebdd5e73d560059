//! The GraphQL face of companies.

use crate::contacts::{ContactConnection, ContactOrderBy, sort_spec};
use crate::convert::IntoDomain;
use crate::custom_fields::CustomFieldOrder;
use crate::filters::CompanyFilter;
use crate::guards::ScopeGuard;
use crate::loaders::{CompanyContactsKey, load_failed};
use crate::projection::{Projectable, Projection, cell};
use crate::relay::NodeId;
use crate::relay::{NodeKind, connection, connection_cost};
use crate::user_error::{UserError, into_payload};
use crate::workspaces::User;
use crate::{OrderDirection, request};
use async_graphql::{Context, Enum, ID, InputObject, Json, MaybeUndefined, Object, OneofObject, SimpleObject};
use chrono::{DateTime, Utc};
use entities::company;
use entities::enums::ObjectType;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryResult};
use uuid::Uuid;
use voxtur_core::Patch;
use voxtur_core::auth::Scope;
use voxtur_core::companies::CompanyChanges;
use voxtur_core::custom_fields::{Definitions, FieldSql};
use voxtur_core::error::ApiResult;
use voxtur_core::listing::{PageArgs, SortSpec, text_key, timestamp_key};

/// Number of employees, in bands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "entities::enums::CompanySize")]
pub enum CompanySize {
    /// 1 to 10 employees.
    #[graphql(name = "SIZE_1_10")]
    S1To10,
    /// 11 to 50 employees.
    #[graphql(name = "SIZE_11_50")]
    S11To50,
    /// 51 to 200 employees.
    #[graphql(name = "SIZE_51_200")]
    S51To200,
    /// 201 to 1,000 employees.
    #[graphql(name = "SIZE_201_1000")]
    S201To1000,
    /// 1,001 to 5,000 employees.
    #[graphql(name = "SIZE_1001_5000")]
    S1001To5000,
    /// More than 5,000 employees.
    #[graphql(name = "SIZE_5001_PLUS")]
    S5001Plus,
}

/// An organisation contacts belong to.
pub struct Company(pub company::Model);

impl From<company::Model> for Company {
    fn from(model: company::Model) -> Self {
        Company(model)
    }
}

/// What each field of [`Company`] reads (see [`Projectable`]).
impl Projectable for company::Entity {
    const ID: company::Column = company::Column::Id;
    const WORKSPACE: company::Column = company::Column::WorkspaceId;

    fn columns_of(field: &str) -> Option<&'static [company::Column]> {
        use company::Column as C;
        Some(match field {
            "id" | "__typename" | "contacts" => &[],
            "name" => &[C::Name],
            "domain" => &[C::Domain],
            "industry" => &[C::Industry],
            "size" => &[C::Size],
            "owner" => &[C::OwnerId],
            "groupId" => &[C::GroupKey],
            "customFields" => &[C::CustomFields],
            "createdAt" => &[C::CreatedAt],
            "updatedAt" => &[C::UpdatedAt],
            _ => return None,
        })
    }

    fn decode(row: &QueryResult, projection: &Projection<Self>) -> Result<company::Model, DbErr> {
        use company::Column as C;
        let mut m = company::Model {
            id: Uuid::nil(),
            workspace_id: projection.workspace(),
            name: String::new(),
            domain: None,
            industry: None,
            size: None,
            owner_id: None,
            group_key: None,
            custom_fields: serde_json::Value::Null,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
        };
        for (i, column) in projection.positions() {
            match column {
                C::Id => m.id = cell(row, i)?,
                C::WorkspaceId => m.workspace_id = cell(row, i)?,
                C::Name => m.name = cell(row, i)?,
                C::Domain => m.domain = cell(row, i)?,
                C::Industry => m.industry = cell(row, i)?,
                C::Size => m.size = row.try_get_by_index(i)?,
                C::OwnerId => m.owner_id = cell(row, i)?,
                C::GroupKey => m.group_key = cell(row, i)?,
                C::CustomFields => m.custom_fields = cell(row, i)?,
                C::CreatedAt => m.created_at = cell(row, i)?,
                C::UpdatedAt => m.updated_at = cell(row, i)?,
            }
        }
        Ok(m)
    }
}

/// An organisation contacts belong to.
#[Object(serial)]
impl Company {
    /// Global id.
    pub async fn id(&self) -> ID {
        NodeKind::Company.id(self.0.id)
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Web domain, lower-cased; unique in the workspace.
    async fn domain(&self) -> Option<&str> {
        self.0.domain.as_deref()
    }
    /// The `groupId` tracking `group` calls know this company by, if any.
    async fn group_id(&self) -> Option<&str> {
        self.0.group_key.as_deref()
    }
    /// Industry.
    async fn industry(&self) -> Option<&str> {
        self.0.industry.as_deref()
    }
    /// Size band.
    async fn size(&self) -> Option<CompanySize> {
        self.0.size.map(Into::into)
    }
    /// The user responsible for the company.
    async fn owner(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.0.owner_id else { return Ok(None) };
        Ok(request(ctx)?
            .loaders
            .users
            .load_one(id)
            .await
            .map_err(load_failed)?
            .map(User))
    }
    /// Custom field values, as an object of field key to value.
    async fn custom_fields(&self) -> Json<serde_json::Value> {
        Json(self.0.custom_fields.clone())
    }
    /// The company's contacts, oldest first. Inside a list of companies the first pages of all
    /// companies load in one query; page further with `after`, or filter the `contacts` list by
    /// `companyId` for other orders.
    #[graphql(complexity = "connection_cost(first, None, child_complexity)")]
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size (1 to 100, default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after.")] after: Option<String>,
    ) -> async_graphql::Result<ContactConnection> {
        // Boxed: see "Resolver futures" in docs/ARCHITECTURE.md.
        Box::pin(async move {
            let r = request(ctx)?;
            let order = [ContactOrderBy::CreatedAt(OrderDirection::Asc)];
            let backend = r.db.get_database_backend();
            let spec: SortSpec<_> = sort_spec(
                &order,
                &Definitions::default(),
                FieldSql::custom_fields(backend, "contact"),
                "company.contacts",
            )?;
            let with_total = ctx.look_ahead().field("totalCount").exists();
            if after.is_some() {
                let select = entities::contact::Entity::find()
                    .filter(entities::contact::Column::WorkspaceId.eq(r.principal.workspace_id))
                    .filter(entities::contact::Column::CompanyId.eq(self.0.id));
                return Ok(spec
                    .fetch(r.db, select, &PageArgs::forward(first, after), with_total)
                    .await?
                    .into());
            }
            let size = PageArgs::forward(first, None);
            size.validate()?;
            let size = first.unwrap_or(voxtur_core::listing::DEFAULT_PAGE_SIZE as i32) as u64;
            let key = CompanyContactsKey {
                company_id: self.0.id,
                limit: size + 1,
            };
            let mut rows = r
                .loaders
                .company_contacts
                .load_one(key)
                .await
                .map_err(load_failed)?
                .unwrap_or_default();
            let has_next_page = rows.len() as u64 > size;
            rows.truncate(size as usize);
            let total_count = if with_total {
                r.loaders
                    .company_contact_counts
                    .load_one(self.0.id)
                    .await
                    .map_err(load_failed)?
            } else {
                None
            };
            let every_cursor = ctx.look_ahead().field("edges").field("cursor").exists();
            let rows = spec.with_cursors(rows, every_cursor);
            Ok(voxtur_core::listing::Page {
                rows,
                has_next_page,
                has_previous_page: false,
                total_count,
            }
            .into())
        })
        .await
    }
    /// When the company was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When the company last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

connection!(CompanyConnection, CompanyEdge, Company, company::Model);

/// One sort key for companies. Give a list for multi-key order; `id` breaks the last ties.
#[derive(OneofObject, Clone, Debug)]
pub enum CompanyOrderBy {
    /// Name.
    Name(OrderDirection),
    /// Domain (companies without one sort last).
    Domain(OrderDirection),
    /// Creation time.
    CreatedAt(OrderDirection),
    /// Last change time.
    UpdatedAt(OrderDirection),
    /// A custom field's value (missing values sort last).
    CustomField(CustomFieldOrder),
}

fn company_sort(order: &[CompanyOrderBy], fields: &Definitions, sql: FieldSql) -> ApiResult<SortSpec<company::Model>> {
    use company::Column as C;
    if order.len() > 5 {
        return Err(voxtur_core::error::ApiError::bad_input("orderBy takes at most 5 keys"));
    }
    let default = [CompanyOrderBy::Name(OrderDirection::Asc)];
    let order = if order.is_empty() { &default[..] } else { order };
    let mut keys = Vec::new();
    for item in order {
        keys.push(match item {
            CompanyOrderBy::Name(d) => {
                text_key::<company::Model>("name", C::Name.into_expr(), (*d).into(), false, |m| {
                    Some(m.name.as_str())
                })
            }
            CompanyOrderBy::Domain(d) => {
                text_key::<company::Model>("domain", C::Domain.into_expr(), (*d).into(), true, |m| {
                    m.domain.as_deref()
                })
            }
            CompanyOrderBy::CreatedAt(d) => {
                timestamp_key::<company::Model>("createdAt", C::CreatedAt.into_expr(), (*d).into(), |m| &m.created_at)
            }
            CompanyOrderBy::UpdatedAt(d) => {
                timestamp_key::<company::Model>("updatedAt", C::UpdatedAt.into_expr(), (*d).into(), |m| &m.updated_at)
            }
            CompanyOrderBy::CustomField(o) => {
                voxtur_core::custom_fields::sort_key(fields, sql, &o.key, o.direction.into(), |m: &company::Model| {
                    &m.custom_fields
                })?
            }
        });
    }
    Ok(SortSpec {
        list: "companies",
        keys,
        id_expr: C::Id.into_expr(),
        id_of: |m| m.id,
    })
}

#[derive(Default)]
pub struct CompanyQuery;

#[Object]
impl CompanyQuery {
    /// Companies of the workspace: filtered, sorted, paged with keyset cursors.
    #[graphql(
        guard = "ScopeGuard(Scope::ContactsRead)",
        complexity = "connection_cost(first, last, child_complexity)"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn companies(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Conditions the companies must meet.")] filter: Option<CompanyFilter>,
        #[graphql(desc = "Sort keys, most significant first; default by name.")] order_by: Option<Vec<CompanyOrderBy>>,
        #[graphql(desc = "Page size going forward (1 to 100, default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after.")] after: Option<String>,
        #[graphql(desc = "Page size going backward (1 to 100).")] last: Option<i32>,
        #[graphql(desc = "Cursor to continue before.")] before: Option<String>,
    ) -> async_graphql::Result<CompanyConnection> {
        let r = request(ctx)?;
        let filter: Option<voxtur_core::companies::filter::CompanyFilter> = filter.into_domain();
        let order_by = order_by.unwrap_or_default();
        let workspace_id = r.principal.workspace_id;
        let backend = r.db.get_database_backend();
        let uses_fields = filter.as_ref().is_some_and(|f| f.uses_custom_fields())
            || order_by.iter().any(|o| matches!(o, CompanyOrderBy::CustomField(_)));
        let fields = if uses_fields {
            Definitions::load(r.db, workspace_id, ObjectType::Company).await?
        } else {
            Definitions::default()
        };
        let spec = company_sort(&order_by, &fields, FieldSql::custom_fields(backend, "company"))?;
        let mut select = company::Entity::find().filter(company::Column::WorkspaceId.eq(workspace_id));
        if let Some(filter) = &filter {
            select = select.filter(filter.condition(&fields, backend)?);
        }
        let with_total = ctx.look_ahead().field("totalCount").exists();
        Ok(spec
            .fetch(
                r.db,
                select,
                &PageArgs {
                    first,
                    after,
                    last,
                    before,
                },
                with_total,
            )
            .await?
            .into())
    }
}

/// Fields of a new company.
#[derive(InputObject, Clone, Debug, Default)]
pub struct CompanyCreateInput {
    /// Name.
    pub name: String,
    /// Web domain, e.g. `example.com` (unique in the workspace).
    pub domain: Option<String>,
    /// Industry.
    pub industry: Option<String>,
    /// Size band.
    pub size: Option<CompanySize>,
    /// Id of the owning user.
    pub owner_id: Option<ID>,
    /// Custom field values: an object of field key to value.
    pub custom_fields: Option<Json<serde_json::Value>>,
}

/// Changes to a company: absent fields stay, `null` clears.
#[derive(InputObject, Clone, Debug, Default)]
pub struct CompanyUpdateInput {
    /// Name.
    pub name: Option<String>,
    /// Web domain.
    pub domain: MaybeUndefined<String>,
    /// Industry.
    pub industry: MaybeUndefined<String>,
    /// Size band.
    pub size: MaybeUndefined<CompanySize>,
    /// Id of the owning user.
    pub owner_id: MaybeUndefined<ID>,
    /// Custom field values; `null` removes a value.
    pub custom_fields: Option<Json<serde_json::Value>>,
}

/// A create input's optional field: absent leaves the default.
fn optional<A: IntoDomain<B>, B>(value: Option<A>) -> Patch<B> {
    value.map_or(Patch::Keep, |v| Patch::Set(v.into_domain()))
}

/// Result of `companyCreate` and `companyUpdate`.
#[derive(SimpleObject)]
pub struct CompanyPayload {
    /// The saved company, unless there were errors.
    pub company: Option<Company>,
    /// Validation failures; nothing was saved when this is not empty.
    pub user_errors: Vec<UserError>,
}

/// Result of `companyDelete`.
#[derive(SimpleObject)]
pub struct CompanyDeletePayload {
    /// Id of the deleted company.
    pub deleted_company_id: Option<ID>,
    /// Why nothing was deleted.
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct CompanyMutation;

#[Object]
impl CompanyMutation {
    /// Creates a company.
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn company_create(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new company.")] input: CompanyCreateInput,
    ) -> async_graphql::Result<CompanyPayload> {
        let r = request(ctx)?;
        let changes = CompanyChanges {
            name: Some(input.name),
            domain: optional(input.domain),
            industry: optional(input.industry),
            size: optional(input.size),
            owner_id: optional(input.owner_id),
            custom_fields: input.custom_fields.map(|j| j.0),
        };
        let (company, user_errors) =
            into_payload(voxtur_core::companies::create(r.db, r.principal.workspace_id, changes).await)?;
        Ok(CompanyPayload {
            company: company.map(Company),
            user_errors,
        })
    }

    /// Changes a company.
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn company_update(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The company's id.")] id: ID,
        #[graphql(desc = "The changes.")] input: CompanyUpdateInput,
    ) -> async_graphql::Result<CompanyPayload> {
        let r = request(ctx)?;
        let changes = CompanyChanges {
            name: input.name,
            domain: input.domain.into_domain(),
            industry: input.industry.into_domain(),
            size: input.size.into_domain(),
            owner_id: input.owner_id.into_domain(),
            custom_fields: input.custom_fields.map(|j| j.0),
        };
        let (company, user_errors) =
            into_payload(voxtur_core::companies::update(r.db, r.principal.workspace_id, &id, changes).await)?;
        Ok(CompanyPayload {
            company: company.map(Company),
            user_errors,
        })
    }

    /// Deletes a company; its contacts remain, without a company.
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn company_delete(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The company's id.")] id: ID,
    ) -> async_graphql::Result<CompanyDeletePayload> {
        let r = request(ctx)?;
        let (deleted, user_errors) =
            into_payload(voxtur_core::companies::delete(r.db, r.principal.workspace_id, &id).await)?;
        Ok(CompanyDeletePayload {
            deleted_company_id: deleted.map(|uuid| NodeKind::Company.id(uuid)),
            user_errors,
        })
    }
}
