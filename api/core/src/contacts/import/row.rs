//! One row of an import file: where each column goes ([`Target`]), and a row's cells read as
//! a contact's changes.

use crate::contacts::{ChannelKind, ContactChanges};
use crate::custom_fields::Definitions;
use crate::patch::Patch;
use crate::values::parse_email;
use entities::enums::{ConsentStatus, CustomFieldType, LifecycleStage};
use serde_json::{Map, Value as Json, json};

/// Where a column's cells go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Email,
    FirstName,
    LastName,
    Phone,
    /// A company by name: the workspace's company of that name, else a new one.
    Company,
    LifecycleStage,
    Tags,
    Source,
    Consent(ChannelKind),
    Custom(String),
}

const CHANNELS: [(&str, ChannelKind); 5] = [
    ("email", ChannelKind::Email),
    ("sms", ChannelKind::Sms),
    ("phone", ChannelKind::Phone),
    ("letter", ChannelKind::Letter),
    ("visit", ChannelKind::Visit),
];

pub const TARGETS_HELP: &str = "email, firstName, lastName, phone, company, lifecycleStage, tags, source, \
consent:<email|sms|phone|letter|visit> or custom:<field key>";

impl Target {
    pub fn parse(text: &str) -> Option<Target> {
        Some(match text.trim() {
            "email" => Target::Email,
            "firstName" => Target::FirstName,
            "lastName" => Target::LastName,
            "phone" => Target::Phone,
            "company" => Target::Company,
            "lifecycleStage" => Target::LifecycleStage,
            "tags" => Target::Tags,
            "source" => Target::Source,
            other => {
                if let Some(channel) = other.strip_prefix("consent:") {
                    Target::Consent(CHANNELS.iter().find(|(name, _)| *name == channel)?.1)
                } else {
                    Target::Custom(other.strip_prefix("custom:").filter(|k| !k.is_empty())?.to_owned())
                }
            }
        })
    }

    pub fn name(&self) -> String {
        match self {
            Target::Email => "email".into(),
            Target::FirstName => "firstName".into(),
            Target::LastName => "lastName".into(),
            Target::Phone => "phone".into(),
            Target::Company => "company".into(),
            Target::LifecycleStage => "lifecycleStage".into(),
            Target::Tags => "tags".into(),
            Target::Source => "source".into(),
            Target::Consent(channel) => {
                let name = CHANNELS.iter().find(|(_, c)| c == channel).map_or("email", |(n, _)| *n);
                format!("consent:{name}")
            }
            Target::Custom(key) => format!("custom:{key}"),
        }
    }

    /// The head of the path the upsert reports this target's problems at.
    pub(super) fn error_path(&self) -> Vec<String> {
        match self {
            Target::Company => vec!["companyId".into()],
            Target::Custom(key) => vec!["customFields".into(), key.clone()],
            other => vec![other.name()],
        }
    }
}

pub struct Row {
    pub changes: ContactChanges,
    /// The normalised e-mail, to find known contacts by.
    pub email: Option<String>,
    pub company: Option<String>,
}

fn split_list(cell: &str) -> Vec<String> {
    cell.split([',', ';', '|'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn consent(cell: &str) -> Option<ConsentStatus> {
    match cell.to_lowercase().as_str() {
        "granted" | "yes" | "y" | "true" | "1" | "opt-in" | "optin" | "subscribed" | "ja" | "oui" => {
            Some(ConsentStatus::Granted)
        }
        "withdrawn" | "no" | "n" | "false" | "0" | "opt-out" | "optout" | "unsubscribed" | "nein" | "non" => {
            Some(ConsentStatus::Withdrawn)
        }
        "unknown" => Some(ConsentStatus::Unknown),
        _ => None,
    }
}

fn stage(cell: &str) -> Option<LifecycleStage> {
    let name: String = cell
        .trim()
        .chars()
        .map(|c| {
            if c == ' ' || c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect();
    crate::names::parse(&name)
}

/// A custom field's cell as the JSON value its type takes.
fn custom_value(kind: CustomFieldType, cell: &str) -> Result<Json, String> {
    Ok(match kind {
        CustomFieldType::Number => {
            let normal = if cell.contains('.') {
                cell.to_owned()
            } else {
                cell.replace(',', ".")
            };
            let number: f64 = normal.parse().map_err(|_| format!("`{cell}` is not a number"))?;
            json!(number)
        }
        CustomFieldType::Boolean => match consent(cell) {
            Some(ConsentStatus::Granted) => json!(true),
            Some(ConsentStatus::Withdrawn) => json!(false),
            _ => return Err(format!("`{cell}` is neither yes nor no")),
        },
        CustomFieldType::MultiSelect => json!(split_list(cell)),
        CustomFieldType::Text | CustomFieldType::Date | CustomFieldType::SingleSelect => json!(cell),
    })
}

/// The row's changes, or each cell's problem as (column, message).
pub fn read(
    record: &csv::StringRecord,
    mapping: &[(usize, Target)],
    columns: &[String],
    fields: &Definitions,
) -> Result<Row, Vec<(String, String)>> {
    let mut changes = ContactChanges {
        source: Patch::Keep,
        ..Default::default()
    };
    let mut problems = Vec::new();
    let mut custom = Map::new();
    let mut email = None;
    let mut company = None;
    for (index, target) in mapping {
        let cell = record.get(*index).unwrap_or_default();
        if cell.is_empty() {
            continue;
        }
        let mut fail = |message: String| problems.push((columns[*index].clone(), message));
        match target {
            Target::Email => {
                email = parse_email(cell).ok();
                changes.email = Patch::Set(cell.to_owned());
            }
            Target::FirstName => changes.first_name = Patch::Set(cell.to_owned()),
            Target::LastName => changes.last_name = Patch::Set(cell.to_owned()),
            Target::Phone => changes.phone = Patch::Set(cell.to_owned()),
            Target::Source => changes.source = Patch::Set(cell.to_owned()),
            Target::Company if crate::values::text_within(cell, 200).is_err() => {
                fail("a company name has 1 to 200 characters, without NUL".into())
            }
            Target::Company => company = Some(cell.to_owned()),
            Target::Tags => changes.tags = Some(split_list(cell)),
            Target::LifecycleStage => match stage(cell) {
                Some(stage) => changes.lifecycle_stage = Some(stage),
                None => {
                    use sea_orm::Iterable;
                    let stages: Vec<String> = LifecycleStage::iter().map(crate::names::api_name).collect();
                    fail(format!("`{cell}` is not a lifecycle stage ({})", stages.join(", ")))
                }
            },
            Target::Consent(channel) => match consent(cell) {
                Some(status) => changes.consent.push((*channel, Some(status), None)),
                None => fail(format!(
                    "`{cell}` is not a consent answer (granted/yes or withdrawn/no)"
                )),
            },
            Target::Custom(key) => {
                let Some(definition) = fields.get(key) else {
                    fail(format!("no custom field `{key}` is defined"));
                    continue;
                };
                match custom_value(definition.field_type, cell) {
                    Ok(value) => {
                        custom.insert(key.clone(), value);
                    }
                    Err(message) => fail(message),
                }
            }
        }
    }
    if !custom.is_empty() {
        changes.custom_fields = Some(Json::Object(custom));
    }
    if problems.is_empty() {
        Ok(Row {
            changes,
            email,
            company,
        })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_and_write_their_names() {
        for name in [
            "email",
            "firstName",
            "company",
            "consent:sms",
            "custom:plan",
            "lifecycleStage",
        ] {
            assert_eq!(Target::parse(name).unwrap().name(), name);
        }
        assert_eq!(Target::parse("consent:fax"), None);
        assert_eq!(Target::parse("custom:"), None);
    }
}
