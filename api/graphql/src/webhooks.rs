//! Outbound webhooks: endpoints (`webhookEndpointCreate/Update/Delete`, `webhookSecretRotate`,
//! `webhookEndpoints`), their deliveries with every attempt, and `webhookDeliveryRetry`.

use crate::OrderDirection;
use crate::guards::ScopeGuard;
use crate::relay::{NodeId, NodeKind, connection, connection_cost, decode_as};
use crate::request;
use crate::user_error::{UserError, UserErrorCode, into_payload};
use async_graphql::{Context, Enum, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entities::{webhook_attempt, webhook_delivery, webhook_endpoint};
use sea_orm::{ColumnTrait, EntityTrait, IntoSimpleExpr, QueryFilter, QueryOrder};
use voxtur_core::auth::Scope;
use voxtur_core::listing::{PageArgs, SortSpec, timestamp_key};
use voxtur_core::webhooks::{self, EndpointInput};

/// Where a delivery stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum WebhookDeliveryState {
    /// Not yet delivered: waiting for its turn or its next attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Out of attempts (about three days of them); `webhookDeliveryRetry` sends it again.
    Failed,
}

pub struct WebhookEndpoint(pub webhook_endpoint::Model);

/// A receiver of the workspace's events, signed as Standard Webhooks sign them.
#[Object]
impl WebhookEndpoint {
    /// Global id.
    async fn id(&self) -> ID {
        NodeKind::WebhookEndpoint.id(self.0.id)
    }

    /// Where events are posted.
    async fn url(&self) -> &str {
        &self.0.url
    }

    /// What it is for.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// The event types it takes (`contact.created`, `segment.entered`, ...).
    async fn event_types(&self) -> Vec<String> {
        self.0
            .event_types
            .as_array()
            .map(|types| types.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// Whether events are delivered to it.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }

    /// Why it was disabled, when the deliveries failed for too long.
    async fn disabled_reason(&self) -> Option<&str> {
        self.0.disabled_reason.as_deref()
    }

    /// Until when the secret before the last rotation still signs.
    async fn previous_secret_valid_until(&self) -> Option<DateTime<Utc>> {
        self.0.previous_secret_until
    }

    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// Its deliveries, newest first, with every attempt.
    #[graphql(complexity = "connection_cost(first, None, child_complexity)")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only deliveries in this state.")] state: Option<WebhookDeliveryState>,
        #[graphql(desc = "Page size (1 to 100, default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after.")] after: Option<String>,
    ) -> async_graphql::Result<WebhookDeliveryConnection> {
        let r = request(ctx)?;
        let spec = SortSpec {
            list: "webhookDeliveries",
            keys: vec![timestamp_key::<webhook_delivery::Model>(
                "createdAt",
                webhook_delivery::Column::CreatedAt.into_simple_expr(),
                OrderDirection::Desc.into(),
                |m| &m.created_at,
            )],
            id_expr: webhook_delivery::Column::Id.into_simple_expr(),
            id_of: |m| m.id,
        };
        let mut select = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::WorkspaceId.eq(r.principal.workspace_id))
            .filter(webhook_delivery::Column::EndpointId.eq(self.0.id));
        if let Some(state) = state {
            select = select.filter(webhook_delivery::Column::State.eq(state_name(state)));
        }
        let with_total = ctx.look_ahead().field("totalCount").exists();
        Ok(spec
            .fetch(r.db, select, &PageArgs::forward(first, after), with_total)
            .await?
            .into())
    }
}

fn state_name(state: WebhookDeliveryState) -> &'static str {
    match state {
        WebhookDeliveryState::Pending => webhooks::delivery::PENDING,
        WebhookDeliveryState::Delivered => webhooks::delivery::DELIVERED,
        WebhookDeliveryState::Failed => webhooks::delivery::FAILED,
    }
}

pub struct WebhookDelivery(pub webhook_delivery::Model);

impl From<webhook_delivery::Model> for WebhookDelivery {
    fn from(model: webhook_delivery::Model) -> WebhookDelivery {
        WebhookDelivery(model)
    }
}

connection!(
    WebhookDeliveryConnection,
    WebhookDeliveryEdge,
    WebhookDelivery,
    webhook_delivery::Model
);

/// One event for one endpoint.
#[Object]
impl WebhookDelivery {
    /// Global id.
    async fn id(&self) -> ID {
        NodeKind::WebhookDelivery.id(self.0.id)
    }

    /// The `webhook-id` header it is sent with, the same on every attempt (receivers drop
    /// duplicates by it).
    async fn message_id(&self) -> String {
        format!("msg_{}", self.0.id.simple())
    }

    /// `contact.created`, `segment.entered`, ...
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }

    /// The body sent: `{type, timestamp, data}`.
    async fn payload(&self) -> Json<serde_json::Value> {
        Json(self.0.payload.clone())
    }

    /// Where it stands.
    async fn state(&self) -> WebhookDeliveryState {
        match self.0.state.as_str() {
            webhooks::delivery::DELIVERED => WebhookDeliveryState::Delivered,
            webhooks::delivery::FAILED => WebhookDeliveryState::Failed,
            _ => WebhookDeliveryState::Pending,
        }
    }

    /// Attempts made.
    async fn attempt_count(&self) -> i32 {
        self.0.attempts
    }

    /// When the next attempt is due, while pending.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (self.0.state == webhooks::delivery::PENDING).then_some(self.0.next_attempt_at)
    }

    /// When it was recorded.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When the receiver took it.
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }

    /// Every attempt, oldest first.
    async fn attempts(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<WebhookAttempt>> {
        let r = request(ctx)?;
        let attempts = webhook_attempt::Entity::find()
            .filter(webhook_attempt::Column::DeliveryId.eq(self.0.id))
            .order_by_asc(webhook_attempt::Column::AttemptedAt)
            .all(r.db)
            .await?;
        Ok(attempts.into_iter().map(WebhookAttempt::from).collect())
    }
}

/// One attempt to deliver: the receiver's answer, or why none came.
#[derive(SimpleObject)]
pub struct WebhookAttempt {
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<i32>,
    /// Milliseconds until the answer (or the failure).
    pub latency_ms: i32,
    /// Why it failed; null when it succeeded.
    pub error: Option<String>,
    /// The start of the receiver's answer (1,000 characters at most).
    pub response_body: Option<String>,
}

impl From<webhook_attempt::Model> for WebhookAttempt {
    fn from(m: webhook_attempt::Model) -> WebhookAttempt {
        WebhookAttempt {
            at: m.attempted_at,
            status_code: m.status_code,
            latency_ms: m.latency_ms,
            error: m.error,
            response_body: m.response_body,
        }
    }
}

/// A new endpoint.
#[derive(InputObject)]
pub struct WebhookEndpointCreateInput {
    /// An http(s) URL at a public address (private ones only where configuration allows).
    pub url: String,
    /// The event types it takes: contact.created, contact.updated, contact.deleted,
    /// contact.merged, segment.entered, segment.exited, form.submitted.
    pub event_types: Vec<String>,
    /// What it is for (2,000 characters at most).
    pub description: Option<String>,
}

/// Changes to an endpoint; absent fields stay.
#[derive(InputObject)]
pub struct WebhookEndpointUpdateInput {
    /// A new URL.
    pub url: Option<String>,
    /// The new set of event types.
    pub event_types: Option<Vec<String>>,
    /// A new description; null clears it.
    pub description: MaybeUndefined<String>,
    /// Enables or disables it; enabling it sends what waited meanwhile.
    pub enabled: Option<bool>,
}

/// An endpoint after a change, and its secret when new (shown this once).
#[derive(SimpleObject)]
pub struct WebhookEndpointPayload {
    /// The endpoint; null when refused.
    pub endpoint: Option<WebhookEndpoint>,
    /// The signing secret (`whsec_...`), only when created or rotated: store it now.
    pub secret: Option<String>,
    /// Why it was refused.
    pub user_errors: Vec<UserError>,
}

/// The endpoint deleted.
#[derive(SimpleObject)]
pub struct WebhookEndpointDeletePayload {
    /// Its id; null when refused.
    pub deleted_endpoint_id: Option<ID>,
    /// Why it was refused.
    pub user_errors: Vec<UserError>,
}

/// A delivery sent again.
#[derive(SimpleObject)]
pub struct WebhookDeliveryPayload {
    /// The delivery; null when refused.
    pub delivery: Option<WebhookDelivery>,
    /// Why it was refused.
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// The workspace's webhook endpoints, oldest first.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn webhook_endpoints(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<WebhookEndpoint>> {
        let r = request(ctx)?;
        let endpoints = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::WorkspaceId.eq(r.principal.workspace_id))
            .order_by_asc(webhook_endpoint::Column::CreatedAt)
            .all(r.db)
            .await?;
        Ok(endpoints.into_iter().map(WebhookEndpoint).collect())
    }

    /// One endpoint of the workspace.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint.")] id: ID,
    ) -> async_graphql::Result<Option<WebhookEndpoint>> {
        let r = request(ctx)?;
        let Some(uuid) = decode_as(&id, NodeKind::WebhookEndpoint) else {
            return Ok(None);
        };
        Ok(webhook_endpoint::Entity::find_by_id(uuid)
            .filter(webhook_endpoint::Column::WorkspaceId.eq(r.principal.workspace_id))
            .one(r.db)
            .await?
            .map(WebhookEndpoint))
    }
}

#[derive(Default)]
pub struct WebhookMutation;

fn not_found(what: &str) -> Vec<UserError> {
    vec![UserError::new(
        &["id"],
        UserErrorCode::NotFound,
        format!("not a {what} id"),
    )]
}

#[Object]
impl WebhookMutation {
    /// Creates an endpoint; the payload carries its signing secret, this once.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn webhook_endpoint_create(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint.")] input: WebhookEndpointCreateInput,
    ) -> async_graphql::Result<WebhookEndpointPayload> {
        let r = request(ctx)?;
        let input = EndpointInput {
            url: Some(input.url),
            event_types: Some(input.event_types),
            description: Some(input.description),
            enabled: None,
        };
        let (endpoint, user_errors) = into_payload(webhooks::create(r.db, r.principal.workspace_id, input).await)?;
        Ok(WebhookEndpointPayload {
            secret: endpoint.as_ref().map(|e| e.secret.clone()),
            endpoint: endpoint.map(WebhookEndpoint),
            user_errors,
        })
    }

    /// Changes an endpoint.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn webhook_endpoint_update(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint.")] id: ID,
        #[graphql(desc = "The changes.")] input: WebhookEndpointUpdateInput,
    ) -> async_graphql::Result<WebhookEndpointPayload> {
        let r = request(ctx)?;
        let Some(uuid) = decode_as(&id, NodeKind::WebhookEndpoint) else {
            return Ok(WebhookEndpointPayload {
                endpoint: None,
                secret: None,
                user_errors: not_found("webhook endpoint"),
            });
        };
        let input = EndpointInput {
            url: input.url,
            event_types: input.event_types,
            description: match input.description {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(text) => Some(Some(text)),
            },
            enabled: input.enabled,
        };
        let (endpoint, user_errors) =
            into_payload(webhooks::update(r.db, r.principal.workspace_id, uuid, input).await)?;
        Ok(WebhookEndpointPayload {
            endpoint: endpoint.map(WebhookEndpoint),
            secret: None,
            user_errors,
        })
    }

    /// Deletes an endpoint and its deliveries.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn webhook_endpoint_delete(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint.")] id: ID,
    ) -> async_graphql::Result<WebhookEndpointDeletePayload> {
        let r = request(ctx)?;
        let Some(uuid) = decode_as(&id, NodeKind::WebhookEndpoint) else {
            return Ok(WebhookEndpointDeletePayload {
                deleted_endpoint_id: None,
                user_errors: not_found("webhook endpoint"),
            });
        };
        let (deleted, user_errors) = into_payload(webhooks::delete(r.db, r.principal.workspace_id, uuid).await)?;
        Ok(WebhookEndpointDeletePayload {
            deleted_endpoint_id: deleted.map(|id| NodeKind::WebhookEndpoint.id(id)),
            user_errors,
        })
    }

    /// A new signing secret (in the payload, this once); the previous one still signs, beside
    /// it, for 24 hours.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn webhook_secret_rotate(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint.")] id: ID,
    ) -> async_graphql::Result<WebhookEndpointPayload> {
        let r = request(ctx)?;
        let Some(uuid) = decode_as(&id, NodeKind::WebhookEndpoint) else {
            return Ok(WebhookEndpointPayload {
                endpoint: None,
                secret: None,
                user_errors: not_found("webhook endpoint"),
            });
        };
        let (endpoint, user_errors) =
            into_payload(webhooks::rotate_secret(r.db, r.principal.workspace_id, uuid).await)?;
        Ok(WebhookEndpointPayload {
            secret: endpoint.as_ref().map(|e| e.secret.clone()),
            endpoint: endpoint.map(WebhookEndpoint),
            user_errors,
        })
    }

    /// Sends a delivery that is not delivered again, now.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn webhook_delivery_retry(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The delivery.")] id: ID,
    ) -> async_graphql::Result<WebhookDeliveryPayload> {
        let r = request(ctx)?;
        let Some(uuid) = decode_as(&id, NodeKind::WebhookDelivery) else {
            return Ok(WebhookDeliveryPayload {
                delivery: None,
                user_errors: not_found("webhook delivery"),
            });
        };
        let (delivery, user_errors) =
            into_payload(webhooks::retry_delivery(r.db, r.principal.workspace_id, uuid).await)?;
        Ok(WebhookDeliveryPayload {
            delivery: delivery.map(WebhookDelivery),
            user_errors,
        })
    }
}
