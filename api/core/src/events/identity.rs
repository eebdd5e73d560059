//! Merging two contacts into one: events, identities and tags move to the winner, fields merge
//! by a fixed rule, the loser is deleted and the merge is recorded with the loser's snapshot.
//!
//! The rule for conflicting fields: the winner's value wins; the loser fills what the winner
//! lacks; tags are united; custom fields are united with the winner's values winning;
//! consent takes the most restrictive answer per channel (withdrawn over granted over unknown,
//! do-not-contact if either says so); the lifecycle stage is the furthest along the funnel;
//! created / first-seen take the earliest time and last-activity the latest.

use entities::enums::{ConsentStatus, LifecycleStage};
use entities::{contact, contact_identity, contact_merge, contact_tag, event};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

fn stage_rank(stage: LifecycleStage) -> u8 {
    match stage {
        LifecycleStage::Other => 0,
        LifecycleStage::Subscriber => 1,
        LifecycleStage::Lead => 2,
        LifecycleStage::MarketingQualified => 3,
        LifecycleStage::SalesQualified => 4,
        LifecycleStage::Opportunity => 5,
        LifecycleStage::Customer => 6,
        LifecycleStage::Evangelist => 7,
    }
}

fn consent(a: ConsentStatus, b: ConsentStatus) -> ConsentStatus {
    use ConsentStatus::*;
    match (a, b) {
        (Withdrawn, _) | (_, Withdrawn) => Withdrawn,
        (Granted, _) | (_, Granted) => Granted,
        _ => Unknown,
    }
}

fn earliest<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The merged fields of `winner` and `loser`, by the rule above (ids stay the winner's).
pub fn merged_fields(winner: &contact::Model, loser: &contact::Model) -> contact::Model {
    let mut m = winner.clone();
    macro_rules! fill {
        ($($field:ident),*) => { $( if m.$field.is_none() { m.$field = loser.$field.clone(); } )* };
    }
    fill!(
        email,
        first_name,
        last_name,
        phone,
        company_id,
        owner_id,
        source,
        utm_source,
        utm_medium,
        utm_campaign,
        utm_term,
        utm_content
    );
    if stage_rank(loser.lifecycle_stage) > stage_rank(m.lifecycle_stage) {
        m.lifecycle_stage = loser.lifecycle_stage;
    }
    m.consent_email = consent(m.consent_email, loser.consent_email);
    m.consent_sms = consent(m.consent_sms, loser.consent_sms);
    m.consent_phone = consent(m.consent_phone, loser.consent_phone);
    m.consent_letter = consent(m.consent_letter, loser.consent_letter);
    m.consent_visit = consent(m.consent_visit, loser.consent_visit);
    m.dnc_email |= loser.dnc_email;
    m.dnc_sms |= loser.dnc_sms;
    m.dnc_phone |= loser.dnc_phone;
    m.dnc_letter |= loser.dnc_letter;
    m.dnc_visit |= loser.dnc_visit;
    let mut fields = loser.custom_fields.as_object().cloned().unwrap_or_default();
    fields.extend(m.custom_fields.as_object().cloned().unwrap_or_default());
    m.custom_fields = serde_json::Value::Object(fields);
    m.created_at = m.created_at.min(loser.created_at);
    m.first_seen_at = earliest(m.first_seen_at, loser.first_seen_at);
    m.last_activity_at = match (m.last_activity_at, loser.last_activity_at) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    m.anonymous = winner.anonymous && loser.anonymous;
    m.updated_at = crate::now();
    m
}

/// The surviving contact and how many events it took over.
pub struct Merged {
    pub contact: contact::Model,
    pub events_moved: u64,
}

/// Merges `loser` into `winner` (both rows of the same workspace) inside the caller's
/// transaction and returns the merged winner.
pub async fn merge(
    db: &impl ConnectionTrait,
    winner: &contact::Model,
    loser: &contact::Model,
    reason: &str,
) -> Result<Merged, DbErr> {
    let workspace_id = winner.workspace_id;
    // The loser's row first: ingestion batches lock every contact they add events to before
    // they commit, so this waits for those still writing to it, and the events they commit move
    // with the rest; batches that come later find the loser gone and start again.
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        contact::Entity::find()
            .select_only()
            .column(contact::Column::Id)
            .filter(contact::Column::Id.eq(loser.id))
            .lock(sea_orm::sea_query::LockType::Update)
            .into_tuple::<Uuid>()
            .all(db)
            .await?;
    }
    let moved = event::Entity::update_many()
        .col_expr(event::Column::ContactId, Expr::value(winner.id))
        .filter(event::Column::WorkspaceId.eq(workspace_id))
        .filter(event::Column::ContactId.eq(loser.id))
        .exec(db)
        .await?
        .rows_affected;
    super::tally::merge(db, workspace_id, winner.id, loser.id).await?;
    contact_identity::Entity::update_many()
        .col_expr(contact_identity::Column::ContactId, Expr::value(winner.id))
        .filter(contact_identity::Column::WorkspaceId.eq(workspace_id))
        .filter(contact_identity::Column::ContactId.eq(loser.id))
        .exec(db)
        .await?;
    // Copy the loser's tags; the loser's own rows go with it below.
    let copy = Query::insert()
        .into_table(contact_tag::Entity)
        .columns([
            contact_tag::Column::ContactId,
            contact_tag::Column::Tag,
            contact_tag::Column::WorkspaceId,
        ])
        .select_from(
            Query::select()
                .expr(Expr::val(winner.id))
                .column(contact_tag::Column::Tag)
                .column(contact_tag::Column::WorkspaceId)
                .from(contact_tag::Entity)
                .and_where(contact_tag::Column::ContactId.eq(loser.id))
                .to_owned(),
        )
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .on_conflict(
            OnConflict::columns([contact_tag::Column::ContactId, contact_tag::Column::Tag])
                .do_nothing()
                .to_owned(),
        )
        .to_owned();
    db.execute(&copy).await?;
    let merged = merged_fields(winner, loser);
    crate::segments::leave_all(db, loser.id)
        .await
        .map_err(|e| DbErr::Custom(e.for_operator()))?;
    // The loser goes first: the winner may take over its unique email.
    contact::Entity::delete_by_id(loser.id).exec(db).await?;
    let saved = contact::ActiveModel::from(merged).reset_all().update(db).await?;
    contact_merge::ActiveModel::from(contact_merge::Model {
        id: Uuid::now_v7(),
        workspace_id,
        winner_id: winner.id,
        loser_id: loser.id,
        reason: reason.to_owned(),
        loser_snapshot: serde_json::to_value(loser).unwrap_or_default(),
        events_moved: i32::try_from(moved).unwrap_or(i32::MAX),
        merged_at: crate::now(),
    })
    .reset_all()
    .insert(db)
    .await?;
    Ok(Merged {
        contact: saved,
        events_moved: moved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use entities::enums::ConsentStatus::*;

    #[test]
    fn merge_rule_is_deterministic() {
        let mut winner = crate::contacts::blank(Uuid::nil());
        let mut loser = crate::contacts::blank(Uuid::nil());
        winner.first_name = Some("Ann".into());
        loser.first_name = Some("Anna".into());
        loser.last_name = Some("Lee".into());
        winner.lifecycle_stage = LifecycleStage::Lead;
        loser.lifecycle_stage = LifecycleStage::Customer;
        winner.consent_email = Granted;
        loser.consent_email = Withdrawn;
        loser.dnc_sms = true;
        winner.custom_fields = serde_json::json!({ "plan": "pro" });
        loser.custom_fields = serde_json::json!({ "plan": "free", "nps": 9 });
        let m = merged_fields(&winner, &loser);
        assert_eq!(m.first_name.as_deref(), Some("Ann"));
        assert_eq!(m.last_name.as_deref(), Some("Lee"));
        assert_eq!(m.lifecycle_stage, LifecycleStage::Customer);
        assert_eq!(m.consent_email, Withdrawn);
        assert!(m.dnc_sms);
        assert_eq!(m.custom_fields, serde_json::json!({ "plan": "pro", "nps": 9 }));
    }
}
