//! What a batch reads before resolution and writes after it: the loads, the claims of new
//! identities, the locks, the merges and the inserts, in one transaction.

use super::parse::{Kind, Message};
use super::resolve::{Batch, USER_PREFIX, anon_key, carries_profile, text_trait, user_key};
use super::{Outcome, PROFILE_GONE};
use crate::custom_fields::Definitions;
use crate::events::identity::merge;
use crate::events::{insert_events, lock_contacts, record_activity};
use crate::values::parse_email;
use crate::writes::{Changes, Merge, StoredEvent};
use entities::enums::ObjectType;
use entities::{contact, contact_identity, deleted_contact};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Statement,
    sea_query::{LockType, OnConflict},
};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// `ours` (a change of `read`) laid over `now` (the row as it is now): the columns `ours`
/// changed, and custom fields key by key; everything else stays as `now` has it. The activity
/// times are left out: SQL moves them (`touch_activity`, `merge`), only ever outwards. None
/// when the batch changed nothing but the time of change (an identify repeating known traits).
pub(super) fn rebase(
    read: &contact::Model,
    ours: &contact::Model,
    now: contact::Model,
) -> Option<contact::ActiveModel> {
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

/// The user keys the given profiles hold (at most one each), as (profile, key).
pub(super) async fn user_keys(
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

/// The advisory lock space of company names being found or created (`lock_company_names`;
/// "cmp" in ASCII).
pub(super) const COMPANY_NAME_LOCKS: i32 = 0x636d70;

impl Batch {
    /// One query each for identities, emails named by identify traits, and the contacts whose
    /// rows are needed. A page or track carrying only an anonymous id (most traffic) needs no
    /// row: only messages that change a profile or stitch two together load one.
    pub(super) async fn load(&mut self, db: &impl ConnectionTrait, messages: &[Message]) -> Result<(), DbErr> {
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
    pub(super) async fn load_user_ids(&mut self, db: &impl ConnectionTrait, messages: &[Message]) -> Result<(), DbErr> {
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

    /// Stores the batch's new identities, in key order (so batches waiting on each other's keys
    /// wait in one direction). Returns the keys a concurrent batch claimed first, as pairs of
    /// our profile and theirs: the same person, to be merged rather than failing the batch.
    pub(super) async fn claim_identities(&mut self, db: &impl ConnectionTrait) -> Result<Vec<(Uuid, Uuid)>, DbErr> {
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
    pub(super) async fn repoint(&mut self, db: &impl ConnectionTrait) -> Result<Vec<Uuid>, DbErr> {
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
    pub(super) async fn merge_lost(
        &mut self,
        db: &impl ConnectionTrait,
        lost: Vec<(Uuid, Uuid)>,
    ) -> Result<Vec<Merge>, DbErr> {
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
    pub(super) async fn save_changes(&self, db: &impl ConnectionTrait, locked: &[Uuid]) -> Result<(), DbErr> {
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
    pub(super) async fn avoid_deleted_ids(&mut self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
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
    pub(super) async fn insert_profiles(&mut self, db: &impl ConnectionTrait) -> Result<Vec<contact::Model>, DbErr> {
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
    pub(super) async fn user_added_meanwhile(
        &self,
        db: &impl ConnectionTrait,
        joined: &HashSet<Uuid>,
    ) -> Result<bool, DbErr> {
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

    pub(super) async fn save(mut self, db: &impl ConnectionTrait, applied: usize) -> Result<Outcome, DbErr> {
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
        changes.companies_changed = std::mem::take(&mut self.companies_changed);
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
    use serde_json::json;

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
        touched.updated_at = crate::now() + chrono::Duration::seconds(1);
        assert!(rebase(&read, &touched, now).is_none());
    }
}
