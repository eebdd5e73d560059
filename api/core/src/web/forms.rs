//! Forms: definitions (fields mapped to contact properties or custom fields, consent
//! checkboxes) and submissions, which create or update the contact, apply consent and record
//! `form_submitted` with every value, all in one transaction.

use crate::Patch;
use crate::contacts::{self, ChannelKind, ContactChanges, UpsertOutcome};
use crate::custom_fields::Definitions;
use crate::error::ApiError;
use crate::errors::{MutationError, MutationResult, UserError, UserErrorCode};
use crate::events::identity::merge;
use crate::events::{insert_events, record_activity};
use crate::ids::{NodeKind, decode_as};
use crate::values::{check_text, limits, parse_email, parse_phone, text_within};
use crate::writes::{Changes, Merge};
use entities::enums::{ConsentStatus, CustomFieldType, ObjectType};
use entities::{contact, contact_identity, event, form, notification};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The name of the honeypot input: people never fill it, bots do.
pub const HONEYPOT: &str = "_hp";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Text,
    Email,
    Phone,
    Number,
    Textarea,
    Select,
    Checkbox,
    Date,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormField {
    pub key: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: FieldKind,
    /// `email`, `firstName`, `lastName`, `phone`, `custom:<key>`, or none (recorded only).
    pub maps_to: Option<String>,
    pub required: bool,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormConsent {
    /// `email`, `sms`, `phone`, `letter` or `visit`.
    pub channel: String,
    pub label: String,
    pub required: bool,
}

pub fn fields_of(form: &form::Model) -> Vec<FormField> {
    serde_json::from_value(form.fields.clone()).unwrap_or_default()
}

pub fn consents_of(form: &form::Model) -> Vec<FormConsent> {
    serde_json::from_value(form.consents.clone()).unwrap_or_default()
}

fn channel_kind(channel: &str) -> Option<ChannelKind> {
    Some(match channel {
        "email" => ChannelKind::Email,
        "sms" => ChannelKind::Sms,
        "phone" => ChannelKind::Phone,
        "letter" => ChannelKind::Letter,
        "visit" => ChannelKind::Visit,
        _ => return None,
    })
}

/// Checks a definition. Error paths are within the form's input (`["fields", "2", "key"]`).
pub fn validate_definition(
    fields: &[FormField],
    consents: &[FormConsent],
    definitions: &Definitions,
) -> Vec<UserError> {
    let mut errors = Vec::new();
    let mut seen = Vec::new();
    let mut email_fields = 0;
    for (i, field) in fields.iter().enumerate() {
        let index = i.to_string();
        let path = |name: &'static str| ["fields", index.as_str(), name].map(str::to_owned);
        let err = |name: &'static str, code, message: String| {
            let p = path(name);
            UserError::new(&[p[0].as_str(), p[1].as_str(), p[2].as_str()], code, message)
        };
        let key_ok = !field.key.is_empty()
            && field.key.len() <= 63
            && field.key.starts_with(|c: char| c.is_ascii_alphabetic())
            && field.key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !key_ok {
            errors.push(err(
                "key",
                UserErrorCode::Invalid,
                "a field key starts with a letter and uses letters, digits and _".into(),
            ));
        } else if seen.contains(&field.key) {
            errors.push(err(
                "key",
                UserErrorCode::Invalid,
                format!("field key `{}` is used twice", field.key),
            ));
        } else if field.key.starts_with("consent_") {
            errors.push(err(
                "key",
                UserErrorCode::Invalid,
                "keys starting with consent_ are reserved for consent checkboxes".into(),
            ));
        }
        seen.push(field.key.clone());
        if field.label.trim().is_empty() || field.label.chars().count() > 200 {
            errors.push(err(
                "label",
                UserErrorCode::Invalid,
                "label must be 1 to 200 characters".into(),
            ));
        }
        if field.options.len() > MAX_OPTIONS {
            errors.push(err(
                "options",
                UserErrorCode::TooMany,
                format!("at most {MAX_OPTIONS} options"),
            ));
        }
        if let Some(option) = field
            .options
            .iter()
            .find(|o| text_within(o, limits::NAME).is_err() || o.trim().is_empty())
        {
            let shown: String = option.chars().take(40).collect();
            errors.push(err(
                "options",
                UserErrorCode::Invalid,
                format!("option `{shown}` must be 1 to {} characters, without NUL", limits::NAME),
            ));
        }
        let is_select = field.kind == FieldKind::Select;
        if is_select == field.options.is_empty() {
            errors.push(err(
                "options",
                UserErrorCode::Invalid,
                "select fields need options; other fields take none".into(),
            ));
        }
        match field.maps_to.as_deref() {
            None => {}
            Some("email") => {
                email_fields += 1;
                if field.kind != FieldKind::Email {
                    errors.push(err(
                        "mapsTo",
                        UserErrorCode::WrongType,
                        "the email property needs an EMAIL field".into(),
                    ));
                }
                if !field.required {
                    errors.push(err(
                        "required",
                        UserErrorCode::Required,
                        "the email field must be required".into(),
                    ));
                }
            }
            Some("firstName" | "lastName") => {}
            Some("phone") if field.kind == FieldKind::Phone => {}
            Some("phone") => errors.push(err(
                "mapsTo",
                UserErrorCode::WrongType,
                "the phone property needs a PHONE field".into(),
            )),
            Some(target) => match target.strip_prefix("custom:").map(|key| (key, definitions.get(key))) {
                Some((_, Some(definition))) => {
                    let fits = matches!(
                        (definition.field_type, field.kind),
                        (
                            CustomFieldType::Text,
                            FieldKind::Text
                                | FieldKind::Textarea
                                | FieldKind::Email
                                | FieldKind::Phone
                                | FieldKind::Select
                        ) | (CustomFieldType::Number, FieldKind::Number)
                            | (CustomFieldType::Boolean, FieldKind::Checkbox)
                            | (CustomFieldType::Date, FieldKind::Date)
                            | (CustomFieldType::SingleSelect, FieldKind::Select)
                    );
                    if !fits {
                        errors.push(err(
                            "mapsTo",
                            UserErrorCode::WrongType,
                            format!(
                                "a {:?} field cannot fill a {:?} custom field",
                                field.kind, definition.field_type
                            ),
                        ));
                    }
                }
                Some((key, None)) => errors.push(err(
                    "mapsTo",
                    UserErrorCode::UnknownField,
                    format!("no contact custom field `{key}`"),
                )),
                None => errors.push(err(
                    "mapsTo",
                    UserErrorCode::Invalid,
                    format!(
                        "`{target}` is not a contact property; use email, firstName, lastName, phone or custom:<key>"
                    ),
                )),
            },
        }
    }
    if email_fields != 1 {
        errors.push(UserError::new(
            &["fields"],
            UserErrorCode::Required,
            "a form needs exactly one required EMAIL field mapped to email",
        ));
    }
    let mut channels = Vec::new();
    for (i, consent) in consents.iter().enumerate() {
        let index = i.to_string();
        if channel_kind(&consent.channel).is_none() || channels.contains(&consent.channel) {
            errors.push(UserError::new(
                &["consents", index.as_str(), "channel"],
                UserErrorCode::Invalid,
                "one checkbox per channel",
            ));
        }
        channels.push(consent.channel.clone());
        if consent.label.trim().is_empty() {
            errors.push(UserError::new(
                &["consents", index.as_str(), "label"],
                UserErrorCode::Required,
                "a consent checkbox needs its wording",
            ));
        } else if let Err(error) = check_text(&["consents", index.as_str(), "label"], &consent.label, limits::TEXT) {
            errors.push(error);
        }
    }
    errors
}

fn truthy(value: &Json) -> bool {
    match value {
        Json::Bool(b) => *b,
        Json::String(s) => matches!(s.to_lowercase().as_str(), "on" | "true" | "1" | "yes"),
        Json::Number(n) => n.as_f64().is_some_and(|v| v != 0.0),
        _ => false,
    }
}

fn text(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What a submission did.
pub enum Submitted {
    /// Saved for this contact.
    Saved { contact_id: Uuid, created: bool },
    /// The honeypot was filled: answered as a success, nothing stored.
    Ignored,
}

/// Field-level problems, keyed by field key.
pub type FieldErrors = BTreeMap<String, String>;

pub enum SubmitError {
    Invalid(FieldErrors),
    Db(DbErr),
}

impl From<DbErr> for SubmitError {
    fn from(e: DbErr) -> Self {
        SubmitError::Db(e)
    }
}

/// Validates and stores one submission. `values` are the submitted name/value pairs;
/// `visitor` the anonymous id of the browser, whose history joins the contact.
pub async fn submit(
    db: &DatabaseConnection,
    form: &form::Model,
    values: &Map<String, Json>,
    visitor: Option<&str>,
    page: Json,
) -> Result<Submitted, SubmitError> {
    if values.get(HONEYPOT).and_then(text).is_some() {
        return Ok(Submitted::Ignored);
    }
    let fields = fields_of(form);
    let consents = consents_of(form);
    let mut errors = FieldErrors::new();
    let mut recorded = Map::new();
    let mut changes = ContactChanges {
        source: Patch::Set("form".into()),
        ..Default::default()
    };
    let mut custom = Map::new();
    for field in &fields {
        let raw = values.get(&field.key).cloned().unwrap_or(Json::Null);
        let value = if field.kind == FieldKind::Checkbox {
            Some(truthy(&raw).to_string()).filter(|v| v == "true")
        } else {
            text(&raw)
        };
        let Some(value) = value else {
            if field.required {
                errors.insert(field.key.clone(), format!("{} is required", field.label));
            }
            continue;
        };
        if let Err((_, message)) = text_within(&value, MAX_VALUE_LEN) {
            errors.insert(field.key.clone(), format!("{} {message}", field.label));
            continue;
        }
        let typed = match field.kind {
            FieldKind::Email => parse_email(&value).map(Json::String),
            FieldKind::Phone => parse_phone(&value)
                .map(Json::String)
                .map_err(|_| "is not a phone number".to_owned()),
            FieldKind::Number => value
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(Json::from)
                .ok_or_else(|| "is not a number".to_owned()),
            FieldKind::Select if field.options.contains(&value) => Ok(Json::String(value.clone())),
            FieldKind::Select => Err(format!("must be one of: {}", field.options.join(", "))),
            FieldKind::Date => chrono::NaiveDate::parse_from_str(&value, "%Y-%m-%d")
                .map(|_| Json::String(value.clone()))
                .map_err(|_| "is not a date (YYYY-MM-DD)".to_owned()),
            FieldKind::Checkbox => Ok(Json::Bool(true)),
            FieldKind::Text | FieldKind::Textarea => Ok(Json::String(value.clone())),
        };
        let typed = match typed {
            Ok(typed) => typed,
            Err(message) => {
                errors.insert(field.key.clone(), message);
                continue;
            }
        };
        recorded.insert(field.key.clone(), typed.clone());
        match field.maps_to.as_deref() {
            Some("email") => changes.email = Patch::Set(value),
            Some("firstName") => changes.first_name = Patch::Set(value),
            Some("lastName") => changes.last_name = Patch::Set(value),
            Some("phone") => changes.phone = Patch::Set(value),
            Some(target) => {
                if let Some(key) = target.strip_prefix("custom:") {
                    custom.insert(key.to_owned(), typed);
                }
            }
            None => {}
        }
    }
    for consent in &consents {
        let key = format!("consent_{}", consent.channel);
        let given = values.get(&key).is_some_and(truthy);
        if consent.required && !given {
            errors.insert(key.clone(), format!("{} must be accepted", consent.label));
        }
        recorded.insert(key, Json::Bool(given));
        if given && let Some(channel) = channel_kind(&consent.channel) {
            changes.consent.push((channel, Some(ConsentStatus::Granted), None));
        }
    }
    if !errors.is_empty() {
        return Err(SubmitError::Invalid(errors));
    }
    if !custom.is_empty() {
        changes.custom_fields = Some(Json::Object(custom));
    }

    let txn = db.begin().await?;
    let outcome = contacts::upsert_in(&txn, form.workspace_id, vec![changes]).await;
    let (contact, created, mut written) = match outcome {
        Ok((mut outcomes, written)) => match outcomes.pop() {
            Some(UpsertOutcome::Created(c)) => (c, true, written),
            Some(UpsertOutcome::Updated(c)) => (c, false, written),
            Some(UpsertOutcome::Failed(errors)) => return Err(SubmitError::Invalid(field_errors(&fields, errors))),
            None => return Err(SubmitError::Db(DbErr::Custom("upsert returned nothing".into()))),
        },
        Err(MutationError::Invalid(errors)) => return Err(SubmitError::Invalid(field_errors(&fields, errors))),
        Err(MutationError::Api(error)) => return Err(SubmitError::Db(DbErr::Custom(error.message()))),
    };
    let contact = match visitor {
        Some(visitor) => adopt_visitor(&txn, &contact, visitor, &mut written).await?,
        None => contact,
    };
    let now = crate::now();
    let event = event::Model {
        id: Uuid::now_v7(),
        workspace_id: form.workspace_id,
        contact_id: contact.id,
        event_type: "form_submitted".into(),
        name: Some(form.name.clone()),
        occurred_at: now,
        received_at: now,
        source: "form".into(),
        channel: Some("web".into()),
        campaign: page.get("utm_campaign").and_then(Json::as_str).map(str::to_owned),
        utm_source: page.get("utm_source").and_then(Json::as_str).map(str::to_owned),
        utm_medium: page.get("utm_medium").and_then(Json::as_str).map(str::to_owned),
        utm_campaign: page.get("utm_campaign").and_then(Json::as_str).map(str::to_owned),
        utm_term: None,
        utm_content: None,
        properties: json!({ "formId": form.id.to_string(), "values": recorded, "page": page }),
        message_id: None,
    };
    let stored = insert_events(&txn, vec![event]).await?;
    record_activity(&txn, &stored).await?;
    for event in &stored {
        written.event(event.contact_id, event.event_type.clone());
    }
    if form.notify_owner {
        notification::ActiveModel::from(notification::Model {
            id: Uuid::now_v7(),
            workspace_id: form.workspace_id,
            user_id: contact.owner_id,
            kind: "form_submitted".into(),
            payload: json!({ "formId": form.id.to_string(), "formName": form.name, "contactId": contact.id.to_string(), "values": recorded }),
            created_at: now,
            delivered_at: None,
            read_at: None,
        })
        .reset_all()
        .insert(&txn)
        .await?;
    }
    let submitted = crate::webhooks::Event::about_contact(
        "form.submitted",
        contact.id,
        json!({ "formId": NodeKind::Form.encode(form.id), "formName": form.name }),
    );
    crate::webhooks::record(&txn, form.workspace_id, &[submitted]).await?;
    crate::writes::commit(db, txn, written).await?;
    Ok(Submitted::Saved {
        contact_id: contact.id,
        created,
    })
}

/// Maps contact validation errors (paths within the contact's changes, like
/// `["customFields", "plan"]`) to the form fields that carried those values.
fn field_errors(fields: &[FormField], errors: Vec<UserError>) -> FieldErrors {
    let mut out = FieldErrors::new();
    for error in errors {
        let path = error.field;
        let target = match path.first().map(String::as_str) {
            Some("customFields") => path.get(1).map(|k| format!("custom:{k}")),
            Some(property) => Some(property.to_owned()),
            None => None,
        };
        let key = fields
            .iter()
            .find(|f| f.maps_to.as_deref() == target.as_deref())
            .map_or_else(|| "form".to_owned(), |f| f.key.clone());
        out.insert(key, error.message);
    }
    out
}

/// Joins the browser's anonymous history to the contact: the visitor's profile merges into it,
/// or the visitor id is linked to it when it is new.
async fn adopt_visitor(
    db: &impl ConnectionTrait,
    contact: &contact::Model,
    visitor: &str,
    written: &mut Changes,
) -> Result<contact::Model, DbErr> {
    let key = format!("anon:{visitor}");
    let existing = contact_identity::Entity::find()
        .filter(contact_identity::Column::WorkspaceId.eq(contact.workspace_id))
        .filter(contact_identity::Column::Key.eq(key.clone()))
        .one(db)
        .await?;
    match existing {
        Some(identity) if identity.contact_id == contact.id => Ok(contact.clone()),
        // Only an anonymous profile is merged: a browser shared by two known people must not
        // fuse them.
        Some(identity) => match contact::Entity::find_by_id(identity.contact_id).one(db).await? {
            Some(visitor_profile) if visitor_profile.anonymous => {
                let merged = merge(db, contact, &visitor_profile, "identify").await?;
                written.contacts_merged.push(Merge {
                    into: contact.id,
                    from: visitor_profile.id,
                });
                Ok(merged.contact)
            }
            _ => Ok(contact.clone()),
        },
        None => {
            contact_identity::ActiveModel::from(contact_identity::Model {
                workspace_id: contact.workspace_id,
                key,
                contact_id: contact.id,
                created_at: crate::now(),
            })
            .reset_all()
            .insert(db)
            .await?;
            Ok(contact.clone())
        }
    }
}

/// Loads the contact custom field definitions a form definition may refer to.
pub async fn definitions(db: &DatabaseConnection, workspace_id: Uuid) -> crate::error::ApiResult<Definitions> {
    Definitions::load(db, workspace_id, ObjectType::Contact).await
}

/// A form's definition as a create or update gives it.
#[derive(Debug, Clone)]
pub struct FormDefinition {
    pub name: String,
    pub fields: Vec<FormField>,
    pub consents: Vec<FormConsent>,
    pub success_message: Option<String>,
    pub redirect_url: Option<String>,
    pub notify_owner: bool,
}

const MAX_FORM_NAME_LEN: usize = limits::NAME;
const MAX_OPTIONS: usize = 500;
/// The longest value a visitor may submit in one field.
const MAX_VALUE_LEN: usize = 10_000;

/// Creates a form (`id` none) or replaces one's definition.
pub async fn save(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    id: Option<&str>,
    definition: FormDefinition,
) -> MutationResult<form::Model> {
    let fields: Vec<FormField> = definition
        .fields
        .into_iter()
        .map(|f| FormField {
            key: f.key.trim().to_owned(),
            label: f.label.trim().to_owned(),
            maps_to: f.maps_to.map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()),
            ..f
        })
        .collect();
    let consents: Vec<FormConsent> = definition
        .consents
        .into_iter()
        .map(|c| FormConsent {
            label: c.label.trim().to_owned(),
            ..c
        })
        .collect();
    let mut errors = validate_definition(&fields, &consents, &definitions(db, workspace_id).await?);
    let name = definition.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_FORM_NAME_LEN {
        errors.push(UserError::new(
            &["name"],
            UserErrorCode::Invalid,
            format!("name must be 1 to {MAX_FORM_NAME_LEN} characters"),
        ));
    }
    if let Some(url) = &definition.redirect_url {
        if let Err(error) = check_text(&["redirectUrl"], url, limits::URL) {
            errors.push(error);
        } else if let Err(message) = super::links::parse_target(url) {
            errors.push(UserError::new(&["redirectUrl"], UserErrorCode::Invalid, message));
        }
    }
    if let Some(message) = &definition.success_message
        && let Err(error) = check_text(&["successMessage"], message, limits::TEXT)
    {
        errors.push(error);
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let existing =
        match id {
            Some(id) => Some(find(db, workspace_id, id).await?.ok_or_else(|| {
                UserError::argument(&["id"], UserErrorCode::NotFound, "no such form in this workspace")
            })?),
            None => None,
        };
    let now = crate::now();
    let to_json = |value: serde_json::Result<Json>| value.map_err(|e| ApiError::Internal(Box::new(e)));
    let model = form::Model {
        id: existing.as_ref().map_or_else(Uuid::now_v7, |e| e.id),
        workspace_id,
        name,
        fields: to_json(serde_json::to_value(&fields))?,
        consents: to_json(serde_json::to_value(&consents))?,
        success_message: definition.success_message,
        redirect_url: definition.redirect_url.map(|u| u.trim().to_owned()),
        notify_owner: definition.notify_owner,
        created_at: existing.as_ref().map_or(now, |e| e.created_at),
        updated_at: now,
    };
    let active = form::ActiveModel::from(model).reset_all();
    Ok(if existing.is_some() {
        active.update(db).await?
    } else {
        active.insert(db).await?
    })
}

/// A form of the workspace by global id.
pub async fn find(db: &DatabaseConnection, workspace_id: Uuid, id: &str) -> Result<Option<form::Model>, DbErr> {
    let Some(uuid) = decode_as(id, NodeKind::Form) else {
        return Ok(None);
    };
    form::Entity::find_by_id(uuid)
        .filter(form::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await
}
