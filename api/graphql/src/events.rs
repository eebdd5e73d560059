//! The GraphQL face of the journey: events, timelines, back-office events, merges, write keys.

use crate::contacts::{Channel, Contact, Utm};
use crate::convert::IntoDomain;
use crate::filters::{EventFilter, TimelineFilter};
use crate::guards::ScopeGuard;
use crate::loaders::load_failed;
use crate::relay::NodeId;
use crate::relay::{NodeKind, connection, connection_cost, decode_as};
use crate::request;
use crate::user_error::{UserError, UserErrorCode, into_payload};
use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entities::{contact, event, write_key};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Select};
use std::sync::Arc;
use uuid::Uuid;
use voxtur_core::auth::{PrincipalCache, Scope};
use voxtur_core::events::record::EventRecord;
use voxtur_core::events::write_keys;
use voxtur_core::listing::{Direction, PageArgs, SortSpec, timestamp_key};

/// What happened. Standard types carry known meaning; anything else is `CUSTOM` with a name.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[graphql(remote = "voxtur_core::events::EventType")]
pub enum EventType {
    /// A web page or app screen was viewed.
    PageViewed,
    /// A form was submitted.
    FormSubmitted,
    /// An email was sent to the contact.
    EmailSent,
    /// An email reached the contact's mailbox.
    EmailDelivered,
    /// An email was opened.
    EmailOpened,
    /// A link in an email was clicked.
    EmailClicked,
    /// An email bounced.
    EmailBounced,
    /// The contact unsubscribed from email.
    EmailUnsubscribed,
    /// A tracked link or button was clicked.
    LinkClicked,
    /// A product page was viewed.
    ProductViewed,
    /// The cart changed.
    CartUpdated,
    /// An order was placed.
    OrderCompleted,
    /// A meeting was booked.
    MeetingBooked,
    /// A phone call was logged.
    CallLogged,
    /// A visit was logged.
    VisitLogged,
    /// A letter was sent.
    LetterSent,
    /// A text message was sent.
    SmsSent,
    /// The customer portal was visited.
    PortalVisited,
    /// The contact identified themselves (traits in the properties).
    Identified,
    /// The contact entered a segment.
    SegmentEntered,
    /// The contact left a segment.
    SegmentExited,
    /// A custom event; see its name.
    Custom,
}

impl EventType {
    /// The stored name (`page_viewed`); `custom` for custom events.
    pub fn as_str(self) -> &'static str {
        voxtur_core::events::EventType::from(self).as_str()
    }

    pub fn parse(text: &str) -> EventType {
        voxtur_core::events::EventType::parse(text).into()
    }
}

/// One interaction of a contact with the company.
pub struct Event(pub event::Model);

impl From<event::Model> for Event {
    fn from(model: event::Model) -> Self {
        Event(model)
    }
}

/// One interaction of a contact with the company.
#[Object]
impl Event {
    /// Global id.
    pub async fn id(&self) -> ID {
        NodeKind::Event.id(self.0.id)
    }
    /// What happened.
    #[graphql(name = "type")]
    async fn event_type(&self) -> EventType {
        EventType::parse(&self.0.event_type)
    }
    /// The custom event's name, or the page's name.
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    /// The contact it happened to (with `contacts:read`: whoever reads events for analysis
    /// does not read who did them).
    #[graphql(guard = "ScopeGuard(Scope::ContactsRead)")]
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        let r = request(ctx)?;
        Ok(r.loaders
            .contacts
            .load_one(self.0.contact_id)
            .await
            .map_err(load_failed)?
            .map(Contact::from))
    }
    /// When it happened (clock-skew corrected).
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    /// When Voxtur received it.
    async fn received_at(&self) -> DateTime<Utc> {
        self.0.received_at
    }
    /// Where it came from: `segment`, `form`, `landing_page`, `link`, `backoffice`.
    async fn source(&self) -> &str {
        &self.0.source
    }
    /// The channel, when known.
    async fn channel(&self) -> Option<Channel> {
        self.0.channel.as_deref().and_then(Channel::parse)
    }
    /// The campaign it is attributed to, when known.
    async fn campaign(&self) -> Option<&str> {
        self.0.campaign.as_deref()
    }
    /// UTM parameters.
    async fn utm(&self) -> Utm {
        let m = &self.0;
        Utm::of(
            &m.utm_source,
            &m.utm_medium,
            &m.utm_campaign,
            &m.utm_term,
            &m.utm_content,
        )
    }
    /// The event's properties, as sent.
    async fn properties(&self) -> Json<serde_json::Value> {
        Json(self.0.properties.clone())
    }
    /// The sender's message id (deduplication key).
    async fn message_id(&self) -> Option<&str> {
        self.0.message_id.as_deref()
    }
}

connection!(EventConnection, EventEdge, Event, event::Model);

/// Newest first: occurred_at DESC, then id DESC.
pub fn timeline_spec(list: &'static str) -> SortSpec<event::Model> {
    SortSpec {
        list,
        keys: vec![timestamp_key::<event::Model>(
            "occurredAt",
            event::Column::OccurredAt.into_expr(),
            Direction::Desc,
            |m| &m.occurred_at,
        )],
        id_expr: event::Column::Id.into_expr(),
        id_of: |m| m.id,
    }
}

pub fn events_of(workspace_id: Uuid) -> Select<event::Entity> {
    event::Entity::find().filter(event::Column::WorkspaceId.eq(workspace_id))
}

#[derive(Default)]
pub struct EventQuery;

#[Object]
impl EventQuery {
    /// Events across the workspace, newest first, for analysts and integrations.
    #[graphql(
        guard = "ScopeGuard(Scope::ContactsRead).or(ScopeGuard(Scope::AnalyticsRead))",
        complexity = "connection_cost(first, last, child_complexity)"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Conditions the events must meet.")] filter: Option<EventFilter>,
        #[graphql(desc = "Page size going forward (1 to 100, default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after.")] after: Option<String>,
        #[graphql(desc = "Page size going backward (1 to 100).")] last: Option<i32>,
        #[graphql(desc = "Cursor to continue before.")] before: Option<String>,
    ) -> async_graphql::Result<EventConnection> {
        let r = request(ctx)?;
        let mut select = events_of(r.principal.workspace_id);
        let filter: Option<voxtur_core::events::filter::EventFilter> = filter.into_domain();
        if let Some(filter) = &filter {
            select = select.filter(filter.condition()?);
        }
        let with_total = ctx.look_ahead().field("totalCount").exists();
        Ok(timeline_spec("events")
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

    /// Write keys of the workspace (their secrets are never shown again).
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn write_keys(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<WriteKey>> {
        let r = request(ctx)?;
        let keys = write_key::Entity::find()
            .filter(write_key::Column::WorkspaceId.eq(r.principal.workspace_id))
            .order_by_desc(write_key::Column::CreatedAt)
            .all(r.db)
            .await?;
        Ok(keys.into_iter().map(WriteKey).collect())
    }
}

/// A key for the tracking API (`/v1/*`), sent as the HTTP basic-auth username.
pub struct WriteKey(pub write_key::Model);

/// A key for the tracking API (`/v1/*`), sent as the HTTP basic-auth username.
#[Object(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
impl WriteKey {
    /// Global id.
    async fn id(&self) -> ID {
        NodeKind::WriteKey.id(self.0.id)
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The key's first characters.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    /// When the key was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When the key was revoked (or rotated away).
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    /// The sites whose browsers may send with this key; `["*"]` for any.
    async fn allowed_origins(&self) -> Vec<String> {
        match &self.0.allowed_origins {
            Some(stored) => write_keys::origins_of(stored),
            None => vec!["*".to_owned()],
        }
    }
}

/// A back-office interaction to record, e.g. a logged phone call or visit.
#[derive(InputObject)]
pub struct EventRecordInput {
    /// The contact.
    pub contact_id: ID,
    /// What happened.
    #[graphql(name = "type")]
    pub event_type: EventType,
    /// Name, required for CUSTOM events (at most 300 characters).
    pub name: Option<String>,
    /// When it happened (default now; not more than a day ahead).
    pub occurred_at: Option<DateTime<Utc>>,
    /// The channel.
    pub channel: Option<Channel>,
    /// The campaign it belongs to (at most 300 characters).
    pub campaign: Option<String>,
    /// Details, e.g. `{"durationSeconds": 300, "outcome": "interested"}`; at most 32 KB as JSON.
    pub properties: Option<Json<serde_json::Value>>,
}

/// Result of `eventRecord`.
#[derive(SimpleObject)]
pub struct EventRecordPayload {
    /// The recorded event.
    pub event: Option<Event>,
    /// Validation failures; nothing was saved when this is not empty.
    pub user_errors: Vec<UserError>,
}

/// Result of `contactMerge`.
#[derive(SimpleObject)]
pub struct ContactMergePayload {
    /// The surviving contact, with the merged fields.
    pub contact: Option<Contact>,
    /// Events moved from the merged-away contact.
    pub events_moved: i32,
    /// Validation failures; nothing was merged when this is not empty.
    pub user_errors: Vec<UserError>,
}

/// Result of `writeKeyCreate` and `writeKeyRotate`.
#[derive(SimpleObject)]
pub struct WriteKeyPayload {
    /// The key.
    pub write_key: Option<WriteKey>,
    /// The secret, shown only now.
    pub secret: Option<String>,
    /// Validation failures.
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct EventMutation;

fn fail(path: &[&str], code: UserErrorCode, message: impl Into<String>) -> Vec<UserError> {
    vec![UserError::new(path, code, message)]
}

#[Object]
impl EventMutation {
    /// Records a back-office event on a contact's timeline (a logged call, visit, letter...).
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn event_record(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The event.")] input: EventRecordInput,
    ) -> async_graphql::Result<EventRecordPayload> {
        let r = request(ctx)?;
        let record = EventRecord {
            contact_id: input.contact_id.0,
            event_type: input.event_type.into(),
            name: input.name,
            occurred_at: input.occurred_at,
            channel: input.channel.map(Into::into),
            campaign: input.campaign,
            properties: input.properties.map(|p| p.0),
        };
        let (event, user_errors) =
            into_payload(voxtur_core::events::record::record(r.db, r.principal.workspace_id, record).await)?;
        Ok(EventRecordPayload {
            event: event.map(Event),
            user_errors,
        })
    }

    /// Merges `loserId` into `winnerId`: events, identities and tags move to the winner; the
    /// winner's field values win and the loser fills the gaps (consent: the most restrictive;
    /// lifecycle: the furthest stage); the loser is deleted and the merge recorded.
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn contact_merge(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The contact that remains.")] winner_id: ID,
        #[graphql(desc = "The contact merged into it and removed.")] loser_id: ID,
    ) -> async_graphql::Result<ContactMergePayload> {
        let r = request(ctx)?;
        let merged =
            voxtur_core::events::record::merge_contacts(r.db, r.principal.workspace_id, &winner_id, &loser_id).await;
        let (merged, user_errors) = into_payload(merged)?;
        Ok(ContactMergePayload {
            events_moved: merged
                .as_ref()
                .map_or(0, |m| i32::try_from(m.events_moved).unwrap_or(i32::MAX)),
            contact: merged.map(|m| Contact::from(m.contact)),
            user_errors,
        })
    }

    /// Creates a write key for the tracking API. The secret is in the payload, once.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn write_key_create(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A name for the key.")] name: String,
        #[graphql(
            desc = "The sites (origins such as `https://shop.example`) whose browsers may send with \
                          this key; omitted or `[\"*\"]`: any site, as with Segment. Calls without an \
                          `Origin` header (server libraries) are never refused for it."
        )]
        allowed_origins: Option<Vec<String>>,
    ) -> async_graphql::Result<WriteKeyPayload> {
        let r = request(ctx)?;
        let issued = write_keys::create(r.db, r.principal.workspace_id, &name, allowed_origins.as_deref()).await;
        let (issued, user_errors) = into_payload(issued)?;
        Ok(WriteKeyPayload {
            secret: issued.as_ref().map(|i| i.secret.clone()),
            write_key: issued.map(|i| WriteKey(i.key)),
            user_errors,
        })
    }

    /// Sets the sites whose browsers may send with a write key; `["*"]` for any.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn write_key_set_origins(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The key's id.")] id: ID,
        #[graphql(desc = "Origins such as `https://shop.example`, or `[\"*\"]` for any.")] allowed_origins: Vec<String>,
    ) -> async_graphql::Result<WriteKeyPayload> {
        let r = request(ctx)?;
        let updated = match write_keys::parse_origins(&allowed_origins, "allowedOrigins") {
            Err(error) => Err(error.into()),
            Ok(origins) => match decode_as(&id, NodeKind::WriteKey) {
                Some(uuid) => {
                    let cache = ctx.data::<Arc<PrincipalCache>>()?;
                    write_keys::set_origins(r.db, cache, r.principal.workspace_id, uuid, origins).await
                }
                None => Err(voxtur_core::errors::UserError::argument(
                    &["id"],
                    voxtur_core::errors::UserErrorCode::NotFound,
                    "no live write key with this id",
                )
                .into()),
            },
        };
        let (key, user_errors) = into_payload(updated)?;
        Ok(WriteKeyPayload {
            write_key: key.map(WriteKey),
            secret: None,
            user_errors,
        })
    }

    /// Replaces a write key with a new secret; the old one stops working at once.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn write_key_rotate(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The key's id.")] id: ID,
    ) -> async_graphql::Result<WriteKeyPayload> {
        let r = request(ctx)?;
        let rotated = match decode_as(&id, NodeKind::WriteKey) {
            Some(uuid) => {
                write_keys::rotate(r.db, ctx.data::<Arc<PrincipalCache>>()?, r.principal.workspace_id, uuid).await?
            }
            None => None,
        };
        Ok(match rotated {
            Some(issued) => WriteKeyPayload {
                write_key: Some(WriteKey(issued.key)),
                secret: Some(issued.secret),
                user_errors: Vec::new(),
            },
            None => WriteKeyPayload {
                write_key: None,
                secret: None,
                user_errors: fail(&["id"], UserErrorCode::NotFound, "no live write key with this id"),
            },
        })
    }

    /// Revokes a write key at once.
    #[graphql(guard = "ScopeGuard(Scope::WorkspaceAdmin)")]
    async fn write_key_revoke(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The key's id.")] id: ID,
    ) -> async_graphql::Result<WriteKeyPayload> {
        let r = request(ctx)?;
        let revoked = match decode_as(&id, NodeKind::WriteKey) {
            Some(uuid) => {
                write_keys::revoke(r.db, ctx.data::<Arc<PrincipalCache>>()?, r.principal.workspace_id, uuid).await?
            }
            None => None,
        };
        Ok(match revoked {
            Some(key) => WriteKeyPayload {
                write_key: Some(WriteKey(key)),
                secret: None,
                user_errors: Vec::new(),
            },
            None => WriteKeyPayload {
                write_key: None,
                secret: None,
                user_errors: fail(&["id"], UserErrorCode::NotFound, "no write key with this id"),
            },
        })
    }
}

/// The first page of a contact's timeline; batched across a list of contacts.
pub async fn timeline(
    ctx: &Context<'_>,
    contact: &contact::Model,
    first: Option<i32>,
    after: Option<String>,
    filter: Option<TimelineFilter>,
) -> async_graphql::Result<EventConnection> {
    let r = request(ctx)?;
    let filter: voxtur_core::events::filter::TimelineFilter = filter.unwrap_or_default().into_domain();
    let condition = filter.condition()?;
    let spec = timeline_spec("timeline");
    let with_total = ctx.look_ahead().field("totalCount").exists();
    let page = PageArgs::forward(first, after.clone());
    page.validate()?;
    if after.is_some() || with_total {
        let select = events_of(r.principal.workspace_id)
            .filter(event::Column::ContactId.eq(contact.id))
            .filter(condition);
        return Ok(spec.fetch(r.db, select, &page, with_total).await?.into());
    }
    let size = first.unwrap_or(voxtur_core::listing::DEFAULT_PAGE_SIZE as i32) as u64;
    let key = crate::loaders::TimelineKey {
        contact_id: contact.id,
        limit: size + 1,
        filter,
    };
    let mut rows = r
        .loaders
        .timelines
        .load_one(key)
        .await
        .map_err(load_failed)?
        .unwrap_or_default();
    let has_next_page = rows.len() as u64 > size;
    rows.truncate(size as usize);
    let every_cursor = ctx.look_ahead().field("edges").field("cursor").exists();
    let rows = spec.with_cursors(rows, every_cursor);
    Ok(voxtur_core::listing::Page {
        rows,
        has_next_page,
        has_previous_page: false,
        total_count: None,
    }
    .into())
}
