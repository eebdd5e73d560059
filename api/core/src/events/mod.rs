//! The contact journey: an append-only event store, identity resolution (anonymous visitors,
//! user ids, merges), Segment-compatible ingestion, and the timeline.

pub mod filter;
pub mod identity;
pub mod ingest;
pub mod record;
pub mod tally;
pub mod write_keys;

use chrono::{DateTime, Utc};
use entities::{contact, contact_identity, event};
use sea_orm::sea_query::{Expr, LockType, Query, Value};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, Iterable, QueryFilter, QueryOrder, QuerySelect,
    Statement,
};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// What happened. Standard types carry known meaning; anything else is `CUSTOM` with a name.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
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
    /// The standard types, in the order of `STANDARD_TYPES`.
    const STANDARD: [EventType; 21] = [
        EventType::PageViewed,
        EventType::FormSubmitted,
        EventType::EmailSent,
        EventType::EmailDelivered,
        EventType::EmailOpened,
        EventType::EmailClicked,
        EventType::EmailBounced,
        EventType::EmailUnsubscribed,
        EventType::LinkClicked,
        EventType::ProductViewed,
        EventType::CartUpdated,
        EventType::OrderCompleted,
        EventType::MeetingBooked,
        EventType::CallLogged,
        EventType::VisitLogged,
        EventType::LetterSent,
        EventType::SmsSent,
        EventType::PortalVisited,
        EventType::Identified,
        EventType::SegmentEntered,
        EventType::SegmentExited,
    ];

    /// The stored name (`page_viewed`); `custom` for custom events.
    pub fn as_str(self) -> &'static str {
        EventType::STANDARD
            .iter()
            .position(|t| *t == self)
            .map_or("custom", |i| STANDARD_TYPES[i])
    }

    /// The type of a stored name; anything not standard is custom.
    pub fn parse(text: &str) -> EventType {
        EventType::STANDARD
            .into_iter()
            .find(|t| t.as_str() == text)
            .unwrap_or(EventType::Custom)
    }
}

/// Standard event types. Anything else is `custom` with a name.
pub const STANDARD_TYPES: [&str; 21] = [
    "page_viewed",
    "form_submitted",
    "email_sent",
    "email_delivered",
    "email_opened",
    "email_clicked",
    "email_bounced",
    "email_unsubscribed",
    "link_clicked",
    "product_viewed",
    "cart_updated",
    "order_completed",
    "meeting_booked",
    "call_logged",
    "visit_logged",
    "letter_sent",
    "sms_sent",
    "portal_visited",
    "identified",
    "segment_entered",
    "segment_exited",
];

/// Maps a Segment `track` event name to a standard type, following Segment's semantic event
/// names (e.g. "Order Completed") and our snake_case names; other names are custom events.
pub fn type_for_track(name: &str) -> &'static str {
    let normalized: String = name
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect();
    let aliases: [(&str, &str); 8] = [
        ("product_added", "cart_updated"),
        ("product_removed", "cart_updated"),
        ("cart_viewed", "cart_updated"),
        ("email_link_clicked", "email_clicked"),
        ("email_marked_as_spam", "email_unsubscribed"),
        ("unsubscribed", "email_unsubscribed"),
        ("call_completed", "call_logged"),
        ("page_view", "page_viewed"),
    ];
    if let Some((_, standard)) = aliases.iter().find(|(alias, _)| *alias == normalized) {
        return standard;
    }
    STANDARD_TYPES
        .iter()
        .find(|t| **t == normalized)
        .copied()
        .unwrap_or("custom")
}

/// The id of the event a message records. A message with a `messageId` gets the same id every
/// time it arrives: from the workspace, that id and the time its sender stamped on it (kept
/// as the UUID v7 time, so ids stay in the order events happened and inserts append to the
/// primary key). A retried message then meets its first copy on the primary key, and no index
/// on message ids is kept (migration 9). Without a stamp the time part is zero. Segment's
/// libraries resend a message unchanged, stamp included. Without a `messageId` (back-office
/// events, forms) nothing can repeat the event, and the id is a fresh UUID v7.
pub fn event_id(workspace_id: Uuid, message_id: Option<&str>, stamped_at: Option<DateTime<Utc>>) -> Uuid {
    let Some(message_id) = message_id else {
        return Uuid::now_v7();
    };
    let mut random = [0u8; 10];
    random.copy_from_slice(&workspace_digest(workspace_id, message_id)[..10]);
    let millis = stamped_at.map_or(0, |t| t.timestamp_millis().clamp(0, (1 << 48) - 1) as u64);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// The first 16 bytes of SHA-256 over a workspace id and a key: the stable part of ids that
/// derive from what a sender named (profiles, events).
pub(crate) fn workspace_digest(workspace_id: Uuid, key: &str) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(workspace_id.as_bytes())
        .chain_update(key.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes
}

/// Inserts events, skipping repeats of a message: one already stored (a retried batch) or
/// earlier in `rows`. Returns the ones stored.
///
/// Repeats are found by one look-up of the ids messages derive (`event_id`) before the insert,
/// so the insert needs no `RETURNING` (every returned row is a wake-up of our thread by SQLite's
/// worker, 500 a batch) and no `ON CONFLICT`. A concurrent batch storing the same message
/// between the two (PostgreSQL; SQLite has one writer) fails ours on the primary key, and its
/// retry finds the message stored.
pub async fn insert_events(db: &impl ConnectionTrait, mut rows: Vec<event::Model>) -> Result<Vec<event::Model>, DbErr> {
    let mut seen = HashSet::with_capacity(rows.len());
    rows.retain(|e| seen.insert(e.id));
    let repeatable: Vec<Uuid> = rows.iter().filter(|e| e.message_id.is_some()).map(|e| e.id).collect();
    let mut stored = HashSet::new();
    for chunk in repeatable.chunks(1_000) {
        stored.extend(
            event::Entity::find()
                .select_only()
                .column(event::Column::Id)
                .filter(crate::db::any_of(
                    db.get_database_backend(),
                    event::Column::Id,
                    chunk.to_vec(),
                ))
                .into_tuple::<Uuid>()
                .all(db)
                .await?,
        );
    }
    rows.retain(|e| !stored.contains(&e.id));
    // 17 columns a row: 1,000 rows stay under both backends' bound-parameter limits.
    for chunk in rows.chunks(1_000) {
        let mut insert = Query::insert();
        insert.into_table(event::Entity).columns(event::Column::iter());
        for row in chunk {
            insert.values_panic(event_values(row).map(Expr::val));
        }
        db.execute(&insert).await?;
    }
    Ok(rows)
}

/// An event's values in `event::Column` order. Built directly: going through active models,
/// `insert_many` cost more than building the statement (docs/perf-history.md, issue 3, fifteenth
/// session).
fn event_values(e: &event::Model) -> [Value; 17] {
    [
        e.id.into(),
        e.workspace_id.into(),
        e.contact_id.into(),
        e.event_type.clone().into(),
        e.name.clone().into(),
        e.occurred_at.into(),
        e.received_at.into(),
        e.source.clone().into(),
        e.channel.clone().into(),
        e.campaign.clone().into(),
        e.utm_source.clone().into(),
        e.utm_medium.clone().into(),
        e.utm_campaign.clone().into(),
        e.utm_term.clone().into(),
        e.utm_content.clone().into(),
        e.properties.clone().into(),
        e.message_id.clone().into(),
    ]
}

/// What stored events change beside themselves: their contacts' activity times and event
/// tallies. `events` are the ones actually stored, with their final contacts.
pub async fn record_activity(db: &impl ConnectionTrait, events: &[event::Model]) -> Result<(), DbErr> {
    touch_activity(db, events).await?;
    tally::add(db, events).await
}

/// Locks contact rows in id order before events or identities are added to them or they change
/// (PostgreSQL; SQLite has one writer): `strong` ones for update (about to be deleted, or their
/// unique email changes), the rest for an update that keeps their keys, which does not wait for
/// readers checking a reference. Consecutive rows of one strength share a statement; the order
/// holds across them, so writers locking this way never deadlock. False when any is gone
/// (merged away or deleted since the caller read it).
pub async fn lock_contacts(db: &impl ConnectionTrait, ids: &[Uuid], strong: &HashSet<Uuid>) -> Result<bool, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(true);
    }
    for run in ids.chunk_by(|a, b| strong.contains(a) == strong.contains(b)) {
        let lock = if strong.contains(&run[0]) {
            LockType::Update
        } else {
            LockType::NoKeyUpdate
        };
        for chunk in run.chunks(1_000) {
            let locked = contact::Entity::find()
                .select_only()
                .column(contact::Column::Id)
                .filter(crate::db::any_of(
                    DbBackend::Postgres,
                    contact::Column::Id,
                    chunk.to_vec(),
                ))
                .order_by_asc(contact::Column::Id)
                .lock(lock)
                .into_tuple::<Uuid>()
                .all(db)
                .await?;
            if locked.len() < chunk.len() {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Deletes a contact's events, tallies and identities, before the contact itself (whose row the caller
/// has locked for update). On PostgreSQL no foreign key cascades them; see migration 6.
pub async fn delete_journey(db: &impl ConnectionTrait, workspace_id: Uuid, contact_id: Uuid) -> Result<(), DbErr> {
    event::Entity::delete_many()
        .filter(event::Column::WorkspaceId.eq(workspace_id))
        .filter(event::Column::ContactId.eq(contact_id))
        .exec(db)
        .await?;
    contact_identity::Entity::delete_many()
        .filter(contact_identity::Column::WorkspaceId.eq(workspace_id))
        .filter(contact_identity::Column::ContactId.eq(contact_id))
        .exec(db)
        .await?;
    tally::forget(db, workspace_id, contact_id).await
}

/// Moves each contact's `first_seen_at` / `last_activity_at` to include the given events, in one
/// statement.
async fn touch_activity(db: &impl ConnectionTrait, rows: &[event::Model]) -> Result<(), DbErr> {
    let mut span: HashMap<Uuid, (DateTime<Utc>, DateTime<Utc>)> = HashMap::new();
    for row in rows {
        let entry = span.entry(row.contact_id).or_insert((row.occurred_at, row.occurred_at));
        entry.0 = entry.0.min(row.occurred_at);
        entry.1 = entry.1.max(row.occurred_at);
    }
    let backend = db.get_database_backend();
    // In id order, the order every batch locks rows in, so concurrent batches never deadlock.
    let mut spans: Vec<_> = span.into_iter().collect();
    spans.sort_by_key(|(id, _)| *id);
    let update = |rows: &str| {
        let (greatest, least) = match backend {
            DbBackend::Postgres => ("GREATEST", "LEAST"),
            _ => ("MAX", "MIN"),
        };
        format!(
            "WITH v(id, first_at, last_at) AS ({rows}) \
             UPDATE contact SET \
               last_activity_at = {greatest}(COALESCE(contact.last_activity_at, v.last_at), v.last_at), \
               first_seen_at = {least}(COALESCE(contact.first_seen_at, v.first_at), v.first_at) \
             FROM v WHERE contact.id = v.id \
               AND (contact.last_activity_at IS NULL OR contact.last_activity_at < v.last_at \
                    OR contact.first_seen_at IS NULL OR contact.first_seen_at > v.first_at)"
        )
    };
    if backend == DbBackend::Postgres {
        // Three array parameters: one statement text for any batch.
        let ids: Vec<Uuid> = spans.iter().map(|(id, _)| *id).collect();
        let firsts: Vec<DateTime<Utc>> = spans.iter().map(|(_, (first, _))| *first).collect();
        let lasts: Vec<DateTime<Utc>> = spans.iter().map(|(_, (_, last))| *last).collect();
        let sql = update("SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[])");
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [Value::from(ids), Value::from(firsts), Value::from(lasts)],
        ))
        .await?;
        return Ok(());
    }
    // One JSON array parameter (see `db::any_of`), where a `VALUES` list of each length was a
    // statement of its own to prepare.
    let list: Vec<serde_json::Value> = spans
        .iter()
        .map(|(id, (first, last))| {
            serde_json::json!([
                id.simple().to_string(),
                crate::db::sqlite_time(*first),
                crate::db::sqlite_time(*last)
            ])
        })
        .collect();
    let sql = update("SELECT unhex(value ->> 0), value ->> 1, value ->> 2 FROM json_each(?)");
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [Value::from(serde_json::Value::Array(list).to_string())],
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_values_follow_the_columns() {
        use sea_orm::ActiveModelTrait;
        let event = event::Model {
            id: Uuid::now_v7(),
            workspace_id: Uuid::now_v7(),
            contact_id: Uuid::now_v7(),
            event_type: "page_viewed".into(),
            name: Some("Home".into()),
            occurred_at: crate::now(),
            received_at: crate::now() + chrono::Duration::seconds(1),
            source: "segment".into(),
            channel: Some("web".into()),
            campaign: Some("c".into()),
            utm_source: Some("s".into()),
            utm_medium: Some("m".into()),
            utm_campaign: Some("uc".into()),
            utm_term: Some("t".into()),
            utm_content: Some("ct".into()),
            properties: serde_json::json!({ "path": "/" }),
            message_id: Some("m-1".into()),
        };
        let model = event::ActiveModel::from(event.clone());
        let expected: Vec<Value> = event::Column::iter()
            .map(|column| model.get(column).into_value().unwrap())
            .collect();
        assert_eq!(event_values(&event).to_vec(), expected);
    }

    #[test]
    fn segment_names_map_to_standard_types() {
        assert_eq!(type_for_track("Order Completed"), "order_completed");
        assert_eq!(type_for_track("Product Added"), "cart_updated");
        assert_eq!(type_for_track("page_viewed"), "page_viewed");
        assert_eq!(type_for_track("Signed Up For Beta"), "custom");
    }

    #[test]
    fn a_message_gets_the_same_event_id_each_time_it_arrives() {
        let (one, two) = (Uuid::now_v7(), Uuid::now_v7());
        let stamp = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap().to_utc());
        let at = stamp("2026-11-20T12:00:00.123Z");
        let id = event_id(one, Some("m-1"), at);
        assert_eq!(id, event_id(one, Some("m-1"), at), "a retry");
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(id.get_timestamp().unwrap().to_unix(), (1_795_176_000, 123_000_000));
        assert_ne!(id, event_id(two, Some("m-1"), at), "another workspace's message");
        assert_ne!(id, event_id(one, Some("m-2"), at), "another message");
        assert!(
            id < event_id(one, Some("m-0"), stamp("2026-11-20T12:00:00.124Z")),
            "stamped later"
        );
        assert_eq!(
            event_id(one, Some("m-1"), None),
            event_id(one, Some("m-1"), None),
            "no stamp"
        );
        assert_eq!(
            event_id(one, Some("m-1"), stamp("1960-01-01T00:00:00Z")),
            event_id(one, Some("m-1"), None)
        );
        assert_ne!(event_id(one, None, at), event_id(one, None, at), "nothing to repeat");
    }
}
