//! Contacts: validation and writes (create, update, delete, bulk upsert by email).

pub mod filter;
pub mod import;

use crate::Patch;
use crate::custom_fields::Definitions;
use crate::error::ApiResult;
use crate::errors::{MutationError, MutationResult, UserError, UserErrorCode};
use crate::ids::{NodeKind, decode_as};
use crate::values::{PhoneError, parse_email, parse_phone};
use crate::writes::Changes;
use entities::enums::{ConsentStatus, LifecycleStage, ObjectType};
use entities::{app_user, company, contact, contact_tag, deleted_contact};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, SqlErr, TransactionSession, TransactionTrait, sea_query::LockType,
};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

pub const MAX_UPSERT: usize = 1_000;
const MAX_TAGS: usize = 100;
const MAX_TAG_LEN: usize = 100;
const MAX_NAME_LEN: usize = 200;
const MAX_TEXT_LEN: usize = 500;

/// A direct channel to a contact.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Channel {
    /// Email.
    Email,
    /// Text message.
    Sms,
    /// Phone call.
    Phone,
    /// Postal letter.
    Letter,
    /// In-person visit.
    Visit,
    /// The customer portal ("my pages").
    Portal,
    /// The web site.
    Web,
    /// A mobile app.
    App,
}

impl Channel {
    const ALL: [Channel; 5] = [
        Channel::Email,
        Channel::Sms,
        Channel::Phone,
        Channel::Letter,
        Channel::Visit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Phone => "phone",
            Channel::Letter => "letter",
            Channel::Visit => "visit",
            Channel::Portal => "portal",
            Channel::Web => "web",
            Channel::App => "app",
        }
    }

    pub fn parse(text: &str) -> Option<Channel> {
        Channel::ALL
            .into_iter()
            .chain([Channel::Portal, Channel::Web, Channel::App])
            .find(|c| c.as_str() == text)
    }

    /// The consent and do-not-contact columns of a direct channel.
    pub fn columns(self) -> (contact::Column, contact::Column) {
        use contact::Column as C;
        match self {
            Channel::Email => (C::ConsentEmail, C::DncEmail),
            Channel::Sms => (C::ConsentSms, C::DncSms),
            Channel::Phone => (C::ConsentPhone, C::DncPhone),
            Channel::Letter => (C::ConsentLetter, C::DncLetter),
            Channel::Visit => (C::ConsentVisit, C::DncVisit),
            // Portal, web and app are reached through the contact's own visits, covered by
            // email consent (the portal account) for messaging purposes.
            Channel::Portal | Channel::Web | Channel::App => (C::ConsentEmail, C::DncEmail),
        }
    }
}

/// The five direct channels a contact can be reached on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Email,
    Sms,
    Phone,
    Letter,
    Visit,
}

/// What a create, update or upsert asks to change. Absent fields are left alone; `null`
/// clears a field.
#[derive(Default, Debug, Clone)]
pub struct ContactChanges {
    pub email: Patch<String>,
    pub first_name: Patch<String>,
    pub last_name: Patch<String>,
    pub phone: Patch<String>,
    pub company_id: Patch<String>,
    pub owner_id: Patch<String>,
    pub lifecycle_stage: Option<LifecycleStage>,
    /// Replaces the whole tag set when given.
    pub tags: Option<Vec<String>>,
    pub consent: Vec<(ChannelKind, Option<ConsentStatus>, Option<bool>)>,
    pub source: Patch<String>,
    pub utm_source: Patch<String>,
    pub utm_medium: Patch<String>,
    pub utm_campaign: Patch<String>,
    pub utm_term: Patch<String>,
    pub utm_content: Patch<String>,
    /// A JSON object of custom field values; `null` values remove a field.
    pub custom_fields: Option<serde_json::Value>,
}

/// Ids that changes refer to and that exist in the workspace, fetched once per call.
#[derive(Default)]
struct References {
    companies: HashSet<Uuid>,
    users: HashSet<Uuid>,
}

impl References {
    async fn load<'a>(
        db: &impl ConnectionTrait,
        workspace_id: Uuid,
        changes: impl Iterator<Item = &'a ContactChanges>,
    ) -> ApiResult<References> {
        let mut company_ids = HashSet::new();
        let mut user_ids = HashSet::new();
        for change in changes {
            if let Patch::Set(id) = &change.company_id
                && let Some(uuid) = decode_as(id, NodeKind::Company)
            {
                company_ids.insert(uuid);
            }
            if let Patch::Set(id) = &change.owner_id
                && let Some(uuid) = decode_as(id, NodeKind::User)
            {
                user_ids.insert(uuid);
            }
        }
        let mut refs = References::default();
        if !company_ids.is_empty() {
            refs.companies = company::Entity::find()
                .select_only()
                .column(company::Column::Id)
                .filter(company::Column::WorkspaceId.eq(workspace_id))
                .filter(company::Column::Id.is_in(company_ids))
                .into_tuple::<Uuid>()
                .all(db)
                .await?
                .into_iter()
                .collect();
        }
        if !user_ids.is_empty() {
            refs.users = app_user::Entity::find()
                .select_only()
                .column(app_user::Column::Id)
                .filter(app_user::Column::WorkspaceId.eq(workspace_id))
                .filter(app_user::Column::Id.is_in(user_ids))
                .into_tuple::<Uuid>()
                .all(db)
                .await?
                .into_iter()
                .collect();
        }
        Ok(refs)
    }
}

fn text_change(
    target: &mut Option<String>,
    change: &Patch<String>,
    path: &[&str],
    max: usize,
    errors: &mut Vec<UserError>,
) {
    match change {
        Patch::Keep => {}
        Patch::Clear => *target = None,
        Patch::Set(value) => {
            let value = value.trim();
            match crate::values::check_text(path, value, max) {
                Err(error) => errors.push(error),
                Ok(()) => *target = (!value.is_empty()).then(|| value.to_owned()),
            }
        }
    }
}

fn reference_change(
    target: &mut Option<Uuid>,
    change: &Patch<String>,
    name: &str,
    kind: NodeKind,
    existing: &HashSet<Uuid>,
    errors: &mut Vec<UserError>,
) {
    match change {
        Patch::Keep => {}
        Patch::Clear => *target = None,
        Patch::Set(id) => match decode_as(id, kind).filter(|uuid| existing.contains(uuid)) {
            Some(uuid) => *target = Some(uuid),
            None => errors.push(UserError::new(
                &[name],
                UserErrorCode::NotFound,
                format!("no {kind:?} with id `{}` in this workspace", id),
            )),
        },
    }
}

fn normalize_tags(tags: &[String], errors: &mut Vec<UserError>) -> Vec<String> {
    let mut normalized: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.trim();
        if tag.is_empty() || tag.chars().count() > MAX_TAG_LEN || tag.contains('\0') {
            errors.push(UserError::new(
                &["tags"],
                UserErrorCode::Invalid,
                format!("each tag must be 1 to {MAX_TAG_LEN} characters"),
            ));
        } else if !normalized.iter().any(|t| t == tag) {
            normalized.push(tag.to_owned());
        }
    }
    if normalized.len() > MAX_TAGS {
        errors.push(UserError::new(
            &["tags"],
            UserErrorCode::TooMany,
            format!("a contact has at most {MAX_TAGS} tags"),
        ));
    }
    normalized.sort();
    normalized
}

/// Applies `changes` to `model` in memory, validating everything. Error paths are relative to
/// the input object.
fn apply(
    mut model: contact::Model,
    changes: &ContactChanges,
    refs: &References,
    fields: &Definitions,
) -> Result<(contact::Model, Option<Vec<String>>), Vec<UserError>> {
    let mut errors = Vec::new();
    match &changes.email {
        Patch::Keep => {}
        Patch::Clear => model.email = None,
        Patch::Set(raw) => match parse_email(raw) {
            Ok(email) => model.email = Some(email),
            Err(message) => errors.push(UserError::new(&["email"], UserErrorCode::InvalidEmail, message)),
        },
    }
    text_change(
        &mut model.first_name,
        &changes.first_name,
        &["firstName"],
        MAX_NAME_LEN,
        &mut errors,
    );
    text_change(
        &mut model.last_name,
        &changes.last_name,
        &["lastName"],
        MAX_NAME_LEN,
        &mut errors,
    );
    match &changes.phone {
        Patch::Keep => {}
        Patch::Clear => model.phone = None,
        Patch::Set(raw) if raw.trim().is_empty() => model.phone = None,
        Patch::Set(raw) => match parse_phone(raw) {
            Ok(phone) => model.phone = Some(phone),
            Err(error) => {
                let code = match error {
                    PhoneError::Invalid => UserErrorCode::Invalid,
                    PhoneError::TooLong => UserErrorCode::TooLong,
                };
                errors.push(UserError::new(&["phone"], code, error.to_string()));
            }
        },
    }
    text_change(
        &mut model.source,
        &changes.source,
        &["source"],
        MAX_TEXT_LEN,
        &mut errors,
    );
    text_change(
        &mut model.utm_source,
        &changes.utm_source,
        &["utm", "source"],
        MAX_TEXT_LEN,
        &mut errors,
    );
    text_change(
        &mut model.utm_medium,
        &changes.utm_medium,
        &["utm", "medium"],
        MAX_TEXT_LEN,
        &mut errors,
    );
    text_change(
        &mut model.utm_campaign,
        &changes.utm_campaign,
        &["utm", "campaign"],
        MAX_TEXT_LEN,
        &mut errors,
    );
    text_change(
        &mut model.utm_term,
        &changes.utm_term,
        &["utm", "term"],
        MAX_TEXT_LEN,
        &mut errors,
    );
    text_change(
        &mut model.utm_content,
        &changes.utm_content,
        &["utm", "content"],
        MAX_TEXT_LEN,
        &mut errors,
    );
    reference_change(
        &mut model.company_id,
        &changes.company_id,
        "companyId",
        NodeKind::Company,
        &refs.companies,
        &mut errors,
    );
    reference_change(
        &mut model.owner_id,
        &changes.owner_id,
        "ownerId",
        NodeKind::User,
        &refs.users,
        &mut errors,
    );
    if let Some(stage) = changes.lifecycle_stage {
        model.lifecycle_stage = stage;
    }
    for (channel, status, do_not_contact) in &changes.consent {
        let (status_field, dnc_field) = match channel {
            ChannelKind::Email => (&mut model.consent_email, &mut model.dnc_email),
            ChannelKind::Sms => (&mut model.consent_sms, &mut model.dnc_sms),
            ChannelKind::Phone => (&mut model.consent_phone, &mut model.dnc_phone),
            ChannelKind::Letter => (&mut model.consent_letter, &mut model.dnc_letter),
            ChannelKind::Visit => (&mut model.consent_visit, &mut model.dnc_visit),
        };
        if let Some(status) = status {
            *status_field = *status;
        }
        if let Some(dnc) = do_not_contact {
            *dnc_field = *dnc;
        }
    }
    if let Some(values) = &changes.custom_fields {
        match fields.apply(&model.custom_fields, values, &["customFields"]) {
            Ok(merged) => model.custom_fields = merged,
            Err(field_errors) => errors.extend(field_errors),
        }
    }
    let tags = changes.tags.as_ref().map(|tags| normalize_tags(tags, &mut errors));
    if errors.is_empty() {
        Ok((model, tags))
    } else {
        Err(errors)
    }
}

pub(crate) fn blank(workspace_id: Uuid) -> contact::Model {
    blank_as(workspace_id, Uuid::now_v7(), crate::now())
}

/// `blank` with the id and time given. Decoding a page's rows starts each from this: a new id
/// and a clock read per row were a twentieth of a contacts page's server time.
pub fn blank_as(workspace_id: Uuid, id: Uuid, now: chrono::DateTime<chrono::Utc>) -> contact::Model {
    contact::Model {
        id,
        workspace_id,
        email: None,
        first_name: None,
        last_name: None,
        phone: None,
        company_id: None,
        owner_id: None,
        lifecycle_stage: LifecycleStage::Subscriber,
        consent_email: ConsentStatus::Unknown,
        consent_sms: ConsentStatus::Unknown,
        consent_phone: ConsentStatus::Unknown,
        consent_letter: ConsentStatus::Unknown,
        consent_visit: ConsentStatus::Unknown,
        dnc_email: false,
        dnc_sms: false,
        dnc_phone: false,
        dnc_letter: false,
        dnc_visit: false,
        source: None,
        utm_source: None,
        utm_medium: None,
        utm_campaign: None,
        utm_term: None,
        utm_content: None,
        custom_fields: serde_json::json!({}),
        created_at: now,
        updated_at: now,
        anonymous: false,
        first_seen_at: None,
        last_activity_at: None,
    }
}

fn taken(email: &str) -> UserError {
    UserError::new(
        &["email"],
        UserErrorCode::Taken,
        format!("another contact already has the email `{email}`"),
    )
}

/// One attempt at writing an upsert, in one transaction: the matched rows are locked (in id
/// order, as every call locks them, so concurrent calls never deadlock) before they are changed,
/// so a concurrent edit is never overwritten with stale fields; new rows go in email order.
async fn write_upsert<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    workspace_id: Uuid,
    items: &[ContactChanges],
    emails: &[Option<String>],
    refs: &References,
    fields: &Definitions,
    outcomes: &mut [Option<UpsertOutcome>],
) -> Result<Changes, DbErr> {
    let txn = crate::db::begin_write(db).await?;
    let wanted: Vec<String> = emails.iter().flatten().cloned().collect();
    let mut existing: HashMap<String, contact::Model> = HashMap::new();
    for chunk in wanted.chunks(500) {
        let mut query = contact::Entity::find()
            .filter(contact::Column::WorkspaceId.eq(workspace_id))
            .filter(contact::Column::Email.is_in(chunk.iter().cloned()))
            .order_by_asc(contact::Column::Id);
        if txn.get_database_backend() == DbBackend::Postgres {
            query = query.lock(LockType::NoKeyUpdate);
        }
        for row in query.all(&txn).await? {
            if let Some(email) = row.email.clone() {
                existing.insert(email, row);
            }
        }
    }

    let now = crate::now();
    let mut inserts = Vec::new();
    let mut updates = Vec::new();
    let mut tag_sets = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Some(email) = &emails[index] else { continue };
        let (base, is_new) = match existing.get(email) {
            Some(row) => (row.clone(), false),
            None => (blank(workspace_id), true),
        };
        match apply(base, item, refs, fields) {
            Ok((mut model, tags)) => {
                if !is_new {
                    model.updated_at = now;
                }
                if let Some(tags) = tags {
                    tag_sets.push((model.id, tags));
                }
                if is_new {
                    inserts.push(model.clone());
                    outcomes[index] = Some(UpsertOutcome::Created(model));
                } else {
                    updates.push(model.clone());
                    outcomes[index] = Some(UpsertOutcome::Updated(model));
                }
            }
            Err(errors) => outcomes[index] = Some(UpsertOutcome::Failed(errors)),
        }
    }

    inserts.sort_by(|a, b| a.email.cmp(&b.email));
    let rows: Vec<contact::ActiveModel> = inserts
        .into_iter()
        .map(|m| contact::ActiveModel::from(m).reset_all())
        .collect();
    // ~40 columns a row: 20 rows a statement keeps well under SQLite's parameter limit.
    for chunk in rows.chunks(20) {
        contact::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    for model in updates {
        contact::ActiveModel::from(model).reset_all().update(&txn).await?;
    }
    replace_tags(&txn, workspace_id, tag_sets).await?;
    txn.commit().await?;
    let mut changes = Changes::new(workspace_id);
    for outcome in outcomes.iter().flatten() {
        match outcome {
            UpsertOutcome::Created(m) => changes.contacts_created.push(m.id),
            UpsertOutcome::Updated(m) => changes.contacts_changed.push(m.id),
            UpsertOutcome::Failed(_) => {}
        }
    }
    Ok(changes)
}

fn is_unique_violation(error: &DbErr) -> bool {
    matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

async fn load_fields(db: &impl ConnectionTrait, workspace_id: Uuid, needed: bool) -> ApiResult<Definitions> {
    if needed {
        Definitions::load(db, workspace_id, ObjectType::Contact).await
    } else {
        Ok(Definitions::default())
    }
}

async fn email_in_use(db: &impl ConnectionTrait, workspace_id: Uuid, email: &str, except: Uuid) -> ApiResult<bool> {
    Ok(contact::Entity::find()
        .select_only()
        .column(contact::Column::Id)
        .filter(contact::Column::WorkspaceId.eq(workspace_id))
        .filter(contact::Column::Email.eq(email))
        .filter(contact::Column::Id.ne(except))
        .into_tuple::<Uuid>()
        .one(db)
        .await?
        .is_some())
}

async fn replace_tags(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    tags_by_contact: Vec<(Uuid, Vec<String>)>,
) -> Result<(), DbErr> {
    if tags_by_contact.is_empty() {
        return Ok(());
    }
    contact_tag::Entity::delete_many()
        .filter(contact_tag::Column::WorkspaceId.eq(workspace_id))
        .filter(contact_tag::Column::ContactId.is_in(tags_by_contact.iter().map(|(id, _)| *id)))
        .exec(db)
        .await?;
    let rows: Vec<contact_tag::ActiveModel> = tags_by_contact
        .into_iter()
        .flat_map(|(contact_id, tags)| {
            tags.into_iter().map(move |tag| {
                contact_tag::ActiveModel::from(contact_tag::Model {
                    contact_id,
                    tag,
                    workspace_id,
                })
                .reset_all()
            })
        })
        .collect();
    // Chunked to stay far below SQLite's bound-parameter limit.
    for chunk in rows.chunks(500) {
        contact_tag::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

pub async fn create(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    changes: ContactChanges,
) -> MutationResult<contact::Model> {
    let fields = load_fields(db, workspace_id, changes.custom_fields.is_some()).await?;
    let refs = References::load(db, workspace_id, std::iter::once(&changes)).await?;
    let (model, tags) = apply(blank(workspace_id), &changes, &refs, &fields)?;
    if let Some(email) = &model.email
        && email_in_use(db, workspace_id, email, model.id).await?
    {
        return Err(taken(email).into());
    }
    let txn = crate::db::begin_write(db).await?;
    let inserted = match contact::ActiveModel::from(model.clone()).reset_all().insert(&txn).await {
        Ok(row) => row,
        Err(e) if is_unique_violation(&e) => {
            return Err(taken(model.email.as_deref().unwrap_or_default()).into());
        }
        Err(e) => return Err(e.into()),
    };
    replace_tags(
        &txn,
        workspace_id,
        tags.map(|t| vec![(inserted.id, t)]).unwrap_or_default(),
    )
    .await?;
    let mut changes = Changes::new(workspace_id);
    changes.contacts_created.push(inserted.id);
    crate::writes::commit(db, txn, changes).await?;
    Ok(inserted)
}

pub async fn find(conn: &impl ConnectionTrait, workspace_id: Uuid, id: &str) -> ApiResult<Option<contact::Model>> {
    let Some(uuid) = decode_as(id, NodeKind::Contact) else {
        return Ok(None);
    };
    Ok(contact::Entity::find_by_id(uuid)
        .filter(contact::Column::WorkspaceId.eq(workspace_id))
        .one(conn)
        .await?)
}

/// The contact, read inside a write transaction (`db::begin_write`) and locked for update on
/// PostgreSQL (SQLite's write lock is already held): nobody changes it until the caller commits,
/// and ingestion batches that add events to it finish first.
async fn find_for_update(
    txn: &impl ConnectionTrait,
    workspace_id: Uuid,
    uuid: Uuid,
) -> Result<Option<contact::Model>, DbErr> {
    let mut lookup = contact::Entity::find_by_id(uuid).filter(contact::Column::WorkspaceId.eq(workspace_id));
    if txn.get_database_backend() == DbBackend::Postgres {
        lookup = lookup.lock(LockType::Update);
    }
    lookup.one(txn).await
}

fn not_found(id: &str) -> MutationError {
    UserError::argument(
        &["id"],
        UserErrorCode::NotFound,
        format!("no contact with id `{}` in this workspace", id),
    )
    .into()
}

pub async fn update(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    id: &str,
    changes: ContactChanges,
) -> MutationResult<contact::Model> {
    let uuid = decode_as(id, NodeKind::Contact).ok_or_else(|| not_found(id))?;
    let fields = load_fields(db, workspace_id, changes.custom_fields.is_some()).await?;
    let refs = References::load(db, workspace_id, std::iter::once(&changes)).await?;
    // The row is read under its lock: changes read before it would undo whatever an ingestion
    // batch or another edit committed in between (its traits, its activity times).
    let txn = crate::db::begin_write(db).await?;
    let existing = find_for_update(&txn, workspace_id, uuid)
        .await?
        .ok_or_else(|| not_found(id))?;
    let (mut model, tags) = apply(existing, &changes, &refs, &fields)?;
    model.updated_at = crate::now();
    if let Some(email) = &model.email
        && email_in_use(&txn, workspace_id, email, model.id).await?
    {
        return Err(taken(email).into());
    }
    let updated = match contact::ActiveModel::from(model.clone()).reset_all().update(&txn).await {
        Ok(row) => row,
        Err(e) if is_unique_violation(&e) => {
            return Err(taken(model.email.as_deref().unwrap_or_default()).into());
        }
        Err(e) => return Err(e.into()),
    };
    replace_tags(
        &txn,
        workspace_id,
        tags.map(|t| vec![(updated.id, t)]).unwrap_or_default(),
    )
    .await?;
    let mut changes = Changes::new(workspace_id);
    changes.contacts_changed.push(updated.id);
    crate::writes::commit(db, txn, changes).await?;
    Ok(updated)
}

pub async fn delete<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    workspace_id: Uuid,
    id: &str,
) -> MutationResult<Uuid> {
    let uuid = decode_as(id, NodeKind::Contact).ok_or_else(|| not_found(id))?;
    if crate::db::retry_transient(|| delete_once(db, workspace_id, uuid)).await? {
        Ok(uuid)
    } else {
        Err(not_found(id))
    }
}

/// One attempt of `delete`; false when there is no such contact.
async fn delete_once<C: ConnectionTrait + TransactionTrait>(db: &C, workspace_id: Uuid, uuid: Uuid) -> ApiResult<bool> {
    let txn = crate::db::begin_write(db).await?;
    // Locked first: ingestion batches adding events to it finish before this goes on (and
    // their events go with it), later ones find it gone and start again.
    if find_for_update(&txn, workspace_id, uuid).await?.is_none() {
        return Ok(false);
    }
    // Out of its segments first, with the exits recorded and the counts kept.
    crate::segments::leave_all(&txn, uuid).await?;
    // Its journey goes with it (no foreign key cascades on PostgreSQL; see migration 6).
    crate::events::delete_journey(&txn, workspace_id, uuid).await?;
    contact::Entity::delete_many()
        .filter(contact::Column::Id.eq(uuid))
        .filter(contact::Column::WorkspaceId.eq(workspace_id))
        .exec(&txn)
        .await?;
    // Its id is retired: a returning visitor gets a new one (see migration 7).
    deleted_contact::ActiveModel::from(deleted_contact::Model {
        id: uuid,
        workspace_id,
        deleted_at: crate::now(),
    })
    .reset_all()
    .insert(&txn)
    .await?;
    let mut changes = Changes::new(workspace_id);
    changes.contacts_deleted.push(uuid);
    crate::writes::commit(db, txn, changes).await?;
    Ok(true)
}

/// The outcome of one item of a bulk upsert.
pub enum UpsertOutcome {
    Created(contact::Model),
    Updated(contact::Model),
    Failed(Vec<UserError>),
}

/// Creates or updates contacts matched on email. Partial by design: every valid item is saved
/// (in one transaction), every invalid item is reported by index and nothing of it is written.
pub async fn upsert(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    items: Vec<ContactChanges>,
) -> MutationResult<Vec<UpsertOutcome>> {
    let txn = crate::db::begin_write(db).await?;
    let (outcomes, changes) = upsert_in(&txn, workspace_id, items).await?;
    crate::writes::commit(db, txn, changes).await?;
    Ok(outcomes)
}

/// [`upsert`] inside the caller's transaction; the caller commits what it returns.
pub async fn upsert_in<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    workspace_id: Uuid,
    items: Vec<ContactChanges>,
) -> MutationResult<(Vec<UpsertOutcome>, Changes)> {
    if items.len() > MAX_UPSERT {
        return Err(UserError::argument(
            &["inputs"],
            UserErrorCode::TooMany,
            format!(
                "at most {MAX_UPSERT} contacts per call (got {}); split the batch",
                items.len()
            ),
        )
        .into());
    }
    let fields = load_fields(db, workspace_id, items.iter().any(|i| i.custom_fields.is_some())).await?;
    let refs = References::load(db, workspace_id, items.iter()).await?;

    // Match keys first: every item needs a valid email, and each email once per call.
    let mut outcomes: Vec<Option<UpsertOutcome>> = (0..items.len()).map(|_| None).collect();
    let mut emails: Vec<Option<String>> = vec![None; items.len()];
    let mut first_index: HashMap<String, usize> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        let fail = |code, message: String| UpsertOutcome::Failed(vec![UserError::new(&["email"], code, message)]);
        match &item.email {
            Patch::Set(raw) => match parse_email(raw) {
                Ok(email) => {
                    if let Some(first) = first_index.get(&email) {
                        outcomes[index] = Some(fail(
                            UserErrorCode::DuplicateInBatch,
                            format!("`{email}` already appears at index {first} of this call"),
                        ));
                    } else {
                        first_index.insert(email.clone(), index);
                        emails[index] = Some(email);
                    }
                }
                Err(message) => outcomes[index] = Some(fail(UserErrorCode::InvalidEmail, message)),
            },
            _ => {
                outcomes[index] = Some(fail(
                    UserErrorCode::Required,
                    "email is required to match on".to_owned(),
                ))
            }
        }
    }

    // Concurrent calls for the same new emails race on the unique index; the loser starts
    // again and finds the winner's rows. Nothing of a failed attempt is written.
    let mut attempt = 0;
    let changes = loop {
        attempt += 1;
        match write_upsert(db, workspace_id, &items, &emails, &refs, &fields, &mut outcomes).await {
            Ok(changes) => break changes,
            Err(e) if attempt < 5 && (is_unique_violation(&e) || crate::db::is_transient(&e)) => {
                tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
            }
            Err(e) if is_unique_violation(&e) => {
                return Err(UserError::argument(
                    &["inputs"],
                    UserErrorCode::Taken,
                    "concurrent requests keep creating some of these emails; retry the call",
                )
                .into());
            }
            Err(e) => return Err(e.into()),
        }
    };
    let outcomes = outcomes
        .into_iter()
        .map(|o| o.unwrap_or(UpsertOutcome::Failed(Vec::new())))
        .collect();
    Ok((outcomes, changes))
}
