//! Segment-compatible messages (track, page, screen, identify, group, alias) and the batch
//! pipeline that resolves identities and stores events.
//!
//! Per batch: one identity lookup, one email lookup, one contact load, then resolution in
//! memory in message order (new profiles get ids in memory; merges between stored contacts are
//! decided in memory and carried out in SQL at the end), then multi-row inserts, the row locks,
//! the merges and one activity update. The whole batch is one transaction, retried when a
//! concurrent batch created the same identity first or merged a profile away under it.

use super::identity::{merge, merged_fields};
use super::{event_id, insert_events, lock_contacts, record_activity, type_for_track, workspace_digest};
use crate::companies::parse_domain;
use crate::contacts::parse_email;
use crate::custom_fields::{Definitions, normalize_value};
use crate::writes::{Changes, Merge, StoredEvent};
use chrono::{DateTime, Duration, Utc};
use entities::enums::ObjectType;
use entities::{company, contact, contact_identity, deleted_contact, event};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, SqlErr, Statement, TransactionTrait,
    sea_query::{LockType, OnConflict},
};
use serde_json::{Value as Json, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

pub const MAX_CALL_BYTES: usize = 32 * 1024;
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
const MAX_ID_LEN: usize = 200;
/// Clock-corrected timestamps further ahead than this are refused.
const MAX_FUTURE_HOURS: i64 = 24;

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

fn id_field(value: &Json, field: &str) -> Result<Option<String>, String> {
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

fn time_field(value: &Json, field: &str) -> Result<Option<DateTime<Utc>>, String> {
    match value.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| format!("`{field}` is not an ISO-8601 timestamp: `{s}`")),
        Some(other) => Err(format!("`{field}` must be an ISO-8601 string, got {other}")),
    }
}

/// Takes an object field out of the message (no copy).
fn object_field(value: &mut Json, field: &str) -> Result<Json, String> {
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
    match kind {
        Kind::Alias if user_id.is_none() || previous_id.is_none() => {
            return Err("alias needs both `previousId` and `userId`".into());
        }
        Kind::Alias => {}
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
        (Some(original), Some(sent)) => received_at - (sent - original),
        (Some(original), None) => original,
        (None, _) => received_at,
    };
    if occurred_at > received_at + Duration::hours(MAX_FUTURE_HOURS) {
        return Err(format!(
            "timestamp {} is more than {MAX_FUTURE_HOURS} hours in the future (after clock-skew correction)",
            occurred_at.to_rfc3339()
        ));
    }
    use chrono::SubsecRound;
    Ok(Message {
        kind,
        user_id,
        anonymous_id,
        previous_id,
        message_id: id_field(&raw, "messageId")?,
        stamped_at: original,
        occurred_at: occurred_at.trunc_subsecs(6),
        event,
        name,
        properties: object_field(&mut raw, "properties")?,
        traits: object_field(&mut raw, "traits")?,
        context: object_field(&mut raw, "context")?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Events written (retries and duplicates are not written again).
    pub stored: u64,
    /// Messages applied, including identity-only ones.
    pub applied: usize,
    /// The profiles the batch made, changed or merged, and the events it recorded.
    pub changes: Changes,
}

/// Serialises ingestion on SQLite (one writer anyway) and retries on conflicts everywhere.
#[derive(Clone)]
pub struct Ingestor {
    db: DatabaseConnection,
    sqlite_writer: Arc<tokio::sync::Mutex<()>>,
}

/// Tries of one batch before it fails (the client retries later, as Segment's libraries do).
const MAX_ATTEMPTS: u32 = 10;

/// A profile read at the start of the batch was merged away, or made, by a concurrent batch.
const PROFILE_GONE: &str = "a profile changed concurrently";

fn retryable(error: &DbErr) -> bool {
    // Unique keys: a concurrent batch created the same profile. Foreign keys and vanished rows:
    // it merged away (or the API deleted) a profile this batch read. A fresh attempt sees both.
    if matches!(
        error.sql_err(),
        Some(SqlErr::UniqueConstraintViolation(_) | SqlErr::ForeignKeyConstraintViolation(_))
    ) || matches!(error, DbErr::RecordNotUpdated)
        || error.to_string().contains(PROFILE_GONE)
    {
        return true;
    }
    crate::db::is_transient(error)
}

/// `ours` (a change of `read`) laid over `now` (the row as it is now): the columns `ours`
/// changed, and custom fields key by key; everything else stays as `now` has it. The activity
/// times are left out: SQL moves them (`touch_activity`, `merge`), only ever outwards. None
/// when the batch changed nothing but the time of change (an identify repeating known traits).
fn rebase(read: &contact::Model, ours: &contact::Model, now: contact::Model) -> Option<contact::ActiveModel> {
    use contact::Column as C;
    use sea_orm::Iterable;
    let mut custom = now.custom_fields.clone();
    let (read_row, our_row) = (
        contact::ActiveModel::from(read.clone()),
        contact::ActiveModel::from(ours.clone()),
    );
    let mut row = contact::ActiveModel::from(now);
    for column in C::iter() {
        if matches!(
            column,
            C::Id | C::CustomFields | C::FirstSeenAt | C::LastActivityAt | C::UpdatedAt
        ) {
            continue;
        }
        let mine = our_row.get(column);
        if mine.try_as_ref() != read_row.get(column).try_as_ref()
            && let Some(value) = mine.into_value()
        {
            row.set(column, value);
        }
    }
    if ours.custom_fields != read.custom_fields {
        let empty = serde_json::Map::new();
        let before = read.custom_fields.as_object().unwrap_or(&empty);
        let after = ours.custom_fields.as_object().unwrap_or(&empty);
        if let Some(merged) = custom.as_object_mut() {
            for (key, value) in after {
                if before.get(key) != Some(value) {
                    merged.insert(key.clone(), value.clone());
                }
            }
            for key in before.keys().filter(|k| !after.contains_key(*k)) {
                merged.remove(key);
            }
        } else {
            custom = ours.custom_fields.clone();
        }
        row.set(C::CustomFields, custom.into());
    }
    if !row.is_changed() {
        return None;
    }
    row.set(C::UpdatedAt, ours.updated_at.into());
    Some(row)
}

impl Ingestor {
    pub fn new(db: DatabaseConnection) -> Ingestor {
        Ingestor {
            db,
            sqlite_writer: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Holds SQLite's single writer for a read-then-write transaction outside ingestion (a
    /// form submission), so it never fails on a snapshot taken before another write.
    pub async fn exclusive(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.db.get_database_backend() {
            DbBackend::Sqlite => Some(self.sqlite_writer.lock().await),
            _ => None,
        }
    }

    pub async fn ingest(&self, workspace_id: Uuid, messages: &[Message], source: &str) -> Result<Outcome, DbErr> {
        let _writer = self.exclusive().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = async {
                let txn = self.db.begin().await?;
                let mut outcome = Batch::new(workspace_id, source).run(&txn, messages).await?;
                outcome.changes = crate::writes::commit(&self.db, txn, outcome.changes).await?;
                Ok::<_, DbErr>(outcome)
            }
            .await;
            match result {
                Ok(outcome) => return Ok(outcome),
                Err(error) if attempt < MAX_ATTEMPTS && retryable(&error) => {
                    tracing::debug!(%error, attempt, "ingestion conflict; retrying");
                    // Growing and jittered, so batches that collided do not collide again in step.
                    let ceiling = 5u64 << attempt.min(6);
                    let pause = ceiling / 2 + rand::random::<u64>() % (ceiling / 2 + 1);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
                other => return other,
            }
        }
    }
}

/// Working state of one batch.
struct Batch {
    workspace_id: Uuid,
    source: String,
    now: DateTime<Utc>,
    identities: HashMap<String, Uuid>,
    emails: HashMap<String, Uuid>,
    /// Contacts known to exist in the database (their rows are loaded only when needed).
    existing: HashSet<Uuid>,
    /// Stored contacts as read, and as this batch changes them (saved as the difference).
    read: HashMap<Uuid, contact::Model>,
    stored: HashMap<Uuid, contact::Model>,
    created: HashMap<Uuid, contact::Model>,
    created_order: Vec<Uuid>,
    new_identities: Vec<(String, Uuid)>,
    /// The user key of each profile known to have one (a profile holds at most one user id).
    user_of: HashMap<Uuid, String>,
    /// Profiles `profile` gave a user id to, having read that they held none.
    first_user: HashSet<Uuid>,
    /// Anonymous ids taken over by another user's profile (a shared device), with that profile.
    repointed: Vec<(String, Uuid)>,
    redirect: HashMap<Uuid, Uuid>,
    dirty: HashSet<Uuid>,
    /// Stored contacts whose unique email this batch changes (their rows are locked for update).
    rekeyed: HashSet<Uuid>,
    /// Merges of two stored contacts, in the order decided: (winner, loser, reason).
    merges: Vec<(Uuid, Uuid, &'static str)>,
    events: Vec<event::Model>,
    /// How many of the batch's events so far happened at each time (see `record`).
    times: HashMap<DateTime<Utc>, i64>,
    fields: Definitions,
}

const USER_PREFIX: &str = "user:";

fn user_key(id: &str) -> String {
    format!("{USER_PREFIX}{id}")
}

fn anon_key(id: &str) -> String {
    format!("anon:{id}")
}

/// The user keys the given profiles hold (at most one each), as (profile, key).
async fn user_keys(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    mut ids: Vec<Uuid>,
) -> Result<Vec<(Uuid, String)>, DbErr> {
    ids.sort();
    ids.dedup();
    let mut keys = Vec::new();
    for chunk in ids.chunks(1_000) {
        let rows = contact_identity::Entity::find()
            .filter(contact_identity::Column::WorkspaceId.eq(workspace_id))
            .filter(crate::db::any_of(
                db.get_database_backend(),
                contact_identity::Column::ContactId,
                chunk.to_vec(),
            ))
            .filter(contact_identity::Column::Key.starts_with(USER_PREFIX))
            .all(db)
            .await?;
        keys.extend(rows.into_iter().map(|row| (row.contact_id, row.key)));
    }
    Ok(keys)
}

/// The id a new profile first known by `key` gets in a workspace.
fn profile_id(workspace_id: Uuid, key: &str) -> Uuid {
    uuid::Builder::from_random_bytes(workspace_digest(workspace_id, key)).into_uuid()
}

/// The advisory lock space of company names being found or created (`lock_company_names`;
/// "cmp" in ASCII).
const COMPANY_NAME_LOCKS: i32 = 0x636d70;

/// What a group call finds its company by: the domain its traits give, else their name.
enum CompanyKey {
    Domain(String),
    Name(String),
}

fn company_key(message: &Message) -> Option<CompanyKey> {
    let domain = text_trait(&message.traits, &["website", "domain"]).and_then(|d| parse_domain(&d).ok());
    match domain {
        Some(domain) => Some(CompanyKey::Domain(domain)),
        None => text_trait(&message.traits, &["name"]).map(CompanyKey::Name),
    }
}

/// Whether a new profile holds more than a visit: what a concurrent batch's copy may lack.
fn carries_profile(m: &contact::Model) -> bool {
    m.email.is_some()
        || m.first_name.is_some()
        || m.last_name.is_some()
        || m.phone.is_some()
        || m.company_id.is_some()
        || m.custom_fields.as_object().is_some_and(|o| !o.is_empty())
}

/// A field of the message's `context.campaign` (Segment's UTM block), at most 300 characters.
fn campaign_field(message: &Message, name: &str) -> Option<String> {
    message
        .context
        .get("campaign")
        .and_then(|c| c.get(name))
        .and_then(Json::as_str)
        .map(|s| s.chars().take(300).collect())
}

fn text_trait(traits: &Json, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| traits.get(*n).and_then(Json::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.chars().count() <= 200)
        .map(str::to_owned)
}

impl Batch {
    fn new(workspace_id: Uuid, source: &str) -> Batch {
        Batch {
            workspace_id,
            source: source.to_owned(),
            now: crate::now(),
            identities: HashMap::new(),
            emails: HashMap::new(),
            existing: HashSet::new(),
            read: HashMap::new(),
            stored: HashMap::new(),
            created: HashMap::new(),
            created_order: Vec::new(),
            new_identities: Vec::new(),
            user_of: HashMap::new(),
            first_user: HashSet::new(),
            repointed: Vec::new(),
            redirect: HashMap::new(),
            dirty: HashSet::new(),
            rekeyed: HashSet::new(),
            merges: Vec::new(),
            events: Vec::new(),
            times: HashMap::new(),
            fields: Definitions::default(),
        }
    }

    async fn run(mut self, db: &impl ConnectionTrait, messages: &[Message]) -> Result<Outcome, DbErr> {
        self.lock_company_names(db, messages).await?;
        self.load(db, messages).await?;
        for message in messages {
            match message.kind {
                Kind::Track | Kind::Page | Kind::Screen => {
                    let contact_id = self.profile(message)?;
                    self.record(contact_id, message);
                }
                Kind::Identify => self.identify(message)?,
                Kind::Alias => self.alias(message)?,
                Kind::Group => self.group(db, message).await?,
            }
        }
        self.save(db, messages.len()).await
    }

    /// One query each for identities, emails named by identify traits, and the contacts whose
    /// rows are needed. A page or track carrying only an anonymous id (most traffic) needs no
    /// row: only messages that change a profile or stitch two together load one.
    async fn load(&mut self, db: &impl ConnectionTrait, messages: &[Message]) -> Result<(), DbErr> {
        let ws = self.workspace_id;
        let mut keys = HashSet::new();
        let mut emails = HashSet::new();
        for m in messages {
            keys.extend(m.user_id.as_deref().map(user_key));
            keys.extend(m.anonymous_id.as_deref().map(anon_key));
            keys.extend(
                m.previous_id
                    .as_deref()
                    .map(|p| [user_key(p), anon_key(p)])
                    .into_iter()
                    .flatten(),
            );
            if m.kind == Kind::Identify
                && let Some(email) = text_trait(&m.traits, &["email"]).and_then(|e| parse_email(&e).ok())
            {
                emails.insert(email);
            }
        }
        let keys: Vec<String> = keys.into_iter().collect();
        for chunk in keys.chunks(1_000) {
            for row in contact_identity::Entity::find()
                .filter(contact_identity::Column::WorkspaceId.eq(ws))
                .filter(crate::db::any_of(
                    db.get_database_backend(),
                    contact_identity::Column::Key,
                    chunk.to_vec(),
                ))
                .all(db)
                .await?
            {
                self.identities.insert(row.key, row.contact_id);
            }
        }
        self.existing.extend(self.identities.values().copied());
        self.load_user_ids(db, messages).await?;
        let mut ids: HashSet<Uuid> = HashSet::new();
        for m in messages {
            let mut candidates: Vec<Uuid> = Vec::new();
            let keys = [
                m.user_id.as_deref().map(user_key),
                m.anonymous_id.as_deref().map(anon_key),
            ];
            let previous = m.previous_id.as_deref().map(|p| [user_key(p), anon_key(p)]);
            for key in keys.iter().flatten().chain(previous.iter().flatten()) {
                if let Some(id) = self.identities.get(key)
                    && !candidates.contains(id)
                {
                    candidates.push(*id);
                }
            }
            let changes_profile = !matches!(m.kind, Kind::Track | Kind::Page | Kind::Screen) || m.user_id.is_some();
            if changes_profile || candidates.len() > 1 {
                ids.extend(candidates);
            }
        }
        let emails: Vec<String> = emails.into_iter().collect();
        for chunk in emails.chunks(1_000) {
            for row in contact::Entity::find()
                .filter(contact::Column::WorkspaceId.eq(ws))
                .filter(crate::db::any_of(
                    db.get_database_backend(),
                    contact::Column::Email,
                    chunk.to_vec(),
                ))
                .all(db)
                .await?
            {
                if let Some(email) = &row.email {
                    self.emails.insert(email.clone(), row.id);
                }
                ids.remove(&row.id);
                self.existing.insert(row.id);
                self.read.insert(row.id, row.clone());
                self.stored.insert(row.id, row);
            }
        }
        let ids: Vec<Uuid> = ids.into_iter().collect();
        for chunk in ids.chunks(1_000) {
            for row in contact::Entity::find()
                .filter(contact::Column::WorkspaceId.eq(ws))
                .filter(crate::db::any_of(
                    db.get_database_backend(),
                    contact::Column::Id,
                    chunk.to_vec(),
                ))
                .all(db)
                .await?
            {
                self.read.insert(row.id, row.clone());
                self.stored.insert(row.id, row);
            }
        }
        if ids.iter().any(|id| !self.stored.contains_key(id)) {
            // Named by an identity a moment ago, merged away or deleted since: read again.
            return Err(DbErr::Custom(PROFILE_GONE.into()));
        }
        if messages.iter().any(|m| m.kind == Kind::Identify) {
            self.fields = Definitions::load(db, ws, ObjectType::Contact)
                .await
                .map_err(|e| DbErr::Custom(e.message()))?;
        }
        Ok(())
    }

    /// The user ids of profiles that messages carrying a user id reach through their anonymous
    /// id: a device someone else identified on must not fuse two users (see `profile`).
    async fn load_user_ids(&mut self, db: &impl ConnectionTrait, messages: &[Message]) -> Result<(), DbErr> {
        for (key, id) in &self.identities {
            if key.starts_with(USER_PREFIX) {
                self.user_of.insert(*id, key.clone());
            }
        }
        let reached: Vec<Uuid> = messages
            .iter()
            .filter(|m| m.user_id.is_some())
            .filter_map(|m| self.identities.get(&anon_key(m.anonymous_id.as_deref()?)).copied())
            .filter(|id| !self.user_of.contains_key(id))
            .collect();
        for (contact_id, key) in user_keys(db, self.workspace_id, reached).await? {
            self.user_of.insert(contact_id, key);
        }
        Ok(())
    }

    /// The user key of a profile, as this batch knows it (through merges).
    fn user_of_profile(&self, id: Uuid) -> Option<&String> {
        self.user_of
            .iter()
            .find(|(profile, _)| self.resolve(**profile) == id)
            .map(|(_, key)| key)
    }

    fn resolve(&self, mut id: Uuid) -> Uuid {
        while let Some(next) = self.redirect.get(&id) {
            id = *next;
        }
        id
    }

    fn lookup(&self, key: &str) -> Option<Uuid> {
        self.identities.get(key).map(|id| self.resolve(*id))
    }

    fn model(&self, id: Uuid) -> Option<&contact::Model> {
        self.stored.get(&id).or_else(|| self.created.get(&id))
    }

    fn attach(&mut self, key: String, contact_id: Uuid) {
        if key.starts_with(USER_PREFIX) {
            self.user_of.entry(contact_id).or_insert_with(|| key.clone());
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = self.identities.entry(key.clone()) {
            slot.insert(contact_id);
            self.new_identities.push((key, contact_id));
        }
    }

    /// A new profile. Its id derives from the message's id (user id, else anonymous id), so
    /// concurrent batches that meet the same new visitor make the same profile, not two to
    /// merge: the second insert is skipped (see `save`).
    fn create(&mut self, message: &Message) -> Uuid {
        let mut model = crate::contacts::blank(self.workspace_id);
        let key = match (&message.user_id, &message.anonymous_id) {
            (Some(user), _) => user_key(user),
            (None, Some(anonymous)) => anon_key(anonymous),
            (None, None) => String::new(),
        };
        if !key.is_empty() {
            model.id = profile_id(self.workspace_id, &key);
        }
        model.anonymous = message.user_id.is_none();
        model.source = Some("tracking".into());
        let utm = |name: &str| campaign_field(message, name);
        model.utm_source = utm("source");
        model.utm_medium = utm("medium");
        model.utm_campaign = utm("name");
        model.utm_term = utm("term");
        model.utm_content = utm("content");
        let id = model.id;
        self.created.insert(id, model);
        self.created_order.push(id);
        id
    }

    fn mark_identified(&mut self, id: Uuid) {
        if let Some(m) = self.stored.get_mut(&id) {
            if m.anonymous {
                m.anonymous = false;
                self.dirty.insert(id);
            }
        } else if let Some(m) = self.created.get_mut(&id) {
            m.anonymous = false;
        }
    }

    /// Merges `loser` into `winner` in memory. Two stored contacts also merge in SQL when the
    /// batch saves, under its row locks (see `save`).
    fn merge(&mut self, winner: Uuid, loser: Uuid, reason: &'static str) -> Result<(), DbErr> {
        if winner == loser {
            return Ok(());
        }
        match (self.existing.contains(&winner), self.existing.contains(&loser)) {
            (true, true) => {
                let (Some(w), Some(l)) = (self.stored.get(&winner).cloned(), self.stored.remove(&loser)) else {
                    return Err(DbErr::Custom(
                        "internal: a stored profile to merge was not loaded".into(),
                    ));
                };
                self.existing.remove(&loser);
                self.dirty.remove(&loser);
                self.rekeyed.remove(&loser);
                self.store_merged(winner, &w, &l);
                self.merges.push((winner, loser, reason));
            }
            (false, true) => {
                // Stored contacts always win over new ones; callers order them so.
                return Err(DbErr::Custom(
                    "internal: a new profile cannot absorb a stored one".into(),
                ));
            }
            (_, false) => {
                let Some(l) = self.created.remove(&loser) else {
                    return Ok(());
                };
                self.created_order.retain(|id| *id != loser);
                if self.existing.contains(&winner) && !self.stored.contains_key(&winner) {
                    return Err(DbErr::Custom(
                        "internal: a stored profile to merge into was not loaded".into(),
                    ));
                }
                if let Some(w) = self.stored.get(&winner).cloned() {
                    self.store_merged(winner, &w, &l);
                } else if let Some(w) = self.created.get(&winner).cloned() {
                    self.created.insert(winner, merged_fields(&w, &l));
                }
                for (_, id) in self.new_identities.iter_mut() {
                    if *id == loser {
                        *id = winner;
                    }
                }
            }
        }
        if let Some(user) = self.user_of.remove(&loser) {
            self.user_of.entry(winner).or_insert(user);
        }
        self.redirect.insert(loser, winner);
        for id in self.emails.values_mut() {
            if *id == loser {
                *id = winner;
            }
        }
        Ok(())
    }

    /// Keeps the merged fields of stored `w` and `l` as the winner's pending change.
    fn store_merged(&mut self, winner: Uuid, w: &contact::Model, l: &contact::Model) {
        let merged = merged_fields(w, l);
        if merged.email != w.email {
            self.rekeyed.insert(winner);
        }
        self.stored.insert(winner, merged);
        self.dirty.insert(winner);
    }

    /// Orders candidate profiles: stored before new, identified before anonymous, older first.
    fn rank(&self, mut ids: Vec<Uuid>) -> Vec<Uuid> {
        ids.dedup();
        let mut unique = Vec::new();
        for id in ids {
            if !unique.contains(&id) {
                unique.push(id);
            }
        }
        unique.sort_by_key(|id| {
            let stored = self.existing.contains(id);
            let model = self.model(*id);
            (
                !stored,
                model.is_none_or(|m| m.anonymous),
                model.map(|m| m.created_at),
                *id,
            )
        });
        unique
    }

    /// The profile a message belongs to, stitching its user id and anonymous id together.
    fn profile(&mut self, message: &Message) -> Result<Uuid, DbErr> {
        let user = message.user_id.as_deref().map(user_key);
        let anon = message.anonymous_id.as_deref().map(anon_key);
        let mut candidates: Vec<Uuid> = user.iter().filter_map(|k| self.lookup(k)).collect();
        // An anonymous id whose profile belongs to another user is a shared device (a family
        // computer, a kiosk): the two people stay apart, and the device goes with whoever
        // identified on it last, as HubSpot's cookie does. The earlier history stays put.
        let mut taken_over = false;
        if let Some(profile) = anon.as_ref().and_then(|k| self.lookup(k)) {
            let theirs = self.user_of.get(&profile);
            if user.is_some() && theirs.is_some() && theirs != user.as_ref() {
                taken_over = true;
            } else {
                candidates.push(profile);
            }
        }
        let ranked = self.rank(candidates);
        let winner = match ranked.first() {
            Some(id) => *id,
            None => self.create(message),
        };
        for loser in ranked.iter().skip(1) {
            self.merge(winner, *loser, "identify")?;
        }
        if let Some(key) = user {
            // Most profiles are found by their user key, and so by their own id in `user_of`;
            // only the rest need the scan through merges.
            if !self.user_of.contains_key(&winner) && self.user_of_profile(winner).is_none() {
                self.first_user.insert(winner);
            }
            self.attach(key, winner);
            self.mark_identified(winner);
        }
        if let Some(key) = anon {
            if taken_over {
                self.identities.insert(key.clone(), winner);
                self.repointed.push((key, winner));
            } else {
                self.attach(key, winner);
            }
        }
        Ok(winner)
    }

    fn identify(&mut self, message: &Message) -> Result<(), DbErr> {
        let email = text_trait(&message.traits, &["email"]).and_then(|e| parse_email(&e).ok());
        let mut winner = self.profile(message)?;
        if let Some(email) = &email {
            // Someone already known by this email is the same person.
            if let Some(owner) = self.emails.get(email).map(|id| self.resolve(*id))
                && owner != winner
            {
                let ranked = self.rank(vec![winner, owner]);
                self.merge(ranked[0], ranked[1], "identify")?;
                winner = ranked[0];
            }
            self.emails.insert(email.clone(), winner);
            self.mark_identified(winner);
        }
        self.apply_traits(winner, &message.traits, email);
        self.record(winner, message);
        Ok(())
    }

    fn apply_traits(&mut self, id: Uuid, traits: &Json, email: Option<String>) {
        let fields = self.fields.clone();
        let is_stored = self.stored.contains_key(&id);
        let Some(m) = self.stored.get_mut(&id).or_else(|| self.created.get_mut(&id)) else {
            return;
        };
        let rekeyed = email.as_ref().is_some_and(|e| m.email.as_ref() != Some(e));
        if let Some(email) = email {
            m.email = Some(email);
        }
        let mut first = text_trait(traits, &["firstName", "first_name"]);
        let mut last = text_trait(traits, &["lastName", "last_name"]);
        if first.is_none()
            && last.is_none()
            && let Some(name) = text_trait(traits, &["name"])
        {
            let mut parts = name.splitn(2, ' ');
            first = parts.next().map(str::to_owned);
            last = parts.next().map(str::to_owned);
        }
        if first.is_some() {
            m.first_name = first;
        }
        if last.is_some() {
            m.last_name = last;
        }
        if let Some(phone) =
            text_trait(traits, &["phone"]).filter(|p| p.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)))
        {
            m.phone = Some(phone);
        }
        // Traits named like a custom field fill it when the value fits its definition; every
        // trait is kept in the `identified` event either way.
        if let Some(object) = traits.as_object() {
            let mut custom = m.custom_fields.as_object().cloned().unwrap_or_default();
            for (key, value) in object {
                if let Some(definition) = fields.get(key)
                    && let Ok(value) = normalize_value(definition, value)
                {
                    custom.insert(key.clone(), value);
                }
            }
            m.custom_fields = Json::Object(custom);
        }
        m.updated_at = self.now;
        if is_stored {
            self.dirty.insert(id);
            if rekeyed {
                self.rekeyed.insert(id);
            }
        }
    }

    fn alias(&mut self, message: &Message) -> Result<(), DbErr> {
        let (Some(user), Some(previous)) = (message.user_id.as_deref(), message.previous_id.as_deref()) else {
            return Ok(());
        };
        let user = user_key(user);
        let previous_keys = [user_key(previous), anon_key(previous)];
        let mut candidates: Vec<Uuid> = self.lookup(&user).into_iter().collect();
        candidates.extend(previous_keys.iter().filter_map(|k| self.lookup(k)));
        let ranked = self.rank(candidates);
        let winner = match ranked.first() {
            Some(id) => *id,
            None => self.create(message),
        };
        for loser in ranked.iter().skip(1) {
            self.merge(winner, *loser, "alias")?;
        }
        self.attach(user, winner);
        // The previous id is linked under the kind it was known by (anonymous when new).
        let previous_key = previous_keys
            .iter()
            .find(|k| self.identities.contains_key(*k))
            .cloned()
            .unwrap_or_else(|| previous_keys[1].clone());
        self.attach(previous_key, winner);
        self.mark_identified(winner);
        Ok(())
    }

    /// Group calls naming a company by name alone find it or create it by that name, which no
    /// unique key covers (two companies may share a name; a domain has its own unique key). So
    /// that concurrent batches naming the same new company create it once, each batch holds a
    /// lock on the names it groups by until it commits, taken before it looks them up.
    async fn lock_company_names(&self, db: &impl ConnectionTrait, messages: &[Message]) -> Result<(), DbErr> {
        use sha2::{Digest, Sha256};
        let keys: Vec<i32> = messages
            .iter()
            .filter(|m| m.kind == Kind::Group)
            .filter_map(|m| match company_key(m) {
                Some(CompanyKey::Name(name)) => Some(name),
                _ => None,
            })
            .map(|name| {
                let digest = Sha256::new()
                    .chain_update(self.workspace_id.as_bytes())
                    .chain_update(name.as_bytes())
                    .finalize();
                i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
            })
            .collect();
        crate::db::lock_for_transaction(db, COMPANY_NAME_LOCKS, &keys, false).await
    }

    async fn group(&mut self, db: &impl ConnectionTrait, message: &Message) -> Result<(), DbErr> {
        let contact_id = self.profile(message)?;
        let Some(key) = company_key(message) else {
            return Ok(());
        };
        let name = text_trait(&message.traits, &["name"]);
        let query = company::Entity::find().filter(company::Column::WorkspaceId.eq(self.workspace_id));
        let (query, domain) = match key {
            CompanyKey::Domain(domain) => (query.filter(company::Column::Domain.eq(domain.clone())), Some(domain)),
            CompanyKey::Name(name) => (query.filter(company::Column::Name.eq(name)), None),
        };
        let company_id = match query.one(db).await? {
            Some(found) => found.id,
            None => {
                let model = company::Model {
                    id: Uuid::now_v7(),
                    workspace_id: self.workspace_id,
                    name: name.or_else(|| domain.clone()).unwrap_or_default(),
                    domain,
                    industry: text_trait(&message.traits, &["industry"]),
                    size: None,
                    owner_id: None,
                    custom_fields: json!({}),
                    created_at: self.now,
                    updated_at: self.now,
                };
                company::ActiveModel::from(model).reset_all().insert(db).await?.id
            }
        };
        let is_stored = self.stored.contains_key(&contact_id);
        if let Some(m) = self
            .stored
            .get_mut(&contact_id)
            .or_else(|| self.created.get_mut(&contact_id))
        {
            m.company_id = Some(company_id);
            if is_stored {
                self.dirty.insert(contact_id);
            }
        }
        Ok(())
    }

    fn record(&mut self, contact_id: Uuid, message: &Message) {
        let (event_type, name, channel) = match message.kind {
            Kind::Track => {
                let event_name = message.event.clone().unwrap_or_default();
                let standard = type_for_track(&event_name);
                (standard, (standard == "custom").then_some(event_name), None)
            }
            Kind::Page => ("page_viewed", message.name.clone(), Some("web")),
            Kind::Screen => ("page_viewed", message.name.clone(), Some("app")),
            Kind::Identify => ("identified", None, None),
            Kind::Group | Kind::Alias => return,
        };
        let channel = channel.or(match event_type {
            t if t.starts_with("email_") => Some("email"),
            "sms_sent" => Some("sms"),
            "call_logged" => Some("phone"),
            "letter_sent" => Some("letter"),
            "visit_logged" => Some("visit"),
            "portal_visited" => Some("portal"),
            _ => None,
        });
        let utm = |name: &str| campaign_field(message, name);
        let mut properties = if message.kind == Kind::Identify {
            message.traits.clone()
        } else {
            message.properties.clone()
        };
        if let (Some(page), Some(object)) = (message.context.get("page"), properties.as_object_mut()) {
            object.entry("page").or_insert(page.clone());
        }
        // Messages of one batch at one time (unstamped ones all take the time received) keep
        // their order a microsecond apart. The timeline orders ties by id, and ids derive from
        // the message, not from its place in the batch.
        let ties = self.times.entry(message.occurred_at).or_default();
        let occurred_at = message.occurred_at + Duration::microseconds(*ties);
        *ties += 1;
        self.events.push(event::Model {
            id: event_id(self.workspace_id, message.message_id.as_deref(), message.stamped_at),
            workspace_id: self.workspace_id,
            contact_id,
            event_type: event_type.to_owned(),
            name,
            occurred_at,
            received_at: self.now,
            source: self.source.clone(),
            channel: channel.map(str::to_owned),
            campaign: utm("name"),
            utm_source: utm("source"),
            utm_medium: utm("medium"),
            utm_campaign: utm("name"),
            utm_term: utm("term"),
            utm_content: utm("content"),
            properties,
            message_id: message.message_id.clone(),
        });
    }

    /// Stores the batch's new identities, in key order (so batches waiting on each other's keys
    /// wait in one direction). Returns the keys a concurrent batch claimed first, as pairs of
    /// our profile and theirs: the same person, to be merged rather than failing the batch.
    async fn claim_identities(&mut self, db: &impl ConnectionTrait) -> Result<Vec<(Uuid, Uuid)>, DbErr> {
        let mut claims: Vec<(String, Uuid)> = self
            .new_identities
            .iter()
            .map(|(key, id)| (key.clone(), self.resolve(*id)))
            .collect();
        claims.sort();
        claims.dedup_by(|a, b| a.0 == b.0);
        let mut inserted = 0;
        for chunk in claims.chunks(500) {
            let rows = chunk.iter().map(|(key, contact_id)| {
                contact_identity::ActiveModel::from(contact_identity::Model {
                    workspace_id: self.workspace_id,
                    key: key.clone(),
                    contact_id: *contact_id,
                    created_at: self.now,
                })
                .reset_all()
            });
            inserted += contact_identity::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::columns([contact_identity::Column::WorkspaceId, contact_identity::Column::Key])
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(db)
                .await?;
        }
        if inserted == claims.len() as u64 {
            return Ok(Vec::new());
        }
        let ours: HashMap<String, Uuid> = claims.into_iter().collect();
        let mut contested = Vec::new();
        let keys: Vec<String> = ours.keys().cloned().collect();
        for chunk in keys.chunks(1_000) {
            for row in contact_identity::Entity::find()
                .filter(contact_identity::Column::WorkspaceId.eq(self.workspace_id))
                .filter(crate::db::any_of(
                    db.get_database_backend(),
                    contact_identity::Column::Key,
                    chunk.to_vec(),
                ))
                .all(db)
                .await?
            {
                if ours.get(&row.key) != Some(&row.contact_id) {
                    contested.push((ours[&row.key], row.contact_id, row.key));
                }
            }
        }
        // A device another user identified on at the same time is a shared device, as in
        // `profile`: the two users stay apart and the device goes with ours, identified last.
        let holders: Vec<Uuid> = contested
            .iter()
            .filter(|(ours, _, key)| !key.starts_with(USER_PREFIX) && self.user_of_profile(*ours).is_some())
            .map(|(_, theirs, _)| *theirs)
            .collect();
        let theirs_users: HashMap<Uuid, String> =
            user_keys(db, self.workspace_id, holders).await?.into_iter().collect();
        let mut lost = Vec::new();
        for (ours, theirs, key) in contested {
            let users = (self.user_of_profile(ours), theirs_users.get(&theirs));
            if !key.starts_with(USER_PREFIX)
                && let (Some(a), Some(b)) = users
                && a != b
            {
                self.identities.insert(key.clone(), ours);
                self.repointed.push((key, ours));
            } else {
                lost.push((ours, theirs));
            }
        }
        Ok(lost)
    }

    /// Moves anonymous ids taken over by another user's profile (see `profile`), in key order
    /// as every batch moves them. Returns the profiles they moved to.
    async fn repoint(&mut self, db: &impl ConnectionTrait) -> Result<Vec<Uuid>, DbErr> {
        // The last user to take a device over in message order keeps it.
        let latest: HashMap<String, Uuid> = std::mem::take(&mut self.repointed).into_iter().collect();
        let mut moves: Vec<(String, Uuid)> = latest.into_iter().map(|(key, id)| (key, self.resolve(id))).collect();
        moves.sort();
        if moves.is_empty() {
            return Ok(Vec::new());
        }
        let backend = db.get_database_backend();
        let keys: Vec<String> = moves.iter().map(|(key, _)| key.clone()).collect();
        let ids: Vec<Uuid> = moves.iter().map(|(_, id)| *id).collect();
        // One statement for all of them. On PostgreSQL their rows are locked first, in key
        // order, because the order an UPDATE joins in is the planner's choice.
        let update = if backend == DbBackend::Postgres {
            if moves.len() > 1 {
                contact_identity::Entity::find()
                    .select_only()
                    .column(contact_identity::Column::Key)
                    .filter(contact_identity::Column::WorkspaceId.eq(self.workspace_id))
                    .filter(crate::db::any_of(backend, contact_identity::Column::Key, keys.clone()))
                    .order_by_asc(contact_identity::Column::Key)
                    .lock(LockType::NoKeyUpdate)
                    .into_tuple::<String>()
                    .all(db)
                    .await?;
            }
            Statement::from_sql_and_values(
                backend,
                "UPDATE contact_identity SET contact_id = v.contact_id \
                 FROM unnest($2::text[], $3::uuid[]) AS v(key, contact_id) \
                 WHERE contact_identity.workspace_id = $1 AND contact_identity.key = v.key",
                [self.workspace_id.into(), keys.into(), ids.clone().into()],
            )
        } else {
            let list: Vec<serde_json::Value> = moves
                .iter()
                .map(|(key, id)| serde_json::json!([key, id.simple().to_string()]))
                .collect();
            Statement::from_sql_and_values(
                backend,
                "UPDATE contact_identity SET contact_id = unhex(v.value ->> 1) FROM json_each(?) AS v \
                 WHERE contact_identity.workspace_id = ? AND contact_identity.key = v.value ->> 0",
                [
                    serde_json::Value::Array(list).to_string().into(),
                    self.workspace_id.into(),
                ],
            )
        };
        db.execute_raw(update).await?;
        Ok(ids)
    }

    /// Merges the profiles of lost identity claims (older wins); their rows are locked already.
    /// Returns the merges it made.
    async fn merge_lost(&mut self, db: &impl ConnectionTrait, lost: Vec<(Uuid, Uuid)>) -> Result<Vec<Merge>, DbErr> {
        let mut made = Vec::new();
        for (ours, theirs) in lost {
            let (a, b) = (self.resolve(ours), self.resolve(theirs));
            if a == b {
                continue;
            }
            // Pending changes go first: the merge works from the stored rows.
            for id in [a, b] {
                if self.dirty.remove(&id)
                    && let Some(m) = self.stored.get(&id)
                {
                    contact::ActiveModel::from(m.clone()).reset_all().update(db).await?;
                }
            }
            let rows = contact::Entity::find()
                .filter(contact::Column::Id.is_in([a, b]))
                .all(db)
                .await?;
            let [first, second] = rows.as_slice() else {
                return Err(DbErr::Custom(PROFILE_GONE.into()));
            };
            let (winner, loser) = if (first.created_at, first.id) <= (second.created_at, second.id) {
                (first, second)
            } else {
                (second, first)
            };
            let merged = merge(db, winner, loser, "concurrent identity").await?.contact;
            self.redirect.insert(loser.id, winner.id);
            self.stored.remove(&loser.id);
            self.dirty.remove(&loser.id);
            self.stored.insert(winner.id, merged);
            made.push(Merge {
                into: winner.id,
                from: loser.id,
            });
        }
        Ok(made)
    }

    /// Writes this batch's changes to stored contacts over the rows as they are now (locked by
    /// the caller): a batch read its rows before it took their locks, so writing the rows it read
    /// would undo what another batch or an API edit committed in between.
    async fn save_changes(&self, db: &impl ConnectionTrait, locked: &[Uuid]) -> Result<(), DbErr> {
        let ids: Vec<Uuid> = locked.iter().copied().filter(|id| self.dirty.contains(id)).collect();
        for chunk in ids.chunks(1_000) {
            let current = contact::Entity::find()
                .filter(crate::db::any_of(
                    db.get_database_backend(),
                    contact::Column::Id,
                    chunk.to_vec(),
                ))
                .all(db)
                .await?;
            for id in chunk {
                let (Some(read), Some(ours), Some(now)) = (
                    self.read.get(id),
                    self.stored.get(id),
                    current.iter().find(|row| row.id == *id),
                ) else {
                    return Err(DbErr::Custom(PROFILE_GONE.into()));
                };
                if let Some(row) = rebase(read, ours, now.clone()) {
                    row.update(db).await?;
                }
            }
        }
        Ok(())
    }

    /// A new profile whose derived id was a deleted contact's gets a fresh id instead, so a
    /// returning visitor starts afresh (see migration 7). Two batches meeting that visitor at
    /// once then make two profiles, which their identity claims merge.
    async fn avoid_deleted_ids(&mut self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        let ids: Vec<Uuid> = self.created.keys().copied().collect();
        let mut retired: Vec<Uuid> = Vec::new();
        for chunk in ids.chunks(1_000) {
            retired.extend(
                deleted_contact::Entity::find()
                    .select_only()
                    .column(deleted_contact::Column::Id)
                    .filter(deleted_contact::Column::WorkspaceId.eq(self.workspace_id))
                    .filter(crate::db::any_of(
                        db.get_database_backend(),
                        deleted_contact::Column::Id,
                        chunk.to_vec(),
                    ))
                    .into_tuple::<Uuid>()
                    .all(db)
                    .await?,
            );
        }
        for old in retired {
            let Some(mut model) = self.created.remove(&old) else {
                continue;
            };
            let fresh = Uuid::now_v7();
            model.id = fresh;
            self.created.insert(fresh, model);
            for id in self.created_order.iter_mut().filter(|id| **id == old) {
                *id = fresh;
            }
            self.redirect.insert(old, fresh);
        }
        Ok(())
    }

    /// New profiles in id order, as every batch inserts them, so batches meeting the same new
    /// visitors wait on each other in one direction. A profile a concurrent batch has just made
    /// is the same visitor (same id): skipped, unless ours holds traits theirs may lack, in
    /// which case the batch starts again and updates theirs.
    async fn insert_profiles(&mut self, db: &impl ConnectionTrait) -> Result<Vec<contact::Model>, DbErr> {
        let mut created: Vec<contact::Model> = self
            .created_order
            .iter()
            .filter_map(|id| self.created.remove(id))
            .collect();
        created.sort_by_key(|m| m.id);
        let mut inserted: HashSet<Uuid> = HashSet::with_capacity(created.len());
        for chunk in created.chunks(500) {
            let mut insert =
                contact::Entity::insert_many(chunk.iter().map(|m| contact::ActiveModel::from(m.clone()).reset_all()))
                    .on_conflict(OnConflict::column(contact::Column::Id).do_nothing().to_owned())
                    .into_query();
            insert.returning_col(contact::Column::Id);
            for row in db.query_all(&insert).await? {
                inserted.insert(row.try_get_by_index::<Uuid>(0)?);
            }
        }
        // Only a skipped profile carrying traits needs the batch again (to update theirs); a
        // bare visitor made by both batches is the same row either way.
        if created.iter().any(|m| !inserted.contains(&m.id) && carries_profile(m)) {
            return Err(DbErr::Custom(PROFILE_GONE.into()));
        }
        Ok(created)
    }

    /// Whether a profile this batch gave its first user id (`profile`, having read it held
    /// none) got another user's id from a batch that committed after this one read it (the row
    /// locks just taken waited for that one). The two people must stay apart: the batch runs
    /// again, and then sees the device as taken. Profiles this batch merges (`joined`) are left
    /// out, as are ids linked by `alias`: merges and aliases join what they are asked to.
    async fn user_added_meanwhile(&self, db: &impl ConnectionTrait, joined: &HashSet<Uuid>) -> Result<bool, DbErr> {
        let first: HashSet<Uuid> = self.first_user.iter().map(|id| self.resolve(*id)).collect();
        let given: HashMap<Uuid, &str> = self
            .new_identities
            .iter()
            .filter(|(key, _)| key.starts_with(USER_PREFIX))
            .map(|(key, id)| (self.resolve(*id), key.as_str()))
            .filter(|(id, _)| first.contains(id) && !joined.contains(id))
            .collect();
        if given.is_empty() {
            return Ok(false);
        }
        let held = user_keys(db, self.workspace_id, given.keys().copied().collect()).await?;
        Ok(held.iter().any(|(profile, key)| {
            given.get(profile).is_some_and(|ours| ours != key) && !self.identities.contains_key(key)
        }))
    }

    async fn save(mut self, db: &impl ConnectionTrait, applied: usize) -> Result<Outcome, DbErr> {
        // On PostgreSQL events go first, new profiles and identities after them: a concurrent
        // batch meeting the same new visitor waits on our uncommitted profile until we commit,
        // so the less of the transaction that follows its insert, the shorter that wait (events
        // have no foreign key there). SQLite has one writer, so nobody waits, and its events'
        // foreign key wants the profiles first. (Deferring the check with `PRAGMA
        // defer_foreign_keys` instead made SQLite re-prepare every cached statement of the
        // connection: every flag pragma expires them.)
        self.avoid_deleted_ids(db).await?;
        let sqlite = db.get_database_backend() == DbBackend::Sqlite;
        let mut created = Vec::new();
        if sqlite {
            created = self.insert_profiles(db).await?;
        }
        let mut events = std::mem::take(&mut self.events);
        for e in events.iter_mut() {
            e.contact_id = self.resolve(e.contact_id);
        }
        // From here on, only the events stored: a message the batch repeats once, as its first
        // copy, and none a retried call had stored before.
        let mut events = insert_events(db, events).await?;
        if !sqlite {
            created = self.insert_profiles(db).await?;
        }
        let claimed: Vec<Uuid> = self.new_identities.iter().map(|(_, id)| self.resolve(*id)).collect();
        let lost = self.claim_identities(db).await?;
        let repointed = self.repoint(db).await?;

        // Every contact the batch added events or identities to, changed or merges is locked
        // now, in id order and all at once, so concurrent batches wait in one direction and
        // never deadlock. Being the last step before commit, batches sharing contacts (returning
        // visitors, known users) wait for each other's updates, not for each other's inserts.
        // Finding one gone (merged away or deleted since it was read) starts the batch again:
        // this is what keeps events and identities from pointing at a removed contact.
        let merging: Vec<Uuid> = self.merges.iter().flat_map(|(w, l, _)| [*w, *l]).collect();
        let lost_pairs: Vec<Uuid> = lost.iter().flat_map(|(a, b)| [*a, *b]).collect();
        let mut touched: Vec<Uuid> = self
            .dirty
            .iter()
            .copied()
            .chain(events.iter().map(|e| e.contact_id))
            .chain(claimed)
            .chain(repointed)
            .chain(merging.iter().copied())
            .chain(lost_pairs.iter().copied())
            .collect();
        touched.sort();
        touched.dedup();
        let joined: HashSet<Uuid> = merging.into_iter().chain(lost_pairs).collect();
        // Rows about to be deleted or to change their unique email need the stronger lock.
        let strong: HashSet<Uuid> = joined.iter().chain(&self.rekeyed).copied().collect();
        if !lock_contacts(db, &touched, &strong).await? {
            return Err(DbErr::Custom(PROFILE_GONE.into()));
        }
        if self.user_added_meanwhile(db, &joined).await? {
            return Err(DbErr::Custom(PROFILE_GONE.into()));
        }

        let mut merged = Vec::new();
        for (winner, loser, reason) in std::mem::take(&mut self.merges) {
            let rows = contact::Entity::find()
                .filter(contact::Column::Id.is_in([winner, loser]))
                .all(db)
                .await?;
            let (Some(w), Some(l)) = (
                rows.iter().find(|r| r.id == winner),
                rows.iter().find(|r| r.id == loser),
            ) else {
                return Err(DbErr::Custom(PROFILE_GONE.into()));
            };
            merge(db, w, l, reason).await?;
            merged.push(Merge {
                into: winner,
                from: loser,
            });
        }
        merged.extend(self.merge_lost(db, lost).await?);
        for e in events.iter_mut() {
            e.contact_id = self.resolve(e.contact_id);
        }
        self.save_changes(db, &touched).await?;
        record_activity(db, &events).await?;
        // Made, changed or merged into: any segment may move them. The rest only gained events.
        let mut changes = Changes::new(self.workspace_id);
        changes.contacts_created = created.iter().map(|m| self.resolve(m.id)).collect();
        changes.contacts_changed = self
            .dirty
            .iter()
            .copied()
            .chain(self.redirect.values().copied())
            .map(|id| self.resolve(id))
            .collect();
        changes.contacts_changed.sort();
        changes.contacts_changed.dedup();
        changes.contacts_merged = merged
            .into_iter()
            .map(|m| Merge {
                into: self.resolve(m.into),
                from: m.from,
            })
            .collect();
        let mut recorded: Vec<StoredEvent> = events
            .iter()
            .map(|e| StoredEvent {
                contact_id: e.contact_id,
                event_type: e.event_type.clone(),
            })
            .collect();
        recorded.sort();
        recorded.dedup();
        changes.events = recorded;
        Ok(Outcome {
            stored: events.len() as u64,
            applied,
            changes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use entities::enums::LifecycleStage;
    use sea_orm::ActiveValue;

    #[test]
    fn a_rebased_change_keeps_what_others_wrote_since() {
        let mut read = crate::contacts::blank(Uuid::nil());
        read.first_name = Some("Ann".into());
        read.custom_fields = json!({ "plan": "free", "seats": 1, "gone": true });
        // This batch renames her and changes two custom fields (and drops one).
        let mut ours = read.clone();
        ours.last_name = Some("Lee".into());
        ours.custom_fields = json!({ "plan": "pro", "seats": 1, "region": "eu" });
        // Meanwhile another writer changed her stage, her first name, a field and her activity.
        let mut now = read.clone();
        now.first_name = Some("Anne".into());
        now.lifecycle_stage = LifecycleStage::Customer;
        now.custom_fields = json!({ "plan": "free", "seats": 5, "gone": true, "score": 7 });
        now.last_activity_at = Some(crate::now());

        let row = rebase(&read, &ours, now.clone()).unwrap();
        assert_eq!(row.last_name, ActiveValue::Set(Some("Lee".into())));
        assert!(matches!(row.first_name, ActiveValue::Unchanged(ref n) if n.as_deref() == Some("Anne")));
        assert!(matches!(
            row.lifecycle_stage,
            ActiveValue::Unchanged(LifecycleStage::Customer)
        ));
        assert!(matches!(row.last_activity_at, ActiveValue::Unchanged(t) if t == now.last_activity_at));
        assert_eq!(
            row.custom_fields,
            ActiveValue::Set(json!({ "plan": "pro", "seats": 5, "region": "eu", "score": 7 }))
        );
        assert_eq!(row.updated_at, ActiveValue::Set(ours.updated_at));
        // Nothing changed but the time of change: nothing to write.
        let mut touched = read.clone();
        touched.updated_at = crate::now() + Duration::seconds(1);
        assert!(rebase(&read, &touched, now).is_none());
    }
}
