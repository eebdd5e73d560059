//! Outbound webhooks, following the Standard Webhooks specification: a workspace's endpoints
//! (a URL, the event types it takes, a `whsec_` signing secret), events recorded as deliveries
//! in the transaction of their cause ([`record`]), and a job per endpoint delivering them
//! ([`deliver`]): in order per contact, signed (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`), each attempt logged,
//! retried for about three days, after which the endpoint is disabled with the reason.
//!
//! The HTTP request itself goes through a [`Transport`] the server provides (the domain knows
//! no HTTP client); it refuses private addresses unless configuration allows them.

use crate::errors::{MutationResult, UserError, UserErrorCode};
use crate::ids::NodeKind;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use entities::{webhook_delivery, webhook_endpoint};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
};
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use uuid::Uuid;

pub mod delivery;
pub mod target;

/// The event types an endpoint may take.
pub const EVENT_TYPES: [&str; 7] = [
    "contact.created",
    "contact.updated",
    "contact.deleted",
    "contact.merged",
    "segment.entered",
    "segment.exited",
    "form.submitted",
];

/// Endpoints a workspace may have.
const MAX_ENDPOINTS: u64 = 50;
/// How long the previous secret still signs after a rotation.
const PREVIOUS_SECRET_VALID: chrono::Duration = chrono::Duration::hours(24);

/// An outgoing request, as the transport sends it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a receiver answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// The start of the body.
    pub body: String,
}

type Sent<'a> = Pin<Box<dyn Future<Output = Result<Answer, String>> + Send + 'a>>;

/// How webhooks leave the process: the server's HTTP client.
pub trait Transport: Send + Sync {
    /// Posts `request`; an error says why no answer came (refused target, timeout, connection).
    fn post(&self, request: Outgoing) -> Sent<'_>;
}

static TRANSPORT: OnceLock<Arc<dyn Transport>> = OnceLock::new();

/// Installs the process's transport (once; later calls are ignored).
pub fn set_transport(transport: Arc<dyn Transport>) {
    let _ = TRANSPORT.set(transport);
}

fn transport() -> Option<&'static Arc<dyn Transport>> {
    TRANSPORT.get()
}

/// What an endpoint is created or changed with.
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// A new signing secret: `whsec_` and the base64 of 24 random bytes.
fn new_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// The Standard Webhooks signature of a message with one secret: `v1,<base64>`.
pub fn sign(secret: &str, message_id: &str, timestamp: i64, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .unwrap_or_default();
    // HMAC takes a key of any length: this never fails.
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key) else {
        return String::new();
    };
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

fn check_event_types(types: &[String], errors: &mut Vec<UserError>) {
    if types.is_empty() {
        errors.push(UserError::new(
            &["eventTypes"],
            UserErrorCode::Required,
            "name at least one event type",
        ));
    }
    for (i, name) in types.iter().enumerate() {
        if !EVENT_TYPES.contains(&name.as_str()) {
            errors.push(UserError::new(
                &["eventTypes", &i.to_string()],
                UserErrorCode::NotAnOption,
                format!(
                    "`{}` is not an event type; one of: {}",
                    name.chars().take(100).collect::<String>(),
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
    }
}

async fn check_url(url: &str, errors: &mut Vec<UserError>) -> Option<String> {
    if let Err(error) = crate::values::check_text(&["url"], url, crate::values::limits::URL) {
        errors.push(error);
        return None;
    }
    match target::check(url).await {
        Ok(url) => Some(url),
        Err(message) => {
            errors.push(UserError::new(&["url"], UserErrorCode::Invalid, message));
            None
        }
    }
}

fn check_description(description: &Option<String>, errors: &mut Vec<UserError>) {
    if let Some(text) = description
        && let Err(error) = crate::values::check_text(&["description"], text, crate::values::limits::TEXT)
    {
        errors.push(error);
    }
}

/// Creates an endpoint; returns it with its secret (shown this once).
pub async fn create(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    input: EndpointInput,
) -> MutationResult<webhook_endpoint::Model> {
    use sea_orm::PaginatorTrait;
    let mut errors = Vec::new();
    let url = match &input.url {
        Some(url) => check_url(url, &mut errors).await,
        None => {
            errors.push(UserError::new(
                &["url"],
                UserErrorCode::Required,
                "an endpoint needs a URL",
            ));
            None
        }
    };
    let types = input.event_types.clone().unwrap_or_default();
    check_event_types(&types, &mut errors);
    let description = input.description.clone().flatten();
    check_description(&description, &mut errors);
    let count = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::WorkspaceId.eq(workspace_id))
        .count(db)
        .await?;
    if count >= MAX_ENDPOINTS {
        errors.push(UserError::new(
            &["url"],
            UserErrorCode::TooMany,
            format!("a workspace has at most {MAX_ENDPOINTS} endpoints"),
        ));
    }
    if !errors.is_empty() {
        return Err(crate::errors::MutationError::Invalid(errors));
    }
    let now = crate::now();
    let endpoint = webhook_endpoint::Model {
        id: Uuid::now_v7(),
        workspace_id,
        url: url.unwrap_or_default(),
        description,
        event_types: json!(types),
        secret: new_secret(),
        previous_secret: None,
        previous_secret_until: None,
        enabled: input.enabled.unwrap_or(true),
        disabled_reason: None,
        draining_until: None,
        created_at: now,
        updated_at: now,
    };
    webhook_endpoint::ActiveModel::from(endpoint.clone())
        .reset_all()
        .insert(db)
        .await?;
    Ok(endpoint)
}

async fn find(db: &impl ConnectionTrait, workspace_id: Uuid, id: Uuid) -> MutationResult<webhook_endpoint::Model> {
    webhook_endpoint::Entity::find_by_id(id)
        .filter(webhook_endpoint::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?
        .ok_or_else(|| {
            UserError::argument(
                &["id"],
                UserErrorCode::NotFound,
                "no such webhook endpoint in this workspace",
            )
            .into()
        })
}

/// Changes an endpoint; enabling it again clears why it was disabled.
pub async fn update(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    id: Uuid,
    input: EndpointInput,
) -> MutationResult<webhook_endpoint::Model> {
    let endpoint = find(db, workspace_id, id).await?;
    let mut errors = Vec::new();
    let url = match &input.url {
        Some(url) => check_url(url, &mut errors).await,
        None => None,
    };
    if let Some(types) = &input.event_types {
        check_event_types(types, &mut errors);
    }
    if let Some(description) = &input.description {
        check_description(description, &mut errors);
    }
    if !errors.is_empty() {
        return Err(crate::errors::MutationError::Invalid(errors));
    }
    let mut active = endpoint.into_active_model();
    if let Some(url) = url {
        active.url = Set(url);
    }
    if let Some(types) = input.event_types {
        active.event_types = Set(json!(types));
    }
    if let Some(description) = input.description {
        active.description = Set(description);
    }
    if let Some(enabled) = input.enabled {
        active.enabled = Set(enabled);
        if enabled {
            active.disabled_reason = Set(None);
        }
    }
    active.updated_at = Set(crate::now());
    let endpoint = active.update(db).await?;
    if endpoint.enabled {
        // Deliveries held while it was disabled go out now.
        delivery::schedule_drain(db, &endpoint, None).await?;
    }
    Ok(endpoint)
}

/// Deletes an endpoint and its deliveries.
pub async fn delete(db: &impl ConnectionTrait, workspace_id: Uuid, id: Uuid) -> MutationResult<Uuid> {
    let endpoint = find(db, workspace_id, id).await?;
    webhook_endpoint::Entity::delete_by_id(endpoint.id).exec(db).await?;
    Ok(endpoint.id)
}

/// A new secret for an endpoint; the old one still signs (beside it) for a day.
pub async fn rotate_secret(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    id: Uuid,
) -> MutationResult<webhook_endpoint::Model> {
    let endpoint = find(db, workspace_id, id).await?;
    let now = crate::now();
    let mut active = endpoint.clone().into_active_model();
    active.previous_secret = Set(Some(endpoint.secret));
    active.previous_secret_until = Set(Some(now + PREVIOUS_SECRET_VALID));
    active.secret = Set(new_secret());
    active.updated_at = Set(now);
    Ok(active.update(db).await?)
}

/// An event for webhooks: its type, the contact it is about (deliveries about one contact go
/// out in order), and its data (stable global ids).
#[derive(Debug, Clone)]
pub struct Event {
    pub event_type: &'static str,
    pub contact_id: Option<Uuid>,
    pub data: serde_json::Value,
}

impl Event {
    pub fn about_contact(event_type: &'static str, contact_id: Uuid, mut data: serde_json::Value) -> Event {
        if let Some(object) = data.as_object_mut() {
            object.insert("contactId".into(), json!(NodeKind::Contact.encode(contact_id)));
        }
        Event {
            event_type,
            contact_id: Some(contact_id),
            data,
        }
    }
}

/// Whether any enabled endpoint of the workspace takes `event_type` (so callers read what an
/// event needs only when someone wants it).
pub async fn wanted(db: &impl ConnectionTrait, workspace_id: Uuid, event_type: &str) -> Result<bool, sea_orm::DbErr> {
    let endpoints = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::WorkspaceId.eq(workspace_id))
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .all(db)
        .await?;
    Ok(endpoints.iter().any(|endpoint| {
        endpoint
            .event_types
            .as_array()
            .is_some_and(|types| types.iter().any(|t| t.as_str() == Some(event_type)))
    }))
}

/// Records `events` of a workspace as deliveries to its enabled endpoints that take them, in
/// the caller's transaction (they exist only if it commits), and queues their delivery. One
/// query when the workspace has no endpoint.
pub async fn record(db: &impl ConnectionTrait, workspace_id: Uuid, events: &[Event]) -> Result<(), sea_orm::DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    let endpoints = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::WorkspaceId.eq(workspace_id))
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .all(db)
        .await?;
    if endpoints.is_empty() {
        return Ok(());
    }
    let now = crate::now();
    for endpoint in &endpoints {
        let takes: Vec<&str> = endpoint
            .event_types
            .as_array()
            .map(|types| types.iter().filter_map(|t| t.as_str()).collect())
            .unwrap_or_default();
        let rows: Vec<webhook_delivery::ActiveModel> = events
            .iter()
            .filter(|event| takes.contains(&event.event_type))
            .map(|event| {
                webhook_delivery::ActiveModel::from(webhook_delivery::Model {
                    id: Uuid::now_v7(),
                    workspace_id,
                    endpoint_id: endpoint.id,
                    event_type: event.event_type.into(),
                    contact_id: event.contact_id,
                    payload: json!({ "type": event.event_type, "timestamp": now.to_rfc3339(), "data": event.data }),
                    state: delivery::PENDING.into(),
                    attempts: 0,
                    next_attempt_at: now,
                    created_at: now,
                    delivered_at: None,
                    last_status: None,
                    last_error: None,
                })
                .reset_all()
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        for chunk in rows.chunks(500) {
            webhook_delivery::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(db)
                .await?;
        }
        delivery::schedule_drain(db, endpoint, None).await?;
    }
    Ok(())
}

/// Sends one delivery again now (a failed one, or a pending one waiting for its retry).
pub async fn retry_delivery(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    id: Uuid,
) -> MutationResult<webhook_delivery::Model> {
    let Some(found) = webhook_delivery::Entity::find_by_id(id)
        .filter(webhook_delivery::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?
    else {
        return Err(UserError::argument(&["id"], UserErrorCode::NotFound, "no such delivery in this workspace").into());
    };
    if found.state == delivery::DELIVERED {
        return Err(
            UserError::argument(&["id"], UserErrorCode::WrongState, "the delivery was delivered already").into(),
        );
    }
    let now = crate::now();
    webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::State, Expr::val(delivery::PENDING))
        .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::val(now))
        .filter(webhook_delivery::Column::Id.eq(id))
        .exec(db)
        .await?;
    let endpoint = webhook_endpoint::Entity::find_by_id(found.endpoint_id)
        .one(db)
        .await?
        .ok_or_else(|| crate::error::ApiError::NotFound("the delivery's endpoint".into()))?;
    delivery::schedule_drain(db, &endpoint, None).await?;
    Ok(webhook_delivery::Model {
        state: delivery::PENDING.into(),
        next_attempt_at: now,
        ..found
    })
}

/// When `at` is, as the `webhook-timestamp` header says it: seconds since the epoch.
pub fn timestamp(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}
