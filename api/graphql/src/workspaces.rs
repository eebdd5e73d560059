//! The GraphQL face of workspaces: the viewer, members, teams and API keys.

use crate::guards::ScopeGuard;
use crate::projection::{Projectable, Projection, cell};
use crate::relay::NodeId;
use crate::relay::{NodeKind, connection, connection_cost, decode_as};
use crate::request;
use crate::user_error::{UserError, UserErrorCode, into_payload};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entities::{api_key, app_user, team, team_member, workspace};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QueryResult};
use std::collections::HashMap;
use std::sync::Arc;
use voxtur_core::auth::{Principal, PrincipalCache, Scope, ScopeSet, issue_api_key, revoke_api_key};
use voxtur_core::error::ApiError;
use voxtur_core::listing::{Direction, PageArgs, SortSpec, timestamp_key};

/// What a member may do in the workspace.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "entities::enums::Role")]
pub enum Role {
    /// Everything, including members, teams and keys.
    Admin,
    /// Contacts, segments, campaigns and automation.
    Marketer,
    /// Contacts and opportunities they work.
    Sales,
    /// Read access to data and reports.
    Analyst,
}

/// A member of the workspace.
pub struct User(pub app_user::Model);

impl From<app_user::Model> for User {
    fn from(model: app_user::Model) -> Self {
        User(model)
    }
}

/// What each field of [`User`] reads (see [`Projectable`]).
impl Projectable for app_user::Entity {
    const ID: app_user::Column = app_user::Column::Id;
    const WORKSPACE: app_user::Column = app_user::Column::WorkspaceId;

    fn columns_of(field: &str) -> Option<&'static [app_user::Column]> {
        use app_user::Column as C;
        Some(match field {
            "id" | "__typename" => &[],
            "email" => &[C::Email],
            "name" => &[C::Name],
            "role" => &[C::Role],
            "createdAt" => &[C::CreatedAt],
            _ => return None,
        })
    }

    fn decode(row: &QueryResult, projection: &Projection<Self>) -> Result<app_user::Model, DbErr> {
        use app_user::Column as C;
        let mut m = app_user::Model {
            id: uuid::Uuid::nil(),
            workspace_id: projection.workspace(),
            email: String::new(),
            name: String::new(),
            role: entities::enums::Role::Analyst,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
        };
        for (i, column) in projection.positions() {
            match column {
                C::Id => m.id = cell(row, i)?,
                C::WorkspaceId => m.workspace_id = cell(row, i)?,
                C::Email => m.email = cell(row, i)?,
                C::Name => m.name = cell(row, i)?,
                C::Role => m.role = row.try_get_by_index(i)?,
                C::CreatedAt => m.created_at = cell(row, i)?,
                C::UpdatedAt => m.updated_at = cell(row, i)?,
            }
        }
        Ok(m)
    }
}

/// A member of the workspace.
#[Object(serial)]
impl User {
    /// Global id.
    pub async fn id(&self) -> ID {
        NodeKind::User.id(self.0.id)
    }
    /// Email address.
    async fn email(&self) -> &str {
        &self.0.email
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Role.
    async fn role(&self) -> Role {
        self.0.role.into()
    }
    /// When the member was added.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

connection!(UserConnection, UserEdge, User, app_user::Model);

/// A group of members, e.g. a sales region, to which work is distributed.
#[derive(SimpleObject)]
#[graphql(guard = "ScopeGuard(Scope::WorkspaceRead)")]
pub struct Team {
    /// Global id.
    pub id: ID,
    /// Name, unique in the workspace.
    pub name: String,
    /// Members, by name.
    pub members: Vec<User>,
    /// When the team was created.
    pub created_at: DateTime<Utc>,
}

/// An API key (its secret is shown only once, when created).
pub struct ApiKey(pub api_key::Model);

/// An API key (its secret is shown only once, when created).
#[Object(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
impl ApiKey {
    /// Global id.
    pub async fn id(&self) -> ID {
        NodeKind::ApiKey.id(self.0.id)
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The key's first characters, to tell keys apart.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    /// Scopes granted.
    async fn scopes(&self) -> Vec<String> {
        self.0.scopes.split(' ').map(str::to_owned).collect()
    }
    /// When the key was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When the key was revoked; revoked keys authenticate nothing.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}

/// A tenant: every record belongs to exactly one workspace.
#[derive(SimpleObject)]
pub struct Workspace {
    /// Global id.
    pub id: ID,
    /// Name.
    pub name: String,
    /// When the workspace was created.
    pub created_at: DateTime<Utc>,
}

/// The caller: the workspace and scopes of the credentials used.
#[derive(SimpleObject)]
pub struct Viewer {
    /// The workspace every query and mutation acts on.
    pub workspace: Workspace,
    /// Scopes granted to these credentials.
    pub scopes: Vec<String>,
}

#[derive(Default)]
pub struct WorkspaceQuery;

#[Object]
impl WorkspaceQuery {
    /// The caller's workspace and scopes. Needs valid credentials, no particular scope.
    async fn viewer(&self, ctx: &Context<'_>) -> async_graphql::Result<Viewer> {
        let principal = ctx.data_opt::<Principal>().ok_or(ApiError::Unauthenticated)?;
        let r = request(ctx)?;
        let workspace = workspace::Entity::find_by_id(principal.workspace_id)
            .one(r.db)
            .await?
            .ok_or_else(|| ApiError::NotFound("workspace not found".into()))?;
        Ok(Viewer {
            workspace: Workspace {
                id: NodeKind::Workspace.id(workspace.id),
                name: workspace.name,
                created_at: workspace.created_at,
            },
            scopes: principal.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        })
    }

    /// Members of the workspace, oldest first.
    #[graphql(
        guard = "ScopeGuard(Scope::WorkspaceRead)",
        complexity = "connection_cost(first, None, child_complexity)"
    )]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size (1 to 100, default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after.")] after: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        let r = request(ctx)?;
        let spec = SortSpec {
            list: "users",
            keys: vec![timestamp_key::<app_user::Model>(
                "createdAt",
                app_user::Column::CreatedAt.into_expr(),
                Direction::Asc,
                |m| &m.created_at,
            )],
            id_expr: app_user::Column::Id.into_expr(),
            id_of: |m| m.id,
        };
        let select = app_user::Entity::find().filter(app_user::Column::WorkspaceId.eq(r.principal.workspace_id));
        let with_total = ctx.look_ahead().field("totalCount").exists();
        Ok(spec
            .fetch(r.db, select, &PageArgs::forward(first, after), with_total)
            .await?
            .into())
    }

    /// Teams with their members, by name.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceRead)")]
    async fn teams(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Team>> {
        let r = request(ctx)?;
        let workspace_id = r.principal.workspace_id;
        let teams = team::Entity::find()
            .filter(team::Column::WorkspaceId.eq(workspace_id))
            .order_by_asc(team::Column::Name)
            .all(r.db)
            .await?;
        // Members of every team in two queries, whatever the number of teams.
        let memberships = team_member::Entity::find()
            .filter(team_member::Column::WorkspaceId.eq(workspace_id))
            .all(r.db)
            .await?;
        let users: HashMap<uuid::Uuid, app_user::Model> = app_user::Entity::find()
            .filter(app_user::Column::WorkspaceId.eq(workspace_id))
            .filter(app_user::Column::Id.is_in(memberships.iter().map(|m| m.user_id)))
            .all(r.db)
            .await?
            .into_iter()
            .map(|u| (u.id, u))
            .collect();
        let mut members: HashMap<uuid::Uuid, Vec<User>> = HashMap::new();
        for membership in memberships {
            if let Some(user) = users.get(&membership.user_id) {
                members.entry(membership.team_id).or_default().push(User(user.clone()));
            }
        }
        for list in members.values_mut() {
            list.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        }
        Ok(teams
            .into_iter()
            .map(|t| Team {
                id: NodeKind::Team.id(t.id),
                members: members.remove(&t.id).unwrap_or_default(),
                name: t.name,
                created_at: t.created_at,
            })
            .collect())
    }

    /// API keys of the workspace, newest first (secrets are never shown again).
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn api_keys(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ApiKey>> {
        let r = request(ctx)?;
        let keys = api_key::Entity::find()
            .filter(api_key::Column::WorkspaceId.eq(r.principal.workspace_id))
            .order_by_desc(api_key::Column::CreatedAt)
            .all(r.db)
            .await?;
        Ok(keys.into_iter().map(ApiKey).collect())
    }
}

/// A new member.
#[derive(InputObject)]
pub struct UserCreateInput {
    /// Email address, unique in the workspace.
    pub email: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
}

/// Changes to a member; absent fields stay.
#[derive(InputObject)]
pub struct UserUpdateInput {
    /// Name.
    pub name: Option<String>,
    /// Role.
    pub role: Option<Role>,
}

/// A team's name and complete member list.
#[derive(InputObject)]
pub struct TeamInput {
    /// Name, unique in the workspace.
    pub name: String,
    /// Ids of the members (replaces the current members).
    #[graphql(default)]
    pub member_ids: Vec<ID>,
}

/// A new API key.
#[derive(InputObject)]
pub struct ApiKeyCreateInput {
    /// Name, to recognise the key later.
    pub name: String,
    /// Scopes, e.g. `["contacts:read"]`; at most the scopes of the key creating it.
    pub scopes: Vec<String>,
}

/// Result of `userCreate` and `userUpdate`.
#[derive(SimpleObject)]
pub struct UserPayload {
    /// The saved member.
    pub user: Option<User>,
    /// Validation failures; nothing was saved when this is not empty.
    pub user_errors: Vec<UserError>,
}

/// Result of `teamCreate` and `teamUpdate`.
#[derive(SimpleObject)]
pub struct TeamPayload {
    /// The saved team's id.
    pub team_id: Option<ID>,
    /// Validation failures; nothing was saved when this is not empty.
    pub user_errors: Vec<UserError>,
}

/// Result of `apiKeyCreate`.
#[derive(SimpleObject)]
pub struct ApiKeyCreatePayload {
    /// The new key.
    pub api_key: Option<ApiKey>,
    /// The secret to send as `Authorization: Bearer <secret>`. Shown only now.
    pub secret: Option<String>,
    /// Validation failures; nothing was saved when this is not empty.
    pub user_errors: Vec<UserError>,
}

/// Result of `apiKeyRevoke`.
#[derive(SimpleObject)]
pub struct ApiKeyRevokePayload {
    /// The revoked key.
    pub api_key: Option<ApiKey>,
    /// Why nothing was revoked.
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct WorkspaceMutation;

#[Object]
impl WorkspaceMutation {
    /// Adds a member.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn user_create(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The member.")] input: UserCreateInput,
    ) -> async_graphql::Result<UserPayload> {
        let r = request(ctx)?;
        let result = voxtur_core::workspaces::create_user(
            r.db,
            r.principal.workspace_id,
            &input.email,
            &input.name,
            input.role.into(),
        )
        .await;
        let (user, user_errors) = into_payload(result)?;
        Ok(UserPayload {
            user: user.map(User),
            user_errors,
        })
    }

    /// Changes a member's name or role.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn user_update(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The member's id.")] id: ID,
        #[graphql(desc = "The changes.")] input: UserUpdateInput,
    ) -> async_graphql::Result<UserPayload> {
        let r = request(ctx)?;
        let result = voxtur_core::workspaces::update_user(
            r.db,
            r.principal.workspace_id,
            &id,
            input.name,
            input.role.map(Into::into),
        )
        .await;
        let (user, user_errors) = into_payload(result)?;
        Ok(UserPayload {
            user: user.map(User),
            user_errors,
        })
    }

    /// Creates a team.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn team_create(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The team.")] input: TeamInput,
    ) -> async_graphql::Result<TeamPayload> {
        let r = request(ctx)?;
        let result = voxtur_core::workspaces::save_team(
            r.db,
            r.principal.workspace_id,
            None,
            &input.name,
            &input.member_ids.iter().map(|id| id.to_string()).collect::<Vec<_>>(),
        )
        .await;
        let (team, user_errors) = into_payload(result)?;
        Ok(TeamPayload {
            team_id: team.map(|t| NodeKind::Team.id(t.id)),
            user_errors,
        })
    }

    /// Renames a team and replaces its members.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn team_update(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The team's id.")] id: ID,
        #[graphql(desc = "The team's new name and members.")] input: TeamInput,
    ) -> async_graphql::Result<TeamPayload> {
        let r = request(ctx)?;
        let result = voxtur_core::workspaces::save_team(
            r.db,
            r.principal.workspace_id,
            Some(&id),
            &input.name,
            &input.member_ids.iter().map(|id| id.to_string()).collect::<Vec<_>>(),
        )
        .await;
        let (team, user_errors) = into_payload(result)?;
        Ok(TeamPayload {
            team_id: team.map(|t| NodeKind::Team.id(t.id)),
            user_errors,
        })
    }

    /// Creates an API key for this workspace. The secret is in the payload, once.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn api_key_create(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The key.")] input: ApiKeyCreateInput,
    ) -> async_graphql::Result<ApiKeyCreatePayload> {
        let r = request(ctx)?;
        let failed = |error: UserError| ApiKeyCreatePayload {
            api_key: None,
            secret: None,
            user_errors: vec![error],
        };
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Ok(failed(UserError::new(
                &["input", "name"],
                UserErrorCode::Invalid,
                "name must be 1 to 200 characters",
            )));
        }
        let scopes = match ScopeSet::parse(&input.scopes.join(" ")) {
            Ok(scopes) => scopes,
            Err(message) => {
                return Ok(failed(UserError::new(
                    &["input", "scopes"],
                    UserErrorCode::Invalid,
                    message,
                )));
            }
        };
        if let Some(extra) = scopes.iter().find(|s| !r.principal.scopes.allows(*s)) {
            return Ok(failed(UserError::new(
                &["input", "scopes"],
                UserErrorCode::Invalid,
                format!("cannot grant `{extra}`: the key creating it does not hold it"),
            )));
        }
        let issued = issue_api_key(r.db, r.principal.workspace_id, name, &scopes).await?;
        Ok(ApiKeyCreatePayload {
            api_key: Some(ApiKey(issued.key)),
            secret: Some(issued.secret),
            user_errors: Vec::new(),
        })
    }

    /// Revokes an API key at once; requests using it are refused from now on.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn api_key_revoke(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The key's id.")] id: ID,
    ) -> async_graphql::Result<ApiKeyRevokePayload> {
        let r = request(ctx)?;
        let revoked = match decode_as(&id, NodeKind::ApiKey) {
            Some(uuid) => {
                let principals = ctx.data::<Arc<PrincipalCache>>()?;
                revoke_api_key(r.db, principals, r.principal.workspace_id, uuid).await?
            }
            None => None,
        };
        Ok(match revoked {
            Some(key) => ApiKeyRevokePayload {
                api_key: Some(ApiKey(key)),
                user_errors: Vec::new(),
            },
            None => ApiKeyRevokePayload {
                api_key: None,
                user_errors: vec![UserError::new(
                    &["id"],
                    UserErrorCode::NotFound,
                    "no such API key in this workspace",
                )],
            },
        })
    }
}
