//! `ContactFilter` and its compilation to one SQL condition with bound parameters. Relations
//! compile to subqueries (`company_id IN (SELECT ...)`, `EXISTS (... contact_tag ...)`), so the
//! database does all the filtering.

use super::Channel;
use crate::companies::filter::{CompanyFilter, IdFilter};
use crate::custom_fields::{CustomFieldFilter, Definitions, FieldSql};
use crate::error::ApiResult;
use crate::events::filter::EventCondition;
use crate::ids::NodeKind;
use crate::listing::filters::{DateTimeFilter, StringFilter, check_depth, check_list};
use crate::segments::filter::SegmentMembershipFilter;
use chrono::{DateTime, Utc};
use entities::enums::ObjectType;
use entities::enums::{ConsentStatus, LifecycleStage};
use entities::{company, contact, contact_tag};
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, Condition, DbBackend};
use uuid::Uuid;

/// Everything a contact filter may refer to besides its own input.
pub struct FilterContext {
    pub backend: DbBackend,
    pub workspace_id: Uuid,
    pub contact_fields: Definitions,
    pub company_fields: Definitions,
    /// The moment sliding windows ("in the last 30 days") count back from.
    pub now: DateTime<Utc>,
    /// Only these contacts, when re-evaluating segments for a few: behaviour subqueries are
    /// narrowed too, so they read only those contacts' events.
    pub scope: Option<Vec<Uuid>>,
}

impl FilterContext {
    /// Loads the custom field definitions the filter needs (none when it uses none).
    pub async fn load(
        db: &impl ConnectionTrait,
        workspace_id: Uuid,
        filter: Option<&ContactFilter>,
    ) -> ApiResult<Self> {
        let contact_fields = filter.is_some_and(|f| f.uses_custom_fields());
        let company_fields = filter.is_some_and(|f| f.uses_company_custom_fields());
        Ok(FilterContext {
            backend: db.get_database_backend(),
            workspace_id,
            contact_fields: if contact_fields {
                Definitions::load(db, workspace_id, ObjectType::Contact).await?
            } else {
                Definitions::default()
            },
            company_fields: if company_fields {
                Definitions::load(db, workspace_id, ObjectType::Company).await?
            } else {
                Definitions::default()
            },
            now: crate::now(),
            scope: None,
        })
    }
}

/// Conditions on contacts. All given fields must hold; combine with `and`, `or`, `not`.
#[derive(serde::Serialize, serde::Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ContactFilter {
    /// All of these filters hold.
    #[serde(default, deserialize_with = "voxtur_store::json::one_or_many")]
    pub and: Option<Vec<ContactFilter>>,
    /// At least one of these filters holds.
    #[serde(default, deserialize_with = "voxtur_store::json::one_or_many")]
    pub or: Option<Vec<ContactFilter>>,
    /// This filter does not hold.
    pub not: Option<Box<ContactFilter>>,
    /// The contact's id.
    pub id: Option<IdFilter>,
    /// Email address (stored lower-cased; `eq` and `in` match case-insensitively).
    pub email: Option<StringFilter>,
    /// First name.
    pub first_name: Option<StringFilter>,
    /// Last name.
    pub last_name: Option<StringFilter>,
    /// Phone number.
    pub phone: Option<StringFilter>,
    /// Lifecycle stage.
    pub lifecycle_stage: Option<LifecycleStageFilter>,
    /// The contact's company matches this filter.
    pub company: Option<CompanyFilter>,
    /// The contact's company id (`isNull: true` for contacts without a company).
    pub company_id: Option<IdFilter>,
    /// The owning user's id.
    pub owner_id: Option<IdFilter>,
    /// Tags.
    pub tags: Option<TagFilter>,
    /// Consent per channel; every entry must hold.
    #[serde(default, deserialize_with = "voxtur_store::json::one_or_many")]
    pub consent: Option<Vec<ChannelConsentFilter>>,
    /// Where the contact came from.
    pub source: Option<StringFilter>,
    /// UTM source of the first touch.
    pub utm_source: Option<StringFilter>,
    /// UTM medium of the first touch.
    pub utm_medium: Option<StringFilter>,
    /// UTM campaign of the first touch.
    pub utm_campaign: Option<StringFilter>,
    /// When the contact was created.
    pub created_at: Option<DateTimeFilter>,
    /// When the contact last changed.
    pub updated_at: Option<DateTimeFilter>,
    /// Custom field conditions; every entry must hold.
    #[serde(default, deserialize_with = "voxtur_store::json::one_or_many")]
    pub custom_fields: Option<Vec<CustomFieldFilter>>,
    /// Anonymous visitor profiles. The `contacts` list leaves them out unless this is given
    /// (`true`: only anonymous profiles; `false`: only identified contacts).
    pub anonymous: Option<bool>,
    /// Time of the earliest recorded event.
    pub first_seen_at: Option<DateTimeFilter>,
    /// Time of the latest recorded event.
    pub last_activity_at: Option<DateTimeFilter>,
    /// Behaviour: what the contact did, counted over its events; every entry must hold.
    #[serde(default, deserialize_with = "voxtur_store::json::one_or_many")]
    pub events: Option<Vec<EventCondition>>,
    /// Membership of segments.
    pub segments: Option<SegmentMembershipFilter>,
}

/// Conditions on the lifecycle stage.
#[derive(serde::Serialize, serde::Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleStageFilter {
    /// Equal to.
    #[serde(default, with = "crate::names::option")]
    pub eq: Option<LifecycleStage>,
    /// Not equal to.
    #[serde(default, with = "crate::names::option")]
    pub neq: Option<LifecycleStage>,
    /// One of.
    #[serde(rename = "in")]
    #[serde(default, with = "crate::names::option_list")]
    pub in_list: Option<Vec<LifecycleStage>>,
    /// None of.
    #[serde(default, with = "crate::names::option_list")]
    pub not_in: Option<Vec<LifecycleStage>>,
}

/// Conditions on tags.
#[derive(serde::Serialize, serde::Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct TagFilter {
    /// Has at least one of these tags.
    #[serde(default, deserialize_with = "voxtur_store::json::one_or_many")]
    pub has_any: Option<Vec<String>>,
    /// Has every one of these tags.
    #[serde(default, deserialize_with = "voxtur_store::json::one_or_many")]
    pub has_all: Option<Vec<String>>,
    /// Has none of these tags.
    #[serde(default, deserialize_with = "voxtur_store::json::one_or_many")]
    pub has_none: Option<Vec<String>>,
}

/// Conditions on one channel's consent.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ChannelConsentFilter {
    /// The channel.
    pub channel: Channel,
    /// Consent status is one of these.
    #[serde(default, with = "crate::names::option_list")]
    pub status: Option<Vec<ConsentStatus>>,
    /// The do-not-contact flag equals this.
    pub do_not_contact: Option<bool>,
    /// `true`: consent granted and not flagged do-not-contact; `false`: the opposite.
    pub contactable: Option<bool>,
}

impl ContactFilter {
    /// The filter and every filter nested in it.
    fn all(&self) -> Vec<&ContactFilter> {
        let mut out = vec![self];
        for f in self
            .and
            .iter()
            .flatten()
            .chain(self.or.iter().flatten())
            .chain(self.not.as_deref())
        {
            out.extend(f.all());
        }
        out
    }

    fn uses_company_custom_fields(&self) -> bool {
        self.all()
            .iter()
            .any(|f| f.company.as_ref().is_some_and(|c| c.uses_custom_fields()))
    }

    /// Segments the filter refers to.
    pub fn segment_ids(&self) -> ApiResult<Vec<Uuid>> {
        let mut ids = Vec::new();
        for f in self.all() {
            if let Some(s) = &f.segments {
                ids.extend(s.segment_ids()?);
            }
        }
        Ok(ids)
    }

    /// The event types its behaviour conditions count.
    pub fn event_types(&self) -> std::collections::HashSet<&'static str> {
        self.all()
            .iter()
            .flat_map(|f| f.events.iter().flatten())
            .map(|e| e.event_type.as_str())
            .collect()
    }

    /// Whether evaluating it is costly (behaviour conditions group events by contact; segment
    /// membership reads other segments), so a list should evaluate it once per request.
    pub fn is_costly(&self) -> bool {
        self.all().iter().any(|f| f.events.is_some() || f.segments.is_some())
    }

    /// Whether it reads the activity times every event moves.
    pub fn uses_activity_times(&self) -> bool {
        self.all()
            .iter()
            .any(|f| f.first_seen_at.is_some() || f.last_activity_at.is_some())
    }

    /// Its behaviour conditions with a sliding window (`withinLastDays`).
    pub fn windowed_events(&self) -> Vec<&EventCondition> {
        self.all()
            .into_iter()
            .flat_map(|f| f.events.iter().flatten())
            .filter(|e| e.is_time_relative())
            .collect()
    }

    /// Whether membership can change with time alone (a sliding event window).
    pub fn is_time_relative(&self) -> bool {
        self.all()
            .iter()
            .any(|f| f.events.iter().flatten().any(|e| e.is_time_relative()))
    }

    pub fn uses_custom_fields(&self) -> bool {
        self.custom_fields.is_some()
            || self.company.as_ref().is_some_and(|c| c.uses_custom_fields())
            || self.and.iter().flatten().any(|f| f.uses_custom_fields())
            || self.or.iter().flatten().any(|f| f.uses_custom_fields())
            || self.not.as_ref().is_some_and(|f| f.uses_custom_fields())
    }

    pub fn condition(&self, ctx: &FilterContext) -> ApiResult<Condition> {
        self.compile(ctx, 0)
    }

    fn compile(&self, ctx: &FilterContext, depth: usize) -> ApiResult<Condition> {
        check_depth(depth)?;
        let mut all = Condition::all();
        if let Some(filters) = &self.and {
            check_list("and", filters)?;
            for f in filters {
                all = all.add(f.compile(ctx, depth + 1)?);
            }
        }
        if let Some(filters) = &self.or {
            check_list("or", filters)?;
            let mut any = Condition::any();
            for f in filters {
                any = any.add(f.compile(ctx, depth + 1)?);
            }
            all = all.add(any);
        }
        if let Some(f) = &self.not {
            all = all.add(f.compile(ctx, depth + 1)?.not());
        }
        if let Some(f) = &self.id {
            all = all.add(f.condition("id", contact::Column::Id.into_expr(), NodeKind::Contact)?);
        }
        if let Some(f) = &self.email {
            all = all.add(f.condition_with("email", contact::Column::Email.into_expr(), |e| e.trim().to_lowercase())?);
        }
        let text_fields = [
            ("firstName", &self.first_name, contact::Column::FirstName),
            ("lastName", &self.last_name, contact::Column::LastName),
            ("phone", &self.phone, contact::Column::Phone),
            ("source", &self.source, contact::Column::Source),
            ("utmSource", &self.utm_source, contact::Column::UtmSource),
            ("utmMedium", &self.utm_medium, contact::Column::UtmMedium),
            ("utmCampaign", &self.utm_campaign, contact::Column::UtmCampaign),
        ];
        for (name, filter, column) in text_fields {
            if let Some(f) = filter {
                all = all.add(f.condition(name, column.into_expr())?);
            }
        }
        if let Some(f) = &self.lifecycle_stage {
            all = all.add(f.condition()?);
        }
        if let Some(f) = &self.company {
            let companies = Query::select()
                .column(company::Column::Id)
                .from(company::Entity)
                .and_where(company::Column::WorkspaceId.eq(ctx.workspace_id))
                .cond_where(f.condition(&ctx.company_fields, ctx.backend)?)
                .to_owned();
            all = all.add(contact::Column::CompanyId.in_subquery(companies));
        }
        if let Some(f) = &self.company_id {
            all = all.add(f.condition("companyId", contact::Column::CompanyId.into_expr(), NodeKind::Company)?);
        }
        if let Some(f) = &self.owner_id {
            all = all.add(f.condition("ownerId", contact::Column::OwnerId.into_expr(), NodeKind::User)?);
        }
        if let Some(f) = &self.tags {
            all = all.add(f.condition()?);
        }
        if let Some(filters) = &self.consent {
            check_list("consent", filters)?;
            for f in filters {
                all = all.add(f.condition());
            }
        }
        if let Some(f) = &self.created_at {
            all = all.add(f.condition(contact::Column::CreatedAt.into_expr()));
        }
        if let Some(f) = &self.updated_at {
            all = all.add(f.condition(contact::Column::UpdatedAt.into_expr()));
        }
        if let Some(anonymous) = self.anonymous {
            all = all.add(contact::Column::Anonymous.eq(anonymous));
        }
        if let Some(f) = &self.first_seen_at {
            all = all.add(f.condition(contact::Column::FirstSeenAt.into_expr()));
        }
        if let Some(f) = &self.last_activity_at {
            all = all.add(f.condition(contact::Column::LastActivityAt.into_expr()));
        }
        if let Some(conditions) = &self.events {
            check_list("events", conditions)?;
            for c in conditions {
                all = all.add(c.condition(ctx.backend, ctx.workspace_id, ctx.now, ctx.scope.as_deref())?);
            }
        }
        if let Some(f) = &self.segments {
            all = all.add(f.condition(ctx.workspace_id)?);
        }
        if let Some(filters) = &self.custom_fields {
            check_list("customFields", filters)?;
            let sql = FieldSql::custom_fields(ctx.backend, "contact");
            for f in filters {
                all = all.add(f.condition(&ctx.contact_fields, sql)?);
            }
        }
        Ok(all)
    }
}

impl LifecycleStageFilter {
    fn condition(&self) -> ApiResult<Condition> {
        let column = contact::Column::LifecycleStage;
        let mut all = Condition::all();
        if let Some(v) = self.eq {
            // Written into the statement's text, not bound: the stage's share of contacts ranges
            // from a few to a third, and with it bound PostgreSQL compares a generic plan
            // costed for the average stage with custom ones and may plan a contacts page at
            // every call (docs/perf-history.md, issue 5, eighth session). A statement per stage (eight
            // at most) has no such choice and keeps its plan. Safe: the value is an enum's.
            let literal = Expr::Constant(sea_orm::ActiveEnum::to_value(&v).into());
            all = all.add(Expr::col((contact::Entity, column)).eq(literal));
        }
        if let Some(v) = self.neq {
            all = all.add(column.ne(v));
        }
        if let Some(list) = &self.in_list {
            all = all.add(column.is_in(list.iter().copied()));
        }
        if let Some(list) = &self.not_in {
            all = all.add(column.is_not_in(list.iter().copied()));
        }
        Ok(all)
    }
}

impl TagFilter {
    fn has(tags: Vec<String>) -> Expr {
        Expr::exists(
            Query::select()
                .expr(Expr::val(1))
                .from(contact_tag::Entity)
                .and_where(
                    Expr::col((contact_tag::Entity, contact_tag::Column::ContactId))
                        .equals((contact::Entity, contact::Column::Id)),
                )
                .and_where(contact_tag::Column::Tag.is_in(tags))
                .to_owned(),
        )
    }

    fn condition(&self) -> ApiResult<Condition> {
        let mut all = Condition::all();
        if let Some(tags) = &self.has_any {
            check_list("tags.hasAny", tags)?;
            all = all.add(Self::has(tags.clone()));
        }
        if let Some(tags) = &self.has_all {
            check_list("tags.hasAll", tags)?;
            for tag in tags {
                all = all.add(Self::has(vec![tag.clone()]));
            }
        }
        if let Some(tags) = &self.has_none {
            check_list("tags.hasNone", tags)?;
            all = all.add(Self::has(tags.clone()).not());
        }
        Ok(all)
    }
}

impl ChannelConsentFilter {
    fn condition(&self) -> Condition {
        let (status_column, dnc_column) = self.channel.columns();
        let mut all = Condition::all();
        if let Some(list) = &self.status {
            all = all.add(status_column.is_in(list.iter().copied()));
        }
        if let Some(dnc) = self.do_not_contact {
            all = all.add(dnc_column.eq(dnc));
        }
        if let Some(contactable) = self.contactable {
            let yes = Condition::all()
                .add(status_column.eq(entities::enums::ConsentStatus::Granted))
                .add(dnc_column.eq(false));
            all = all.add(if contactable { yes } else { yes.not() });
        }
        all
    }
}
