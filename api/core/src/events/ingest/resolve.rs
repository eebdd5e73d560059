//! Identity resolution in memory: a batch's messages, in order, against what was loaded for
//! them. Profiles are found, made, stitched and merged here, events are recorded to them, and
//! nothing touches the database (`persist` loads before and saves after).

use super::parse::{Kind, Message};
use crate::companies::parse_domain;
use crate::custom_fields::{Definitions, normalize_value};
use crate::events::identity::merged_fields;
use crate::events::{event_id, type_for_track, workspace_digest};
use crate::values::{parse_email, parse_phone};
use chrono::{DateTime, Duration, Utc};
use entities::{contact, event};
use sea_orm::DbErr;
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Working state of one batch.
pub(super) struct Batch {
    pub(super) workspace_id: Uuid,
    pub(super) source: String,
    pub(super) now: DateTime<Utc>,
    pub(super) identities: HashMap<String, Uuid>,
    pub(super) emails: HashMap<String, Uuid>,
    /// Contacts known to exist in the database (their rows are loaded only when needed).
    pub(super) existing: HashSet<Uuid>,
    /// Stored contacts as read, and as this batch changes them (saved as the difference).
    pub(super) read: HashMap<Uuid, contact::Model>,
    pub(super) stored: HashMap<Uuid, contact::Model>,
    pub(super) created: HashMap<Uuid, contact::Model>,
    pub(super) created_order: Vec<Uuid>,
    pub(super) new_identities: Vec<(String, Uuid)>,
    /// The user key of each profile known to have one (a profile holds at most one user id).
    pub(super) user_of: HashMap<Uuid, String>,
    /// Profiles `profile` gave a user id to, having read that they held none.
    pub(super) first_user: HashSet<Uuid>,
    /// Anonymous ids taken over by another user's profile (a shared device), with that profile.
    pub(super) repointed: Vec<(String, Uuid)>,
    pub(super) redirect: HashMap<Uuid, Uuid>,
    pub(super) dirty: HashSet<Uuid>,
    /// Stored contacts whose unique email this batch changes (their rows are locked for update).
    pub(super) rekeyed: HashSet<Uuid>,
    /// Merges of two stored contacts, in the order decided: (winner, loser, reason).
    pub(super) merges: Vec<(Uuid, Uuid, &'static str)>,
    pub(super) events: Vec<event::Model>,
    /// How many of the batch's events so far happened at each time (see `record`).
    pub(super) times: HashMap<DateTime<Utc>, i64>,
    pub(super) fields: Definitions,
    /// Companies a group call named (see `persist::name_placeholder`).
    pub(super) companies_changed: Vec<Uuid>,
}

pub(super) const USER_PREFIX: &str = "user:";

pub(super) fn user_key(id: &str) -> String {
    format!("{USER_PREFIX}{id}")
}

pub(super) fn anon_key(id: &str) -> String {
    format!("anon:{id}")
}

/// The id a new profile first known by `key` gets in a workspace.
pub(super) fn profile_id(workspace_id: Uuid, key: &str) -> Uuid {
    uuid::Builder::from_random_bytes(workspace_digest(workspace_id, key)).into_uuid()
}

/// What a group call finds its company by: the domain its traits give, else their name.
pub(super) enum CompanyKey {
    Domain(String),
    Name(String),
}

pub(super) fn company_key(message: &Message) -> Option<CompanyKey> {
    let domain = text_trait(&message.traits, &["website", "domain"]).and_then(|d| parse_domain(&d).ok());
    match domain {
        Some(domain) => Some(CompanyKey::Domain(domain)),
        None => text_trait(&message.traits, &["name"]).map(CompanyKey::Name),
    }
}

/// Whether a new profile holds more than a visit: what a concurrent batch's copy may lack.
pub(super) fn carries_profile(m: &contact::Model) -> bool {
    m.email.is_some()
        || m.first_name.is_some()
        || m.last_name.is_some()
        || m.phone.is_some()
        || m.company_id.is_some()
        || m.custom_fields.as_object().is_some_and(|o| !o.is_empty())
}

/// A field of the message's `context.campaign` (Segment's UTM block), at most 300 characters.
pub(super) fn campaign_field(message: &Message, name: &str) -> Option<String> {
    message
        .context
        .get("campaign")
        .and_then(|c| c.get(name))
        .and_then(Json::as_str)
        .map(|s| s.chars().take(300).collect())
}

pub(super) fn text_trait(traits: &Json, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| traits.get(*n).and_then(Json::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.chars().count() <= 200)
        .map(str::to_owned)
}

impl Batch {
    pub(super) fn new(workspace_id: Uuid, source: &str) -> Batch {
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
            companies_changed: Vec::new(),
        }
    }

    /// The user key of a profile, as this batch knows it (through merges).
    pub(super) fn user_of_profile(&self, id: Uuid) -> Option<&String> {
        self.user_of
            .iter()
            .find(|(profile, _)| self.resolve(**profile) == id)
            .map(|(_, key)| key)
    }

    pub(super) fn resolve(&self, mut id: Uuid) -> Uuid {
        while let Some(next) = self.redirect.get(&id) {
            id = *next;
        }
        id
    }

    pub(super) fn lookup(&self, key: &str) -> Option<Uuid> {
        self.identities.get(key).map(|id| self.resolve(*id))
    }

    pub(super) fn model(&self, id: Uuid) -> Option<&contact::Model> {
        self.stored.get(&id).or_else(|| self.created.get(&id))
    }

    pub(super) fn attach(&mut self, key: String, contact_id: Uuid) {
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
    pub(super) fn create(&mut self, message: &Message) -> Uuid {
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

    pub(super) fn mark_identified(&mut self, id: Uuid) {
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
    pub(super) fn merge(&mut self, winner: Uuid, loser: Uuid, reason: &'static str) -> Result<(), DbErr> {
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
    pub(super) fn store_merged(&mut self, winner: Uuid, w: &contact::Model, l: &contact::Model) {
        let merged = merged_fields(w, l);
        if merged.email != w.email {
            self.rekeyed.insert(winner);
        }
        self.stored.insert(winner, merged);
        self.dirty.insert(winner);
    }

    /// Orders candidate profiles: stored before new, identified before anonymous, older first.
    pub(super) fn rank(&self, mut ids: Vec<Uuid>) -> Vec<Uuid> {
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
    pub(super) fn profile(&mut self, message: &Message) -> Result<Uuid, DbErr> {
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

    /// Resolves one message (all kinds but `group`, which may write a company; see `persist`).
    pub(super) fn apply(&mut self, message: &Message) -> Result<(), DbErr> {
        match message.kind {
            Kind::Track | Kind::Page | Kind::Screen => {
                let contact_id = self.profile(message)?;
                self.record(contact_id, message);
            }
            Kind::Identify => self.identify(message)?,
            Kind::Alias => self.alias(message)?,
            Kind::Group => {
                self.profile(message)?;
            }
        }
        Ok(())
    }

    pub(super) fn identify(&mut self, message: &Message) -> Result<(), DbErr> {
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

    pub(super) fn apply_traits(&mut self, id: Uuid, traits: &Json, email: Option<String>) {
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
        if let Some(phone) = text_trait(traits, &["phone"]).and_then(|p| parse_phone(&p).ok()) {
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

    pub(super) fn alias(&mut self, message: &Message) -> Result<(), DbErr> {
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

    pub(super) fn record(&mut self, contact_id: Uuid, message: &Message) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ws() -> Uuid {
        Uuid::from_u128(7)
    }

    fn message(raw: serde_json::Value) -> Message {
        super::super::parse(raw, None, crate::now(), None).unwrap()
    }

    fn run(batch: &mut Batch, raws: Vec<serde_json::Value>) {
        for raw in raws {
            batch.apply(&message(raw)).unwrap();
        }
    }

    /// What `persist::load` finds of a stored contact: its row and the identity keys it holds.
    fn stored(batch: &mut Batch, email: Option<&str>, keys: &[&str]) -> Uuid {
        let mut row = crate::contacts::blank(ws());
        row.email = email.map(str::to_owned);
        row.anonymous = email.is_none();
        for key in keys {
            if key.starts_with(USER_PREFIX) {
                batch.user_of.insert(row.id, key.to_string());
            }
            batch.identities.insert(key.to_string(), row.id);
        }
        if let Some(email) = &row.email {
            batch.emails.insert(email.clone(), row.id);
        }
        batch.existing.insert(row.id);
        batch.read.insert(row.id, row.clone());
        batch.stored.insert(row.id, row.clone());
        row.id
    }

    /// The profile each event went to, in message order.
    fn owners(batch: &Batch) -> Vec<Uuid> {
        batch.events.iter().map(|e| batch.resolve(e.contact_id)).collect()
    }

    #[test]
    fn a_visitor_who_identifies_is_one_profile_with_the_whole_history() {
        let mut batch = Batch::new(ws(), "test");
        run(
            &mut batch,
            vec![
                json!({ "type": "page", "anonymousId": "d1", "name": "Home" }),
                json!({ "type": "track", "anonymousId": "d1", "event": "Order Completed" }),
                json!({ "type": "identify", "anonymousId": "d1", "userId": "u1", "traits": { "email": "Ann@Example.com", "phone": "+49 30 1234" } }),
            ],
        );
        assert_eq!(batch.created.len(), 1, "one new profile");
        let profile = batch.created.values().next().unwrap();
        assert!(!profile.anonymous);
        assert_eq!(profile.email.as_deref(), Some("ann@example.com"));
        assert_eq!(profile.phone.as_deref(), Some("+49 30 1234"));
        assert_eq!(owners(&batch), vec![profile.id; 3]);
        assert_eq!(batch.lookup("user:u1"), Some(profile.id));
        assert_eq!(batch.lookup("anon:d1"), Some(profile.id));
    }

    #[test]
    fn an_email_already_known_merges_the_visitor_into_the_stored_contact() {
        let mut batch = Batch::new(ws(), "test");
        let ann = stored(&mut batch, Some("ann@example.com"), &[]);
        run(
            &mut batch,
            vec![
                json!({ "type": "page", "anonymousId": "d1" }),
                json!({ "type": "identify", "anonymousId": "d1", "traits": { "email": "ANN@example.com" } }),
            ],
        );
        assert!(batch.created.is_empty(), "the new visitor became the stored contact");
        assert_eq!(owners(&batch), vec![ann, ann]);
        assert_eq!(batch.lookup("anon:d1"), Some(ann));
        assert!(batch.merges.is_empty(), "no stored contact was merged away");
    }

    #[test]
    fn two_stored_profiles_named_by_one_message_merge_older_first() {
        let mut batch = Batch::new(ws(), "test");
        let known = stored(&mut batch, Some("bo@example.com"), &["user:u2"]);
        let visitor = stored(&mut batch, None, &["anon:d2"]);
        run(
            &mut batch,
            vec![json!({ "type": "track", "userId": "u2", "anonymousId": "d2", "event": "Signed Up" })],
        );
        assert_eq!(
            batch.merges,
            vec![(known, visitor, "identify")],
            "the identified profile wins"
        );
        assert_eq!(owners(&batch), vec![known]);
    }

    #[test]
    fn a_shared_device_keeps_two_users_apart() {
        let mut batch = Batch::new(ws(), "test");
        let first = stored(&mut batch, Some("cy@example.com"), &["user:u1", "anon:kiosk"]);
        run(
            &mut batch,
            vec![
                json!({ "type": "identify", "userId": "u3", "anonymousId": "kiosk", "traits": { "email": "dee@example.com" } }),
            ],
        );
        let second = batch.lookup("user:u3").unwrap();
        assert_ne!(second, first, "a second user on the same device is a second profile");
        assert!(batch.merges.is_empty());
        assert_eq!(
            batch.lookup("anon:kiosk"),
            Some(second),
            "the device goes with who identified last"
        );
        assert_eq!(batch.repointed, vec![("anon:kiosk".to_owned(), second)]);
        assert_eq!(batch.stored[&first].email.as_deref(), Some("cy@example.com"));
    }

    #[test]
    fn alias_joins_the_previous_id_to_the_user() {
        let mut batch = Batch::new(ws(), "test");
        run(
            &mut batch,
            vec![
                json!({ "type": "page", "anonymousId": "old-device" }),
                json!({ "type": "alias", "previousId": "old-device", "userId": "u9" }),
                json!({ "type": "track", "userId": "u9", "event": "Cart Updated" }),
            ],
        );
        assert_eq!(batch.created.len(), 1);
        let profile = *batch.created.keys().next().unwrap();
        assert_eq!(owners(&batch), vec![profile, profile]);
        assert_eq!(batch.lookup("anon:old-device"), Some(profile));
    }

    #[test]
    fn traits_follow_the_contact_rules() {
        let mut batch = Batch::new(ws(), "test");
        run(
            &mut batch,
            vec![
                json!({ "type": "identify", "userId": "u5", "traits": { "email": "not an email", "phone": "call me", "name": "Eve Adams" } }),
            ],
        );
        let profile = batch.created.values().next().unwrap();
        assert_eq!(profile.email, None, "an invalid email is not kept");
        assert_eq!(profile.phone, None, "nor an invalid phone");
        assert_eq!(
            (profile.first_name.as_deref(), profile.last_name.as_deref()),
            (Some("Eve"), Some("Adams"))
        );
    }
}
