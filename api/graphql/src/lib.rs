//! The GraphQL schema: built once, knows nothing about HTTP. Every async-graphql type lives in
//! this crate: one module per domain contributes its types, queries and mutations (merged here),
//! and converts inputs into the domain's types at the edge (`filters`, `user_error`).

pub mod companies;
pub mod contacts;
pub mod convert;
pub mod cost;
pub mod custom_fields;
pub mod errors;
pub mod events;
pub mod filters;
pub mod guards;
pub mod imports;
pub mod jobs;
pub mod loaders;
pub mod parsed;
pub mod projection;
pub mod relay;
pub mod segments;
pub mod user_error;
pub mod web;
pub mod webhooks;
pub mod workspaces;

use crate::companies::{Company, CompanyMutation, CompanyQuery};
use crate::contacts::{Contact, ContactMutation, ContactQuery};
use crate::custom_fields::{CustomField, CustomFieldMutation, CustomFieldQuery};
use crate::events::{Event, EventMutation, EventQuery};
use crate::segments::{Segment, SegmentMutation, SegmentQuery};
use crate::web::{WebMutation, WebQuery};
use crate::workspaces::{User, WorkspaceMutation, WorkspaceQuery};
use async_graphql::{Context, EmptySubscription, Enum, ID, Interface, MergedObject, Object, Schema, SchemaBuilder};
use entities::{app_user, company, contact, custom_field};
use loaders::Loaders;
use relay::{NodeKind, decode_id};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use std::sync::Arc;
use voxtur_core::auth::{Principal, PrincipalCache, Scope};
use voxtur_core::error::{ApiError, ApiResult};

pub type VoxturSchema = Schema<Query, Mutation, EmptySubscription>;

/// Limits a query must keep, checked before anything executes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphqlSettings {
    pub max_depth: usize,
    pub max_complexity: usize,
}

/// Sort direction.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum OrderDirection {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// What every resolver needs, taken from the request's context.
pub struct RequestCtx<'a> {
    pub principal: &'a Principal,
    pub db: &'a DatabaseConnection,
    pub loaders: &'a Loaders,
}

pub fn request<'a>(ctx: &Context<'a>) -> ApiResult<RequestCtx<'a>> {
    let principal = ctx.data_opt::<Principal>().ok_or(ApiError::Unauthenticated)?;
    let db = ctx
        .data_opt::<DatabaseConnection>()
        .ok_or_else(|| ApiError::Internal("no database in context".into()))?;
    let loaders = ctx
        .data_opt::<Loaders>()
        .ok_or_else(|| ApiError::Internal("no loaders in context".into()))?;
    Ok(RequestCtx { principal, db, loaders })
}

/// An object with a global id, fetchable with `node` / `nodes`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Global id."))]
pub enum Node {
    Contact(Contact),
    Company(Company),
    User(User),
    CustomField(CustomField),
    Event(Event),
    Segment(Segment),
}

/// Root of the `node` / `nodes` lookups.
#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Any object by global id; null when it does not exist in this workspace or the
    /// credentials may not read its type.
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A global id.")] id: ID,
    ) -> async_graphql::Result<Option<Node>> {
        Ok(load_nodes(ctx, &[id]).await?.pop().flatten())
    }

    /// Objects by global ids (at most 100), in the order given; null where not found.
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global ids.")] ids: Vec<ID>,
    ) -> async_graphql::Result<Vec<Option<Node>>> {
        if ids.len() > 100 {
            return Err(ApiError::bad_input("nodes takes at most 100 ids").into());
        }
        Ok(load_nodes(ctx, &ids).await?)
    }
}

/// Resolves ids by type with one query per type, always scoped to the caller's workspace.
async fn load_nodes(ctx: &Context<'_>, ids: &[ID]) -> ApiResult<Vec<Option<Node>>> {
    let r = request(ctx)?;
    let ws = r.principal.workspace_id;
    let decoded: Vec<Option<(NodeKind, uuid::Uuid)>> = ids.iter().map(|id| decode_id(id)).collect();
    let of = |kind: NodeKind| -> Vec<uuid::Uuid> {
        decoded
            .iter()
            .flatten()
            .filter(|(k, _)| *k == kind)
            .map(|(_, u)| *u)
            .collect()
    };
    let readable = r.principal.scopes.allows(Scope::ContactsRead);
    let mut found: std::collections::HashMap<uuid::Uuid, Node> = std::collections::HashMap::new();
    if readable && !of(NodeKind::Contact).is_empty() {
        for m in contact::Entity::find()
            .filter(contact::Column::WorkspaceId.eq(ws))
            .filter(contact::Column::Id.is_in(of(NodeKind::Contact)))
            .all(r.db)
            .await?
        {
            found.insert(m.id, Node::Contact(Contact::from(m)));
        }
    }
    if readable && !of(NodeKind::Company).is_empty() {
        for m in company::Entity::find()
            .filter(company::Column::WorkspaceId.eq(ws))
            .filter(company::Column::Id.is_in(of(NodeKind::Company)))
            .all(r.db)
            .await?
        {
            found.insert(m.id, Node::Company(Company(m)));
        }
    }
    if readable && !of(NodeKind::CustomField).is_empty() {
        for m in custom_field::Entity::find()
            .filter(custom_field::Column::WorkspaceId.eq(ws))
            .filter(custom_field::Column::Id.is_in(of(NodeKind::CustomField)))
            .all(r.db)
            .await?
        {
            found.insert(m.id, Node::CustomField(CustomField(m)));
        }
    }
    if readable && !of(NodeKind::Event).is_empty() {
        for m in entities::event::Entity::find()
            .filter(entities::event::Column::WorkspaceId.eq(ws))
            .filter(entities::event::Column::Id.is_in(of(NodeKind::Event)))
            .all(r.db)
            .await?
        {
            found.insert(m.id, Node::Event(Event(m)));
        }
    }
    if readable && !of(NodeKind::Segment).is_empty() {
        for m in entities::segment::Entity::find()
            .filter(entities::segment::Column::WorkspaceId.eq(ws))
            .filter(entities::segment::Column::Id.is_in(of(NodeKind::Segment)))
            .all(r.db)
            .await?
        {
            found.insert(m.id, Node::Segment(Segment(m)));
        }
    }
    if (readable || r.principal.scopes.allows(Scope::WorkspaceRead)) && !of(NodeKind::User).is_empty() {
        for m in app_user::Entity::find()
            .filter(app_user::Column::WorkspaceId.eq(ws))
            .filter(app_user::Column::Id.is_in(of(NodeKind::User)))
            .all(r.db)
            .await?
        {
            found.insert(m.id, Node::User(User(m)));
        }
    }
    Ok(decoded
        .into_iter()
        .map(|d| {
            d.and_then(|(kind, uuid)| {
                let node = found.get(&uuid)?;
                let same_kind = matches!(
                    (kind, node),
                    (NodeKind::Contact, Node::Contact(_))
                        | (NodeKind::Company, Node::Company(_))
                        | (NodeKind::User, Node::User(_))
                        | (NodeKind::CustomField, Node::CustomField(_))
                        | (NodeKind::Event, Node::Event(_))
                        | (NodeKind::Segment, Node::Segment(_))
                );
                same_kind.then(|| clone_node(node))
            })
        })
        .collect())
}

fn clone_node(node: &Node) -> Node {
    match node {
        Node::Contact(c) => Node::Contact(Contact(c.0.clone(), c.1.clone())),
        Node::Company(c) => Node::Company(Company(c.0.clone())),
        Node::User(u) => Node::User(User(u.0.clone())),
        Node::CustomField(f) => Node::CustomField(CustomField(f.0.clone())),
        Node::Event(e) => Node::Event(Event(e.0.clone())),
        Node::Segment(s) => Node::Segment(Segment(s.0.clone())),
    }
}

/// The root query type.
#[derive(MergedObject, Default)]
pub struct Query(
    NodeQuery,
    WorkspaceQuery,
    ContactQuery,
    CompanyQuery,
    CustomFieldQuery,
    EventQuery,
    WebQuery,
    SegmentQuery,
    imports::ImportQuery,
    jobs::JobQuery,
    webhooks::WebhookQuery,
);

/// The root mutation type.
#[derive(MergedObject, Default)]
pub struct Mutation(
    ContactMutation,
    CompanyMutation,
    CustomFieldMutation,
    WorkspaceMutation,
    EventMutation,
    WebMutation,
    SegmentMutation,
    imports::ImportMutation,
    jobs::JobMutation,
    webhooks::WebhookMutation,
);

pub fn builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
}

/// The served schema: limits are checked before anything executes.
pub fn build(db: DatabaseConnection, principals: Arc<PrincipalCache>, limits: &GraphqlSettings) -> Schemas {
    let schema = |max_depth: usize| {
        builder()
            .data(db.clone())
            .data(principals.clone())
            .limit_depth(max_depth)
            .limit_complexity(limits.max_complexity)
            .limit_recursive_depth(64)
            .limit_directives(16)
            .finish()
    };
    Schemas {
        api: schema(limits.max_depth),
        introspection: schema(INTROSPECTION_DEPTH.max(limits.max_depth)),
    }
}

/// The standard introspection query of GraphQL tools (graphql-js's and graphql-core's
/// `getIntrospectionQuery`, which GraphiQL sends on opening) nests 15 levels through `ofType`;
/// newer ones nest deeper. Introspection reads only the schema, and the complexity limit still
/// bounds it, so its depth is counted apart from the API's.
const INTROSPECTION_DEPTH: usize = 32;

/// The schema, twice: with the API's depth limit, and with the introspection depth for
/// requests that only introspect.
pub struct Schemas {
    pub api: VoxturSchema,
    pub introspection: VoxturSchema,
}

impl Schemas {
    /// The schema that executes `request`: the introspection one when every operation selects
    /// only `__schema`, `__type` or `__typename`.
    pub fn for_request(&self, request: &mut async_graphql::Request) -> &VoxturSchema {
        use async_graphql::parser::types::Selection;
        let Ok(document) = request.parsed_query() else {
            return &self.api;
        };
        let only_introspection = document.operations.iter().all(|(_, operation)| {
            let items = &operation.node.selection_set.node.items;
            !items.is_empty()
                && items
                    .iter()
                    .all(|item| matches!(&item.node, Selection::Field(f) if f.node.name.node.starts_with("__")))
        });
        if only_introspection {
            &self.introspection
        } else {
            &self.api
        }
    }
}

/// The schema as SDL, sorted, as committed in `schema.graphql`.
pub fn sdl() -> String {
    use async_graphql::SDLExportOptions;
    builder().finish().sdl_with_options(
        SDLExportOptions::new()
            .sorted_fields()
            .sorted_arguments()
            .sorted_enum_items(),
    )
}
