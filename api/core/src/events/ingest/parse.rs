//! Parsing Segment-compatible messages (track, page, screen, identify, group, alias): each
//! checked on its own, before anything is resolved or stored.

use crate::values::contains_nul;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value as Json, json};

pub const MAX_CALL_BYTES: usize = 32 * 1024;
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
pub(super) const MAX_ID_LEN: usize = 200;
/// Clock-corrected timestamps further ahead than this are refused.
pub(super) const MAX_FUTURE_HOURS: i64 = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Track,
    Page,
    Screen,
    Identify,
    Group,
    Alias,
}

impl Kind {
    pub fn parse(text: &str) -> Option<Kind> {
        Some(match text {
            "track" => Kind::Track,
            "page" => Kind::Page,
            "screen" => Kind::Screen,
            "identify" => Kind::Identify,
            "group" => Kind::Group,
            "alias" => Kind::Alias,
            _ => return None,
        })
    }
}

/// One validated message.
#[derive(Debug, Clone)]
pub struct Message {
    pub kind: Kind,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub previous_id: Option<String>,
    /// A `group` call's `groupId`: the company's id in the sender's system.
    pub group_id: Option<String>,
    pub message_id: Option<String>,
    /// The time the sender stamped on the message, as sent (before clock-skew correction).
    pub stamped_at: Option<DateTime<Utc>>,
    pub occurred_at: DateTime<Utc>,
    pub event: Option<String>,
    pub name: Option<String>,
    pub properties: Json,
    pub traits: Json,
    pub context: Json,
}

pub(super) fn id_field(value: &Json, field: &str) -> Result<Option<String>, String> {
    match value.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Json::String(s)) if s.len() > MAX_ID_LEN => {
            Err(format!("`{field}` is longer than {MAX_ID_LEN} characters"))
        }
        Some(Json::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(Json::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(format!("`{field}` must be a string, got {other}")),
    }
}

pub(super) fn time_field(value: &Json, field: &str) -> Result<Option<DateTime<Utc>>, String> {
    match value.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| format!("`{field}` is not an ISO-8601 timestamp: `{s}`")),
        Some(other) => Err(format!("`{field}` must be an ISO-8601 string, got {other}")),
    }
}

/// Takes an object field out of the message (no copy).
pub(super) fn object_field(value: &mut Json, field: &str) -> Result<Json, String> {
    match value.get_mut(field).map(Json::take) {
        None | Some(Json::Null) => Ok(json!({})),
        Some(object @ Json::Object(_)) => Ok(object),
        Some(other) => Err(format!("`{field}` must be an object, got {other}")),
    }
}

/// Validates a raw message. `kind` comes from the endpoint, or from `type` inside a batch.
/// Timestamps are corrected for the sender's clock skew as the Segment spec does:
/// `timestamp = receivedAt - (sentAt - originalTimestamp)`.
pub fn parse(
    mut raw: Json,
    kind: Option<Kind>,
    received_at: DateTime<Utc>,
    batch_sent_at: Option<DateTime<Utc>>,
) -> Result<Message, String> {
    if !raw.is_object() {
        return Err("each message must be a JSON object".into());
    }
    let kind = match kind {
        Some(kind) => kind,
        None => match raw.get("type").and_then(Json::as_str) {
            Some(t) => Kind::parse(t).ok_or_else(|| format!("unknown message type `{t}`"))?,
            None => return Err("message has no `type`".into()),
        },
    };
    let user_id = id_field(&raw, "userId")?;
    let anonymous_id = id_field(&raw, "anonymousId")?;
    let previous_id = id_field(&raw, "previousId")?;
    let group_id = if kind == Kind::Group {
        id_field(&raw, "groupId")?
    } else {
        None
    };
    match kind {
        Kind::Alias if user_id.is_none() || previous_id.is_none() => {
            return Err("alias needs both `previousId` and `userId`".into());
        }
        Kind::Alias => {}
        Kind::Group if group_id.is_none() => return Err("group needs a `groupId`".into()),
        _ if user_id.is_none() && anonymous_id.is_none() => {
            return Err("message needs a `userId` or an `anonymousId`".into());
        }
        _ => {}
    }
    let event = match raw.get("event") {
        Some(Json::String(s)) if !s.trim().is_empty() && s.len() <= 300 => Some(s.trim().to_owned()),
        Some(Json::String(_)) | None | Some(Json::Null) if kind == Kind::Track => {
            return Err("track message needs an `event` name (1 to 300 characters)".into());
        }
        _ => None,
    };
    let name = raw
        .get("name")
        .and_then(Json::as_str)
        .map(|s| s.chars().take(300).collect::<String>());
    let original = time_field(&raw, "timestamp")?.or(time_field(&raw, "originalTimestamp")?);
    let sent_at = time_field(&raw, "sentAt")?.or(batch_sent_at);
    let occurred_at = match (original, sent_at) {
        (Some(original), Some(sent)) => received_at
            .checked_sub_signed(sent - original)
            .ok_or("`sentAt` and `timestamp` are too far apart to correct the clock skew")?,
        (Some(original), None) => original,
        (None, _) => received_at,
    };
    if occurred_at < earliest() {
        return Err(format!(
            "timestamp {} is before 2000 (after clock-skew correction)",
            occurred_at.to_rfc3339()
        ));
    }
    if occurred_at > received_at + Duration::hours(MAX_FUTURE_HOURS) {
        return Err(format!(
            "timestamp {} is more than {MAX_FUTURE_HOURS} hours in the future (after clock-skew correction)",
            occurred_at.to_rfc3339()
        ));
    }
    use chrono::SubsecRound;
    let context = object_field(&mut raw, "context")?;
    let traits = object_field(&mut raw, "traits")?;
    // A group call's traits are the company's; `context.traits` are still the user's.
    let traits = if kind == Kind::Group {
        traits
    } else {
        with_context_traits(traits, &context)
    };
    let message = Message {
        kind,
        user_id,
        anonymous_id,
        previous_id,
        group_id,
        message_id: id_field(&raw, "messageId")?,
        stamped_at: original,
        occurred_at: occurred_at.trunc_subsecs(6),
        event,
        name,
        properties: object_field(&mut raw, "properties")?,
        traits,
        context,
    };
    // PostgreSQL stores no NUL character: the message is refused whole, with the reason, and
    // the rest of its batch is stored.
    let texts = [
        &message.user_id,
        &message.anonymous_id,
        &message.previous_id,
        &message.group_id,
        &message.message_id,
        &message.event,
        &message.name,
    ];
    if texts.iter().any(|t| t.as_deref().is_some_and(|t| t.contains('\0'))) {
        return Err("an id or name contains a NUL character".into());
    }
    for (field, bag) in [
        ("properties", &message.properties),
        ("traits", &message.traits),
        ("context", &message.context),
    ] {
        if contains_nul(bag) {
            return Err(format!("`{field}` contains a NUL character"));
        }
    }
    Ok(message)
}

/// The earliest time an event may carry: older ones are a sender's clock or a parser gone wrong.
fn earliest() -> DateTime<Utc> {
    DateTime::from_timestamp(946_684_800, 0).unwrap_or_default()
}

/// RudderStack's SDKs (and analytics.js on some calls) send a user's traits in
/// `context.traits`; the message's own `traits` win where both name a trait.
fn with_context_traits(traits: Json, context: &Json) -> Json {
    let Some(from_context) = context.get("traits").and_then(Json::as_object) else {
        return traits;
    };
    let mut merged = from_context.clone();
    if let Json::Object(own) = traits {
        merged.extend(own);
    }
    Json::Object(merged)
}
